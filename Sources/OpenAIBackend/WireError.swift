// OpenAI's error body, shared like the rest of WireFormat.swift: the client backend reads it
// from any OpenAI-compatible server, the guard server writes it.

/// The error body OpenAI and most compatible servers send: `{"error": {"message": ..., "type": ...}}`.
/// Some put a plain string in `error`, or `message` / `detail` at the top level. The guard server
/// sends it too (`{"error": {...}}` only).
public struct ErrorReply: Codable, Sendable {
    /// OpenAI's error object.
    public struct Detail: Codable, Sendable, Equatable {
        public var message: String?
        public var type: String?
        /// The request field at fault; written as null when there is none, as OpenAI does.
        public var param: String?
        /// A machine-readable code; written as null when there is none.
        public var code: String?

        public init(message: String?, type: String?, param: String? = nil, code: String? = nil) {
            self.message = message
            self.type = type
            self.param = param
            self.code = code
        }

        enum CodingKeys: String, CodingKey { case message, type, param, code }

        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            message = try c.decodeIfPresent(String.self, forKey: .message)
            type = try c.decodeIfPresent(String.self, forKey: .type)
            // Lenient: llama.cpp sends a number as `code`, and neither is needed to report the error.
            param = c.lenient(String.self, .param)
            code = c.lenient(String.self, .code)
        }

        public func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(message, forKey: .message)
            try c.encode(type, forKey: .type)
            try c.encode(param, forKey: .param)
            try c.encode(code, forKey: .code)
        }
    }

    /// OpenAI's shape (a plain string is read as its message).
    public var error: Detail?
    /// Top-level message, as some servers send instead.
    public var message: String?
    /// FastAPI's `detail`, as some servers send instead.
    public var detail: String?

    /// An error body; the guard server fills `error` only.
    public init(error: Detail?, message: String? = nil, detail: String? = nil) {
        self.error = error
        self.message = message
        self.detail = detail
    }

    enum CodingKeys: String, CodingKey { case error, message, detail }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        if let text = try? container.decode(String.self, forKey: .error) {
            error = Detail(message: text, type: nil)
        } else {
            error = try? container.decode(Detail.self, forKey: .error)
        }
        message = try? container.decode(String.self, forKey: .message)
        detail = try? container.decode(String.self, forKey: .detail)
    }

    /// "message [type]", or nil when the body carried no message.
    var summary: String? {
        guard let text = error?.message ?? message ?? detail else { return nil }
        if let type = error?.type, !type.isEmpty { return "\(text) [\(type)]" }
        return text
    }
}
