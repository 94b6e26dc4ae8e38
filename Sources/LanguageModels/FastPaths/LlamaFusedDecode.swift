import MLXEngine
import MLXNN

// Llama's opt-in to the fused decode path: its decoder layer is exactly what `Fast.decodeLayer`
// computes, so a plan of the layer's packed weights is all the kernel needs. Architectures that
// reuse `LlamaDecoderLayer` (qwen2) get the path with it.

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
        sources = Self.projections(attention, mlp).map { ObjectIdentifier($0 as AnyObject) }
    }

    private static func matrix(_ p: PackedWeight) -> Fast.PackedMatrix? {
        guard let biases = p.biases, p.scales.dtype == .float16 || p.scales.dtype == .float32 else { return nil }
        return Fast.PackedMatrix(weight: p.weight, scales: p.scales, biases: biases, groupSize: p.groupSize, bits: p.bits)
    }

    /// The layer's projections in the kernel's order: q, k, v, o, gate, up, down.
    private static func projections(_ attention: LlamaAttention, _ mlp: LlamaMLP) -> [any LinearLayer] {
        [attention.qProj, attention.kProj, attention.vProj, attention.oProj, mlp.gateProj, mlp.upProj, mlp.downProj]
    }

    /// Per projection (q, k, v, o, gate, up, down): nil where it is the layer the plan was built
    /// from, its LoRA adapter where one wraps that layer; nil overall when a projection is
    /// anything else (another layer, or an adapter whose dropout is active).
    func adapters(_ attention: LlamaAttention, _ mlp: LlamaMLP) -> [LoRALinear?]? {
        let layers = Self.projections(attention, mlp)
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

extension LlamaDecoderLayer: FusedDecodeLayer {
    /// The plan, and the LoRA updates of the adapters' current weights (empty without adapters).
    typealias FusedInputs = (plan: FusedDecodePlan, lowRank: [Fast.LowRankUpdate?])
    typealias FusedSettings = Fast.DecodeLayerSettings

    /// The decode plan, when it still describes the layer's projections: each is the hybrid
    /// layer the plan was built from, or a LoRA adapter on it without active dropout.
    var currentDecodePlan: FusedDecodePlan? {
        guard let decodePlan, decodePlan.adapters(selfAttention, mlp) != nil else { return nil }
        return decodePlan
    }

    func fusedDecodeInputs() throws -> FusedInputs? {
        guard let decodePlan, let adapters = decodePlan.adapters(selfAttention, mlp) else { return nil }
        guard adapters.contains(where: { $0 != nil }) else { return (decodePlan, []) }
        return (decodePlan, try lowRankCache.updates(for: adapters))
    }

    func fusedDecode(_ x: MLXArray, inputs: FusedInputs, settings: FusedSettings, cache: KVCache, mask: MLXArray?) throws -> MLXArray {
        guard let keys = cache.keys, let values = cache.values else {
            throw LanguageModelError.invalidParameter(field: "cache", message: "a fused decode step needs a filled cache")
        }
        let plan = inputs.plan
        let r = try Fast.decodeLayer(
            x, settings: settings, offset: cache.offset, inputNorm: inputNorm.weight, postAttentionNorm: postAttentionNorm.weight,
            qkv: plan.qkv, output: plan.output, gateUp: plan.gateUp, down: plan.down,
            keys: keys, values: values, qkvBias: plan.qkvBias, mask: mask, lowRank: inputs.lowRank)
        try cache.advance(keys: r.keys, values: r.values, by: 1)
        return r.output
    }
}

extension LlamaModel: FusedDecoding {
    var fusedDecodeLayers: [LlamaDecoderLayer] { model.layers }

    var fusedDecodeSettings: Fast.DecodeLayerSettings {
        let c = configuration
        let d = c.headDimension
        return Fast.DecodeLayerSettings(
            heads: c.headCount, kvHeads: c.kvHeadCount, headDimension: d, normEps: c.rmsNormEps, ropeDimensions: d,
            ropeTraditional: c.ropeTraditional, ropeBase: c.ropeTheta, ropeScale: c.ropeScale, attentionScale: 1 / Float(d).squareRoot())
    }

    func embed(_ tokens: MLXArray) throws -> MLXArray { try model.embedTokens(tokens) }

    func finalNorm(_ hidden: MLXArray) throws -> MLXArray { try model.norm(hidden) }
}
