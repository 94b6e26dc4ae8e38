public import MLXEngine
public import MLXNN

/// How the positions of a forward pass may attend to each other and to the cache.
public struct AttentionContext {
    /// Causal (bottom-right aligned when queries are fewer than keys).
    public var causal: Bool
    /// Additive mask [B, 1, L, S] or [B, 1, 1, S] (0 keep, -inf drop), or nil.
    public var mask: MLXArray?
    /// Attend over the cache's whole buffer (single-token decode); the mask hides unused slots.
    public var useWholeCache: Bool
}

/// What a forward pass returns.
public struct ForwardOutput {
    /// Final hidden states after the last norm, [B, L, hidden].
    public var hidden: MLXArray
    /// Residual-stream states requested with `captureLayers`, keyed by Hugging Face's
    /// `hidden_states` index (0 = embeddings, i = output of decoder layer i, layerCount = the
    /// final normed states).
    public var captured: [Int: MLXArray]
}

/// A decoder-only language model: tokens in, hidden states and next-token logits out.
///
/// Implementations are modules (parameters named as in Hugging Face checkpoints, so LoRA adapters
/// get PEFT's key names) and are not thread-safe: wrap one in an actor to share it.
public protocol CausalLanguageModel: Module {
    var configuration: ModelConfiguration { get }

    /// Runs `tokens` [B, L] through the model. With `cache` (one per layer), keys and values are
    /// appended and positions continue from the cache's offset. `keyPadding` [B, offset + L]
    /// (bool, true = real token) hides left padding.
    func forward(_ tokens: MLXArray, cache: [KVCache]?, keyPadding: MLXArray?, captureLayers: Set<Int>) throws -> ForwardOutput

    /// Next-token logits [..., vocabulary] for final hidden states [..., hidden].
    func logits(_ hidden: MLXArray) throws -> MLXArray

    /// Vectors every forward pass adds to the residual stream (activation steering), at every
    /// position, prompt included, as llama.cpp applies control vectors; nil: none. Captured
    /// states include the additions.
    var steering: ResidualSteering? { get set }
}

extension CausalLanguageModel {
    /// Logits [B, L, vocabulary] for `tokens` [B, L].
    public func callAsFunction(_ tokens: MLXArray, cache: [KVCache]? = nil, keyPadding: MLXArray? = nil) throws -> MLXArray {
        try logits(forward(tokens, cache: cache, keyPadding: keyPadding, captureLayers: []).hidden)
    }

    /// A fresh cache for one generation run.
    public func makeCache() -> [KVCache] { (0..<configuration.layerCount).map { _ in KVCache() } }
}

/// Builds the attention context shared by all layers of one forward pass.
func attentionContext(batch: Int, length: Int, cache: [KVCache]?, keyPadding: MLXArray?) throws -> AttentionContext {
    let offset = cache?.first?.offset ?? 0
    let total = offset + length
    if let keyPadding {
        guard keyPadding.ndim == 2, keyPadding.dim(0) == batch, keyPadding.dim(1) == total else {
            throw LanguageModelError.invalidParameter(
                field: "keyPadding", message: "expected shape [\(batch), \(total)], got \(keyPadding.shape)")
        }
    }
    if length == 1, let first = cache?.first, first.preallocates {
        // Decode: attend over the whole preallocated buffer; slots past `total` and padding are masked.
        // (A concatenating cache holds exactly `total` positions: the general path below.)
        let needed = total
        let capacity = first.capacity >= needed ? first.capacity : KVCache.capacity(for: needed)
        var keep = try MLXArray.arange(Double(capacity)).reshaped(1, capacity) .< Float(total)
        if let keyPadding {
            let padded = try keyPadding.padded(low: [0, 0], high: [0, capacity - total])
            keep = try keep.logicalAnd(padded)
        }
        let mask = try which(keep, MLXArray(Float(0)), MLXArray(-Float.infinity)).reshaped(-1, 1, 1, capacity)
        return AttentionContext(causal: false, mask: mask, useWholeCache: true)
    }
    var mask: MLXArray?
    if let keyPadding {
        mask = try which(keyPadding, MLXArray(Float(0)), MLXArray(-Float.infinity)).reshaped(batch, 1, 1, total)
    }
    return AttentionContext(causal: true, mask: mask, useWholeCache: false)
}
