public import Alignment
public import Foundation
public import LanguageModels
import MLXEngine
import MLXNN
public import ValueSpace

/// What an alignment run reports while it works.
public enum AlignEvent: Sendable {
    case phase(String)
    case measuring(label: String, stage: HeldOutEvaluation.Stage)
    case sampling(round: Int, done: Int, total: Int)
    case training(round: Int?, progress: TrainingProgress, totalSteps: Int?)
    case note(String)
}

/// Progress of a run across processes (`state.json` in the run folder).
public struct AlignRunState: Sendable, Codable, Equatable {
    /// Wall-clock seconds spent by this run over all its processes.
    public var elapsedSeconds = 0.0
    public var beforeSeconds: Double?
    public var trainingSeconds = 0.0
    public var trainingTokens = 0
    public var afterSeconds: Double?
    /// DPO / IPO / best-of-N: rounds trained; GRPO: 0.
    public var roundsDone = 0
    public var stepsDone = 0
    public var examplesTrained = 0
    public var roundsWithoutExamples = 0
    /// The newest trained adapter (run-folder relative): the policy of the next round.
    public var latestAdapter: String?
    /// `PEFTAdapter.fingerprint` of the policy the run began with: a run folder only continues
    /// (or shows its report) with the same base model.
    public var modelFingerprint: String?
    /// Wall time of the completed rounds (sampling, scoring, training), to fit the last round
    /// into a budget.
    public var roundSeconds: Double?
    public var trainingDone = false
    /// Why training ended: "steps", "budget", "no-signal".
    public var stopReason: String?
    public init() {}
}

/// `valuealign align`: measure the policy on held-out prompts, align it toward the target by
/// the chosen method, re-measure, and write the adapter (PEFT layout) and the report.
///
/// The run folder holds everything: `config.json`, `state.json`, `before/`, the training
/// rounds (`round-NNN/` with candidates and the runner's checkpoints, or `train/` for GRPO),
/// `adapter/`, `after/`, `report.{json,html,md}`. Rerunning the same command in the same folder
/// continues where the last process stopped; with `steps` (and no budget) the result is the
/// one an uninterrupted run gives.
public final class AlignmentJob: @unchecked Sendable {
    /// The second measurement's expected time over the first's (the adapter costs time).
    static let afterMeasurementFactor = 1.5
    /// Below this a budget cannot cover two measurements and a training step.
    public static let minimumBudgetSeconds = 60.0

    public let configuration: AlignConfiguration
    public let directory: URL
    public let backend: LocalChatBackend
    public let evaluator: any ValueEvaluator
    /// Measures beside the evaluator and is never optimised (issue 24, item 6); nil: none.
    public let gold: (any ValueEvaluator)?
    public let reward: RewardFunction
    /// Name of the reward, for the report.
    public let rewardName: String
    var policy: LoadedModel { backend.loaded }

    /// - Parameters:
    ///   - policy: the model to align (LoRA adapters are attached to it in place).
    ///   - evaluator: measures held-out answers (and gives BaseAlign's reward unless `reward` is set).
    ///   - reward: e.g. a reward model's `rewardFunction` for the RLHF baseline.
    ///   - gold: a second evaluator that only measures; the report gives its distance change and
    ///     the proxy-gold gap.
    public init(configuration: AlignConfiguration, directory: URL, policy: LoadedModel, evaluator: any ValueEvaluator,
                gold: (any ValueEvaluator)? = nil, reward: RewardFunction? = nil, rewardName: String? = nil) {
        self.configuration = configuration
        self.directory = directory
        self.backend = LocalChatBackend(policy)
        self.evaluator = evaluator
        self.gold = gold
        let baseAlign = BaseAlignReward(evaluator: evaluator, target: configuration.target, klWeight: Double(configuration.beta))
        self.reward = reward ?? baseAlign.function
        self.rewardName = rewardName ?? (reward == nil ? "BaseAlign (-(distance + untouched-value charge) to \(configuration.target.name), \(evaluator.name))" : "custom")
    }

    var evaluation: HeldOutEvaluation {
        var e = HeldOutEvaluation(sets: configuration.evaluation, target: configuration.target, maxNewTokens: configuration.evaluationMaxNewTokens,
                                  batchSize: configuration.generationBatchSize, bootstrap: configuration.bootstrap)
        e.gold = gold
        return e
    }

