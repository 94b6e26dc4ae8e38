internal import CMLXBridge

extension MLXArray {
    /// The same elements in a new shape; one dimension may be -1.
    public func reshaped(_ shape: [Int]) throws(MLXError) -> MLXArray {
        let dims = shape.map { Int32($0) }
        return try produce("reshape") { out in dims.withUnsafeBufferPointer { mlxb_reshape(handle, $0.baseAddress, Int32(dims.count), out) } }
    }
    public func reshaped(_ shape: Int...) throws(MLXError) -> MLXArray { try reshaped(shape) }

    /// Permutes the axes (reverses them when `axes` is nil).
    public func transposed(_ axes: [Int]? = nil) throws(MLXError) -> MLXArray {
        let ax = (axes ?? []).map { Int32($0) }
        return try produce("transpose") { out in
            ax.withUnsafeBufferPointer { mlxb_transpose(handle, $0.baseAddress, axes == nil ? -1 : Int32(ax.count), out) }
        }
    }
    public func transposed(_ axes: Int...) throws(MLXError) -> MLXArray { try transposed(axes) }

    /// The transpose (all axes reversed).
    public var T: MLXArray { get throws(MLXError) { try transposed() } }

    public func swappedAxes(_ a: Int, _ b: Int) throws(MLXError) -> MLXArray {
        try produce("swapaxes") { mlxb_swapaxes(handle, Int32(a), Int32(b), $0) }
    }

    public func expandedDimensions(axes: [Int]) throws(MLXError) -> MLXArray {
        let ax = axes.map { Int32($0) }
        return try produce("expand_dims") { out in ax.withUnsafeBufferPointer { mlxb_expand_dims(handle, $0.baseAddress, Int32(ax.count), out) } }
    }
    public func expandedDimensions(axis: Int) throws(MLXError) -> MLXArray { try expandedDimensions(axes: [axis]) }

    /// Removes size-1 axes (all of them when `axes` is nil).
    public func squeezed(axes: [Int]? = nil) throws(MLXError) -> MLXArray {
        let ax = (axes ?? []).map { Int32($0) }
        return try produce("squeeze") { out in
            ax.withUnsafeBufferPointer { mlxb_squeeze(handle, $0.baseAddress, axes == nil ? -1 : Int32(ax.count), out) }
        }
    }
    public func squeezed(axis: Int) throws(MLXError) -> MLXArray { try squeezed(axes: [axis]) }

    public func broadcast(to shape: [Int]) throws(MLXError) -> MLXArray {
        let dims = shape.map { Int32($0) }
        return try produce("broadcast_to") { out in dims.withUnsafeBufferPointer { mlxb_broadcast_to(handle, $0.baseAddress, Int32(dims.count), out) } }
    }

    /// Flattens axes `start...end` into one.
    public func flattened(start: Int = 0, end: Int = -1) throws(MLXError) -> MLXArray {
        try produce("flatten") { mlxb_flatten(handle, Int32(start), Int32(end), $0) }
    }

    /// Repeats each element `count` times along `axis`.
    public func repeated(_ count: Int, axis: Int) throws(MLXError) -> MLXArray {
        try produce("repeat") { mlxb_repeat(handle, Int32(count), Int32(axis), $0) }
    }

    /// Splits into `parts` equal pieces along `axis`.
    public func split(parts: Int, axis: Int = 0) throws(MLXError) -> [MLXArray] {
        try produceList("split") { mlxb_split_equal(handle, Int32(parts), Int32(axis), $0) }
    }

    /// Splits before each of `indices` along `axis`.
    public func split(indices: [Int], axis: Int = 0) throws(MLXError) -> [MLXArray] {
        let idx = indices.map { Int32($0) }
        return try produceList("split") { out in idx.withUnsafeBufferPointer { mlxb_split(handle, $0.baseAddress, Int32(idx.count), Int32(axis), out) } }
    }

    /// Pads every axis with `low[i]` values before and `high[i]` after.
    public func padded(low: [Int], high: [Int], value: Float = 0) throws(MLXError) -> MLXArray {
        guard low.count == ndim, high.count == ndim else {
            throw .invalidArgument("pad widths must have one entry per axis (\(ndim)), got \(low.count) and \(high.count)")
        }
        let lo = low.map { Int32($0) }, hi = high.map { Int32($0) }
        let fill = try scalar(value, like: self)
        return try produce("pad") { mlxb_pad(handle, lo, hi, Int32(lo.count), fill.handle, $0) }
    }

    /// The lower triangle (elements above diagonal `k` zeroed).
    public func tril(_ k: Int = 0) throws(MLXError) -> MLXArray { try produce("tril") { mlxb_tril(handle, Int32(k), $0) } }
    /// The upper triangle.
    public func triu(_ k: Int = 0) throws(MLXError) -> MLXArray { try produce("triu") { mlxb_triu(handle, Int32(k), $0) } }

    /// A row-contiguous copy when the array is a strided view.
    public func contiguous() throws(MLXError) -> MLXArray { try produce("contiguous") { mlxb_contiguous(handle, $0) } }
}

/// Joins arrays along an existing axis.
public func concatenated(_ arrays: [MLXArray], axis: Int = 0) throws(MLXError) -> MLXArray {
    try withHandles(arrays) { (handles) throws(MLXError) in
        try produce("concatenate") { mlxb_concatenate(handles, arrays.count, Int32(axis), $0) }
    }
}

/// Joins arrays along a new axis.
public func stacked(_ arrays: [MLXArray], axis: Int = 0) throws(MLXError) -> MLXArray {
    try withHandles(arrays) { (handles) throws(MLXError) in
        try produce("stack") { mlxb_stack(handles, arrays.count, Int32(axis), $0) }
    }
}
