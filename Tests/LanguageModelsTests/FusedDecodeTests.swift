import Foundation
@testable import LanguageModels
import MLXEngine
import MLXNN
import Testing
import ValueAlignTesting

/// Decode steps through `Fast.decodeLayer` (one fused kernel per layer) against the same model
/// decoding op by op.
@Suite struct FusedDecodeTests {
    let checkpoints = HybridWeightTests()

    /// Two instances of one quantised tiny model: fused decode on, and off.
    func pair(bias: Bool, traditional: Bool) throws -> (fused: LlamaModel, plain: LlamaModel) {
        let checkpoint = try checkpoints.quantizedCheckpoint(bias: bias, traditional: traditional)
        let fused = try #require(try checkpoint.makeModel(precision: .hybrid) as? LlamaModel)
        let plain = try #require(try checkpoint.makeModel(precision: .hybrid) as? LlamaModel)
        fused.fusedDecodeEnabled = true
        plain.fusedDecodeEnabled = false
        #expect(fused.model.layers.allSatisfy { $0.currentDecodePlan != nil })
        return (fused, plain)
    }

    struct Case: Sendable, CustomTestStringConvertible {
        var bias: Bool
        var traditional: Bool
        var testDescription: String { "\(bias ? "q/k/v bias" : "no bias"), \(traditional ? "traditional" : "split-half") rope" }
    }

    static let cases = [false, true].flatMap { b in [false, true].map { Case(bias: b, traditional: $0) } }

    @Test("fused decode steps equal op-by-op steps (logits and caches)", arguments: cases)
    func fusedEqualsOpByOp(_ c: Case) throws {
        let (fused, plain) = try pair(bias: c.bias, traditional: c.traditional)
        let prompt = try MLXArray([Int32(3), 9, 27, 81, 243], shape: [1, 5])
        let fc = fused.makeCache(), pc = plain.makeCache()
        try expectClose(try fused(prompt, cache: fc), try plain(prompt, cache: pc), atol: 1e-5)
        for t in [Int32(7), 14, 21, 28, 35, 42] {
            let x = try MLXArray([t], shape: [1, 1])
            let a = try fused(x, cache: fc), b = try plain(x, cache: pc)
            #expect(a.shape == [1, 1, 260])
            try expectClose(a, b, atol: 1e-4, rtol: 1e-4)
        }
        #expect(fc[0].offset == 11 && pc[0].offset == 11)
        for (f, p) in zip(fc, pc) {
            let valid: [ArrayIndex] = [.all, .all, .stride(0, 11, 1)]
            try expectClose(try f.keys!.index(valid), try p.keys!.index(valid), atol: 1e-4, rtol: 1e-4)
            try expectClose(try f.values!.index(valid), try p.values!.index(valid), atol: 1e-4, rtol: 1e-4)
        }
        // And the fused steps agree with a full forward of the whole sequence (float32 weights).
        let float = try checkpoints.quantizedCheckpoint(bias: c.bias, traditional: c.traditional).makeModel(precision: .float32)
        let all = try MLXArray([Int32(3), 9, 27, 81, 243, 7, 14, 21, 28, 35, 42], shape: [1, 11])
        let reference = try float(all)
        let last = try fused(try MLXArray([Int32(49)], shape: [1, 1]), cache: fc)
        let withLast = try float(try concatenated([all, try MLXArray([Int32(49)], shape: [1, 1])], axis: 1))
        try expectClose(last[0, 0], withLast[0, 11], atol: 2e-3, rtol: 1e-3)
        _ = reference
    }

    @Test("left-padded batch: fused steps equal op-by-op, across cache growth and row removal")
    func paddedBatchAcrossGrowthAndSelection() throws {
        let (fused, plain) = try pair(bias: true, traditional: false)
        // Three prompts of 250, 247 and 240 tokens, left-padded to 250: decoding 10 steps crosses
        // the cache's first 256 positions.
        let lengths = [250, 247, 240]
        var ids: [Int32] = [], keep: [Bool] = []
        for (r, n) in lengths.enumerated() {
            ids += [Int32](repeating: 0, count: 250 - n) + (0..<n).map { Int32(($0 * 31 + r * 7 + 1) % 260) }
            keep += [Bool](repeating: false, count: 250 - n) + [Bool](repeating: true, count: n)
        }
        var padding = try MLXArray(keep, shape: [3, 250])
        let fc = fused.makeCache(), pc = plain.makeCache()
        let prompt = try MLXArray(ids, shape: [3, 250])
        try expectClose(try fused(prompt, cache: fc, keyPadding: padding), try plain(prompt, cache: pc, keyPadding: padding), atol: 1e-5)
        var rows = 3
        for step in 0..<10 {
            if step == 6 {
                // The middle sequence finishes: both caches drop its row.
                let kept = MLXArray([Int32(0), 2])
                for c in fc + pc { try c.select(batchIndices: kept) }
                padding = try padding.take(kept, axis: 0)
                rows = 2
            }
            padding = try concatenated([padding, MLXArray.ones([rows, 1], dtype: .bool)], axis: 1)
            let x = try MLXArray((0..<rows).map { Int32(($0 * 13 + step * 5 + 2) % 260) }, shape: [rows, 1])
            let a = try fused(x, cache: fc, keyPadding: padding), b = try plain(x, cache: pc, keyPadding: padding)
            try expectClose(a, b, atol: 1e-4, rtol: 1e-4)
        }
        #expect(fc[0].offset == 260 && fc[0].capacity == 512)
    }

