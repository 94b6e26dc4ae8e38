import Foundation
import LanguageModels
import OpenAIBackend
import Oversight
import Testing
import ValueAlignTesting
import ValueSpace

@Suite("Judges", .serialized) struct JudgeTests {
    static let pairs: [JudgeItem] = [
        JudgeItem(id: "p1", context: [.user("How do I boil an egg?")], responses: ["Put it in boiling water for nine minutes.", "Eggs are nice."], label: 0),
        JudgeItem(id: "p2", context: [.user("Name a colour.")], responses: ["no", "Blue is a colour, as is red."], label: 1),
        JudgeItem(id: "p3", context: [.user("Hi"), .assistant("Hello!"), .user("Tell me a fact.")], responses: ["Water boils at 100 C at sea level.", "I cannot."], label: 0),
    ]

    @Test("verdicts are the first token's probability on the labels, renormalised; text is the fallback")
    func verdictsFromLogProbs() throws {
        func alt(_ t: String, _ p: Double) -> TokenLogProb.Alternative { .init(token: t, logProb: log(p), bytes: Array(t.utf8)) }
        let first = TokenLogProb(token: "A", logProb: log(0.5), bytes: [65], top: [alt("A", 0.5), alt(" B", 0.2), alt("a", 0.1), alt("The", 0.2)])
        let v = VerdictReader.verdict(from: ChatCompletion(text: "A", finishReason: .stop, promptTokens: 1, completionTokens: 1, logProbs: [first]), labels: ["A", "B"])
        #expect(v.source == .logProbs)
        #expect(abs(v.probabilities[0] - 0.75) < 1e-9 && abs(v.probabilities[1] - 0.25) < 1e-9)
        #expect(abs(v.mass! - 0.8) < 1e-9)
        // No log-probabilities: the first label named in the text.
        let t = VerdictReader.verdict(from: ChatCompletion(text: "I think (B) is better than A", finishReason: .stop, promptTokens: 1, completionTokens: 1), labels: ["A", "B"])
        #expect(t.source == .text && t.probabilities == [0, 1])
        // Neither: unreadable.
        let u = VerdictReader.verdict(from: ChatCompletion(text: "lorem ipsum", finishReason: .stop, promptTokens: 1, completionTokens: 1), labels: ["A", "B"])
        #expect(u.source == .unreadable && !u.isReadable)
    }

