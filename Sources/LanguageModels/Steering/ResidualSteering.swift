public import MLXEngine

/// Vectors a model adds to its residual stream after chosen decoder blocks: activation steering
/// (CAA, ActAdd, repeng, llama.cpp's control vectors), applied at every position of every forward
/// pass.
///
/// Layers are numbered as Hugging Face's `hidden_states` and `valuealign probe` number them:
/// layer L is the stream after L decoder blocks, so a vector at layer L is added to the output of
/// block L-1 (0-based). llama.cpp's control-vector files call that tensor `direction.{L-1}`.
/// Layer 0 (the embeddings) and the final layer (read only through the final norm) are not
/// steerable, so L lies in 1..<layerCount.
public struct ResidualSteering: @unchecked Sendable {
    /// Layer -> vector [hidden], float32, multiplier already applied.
    public let additions: [Int: MLXArray]

    /// - Throws: `LanguageModelError.invalidParameter` for a layer outside 1..<layerCount or a
    ///   vector whose shape is not [hiddenSize].
    public init(additions: [Int: MLXArray], configuration c: ModelConfiguration) throws(LanguageModelError) {
        for (layer, vector) in additions {
            guard (1..<c.layerCount).contains(layer) else {
                throw .invalidParameter(field: "steering", message: "layer \(layer) is outside 1...\(c.layerCount - 1), the layers this model can steer")
            }
            guard vector.shape == [c.hiddenSize] else {
                let size = vector.ndim == 1 ? "width \(vector.dim(0))" : "shape \(vector.shape)"
                throw .invalidParameter(field: "steering", message: "the vector at layer \(layer) has \(size), the model's hidden size is \(c.hiddenSize)")
            }
        }
        self.additions = additions
    }

    /// The steered layers, in order.
    public var layers: [Int] { additions.keys.sorted() }

    /// `h` plus the vector of layer `l` (h unchanged when that layer is not steered).
    func apply(_ h: MLXArray, afterBlocks l: Int) throws -> MLXArray {
        guard let v = additions[l] else { return h }
        return try h + (v.dtype == h.dtype ? v : v.asType(h.dtype))
    }

    /// The sum of several steerings (vectors at the same layer add up, as llama.cpp adds the
    /// control vectors it is given); nil for none.
    public static func sum(_ parts: [ResidualSteering], configuration: ModelConfiguration) throws -> ResidualSteering? {
        guard let first = parts.first else { return nil }
        var additions = first.additions
        for part in parts.dropFirst() {
            for (layer, v) in part.additions {
                additions[layer] = try additions[layer].map { try $0 + v } ?? v
            }
        }
        try eval(Array(additions.values))
        return try ResidualSteering(additions: additions, configuration: configuration)
    }
}
