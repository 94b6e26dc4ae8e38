public import MLXEngine

/// One layer's keys and values for incremental decoding.
///
/// Storage is preallocated in steps of `step` positions, [B, kvHeads, capacity, headDim], and
/// written in place, so a decode step copies one position per sequence instead of the whole
/// history. Not thread-safe: a cache belongs to one generation run.
public final class KVCache {
    /// Growth step in positions (as in mlx-lm).
    public static let step = 256

    public private(set) var keys: MLXArray?
    public private(set) var values: MLXArray?
    /// Positions written so far.
    public private(set) var offset = 0
    /// false: `append` concatenates, so the buffers hold exactly `offset` positions (a training
    /// pass over a shared prompt: one op per append, and its gradient is a plain split).
    public let preallocates: Bool

    public init(preallocate: Bool = true) {
        preallocates = preallocate
    }

    /// Allocated positions.
    public var capacity: Int { keys?.dim(2) ?? 0 }

    /// The capacity `reserve` grows to for `positions` positions in all.
    public static func capacity(for positions: Int) -> Int { ((positions + step - 1) / step) * step }

    /// Grows the storage (in steps of `step`) to hold `positions` positions in all; new storage
    /// is shaped [B, kvHeads, length, D] as `keyShape`/`valueShape` give it, apart from its length.
    public func reserve(_ positions: Int, keyShape: [Int], valueShape: [Int], dtype: DType) throws {
        guard positions > capacity else { return }
        let grown = Self.capacity(for: positions)
        var kShape = keyShape, vShape = valueShape
        kShape[2] = grown - capacity
        vShape[2] = grown - capacity
        let kFill = try MLXArray.zeros(kShape, dtype: dtype), vFill = try MLXArray.zeros(vShape, dtype: dtype)
        if let oldK = keys, let oldV = values {
            keys = try concatenated([oldK, kFill], axis: 2)
            values = try concatenated([oldV, vFill], axis: 2)
        } else {
            keys = kFill
            values = vFill
        }
    }

    /// Takes over buffers that already hold `length` more positions (written in place by a fused
    /// decode step); `keys` and `values` keep their capacity.
    public func advance(keys k: MLXArray, values v: MLXArray, by length: Int) throws {
        guard k.shape == keys?.shape, v.shape == values?.shape, offset + length <= capacity else {
            throw MLXError.invalidArgument("KV cache: replacement buffers \(k.shape) do not match \(keys?.shape ?? []) or overflow the capacity")
        }
        keys = k
        values = v
        offset += length
    }

    /// Appends k, v ([B, kvHeads, L, D]) and returns the whole buffers (valid up to `offset`).
    public func append(keys k: MLXArray, values v: MLXArray) throws -> (keys: MLXArray, values: MLXArray) {
        let length = k.dim(2)
        if !preallocates {
            let newKeys = try keys.map { try concatenated([$0, k], axis: 2) } ?? k
            let newValues = try values.map { try concatenated([$0, v], axis: 2) } ?? v
            keys = newKeys
            values = newValues
            offset += length
            return (newKeys, newValues)
        }
        let needed = offset + length
        try reserve(needed, keyShape: k.shape, valueShape: v.shape, dtype: k.dtype)
        guard let kb = keys, let vb = values else { throw MLXError.invalidArgument("KV cache has no storage") }
        var start = [0, 0, offset, 0], stop = kb.shape
        stop[2] = needed
        keys = try kb.updatingSlice(start: start, stop: stop, with: k)
        stop = vb.shape
        stop[2] = needed
        start = [0, 0, offset, 0]
        values = try vb.updatingSlice(start: start, stop: stop, with: v)
        offset = needed
        return (keys!, values!)
    }

    /// Keeps only the batch rows in `indices` (sequences that are still generating).
    public func select(batchIndices indices: MLXArray) throws {
        keys = try keys?.take(indices, axis: 0)
        values = try values?.take(indices, axis: 0)
    }

    /// The arrays to evaluate so that a step's writes are materialised.
    public var state: [MLXArray] { [keys, values].compactMap { $0 } }
}