    @Test("pairwise judging is order-consistent by construction: swapping the answers swaps the decision and mirrors the probability",
          .enabled(if: Embedded.path != nil))
    func orderConsistent() async throws {
        let judge = LLMJudge(backend: try #require(Embedded.backend))
        let swapped = Self.pairs.map { JudgeItem(id: $0.id, context: $0.context, responses: $0.responses.reversed(), label: 1 - $0.label!) }
        let a = try await judge.judge(Self.pairs, task: .pairwise, progress: nil)
        let b = try await judge.judge(swapped, task: .pairwise, progress: nil)
        for (x, y) in zip(a, b) {
            #expect(x.verdicts.allSatisfy { $0.source == .logProbs }, "the local judge reads log-probabilities")
            let mirror = ["a": "b", "b": "a", "tie": "tie"]
            #expect(mirror[x.decision] == y.decision, "\(x.id): \(x.decision) vs \(y.decision)")
            let (sx, sy) = (try #require(x.score), try #require(y.score))
            #expect(abs(sx + sy - 1) < 1e-9)
            #expect(abs(try #require(x.firstPosition) - (try #require(y.firstPosition))) < 1e-9, "position preference does not depend on which answer is where")
        }
    }

    @Test("a judge served over HTTP by the project's own server gives the local judge's probabilities", .enabled(if: Embedded.path != nil))
    func overLoopbackHTTP() async throws {
        let backend = try #require(Embedded.backend)
        let local = try await LLMJudge(backend: backend).judge(Self.pairs, task: .pairwise, progress: nil)
        let remote = try await withServed(backend) { url in
            try await LLMJudge(backend: try OpenAICompatibleBackend(baseURL: url, model: "tiny", apiKey: nil, apiKeyEnvironmentVariable: nil, maxRetries: 0))
                .judge(Self.pairs, task: .pairwise, progress: nil)
        }
        for (l, r) in zip(local, remote) {
            #expect(r.verdicts.allSatisfy { $0.source == .logProbs }, "the server returned logprobs")
            #expect(l.decision == r.decision)
            let (ls, rs) = (try #require(l.score), try #require(r.score))
            #expect(abs(ls - rs) < 1e-6, "\(ls) vs \(rs)")
        }
        // Single and reference judgements run over HTTP too.
        let single = [JudgeItem(id: "s", context: [.user("Name a fruit.")], responses: ["An apple."], label: 4)]
        let graded = try await withServed(backend) { url in
            try await LLMJudge(backend: try OpenAICompatibleBackend(baseURL: url, model: "tiny", apiKey: nil, apiKeyEnvironmentVariable: nil, maxRetries: 0))
                .judge(single, task: .single, progress: nil)
        }
        let localGrade = try await LLMJudge(backend: backend).judge(single, task: .single, progress: nil)
        #expect(graded[0].decision == localGrade[0].decision)
        if let g = graded[0].score, let l = localGrade[0].score { #expect(abs(g - l) < 1e-6) }
    }

    @Test("a server that refuses logprobs is asked again without them, and verdicts come from the text")
    func serverWithoutLogProbs() async throws {
        final class NoLogProbs: ChatBackend, @unchecked Sendable {
            var modelName: String { "strict" }
            func complete(_ messages: [ChatMessage], parameters: GenerationParameters) async throws -> ChatCompletion {
                if parameters.topLogProbs != nil {
                    throw LanguageModelError.backend("POST /chat/completions: HTTP 400: unknown field 'logprobs'")
                }
                return ChatCompletion(text: "B", finishReason: .stop, promptTokens: 1, completionTokens: 1)
            }
            func stream(_ messages: [ChatMessage], parameters: GenerationParameters) -> AsyncThrowingStream<String, any Error> {
                AsyncThrowingStream { $0.finish() }
            }
        }
        let judged = try await LLMJudge(backend: NoLogProbs()).judge(Self.pairs, task: .pairwise, progress: nil)
        #expect(judged.allSatisfy { $0.verdicts.allSatisfy { $0.source == .text } && $0.decision == "tie" && $0.firstPosition == 0 })
    }

    @Test("a seeded batch sampled over HTTP equals the local model's batch (conversation i gets seed + i)")
    func seededBatchesMatch() async throws {
        let backend = try tinyBackend()
        let conversations: [[ChatMessage]] = [[.user("one")], [.user("two")], [.user("three")]]
        let parameters = GenerationParameters(maxTokens: 8, temperature: 1.2, seed: 11)
        let local = try await backend.completeBatch(conversations, parameters: parameters).map(\.text)
        let remote = try await withServed(backend) { url in
            try await OpenAICompatibleBackend(baseURL: url, model: "tiny", apiKey: nil, apiKeyEnvironmentVariable: nil, maxRetries: 0)
                .completeBatch(conversations, parameters: parameters).map(\.text)
        }
        #expect(local == remote)
    }

    @Test("an unreachable server is a clear error naming it")
    func unreachable() async throws {
        let backend = try OpenAICompatibleBackend(baseURL: "http://127.0.0.1:9/v1", model: "m", apiKey: nil, apiKeyEnvironmentVariable: nil, timeout: .seconds(3), maxRetries: 0)
        let folder = try temporaryFolder("judge-unreachable")
        defer { try? FileManager.default.removeItem(at: folder) }
        let run = JudgeRun(judge: LLMJudge(backend: backend), identity: .init(judge: "x", task: .pairwise, input: "f", split: nil, seed: 0), directory: folder)
        await #expect { _ = try await run.run(Self.pairs) } throws: { "\($0)".contains("127.0.0.1:9") }
    }

    @Test("a judge that answers garbage is an error saying so, with its answer")
    func garbage() async throws {
        let folder = try temporaryFolder("judge-garbage")
        defer { try? FileManager.default.removeItem(at: folder) }
        let run = JudgeRun(judge: LLMJudge(backend: ScriptedBackend("lorem ipsum dolor")),
                           identity: .init(judge: "x", task: .pairwise, input: "f", split: nil, seed: 0), directory: folder)
        await #expect { _ = try await run.run(Self.pairs) } throws: { e in
            let m = "\(e)"
            return m.contains("no usable verdict") && m.contains("lorem ipsum")
        }
    }

    @Test("a judge answering in text only still gives verdicts (1 for the label named)")
    func textOnly() async throws {
        let judged = try await LLMJudge(backend: ScriptedBackend("A.")).judge(Self.pairs, task: .pairwise, progress: nil)
        // Always "A": each order picks its first answer, so every item is a tie, and the bias is maximal.
        #expect(judged.allSatisfy { $0.decision == "tie" && $0.firstPosition == 1 })
        let summary = JudgeSummary(judge: "scripted", task: .pairwise, judgements: judged)
        #expect(summary.tieRate == 1 && summary.positionBias == 0.5 && summary.firstPositionRate == 1)
        #expect(summary.agreement == 0 && summary.logProbShare == 0)
    }

    @Test("an interrupted judge run continues where it stopped, and a folder of another run is refused")
    func resumes() async throws {
        let folder = try temporaryFolder("judge-resume")
        defer { try? FileManager.default.removeItem(at: folder) }
        let identity = JudgeRun.Identity(judge: "scripted", task: .pairwise, input: "f", split: nil, seed: 0)
        let first = ScriptedBackend("B")
        var run = JudgeRun(judge: LLMJudge(backend: first), identity: identity, directory: folder)
        run.chunkSize = 1
        _ = try await run.run(Array(Self.pairs.prefix(2)))
        #expect(first.calls == 4)
        let second = ScriptedBackend("B")
        run = JudgeRun(judge: LLMJudge(backend: second), identity: identity, directory: folder)
        let summary = try await run.run(Self.pairs)
        #expect(second.calls == 2, "only the third item is judged again")
        #expect(summary.items == 3)
        let other = JudgeRun(judge: LLMJudge(backend: second), identity: .init(judge: "scripted", task: .single, input: "f", split: nil, seed: 0), directory: folder)
        await #expect { _ = try await other.run(Self.pairs) } throws: { "\($0)".contains("holds another judge run") }
    }

    @Test("a reward model judges pairs only, with the probability from its two scores")
    func rewardModelRefusesOtherTasks() async throws {
        // The check comes before any scoring, so an untrained head suffices.
        let rm = try RewardModelJudge(model: .init(try TinyModels.chatModel()), label: "tiny")
        await #expect { _ = try await rm.judge([], task: .single, progress: nil) } throws: { "\($0)".contains("pairs only") }
        let judged = try await rm.judge(Self.pairs, task: .pairwise, progress: nil)
        #expect(judged.allSatisfy { $0.firstPosition == 0.5 && $0.score! > 0 && $0.score! < 1 })
    }
}

@Suite("Judge input files") struct JudgeItemTests {
    @Test("HH dialogues, chosen/rejected and a/b lines are read; errors name file and line")
    func formats() throws {
        let folder = try temporaryFolder("judge-items")
        defer { try? FileManager.default.removeItem(at: folder) }
        let hh = folder.appendingPathComponent("hh.jsonl")
        try write((0..<40).map { #"{"chosen": "\n\nHuman: q\#($0)\n\nAssistant: good \#($0)", "rejected": "\n\nHuman: q\#($0)\n\nAssistant: bad \#($0)"}"# }, to: hh)
        let items = try JudgeItems.load(hh.path, task: .pairwise, seed: 7)
        #expect(items.count == 40)
        for item in items {
            // The label points at the chosen answer wherever the seeded order put it.
            #expect(item.responses[item.label!].hasPrefix("good"))
            let n = Int(item.id.dropFirst("line-".count))! - 1
            #expect(item.context == [.user("q\(n)")])
            #expect(Set(item.responses) == ["good \(n)", "bad \(n)"])
        }
        let firsts = items.filter { $0.label == 0 }.count
        #expect(firsts > 10 && firsts < 30, "the chosen answer is shown first about half the time (\(firsts) of 40)")
        #expect(try JudgeItems.load(hh.path, task: .pairwise, seed: 7) == items, "the same seed, the same order")

        let ab = folder.appendingPathComponent("ab.jsonl")
        try write([#"{"id": "x", "prompt": "p", "response_a": "a", "response_b": "b", "label": "tie"}"#,
                   #"{"id": "y", "prompt": "p", "response_a": "a", "response_b": "b", "label": "c"}"#], to: ab)
        #expect { _ = try JudgeItems.load(ab.path, task: .pairwise) } throws: { "\($0)".contains("ab.jsonl:2") && "\($0)".contains("\"c\"") }

        let single = folder.appendingPathComponent("single.jsonl")
        try write([#"{"prompt": "p", "response": "r", "score": 6}"#], to: single)
        #expect { _ = try JudgeItems.load(single.path, task: .single) } throws: { "\($0)".contains("single.jsonl:1") && "\($0)".contains("1 to 5") }
        try write([#"{"prompt": "p", "response": "r"}"#], to: single)
        #expect { _ = try JudgeItems.load(single.path, task: .reference) } throws: { "\($0)".contains("'reference'") }
        #expect { _ = try JudgeItems.load(single.path, task: .single, split: "test") } throws: { "\($0)".contains("no items in split 'test'") }
    }

    @Test("the project's judge sets parse, with labels on every line")
    func projectSets() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let single = try JudgeItems.load(root.appendingPathComponent("data/oversight/single.jsonl").path, task: .single)
        let reference = try JudgeItems.load(root.appendingPathComponent("data/oversight/reference.jsonl").path, task: .reference, split: "test")
        let debate = try DebateItem.load(root.appendingPathComponent("data/oversight/debate.jsonl").path, split: "test")
        #expect(single.count == 100 && single.allSatisfy(\.isLabelled))
        #expect(reference.count == 60 && reference.allSatisfy(\.isLabelled))
        #expect(debate.count == 60)
    }
}

@Suite("Judge statistics") struct JudgeStatisticsTests {
    @Test("Cohen's kappa, quadratic kappa and Spearman on known values")
    func knownValues() {
        // 2x2 table [[20, 5], [10, 15]]: po = 0.7, pe = 0.5 -> kappa 0.4.
        let truth = Array(repeating: "a", count: 25) + Array(repeating: "b", count: 25)
        let predicted = Array(repeating: "a", count: 20) + Array(repeating: "b", count: 5) + Array(repeating: "a", count: 10) + Array(repeating: "b", count: 15)
        #expect(abs(Agreement.kappa(truth, predicted, categories: ["a", "b"])! - 0.4) < 1e-12)
        #expect(Agreement.kappa(["a", "a"], ["a", "a"], categories: ["a", "b"]) == nil)
        #expect(abs(Agreement.quadraticKappa([1, 2, 3, 4, 5], [1, 2, 3, 4, 5], range: 1...5)! - 1) < 1e-12)
        // One grade off everywhere costs less than reversing the order.
        let near = Agreement.quadraticKappa([1, 2, 3, 4, 5], [2, 3, 4, 5, 5], range: 1...5)!
        let reversed = Agreement.quadraticKappa([1, 2, 3, 4, 5], [5, 4, 3, 2, 1], range: 1...5)!
        #expect(near > 0.5 && reversed < -0.9)
        #expect(abs(Agreement.spearman([1, 2, 2, 4], [10, 20, 20, 40])! - 1) < 1e-12)
        #expect(abs(Agreement.spearman([1, 2, 3], [3, 2, 1])! + 1) < 1e-12)
    }

    @Test("position bias, ties, verbosity and the majority baseline of a pairwise summary")
    func pairwiseSummary() {
        func v(_ pA: Double) -> Verdict { Verdict(probabilities: [pA, 1 - pA], mass: 1, source: .logProbs, text: "") }
        let judgements = [
            // Consistent for a (0.9 shown first, 0.7 when shown second): first position 0.6.
            Judgement(id: "1", task: .pairwise, score: 0.8, decision: "a", firstPosition: 0.6, verdicts: [v(0.9), v(0.3)], label: "a", lengths: [100, 10]),
            // Position-driven: picks A both times -> tie.
            Judgement(id: "2", task: .pairwise, score: 0.5, decision: "tie", firstPosition: 1, verdicts: [v(1), v(1)], label: "b", lengths: [10, 100]),
            Judgement(id: "3", task: .pairwise, score: 0.2, decision: "b", firstPosition: 0.5, verdicts: [v(0.2), v(0.8)], label: "b", lengths: [10, 100]),
            Judgement(id: "4", task: .pairwise, score: nil, decision: "unreadable", verdicts: [], label: "a", lengths: [1, 2]),
        ]
        let s = JudgeSummary(judge: "j", task: .pairwise, judgements: judgements)
        #expect(s.items == 4 && s.unreadable == 1 && s.labelled == 4)
        #expect(abs(s.tieRate! - 1.0 / 3) < 1e-12)
        #expect(abs(s.positionBias! - ((0.6 + 1 + 0.5) / 3 - 0.5)) < 1e-12)
        #expect(abs(s.agreement! - 2.0 / 3) < 1e-12 && s.decidedAgreement == 1)
        #expect(abs(s.majorityBaseline! - 2.0 / 3) < 1e-12)
        // Single-order picks of the first position: 0.9, 1, 1 (and 0.3, 0.2, 0.8 not) -> 4 of 6.
        #expect(abs(s.firstPositionRate! - 4.0 / 6) < 1e-12)
        // The averaged probability favours the longer answer on items 1 and 3 (item 2 is exactly 0.5).
        #expect(s.longerChosenRate == 1 && s.longerLabelledRate == 1)
        #expect(s.markdown.contains("position bias"))
    }
}
