public import Foundation
import ValueAlignCore
public import Hummingbird
public import OpenAIBackend

/// An error answered to a client in OpenAI's shape:
/// `{"error": {"message": ..., "type": ..., "param": ..., "code": ...}}`.
///
/// Messages say what was wrong with the request (the field, the limit) and never repeat the
/// client's key or its text.
public struct APIError: Error, HTTPResponseError, Equatable, CustomStringConvertible {
    public var status: HTTPResponse.Status
    public var message: String
    /// OpenAI's error type: invalid_request_error, authentication_error, permission_error,
    /// not_found_error, rate_limit_error, upstream_error, timeout_error, server_error.
    public var type: String
    /// The request field at fault, where there is one.
    public var param: String?
    /// A machine-readable code (`invalid_api_key`, `rate_limit_exceeded`, `content_too_large`...).
    public var code: String?
    /// Seconds after which a retry may succeed (sent as `Retry-After`).
    public var retryAfter: Int?

    public init(_ status: HTTPResponse.Status, _ message: String, type: String, param: String? = nil, code: String? = nil, retryAfter: Int? = nil) {
        self.status = status
        self.message = message
        self.type = type
        self.param = param
        self.code = code
        self.retryAfter = retryAfter
    }

    public var description: String { "\(status.code) \(type): \(message)" }

    /// 400 naming `param`.
    public static func invalid(_ message: String, param: String? = nil, code: String? = nil) -> APIError {
        APIError(.badRequest, message, type: "invalid_request_error", param: param, code: code)
    }

    /// OpenAI's error object, as the shared wire type.
    public var detail: ErrorReply.Detail { ErrorReply.Detail(message: message, type: type, param: param, code: code) }

    /// The JSON body: `{"error": {...}}`, keys sorted as before the wire types were shared.
    public var body: Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return (try? encoder.encode(ErrorReply(error: detail))) ?? Data()
    }

    public func response(from request: Request, context: some RequestContext) throws -> Response {
        var headers: HTTPFields = [.contentType: "application/json"]
        if let retryAfter { headers[.retryAfter] = String(retryAfter) }
        if status == .unauthorized { headers[.wwwAuthenticate] = "Bearer" }
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: body)))
    }

    /// Any error thrown while serving, as the client should see it: our own errors as they are,
    /// Hummingbird's (unknown route, body too large) in OpenAI's shape, anything else as a 500
    /// whose message does not leak internals.
    static func from(_ error: any Error) -> APIError {
        if let error = error as? APIError { return error }
        if let failure = error as? GuardFailure { return APIError(failure) }
        if let error = error as? HTTPError {
            switch error.status {
            case .notFound: return APIError(.notFound, "no such endpoint", type: "not_found_error", code: "unknown_url")
            case .contentTooLarge: return APIError(.contentTooLarge, "the request body is too large", type: "invalid_request_error", code: "content_too_large")
            case .methodNotAllowed: return APIError(.methodNotAllowed, "method not allowed on this endpoint", type: "invalid_request_error")
            default:
                return APIError(error.status, error.body ?? error.status.reasonPhrase, type: error.status.code < 500 ? "invalid_request_error" : "server_error")
            }
        }
        return APIError(.internalServerError, "internal error", type: "server_error")
    }
}

extension APIError {
    /// A failure of the decision pipeline as the client sees it: the evaluator's is a 503 (the
    /// answer is withheld), the upstream's a 504 (time-out) or 502.
    init(_ failure: GuardFailure) {
        switch failure {
        case .evaluatorFailed:
            self.init(.serviceUnavailable, "the value evaluator failed; the request was not answered", type: "server_error", code: "evaluator_failed")
        case let .upstreamDeadline(limit):
            self.init(.gatewayTimeout, "the upstream model did not answer within \(String(format: "%g", limit.seconds)) s",
                      type: "timeout_error", code: "upstream_timeout")
        case .upstreamTimedOut:
            self.init(.gatewayTimeout, "the upstream model timed out", type: "timeout_error", code: "upstream_timeout")
        case let .upstreamFailed(message):
            self.init(.badGateway, "the upstream model failed: \(message)", type: "upstream_error", code: "upstream_error")
        }
    }
}
