public import Foundation
public import LanguageModels
public import ValueSpace
public import MLXEngine
public import MLXNN

/// A reward model: the language model (with a LoRA adapter) plus a scalar head on the final
/// hidden state of each sequence's last token, as Hugging Face's
/// `AutoModelForSequenceClassification(num_labels=1)` that TRL's `RewardTrainer` trains.
///
/// Saved as a folder: the adapter in PEFT's layout, `extra_parameters.safetensors` with the head
/// (`score.weight`, [1, hidden], the name Hugging Face gives it) and `reward_model.json`.
/// Not thread-safe; `rewardFunction` serialises its calls on a queue of its own. MLX streams
/// belong to threads: parameters must be evaluated (as loading and training leave them) before
/// the model is used from another thread.
public final class RewardModel: Module, @unchecked Sendable {
    @Child public var backbone: any CausalLanguageModel
    /// The head: hidden -> 1, no bias.
    @Child public var score: Linear
    public let loaded: LoadedModel
    let encoder: ChatEncoder
    let queue = DispatchQueue(label: "valuealign.reward-model")

    /// What `reward_model.json` records.
    struct Description: Codable {
        var format = "valuealign-reward-model"
        var version = 1
        var pooling = "last-token"
        var hidden_size: Int
        var base_fingerprint: String
    }

    static let descriptionFile = "reward_model.json"

    /// A reward model over `loaded.model` with a new head, normal(0, 0.02) as Hugging Face
    /// initialises linear layers (`initializer_range` = 0.02). The model gets no adapter here;
    /// the trainer attaches one.
    public init(_ loaded: LoadedModel, seed: UInt64 = 0) throws {
        let hidden = loaded.model.configuration.hiddenSize
        let head = Linear(weight: try MLXRandom.normal([1, hidden], std: 0.02, key: MLXRandom.key(seed)))
        // Evaluated now: MLX streams belong to threads, and a lazy array made here could not be
        // evaluated on the thread that trains or scores.
        try eval(head.weight)
        self.loaded = loaded
        encoder = ChatEncoder(loaded)
        _backbone = Child(wrappedValue: loaded.model, key: "backbone")
        _score = Child(wrappedValue: head, key: "score")
        super.init()
    }

    /// Loads a reward model saved by training: attaches its adapter to `base` (which must have
    /// none yet and be the base model it was trained on) and reads the head.
    public static func load(from directory: URL, base: LoadedModel) throws -> RewardModel {
        let descriptionURL = directory.appendingPathComponent(descriptionFile)
        guard let data = FileManager.default.contents(atPath: descriptionURL.path),
              let description = try? JSONDecoder().decode(Description.self, from: data), description.format == "valuealign-reward-model" else {
            throw TrainingError.checkpoint(path: directory.path, message: "not a reward model folder (no readable \(descriptionFile))")
        }
        guard description.hidden_size == base.model.configuration.hiddenSize else {
            throw LanguageModelError.adapter(path: directory.path, message: "made for a model with hidden size \(description.hidden_size); this model has \(base.model.configuration.hiddenSize)")
        }
        guard FileManager.default.fileExists(atPath: directory.appendingPathComponent(AdapterFiles.extraFile).path) else {
            throw TrainingError.checkpoint(path: directory.path, message: "no \(AdapterFiles.extraFile) with the reward head")
        }
        let rm = try RewardModel(base)
        try AdapterFiles.load(from: directory, trainable: rm, model: base.model)
        return rm
    }

    /// Writes `reward_model.json` (the adapter and head are written by the runner).
    func writeDescription(to directory: URL) throws {
        let d = Description(hidden_size: backbone.configuration.hiddenSize, base_fingerprint: PEFTAdapter.fingerprint(backbone.configuration))
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try encoder.encode(d).write(to: directory.appendingPathComponent(Self.descriptionFile), options: .atomic)
    }

    /// Rewards [B] of a token batch's rows: the head on each row's last real token. Differentiable.
    public func rewards(_ batch: TokenBatch) throws -> MLXArray {
        let hidden = try backbone.forward(batch.tokens, cache: nil, keyPadding: nil, captureLayers: []).hidden
        let b = hidden.dim(0), h = hidden.dim(2)
        let last = zip(batch.promptLengths, batch.responseLengths).map { Int32($0 + $1 - 1) }
        let index = try MLXArray(last, shape: [b, 1, 1]).broadcast(to: [b, 1, h])
        let pooled = try hidden.takeAlong(index, axis: 1)
        return try score(pooled).reshaped(b)
    }

