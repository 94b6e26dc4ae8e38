internal import CMLXBridge
import Foundation

/// An n-dimensional array, evaluated lazily by MLX.
///
/// Operations build a graph; the work runs when the array is evaluated (`eval`, or when values are
/// read back). Arrays are immutable, so one can be shared between tasks; graph construction and
/// evaluation of the same arrays from several threads at once is not supported by MLX, so keep an
/// engine's work on one task (see `EngineActor`).
public final class MLXArray: @unchecked Sendable {
    /// The bridge's array; `package` so that a kernel wrapper kept beside the model it serves
    /// (LanguageModels/FastPaths) can pass it to its bridge function.
    package let handle: OpaquePointer

    init(handle: OpaquePointer) { self.handle = handle }

    deinit { mlxb_array_free(handle) }

    // MARK: creation

    /// An array holding `values` with the given shape (row-major). Throws if the shape's element
    /// count differs from `values.count`.
    public convenience init<T: ArrayElement>(_ values: [T], shape: [Int]) throws(MLXError) {
        let count = shape.reduce(1, *)
        guard shape.allSatisfy({ $0 >= 0 }), count == values.count else {
            throw .invalidArgument("cannot make an array of shape \(shape) from \(values.count) values")
        }
        let dims = shape.map { Int32($0) }
        var out: OpaquePointer?
        let status = values.withUnsafeBytes { raw in
            dims.withUnsafeBufferPointer { mlxb_array_from_data(raw.baseAddress, T.dtype.bridge, $0.baseAddress, Int32(dims.count), &out) }
        }
        guard status == 0, let handle = out else { throw bridgeError("array") }
        self.init(handle: handle)
    }

    /// A one-dimensional array of `values`.
    public convenience init<T: ArrayElement>(_ values: [T]) {
        // Cannot fail: the shape matches by construction.
        try! self.init(values, shape: [values.count])
    }

    /// Token ids and other integers, stored as int32.
    public convenience init(_ values: [Int], shape: [Int]) throws(MLXError) {
        try self.init(values.map { Int32(truncatingIfNeeded: $0) }, shape: shape)
    }

    /// A scalar (zero-dimensional) array.
    public convenience init(_ value: Float) { try! self.init([value], shape: []) }

    /// A scalar of the given dtype.
    public convenience init(_ value: Double, dtype: DType) throws(MLXError) {
        var out: OpaquePointer?
        guard mlxb_array_scalar(value, dtype.bridge, &out) == 0, let handle = out else { throw bridgeError("scalar") }
        self.init(handle: handle)
    }

    // MARK: facts

    /// The dimensions.
    public var shape: [Int] {
        var dims = [Int32](repeating: 0, count: 16)
        let n = Int(mlxb_array_shape(handle, &dims, Int32(dims.count)))
        if n > dims.count {
            dims = [Int32](repeating: 0, count: n)
            _ = mlxb_array_shape(handle, &dims, Int32(n))
        }
        return dims.prefix(Swift.max(n, 0)).map(Int.init)
    }

    /// The number of dimensions.
    public var ndim: Int { Int(mlxb_array_ndim(handle)) }

    /// The number of elements.
    public var size: Int { Int(mlxb_array_size(handle)) }

    /// The element type.
    public var dtype: DType { DType(bridge: mlxb_array_dtype(handle)) }

    /// The size of one axis; negative axes count from the end.
    public func dim(_ axis: Int) -> Int {
        let s = shape
        return s[axis < 0 ? s.count + axis : axis]
    }

    // MARK: read-back

    /// Evaluates the array and copies its elements (row-major), converted to `T`.
    public func asArray<T: ArrayElement>(_ type: T.Type = T.self) throws(MLXError) -> [T] {
        let count = size
        var status: Int32 = 0
        let values = [T](unsafeUninitializedCapacity: count) { buffer, initialized in
            status = mlxb_array_read(handle, T.dtype.bridge, buffer.baseAddress, count)
            initialized = status == 0 ? count : 0
        }
        try check(status, "read")
        return values
    }

    /// The value of a one-element array, converted to `T`.
    public func item<T: ArrayElement>(_ type: T.Type = T.self) throws(MLXError) -> T {
        guard size == 1 else { throw .invalidArgument("item() needs an array of one element, got shape \(shape)") }
        return try asArray(T.self)[0]
    }

    /// Evaluates this array.
    public func eval() throws(MLXError) { try MLXEngine.eval(self) }
}

extension MLXArray: CustomStringConvertible {
    /// MLX's printed form; evaluates the array.
    public var description: String {
        guard let text = mlxb_array_describe(handle) else { return "<array>" }
        defer { free(text) }
        return String(cString: text)
    }
}

// MARK: - creation functions

extension MLXArray {
    /// An array of `shape` filled with `value`.
    public static func full(_ shape: [Int], value: Double, dtype: DType = .float32) throws(MLXError) -> MLXArray {
        let dims = shape.map { Int32($0) }
        return try produce("full") { out in mlxb_full(dims, Int32(dims.count), value, dtype.bridge, out) }
    }

    /// Zeros of `shape`.
    public static func zeros(_ shape: [Int], dtype: DType = .float32) throws(MLXError) -> MLXArray {
        try full(shape, value: 0, dtype: dtype)
    }

    /// Ones of `shape`.
    public static func ones(_ shape: [Int], dtype: DType = .float32) throws(MLXError) -> MLXArray {
        try full(shape, value: 1, dtype: dtype)
    }

    /// Zeros with the shape and dtype of `other`.
    public static func zeros(like other: MLXArray) throws(MLXError) -> MLXArray { try zeros(other.shape, dtype: other.dtype) }

    /// Ones with the shape and dtype of `other`.
    public static func ones(like other: MLXArray) throws(MLXError) -> MLXArray { try ones(other.shape, dtype: other.dtype) }

    /// Evenly spaced values in [start, stop).
    public static func arange(_ start: Double, _ stop: Double, step: Double = 1, dtype: DType = .int32) throws(MLXError) -> MLXArray {
        try produce("arange") { mlxb_arange(start, stop, step, dtype.bridge, $0) }
    }

    /// 0, 1, ..., stop - 1.
    public static func arange(_ stop: Double, dtype: DType = .int32) throws(MLXError) -> MLXArray {
        try arange(0, stop, dtype: dtype)
    }

    /// A lower-triangular matrix of ones (n x m) below diagonal `k`.
    public static func tri(_ n: Int, _ m: Int? = nil, k: Int = 0, dtype: DType = .float32) throws(MLXError) -> MLXArray {
        try produce("tri") { mlxb_tri(Int32(n), Int32(m ?? n), Int32(k), dtype.bridge, $0) }
    }
}
