public import MLXEngine
public import MLXNN
import ValueSpace

/// The trainable part of the evaluator: per-value 3-way classifiers (opposed / no connection /
/// supported) over standardised features. The same shape with one group is the refusal head
/// (refusal / partial / compliance; `RefusalHead`).
///
/// Features are standardised with the training set's mean and scale (stored, frozen), then go
/// through an optional hidden layer (GELU) and one linear map to 10 x 3 logits. With no hidden
/// layer this is ten multinomial logistic regressions sharing nothing but the input.
public final class ValueHeads: Module, @unchecked Sendable {
    @Parameter public var featureMean: MLXArray
    @Parameter public var featureScale: MLXArray
    /// Per value and class offsets added to the logits [10, 3] (frozen): decision thresholds set
    /// after training by `OffsetCalibration`; zero for fresh heads.
    @Parameter public var classOffsets: MLXArray
    /// [hidden (optional), output]; the output has groups * 3 units, group-major (group i:
    /// 3i..3i+2). The value heads have ten groups, one per value.
    public var layers: [Linear]
    /// 3-way classifiers in the output (10 for the value heads).
    public let groups: Int

    public static let valueCount = SchwartzValue.allCases.count
    public static let classCount = 3

    /// Fresh heads with PyTorch-style uniform initialisation from `seed`.
    public init(inputWidth: Int, hiddenUnits: Int, groups: Int = ValueHeads.valueCount, seed: UInt64) throws {
        guard groups >= 1 else { throw EvaluatorError.invalidParameter(field: "groups", message: "must be at least 1, got \(groups)") }
        self.groups = groups
        let keys = try MLXRandom.split(MLXRandom.key(seed))
        _featureMean = Parameter(wrappedValue: try MLXArray.zeros([inputWidth]), key: "feature_mean")
        _featureScale = Parameter(wrappedValue: try MLXArray.ones([inputWidth]), key: "feature_scale")
        _classOffsets = Parameter(wrappedValue: try MLXArray.zeros([groups, Self.classCount]), key: "class_offsets")
        let outputs = groups * Self.classCount
        if hiddenUnits > 0 {
            layers = [try Linear(inputWidth, hiddenUnits, key: keys[0]), try Linear(hiddenUnits, outputs, key: keys[1])]
        } else {
            layers = [try Linear(inputWidth, outputs, key: keys[0])]
        }
        super.init()
        freeze(keys: ["feature_mean", "feature_scale", "class_offsets"])
        // Evaluated now: MLX ties a lazy array to the thread that made it, and heads are often
        // made on one thread and run on the evaluator's queue.
        try eval(Array(parameters().values))
    }

    /// Heads shaped like a saved set, to be filled by `load(safetensors:)`.
    public convenience init(shapedAs arrays: [String: MLXArray]) throws(EvaluatorError) {
        guard let mean = arrays["feature_mean"], mean.ndim == 1 else {
            throw .invalidWeights(path: "", message: "no 1-D tensor 'feature_mean'")
        }
        let hidden = arrays["layers.1.weight"] != nil ? (arrays["layers.0.weight"]?.dim(0) ?? 0) : 0
        let groups = arrays["class_offsets"]?.dim(0) ?? Self.valueCount
        do { try self.init(inputWidth: mean.dim(0), hiddenUnits: hidden, groups: groups, seed: 0) } catch {
            throw .invalidWeights(path: "", message: "\(error)")
        }
    }

    public var inputWidth: Int { featureMean.dim(0) }
    public var hiddenUnits: Int { layers.count > 1 ? layers[0].outputDimensions : 0 }

    /// Sets the standardisation from training features [N, width] (scale = 1 / (std + 1e-6)).
    public func standardize(from features: MLXArray) throws {
        let mean = try features.mean(axis: 0)
        let std = try features.variance(axes: [0]).sqrt()
        let scale = try (std + 1e-6).reciprocal()
        try eval(mean, scale)
        try update(parameters: ["feature_mean": mean, "feature_scale": scale])
    }

    /// Logits [N, groups, 3] for features [N, width].
    public func callAsFunction(_ features: MLXArray) throws -> MLXArray {
        guard features.ndim == 2, features.dim(1) == inputWidth else {
            throw EvaluatorError.invalidInput("features of shape \(features.shape), expected [N, \(inputWidth)]")
        }
        var x = try (features - featureMean) * featureScale
        for (i, layer) in layers.enumerated() {
            x = try layer(x)
            if i < layers.count - 1 { x = try x.gelu() }
        }
        return try x.reshaped(features.dim(0), groups, Self.classCount) + classOffsets
    }

    /// Sets the decision offsets ([groups * 3], group-major).
    public func setClassOffsets(_ offsets: [Float]) throws {
        guard offsets.count == groups * Self.classCount else {
            throw EvaluatorError.invalidParameter(field: "classOffsets", message: "need \(groups * Self.classCount) offsets, got \(offsets.count)")
        }
        let array = try MLXArray(offsets, shape: [groups, Self.classCount])
        try eval(array)
        try update(parameters: ["class_offsets": array])
    }
}
