public import LanguageModels
public import MLXEngine

/// Tiny random-weight models for fast tests.
public enum TinyModels {
    /// A Llama configuration small enough to run in milliseconds (GQA 4/2, two layers).
    public static func llamaConfiguration(vocabulary: Int = 97, layers: Int = 2, ropeTraditional: Bool = false, attentionBias: Bool = false,
                                          context: Int = 512) -> ModelConfiguration {
        ModelConfiguration(
            architecture: attentionBias ? "qwen2" : "llama", vocabularySize: vocabulary, hiddenSize: 32, intermediateSize: 48,
            layerCount: layers, headCount: 4, kvHeadCount: 2, rmsNormEps: 1e-5, ropeTheta: 10_000,
            ropeTraditional: ropeTraditional, tieWordEmbeddings: true, attentionBias: attentionBias, maxPositionEmbeddings: context)
    }

    /// Random tensors with Hugging Face names for `configuration` (normal, std 0.2; norms near 1).
    public static func randomTensors(_ c: ModelConfiguration, seed: UInt64 = 0) throws -> [String: MLXArray] {
        var key = try MLXRandom.key(seed)
        func normal(_ shape: [Int], std: Float = 0.2) throws -> MLXArray {
            let keys = try MLXRandom.split(key)
            key = keys[0]
            return try MLXRandom.normal(shape, std: std, key: keys[1])
        }
        let d = c.headDimension
        var t: [String: MLXArray] = ["model.embed_tokens.weight": try normal([c.vocabularySize, c.hiddenSize], std: 1),
                                     "model.norm.weight": try normal([c.hiddenSize], std: 0.1) + 1]
        if !c.tieWordEmbeddings { t["lm_head.weight"] = try normal([c.vocabularySize, c.hiddenSize]) }
        for i in 0..<c.layerCount {
            let p = "model.layers.\(i)."
            t[p + "self_attn.q_proj.weight"] = try normal([c.headCount * d, c.hiddenSize])
            t[p + "self_attn.k_proj.weight"] = try normal([c.kvHeadCount * d, c.hiddenSize])
            t[p + "self_attn.v_proj.weight"] = try normal([c.kvHeadCount * d, c.hiddenSize])
            t[p + "self_attn.o_proj.weight"] = try normal([c.hiddenSize, c.headCount * d])
            if c.attentionBias {
                t[p + "self_attn.q_proj.bias"] = try normal([c.headCount * d])
                t[p + "self_attn.k_proj.bias"] = try normal([c.kvHeadCount * d])
                t[p + "self_attn.v_proj.bias"] = try normal([c.kvHeadCount * d])
            }
            t[p + "mlp.gate_proj.weight"] = try normal([c.intermediateSize, c.hiddenSize])
            t[p + "mlp.up_proj.weight"] = try normal([c.intermediateSize, c.hiddenSize])
            t[p + "mlp.down_proj.weight"] = try normal([c.hiddenSize, c.intermediateSize])
            t[p + "input_layernorm.weight"] = try normal([c.hiddenSize], std: 0.1) + 1
            t[p + "post_attention_layernorm.weight"] = try normal([c.hiddenSize], std: 0.1) + 1
        }
        try eval(Array(t.values))
        return t
    }

    /// A tiny random Llama model.
    public static func llama(_ c: ModelConfiguration = llamaConfiguration(), seed: UInt64 = 0) throws -> any CausalLanguageModel {
        let checkpoint = Checkpoint(format: .huggingFace, path: "<tiny random llama>", configuration: c,
                                    tensors: try randomTensors(c, seed: seed), ggufMetadata: [:])
        return try checkpoint.makeModel()
    }

    /// A tiny random Llama ready to chat: the byte tokenizer (vocabulary 260) and ChatML, no
    /// system prompt. The same seed and layers give the same model; `context` is the most tokens
    /// (bytes) a sequence may hold.
    public static func chatModel(seed: UInt64 = 3, layers: Int = 2, name: String = "tiny", context: Int = 512) throws -> LoadedModel {
        let model = try llama(llamaConfiguration(vocabulary: 260, layers: layers, context: context), seed: seed)
        return LoadedModel(model: model, tokenizer: ByteTokenizer(), chatTemplate: .chatml, defaultSystemPrompt: nil, name: name, path: "<memory>")
    }
}
