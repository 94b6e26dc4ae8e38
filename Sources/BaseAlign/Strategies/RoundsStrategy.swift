public import LanguageModels
public import Alignment
public import Foundation

/// A method that aligns in rounds (iterated on-policy DPO/IPO, best-of-N fine-tuning): each round
/// samples `samplesPerPrompt` candidates for `promptsPerRound` prompts with the current policy,
/// scores them with the reward, turns them into examples and trains on those for
/// `epochsPerRound` passes; the next round samples from the result. The loop, its budget and its
/// resumption are shared (`train`); a conformer says how candidates become examples and how one
/// round trains.
public protocol RoundsStrategy: AlignStrategy {
    associatedtype Example: Sendable
    /// What one example is called in progress messages ("pairs", "answers").
    var exampleNoun: String { get }
    /// The round's training examples from its scored candidates; prompts whose best and worst
    /// rewards differ by less than `minimumRewardGap` give none.
    func examples(from sets: [CandidateSet], configuration: AlignConfiguration) -> [Example]
    /// Trains on one round's examples (on the calling thread, which is not Swift's pool).
    func trainRound(_ examples: [Example], run: AlignTrainingRun, stage: RoundStage,
                    progress: @escaping (TrainingProgress) -> Bool) throws -> TrainingSummary
    /// The round's scored candidates (on a training thread); nil when `stop` ended it early. The
    /// default samples `samplesPerPrompt` answers per prompt (`sampleCandidates`).
    func candidates(_ run: AlignTrainingRun, prompts: [(id: String, messages: [ChatMessage])], round: Int, directory: URL,
                    stop: () -> Bool) throws -> [CandidateSet]?
    /// What `candidates` does to each prompt, for progress messages ("sampling 4 answers").
    func candidatePhase(_ configuration: AlignConfiguration) -> String
}

/// Where one round's training starts and what it may use.
public struct RoundStage: Sendable {
    public var round: Int
    public var steps: Int
    public var batchSize: Int
    public var seed: UInt64
    /// The runner's folder for this round.
    public var directory: URL
    /// The previous round's adapter, which this round continues (nil in the first round).
    public var previousAdapter: String?
    public var warmupSteps: Int

    /// The runner's parameters for this stage.
    public func parameters<O: TrainingObjective>(_ run: AlignTrainingRun) -> TrainingRunner<O>.Parameters {
        run.runnerParameters(steps: steps, seed: seed, directory: directory, initialAdapter: previousAdapter, warmup: warmupSteps, batchSize: batchSize)
    }
}

extension RoundsStrategy {
    public func candidates(_ run: AlignTrainingRun, prompts: [(id: String, messages: [ChatMessage])], round: Int, directory: URL,
                           stop: () -> Bool) throws -> [CandidateSet]? {
        try run.sampleCandidates(prompts, round: round, directory: directory, stop: stop)
    }

    public func candidatePhase(_ c: AlignConfiguration) -> String { "sampling \(c.samplesPerPrompt) answers" }

    public func validate(_ c: AlignConfiguration) throws(AlignError) { try validateRounds(c) }

    /// The checks every rounds method shares: prompts per round, epochs, the reward gap.
    public func validateRounds(_ c: AlignConfiguration) throws(AlignError) {
        if c.promptsPerRound < 1 { throw .invalidConfiguration(field: "prompts-per-round", message: "must be at least 1, got \(c.promptsPerRound)") }
        if c.epochsPerRound < 1 { throw .invalidConfiguration(field: "epochs-per-round", message: "must be at least 1, got \(c.epochsPerRound)") }
        if !(c.minimumRewardGap >= 0) { throw .invalidConfiguration(field: "min-reward-gap", message: "must be >= 0, got \(c.minimumRewardGap)") }
    }

    /// Rounds until the steps or the budget are used, three rounds in a row give no examples, or
    /// the user stops the run.
    public func train(_ run: AlignTrainingRun, state: inout AlignRunState) async throws -> Bool {
        let c = run.configuration
        while true {
            if let s = c.steps, state.stepsDone >= s { state.stopReason = "steps"; break }
            if state.roundsDone > 0, run.timeUp() { state.stopReason = "budget"; break }
            if state.roundsWithoutExamples >= 3 {
                state.stopReason = "no-signal"
                run.events(.note("three rounds in a row gave no training examples (rewards did not separate answers); stopping"))
                break
            }
            // The policy that samples round r is round r-1's result.
            if let latest = state.latestAdapter, !run.policy.model.hasLoRA {
                try PEFTAdapter.load(from: run.url(latest), into: run.policy.model)
            }
            guard let size = roundSize(run, state: state) else { state.stopReason = "budget"; break }
            switch try await round(run, prompts: size, state: &state) {
            case .next: continue
            case .stopped: return true
            case .budgetSpent: state.stopReason = "budget"
            }
            break
        }
        return false
    }

