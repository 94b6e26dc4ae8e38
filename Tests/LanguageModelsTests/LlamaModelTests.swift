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

    static var modelPath: String? { ProcessInfo.processInfo.environment["VALUEALIGN_MODEL"] }

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
