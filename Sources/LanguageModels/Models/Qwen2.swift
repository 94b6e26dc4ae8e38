import MLXEngine

/// The "qwen2" architecture (Qwen2, Qwen2.5): Llama's decoder with biases on the q, k and v
/// projections. Only the configuration differs, so the layers, the weight names and the fused
/// decode path are Llama's (Llama.swift, FastPaths/LlamaFusedDecode.swift).
struct Qwen2Architecture: ModelArchitecture {
    let name = "qwen2"

    func configuration(ggufMetadata m: [String: GGUFValue], source: String) throws(LanguageModelError) -> ModelConfiguration {
        var c = try ModelConfiguration(sharedGGUFMetadata: m, architecture: name, source: source)
        c.attentionBias = true
        // llama.cpp runs qwen2 with NeoX (split-half) rope and leaves Q and K unpermuted, unlike llama.
        c.ropeTraditional = false
        return c
    }

    func configuration(configJSON object: [String: Any], source: String) throws(LanguageModelError) -> ModelConfiguration {
        var c = try ModelConfiguration(sharedConfigJSON: object, architecture: name, source: source)
        // Qwen2's config.json has no `attention_bias`: its q/k/v projections always carry biases.
        c.attentionBias = object["attention_bias"] as? Bool ?? true
        return c
    }

    func makeModel(configuration c: ModelConfiguration, weights: inout WeightSource) throws -> any CausalLanguageModel {
        try LlamaArchitecture.makeLlamaModel(configuration: c, weights: &weights)
    }
}
