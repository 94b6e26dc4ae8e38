import Foundation
import MLXEngine
import Testing
import ValueAlignTesting

/// MLX's fused kernels (rmsNorm, rope, scaled-dot-product attention, quantisation) against the
/// same computation composed from basic ops or written out in Swift.
@Suite("MLX fast kernels")
struct FastKernelTests {
    // MARK: rmsNorm

    @Test("rmsNorm equals x * rsqrt(mean(x^2) + eps) * w", arguments: [[4, 7], [2, 3, 16], [1, 576]])
    func rmsNorm(_ shape: [Int]) throws {
        let x = try Fixtures.normal(shape, seed: 1, std: 2)
        let w = try Fixtures.uniform([shape.last!], seed: 2, low: 0.5, high: 1.5)
        let eps: Float = 1e-5
        let composed = try x * (x.square().mean(axis: -1, keepDims: true) + eps).rsqrt() * w
        expectClose(try Fast.rmsNorm(x, weight: w, eps: eps), composed, atol: 1e-5, rtol: 1e-5)
        let unweighted = try x * (x.square().mean(axis: -1, keepDims: true) + eps).rsqrt()
        expectClose(try Fast.rmsNorm(x, weight: nil, eps: eps), unweighted, atol: 1e-5, rtol: 1e-5)
    }

    @Test("rmsNorm's eps matters for tiny inputs")
    func rmsNormEps() throws {
        let x = try MLXArray([1e-3, -1e-3] as [Float], shape: [1, 2])
        // mean(x^2) = 1e-6; with eps = 1e-6 the scale is 1/sqrt(2e-6).
        let expected = [1e-3, -1e-3].map { $0 / (2e-6).squareRoot() }
        expectClose(try Fast.rmsNorm(x, weight: nil, eps: 1e-6), expected, shape: [1, 2], atol: 1e-5, rtol: 1e-4)
    }

    @Test("layerNorm equals (x - mean) / sqrt(var + eps) * w + b")
    func layerNorm() throws {
        let x = try Fixtures.normal([3, 10], seed: 3)
        let w = try Fixtures.uniform([10], seed: 4), b = try Fixtures.uniform([10], seed: 5)
        let mu = try x.mean(axis: -1, keepDims: true)
        let composed = try (x - mu) * (x.variance(axes: [-1], keepDims: true) + 1e-5).rsqrt() * w + b
        expectClose(try Fast.layerNorm(x, weight: w, bias: b, eps: 1e-5), composed, atol: 1e-5, rtol: 1e-5)
    }

    // MARK: rope

    /// Rotary embedding written out element by element in Swift (doubles), for x of shape
    /// [B, H, L, D] in row-major order.
    static func ropeReference(
        _ x: [Double], shape: [Int], dimensions: Int, traditional: Bool, base: Double, scale: Double, offset: Int
    ) -> [Double] {
        let (L, D) = (shape[2], shape[3])
        let half = dimensions / 2
        var out = x
        for row in 0..<(x.count / D) {
            let position = Double(offset + row % L) * scale
            for i in 0..<half {
                let theta = position * Foundation.pow(base, -Double(2 * i) / Double(dimensions))
                let (c, s) = (Foundation.cos(theta), Foundation.sin(theta))
                let (a, b) = traditional ? (row * D + 2 * i, row * D + 2 * i + 1) : (row * D + i, row * D + i + half)
                out[a] = x[a] * c - x[b] * s
                out[b] = x[a] * s + x[b] * c
            }
        }
        return out
    }

    struct RopeCase: Sendable, CustomTestStringConvertible {
        var shape: [Int]
        var dimensions: Int
        var traditional: Bool
        var base: Float = 10_000
        var scale: Float = 1
        var offset: Int = 0
        var testDescription: String {
            "\(traditional ? "traditional" : "split-half") \(shape) dims \(dimensions) offset \(offset) scale \(scale)"
        }
    }

    static let ropeCases: [RopeCase] = [true, false].flatMap { traditional in
        [
            RopeCase(shape: [1, 2, 5, 8], dimensions: 8, traditional: traditional),
            RopeCase(shape: [2, 3, 4, 16], dimensions: 16, traditional: traditional, base: 500, offset: 7),
            RopeCase(shape: [1, 1, 3, 8], dimensions: 4, traditional: traditional, offset: 2),
            RopeCase(shape: [1, 2, 6, 8], dimensions: 8, traditional: traditional, base: 100, scale: 0.5, offset: 3),
        ]
    }

