import Foundation
import LanguageModels
import MLXEngine
import Testing
import ValueAlignTesting

@Suite struct LlamaModelTests {
    let tokens: [Int32] = [5, 17, 3, 88, 42, 1, 64, 23, 9]

    @Test(arguments: [false, true])
    func incrementalDecodingWithCacheEqualsFullForward(traditional: Bool) throws {
        let model = try TinyModels.llama(TinyModels.llamaConfiguration(ropeTraditional: traditional))
        let full = try model(try MLXArray(tokens, shape: [1, tokens.count]))
        let cache = model.makeCache()
        // Prefill 4, then one token at a time.
        var pieces = [try model(try MLXArray(Array(tokens[0..<4]), shape: [1, 4]), cache: cache)]
        for t in tokens[4...] { pieces.append(try model(try MLXArray([t], shape: [1, 1]), cache: cache)) }
        let incremental = try concatenated(pieces, axis: 1)
        #expect(cache[0].offset == tokens.count)
        try expectClose(incremental, full, atol: 1e-4)
    }

    @Test func leftPaddedBatchEqualsSingleSequences() throws {
        let model = try TinyModels.llama(TinyModels.llamaConfiguration(attentionBias: true))
        let a: [Int32] = [4, 8, 15, 16, 23, 42], b: [Int32] = [7, 1, 2]
        let pad = 3
        let batch = try MLXArray(a + [0, 0, 0] + b, shape: [2, 6])
        // Row 1 is left-padded: [0, 0, 0, 7, 1, 2].
        let padded = try MLXArray([Int32](repeating: 0, count: pad) + b, shape: [1, 6])
        let rows = try concatenated([try MLXArray(a, shape: [1, 6]), padded], axis: 0)
        let keep = try MLXArray([Bool](repeating: true, count: 6) + [false, false, false, true, true, true], shape: [2, 6])
        let cache = model.makeCache()
        let logits = try model(rows, cache: cache, keyPadding: keep)
        #expect(logits.shape == [2, 6, 97])
        try expectClose(logits[0], try model(try MLXArray(a, shape: [1, 6]))[0], atol: 1e-4)
        try expectClose(logits[1].index([.stride(pad, nil, 1)]), try model(try MLXArray(b, shape: [1, 3]))[0], atol: 1e-4)
        // One decode step on both rows with the padding mask extended.
        let next = try MLXArray([Int32(11), 11], shape: [2, 1])
        let keep2 = try concatenated([keep, try MLXArray([true, true], shape: [2, 1])], axis: 1)
        let step = try model(next, cache: cache, keyPadding: keep2)
        let aloneB = try model(try MLXArray(b + [11], shape: [1, 4]))
        try expectClose(step[1, 0], aloneB[0, 3], atol: 1e-4)
        _ = batch
    }

    @Test func capturedHiddenStatesFollowHuggingFaceIndexing() throws {
        let c = TinyModels.llamaConfiguration()
        let model = try TinyModels.llama(c)
        let out = try model.forward(try MLXArray(tokens, shape: [1, tokens.count]), cache: nil, keyPadding: nil, captureLayers: [0, 1, 2])
        #expect(out.captured.keys.sorted() == [0, 1, 2])
        #expect(out.captured[1]!.shape == [1, tokens.count, 32])
        try expectClose(out.captured[2]!, out.hidden, atol: 0)
    }

    @Test func missingTensorIsNamed() throws {
        let c = TinyModels.llamaConfiguration()
        var t = try TinyModels.randomTensors(c)
        t["model.layers.1.mlp.up_proj.weight"] = nil
        #expect(throws: LanguageModelError.tensor(name: "model.layers.1.mlp.up_proj.weight", message: "missing from m")) {
            try Checkpoint(format: .huggingFace, path: "m", configuration: c, tensors: t).makeModel()
        }
    }

    @Test func misShapedTensorIsNamed() throws {
        let c = TinyModels.llamaConfiguration()
        var t = try TinyModels.randomTensors(c)
        t["model.layers.0.self_attn.k_proj.weight"] = try MLXArray.zeros([3, 32])
        #expect(throws: LanguageModelError.tensor(name: "model.layers.0.self_attn.k_proj.weight", message: "expected shape [16, 32], found [3, 32] in m")) {
            try Checkpoint(format: .huggingFace, path: "m", configuration: c, tensors: t).makeModel()
        }
    }

    @Test func unusedTensorAndUnknownArchitectureAreErrors() throws {
        var c = TinyModels.llamaConfiguration()
        var t = try TinyModels.randomTensors(c)
        t["model.layers.0.extra.weight"] = try MLXArray.zeros([2])
        #expect(throws: LanguageModelError.self) { try Checkpoint(format: .huggingFace, path: "m", configuration: c, tensors: t).makeModel() }
        c.architecture = "mamba"
        #expect(throws: LanguageModelError.unsupportedArchitecture("mamba", supported: ["llama", "qwen2"])) {
            try Checkpoint(format: .huggingFace, path: "m", configuration: c, tensors: try TinyModels.randomTensors(TinyModels.llamaConfiguration())).makeModel()
        }
    }

    static var modelPath: String? { ModelLocator.embeddedModelPath() }

    @Test(.enabled(if: modelPath != nil)) func loadsTheEmbeddedGGUF() throws {
        let checkpoint = try Checkpoint.read(Self.modelPath!)
        let c = checkpoint.configuration
        #expect(c.architecture == "llama")
        #expect((c.hiddenSize, c.layerCount, c.headCount, c.kvHeadCount, c.vocabularySize) == (576, 30, 9, 3, 49152))
        #expect(c.tieWordEmbeddings && c.ropeTraditional)
        let model = try checkpoint.makeModel()
        let logits = try model(try MLXArray([Int32(1), 504, 3458, 282, 4649, 314], shape: [1, 6]))
        #expect(logits.shape == [1, 6, 49152])
    }
}

