import Foundation
@testable import LanguageModels
import MLXEngine
import Testing

/// Configuration parsing is reached through the registry: each architecture's own file decides
/// its fields (qwen2's q/k/v biases and rope layout), the shared parser none.
@Suite struct ModelRegistryTests {
    /// GGUF metadata of a tiny `arch` model (llama.cpp's `<arch>.*` keys).
    static func metadata(_ arch: String) -> [String: GGUFValue] {
        func number(_ v: Int32) -> GGUFValue { .array(MLXArray([v])) }
        return [
            "general.architecture": .string(arch),
            "\(arch).embedding_length": number(32), "\(arch).feed_forward_length": number(48),
            "\(arch).block_count": number(2), "\(arch).attention.head_count": number(4),
            "\(arch).attention.head_count_kv": number(2), "\(arch).vocab_size": number(97),
            "\(arch).rope.freq_base": .array(MLXArray([Float(1_000_000)])),
        ]
    }

    /// A config.json of the same tiny model.
    static func configJSON(_ type: String, extra: [String: Any] = [:]) throws -> Data {
        let object: [String: Any] = [
            "model_type": type, "vocab_size": 97, "hidden_size": 32, "intermediate_size": 48, "num_hidden_layers": 2,
            "num_attention_heads": 4, "num_key_value_heads": 2, "rope_theta": 1_000_000,
        ].merging(extra) { $1 }
        return try JSONSerialization.data(withJSONObject: object)
    }

    @Test func builtInArchitecturesAreRegisteredUnderTheirOwnTypes() throws {
        #expect(ModelRegistry.supported == ["llama", "qwen2"])
        #expect(try ModelRegistry.architecture(named: "llama") is LlamaArchitecture)
        #expect(try ModelRegistry.architecture(named: "qwen2") is Qwen2Architecture)
    }

    @Test func qwen2GGUFGetsItsBiasesAndSplitHalfRopeFromItsOwnFile() throws {
        let qwen = try ModelConfiguration(ggufMetadata: Self.metadata("qwen2"), source: "q.gguf")
        #expect(qwen.architecture == "qwen2" && qwen.attentionBias && !qwen.ropeTraditional)
        #expect(qwen == (try Qwen2Architecture().configuration(ggufMetadata: Self.metadata("qwen2"), source: "q.gguf")))
        let llama = try ModelConfiguration(ggufMetadata: Self.metadata("llama"), source: "l.gguf")
        #expect(llama.architecture == "llama" && !llama.attentionBias && llama.ropeTraditional)
        // Apart from those two fields the shared reader gives both the same numbers.
        var same = qwen
        (same.architecture, same.attentionBias, same.ropeTraditional) = ("llama", false, true)
        #expect(same == llama)
        #expect((qwen.hiddenSize, qwen.kvHeadCount, qwen.headDimension, qwen.ropeTheta) == (32, 2, 8, 1_000_000))
    }

    @Test func qwen2ConfigJSONHasBiasesUnlessItSaysOtherwise() throws {
        let qwen = try ModelConfiguration(configJSON: try Self.configJSON("qwen2"), source: "config.json")
        #expect(qwen.attentionBias && !qwen.ropeTraditional)
        let unbiased = try ModelConfiguration(configJSON: try Self.configJSON("qwen2", extra: ["attention_bias": false]), source: "config.json")
        #expect(!unbiased.attentionBias)
        let llama = try ModelConfiguration(configJSON: try Self.configJSON("llama"), source: "config.json")
        #expect(!llama.attentionBias && !llama.ropeTraditional)
        let biasedLlama = try ModelConfiguration(configJSON: try Self.configJSON("llama", extra: ["attention_bias": true]), source: "config.json")
        #expect(biasedLlama.attentionBias)
    }

    @Test func anUnknownArchitectureIsAnErrorListingTheRegisteredOnes() throws {
        let expected = LanguageModelError.unsupportedArchitecture("mamba", supported: ["llama", "qwen2"])
        #expect(throws: expected) { try ModelConfiguration(ggufMetadata: Self.metadata("mamba"), source: "m.gguf") }
        #expect(throws: expected) { try ModelConfiguration(configJSON: try Self.configJSON("mamba"), source: "config.json") }
        #expect(expected.description == "unsupported model architecture 'mamba'; supported: llama, qwen2")
    }
}