    func url(_ name: String) -> URL { directory.appendingPathComponent(name) }

    // MARK: validation

    /// Checks the configuration, every prompt file, the held-out text and the run folder, before
    /// any work. Returns the training prompts.
    @discardableResult
    public func validate() throws -> [(id: String, messages: [ChatMessage])] {
        try validatedInputs().prompts
    }

    /// `validate`, returning what the run needs from the files: the training prompts and the
    /// retention answers (read once per run).
    func validatedInputs() throws -> (prompts: [(id: String, messages: [ChatMessage])], retention: CapabilityRetention?) {
        try configuration.validate()
        let prompts = try trainingPrompts()
        let retention = try retentionExamples()
        _ = try evaluation.checkPrompts()
        let room = policy.model.configuration.maxPositionEmbeddings
        if configuration.maxNewTokens >= room || configuration.evaluationMaxNewTokens >= room {
            throw AlignError.invalidConfiguration(field: "max-new-tokens", message: "leaves no room for a prompt in the model's context of \(room)")
        }
        let configURL = url("config.json")
        if FileManager.default.fileExists(atPath: configURL.path) {
            let existing: AlignConfiguration
            do { existing = try AlignmentFiles.readJSON(AlignConfiguration.self, from: configURL) } catch {
                throw AlignError.runDirectory(path: directory.path, message: "config.json is unreadable (\(error)); use another --out or --restart")
            }
            if existing != configuration {
                throw AlignError.runDirectory(path: directory.path, message: "holds a run with another configuration; use another --out, or --restart to discard it")
            }
        }
        if let state = try? AlignmentFiles.readJSON(AlignRunState.self, from: url("state.json")),
           let recorded = state.modelFingerprint {
            let current = PEFTAdapter.fingerprint(policy.model.configuration)
            if recorded != current {
                throw AlignError.runDirectory(path: directory.path, message: "holds a run (and adapters) for another base model (\(recorded)); this model is \(current); use another --out, or --restart to discard it")
            }
        }
        return (prompts, retention)
    }

    /// The training prompts of every file, with the split filter; ids are prefixed by the file
    /// name so that two files may reuse ids.
    public func trainingPrompts() throws -> [(id: String, messages: [ChatMessage])] {
        var result = try GenerationJob.conversations(of: configuration.prompts, split: configuration.trainSplit)
        // A limit keeps a seeded random subset (in file order), so that it draws from every file
        // rather than only the first.
        if let limit = configuration.trainLimit, limit < result.count {
            let keep = Set(SplitMix64.permutation(count: result.count, seed: SplitMix64.derive(configuration.seed, 0x7121, 0)).prefix(limit))
            result = result.indices.filter(keep.contains).map { result[$0] }
        }
        guard result.count >= 1 else { throw AlignError.data("no training prompts") }
        try configuration.method.strategy.validate(trainingPrompts: result.count, configuration: configuration)
        return result
    }

    /// The capability retention term's answers (nil: no retention), checked as the trainer checks
    /// them (so that too many rows fail here, before any work, not after the first measurement).
    public func retentionExamples() throws -> CapabilityRetention? {
        guard let a = configuration.retention else { return nil }
        do {
            let retention = CapabilityRetention(examples: try CapabilityRetention.loadPairs(a.path), weight: a.weight, rowsPerBatch: a.rowsPerBatch)
            try retention.validate()
            return retention
        } catch {
            throw AlignError.data("--retain: \(error)")
        }
    }

    // MARK: the run

    /// The outcome of `run`.
    public enum Outcome: Sendable {
        case finished(AlignmentReport)
        /// Stopped by `shouldStop` (Ctrl-C); the run folder resumes.
        case stopped(String)
    }

