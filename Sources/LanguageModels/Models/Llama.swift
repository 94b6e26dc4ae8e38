import Foundation
public import MLXEngine
public import MLXNN

// Llama-family decoder (Llama 2/3, SmolLM2, TinyLlama; Qwen2.swift reuses it with q/k/v biases).
// Parameter names follow Hugging Face's LlamaForCausalLM so that checkpoints and PEFT adapters map
// one to one. The fused CPU decode path of these layers is in FastPaths/LlamaFusedDecode.swift.

final class LlamaAttention: Module, FusedProjectionHolder, @unchecked Sendable {
    @Child var qProj: any LinearLayer
    @Child var kProj: any LinearLayer
    @Child var vProj: any LinearLayer
    @Child var oProj: any LinearLayer
    let configuration: ModelConfiguration
    let fusedQKV: FusedProjection?

    init(_ c: ModelConfiguration, q: any LinearLayer, k: any LinearLayer, v: any LinearLayer, o: any LinearLayer) throws {
        configuration = c
        fusedQKV = try FusedProjection([q, k, v])
        _qProj = Child(wrappedValue: q, key: "q_proj")
        _kProj = Child(wrappedValue: k, key: "k_proj")
        _vProj = Child(wrappedValue: v, key: "v_proj")
        _oProj = Child(wrappedValue: o, key: "o_proj")
        super.init()
    }

    func callAsFunction(_ x: MLXArray, cache: KVCache?, context: AttentionContext) throws -> MLXArray {
        let (b, l) = (x.dim(0), x.dim(1))
        let c = configuration
        let d = c.headDimension
        let current: [any LinearLayer] = [qProj, kProj, vProj]
        let projected = try fusedQKV?(x, current: current) ?? fusedQKV?.bf16Parts(x, current: current) ?? [qProj(x), kProj(x), vProj(x)]
        var q = try projected[0].reshaped(b, l, c.headCount, d).transposed(0, 2, 1, 3)
        var k = try projected[1].reshaped(b, l, c.kvHeadCount, d).transposed(0, 2, 1, 3)
        var v = try projected[2].reshaped(b, l, c.kvHeadCount, d).transposed(0, 2, 1, 3)
        let offset = cache?.offset ?? 0
        q = try Fast.rope(q, dimensions: d, traditional: c.ropeTraditional, base: c.ropeTheta, scale: c.ropeScale, offset: offset)
        k = try Fast.rope(k, dimensions: d, traditional: c.ropeTraditional, base: c.ropeTheta, scale: c.ropeScale, offset: offset)
        if let cache {
            let whole = try cache.append(keys: k, values: v)
            if context.useWholeCache || whole.keys.dim(2) == cache.offset {
                (k, v) = whole
            } else {
                let valid = cache.offset
                k = try whole.keys.index([.all, .all, .stride(0, valid, 1)])
                v = try whole.values.index([.all, .all, .stride(0, valid, 1)])
            }
        }
        let scale = 1 / Float(d).squareRoot()
        let attended = try Fast.attention(queries: q, keys: k, values: v, scale: scale, causal: context.causal, mask: context.mask)
        return try oProj(attended.transposed(0, 2, 1, 3).reshaped(b, l, c.headCount * d))
    }

    var fusedProjections: [FusedProjection] { fusedQKV.map { [$0] } ?? [] }
}

final class LlamaMLP: Module, FusedProjectionHolder, @unchecked Sendable {
    @Child var gateProj: any LinearLayer
    @Child var upProj: any LinearLayer
    @Child var downProj: any LinearLayer
    let fusedGateUp: FusedProjection?

    init(gate: any LinearLayer, up: any LinearLayer, down: any LinearLayer) throws {
        fusedGateUp = try FusedProjection([gate, up])
        _gateProj = Child(wrappedValue: gate, key: "gate_proj")
        _upProj = Child(wrappedValue: up, key: "up_proj")
        _downProj = Child(wrappedValue: down, key: "down_proj")
        super.init()
    }

    func callAsFunction(_ x: MLXArray) throws -> MLXArray {
        let current: [any LinearLayer] = [gateProj, upProj]
        if let gu = try fusedGateUp?(x, current: current) { return try downProj(Fast.siluGate(gu[0], gu[1])) }
        if let fused = fusedGateUp, let (y, adapters) = try fused.bf16(x, current: current) {
            // Without adapters the fused output feeds the gate as it is (gate and up halves).
            if adapters.allSatisfy({ $0 == nil }) { return try downProj(Fast.siluGateHalves(y)) }
            let gu = try fused.parts(of: y, adapters: adapters, input: x)
            return try downProj(Fast.siluGate(gu[0], gu[1]))
        }
        return try downProj(Fast.siluGate(gateProj(x), upProj(x)))
    }

