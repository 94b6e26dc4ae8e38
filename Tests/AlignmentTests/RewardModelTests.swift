import Alignment
import Foundation
import LanguageModels
import MLXEngine
import MLXNN
import Testing
import ValueAlignTesting

@Suite struct RewardModelTests {
    /// Separable: every chosen answer says "good", every rejected one "bad".
    let pairs = (0..<6).map { i in
        PreferenceExample(prompt: [.user("Question \(i)")], chosen: "good \(i)", rejected: "bad \(i)")
    }

    @Test func bradleyTerryTrainingSeparatesAToySet() throws {
        let loaded = try tinyLoaded()
        let rm = try RewardModel(loaded)
        let dir = temporaryDirectory("rm")
        defer { try? FileManager.default.removeItem(at: dir) }
        var p = toyParameters(RewardModelObjective.self, steps: 30, batchSize: 6, learningRate: 1e-2)
        p.runDirectory = dir.path
        p.checkpointEvery = 0
        var history: [TrainingProgress] = []
        let summary = try TrainingRunner(objective: RewardModelObjective(rewardModel: rm, examples: pairs), parameters: p).run {
            history.append($0)
            return true
        }
        #expect(history.count == 30)
        #expect(history.last!.loss < 0.5 * history[0].loss)
        #expect(history.last!.metrics["accuracy"]! == 1)

        // Scores: every chosen answer above its rejected one, also on an unseen prompt.
        let prompts = pairs.map(\.prompt) + [[.user("Question 42")]]
        let chosen = try rm.score(prompts: prompts, responses: pairs.map(\.chosen) + ["good 42"])
        let rejected = try rm.score(prompts: prompts, responses: pairs.map(\.rejected) + ["bad 42"])
        #expect(chosen.count == 7 && rejected.count == 7)
        for (c, r) in zip(chosen, rejected) { #expect(c > r) }

        // The saved folder reloads onto a fresh base model and scores identically, also as a reward function.
        let output = try #require(summary.output)
        for file in ["adapter_config.json", "adapter_model.safetensors", "extra_parameters.safetensors", "reward_model.json"] {
            #expect(FileManager.default.fileExists(atPath: output.appendingPathComponent(file).path), "missing \(file)")
        }
        let reloaded = try RewardModel.load(from: output, base: try tinyLoaded())
        let again = try reloaded.score(prompts: prompts, responses: pairs.map(\.chosen) + ["good 42"])
        for (a, b) in zip(chosen, again) { #expect(abs(a - b) <= 1e-5) }
    }

    @Test func rewardModelWorksAsAnAsyncReward() async throws {
        let rm = try RewardModel(try tinyLoaded())
        try rm.backbone.applyLoRA(allLinear)
        // The reward runs on the model's queue: lazy arrays made on this thread must be evaluated first.
        try eval(rm.trainableParameters())
        let reward = rm.rewardFunction
        let values = try await reward([[.user("x")], [.user("y")]], ["a", "b"])
        #expect(values.count == 2)
        #expect(values == (try rm.score(prompts: [[.user("x")], [.user("y")]], responses: ["a", "b"])))
    }

    @Test func loadingIntoAnotherModelFails() throws {
        let dir = temporaryDirectory("rm-bad")
        defer { try? FileManager.default.removeItem(at: dir) }
        var p = toyParameters(RewardModelObjective.self, steps: 1, batchSize: 2)
        p.runDirectory = dir.path
        let summary = try TrainingRunner(objective: RewardModelObjective(rewardModel: try RewardModel(try tinyLoaded()), examples: pairs), parameters: p).run()
        let three = LoadedModel(model: try TinyModels.llama(TinyModels.llamaConfiguration(vocabulary: 260, layers: 3)), tokenizer: ByteTokenizer(),
                                chatTemplate: .chatml, defaultSystemPrompt: nil, name: "t3", path: "<memory>")
        #expect { try RewardModel.load(from: summary.output!, base: three) } throws: { "\($0)".contains("different base model") }
        #expect { try RewardModel.load(from: dir, base: try tinyLoaded()) } throws: { "\($0)".contains("not a reward model folder") }
    }
}
