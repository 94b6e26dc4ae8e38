internal import CMLXBridge

/// Random numbers from MLX's counter-based generator. Each function takes an optional `key`
/// (from `key(_:)` or `split`); without one it draws from the global generator, seeded by `seed`.
/// The same key always gives the same numbers.
public enum MLXRandom {
    /// Seeds the global generator.
    public static func seed(_ seed: UInt64) throws(MLXError) { try check(mlxb_random_seed(seed), "random.seed") }

    /// A key for `seed`.
    public static func key(_ seed: UInt64) throws(MLXError) -> MLXArray { try produce("random.key") { mlxb_random_key(seed, $0) } }

    /// Splits `key` into `count` independent keys.
    public static func split(_ key: MLXArray, count: Int = 2) throws(MLXError) -> [MLXArray] {
        let keys = try produce("random.split") { mlxb_random_split(key.handle, Int32(count), $0) }
        return try (0..<count).map { (i) throws(MLXError) in try keys[i] }
    }

    /// Normal samples with the given mean and standard deviation.
    public static func normal(_ shape: [Int], mean: Float = 0, std: Float = 1, dtype: DType = .float32, key: MLXArray? = nil) throws(MLXError) -> MLXArray {
        let dims = shape.map { Int32($0) }
        return try produce("random.normal") { mlxb_random_normal(dims, Int32(dims.count), dtype.bridge, mean, std, key?.handle, $0) }
    }

    /// Uniform samples in [low, high).
    public static func uniform(_ shape: [Int], low: Float = 0, high: Float = 1, dtype: DType = .float32, key: MLXArray? = nil) throws(MLXError) -> MLXArray {
        let dims = shape.map { Int32($0) }
        return try produce("random.uniform") { mlxb_random_uniform(dims, Int32(dims.count), dtype.bridge, low, high, key?.handle, $0) }
    }

    /// Samples indices from unnormalised log-probabilities along `axis`.
    public static func categorical(_ logits: MLXArray, axis: Int = -1, key: MLXArray? = nil) throws(MLXError) -> MLXArray {
        try produce("random.categorical") { mlxb_random_categorical(logits.handle, Int32(axis), key?.handle, $0) }
    }

    /// True with probability `p`.
    public static func bernoulli(_ p: Float, shape: [Int], key: MLXArray? = nil) throws(MLXError) -> MLXArray {
        let dims = shape.map { Int32($0) }
        let prob = MLXArray(p)
        return try produce("random.bernoulli") { mlxb_random_bernoulli(prob.handle, dims, Int32(dims.count), key?.handle, $0) }
    }

    /// Integers in [low, high).
    public static func randint(_ low: Int, _ high: Int, shape: [Int], dtype: DType = .int32, key: MLXArray? = nil) throws(MLXError) -> MLXArray {
        let dims = shape.map { Int32($0) }
        return try produce("random.randint") { mlxb_random_randint(Int32(low), Int32(high), dims, Int32(dims.count), dtype.bridge, key?.handle, $0) }
    }
}
