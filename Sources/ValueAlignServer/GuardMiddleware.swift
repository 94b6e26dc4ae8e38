import Foundation
import ValueAlignCore
public import Hummingbird
import Logging
import NIOCore

/// The request context: Hummingbird's core plus what the guard's middleware learns.
public struct GuardContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    /// "req_" and 16 hex digits; in the `X-Request-Id` header and the audit row.
    public var requestID: String
    /// The client key's id, set by `ClientAuthMiddleware` ("anonymous" when the server has no keys).
    public var keyID: String = "anonymous"
    /// The request's audit row, set by `AuditMiddleware` on the audited routes.
    var draft: AuditDraft?

    public init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        requestID = "req_" + String(format: "%016llx", UInt64.random(in: 0...UInt64.max))
    }

    /// The audit row of a route behind `AuditMiddleware`.
    func auditDraft() throws -> AuditDraft {
        guard let draft else { throw APIError(.internalServerError, "internal error", type: "server_error") }
        return draft
    }
}

/// Outermost middleware, on every route: errors in OpenAI's shape, the request id header,
/// request metrics.
struct RequestMiddleware: RouterMiddleware {
    let metrics: ServerMetrics
    let logger: Logger

    func handle(_ request: Request, context: GuardContext, next: (Request, GuardContext) async throws -> Response) async throws -> Response {
        let start = ContinuousClock.now
        let endpoint = Self.endpoint(request.uri.path)
        metrics.add(gauge: "valuealign_requests_in_flight", 1)
        defer { metrics.add(gauge: "valuealign_requests_in_flight", -1) }
        var response: Response
        do {
            response = try await next(request, context)
        } catch {
            let api = APIError.from(error)
            if api.status == .internalServerError { logger.error("request \(context.requestID) failed: \(error)") }
            response = (try? api.response(from: request, context: context)) ?? Response(status: .internalServerError)
        }
        if response.headers[.init(GuardHeader.requestID)!] == nil { response.headers[.init(GuardHeader.requestID)!] = context.requestID }
        metrics.increment("valuealign_requests_total", [("endpoint", endpoint), ("status", String(response.status.code))])
        // A stream's duration is observed when it ends, not when its headers go out.
        if !(response.headers[.contentType]?.hasPrefix("text/event-stream") ?? false) {
            metrics.observe("valuealign_request_duration_seconds", (ContinuousClock.now - start).seconds, [("endpoint", endpoint)])
        }
        return response
    }

    /// A bounded set of label values: known paths, or "other".
    static func endpoint(_ path: String) -> String {
        ["/v1/chat/completions", "/v1/models", "/v1/values/evaluate", "/get_reward", "/healthz", "/metrics", "/dashboard", "/dashboard/login", "/admin/audit"]
            .contains(path) ? path : "other"
    }
}

/// The client endpoints' gate: a valid client key within its rate limit, else 401 or 429 (not
/// audited: nobody was identified). Puts the key's id in the context.
struct ClientAuthMiddleware: RouterMiddleware {
    let gate: Gatekeeper

    func handle(_ request: Request, context: GuardContext, next: (Request, GuardContext) async throws -> Response) async throws -> Response {
        var context = context
        context.keyID = try gate.client(request)
        return try await next(request, context)
    }
}

/// The admin endpoints' gate: an admin key or a dashboard session, else 401 (403 when the server
/// has no admin keys at all).
struct AdminAuthMiddleware: RouterMiddleware {
    let gate: Gatekeeper

    func handle(_ request: Request, context: GuardContext, next: (Request, GuardContext) async throws -> Response) async throws -> Response {
        _ = try gate.admin(request)
        return try await next(request, context)
    }
}

/// Reads the whole body within `maxBytes` and `timeout` before the handler runs (413, 408), so
/// that a slow or huge upload cannot hold a handler; the handler gets it as one buffer.
struct BodyLimitMiddleware: RouterMiddleware {
    let maxBytes: Int
    let timeout: Duration

    func handle(_ request: Request, context: GuardContext, next: (Request, GuardContext) async throws -> Response) async throws -> Response {
        if let length = request.headers[.contentLength].flatMap(Int.init), length > maxBytes {
            throw APIError(.contentTooLarge, "the request body has \(length) bytes; at most \(maxBytes)", type: "invalid_request_error", code: "content_too_large")
        }
        let source = request.body, limit = maxBytes
        var request = request
        do {
            request.body = RequestBody(buffer: try await withDeadline(timeout) { try await source.collect(upTo: limit) })
        } catch is DeadlineExceeded {
            throw APIError(.requestTimeout, "the request body did not arrive within \(Int(timeout.seconds)) s", type: "invalid_request_error", code: "request_timeout")
        } catch let error as HTTPError where error.status == .contentTooLarge {
            throw APIError(.contentTooLarge, "the request body is larger than \(limit) bytes", type: "invalid_request_error", code: "content_too_large")
        }
        return try await next(request, context)
    }
}

