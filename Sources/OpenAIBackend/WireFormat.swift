import LanguageModels

// The JSON shapes of OpenAI's chat-completions API, limited to the fields we send or read.
// Every field we read is optional: servers (vLLM, llama.cpp server, Ollama) differ in what they
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

    enum CodingKeys: String, CodingKey {
        case model, messages, temperature, seed, stop, stream
        case maxTokens = "max_tokens", topP = "top_p", topK = "top_k", minP = "min_p"
        case repetitionPenalty = "repetition_penalty"
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
    }

    /// The Double whose shortest decimal form is the Float's, so 0.7 goes on the wire as 0.7 and
    /// not 0.699999988079071.
    private static func shortest(_ value: Float) -> Double { Double("\(value)") ?? Double(value) }
}

/// The error body OpenAI and most compatible servers send: `{"error": {"message": ..., "type": ...}}`.
/// Some put a plain string in `error`, or `message` / `detail` at the top level.
struct ErrorReply: Decodable {
    struct Detail: Decodable {
        var message: String?
        var type: String?
    }

    var error: Detail?
    var message: String?
    var detail: String?

    enum CodingKeys: String, CodingKey { case error, message, detail }

    init(from decoder: any Decoder) throws {
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

/// The reply to a non-streamed chat completion.
struct ChatCompletionReply: Decodable {
    struct Choice: Decodable {
        struct Message: Decodable { var content: String? }
        var message: Message?
        var finishReason: String?
        enum CodingKeys: String, CodingKey { case message, finishReason = "finish_reason" }
    }

    struct Usage: Decodable {
        var promptTokens: Int?
        var completionTokens: Int?
        enum CodingKeys: String, CodingKey { case promptTokens = "prompt_tokens", completionTokens = "completion_tokens" }
    }

    var choices: [Choice]?
    var usage: Usage?
    var error: ErrorReply.Detail?
}

/// One `data:` event of a streamed chat completion.
struct ChatCompletionChunk: Decodable {
    struct Choice: Decodable {
        struct Delta: Decodable { var content: String? }
        var delta: Delta?
        var finishReason: String?
        enum CodingKeys: String, CodingKey { case delta, finishReason = "finish_reason" }
    }

    var choices: [Choice]?
    // vLLM and others report a failure during generation as a chunk with an `error` object.
    var error: ErrorReply.Detail?
}

/// The reply to `GET /models`.
struct ModelList: Decodable {
    struct Model: Decodable { var id: String }
    var data: [Model]
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
