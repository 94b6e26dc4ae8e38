public import LanguageModels
public import MLXEngine

/// Pooled hidden states of a base model for encoded pairs: the evaluator's features.
///
/// A layer's states are RMS-normalised per token with the model's final norm before pooling, so
/// a middle layer read from the full model equals the output of a model cut after that layer
/// (whose last step is that norm). Pairs are run longest first in batches of similar length, so
/// padding stays small; right padding never changes a real token's state in a causal model.
public struct FeatureExtractor {
    public let model: any CausalLanguageModel
    /// Hugging Face hidden-state indices (0 = embeddings, `layerCount` = final normed states).
    public let layers: [Int]
    public let poolings: [HiddenPooling]
    public let batchSize: Int
    public let padTokenId: Int
    /// Whether a middle layer's states are RMS-normalised with the final norm before pooling (the
    /// evaluator's features); false: the raw residual stream (steering vectors are added to it).
    public let normalizesStates: Bool
    let normWeight: MLXArray?

    /// - Throws: `EvaluatorError.invalidParameter` for a layer outside the model, an empty list,
    ///   or a non-positive batch size.
    public init(model: any CausalLanguageModel, layers: [Int], poolings: [HiddenPooling], batchSize: Int = 16, padTokenId: Int,
                normalizesStates: Bool = true) throws(EvaluatorError) {
        let count = model.configuration.layerCount
        guard !layers.isEmpty, !poolings.isEmpty else { throw .invalidParameter(field: "layers", message: "need at least one layer and one pooling") }
        for l in layers where !(0...count).contains(l) {
            throw .invalidParameter(field: "layers", message: "layer \(l) is outside 0...\(count) of this model")
        }
        guard batchSize >= 1 else { throw .invalidParameter(field: "batchSize", message: "must be at least 1, got \(batchSize)") }
        self.model = model
        self.layers = layers
        self.poolings = poolings
        self.batchSize = batchSize
        self.padTokenId = padTokenId
        self.normalizesStates = normalizesStates
        normWeight = model.parameters()["model.norm.weight"]
    }

    /// Features per pair: `layers.count * poolings.count * hidden` floats, layer-major
    /// ([layer][pooling][hidden]).
    public var width: Int { layers.count * poolings.count * model.configuration.hiddenSize }

    /// Extracts features, flat [pairs.count * width]. `progress(done, tokens)` is called after
    /// each batch; returning false stops with `EvaluatorError.cancelled`.
    public func extract(_ pairs: [PairEncoding.Encoded], progress: ((Int, Int) -> Bool)? = nil) throws -> [Float] {
        var result = [Float](repeating: 0, count: pairs.count * width)
        // Longest first: the largest batch runs first, so memory peaks early and predictably.
        let order = pairs.indices.sorted { pairs[$0].count != pairs[$1].count ? pairs[$0].count > pairs[$1].count : $0 < $1 }
        var done = 0, tokens = 0
        for start in stride(from: 0, to: order.count, by: batchSize) {
            let rows = Array(order[start..<min(start + batchSize, order.count)])
            let features = try batchFeatures(rows.map { pairs[$0] })
            for (k, row) in rows.enumerated() {
                result.replaceSubrange(row * width..<(row + 1) * width, with: features[k * width..<(k + 1) * width])
            }
            done += rows.count
            tokens += rows.reduce(0) { $0 + pairs[$1].count }
            if let progress, !progress(done, tokens) { throw EvaluatorError.cancelled }
        }
        return result
    }

    /// Features of one batch as a flat array [rows * width].
    func batchFeatures(_ rows: [PairEncoding.Encoded]) throws -> [Float] {
        let batch = try TokenBatch(prompts: rows.map(\.prompt), responses: rows.map(\.response), padTokenId: padTokenId)
        let length = batch.tokens.dim(1)
        let layerCount = model.configuration.layerCount
        let output = try model.forward(batch.tokens, cache: nil, keyPadding: nil, captureLayers: Set(layers.filter { $0 < layerCount }))
        var weights: [Float] = []
        weights.reserveCapacity(rows.count * poolings.count * length)
        for row in rows {
            let p = row.prompt.count, total = row.count
            for pooling in poolings {
                for t in 0..<length {
                    switch pooling {
                    case .meanResponse: weights.append(t >= p && t < total ? 1 / Float(total - p) : 0)
                    case .mean: weights.append(t < total ? 1 / Float(total) : 0)
                    case .last: weights.append(t == total - 1 ? 1 : 0)
                    }
                }
            }
        }
        let w = try MLXArray(weights, shape: [rows.count, poolings.count, length])
        var pooled: [MLXArray] = []
        for layer in layers {
            var h: MLXArray
            if layer == layerCount {
                h = output.hidden
            } else {
                guard let captured = output.captured[layer] else {
                    throw EvaluatorError.invalidParameter(field: "layers", message: "the model did not return layer \(layer)")
                }
                h = normalizesStates ? try Fast.rmsNorm(captured, weight: normWeight, eps: model.configuration.rmsNormEps) : captured
            }
            pooled.append(try w.matmul(h))  // [B, P, H]
        }
        let stackedFeatures = try stacked(pooled, axis: 1).asType(.float32)  // [B, L, P, H]
        try eval(stackedFeatures)
        return try stackedFeatures.asArray(Float.self)
    }
}
