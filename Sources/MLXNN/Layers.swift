public import MLXEngine
import Foundation

/// A module that maps [..., in] to [..., out] (plain, quantised or LoRA-adapted).
public protocol LinearLayer: Module {
    var inputDimensions: Int { get }
    var outputDimensions: Int { get }
    func callAsFunction(_ x: MLXArray) throws -> MLXArray
}

/// y = x W^T + b, with W of shape [out, in] (PyTorch's layout).
open class Linear: Module, LinearLayer, @unchecked Sendable {
    @Parameter public var weight: MLXArray
    @OptionalParameter public var bias: MLXArray?

    /// A layer with uniform(-1/sqrt(in), 1/sqrt(in)) weights, as PyTorch initialises them.
    public convenience init(_ inputDimensions: Int, _ outputDimensions: Int, bias: Bool = true, key: MLXArray? = nil) throws {
        let bound = Float(1 / Double(inputDimensions).squareRoot())
        let keys = try key.map { try MLXRandom.split($0) }
        let w = try MLXRandom.uniform([outputDimensions, inputDimensions], low: -bound, high: bound, key: keys?[0])
        let b = bias ? try MLXRandom.uniform([outputDimensions], low: -bound, high: bound, key: keys?[1]) : nil
        self.init(weight: w, bias: b)
    }

    /// A layer with the given weight [out, in] and optional bias [out].
    public init(weight: MLXArray, bias: MLXArray? = nil) {
        self.weight = weight
        self.bias = bias
        super.init()
    }

    public var inputDimensions: Int { weight.dim(1) }
    public var outputDimensions: Int { weight.dim(0) }
    /// Whether the weight is frozen (gets no gradient: a LoRA adapter's base layer).
    public var isWeightFrozen: Bool { _weight.box.frozen }

    open func callAsFunction(_ x: MLXArray) throws -> MLXArray {
        if let bias { return try addmm(bias, x, weight.T) }
        return try Fast.linear(x, weight)
    }
}

/// A linear layer with MLX affine-quantised weights (4 or 8 bits, groups of 32 or 64).
///
/// On this project's x86 CPUs, MLX's quantised matmul is slower than float32 through OpenBLAS
/// except for single-row inputs (see engine-notes); `dequantized()` gives the float layer.
open class QuantizedLinear: Module, LinearLayer, @unchecked Sendable {
    @Parameter public var weight: MLXArray
    @Parameter public var scales: MLXArray
    @OptionalParameter public var biases: MLXArray?
    @OptionalParameter public var bias: MLXArray?
    public let groupSize: Int
    public let bits: Int

    public init(weight: MLXArray, scales: MLXArray, biases: MLXArray?, bias: MLXArray? = nil, groupSize: Int, bits: Int) {
        self.weight = weight
        self.scales = scales
        self.biases = biases
        self.bias = bias
        self.groupSize = groupSize
        self.bits = bits
        super.init()
        freeze(keys: ["weight", "scales", "biases"])
    }

    /// Quantises a float layer.
    public convenience init(_ linear: Linear, groupSize: Int = 64, bits: Int = 4) throws {
        let q = try Fast.quantize(linear.weight, groupSize: groupSize, bits: bits)
        self.init(weight: q.weight, scales: q.scales, biases: q.biases, bias: linear.bias, groupSize: groupSize, bits: bits)
    }

    public var inputDimensions: Int { weight.dim(1) * 32 / bits }
    public var outputDimensions: Int { weight.dim(0) }

    open func callAsFunction(_ x: MLXArray) throws -> MLXArray {
        let y = try Fast.quantizedMatmul(x, weight: weight, scales: scales, biases: biases, transpose: true, groupSize: groupSize, bits: bits)
        if let bias { return try y + bias }
        return y
    }

    /// The equivalent float32 layer.
    public func dequantized() throws -> Linear {
        // In float32 throughout: MLX returns the scales' dtype, and float16 scales (GGUF's d and m)
        // would round every weight to float16 instead of giving ggml's exact d * q + m.
        let w = try Fast.dequantize(weight, scales: try scales.asType(.float32), biases: try biases?.asType(.float32),
                                    groupSize: groupSize, bits: bits)
        return Linear(weight: w, bias: bias)
    }
}

/// A lookup table from ids to vectors.
open class Embedding: Module, @unchecked Sendable {
    @Parameter public var weight: MLXArray

    /// A table of `count` vectors of `dimensions` with normal(0, std) entries (PyTorch's
    /// default is std 1).
    public convenience init(_ count: Int, _ dimensions: Int, std: Float = 1, key: MLXArray? = nil) throws {
        self.init(weight: try MLXRandom.normal([count, dimensions], std: std, key: key))
    }

    public init(weight: MLXArray) {
        self.weight = weight
        super.init()
    }

    /// Whether the table is frozen (gets no gradient).
    public var isWeightFrozen: Bool { _weight.box.frozen }

    public var count: Int { weight.dim(0) }
    public var dimensions: Int { weight.dim(1) }

    /// The vectors of `ids` (any shape of integers), giving [..., dimensions].
    open func callAsFunction(_ ids: MLXArray) throws -> MLXArray { try weight.take(ids, axis: 0) }

    /// Uses the table as an output projection (tied embeddings): x @ W^T.
    open func asLinear(_ x: MLXArray) throws -> MLXArray { try Fast.linear(x, weight) }
}

/// Root-mean-square normalisation over the last axis, with a learned scale.
open class RMSNorm: Module, @unchecked Sendable {
    @Parameter public var weight: MLXArray
    public let eps: Float

    public convenience init(_ dimensions: Int, eps: Float = 1e-5) throws {
        self.init(weight: try MLXArray.ones([dimensions]), eps: eps)
    }

    public init(weight: MLXArray, eps: Float) {
        self.weight = weight
        self.eps = eps
        super.init()
    }

    open func callAsFunction(_ x: MLXArray) throws -> MLXArray { try Fast.rmsNorm(x, weight: weight, eps: eps) }
}

/// Zeroes each element with probability `p` during training and rescales the rest.
open class Dropout: Module, @unchecked Sendable {
    public let p: Float
    public init(_ p: Float) {
        self.p = p
        super.init()
    }

    open func callAsFunction(_ x: MLXArray, key: MLXArray? = nil) throws -> MLXArray {
        guard training, p > 0 else { return x }
        let keep = try MLXRandom.bernoulli(1 - p, shape: x.shape, key: key)
        return try which(keep, x / (1 - p), MLXArray.zeros(like: x))
    }
}
