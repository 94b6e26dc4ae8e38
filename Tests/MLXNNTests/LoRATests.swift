import Foundation
import MLXEngine
import MLXNN
import Testing

@Suite struct LoRATests {
    @Test func newAdapterChangesNothingAndUsesPEFTNames() throws {
        let m = try Tiny()
        let x = try MLXRandom.normal([4, 8], key: MLXRandom.key(1))
        let before = try m(x).asArray(Float.self)
        let adapted = try m.applyLoRA(LoRAConfiguration(rank: 2, alpha: 4, targetModules: ["q_proj", "v_proj"]))
        #expect(adapted.sorted() == ["layers.0.q_proj", "layers.0.v_proj", "layers.1.q_proj", "layers.1.v_proj"])
        #expect(try m(x).asArray(Float.self) == before)
        let trainable = Set(m.trainableParameters().keys)
        #expect(trainable.count == 8)
        #expect(trainable.contains("layers.0.q_proj.lora_A.weight"))
        #expect(trainable.contains("layers.1.v_proj.lora_B.weight"))
        #expect(m.parameters()["layers.0.q_proj.base_layer.weight"] != nil)
        #expect(try m.parameters()["layers.0.q_proj.lora_A.weight"]!.shape == [2, 8])
        #expect(try m.parameters()["layers.0.q_proj.lora_B.weight"]!.shape == [8, 2])
    }

    @Test func trainingTouchesOnlyTheAdapterAndMergeKeepsOutputs() throws {
        let m = try Tiny()
        try m.applyLoRA(LoRAConfiguration(rank: 2, alpha: 4))
        let frozenBefore = try m.parameters()["layers.0.q_proj.base_layer.weight"]!.asArray(Float.self)
        let x = try MLXRandom.normal([16, 8], key: MLXRandom.key(2))
        let y = try MLXRandom.normal([16, 1], key: MLXRandom.key(3))
        let optimizer = AdamW(learningRate: 0.05, weightDecay: 0)
        var first: Float = 0, last: Float = 0
        for step in 0..<30 {
            let (loss, grads) = try valueAndGrad(m) { model in try Losses.meanSquaredError(model(x), y) }
            #expect(Set(grads.keys) == Set(m.trainableParameters().keys))
            try optimizer.update(m, gradients: grads)
            if step == 0 { first = try loss.item(Float.self) }
            last = try loss.item(Float.self)
        }
        #expect(last < first * 0.9, "loss \(first) -> \(last)")
        #expect(try m.parameters()["layers.0.q_proj.base_layer.weight"]!.asArray(Float.self) == frozenBefore)
        let adaptedOut = try m(x).asArray(Float.self)
        try m.mergeLoRA()
        #expect(m.parameters()["layers.0.q_proj.lora_A.weight"] == nil)
        let mergedOut = try m(x).asArray(Float.self)
        for (a, b) in zip(adaptedOut, mergedOut) { #expect(abs(a - b) < 1e-4) }
    }

    @Test func quantizedBaseWorksAndMerges() throws {
        let base = try Linear(64, 32, bias: false, key: MLXRandom.key(7))
        let q = try QuantizedLinear(base, groupSize: 32, bits: 8)
        let x = try MLXRandom.normal([5, 64], key: MLXRandom.key(8))
        let exact = try base(x).asArray(Float.self), quantized = try q(x).asArray(Float.self)
        for (a, b) in zip(exact, quantized) { #expect(abs(a - b) < 0.05) }
        #expect(q.trainableParameters().isEmpty)
        let lora = try LoRALinear(base: q, rank: 4, alpha: 8, key: MLXRandom.key(9))
        #expect(try lora(x).asArray(Float.self) == quantized)
        let merged = try lora.merged()
        for (a, b) in zip(try merged(x).asArray(Float.self), quantized) { #expect(abs(a - b) < 1e-4) }
    }

    @Test func rejectsBadConfigurations() throws {
        let m = try Tiny()
        #expect(throws: MLXError.self) { try m.applyLoRA(LoRAConfiguration(targetModules: ["k_proj"])) }
        #expect(throws: MLXError.self) { try LoRALinear(base: Linear(weight: MLXArray.zeros([2, 2])), rank: 0, alpha: 1) }
    }
}