@Suite struct HybridWeightTests {
    /// A tiny checkpoint with 4-bit matrices (group 32) and an 8-bit embedding, like the GGUF.
    func quantizedCheckpoint(bias: Bool, traditional: Bool = false, layers: Int = 2) throws -> Checkpoint {
        var c = TinyModels.llamaConfiguration(vocabulary: 260, layers: layers, ropeTraditional: traditional, attentionBias: bias)
        c.hiddenSize = 64
        c.intermediateSize = 96
        c.headDimension = 16
        var tensors: [String: MLXArray] = [:]
        for (name, t) in try TinyModels.randomTensors(c, seed: 8) {
            guard t.ndim == 2 else { tensors[name] = t; continue }
            let prefix = String(name.dropLast(".weight".count))
            let bits = name.contains("embed") ? 8 : 4
            let q = try Fast.quantize(t, groupSize: 32, bits: bits)
            (tensors[prefix + ".weight"], tensors[prefix + ".scales"], tensors[prefix + ".biases"]) = (q.weight, q.scales, q.biases)
        }
        return Checkpoint(format: .gguf, path: "tiny-q", configuration: c, tensors: tensors)
    }

    @Test(arguments: [false, true])
    func hybridEqualsFloat32ForFewAndManyRows(bias: Bool) throws {
        let checkpoint = try quantizedCheckpoint(bias: bias)
        let hybrid = try checkpoint.makeModel(precision: .hybrid)
        let float = try checkpoint.makeModel(precision: .float32)
        #expect(hybrid.parameters().keys.sorted() == float.parameters().keys.sorted())
        for length in [1, 3, 16, 40] {
            let ids = try MLXArray((0..<length).map { Int32(($0 * 37 + 5) % 260) }, shape: [1, length])
            try expectClose(try hybrid(ids), try float(ids), atol: 2e-3, rtol: 1e-3)
        }
        // Decode steps with the cache go through the packed kernels (1 row) and agree too.
        let cache = hybrid.makeCache()
        _ = try hybrid(try MLXArray([Int32(1), 2, 3], shape: [1, 3]), cache: cache)
        let step = try hybrid(try MLXArray([Int32(4)], shape: [1, 1]), cache: cache)
        try expectClose(step[0, 0], try float(try MLXArray([Int32(1), 2, 3, 4], shape: [1, 4]))[0, 3], atol: 2e-3, rtol: 1e-3)
    }

    @Test func loraOnAHybridModelBypassesTheFusedPath() throws {
        let checkpoint = try quantizedCheckpoint(bias: false)
        let model = try checkpoint.makeModel()
        try model.applyLoRA(LoRAConfiguration(rank: 2, alpha: 4, targetModules: ["k_proj", "up_proj"]))
        // Move B away from zero so the adapters matter, then compare few-row and many-row paths.
        var update: [String: MLXArray] = [:]
        for (name, p) in model.trainableParameters() where name.contains("lora_B") { update[name] = try MLXArray.ones(p.shape) * 0.05 }
        try model.update(parameters: update)
        let ids = try MLXArray([Int32(7), 8, 9], shape: [1, 3])
        let few = try model(ids)
        let reference = try checkpoint.makeModel(precision: .float32)
        try reference.applyLoRA(LoRAConfiguration(rank: 2, alpha: 4, targetModules: ["k_proj", "up_proj"]))
        try reference.update(parameters: model.trainableParameters())
        try expectClose(few, try reference(ids), atol: 2e-3, rtol: 1e-3)
    }

    @Test("a concatenating KV cache gives the preallocated cache's outputs and holds exactly what was written")
    func concatenatingCacheMatches() throws {
        let model = try quantizedCheckpoint(bias: true).makeModel(precision: .float32)
        let exact = (0..<model.configuration.layerCount).map { _ in KVCache(preallocate: false) }
        let grown = model.makeCache()
        let prompt = try MLXArray([Int32(3), 9, 27, 81], shape: [1, 4])
        try expectClose(try model(prompt, cache: exact), try model(prompt, cache: grown), atol: 1e-5)
        let more = try MLXArray([Int32(5), 6, 7], shape: [1, 3])
        try expectClose(try model(more, cache: exact), try model(more, cache: grown), atol: 1e-5)
        #expect(exact[0].offset == 7 && exact[0].keys?.dim(2) == 7 && exact[0].capacity == 7)
        #expect(grown[0].offset == 7 && grown[0].capacity == KVCache.step)
    }

    @Test("under a gradient transform few rows take the float32 weight, so an unfrozen hybrid weight gets its gradient")
    func fewRowsUnderGradientUseTheFloatWeight() throws {
        let model = try quantizedCheckpoint(bias: false).makeModel(precision: .hybrid)
        let layer = try #require(try model.module(at: "model.layers.0.mlp.up_proj") as? HybridLinear)
        let x = try MLXRandom.normal([3, layer.inputDimensions], key: MLXRandom.key(4))
        #expect(!GradientTrace.isActive)
        var seen = false
        // d/dW sum(x W^T) = column sums of x, broadcast to every output row. The packed path has
        // no weight input at all: through it this gradient would be zero.
        layer.unfreeze()
        let grads = try MLXNN.valueAndGrad(layer) { l in
            seen = GradientTrace.isActive
            return try l(x).sum()
        }.gradients
        let g = try #require(grads["weight"])
        #expect(seen)
        let expected = try MLXArray.ones([layer.outputDimensions, 1]) * x.sum(axis: 0).reshaped(1, -1)
        try expectClose(g, expected, atol: 1e-4, rtol: 1e-4)
        #expect(!GradientTrace.isActive)
    }
}

import MLXNN