    var fusedProjections: [FusedProjection] { fusedGateUp.map { [$0] } ?? [] }
}

final class LlamaDecoderLayer: Module, @unchecked Sendable {
    @Child var selfAttention: LlamaAttention
    @Child var mlp: LlamaMLP
    @Child var inputNorm: RMSNorm
    @Child var postAttentionNorm: RMSNorm
    /// The packed weights for fused decode steps (FastPaths/LlamaFusedDecode.swift); nil unless
    /// every projection is hybrid. Built here, from the layer's own projections, so that a later
    /// LoRA adapter is recognised as wrapping them.
    let decodePlan: FusedDecodePlan?
    /// The LoRA updates fused steps last read, reused while the adapters are unchanged.
    let lowRankCache = FusedLowRankCache()

    init(attention: LlamaAttention, mlp: LlamaMLP, inputNorm: RMSNorm, postAttentionNorm: RMSNorm) throws {
        _selfAttention = Child(wrappedValue: attention, key: "self_attn")
        _mlp = Child(wrappedValue: mlp, key: "mlp")
        _inputNorm = Child(wrappedValue: inputNorm, key: "input_layernorm")
        _postAttentionNorm = Child(wrappedValue: postAttentionNorm, key: "post_attention_layernorm")
        decodePlan = try FusedDecodePlan(attention: attention, mlp: mlp)
        super.init()
    }

    func callAsFunction(_ x: MLXArray, cache: KVCache?, context: AttentionContext) throws -> MLXArray {
        let h = try x + selfAttention(inputNorm(x), cache: cache, context: context)
        return try h + mlp(postAttentionNorm(h))
    }
}

/// The decoder stack (Hugging Face's `model.*`).
final class LlamaBackbone: Module, @unchecked Sendable {
    @Child var embedTokens: Embedding
    var layers: [LlamaDecoderLayer]
    @Child var norm: RMSNorm

    init(embedding: Embedding, layers: [LlamaDecoderLayer], norm: RMSNorm) {
        _embedTokens = Child(wrappedValue: embedding, key: "embed_tokens")
        self.layers = layers
        _norm = Child(wrappedValue: norm, key: "norm")
        super.init()
    }
}

/// A Llama-family causal language model (Hugging Face's `LlamaForCausalLM` layout).
public final class LlamaModel: Module, CausalLanguageModel, @unchecked Sendable {
    public let configuration: ModelConfiguration
    @Child var model: LlamaBackbone
    /// Output projection; nil when tied to the embeddings. (A plain property: reflection finds it
    /// when present, under the name lm_head.)
    let lm_head: (any LinearLayer)?
    /// Run single-token steps of up to `HybridThreshold.rows` sequences through one fused kernel
    /// per layer (`Fast.decodeLayer`) when the weights allow it. Off: op by op, as prefill does.
    /// Defaults to on, or to the environment's `VALUEALIGN_FUSED_DECODE` (0 turns it off).
    public var fusedDecodeEnabled = fusedDecodeDefault
    public var steering: ResidualSteering?

    init(configuration: ModelConfiguration, backbone: LlamaBackbone, lmHead: (any LinearLayer)?) {
        self.configuration = configuration
        _model = Child(wrappedValue: backbone, key: "model")
        lm_head = lmHead
        super.init()
    }

    public func forward(_ tokens: MLXArray, cache: [KVCache]?, keyPadding: MLXArray?, captureLayers: Set<Int>) throws -> ForwardOutput {
        guard tokens.ndim == 2 else {
            throw LanguageModelError.invalidParameter(field: "tokens", message: "expected [batch, length], got shape \(tokens.shape)")
        }
        if let cache, cache.count != configuration.layerCount {
            throw LanguageModelError.invalidParameter(field: "cache", message: "expected \(configuration.layerCount) layer caches, got \(cache.count)")
        }
        if let fused = try fusedDecodeStep(tokens, cache: cache, keyPadding: keyPadding, captureLayers: captureLayers) { return fused }
        let context = try attentionContext(batch: tokens.dim(0), length: tokens.dim(1), cache: cache, keyPadding: keyPadding)
        var h = try model.embedTokens(tokens)
        var captured: [Int: MLXArray] = [:]
        if captureLayers.contains(0) { captured[0] = h }
        for (i, layer) in model.layers.enumerated() {
            h = try layer(h, cache: cache?[i], context: context)
            if let steering { h = try steering.apply(h, afterBlocks: i + 1) }
            if captureLayers.contains(i + 1), i + 1 < configuration.layerCount { captured[i + 1] = h }
        }
        h = try model.norm(h)
        if captureLayers.contains(configuration.layerCount) { captured[configuration.layerCount] = h }
        return ForwardOutput(hidden: h, captured: captured)
    }

