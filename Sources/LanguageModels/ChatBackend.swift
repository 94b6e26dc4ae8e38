/// Why a generation ended.
public enum FinishReason: String, Sendable, Codable, Equatable {
    /// An end-of-sequence token or a stop string.
    case stop
    /// `maxTokens` was reached.
    case length
}

/// A finished chat completion.
public struct ChatCompletion: Sendable, Codable, Equatable {
    public var text: String
    public var finishReason: FinishReason
    public var promptTokens: Int
    public var completionTokens: Int
    /// What an `ActivationObserver` on a local backend read from the answer's own activations
    /// while it was generated (e.g. probe scores); nil without one, and from remote backends.
    public var monitorReading: [Double]?
    /// Each answer token's log-probability and alternatives when `GenerationParameters.topLogProbs`
    /// asked for them and the backend reports them (local models do; remote servers when they
    /// support OpenAI's `logprobs`); nil otherwise.
    public var logProbs: [TokenLogProb]?

    public init(text: String, finishReason: FinishReason, promptTokens: Int, completionTokens: Int, monitorReading: [Double]? = nil,
                logProbs: [TokenLogProb]? = nil) {
        self.text = text
        self.finishReason = finishReason
        self.promptTokens = promptTokens
        self.completionTokens = completionTokens
        self.monitorReading = monitorReading
        self.logProbs = logProbs
    }
}

/// Something that answers conversations: a local model or a remote OpenAI-compatible server.
///
/// Every alignment feature (sampling responses, judges, critique-and-revise) talks to models
/// through this protocol, so each works the same against the embedded model, vLLM, llama.cpp
/// server, Ollama or a hosted API.
public protocol ChatBackend: Sendable {
    /// The model's name as the backend reports it.
    var modelName: String { get }

    /// The assistant's answer to `messages`.
    func complete(_ messages: [ChatMessage], parameters: GenerationParameters) async throws -> ChatCompletion

    /// Answers to many conversations. Local backends batch them; remote ones send them concurrently.
    func completeBatch(_ conversations: [[ChatMessage]], parameters: GenerationParameters) async throws -> [ChatCompletion]

    /// The answer as it is produced, in text pieces that concatenate to the full answer.
    func stream(_ messages: [ChatMessage], parameters: GenerationParameters) -> AsyncThrowingStream<String, any Error>
}

extension ChatBackend {
    /// One request after another; backends override this with real batching or concurrency.
    public func completeBatch(_ conversations: [[ChatMessage]], parameters: GenerationParameters) async throws -> [ChatCompletion] {
        var results: [ChatCompletion] = []
        for messages in conversations { results.append(try await complete(messages, parameters: parameters)) }
        return results
    }
}
