public import MLXEngine
public import MLXNN

/// How to hold quantized checkpoint weights in memory.
public enum WeightPrecision: String, Sendable, Codable, CaseIterable {
    /// float32 copies for many rows plus the packed weights for decode steps (the default:
    /// fastest everywhere, ~4.5-5 bytes per weight).
    case hybrid
    /// Dequantize every matrix to float32 (fast batched matmuls through BLAS; ~4 bytes/weight).
    case float32
    /// Keep quantized matrices quantized (less memory; MLX's quantized matmul).
    case quantized
}

/// Named tensors of a checkpoint (Hugging Face names) handed out to an architecture as layers,
/// with shape checks that name the tensor at fault. Tracks which tensors were used so the loader
/// can report leftovers.
public struct WeightSource {
    public private(set) var tensors: [String: MLXArray]
    public let precision: WeightPrecision
    /// Where the tensors came from, for error messages.
    public let source: String
    private(set) var used: Set<String> = []

    public init(tensors: [String: MLXArray], precision: WeightPrecision = .hybrid, source: String) {
        self.tensors = tensors
        self.precision = precision
        self.source = source
    }

    /// Tensors no layer asked for.
    public var unused: [String] { tensors.keys.filter { !used.contains($0) }.sorted() }

    mutating func take(_ name: String) throws(LanguageModelError) -> MLXArray {
        guard let t = tensors[name] else { throw .tensor(name: name, message: "missing from \(source)") }
        used.insert(name)
        return t
    }

    mutating func takeIfPresent(_ name: String) -> MLXArray? {
        guard let t = tensors[name] else { return nil }
        used.insert(name)
        return t
    }

    func expect(_ name: String, _ array: MLXArray, shape: [Int]) throws(LanguageModelError) {
        guard array.shape == shape else {
            throw .tensor(name: name, message: "expected shape \(shape), found \(array.shape) in \(source)")
        }
    }

    func float32(_ a: MLXArray) throws -> MLXArray { a.dtype == .float32 ? a : try a.asType(.float32) }

    /// A 1-D float vector such as a norm's weight.
    public mutating func vector(_ name: String, count: Int) throws -> MLXArray {
        let t = try take(name)
        try expect(name, t, shape: [count])
        return try float32(t)
    }

    /// The quantization of `prefix` if it has `.scales`: bits and group size inferred from shapes.
    mutating func quantized(_ prefix: String, rows: Int, columns: Int) throws -> QuantizedLinear? {
        guard let scales = takeIfPresent(prefix + ".scales") else { return nil }
        let weight = try take(prefix + ".weight")
        let biases = takeIfPresent(prefix + ".biases")
        guard weight.dtype == .uint32, weight.ndim == 2, weight.dim(0) == rows, scales.ndim == 2, scales.dim(0) == rows,
              scales.dim(1) > 0, columns % scales.dim(1) == 0, (weight.dim(1) * 32) % columns == 0 else {
            throw LanguageModelError.tensor(
                name: prefix + ".weight",
                message: "quantized weight \(weight.shape) (\(weight.dtype)) with scales \(scales.shape) does not fit a [\(rows), \(columns)] matrix in \(source)")
        }
        let bits = weight.dim(1) * 32 / columns
        let group = columns / scales.dim(1)
        guard [2, 3, 4, 6, 8].contains(bits), [32, 64, 128].contains(group) else {
            throw LanguageModelError.tensor(name: prefix + ".weight", message: "unsupported quantization: \(bits) bits, group size \(group)")
        }
        if let biases { try expect(prefix + ".biases", biases, shape: scales.shape) }
        return QuantizedLinear(weight: weight, scales: scales, biases: biases, groupSize: group, bits: bits)
    }

    /// A linear layer [output, input], quantized or not, with an optional bias.
    public mutating func linear(_ prefix: String, input: Int, output: Int, bias: Bool) throws -> any LinearLayer {
        let b = bias ? try vector(prefix + ".bias", count: output) : nil
        if let q = try quantized(prefix, rows: output, columns: input) {
            let layer = QuantizedLinear(weight: q.weight, scales: q.scales, biases: q.biases, bias: b, groupSize: q.groupSize, bits: q.bits)
            switch precision {
            case .quantized: return layer
            case .float32: return try layer.dequantized()
            case .hybrid:
                return HybridLinear(weight: try layer.dequantized().weight, bias: b, packed: PackedWeight(
                    weight: q.weight, scales: q.scales, biases: q.biases, groupSize: q.groupSize, bits: q.bits))
            }
        }
        let w = try take(prefix + ".weight")
        try expect(prefix + ".weight", w, shape: [output, input])
        return Linear(weight: try float32(w), bias: b)
    }

    /// An embedding table [count, dimensions] (always float32: lookups need plain rows).
    public mutating func embedding(_ prefix: String, count: Int, dimensions: Int) throws -> Embedding {
        if let q = try quantized(prefix, rows: count, columns: dimensions) {
            let table = try q.dequantized().weight
            guard precision != .float32 else { return Embedding(weight: table) }
            return HybridEmbedding(weight: table, packed: PackedWeight(weight: q.weight, scales: q.scales, biases: q.biases, groupSize: q.groupSize, bits: q.bits))
        }
        let w = try take(prefix + ".weight")
        try expect(prefix + ".weight", w, shape: [count, dimensions])
        return Embedding(weight: try float32(w))
    }
}
