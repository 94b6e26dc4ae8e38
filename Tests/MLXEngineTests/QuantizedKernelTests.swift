import Foundation
import MLXEngine
import Testing
import ValueAlignTesting

/// Checks of `Fast.quantizedMatmulRows` (ValueAlign's quantised matmul kernel) against
/// `Fast.dequantize` followed by a float32 matmul. The reference dequantises with float32 scales
/// and biases: the kernel computes in float32, while MLX's own dequantize rounds to the scales'
/// dtype (float16 for GGUF weights, an error of ~1e-3 relative).
enum QuantizedChecks {
    /// One agreement case: `leading` is the shape of x without its last axis.
    struct Case: Sendable, CustomTestStringConvertible {
        var leading: [Int]
        var outputs: Int
        var inputs: Int
        var bits: Int
        var groupSize: Int
        /// Quantise float16 weights, so the scales and biases are float16 as in a GGUF file.
        var halfScales = true

        var testDescription: String {
            "x \(leading + [inputs]) W [\(outputs), \(inputs)] \(bits)-bit g\(groupSize) \(halfScales ? "f16" : "f32") scales"
        }
    }

    static let cases: [Case] = {
        var all: [Case] = []
        for bits in [4, 8] {
            for groupSize in [32, 64, 128] {
                for rows in [1, 3, 16, 33] {
                    // Odd N (a column tile left over); K of several groups, not a power of two.
                    all.append(Case(leading: [rows], outputs: 67, inputs: groupSize * 5, bits: bits, groupSize: groupSize, halfScales: rows % 2 == 1))
                }
            }
            // Batched leading dimensions, and SmolLM2's shapes.
            all.append(Case(leading: [2, 3], outputs: 41, inputs: 192, bits: bits, groupSize: 32))
            all.append(Case(leading: [2, 1, 5], outputs: 9, inputs: 256, bits: bits, groupSize: 64, halfScales: false))
        }
        all.append(Case(leading: [1], outputs: 1536, inputs: 576, bits: 4, groupSize: 32))
        all.append(Case(leading: [4], outputs: 576, inputs: 1536, bits: 4, groupSize: 32))
        // From 8 rows the kernel dequantises each weight tile once into a buffer: a batch of
        // decode rows, a ragged block of rows and a ragged column tile.
        all.append(Case(leading: [64], outputs: 1536, inputs: 576, bits: 4, groupSize: 32))
        all.append(Case(leading: [9], outputs: 579, inputs: 1536, bits: 4, groupSize: 32))
        all.append(Case(leading: [70], outputs: 1030, inputs: 576, bits: 8, groupSize: 32, halfScales: true))
        all.append(Case(leading: [1, 1], outputs: 4099, inputs: 576, bits: 8, groupSize: 32))
        // No rows at all.
        all.append(Case(leading: [0], outputs: 5, inputs: 64, bits: 4, groupSize: 32))
        return all
    }()

    /// Affine-quantised random weights [N, K].
    static func weights(outputs: Int, inputs: Int, bits: Int, groupSize: Int, half: Bool, seed: UInt64) throws -> (w: MLXArray, scales: MLXArray, biases: MLXArray) {
        let dense = try Fixtures.normal([outputs, inputs], seed: seed, std: 0.05, dtype: half ? .float16 : .float32)
        let q = try Fast.quantize(dense, groupSize: groupSize, bits: bits)
        return (q.weight, q.scales, q.biases)
    }

    /// x @ dequantize(W)^T in float32 through MLX ops.
    static func reference(_ x: MLXArray, _ w: MLXArray, _ scales: MLXArray, _ biases: MLXArray, groupSize: Int, bits: Int) throws -> MLXArray {
        let dense = try Fast.dequantize(w, scales: scales.asType(.float32), biases: biases.asType(.float32), groupSize: groupSize, bits: bits)
        return try x.matmul(dense.T)
    }