    /// Prompts for the next round: all of `promptsPerRound`, or on a budget as many as the rounds
    /// so far say will fit; nil when too few would remain (a round cut during sampling trains on
    /// nothing).
    func roundSize(_ run: AlignTrainingRun, state: AlignRunState) -> Int? {
        let c = run.configuration
        guard let deadline = run.deadline, state.roundsDone > 0, let spent = state.roundSeconds, spent > 0 else { return c.promptsPerRound }
        let perRound = spent / Double(state.roundsDone)
        let fits = (deadline - run.now) / perRound
        guard fits < 1 else { return c.promptsPerRound }
        let shrunk = Int(Double(c.promptsPerRound) * fits * 0.9)
        if shrunk < min(c.promptsPerRound, max(c.batchSize, 4)) {
            run.events(.note(String(format: "%.0f s of budget left, a round takes ~%.0f s: no further round", deadline - run.now, perRound)))
            return nil
        }
        return shrunk
    }

    /// One round: sample and score, build examples, train; records the round in `state`.
    func round(_ run: AlignTrainingRun, prompts count: Int, state: inout AlignRunState) async throws -> RoundOutcome {
        let c = run.configuration, r = state.roundsDone
        let roundURL = run.url(String(format: "round-%03d", r))
        let roundStart = run.now
        let chosen = (r * c.promptsPerRound..<(r * c.promptsPerRound + count)).map { promptAt($0, run: run) }
        run.events(.phase("round \(r + 1): \(candidatePhase(c)) for each of \(chosen.count) prompts"))
        let shouldStop = run.shouldStop, timeUp = run.timeUp
        let sets = try await onThread {
            try self.candidates(run, prompts: chosen, round: r, directory: roundURL, stop: { shouldStop() || (r > 0 && timeUp()) })
        }
        guard let sets else { return shouldStop() ? .stopped : .budgetSpent }
        let examples = self.examples(from: sets, configuration: c)
        if examples.isEmpty {
            run.events(.note("round \(r + 1): no prompt's answers differed by \(c.minimumRewardGap) in reward; nothing to train"))
            state.roundsWithoutExamples += 1
            state.roundsDone += 1
            try run.save(&state)
            return .next
        }
        state.roundsWithoutExamples = 0
        let batch = min(c.batchSize, examples.count)
        let roundSteps = (examples.count + batch - 1) / batch * c.epochsPerRound
        let stage = RoundStage(
            round: r, steps: c.steps.map { min(roundSteps, $0 - state.stepsDone) } ?? roundSteps, batchSize: batch,
            seed: SplitMix64.derive(c.seed, UInt64(r)), directory: roundURL.appendingPathComponent("train"),
            previousAdapter: state.latestAdapter.map { run.url($0).path }, warmupSteps: r == 0 ? c.warmupSteps : 0)
        run.events(.phase("round \(r + 1): \(method.rawValue) on \(examples.count) \(exampleNoun), \(stage.steps) steps"))
        let summary = try await trainOnThread(examples, run: run, stage: stage, stepsBefore: state.stepsDone, state: &state)
        if summary.stopped && shouldStop() { return .stopped }
        state.stepsDone += summary.steps
        state.examplesTrained += examples.count
        state.roundsDone += 1
        if summary.stopped {
            state.latestAdapter = summary.output.map { String(format: "round-%03d/train/", r) + $0.lastPathComponent }
            return .budgetSpent
        }
        state.roundSeconds = (state.roundSeconds ?? 0) + run.now - roundStart
        state.latestAdapter = String(format: "round-%03d/train/final", r)
        try run.save(&state)
        return .next
    }

    /// `trainRound` on a thread of its own, with progress events, the stop and budget checks, and
    /// the round's time and tokens added to `state`.
    func trainOnThread(_ examples: [Example], run: AlignTrainingRun, stage: RoundStage, stepsBefore: Int,
                       state: inout AlignRunState) async throws -> TrainingSummary {
        let t0 = run.now
        let meter = TokenMeter()
        let events = run.events, shouldStop = run.shouldStop, timeUp = run.timeUp
        let summary = try await onThread {
            try self.trainRound(examples, run: run, stage: stage) { p in
                meter.add(p)
                events(.training(round: stage.round, progress: p, totalSteps: stage.steps))
                return !shouldStop() && !(timeUp() && stepsBefore + p.step >= 1)
            }
        }
        state.trainingSeconds += run.now - t0
        state.trainingTokens += meter.tokens
        return summary
    }

    /// The q-th prompt of the run's stream: prompts in epochs of seeded shuffles, so round r takes
    /// positions [r P, (r + 1) P).
    func promptAt(_ q: Int, run: AlignTrainingRun) -> (id: String, messages: [ChatMessage]) {
        let n = run.prompts.count
        return run.prompts[SplitMix64.permutation(count: n, seed: SplitMix64.derive(run.configuration.seed, 0xE90C, UInt64(q / n)))[q % n]]
    }
}

/// How a round ended.
enum RoundOutcome {
    /// Go on with the next round.
    case next
    /// The user stopped the run.
    case stopped
    /// The budget ended training.
    case budgetSpent
}
