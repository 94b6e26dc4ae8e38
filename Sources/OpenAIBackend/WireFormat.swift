public import LanguageModels

// The JSON shapes of OpenAI's chat-completions API, limited to the fields we send or read: one set
// for both sides, the client backend (which decodes replies) and the guard server (which encodes
// them). Every field is optional: servers (vLLM, llama.cpp server, Ollama) differ in what they
// leave out, and a missing field is better reported by the caller that needs it.

/// The body of `POST /chat/completions`.
struct ChatCompletionRequest: Encodable {
    struct Message: Encodable {
        var role: String
        var content: String
    }

    var model: String
    var messages: [Message]
    var maxTokens: Int
    var temperature: Double
    var topP: Double
    var seed: UInt64?
    var stop: [String]?
    var stream: Bool
    // Not OpenAI fields, but vLLM and llama.cpp server read them; sent only when not "off", so that
    // strict servers that reject unknown fields still accept default parameters.
    var topK: Int?
    var minP: Double?
    var repetitionPenalty: Double?
    /// Sent only when `GenerationParameters.topLogProbs` asks for log-probabilities.
    var logprobs: Bool?
    var topLogprobs: Int?

    enum CodingKeys: String, CodingKey {
        case model, messages, temperature, seed, stop, stream, logprobs
        case maxTokens = "max_tokens", topP = "top_p", topK = "top_k", minP = "min_p"
        case repetitionPenalty = "repetition_penalty", topLogprobs = "top_logprobs"
    }

    init(model: String, messages: [ChatMessage], parameters: GenerationParameters, stream: Bool) {
        self.model = model
        self.messages = messages.map { Message(role: $0.role.rawValue, content: $0.content) }
        self.maxTokens = parameters.maxTokens
        self.temperature = Self.shortest(parameters.temperature)
        self.topP = Self.shortest(parameters.topP)
        self.seed = parameters.seed
        self.stop = parameters.stop.isEmpty ? nil : parameters.stop
        self.stream = stream
        self.topK = parameters.topK > 0 ? parameters.topK : nil
        self.minP = parameters.minP > 0 ? Self.shortest(parameters.minP) : nil
        self.repetitionPenalty = parameters.repetitionPenalty != 1 ? Self.shortest(parameters.repetitionPenalty) : nil
        self.logprobs = parameters.topLogProbs != nil ? true : nil
        self.topLogprobs = parameters.topLogProbs
    }

    /// The Double whose shortest decimal form is the Float's, so 0.7 goes on the wire as 0.7 and
    /// not 0.699999988079071.
    private static func shortest(_ value: Float) -> Double { Double("\(value)") ?? Double(value) }
}

/// The ValueAlign guard's extension of a reply, its `valuealign` field: what the guard decided
/// (no vectors: those stay in the audit log). Other servers do not send it.
public struct GuardAnnotation: Codable, Sendable, Equatable {
    /// The request's id, as in the `X-Request-Id` header and the audit row.
    public var requestID: String
    /// allow, flag, revise or block.
    public var action: String
    /// Crossed thresholds and notes ("revised in 1 round").
    public var reasons: [String]
    /// The policy's name.
    public var policy: String

    /// The decision as the guard reports it.
    public init(requestID: String, action: String, reasons: [String], policy: String) {
        self.requestID = requestID
        self.action = action
        self.reasons = reasons
        self.policy = policy
    }

    enum CodingKeys: String, CodingKey { case requestID = "request_id", action, reasons, policy }
}

/// The token counts of a reply.
public struct Usage: Codable, Sendable, Equatable {
    public var promptTokens: Int?
    public var completionTokens: Int?
    /// Not read by the client backend (some servers leave it out).
    public var totalTokens: Int?

    /// Token counts as a reply carries them.
    public init(promptTokens: Int?, completionTokens: Int?, totalTokens: Int?) {
        self.promptTokens = promptTokens
        self.completionTokens = completionTokens
        self.totalTokens = totalTokens
    }

    enum CodingKeys: String, CodingKey { case promptTokens = "prompt_tokens", completionTokens = "completion_tokens", totalTokens = "total_tokens" }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        promptTokens = try c.decodeIfPresent(Int.self, forKey: .promptTokens)
        completionTokens = try c.decodeIfPresent(Int.self, forKey: .completionTokens)
        totalTokens = c.lenient(Int.self, .totalTokens)
    }
}

/// A message of a chat completion reply, or what one streamed chunk adds to it (OpenAI's
/// `message` and `delta` have the same two fields). Unset fields are left out of the JSON; `role`
/// is read leniently, `content` strictly (the client uses it).
public struct ChatCompletionMessage: Codable, Sendable, Equatable {
    public var role: String?
    public var content: String?
    public init(role: String? = nil, content: String? = nil) {
        self.role = role
        self.content = content
    }
    enum CodingKeys: String, CodingKey { case role, content }
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        role = c.lenient(String.self, .role)
        content = try c.decodeIfPresent(String.self, forKey: .content)
    }
}

