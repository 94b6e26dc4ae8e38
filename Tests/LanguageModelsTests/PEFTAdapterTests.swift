import Foundation
import LanguageModels
import MLXEngine
import MLXNN
import Testing
import ValueAlignTesting

@Suite struct PEFTAdapterTests {
    let c = TinyModels.llamaConfiguration(vocabulary: 260)
    let lora = LoRAConfiguration(rank: 4, alpha: 8, dropout: 0, targetModules: ["q_proj", "v_proj", "down_proj"])

    func temporaryDirectory() throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("peft-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }

    /// Trains a LoRA adapter on one batch; returns the model and the losses.
    func trained(steps: Int) throws -> (any CausalLanguageModel, [Float]) {
        let model = try TinyModels.llama(c, seed: 11)
        let adapted = try model.applyLoRA(lora, seed: 2)
        #expect(adapted.count == 3 * c.layerCount)
        model.train(true)
        let batch = try TokenBatch(prompts: [[1, 2, 3], [4, 5]], responses: [[10, 20, 30, 40], [50, 60, 70]], padTokenId: 256)
        let optimizer = AdamW(learningRate: .constant(0.05), weightDecay: 0)
        var losses: [Float] = []
        for _ in 0..<steps {
            let (loss, grads) = try MLXNN.valueAndGrad(model) { m in
                try -(m.sequenceLogProbs(batch).sum() / batch.targetMask.sum())
            }
            // Only the adapters train.
            #expect(grads.keys.allSatisfy { $0.contains(".lora_A.") || $0.contains(".lora_B.") })
            try optimizer.update(model, gradients: grads)
            losses.append(try loss.item(Float.self))
        }
        model.train(false)
        return (model, losses)
    }

    @Test func trainingLowersTheLossAndARoundTripReproducesOutputs() throws {
        let (model, losses) = try trained(steps: 12)
        #expect(losses.last! < losses.first! * 0.7, "losses \(losses)")
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        try PEFTAdapter.save(model, configuration: lora, to: dir, baseModel: "tiny")

        // The files have PEFT's layout and key names.
        let config = try JSONSerialization.jsonObject(with: Data(contentsOf: dir.appendingPathComponent("adapter_config.json"))) as! [String: Any]
        #expect(config["peft_type"] as? String == "LORA" && config["r"] as? Int == 4 && config["lora_alpha"] as? Double == 8)
        let (arrays, _) = try ArrayIO.loadSafetensors(dir.appendingPathComponent("adapter_model.safetensors").path)
        #expect(arrays.count == 2 * 3 * c.layerCount)
        #expect(arrays["base_model.model.model.layers.1.self_attn.q_proj.lora_A.weight"]?.shape == [4, 32])
        #expect(arrays["base_model.model.model.layers.0.mlp.down_proj.lora_B.weight"]?.shape == [32, 4])

        let tokens = try MLXArray([Int32(1), 2, 3, 10, 20], shape: [1, 5])
        let expected = try model(tokens)
        let fresh = try TinyModels.llama(c, seed: 11)
        let before = try fresh(tokens)
        let loaded = try PEFTAdapter.load(from: dir, into: fresh)
        #expect(loaded == LoRAConfiguration(rank: 4, alpha: 8, dropout: 0, targetModules: ["down_proj", "q_proj", "v_proj"]))
        try expectClose(try fresh(tokens), expected, atol: 1e-5)
        #expect(try (before - expected).abs().max().item(Float.self) > 1e-3)  // the adapter does change outputs
        try fresh.mergeLoRA()
        try expectClose(try fresh(tokens), expected, atol: 1e-4)
    }

    @Test func adapterForAnotherBaseModelIsRejected() throws {
        let (model, _) = try trained(steps: 1)
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        try PEFTAdapter.save(model, configuration: lora, to: dir, baseModel: "tiny")
        let other = try TinyModels.llama(TinyModels.llamaConfiguration(vocabulary: 260, layers: 3))
        #expect(throws: LanguageModelError.self) { try PEFTAdapter.load(from: dir, into: other) }
        try "{\"peft_type\": \"LORA\", \"r\": 4}".write(to: dir.appendingPathComponent("adapter_config.json"), atomically: true, encoding: .utf8)
        #expect {
            try PEFTAdapter.load(from: dir, into: try TinyModels.llama(c))
        } throws: { error in
            "\(error)".contains("missing field 'lora_alpha'")
        }
    }
}