    static func agreement(_ c: Case, _ label: String, sourceLocation: SourceLocation = #_sourceLocation) throws {
        let q = try weights(outputs: c.outputs, inputs: c.inputs, bits: c.bits, groupSize: c.groupSize, half: c.halfScales, seed: UInt64(c.outputs * 7 + c.inputs + c.bits))
        #expect(q.scales.dtype == (c.halfScales ? .float16 : .float32), sourceLocation: sourceLocation)
        let x = try Fixtures.normal(c.leading + [c.inputs], seed: UInt64(c.leading.reduce(1, *) + 11))
        let y = try Fast.quantizedMatmulRows(x, weight: q.w, scales: q.scales, biases: q.biases, groupSize: c.groupSize, bits: c.bits)
        #expect(y.shape == c.leading + [c.outputs], "\(c.testDescription), \(label)", sourceLocation: sourceLocation)
        #expect(y.dtype == .float32, sourceLocation: sourceLocation)
        let expected = try reference(x, q.w, q.scales, q.biases, groupSize: c.groupSize, bits: c.bits)
        // |y| ~ 0.05 sqrt(K) ~ 1; float32 sums over K <= 1536 terms in another order.
        expectClose(y, expected, atol: 2e-5, rtol: 1e-4, "\(c.testDescription), \(label)", sourceLocation: sourceLocation)
    }

    /// Every agreement case, at whatever ISA is in force.
    static func all(_ label: String) throws {
        for c in cases { try agreement(c, label) }
    }
}

@Suite("Quantized matmul kernel")
struct QuantizedKernelTests {
    @Test("quantizedMatmulRows equals dequantize + matmul", arguments: QuantizedChecks.cases)
    func agreement(_ c: QuantizedChecks.Case) throws { try QuantizedChecks.agreement(c, "current ISA") }

    @Test("agrees with MLX's quantizedMatmul within float16 rounding")
    func matchesMLX() throws {
        let q = try QuantizedChecks.weights(outputs: 96, inputs: 192, bits: 4, groupSize: 32, half: true, seed: 3)
        let x = try Fixtures.normal([2, 192], seed: 4)
        let ours = try Fast.quantizedMatmulRows(x, weight: q.w, scales: q.scales, biases: q.biases, groupSize: 32, bits: 4)
        let mlx = try Fast.quantizedMatmul(x, weight: q.w, scales: q.scales, biases: q.biases, transpose: true, groupSize: 32, bits: 4)
        #expect(ours.shape == mlx.shape)
        expectClose(ours, try mlx.asType(.float32), atol: 1e-2, rtol: 1e-2)
    }

    @Test("strided and broadcast x give the same results as contiguous x")
    func stridedInputs() throws {
        let q = try QuantizedChecks.weights(outputs: 19, inputs: 128, bits: 4, groupSize: 32, half: true, seed: 20)
        let transposed = try Fixtures.normal([128, 3], seed: 21).T
        let broadcast = try Fixtures.normal([1, 128], seed: 22).broadcast(to: [4, 128])
        let sliced = try Fixtures.normal([2, 5, 256], seed: 23)[ArrayIndex.all, 1..<5, 64..<192]
        for (name, x) in [("transposed", transposed), ("broadcast", broadcast), ("sliced", sliced)] {
            let y = try Fast.quantizedMatmulRows(x, weight: q.w, scales: q.scales, biases: q.biases, groupSize: 32, bits: 4)
            #expect(y.shape == Array(x.shape.dropLast()) + [19], "\(name)")
            expectClose(y, try QuantizedChecks.reference(x, q.w, q.scales, q.biases, groupSize: 32, bits: 4), atol: 2e-5, rtol: 1e-4, "\(name) x")
        }
    }

