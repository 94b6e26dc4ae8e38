internal import CMLXBridge

/// One component of a subscript: `a[0]`, `a[1..<3]`, `a[.all, 2]`, `a[.stride(0, nil, 2)]`,
/// `a[.newAxis]`, `a[.ellipsis, 0]`.
public enum ArrayIndex: Sendable, ExpressibleByIntegerLiteral {
    /// One position; the axis is removed. Negative positions count from the end.
    case at(Int)
    /// Positions start..<stop by step (nil bounds mean the ends, as in Python).
    case stride(Int?, Int?, Int)
    /// The whole axis.
    case all
    /// Inserts an axis of size 1.
    case newAxis
    /// As many `.all` as needed to cover the remaining axes.
    case ellipsis

    public init(integerLiteral value: Int) { self = .at(value) }
}

/// Types usable as a subscript component.
public protocol ArrayIndexConvertible { var arrayIndex: ArrayIndex { get } }
extension ArrayIndex: ArrayIndexConvertible { public var arrayIndex: ArrayIndex { self } }
extension Int: ArrayIndexConvertible { public var arrayIndex: ArrayIndex { .at(self) } }
extension Range<Int>: ArrayIndexConvertible { public var arrayIndex: ArrayIndex { .stride(lowerBound, upperBound, 1) } }
extension ClosedRange<Int>: ArrayIndexConvertible { public var arrayIndex: ArrayIndex { .stride(lowerBound, upperBound + 1, 1) } }
extension PartialRangeFrom<Int>: ArrayIndexConvertible { public var arrayIndex: ArrayIndex { .stride(lowerBound, nil, 1) } }
extension PartialRangeUpTo<Int>: ArrayIndexConvertible { public var arrayIndex: ArrayIndex { .stride(nil, upperBound, 1) } }
extension PartialRangeThrough<Int>: ArrayIndexConvertible { public var arrayIndex: ArrayIndex { .stride(nil, upperBound + 1, 1) } }

extension MLXArray {
    /// Basic (view) indexing, as NumPy's: integers drop their axis, ranges keep it.
    public subscript(_ indices: any ArrayIndexConvertible...) -> MLXArray {
        get throws(MLXError) { try index(indices.map(\.arrayIndex)) }
    }

    /// Basic indexing with a list of components.
    public func index(_ components: [ArrayIndex]) throws(MLXError) -> MLXArray {
        let shape = self.shape
        let explicit = components.filter { if case .newAxis = $0 { return false }; if case .ellipsis = $0 { return false }; return true }.count
        let ellipses = components.filter { if case .ellipsis = $0 { return true }; return false }.count
        guard ellipses <= 1 else { throw .invalidArgument("an index can have at most one ellipsis") }
        guard explicit <= shape.count else {
            throw .invalidArgument("too many indices (\(explicit)) for an array of \(shape.count) dimensions")
        }
        var expanded: [ArrayIndex] = []
        for c in components {
            if case .ellipsis = c {
                expanded.append(contentsOf: Array(repeating: .all, count: shape.count - explicit))
            } else {
                expanded.append(c)
            }
        }
        while expanded.filter({ if case .newAxis = $0 { return false }; return true }).count < shape.count { expanded.append(.all) }

        var start: [Int32] = [], stop: [Int32] = [], strides: [Int32] = []
        var squeeze: [Int] = [], newAxes: [Int] = []
        var axis = 0, outAxis = 0
        for c in expanded {
            switch c {
            case .newAxis:
                newAxes.append(outAxis)
                outAxis += 1
                continue
            case .ellipsis:
                continue
            case .all:
                start.append(0); stop.append(Int32(shape[axis])); strides.append(1)
                outAxis += 1
            case let .at(i):
                let n = shape[axis]
                let j = i < 0 ? i + n : i
                guard j >= 0, j < n else { throw .invalidArgument("index \(i) is out of bounds for axis \(axis) of size \(n)") }
                start.append(Int32(j)); stop.append(Int32(j + 1)); strides.append(1)
                squeeze.append(axis)
            case let .stride(lo, hi, step):
                guard step != 0 else { throw .invalidArgument("slice step cannot be zero") }
                let n = shape[axis]
                func clamp(_ v: Int, _ lower: Int, _ upper: Int) -> Int { Swift.max(lower, Swift.min(upper, v)) }
                if step > 0 {
                    let s = clamp(lo.map { $0 < 0 ? $0 + n : $0 } ?? 0, 0, n)
                    let e = clamp(hi.map { $0 < 0 ? $0 + n : $0 } ?? n, 0, n)
                    start.append(Int32(s)); stop.append(Int32(Swift.max(e, s))); strides.append(Int32(step))
                } else {
                    let s = clamp(lo.map { $0 < 0 ? $0 + n : $0 } ?? n - 1, -1, n - 1)
                    let e = clamp(hi.map { $0 < 0 ? $0 + n : $0 } ?? -1, -1, n - 1)
                    // MLX reads a negative bound as counting from the end, so "before index 0" is -n-1.
                    start.append(Int32(s < 0 ? s - n : s)); stop.append(Int32(Swift.min(e, s) < 0 ? Swift.min(e, s) - n : Swift.min(e, s))); strides.append(Int32(step))
                }
                outAxis += 1
            }
            axis += 1
        }
        var result = try produce("slice") { mlxb_slice(handle, start, stop, strides, Int32(start.count), $0) }
        if !squeeze.isEmpty { result = try result.squeezed(axes: squeeze) }
        if !newAxes.isEmpty { result = try result.expandedDimensions(axes: newAxes) }
        return result
    }

