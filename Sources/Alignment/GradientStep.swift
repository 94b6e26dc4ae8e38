import MLXEngine
public import MLXNN

/// One optimiser update from the losses of one or more micro-batches: the gradient of each loss
/// with respect to the trainable parameters, averaged (gradient accumulation), clipped to a
/// global norm, then applied by the optimiser. `TrainingRunner` runs one per update; benchmarks
/// time it alone.
public final class GradientStep {
    public let trainable: Module
    public let optimizer: any Optimizer
    /// 0 turns clipping off (the norm is still measured).
    public let maxGradientNorm: Float

    /// What an update measured.
    public struct Result: Sendable {
        /// Mean loss of the micro-batches.
        public var loss: Double
        /// Global gradient norm before clipping.
        public var gradientNorm: Double
        /// Mean of each metric over the micro-batches.
        public var metrics: [String: Double]
    }

    public init(trainable: Module, optimizer: any Optimizer, maxGradientNorm: Float) {
        self.trainable = trainable
        self.optimizer = optimizer
        self.maxGradientNorm = maxGradientNorm
    }

    /// Runs the update; `step` names the step in errors.
    public func callAsFunction(_ microBatches: [() throws -> ObjectiveOutput], step: Int) throws -> Result {
        var accumulated: [String: MLXArray] = [:]
        var lossSum = 0.0
        var metricSums: [String: Double] = [:]
        let scale = 1 / Float(max(microBatches.count, 1))
        for body in microBatches {
            let (loss, metrics, gradients) = try lossAndGradients(body)
            for (key, g) in gradients {
                accumulated[key] = try accumulated[key].map { try $0 + g * scale } ?? (g * scale)
            }
            // Evaluated per micro-batch, so only one micro-batch's graph is alive at a time.
            try eval(Array(accumulated.values) + [loss] + Array(metrics.values))
            let value = Double(try loss.item(Float.self))
            guard value.isFinite else { throw TrainingError.nonFinite(step: step, what: "the loss") }
            lossSum += value
            for (k, m) in metrics { metricSums[k, default: 0] += Double(try m.item(Float.self)) }
        }
        let clipped = try clipGradientNorm(accumulated, maxNorm: maxGradientNorm > 0 ? maxGradientNorm : .infinity)
        guard clipped.norm.isFinite else { throw TrainingError.nonFinite(step: step, what: "the gradient norm") }
        try optimizer.update(trainable, gradients: clipped.gradients)
        let n = Double(max(microBatches.count, 1))
        return Result(loss: lossSum / n, gradientNorm: Double(clipped.norm), metrics: metricSums.mapValues { $0 / n })
    }

    /// The loss, its metrics and the gradients of the loss with respect to the trainable
    /// parameters (swapped for traced copies while `body` runs, restored afterwards).
    func lossAndGradients(_ body: @escaping () throws -> ObjectiveOutput) throws -> (MLXArray, [String: MLXArray], [String: MLXArray]) {
        let module = trainable
        let original = module.trainableParameters()
        let keys = original.keys.sorted()
        defer { try? module.update(parameters: original) }
        var metricNames: [String] = []
        let (values, gradients) = try MLXEngine.valueAndGrad(keys.map { original[$0]! }) { arrays in
            try module.update(parameters: Dictionary(uniqueKeysWithValues: zip(keys, arrays)))
            let out = try body()
            metricNames = out.metrics.keys.sorted()
            return [out.loss] + metricNames.map { out.metrics[$0]! }
        }
        let metrics = Dictionary(uniqueKeysWithValues: zip(metricNames, values.dropFirst()))
        return (values[0], metrics, Dictionary(uniqueKeysWithValues: zip(keys, gradients)))
    }
}
