public import Alignment
import Foundation

/// Iterated on-policy DPO or IPO: each round ranks a prompt's candidates by the reward and trains
/// on the best answer over the worst (`PreferenceObjective`).
public struct PreferenceRoundsStrategy: RoundsStrategy {
    public var loss: PreferenceObjective.Loss

    public init(loss: PreferenceObjective.Loss) { self.loss = loss }

    public var method: AlignMethod { loss == .ipo ? .ipo : .dpo }

    /// β = 0.1 (TRL's DPO default); half of the default 4 candidates are guided toward the target.
    public var defaults: AlignMethodDefaults { AlignMethodDefaults(learningRate: 1e-4, beta: 0.1, guidedSamples: 2) }

    public var exampleNoun: String { "pairs" }

    /// Best versus worst answer of each prompt whose rewards differ by at least the gap.
    public func examples(from sets: [CandidateSet], configuration: AlignConfiguration) -> [PreferenceExample] {
        sets.compactMap { s in
            guard let best = s.rewards.indices.max(by: { s.rewards[$0] < s.rewards[$1] }),
                  let worst = s.rewards.indices.min(by: { s.rewards[$0] < s.rewards[$1] }),
                  s.rewards[best] - s.rewards[worst] >= configuration.minimumRewardGap, best != worst else { return nil }
            return PreferenceExample(prompt: s.messages, chosen: s.answers[best], rejected: s.answers[worst],
                                     chosenFinished: s.isFinished(best), rejectedFinished: s.isFinished(worst))
        }
    }

    public func trainRound(_ pairs: [PreferenceExample], run: AlignTrainingRun, stage: RoundStage,
                           progress: @escaping (TrainingProgress) -> Bool) throws -> TrainingSummary {
        let c = run.configuration
        var options = PreferenceObjective.Options()
        options.loss = loss
        options.beta = c.beta
        options.maxLength = c.maxPromptTokens + c.maxNewTokens + 8
        let objective = PreferenceObjective(model: run.policy, examples: pairs, options: options)
        let parameters: TrainingRunner<PreferenceObjective>.Parameters = stage.parameters(run)
        return try TrainingRunner(objective: objective, parameters: parameters).run(progress: progress)
    }
}
