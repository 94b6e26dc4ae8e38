internal import CMLXBridge

/// Fused kernels: MLX's own (`rmsNorm`, `rope`, `scaledDotProductAttention`, quantisation) and
/// ValueAlign's vectorised CPU kernels (`siluGate`, `softmaxLastAxis`, `attention`,
/// `quantizedMatmulRows`), all differentiable.
public enum Fast {
    /// x / sqrt(mean(x^2) + eps) * weight over the last axis.
    public static func rmsNorm(_ x: MLXArray, weight: MLXArray?, eps: Float) throws(MLXError) -> MLXArray {
        try produce("rms_norm") { mlxb_rms_norm(x.handle, weight?.handle, eps, $0) }
    }

    /// Layer normalisation over the last axis.
    public static func layerNorm(_ x: MLXArray, weight: MLXArray?, bias: MLXArray?, eps: Float) throws(MLXError) -> MLXArray {
        try produce("layer_norm") { mlxb_layer_norm(x.handle, weight?.handle, bias?.handle, eps, $0) }
    }

    /// Rotary position embedding over the first `dimensions` features of the last axis of
    /// [..., L, D] input, positions starting at `offset`. `traditional` rotates adjacent pairs
    /// (GGUF's layout); otherwise the two halves (Hugging Face's).
    ///
    /// On the CPU with float32 input this is ValueAlign's rope kernel: one primitive reading `x`
    /// through its strides, whose gradient is the inverse rotation (MLX's own CPU rope is a
    /// composition of about twenty ops). Elsewhere it is MLX's `fast::rope`; both agree
    /// (``mlxRope(_:dimensions:traditional:base:scale:offset:)`` is MLX's, for comparison).
    public static func rope(_ x: MLXArray, dimensions: Int, traditional: Bool, base: Float, scale: Float = 1, offset: Int = 0) throws(MLXError) -> MLXArray {
        try produce("rope") { mlxb_rope_kernel(x.handle, Int32(dimensions), traditional, base, scale, Int32(offset), $0) }
    }

    /// MLX's own `fast::rope` (on the CPU, its op-by-op fallback).
    public static func mlxRope(_ x: MLXArray, dimensions: Int, traditional: Bool, base: Float, scale: Float = 1, offset: Int = 0) throws(MLXError) -> MLXArray {
        try produce("rope") { mlxb_rope(x.handle, Int32(dimensions), traditional, base, scale, Int32(offset), $0) }
    }

    /// The mask of an attention call.
    public enum AttentionMask: Sendable {
        case none
        case causal
        /// Additive (float) or keep (bool) mask broadcastable to [B, H, L, S].
        case array(MLXArray)
    }

    /// MLX's attention: softmax(scale * q k^T + mask) v for q [B, H, L, D], k and v [B, Hkv, S, D].
    public static func scaledDotProductAttention(queries: MLXArray, keys: MLXArray, values: MLXArray, scale: Float, mask: AttentionMask = .none) throws(MLXError) -> MLXArray {
        switch mask {
        case .none: try produce("scaled_dot_product_attention") { mlxb_sdpa(queries.handle, keys.handle, values.handle, scale, "", nil, $0) }
        case .causal: try produce("scaled_dot_product_attention") { mlxb_sdpa(queries.handle, keys.handle, values.handle, scale, "causal", nil, $0) }
        case let .array(m): try produce("scaled_dot_product_attention") { mlxb_sdpa(queries.handle, keys.handle, values.handle, scale, "", m.handle, $0) }
        }
    }

    /// x @ dequantize(w)^T (transpose) or x @ dequantize(w), for MLX affine-quantised weights.
    public static func quantizedMatmul(_ x: MLXArray, weight: MLXArray, scales: MLXArray, biases: MLXArray?, transpose: Bool = true, groupSize: Int = 64, bits: Int = 4) throws(MLXError) -> MLXArray {
        try produce("quantized_matmul") { mlxb_quantized_matmul(x.handle, weight.handle, scales.handle, biases?.handle, transpose, Int32(groupSize), Int32(bits), $0) }
    }

    /// x @ dequantize(weight)^T for few rows of x, with ValueAlign's CPU kernel: the packed
    /// weights are read once per call and dequantised in registers, so a decode step reads 4 or 8
    /// bits per weight instead of 32 (SmolLM2's GGUF: 4-bit layers, 8-bit `token_embd` as the
    /// tied output head).
    ///
    /// `x` is [..., K], `weight` [N, K * bits / 32] (uint32), `scales` and `biases` [N, K / groupSize]
    /// in MLX's affine layout (as `quantize` and `ArrayIO.loadGGUF` give them); the result is
    /// [..., N]. The kernel covers float32 `x`, 4 or 8 bits and groups of 32, 64 or 128 with float16,
    /// bfloat16 or float32 scales, on the CPU; anything else (other bit widths, no biases, another
    /// dtype of `x`, a GPU default device) is computed by ``quantizedMatmul(_:weight:scales:biases:transpose:groupSize:bits:)``
    /// with `transpose: true`, so the same call works on every build. Made for up to ~64 rows (from 8
    /// rows it dequantises each weight tile once for all rows); it is correct for any number, but
    /// for prefill or training a dequantised float32 matrix is faster.
    /// The kernel computes in float32 (MLX's own kernel works in the scales' dtype), so the
    /// two differ by float16 rounding when the scales are float16.
    ///
    /// Differentiable with respect to `x`, `scales` and `biases`; the packed `weight` has no
    /// gradient, and asking for one throws.
    public static func quantizedMatmulRows(_ x: MLXArray, weight: MLXArray, scales: MLXArray, biases: MLXArray?, groupSize: Int = 64, bits: Int = 4) throws(MLXError) -> MLXArray {
        try produce("quantized_matmul_rows") { mlxb_quantized_matmul_rows(x.handle, weight.handle, scales.handle, biases?.handle, Int32(groupSize), Int32(bits), $0) }
    }

