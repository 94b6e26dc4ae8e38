import Foundation
import MLXEngine
import Testing
import ValueAlignTesting

/// Gradients of every differentiable op a Llama block and the training losses use, checked against
/// finite differences in float64 on the CPU.
///
/// MLX's CPU kernels for exp, sin/cos, erf (SIMD paths) and its fused norms compute in float32 even
/// for float64 arrays (see `ArithmeticTests.float64Transcendentals`), so a function built on them
/// is only float32-accurate and central differences with eps 1e-6 measure rounding noise (errors of
/// 1-30%). Cases marked `.float32Accurate` therefore use a five-point stencil with h = 1e-2
/// (truncation error ~h^4) and tolerance 1e-4; every other case uses the strict check: central
/// differences, eps 1e-6, rtol 1e-5, atol 1e-7.
@Suite("Gradients against finite differences")
struct GradientTests {
    /// One differentiable function and the float64 inputs it takes.
    struct Case: Sendable, CustomTestStringConvertible {
        let name: String
        /// Input shapes; inputs are uniform in [low, high).
        let shapes: [[Int]]
        var low = -1.0
        var high = 1.0
        /// Whether MLX computes this function only to float32 accuracy in float64.
        var float32Accurate = false
        let f: @Sendable ([MLXArray]) throws -> MLXArray
        var testDescription: String { name }

        func inputs(dtype: DType = .float64) throws -> [MLXArray] {
            try shapes.enumerated().map { i, shape in
                try Fixtures.uniform(shape, seed: UInt64(100 + i), low: low, high: high, dtype: dtype)
            }
        }
    }

    static func crossEntropy(_ logits: MLXArray, _ targets: MLXArray) throws -> MLXArray {
        let logp = try logits.logSoftmax(axis: -1)
        return try -logp.takeAlong(targets.expandedDimensions(axis: -1), axis: -1).mean()
    }

