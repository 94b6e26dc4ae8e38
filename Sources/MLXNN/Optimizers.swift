public import MLXEngine
import Foundation

/// Updates a module's trainable parameters from their gradients.
public protocol Optimizer: AnyObject {
    /// The learning rate used at the next step.
    var learningRate: Float { get }
    /// The number of steps taken.
    var step: Int { get }
    /// Applies one step to `model` given gradients keyed like `model.trainableParameters()`.
    func update(_ model: Module, gradients: [String: MLXArray]) throws
    /// The optimiser's state (moments, step) as arrays, for checkpoints.
    func state() throws -> [String: MLXArray]
    /// Restores a state saved by `state()`.
    func restore(_ state: [String: MLXArray]) throws
}

/// A learning rate as a function of the step (0-based).
public struct LearningRateSchedule: Sendable {
    public let rate: @Sendable (Int) -> Float
    public init(_ rate: @escaping @Sendable (Int) -> Float) { self.rate = rate }

    public static func constant(_ value: Float) -> LearningRateSchedule { .init { _ in value } }

    /// Linear warm-up from `start` to `peak` over `steps`, then `then` (shifted to start at 0).
    public static func linearWarmup(steps: Int, start: Float = 0, peak: Float, then: LearningRateSchedule? = nil) -> LearningRateSchedule {
        .init { step in
            if step < steps { return start + (peak - start) * Float(step + 1) / Float(steps) }
            return then?.rate(step - steps) ?? peak
        }
    }

    /// Cosine decay from `initial` to `final` over `steps`, then constant at `final`.
    public static func cosineDecay(initial: Float, steps: Int, final: Float = 0) -> LearningRateSchedule {
        .init { step in
            let t = Float(Swift.min(step, steps)) / Float(Swift.max(steps, 1))
            return final + (initial - final) * 0.5 * (1 + cos(Float.pi * t))
        }
    }

    /// Linear decay from `initial` to `final` over `steps` (TRL's default schedule).
    public static func linearDecay(initial: Float, steps: Int, final: Float = 0) -> LearningRateSchedule {
        .init { step in
            let t = Float(Swift.min(step, steps)) / Float(Swift.max(steps, 1))
            return initial + (final - initial) * t
        }
    }
}

/// Stochastic gradient descent with optional momentum, Nesterov and L2 weight decay.
public final class SGD: Optimizer {
    public let schedule: LearningRateSchedule
    public let momentum: Float
    public let weightDecay: Float
    public let nesterov: Bool
    public private(set) var step = 0
    private var velocity: [String: MLXArray] = [:]

    public init(learningRate: LearningRateSchedule, momentum: Float = 0, weightDecay: Float = 0, nesterov: Bool = false) {
        self.schedule = learningRate
        self.momentum = momentum
        self.weightDecay = weightDecay
        self.nesterov = nesterov
    }

    public convenience init(learningRate: Float, momentum: Float = 0, weightDecay: Float = 0, nesterov: Bool = false) {
        self.init(learningRate: .constant(learningRate), momentum: momentum, weightDecay: weightDecay, nesterov: nesterov)
    }

    public var learningRate: Float { schedule.rate(step) }

    public func update(_ model: Module, gradients: [String: MLXArray]) throws {
        let lr = learningRate
        let params = model.trainableParameters()
        var updated: [String: MLXArray] = [:]
        for (name, g0) in gradients {
            guard let p = params[name] else { throw ModuleError.unknownParameters([name]) }
            var g = g0
            if weightDecay != 0 { g = try g + p * weightDecay }
            if momentum != 0 {
                let v = try velocity[name].map { try $0 * momentum + g } ?? g
                velocity[name] = v
                g = nesterov ? try g + v * momentum : v
            }
            updated[name] = try p - g * lr
        }
        try model.update(parameters: updated)
        try eval(Array(updated.values) + Array(velocity.values))
        step += 1
    }

    public func state() throws -> [String: MLXArray] {
        var s = velocity.reduce(into: [String: MLXArray]()) { $0["velocity." + $1.key] = $1.value }
        s["step"] = try MLXArray([Int32(step)], shape: [])
        return s
    }

