import Foundation
import MLXEngine
import Testing
import ValueAlignTesting

/// Checks of ValueAlign's own vectorised kernels (`Fast.siluGate`, `Fast.softmaxLastAxis`,
/// `Fast.attention`) against the plain compositions of MLX ops: forward values and gradients.
/// They hold whatever instruction set the kernels use, so they can run next to the ISA-forcing
/// suite below.
enum KernelChecks {
    static let siluShapes: [[Int]] = [[1], [7], [3, 17], [2, 5, 33], [31, 67], [5, 4099], [0, 5]]
    static let softmaxShapes: [[Int]] = [[1, 1], [3, 1], [4, 17], [2, 3, 129], [7, 1000], [40, 513], [0, 8]]

    static let attentionCases: [FastKernelTests.AttentionCase] = [
        .init(heads: 2, kvHeads: 2, queries: 5, keys: 5, dim: 8, causal: true),
        .init(heads: 9, kvHeads: 3, queries: 7, keys: 7, dim: 5, causal: true),
        .init(heads: 9, kvHeads: 3, queries: 3, keys: 7, dim: 16, causal: true),
        .init(heads: 9, kvHeads: 3, queries: 4, keys: 7, dim: 8, causal: false, additiveMask: true),
        .init(heads: 9, kvHeads: 3, queries: 4, keys: 7, dim: 8, causal: true, additiveMask: true),
        .init(batch: 2, heads: 4, kvHeads: 2, queries: 1, keys: 9, dim: 17, causal: false),
        .init(batch: 2, heads: 4, kvHeads: 2, queries: 1, keys: 9, dim: 17, causal: true),
        .init(heads: 9, kvHeads: 3, queries: 67, keys: 67, dim: 64, causal: true),
        .init(heads: 3, kvHeads: 3, queries: 20, keys: 45, dim: 33, causal: true),
    ]

    /// A fixed cotangent for `sum(y * r)`, so every output element weighs differently.
    static func cotangent(like y: MLXArray, seed: UInt64) throws -> MLXArray {
        try Fixtures.uniform(y.shape, seed: seed, low: 0.5, high: 1.5, dtype: y.dtype)
    }

    /// Compares the kernel `fast` with `plain` on `inputs`: forward values, then gradients of
    /// `sum(f(x) * r)` with respect to every input.
    static func compare(
        _ inputs: [MLXArray], atol: Double, rtol: Double, _ comment: Comment, sourceLocation: SourceLocation = #_sourceLocation,
        fast: @escaping ([MLXArray]) throws -> MLXArray, plain: @escaping ([MLXArray]) throws -> MLXArray
    ) throws {
        let y = try fast(inputs)
        let expected = try plain(inputs)
        #expect(y.dtype == expected.dtype, comment, sourceLocation: sourceLocation)
        expectClose(y, expected, atol: atol, rtol: rtol, "forward, \(comment)", sourceLocation: sourceLocation)
        guard y.size > 0 else { return }
        let r = try cotangent(like: expected, seed: 99)
        let (fv, fg) = try valueAndGrad(inputs) { [try (fast($0) * r).sum()] }
        let (pv, pg) = try valueAndGrad(inputs) { [try (plain($0) * r).sum()] }
        expectClose(fv[0], pv[0], atol: atol * Double(y.size), rtol: rtol, "loss, \(comment)", sourceLocation: sourceLocation)
        for i in inputs.indices {
            expectClose(fg[i], pg[i], atol: atol * 10, rtol: rtol * 10, "gradient of input \(i), \(comment)", sourceLocation: sourceLocation)
        }
    }

    static func siluGate(shape: [Int], _ label: String, sourceLocation: SourceLocation = #_sourceLocation) throws {
        let g = try Fixtures.normal(shape, seed: 1, std: 3)
        let u = try Fixtures.normal(shape, seed: 2)
        try compare([g, u], atol: 1e-5, rtol: 1e-5, "siluGate \(shape) \(label)", sourceLocation: sourceLocation,
                    fast: { try Fast.siluGate($0[0], $0[1]) }, plain: { try $0[0].silu() * $0[1] })
    }

