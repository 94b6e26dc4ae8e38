import Foundation
public import LanguageModels
public import MLXNN
public import ValueSpace

/// How `valuealign align` turns rewards into updates.
public enum AlignMethod: String, Sendable, Codable, CaseIterable {
    /// GRPO: groups of k samples per prompt, group-normalised advantages, clipped ratio, k3 KL.
    case grpo
    /// Iterated on-policy DPO: each round samples k answers per prompt with the current policy,
    /// ranks them by the reward and trains on best-versus-worst pairs.
    case dpo
    /// The same rounds with the IPO loss.
    case ipo
    /// Best-of-N fine-tuning (rejection sampling): SFT on each prompt's best-rewarded answer.
    case bonSFT = "bon-sft"
    /// Constitutional AI, supervised: each round the policy answers, critiques its answer against
    /// a principle of the constitution and revises it; SFT on revisions the reward prefers.
    case caiSFT = "cai-sft"
    /// The same revisions as preference pairs (revision over original) trained with DPO.
    case caiDPO = "cai-dpo"
}

/// Where rewards come from.
public enum RewardSpecification: Sendable, Codable, Equatable, CustomStringConvertible {
    /// BaseAlign: -d(v, t) from the value evaluator and the target profile.
    case baseAlign
    /// A reward model trained by `valuealign rm train` (its run's `final` folder).
    case rewardModel(path: String)

    /// Parses `basealign` or `rm:PATH`.
    public init(parsing text: String) throws(AlignError) {
        if text == "basealign" {
            self = .baseAlign
        } else if text.hasPrefix("rm:"), text.count > 3 {
            self = .rewardModel(path: String(text.dropFirst(3)))
        } else {
            throw .invalidConfiguration(field: "reward", message: "'\(text)' is not a reward; use basealign or rm:PATH (a `valuealign rm train` output folder)")
        }
    }

    public var description: String {
        switch self {
        case .baseAlign: "basealign"
        case let .rewardModel(path): "rm:\(path)"
        }
    }
}

/// Held-out sets the job measures before and after training.
public struct EvaluationSets: Sendable, Codable, Equatable {
    /// Value-laden prompts: the profile and the distance to the target are measured on these
    /// (and on `harm`).
    public var values: String
    /// Harmful requests: harmful-answer and refusal rates (and they count in the distance).
    public var harm: String?
    /// Benign requests (some look harmful): the over-refusal rate.
    public var benign: String?
    /// Plain text for perplexity (capability retention).
    public var text: String?
    /// The split of the prompt files to use ("test" in the project's prompt sets, read once per reported run; "validation" to choose settings).
    public var split: String?
    /// At most this many prompts per file (nil: all).
    public var limit: Int?
    /// Harmful requests unlike the training prompts (issue 24: does the safety gain travel?),
    /// e.g. HarmBench's behaviours CSV: harmful-answer rate only, every line (no split filter),
    /// not counted in the distance. Nil: not measured.
    public var transfer: String?

    public init(values: String, harm: String? = nil, benign: String? = nil, text: String? = nil, split: String? = "test", limit: Int? = nil) {
        self.values = values
        self.harm = harm
        self.benign = benign
        self.text = text
        self.split = split
        self.limit = limit
    }
}

/// Everything that decides what an alignment run does. It is written to the run folder
/// (`config.json`); rerunning with a different configuration in the same folder is refused.
public struct AlignConfiguration: Sendable, Codable, Equatable {
    /// The policy model (path as resolved by `ModelLocator`).
    public var model: String
    /// The target profile, stored in full so a run is reproducible even if presets change.
    public var target: ValueProfile
    public var method: AlignMethod
    public var reward: RewardSpecification
    /// Training prompt files (JSONL, `valuealign generate`'s format).
    public var prompts: [String]
    /// Only training prompts with this split (the project's sets: "train", the default); nil = all lines.
    public var trainSplit: String? = Defaults.trainSplit
    /// Use at most this many training prompts (nil: all), after the split filter: a random subset
    /// drawn with the run's seed from all prompt files together.
    public var trainLimit: Int?
    public var evaluation: EvaluationSets

    /// Wall-clock budget for the whole job (measure, train, measure, report), in seconds.
    /// Training stops early enough for the final measurement to fit.
    public var budgetSeconds: Double?
    /// Optimiser steps of training in all (exact and reproducible); nil: until the budget ends.
    public var steps: Int?
    public var seed: UInt64 = Defaults.seed
    /// Arithmetic of the frozen base weights' many-row matmuls while training (`MatmulPrecision`);
    /// nil is float32. `.bfloat16` uses AMX tiles where they work (TRL's `bf16=True`).
    public var matmulPrecision: MatmulPrecision?