    /// A copy of `self` with the region `start..<stop` (one entry per axis) replaced by `update`.
    public func updatingSlice(start: [Int], stop: [Int], with update: MLXArray) throws(MLXError) -> MLXArray {
        guard start.count == ndim, stop.count == ndim else {
            throw .invalidArgument("slice bounds must have one entry per axis (\(ndim))")
        }
        let s = start.map { Int32($0) }, e = stop.map { Int32($0) }, st = [Int32](repeating: 1, count: ndim)
        return try produce("slice_update") { mlxb_slice_update(handle, update.handle, s, e, st, Int32(ndim), $0) }
    }

    /// Gathers along `axis` (of the flattened array when nil): `take(indices, axis: 0)` picks rows.
    public func take(_ indices: MLXArray, axis: Int? = nil) throws(MLXError) -> MLXArray {
        try produce("take") { mlxb_take(handle, indices.handle, axis.map { Int32($0) } ?? Int32.min, $0) }
    }

    /// Gathers values along `axis` at `indices` (same number of dimensions as `self`).
    public func takeAlong(_ indices: MLXArray, axis: Int) throws(MLXError) -> MLXArray {
        try produce("take_along_axis") { mlxb_take_along_axis(handle, indices.handle, Int32(axis), $0) }
    }

    /// A copy with `values` written along `axis` at `indices`.
    public func putAlong(_ indices: MLXArray, values: MLXArray, axis: Int) throws(MLXError) -> MLXArray {
        try produce("put_along_axis") { mlxb_put_along_axis(handle, indices.handle, values.handle, Int32(axis), $0) }
    }

    public func sorted(axis: Int = -1) throws(MLXError) -> MLXArray { try produce("sort") { mlxb_sort(handle, Int32(axis), $0) } }
    public func argSort(axis: Int = -1) throws(MLXError) -> MLXArray { try produce("argsort") { mlxb_argsort(handle, Int32(axis), $0) } }
    /// Indices that put the `kth` smallest element in place, smaller ones before it.
    public func argPartition(kth: Int, axis: Int = -1) throws(MLXError) -> MLXArray {
        try produce("argpartition") { mlxb_argpartition(handle, Int32(kth), Int32(axis), $0) }
    }
    /// The `k` largest values along `axis` (unordered).
    public func topK(_ k: Int, axis: Int = -1) throws(MLXError) -> MLXArray { try produce("topk") { mlxb_topk(handle, Int32(k), Int32(axis), $0) } }
}