    /// Affine quantisation of a matrix along its last axis.
    public static func quantize(_ w: MLXArray, groupSize: Int = 64, bits: Int = 4) throws(MLXError) -> (weight: MLXArray, scales: MLXArray, biases: MLXArray) {
        let parts = try produceList("quantize") { mlxb_quantize(w.handle, Int32(groupSize), Int32(bits), $0) }
        guard parts.count == 3 else { throw .operationFailed(operation: "quantize", message: "expected 3 outputs, got \(parts.count)") }
        return (parts[0], parts[1], parts[2])
    }

    /// The float matrix of an affine-quantised one.
    public static func dequantize(_ w: MLXArray, scales: MLXArray, biases: MLXArray?, groupSize: Int = 64, bits: Int = 4) throws(MLXError) -> MLXArray {
        try produce("dequantize") { mlxb_dequantize(w.handle, scales.handle, biases?.handle, Int32(groupSize), Int32(bits), $0) }
    }

    /// silu(gate) * up, the SwiGLU gate, in one vectorised pass.
    public static func siluGate(_ gate: MLXArray, _ up: MLXArray) throws(MLXError) -> MLXArray {
        try produce("silu_gate") { mlxb_silu_gate(gate.handle, up.handle, $0) }
    }

    /// `siluGate` for x [..., 2N] holding the gate (first N values of each row) and up (last N):
    /// the output of a fused gate/up projection, read without splitting it, and its gradient
    /// written as one [..., 2N] array. Throws for an odd last axis.
    public static func siluGateHalves(_ x: MLXArray) throws(MLXError) -> MLXArray {
        try produce("silu_gate_halves") { mlxb_silu_gate_halves(x.handle, $0) }
    }

    /// log softmax(scale * logits)[target] per row: logits [N, V], targets [N] (integers) -> [N].
    /// One pass over the logits forward and one backward, where log-softmax and a gather in MLX ops
    /// make and read several [N, V] arrays (for an LM head: 200 MB each at 1024 rows of a 49k
    /// vocabulary). Differentiable with respect to the logits; a target outside [0, V) gives NaN.
    public static func logSoftmaxPicked(_ logits: MLXArray, targets: MLXArray, scale: Float = 1) throws(MLXError) -> MLXArray {
        try produce("logsoftmax_pick") { mlxb_logsoftmax_pick(logits.handle, targets.handle, scale, $0) }
    }

    /// Softmax over the last axis with a vectorised kernel.
    public static func softmaxLastAxis(_ x: MLXArray) throws(MLXError) -> MLXArray {
        try produce("softmax") { mlxb_softmax_lastaxis(x.handle, $0) }
    }

    /// ValueAlign's fused attention (grouped-query; causal and/or additive mask), differentiable.
    public static func attention(queries: MLXArray, keys: MLXArray, values: MLXArray, scale: Float, causal: Bool, mask: MLXArray? = nil) throws(MLXError) -> MLXArray {
        try produce("attention") { mlxb_attention(queries.handle, keys.handle, values.handle, scale, causal, mask?.handle, $0) }
    }

    /// A matrix in MLX's affine quantised layout: `weight` [N, K * bits / 32] (uint32 codes),
    /// `scales` and `biases` [N, K / groupSize] (float16 or float32).
    public struct PackedMatrix: @unchecked Sendable {
        public var weight: MLXArray
        public var scales: MLXArray
        public var biases: MLXArray
        public var groupSize: Int
        public var bits: Int

        public init(weight: MLXArray, scales: MLXArray, biases: MLXArray, groupSize: Int, bits: Int) {
            self.weight = weight
            self.scales = scales
            self.biases = biases
            self.groupSize = groupSize
            self.bits = bits
        }
    }

    // MARK: bfloat16 matmuls on AMX tiles

    /// Whether bfloat16 matmuls on Intel AMX tiles work in this process: the CPU has AMX-BF16,
    /// the kernel grants the tile state, and a probe in a child process did not fault (some VMs
    /// advertise AMX without passing it through). Probed once. `VALUEALIGN_AMX=0` turns it off.
    public static var amxAvailable: Bool { mlxb_amx_available() != 0 }

