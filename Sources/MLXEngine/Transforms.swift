internal import CMLXBridge

/// Evaluates arrays (runs their graphs).
public func eval(_ arrays: MLXArray...) throws(MLXError) { try eval(arrays) }

/// Evaluates arrays (runs their graphs).
public func eval(_ arrays: [MLXArray]) throws(MLXError) {
    try withHandles(arrays) { (handles) throws(MLXError) in try check(mlxb_eval(handles, arrays.count), "eval") }
}

/// Evaluates every array of a parameter tree.
public func eval(_ tree: [String: MLXArray]) throws(MLXError) { try eval(Array(tree.values)) }

/// Starts evaluating arrays in the background; reading them back waits for the result.
public func asyncEval(_ arrays: [MLXArray]) throws(MLXError) {
    try withHandles(arrays) { (handles) throws(MLXError) in try check(mlxb_async_eval(handles, arrays.count), "async_eval") }
}

/// A Swift function from arrays to arrays, handed to the bridge as a C callback.
final class ClosureBox: @unchecked Sendable {
    let body: ([MLXArray]) throws -> [MLXArray]
    /// The Swift error the last call threw, rethrown once the bridge returns.
    var error: (any Error)?

    init(_ body: @escaping ([MLXArray]) throws -> [MLXArray]) { self.body = body }
}

/// The C entry point for every Swift closure: it must never let a Swift error or a C++
/// exception cross it, so errors are stored in the box and reported by status.
private let closureTrampoline: mlxb_closure_fn = { context, inputs, count, outputs in
    let box = Unmanaged<ClosureBox>.fromOpaque(context!).takeUnretainedValue()
    do {
        var arrays: [MLXArray] = []
        arrays.reserveCapacity(count)
        for i in 0..<count {
            arrays.append(try produce("closure input") { mlxb_array_retain(inputs![i], $0) })
        }
        let results = try box.body(arrays)
        for r in results { try check(mlxb_vector_push(outputs, r.handle), "closure output") }
        return 0
    } catch {
        box.error = error
        return 1
    }
}

private let closureRelease: mlxb_context_release = { context in
    Unmanaged<ClosureBox>.fromOpaque(context!).release()
}

/// An MLX closure wrapping a Swift function.
final class BridgeClosure: @unchecked Sendable {
    let handle: OpaquePointer
    let box: ClosureBox

    init(_ body: @escaping ([MLXArray]) throws -> [MLXArray]) throws(MLXError) {
        let box = ClosureBox(body)
        var out: OpaquePointer?
        let context = Unmanaged.passRetained(box).toOpaque()
        let status = mlxb_closure_new(closureTrampoline, context, closureRelease, &out)
        guard status == 0, let h = out else { throw bridgeError("closure") }
        self.handle = h
        self.box = box
    }

    init(handle: OpaquePointer, box: ClosureBox) {
        self.handle = handle
        self.box = box
    }

    deinit { mlxb_closure_free(handle) }

    /// Runs a bridge call that may call back into `box`, rethrowing the Swift error it raised.
    func run(_ operation: String, _ body: () -> Int32) throws {
        box.error = nil
        let status = body()
        if let error = box.error {
            box.error = nil
            throw error
        }
        try check(status, operation)
    }
}

/// Whether the calling code runs inside a gradient transform (`valueAndGrad`, `grad`, `vjp`).
/// Layers with an inference-only fast path read it: the hybrid layers' packed few-rows weights
/// (LanguageModels) would otherwise dequantise their whole matrix in every backward pass, so they
/// take their float32 (or bfloat16) path while it is true.
public enum GradientTrace {
    @TaskLocal public static var isActive = false
}