    @Test("rope equals the explicit cos/sin rotation", arguments: ropeCases)
    func rope(_ c: RopeCase) throws {
        let values = Fixtures.uniformValues(c.shape.reduce(1, *), seed: 9)
        let x = try Fixtures.array(values, shape: c.shape, dtype: .float32)
        let y = try Fast.rope(x, dimensions: c.dimensions, traditional: c.traditional, base: c.base, scale: c.scale, offset: c.offset)
        let expected = Self.ropeReference(
            values.map { Double(Float($0)) }, shape: c.shape, dimensions: c.dimensions, traditional: c.traditional,
            base: Double(c.base), scale: Double(c.scale), offset: c.offset)
        expectClose(y, expected, shape: c.shape, atol: 2e-5, rtol: 1e-4)
    }

    @Test("rope kernel equals MLX's own rope, also on a transposed (strided) view", arguments: ropeCases)
    func ropeKernelEqualsMLX(_ c: RopeCase) throws {
        // The attention layer hands rope a [B, H, L, D] view of a [B, L, H, D] buffer.
        let stored = [c.shape[0], c.shape[2], c.shape[1], c.shape[3]]
        let x = try Fixtures.uniform(stored, seed: 4).transposed(0, 2, 1, 3)
        let ours = try Fast.rope(x, dimensions: c.dimensions, traditional: c.traditional, base: c.base, scale: c.scale, offset: c.offset)
        let mlx = try Fast.mlxRope(x, dimensions: c.dimensions, traditional: c.traditional, base: c.base, scale: c.scale, offset: c.offset)
        #expect(ours.shape == c.shape)
        try expectClose(ours, mlx, atol: 2e-5, rtol: 1e-4)
    }

    @Test("rope kernel's gradient is the inverse rotation, as MLX's", arguments: ropeCases)
    func ropeKernelGradient(_ c: RopeCase) throws {
        let x = try Fixtures.uniform(c.shape, seed: 5)
        let r = try Fixtures.uniform(c.shape, seed: 6)
        let ours = try grad(x) { try (Fast.rope($0, dimensions: c.dimensions, traditional: c.traditional, base: c.base, scale: c.scale, offset: c.offset) * r).sum() }
        let mlx = try grad(x) { try (Fast.mlxRope($0, dimensions: c.dimensions, traditional: c.traditional, base: c.base, scale: c.scale, offset: c.offset) * r).sum() }
        try expectClose(ours, mlx, atol: 2e-5, rtol: 1e-4)
        // A rotation preserves norms: the gradient of sum(rope(x) * r) is r rotated back.
        let back = try Fast.rope(ours, dimensions: c.dimensions, traditional: c.traditional, base: c.base, scale: c.scale, offset: c.offset)
        try expectClose(back, r, atol: 2e-5, rtol: 1e-4)
    }

    @Test("rope's two layouts differ (GGUF weights need the traditional one)")
    func ropeLayoutsDiffer() throws {
        let x = try Fixtures.uniform([1, 1, 4, 8], seed: 3)
        let a = try Fast.rope(x, dimensions: 8, traditional: true, base: 10_000, offset: 1)
        let b = try Fast.rope(x, dimensions: 8, traditional: false, base: 10_000, offset: 1)
        #expect(try maxAbsDifference(a, b) > 1e-2)
    }

    // MARK: attention

    /// softmax(q k^T * scale + mask) v from basic ops, with GQA by repeating each kv head.
    static func composedAttention(_ q: MLXArray, _ k: MLXArray, _ v: MLXArray, scale: Float, causal: Bool, mask: MLXArray?) throws -> MLXArray {
        let group = q.dim(1) / k.dim(1)
        let kr = group == 1 ? k : try k.repeated(group, axis: 1)
        let vr = group == 1 ? v : try v.repeated(group, axis: 1)
        var scores = try q.matmul(kr.swappedAxes(-1, -2)) * scale
        let (L, S) = (q.dim(2), k.dim(2))
        if causal {
            // Query i sees keys j <= i + (S - L) (the queries are the last L positions).
            let keep = try MLXArray.tri(L, S, k: S - L, dtype: .bool)
            scores = try which(keep, scores, MLXArray.full([], value: -.infinity, dtype: scores.dtype))
        }
        if let mask { scores = try scores + mask }
        return try scores.softmax(axis: -1).matmul(vr)
    }

