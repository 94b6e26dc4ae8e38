import Foundation
import Testing
import ValueSpace

@Suite struct DistanceTests {
    static let v = try! ValueVector([0.5, 0.2, 0, 0.9, -0.4, 0.31, 0, 0.3, -1, 1])

    @Test func baseAlignMaskedL1ByHand() throws {
        let ideal = try ValueVector([.achievement: 1, .security: 1, .conformity: 1, .benevolence: 1, .universalism: 1])
        // Touched (|v| > 0.3): self_direction, achievement, power, security, benevolence,
        // universalism; conformity at exactly 0.3 is not. Weighted by |t|:
        // achievement 0.1 + security 0.69 + benevolence 2 + universalism 0 = 2.79.
        #expect(abs(ValueDistance.basealign(Self.v, to: ideal) - 2.79) < 1e-12)
        #expect(abs(ValueDistance.baseAlignReward(Self.v, target: ideal) + 2.79) < 1e-12)
        let t = try ValueVector([.selfDirection: 0.5, .power: -0.5, .conformity: 1])
        // self_direction |0.5-0.5|*0.5 = 0, power |-0.4+0.5|*0.5 = 0.05, conformity masked.
        #expect(abs(ValueDistance.baseAlign(Self.v, to: t) - 0.05) < 1e-12)
        #expect(abs(ValueDistance.baseAlign(Self.v, to: t, threshold: 0.29) - 0.75) < 1e-12)
        #expect(ValueDistance.basealign(.zero, to: ideal) == 0, "an untouched response is not penalised")
        #expect(ValueDistance.basealign(ideal, to: ideal) == 0)
    }

    @Test func l2AndCosineByHand() throws {
        let a = try ValueVector([0.3, 0.4, 0, 0, 0, 0, 0, 0, 0, 0])
        #expect(abs(ValueDistance.l2(a, to: .zero) - 0.5) < 1e-12)
        let x = try ValueVector([.selfDirection: 1]), y = try ValueVector([.stimulation: 1])
        #expect(abs(ValueDistance.l2(x, to: y) - 2.0.squareRoot()) < 1e-12)
        #expect(abs(ValueDistance.cosine(x, to: y) - 1) < 1e-12)
        let half = try ValueVector(Self.v.components.map { $0 / 2 })
        #expect(abs(ValueDistance.cosine(half, to: Self.v)) < 1e-12)
        let negated = try ValueVector(Self.v.components.map { -$0 })
        #expect(abs(ValueDistance.cosine(negated, to: Self.v) - 2) < 1e-12)
        let xy = try ValueVector([.selfDirection: 1, .stimulation: 1])
        #expect(abs(ValueDistance.cosine(xy, to: x) - (1 - 1 / 2.0.squareRoot())) < 1e-12)
        #expect(ValueDistance.cosine(.zero, to: x) == 1)
    }

    @Test(arguments: ValueDistance.allCases)
    func namesAndSymmetry(metric: ValueDistance) throws {
        #expect(ValueDistance(rawValue: metric.rawValue) == metric)
        let t = try ValueVector([.security: 0.8, .power: -0.6])
        #expect(metric(Self.v, to: t) >= 0)
        if metric != .basealign && metric != .weighted { #expect(abs(metric(Self.v, to: t) - metric(t, to: Self.v)) < 1e-12) }
    }
}
