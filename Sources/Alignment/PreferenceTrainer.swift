import Foundation
public import LanguageModels
public import MLXEngine
import MLXNN
public import ValueSpace

/// A prompt with a preferred and a dispreferred answer.
public struct PreferenceExample: Sendable, Codable, Equatable {
    public var prompt: [ChatMessage]
    public var chosen: String
    public var rejected: String
    /// False when that answer was cut by a token limit: it is scored without the end-of-turn
    /// token (as it was sampled). Absent in JSON means true.
    public var chosenFinished: Bool
    public var rejectedFinished: Bool

    public init(prompt: [ChatMessage], chosen: String, rejected: String, chosenFinished: Bool = true, rejectedFinished: Bool = true) {
        self.prompt = prompt
        self.chosen = chosen
        self.rejected = rejected
        self.chosenFinished = chosenFinished
        self.rejectedFinished = rejectedFinished
    }

    enum CodingKeys: String, CodingKey { case prompt, chosen, rejected, chosenFinished, rejectedFinished }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        prompt = try c.decode([ChatMessage].self, forKey: .prompt)
        chosen = try c.decode(String.self, forKey: .chosen)
        rejected = try c.decode(String.self, forKey: .rejected)
        chosenFinished = try c.decodeIfPresent(Bool.self, forKey: .chosenFinished) ?? true
        rejectedFinished = try c.decodeIfPresent(Bool.self, forKey: .rejectedFinished) ?? true
    }

    /// An HH preference pair (`PreferenceDataset.load`).
    public init(_ pair: PreferencePair) {
        self.init(prompt: pair.context, chosen: pair.chosen, rejected: pair.rejected)
    }
}

/// A preference pair already in token ids (the prompt ending with the assistant header, the
/// answers ending with the end-of-turn token), for pre-tokenised data and benchmarks.
public struct TokenizedPreference: Sendable, Equatable {
    public var prompt: [Int]
    public var chosen: [Int]
    public var rejected: [Int]

    public init(prompt: [Int], chosen: [Int], rejected: [Int]) {
        self.prompt = prompt
        self.chosen = chosen
        self.rejected = rejected
    }
}

/// Chosen and rejected answers of a micro-batch as one token batch: rows 0..<n are the chosen
/// answers, rows n..<2n the rejected ones (one forward pass for both, as TRL's concatenated forward).
public struct PairBatch {
    public var tokens: TokenBatch
    public var pairs: Int
    /// The answers' tokens, packed (the head and log-softmax run only there).
    public var responses: ResponseTokens

    init(_ examples: [PreferenceExample], encoder: ChatEncoder, maxLength: Int, padTokenId: Int) throws {
        let encoded = examples.map { TokenizedPreference(prompt: encoder.prompt($0.prompt), chosen: encoder.response($0.chosen, finished: $0.chosenFinished),
                                                             rejected: encoder.response($0.rejected, finished: $0.rejectedFinished)) }
        try self.init(encoded, maxLength: maxLength, padTokenId: padTokenId)
    }

    init(_ encoded: [TokenizedPreference], maxLength: Int, padTokenId: Int) throws {
        var prompts: [[Int]] = [], responses: [[Int]] = []
        for side in 0..<2 {
            for e in encoded {
                let fitted = ChatEncoder.fit(prompt: e.prompt, response: side == 0 ? e.chosen : e.rejected, maxLength: maxLength)
                prompts.append(fitted.prompt)
                responses.append(fitted.response)
            }
        }
        tokens = try TokenBatch(prompts: prompts, responses: responses, padTokenId: padTokenId)
        pairs = encoded.count
        self.responses = try ResponseTokens(tokens)
    }

    /// Tokens in the rows (prompts and responses, no padding).
    var tokenCount: Int { zip(tokens.promptLengths, tokens.responseLengths).reduce(0) { $0 + $1.0 + $1.1 } }

    /// Splits [2n] row values into (chosen [n], rejected [n]).
    func split(_ rows: MLXArray) throws -> (MLXArray, MLXArray) {
        let halves = try rows.split(parts: 2, axis: 0)
        return (halves[0], halves[1])
    }
}

