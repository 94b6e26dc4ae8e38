import LanguageModels
import MLXEngine
import Testing
import ValueAlignTesting

@Suite struct ScoringTests {
    let model: any CausalLanguageModel
    init() throws { model = try TinyModels.llama(TinyModels.llamaConfiguration(vocabulary: 260), seed: 4) }

    /// log p(response | prompt) computed token by token from full-sequence logits.
    func reference(_ prompt: [Int], _ response: [Int]) throws -> [Float] {
        let ids = (prompt + response).map(Int32.init)
        let logits = try model(MLXArray(ids, shape: [1, ids.count]))[0].logSoftmax(axis: -1)
        var out: [Float] = []
        for (k, token) in response.enumerated() {
            out.append(try logits[prompt.count - 1 + k, token].item(Float.self))
        }
        return out
    }

    @Test func batchedScoresMaskThePromptAndMatchUnbatched() throws {
        let prompts = [[1, 2, 3, 4, 5], [9], [7, 7]], responses = [[6, 7], [10, 11, 12, 13], [8]]
        let scores = try model.score(prompts: prompts, responses: responses, padTokenId: 256, batchSize: 2)
        #expect(scores.map(\.tokenLogProbs.count) == [2, 4, 1])
        for i in prompts.indices {
            let ref = try reference(prompts[i], responses[i])
            for (a, b) in zip(scores[i].tokenLogProbs, ref) { #expect(abs(a - b) < 1e-4, "pair \(i)") }
            #expect(scores[i].total < 0)
        }
    }

    @Test func sequenceLogProbsAreDifferentiable() throws {
        let batch = try TokenBatch(prompts: [[1, 2], [3]], responses: [[4, 5], [6]], padTokenId: 256)
        #expect(batch.targetMask.shape == [2, 3])
        #expect(try batch.targetMask.asArray(Float.self) == [0, 1, 1, 1, 0, 0])
        model.unfreeze()
        defer { model.freeze() }
        let (value, grads) = try MLXNN.valueAndGrad(model) { m in try m.sequenceLogProbs(batch).sum() }
        #expect(value.size == 1)
        let g = try grads["model.layers.0.mlp.up_proj.weight"]!.abs().sum().item(Float.self)
        #expect(g > 0)
    }

    @Test func pooledHiddenStates() throws {
        let prompts = [[1, 2, 3], [4]], responses = [[5, 6], [7, 8, 9]]
        let last = try model.pooledHiddenStates(prompts: prompts, responses: responses, layer: 2, pooling: .last, padTokenId: 256, batchSize: 1)
        #expect(last.shape == [2, 32])
        let alone = try model.forward(MLXArray([Int32(4), 7, 8, 9], shape: [1, 4]), cache: nil, keyPadding: nil, captureLayers: [2]).captured[2]!
        try expectClose(last[1], alone[0, 3], atol: 1e-5)
        let mean = try model.pooledHiddenStates(prompts: prompts, responses: responses, layer: 1, pooling: .meanResponse, padTokenId: 256)
        let h = try model.forward(MLXArray([Int32(1), 2, 3, 5, 6], shape: [1, 5]), cache: nil, keyPadding: nil, captureLayers: [1]).captured[1]!
        try expectClose(mean[0], try h[0].index([.stride(3, nil, 1)]).mean(axis: 0), atol: 1e-5)
        #expect(throws: LanguageModelError.self) {
            try model.pooledHiddenStates(prompts: prompts, responses: responses, layer: 3, pooling: .mean, padTokenId: 256)
        }
    }
}

import MLXNN
