import Alignment
import Foundation
import LanguageModels
import MLXEngine
import MLXNN
import Testing
import ValueAlignTesting
import ValueSpace

/// An evaluator that reads fixed vectors keyed by response text.
struct TableEvaluator: ValueEvaluator {
    let table: [String: ValueVector]
    var name: String { "table" }
    func evaluate(_ pairs: [ValuePair]) async throws -> [ValueAssessment] {
        pairs.map { ValueAssessment(vector: table[$0.response] ?? .zero, probabilities: []) }
    }
}

@Suite struct GRPOTests {
    @Test func advantagesAreGroupNormalised() {
        let a = GRPOObjective.advantages([1, 2, 3, 5, 5, 5], groupSize: 3, scale: true, epsilon: 1e-4)
        #expect(a.count == 6)
        // Group 1: mean 2, sample std 1.
        #expect(abs(a[0] + 1 / 1.0001) < 1e-9 && abs(a[1]) < 1e-12 && abs(a[2] - 1 / 1.0001) < 1e-9)
        // Group 2: all equal -> no signal.
        #expect(a[3...].allSatisfy { $0 == 0 })
        #expect(GRPOObjective.advantages([1, 3], groupSize: 2, scale: false, epsilon: 1e-4) == [-1, 1])
    }

    @Test func grpoRaisesARewardThatFavoursOneToken() async throws {
        let history = try await offPool { () throws -> [TrainingProgress] in
            let loaded = try tinyLoaded()
            // Favours answers that start with "a", falling to 0 at 32 byte values away from it.
            let reward: RewardFunction = { _, responses in
                responses.map { r in r.utf8.first.map { max(0, 1 - abs(Double($0) - 97) / 32) } ?? 0 }
            }
            var options = GRPOObjective.Options()
            options.groupSize = 8
            options.maxCompletionTokens = 1
            // The tiny random model is nearly one-hot at temperature 1; sampling hotter explores.
            options.temperature = 4
            let prompts: [[ChatMessage]] = [[.user("Say a")], [.user("Letter?")]]
            var p = toyParameters(GRPOObjective.self, steps: 20, batchSize: 2, learningRate: 1e-2)
            p.maxGradientNorm = 0
            var history: [TrainingProgress] = []
            try TrainingRunner(objective: GRPOObjective(model: loaded, prompts: prompts, reward: reward, options: options), parameters: p).run {
                history.append($0)
                return true
            }
            return history
        }
        #expect(history.count == 20)
        let early = history.prefix(3).map { $0.metrics["reward"]! }.reduce(0, +) / 3
        let late = history.suffix(5).map { $0.metrics["reward"]! }.reduce(0, +) / 5
        #expect(late > early + 0.2, "reward \(early) -> \(late)")
        #expect(history[0].metrics["kl"]! < 1e-6, "policy == reference at step 0")
        #expect(history.last!.metrics["kl"]! > 1e-3, "the policy moved away from the reference")
    }

    @Test func samplingFollowsTheSeedAndMultipleUpdatesClip() async throws {
        // (Expectations stay on the test's task: the work runs on a plain thread.)
        let (responsesA, responsesB, hasOld, hasReference, meanMatches, steps, clipLogged) = try await offPool {
            var options = GRPOObjective.Options()
            options.groupSize = 4
            options.maxCompletionTokens = 3
            options.iterations = 2
            let reward: RewardFunction = { _, responses in responses.map { Double($0.count) } }
            let a = GRPOObjective(model: try tinyLoaded(), prompts: [[.user("x")]], reward: reward, options: options)
            let b = GRPOObjective(model: try tinyLoaded(), prompts: [[.user("x")]], reward: reward, options: options)
            let batchA = try a.prepare([0], seed: 11), batchB = try b.prepare([0], seed: 11)
            // Two updates per sampled batch: 2 optimiser updates per step.
            var p = toyParameters(GRPOObjective.self, steps: 2, batchSize: 1)
            p.lora = LoRAConfiguration(rank: 4)
            let summary = try TrainingRunner(objective: a, parameters: p).run()
            return (batchA.batch.responseTexts, batchB.batch.responseTexts, batchA.batch.old != nil, batchA.batch.reference != nil,
                    batchA.metrics["reward"] == batchA.batch.rewards.reduce(0, +) / 4, summary.steps, summary.last?.metrics["clip_ratio"] != nil)
        }
        #expect(responsesA == responsesB)
        #expect(responsesA.count == 4)
        #expect(hasOld && hasReference && meanMatches)
        #expect(steps == 2 && clipLogged)
    }

