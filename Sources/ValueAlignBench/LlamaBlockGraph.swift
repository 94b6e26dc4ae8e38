public import MLXEngine

/// One Llama decoder block with SmolLM2-135M's shapes, written as a pure function of its inputs
/// so that the same graph can be timed through MLX's own ops (as MLX's Python API runs it) and
/// through ValueAlign's kernels. bench/anchors/llama_block.py defines the identical graph for
/// PyTorch and for MLX's Python API.
///
/// h = x + o(attn(rope(q(rms1 x)), rope(k(rms1 x)), v(rms1 x)));  y = h + down(silu(gate(rms2 h)) * up(rms2 h))
/// loss = sum(y * r)
public struct LlamaBlockGraph: Sendable {
    public enum Variant: String, Sendable, CaseIterable {
        /// MLX's own ops: fast.scaled_dot_product_attention and sigmoid(g) * g * u.
        case mlxOps = "mlx-ops"
        /// ValueAlign's vectorised kernels: fused attention and the SiLU gate.
        case kernels
    }

    public var batch = 4
    public var sequence = 256
    public var hidden = 576
    public var heads = 9
    public var kvHeads = 3
    public var mlp = 1536
    public var ropeBase: Float = 100_000
    public var eps: Float = 1e-5

    public init() {}

    var headDim: Int { hidden / heads }

    /// x, the nine weights (rms1, q, k, v, o, rms2, gate, up, down) and the cotangent r.
    public func makeInputs(seed: UInt64 = 0) throws -> (inputs: [MLXArray], cotangent: MLXArray) {
        var keys = try MLXRandom.split(MLXRandom.key(seed), count: 12)
        func normal(_ shape: [Int], std: Float) throws -> MLXArray { try MLXRandom.normal(shape, std: std, key: keys.removeFirst()) }
        let kv = kvHeads * headDim
        let inputs: [MLXArray] = [
            try normal([batch, sequence, hidden], std: 1),
            try MLXArray.ones([hidden]),
            try normal([hidden, hidden], std: 0.02),
            try normal([kv, hidden], std: 0.02),
            try normal([kv, hidden], std: 0.02),
            try normal([hidden, hidden], std: 0.02),
            try MLXArray.ones([hidden]),
            try normal([mlp, hidden], std: 0.02),
            try normal([mlp, hidden], std: 0.02),
            try normal([hidden, mlp], std: 0.02),
        ]
        let r = try normal([batch, sequence, hidden], std: 1)
        try eval(inputs + [r])
        return (inputs, r)
    }

    /// The block's output y.
    public func forward(_ p: [MLXArray], variant: Variant) throws -> MLXArray {
        let (x, n1, wq, wk, wv, wo, n2, wg, wu, wd) = (p[0], p[1], p[2], p[3], p[4], p[5], p[6], p[7], p[8], p[9])
        let (b, l, d) = (batch, sequence, headDim)
        let a = try Fast.rmsNorm(x, weight: n1, eps: eps)
        var q = try a.matmul(wq.T).reshaped(b, l, heads, d).transposed(0, 2, 1, 3)
        var k = try a.matmul(wk.T).reshaped(b, l, kvHeads, d).transposed(0, 2, 1, 3)
        let v = try a.matmul(wv.T).reshaped(b, l, kvHeads, d).transposed(0, 2, 1, 3)
        q = try Fast.rope(q, dimensions: d, traditional: false, base: ropeBase)
        k = try Fast.rope(k, dimensions: d, traditional: false, base: ropeBase)
        let scale = 1 / Float(d).squareRoot()
        let attended: MLXArray
        switch variant {
        case .mlxOps: attended = try Fast.scaledDotProductAttention(queries: q, keys: k, values: v, scale: scale, mask: .causal)
        case .kernels: attended = try Fast.attention(queries: q, keys: k, values: v, scale: scale, causal: true)
        }
        let h = try x + attended.transposed(0, 2, 1, 3).reshaped(b, l, hidden).matmul(wo.T)
        let m = try Fast.rmsNorm(h, weight: n2, eps: eps)
        let g = try m.matmul(wg.T), u = try m.matmul(wu.T)
        let act: MLXArray
        switch variant {
        case .mlxOps: act = try g * g.sigmoid() * u
        case .kernels: act = try Fast.siluGate(g, u)
        }
        return try h + act.matmul(wd.T)
    }

    /// Forward time and forward+backward time (gradients for x and all nine weights), median ms.
    public func time(variant: Variant, iterations: Int, seed: UInt64 = 0) throws -> (forward: Double, forwardBackward: Double) {
        let (inputs, r) = try makeInputs(seed: seed)
        let forwardMs = try medianMilliseconds(warmup: 2, iterations: iterations) {
            try eval(forward(inputs, variant: variant))
        }
        let backwardMs = try medianMilliseconds(warmup: 2, iterations: iterations) {
            let (values, grads) = try valueAndGrad(inputs) { p in [try (forward(p, variant: variant) * r).sum()] }
            try eval(values + grads)
        }
        return (forwardMs, backwardMs)
    }
}