    /// Answers sampled per prompt (GRPO's group size; the candidates of DPO and best-of-N).
    public var samplesPerPrompt = Defaults.samplesPerPrompt
    /// DPO / IPO / best-of-N: how many of each prompt's `samplesPerPrompt` candidates are sampled
    /// with the target's value-conditioned system prompt (``ValueGuidance``); training always
    /// sees the prompt without it. 0 samples every candidate from the policy as it is. The
    /// default is the method's (`AlignMethodDefaults`).
    public var guidedSamples: Int
    /// DPO / IPO / best-of-N: prompts sampled per round (the policy is refreshed between rounds).
    public var promptsPerRound = Defaults.promptsPerRound
    /// DPO / IPO / best-of-N: passes over a round's examples.
    public var epochsPerRound = Defaults.epochsPerRound
    /// DPO / IPO: pairs whose best and worst rewards differ by less than this are dropped
    /// (they carry no preference).
    public var minimumRewardGap = Defaults.minimumRewardGap
    /// Examples per optimiser step (pairs for DPO, answers for best-of-N); GRPO: prompts per
    /// step (each with `samplesPerPrompt` answers).
    public var batchSize = Defaults.batchSize
    /// Peak learning rate; the default is the method's.
    public var learningRate: Float
    public var warmupSteps = Defaults.warmupSteps
    /// DPO's β, GRPO's KL weight λ; the default is the method's (0.1, TRL's DPO default; 0.04,
    /// TRL's GRPO default).
    public var beta: Float
    public var lora = Defaults.lora

    /// Sampling for training.
    public var temperature = Defaults.temperature
    public var topP: Float = 1
    public var maxNewTokens = Defaults.maxNewTokens
    public var maxPromptTokens = Defaults.maxPromptTokens
    /// Answers to held-out prompts: greedy, so before and after are compared without sampling noise.
    public var evaluationMaxNewTokens = Defaults.evaluationMaxNewTokens
    public var generationBatchSize = Defaults.generationBatchSize
    /// Evaluator weights (nil: the shipped ones); recorded so the run can be reproduced.
    public var evaluatorWeights: String?
    public var bootstrap = BootstrapParameters()
    /// bon-sft: the capability retention term (`CapabilityRetention`); nil: none. The default is the
    /// method's: bon-sft keeps to `data/train/ordinary_pairs.jsonl` (a path relative to the
    /// working directory, as the command line's prompt files are; issue 24, item 9).
    public var retention: RetentionSettings?
    /// cai-sft / cai-dpo: the constitution file; nil: the one the target implies
    /// (`Constitution.fromProfile`).
    public var constitution: String?
    /// cai-sft / cai-dpo: a `valuealign cai generate` folder (or its records.jsonl) whose
    /// answers, critiques and revisions are used for the prompts it covers instead of generating
    /// them; nil: every round generates on-policy.
    public var constitutionalData: String?

    /// A configuration with the defaults every method shares (`Defaults`) and those of `method`
    /// (`method.strategy.defaults`): the same defaults the command line shows.
    public init(model: String, target: ValueProfile, method: AlignMethod, reward: RewardSpecification, prompts: [String], evaluation: EvaluationSets) {
        self.model = model
        self.target = target
        self.method = method
        self.reward = reward
        self.prompts = prompts
        self.evaluation = evaluation
        let defaults = method.strategy.defaults
        learningRate = defaults.learningRate
        beta = defaults.beta
        guidedSamples = defaults.guidedSamples
        retention = defaults.retention
    }

    /// The defaults every method shares: the library's and the command line's (one set).
    public enum Defaults {
        public static let trainSplit = "train"
        public static let seed: UInt64 = 42
        public static let samplesPerPrompt = 4
        public static let promptsPerRound = 32
        public static let epochsPerRound = 3
        public static let minimumRewardGap = 0.05
        public static let batchSize = 8
        public static let warmupSteps = 2
        public static let lora = LoRAConfiguration(rank: 16, alpha: 32, dropout: 0, targetModules: ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"])
        public static let temperature: Float = 0.9
        public static let maxNewTokens = 64
        public static let maxPromptTokens = 256
        public static let evaluationMaxNewTokens = 128
        public static let generationBatchSize = 32
        /// The project's held-out sets, test split (`align`'s defaults; `steer sweep --test` measures on the same).
        public static let evaluation = EvaluationSets(
            values: "data/prompts/value_prompts.jsonl", harm: "data/prompts/harm_prompts.jsonl", benign: "data/prompts/benign_prompts.jsonl",
            text: "data/eval/capability_text.txt", split: "test")
    }