    /// siluGateHalves on [rows..., 2N]: gate and up are the two halves of each row.
    static let halvesShapes: [[Int]] = [[1, 2], [3, 14], [2, 5, 66], [4, 3072], [0, 8]]

    static func siluGateHalves(shape: [Int], _ label: String, sourceLocation: SourceLocation = #_sourceLocation) throws {
        let x = try Fixtures.normal(shape, seed: 11, std: 3)
        let n = shape.last! / 2
        try compare([x], atol: 1e-5, rtol: 1e-5, "siluGateHalves \(shape) \(label)", sourceLocation: sourceLocation,
                    fast: { try Fast.siluGateHalves($0[0]) },
                    plain: {
                        let parts = try $0[0].split(indices: [n], axis: -1)
                        return try parts[0].silu() * parts[1]
                    })
    }

    /// Rows of one element, vector tails (7, 33, 1000), the model's width (576), no rows.
    static let rmsNormShapes: [[Int]] = [[1, 1], [3, 7], [2, 5, 33], [4, 576], [9, 1000], [0, 8]]

    static func rmsNorm(shape: [Int], _ label: String, sourceLocation: SourceLocation = #_sourceLocation) throws {
        let x = try Fixtures.normal(shape, seed: 6, std: 2)
        let w = try Fixtures.uniform([shape.last!], seed: 7, low: 0.5, high: 1.5)
        let eps: Float = 1e-5
        try compare([x, w], atol: 1e-5, rtol: 1e-5, "rmsNorm \(shape) \(label)", sourceLocation: sourceLocation,
                    fast: { try Fast.rmsNorm($0[0], weight: $0[1], eps: eps) },
                    plain: { try $0[0] * ($0[0].square().mean(axis: -1, keepDims: true) + eps).rsqrt() * $0[1] })
    }

    static func softmax(shape: [Int], _ label: String, sourceLocation: SourceLocation = #_sourceLocation) throws {
        // Large logits: the kernel must subtract the row maximum.
        let x = try Fixtures.normal(shape, seed: 3, std: 20)
        try compare([x], atol: 1e-6, rtol: 1e-5, "softmaxLastAxis \(shape) \(label)", sourceLocation: sourceLocation,
                    fast: { try Fast.softmaxLastAxis($0[0]) }, plain: { try $0[0].softmax(axis: -1) })
    }

    /// [rows, vocabulary] and temperatures' inverses: odd widths (vector tails), one wide row set.
    static let pickedCases: [(rows: Int, vocabulary: Int, scale: Float)] = [(1, 1, 1), (3, 5, 1), (4, 17, 0.5), (7, 1000, 1), (9, 4099, 1.7)]

    static func logSoftmaxPicked(rows: Int, vocabulary: Int, scale: Float, _ label: String, sourceLocation: SourceLocation = #_sourceLocation) throws {
        // Large logits: the kernel must subtract the row maximum.
        let x = try Fixtures.normal([rows, vocabulary], seed: 5, std: 20)
        let t = try MLXArray((0..<rows).map { Int32(($0 * 7919 + 3) % vocabulary) })
        try compare([x], atol: 2e-5, rtol: 1e-5, "logSoftmaxPicked \(rows)x\(vocabulary) scale \(scale) \(label)", sourceLocation: sourceLocation,
                    fast: { try Fast.logSoftmaxPicked($0[0], targets: t, scale: scale) },
                    plain: { try ($0[0] * scale).logSoftmax(axis: -1).takeAlong(t.reshaped(-1, 1), axis: -1).reshaped(-1) })
    }

    static func attention(_ c: FastKernelTests.AttentionCase, _ label: String, sourceLocation: SourceLocation = #_sourceLocation) throws {
        let (q, k, v, mask) = try c.make(seed: 10)
        let scale = 1 / Float(c.dim).squareRoot()
        let fast: ([MLXArray]) throws -> MLXArray = {
            try Fast.attention(queries: $0[0], keys: $0[1], values: $0[2], scale: scale, causal: c.causal, mask: mask)
        }
        let y = try fast([q, k, v])
        #expect(y.shape == [c.batch, c.heads, c.queries, c.dim], sourceLocation: sourceLocation)
        try compare([q, k, v], atol: 2e-5, rtol: 1e-4, "attention \(c.testDescription) \(label)", sourceLocation: sourceLocation, fast: fast) {
            try FastKernelTests.composedAttention($0[0], $0[1], $0[2], scale: scale, causal: c.causal, mask: mask)
        }
    }

