import Foundation
import MLXEngine
import MLXNN
import Testing

final class Scalar: Module, @unchecked Sendable {
    @Parameter var w: MLXArray
    init(_ values: [Float]) {
        _w = Parameter(wrappedValue: MLXArray(values))
        super.init()
    }
}

@Suite struct OptimizerTests {
    /// One AdamW step against the update written out by hand (PyTorch's formulation).
    @Test func adamWMatchesTheClosedForm() throws {
        let m = Scalar([1, -2, 0.5])
        let g: [Float] = [0.1, -0.3, 2]
        let opt = AdamW(learningRate: 0.01, betas: (0.9, 0.999), eps: 1e-8, weightDecay: 0.1)
        for step in 1...3 {
            let before = try m.w.asArray(Float.self)
            try opt.update(m, gradients: ["w": MLXArray(g)])
            let after = try m.w.asArray(Float.self)
            // With a constant gradient, m_hat = g and v_hat = g^2 at every step.
            for i in 0..<3 {
                let expected = before[i] * (1 - 0.01 * 0.1) - 0.01 * g[i] / (abs(g[i]) + 1e-8)
                #expect(abs(after[i] - expected) < 1e-5, "step \(step) element \(i)")
            }
        }
        #expect(opt.step == 3)
    }

    @Test func sgdWithMomentum() throws {
        let m = Scalar([1])
        let opt = SGD(learningRate: 0.1, momentum: 0.9)
        try opt.update(m, gradients: ["w": MLXArray([1] as [Float])])
        try opt.update(m, gradients: ["w": MLXArray([1] as [Float])])
        // v1 = 1, w = 0.9; v2 = 1.9, w = 0.71
        #expect(abs(try m.w.item(Float.self) - 0.71) < 1e-6)
    }

    @Test func stateRoundTripResumesIdentically() throws {
        let g = ["w": MLXArray([0.3, -0.7] as [Float])]
        let a = Scalar([1, 1]), b = Scalar([1, 1])
        let optA = AdamW(learningRate: 0.1)
        for _ in 0..<3 { try optA.update(a, gradients: g) }
        let optB = AdamW(learningRate: 0.1)
        for _ in 0..<2 { try optB.update(b, gradients: g) }
        let saved = try optB.state()
        let optC = AdamW(learningRate: 0.1)
        try optC.restore(saved)
        #expect(optC.step == 2)
        try optC.update(b, gradients: g)
        #expect(try a.w.asArray(Float.self) == b.w.asArray(Float.self))
    }

    @Test func schedules() {
        let warm = LearningRateSchedule.linearWarmup(steps: 4, peak: 1, then: .cosineDecay(initial: 1, steps: 10, final: 0.1))
        #expect(warm.rate(0) == 0.25)
        #expect(warm.rate(3) == 1)
        #expect(abs(warm.rate(4) - 1) < 1e-6)
        #expect(abs(warm.rate(9) - 0.55) < 1e-5)
        #expect(abs(warm.rate(14) - 0.1) < 1e-6)
        #expect(abs(warm.rate(100) - 0.1) < 1e-6)
        let linear = LearningRateSchedule.linearDecay(initial: 2, steps: 4)
        #expect(linear.rate(2) == 1)
        #expect(linear.rate(10) == 0)
    }

    @Test func globalNormClipping() throws {
        let grads = ["a": MLXArray([3, 0] as [Float]), "b": MLXArray([4] as [Float])]
        let (clipped, norm) = try clipGradientNorm(grads, maxNorm: 1)
        #expect(abs(norm - 5) < 1e-5)
        #expect(abs(try clipped["a"]!.asArray(Float.self)[0] - 0.6) < 1e-4)
        #expect(abs(try clipped["b"]!.item(Float.self) - 0.8) < 1e-4)
        let (same, _) = try clipGradientNorm(grads, maxNorm: 10)
        #expect(try same["b"]!.item(Float.self) == 4)
    }
}

/// A two-layer MLP trained with AdamW fits a toy regression.
final class MLP: Module, @unchecked Sendable {
    let l1: Linear, l2: Linear
    init(seed: UInt64) throws {
        let keys = try MLXRandom.split(MLXRandom.key(seed))
        l1 = try Linear(1, 32, key: keys[0])
        l2 = try Linear(32, 1, key: keys[1])
        super.init()
    }
    func callAsFunction(_ x: MLXArray) throws -> MLXArray { try l2(l1(x).tanh()) }
}

@Suite struct TrainingTests {
    @Test func mlpFitsASineWithAdamW() throws {
        let xs = (0..<64).map { Float($0) / 63 * 6 - 3 }
        let x = try MLXArray(xs, shape: [64, 1])
        let y = try MLXArray(xs.map { Float(Foundation.sin(Double($0))) }, shape: [64, 1])
        let model = try MLP(seed: 0)
        let opt = AdamW(learningRate: .linearWarmup(steps: 10, peak: 0.03, then: .cosineDecay(initial: 0.03, steps: 390, final: 0.003)), weightDecay: 0)
        var loss: Float = .infinity
        for _ in 0..<400 {
            let (l, g) = try valueAndGrad(model) { m in try Losses.meanSquaredError(m(x), y) }
            try opt.update(model, gradients: g)
            loss = try l.item(Float.self)
        }
        #expect(loss < 0.01, "final MSE \(loss)")
    }

    @Test func valueAndGradRestoresParametersWhenTheLossThrows() throws {
        struct Boom: Error {}
        let model = try MLP(seed: 1)
        let before = try model.l1.weight.asArray(Float.self)
        #expect(throws: Boom.self) { _ = try valueAndGrad(model) { _ in throw Boom() } }
        #expect(try model.l1.weight.asArray(Float.self) == before)
    }

    @Test func crossEntropyMatchesHandComputation() throws {
        let logits = try MLXArray([2, 0, 0, 0, 0, 3] as [Float], shape: [2, 3])
        let targets = try MLXArray([0, 1] as [Int], shape: [2])
        let l0 = -Foundation.log(Foundation.exp(2.0) / (Foundation.exp(2.0) + 2))
        let l1 = -Foundation.log(1 / (2 + Foundation.exp(3.0)))
        #expect(abs(Double(try Losses.crossEntropy(logits: logits, targets: targets).item(Float.self)) - (l0 + l1) / 2) < 1e-5)
        let masked = try Losses.crossEntropy(logits: logits, targets: targets, mask: MLXArray([1, 0] as [Float]))
        #expect(abs(Double(try masked.item(Float.self)) - l0) < 1e-5)
    }
}