/// The value of `f` and its gradients with respect to the inputs at `argnums`.
///
/// `f` returns one or more arrays; the gradient is that of the first, which must be a scalar.
/// Errors thrown by `f` are rethrown unchanged.
public func valueAndGrad(
    _ inputs: [MLXArray], argnums: [Int]? = nil, _ f: @escaping ([MLXArray]) throws -> [MLXArray]
) throws -> (values: [MLXArray], gradients: [MLXArray]) {
    let closure = try BridgeClosure(f)
    let nums = (argnums ?? Array(0..<inputs.count)).map { Int32($0) }
    for n in nums where n < 0 || Int(n) >= inputs.count {
        throw MLXError.invalidArgument("argnum \(n) is out of range for \(inputs.count) inputs")
    }
    var values: OpaquePointer?, grads: OpaquePointer?
    try GradientTrace.$isActive.withValue(true) {
        try withHandles(inputs) { handles in
            try closure.run("value_and_grad") { mlxb_value_and_grad(closure.handle, handles, inputs.count, nums, nums.count, &values, &grads) }
        }
    }
    defer { mlxb_vector_free(values); mlxb_vector_free(grads) }
    return (try arrays(of: values!), try arrays(of: grads!))
}

/// The value of a scalar function of a parameter tree and its gradient tree.
public func valueAndGrad(
    _ parameters: [String: MLXArray], _ f: @escaping ([String: MLXArray]) throws -> MLXArray
) throws -> (value: MLXArray, gradients: [String: MLXArray]) {
    let keys = parameters.keys.sorted()
    let (values, grads) = try valueAndGrad(keys.map { parameters[$0]! }) { arrays in
        [try f(Dictionary(uniqueKeysWithValues: zip(keys, arrays)))]
    }
    return (values[0], Dictionary(uniqueKeysWithValues: zip(keys, grads)))
}

/// The gradient of a scalar function with respect to its single input.
public func grad(_ x: MLXArray, _ f: @escaping (MLXArray) throws -> MLXArray) throws -> MLXArray {
    try valueAndGrad([x]) { [try f($0[0])] }.gradients[0]
}

/// The outputs of `f` at `primals` and the vector-Jacobian products with `cotangents`.
public func vjp(
    _ primals: [MLXArray], cotangents: [MLXArray], _ f: @escaping ([MLXArray]) throws -> [MLXArray]
) throws -> (outputs: [MLXArray], vjps: [MLXArray]) {
    let closure = try BridgeClosure(f)
    var outputs: OpaquePointer?, vjps: OpaquePointer?
    try GradientTrace.$isActive.withValue(true) {
        try withHandles(primals) { p in
            try withHandles(cotangents) { c in
                try closure.run("vjp") { mlxb_vjp(closure.handle, p, primals.count, c, cotangents.count, &outputs, &vjps) }
            }
        }
    }
    defer { mlxb_vector_free(outputs); mlxb_vector_free(vjps) }
    return (try arrays(of: outputs!), try arrays(of: vjps!))
}

/// A function traced once per input shape and replayed as one fused graph (MLX's `compile`).
///
/// The first call with new shapes traces `f` (and on CPU JIT-compiles fused element-wise code,
/// about a second); later calls reuse the result. `f` must be a pure function of its inputs.
public final class CompiledFunction: @unchecked Sendable {
    private let compiled: BridgeClosure
    private let source: BridgeClosure

    /// Compiles `f`.
    public init(_ f: @escaping ([MLXArray]) throws -> [MLXArray]) throws(MLXError) {
        source = try BridgeClosure(f)
        var out: OpaquePointer?
        guard mlxb_compile(source.handle, &out) == 0, let h = out else { throw bridgeError("compile") }
        compiled = BridgeClosure(handle: h, box: source.box)
    }

    /// Runs the compiled function.
    public func callAsFunction(_ inputs: [MLXArray]) throws -> [MLXArray] {
        var out: OpaquePointer?
        try withHandles(inputs) { handles in
            try compiled.run("compiled function") { mlxb_closure_apply(compiled.handle, handles, inputs.count, &out) }
        }
        defer { mlxb_vector_free(out) }
        return try arrays(of: out!)
    }
}
