import Foundation
import MLXEngine

// The CPU fast path of decode steps: one fused kernel per decoder layer for a single new token per
// sequence, instead of ~25 graph nodes per layer op by op (decode at SmolLM2's size is bound by
// that per-node cost). An architecture opts in by making its layers `FusedDecodeLayer`s and its
// model `FusedDecoding`; the decision when the path applies and the step around the layers
// (cache room, key mask, embedding, captures, final norm) are shared here, so every
// architecture's fast path engages in the same cases.

/// A decoder layer that one fused CPU kernel can run for a single new token per sequence.
protocol FusedDecodeLayer: AnyObject {
    /// What one step of the layer reads besides its input and cache (packed weights, LoRA
    /// updates). Prepared for every layer before a step, so that a step is fused only when all
    /// layers can be.
    associatedtype FusedInputs
    /// Constants of a step that every layer shares (shapes, rope), built once per step.
    associatedtype FusedSettings

    /// The inputs of a fused step, or nil when the kernel no longer describes the layer (a
    /// projection was replaced, or an adapter's dropout is active): the step then runs op by op.
    func fusedDecodeInputs() throws -> FusedInputs?

    /// One step for `x` [B, 1, hidden]. `cache` already has room for the new position and is
    /// advanced by one; `mask` is the additive key mask [B, capacity] (left padding) or nil.
    func fusedDecode(_ x: MLXArray, inputs: FusedInputs, settings: FusedSettings, cache: KVCache, mask: MLXArray?) throws -> MLXArray
}

/// A model whose single-token decode steps can run through `FusedDecodeLayer`s (see
/// `fusedDecodeStep(_:cache:keyPadding:captureLayers:)`).
protocol FusedDecoding: CausalLanguageModel {
    associatedtype DecodeLayer: FusedDecodeLayer

    /// Off: every step runs op by op, as prefill does (for comparisons and as an escape hatch).
    var fusedDecodeEnabled: Bool { get }
    /// The decoder layers, in order.
    var fusedDecodeLayers: [DecodeLayer] { get }
    /// The settings every layer's step shares.
    var fusedDecodeSettings: DecodeLayer.FusedSettings { get }
    /// The op-by-op parts around the layers: token embedding and the final norm.
    func embed(_ tokens: MLXArray) throws -> MLXArray
    func finalNorm(_ hidden: MLXArray) throws -> MLXArray
}

/// Whether fused decode steps are on for newly built models: the environment's
/// `VALUEALIGN_FUSED_DECODE` (0 turns them off), else on.
let fusedDecodeDefault = ProcessInfo.processInfo.environment["VALUEALIGN_FUSED_DECODE"] != "0"

extension FusedDecoding {
    /// Every layer's inputs when fused steps apply: enabled, on the CPU, for at most
    /// `HybridThreshold.rows` rows (where the packed weights serve), with a filled cache and each
    /// layer's inputs current. nil: run the step op by op.
    func fusedDecodeInputs(rows: Int, cache: [KVCache]) throws -> [DecodeLayer.FusedInputs]? {
        // Not under a gradient (the fused layer has none) and not on a concatenating cache (a
        // training pass over shared prompts, which has no room reserved for the new position).
        guard rows <= HybridThreshold.rows, fusedDecodeEnabled, cache.first?.keys != nil, cache.first?.preallocates == true,
              !GradientTrace.isActive,
              Device.default.kind == .cpu else { return nil }
        let layers = fusedDecodeLayers
        var inputs: [DecodeLayer.FusedInputs] = []
        inputs.reserveCapacity(layers.count)
        for layer in layers {
            guard let layerInputs = try layer.fusedDecodeInputs() else { return nil }
            inputs.append(layerInputs)
        }
        return inputs
    }

    /// Runs `tokens` [B, 1] as one fused step when the path applies (`fusedDecodeInputs`);
    /// nil when it does not, and the caller runs the step op by op. `cache` holds one entry per
    /// layer (the caller checks the count).
    func fusedDecodeStep(_ tokens: MLXArray, cache: [KVCache]?, keyPadding: MLXArray?, captureLayers: Set<Int>) throws -> ForwardOutput? {
        guard let cache, tokens.dim(1) == 1, let inputs = try fusedDecodeInputs(rows: tokens.dim(0), cache: cache) else { return nil }
        let mask = try reserveFusedStep(batch: tokens.dim(0), cache: cache, keyPadding: keyPadding)
        let settings = fusedDecodeSettings
        let layerCount = configuration.layerCount
        let steering = steering
        var h = try embed(tokens)
        var captured: [Int: MLXArray] = [:]
        if captureLayers.contains(0) { captured[0] = h }
        for (i, layer) in fusedDecodeLayers.enumerated() {
            h = try layer.fusedDecode(h, inputs: inputs[i], settings: settings, cache: cache[i], mask: mask)
            // Steering stays on the fused path: one add between two fused layers.
            if let steering { h = try steering.apply(h, afterBlocks: i + 1) }
            if captureLayers.contains(i + 1), i + 1 < layerCount { captured[i + 1] = h }
        }
        h = try finalNorm(h)
        if captureLayers.contains(layerCount) { captured[layerCount] = h }
        return ForwardOutput(hidden: h, captured: captured)
    }

    /// Reserves room for the new position in every layer's cache and returns the step's additive
    /// key mask [B, capacity] (nil without padding: the kernel attends to [0, offset] itself).
    private func reserveFusedStep(batch b: Int, cache: [KVCache], keyPadding: MLXArray?) throws -> MLXArray? {
        let c = configuration
        let offset = cache[0].offset
        let kvShape = [b, c.kvHeadCount, 1, c.headDimension]
        for layerCache in cache {
            guard layerCache.offset == offset, layerCache.keys?.dim(0) == b else {
                throw LanguageModelError.invalidParameter(field: "cache", message: "layer caches disagree on length or batch size")
            }
            try layerCache.reserve(offset + 1, keyShape: kvShape, valueShape: kvShape, dtype: .float32)
        }
        guard let keyPadding else { return nil }
        guard keyPadding.ndim == 2, keyPadding.dim(0) == b, keyPadding.dim(1) == offset + 1 else {
            throw LanguageModelError.invalidParameter(
                field: "keyPadding", message: "expected shape [\(b), \(offset + 1)], got \(keyPadding.shape)")
        }
        let keep = try keyPadding.padded(low: [0, 0], high: [0, cache[0].capacity - offset - 1])
        return try which(keep, MLXArray(Float(0)), MLXArray(-Float.infinity))
    }
}