    @Test func rewardFailuresAreReported() async throws {
        let (countError, sizeError) = try await offPool { () throws -> (String, String) in
            let short: RewardFunction = { _, _ in [1] }
            var options = GRPOObjective.Options()
            options.groupSize = 2
            options.maxCompletionTokens = 1
            let objective = GRPOObjective(model: try tinyLoaded(), prompts: [[.user("x")]], reward: short, options: options)
            var first = "", second = ""
            do { _ = try objective.prepare([0], seed: 1) } catch { first = "\(error)" }
            options.groupSize = 1
            let single = GRPOObjective(model: try tinyLoaded(), prompts: [[.user("x")]], reward: short, options: options)
            do { try single.validate() } catch { second = "\(error)" }
            return (first, second)
        }
        #expect(countError == "reward: returned 1 rewards for 2 answers")
        #expect(sizeError.contains("groupSize"))
    }

    @Test func baseAlignRewardIsTheNegativeDistance() async throws {
        let target = try ValueVector([.benevolence: 0.8, .security: 0.5, .power: -0.6])
        let near = try ValueVector([.benevolence: 0.7, .security: 0.4])
        let far = try ValueVector([.power: 0.9, .benevolence: -0.5])
        let untouched = try ValueVector([.benevolence: 0.2])  // below BaseAlign's 0.3 threshold: no cost
        let evaluator = TableEvaluator(table: ["kind": near, "cruel": far, "meh": untouched])
        // The paper's reward: -d(v, t), nothing for untouched values.
        let paper = BaseAlignReward(evaluator: evaluator, target: target, klWeight: 0.05, chargesUntouchedValues: false)
        let values = try await paper.function([[.user("p")], [.user("p")], [.user("p")]], ["kind", "cruel", "meh"])
        #expect(values.count == 3)
        #expect(abs(values[0] - -(0.1 * 0.8 + 0.1 * 0.5)) < 1e-12)
        #expect(abs(values[1] - -(1.5 * 0.6 + 1.3 * 0.8)) < 1e-12)
        #expect(values[2] == 0)
        #expect(values[0] > values[1])
        // The default also charges each strong target value left untouched (|t| - 0.3) * |t|.
        let reward = BaseAlignReward(evaluator: evaluator, target: target, klWeight: 0.05)
        let charged = try await reward.function([[.user("p")], [.user("p")], [.user("p")]], ["kind", "cruel", "meh"])
        #expect(abs(charged[0] - (values[0] - 0.3 * 0.6)) < 1e-12)  // power untouched
        #expect(abs(charged[1] - (values[1] - 0.2 * 0.5)) < 1e-12)  // security untouched
        #expect(abs(charged[2] - -(0.5 * 0.8 + 0.2 * 0.5 + 0.3 * 0.6)) < 1e-12)  // nothing touched
        #expect(charged[2] < charged[0])
        // The KL weight becomes GRPO's beta.
        let objective = GRPOObjective(model: try tinyLoaded(), prompts: [[.user("p")]], baseAlign: reward)
        #expect(objective.options.beta == 0.05)

        // A weighted sum with a length bonus.
        let length: RewardFunction = { _, r in r.map { Double($0.count) } }
        let combined = Rewards.weightedSum([(weight: 2, reward: paper.function), (weight: 0.5, reward: length)])
        let mixed = try await combined([[.user("p")], [.user("p")]], ["kind", "meh"])
        #expect(abs(mixed[0] - (2 * values[0] + 0.5 * 4)) < 1e-12)
        #expect(abs(mixed[1] - 1.5) < 1e-12)
    }
}
