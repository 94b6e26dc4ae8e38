import Foundation
public import LanguageModels
public import ValueSpace
public import MLXEngine
import MLXNN

/// Group relative policy optimisation (Shao et al. 2024, DeepSeekMath), as TRL's `GRPOTrainer`:
/// for every prompt, sample a group of k answers from the policy; score them with a reward;
/// the advantage of answer i is (r_i - mean(r)) / (std(r) + eps) within its group; maximise the
/// clipped surrogate min(ρ A, clip(ρ, 1-ε, 1+ε) A) per token, ρ = π(token) / π_old(token), minus
/// β times the k3 estimate of KL(π || π_ref): exp(ref - logp) - (ref - logp) - 1 (Schulman 2020).
///
/// The reference is the base model (adapters switched off). With one update per batch
/// (`iterations` = 1) π_old is π itself, detached, so ρ = 1 and the clip only acts from the
/// second update on. Sampling uses the runner's per-step seed, so a resumed run samples the same answers.
public final class GRPOObjective: TrainingObjective {
    /// How per-token losses are averaged.
    public enum LossNormalization: String, Sendable, Codable, CaseIterable {
        /// Over all answer tokens of the micro-batch (TRL "bnpo"; equal to its default "dapo"
        /// with one micro-batch per step). Long and short answers weigh by their tokens.
        case token
        /// Over each answer's tokens, then over answers (TRL "grpo", the paper's formula).
        case sequence
    }

    /// GRPO settings; defaults are TRL's `GRPOConfig` unless noted.
    public struct Options: Sendable, Equatable {
        /// Answers sampled per prompt, k (`num_generations` = 8).
        public var groupSize = 8
        /// Sampling temperature (`temperature` = 1.0), top-k (`top_k` = 0, off) and top-p (`top_p` = 1.0, off).
        public var temperature: Float = 1
        public var topK = 0
        public var topP: Float = 1
        /// Longest sampled answer in tokens (`max_completion_length` = 256).
        public var maxCompletionTokens = 256
        /// Prompts are cut to their last this many tokens (`max_prompt_length` = 512 in TRL
        /// releases that had it).
        public var maxPromptTokens = 512
        /// Clip range of the ratio: [1 - epsilon, 1 + epsilonHigh] (`epsilon` = 0.2;
        /// `epsilon_high` = None, i.e. the same as epsilon).
        public var epsilon: Float = 0.2
        public var epsilonHigh: Float? = nil
        /// Weight β of the k3 KL estimate to the reference. 0.04 is the DeepSeekMath paper's value
        /// and TRL's default in its first GRPO releases (0.14-0.15); TRL has since moved to 0.0,
        /// which drops the reference. We keep a KL term: BaseAlign stays near the base model.
        public var beta: Float = 0.04
        /// Optimiser updates per sampled batch, μ (`num_iterations` = 1).
        public var iterations = 1
        /// Divide advantages by the group's standard deviation (`scale_rewards` = "group").
        public var scaleRewards = true
        /// Added to the standard deviation, (r - mean) / (std + eps) (TRL uses 1e-4).
        public var advantageEpsilon: Float = 1e-4
        /// Token or sequence averaging (see `LossNormalization`; TRL's default "dapo" = `.token` here).
        public var normalization: LossNormalization = .token
        public init() {}
    }

    public struct Batch {
        public var tokens: TokenBatch
        /// The answers' tokens, packed: per-token values below are [T] in this order.
        public var responses: ResponseTokens
        /// One advantage per answer row, [N], and spread over its tokens, [T].
        public var advantages: MLXArray
        public var tokenAdvantages: MLXArray
        /// Per-token log-probabilities [T] of the reference (nil when β = 0) and of the
        /// sampling policy (nil with one update per batch).
        public var reference: MLXArray?
        public var old: MLXArray?
        /// The sampled answers and their rewards (for logs and tests).
        public var responseTexts: [String]
        public var rewards: [Double]

        public init(tokens: TokenBatch, advantages: [Float], reference: MLXArray?, old: MLXArray?, responseTexts: [String] = [], rewards: [Double] = []) throws {
            guard advantages.count == tokens.promptLengths.count else {
                throw TrainingError.invalidConfiguration(field: "advantages", message: "\(advantages.count) advantages for \(tokens.promptLengths.count) answers")
            }
            self.tokens = tokens
            responses = try ResponseTokens(tokens)
            self.advantages = MLXArray(advantages)
            tokenAdvantages = try responses.perToken(self.advantages)
            self.reference = reference
            self.old = old
            self.responseTexts = responseTexts
            self.rewards = rewards
            try eval(tokenAdvantages)
        }
    }

