import Foundation
public import MLXEngine
public import MLXNN

// Llama-family decoder (Llama 2/3, SmolLM2, TinyLlama; Qwen2 adds q/k/v biases). Parameter names
// follow Hugging Face's LlamaForCausalLM so that checkpoints and PEFT adapters map one to one.

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
    /// The packed weights for fused decode steps; nil unless every projection is hybrid.
    let decodePlan: FusedDecodePlan?

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

    /// The decode plan, when it still describes the layer's projections: each is the hybrid
    /// layer the plan was built from, or a LoRA adapter on it without active dropout.
    var currentDecodePlan: FusedDecodePlan? {
        guard let decodePlan, decodePlan.adapters(selfAttention, mlp) != nil else { return nil }
        return decodePlan
    }

    private let lowRankLock = NSLock()
    private var lowRank: FusedLowRank?

    /// What a fused decode step of this layer reads: the plan, and the LoRA updates of the
    /// adapters' current weights (built once and reused while the adapters hold the same arrays;
    /// an optimiser step replaces them). nil when the plan no longer describes the layer.
    func fusedDecodeInputs() throws -> (plan: FusedDecodePlan, lowRank: [Fast.LowRankUpdate?])? {
        guard let decodePlan, let adapters = decodePlan.adapters(selfAttention, mlp) else { return nil }
        guard adapters.contains(where: { $0 != nil }) else { return (decodePlan, []) }
        return try lowRankLock.withLock {
            if let lowRank, lowRank.matches(adapters) { return (decodePlan, lowRank.updates) }
            let built = try FusedLowRank(adapters: adapters)
            lowRank = built
            return (decodePlan, built.updates)
        }
    }

    /// One decode step (x [B, 1, H]) as a single fused kernel; the cache must already hold
    /// room for the new position.
    func fusedDecode(_ x: MLXArray, plan: FusedDecodePlan, lowRank: [Fast.LowRankUpdate?], cache: KVCache, settings: Fast.DecodeLayerSettings, mask: MLXArray?) throws -> MLXArray {
        guard let keys = cache.keys, let values = cache.values else {
            throw LanguageModelError.invalidParameter(field: "cache", message: "a fused decode step needs a filled cache")
        }
        let r = try Fast.decodeLayer(
            x, settings: settings, offset: cache.offset, inputNorm: inputNorm.weight, postAttentionNorm: postAttentionNorm.weight,
            qkv: plan.qkv, output: plan.output, gateUp: plan.gateUp, down: plan.down,
            keys: keys, values: values, qkvBias: plan.qkvBias, mask: mask, lowRank: lowRank)
        try cache.advance(keys: r.keys, values: r.values, by: 1)
        return r.output
    }
}

/// A layer's LoRA adapters as `Fast.decodeLayer` reads them: A^T and scale * B^T of each adapted
/// projection. Keeps the adapters and arrays it was built from, so that a rebuilt array (an
/// optimiser step, a loaded adapter) is never mistaken for the old one.
final class FusedLowRank: @unchecked Sendable {
    let updates: [Fast.LowRankUpdate?]
    private let adapters: [LoRALinear?]
    private let arrays: [MLXArray?]

    init(adapters: [LoRALinear?]) throws {
        updates = try adapters.map { (l) throws -> Fast.LowRankUpdate? in
            guard let l else { return nil }
            return Fast.LowRankUpdate(at: try l.loraA.weight.asType(.float32).T.contiguous(),
                                      bt: try (l.loraB.weight.asType(.float32).T * l.scale).contiguous())
        }
        try eval(updates.compactMap { $0 }.flatMap { [$0.at, $0.bt] })
        self.adapters = adapters
        arrays = Self.arrays(of: adapters)
    }

    private static func arrays(of adapters: [LoRALinear?]) -> [MLXArray?] {
        adapters.flatMap { [$0?.loraA.weight, $0?.loraB.weight] }
    }

    func matches(_ current: [LoRALinear?]) -> Bool {
        current.count == adapters.count && zip(current, adapters).allSatisfy { $0 === $1 }
            && zip(Self.arrays(of: current), arrays).allSatisfy { $0 === $1 }
    }
}

