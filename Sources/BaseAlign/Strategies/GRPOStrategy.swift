public import Alignment
import Foundation

/// GRPO: groups of `samplesPerPrompt` answers per prompt sampled by the policy as it trains,
/// group-normalised advantages, a clipped ratio and the k3 KL to the frozen model with weight β.
public struct GRPOStrategy: AlignStrategy {
    public init() {}

    public var method: AlignMethod { .grpo }

    /// β is GRPO's KL weight (TRL's default 0.04); every sample must come from the policy.
    public var defaults: AlignMethodDefaults { AlignMethodDefaults(learningRate: 1e-4, beta: 0.04, guidedSamples: 0) }

    public func validate(_ c: AlignConfiguration) throws(AlignError) {
        if c.guidedSamples > 0 {
            throw .invalidConfiguration(field: "guided-samples", message: "applies to dpo, ipo and bon-sft (GRPO's samples must come from the policy)")
        }
    }

    public func validate(trainingPrompts count: Int, configuration c: AlignConfiguration) throws(AlignError) {
        if count < c.batchSize {
            throw .invalidConfiguration(field: "batch-size", message: "\(count) training prompts cannot fill one GRPO step of \(c.batchSize) prompts")
        }
    }

    public func train(_ run: AlignTrainingRun, state: inout AlignRunState) async throws -> Bool {
        let c = run.configuration
        run.events(.phase("GRPO: \(c.batchSize) prompts x \(c.samplesPerPrompt) answers per step"))
        var options = GRPOObjective.Options()
        options.groupSize = c.samplesPerPrompt
        options.temperature = c.temperature
        options.topP = c.topP
        options.maxCompletionTokens = c.maxNewTokens
        options.maxPromptTokens = c.maxPromptTokens
        options.beta = c.beta
        let objective = GRPOObjective(model: run.policy, prompts: run.prompts.map(\.messages), reward: run.reward, options: options)
        let parameters: TrainingRunner<GRPOObjective>.Parameters = run.runnerParameters(
            steps: c.steps ?? 1_000_000, seed: c.seed, directory: run.url("train"), initialAdapter: nil, warmup: c.warmupSteps)
        let runner = TrainingRunner(objective: objective, parameters: parameters)
        let t0 = run.now
        let meter = TokenMeter()
        let events = run.events, shouldStop = run.shouldStop, timeUp = run.timeUp
        let summary = try await onThread {
            try runner.run { p in
                meter.add(p)
                events(.training(round: nil, progress: p, totalSteps: c.steps))
                // At least one step, even on a budget that is already spent.
                return !shouldStop() && !(timeUp() && p.step >= 1)
            }
        }
        state.trainingSeconds += run.now - t0
        state.stepsDone = summary.steps
        state.trainingTokens += meter.tokens
        if summary.stopped && shouldStop() { return true }
        state.stopReason = summary.stopped ? "budget" : "steps"
        return false
    }
}