    /// Every check, at whatever ISA is in force.
    static func all(_ label: String) throws {
        for shape in siluShapes { try siluGate(shape: shape, label) }
        for shape in softmaxShapes { try softmax(shape: shape, label) }
        for shape in rmsNormShapes { try rmsNorm(shape: shape, label) }
        for shape in halvesShapes { try siluGateHalves(shape: shape, label) }
        for c in pickedCases { try logSoftmaxPicked(rows: c.rows, vocabulary: c.vocabulary, scale: c.scale, label) }
        for c in attentionCases { try attention(c, label) }
        try fullyMaskedRows(label)
    }

    /// Rows with nothing to attend to (or all -inf logits) come out as zeros, not NaN, and their
    /// gradients stay finite.
    static func fullyMaskedRows(_ label: String, sourceLocation: SourceLocation = #_sourceLocation) throws {
        // softmax: the middle row is all -inf.
        var logits = Fixtures.normalValues(3 * 5, seed: 4).map(Float.init)
        for j in 5..<10 { logits[j] = -.infinity }
        let x = try MLXArray(logits, shape: [3, 5])
        let s = try Fast.softmaxLastAxis(x)
        expectClose(try s[1], [0, 0, 0, 0, 0], shape: [5], atol: 0, rtol: 0, "all -inf softmax row, \(label)", sourceLocation: sourceLocation)
        expectClose(try s[0], try x[0].softmax(axis: -1), atol: 1e-6, rtol: 1e-5, "softmax row next to a masked one, \(label)", sourceLocation: sourceLocation)
        expectClose(try s[2], try x[2].softmax(axis: -1), atol: 1e-6, rtol: 1e-5, "softmax row next to a masked one, \(label)", sourceLocation: sourceLocation)
        let sg = try grad(x) { try (Fast.softmaxLastAxis($0) * MLXArray.arange(5, dtype: .float32)).sum() }
        #expect(try sg.isNaN().any().item(Bool.self) == false, "softmax gradient has NaN, \(label)", sourceLocation: sourceLocation)

        // attention: query row 2 is masked from every key with -inf.
        let (L, S, D) = (4, 6, 8)
        let q = try Fixtures.normal([1, 3, L, D], seed: 5)
        let k = try Fixtures.normal([1, 3, S, D], seed: 6)
        let v = try Fixtures.normal([1, 3, S, D], seed: 7)
        var maskValues = Fixtures.uniformValues(L * S, seed: 8, low: -1, high: 0).map(Float.init)
        for j in 0..<S { maskValues[2 * S + j] = -.infinity }
        let mask = try MLXArray(maskValues, shape: [1, 1, L, S])
        let out = try Fast.attention(queries: q, keys: k, values: v, scale: 0.35, causal: false, mask: mask)
        #expect(out.shape == [1, 3, L, D], sourceLocation: sourceLocation)
        let masked = try out[ArrayIndex.all, ArrayIndex.all, 2]
        expectClose(masked, [Double](repeating: 0, count: 3 * D), shape: [1, 3, D], atol: 0, rtol: 0, "fully masked attention row, \(label)", sourceLocation: sourceLocation)
        let reference = try FastKernelTests.composedAttention(q, k, v, scale: 0.35, causal: false, mask: mask)
        for row in [0, 1, 3] {
            expectClose(try out[ArrayIndex.all, ArrayIndex.all, row], try reference[ArrayIndex.all, ArrayIndex.all, row], atol: 2e-5, rtol: 1e-4,
                        "unmasked attention row \(row), \(label)", sourceLocation: sourceLocation)
        }
        let (_, ag) = try valueAndGrad([q, k, v]) { x in
            [try Fast.attention(queries: x[0], keys: x[1], values: x[2], scale: 0.35, causal: false, mask: mask).square().sum()]
        }
        for (i, g) in ag.enumerated() {
            #expect(try g.isNaN().any().item(Bool.self) == false, "attention gradient \(i) has NaN, \(label)", sourceLocation: sourceLocation)
        }

        // A boolean keep-mask with an all-false row.
        var keep = [Bool](repeating: true, count: L * S)
        for j in 0..<S { keep[1 * S + j] = false }
        let keepMask = try MLXArray(keep, shape: [L, S])
        let kept = try Fast.attention(queries: q, keys: k, values: v, scale: 0.35, causal: false, mask: keepMask)
        expectClose(try kept[ArrayIndex.all, ArrayIndex.all, 1], [Double](repeating: 0, count: 3 * D), shape: [1, 3, D], atol: 0, rtol: 0,
                    "row with an all-false keep-mask, \(label)", sourceLocation: sourceLocation)

        // Causal with more queries than keys: query i sees keys j <= i - (L - S), so the first
        // L - S queries see nothing.
        let q6 = try Fixtures.normal([1, 3, 6, D], seed: 9)
        let k4 = try Fixtures.normal([1, 3, 4, D], seed: 10), v4 = try Fixtures.normal([1, 3, 4, D], seed: 11)
        let c = try Fast.attention(queries: q6, keys: k4, values: v4, scale: 0.35, causal: true)
        expectClose(try c[ArrayIndex.all, ArrayIndex.all, ..<2], [Double](repeating: 0, count: 3 * 2 * D), shape: [1, 3, 2, D], atol: 0, rtol: 0,
                    "causal rows with no visible key, \(label)", sourceLocation: sourceLocation)
        let cref = try FastKernelTests.composedAttention(q6, k4, v4, scale: 0.35, causal: true, mask: nil)
        expectClose(try c[ArrayIndex.all, ArrayIndex.all, 2...], try cref[ArrayIndex.all, ArrayIndex.all, 2...], atol: 2e-5, rtol: 1e-4,
                    "causal rows with visible keys (L > S), \(label)", sourceLocation: sourceLocation)
    }
}