/// The packed quantised weights of one decoder layer, fused as `Fast.decodeLayer` reads them
/// (q/k/v along outputs, gate/up along outputs), built once from hybrid projections.
final class FusedDecodePlan: @unchecked Sendable {
    let qkv: Fast.PackedMatrix
    let output: Fast.PackedMatrix
    let gateUp: Fast.PackedMatrix
    let down: Fast.PackedMatrix
    let qkvBias: MLXArray?
    /// The projections it was built from: q, k, v, o, gate, up, down.
    private let sources: [ObjectIdentifier]

    /// nil when a projection is not hybrid, or o/down carry a bias.
    init?(attention: LlamaAttention, mlp: LlamaMLP) throws {
        guard let qkvFused = attention.fusedQKV, let gu = mlp.fusedGateUp,
              let o = attention.oProj as? HybridLinear, let d = mlp.downProj as? HybridLinear,
              o.bias == nil, d.bias == nil,
              let qkv = Self.matrix(qkvFused.packed), let go = Self.matrix(o.packed),
              let gg = Self.matrix(gu.packed), let gd = Self.matrix(d.packed) else { return nil }
        self.qkv = qkv
        output = go
        gateUp = gg
        down = gd
        qkvBias = qkvFused.bias
        let layers: [any LinearLayer] = [attention.qProj, attention.kProj, attention.vProj, attention.oProj, mlp.gateProj, mlp.upProj, mlp.downProj]
        sources = layers.map { ObjectIdentifier($0 as AnyObject) }
    }

    private static func matrix(_ p: PackedWeight) -> Fast.PackedMatrix? {
        guard let biases = p.biases, p.scales.dtype == .float16 || p.scales.dtype == .float32 else { return nil }
        return Fast.PackedMatrix(weight: p.weight, scales: p.scales, biases: biases, groupSize: p.groupSize, bits: p.bits)
    }

    /// Per projection (q, k, v, o, gate, up, down): nil where it is the layer the plan was built
    /// from, its LoRA adapter where one wraps that layer; nil overall when a projection is
    /// anything else (another layer, or an adapter whose dropout is active).
    func adapters(_ attention: LlamaAttention, _ mlp: LlamaMLP) -> [LoRALinear?]? {
        let layers: [any LinearLayer] = [attention.qProj, attention.kProj, attention.vProj, attention.oProj, mlp.gateProj, mlp.upProj, mlp.downProj]
        var found: [LoRALinear?] = []
        found.reserveCapacity(layers.count)
        for (layer, source) in zip(layers, sources) {
            if ObjectIdentifier(layer as AnyObject) == source {
                found.append(nil)
            } else if let lora = layer as? LoRALinear, ObjectIdentifier(lora.base as AnyObject) == source,
                      lora.dropout.p == 0 || !lora.dropout.training {
                found.append(lora)
            } else {
                return nil
            }
        }
        return found
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
    public var fusedDecodeEnabled = LlamaModel.fusedDecodeDefault

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
        if let cache, tokens.dim(1) == 1, let plans = try fusedDecodePlans(rows: tokens.dim(0), cache: cache) {
            return try fusedDecode(tokens, plans: plans, cache: cache, keyPadding: keyPadding, captureLayers: captureLayers)
        }
        let context = try attentionContext(batch: tokens.dim(0), length: tokens.dim(1), cache: cache, keyPadding: keyPadding)
        var h = try model.embedTokens(tokens)
        var captured: [Int: MLXArray] = [:]
        if captureLayers.contains(0) { captured[0] = h }
        for (i, layer) in model.layers.enumerated() {
            h = try layer(h, cache: cache?[i], context: context)
            if captureLayers.contains(i + 1), i + 1 < configuration.layerCount { captured[i + 1] = h }
        }
        h = try model.norm(h)
        if captureLayers.contains(configuration.layerCount) { captured[configuration.layerCount] = h }
        return ForwardOutput(hidden: h, captured: captured)
    }

