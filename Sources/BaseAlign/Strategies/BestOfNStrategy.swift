public import Alignment
import Foundation

/// Best-of-N fine-tuning (rejection sampling): each round fine-tunes on every prompt's
/// best-rewarded answer (`SFTObjective`), with the capability retention term (`CapabilityRetention`)
/// when the configuration has one.
public struct BestOfNStrategy: RoundsStrategy {
    public init() {}

    public var method: AlignMethod { .bonSFT }

    /// 2e-4, chosen on the prompt sets' validation split (docs/experiments.md, issue 24): 5e-4
    /// moved the distance a little more but raised the capability text's perplexity x1.29 against
    /// x1.07 at 2e-4.
    /// The retention's defaults are `RetentionSettings`'.
    public var defaults: AlignMethodDefaults {
        AlignMethodDefaults(learningRate: 2e-4, beta: 0.1, guidedSamples: 2, retention: RetentionSettings(path: RetentionSettings.defaultPath))
    }

    public var exampleNoun: String { "answers" }

    /// The best answer of each prompt whose rewards differ by at least the gap.
    public func examples(from sets: [CandidateSet], configuration: AlignConfiguration) -> [SFTExample] {
        sets.compactMap { s in
            guard let hi = s.rewards.max(), let lo = s.rewards.min(), hi - lo >= configuration.minimumRewardGap else { return nil }
            return SFTExample.bestOfN(prompt: s.messages, candidates: s.answers, rewards: s.rewards,
                                      finished: s.answers.indices.map(s.isFinished))
        }
    }

    public func trainRound(_ items: [SFTExample], run: AlignTrainingRun, stage: RoundStage,
                           progress: @escaping (TrainingProgress) -> Bool) throws -> TrainingSummary {
        let c = run.configuration
        let objective = SFTObjective(model: run.policy, examples: items, maxLength: c.maxPromptTokens + c.maxNewTokens + 8, retention: run.retention)
        let parameters: TrainingRunner<SFTObjective>.Parameters = stage.parameters(run)
        return try TrainingRunner(objective: objective, parameters: parameters).run(progress: progress)
    }
}