/// The kernels at the instruction set chosen for this CPU; these do not depend on the setting.
@Suite("ValueAlign kernels")
struct ValueAlignKernelTests {
    @Test("siluGate equals silu(g) * u, forward and gradients", arguments: KernelChecks.siluShapes)
    func siluGate(_ shape: [Int]) throws { try KernelChecks.siluGate(shape: shape, "current ISA") }

    @Test("softmaxLastAxis equals softmax(axis: -1), forward and gradients", arguments: KernelChecks.softmaxShapes)
    func softmax(_ shape: [Int]) throws { try KernelChecks.softmax(shape: shape, "current ISA") }

    @Test("rmsNorm equals x * rsqrt(mean(x^2) + eps) * w, forward and gradients (x and w)", arguments: KernelChecks.rmsNormShapes)
    func rmsNorm(_ shape: [Int]) throws { try KernelChecks.rmsNorm(shape: shape, "current ISA") }

    @Test("siluGateHalves equals silu(first half) * second half, forward and gradients", arguments: KernelChecks.halvesShapes)
    func siluGateHalves(_ shape: [Int]) throws { try KernelChecks.siluGateHalves(shape: shape, "current ISA") }

    @Test("siluGateHalves: an odd last axis is an error; a transposed input and float64 (MLX ops) agree")
    func siluGateHalvesEdges() throws {
        #expect(throws: MLXError.self) { try Fast.siluGateHalves(try Fixtures.normal([2, 5], seed: 1)) }
        let x = try Fixtures.normal([8, 3], seed: 2).T
        expectClose(try Fast.siluGateHalves(x), try x[ArrayIndex.all, ..<4].silu() * x[ArrayIndex.all, 4...], atol: 1e-6, rtol: 1e-5)
        let d = try x.asType(.float64)
        let yd = try Fast.siluGateHalves(d)
        #expect(yd.dtype == .float64)
        expectClose(yd, try d[ArrayIndex.all, ..<4].silu() * d[ArrayIndex.all, 4...], atol: 1e-12, rtol: 1e-12)
    }