/// The reply to a non-streamed chat completion (`chat.completion`): what the client backend
/// reads, and what the guard server writes.
public struct ChatCompletionReply: Codable, Sendable {
    /// The assistant's message.
    public typealias Message = ChatCompletionMessage

    /// One answer; the guard and the client use only the first (n = 1).
    public struct Choice: Codable, Sendable {
        public var index: Int?
        public var message: Message?
        /// OpenAI's `finish_reason`: stop, length, content_filter...
        public var finishReason: String?
        /// The answer tokens' log-probabilities, when the request asked for them.
        public var logprobs: LogProbs?
        /// The first choice by default.
        public init(index: Int? = 0, message: Message?, finishReason: String?, logprobs: LogProbs? = nil) {
            self.index = index
            self.message = message
            self.finishReason = finishReason
            self.logprobs = logprobs
        }
        enum CodingKeys: String, CodingKey { case index, message, finishReason = "finish_reason", logprobs }
        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            index = c.lenient(Int.self, .index)
            message = try c.decodeIfPresent(Message.self, forKey: .message)
            finishReason = try c.decodeIfPresent(String.self, forKey: .finishReason)
            // Servers differ in what they put here; an unexpected shape is read as none.
            logprobs = c.lenient(LogProbs.self, .logprobs)
        }
    }

    /// "chatcmpl-..." (the guard: "chatcmpl-" and the request id).
    public var id: String?
    /// "chat.completion".
    public var object: String?
    /// Unix seconds.
    public var created: Int?
    public var model: String?
    public var choices: [Choice]?
    public var usage: Usage?
    /// Some servers answer 200 with an error object instead of choices.
    public var error: ErrorReply.Detail?
    /// The guard's decision, in replies from a ValueAlign guard.
    public var valuealign: GuardAnnotation?

    /// A reply as the guard writes it.
    public init(id: String?, object: String? = "chat.completion", created: Int?, model: String?, choices: [Choice]?, usage: Usage?,
                error: ErrorReply.Detail? = nil, valuealign: GuardAnnotation? = nil) {
        self.id = id
        self.object = object
        self.created = created
        self.model = model
        self.choices = choices
        self.usage = usage
        self.error = error
        self.valuealign = valuealign
    }

    enum CodingKeys: String, CodingKey { case id, object, created, model, choices, usage, error, valuealign }

    /// Strict on what the client backend uses (choices, usage, error), lenient on the rest, so
    /// that a server writing an odd `created` or `id` still works.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        id = c.lenient(String.self, .id)
        object = c.lenient(String.self, .object)
        created = c.lenient(Int.self, .created)
        model = c.lenient(String.self, .model)
        choices = try c.decodeIfPresent([Choice].self, forKey: .choices)
        usage = try c.decodeIfPresent(Usage.self, forKey: .usage)
        error = try c.decodeIfPresent(ErrorReply.Detail.self, forKey: .error)
        valuealign = c.lenient(GuardAnnotation.self, .valuealign)
    }
}

/// OpenAI's `choices[i].logprobs`: one entry per answer token.
public struct LogProbs: Codable, Sendable, Equatable {
    /// One answer token (`token`, `logprob`, `bytes`) and its `top_logprobs` alternatives.
    public struct Entry: Codable, Sendable, Equatable {
        public var token: String
        public var logprob: Double
        public var bytes: [UInt8]?
        public var topLogprobs: [Alternative]?
        enum CodingKeys: String, CodingKey { case token, logprob, bytes, topLogprobs = "top_logprobs" }
        public init(token: String, logprob: Double, bytes: [UInt8]?, topLogprobs: [Alternative]?) {
            self.token = token
            self.logprob = logprob
            self.bytes = bytes
            self.topLogprobs = topLogprobs
        }
    }
    public struct Alternative: Codable, Sendable, Equatable {
        public var token: String
        public var logprob: Double
        public var bytes: [UInt8]?
        public init(token: String, logprob: Double, bytes: [UInt8]?) {
            self.token = token
            self.logprob = logprob
            self.bytes = bytes
        }
    }
    public var content: [Entry]?
    public init(content: [Entry]?) { self.content = content }

    /// The wire form of a backend's token log-probabilities.
    public init(_ tokens: [TokenLogProb]) {
        content = tokens.map { t in
            Entry(token: t.token, logprob: t.logProb, bytes: t.bytes,
                  topLogprobs: t.top.map { Alternative(token: $0.token, logprob: $0.logProb, bytes: $0.bytes) })
        }
    }

