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

/// One training prompt's sampled answers and their rewards (`round-NNN/candidates.jsonl`).
public struct CandidateSet: Sendable, Codable, Equatable {
    public var id: String
    public var messages: [ChatMessage]
    public var answers: [String]
    public var rewards: [Double]
    /// Per answer: whether it ended on its own (end of turn or a stop string) rather than at
    /// `maxNewTokens`. Nil in files written before it was recorded (read as all finished).
    public var finished: [Bool]?

    public init(id: String, messages: [ChatMessage], answers: [String], rewards: [Double], finished: [Bool]? = nil) {
        self.id = id
        self.messages = messages
        self.answers = answers
        self.rewards = rewards
        self.finished = finished
    }

    func isFinished(_ i: Int) -> Bool { finished.map { i < $0.count ? $0[i] : true } ?? true }
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
    public let reward: RewardFunction
    /// Name of the reward, for the report.
    public let rewardName: String
    var policy: LoadedModel { backend.loaded }

    /// - Parameters:
    ///   - policy: the model to align (LoRA adapters are attached to it in place).
    ///   - evaluator: measures held-out answers (and gives BaseAlign's reward unless `reward` is set).
    ///   - reward: e.g. a reward model's `rewardFunction` for the RLHF baseline.
    public init(configuration: AlignConfiguration, directory: URL, policy: LoadedModel, evaluator: any ValueEvaluator,
                reward: RewardFunction? = nil, rewardName: String? = nil) {
        self.configuration = configuration
        self.directory = directory
        self.backend = LocalChatBackend(policy)
        self.evaluator = evaluator
        let baseAlign = BaseAlignReward(evaluator: evaluator, target: configuration.target, klWeight: Double(configuration.beta))
        self.reward = reward ?? baseAlign.function
        self.rewardName = rewardName ?? (reward == nil ? "BaseAlign (-distance to \(configuration.target.name), \(evaluator.name))" : "custom")
    }

    var evaluation: HeldOutEvaluation {
        HeldOutEvaluation(sets: configuration.evaluation, target: configuration.target, maxNewTokens: configuration.evaluationMaxNewTokens,
                          batchSize: configuration.generationBatchSize, bootstrap: configuration.bootstrap)
    }

    func url(_ name: String) -> URL { directory.appendingPathComponent(name) }

    // MARK: validation

    /// Checks the configuration, every prompt file, the held-out text and the run folder, before
    /// any work. Returns the training prompts.
    @discardableResult
    public func validate() throws -> [(id: String, messages: [ChatMessage])] {
        try configuration.validate()
        let prompts = try trainingPrompts()
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
        return prompts
    }

    /// The training prompts of every file, with the split filter; ids are prefixed by the file
    /// name so that two files may reuse ids.
    public func trainingPrompts() throws -> [(id: String, messages: [ChatMessage])] {
        var result: [(String, [ChatMessage])] = []
        for path in configuration.prompts {
            var p = GenerationJob.Parameters(promptsPath: path, outputPath: "/dev/null")
            p.split = configuration.trainSplit
            let file = URL(fileURLWithPath: path).deletingPathExtension().lastPathComponent
            for (id, record) in try GenerationJob(p).loadPrompts() { result.append(("\(file):\(id)", record.conversation)) }
        }
        // A limit keeps a seeded random subset (in file order), so that it draws from every file
        // rather than only the first.
        if let limit = configuration.trainLimit, limit < result.count {
            let keep = Set(Self.shuffled(result.count, seed: Alignment.SplitMix64.derive(configuration.seed, 0x7121, 0)).prefix(limit))
            result = result.indices.filter(keep.contains).map { result[$0] }
        }
        guard result.count >= 1 else { throw AlignError.data("no training prompts") }
        if configuration.method == .grpo, result.count < configuration.batchSize {
            throw AlignError.invalidConfiguration(field: "batch-size", message: "\(result.count) training prompts cannot fill one GRPO step of \(configuration.batchSize) prompts")
        }
        return result
    }

    // MARK: the run

    /// The outcome of `run`.
    public enum Outcome: Sendable {
        case finished(AlignmentReport)
        /// Stopped by `shouldStop` (Ctrl-C); the run folder resumes.
        case stopped(String)
    }