    public func restore(_ state: [String: MLXArray]) throws {
        step = Int(try state["step"]?.item(Int32.self) ?? 0)
        velocity = [:]
        for (k, v) in state where k.hasPrefix("velocity.") { velocity[String(k.dropFirst(9))] = v }
    }
}

/// Adam with decoupled weight decay (Loshchilov & Hutter), PyTorch's defaults:
/// betas (0.9, 0.999), eps 1e-8, weight decay 0.01.
public final class AdamW: Optimizer {
    public let schedule: LearningRateSchedule
    public let beta1: Float
    public let beta2: Float
    public let eps: Float
    public let weightDecay: Float
    public private(set) var step = 0
    private var m: [String: MLXArray] = [:]
    private var v: [String: MLXArray] = [:]

    public init(learningRate: LearningRateSchedule, betas: (Float, Float) = (0.9, 0.999), eps: Float = 1e-8, weightDecay: Float = 0.01) {
        self.schedule = learningRate
        self.beta1 = betas.0
        self.beta2 = betas.1
        self.eps = eps
        self.weightDecay = weightDecay
    }

    public convenience init(learningRate: Float, betas: (Float, Float) = (0.9, 0.999), eps: Float = 1e-8, weightDecay: Float = 0.01) {
        self.init(learningRate: .constant(learningRate), betas: betas, eps: eps, weightDecay: weightDecay)
    }

    public var learningRate: Float { schedule.rate(step) }

    public func update(_ model: Module, gradients: [String: MLXArray]) throws {
        let lr = learningRate
        let t = Float(step + 1)
        let correction1 = 1 - pow(beta1, t)
        let correction2 = 1 - pow(beta2, t)
        let params = model.trainableParameters()
        var updated: [String: MLXArray] = [:]
        for (name, g) in gradients {
            guard let p = params[name] else { throw ModuleError.unknownParameters([name]) }
            // The moments start at zero, so the first step is just the (1 - beta) terms.
            let mStep = try g * (1 - beta1), vStep = try g.square() * (1 - beta2)
            let mNew = try m[name].map { try $0 * beta1 + mStep } ?? mStep
            let vNew = try v[name].map { try $0 * beta2 + vStep } ?? vStep
            m[name] = mNew
            v[name] = vNew
            let decayed = weightDecay != 0 ? try p * (1 - lr * weightDecay) : p
            let stepSize = lr / correction1
            let denom = try (vNew / correction2).sqrt() + eps
            updated[name] = try decayed - (mNew / denom) * stepSize
        }
        try model.update(parameters: updated)
        try eval(Array(updated.values) + Array(m.values) + Array(v.values))
        step += 1
    }

    public func state() throws -> [String: MLXArray] {
        var s: [String: MLXArray] = [:]
        for (k, a) in m { s["m." + k] = a }
        for (k, a) in v { s["v." + k] = a }
        s["step"] = try MLXArray([Int32(step)], shape: [])
        return s
    }

    public func restore(_ state: [String: MLXArray]) throws {
        step = Int(try state["step"]?.item(Int32.self) ?? 0)
        m = [:]
        v = [:]
        for (k, a) in state {
            if k.hasPrefix("m.") { m[String(k.dropFirst(2))] = a } else if k.hasPrefix("v.") { v[String(k.dropFirst(2))] = a }
        }
    }
}

/// Scales gradients so their global L2 norm is at most `maxNorm`; returns them and the norm
/// before clipping.
public func clipGradientNorm(_ gradients: [String: MLXArray], maxNorm: Float) throws -> (gradients: [String: MLXArray], norm: Float) {
    var total = try MLXArray(0, dtype: .float32)
    for g in gradients.values { total = try total + g.square().sum() }
    let norm = try total.sqrt().item(Float.self)
    guard norm > maxNorm, norm.isFinite else { return (gradients, norm) }
    let factor = maxNorm / (norm + 1e-6)
    var clipped: [String: MLXArray] = [:]
    for (k, g) in gradients { clipped[k] = try g * factor }
    return (clipped, norm)
}
