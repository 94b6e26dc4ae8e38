public import MLXEngine
public import MLXNN

/// A checkpoint's packed quantized matrix kept beside its float32 copy.
public struct PackedWeight: @unchecked Sendable {
    public var weight: MLXArray
    public var scales: MLXArray
    public var biases: MLXArray?
    public var groupSize: Int
    public var bits: Int

    /// x @ dequantize(W)^T through the few-rows kernel.
    func apply(_ x: MLXArray) throws -> MLXArray {
        try Fast.quantizedMatmulRows(x, weight: weight, scales: scales, biases: biases, groupSize: groupSize, bits: bits)
    }
}

/// Row counts at or below which the packed weights serve a matmul (`WeightPrecision.hybrid`).
///
/// Measured on this project's 2-core AVX-512 machine (`valuealign bench quantized`): the kernel reads
/// 4 or 8 bits per weight and beats float32 OpenBLAS up to about 16 rows (OpenBLAS packs the whole
/// weight matrix on every call, which dominates at few rows); from there float32 wins.
public enum HybridThreshold {
    public static let rows = 16
}

/// A linear layer with a float32 weight (the parameter; fast BLAS matmuls for prefill, big
/// batches and training) and the packed quantized weight it came from (decode steps: a fraction
/// of the memory traffic). Both describe the same matrix: the float weight is the exact
/// dequantization of the packed one.
public final class HybridLinear: Linear, @unchecked Sendable {
    public let packed: PackedWeight

    public init(weight: MLXArray, bias: MLXArray?, packed: PackedWeight) {
        self.packed = packed
        super.init(weight: weight, bias: bias)
    }

    public override func callAsFunction(_ x: MLXArray) throws -> MLXArray {
        guard x.size / max(inputDimensions, 1) <= HybridThreshold.rows else { return try super.callAsFunction(x) }
        let y = try packed.apply(x)
        if let bias { return try y + bias }
        return y
    }
}

/// An embedding table whose use as the tied output head reads the packed weights for few rows.
public final class HybridEmbedding: Embedding, @unchecked Sendable {
    public let packed: PackedWeight

    public init(weight: MLXArray, packed: PackedWeight) {
        self.packed = packed
        super.init(weight: weight)
    }

    public override func asLinear(_ x: MLXArray) throws -> MLXArray {
        guard x.size / max(dimensions, 1) <= HybridThreshold.rows else { return try super.asLinear(x) }
        return try packed.apply(x)
    }
}