    public func run(events: @escaping @Sendable (AlignEvent) -> Void = { _ in }, shouldStop: @escaping @Sendable () -> Bool = { false }) async throws -> Outcome {
        let prompts = try validate()
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        try AlignmentFiles.writeJSON(configuration, to: url("config.json"))
        var state = (try? AlignmentFiles.readJSON(AlignRunState.self, from: url("state.json"))) ?? AlignRunState()
        if state.modelFingerprint == nil { state.modelFingerprint = PEFTAdapter.fingerprint(policy.model.configuration) }
        let clock = RunClock(offset: state.elapsedSeconds)
        func save() throws { try persist(&state, clock: clock) }
        if state.afterSeconds != nil, let done = try? AlignmentFiles.readJSON(AlignmentReport.self, from: url("report.json")) {
            events(.note("\(directory.path) holds a finished run; showing its report (--restart to run again)"))
            return .finished(done)
        }

        // 1. Before: the policy as given (no adapter).
        let before: HeldOutSummary
        if let done = try? HeldOutEvaluation.load(url("before")).0, state.beforeSeconds != nil {
            before = done
        } else {
            guard !policy.model.hasLoRA else {
                throw AlignError.invalidConfiguration(field: "model", message: "the policy already has LoRA layers; the before measurement needs the base model")
            }
            events(.phase("measuring the model before training on held-out prompts"))
            let t0 = clock.now
            before = try await evaluation.run(label: "before", backend: backend, evaluator: evaluator, directory: url("before")) { events(.measuring(label: "before", stage: $0)) }
            state.beforeSeconds = clock.now - t0
            try save()
        }
        if shouldStop() { try save(); return .stopped("stopped after the first measurement") }

        // 2. Training.
        if !state.trainingDone {
            // Leave room for the second measurement and the report: the first measurement's time
            // times the adapter's cost, plus a margin. (Measured on the 2-core machine at 77b3bf2:
            // 119.7 s after against 85.1 s before, x1.41: the adapter's products in prefill and
            // decode, and slightly longer answers; at 7dd9332, before adapters decoded fused, x1.65.)
            let reserve = (state.beforeSeconds ?? before.seconds) * AlignmentJob.afterMeasurementFactor + 20
            let deadline = configuration.budgetSeconds.map { $0 - reserve }
            if let d = deadline, clock.now >= d {
                events(.note("the budget leaves no time to train after the first measurement (\(DurationText.format(clock.now)) used); training one step anyway"))
            }
            let stopped = try await train(prompts: prompts, state: &state, clock: clock, deadline: deadline, events: events, shouldStop: shouldStop)
            if stopped { try save(); return .stopped("stopped during training; rerun the same command to continue") }
            try PEFTAdapter.save(policy.model, configuration: configuration.lora, to: url("adapter"), baseModel: policy.name)
            state.trainingDone = true
            try save()
        } else if !policy.model.hasLoRA {
            try PEFTAdapter.load(from: url("adapter"), into: policy.model)
        }

        // 3. After: the policy with its adapter.
        events(.phase("measuring the aligned model on held-out prompts"))
        let t1 = clock.now
        try? FileManager.default.removeItem(at: url("after/summary.json"))
        let after = try await evaluation.run(label: "after", backend: backend, evaluator: evaluator, directory: url("after")) { events(.measuring(label: "after", stage: $0)) }
        state.afterSeconds = clock.now - t1
        try save()

        // 4. Report.
        let beforeAnswers = try HeldOutEvaluation.load(url("before")).1
        let afterAnswers = try HeldOutEvaluation.load(url("after")).1
        let report = try AlignmentReport(
            configuration: configuration, rewardName: rewardName, before: before, after: after,
            beforeAnswers: beforeAnswers, afterAnswers: afterAnswers, state: state)
        try report.write(to: directory)
        return .finished(report)
    }

