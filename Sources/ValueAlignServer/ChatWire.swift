public import Foundation
public import LanguageModels

/// A chat-completions request as the guard reads it: OpenAI's field names, strict types, and
/// errors that name the field (`messages[2].content`). Fields the guard does not use (`user`,
/// `response_format`...) are ignored, as OpenAI-compatible servers commonly do. `logprobs` with
/// `top_logprobs` is honoured in non-streamed replies when the upstream reports them.
public struct ChatRequest: Sendable, Equatable {
    public var model: String?
    public var messages: [ChatMessage]
    public var parameters: GenerationParameters
    public var stream: Bool
    /// `stream_options.include_usage`: a last chunk with token counts.
    public var includeUsage: Bool

    /// Most messages in one request.
    public static let maxMessages = 512

    /// Parses a request body; throws `APIError` 400 naming the field at fault.
    public static func parse(_ data: Data, defaultMaxTokens: Int) throws(APIError) -> ChatRequest {
        let object = try jsonObject(data)
        var request = ChatRequest(model: nil, messages: [], parameters: GenerationParameters(maxTokens: defaultMaxTokens), stream: false, includeUsage: false)
        request.model = try optionalString(object, "model")
        guard let rawMessages = object["messages"] else { throw .invalid("missing required field 'messages'", param: "messages") }
        guard case let .array(list) = rawMessages else { throw wrongType("messages", "an array", rawMessages) }
        guard !list.isEmpty else { throw .invalid("'messages' must not be empty", param: "messages") }
        guard list.count <= maxMessages else { throw .invalid("'messages' has \(list.count) entries; at most \(maxMessages)", param: "messages") }
        for (i, raw) in list.enumerated() { request.messages.append(try message(raw, index: i)) }

        var p = request.parameters
        let newName = try optionalInt(object, "max_completion_tokens"), oldName = try optionalInt(object, "max_tokens")
        if let n = newName ?? oldName {
            guard n >= 1 else { throw .invalid("'max_tokens' must be >= 1, got \(n)", param: "max_tokens") }
            p.maxTokens = n
        }
        if let t = try optionalNumber(object, "temperature") {
            guard t >= 0, t <= 2 else { throw .invalid("'temperature' must be in [0, 2], got \(t)", param: "temperature") }
            p.temperature = Float(t)
        }
        if let t = try optionalNumber(object, "top_p") {
            guard t > 0, t <= 1 else { throw .invalid("'top_p' must be in (0, 1], got \(t)", param: "top_p") }
            p.topP = Float(t)
        }
        if let k = try optionalInt(object, "top_k") {
            guard k >= 0 else { throw .invalid("'top_k' must be >= 0, got \(k)", param: "top_k") }
            p.topK = k
        }
        if let m = try optionalNumber(object, "min_p") {
            guard m >= 0, m < 1 else { throw .invalid("'min_p' must be in [0, 1), got \(m)", param: "min_p") }
            p.minP = Float(m)
        }
        if let r = try optionalNumber(object, "repetition_penalty") {
            guard r > 0 else { throw .invalid("'repetition_penalty' must be > 0, got \(r)", param: "repetition_penalty") }
            p.repetitionPenalty = Float(r)
        }
        if let seed = try optionalInt(object, "seed") { p.seed = UInt64(bitPattern: Int64(seed)) }
        if let stop = object["stop"], stop != .null {
            if case let .string(one) = stop {
                p.stop = [one]
            } else if case .array = stop {
                p.stop = try stringArray(object, "stop")
            } else {
                throw wrongType("stop", "a string or an array of strings", stop)
            }
            guard p.stop.count <= 4, !p.stop.contains("") else { throw .invalid("'stop' takes at most 4 non-empty strings", param: "stop") }
        }
        if let n = try optionalInt(object, "n"), n != 1 {
            throw .invalid("only n = 1 is supported, got \(n)", param: "n")
        }
        let wantsLogProbs = try optionalBool(object, "logprobs") ?? false
        let top = try optionalInt(object, "top_logprobs")
        if let top {
            guard wantsLogProbs else { throw .invalid("'top_logprobs' needs 'logprobs': true", param: "top_logprobs") }
            guard (0...maxTopLogProbs).contains(top) else { throw .invalid("'top_logprobs' must be in 0...\(maxTopLogProbs), got \(top)", param: "top_logprobs") }
        }
        if wantsLogProbs { p.topLogProbs = top ?? 0 }
        request.parameters = p
        request.stream = try optionalBool(object, "stream") ?? false
        if request.stream && wantsLogProbs {
            throw .invalid("'logprobs' is not supported with 'stream': true; ask without streaming", param: "logprobs")
        }
        if let options = object["stream_options"], options != .null {
            guard case let .object(dict) = options else { throw wrongType("stream_options", "an object", options) }
            request.includeUsage = try optionalBool(dict, "include_usage", path: "stream_options.") ?? false
        }
        return request
    }

    /// The last user turn: what the input check and the evaluator's prompt read.
    public var lastUserText: String { messages.last(where: { $0.role == .user })?.content ?? "" }

    /// The assistant turn before the last user turn (the context of the user's words), or "".
    public var contextBeforeLastUser: String {
        guard let last = messages.lastIndex(where: { $0.role == .user }) else { return "" }
        return messages[..<last].last(where: { $0.role == .assistant })?.content ?? ""
    }

