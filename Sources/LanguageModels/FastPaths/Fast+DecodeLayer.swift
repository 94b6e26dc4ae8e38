internal import CMLXBridge
public import MLXEngine

// The Swift side of the bridge's fused Llama decoder-layer kernel
// (Sources/CMLXBridge/kernels/decode_layer.cpp). It sits here rather than in MLXEngine because
// its inputs are one architecture's layer (pre-norm attention with rope, SwiGLU MLP), which the
// generic engine should not know about; the kernel itself stays in the bridge.

extension Fast {
    /// The shape and settings of a Llama decoder layer, for ``decodeLayer(_:settings:offset:inputNorm:postAttentionNorm:qkv:output:gateUp:down:keys:values:qkvBias:mask:lowRank:)``.
    public struct DecodeLayerSettings: Sendable, Equatable {
        public var heads: Int
        public var kvHeads: Int
        public var headDimension: Int
        public var normEps: Float
        public var ropeDimensions: Int
        public var ropeTraditional: Bool
        public var ropeBase: Float
        public var ropeScale: Float
        public var attentionScale: Float

        public init(heads: Int, kvHeads: Int, headDimension: Int, normEps: Float, ropeDimensions: Int, ropeTraditional: Bool,
                    ropeBase: Float, ropeScale: Float, attentionScale: Float) {
            self.heads = heads
            self.kvHeads = kvHeads
            self.headDimension = headDimension
            self.normEps = normEps
            self.ropeDimensions = ropeDimensions
            self.ropeTraditional = ropeTraditional
            self.ropeBase = ropeBase
            self.ropeScale = ropeScale
            self.attentionScale = attentionScale
        }
    }

    /// A low-rank update `y += (x At) Bt` of one projection's output in ``decodeLayer(_:settings:offset:inputNorm:postAttentionNorm:qkv:output:gateUp:down:keys:values:qkvBias:mask:lowRank:)``:
    /// a LoRA adapter with `At` = A^T [in, R] and `Bt` = scale * B^T [R, out], both float32.
    public struct LowRankUpdate: @unchecked Sendable {
        public let at: MLXArray
        public let bt: MLXArray
        public init(at: MLXArray, bt: MLXArray) {
            self.at = at
            self.bt = bt
        }
    }

    /// One Llama decoder layer for one new token per sequence, as a single graph node (CPU only,
    /// inference only: it has no gradient).
    ///
    /// Computes, for `x` [B, 1, H]: `h = rmsNorm(x) * inputNorm`; q, k, v from the fused packed
    /// `qkv` (q rows, then k, then v; plus `qkvBias`); rope at position `offset`; writes k and v into
    /// the caches [B, kvHeads, capacity, headDim] at `offset`; attention over positions
    /// [0, offset] with the additive `mask` [B or 1, capacity] (left padding); then the output
    /// projection, the residual, the post-attention norm, the SwiGLU MLP from the fused packed
    /// `gateUp` (gate rows, then up rows) and `down`, and the second residual. Returns the layer's
    /// output and the caches with the new position written (in place when the caller holds no
    /// other reference to the old ones). The same layer through MLX ops costs ~25 graph nodes;
    /// decode steps at SmolLM2's size are bound by that per-node cost. `lowRank` holds nothing or
    /// seven entries (q, k, v, o, gate, up, down): the LoRA update of each projection, if any.
    public static func decodeLayer(
        _ x: MLXArray, settings: DecodeLayerSettings, offset: Int, inputNorm: MLXArray, postAttentionNorm: MLXArray,
        qkv: PackedMatrix, output: PackedMatrix, gateUp: PackedMatrix, down: PackedMatrix,
        keys: MLXArray, values: MLXArray, qkvBias: MLXArray? = nil, mask: MLXArray? = nil, lowRank: [LowRankUpdate?] = []
    ) throws(MLXError) -> (output: MLXArray, keys: MLXArray, values: MLXArray) {
        guard lowRank.isEmpty || lowRank.count == 7 else {
            throw .invalidArgument("decode_layer: lowRank needs 7 entries (q, k, v, o, gate, up, down), got \(lowRank.count)")
        }
        let packed = [qkv, output, gateUp, down]
        var inputs = [x, inputNorm, postAttentionNorm]
        for p in packed { inputs += [p.weight, p.scales, p.biases] }
        inputs += [keys, values]
        if let qkvBias { inputs.append(qkvBias) }
        if let mask { inputs.append(mask) }
        for update in lowRank { if let update { inputs += [update.at, update.bt] } }
        var spec = mlxb_decode_layer_spec()
        spec.heads = Int32(settings.heads)
        spec.kv_heads = Int32(settings.kvHeads)
        spec.head_dim = Int32(settings.headDimension)
        spec.eps = settings.normEps
        spec.rope_dims = Int32(settings.ropeDimensions)
        spec.rope_traditional = settings.ropeTraditional
        spec.rope_base = settings.ropeBase
        spec.rope_scale = settings.ropeScale
        spec.attention_scale = settings.attentionScale
        spec.offset = Int32(offset)
        spec.bits = (Int32(packed[0].bits), Int32(packed[1].bits), Int32(packed[2].bits), Int32(packed[3].bits))
        spec.groups = (Int32(packed[0].groupSize), Int32(packed[1].groupSize), Int32(packed[2].groupSize), Int32(packed[3].groupSize))
        spec.has_bias = qkvBias != nil
        spec.has_mask = mask != nil
        let a = (0..<7).map { lowRank.count == 7 && lowRank[$0] != nil }
        spec.has_lora = (a[0], a[1], a[2], a[3], a[4], a[5], a[6])
        let parts = try withHandles(inputs) { (handles) throws(MLXError) in
            try produceList("decode_layer") { mlxb_decode_layer(&spec, handles, inputs.count, $0) }
        }
        guard parts.count == 3 else { throw .operationFailed(operation: "decode_layer", message: "expected 3 outputs, got \(parts.count)") }
        return (parts[0], parts[1], parts[2])
    }
}