    static let cases: [Case] = [
        Case(name: "add (broadcast)", shapes: [[2, 3], [3]]) { try $0[0] + $0[1] },
        Case(name: "subtract (broadcast)", shapes: [[2, 1], [2, 3]]) { try $0[0] - $0[1] },
        Case(name: "multiply", shapes: [[2, 3], [2, 3]]) { try $0[0] * $0[1] },
        Case(name: "divide", shapes: [[2, 3], [1, 3]], low: 0.5, high: 2) { try $0[0] / $0[1] },
        Case(name: "scalar ops", shapes: [[4]]) { try (2 * $0[0] - 1) / 3 + 0.5 },
        Case(name: "negative", shapes: [[4]]) { try -$0[0] },
        Case(name: "matmul", shapes: [[3, 4], [4, 2]]) { try $0[0].matmul($0[1]) },
        Case(name: "batched matmul (broadcast)", shapes: [[2, 2, 3], [3, 2]]) { try $0[0].matmul($0[1]) },
        Case(name: "exp", shapes: [[2, 3]], float32Accurate: true) { try $0[0].exp() },
        Case(name: "log", shapes: [[2, 3]], low: 0.3, high: 2) { try $0[0].log() },
        Case(name: "sqrt", shapes: [[5]], low: 0.3, high: 2) { try $0[0].sqrt() },
        Case(name: "rsqrt", shapes: [[5]], low: 0.3, high: 2) { try $0[0].rsqrt() },
        Case(name: "square", shapes: [[5]]) { try $0[0].square() },
        Case(name: "power", shapes: [[5]], low: 0.3, high: 2) { try $0[0].power(2.5) },
        Case(name: "sigmoid", shapes: [[2, 3]], low: -3, high: 3, float32Accurate: true) { try $0[0].sigmoid() },
        Case(name: "silu", shapes: [[2, 3]], low: -3, high: 3, float32Accurate: true) { try $0[0].silu() },
        Case(name: "tanh", shapes: [[2, 3]], low: -2, high: 2) { try $0[0].tanh() },
        Case(name: "gelu", shapes: [[2, 3]], low: -3, high: 3, float32Accurate: true) { try $0[0].gelu() },
        Case(name: "geluApproximate", shapes: [[2, 3]], low: -3, high: 3) { try $0[0].geluApproximate() },
        Case(name: "logSigmoid", shapes: [[2, 3]], low: -4, high: 4, float32Accurate: true) { try $0[0].logSigmoid() },
        Case(name: "softmax", shapes: [[2, 4]], low: -2, high: 2, float32Accurate: true) { try $0[0].softmax() },
        Case(name: "softmax axis 0", shapes: [[3, 2]], low: -2, high: 2, float32Accurate: true) { try $0[0].softmax(axis: 0) },
        Case(name: "logSoftmax", shapes: [[2, 4]], low: -2, high: 2, float32Accurate: true) { try $0[0].logSoftmax() },
        Case(name: "logSumExp", shapes: [[3, 4]], low: -2, high: 2, float32Accurate: true) { try $0[0].logSumExp(axis: 1) },
        Case(name: "logSumExp keepDims", shapes: [[3, 4]], low: -2, high: 2, float32Accurate: true) { try $0[0].logSumExp(axis: -1, keepDims: true) },
        Case(name: "sum", shapes: [[2, 3]]) { try $0[0].sum(axis: 0) },
        Case(name: "sum all", shapes: [[2, 3]]) { try $0[0].square().sum() },
        Case(name: "mean", shapes: [[2, 3]]) { try $0[0].mean(axis: 1, keepDims: true) },
        Case(name: "mean all", shapes: [[2, 3]]) { try $0[0].square().mean() },
        Case(name: "max", shapes: [[3, 4]]) { try $0[0].max(axis: 1) },
        Case(name: "reshape", shapes: [[2, 6]]) { try $0[0].reshaped(3, 4) },
        Case(name: "transpose", shapes: [[2, 3, 2]]) { try $0[0].transposed(2, 0, 1).matmul($0[0].transposed(2, 1, 0)) },
        Case(name: "slice", shapes: [[3, 4]]) { try $0[0][1..., ArrayIndex.stride(nil, nil, -2)] },
        Case(name: "broadcast", shapes: [[1, 3]]) { try $0[0].broadcast(to: [4, 3]) },
        Case(name: "which", shapes: [[2, 3], [2, 3]]) { try which($0[0] .> 0, $0[0], $0[1] * 2) },
        Case(name: "clip", shapes: [[2, 3]], low: -2, high: 2) { try $0[0].clip(min: -0.9, max: 0.9) },
        Case(name: "take (embedding gather, repeated ids)", shapes: [[5, 3]]) { x in
            try x[0].take(MLXArray([4, 0, 4, 2, 1, 4], shape: [2, 3]), axis: 0)
        },
        Case(name: "takeAlong", shapes: [[3, 5]]) { x in
            try x[0].takeAlong(MLXArray([4, 0, 2, 2, 1, 3], shape: [3, 2]), axis: 1)
        },
        Case(name: "concatenate", shapes: [[2, 2], [2, 3]]) { try concatenated([$0[0], $0[1]], axis: 1) },
        Case(name: "split", shapes: [[2, 6]], float32Accurate: true) { x in
            let p = try x[0].split(indices: [1, 4], axis: 1)
            return try concatenated([p[2] * 3, p[0], p[1].exp()], axis: 1)
        },
        Case(name: "stack", shapes: [[2, 2], [2, 2]]) { try stacked([$0[0], $0[1].square()], axis: 1) },
        Case(name: "cumsum", shapes: [[2, 4]]) { try $0[0].cumsum(axis: 1) },
        Case(name: "Fast.rmsNorm", shapes: [[3, 6], [6]], low: -2, high: 2, float32Accurate: true) { try Fast.rmsNorm($0[0], weight: $0[1], eps: 1e-5) },
        Case(name: "Fast.rmsNorm without weight", shapes: [[3, 6]], low: -2, high: 2, float32Accurate: true) { try Fast.rmsNorm($0[0], weight: nil, eps: 1e-5) },
        Case(name: "Fast.layerNorm", shapes: [[3, 6], [6], [6]], low: -2, high: 2, float32Accurate: true) { try Fast.layerNorm($0[0], weight: $0[1], bias: $0[2], eps: 1e-5) },
        Case(name: "Fast.rope traditional", shapes: [[1, 2, 3, 6]]) {
            try Fast.rope($0[0], dimensions: 6, traditional: true, base: 10_000, offset: 2)
        },
        Case(name: "Fast.rope not traditional", shapes: [[1, 2, 3, 6]]) {
            try Fast.rope($0[0], dimensions: 6, traditional: false, base: 10_000, offset: 2)
        },
        Case(name: "Fast.sdpa causal", shapes: [[1, 2, 3, 4], [1, 2, 3, 4], [1, 2, 3, 4]], float32Accurate: true) {
            try Fast.scaledDotProductAttention(queries: $0[0], keys: $0[1], values: $0[2], scale: 0.5, mask: .causal)
        },
        Case(name: "Fast.sdpa GQA causal", shapes: [[1, 4, 3, 4], [1, 2, 3, 4], [1, 2, 3, 4]], float32Accurate: true) {
            try Fast.scaledDotProductAttention(queries: $0[0], keys: $0[1], values: $0[2], scale: 0.5, mask: .causal)
        },
        Case(name: "cross-entropy (logSoftmax + takeAlong)", shapes: [[3, 5]], low: -2, high: 2, float32Accurate: true) {
            try crossEntropy($0[0], MLXArray([4, 0, 2], shape: [3]))
        },
        Case(name: "DPO loss (logSigmoid)", shapes: [[4], [4], [4], [4]], low: -2, high: 2, float32Accurate: true) { x in
            let beta: Float = 0.1
            let margin = try (x[0] - x[1]) - (x[2] - x[3])
            return try -(margin * beta * 10).logSigmoid().mean()
        },
        Case(name: "KL sum(p (log p - log q))", shapes: [[2, 4], [2, 4]], low: -2, high: 2, float32Accurate: true) { x in
            let logp = try x[0].logSoftmax(), logq = try x[1].logSoftmax()
            return try (logp.exp() * (logp - logq)).sum()
        },
    ]