    @Test("a batch of 20 left-padded rows (the many-rows matmul, one attention task per kv head): fused equals op-by-op")
    func manyRowsBatch() throws {
        let (fused, plain) = try pair(bias: false, traditional: false)
        let rows = 20, width = 40
        var ids: [Int32] = [], keep: [Bool] = []
        for r in 0..<rows {
            let n = width - (r * 3) % 17
            ids += [Int32](repeating: 0, count: width - n) + (0..<n).map { Int32(($0 * 17 + r * 5 + 3) % 260) }
            keep += [Bool](repeating: false, count: width - n) + [Bool](repeating: true, count: n)
        }
        var padding = try MLXArray(keep, shape: [rows, width])
        let fc = fused.makeCache(), pc = plain.makeCache()
        let prompt = try MLXArray(ids, shape: [rows, width])
        try expectClose(try fused(prompt, cache: fc, keyPadding: padding), try plain(prompt, cache: pc, keyPadding: padding), atol: 1e-5)
        for step in 0..<6 {
            padding = try concatenated([padding, MLXArray.ones([rows, 1], dtype: .bool)], axis: 1)
            let x = try MLXArray((0..<rows).map { Int32(($0 * 11 + step * 7 + 1) % 260) }, shape: [rows, 1])
            let a = try fused(x, cache: fc, keyPadding: padding), b = try plain(x, cache: pc, keyPadding: padding)
            #expect(a.shape == [rows, 1, 260])
            try expectClose(a, b, atol: 1e-4, rtol: 1e-4)
        }
        #expect(fc[0].offset == width + 6)
    }

    @Test("batched greedy generation gives the same tokens with and without the fused path")
    func generationMatches() throws {
        let (fused, plain) = try pair(bias: false, traditional: true)
        let tokenizer = ByteTokenizer()
        let prompts: [[Int]] = [[72, 105], [87, 104, 97, 116, 32, 105, 115], [65]]
        let parameters = GenerationParameters(maxTokens: 12, temperature: 0)
        let a = try Generator(model: fused, tokenizer: tokenizer).generate(prompts, parameters: parameters)
        let b = try Generator(model: plain, tokenizer: tokenizer).generate(prompts, parameters: parameters)
        #expect(a.map(\.tokens) == b.map(\.tokens))
        #expect(a.allSatisfy { !$0.tokens.isEmpty })
    }

    /// Sets every LoRA B of `model` to seeded random values (the same for the same seed), so
    /// that the adapters change the outputs.
    func randomizeAdapters(_ model: LlamaModel, seed: UInt64) throws {
        var update: [String: MLXArray] = [:]
        var key = try MLXRandom.key(seed)
        for (name, p) in model.trainableParameters().sorted(by: { $0.key < $1.key }) where name.contains("lora_B") {
            let keys = try MLXRandom.split(key)
            key = keys[0]
            update[name] = try MLXRandom.normal(p.shape, key: keys[1]) * 0.05
        }
        try model.update(parameters: update)
    }

    struct LoRACase: Sendable, CustomTestStringConvertible {
        var targets: [String]
        var rows: Int
        var rank = 3
        var testDescription: String { "\(targets.joined(separator: "+")), rank \(rank), \(rows) row(s)" }
    }