    /// Trains until the steps or the budget are used; returns true if `shouldStop` ended it.
    func train(prompts: [(id: String, messages: [ChatMessage])], state: inout AlignRunState, clock: RunClock, deadline: Double?,
               events: @escaping @Sendable (AlignEvent) -> Void, shouldStop: @escaping @Sendable () -> Bool) async throws -> Bool {
        func save() throws { try persist(&state, clock: clock) }
        let c = configuration
        let timeUp: @Sendable () -> Bool = { deadline.map { clock.now >= $0 } ?? false }
        switch c.method {
        case .grpo:
            events(.phase("GRPO: \(c.batchSize) prompts x \(c.samplesPerPrompt) answers per step"))
            var options = GRPOObjective.Options()
            options.groupSize = c.samplesPerPrompt
            options.temperature = c.temperature
            options.topP = c.topP
            options.maxCompletionTokens = c.maxNewTokens
            options.maxPromptTokens = c.maxPromptTokens
            options.beta = c.beta
            let objective = GRPOObjective(model: policy, prompts: prompts.map(\.messages), reward: reward, options: options)
            let parameters: TrainingRunner<GRPOObjective>.Parameters = runnerParameters(
                steps: c.steps ?? 1_000_000, seed: c.seed, directory: url("train"), initialAdapter: nil, warmup: c.warmupSteps)
            let runner = TrainingRunner(objective: objective, parameters: parameters)
            let t0 = clock.now
            let meter = TokenMeter()
            let summary = try await onThread {
                try runner.run { p in
                    meter.add(p)
                    events(.training(round: nil, progress: p, totalSteps: c.steps))
                    // At least one step, even on a budget that is already spent.
                    return !shouldStop() && !(timeUp() && p.step >= 1)
                }
            }
            state.trainingSeconds += clock.now - t0
            state.stepsDone = summary.steps
            state.trainingTokens += meter.tokens
            if summary.stopped && shouldStop() { return true }
            state.stopReason = summary.stopped ? "budget" : "steps"
            return false

        case .dpo, .ipo, .bonSFT:
            // Prompts in epochs of seeded shuffles; round r takes positions [r P, (r + 1) P).
            func promptAt(_ q: Int) -> (id: String, messages: [ChatMessage]) {
                prompts[Self.shuffled(prompts.count, seed: Alignment.SplitMix64.derive(c.seed, 0xE90C, UInt64(q / prompts.count)))[q % prompts.count]]
            }
            while true {
                if let s = c.steps, state.stepsDone >= s { state.stopReason = "steps"; break }
                if state.roundsDone > 0, timeUp() { state.stopReason = "budget"; break }
                if state.roundsWithoutExamples >= 3 { state.stopReason = "no-signal"; events(.note("three rounds in a row gave no training examples (rewards did not separate answers); stopping")); break }
                let r = state.roundsDone
                let roundURL = url(String(format: "round-%03d", r))
                // The policy that samples round r is round r-1's result.
                if let latest = state.latestAdapter, !policy.model.hasLoRA {
                    try PEFTAdapter.load(from: url(latest), into: policy.model)
                }
                // On a budget, a round that would not finish in time is shrunk to fit (measured by
                // the rounds so far), or skipped when too few prompts would remain: a round cut
                // during sampling trains on nothing.
                var roundPrompts = c.promptsPerRound
                if let deadline, state.roundsDone > 0, let spent = state.roundSeconds, spent > 0 {
                    let perRound = spent / Double(state.roundsDone)
                    let fits = (deadline - clock.now) / perRound
                    if fits < 1 {
                        roundPrompts = Int(Double(c.promptsPerRound) * fits * 0.9)
                        if roundPrompts < min(c.promptsPerRound, max(c.batchSize, 4)) {
                            events(.note(String(format: "%.0f s of budget left, a round takes ~%.0f s: no further round", deadline - clock.now, perRound)))
                            state.stopReason = "budget"
                            break
                        }
                    }
                }
                let roundStart = clock.now
                let chosen = (r * c.promptsPerRound..<(r * c.promptsPerRound + roundPrompts)).map(promptAt)
                events(.phase("round \(r + 1): sampling \(c.samplesPerPrompt) answers for each of \(chosen.count) prompts"))
                let sets = try await onThread { [self] in
                    try sampleCandidates(chosen, round: r, directory: roundURL, events: events, stop: { shouldStop() || (r > 0 && timeUp()) })
                }
                guard let sets else {
                    if shouldStop() { return true }
                    state.stopReason = "budget"
                    break
                }
                let examples: Examples = c.method == .bonSFT ? .sft(bestOfN(sets)) : .pairs(preferencePairs(sets))
                let count = examples.count
                if count == 0 {
                    events(.note("round \(r + 1): no prompt's answers differed by \(c.minimumRewardGap) in reward; nothing to train"))
                    state.roundsWithoutExamples += 1
                    state.roundsDone += 1
                    try save()
                    continue
                }
                state.roundsWithoutExamples = 0
                let batch = min(c.batchSize, count)
                let roundSteps = (count + batch - 1) / batch * c.epochsPerRound
                let steps = c.steps.map { min(roundSteps, $0 - state.stepsDone) } ?? roundSteps
                events(.phase("round \(r + 1): \(c.method.rawValue) on \(count) \(c.method == .bonSFT ? "answers" : "pairs"), \(steps) steps"))
                let previous = state.latestAdapter.map { url($0).path }
                let roundSeed = Alignment.SplitMix64.derive(c.seed, UInt64(r)), trainURL = roundURL.appendingPathComponent("train")
                let warmup = r == 0 ? c.warmupSteps : 0
                let t0 = clock.now
                let stepsBefore = state.stepsDone
                let meter = TokenMeter()
                let summary: TrainingSummary = try await onThread { [self] in
                    let progress: (TrainingProgress) -> Bool = { p in
                        meter.add(p)
                        events(.training(round: r, progress: p, totalSteps: steps))
                        return !shouldStop() && !(timeUp() && stepsBefore + p.step >= 1)
                    }
                    switch examples {
                    case let .pairs(pairs):
                        var o = PreferenceObjective.Options()
                        o.loss = c.method == .ipo ? .ipo : .dpo
                        o.beta = c.beta
                        o.maxLength = c.maxPromptTokens + c.maxNewTokens + 8
                        let p: TrainingRunner<PreferenceObjective>.Parameters = runnerParameters(
                            steps: steps, seed: roundSeed, directory: trainURL, initialAdapter: previous, warmup: warmup, batchSize: batch)
                        return try TrainingRunner(objective: PreferenceObjective(model: policy, examples: pairs, options: o), parameters: p).run(progress: progress)
                    case let .sft(items):
                        let p: TrainingRunner<SFTObjective>.Parameters = runnerParameters(
                            steps: steps, seed: roundSeed, directory: trainURL, initialAdapter: previous, warmup: warmup, batchSize: batch)
                        return try TrainingRunner(objective: SFTObjective(model: policy, examples: items, maxLength: c.maxPromptTokens + c.maxNewTokens + 8), parameters: p).run(progress: progress)
                    }
                }
                state.trainingSeconds += clock.now - t0
                state.trainingTokens += meter.tokens
                if summary.stopped {
                    if shouldStop() { return true }
                    state.latestAdapter = summary.output.map { String(format: "round-%03d/train/", r) + $0.lastPathComponent }
                    state.stepsDone += summary.steps
                    state.examplesTrained += count
                    state.roundsDone += 1
                    state.stopReason = "budget"
                    break
                }
                state.stepsDone += summary.steps
                state.examplesTrained += count
                state.roundsDone += 1
                state.roundSeconds = (state.roundSeconds ?? 0) + clock.now - roundStart
                state.latestAdapter = String(format: "round-%03d/train/final", r)
                try save()
            }
            return false
        }
    }