    struct AttentionCase: Sendable, CustomTestStringConvertible {
        var batch = 1
        var heads: Int
        var kvHeads: Int
        var queries: Int
        var keys: Int
        var dim: Int
        var causal: Bool
        var additiveMask = false
        var testDescription: String {
            "B\(batch) H\(heads)/\(kvHeads) L\(queries) S\(keys) D\(dim)\(causal ? " causal" : "")\(additiveMask ? " masked" : "")"
        }

        func make(seed: UInt64 = 0, dtype: DType = .float32) throws -> (q: MLXArray, k: MLXArray, v: MLXArray, mask: MLXArray?) {
            let q = try Fixtures.normal([batch, heads, queries, dim], seed: seed + 1, dtype: dtype)
            let k = try Fixtures.normal([batch, kvHeads, keys, dim], seed: seed + 2, dtype: dtype)
            let v = try Fixtures.normal([batch, kvHeads, keys, dim], seed: seed + 3, dtype: dtype)
            var mask: MLXArray?
            if additiveMask {
                // A padding-style mask: the first key is hidden from every query, plus random biases.
                let bias = try Fixtures.uniform([1, 1, queries, keys], seed: seed + 4, low: -2, high: 0, dtype: dtype)
                let hidden = try MLXArray.arange(Double(keys), dtype: dtype) .== 0
                mask = try which(hidden, MLXArray.full([], value: -1e9, dtype: dtype), bias)
            }
            return (q, k, v, mask)
        }
    }

    static let attentionCases: [AttentionCase] = [
        AttentionCase(heads: 2, kvHeads: 2, queries: 5, keys: 5, dim: 8, causal: true),
        AttentionCase(heads: 9, kvHeads: 3, queries: 6, keys: 6, dim: 16, causal: true),
        AttentionCase(heads: 9, kvHeads: 3, queries: 4, keys: 7, dim: 8, causal: false, additiveMask: true),
        AttentionCase(batch: 2, heads: 9, kvHeads: 3, queries: 3, keys: 7, dim: 8, causal: true),
        AttentionCase(heads: 4, kvHeads: 1, queries: 1, keys: 9, dim: 8, causal: false),
    ]

    @Test("scaledDotProductAttention equals the composed softmax(q k^T scale + mask) v", arguments: attentionCases)
    func sdpa(_ c: AttentionCase) throws {
        let (q, k, v, mask) = try c.make()
        let scale = 1 / Float(c.dim).squareRoot()
        let expected = try Self.composedAttention(q, k, v, scale: scale, causal: c.causal, mask: mask)
        let mode: Fast.AttentionMask = c.causal ? .causal : (mask.map { .array($0) } ?? .none)
        let got = try Fast.scaledDotProductAttention(queries: q, keys: k, values: v, scale: scale, mask: mode)
        #expect(got.shape == [c.batch, c.heads, c.queries, c.dim])
        expectClose(got, expected, atol: 1e-5, rtol: 1e-4)
    }

    @Test("scaledDotProductAttention with a boolean keep-mask equals the causal one")
    func sdpaBoolMask() throws {
        let c = AttentionCase(heads: 9, kvHeads: 3, queries: 5, keys: 5, dim: 8, causal: true)
        let (q, k, v, _) = try c.make(seed: 40)
        let keep = try MLXArray.tri(5, 5, dtype: .bool)
        let a = try Fast.scaledDotProductAttention(queries: q, keys: k, values: v, scale: 0.3, mask: .array(keep))
        let b = try Fast.scaledDotProductAttention(queries: q, keys: k, values: v, scale: 0.3, mask: .causal)
        expectClose(a, b, atol: 1e-6, rtol: 1e-5)
        // Causal really masks: it differs from unmasked attention.
        let open = try Fast.scaledDotProductAttention(queries: q, keys: k, values: v, scale: 0.3)
        #expect(try maxAbsDifference(open, b) > 1e-3)
    }

    // MARK: quantisation

    struct QuantCase: Sendable, CustomTestStringConvertible {
        var bits: Int
        var groupSize: Int
        var testDescription: String { "\(bits)-bit, group \(groupSize)" }
    }

    static let quantCases = [4, 8].flatMap { bits in [32, 64].map { QuantCase(bits: bits, groupSize: $0) } }

