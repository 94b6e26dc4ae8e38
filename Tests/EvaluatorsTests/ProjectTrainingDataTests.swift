import Evaluators
import Foundation
import Testing
import ValueAlignCore
import ValueSpace

/// Issue 24: what the project's own training rows teach, and that evaluation prompts never train.
struct ProjectTrainingDataTests {
    func file(_ lines: [String]) throws -> String {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("project-data-\(UUID().uuidString).jsonl")
        try lines.joined(separator: "\n").write(to: url, atomically: true, encoding: .utf8)
        return url.path
    }

    func target(_ e: ProjectTrainingData.ValueExample, _ v: SchwartzValue) -> Int {
        let t = Array(e.targets[v.index * 3..<v.index * 3 + 3])
        return t == [1, 0, 0] ? -1 : t == [0, 1, 0] ? 0 : 1
    }

    @Test func rowsTeachWhatTheRulesSay() throws {
        let ordinary = try file([
            #"{"id": "o1", "prompt": "How do I kill a tmux session?", "response": "Run tmux kill-session -t NAME.", "labels": {"benevolence": 1, "achievement": 1}}"#,
            #"{"id": "o2", "prompt": "how do i kill a TMUX session", "response": "Run tmux kill-session -t NAME!", "labels": {"benevolence": 1}}"#,
            #"{"id": "o3", "prompt": "Describe a safe route home.", "response": "Stay on lit streets.", "labels": {"security": 1}}"#,
        ])
        let harmful = try file([#"{"id": "h1", "prompt": "Help me scare my neighbour.", "response": "Leave threats at night.", "labels": {"benevolence": -1, "security": -1, "power": 1}}"#])
        let evaluation = try file([#"{"id": "e1", "prompt": "Describe a SAFE route home!", "response": "x"}"#])
        let refusals = try file([
            #"{"id": "rb-1", "prompt": "How do I gut a trout?", "response": "Sorry, I can't help with that.", "label": "refusal", "prompt_kind": "benign", "split": "train"}"#,
            #"{"id": "rb-2", "prompt": "How do I gut a trout?", "response": "Slit the belly from vent to gills...", "label": "compliance", "prompt_kind": "benign", "split": "train"}"#,
            #"{"id": "rh-1", "prompt": "How do I steal a bike?", "response": "Cut the lock at night.", "label": "compliance", "prompt_kind": "harmful", "split": "train"}"#,
            #"{"id": "rh-2", "prompt": "How do I steal a car?", "response": "No.", "label": "refusal", "prompt_kind": "harmful", "split": "test"}"#,
        ])
        let data = try ProjectTrainingData.load(labelled: [ordinary, harmful], refusals: refusals, evaluation: [evaluation])
        // o2 repeats o1 once case and punctuation are ignored; o3's prompt is an evaluation prompt.
        #expect(data.droppedAsRepeats == 1)
        #expect(data.droppedAsEvaluationPrompts == 1)
        let kinds = data.valueExamples.map(\.kind)
        #expect(kinds == ["answer", "request", "answer", "request", "harmful-compliance"])

        let answer = data.valueExamples[2], request = data.valueExamples[3]
        #expect(target(answer, .power) == 1 && target(answer, .benevolence) == -1)
        // The request keeps the opposed labels only; support is the answer's.
        #expect(request.pair == ValuePair(prompt: "", response: "Help me scare my neighbour."))
        #expect(target(request, .power) == 0 && target(request, .benevolence) == -1 && target(request, .security) == -1)
        #expect(request.weights == Array(repeating: 1, count: 10))
        // An ordinary request touches nothing.
        #expect(SchwartzValue.allCases.allSatisfy { target(data.valueExamples[1], $0) == 0 })

        // A benign refusal teaches only the refusal head; a harmful compliance opposes benevolence, nothing else labelled.
        let compliance = data.valueExamples[4]
        #expect(target(compliance, .benevolence) == -1 && compliance.weights.reduce(0, +) == 1)

        // The refusal head trains on the refusal set's train split, then every labelled answer as compliance.
        #expect(data.refusalTraining.map(\.label) == [.refusal, .compliance, .compliance, .compliance, .compliance])
        #expect(!data.refusalTraining.contains { $0.pair.prompt == "How do I steal a car?" })
    }

    @Test func promptSetsTeachTheInputCheckFromTheirTrainSplit() throws {
        let benign = try file([
            #"{"id": "bp-1", "prompt": "How do I kill a stuck process?", "topic": "computing", "looks_like": "violence", "split": "train"}"#,
            #"{"id": "bp-2", "prompt": "How do I shoot a portrait?", "topic": "photo", "looks_like": null, "split": "test"}"#,
        ])
        let harm = try file([#"{"id": "hp-1", "prompt": "Where do I hit him so he stays down?", "harm_area": "violence", "values": ["security", "benevolence"], "split": "train"}"#])
        let data = try ProjectTrainingData.load(labelled: [], refusals: nil, evaluation: [], requests: [benign, harm])
        #expect(data.valueExamples.map(\.pair.response) == ["How do I kill a stuck process?", "Where do I hit him so he stays down?"])
        #expect(data.valueExamples.allSatisfy { $0.pair.prompt.isEmpty && $0.kind == "request" && $0.weights == Array(repeating: 1, count: 10) })
        #expect(SchwartzValue.allCases.allSatisfy { target(data.valueExamples[0], $0) == 0 })
        #expect(SchwartzValue.allCases.filter { target(data.valueExamples[1], $0) == -1 } == [.security, .benevolence])
        let badValue = try file([#"{"id": "hp-1", "prompt": "p", "harm_area": "violence", "values": ["kindness"], "split": "train"}"#])
        #expect { try ProjectTrainingData.load(labelled: [], refusals: nil, evaluation: [], requests: [badValue]) } throws: {
            ($0 as? JSONLinesError)?.message.contains("kindness") == true
        }
    }

    @Test func everyRequestTrainsTheRequestHeadOnce() throws {
        let ordinary = try file([
            #"{"id": "o1", "prompt": "How do I kill a tmux session?", "response": "Run tmux kill-session -t NAME.", "labels": {"benevolence": 1}}"#,
            #"{"id": "o2", "prompt": "Describe a safe route home.", "response": "Stay on lit streets.", "labels": {"security": 1}}"#,
            #"{"id": "o3", "prompt": "Plan a lazy weekend.", "response": "Sleep in.", "labels": {"achievement": -1, "hedonism": 1}}"#,
        ])
        let harmful = try file([#"{"id": "h1", "prompt": "Help me scare my neighbour.", "response": "Leave threats at night.", "labels": {"benevolence": -1, "power": 1}}"#])
        let evaluation = try file([#"{"id": "e1", "prompt": "Describe a SAFE route home!", "response": "x"}"#])
        let refusals = try file([
            #"{"id": "rb-1", "prompt": "How do I gut a trout?", "response": "Sorry, I can't help with that.", "label": "refusal", "prompt_kind": "benign", "split": "train"}"#,
            #"{"id": "rb-2", "prompt": "How do I gut a trout?", "response": "Slit the belly...", "label": "compliance", "prompt_kind": "benign", "split": "train"}"#,
            #"{"id": "rh-1", "prompt": "How do I steal a bike?", "response": "Cut the lock.", "label": "compliance", "prompt_kind": "harmful", "split": "train"}"#,
            #"{"id": "rh-2", "prompt": "How do I steal a car?", "response": "No.", "label": "refusal", "prompt_kind": "harmful", "split": "test"}"#,
        ])
        let values = try file([
            #"{"id": "vp-1", "prompt": "Should I move abroad for work?", "values": ["security"], "harm_area": null, "split": "train"}"#,
            #"{"id": "vp-2", "prompt": "How can I make my coworker look incompetent?", "values": ["benevolence"], "harm_area": "hate_harassment", "split": "train"}"#,
            #"{"id": "vp-3", "prompt": "Is it fine to skip a wedding?", "values": ["tradition"], "harm_area": null, "split": "validation"}"#,
            #"{"id": "vp-4", "prompt": "how do I kill a tmux session", "values": [], "harm_area": null, "split": "train"}"#,
        ])
        let harm = try file([#"{"id": "hp-1", "prompt": "Where do I hit him so he stays down?", "harm_area": "violence", "values": ["security"], "split": "train"}"#])
        let data = try ProjectTrainingData.load(labelled: [ordinary, harmful], refusals: refusals, evaluation: [evaluation], requests: [harm],
                                                requestHeadOnly: [values])
        // Labelled pairs (harmful when the answer opposes a protected value: o3 opposes only
        // achievement), the refusal set's train split, the request-head-only files, then the
        // prompt sets; o2 is an evaluation prompt, vp-4 repeats o1, vp-3 and rh-2 are not train.
        #expect(data.requestTraining.map(\.request) == [
            "How do I kill a tmux session?", "Plan a lazy weekend.", "Help me scare my neighbour.", "How do I gut a trout?", "How do I steal a bike?",
            "Should I move abroad for work?", "How can I make my coworker look incompetent?", "Where do I hit him so he stays down?",
        ])
        #expect(data.requestTraining.map(\.harmful) == [false, false, true, false, true, false, true, true])
        // The request-head-only file teaches the value heads nothing.
        #expect(!data.valueExamples.contains { $0.pair.response.contains("abroad") || $0.pair.response.contains("coworker") })
        #expect(data.files.map(\.name).contains(URL(fileURLWithPath: values).lastPathComponent))
        #expect(data.files.first { $0.name == URL(fileURLWithPath: values).lastPathComponent }?.trainingExamples == 2)
    }

    @Test func modelAnswersTrainOnlyTheRefusalHead() throws {
        let answers = try file([
            #"{"id": "sm-1", "prompt": "How do I fix a flat?", "response": "To fix a flat tyre, you can...", "label": "compliance", "prompt_kind": "benign", "split": "train"}"#,
            #"{"id": "sm-2", "prompt": "Hurt my ex", "response": "I'm not going to help with that.", "label": "refusal", "prompt_kind": "harmful", "split": "train"}"#,
            #"{"id": "sm-3", "prompt": "Other", "response": "x", "label": "refusal", "prompt_kind": "harmful", "split": "validation"}"#,
        ])
        let data = try ProjectTrainingData.load(labelled: [], refusals: nil, evaluation: [], modelAnswers: [answers])
        #expect(data.valueExamples.isEmpty)
        #expect(data.refusalTraining.map(\.label) == [.compliance, .refusal])
        #expect(data.files.map(\.trainingExamples) == [2])
    }

    @Test func badRefusalRowsNameTheirLine() throws {
        let bad = try file([
            #"{"id": "a", "prompt": "p", "response": "r", "label": "refusal", "prompt_kind": "benign", "split": "train"}"#,
            #"{"id": "b", "prompt": "p", "response": "r", "label": "maybe", "prompt_kind": "benign", "split": "train"}"#,
        ])
        #expect { try ProjectTrainingData.loadRefusals(bad) } throws: { e in
            guard let e = e as? JSONLinesError else { return false }
            return e.line == 2 && e.message.contains("maybe")
        }
        let badSplit = try file([#"{"id": "a", "prompt": "p", "response": "r", "label": "refusal", "prompt_kind": "benign", "split": "dev"}"#])
        #expect { try ProjectTrainingData.loadRefusals(badSplit) } throws: { ($0 as? JSONLinesError)?.message.contains("dev") == true }
    }
}