    static func message(_ raw: JSON, index i: Int) throws(APIError) -> ChatMessage {
        let field = "messages[\(i)]"
        guard case let .object(dict) = raw else { throw wrongType(field, "an object", raw) }
        guard let roleText = dict["role"] else { throw .invalid("missing required field '\(field).role'", param: "\(field).role") }
        guard case let .string(roleName) = roleText else { throw wrongType("\(field).role", "a string", roleText) }
        let role: ChatMessage.Role
        switch roleName {
        case "system", "developer": role = .system
        case "user": role = .user
        case "assistant": role = .assistant
        default: throw .invalid("'\(field).role' must be system, developer, user or assistant, got '\(roleName)'", param: "\(field).role")
        }
        guard let content = dict["content"], content != .null else {
            throw .invalid("missing required field '\(field).content'", param: "\(field).content")
        }
        if case let .string(text) = content { return ChatMessage(role: role, content: text) }
        // The newer array form: [{"type": "text", "text": ...}, ...]; only text parts are accepted.
        guard case let .array(parts) = content else { throw wrongType("\(field).content", "a string or an array of text parts", content) }
        var text = ""
        for (j, part) in parts.enumerated() {
            guard case let .object(p) = part, p["type"] == .string("text"), case let .string(t)? = p["text"] else {
                throw .invalid("'\(field).content[\(j)]' must be {\"type\": \"text\", \"text\": string}", param: "\(field).content[\(j)]")
            }
            text += t
        }
        return ChatMessage(role: role, content: text)
    }
}

// MARK: - JSON helpers shared by the endpoints

/// A JSON value that keeps booleans, numbers and strings apart (JSONSerialization's NSNumber
/// does not, on Linux), so that a wrong type is reported as such.
enum JSON: Decodable, Sendable, Equatable {
    case null, bool(Bool), number(Double), string(String), array([JSON]), object([String: JSON])

    init(from decoder: any Decoder) throws {
        let c = try decoder.singleValueContainer()
        if c.decodeNil() { self = .null }
        else if let b = try? c.decode(Bool.self) { self = .bool(b) }
        else if let d = try? c.decode(Double.self) { self = .number(d) }
        else if let s = try? c.decode(String.self) { self = .string(s) }
        else if let a = try? c.decode([JSON].self) { self = .array(a) }
        else { self = .object(try c.decode([String: JSON].self)) }
    }

    var typeName: String {
        switch self {
        case .null: "null"
        case .bool: "a boolean"
        case .number: "a number"
        case .string: "a string"
        case .array: "an array"
        case .object: "an object"
        }
    }
}

/// The body as a JSON object, with 400s that say whether the bytes, the JSON or its shape is wrong.
func jsonObject(_ data: Data) throws(APIError) -> [String: JSON] {
    guard !data.isEmpty else { throw .invalid("the request body is empty; expected a JSON object") }
    guard String(validating: data, as: UTF8.self) != nil else { throw .invalid("the request body is not valid UTF-8") }
    let parsed: JSON
    do { parsed = try JSONDecoder().decode(JSON.self, from: data) } catch {
        throw .invalid("the request body is not valid JSON")
    }
    guard case let .object(object) = parsed else { throw .invalid("the request body must be a JSON object, got \(parsed.typeName)") }
    return object
}

func wrongType(_ field: String, _ expected: String, _ got: JSON) -> APIError {
    .invalid("'\(field)' must be \(expected), got \(got.typeName)", param: field)
}

func optionalString(_ object: [String: JSON], _ key: String, path: String = "") throws(APIError) -> String? {
    switch object[key] {
    case nil, .null?: return nil
    case let .string(s)?: return s
    case let other?: throw wrongType(path + key, "a string", other)
    }
}

func optionalBool(_ object: [String: JSON], _ key: String, path: String = "") throws(APIError) -> Bool? {
    switch object[key] {
    case nil, .null?: return nil
    case let .bool(b)?: return b
    case let other?: throw wrongType(path + key, "a boolean", other)
    }
}

func optionalNumber(_ object: [String: JSON], _ key: String, path: String = "") throws(APIError) -> Double? {
    switch object[key] {
    case nil, .null?: return nil
    case let .number(d)?: return d
    case let other?: throw wrongType(path + key, "a number", other)
    }
}

func optionalInt(_ object: [String: JSON], _ key: String, path: String = "") throws(APIError) -> Int? {
    guard let d = try optionalNumber(object, key, path: path) else { return nil }
    guard d == d.rounded(), abs(d) < 9e15 else { throw .invalid("'\(path)\(key)' must be an integer, got \(d)", param: path + key) }
    return Int(d)
}

/// A required array of strings.
func stringArray(_ object: [String: JSON], _ key: String) throws(APIError) -> [String] {
    guard let value = object[key] else { throw .invalid("missing required field '\(key)'", param: key) }
    guard case let .array(items) = value else { throw wrongType(key, "an array of strings", value) }
    var result: [String] = []
    for (i, item) in items.enumerated() {
        guard case let .string(s) = item else { throw wrongType("\(key)[\(i)]", "a string", item) }
        result.append(s)
    }
    return result
}