    @Test("layouts the kernel does not cover fall back to MLX's quantizedMatmul")
    func fallbacks() throws {
        // 2-bit weights.
        let dense = try Fixtures.normal([24, 128], seed: 5, std: 0.05)
        let q2 = try Fast.quantize(dense, groupSize: 64, bits: 2)
        let x = try Fixtures.normal([3, 128], seed: 6)
        let y2 = try Fast.quantizedMatmulRows(x, weight: q2.weight, scales: q2.scales, biases: q2.biases, groupSize: 64, bits: 2)
        #expect(y2.shape == [3, 24])
        expectClose(y2, try Fast.quantizedMatmul(x, weight: q2.weight, scales: q2.scales, biases: q2.biases, groupSize: 64, bits: 2), atol: 1e-5, rtol: 1e-5)
        // float16 x.
        let q4 = try Fast.quantize(dense, groupSize: 32, bits: 4)
        let xh = try x.asType(.float16)
        let yh = try Fast.quantizedMatmulRows(xh, weight: q4.weight, scales: q4.scales, biases: q4.biases, groupSize: 32, bits: 4)
        let mlx = try Fast.quantizedMatmul(xh, weight: q4.weight, scales: q4.scales, biases: q4.biases, groupSize: 32, bits: 4)
        #expect(yh.shape == [3, 24])
        #expect(yh.dtype == mlx.dtype)
        expectClose(yh, mlx, atol: 1e-5, rtol: 1e-5)
        expectClose(try yh.asType(.float32), try QuantizedChecks.reference(x, q4.weight, q4.scales, q4.biases, groupSize: 32, bits: 4), atol: 2e-2, rtol: 2e-2)
    }