    @Test("gradient matches central differences", arguments: cases)
    func finiteDifferences(_ c: Case) throws {
        let inputs = try c.inputs()
        // The op must really run in float64 for the tolerance to mean anything.
        #expect(try c.f(inputs).dtype == .float64, "\(c.name) did not compute in float64")
        if c.float32Accurate {
            try GradientCheck.check(inputs, eps: 1e-2, atol: 1e-4, rtol: 1e-4, stencil: .fivePoint, "\(c.name)", c.f)
        } else {
            try GradientCheck.check(inputs, eps: 1e-6, atol: 1e-7, rtol: 1e-5, "\(c.name)", c.f)
        }
    }

    @Test("Fast.rmsNorm gradient in float32 (eps 1e-3, looser tolerance)")
    func rmsNormFloat32() throws {
        let x = try Fixtures.uniform([3, 6], seed: 1, low: -2, high: 2)
        let w = try Fixtures.uniform([6], seed: 2, low: 0.5, high: 1.5)
        try GradientCheck.check([x, w], eps: 1e-3, atol: 1e-3, rtol: 1e-2) { try Fast.rmsNorm($0[0], weight: $0[1], eps: 1e-5) }
    }

    @Test("stopGradient passes values and blocks the gradient")
    func stopGradient() throws {
        let x = try MLXArray([1, 2, 3] as [Float], shape: [3])
        expectClose(try x.stopGradient(), [1, 2, 3], shape: [3])
        let g = try grad(x) { try ($0.stopGradient() * $0.stopGradient()).sum() }
        expectClose(g, [0, 0, 0], shape: [3], atol: 0, rtol: 0)
        // Only the stopped path is cut: d/dx sum(x * stop(x)) = stop(x).
        let h = try grad(x) { try ($0 * $0.stopGradient()).sum() }
        expectClose(h, [1, 2, 3], shape: [3], atol: 0, rtol: 0)
    }

    @Test("valueAndGrad over a parameter tree returns the gradient of each entry")
    func treeGradients() throws {
        let x = try Fixtures.uniform([4, 3], seed: 11, dtype: .float64)
        let parameters = [
            "w": try Fixtures.uniform([3, 2], seed: 12, dtype: .float64),
            "b": try Fixtures.uniform([2], seed: 13, dtype: .float64),
            "unused": try Fixtures.uniform([5], seed: 14, dtype: .float64),
        ]
        let loss: ([String: MLXArray]) throws -> MLXArray = { p in try (x.matmul(p["w"]!) + p["b"]!).square().sum() }
        let (value, grads) = try valueAndGrad(parameters, loss)
        #expect(Set(grads.keys) == ["w", "b", "unused"])
        expectClose(value, try loss(parameters), atol: 1e-12, rtol: 1e-12)
        // Closed form: r = x w + b; dL/dw = 2 x^T r, dL/db = 2 sum_rows r.
        let r = try x.matmul(parameters["w"]!) + parameters["b"]!
        expectClose(grads["w"]!, try 2 * x.T.matmul(r), atol: 1e-12, rtol: 1e-10)
        expectClose(grads["b"]!, try 2 * r.sum(axis: 0), atol: 1e-12, rtol: 1e-10)
        expectClose(grads["unused"]!, [0, 0, 0, 0, 0], shape: [5], atol: 0, rtol: 0)
        // And against finite differences through the array form.
        let keys = ["b", "unused", "w"]
        try GradientCheck.check(keys.map { parameters[$0]! }) { arrays in
            try loss(Dictionary(uniqueKeysWithValues: zip(keys, arrays)))
        }
    }

    @Test("argnums selects which inputs get gradients")
    func argnums() throws {
        let a = try Fixtures.uniform([3], seed: 21, dtype: .float64)
        let b = try Fixtures.uniform([3], seed: 22, dtype: .float64)
        let (values, grads) = try valueAndGrad([a, b], argnums: [1]) { x in [try (x[0] * x[1]).sum(), x[0]] }
        #expect(values.count == 2)
        #expect(grads.count == 1)
        expectClose(grads[0], a, atol: 0, rtol: 0)
        expectClose(values[1], a, atol: 0, rtol: 0)
    }
}