    /// Turns the AMX path off (false) or back to automatic (true); for tests and comparisons.
    public static func setAMXEnabled(_ on: Bool) throws(MLXError) {
        try check(mlxb_set_amx_enabled(on), "set_amx_enabled")
    }

    /// A frozen float32 weight [out, in] packed for `bf16Linear`: both products a linear layer
    /// needs (x W^T forward, dy W for the input gradient), as bfloat16 AMX tiles. Evaluates the
    /// weight; 4 bytes per weight in all.
    public struct BF16Weight: @unchecked Sendable {
        public let forward: MLXArray
        public let backward: MLXArray
        public let outputs: Int
        public let inputs: Int

        public init(_ weight: MLXArray) throws(MLXError) {
            guard weight.ndim == 2 else { throw .invalidArgument("bf16 weight: expects [out, in], got \(weight.shape)") }
            forward = try produce("pack_bf16") { mlxb_pack_bf16(weight.handle, true, $0) }
            backward = try produce("pack_bf16") { mlxb_pack_bf16(weight.handle, false, $0) }
            outputs = weight.dim(0)
            inputs = weight.dim(1)
        }

        /// Packs made earlier (`bf16Linear` checks that they fit `outputs` x `inputs`).
        public init(forward: MLXArray, backward: MLXArray, outputs: Int, inputs: Int) {
            self.forward = forward
            self.backward = backward
            self.outputs = outputs
            self.inputs = inputs
        }
    }

    /// x [..., in] -> x W^T [..., out] with x rounded to bfloat16 and float32 accumulation, on AMX
    /// tiles (the precision of PyTorch's bf16 autocast). Differentiable with respect to x only:
    /// the weight is frozen. Throws when `amxAvailable` is false.
    public static func bf16Linear(_ x: MLXArray, _ w: BF16Weight) throws(MLXError) -> MLXArray {
        try produce("bf16_matmul") { mlxb_bf16_matmul(x.handle, w.forward.handle, w.backward.handle, Int32(w.outputs), Int32(w.inputs), $0) }
    }

    /// x [..., in] -> x W^T [..., out] for a float32 weight W [out, in]: a linear layer's product,
    /// through cblas_sgemm as one MLX primitive. With more than one kernel thread, a product of at
    /// least 4 million multiply-adds is cut into one block of output columns (or rows) per thread,
    /// one single-threaded GEMM each, run in parallel while OpenBLAS is single-threaded (training:
    /// `TrainingBLASThreads`) instead of by OpenBLAS's thread team, whose idle workers spin and
    /// hold the cores the other kernels need; otherwise the blocks run one after the other. The
    /// blocks depend only on the shape and the kernel thread count. Differentiable with respect to
    /// x and W. Other dtypes, 1-D x, or a GPU get MLX's `matmul(x, W.T)`.
    public static func linear(_ x: MLXArray, _ weight: MLXArray) throws(MLXError) -> MLXArray {
        try produce("blas_matmul") { mlxb_blas_matmul(x.handle, weight.handle, true, $0) }
    }

    /// x [..., k] -> x · B [..., n] for a float32 B [k, n], the product of `linear` without the
    /// transpose (same blocks, same fallbacks).
    public static func blasMatmul(_ x: MLXArray, _ b: MLXArray) throws(MLXError) -> MLXArray {
        try produce("blas_matmul") { mlxb_blas_matmul(x.handle, b.handle, false, $0) }
    }

    /// Whether `linear` cuts its large products into blocks (on, more than one kernel thread).
    public static var canSplitGEMMs: Bool { mlxb_split_gemm_possible() != 0 }

    /// Whether those blocks run in parallel now (also OpenBLAS single-threaded).
    public static var splitsGEMMs: Bool { mlxb_split_gemm_active() != 0 }

    /// Turns the splitting off (one cblas_sgemm per product) or back on, process-wide; for
    /// comparisons. It changes the rounding of later products. `VALUEALIGN_SPLIT_GEMM=0` starts a
    /// process with it off.
    public static func setGEMMSplitting(_ on: Bool) throws(MLXError) {
        try check(mlxb_set_split_gemm(on), "set_split_gemm")
    }

    /// Products `linear` and `blasMatmul` have cut into blocks so far in this process.
    public static var splitGEMMCount: UInt64 { mlxb_split_gemm_calls() }

    /// The instruction sets ValueAlign's kernels can use.
    public enum KernelISA: Int, Sendable, CaseIterable { case portable = 0, avx2 = 1, avx512 = 2 }

    /// The instruction set the kernels use now for graphs evaluated on this thread.
    public static var kernelISA: KernelISA { KernelISA(rawValue: Int(mlxb_kernel_isa())) ?? .portable }

    /// Forces an instruction set (nil: choose from the CPU) for the graphs this thread evaluates,
    /// not other threads' (the ISA changes the rounding). Throws when the CPU lacks it.
    public static func setKernelISA(_ isa: KernelISA?) throws(MLXError) {
        try check(mlxb_set_kernel_isa(Int32(isa?.rawValue ?? -1)), "set_kernel_isa")
    }
}