    static let loraCases = [
        LoRACase(targets: ["v_proj", "down_proj"], rows: 1),
        LoRACase(targets: ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"], rows: 1),
        LoRACase(targets: ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"], rows: 24),
        LoRACase(targets: ["k_proj", "o_proj", "up_proj"], rows: 5),
        // Large enough (rows x outputs x ranks) for the kernel to split the update over threads.
        LoRACase(targets: ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"], rows: 64, rank: 32),
    ]

    @Test("LoRA adapters decode fused: equal to op-by-op steps, and a weight update is seen at the next step", arguments: loraCases)
    func loraDecodesFused(_ c: LoRACase) throws {
        let (fused, plain) = try pair(bias: true, traditional: false)
        let configuration = LoRAConfiguration(rank: c.rank, alpha: 2 * Float(c.rank), targetModules: c.targets)
        try fused.applyLoRA(configuration, seed: 5)
        try plain.applyLoRA(configuration, seed: 5)
        try randomizeAdapters(fused, seed: 9)
        try randomizeAdapters(plain, seed: 9)
        #expect(fused.model.layers.allSatisfy { $0.currentDecodePlan != nil })
        let rows = c.rows, width = 6
        let prompt = try MLXArray((0..<(rows * width)).map { Int32(($0 * 37 + 11) % 260) }, shape: [rows, width])
        let fc = fused.makeCache(), pc = plain.makeCache()
        try expectClose(try fused(prompt, cache: fc), try plain(prompt, cache: pc), atol: 1e-4, rtol: 1e-4)
        // The adapter matters: the same step without it differs.
        let bare = try pair(bias: true, traditional: false).fused
        let bc = bare.makeCache()
        _ = try bare(prompt, cache: bc)
        for step in 0..<4 {
            if step == 2 {
                // An optimiser-like update replaces the adapter arrays between steps.
                try randomizeAdapters(fused, seed: 21)
                try randomizeAdapters(plain, seed: 21)
            }
            let x = try MLXArray((0..<rows).map { Int32(($0 * 13 + step * 5 + 2) % 260) }, shape: [rows, 1])
            let a = try fused(x, cache: fc), b = try plain(x, cache: pc)
            try expectClose(a, b, atol: 1e-4, rtol: 1e-4)
            let without = try bare(x, cache: bc)
            #expect(try (a - without).abs().max().item(Float.self) > 1e-3)
        }
    }

    @Test("a LoRA adapter with active dropout turns the fused path off; in eval mode it is back on")
    func loraDropoutTurnsFusedPathOff() throws {
        let (fused, plain) = try pair(bias: false, traditional: false)
        let configuration = LoRAConfiguration(rank: 2, alpha: 4, dropout: 0.1, targetModules: ["v_proj", "down_proj"])
        try fused.applyLoRA(configuration, seed: 3)
        try plain.applyLoRA(configuration, seed: 3)
        fused.train(true)
        #expect(fused.model.layers.allSatisfy { $0.currentDecodePlan == nil })
        fused.train(false)
        plain.train(false)
        #expect(fused.model.layers.allSatisfy { $0.currentDecodePlan != nil })
        try randomizeAdapters(fused, seed: 4)
        try randomizeAdapters(plain, seed: 4)
        let ids: [Int32] = [5, 6, 7, 8]
        let fc = fused.makeCache(), pc = plain.makeCache()
        _ = try fused(try MLXArray(Array(ids[0..<3]), shape: [1, 3]), cache: fc)
        _ = try plain(try MLXArray(Array(ids[0..<3]), shape: [1, 3]), cache: pc)
        let step = try fused(try MLXArray([ids[3]], shape: [1, 1]), cache: fc)
        try expectClose(step, try plain(try MLXArray([ids[3]], shape: [1, 1]), cache: pc), atol: 1e-4, rtol: 1e-4)
        let full = try fused(try MLXArray(ids, shape: [1, 4]))
        try expectClose(step[0, 0], full[0, 3], atol: 2e-3, rtol: 1e-3)
    }

    @Test("the fused path engages for decode steps of a hybrid model with a filled preallocated cache and few rows, and only then")
    func fusedPathEngagesInTheSameCases() throws {
        let (fused, plain) = try pair(bias: true, traditional: false)
        let prompt = try MLXArray([Int32(3), 9, 27], shape: [1, 3])
        let fc = fused.makeCache(), pc = plain.makeCache()
        #expect(try fused.fusedDecodeInputs(rows: 1, cache: fc) == nil)  // nothing prefilled yet
        _ = try fused(prompt, cache: fc)
        _ = try plain(prompt, cache: pc)
        #expect(try fused.fusedDecodeInputs(rows: 1, cache: fc)?.count == fused.configuration.layerCount)
        #expect(try fused.fusedDecodeInputs(rows: HybridThreshold.rows, cache: fc) != nil)
        #expect(try fused.fusedDecodeInputs(rows: HybridThreshold.rows + 1, cache: fc) == nil)
        #expect(try plain.fusedDecodeInputs(rows: 1, cache: pc) == nil)  // turned off
        // A step through the model takes the fused path: the step's output is the fused one.
        let x = try MLXArray([Int32(7)], shape: [1, 1])
        let check = fused.makeCache()
        _ = try fused(prompt, cache: check)
        let direct = try #require(try fused.fusedDecodeStep(x, cache: check, keyPadding: nil, captureLayers: []))
        try expectClose(try fused(x, cache: fc), try fused.logits(direct.hidden), atol: 0)
        // A concatenating cache (a training pass over shared prompts) has no room reserved.
        let concatenating = (0..<fused.configuration.layerCount).map { _ in KVCache(preallocate: false) }
        _ = try fused(prompt, cache: concatenating)
        #expect(try fused.fusedDecodeInputs(rows: 1, cache: concatenating) == nil)
        // float32 weights have no packed plan.
        let float = try #require(try checkpoints.quantizedCheckpoint(bias: true).makeModel(precision: .float32) as? LlamaModel)
        let floatCache = float.makeCache()
        _ = try float(prompt, cache: floatCache)
        #expect(float.fusedDecodeEnabled && float.model.layers.allSatisfy { $0.currentDecodePlan == nil })
        #expect(try float.fusedDecodeInputs(rows: 1, cache: floatCache) == nil)
    }

    @Test("bad inputs to the fused kernel are thrown errors naming the problem")
    func badInputsAreErrors() throws {
        let (fused, _) = try pair(bias: false, traditional: false)
        let layer = fused.model.layers[0]
        let plan = try #require(layer.currentDecodePlan)
        let c = fused.configuration
        let settings = Fast.DecodeLayerSettings(
            heads: c.headCount, kvHeads: c.kvHeadCount, headDimension: c.headDimension, normEps: c.rmsNormEps,
            ropeDimensions: c.headDimension, ropeTraditional: false, ropeBase: c.ropeTheta, ropeScale: 1, attentionScale: 0.25)
        let x = try MLXArray.zeros([1, 1, c.hiddenSize])
        let good = try MLXArray.zeros([1, c.kvHeadCount, 8, c.headDimension])
        func run(_ s: Fast.DecodeLayerSettings = settings, offset: Int = 2, keys: MLXArray? = nil, x: MLXArray? = nil) throws {
            _ = try Fast.decodeLayer(
                x ?? MLXArray.zeros([1, 1, c.hiddenSize]), settings: s, offset: offset, inputNorm: layer.inputNorm.weight,
                postAttentionNorm: layer.postAttentionNorm.weight, qkv: plan.qkv, output: plan.output, gateUp: plan.gateUp,
                down: plan.down, keys: keys ?? good, values: good)
        }
        try run()  // the valid call works
        #expect(throws: MLXError.self) { try run(offset: 8) }  // no room for position 8
        #expect(throws: MLXError.self) { try run(keys: try MLXArray.zeros([1, c.kvHeadCount, 8, c.headDimension + 1])) }
        var wrongHeads = settings
        wrongHeads.heads = 3
        #expect(throws: MLXError.self) { try run(wrongHeads) }
        #expect(throws: MLXError.self) { try run(x: try MLXArray.zeros([1, 2, c.hiddenSize])) }
        // Low-rank updates: seven entries, each At [in, R] and Bt [R, out] of its projection.
        func runLowRank(_ lowRank: [Fast.LowRankUpdate?]) throws {
            _ = try Fast.decodeLayer(
                x, settings: settings, offset: 2, inputNorm: layer.inputNorm.weight, postAttentionNorm: layer.postAttentionNorm.weight,
                qkv: plan.qkv, output: plan.output, gateUp: plan.gateUp, down: plan.down, keys: good, values: good, lowRank: lowRank)
        }
        let down = Fast.LowRankUpdate(at: try MLXArray.zeros([c.intermediateSize, 2]), bt: try MLXArray.zeros([2, c.hiddenSize]))
        try runLowRank([nil, nil, nil, nil, nil, nil, down])
        #expect(throws: MLXError.self) { try runLowRank([down]) }
        #expect(throws: MLXError.self) { try runLowRank([down, nil, nil, nil, nil, nil, nil]) }  // down's shapes as q's update
        let badRank = Fast.LowRankUpdate(at: try MLXArray.zeros([c.intermediateSize, 2]), bt: try MLXArray.zeros([3, c.hiddenSize]))
        do {
            try runLowRank([nil, nil, nil, nil, nil, nil, badRank])
            Issue.record("a rank mismatch was accepted")
        } catch {
            #expect("\(error)".contains("low-rank update of down"))
        }
        do {
            try run(offset: 8)
        } catch {
            #expect("\(error)".contains("decode_layer"))
        }
        _ = x
    }
}
