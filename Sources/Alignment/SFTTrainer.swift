import Foundation
public import LanguageModels
public import MLXEngine
import MLXNN
import ValueAlignCore

/// One supervised example: a conversation and the answer to learn.
public struct SFTExample: Sendable, Codable, Equatable {
    public var prompt: [ChatMessage]
    public var response: String
    /// False when the response was cut by a token limit: it is trained without the end-of-turn
    /// token. Absent in JSON means true.
    public var finished: Bool

    public init(prompt: [ChatMessage], response: String, finished: Bool = true) {
        self.prompt = prompt
        self.response = response
        self.finished = finished
    }

    enum CodingKeys: String, CodingKey { case prompt, response, finished }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        prompt = try c.decode([ChatMessage].self, forKey: .prompt)
        response = try c.decode(String.self, forKey: .response)
        finished = try c.decodeIfPresent(Bool.self, forKey: .finished) ?? true
    }

    /// Best-of-N fine-tuning: the candidate with the highest reward becomes the example (the
    /// first of equals). Nil when there are no candidates or the counts differ. `finished`
    /// (one flag per candidate; nil: all finished) says which candidates ended on their own.
    public static func bestOfN(prompt: [ChatMessage], candidates: [String], rewards: [Double], finished: [Bool]? = nil) -> SFTExample? {
        guard !candidates.isEmpty, candidates.count == rewards.count, finished.map({ $0.count == candidates.count }) ?? true,
              let best = rewards.indices.max(by: { rewards[$0] < rewards[$1] || (rewards[$0] == rewards[$1] && $0 > $1) }) else { return nil }
        return SFTExample(prompt: prompt, response: candidates[best], finished: finished?[best] ?? true)
    }
}

/// Supervised fine-tuning: the mean negative log-likelihood of the response tokens (prompt and
/// padding masked), over all response tokens of the micro-batch, as TRL's `SFTTrainer` with
/// `completion_only_loss` computes it. Also the update of best-of-N fine-tuning.
public final class SFTObjective: TrainingObjective {
    public struct Batch {
        public var tokens: TokenBatch
        public var responses: ResponseTokens
        /// The micro-batch's retention rows with the frozen model's distributions (nil: no retention).
        public var retention: RetentionBatch?
    }

    /// Retention answers in token ids, with the frozen model's next-token log-probabilities at
    /// each of their tokens, [T, V] (evaluated, so no gradient reaches them).
    public struct RetentionBatch {
        public var tokens: TokenBatch
        public var responses: ResponseTokens
        public var referenceLogProbs: MLXArray
    }

    public let loaded: LoadedModel
    public let examples: [SFTExample]
    /// Longest prompt + response in tokens (TRL `SFTConfig.max_length` = 1024); longer pairs are cut.
    public let maxLength: Int
    let encoder: ChatEncoder

    /// Keeps the policy's distributions near the frozen model's on other text (nil: plain SFT).
    public let retention: CapabilityRetention?

    public init(model loaded: LoadedModel, examples: [SFTExample], maxLength: Int = 1024, retention: CapabilityRetention? = nil) {
        self.loaded = loaded
        self.examples = examples
        self.maxLength = maxLength
        self.retention = retention
        encoder = ChatEncoder(loaded)
    }

    /// Runner settings with TRL's `SFTConfig` learning rate (2e-5).
    public static var defaultParameters: TrainingRunner<SFTObjective>.Parameters {
        var p = TrainingRunner<SFTObjective>.Parameters()
        p.learningRate = 2e-5
        return p
    }

    public var name: String { "sft" }
    public var model: any CausalLanguageModel { loaded.model }
    public var exampleCount: Int { examples.count }

    public func validate() throws {
        if maxLength < 2 { throw TrainingError.invalidConfiguration(field: "maxLength", message: "must be at least 2, got \(maxLength)") }
        if let i = examples.firstIndex(where: { $0.prompt.isEmpty }) {
            throw TrainingError.insufficientData("sft: example \(i) has no prompt messages")
        }
        try retention?.validate()
    }

    /// Examples in token ids, each pair cut to `maxLength`, with the number of tokens.
    func encode(_ items: some Sequence<SFTExample>) throws -> (batch: TokenBatch, tokens: Int) {
        var prompts: [[Int]] = [], responses: [[Int]] = []
        for e in items {
            let (p, r) = ChatEncoder.fit(prompt: encoder.prompt(e.prompt), response: encoder.response(e.response, finished: e.finished), maxLength: maxLength)
            prompts.append(p)
            responses.append(r)
        }
        return (try TokenBatch(prompts: prompts, responses: responses, padTokenId: loaded.tokenizer.padTokenId),
                zip(prompts, responses).reduce(0) { $0 + $1.0.count + $1.1.count })
    }

    public func prepare(_ indices: [Int], seed: UInt64) throws -> PreparedBatch<Batch> {
        var (batch, tokens) = try encode(indices.lazy.map { self.examples[$0] })
        var retentionBatch: RetentionBatch?
        if let retention, retention.isActive {
            let (b, t) = try prepareRetention(retention, seed: seed)
            retentionBatch = b
            tokens += t
        }
        return PreparedBatch(batch: Batch(tokens: batch, responses: try ResponseTokens(batch), retention: retentionBatch), tokens: tokens)
    }

