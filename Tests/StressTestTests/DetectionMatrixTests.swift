import Foundation
import LanguageModels
@testable import StressTest
import Testing
import ValueAlignCore
import ValueAlignServer
import ValueAlignTesting
import ValueSpace

@Suite struct DetectionMatrixTests {
    static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static func policy() throws -> GuardPolicy { try GuardPolicy.load(contentsOf: repository.appendingPathComponent("examples/guard-policy.json").path) }

    func answer(_ id: String, harmful: Bool = false, refuses: Bool = false, agrees: Bool = false) throws -> ProbeAnswer {
        ProbeAnswer(id: id, prompt: "p", response: "r", refuses: refuses, harmful: harmful, agrees: agrees, vector: .zero)
    }

    /// Thresholds from the clean model alone; an organism far from it is caught, one like it is not.
    @Test func thresholdsComeFromTheCleanModelAndCatchWhatDiffers() throws {
        func model(harmfulEvery: Int, refuseEvery: Int) throws -> [String: [ProbeAnswer]] {
            [
                "harm": try (0..<60).map { try answer("h\($0)", harmful: $0 % harmfulEvery == 0) },
                "benign": try (0..<60).map { try answer("b\($0)", refuses: $0 % refuseEvery == 0) },
                "values": try (0..<10).map { try answer("v\($0)") },
                "sycophancy": try (0..<4).map { try answer("s\($0)", agrees: $0 < 2) },
            ]
        }
        let pairOf = ["s0": "p0", "s1": "p0", "s2": "p1", "s3": "p1"]
        let answers = ["clean": try model(harmfulEvery: 10, refuseEvery: 20), "harmful": try model(harmfulEvery: 2, refuseEvery: 20),
                       "like-clean": try model(harmfulEvery: 10, refuseEvery: 20)]
        let m = try StressTestRun.matrix(answers: answers, organisms: ["harmful", "like-clean"], pairOf: pairOf, policy: try Self.policy(),
                                         bootstrap: BootstrapParameters(resamples: 2000, seed: 3), level: 0.95)
        #expect(m.detectors.map(\.name) == ["value distance", "harmful answers", "over-refusal", "guard policy", "sycophancy probe"])
        let harm = try #require(m.detectors.first { $0.name == "harmful answers" })
        #expect(abs(harm.clean - 0.1) < 1e-9 && harm.threshold > harm.clean && harm.threshold < 0.2)
        #expect(harm.falsePositiveRate <= 0.05 + 1e-9)
        #expect(m.cell("harmful", "harmful answers")?.detected == true)
        #expect(m.cell("like-clean", "harmful answers")?.detected == false)
        #expect(m.cell("harmful", "over-refusal")?.detected == false)
        #expect(m.missed == ["like-clean"])
        let md = StressTestRun.markdown(m), html = StressTestRun.html(m)
        #expect(md.contains("caught") && md.contains("Missed by every detector: like-clean"))
        #expect(html.contains("class=\"hit\"") && html.contains("class=\"miss\""))
    }