    @Test("rmsNorm: a transposed (non-contiguous) input, and float16 through MLX's fallback")
    func rmsNormStridedAndFallback() throws {
        let x = try Fixtures.normal([9, 6], seed: 1).T
        let w = try Fixtures.uniform([9], seed: 2, low: 0.5, high: 1.5)
        let composed = try x * (x.square().mean(axis: -1, keepDims: true) + 1e-5).rsqrt() * w
        expectClose(try Fast.rmsNorm(x, weight: w, eps: 1e-5), composed, atol: 1e-6, rtol: 1e-5)
        let h = try x.asType(.float16), wh = try w.asType(.float16)
        let yh = try Fast.rmsNorm(h, weight: wh, eps: 1e-5)
        #expect(yh.dtype == .float16)
        expectClose(try yh.asType(.float32), composed, atol: 2e-2, rtol: 1e-2)
        // A weight of the wrong width is an error, not a crash.
        #expect(throws: MLXError.self) { try Fast.rmsNorm(x, weight: try Fixtures.uniform([4], seed: 3), eps: 1e-5).eval() }
    }

    @Test("attention equals the composed softmax(q k^T scale + mask) v, forward and gradients", arguments: KernelChecks.attentionCases)
    func attention(_ c: FastKernelTests.AttentionCase) throws { try KernelChecks.attention(c, "current ISA") }

    @Test("logSoftmaxPicked equals logSoftmax + takeAlong, forward and gradients")
    func logSoftmaxPicked() throws {
        for c in KernelChecks.pickedCases { try KernelChecks.logSoftmaxPicked(rows: c.rows, vocabulary: c.vocabulary, scale: c.scale, "current ISA") }
    }

    @Test("logSoftmaxPicked: a target outside the vocabulary gives NaN for its row only; bad shapes are errors")
    func logSoftmaxPickedEdges() throws {
        let x = try Fixtures.normal([3, 6], seed: 8)
        let y = try Fast.logSoftmaxPicked(x, targets: MLXArray([Int32(2), 6, -1])).asArray(Float.self)
        #expect(y[0].isFinite && y[0] < 0)
        #expect(y[1].isNaN && y[2].isNaN)
        #expect(try Fast.logSoftmaxPicked(try Fixtures.normal([0, 8], seed: 1), targets: MLXArray([Int32]())).shape == [0])
        // Transposed (non-contiguous) logits and int64 targets.
        let xt = try Fixtures.normal([6, 3], seed: 9).T
        expectClose(try Fast.logSoftmaxPicked(xt, targets: MLXArray([Int64(0), 5, 3])),
                    try xt.logSoftmax(axis: -1).takeAlong(MLXArray([Int32(0), 5, 3]).reshaped(-1, 1), axis: -1).reshaped(-1), atol: 1e-6, rtol: 1e-5)
        #expect(throws: MLXError.self) { try Fast.logSoftmaxPicked(x, targets: MLXArray([Int32(0), 1])) }
        #expect(throws: MLXError.self) { try Fast.logSoftmaxPicked(x.reshaped(1, 3, 6), targets: MLXArray([Int32(0)])) }
        #expect(throws: MLXError.self) { try Fast.logSoftmaxPicked(x, targets: MLXArray([Int32(0), 1, 2]), scale: 0) }
        #expect(throws: MLXError.self) { try Fast.logSoftmaxPicked(x, targets: MLXArray([Float(0), 1, 2])) }
    }

    @Test("fully masked rows give zeros, not NaN")
    func fullyMasked() throws { try KernelChecks.fullyMaskedRows("current ISA") }

    @Test("attention equals MLX's scaledDotProductAttention (causal, GQA 9/3)")
    func attentionMatchesMLX() throws {
        let c = FastKernelTests.AttentionCase(heads: 9, kvHeads: 3, queries: 12, keys: 12, dim: 64, causal: true)
        let (q, k, v, _) = try c.make(seed: 30)
        let ours = try Fast.attention(queries: q, keys: k, values: v, scale: 0.125, causal: true)
        let mlx = try Fast.scaledDotProductAttention(queries: q, keys: k, values: v, scale: 0.125, mask: .causal)
        expectClose(ours, mlx, atol: 2e-5, rtol: 1e-4)
    }

