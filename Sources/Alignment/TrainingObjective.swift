public import Foundation
public import LanguageModels
public import MLXEngine
public import MLXNN

/// A loss over batches of examples that `TrainingRunner` optimises: SFT, DPO/IPO, a reward
/// model, GRPO. The runner owns data order, gradient accumulation, the optimiser, checkpoints
/// and logs; an objective only turns example indices into a batch and a batch into a loss.
public protocol TrainingObjective: AnyObject {
    /// What `prepare` produces and `loss` consumes.
    associatedtype Batch

    /// A short name for logs and checkpoints ("sft", "dpo", "reward-model", "grpo").
    var name: String { get }
    /// The language model that carries the LoRA adapter (the runner attaches it).
    var model: any CausalLanguageModel { get }
    /// The module whose trainable parameters are optimised: `model` itself, or a module that
    /// holds it plus a head (the reward model).
    var trainable: Module { get }
    /// How many examples there are; `prepare` receives indices below this.
    var exampleCount: Int { get }
    /// Optimiser updates per prepared batch (GRPO's μ, "num_iterations"); 1 for the others.
    var updatesPerBatch: Int { get }

    /// Objective-specific checks, run before any work.
    func validate() throws
    /// Builds one micro-batch from example indices: tokenisation, sampling, rewards, reference
    /// log-probabilities. Runs once per batch, before the gradient passes, with the model in
    /// evaluation mode. `seed` depends only on the run's seed and position (for sampling).
    func prepare(_ indices: [Int], seed: UInt64) throws -> PreparedBatch<Batch>
    /// The loss of a prepared micro-batch as a differentiable function of the trainable
    /// parameters, with scalar metrics.
    func loss(_ batch: Batch) throws -> ObjectiveOutput
    /// Writes files that describe the trained artefact besides the adapter (the reward model's
    /// configuration). Called for every checkpoint and the final output.
    func writeArtifacts(to directory: URL) throws
}

extension TrainingObjective {
    public var trainable: Module { model }
    public var updatesPerBatch: Int { 1 }
    public func validate() throws {}
    public func writeArtifacts(to directory: URL) throws {}
}

/// A micro-batch ready for the gradient passes.
public struct PreparedBatch<Batch> {
    public var batch: Batch
    /// Tokens the forward passes of one update process (for tokens/s).
    public var tokens: Int
    /// Figures known before the gradient (GRPO's reward statistics), averaged into the step's metrics.
    public var metrics: [String: Double]

    public init(batch: Batch, tokens: Int, metrics: [String: Double] = [:]) {
        self.batch = batch
        self.tokens = tokens
        self.metrics = metrics
    }
}

/// The loss of one micro-batch and scalar metrics computed with it.
public struct ObjectiveOutput {
    /// A scalar; its gradient drives the update.
    public var loss: MLXArray
    /// Scalars logged with the loss ("accuracy", "margin", "kl", ...); not differentiated.
    public var metrics: [String: MLXArray]

    public init(loss: MLXArray, metrics: [String: MLXArray] = [:]) {
        self.loss = loss
        self.metrics = metrics
    }
}

/// Turns conversations and answers into token ids the way the model's chat template does, for
/// training: the prompt ends with the assistant header; the response ends with the template's
/// end-of-turn token so the model learns to stop.
public struct ChatEncoder {
    public let loaded: LoadedModel
    /// Appended to every response (ChatML's `<|im_end|>`, Llama 3's `<|eot_id|>`), or the
    /// tokenizer's end-of-sequence id when the template's token is unknown.
    public let endOfTurn: Int?

    public init(_ loaded: LoadedModel) {
        self.loaded = loaded
        endOfTurn = loaded.chatTemplate.stopStrings.lazy.compactMap { loaded.tokenizer.tokenId($0) }.first
            ?? loaded.tokenizer.eosTokenIds.min()
    }

    /// The prompt's ids, ending with the assistant's turn header.
    public func prompt(_ messages: [ChatMessage]) -> [Int] { loaded.promptTokens(messages) }

    /// The response's ids plus the end-of-turn id. Special-token text inside the response is
    /// encoded as plain text. An answer cut by a token limit (`finished: false`) gets no
    /// end-of-turn id: training on it must not teach the model to stop mid-sentence.
    public func response(_ text: String, finished: Bool = true) -> [Int] {
        let ids = loaded.tokenizer.encode(text, addSpecialTokens: false, parseSpecialTokens: false)
        // A response is never empty: one with no text keeps the end-of-turn id either way.
        return ending(ids, finished: finished || ids.isEmpty)
    }

    /// An answer's ids as trained: with the end-of-turn id when the answer ended on its own
    /// (that token is part of what the policy chose), without it when a token limit cut it.
    public func ending(_ ids: [Int], finished: Bool) -> [Int] {
        finished ? ids + (endOfTurn.map { [$0] } ?? []) : ids
    }

    /// Cuts a pair to at most `maxLength` ids: the response keeps its start (at least half the
    /// budget when the prompt is long), the prompt keeps its end (the latest turns), as TRL's
    /// "keep_end" prompt truncation does.
    public static func fit(prompt: [Int], response: [Int], maxLength: Int) -> (prompt: [Int], response: [Int]) {
        guard prompt.count + response.count > maxLength else { return (prompt, response) }
        let responseBudget = min(response.count, max(maxLength - prompt.count, maxLength / 2))
        let r = Array(response.prefix(max(responseBudget, 1)))
        let p = Array(prompt.suffix(max(maxLength - r.count, 1)))
        return (p, r)
    }
}
