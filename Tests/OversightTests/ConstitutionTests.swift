import Evaluators
import Foundation
import LanguageModels
import Oversight
import Testing
import ValueAlignTesting
import ValueSpace

@Suite("Constitutions") struct ConstitutionTests {
    @Test("from a target profile: a principle per value it weighs, weighted, plus helpfulness")
    func fromProfile() throws {
        let target = try ProfileStore.defaultTarget()
        let c = try Constitution.fromProfile(target)
        let weighed = SchwartzValue.allCases.filter { abs(target.vector[$0]) >= Constitution.profileThreshold }
        #expect(c.principles.count == weighed.count + 1)
        for v in weighed {
            let p = try #require(c.principles.first { $0.id.hasSuffix(v.rawValue) })
            #expect(p.text.contains(v.displayName.lowercased()))
            #expect(abs(p.weight - abs(target.vector[v])) < 1e-12)
        }
        // Drawn in proportion to weight, reproducibly.
        #expect(c.principle(seed: 5) == c.principle(seed: 5))
        let draws = (0..<4000).map { c.principle(seed: UInt64($0)).id }
        let top = c.principles.max { $0.weight < $1.weight }!
        let share = Double(draws.filter { $0 == top.id }.count) / 4000
        let expected = top.weight / c.principles.reduce(0) { $0 + $1.weight }
        #expect(abs(share - expected) < 0.03, "\(share) vs \(expected)")
        // A profile that weighs nothing has no constitution.
        let flat = ValueProfile(name: "flat", kind: .target, vector: .zero)
        #expect { _ = try Constitution.fromProfile(flat) } throws: { "\($0)".contains("no principles") }
    }

    @Test("files: text with one principle per line, JSON; empty and broken ones are clear errors")
    func files() throws {
        let folder = try temporaryFolder("constitution")
        defer { try? FileManager.default.removeItem(at: folder) }
        let text = folder.appendingPathComponent("mine.txt")
        try write(["# my principles", "", "Be honest.", "Respect the safety of others."], to: text)
        let c = try Constitution.load(text.path)
        #expect(c.name == "mine" && c.principles.map(\.text) == ["Be honest.", "Respect the safety of others."])
        #expect(c.principles[0].critique.contains("Be honest.") && c.principles[0].revision.contains("Be honest."))
        let json = folder.appendingPathComponent("c.json")
        try c.write(to: json.path)
        #expect(try Constitution.load(json.path) == c)
        let empty = folder.appendingPathComponent("empty.txt")
        try write(["# nothing here", "   "], to: empty)
        #expect { _ = try Constitution.load(empty.path) } throws: { "\($0)".contains("empty.txt has no principles") }
        try #"{"principles": [{"id": "x", "text": "a"}, {"id": "x", "text": "b"}]}"#.write(to: json, atomically: true, encoding: .utf8)
        #expect { _ = try Constitution.load(json.path) } throws: { "\($0)".contains("c.json") && "\($0)".contains("appears twice") }
        try #"{"principles": [{"text": "a", "weight": -1}]}"#.write(to: json, atomically: true, encoding: .utf8)
        #expect { _ = try Constitution.load(json.path) } throws: { "\($0)".contains("weight") }
        #expect { _ = try Constitution.load(folder.appendingPathComponent("none.txt").path) } throws: { "\($0)".contains("cannot read") }
    }

    @Test("critique-and-revise: the critique request, then the rewrite with the critique; lead-ins are cut")
    func loop() async throws {
        let c = try Constitution(name: "t", principles: [.init(id: "kind", text: "Be kind.")])
        final class Recorder: @unchecked Sendable { var batches: [[[ChatMessage]]] = [] }
        let recorder = Recorder()
        let records = try await CritiqueAndRevise(constitution: c).run([([.user("hi")], "go away")], seeds: [1]) { conversations in
            recorder.batches.append(conversations)
            return recorder.batches.count == 1 ? ["It was rude."] : ["Rewritten answer: Hello! How can I help?"]
        }
        #expect(records == [RevisionRecord(principle: "kind", critique: "It was rude.", revised: "Hello! How can I help?")])
        let critique = recorder.batches[0][0], revision = recorder.batches[1][0]
        #expect(critique.count == 3 && critique[1] == .assistant("go away") && critique[2].content.contains(c.principles[0].critique))
        // The rewrite is asked as an answer to the user: the instructions (request, earlier answer,
        // critique) in the system turn, the user's conversation after it.
        #expect(revision.count == 2 && revision[0].role == .system && revision[1] == .user("hi"))
        #expect(revision[0].content.contains(c.principles[0].revision) && revision[0].content.contains("go away") && revision[0].content.contains("It was rude."))
        #expect(CritiqueAndRevise.cleanRevision("Sure, here is the revised response:\n\"Be well.\"") == "Be well.")
        // An existing system turn keeps its text, with the instructions after it.
        let withSystem = CritiqueAndRevise.revisionConversation([.system("Be brief."), .user("hi")], answer: "a", critique: "c", request: "r")
        #expect(withSystem.count == 2 && withSystem[0].content.hasPrefix("Be brief.\n\nr"))
    }

