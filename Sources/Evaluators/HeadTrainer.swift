import ValueAlignCore
import Foundation
public import MLXEngine
import MLXNN

/// Examples for the heads: features with, per group (value), a target distribution over its three
/// classes (opposed, no connection, supported) and a weight (0 = no label for that group).
public struct HeadTrainingSet: Sendable {
    /// [count * width], row-major.
    public var features: [Float]
    public var width: Int
    /// 3-way classifiers per example: 10 for the value heads, 1 for the refusal head.
    public var groups: Int
    /// [count * groups * 3].
    public var targets: [Float]
    /// [count * groups].
    public var weights: [Float]

    public var count: Int { width == 0 ? 0 : features.count / width }

    public init(width: Int, groups: Int = ValueHeads.valueCount) {
        self.width = width
        self.groups = groups
        features = []
        targets = []
        weights = []
    }

    /// Adds one example. `targets` holds one distribution per group (3 numbers each), `weights`
    /// one weight per group.
    public mutating func append(features row: ArraySlice<Float>, targets t: [Float], weights w: [Float]) throws(EvaluatorError) {
        guard row.count == width, t.count == groups * 3, w.count == groups else {
            throw .invalidParameter(field: "example", message: "expected \(width) features, \(groups * 3) targets and \(groups) weights; got \(row.count), \(t.count), \(w.count)")
        }
        features += row
        targets += t
        weights += w
    }

    /// Adds every example of `other` (same width and groups).
    public mutating func append(contentsOf other: HeadTrainingSet) throws(EvaluatorError) {
        guard other.count > 0 else { return }
        guard other.width == width, other.groups == groups else {
            throw .invalidParameter(field: "examples", message: "cannot join sets of \(width) features x \(groups) groups and \(other.width) x \(other.groups)")
        }
        features += other.features
        targets += other.targets
        weights += other.weights
    }

    /// The one-hot distribution of a label -1, 0 or +1.
    public static func hardTarget(_ label: Int) -> [Float] {
        [label == -1 ? 1 : 0, label == 0 ? 1 : 0, label == 1 ? 1 : 0]
    }

    /// The distribution whose expected value p(+1) - p(-1) is `score` (in [-1, 1]) with the
    /// least mass on the extremes: p(+1) = max(s, 0), p(-1) = max(-s, 0), p(0) = 1 - |s|.
    public static func softTarget(_ score: Double) -> [Float] {
        let s = Float(Swift.min(1, Swift.max(-1, score)))
        return [Swift.max(-s, 0), 1 - Swift.abs(s), Swift.max(s, 0)]
    }
}

/// How the heads are trained; recorded in the weights file.
public struct HeadTrainingParameters: Sendable, Codable, Equatable {
    /// Units of the hidden layer; 0 = linear heads.
    public var hiddenUnits = 0
    public var epochs = 40
    public var batchSize = 64
    /// Peak learning rate (AdamW, cosine decay to 0).
    public var learningRate: Float = 1e-3
    public var weightDecay: Float = 0.05
    /// Class weight = (mass of all classes / (3 * mass of the class))^power, per value: 0 = none,
    /// 1 = fully balanced. Counters the rare "opposed" class.
    public var classWeightPower: Float = 0.5
    /// Class weights are clipped to [1 / max, max].
    public var maxClassWeight: Float = 10
    public var seed: UInt64 = 0

    public init() {}

    public func validate() throws(EvaluatorError) {
        guard hiddenUnits >= 0 else { throw .invalidParameter(field: "hiddenUnits", message: "must be >= 0") }
        guard epochs >= 1 else { throw .invalidParameter(field: "epochs", message: "must be at least 1") }
        guard batchSize >= 1 else { throw .invalidParameter(field: "batchSize", message: "must be at least 1") }
        guard learningRate > 0, learningRate.isFinite else { throw .invalidParameter(field: "learningRate", message: "must be positive") }
        guard weightDecay >= 0 else { throw .invalidParameter(field: "weightDecay", message: "must be >= 0") }
        guard classWeightPower >= 0, maxClassWeight >= 1 else { throw .invalidParameter(field: "classWeightPower", message: "power must be >= 0 and max weight >= 1") }
    }
}