    public func logits(_ hidden: MLXArray) throws -> MLXArray {
        if let lm_head { return try lm_head(hidden) }
        return try model.embedTokens.asLinear(hidden)
    }
}

/// The "llama" architecture: llama.cpp's GGUF metadata (`llama.*`) or Hugging Face's
/// config.json, and `LlamaForCausalLM`'s weights.
struct LlamaArchitecture: ModelArchitecture {
    let name = "llama"

    func configuration(ggufMetadata m: [String: GGUFValue], source: String) throws(LanguageModelError) -> ModelConfiguration {
        var c = try ModelConfiguration(sharedGGUFMetadata: m, architecture: name, source: source)
        // llama.cpp's converter permutes llama's Q and K rows for the interleaved rotary layout.
        c.ropeTraditional = true
        return c
    }

    func configuration(configJSON object: [String: Any], source: String) throws(LanguageModelError) -> ModelConfiguration {
        // Hugging Face's llama config has nothing beyond the shared fields (its optional
        // `attention_bias` is one of them).
        try ModelConfiguration(sharedConfigJSON: object, architecture: name, source: source)
    }

    func makeModel(configuration c: ModelConfiguration, weights: inout WeightSource) throws -> any CausalLanguageModel {
        try Self.makeLlamaModel(configuration: c, weights: &weights)
    }

    /// Builds a `LlamaModel` from Hugging Face's tensor names; q/k/v take biases when the
    /// configuration says so. Shared with the architectures whose layers are Llama's (qwen2).
    static func makeLlamaModel(configuration c: ModelConfiguration, weights: inout WeightSource) throws -> LlamaModel {
        let hiddenQKV = c.headDimension
        var layers: [LlamaDecoderLayer] = []
        for i in 0..<c.layerCount {
            let p = "model.layers.\(i)."
            let attention = try LlamaAttention(
                c,
                q: try weights.linear(p + "self_attn.q_proj", input: c.hiddenSize, output: c.headCount * hiddenQKV, bias: c.attentionBias),
                k: try weights.linear(p + "self_attn.k_proj", input: c.hiddenSize, output: c.kvHeadCount * hiddenQKV, bias: c.attentionBias),
                v: try weights.linear(p + "self_attn.v_proj", input: c.hiddenSize, output: c.kvHeadCount * hiddenQKV, bias: c.attentionBias),
                o: try weights.linear(p + "self_attn.o_proj", input: c.headCount * hiddenQKV, output: c.hiddenSize, bias: false))
            let mlp = try LlamaMLP(
                gate: try weights.linear(p + "mlp.gate_proj", input: c.hiddenSize, output: c.intermediateSize, bias: false),
                up: try weights.linear(p + "mlp.up_proj", input: c.hiddenSize, output: c.intermediateSize, bias: false),
                down: try weights.linear(p + "mlp.down_proj", input: c.intermediateSize, output: c.hiddenSize, bias: false))
            layers.append(try LlamaDecoderLayer(
                attention: attention, mlp: mlp,
                inputNorm: RMSNorm(weight: try weights.vector(p + "input_layernorm.weight", count: c.hiddenSize), eps: c.rmsNormEps),
                postAttentionNorm: RMSNorm(weight: try weights.vector(p + "post_attention_layernorm.weight", count: c.hiddenSize), eps: c.rmsNormEps)))
        }
        let embedding = try weights.embedding("model.embed_tokens", count: c.vocabularySize, dimensions: c.hiddenSize)
        let norm = RMSNorm(weight: try weights.vector("model.norm.weight", count: c.hiddenSize), eps: c.rmsNormEps)
        let head: (any LinearLayer)? = c.tieWordEmbeddings ? nil
            : try weights.linear("lm_head", input: c.hiddenSize, output: c.vocabularySize, bias: false)
        return LlamaModel(configuration: c, backbone: LlamaBackbone(embedding: embedding, layers: layers, norm: norm), lmHead: head)
    }
}
