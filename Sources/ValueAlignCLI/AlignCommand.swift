import Alignment
import ArgumentParser
import BaseAlign
import Dispatch
import Evaluators
import Foundation
import LanguageModels
import MLXNN
import ValueSpace

struct AlignCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "align",
        abstract: "Align a model toward a target value profile (BaseAlign), and show what moved and what it cost.",
        discussion: """
        Measures the model on held-out prompts (greedy answers scored by the value evaluator), trains a LoRA adapter by \
        the chosen method and reward, measures again, and writes into --out: adapter/ (PEFT layout), report.html, \
        report.md, report.json (distance to the target before and after with paired bootstrap intervals, per-value \
        change, harmful-answer and over-refusal rates, perplexity of held-out text, answer length, wall time, tokens/s), \
        plus everything needed to resume: rerunning the same command continues where it stopped (Ctrl-C stops after the \
        current step with a checkpoint). With --steps and no --budget a resumed run ends where an uninterrupted one does.

        Methods: grpo (groups of --samples answers per prompt, group-normalised advantages, clipped ratio, k3 KL with \
        weight --beta); dpo and ipo (iterated on-policy: each round samples --samples answers for --prompts-per-round \
        prompts with the current policy and trains on best-versus-worst pairs); bon-sft (best-of-N fine-tuning on each \
        prompt's best answer). Rewards: basealign (-BaseAlign distance of the evaluator's value vector to the target) or \
        rm:PATH (a reward model from `valuealign rm train`, the RLHF baseline).
        """
    )

    @Option(name: .shortAndLong, help: "Model to align: 'embedded' (default), a GGUF file, a Hugging Face folder or a name in the models folder.") var model: String?
    @Option(help: "Continue from a PEFT adapter (e.g. an earlier run's adapter/): it is merged into the model before the 'before' measurement, and the new adapter trains on top of it, so use the result with --adapter OLD --adapter NEW (or export both). Repeatable, in order.")
    var adapter: [String] = []
    @Option(help: "Target profile: a preset name (valuealign profile list) or a JSON file.") var target = "basealign-ideal"
    @Option(help: "bon-sft (default), dpo, ipo, grpo, cai-sft or cai-dpo (constitutional critique-and-revise).") var method = "bon-sft"
    @Option(help: "basealign or rm:PATH.") var reward = "basealign"
    @Option(parsing: .upToNextOption, help: "Training prompt files (JSONL).")
    var prompts = ["data/prompts/value_prompts.jsonl", "data/prompts/harm_prompts.jsonl", "data/prompts/benign_prompts.jsonl"]
    @Option(help: "Only training prompts with this split ('' for every line).") var trainSplit = AlignConfiguration.Defaults.trainSplit
    @Option(help: "Use at most this many training prompts: a random subset of all files, drawn with --seed.") var trainLimit: Int?
    @Option(help: "Held-out value-laden prompts (profile and distance).") var evalValues = AlignConfiguration.Defaults.evaluation.values
    @Option(help: "Held-out harmful prompts (harmful-answer rate; '' to skip).") var evalHarm = AlignConfiguration.Defaults.evaluation.harm!
    @Option(help: "Held-out benign prompts (over-refusal rate; '' to skip).") var evalBenign = AlignConfiguration.Defaults.evaluation.benign!
    @Option(help: "Held-out text for perplexity ('' to skip).") var evalText = AlignConfiguration.Defaults.evaluation.text!
    @Option(help: "Harmful requests unlike the training prompts, read whole (JSONL, or a CSV in HarmBench's layout such as ../shared/data/redteam/harmbench_behaviors_val.csv): harmful-answer rate before and after.")
    var evalTransfer: String?
    @Option(help: "Split of the evaluation prompt files: test (read once per reported run), validation (for choosing settings), or '' for every line.") var evalSplit = "test"
    @Option(help: "At most this many held-out prompts per file.") var evalLimit: Int?
    @Option(help: "Wall-clock budget for the whole job, e.g. 15m (training stops in time for the final measurement).") var budget: String?
    @Option(help: "Optimiser steps in all (exact; with no --budget the run is reproducible step for step).") var steps: Int?
    @Option(help: "Run folder.") var out = "runs/align"
    @Option(help: "Seed of prompt order, sampling, adapter initialisation and bootstrap.") var seed = AlignConfiguration.Defaults.seed
    @Option(help: "Training matmuls with the frozen base weights: float32, or bfloat16 on Intel AMX where it works (as TRL's bf16=True).")
    var matmulPrecision: String = "float32"
    @Option(help: "Answers sampled per prompt.") var samples = AlignConfiguration.Defaults.samplesPerPrompt
    @Option(help: "dpo/ipo/bon-sft: how many of a prompt's --samples answers are sampled with a system prompt naming the target's values (trained without it); default by method: \(AlignMethod.describeDefaults { "\($0.guidedSamples)" }).") var guidedSamples: Int?
    @Option(help: "dpo/ipo/bon-sft/cai-*: prompts per round.") var promptsPerRound = AlignConfiguration.Defaults.promptsPerRound
    @Option(help: "dpo/ipo/bon-sft/cai-*: passes over a round's examples.") var epochsPerRound = AlignConfiguration.Defaults.epochsPerRound
    @Option(help: "dpo/ipo/bon-sft/cai-*: least reward gap between best and worst answer to train on a prompt.") var minRewardGap = AlignConfiguration.Defaults.minimumRewardGap
    @Option(help: "Pairs (dpo), answers (bon-sft) or prompts (grpo) per optimiser step.") var batchSize = AlignConfiguration.Defaults.batchSize
    @Option(help: "Peak learning rate, constant after warm-up; default by method: \(AlignMethod.describeDefaults { "\($0.learningRate)" }).") var learningRate: Float?
    @Option(help: "Linear warm-up steps.") var warmupSteps = AlignConfiguration.Defaults.warmupSteps
    @Option(help: "DPO/IPO beta; GRPO's KL weight; default by method: \(AlignMethod.describeDefaults { "\($0.beta)" }).") var beta: Float?
    @Option(help: "LoRA rank.") var loraRank = AlignConfiguration.Defaults.lora.rank
    @Option(help: "LoRA alpha.") var loraAlpha = AlignConfiguration.Defaults.lora.alpha
    @Option(parsing: .upToNextOption, help: "Layers to adapt.") var loraTargets = AlignConfiguration.Defaults.lora.targetModules
    @Option(help: "Sampling temperature for training answers.") var temperature = AlignConfiguration.Defaults.temperature
    @Option(help: "Most new tokens per training answer.") var maxNewTokens = AlignConfiguration.Defaults.maxNewTokens
    @Option(help: "Most new tokens per held-out answer.") var evalMaxNewTokens = AlignConfiguration.Defaults.evaluationMaxNewTokens
    @Option(help: "Sequences per generation batch.") var generationBatchSize = AlignConfiguration.Defaults.generationBatchSize
    @Option(help: "Trained evaluator weights (default: the shipped ones).") var evaluatorWeights: String?
    @Option(help: "Gold evaluator weights: measures beside the evaluator, never optimised (default: the shipped gold heads; 'none' to skip).")
    var goldWeights: String?
    @Option(help: "bon-sft/cai-sft: retention text, a JSONL of prompt/answer pairs on which training keeps the frozen model's next-token distributions (a KL term); '' for none. Default: \(RetentionSettings.defaultPath); none for other methods (cai-sft: the same default).")
    var retain: String?
    @Option(help: "bon-sft/cai-sft: weight of the retention KL beside the fine-tuning loss (default: \(RetentionSettings.defaultWeight)).") var retainWeight: Float?
    @Option(help: "bon-sft/cai-sft: retention answers per optimiser step (default: \(RetentionSettings.defaultRows)).") var retainRows: Int?
    @Option(help: "cai-sft/cai-dpo: the constitution (JSON, or text with one principle per line); default: the one the target implies (valuealign constitution from-profile).")
    var constitution: String?
    @Option(help: "cai-sft/cai-dpo: a `valuealign cai generate` folder whose answers and revisions are used for the prompts it covers (rescored by this run's reward) instead of generating them.")
    var caiData: String?
    @Option(help: "Bootstrap resamples.") var resamples = 2000
    @Flag(help: "Discard what --out holds and start over.") var restart = false
    @Flag(help: "No progress bars.") var quiet = false

    func configuration(modelPath: String) throws -> AlignConfiguration {
        guard let m = AlignMethod(rawValue: method) else {
            throw ValidationError("--method must be one of \(AlignMethod.allCases.map(\.rawValue).joined(separator: ", ")), got '\(method)'")
        }
        let targetProfile: ValueProfile
        do { targetProfile = try ProfileStore.resolve(target) } catch { throw ValidationError("--target: \(error)") }
        func optional(_ s: String) -> String? { s.isEmpty ? nil : s }
        var c = AlignConfiguration(
            model: modelPath, target: targetProfile, method: m, reward: try RewardSpecification(parsing: reward), prompts: prompts,
            evaluation: EvaluationSets(values: evalValues, harm: optional(evalHarm), benign: optional(evalBenign), text: optional(evalText),
                                       split: optional(evalSplit), limit: evalLimit))
        c.evaluation.transfer = evalTransfer.flatMap(optional)
        c.trainSplit = optional(trainSplit)
        c.trainLimit = trainLimit
        do { c.budgetSeconds = try budget.map { try DurationText.seconds($0) } } catch { throw ValidationError("--budget: \(error)") }
        c.steps = steps
        c.seed = seed
        guard let precision = MatmulPrecision(rawValue: matmulPrecision) else {
            throw ValidationError("--matmul-precision must be float32 or bfloat16, got '\(matmulPrecision)'")
        }
        c.matmulPrecision = precision == .float32 ? nil : precision
        c.samplesPerPrompt = samples
        if let guidedSamples { c.guidedSamples = guidedSamples }
        c.promptsPerRound = promptsPerRound
        c.epochsPerRound = epochsPerRound
        c.minimumRewardGap = minRewardGap
        c.batchSize = batchSize
        if let learningRate { c.learningRate = learningRate }
        c.warmupSteps = warmupSteps
        if let beta { c.beta = beta }
        c.lora = LoRAConfiguration(rank: loraRank, alpha: loraAlpha, dropout: 0, targetModules: loraTargets)
        c.temperature = temperature
        c.maxNewTokens = maxNewTokens
        c.evaluationMaxNewTokens = evalMaxNewTokens
        c.generationBatchSize = generationBatchSize
        c.evaluatorWeights = evaluatorWeights
        c.bootstrap = BootstrapParameters(resamples: resamples, seed: seed)
        if let retain { c.retention = retain.isEmpty ? nil : RetentionSettings(path: retain) }
        if c.retention == nil, retainWeight != nil || retainRows != nil {
            throw ValidationError("--retain-weight and --retain-rows need a retention text, which only bon-sft and cai-sft take (and --retain '' turns off)")
        }
        if let retainWeight { c.retention?.weight = retainWeight }
        if let retainRows { c.retention?.rowsPerBatch = retainRows }
        c.constitution = constitution
        c.constitutionalData = caiData
        try c.validate()
        return c
    }

    func validate() throws {
        try requireAdapterFolders(adapter)
        for (flag, path) in [("--prompts", prompts.first ?? "")] + prompts.dropFirst().map({ ("--prompts", $0) }) + [("--eval-values", evalValues)] {
            guard FileManager.default.fileExists(atPath: path) else { throw ValidationError("\(flag): no such file '\(path)'") }
        }
        let retainPath = retain ?? AlignMethod(rawValue: method)?.strategy.defaults.retention?.path ?? ""
        for (flag, path) in [("--eval-harm", evalHarm), ("--eval-benign", evalBenign), ("--eval-text", evalText), ("--eval-transfer", evalTransfer ?? ""), ("--retain", retainPath)] where !path.isEmpty {
            guard FileManager.default.fileExists(atPath: path) else { throw ValidationError("\(flag): no such file '\(path)' (pass '' to skip it)") }
        }
        if case let .rewardModel(path) = try RewardSpecification(parsing: reward) {
            guard FileManager.default.fileExists(atPath: path + "/reward_model.json") else {
                throw ValidationError("--reward rm:\(path): not a reward model folder (no reward_model.json); train one with valuealign rm train")
            }
        }
        _ = try configuration(modelPath: "(checked later)")
    }

    func run() async throws {
        let started = Date()
        let path = try ModelLocator.resolve(model)
        // The adapters continued from are part of the model (and of the run's identity: a rerun
        // with other adapters is refused as another configuration).
        let c = try configuration(modelPath: ([path] + adapter).joined(separator: "+"))
        if restart { try? FileManager.default.removeItem(atPath: out) }
        let quiet = quiet
        func say(_ s: String) { if !quiet { FileHandle.standardError.write(Data((s + "\n").utf8)) } }

        say("… loading \(path)")
        var policy = try LoadedModel.load(path)
        if !adapter.isEmpty {
            say("… merging \(adapter.joined(separator: ", ")) into the model (the new adapter trains on top)")
            policy = try policy.stacking(adapter, mergeLast: true)
        }
        let evaluator = try TrainedValueEvaluator.load(weights: evaluatorWeights)
        var gold: TrainedValueEvaluator?
        if goldWeights != "none" {
            guard let goldPath = goldWeights ?? EvaluatorWeights.shippedGoldPath() else {
                throw ValidationError("no gold evaluator weights are bundled; pass --gold-weights FILE or --gold-weights none")
            }
            gold = try TrainedValueEvaluator.load(weights: goldPath)
        }
        var rewardFunction: RewardFunction?
        var rewardName: String?
        if case let .rewardModel(rmPath) = c.reward {
            let rm = try RewardModel.load(from: URL(fileURLWithPath: rmPath), base: try LoadedModel.load(path))
            rewardFunction = rm.rewardFunction
            rewardName = "reward model \(rmPath)"
        }
        let job = AlignmentJob(configuration: c, directory: URL(fileURLWithPath: out), policy: policy, evaluator: evaluator, gold: gold, reward: rewardFunction, rewardName: rewardName)
        try job.validate()  // every file and setting, before the first (slow) generation

        let interrupted = Interrupt(message: "stopping at the next safe point (the run folder resumes)…")
        defer { interrupted.stop() }

        let display = AlignDisplay(quiet: quiet)
        let outcome = try await job.run(events: { display.show($0) }, shouldStop: { interrupted.isRequested })
        display.finish()
        switch outcome {
        case let .stopped(message):
            print("\(message); run folder \(out)")
        case let .finished(report):
            print(report.headline)
            print(String(format: "harmful answers %@ -> %@; over-refusal %@ -> %@; perplexity ratio %@",
                         pct(report.before.harmfulRate), pct(report.after.harmfulRate), pct(report.before.overRefusalRate), pct(report.after.overRefusalRate),
                         report.perplexityRatio.map { String(format: "%.3f", $0) } ?? "-"))
            print("wall time \(DurationText.format(Date().timeIntervalSince(started))) (this process); wrote \(out)/report.html, report.md, report.json, adapter/")
            if !adapter.isEmpty {
                print("the new adapter sits on top of \(adapter.joined(separator: " + ")): use it as \((adapter + ["\(out)/adapter"]).map { "--adapter \($0)" }.joined(separator: " "))")
            }
        }
    }

    func pct(_ e: Estimate?) -> String { e.map { String(format: "%.1f%%", $0.value * 100) } ?? "-" }
}