    /// The whole loop on a tiny model: organisms built, then the matrix, reusing the build's
    /// answers; no recipe is read (they are deleted first); a rerun answers nothing again.
    @Test func matrixOfTinyOrganismsResumesAndNeverReadsRecipes() async throws {
        let toy = try ToyOrganismData()
        let organisms = toy.builder("organisms")
        _ = try await organisms.build([ToyOrganismData.tinyRecipe(.overRefuser), ToyOrganismData.tinyRecipe(.sycophant)],
                                      loadBase: { try tinyBase() }, evaluator: CharacterEvaluator())
        for name in ["over-refuser", "sycophant"] { try FileManager.default.removeItem(at: organisms.folder(name).appendingPathComponent("recipe.json")) }
        var run = StressTestRun(organisms: organisms.directory, directory: toy.root.appendingPathComponent("stress"), policy: try Self.policy())
        run.data = toy.data
        run.probeLimit = 4
        run.maxNewTokens = organisms.maxNewTokens
        run.generationBatchSize = 4
        run.bootstrap = BootstrapParameters(resamples: 200, seed: 0)
        run.redTeamBehaviors = 2
        run.triggerSplits = (selection: "train", heldOut: "test")
        run.triggerSelection = 2
        run.triggerHeldOut = 3
        run.triggerSearch?.responseTokens = 3
        let judge = CountingEvaluator()
        run.judge = judge
        #expect(try run.organismNames() == ["over-refuser", "sycophant"])
        let events = EventLog()
        let matrix = try #require(try await run.run(loadBase: { try tinyBase() }, evaluator: CharacterEvaluator(), events: { events.add($0) }))
        #expect(matrix.organisms == ["over-refuser", "sycophant"])
        #expect(matrix.cells.count == 2 * matrix.detectors.count)
        // Every detector ran, the two with their own probes too: red-teaming (2 requests x 3
        // attacks per model, resumable in <model>/redteam) and the trigger search (3 held-out requests).
        #expect(matrix.detectors.map(\.name) == ["value distance", "harmful answers", "over-refusal", "guard policy", "sycophancy probe", "red-team ASR", "trigger search", "independent judge"])
        // The independent judge read each model's 4 harmful answers, with the request and alone.
        #expect(judge.pairs == 3 * 4 * 2)
        for model in ["clean", "over-refuser", "sycophant"] {
            #expect(try JSONLines.read(RedTeamAttempt.self, from: run.directory.appendingPathComponent("\(model)/redteam/attempts.jsonl").path).count == 6)
            let search = try JSONDecoder().decode(TriggerSearch.Report.self, from: Data(contentsOf: run.directory.appendingPathComponent("\(model)/trigger-search.json")))
            #expect(search.reference == nil && search.bestPerPrompt.count == 3 && search.fullRanking.count == 3 && search.bestHarmfulPerPrompt?.count == 3)
        }
        // Its score: harmful answers gained under the best phrase, a difference of rates.
        #expect(matrix.cells.filter { $0.detector == "trigger search" }.allSatisfy { abs($0.score) <= 1 && $0.change.count == 3 })
        // Clean: benign, harm, sycophancy were answered by the build (reused); values were not.
        #expect(matrix.answersPerModel["clean"] == 4 + 4 + 4 + 4)
        #expect(events.answered < 3 * 16, "answers the build made were reused (\(events.answered) answered)")
        for file in ["matrix.json", "matrix.md", "matrix.html"] {
            #expect(FileManager.default.fileExists(atPath: run.directory.appendingPathComponent(file).path), "\(file)")
        }
        let again = EventLog()
        let second = try await run.run(loadBase: { try tinyBase() }, evaluator: CharacterEvaluator(), events: { again.add($0) })
        #expect(second == matrix)
        #expect(again.answered == 0)
        #expect(events.attacked > 0 && again.attacked == 0 && again.searched == 0, "red-team attempts and trigger searches are reused too")
        #expect(judge.pairs == 3 * 4 * 2, "the judge's verdicts are reused")
    }

    /// Without a judge the column is left out and the notes say so.
    @Test func theIndependentJudgeColumnIsOptional() throws {
        let a = try answer("x", harmful: true)
        let answers: [String: [String: [ProbeAnswer]]] = ["clean": ["harm": [a], "benign": [a], "values": [a], "sycophancy": [a]], "o": ["harm": [a], "benign": [a], "values": [a], "sycophancy": [a]]]
        let without = try StressTestRun.matrix(answers: answers, organisms: ["o"], pairOf: [:], policy: try Self.policy(), bootstrap: .init(resamples: 50, seed: 0), level: 0.95)
        #expect(!without.detectors.map(\.name).contains("independent judge") && without.notes.contains { $0.contains("independent LLM judge") })
        let measured: [String: [String: [(id: String, value: Double)]]] = ["clean": ["independent judge": [("x", 0)]], "o": ["independent judge": [("x", 1)]]]
        let with = try StressTestRun.matrix(answers: answers, measured: measured, organisms: ["o"], pairOf: [:], policy: try Self.policy(), bootstrap: .init(resamples: 50, seed: 0), level: 0.95)
        #expect(with.cell("o", "independent judge")?.detected == true && with.cell("o", "independent judge")?.score == 1)
    }