/// Trains `ValueHeads` on fixed features: deterministic for a given set, parameters and seed.
public struct HeadTrainer {
    public let parameters: HeadTrainingParameters
    public init(_ parameters: HeadTrainingParameters) { self.parameters = parameters }

    /// Per group and class weights [groups * 3] from the set's label mass.
    public func classWeights(_ set: HeadTrainingSet) -> [Float] {
        let g = set.groups
        var mass = [Double](repeating: 0, count: g * 3)
        for n in 0..<set.count {
            for v in 0..<g {
                let w = Double(set.weights[n * g + v])
                for c in 0..<3 { mass[v * 3 + c] += w * Double(set.targets[n * g * 3 + v * 3 + c]) }
            }
        }
        var result = [Float](repeating: 1, count: g * 3)
        for v in 0..<g {
            let total = mass[v * 3..<v * 3 + 3].reduce(0, +)
            for c in 0..<3 where mass[v * 3 + c] > 0 {
                let w = Float(pow(total / (3 * mass[v * 3 + c]), Double(parameters.classWeightPower)))
                result[v * 3 + c] = Swift.min(parameters.maxClassWeight, Swift.max(1 / parameters.maxClassWeight, w))
            }
        }
        return result
    }

    /// Trains fresh heads. `progress(epoch, meanLoss)` after each epoch; false stops with
    /// `EvaluatorError.cancelled`.
    public func train(_ set: HeadTrainingSet, progress: ((Int, Float) -> Bool)? = nil) throws -> ValueHeads {
        try parameters.validate()
        let n = set.count
        guard n >= 2 else { throw EvaluatorError.data("need at least 2 training examples, got \(n)") }
        let p = parameters
        let heads = try ValueHeads(inputWidth: set.width, hiddenUnits: p.hiddenUnits, groups: set.groups, seed: p.seed)
        let x = try MLXArray(set.features, shape: [n, set.width])
        let t = try MLXArray(set.targets, shape: [n, set.groups, 3])
        let w = try MLXArray(set.weights, shape: [n, set.groups])
        let cw = try MLXArray(classWeights(set), shape: [1, set.groups, 3])
        try heads.standardize(from: x)
        let stepsPerEpoch = (n + p.batchSize - 1) / p.batchSize
        let optimizer = AdamW(learningRate: .cosineDecay(initial: p.learningRate, steps: stepsPerEpoch * p.epochs), weightDecay: p.weightDecay)
        var rng = SplitMix64(seed: p.seed)
        var order = Array(0..<n)
        for epoch in 0..<p.epochs {
            // Fisher-Yates with our own generator: the same seed gives the same batches everywhere.
            rng.shuffle(&order)
            var total: Float = 0
            for s in 0..<stepsPerEpoch {
                let rows = Array(order[s * p.batchSize..<min((s + 1) * p.batchSize, n)]).map(Int32.init)
                let index = try MLXArray(rows, shape: [rows.count])
                let xb = try x.take(index, axis: 0), tb = try t.take(index, axis: 0), wb = try w.take(index, axis: 0)
                let (loss, gradients) = try valueAndGrad(heads) { model in
                    try Self.loss(logits: model(xb), targets: tb, weights: wb, classWeights: cw)
                }
                try optimizer.update(heads, gradients: gradients)
                total += try loss.item(Float.self)
            }
            if let progress, !progress(epoch + 1, total / Float(stepsPerEpoch)) { throw EvaluatorError.cancelled }
        }
        return heads
    }

    /// Weighted soft cross-entropy: -sum_c target_c * classWeight_c * log p_c, times the example's
    /// weight for that value, normalised by the total example weight.
    static func loss(logits: MLXArray, targets: MLXArray, weights: MLXArray, classWeights: MLXArray) throws -> MLXArray {
        let logProbs = try logits.logSoftmax(axis: -1)
        let perValue = try -(targets * classWeights * logProbs).sum(axis: -1)
        return try (perValue * weights).sum() / maximum(weights.sum(), MLXArray(Float(1e-6)))
    }
}