    public let loaded: LoadedModel
    public let prompts: [[ChatMessage]]
    public let reward: RewardFunction
    public let options: Options
    let encoder: ChatEncoder

    /// `batchSize` of the runner counts prompts; each brings `groupSize` answers.
    public init(model loaded: LoadedModel, prompts: [[ChatMessage]], reward: @escaping RewardFunction, options: Options = Options()) {
        self.loaded = loaded
        self.prompts = prompts
        self.reward = reward
        self.options = options
        encoder = ChatEncoder(loaded)
    }

    /// BaseAlign: the reward -d(v, t) and its KL weight λ as β.
    public convenience init(model loaded: LoadedModel, prompts: [[ChatMessage]], baseAlign: BaseAlignReward, options: Options = Options()) {
        var o = options
        o.beta = Float(baseAlign.klWeight)
        self.init(model: loaded, prompts: prompts, reward: baseAlign.function, options: o)
    }

    /// Runner settings with TRL's `GRPOConfig` learning rate (1e-6). LoRA runs usually want far more.
    public static var defaultParameters: TrainingRunner<GRPOObjective>.Parameters {
        var p = TrainingRunner<GRPOObjective>.Parameters()
        p.learningRate = 1e-6
        return p
    }

    public var name: String { "grpo" }
    public var model: any CausalLanguageModel { loaded.model }
    public var exampleCount: Int { prompts.count }
    public var updatesPerBatch: Int { options.iterations }

    public func validate() throws {
        func bad(_ field: String, _ message: String) -> TrainingError { .invalidConfiguration(field: field, message: message) }
        let o = options
        if o.groupSize < 2 { throw bad("groupSize", "needs at least 2 answers per prompt to compare, got \(o.groupSize)") }
        if !(o.temperature > 0) || !o.temperature.isFinite { throw bad("temperature", "must be a finite number > 0 (GRPO samples), got \(o.temperature)") }
        if o.maxCompletionTokens < 1 { throw bad("maxCompletionTokens", "must be at least 1, got \(o.maxCompletionTokens)") }
        if o.maxPromptTokens < 1 { throw bad("maxPromptTokens", "must be at least 1, got \(o.maxPromptTokens)") }
        if !(o.epsilon > 0 && o.epsilon < 1) { throw bad("epsilon", "must be in (0, 1), got \(o.epsilon)") }
        if let h = o.epsilonHigh, !(h > 0) { throw bad("epsilonHigh", "must be > 0, got \(h)") }
        if !(o.beta >= 0) || !o.beta.isFinite { throw bad("beta", "must be a finite number >= 0, got \(o.beta)") }
        if o.iterations < 1 { throw bad("iterations", "must be at least 1, got \(o.iterations)") }
        if !(o.advantageEpsilon > 0) { throw bad("advantageEpsilon", "must be > 0, got \(o.advantageEpsilon)") }
        if o.maxCompletionTokens >= model.configuration.maxPositionEmbeddings {
            throw bad("maxCompletionTokens", "\(o.maxCompletionTokens) answer tokens leave no room for a prompt in the model's context of \(model.configuration.maxPositionEmbeddings)")
        }
        if let i = prompts.firstIndex(where: { $0.isEmpty }) { throw TrainingError.insufficientData("grpo: prompt \(i) has no messages") }
        try GenerationParameters(maxTokens: o.maxCompletionTokens, temperature: o.temperature, topK: o.topK, topP: o.topP).validate()
    }

    /// Group-normalised advantages, prompt-major: rewards[g * k + j] is answer j of prompt g.
    public static func advantages(_ rewards: [Double], groupSize k: Int, scale: Bool, epsilon: Double) -> [Double] {
        var result = [Double](repeating: 0, count: rewards.count)
        for start in stride(from: 0, to: rewards.count, by: k) {
            let group = rewards[start..<min(start + k, rewards.count)]
            let mean = group.reduce(0, +) / Double(group.count)
            // Sample standard deviation (n - 1), as torch.std in TRL.
            let variance = group.count > 1 ? group.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(group.count - 1) : 0
            for (i, r) in zip(group.indices, group) { result[i] = scale ? (r - mean) / (variance.squareRoot() + epsilon) : r - mean }
        }
        return result
    }