    /// The retention rows of one micro-batch, drawn with the batch's seed (so a resumed run draws the
    /// same), and the frozen model's distributions on them (adapters switched off).
    func prepareRetention(_ retention: CapabilityRetention, seed: UInt64) throws -> (RetentionBatch, Int) {
        let order = SplitMix64.permutation(count: retention.examples.count, seed: SplitMix64.derive(seed, 0xA2C0, 0))
        let (tokens, count) = try encode(order.prefix(retention.rowsPerBatch).map { retention.examples[$0] })
        let packed = try ResponseTokens(tokens, sharePrompts: false)
        let model = model
        let reference = try model.withAdaptersDisabled { try model.responseLogDistributions(tokens, packed) }
        try eval([reference])
        return (RetentionBatch(tokens: tokens, responses: packed, referenceLogProbs: reference), count)
    }

    public func loss(_ batch: Batch) throws -> ObjectiveOutput {
        let logProbs = try model.responseLogProbs(batch.tokens, batch.responses)
        let nll = try -logProbs.sum() / Float(max(batch.responses.count, 1))
        var metrics = ["mean_token_logprob": try -nll]
        guard let a = batch.retention, let retention else { return ObjectiveOutput(loss: nll, metrics: metrics) }
        // KL(reference ‖ policy) per retention token = Σ_v p (log p − log q), in one reduction (a
        // difference of two large sums would leave rounding noise in a KL near 0), averaged over tokens.
        let logq = try model.responseLogDistributions(a.tokens, a.responses)
        let kl = try (a.referenceLogProbs.exp() * (a.referenceLogProbs - logq)).sum() / Float(max(a.responses.count, 1))
        metrics["retention_kl"] = kl
        return ObjectiveOutput(loss: try nll + kl * retention.weight, metrics: metrics)
    }
}

/// Text on which fine-tuning keeps the policy's next-token distributions near the frozen model's
/// (issue 24, item 9: alignment must not cost capability). Each micro-batch adds `rowsPerBatch`
/// retention answers, drawn with the batch's seed, and the loss adds `weight` times the mean
/// per-token KL(frozen ‖ policy) over their answer tokens, with full next-token distributions:
/// distillation from the frozen model on replayed text, as in "Learning without Forgetting" (Li &
/// Hoiem 2016) and the pre-training mix of InstructGPT's PPO-ptx, here without any third-party
/// text (the main job uses the project's own everyday answers, `data/train/ordinary_pairs.jsonl`).
/// The retention text must be disjoint from the text that measures capability.
public struct CapabilityRetention: Sendable {
    public var examples: [SFTExample]
    /// λ: weight of the KL (nats per token) beside the SFT loss (nats per token).
    public var weight: Float
    /// Retention answers per micro-batch.
    public var rowsPerBatch: Int

    public init(examples: [SFTExample], weight: Float, rowsPerBatch: Int) {
        self.examples = examples
        self.weight = weight
        self.rowsPerBatch = rowsPerBatch
    }

    /// Most retention rows per micro-batch (memory: rows x answer tokens x vocabulary floats).
    public static let maximumRows = 32

    /// Whether it adds anything to the loss.
    public var isActive: Bool { weight > 0 && rowsPerBatch > 0 }

    public func validate() throws {
        if !(weight >= 0) || !weight.isFinite {
            throw TrainingError.invalidConfiguration(field: "retain-weight", message: "must be a finite number >= 0, got \(weight)")
        }
        if rowsPerBatch < 0 { throw TrainingError.invalidConfiguration(field: "retain-rows", message: "must be >= 0, got \(rowsPerBatch)") }
        // Each row keeps a [tokens, vocabulary] float32 distribution per micro-batch: a few rows
        // per step are the point (full distributions carry much signal), and more rows than
        // answers would repeat them.
        if rowsPerBatch > examples.count || rowsPerBatch > Self.maximumRows {
            throw TrainingError.invalidConfiguration(field: "retain-rows", message: "must be at most \(min(examples.count, Self.maximumRows)) (the retention answers, and at most \(Self.maximumRows) per step), got \(rowsPerBatch)")
        }
        if isActive && examples.isEmpty { throw TrainingError.insufficientData("retention: no retention answers") }
        if let i = examples.firstIndex(where: { $0.prompt.isEmpty }) {
            throw TrainingError.insufficientData("retention: answer \(i) has no prompt messages")
        }
    }

    /// Prompt/answer pairs from a JSONL file, one object per line with `prompt` (a string: one
    /// user turn) and `response` (a string); other fields are ignored (`data/train/ordinary_pairs.jsonl`).
    public static func loadPairs(_ path: String) throws -> [SFTExample] {
        struct Line: Decodable { var prompt: String; var response: String }
        var result: [SFTExample] = []
        for (line, pair) in try JSONLines.read(Line.self, from: path) {
            if pair.prompt.isEmpty || pair.response.isEmpty {
                throw JSONLinesError(path: path, line: line, message: "empty prompt or response")
            }
            result.append(SFTExample(prompt: [.user(pair.prompt)], response: pair.response))
        }
        if result.isEmpty { throw JSONLinesError(path: path, line: 0, message: "no prompt/answer pairs") }
        return result
    }
}
