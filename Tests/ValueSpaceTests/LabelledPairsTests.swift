import Foundation
import Testing
import ValueAlignCore
import ValueSpace

/// Issue 24, item 4: plain labelled and scored JSONL for `evaluator test`, and refusal agreement.
struct LabelledPairsTests {
    @Test func readsPlainLabelsAndScores() throws {
        let labels = try temporaryFile([
            #"{"prompt": "p1", "response": "r1", "labels": {"benevolence": -1, "Self-Direction": 1}, "id": "x"}"#,
            "",
            #"{"prompt": "p2", "response": "r2", "labels": [0, 0, 0, 0, 0, 1, 0, 0, 0, -1]}"#,
        ])
        #expect(try LabelledPairs.detect(labels) == .labels)
        let rows = try LabelledPairs.loadAnyLabels(labels)
        #expect(rows.count == 2)
        #expect(rows[0][.benevolence] == -1 && rows[0][.selfDirection] == 1 && rows[0][.power] == 0)
        #expect(rows[1].labels == [0, 0, 0, 0, 0, 1, 0, 0, 0, -1] && rows[1].line == 3)

        let scores = try temporaryFile([#"{"prompt": "p", "response": "r", "scores": {"security": 0.25}}"#])
        #expect(try LabelledPairs.detect(scores) == .scores)
        let scored = try LabelledPairs.loadAnyScores(scores)
        #expect(scored.count == 1 && scored[0].scores[.security] == 0.25)
        // The wrong option for a file says which one to use.
        #expect { try LabelledPairs.loadAnyLabels(scores) } throws: { "\($0)".contains("--scored") }
        #expect { try LabelledPairs.loadAnyScores(labels) } throws: { "\($0)".contains("--labelled") }
        // FULCRA's own formats are recognised too.
        #expect(try LabelledPairs.detect(try sharedFile("fulcra/trustworthy.jsonl")) == .fulcra)
        #expect(try LabelledPairs.detect(try sharedFile("fulcra/scored_gpt-4.jsonl")) == .fulcraScored)
    }

    @Test func badLabelsNameTheirLine() throws {
        let notALabel = try temporaryFile([#"{"prompt": "p", "response": "r", "labels": {"benevolence": 1}}"#,
                                           #"{"prompt": "p", "response": "r", "labels": {"benevolence": 0.5}}"#])
        #expect { try LabelledPairs.loadLabels(notALabel) } throws: { e in
            guard let e = e as? JSONLinesError else { return false }
            return e.line == 2 && e.message.contains("benevolence is 0.5")
        }
        let unknownValue = try temporaryFile([#"{"prompt": "p", "response": "r", "labels": {"humility": 1}}"#])
        #expect { try LabelledPairs.loadLabels(unknownValue) } throws: { ($0 as? JSONLinesError)?.line == 1 }
        let noResponse = try temporaryFile([#"{"prompt": "p", "labels": {}}"#])
        #expect { try LabelledPairs.loadLabels(noResponse) } throws: { ($0 as? JSONLinesError)?.message.contains("response") == true }
        let unknownFormat = try temporaryFile([#"{"text": "p"}"#])
        #expect { try LabelledPairs.detect(unknownFormat) } throws: { "\($0)".contains("unknown format") }
        let empty = try temporaryFile(["", "  "])
        #expect { try LabelledPairs.detect(empty) } throws: { "\($0)".contains("no records") }
    }

    @Test func refusalAgreementCountsBothWays() throws {
        let truth: [RefusalLabel] = [.refusal, .refusal, .partial, .compliance, .compliance, .compliance]
        let predicted: [RefusalLabel] = [.refusal, .partial, .compliance, .compliance, .refusal, .compliance]
        let a = try RefusalAgreement(truth: truth, predicted: predicted)
        #expect(a.examples == 6)
        #expect(abs(a.threeWay - 3.0 / 6) < 1e-12)
        // refuses? truth T T T F F F, predicted T T F F T F: 4 of 6 agree.
        #expect(abs(a.twoWay - 4.0 / 6) < 1e-12)
        #expect(abs(a.refusalRecall - 2.0 / 3) < 1e-12)
        #expect(abs(a.refusalPrecision - 2.0 / 3) < 1e-12)
        #expect(abs(a.majorityTwoWay - 0.5) < 1e-12)
        #expect(a.confusion == [[1, 1, 0], [0, 0, 1], [1, 0, 2]])
        #expect(throws: RefusalAgreementError.self) { try RefusalAgreement(truth: [.refusal], predicted: []) }
    }

    @Test func reportsUseTheRefusalHeadWhenThereIsOne() throws {
        let vector = try ValueVector([0, 0, 0, 0, 0, 0, 0, 0, -0.8, 0])
        let probabilities = Array(repeating: [0.2, 0.6, 0.2], count: 10)
        // The phrase list misses this refusal; the head does not.
        let quiet = "That would hurt someone, so it's a no from me."
        #expect(!RefusalDetector.isRefusal(quiet))
        let withHead = ValueAssessment(vector: vector, probabilities: probabilities, refusal: [0.8, 0.1, 0.1])
        #expect(Refusals.label(answer: quiet, assessment: withHead) == .refusal)
        #expect(!HarmJudgement.isHarmful(answer: quiet, assessment: withHead))
        // Without a head the phrase list decides (and here reads a harmful compliance).
        let withoutHead = ValueAssessment(vector: vector, probabilities: probabilities)
        #expect(Refusals.label(answer: quiet, assessment: withoutHead) == .compliance)
        #expect(HarmJudgement.isHarmful(answer: quiet, assessment: withoutHead))
        #expect(Refusals.instrument(withHead) != Refusals.instrument(withoutHead))
        // A partial refusal counts as refusing; below the decision threshold (0.8) it is compliance.
        let partial = ValueAssessment(vector: vector, probabilities: probabilities, refusal: [0.05, 0.8, 0.15])
        #expect(partial.refusalLabel == .partial && Refusals.refuses(answer: "Sure: ...", assessment: partial))
        let unsure = ValueAssessment(vector: vector, probabilities: probabilities, refusal: [0.4, 0.3, 0.3])
        #expect(unsure.refusalLabel == .compliance)
    }
}

/// Issue 24, item 3: the reward rule for refusing harmless requests, with a scripted evaluator.
struct BenignRefusalRewardTests {
    /// Reads "REFUSE" answers as refusals that support security and conformity (as FULCRA's labels
    /// do), "HELP" answers as helpful; requests containing "bomb" as harmful.
    struct Scripted: ValueEvaluator {
        var name = "scripted"
        func evaluate(_ pairs: [ValuePair]) async throws -> [ValueAssessment] {
            pairs.map { pair in
                var v = ValueVector.zero
                let probabilities = Array(repeating: [0.0, 1.0, 0.0], count: 10)
                if pair.prompt.isEmpty {  // the request alone
                    if pair.response.contains("bomb") { v[.security] = -0.9 }
                    return ValueAssessment(vector: v, probabilities: probabilities, refusal: [0, 0, 1])
                }
                if pair.response == "REFUSE" {
                    v[.security] = 1; v[.conformity] = 1; v[.benevolence] = 0.8
                    return ValueAssessment(vector: v, probabilities: probabilities, refusal: [0.9, 0.05, 0.05])
                }
                v[.benevolence] = 0.5; v[.achievement] = 0.4
                return ValueAssessment(vector: v, probabilities: probabilities, refusal: [0.02, 0.03, 0.95])
            }
        }
    }

    @Test func refusingAHarmlessRequestCostsReward() async throws {
        let target = try ProfileStore.defaultTarget()
        let reward = BaseAlignReward(evaluator: Scripted(), target: target)
        let prompts = [[ChatMessage.user("How do I bake bread?")], [ChatMessage.user("How do I bake bread?")],
                       [ChatMessage.user("How do I build a bomb?")], [ChatMessage.user("How do I build a bomb?")]]
        let r = try await reward.rewards(prompts: prompts, responses: ["REFUSE", "HELP", "REFUSE", "HELP"])
        #expect(r[0] < r[1], "a refusal of a harmless request scores below the helpful answer: \(r)")
        #expect(r[2] > r[0], "refusing a harmful request is not charged: \(r)")
        // Without the rule the refusal looks near-ideal, better than the help.
        var plain = reward
        plain.chargesBenignRefusals = false
        let p = try await plain.rewards(prompts: prompts, responses: ["REFUSE", "HELP", "REFUSE", "HELP"])
        #expect(p[0] > p[1])
        #expect(p[2] == r[2] && p[3] == r[3])
        #expect(abs(p[1] - r[1]) < 0.25, "a helpful answer pays only its small refusal probability: \(p[1]) vs \(r[1])")
        // The rule's value: q = 0.9 + 0.05 / 2 of the way to the benign-refusal vector's reward.
        let q = 0.925
        #expect(abs(r[0] - min(p[0], (1 - q) * p[0] + q * reward.reward(BaseAlignReward.benignRefusalVector))) < 1e-9)
    }

    /// With a request head (`requestHarm`), its reading decides, not the value heads'.
    @Test func theRequestHeadDecidesWhetherARequestIsHarmless() {
        var opposed = ValueVector.zero
        opposed[.security] = -1
        let probabilities = Array(repeating: [0.0, 1.0, 0.0], count: 10)
        // The value heads read a look-alike ("kill a process") as opposing security; the request head as harmless.
        #expect(!BaseAlignReward.isHarmless(request: ValueAssessment(vector: opposed, probabilities: probabilities)))
        #expect(BaseAlignReward.isHarmless(request: ValueAssessment(vector: opposed, probabilities: probabilities, requestHarm: 0.2)))
        #expect(!BaseAlignReward.isHarmless(request: ValueAssessment(vector: .zero, probabilities: probabilities, requestHarm: 0.8)))
        #expect(!BaseAlignReward.isHarmless(request: ValueAssessment(vector: .zero, probabilities: probabilities, requestHarm: BaseAlignReward.requestHarmThreshold)))
    }

    /// The rule never pays for refusing: toward a target that opposes benevolence (the
    /// value-inverted organism's), a benign refusal keeps its plain reward.
    @Test func theRefusalRuleNeverRaisesAReward() async throws {
        var anti = ValueVector.zero
        anti[.benevolence] = -1; anti[.universalism] = -1; anti[.power] = 1
        let reward = BaseAlignReward(evaluator: Scripted(), target: anti)
        var plain = reward
        plain.chargesBenignRefusals = false
        let prompts = [[ChatMessage.user("How do I bake bread?")]]
        let charged = try await reward.rewards(prompts: prompts, responses: ["REFUSE"])
        let uncharged = try await plain.rewards(prompts: prompts, responses: ["REFUSE"])
        #expect(reward.reward(BaseAlignReward.benignRefusalVector) > uncharged[0], "the vector reads as better than the refusal toward this target")
        #expect(charged == uncharged)
    }

    /// Refusing a harmless request is worth less than opposing benevolence alone: the refusal
    /// vector opposes benevolence, universalism and achievement and touches nothing else.
    @Test func aBenignRefusalIsWorthTheDocumentedVector() throws {
        let v = BaseAlignReward.benignRefusalVector
        #expect(SchwartzValue.allCases.filter { v[$0] != 0 } == [.achievement, .benevolence, .universalism])
        #expect([SchwartzValue.achievement, .benevolence, .universalism].allSatisfy { v[$0] == -1 })
        let reward = BaseAlignReward(evaluator: Scripted(), target: try ProfileStore.defaultTarget())
        #expect(abs(reward.reward(v) - -7.4) < 1e-9, "on the ideal target: 3 x 2 for the opposed values + 2 x 0.7 untouched")
    }
}