    public func prepare(_ indices: [Int], seed: UInt64) throws -> PreparedBatch<Batch> {
        let k = options.groupSize
        var promptIds: [[Int]] = [], conversations: [[ChatMessage]] = []
        for i in indices {
            // The latest turns, and room for the answer in the model's context.
            let room = min(options.maxPromptTokens, model.configuration.maxPositionEmbeddings - options.maxCompletionTokens)
            let ids = Array(encoder.prompt(prompts[i]).suffix(room))
            for _ in 0..<k {
                promptIds.append(ids)
                conversations.append(prompts[i])
            }
        }
        let generation = GenerationParameters(maxTokens: options.maxCompletionTokens, temperature: options.temperature,
                                              topK: options.topK, topP: options.topP, seed: seed)
        let samples = try loaded.makeGenerator().generate(promptIds, parameters: generation)
        let answers = samples.map { encoder.ending($0.tokens, finished: $0.finishReason == .stop) }
        let texts = samples.map(\.text)
        let rewardFunction = reward, asked = conversations
        let rewards = try blockingAwait { try await rewardFunction(asked, texts) }
        guard rewards.count == texts.count else {
            throw TrainingError.reward("returned \(rewards.count) rewards for \(texts.count) answers")
        }
        if let bad = rewards.firstIndex(where: { !$0.isFinite }) {
            throw TrainingError.reward("reward \(rewards[bad]) for answer \(bad) is not a finite number")
        }
        let advantages = Self.advantages(rewards, groupSize: k, scale: options.scaleRewards, epsilon: Double(options.advantageEpsilon))

        // Answers that stopped at once still train their end-of-turn token; none can be empty.
        let tokens = try TokenBatch(prompts: promptIds, responses: answers.map { $0.isEmpty ? [encoder.endOfTurn ?? loaded.tokenizer.padTokenId] : $0 },
                                    padTokenId: loaded.tokenizer.padTokenId)
        let packed = try ResponseTokens(tokens)
        var reference: MLXArray?, old: MLXArray?
        if options.beta > 0 { reference = try model.withAdaptersDisabled { try model.responseLogProbs(tokens, packed, temperature: options.temperature) } }
        if options.iterations > 1 { old = try model.responseLogProbs(tokens, packed, temperature: options.temperature) }
        try eval([reference, old].compactMap { $0 })

        var groupSpread = 0.0, zeroSpread = 0.0
        for start in stride(from: 0, to: rewards.count, by: k) {
            let g = rewards[start..<(start + k)]
            let mean = g.reduce(0, +) / Double(k)
            let sd = (g.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(k - 1)).squareRoot()
            groupSpread += sd
            if sd == 0 { zeroSpread += 1 }
        }
        let groups = Double(rewards.count / k)
        let metrics: [String: Double] = [
            "reward": rewards.reduce(0, +) / Double(rewards.count),
            "reward_std": groupSpread / groups,
            "frac_reward_zero_std": zeroSpread / groups,
            "completion_length": Double(answers.reduce(0) { $0 + $1.count }) / Double(answers.count),
        ]
        let batch = try Batch(tokens: tokens, advantages: advantages.map(Float.init), reference: reference, old: old, responseTexts: texts, rewards: rewards)
        return PreparedBatch(batch: batch, tokens: zip(tokens.promptLengths, tokens.responseLengths).reduce(0) { $0 + $1.0 + $1.1 }, metrics: metrics)
    }

    /// Per-token log-probabilities [T] (packed answer tokens) of the reference model: the
    /// adapters switched off, logits divided by the sampling temperature as TRL does.
    public func referenceLogProbs(_ tokens: TokenBatch) throws -> MLXArray {
        let packed = try ResponseTokens(tokens)
        return try model.withAdaptersDisabled { try model.responseLogProbs(tokens, packed, temperature: options.temperature) }
    }

    public func loss(_ batch: Batch) throws -> ObjectiveOutput {
        let packed = batch.responses
        let logp = try model.responseLogProbs(batch.tokens, packed, temperature: options.temperature)
        let old = try batch.old ?? logp.stopGradient()
        let ratio = try (logp - old).exp()
        let a = batch.tokenAdvantages
        let low = 1 - options.epsilon, high = 1 + (options.epsilonHigh ?? options.epsilon)
        let surrogate = try minimum(ratio * a, ratio.clip(min: low, max: high) * a)
        var perToken = try -surrogate
        var metrics: [String: MLXArray] = [:]
        if let reference = batch.reference, options.beta > 0 {
            let d = try reference - logp
            let kl = try d.exp() - d - 1
            perToken = try perToken + kl * options.beta
            metrics["kl"] = try kl.mean()
        }
        let loss: MLXArray = switch options.normalization {
        case .token: try perToken.mean()
        case .sequence: try (packed.rowSums(perToken) / packed.rowLengths).mean()
        }
        // Tokens whose ratio left the clip range in the direction the advantage pushes.
        let clippedLow = try (ratio .< low).logicalAnd(a .< Float(0))
        let clippedHigh = try (ratio .> high).logicalAnd(a .> Float(0))
        metrics["clip_ratio"] = try clippedLow.logicalOr(clippedHigh).asType(.float32).mean()
        return ObjectiveOutput(loss: loss, metrics: metrics)
    }
}
