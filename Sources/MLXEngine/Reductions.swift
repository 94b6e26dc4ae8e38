internal import CMLXBridge

extension MLXArray {
    func reduce(_ op: mlxb_reduce_op, _ name: String, axes: [Int]?, keepDims: Bool) throws(MLXError) -> MLXArray {
        let ax = (axes ?? []).map { Int32($0) }
        return try produce(name) { out in
            ax.withUnsafeBufferPointer { mlxb_reduce(op, handle, $0.baseAddress, axes == nil ? -1 : Int32(ax.count), keepDims, out) }
        }
    }

    /// The sum over `axes` (all axes when nil).
    public func sum(axes: [Int]? = nil, keepDims: Bool = false) throws(MLXError) -> MLXArray { try reduce(MLXB_SUM, "sum", axes: axes, keepDims: keepDims) }
    public func sum(axis: Int, keepDims: Bool = false) throws(MLXError) -> MLXArray { try sum(axes: [axis], keepDims: keepDims) }
    /// The mean over `axes` (all axes when nil).
    public func mean(axes: [Int]? = nil, keepDims: Bool = false) throws(MLXError) -> MLXArray { try reduce(MLXB_MEAN, "mean", axes: axes, keepDims: keepDims) }
    public func mean(axis: Int, keepDims: Bool = false) throws(MLXError) -> MLXArray { try mean(axes: [axis], keepDims: keepDims) }
    /// The (population) variance over `axes`.
    public func variance(axes: [Int]? = nil, keepDims: Bool = false) throws(MLXError) -> MLXArray { try reduce(MLXB_VAR, "var", axes: axes, keepDims: keepDims) }
    public func max(axes: [Int]? = nil, keepDims: Bool = false) throws(MLXError) -> MLXArray { try reduce(MLXB_MAX, "max", axes: axes, keepDims: keepDims) }
    public func max(axis: Int, keepDims: Bool = false) throws(MLXError) -> MLXArray { try max(axes: [axis], keepDims: keepDims) }
    public func min(axes: [Int]? = nil, keepDims: Bool = false) throws(MLXError) -> MLXArray { try reduce(MLXB_MIN, "min", axes: axes, keepDims: keepDims) }
    public func min(axis: Int, keepDims: Bool = false) throws(MLXError) -> MLXArray { try min(axes: [axis], keepDims: keepDims) }
    public func prod(axes: [Int]? = nil, keepDims: Bool = false) throws(MLXError) -> MLXArray { try reduce(MLXB_PROD, "prod", axes: axes, keepDims: keepDims) }
    public func all(axes: [Int]? = nil, keepDims: Bool = false) throws(MLXError) -> MLXArray { try reduce(MLXB_ALL, "all", axes: axes, keepDims: keepDims) }
    public func any(axes: [Int]? = nil, keepDims: Bool = false) throws(MLXError) -> MLXArray { try reduce(MLXB_ANY, "any", axes: axes, keepDims: keepDims) }
    /// log(sum(exp(x))) over `axes`, computed stably.
    public func logSumExp(axes: [Int]? = nil, keepDims: Bool = false) throws(MLXError) -> MLXArray { try reduce(MLXB_LOGSUMEXP, "logsumexp", axes: axes, keepDims: keepDims) }
    public func logSumExp(axis: Int, keepDims: Bool = false) throws(MLXError) -> MLXArray { try logSumExp(axes: [axis], keepDims: keepDims) }
    /// The index of the largest element along `axis` (of the flattened array when nil).
    public func argMax(axis: Int? = nil, keepDims: Bool = false) throws(MLXError) -> MLXArray { try reduce(MLXB_ARGMAX, "argmax", axes: axis.map { [$0] }, keepDims: keepDims) }
    public func argMin(axis: Int? = nil, keepDims: Bool = false) throws(MLXError) -> MLXArray { try reduce(MLXB_ARGMIN, "argmin", axes: axis.map { [$0] }, keepDims: keepDims) }

    /// Softmax over `axes` (the last axis by default). `precise` accumulates in float32 for
    /// half-precision inputs.
    public func softmax(axes: [Int] = [-1], precise: Bool = false) throws(MLXError) -> MLXArray {
        let ax = axes.map { Int32($0) }
        return try produce("softmax") { out in ax.withUnsafeBufferPointer { mlxb_softmax(handle, $0.baseAddress, Int32(ax.count), precise, out) } }
    }
    public func softmax(axis: Int) throws(MLXError) -> MLXArray { try softmax(axes: [axis]) }

    /// log(softmax(x)) over `axis`, computed as x - logsumexp(x).
    public func logSoftmax(axis: Int = -1) throws(MLXError) -> MLXArray { try self - logSumExp(axis: axis, keepDims: true) }

    /// Cumulative sum along `axis`.
    public func cumsum(axis: Int, reverse: Bool = false, inclusive: Bool = true) throws(MLXError) -> MLXArray {
        try produce("cumsum") { mlxb_cumsum(handle, Int32(axis), reverse, inclusive, $0) }
    }
}