    @Test("mismatched shapes are errors with MLX's message, not crashes")
    func shapeErrors() throws {
        let q = try QuantizedChecks.weights(outputs: 8, inputs: 64, bits: 4, groupSize: 32, half: false, seed: 7)
        let x = try Fixtures.normal([2, 96], seed: 8)
        #expect(throws: MLXError.self) {
            try eval(Fast.quantizedMatmulRows(x, weight: q.w, scales: q.scales, biases: q.biases, groupSize: 32, bits: 4))
        }
        // Wrong bit width for the packed shape.
        let x64 = try Fixtures.normal([2, 64], seed: 9)
        #expect(throws: MLXError.self) {
            try eval(Fast.quantizedMatmulRows(x64, weight: q.w, scales: q.scales, biases: q.biases, groupSize: 32, bits: 8))
        }
    }

    @Test("gradients with respect to x, scales and biases equal those of dequantize + matmul", arguments: [4, 8])
    func gradients(_ bits: Int) throws {
        let q = try QuantizedChecks.weights(outputs: 37, inputs: 128, bits: bits, groupSize: 64, half: false, seed: 10)
        let x = try Fixtures.normal([3, 128], seed: 11)
        let r = try Fixtures.uniform([3, 37], seed: 12, low: 0.5, high: 1.5)
        let (fv, fg) = try valueAndGrad([x, q.scales, q.biases]) { p in
            [try (Fast.quantizedMatmulRows(p[0], weight: q.w, scales: p[1], biases: p[2], groupSize: 64, bits: bits) * r).sum()]
        }
        let (pv, pg) = try valueAndGrad([x, q.scales, q.biases]) { p in
            [try (QuantizedChecks.reference(p[0], q.w, p[1], p[2], groupSize: 64, bits: bits) * r).sum()]
        }
        expectClose(fv[0], pv[0], atol: 1e-4, rtol: 1e-5)
        for (i, name) in ["x", "scales", "biases"].enumerated() {
            #expect(fg[i].shape == pg[i].shape, "\(name)")
            expectClose(fg[i], pg[i], atol: 1e-4, rtol: 1e-4, "gradient of \(name), \(bits)-bit")
        }
    }

    @Test("the gradient with respect to x matches central finite differences")
    func finiteDifferences() throws {
        let q = try QuantizedChecks.weights(outputs: 5, inputs: 64, bits: 4, groupSize: 32, half: true, seed: 13)
        let values = Fixtures.normalValues(2 * 64, seed: 14).map(Float.init)
        let r = try Fixtures.uniform([2, 5], seed: 15, low: 0.5, high: 1.5)
        func loss(_ v: [Float]) throws -> Double {
            let x = try MLXArray(v, shape: [2, 64])
            return try Double((Fast.quantizedMatmulRows(x, weight: q.w, scales: q.scales, biases: q.biases, groupSize: 32, bits: 4) * r).sum().item(Float.self))
        }
        let g = try grad(try MLXArray(values, shape: [2, 64])) { x in
            try (Fast.quantizedMatmulRows(x, weight: q.w, scales: q.scales, biases: q.biases, groupSize: 32, bits: 4) * r).sum()
        }
        #expect(g.shape == [2, 64])
        let analytic = try g.asArray(Float.self)
        let h: Float = 1e-2  // the loss is linear in x: the step only needs to beat float32 rounding
        for i in [0, 1, 31, 32, 63, 64, 100, 127] {
            var plus = values, minus = values
            plus[i] += h
            minus[i] -= h
            let numeric = (try loss(plus) - loss(minus)) / Double(2 * h)
            #expect(abs(numeric - Double(analytic[i])) <= 2e-3 + 1e-3 * abs(numeric), "element \(i): numeric \(numeric), analytic \(analytic[i])")
        }
    }

    @Test("asking for the gradient of the packed weight is an error")
    func noWeightGradient() throws {
        let q = try QuantizedChecks.weights(outputs: 4, inputs: 64, bits: 4, groupSize: 32, half: false, seed: 16)
        let x = try Fixtures.normal([1, 64], seed: 17)
        #expect(throws: (any Error).self) {
            _ = try valueAndGrad([x, q.w]) { p in
                [try Fast.quantizedMatmulRows(p[0], weight: p[1], scales: q.scales, biases: q.biases, groupSize: 32, bits: 4).sum()]
            }
        }
    }

    @Test("SmolLM2's GGUF tensors: 4-bit layers and the 8-bit token_embd as output head",
          .enabled(if: embeddedModelPath != nil, "set VALUEALIGN_MODEL to the SmolLM2 GGUF file"),
          arguments: ["blk.0.attn_q", "blk.0.attn_k", "blk.7.ffn_up", "blk.29.ffn_down", "token_embd"])
    func smolLM2(_ name: String) throws {
        let file = try ArrayIO.loadGGUF(try #require(embeddedModelPath))
        let w = try #require(file.tensors["\(name).weight"])
        let scales = try #require(file.tensors["\(name).scales"])
        let biases = try #require(file.tensors["\(name).biases"])
        #expect(w.dtype == .uint32)
        #expect(scales.dtype == .float16)
        let groupSize = 32
        let inputs = scales.dim(1) * groupSize
        let bits = w.dim(1) * 32 / inputs
        #expect(bits == (name == "token_embd" ? 8 : 4))
        for rows in [1, 4] {
            let x = try Fixtures.normal([rows, inputs], seed: UInt64(rows))
            let y = try Fast.quantizedMatmulRows(x, weight: w, scales: scales, biases: biases, groupSize: groupSize, bits: bits)
            #expect(y.shape == [rows, w.dim(0)])
            let expected = try QuantizedChecks.reference(x, w, scales, biases, groupSize: groupSize, bits: bits)
            expectClose(y, expected, atol: 1e-4, rtol: 1e-4, "\(name), \(rows) rows")
        }
    }
}

extension KernelISATests {
    /// The agreement cases under each ISA, inside the serialised ISA suite so that no other test
    /// forces an ISA at the same time.
    @Suite("Quantized matmul kernel, each ISA")
    struct QuantizedEachISA {
        @Test("quantizedMatmulRows equals dequantize + matmul under each ISA the CPU supports", arguments: Fast.KernelISA.allCases)
        func forced(_ isa: Fast.KernelISA) throws {
            defer { try? Fast.setKernelISA(nil) }
            guard (try? Fast.setKernelISA(isa)) != nil else {
                #expect(isa != .portable, "the portable kernels must always be available")
                return
            }
            #expect(Fast.kernelISA == isa)
            try QuantizedChecks.all("ISA \(isa)")
            #expect(Fast.kernelISA == isa, "the ISA changed under the test")
        }
    }
}