/// Progress bars for the phases of an alignment run (events arrive from several threads, one at a time).
final class AlignDisplay: @unchecked Sendable {
    let quiet: Bool
    private var bar: ProgressBar?
    private var key = ""
    private let lock = NSLock()
    init(quiet: Bool) { self.quiet = quiet }

    func show(_ event: AlignEvent) {
        lock.lock()
        defer { lock.unlock() }
        switch event {
        case let .phase(text):
            bar = nil
            key = ""
            if !quiet { FileHandle.standardError.write(Data("== \(text)\n".utf8)) }
        case let .note(text):
            if !quiet { FileHandle.standardError.write(Data("note: \(text)\n".utf8)) }
        case let .measuring(label, stage):
            switch stage {
            case let .generating(set, done, total): step("\(label): answer \(set)", done, total, unit: "prompts")
            case let .evaluating(done, total): step("\(label): score", done, total, unit: "answers")
            case .perplexity: step("\(label): perplexity", 0, 1, unit: "texts")
            }
        case let .sampling(round, done, total):
            step("round \(round + 1): sample + score", done, total, unit: "prompts")
        case let .training(round, p, total):
            let label = round.map { "round \($0 + 1): train" } ?? "train"
            let extra = String(format: "loss %.4f%@  %.0f tok/s", p.loss, p.metrics["reward"].map { String(format: "  reward %.3f", $0) } ?? "", p.tokensPerSecond)
            if key != label {
                bar = ProgressBar(total: max((total ?? p.totalSteps) - p.startStep, 1), label: label, unit: "steps", quiet: quiet)
                key = label
            }
            bar?.update(p.step - p.startStep, extra: extra)
        }
    }

    private func step(_ label: String, _ done: Int, _ total: Int, unit: String) {
        if key != label {
            bar = ProgressBar(total: total, label: label, unit: unit, quiet: quiet)
            key = label
        }
        bar?.update(done, final: done >= total)
    }

    func finish() {}
}