/// Audits every request on its route: opens the row (endpoint, key, time), lets the handler fill
/// it, and writes it with the outcome (the error's status and message when the handler throws)
/// before the reply goes out. A reply whose row cannot be written is not sent: the client gets a
/// 503 instead. Windowed streams write their own row when they end.
struct AuditMiddleware: RouterMiddleware {
    let writer: AuditWriter
    /// "chat", "evaluate", "reward".
    let endpoint: String
    let model: String?
    /// The row's action until the handler decides (allow for chat, measure for the others).
    let action: String

    func handle(_ request: Request, context: GuardContext, next: (Request, GuardContext) async throws -> Response) async throws -> Response {
        let draft = AuditDraft(AuditRecord(requestID: context.requestID, keyID: context.keyID, time: Date(), endpoint: endpoint, model: model,
                                           action: action, status: 200))
        var context = context
        context.draft = draft
        var outcome: Result<Response, any Error>
        do { outcome = .success(try await next(request, context)) } catch { outcome = .failure(error) }
        if draft.writtenByResponse, case let .success(response) = outcome { return response }
        if case let .failure(error) = outcome {
            let api = APIError.from(error)
            draft.fail(status: Int(api.status.code), message: api.message)
            outcome = .failure(api)
        }
        draft.finishTiming()
        if await writer.write(draft.record) == false, case .success = outcome {
            outcome = .failure(APIError(.serviceUnavailable, "the audit log is unavailable; the answer was withheld", type: "server_error", code: "audit_unavailable"))
        }
        var response = try outcome.get()
        response.headers[.init(GuardHeader.requestID)!] = draft.record.requestID
        response.headers[.init(GuardHeader.serverTiming)!] = draft.timing.header(total: draft.record.totalMilliseconds / 1000)
        return response
    }
}

/// Checks keys: client keys with their rate limits, admin keys, dashboard sessions.
struct Gatekeeper: Sendable {
    let access: AccessPolicy
    let limiter: RateLimiter
    let sessions: SessionStore
    let metrics: ServerMetrics

    /// The client key's id after checking the key and its rate limit.
    func client(_ request: Request) throws(APIError) -> String {
        if access.isOpen { return "anonymous" }
        guard let presented = Self.bearer(request) else {
            metrics.increment("valuealign_auth_failures_total")
            throw APIError(.unauthorized, "missing API key; send 'Authorization: Bearer <key>'", type: "authentication_error", code: "missing_api_key")
        }
        guard let key = access.client(presented) else {
            metrics.increment("valuealign_auth_failures_total")
            throw APIError(.unauthorized, "invalid API key", type: "authentication_error", code: "invalid_api_key")
        }
        if let wait = limiter.admit(key) {
            metrics.increment("valuealign_rate_limited_total")
            let rate = key.requestsPerMinute.map { String(format: "%g", $0) } ?? "?"
            throw APIError(.tooManyRequests, "rate limit of \(rate) requests per minute reached for this key; retry in \(String(format: "%.1f", wait)) s",
                           type: "rate_limit_error", code: "rate_limit_exceeded", retryAfter: max(1, Int(wait.rounded(.up))))
        }
        return key.id
    }

    /// The admin key's id: from `Authorization: Bearer` or a dashboard session cookie.
    func admin(_ request: Request) throws(APIError) -> String {
        guard !access.adminKeys.isEmpty else { throw Self.adminDisabled }
        if let presented = Self.bearer(request) {
            if let admin = access.admin(presented) { return admin.id }
            metrics.increment("valuealign_auth_failures_total")
            throw APIError(.unauthorized, "invalid admin key", type: "authentication_error", code: "invalid_api_key")
        }
        if let token = Self.cookie(request, "va_session"), let id = sessions.adminID(for: token) { return id }
        throw APIError(.unauthorized, "this endpoint needs an admin key", type: "authentication_error", code: "missing_api_key")
    }

    static let adminDisabled = APIError(.forbidden, "no admin key is configured; add adminKeys to the keys file", type: "permission_error", code: "admin_disabled")

    static func bearer(_ request: Request) -> String? {
        guard let header = request.headers[.authorization] else { return nil }
        let parts = header.split(separator: " ", maxSplits: 1)
        guard parts.count == 2, parts[0].lowercased() == "bearer" else { return nil }
        let key = parts[1].trimmingCharacters(in: .whitespaces)
        return key.isEmpty ? nil : key
    }

    static func cookie(_ request: Request, _ name: String) -> String? {
        guard let header = request.headers[.cookie] else { return nil }
        for part in header.split(separator: ";") {
            let kv = part.trimmingCharacters(in: .whitespaces).split(separator: "=", maxSplits: 1)
            if kv.count == 2, kv[0] == name { return String(kv[1]) }
        }
        return nil
    }
}

/// The guard's own reply headers. Names, not `HTTPField.Name`s: Hummingbird does not re-export
/// that type, and the subscripts infer it.
enum GuardHeader {
    static let requestID = "X-Request-Id"
    static let serverTiming = "Server-Timing"
    static let valueAlignAction = "X-ValueAlign-Action"
}

/// The body a `BodyLimitMiddleware` has already read.
func bodyData(_ request: Request) async throws -> Data {
    Data(try await request.body.collect(upTo: .max).readableBytesView)
}
