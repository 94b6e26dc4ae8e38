import MLXEngine
import Testing
import ValueAlignTesting

/// compile, valueAndGrad, grad and vjp: results, tracing, and Swift errors thrown by closures.
@Suite("Transforms")
struct TransformTests {
    struct Boom: Error, Equatable {
        let code: Int
    }

    /// Counts how often a traced closure runs.
    final class Counter: @unchecked Sendable {
        var calls = 0
    }

    static func block(_ x: [MLXArray]) throws -> [MLXArray] {
        let h = try (x[0].matmul(x[1]) + x[2]).silu()
        return [try (h * h.sigmoid()).sum(axis: -1), try h.tanh()]
    }

    @Test("compile gives the eager result and reuses its trace")
    func compileMatchesEager() throws {
        let counter = Counter()
        let compiled = try CompiledFunction { x in
            counter.calls += 1
            return try Self.block(x)
        }
        let inputs = [try Fixtures.normal([4, 6], seed: 1), try Fixtures.normal([6, 5], seed: 2), try Fixtures.normal([5], seed: 3)]
        let eager = try Self.block(inputs)
        let first = try compiled(inputs)
        #expect(first.count == 2)
        expectClose(first[0], eager[0], atol: 1e-5, rtol: 1e-5)
        expectClose(first[1], eager[1], atol: 1e-5, rtol: 1e-5)
        let tracesAfterFirst = counter.calls
        #expect(tracesAfterFirst >= 1)

        // New values, same shapes: no new trace, and the new values are used.
        let other = [try Fixtures.normal([4, 6], seed: 4), try Fixtures.normal([6, 5], seed: 5), try Fixtures.normal([5], seed: 6)]
        let second = try compiled(other)
        #expect(counter.calls == tracesAfterFirst, "a call with the same shapes traced again")
        expectClose(second[0], try Self.block(other)[0], atol: 1e-5, rtol: 1e-5)
        _ = try compiled(inputs)
        #expect(counter.calls == tracesAfterFirst)

        // A new shape traces again.
        let wider = [try Fixtures.normal([2, 6], seed: 7), inputs[1], inputs[2]]
        let third = try compiled(wider)
        #expect(counter.calls > tracesAfterFirst)
        expectClose(third[1], try Self.block(wider)[1], atol: 1e-5, rtol: 1e-5)
    }

    @Test("a Swift error thrown inside a compiled function is rethrown unchanged")
    func compileRethrows() throws {
        let compiled = try CompiledFunction { _ in throw Boom(code: 3) }
        #expect(throws: Boom(code: 3)) { _ = try compiled([MLXArray(Float(1))]) }
    }

    @Test("valueAndGrad rethrows the closure's own error unchanged, and the engine keeps working")
    func valueAndGradRethrows() throws {
        let x = try Fixtures.normal([3], seed: 1)
        #expect(throws: Boom(code: 7)) {
            _ = try valueAndGrad([x]) { _ in throw Boom(code: 7) }
        }
        // Thrown after some graph was built inside the closure.
        #expect(throws: Boom(code: 8)) {
            _ = try valueAndGrad([x]) { a in
                let y = try a[0].exp().sum()
                if try y.item(Float.self) > 0 { throw Boom(code: 8) }
                return [y]
            }
        }
        #expect(throws: Boom(code: 9)) { _ = try grad(x) { _ in throw Boom(code: 9) } }
        #expect(throws: Boom(code: 10)) { _ = try vjp([x], cotangents: [x]) { _ in throw Boom(code: 10) } }
        #expect(throws: Boom(code: 11)) { _ = try valueAndGrad(["w": x]) { _ in throw Boom(code: 11) } }

        // An engine error inside the closure comes out as that MLXError, naming the op.
        let error = #expect(throws: MLXError.self) {
            _ = try valueAndGrad([x]) { a in [try a[0].matmul(MLXArray.ones([4, 4])).sum()] }
        }
        #expect(error?.description.contains("matmul") == true, "\(String(describing: error))")

        // The process is fine: the same transform works right after.
        let g = try grad(x) { try $0.square().sum() }
        expectClose(g, try 2 * x, atol: 1e-6, rtol: 1e-6)
    }

    @Test("valueAndGrad returns the value and every output of a multi-output function")
    func valueAndGradValues() throws {
        let x = try MLXArray([1, 2, 3] as [Float], shape: [3])
        let (values, grads) = try valueAndGrad([x]) { a in [try a[0].square().sum(), try a[0] * 2] }
        #expect(values.count == 2)
        expectClose(values[0], [14], shape: [])
        expectClose(values[1], [2, 4, 6], shape: [3])
        expectClose(grads[0], [2, 4, 6], shape: [3])
    }

    @Test("a gradient taken through a non-scalar output is an error, not a crash")
    func nonScalarOutput() throws {
        let x = try MLXArray([1, 2, 3] as [Float], shape: [3])
        let error = #expect(throws: (any Error).self) { _ = try valueAndGrad([x]) { a in [try a[0] * 2] } }
        #expect(error != nil)
    }

    @Test("vjp multiplies the cotangent by the Jacobian, for each output")
    func vjpProducts() throws {
        let x = try MLXArray([1, -2, 3] as [Float], shape: [3])
        let y = try MLXArray([0.5, 4, -1] as [Float], shape: [3])
        let c = try MLXArray([1, 10, 100] as [Float], shape: [3])
        let (outputs, vjps) = try MLXEngine.vjp([x, y], cotangents: [c]) { a in [try a[0] * a[0] * a[1]] }
        expectClose(outputs[0], [0.5, 16, -9], shape: [3])
        // d/dx = 2xy c, d/dy = x^2 c
        expectClose(vjps[0], [1, -160, -600], shape: [3])
        expectClose(vjps[1], [1, 40, 900], shape: [3])

        let (o2, v2) = try MLXEngine.vjp([x], cotangents: [c, try MLXArray.ones([])]) { a in [try a[0].exp(), try a[0].sum()] }
        #expect(o2.count == 2)
        expectClose(v2[0], try x.exp() * c + 1, atol: 1e-4, rtol: 1e-5)
    }

    @Test("grad of a composition equals the chain rule")
    func gradChain() throws {
        let x = try Fixtures.uniform([5], seed: 3, dtype: .float64)
        let g = try grad(x) { try $0.sin().exp().sum() }
        expectClose(g, try x.cos() * x.sin().exp(), atol: 1e-12, rtol: 1e-12)
    }

    @Test("eval and asyncEval run graphs; an evaluated array reads back unchanged")
    func evaluation() throws {
        let a = try Fixtures.normal([8], seed: 1)
        let b = try a.exp(), c = try a.square()
        try eval(b, c)
        try asyncEval([try a + 1])
        try eval(["b": b, "c": c])
        try b.eval()
        expectClose(b, try Fixtures.normal([8], seed: 1).exp(), atol: 1e-6, rtol: 1e-6)
    }
}
