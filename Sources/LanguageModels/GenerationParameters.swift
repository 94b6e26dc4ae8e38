/// How to sample a response. Defaults are greedy decoding of at most 256 tokens.
///
/// The filters apply in llama.cpp's and Hugging Face's order: repetition penalty on the raw
/// logits, then temperature, then top-k, top-p and min-p on the tempered distribution.
public struct GenerationParameters: Sendable, Codable, Equatable, Hashable {
    /// Most new tokens per sequence.
    public var maxTokens: Int
    /// 0 means greedy (argmax); otherwise logits are divided by it before sampling.
    public var temperature: Float
    /// Keep only the k most likely tokens (0 = off).
    public var topK: Int
    /// Keep the smallest set of tokens whose probability reaches p (1 = off).
    public var topP: Float
    /// Drop tokens whose probability is below minP times the most likely one's (0 = off).
    public var minP: Float
    /// CTRL-style penalty (> 1 discourages) on tokens seen in the last `repetitionContextSize`
    /// tokens of the sequence (1 = off).
    public var repetitionPenalty: Float
    public var repetitionContextSize: Int
    /// Same seed, same prompts, same parameters: same output. nil draws a seed from the system.
    public var seed: UInt64?
    /// Generation of a sequence stops when its text ends with one of these (the stop string is
    /// not part of the returned text).
    public var stop: [String]
    /// Record every generated token's log-probability and this many most likely alternatives
    /// (0...20, OpenAI's `top_logprobs`); nil records none.
    public var topLogProbs: Int?

    public init(
        maxTokens: Int = 256, temperature: Float = 0, topK: Int = 0, topP: Float = 1, minP: Float = 0,
        repetitionPenalty: Float = 1, repetitionContextSize: Int = 64, seed: UInt64? = nil, stop: [String] = [],
        topLogProbs: Int? = nil
    ) {
        self.maxTokens = maxTokens
        self.temperature = temperature
        self.topK = topK
        self.topP = topP
        self.minP = minP
        self.repetitionPenalty = repetitionPenalty
        self.repetitionContextSize = repetitionContextSize
        self.seed = seed
        self.stop = stop
        self.topLogProbs = topLogProbs
    }

    /// Greedy decoding.
    public static let greedy = GenerationParameters()

    /// Checks every field's range.
    public func validate() throws(LanguageModelError) {
        func bad(_ field: String, _ why: String) -> LanguageModelError { .invalidParameter(field: field, message: why) }
        if maxTokens < 0 { throw bad("maxTokens", "must be >= 0, got \(maxTokens)") }
        if !(temperature >= 0) || !temperature.isFinite { throw bad("temperature", "must be a finite number >= 0, got \(temperature)") }
        if topK < 0 { throw bad("topK", "must be >= 0, got \(topK)") }
        if !(topP > 0 && topP <= 1) { throw bad("topP", "must be in (0, 1], got \(topP)") }
        if !(minP >= 0 && minP < 1) { throw bad("minP", "must be in [0, 1), got \(minP)") }
        if !(repetitionPenalty > 0) || !repetitionPenalty.isFinite { throw bad("repetitionPenalty", "must be a finite number > 0, got \(repetitionPenalty)") }
        if repetitionContextSize < 0 { throw bad("repetitionContextSize", "must be >= 0, got \(repetitionContextSize)") }
        if stop.contains("") { throw bad("stop", "stop strings must not be empty") }
        if let k = topLogProbs, !(0...maxTopLogProbs).contains(k) { throw bad("topLogProbs", "must be in 0...\(maxTopLogProbs), got \(k)") }
    }
}