    @Test("quantize then dequantize stays within the quantisation step", arguments: quantCases)
    func quantizeRoundTrip(_ c: QuantCase) throws {
        let (rows, cols) = (8, 256)
        let values = Fixtures.uniformValues(rows * cols, seed: 77, low: -1, high: 1)
        let w = try Fixtures.array(values, shape: [rows, cols], dtype: .float32)
        let q = try Fast.quantize(w, groupSize: c.groupSize, bits: c.bits)
        #expect(q.weight.dtype == .uint32)
        #expect(q.weight.shape == [rows, cols * c.bits / 32])
        #expect(q.scales.shape == [rows, cols / c.groupSize])
        #expect(q.biases.shape == [rows, cols / c.groupSize])
        let back = try Fast.dequantize(q.weight, scales: q.scales, biases: q.biases, groupSize: c.groupSize, bits: c.bits)
        #expect(back.shape == [rows, cols])
        let restored = try back.asArray(Double.self)
        let levels = Double((1 << c.bits) - 1)
        var worstRatio = 0.0
        for g in 0..<(rows * cols / c.groupSize) {
            let range = g * c.groupSize..<(g + 1) * c.groupSize
            let group = range.map { Double(Float(values[$0])) }
            let step = (group.max()! - group.min()!) / levels
            let error = range.map { Swift.abs(restored[$0] - Double(Float(values[$0]))) }.max()!
            worstRatio = Swift.max(worstRatio, error / step)
        }
        // MLX moves the scale so that zero is exactly representable (scale = edge / round(edge /
        // step)), which can leave the far end of a group up to n/(n+1) steps outside the covered
        // range (n = 2^bits - 1); everything else is within half a (slightly changed) step.
        let bound = levels / (levels + 1)
        #expect(worstRatio <= bound * 1.001, "worst error is \(worstRatio) quantisation steps, bound \(bound)")
        let meanError = zip(restored, values).map { Swift.abs($0 - $1) }.reduce(0, +) / Double(values.count)
        let typicalStep = 2 / levels
        #expect(meanError < 0.3 * typicalStep, "mean error \(meanError)")

        // Zeros survive the round trip exactly.
        var withZeros = values
        for i in stride(from: 0, to: withZeros.count, by: 7) { withZeros[i] = 0 }
        let z = try Fixtures.array(withZeros, shape: [rows, cols], dtype: .float32)
        let qz = try Fast.quantize(z, groupSize: c.groupSize, bits: c.bits)
        let zBack = try Fast.dequantize(qz.weight, scales: qz.scales, biases: qz.biases, groupSize: c.groupSize, bits: c.bits).asArray(Float.self)
        #expect(stride(from: 0, to: withZeros.count, by: 7).allSatisfy { zBack[$0] == 0 }, "zero is not exactly representable")
    }

    @Test("quantizedMatmul equals x @ dequantize(w)^T", arguments: quantCases)
    func quantizedMatmul(_ c: QuantCase) throws {
        let x = try Fixtures.normal([3, 128], seed: 5)
        let w = try Fixtures.normal([16, 128], seed: 6, std: 0.1)
        let q = try Fast.quantize(w, groupSize: c.groupSize, bits: c.bits)
        let dense = try Fast.dequantize(q.weight, scales: q.scales, biases: q.biases, groupSize: c.groupSize, bits: c.bits)
        let got = try Fast.quantizedMatmul(x, weight: q.weight, scales: q.scales, biases: q.biases, transpose: true, groupSize: c.groupSize, bits: c.bits)
        #expect(got.shape == [3, 16])
        expectClose(got, try x.matmul(dense.T), atol: 1e-4, rtol: 1e-4)
        // Without the transpose the weight is [in, out], quantised along `out`.
        let wio = try Fixtures.normal([128, 64], seed: 7, std: 0.1)
        let qt = try Fast.quantize(wio, groupSize: c.groupSize, bits: c.bits)
        let denseT = try Fast.dequantize(qt.weight, scales: qt.scales, biases: qt.biases, groupSize: c.groupSize, bits: c.bits)
        let gotT = try Fast.quantizedMatmul(x, weight: qt.weight, scales: qt.scales, biases: qt.biases, transpose: false, groupSize: c.groupSize, bits: c.bits)
        #expect(gotT.shape == [3, 64])
        expectClose(gotT, try x.matmul(denseT), atol: 1e-4, rtol: 1e-4)
    }
}
