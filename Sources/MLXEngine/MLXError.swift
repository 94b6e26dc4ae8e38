internal import CMLXBridge

/// An error raised by the MLX engine: a failed operation (with MLX's own message), bad arguments
/// caught on the Swift side, or an error thrown by a Swift closure that the engine called back.
public enum MLXError: Error, Equatable, CustomStringConvertible {
    /// An MLX operation failed; `message` is MLX's explanation (for example a shape mismatch).
    case operationFailed(operation: String, message: String)
    /// The caller passed arguments the engine rejects before calling MLX.
    case invalidArgument(String)
    /// A file could not be read or written.
    case io(path: String, message: String)

    public var description: String {
        switch self {
        case let .operationFailed(operation, message): "\(operation): \(message)"
        case let .invalidArgument(message): message
        case let .io(path, message): "\(path): \(message)"
        }
    }
}

/// The last error the bridge recorded on this thread.
@inline(__always)
func bridgeError(_ operation: String) -> MLXError {
    .operationFailed(operation: operation, message: String(cString: mlxb_last_error()))
}

/// Checks a bridge status code.
@inline(__always)
func check(_ status: Int32, _ operation: @autoclosure () -> String) throws(MLXError) {
    if status != 0 { throw bridgeError(operation()) }
}

/// Calls a bridge function that produces one array.
@inline(__always)
func produce(_ operation: @autoclosure () -> String, _ body: (UnsafeMutablePointer<OpaquePointer?>) -> Int32) throws(MLXError) -> MLXArray {
    var out: OpaquePointer?
    let status = body(&out)
    guard status == 0, let handle = out else { throw bridgeError(operation()) }
    return MLXArray(handle: handle)
}

/// Calls a bridge function that produces a list of arrays (`package`: model-specific kernel
/// wrappers outside this module call their bridge functions through it).
package func produceList(_ operation: @autoclosure () -> String, _ body: (UnsafeMutablePointer<OpaquePointer?>) -> Int32) throws(MLXError) -> [MLXArray] {
    var out: OpaquePointer?
    let status = body(&out)
    guard status == 0, let vector = out else { throw bridgeError(operation()) }
    defer { mlxb_vector_free(vector) }
    return try arrays(of: vector)
}

/// Copies the arrays of a bridge vector into Swift handles (the vector stays owned by the caller).
func arrays(of vector: OpaquePointer) throws(MLXError) -> [MLXArray] {
    let count = mlxb_vector_size(vector)
    var result: [MLXArray] = []
    result.reserveCapacity(count)
    for i in 0..<count {
        result.append(try produce("vector_get") { mlxb_vector_get(vector, i, $0) })
    }
    return result
}

/// Calls `body` with the bridge handles of `arrays`, kept alive for the call.
package func withHandles<R, E: Error>(_ arrays: [MLXArray], _ body: (UnsafePointer<OpaquePointer?>) throws(E) -> R) throws(E) -> R {
    let handles: [OpaquePointer?] = arrays.map { $0.handle }
    return try withExtendedLifetime(arrays) { () throws(E) -> R in
        try handles.withUnsafeBufferPointer { (buffer) throws(E) -> R in try body(buffer.baseAddress!) }
    }
}