    /// Whether fused decode steps apply: enabled, on the CPU, for at most `HybridThreshold.rows`
    /// rows (where the packed weights serve), with a filled cache and every layer's plan current.
    private func fusedDecodePlans(rows: Int, cache: [KVCache]) throws -> [(plan: FusedDecodePlan, lowRank: [Fast.LowRankUpdate?])]? {
        // Not under a gradient (the fused layer has none) and not on a concatenating cache (a
        // training pass over shared prompts, which has no room reserved for the new position).
        guard rows <= HybridThreshold.rows, fusedDecodeEnabled, cache.first?.keys != nil, cache.first?.preallocates == true,
              !GradientTrace.isActive,
              Device.default.kind == .cpu else { return nil }
        var plans: [(plan: FusedDecodePlan, lowRank: [Fast.LowRankUpdate?])] = []
        plans.reserveCapacity(model.layers.count)
        for layer in model.layers {
            guard let inputs = try layer.fusedDecodeInputs() else { return nil }
            plans.append(inputs)
        }
        return plans
    }

    static let fusedDecodeDefault = ProcessInfo.processInfo.environment["VALUEALIGN_FUSED_DECODE"] != "0"

    private func fusedDecode(_ tokens: MLXArray, plans: [(plan: FusedDecodePlan, lowRank: [Fast.LowRankUpdate?])], cache: [KVCache], keyPadding: MLXArray?, captureLayers: Set<Int>) throws -> ForwardOutput {
        let c = configuration
        let (b, d) = (tokens.dim(0), c.headDimension)
        let offset = cache[0].offset
        let kvShape = [b, c.kvHeadCount, 1, d]
        for layerCache in cache {
            guard layerCache.offset == offset, layerCache.keys?.dim(0) == b else {
                throw LanguageModelError.invalidParameter(field: "cache", message: "layer caches disagree on length or batch size")
            }
            try layerCache.reserve(offset + 1, keyShape: kvShape, valueShape: kvShape, dtype: .float32)
        }
        let capacity = cache[0].capacity
        var mask: MLXArray?
        if let keyPadding {
            guard keyPadding.ndim == 2, keyPadding.dim(0) == b, keyPadding.dim(1) == offset + 1 else {
                throw LanguageModelError.invalidParameter(
                    field: "keyPadding", message: "expected shape [\(b), \(offset + 1)], got \(keyPadding.shape)")
            }
            let keep = try keyPadding.padded(low: [0, 0], high: [0, capacity - offset - 1])
            mask = try which(keep, MLXArray(Float(0)), MLXArray(-Float.infinity))
        }
        let settings = Fast.DecodeLayerSettings(
            heads: c.headCount, kvHeads: c.kvHeadCount, headDimension: d, normEps: c.rmsNormEps, ropeDimensions: d,
            ropeTraditional: c.ropeTraditional, ropeBase: c.ropeTheta, ropeScale: c.ropeScale, attentionScale: 1 / Float(d).squareRoot())
        var h = try model.embedTokens(tokens)
        var captured: [Int: MLXArray] = [:]
        if captureLayers.contains(0) { captured[0] = h }
        for (i, layer) in model.layers.enumerated() {
            h = try layer.fusedDecode(h, plan: plans[i].plan, lowRank: plans[i].lowRank, cache: cache[i], settings: settings, mask: mask)
            if captureLayers.contains(i + 1), i + 1 < c.layerCount { captured[i + 1] = h }
        }
        h = try model.norm(h)
        if captureLayers.contains(c.layerCount) { captured[c.layerCount] = h }
        return ForwardOutput(hidden: h, captured: captured)
    }

    public func logits(_ hidden: MLXArray) throws -> MLXArray {
        if let lm_head { return try lm_head(hidden) }
        return try model.embedTokens.asLinear(hidden)
    }
}

/// Builds Llama-family models ("llama"; "qwen2" differs only by q/k/v biases, so it shares this file).
struct LlamaArchitecture: ModelArchitecture {
    let name: String

    func makeModel(configuration c: ModelConfiguration, weights: inout WeightSource) throws -> any CausalLanguageModel {
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