    @Test("a rewrite is trained on only when it is an answer: not commentary on one, not a loop, not empty")
    func usableRevisions() {
        for good in ["Water the tomatoes at the base in the morning, and mulch to keep the soil moist.",
                     "Sure! Ask your neighbour for a chat over tea and listen first.", "Yes."] {
            #expect(CritiqueAndRevise.isUsableRevision(good), "\(good)")
        }
        for bad in ["The response is not its original request. It is not its original request.",
                    "This revised answer focuses on kindness.", "Here is a rewritten version of the answer: be kind.",
                    "My response should respect the rules.", "In the original response I was rude.", "   ",
                    "go go go go go go go go go go go go go go go go"] {
            #expect(!CritiqueAndRevise.isUsableRevision(bad), "\(bad)")
        }
    }
}

/// Fails its `failAt`-th batch call, like a process stopped mid-run.
final class InterruptedBackend: ChatBackend, @unchecked Sendable {
    let base: any ChatBackend
    let failAt: Int
    private var calls = 0
    init(_ base: any ChatBackend, failAt: Int) { self.base = base; self.failAt = failAt }
    var modelName: String { base.modelName }
    func complete(_ messages: [ChatMessage], parameters: GenerationParameters) async throws -> ChatCompletion {
        try await completeBatch([messages], parameters: parameters)[0]
    }
    func completeBatch(_ conversations: [[ChatMessage]], parameters: GenerationParameters) async throws -> [ChatCompletion] {
        calls += 1
        if calls == failAt { throw CancellationError() }
        return try await base.completeBatch(conversations, parameters: parameters)
    }
    func stream(_ messages: [ChatMessage], parameters: GenerationParameters) -> AsyncThrowingStream<String, any Error> { base.stream(messages, parameters: parameters) }
}

@Suite("cai generate") struct ConstitutionalGenerationTests {
    func job(_ backend: any ChatBackend, folder: URL) throws -> ConstitutionalGeneration {
        let target = try ProfileStore.defaultTarget()
        let settings = ConstitutionalGeneration.Settings(model: "tiny", constitution: try Constitution.fromProfile(target), target: target.name,
                                                         evaluator: "lexicon", seed: 9, maxTokens: 12, critiqueTokens: 8, temperature: 1, minimumGap: 0)
        var job = ConstitutionalGeneration(backend: backend, reward: BaseAlignReward(evaluator: LexiconValueEvaluator(), target: target),
                                           settings: settings, directory: folder)
        job.batchSize = 2
        return job
    }

    static let prompts: [(id: String, messages: [ChatMessage])] = (0..<6).map { ("p\($0)", [.user("Tell me about kindness \($0).")]) }

    @Test("writes records, SFT data and preference pairs; an interrupted run resumes to the uninterrupted result")
    func generatesAndResumes() async throws {
        let whole = try temporaryFolder("cai-whole"), resumed = try temporaryFolder("cai-resumed")
        defer { try? FileManager.default.removeItem(at: whole); try? FileManager.default.removeItem(at: resumed) }
        let summary = try await job(try tinyBackend(), folder: whole).run(Self.prompts)
        #expect(summary.prompts == 6)
        let records = try String(contentsOf: whole.appendingPathComponent("records.jsonl"), encoding: .utf8).split(separator: "\n")
        #expect(records.count == 6)
        let sft = try String(contentsOf: whole.appendingPathComponent("sft.jsonl"), encoding: .utf8).split(separator: "\n")
        let pairs = try String(contentsOf: whole.appendingPathComponent("pairs.jsonl"), encoding: .utf8).split(separator: "\n")
        #expect(sft.count == summary.kept && pairs.count == summary.kept)
        if let line = sft.first { #expect(line.contains("\"messages\"") && line.contains("\"assistant\"")) }
        if let line = pairs.first { #expect(line.contains("\"chosen\"") && line.contains("\"rejected\"")) }

        // Stopped in the second batch (call 4: batch 1 took answers, critiques, revisions).
        await #expect(throws: CancellationError.self) { _ = try await job(InterruptedBackend(try tinyBackend(), failAt: 4), folder: resumed).run(Self.prompts) }
        let partial = try String(contentsOf: resumed.appendingPathComponent("records.jsonl"), encoding: .utf8).split(separator: "\n")
        #expect(partial.count == 2)
        let counting = InterruptedBackend(try tinyBackend(), failAt: Int.max)
        let again = try await job(counting, folder: resumed).run(Self.prompts)
        #expect(again == summary)
        #expect(try String(contentsOf: resumed.appendingPathComponent("records.jsonl"), encoding: .utf8).split(separator: "\n") == records)
        // Records missing out of order (not a prefix) are redone with the same seeds.
        let path = resumed.appendingPathComponent("records.jsonl")
        try (records.enumerated().filter { $0.offset != 1 && $0.offset != 4 }.map { String($0.element) }.joined(separator: "\n") + "\n")
            .write(to: path, atomically: true, encoding: .utf8)
        _ = try await job(try tinyBackend(), folder: resumed).run(Self.prompts)
        let redone = try String(contentsOf: path, encoding: .utf8).split(separator: "\n")
        #expect(Set(redone) == Set(records), "the same records, in another order")
        // Another constitution in the same folder is refused.
        var other = try job(try tinyBackend(), folder: resumed)
        other = ConstitutionalGeneration(backend: other.backend, reward: other.reward,
                                         settings: .init(model: "tiny", constitution: try Constitution(name: "x", principles: [.init(id: "a", text: "Be brief.")]),
                                                         target: "t", evaluator: "lexicon"), directory: resumed)
        await #expect { _ = try await other.run(Self.prompts) } throws: { "\($0)".contains("other settings") }
    }
}