    func persist(_ state: inout AlignRunState, clock: RunClock) throws {
        state.elapsedSeconds = clock.now
        try AlignmentFiles.writeJSON(state, to: url("state.json"))
    }

    enum Examples: Sendable {
        case pairs([PreferenceExample])
        case sft([SFTExample])
        var count: Int {
            switch self {
            case let .pairs(p): p.count
            case let .sft(s): s.count
            }
        }
    }

    func preferencePairs(_ sets: [CandidateSet]) -> [PreferenceExample] {
        sets.compactMap { s in
            guard let best = s.rewards.indices.max(by: { s.rewards[$0] < s.rewards[$1] }),
                  let worst = s.rewards.indices.min(by: { s.rewards[$0] < s.rewards[$1] }),
                  s.rewards[best] - s.rewards[worst] >= configuration.minimumRewardGap, best != worst else { return nil }
            return PreferenceExample(prompt: s.messages, chosen: s.answers[best], rejected: s.answers[worst],
                                     chosenFinished: s.isFinished(best), rejectedFinished: s.isFinished(worst))
        }
    }

    func bestOfN(_ sets: [CandidateSet]) -> [SFTExample] {
        sets.compactMap { s in
            guard let hi = s.rewards.max(), let lo = s.rewards.min(), hi - lo >= configuration.minimumRewardGap else { return nil }
            return SFTExample.bestOfN(prompt: s.messages, candidates: s.answers, rewards: s.rewards,
                                      finished: s.answers.indices.map(s.isFinished))
        }
    }

