import Foundation
import MLXEngine
import Testing
import ValueAlignTesting

/// bfloat16 matmuls on AMX tiles (kernels/amx_matmul.cpp) against MLX's float32 matmul of the same
/// bf16-rounded operands: the only difference left is the order of float32 accumulation.
@Suite("AMX bf16 matmul", .enabled(if: Fast.amxAvailable, "this CPU (or VM) has no usable AMX-BF16"))
struct AMXMatmulTests {
    struct Case: Sendable, CustomTestStringConvertible {
        var x: [Int]
        var outputs: Int
        var testDescription: String { "x \(x) -> \(outputs) outputs" }
    }

    /// Rows, inputs and outputs on and off the 32-multiples the tiles use; leading batch axes.
    static let cases: [Case] = [
        Case(x: [64, 64], outputs: 32), Case(x: [1, 32], outputs: 16), Case(x: [37, 50], outputs: 40),
        Case(x: [2, 19, 96], outputs: 70), Case(x: [3, 33, 576], outputs: 192), Case(x: [129, 17], outputs: 3),
        // Past 4096 inputs the kernel sums K in chunks (an output head's input gradient); 4200
        // leaves a short last chunk. The wide output makes the gradient take that path.
        Case(x: [45, 4200], outputs: 70), Case(x: [40, 64], outputs: 4500),
    ]

    static func bf16(_ a: MLXArray) throws -> MLXArray { try a.asType(.bfloat16).asType(.float32) }

    @Test("forward equals float32 matmul of the bf16-rounded operands", arguments: cases)
    func forward(_ c: Case) throws {
        let k = c.x.last!
        let x = try Fixtures.uniform(c.x, seed: 1)
        let w = try Fixtures.uniform([c.outputs, k], seed: 2)
        let packed = try Fast.BF16Weight(w)
        let y = try Fast.bf16Linear(x, packed)
        #expect(y.shape == Array(c.x.dropLast()) + [c.outputs])
        let reference = try Self.bf16(x).matmul(Self.bf16(w).T)
        expectClose(y, reference, atol: 1e-4 * Double(k).squareRoot(), rtol: 1e-4)
        // And it is a real bf16 product: close to the float32 one, but not equal to it.
        let exact = try x.matmul(w.T)
        let diff = try maxAbsDifference(y, exact)
        #expect(diff < 0.02 * Double(k).squareRoot())
    }

    @Test("the gradient with respect to x is bf16(dy) times bf16(W)", arguments: cases)
    func gradient(_ c: Case) throws {
        let k = c.x.last!
        let x = try Fixtures.uniform(c.x, seed: 3)
        let w = try Fixtures.uniform([c.outputs, k], seed: 4)
        let r = try Fixtures.uniform(Array(c.x.dropLast()) + [c.outputs], seed: 5)
        let packed = try Fast.BF16Weight(w)
        let g = try grad(x) { try (Fast.bf16Linear($0, packed) * r).sum() }
        #expect(g.shape == c.x)
        let reference = try Self.bf16(r).matmul(Self.bf16(w))
        expectClose(g, reference, atol: 1e-4 * Double(c.outputs).squareRoot(), rtol: 1e-4)
    }

    @Test("NaN and infinity pass through; zero rows give zeros")
    func specialValues() throws {
        let w = try Fixtures.uniform([16, 32], seed: 6)
        let packed = try Fast.BF16Weight(w)
        var values = [Float](repeating: 0, count: 3 * 32)
        values[0] = .nan
        values[32] = .infinity
        let y = try Fast.bf16Linear(MLXArray(values, shape: [3, 32]), packed).asArray(Float.self)
        let nans = y[0..<16].allSatisfy { $0.isNaN }
        #expect(nans)
        let infinite = y[16..<32].allSatisfy { !$0.isFinite }
        #expect(infinite)
        let zeros = y[32..<48].allSatisfy { $0 == 0 }
        #expect(zeros)
    }

    @Test("bad inputs are errors naming the mismatch, not crashes")
    func badInputs() throws {
        let packed = try Fast.BF16Weight(try Fixtures.uniform([8, 32], seed: 7))
        #expect(throws: MLXError.self) { try Fast.bf16Linear(try Fixtures.uniform([4, 31], seed: 8), packed) }
        #expect(throws: MLXError.self) { try Fast.BF16Weight(try Fixtures.uniform([8], seed: 9)) }
        let other = try Fast.BF16Weight(try Fixtures.uniform([8, 96], seed: 10))
        let mixed = Fast.BF16Weight(forward: packed.forward, backward: other.backward, outputs: 8, inputs: 32)
        do {
            _ = try Fast.bf16Linear(try Fixtures.uniform([4, 32], seed: 11), mixed)
            Issue.record("a backward pack of another shape was accepted")
        } catch {
            #expect("\(error)".contains("backward pack"))
        }
    }

    @Test("switching AMX off is seen at once, and back on")
    func toggle() throws {
        try Fast.setAMXEnabled(false)
        #expect(!Fast.amxAvailable)
        #expect(throws: MLXError.self) {
            try Fast.bf16Linear(try Fixtures.uniform([2, 32], seed: 12), try Fast.BF16Weight(try Fixtures.uniform([16, 32], seed: 13)))
        }
        try Fast.setAMXEnabled(true)
        #expect(Fast.amxAvailable)
    }
}
