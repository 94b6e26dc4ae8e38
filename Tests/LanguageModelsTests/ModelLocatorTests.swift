import Foundation
import LanguageModels
import MLXEngine
import Testing
import ValueAlignTesting

@Suite struct ModelLocatorTests {
    static var modelPath: String? { ModelLocator.embeddedModelPath() }

    @Test(.enabled(if: modelPath != nil)) func headerOfTheEmbeddedModel() throws {
        let header = try GGUFHeader.read(Self.modelPath!)
        #expect(header.values["general.architecture"] == "llama")
        #expect(header.values["llama.block_count"] == "30")
        #expect(header.tensorCount > 200)
        let entries = ModelLocator.list(directory: "/nonexistent")
        #expect(entries.first?.embedded == true && entries.first?.architecture == "llama")
        #expect(try ModelLocator.resolve(nil) == Self.modelPath!)
        #expect(try ModelLocator.resolve("embedded") == Self.modelPath!)
    }

    /// VALUEALIGN_MODEL naming a missing file is an error naming it, never a fall-back to the
    /// embedded model found elsewhere; set to an existing file it wins.
    @Test func aMissingModelInTheEnvironmentIsAnError() throws {
        let missing = "/nonexistent/model-\(UUID().uuidString).gguf"
        #expect { try ModelLocator.resolve(nil, environment: ["VALUEALIGN_MODEL": missing]) } throws: { "\($0)".contains(missing) && "\($0)".contains("VALUEALIGN_MODEL") }
        #expect { try ModelLocator.resolve("embedded", environment: ["VALUEALIGN_MODEL": missing]) } throws: { "\($0)".contains("VALUEALIGN_MODEL") }
        #expect(ModelLocator.embeddedModelPath(environment: ["VALUEALIGN_MODEL": missing]) == nil)
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("m-\(UUID().uuidString).gguf")
        try Data("x".utf8).write(to: file)
        defer { try? FileManager.default.removeItem(at: file) }
        #expect(try ModelLocator.resolve(nil, environment: ["VALUEALIGN_MODEL": file.path]) == file.path)
        // A path given explicitly does not depend on the variable.
        #expect(try ModelLocator.resolve(file.path, environment: ["VALUEALIGN_MODEL": missing]) == file.path)
    }

    @Test func badFilesAreNamed() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("loc-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let junk = dir.appendingPathComponent("junk.gguf")
        try Data("NOPE1234".utf8).write(to: junk)
        #expect(throws: LanguageModelError.invalidModel(path: junk.path, message: "not a GGUF file (bad magic)")) { try GGUFHeader.read(junk.path) }
        let truncated = dir.appendingPathComponent("t.gguf")
        try Data("GGUF".utf8 + [3, 0, 0, 0, 1]).write(to: truncated)
        #expect(throws: LanguageModelError.self) { try GGUFHeader.read(truncated.path) }
        #expect(throws: LanguageModelError.self) { try Checkpoint.read(truncated.path) }
        #expect(throws: LanguageModelError.self) { try ModelLocator.resolve(dir.appendingPathComponent("missing").path) }
        // A folder without config.json, and one with a bad config.
        #expect(throws: LanguageModelError.invalidModel(path: dir.path, message: "no readable config.json in the folder")) { try Checkpoint.read(dir.path) }
        try Data("{\"model_type\": \"llama\", \"hidden_size\": \"big\"}".utf8).write(to: dir.appendingPathComponent("config.json"))
        #expect {
            try Checkpoint.read(dir.path)
        } throws: { "\($0)".contains("config.json field") && "\($0)".contains("is missing or not an integer") }
    }

    @Test func huggingFaceFolderWithShardsAndIndexLoads() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("hf-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let c = TinyModels.llamaConfiguration(attentionBias: true)
        let tensors = try TinyModels.randomTensors(c, seed: 5)
        let names = tensors.keys.sorted()
        let half = names.count / 2
        let shards = ["model-00001-of-00002.safetensors": Array(names[..<half]), "model-00002-of-00002.safetensors": Array(names[half...])]
        var map: [String: String] = [:]
        for (file, keys) in shards {
            try ArrayIO.saveSafetensors(dir.appendingPathComponent(file).path, arrays: tensors.filter { keys.contains($0.key) })
            for k in keys { map[k] = file }
        }
        try JSONSerialization.data(withJSONObject: ["weight_map": map]).write(to: dir.appendingPathComponent("model.safetensors.index.json"))
        let config: [String: Any] = [
            "model_type": "qwen2", "vocab_size": c.vocabularySize, "hidden_size": c.hiddenSize, "intermediate_size": c.intermediateSize,
            "num_hidden_layers": c.layerCount, "num_attention_heads": c.headCount, "num_key_value_heads": c.kvHeadCount,
            "rms_norm_eps": 1e-5, "rope_theta": 10000, "tie_word_embeddings": true, "max_position_embeddings": 512,
        ]
        try JSONSerialization.data(withJSONObject: config).write(to: dir.appendingPathComponent("config.json"))
        let checkpoint = try Checkpoint.read(dir.path)
        #expect(checkpoint.configuration == c)
        let loaded = try checkpoint.makeModel()
        let direct = try TinyModels.llama(c, seed: 5)
        let tokens = try MLXArray([Int32(3), 1, 4, 1, 5], shape: [1, 5])
        try expectClose(try loaded(tokens), try direct(tokens), atol: 1e-6)
    }
}