    /// Scores answers to conversations, in batches; longer pairs than `maxLength` are cut as in training.
    public func score(prompts: [[ChatMessage]], responses: [String], batchSize: Int = 8, maxLength: Int = 1024) throws -> [Double] {
        guard prompts.count == responses.count else {
            throw TrainingError.reward("\(prompts.count) prompts but \(responses.count) responses")
        }
        guard batchSize > 0 else { throw TrainingError.invalidConfiguration(field: "batchSize", message: "must be positive") }
        var result: [Double] = []
        for start in stride(from: 0, to: prompts.count, by: batchSize) {
            let end = min(start + batchSize, prompts.count)
            var ps: [[Int]] = [], rs: [[Int]] = []
            for i in start..<end {
                let fitted = ChatEncoder.fit(prompt: encoder.prompt(prompts[i]), response: encoder.response(responses[i]), maxLength: maxLength)
                ps.append(fitted.prompt)
                rs.append(fitted.response)
            }
            let r = try rewards(TokenBatch(prompts: ps, responses: rs, padTokenId: loaded.tokenizer.padTokenId))
            result += try r.asArray(Float.self).map(Double.init)
        }
        return result
    }

    /// The model as a GRPO reward. Calls run one at a time on the model's own queue, off Swift's
    /// cooperative pool.
    public var rewardFunction: RewardFunction {
        { [self] prompts, responses in
            try await withCheckedThrowingContinuation { continuation in
                queue.async { continuation.resume(with: Result { try self.score(prompts: prompts, responses: responses) }) }
            }
        }
    }
}

/// The Bradley-Terry loss of a reward model on preference pairs: -log σ(r_chosen - r_rejected),
/// as TRL's `RewardTrainer`, plus its optional centring term coefficient * mean((r_c + r_r)²)
/// (Eisenstein et al. 2023).
public final class RewardModelObjective: TrainingObjective {
    /// Settings; defaults are TRL's `RewardConfig`.
    public struct Options: Sendable, Codable, Equatable {
        /// Longest prompt + answer in tokens (TRL `max_length` = 1024); longer pairs are cut.
        public var maxLength = 1024
        /// Pulls rewards towards zero mean (TRL `center_rewards_coefficient` = None; 0.01 recommended there).
        public var centerRewardsCoefficient: Float? = nil
        public init() {}
    }

    public typealias Batch = PairBatch

    public let rewardModel: RewardModel
    public let examples: [PreferenceExample]
    public let options: Options

    public init(rewardModel: RewardModel, examples: [PreferenceExample], options: Options = Options()) {
        self.rewardModel = rewardModel
        self.examples = examples
        self.options = options
    }

    /// Runner settings for reward models: Hugging Face's `learning_rate` default (5e-5, which
    /// TRL's `RewardConfig` inherits).
    public static var defaultParameters: TrainingRunner<RewardModelObjective>.Parameters { .init() }

    public var name: String { "reward-model" }
    public var model: any CausalLanguageModel { rewardModel.backbone }
    public var trainable: Module { rewardModel }
    public var exampleCount: Int { examples.count }

    public func validate() throws {
        if options.maxLength < 2 { throw TrainingError.invalidConfiguration(field: "maxLength", message: "must be at least 2, got \(options.maxLength)") }
        if let c = options.centerRewardsCoefficient, !(c >= 0) {
            throw TrainingError.invalidConfiguration(field: "centerRewardsCoefficient", message: "must be >= 0, got \(c)")
        }
        if let i = examples.firstIndex(where: { $0.prompt.isEmpty }) { throw TrainingError.insufficientData("reward-model: example \(i) has no prompt messages") }
    }

    public func prepare(_ indices: [Int], seed: UInt64) throws -> PreparedBatch<PairBatch> {
        let pairs = try PairBatch(indices.map { examples[$0] }, encoder: rewardModel.encoder, maxLength: options.maxLength, padTokenId: rewardModel.loaded.tokenizer.padTokenId)
        return PreparedBatch(batch: pairs, tokens: pairs.tokenCount)
    }

    public func loss(_ batch: PairBatch) throws -> ObjectiveOutput {
        let (chosen, rejected) = try batch.split(rewardModel.rewards(batch.tokens))
        let margin = try chosen - rejected
        var loss = try -margin.logSigmoid().mean()
        if let c = options.centerRewardsCoefficient, c > 0 { loss = try loss + (chosen + rejected).square().mean() * c }
        return ObjectiveOutput(loss: loss, metrics: [
            "accuracy": try (margin .> Float(0)).asType(.float32).mean(),
            "margin": try margin.mean(),
        ])
    }

    public func writeArtifacts(to directory: URL) throws { try rewardModel.writeDescription(to: directory) }
}