    /// Range checks of every field, then the method's own checks (`AlignStrategy.validate`); files
    /// and models are checked by `AlignmentJob.validate`.
    public func validate() throws(AlignError) {
        func bad(_ field: String, _ message: String) -> AlignError { .invalidConfiguration(field: field, message: message) }
        if prompts.isEmpty { throw bad("prompts", "name at least one training prompt file") }
        if let b = budgetSeconds, !(b >= AlignmentJob.minimumBudgetSeconds) {
            throw bad("budget", "\(DurationText.format(b)) is too small for one measurement and one training step; allow at least \(DurationText.format(AlignmentJob.minimumBudgetSeconds))")
        }
        if budgetSeconds == nil && steps == nil { throw bad("steps", "give --steps N, --budget DURATION or both") }
        if let s = steps, s < 1 { throw bad("steps", "a budget of \(s) steps is too small for one optimiser step; use at least 1") }
        if samplesPerPrompt < 2 { throw bad("samples", "needs at least 2 answers per prompt to compare, got \(samplesPerPrompt)") }
        if guidedSamples < 0 || guidedSamples > samplesPerPrompt { throw bad("guided-samples", "must lie in 0...\(samplesPerPrompt) (the samples per prompt), got \(guidedSamples)") }
        if batchSize < 1 { throw bad("batch-size", "must be at least 1, got \(batchSize)") }
        if !(learningRate > 0) || !learningRate.isFinite { throw bad("learning-rate", "must be a finite number > 0, got \(learningRate)") }
        if warmupSteps < 0 { throw bad("warmup-steps", "must be >= 0, got \(warmupSteps)") }
        if !(beta >= 0) || !beta.isFinite { throw bad("beta", "must be a finite number >= 0, got \(beta)") }
        if !(temperature > 0) || !temperature.isFinite { throw bad("temperature", "training samples need a temperature > 0, got \(temperature)") }
        if !(topP > 0 && topP <= 1) { throw bad("top-p", "must be in (0, 1], got \(topP)") }
        if maxNewTokens < 1 || evaluationMaxNewTokens < 1 { throw bad("max-new-tokens", "must be at least 1") }
        if maxPromptTokens < 1 { throw bad("max-prompt-tokens", "must be at least 1") }
        if generationBatchSize < 1 { throw bad("generation-batch-size", "must be at least 1") }
        if lora.rank < 1 || lora.targetModules.isEmpty { throw bad("lora", "rank must be at least 1 and the target layers non-empty") }
        if let l = trainLimit, l < 1 { throw bad("train-limit", "must be at least 1, got \(l)") }
        if let l = evaluation.limit, l < 1 { throw bad("eval-limit", "must be at least 1, got \(l)") }
        do { try bootstrap.validate() } catch { throw bad("bootstrap", "\(error)") }
        if let a = retention {
            if a.path.isEmpty { throw bad("retain", "name a JSONL file of prompt/answer pairs, or give no retention") }
            if !(a.weight > 0) || !a.weight.isFinite { throw bad("retain-weight", "must be a finite number > 0, got \(a.weight) (no retention: --retain '')") }
            if a.rowsPerBatch < 1 { throw bad("retain-rows", "must be at least 1, got \(a.rowsPerBatch)") }
            if method != .bonSFT && method != .caiSFT { throw bad("retain", "the capability retention term applies to bon-sft and cai-sft only (\(method.rawValue) keeps near the base model through --beta); pass --retain ''") }
        }
        if constitution != nil && method != .caiSFT && method != .caiDPO { throw bad("constitution", "applies to cai-sft and cai-dpo only, not \(method.rawValue)") }
        if constitutionalData != nil && method != .caiSFT && method != .caiDPO { throw bad("cai-data", "applies to cai-sft and cai-dpo only, not \(method.rawValue)") }
        try method.strategy.validate(self)
    }
}

/// What goes wrong in an alignment run, said so that the user knows what to change.
public enum AlignError: Error, Equatable, CustomStringConvertible {
    case invalidConfiguration(field: String, message: String)
    /// The run folder holds another run.
    case runDirectory(path: String, message: String)
    case data(String)

    public var description: String {
        switch self {
        case let .invalidConfiguration(field, message): "--\(field): \(message)"
        case let .runDirectory(path, message): "run folder \(path): \(message)"
        case let .data(message): message
        }
    }
}

/// The capability retention term of a bon-sft run (`CapabilityRetention`): which answers, how strongly,
/// how many per optimiser step.
public struct RetentionSettings: Sendable, Codable, Equatable {
    /// A JSONL of prompt/answer pairs (`CapabilityRetention.loadPairs`).
    public var path: String
    /// λ, the KL's weight beside the SFT loss.
    public var weight: Float
    /// Retention answers per micro-batch.
    public var rowsPerBatch: Int

    /// 0.5 and 2 rows, chosen on the prompt sets' validation split (docs/experiments.md, issue 24):
    /// with them 36 steps keep the capability text's perplexity at x1.042 where 48 steps without
    /// the term cost x1.246; 4 rows cost 8 s a step against 5.9 s (3.8 s without the term).
    public static let defaultWeight: Float = 0.5
    public static let defaultRows = 2
    /// The project's own everyday answers (never the capability text that measures perplexity).
    public static let defaultPath = "data/train/ordinary_pairs.jsonl"

    public init(path: String, weight: Float = RetentionSettings.defaultWeight, rowsPerBatch: Int = RetentionSettings.defaultRows) {
        self.path = path
        self.weight = weight
        self.rowsPerBatch = rowsPerBatch
    }
}