/// Direct preference optimisation (Rafailov et al. 2023) and IPO (Azar et al. 2023) on LoRA
/// adapters, with the frozen base model as the reference: the same weights with the adapters
/// switched off (`withAdaptersDisabled`): every pair's values are computed once, before the first
/// step, and reused in every epoch (`Options.precomputeReference`; off: once per batch).
///
/// With h = (log π(c) - log π_ref(c)) - (log π(r) - log π_ref(r)):
/// - DPO ("sigmoid"): loss = -(1 - ε) log σ(β h) - ε log σ(-β h), ε = label smoothing.
/// - IPO: loss = (h - 1/(2β))², on log-probabilities averaged over response tokens (as TRL does).
/// At step 0 the adapter changes nothing (LoRA's B starts at zero), so h = 0 and the DPO loss is log 2.
public final class PreferenceObjective: TrainingObjective {
    /// The preference loss.
    public enum Loss: String, Sendable, Codable, CaseIterable {
        case dpo
        case ipo
    }

    /// DPO/IPO settings; defaults are TRL's `DPOConfig`.
    public struct Options: Sendable, Codable, Equatable {
        /// The loss (TRL `loss_type` = "sigmoid", i.e. DPO).
        public var loss: Loss = .dpo
        /// Temperature of the implicit reward, β (TRL `beta` = 0.1).
        public var beta: Float = 0.1
        /// Conservative DPO's label smoothing ε (TRL `label_smoothing` = 0).
        public var labelSmoothing: Float = 0
        /// Longest prompt + answer in tokens (TRL `max_length` = 1024); longer pairs are cut.
        public var maxLength = 1024
        /// Compute every pair's reference log-probabilities once, at the first batch, and reuse
        /// them in every epoch (TRL's `precompute_ref_log_probs`, off by default there). The
        /// reference is the frozen base, so the values are the same; a run of E epochs then pays
        /// one reference pass per pair instead of E. They are computed in fixed chunks of
        /// `referenceChunk` pairs in dataset order, so a resumed run gets the same values. Off:
        /// once per batch, as TRL's default does.
        public var precomputeReference = true
        public init() {}
    }

    public struct Batch {
        public var pairs: PairBatch
        /// Reference log-probabilities per row [2n] (summed, or averaged for IPO), evaluated.
        public var reference: MLXArray
    }

    public let loaded: LoadedModel
    /// The pairs as text (empty when built from token ids).
    public let examples: [PreferenceExample]
    /// The pairs as token ids (empty when built from text).
    public let tokenizedExamples: [TokenizedPreference]
    public let options: Options
    let encoder: ChatEncoder
    /// Pairs per reference pass when the reference is precomputed.
    static let referenceChunk = 8
    private let referenceLock = NSLock()
    /// Per pair: the reference's (chosen, rejected) row values, once precomputed.
    private var referenceTable: [(chosen: Float, rejected: Float)]?

    public init(model loaded: LoadedModel, examples: [PreferenceExample], options: Options = Options()) {
        self.loaded = loaded
        self.examples = examples
        tokenizedExamples = []
        self.options = options
        encoder = ChatEncoder(loaded)
    }

    /// Pairs given as token ids.
    public init(model loaded: LoadedModel, tokenizedExamples: [TokenizedPreference], options: Options = Options()) {
        self.loaded = loaded
        examples = []
        self.tokenizedExamples = tokenizedExamples
        self.options = options
        encoder = ChatEncoder(loaded)
    }

    /// Runner settings with TRL's `DPOConfig` learning rate (1e-6). LoRA runs usually want far
    /// more (PEFT's examples use 1e-4 to 5e-4); set `learningRate` for your data.
    public static var defaultParameters: TrainingRunner<PreferenceObjective>.Parameters {
        var p = TrainingRunner<PreferenceObjective>.Parameters()
        p.learningRate = 1e-6
        return p
    }

    public var name: String { options.loss.rawValue }
    public var model: any CausalLanguageModel { loaded.model }
    public var exampleCount: Int { examples.count + tokenizedExamples.count }