    /// Samples and scores the round's candidates, appending to `candidates.jsonl` as it goes
    /// (a rerun samples only the prompts not yet there). Returns nil if `stop` ended it early.
    /// Row j of the round draws from seed + j whatever the batch, so a resumed round samples
    /// what an uninterrupted one would.
    func sampleCandidates(_ prompts: [(id: String, messages: [ChatMessage])], round: Int, directory: URL,
                          events: @Sendable (AlignEvent) -> Void, stop: () -> Bool) throws -> [CandidateSet]? {
        let c = configuration
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let path = directory.appendingPathComponent("candidates.jsonl").path
        var done: [String: CandidateSet] = [:]
        if FileManager.default.fileExists(atPath: path) {
            for (_, s) in try JSONLines.read(CandidateSet.self, from: path) { done[s.id] = s }
        }
        let k = c.samplesPerPrompt
        let perBatch = max(1, c.generationBatchSize / k)
        let generator = policy.makeGenerator()
        let roundSeed = Alignment.SplitMix64.derive(c.seed, 0x5A_3B, UInt64(round))
        let guidance = c.guidedSamples > 0 ? ValueGuidance.systemPrompt(for: c.target) : nil
        var index = 0
        events(.sampling(round: round, done: done.count, total: prompts.count))
        while index < prompts.count {
            if done[prompts[index].id] != nil { index += 1; continue }
            if stop() { return nil }
            var batch: [Int] = []
            while batch.count < perBatch, index < prompts.count, done[prompts[index].id] == nil {
                batch.append(index)
                index += 1
            }
            let room = min(c.maxPromptTokens, policy.model.configuration.maxPositionEmbeddings - c.maxNewTokens)
            var ids: [[Int]] = [], conversations: [[ChatMessage]] = []
            for i in batch {
                let tokens = Array(policy.promptTokens(prompts[i].messages).suffix(room))
                let guidedTokens = guidance.map { Array(policy.promptTokens(ValueGuidance.guided(prompts[i].messages, guidance: $0))
                    .suffix(policy.model.configuration.maxPositionEmbeddings - c.maxNewTokens)) }
                for s in 0..<k {
                    // The first `guidedSamples` candidates see the value-conditioned system prompt;
                    // every candidate is scored (and trained) on the prompt as it is.
                    ids.append(s < c.guidedSamples ? guidedTokens ?? tokens : tokens)
                    conversations.append(prompts[i].messages)
                }
            }
            let parameters = GenerationParameters(maxTokens: c.maxNewTokens, temperature: c.temperature, topP: c.topP,
                                                  seed: roundSeed &+ UInt64(batch[0] * k))
            let samples = try generator.generate(ids, parameters: parameters)
            let texts = samples.map(\.text)
            let reward = self.reward, asked = conversations
            let rewards = try blockingAwait { try await reward(asked, texts) }
            guard rewards.count == texts.count, rewards.allSatisfy(\.isFinite) else {
                throw TrainingError.reward("expected \(texts.count) finite rewards, got \(rewards)")
            }
            for (j, i) in batch.enumerated() {
                let set = CandidateSet(id: prompts[i].id, messages: prompts[i].messages,
                                       answers: Array(texts[(j * k)..<((j + 1) * k)]), rewards: Array(rewards[(j * k)..<((j + 1) * k)]),
                                       finished: samples[(j * k)..<((j + 1) * k)].map { $0.finishReason == .stop })
                try JSONLines.append(set, to: path)
                done[set.id] = set
            }
            events(.sampling(round: round, done: done.count, total: prompts.count))
        }
        return prompts.map { done[$0.id]! }
    }

    func runnerParameters<O: TrainingObjective>(steps: Int, seed: UInt64, directory: URL, initialAdapter: String?, warmup: Int, batchSize: Int? = nil) -> TrainingRunner<O>.Parameters {
        var p = TrainingRunner<O>.Parameters()
        p.steps = steps
        p.batchSize = batchSize ?? configuration.batchSize
        p.learningRate = configuration.learningRate
        p.decay = .constant
        p.warmupSteps = min(warmup, steps)
        p.lora = configuration.lora
        p.seed = seed
        p.runDirectory = directory.path
        p.checkpointEvery = 5
        p.keepCheckpoints = 1
        p.initialAdapter = initialAdapter
        p.baseModelName = policy.name
        p.matmulPrecision = configuration.matmulPrecision ?? .float32
        return p
    }

    static func shuffled(_ n: Int, seed: UInt64) -> [Int] {
        var order = Array(0..<n)
        var g = Alignment.SplitMix64(seed: seed)
        for i in stride(from: n - 1, to: 0, by: -1) {
            let j = Int(g.next() % UInt64(i + 1))
            order.swapAt(i, j)
        }
        return order
    }
}

/// Tokens trained, from the runner's per-step rates (called on the training thread only).
final class TokenMeter: @unchecked Sendable {
    private(set) var tokens = 0
    private var lastElapsed = 0.0
    func add(_ p: TrainingProgress) {
        tokens += Int((p.tokensPerSecond * (p.elapsed - lastElapsed)).rounded())
        lastElapsed = p.elapsed
    }
}

/// Seconds since the run began, over all its processes.
final class RunClock: Sendable {
    let offset: Double
    let start = Date()
    init(offset: Double) { self.offset = offset }
    var now: Double { offset + Date().timeIntervalSince(start) }
}

/// Runs blocking model work on a thread of its own (never on Swift's cooperative pool: the
/// training loop waits there for async rewards).
func onThread<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        let thread = Thread { continuation.resume(with: Result { try body() }) }
        thread.stackSize = 8 << 20
        thread.start()
    }
}