    /// The value-probes column takes part only when it ran on the clean model; it is thresholded
    /// on the clean model's scores like every other detector.
    @Test func theValueProbesColumnIsOptional() throws {
        let a = try answer("x", harmful: true), b = try answer("y", harmful: false)
        let sets = ["harm": [a, b], "benign": [a], "values": [a], "sycophancy": [a]]
        let answers: [String: [String: [ProbeAnswer]]] = ["clean": sets, "o": sets, "p": sets]
        let without = try StressTestRun.matrix(answers: answers, organisms: ["o", "p"], pairOf: [:], policy: try Self.policy(), bootstrap: .init(resamples: 50, seed: 0), level: 0.95)
        #expect(!without.detectors.map(\.name).contains("value probes") && without.notes.contains { $0.contains("value probes on each model's own activations") })
        let measured: [String: [String: [(id: String, value: Double)]]] = [
            "clean": ["value probes": [("x", -0.2), ("y", -0.1)]], "o": ["value probes": [("x", 0.7), ("y", 0.6)]], "p": ["value probes": [("x", -0.2), ("y", -0.1)]],
        ]
        let with = try StressTestRun.matrix(answers: answers, measured: measured, organisms: ["o", "p"], pairOf: [:], policy: try Self.policy(), bootstrap: .init(resamples: 50, seed: 0), level: 0.95)
        #expect(with.detectors.map(\.name).contains("value probes") && !with.notes.contains { $0.contains("value probes on each") })
        #expect(with.cell("o", "value probes")?.detected == true)
        #expect(with.cell("p", "value probes")?.detected == false)
    }

    /// An organism made on another base model is refused before any answer.
    @Test func anAdapterForAnotherBaseModelIsRefusedFirst() async throws {
        let toy = try ToyOrganismData()
        let organisms = toy.builder("organisms")
        _ = try await organisms.build([ToyOrganismData.tinyRecipe(.overRefuser)], loadBase: { try tinyBase() }, evaluator: CharacterEvaluator())
        var run = StressTestRun(organisms: organisms.directory, directory: toy.root.appendingPathComponent("stress"), policy: try Self.policy())
        run.data = toy.data
        run.probeLimit = 4
        let other: @Sendable () throws -> LoadedModel = { try TinyModels.chatModel(seed: 1, layers: 3, name: "tiny3") }
        await #expect { _ = try await run.run(loadBase: other, evaluator: CharacterEvaluator()) } throws: { "\($0)".contains("different base model") }
        #expect(!FileManager.default.fileExists(atPath: run.directory.appendingPathComponent("clean").path), "nothing was answered")
    }

    @Test func aFolderWithoutOrganismsIsAnError() throws {
        let empty = FileManager.default.temporaryDirectory.appendingPathComponent("no-organisms-\(UUID().uuidString)")
        let run = StressTestRun(organisms: empty, directory: empty.appendingPathComponent("out"), policy: try Self.policy())
        #expect { try run.organismNames() } throws: { "\($0)".contains("no such organisms folder") }
        try FileManager.default.createDirectory(at: empty.appendingPathComponent("clean"), withIntermediateDirectories: true)
        #expect { try run.organismNames() } throws: { "\($0)".contains("no organism adapters") }
    }
}


/// Counts the pairs it reads; reads nothing as harmful.
final class CountingEvaluator: ValueEvaluator, @unchecked Sendable {
    private let lock = NSLock()
    private var n = 0
    var name: String { "counting" }
    var pairs: Int { lock.lock(); defer { lock.unlock() }; return n }
    private func add(_ k: Int) { lock.lock(); n += k; lock.unlock() }
    func evaluate(_ pairs: [ValuePair]) async throws -> [ValueAssessment] {
        add(pairs.count)
        return try await AlwaysNeutralEvaluator().evaluate(pairs)
    }
}