    public func validate() throws {
        if let i = tokenizedExamples.firstIndex(where: { $0.prompt.isEmpty || $0.chosen.isEmpty || $0.rejected.isEmpty }) {
            throw TrainingError.insufficientData("\(name): tokenized example \(i) has an empty prompt or answer")
        }
        if !(options.beta > 0) || !options.beta.isFinite { throw TrainingError.invalidConfiguration(field: "beta", message: "must be a finite number > 0, got \(options.beta)") }
        if !(options.labelSmoothing >= 0 && options.labelSmoothing < 0.5) {
            throw TrainingError.invalidConfiguration(field: "labelSmoothing", message: "must be in [0, 0.5), got \(options.labelSmoothing)")
        }
        if options.loss == .ipo && options.labelSmoothing != 0 {
            throw TrainingError.invalidConfiguration(field: "labelSmoothing", message: "applies to DPO only, not IPO")
        }
        if options.maxLength < 2 { throw TrainingError.invalidConfiguration(field: "maxLength", message: "must be at least 2, got \(options.maxLength)") }
        if let i = examples.firstIndex(where: { $0.prompt.isEmpty }) { throw TrainingError.insufficientData("\(name): example \(i) has no prompt messages") }
    }

    /// Log-probability of each row's response: summed (DPO) or per token (IPO).
    func rowLogProbs(_ pairs: PairBatch) throws -> MLXArray {
        let summed = try pairs.responses.rowSums(model.responseLogProbs(pairs.tokens, pairs.responses))
        return options.loss == .ipo ? try summed / pairs.responses.rowLengths : summed
    }

    func pairBatch(_ indices: [Int]) throws -> PairBatch {
        let pad = loaded.tokenizer.padTokenId
        return examples.isEmpty
            ? try PairBatch(indices.map { tokenizedExamples[$0] }, maxLength: options.maxLength, padTokenId: pad)
            : try PairBatch(indices.map { examples[$0] }, encoder: encoder, maxLength: options.maxLength, padTokenId: pad)
    }

    /// Every pair's reference values, computed on first use (`Options.precomputeReference`).
    func precomputedReference() throws -> [(chosen: Float, rejected: Float)] {
        try referenceLock.withLock {
            if let referenceTable { return referenceTable }
            var table: [(chosen: Float, rejected: Float)] = []
            table.reserveCapacity(exampleCount)
            for start in stride(from: 0, to: exampleCount, by: Self.referenceChunk) {
                let indices = Array(start..<min(exampleCount, start + Self.referenceChunk))
                let pairs = try pairBatch(indices)
                let rows = try model.withAdaptersDisabled { try rowLogProbs(pairs) }.asArray(Float.self)
                for i in indices.indices { table.append((rows[i], rows[indices.count + i])) }
            }
            referenceTable = table
            return table
        }
    }

    public func prepare(_ indices: [Int], seed: UInt64) throws -> PreparedBatch<Batch> {
        let pairs = try pairBatch(indices)
        let reference: MLXArray
        if options.precomputeReference {
            let table = try precomputedReference()
            reference = MLXArray(indices.map { table[$0].chosen } + indices.map { table[$0].rejected })
        } else {
            reference = try model.withAdaptersDisabled { try rowLogProbs(pairs) }
            // Computed in the background while the caller builds the policy's loss graph (which
            // reads it, so evaluating that graph waits for it).
            try asyncEval([reference])
        }
        return PreparedBatch(batch: Batch(pairs: pairs, reference: reference), tokens: pairs.tokenCount)
    }

    public func loss(_ batch: Batch) throws -> ObjectiveOutput {
        let policy = try rowLogProbs(batch.pairs)
        let ratios = try policy - batch.reference
        let (chosen, rejected) = try batch.pairs.split(ratios)
        let h = try chosen - rejected
        let beta = options.beta
        let perPair: MLXArray
        switch options.loss {
        case .dpo:
            let eps = options.labelSmoothing
            perPair = eps == 0 ? try -(h * beta).logSigmoid()
                : try -(h * beta).logSigmoid() * (1 - eps) - (h * -beta).logSigmoid() * eps
        case .ipo:
            perPair = try (h - 1 / (2 * beta)).square()
        }
        let chosenReward = try chosen * beta, rejectedReward = try rejected * beta
        return ObjectiveOutput(loss: try perPair.mean(), metrics: [
            "rewards/chosen": try chosenReward.mean(),
            "rewards/rejected": try rejectedReward.mean(),
            "rewards/margins": try (chosenReward - rejectedReward).mean(),
            "rewards/accuracies": try (chosenReward .> rejectedReward).asType(.float32).mean(),
        ])
    }
}
