import Foundation
import MLXEngine
import Testing
import ValueAlignTesting

/// `Fast.linear` / `Fast.blasMatmul` (kernels/blas_matmul.cpp): cblas_sgemm as one MLX primitive,
/// a large product cut into blocks over the kernel threads, against MLX's own matmul (one GEMM),
/// forward and both gradients. The tests never turn the splitting off: it is process-wide and
/// changes the rounding that other tests, running at the same time, compare bit for bit.
@Suite("BLAS matmul primitive", .serialized)
struct BlasMatmulTests {
    struct Case: Sendable, CustomTestStringConvertible {
        var x: [Int]
        var outputs: Int
        var testDescription: String { "x \(x) -> \(outputs) outputs" }
    }

    /// Under and over the split threshold (4e6 multiply-adds); wide products split by columns,
    /// tall ones by rows, at sizes off the 16-column and 8-row block multiples; leading axes.
    static let cases: [Case] = [
        Case(x: [3, 5], outputs: 7),
        Case(x: [2, 64, 576], outputs: 576),  // 128 x 576 x 576: N >= M, column blocks
        Case(x: [517, 96], outputs: 90),  // M > N, row blocks, 517 = 8 * 64 + 5
        Case(x: [33, 600], outputs: 1001),  // column blocks of a width that is no multiple of 16
        Case(x: [4, 37, 160], outputs: 333),
    ]

    @Test("forward equals MLX's matmul; large products are cut into blocks", arguments: cases)
    func forward(_ c: Case) throws {
        let k = c.x.last!
        let x = try Fixtures.uniform(c.x, seed: 11)
        let w = try Fixtures.uniform([c.outputs, k], seed: 12)
        let reference = try x.matmul(w.T)
        let big = Double(c.x.reduce(1, *)) * Double(c.outputs) >= 4e6
        let before = Fast.splitGEMMCount
        let y = try Fast.linear(x, w)
        try eval(y)
        #expect(y.shape == Array(c.x.dropLast()) + [c.outputs])
        expectClose(y, reference, atol: 1e-5 * Double(k), rtol: 1e-5)
        if big, Fast.canSplitGEMMs { #expect(Fast.splitGEMMCount > before, "a product of this size is split") }
        // The untransposed form: x · B for B [in, out].
        let z = try Fast.blasMatmul(x, try w.T.contiguous())
        expectClose(z, reference, atol: 1e-5 * Double(k), rtol: 1e-5, "blasMatmul")
    }

    @Test("exact at chosen positions of a split product, on both sides of the block edges")
    func exactEntries() throws {
        let (m, k, n) = (300, 257, 520)
        let xv = Fixtures.uniformValues(m * k, seed: 21), wv = Fixtures.uniformValues(n * k, seed: 22)
        let x = try MLXArray(xv.map(Float.init), shape: [m, k]), w = try MLXArray(wv.map(Float.init), shape: [n, k])
        let y = try Fast.linear(x, w).asArray(Float.self)
        for (i, j) in [(0, 0), (0, 519), (150, 259), (150, 260), (299, 0), (299, 519), (7, 16), (8, 15), (100, 271), (100, 272)] {
            var exact = 0.0
            for p in 0..<k { exact += Double(Float(xv[i * k + p])) * Double(Float(wv[j * k + p])) }
            #expect(Swift.abs(Double(y[i * n + j]) - exact) < 1e-3, "[\(i), \(j)]")
        }
    }

    @Test("gradients with respect to x and W equal those of MLX's matmul", arguments: cases)
    func gradients(_ c: Case) throws {
        let k = c.x.last!
        let rows = c.x.dropLast().reduce(1, *)
        let x = try Fixtures.uniform(c.x, seed: 31)
        let w = try Fixtures.uniform([c.outputs, k], seed: 32)
        let weights = try Fixtures.uniform(Array(c.x.dropLast()) + [c.outputs], seed: 33)
        let expected = try valueAndGrad([x, w]) { [try ($0[0].matmul($0[1].T) * weights).sum()] }
        let got = try valueAndGrad([x, w]) { [try (Fast.linear($0[0], $0[1]) * weights).sum()] }
        expectClose(got.values[0], expected.values[0], atol: 1e-3, rtol: 1e-4, "loss")
        #expect(got.gradients[0].shape == x.shape)
        #expect(got.gradients[1].shape == w.shape)
        expectClose(got.gradients[0], expected.gradients[0], atol: 1e-5 * Double(c.outputs), rtol: 1e-5, "dx")
        expectClose(got.gradients[1], expected.gradients[1], atol: 1e-5 * Double(rows), rtol: 1e-5, "dW")
        // The untransposed form's gradients.
        let b = try w.T.contiguous()
        let expectedB = try valueAndGrad([x, b]) { [try ($0[0].matmul($0[1]) * weights).sum()] }
        let gotB = try valueAndGrad([x, b]) { [try (Fast.blasMatmul($0[0], $0[1]) * weights).sum()] }
        expectClose(gotB.gradients[0], expectedB.gradients[0], atol: 1e-5 * Double(c.outputs), rtol: 1e-5, "dx of x·B")
        expectClose(gotB.gradients[1], expectedB.gradients[1], atol: 1e-5 * Double(rows), rtol: 1e-5, "dB of x·B")
    }

    @Test("other dtypes, 1-D input and a zero inner dimension; a shape mismatch is an error")
    func edges() throws {
        // float16 operands and a 1-D x go to MLX's matmul.
        let x16 = try Fixtures.uniform([4, 8], seed: 41, dtype: .float16), w16 = try Fixtures.uniform([3, 8], seed: 42, dtype: .float16)
        let y16 = try Fast.linear(x16, w16)
        #expect(y16.dtype == .float16)
        expectClose(try y16.asType(.float32), try x16.matmul(w16.T).asType(.float32), atol: 1e-3, rtol: 1e-3)
        let v = try Fixtures.uniform([8], seed: 43), w = try Fixtures.uniform([5, 8], seed: 44)
        let yv = try Fast.linear(v, w)
        #expect(yv.shape == [5])
        expectClose(yv, try v.matmul(w.T), atol: 1e-5, rtol: 1e-5)
        // K = 0: the empty sum, zeros.
        let z = try Fast.linear(try MLXArray.zeros([3, 0]), try MLXArray.zeros([5, 0]))
        #expect(z.shape == [3, 5])
        #expect(try z.asArray(Float.self) == [Float](repeating: 0, count: 15))
        // in 8 against a weight of in 9: MLX's shape error, thrown, not a crash.
        #expect(throws: MLXError.self) { try eval(Fast.linear(try MLXArray.zeros([2, 8]), try MLXArray.zeros([4, 9]))) }
    }
}