    /// The backend's form (nil without `content`); a token without bytes gets its text's UTF-8.
    public var tokens: [TokenLogProb]? {
        content?.map { e in
            TokenLogProb(token: e.token, logProb: e.logprob, bytes: e.bytes ?? Array(e.token.utf8),
                         top: (e.topLogprobs ?? []).map { .init(token: $0.token, logProb: $0.logprob, bytes: $0.bytes ?? Array($0.token.utf8)) })
        }
    }
}

/// One `data:` event of a streamed chat completion (`chat.completion.chunk`).
public struct ChatCompletionChunk: Codable, Sendable {
    /// What the chunk adds: the role (first chunk), a text piece, or nothing (last chunk).
    public typealias Delta = ChatCompletionMessage

    /// The first (only) choice's piece.
    public struct Choice: Codable, Sendable {
        public var index: Int?
        public var delta: Delta?
        /// nil until the last chunk.
        public var finishReason: String?
        /// The first choice by default.
        public init(index: Int? = 0, delta: Delta?, finishReason: String?) {
            self.index = index
            self.delta = delta
            self.finishReason = finishReason
        }
        enum CodingKeys: String, CodingKey { case index, delta, finishReason = "finish_reason" }
        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            index = c.lenient(Int.self, .index)
            delta = try c.decodeIfPresent(Delta.self, forKey: .delta)
            finishReason = try c.decodeIfPresent(String.self, forKey: .finishReason)
        }
        public func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encodeIfPresent(index, forKey: .index)
            try c.encodeIfPresent(delta, forKey: .delta)
            try c.encode(finishReason, forKey: .finishReason)  // null while streaming, as OpenAI sends it
        }
    }

    /// The same for every chunk of a stream.
    public var id: String?
    /// "chat.completion.chunk".
    public var object: String?
    /// Unix seconds.
    public var created: Int?
    public var model: String?
    public var choices: [Choice]?
    /// vLLM and others report a failure during generation as a chunk with an `error` object.
    public var error: ErrorReply.Detail?
    /// The guard's decision, on the last chunk of a guard's stream.
    public var valuealign: GuardAnnotation?

    /// A chunk as the guard writes it.
    public init(id: String?, object: String? = "chat.completion.chunk", created: Int?, model: String?, choices: [Choice]?,
                error: ErrorReply.Detail? = nil, valuealign: GuardAnnotation? = nil) {
        self.id = id
        self.object = object
        self.created = created
        self.model = model
        self.choices = choices
        self.error = error
        self.valuealign = valuealign
    }

    enum CodingKeys: String, CodingKey { case id, object, created, model, choices, error, valuealign }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        id = c.lenient(String.self, .id)
        object = c.lenient(String.self, .object)
        created = c.lenient(Int.self, .created)
        model = c.lenient(String.self, .model)
        choices = try c.decodeIfPresent([Choice].self, forKey: .choices)
        error = try c.decodeIfPresent(ErrorReply.Detail.self, forKey: .error)
        valuealign = c.lenient(GuardAnnotation.self, .valuealign)
    }
}

/// The reply to `GET /models`.
public struct ModelList: Codable, Sendable {
    /// One model the server serves.
    public struct Model: Codable, Sendable {
        /// The name to put in a request's `model`.
        public var id: String
        /// "model".
        public var object: String?
        /// Unix seconds.
        public var created: Int?
        public var ownedBy: String?
        /// A model entry as the guard lists its upstream.
        public init(id: String, object: String? = "model", created: Int?, ownedBy: String?) {
            self.id = id
            self.object = object
            self.created = created
            self.ownedBy = ownedBy
        }
        enum CodingKeys: String, CodingKey { case id, object, created, ownedBy = "owned_by" }
        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            id = try c.decode(String.self, forKey: .id)
            object = c.lenient(String.self, .object)
            created = c.lenient(Int.self, .created)
            ownedBy = c.lenient(String.self, .ownedBy)
        }
    }

    /// "list".
    public var object: String?
    public var data: [Model]

    /// A model list as the guard writes it.
    public init(object: String? = "list", data: [Model]) {
        self.object = object
        self.data = data
    }

    enum CodingKeys: String, CodingKey { case object, data }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        object = c.lenient(String.self, .object)
        data = try c.decode([Model].self, forKey: .data)
    }
}

extension KeyedDecodingContainer {
    /// The field, or nil when it is missing, null or of another type: a field the client backend
    /// does not read must not make a reply unreadable.
    func lenient<T: Decodable>(_ type: T.Type, _ key: Key) -> T? {
        (try? decodeIfPresent(type, forKey: key)) ?? nil
    }
}

extension FinishReason {
    /// OpenAI's `finish_reason`, mapped onto ours: "length" (and llama.cpp's "max_tokens") mean the
    /// token budget ran out; everything else ("stop", "eos", "content_filter", "tool_calls", none)
    /// means the model or the server ended the answer.
    init(openAI value: String?) {
        switch value?.lowercased() {
        case "length", "max_tokens", "max_length": self = .length
        default: self = .stop
        }
    }
}