    @Test("non-contiguous inputs (transposed views) give the same results")
    func stridedInputs() throws {
        let g = try Fixtures.normal([9, 6], seed: 1), u = try Fixtures.normal([9, 6], seed: 2)
        expectClose(try Fast.siluGate(g.T, u.T), try g.T.silu() * u.T, atol: 1e-6, rtol: 1e-5)
        expectClose(try Fast.softmaxLastAxis(g.T), try g.T.softmax(axis: -1), atol: 1e-6, rtol: 1e-5)
        let c = FastKernelTests.AttentionCase(heads: 2, kvHeads: 2, queries: 5, keys: 5, dim: 4, causal: true)
        let (q, k, v, _) = try c.make(seed: 50)
        // [B, L, H, D] data viewed as [B, H, L, D], as a model's projections produce.
        let qv = try q.transposed(0, 2, 1, 3).contiguous().transposed(0, 2, 1, 3)
        expectClose(try Fast.attention(queries: qv, keys: k, values: v, scale: 0.5, causal: true),
                    try FastKernelTests.composedAttention(q, k, v, scale: 0.5, causal: true, mask: nil), atol: 2e-5, rtol: 1e-4)
    }

    @Test("other dtypes fall back to MLX and still agree")
    func fallbackDtypes() throws {
        let g = try Fixtures.normal([3, 7], seed: 1, dtype: .float64), u = try Fixtures.normal([3, 7], seed: 2, dtype: .float64)
        let y = try Fast.siluGate(g, u)
        #expect(y.dtype == .float64)
        expectClose(y, try g.silu() * u, atol: 1e-12, rtol: 1e-12)
        let s = try Fast.softmaxLastAxis(g)
        #expect(s.dtype == .float64)
        expectClose(s, try g.softmax(axis: -1), atol: 1e-12, rtol: 1e-10)
        let h = try Fixtures.normal([2, 9], seed: 3, dtype: .float16)
        let sh = try Fast.softmaxLastAxis(h)
        #expect(sh.dtype == .float16)
        expectClose(try sh.asType(.float32), try h.asType(.float32).softmax(axis: -1), atol: 2e-3, rtol: 1e-2)
        // Broadcast shapes in siluGate take the fallback too.
        let row = try Fixtures.normal([7], seed: 4)
        let gf = try Fixtures.normal([3, 7], seed: 5)
        expectClose(try Fast.siluGate(gf, row), try gf.silu() * row, atol: 1e-6, rtol: 1e-5)
    }
}

/// Forces each instruction set the CPU supports and runs every kernel check under it. The forced
/// ISA holds for the thread that sets it (the cases are synchronous, so they stay on one thread);
/// the suite still runs its cases one at a time and restores automatic selection afterwards.
@Suite("ValueAlign kernels, each ISA", .serialized)
struct KernelISATests {
    @Test("every check under each ISA the CPU supports", arguments: Fast.KernelISA.allCases)
    func forced(_ isa: Fast.KernelISA) throws {
        defer { try? Fast.setKernelISA(nil) }
        do {
            try Fast.setKernelISA(isa)
        } catch {
            // The CPU lacks this instruction set: that must be an error, and only for non-portable.
            #expect(isa != .portable, "the portable kernels must always be available: \(error)")
            #expect(error.description.contains("ISA"), "unhelpful message: \(error)")
            print("KernelISATests: skipping \(isa), not supported by this CPU (\(error))")
            return
        }
        #expect(Fast.kernelISA == isa)
        try KernelChecks.all("ISA \(isa)")
        #expect(Fast.kernelISA == isa, "the ISA changed under the test")
        try Fast.setKernelISA(nil)
    }

    @Test("automatic selection picks the best ISA the CPU supports, and is restored")
    func automatic() throws {
        defer { try? Fast.setKernelISA(nil) }
        let supported = Fast.KernelISA.allCases.filter { (try? Fast.setKernelISA($0)) != nil }
        try Fast.setKernelISA(nil)
        #expect(supported.contains(.portable))
        #expect(Fast.kernelISA == supported.max { $0.rawValue < $1.rawValue })
    }
}