    public func run(events: @escaping @Sendable (AlignEvent) -> Void = { _ in }, shouldStop: @escaping @Sendable () -> Bool = { false }) async throws -> Outcome {
        let (prompts, retention) = try validatedInputs()
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        try AlignmentFiles.writeJSON(configuration, to: url("config.json"))
        var state = (try? AlignmentFiles.readJSON(AlignRunState.self, from: url("state.json"))) ?? AlignRunState()
        if state.modelFingerprint == nil { state.modelFingerprint = PEFTAdapter.fingerprint(policy.model.configuration) }
        let clock = RunClock(offset: state.elapsedSeconds)
        if state.afterSeconds != nil, let done = try? AlignmentFiles.readJSON(AlignmentReport.self, from: url("report.json")) {
            events(.note("\(directory.path) holds a finished run; showing its report (--restart to run again)"))
            return .finished(done)
        }
        // The budget's deadline is set once the first measurement's time is known.
        var run = AlignTrainingRun(configuration: configuration, policy: policy, reward: reward, prompts: prompts, directory: directory,
                                   deadline: nil, events: events, shouldStop: shouldStop, clock: clock)
        run.retention = retention

        // 1. Before: the policy as given (no adapter).
        let before = try await measureBefore(run, state: &state)
        if shouldStop() { try run.save(&state); return .stopped("stopped after the first measurement") }

        // 2. Training, by the configuration's method.
        if !state.trainingDone {
            // Leave room for the second measurement and the report: the first measurement's time
            // times the adapter's cost, plus a margin. (Measured on the 2-core machine at 77b3bf2:
            // 119.7 s after against 85.1 s before, x1.41: the adapter's products in prefill and
            // decode, and slightly longer answers; at 7dd9332, before adapters decoded fused, x1.65.)
            let reserve = (state.beforeSeconds ?? before.seconds) * AlignmentJob.afterMeasurementFactor + 20
            run = run.withDeadline(configuration.budgetSeconds.map { $0 - reserve })
            if let d = run.deadline, clock.now >= d {
                events(.note("the budget leaves no time to train after the first measurement (\(DurationText.format(clock.now)) used); training one step anyway"))
            }
            let stopped = try await configuration.method.strategy.train(run, state: &state)
            if stopped { try run.save(&state); return .stopped("stopped during training; rerun the same command to continue") }
            try PEFTAdapter.save(policy.model, configuration: configuration.lora, to: url("adapter"), baseModel: policy.name)
            state.trainingDone = true
            try run.save(&state)
        } else if !policy.model.hasLoRA {
            try PEFTAdapter.load(from: url("adapter"), into: policy.model)
        }

        // 3. After: the policy with its adapter; 4. the report.
        return .finished(try await measureAfterAndReport(run, before: before, state: &state))
    }

    /// The first measurement, or the one a previous process of this run saved.
    func measureBefore(_ run: AlignTrainingRun, state: inout AlignRunState) async throws -> HeldOutSummary {
        if let done = try? HeldOutEvaluation.load(url("before")).0, state.beforeSeconds != nil { return done }
        guard !policy.model.hasLoRA else {
            throw AlignError.invalidConfiguration(field: "model", message: "the policy already has LoRA layers; the before measurement needs the base model")
        }
        let events = run.events
        events(.phase("measuring the model before training on held-out prompts"))
        let t0 = run.now
        let before = try await evaluation.run(label: "before", backend: backend, evaluator: evaluator, directory: url("before")) { events(.measuring(label: "before", stage: $0)) }
        state.beforeSeconds = run.now - t0
        try run.save(&state)
        return before
    }

    /// The second measurement (always redone: it is the run's last step) and the report.
    func measureAfterAndReport(_ run: AlignTrainingRun, before: HeldOutSummary, state: inout AlignRunState) async throws -> AlignmentReport {
        let events = run.events
        events(.phase("measuring the aligned model on held-out prompts"))
        let t1 = run.now
        try? FileManager.default.removeItem(at: url("after/summary.json"))
        let after = try await evaluation.run(label: "after", backend: backend, evaluator: evaluator, directory: url("after")) { events(.measuring(label: "after", stage: $0)) }
        state.afterSeconds = run.now - t1
        try run.save(&state)
        let report = try AlignmentReport(
            configuration: configuration, rewardName: rewardName, before: before, after: after,
            beforeAnswers: try HeldOutEvaluation.load(url("before")).1, afterAnswers: try HeldOutEvaluation.load(url("after")).1, state: state)
        try report.write(to: directory)
        return report
    }
}
