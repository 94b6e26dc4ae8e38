import Foundation
import Testing
import ValueAlignCore
import ValueSpace

/// An evaluator that reads a vector off the response text: "v:<ten comma-separated numbers>".
struct ScriptedEvaluator: ValueEvaluator {
    var name: String { "scripted" }
    func evaluate(_ pairs: [ValuePair]) async throws -> [ValueAssessment] {
        try pairs.map { pair in
            let numbers = pair.response.dropFirst(2).split(separator: ",").compactMap { Double($0) }
            return ValueAssessment(vector: try ValueVector(numbers), probabilities: Array(repeating: [0, 1, 0], count: 10))
        }
    }
}

/// BaseAlign's masked distance gives an answer that touches none of the target's values
/// distance 0; these tests pin down the rules that keep blandness from paying (issue 24, item 8).
@Suite struct BlandnessTests {
    let target = try! ProfileStore.resolve("basealign-ideal").vector

    func vector(_ set: [SchwartzValue: Double]) -> ValueVector {
        var c = [Double](repeating: 0, count: 10)
        for (v, x) in set { c[v.index] = x }
        return try! ValueVector(c)
    }

    func text(_ v: ValueVector) -> String { "v:" + v.components.map { "\($0)" }.joined(separator: ",") }

    @Test func unmaskedDistanceAndTouching() {
        let bland = vector([:])
        #expect(ValueDistance.basealign.distance(bland, to: target) == 0)  // the paper's blind spot
        #expect(ValueDistance.weighted.distance(bland, to: target) == 5)  // five values at 1, all missed
        #expect(!ValueDistance.touchesTarget(bland, target))
        #expect(!ValueDistance.touchesTarget(vector([.power: 0.9]), target))  // power is not weighed
        #expect(ValueDistance.touchesTarget(vector([.security: -0.5]), target))
        #expect(abs(ValueDistance.untouchedCharge(bland, target) - 5 * 0.7) < 1e-12)
        #expect(abs(ValueDistance.untouchedCharge(vector([.security: 0.8]), target) - 4 * 0.7) < 1e-12)
    }

    @Test func blandnessCannotRaiseTheReward() async throws {
        let reward = BaseAlignReward(evaluator: ScriptedEvaluator(), target: target)
        let paper = BaseAlignReward(evaluator: ScriptedEvaluator(), target: target, chargesUntouchedValues: false)
        let bland = vector([:])
        let helpful = vector([.benevolence: 0.8, .security: 0.6])
        let weakTouch = vector([.benevolence: 0.35])
        let opposed = vector([.benevolence: -0.7])
        let vectors = [bland, helpful, weakTouch, opposed]
        let prompts = Array(repeating: [ChatMessage.user("q")], count: vectors.count)
        let r = try await reward.rewards(prompts: prompts, responses: vectors.map(text))
        let p = try await paper.rewards(prompts: prompts, responses: vectors.map(text))
        // The paper's reward: the bland answer gets the best possible reward, 0.
        #expect(p[0] == 0 && p[0] > p[1])
        // With the charge: touching the target's values on the right side beats saying nothing,
        // even barely past the threshold; opposing a value is still worse than saying nothing.
        #expect(r[1] > r[0], "\(r)")
        #expect(r[2] > r[0], "\(r)")
        #expect(r[3] < r[0], "\(r)")
        // Dropping a touched value to nothing never raises the reward.
        for v in [SchwartzValue.achievement, .security, .conformity, .benevolence, .universalism] {
            let other: SchwartzValue = v == .universalism ? .benevolence : .universalism
            for level in [0.31, 0.5, 0.8, 1.0] {
                let touched = vector([v: level, other: 0.9]), dropped = vector([other: 0.9])
                #expect(reward.reward(touched) >= reward.reward(dropped), "\(v) at \(level)")
            }
        }
        // The most reward is for answering on the target.
        #expect(reward.reward(target) == 0 && r.allSatisfy { $0 < 0 })
    }

    /// A mean profile's components shrink toward 0, so the per-answer mask must never be applied
    /// to it: the report's distance table shows unmasked distances only.
    @Test func profileReportsNeverMaskAMean() throws {
        let mean = ValueProfile(name: "answers (mean)", kind: .measured, vector: vector([.benevolence: 0.2, .security: 0.25]))
        let report = ProfileReport(title: "t", profiles: [mean], target: try ProfileStore.resolve("basealign-ideal"))
        let markdown = report.markdown()
        let distanceSection = try #require(markdown.components(separatedBy: "## Distance to").last)
        #expect(distanceSection.contains("weighted") && !distanceSection.contains("basealign |"), "\(distanceSection)")
        #expect(distanceSection.contains("4.550"), "the unmasked weighted L1 of the mean: \(distanceSection)")
        #expect(!report.html().contains("<th>basealign</th>"))
    }
}
