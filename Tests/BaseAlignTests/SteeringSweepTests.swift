@testable import BaseAlign
import Foundation
import LanguageModels
import MLXEngine
import Testing
import ValueAlignTesting
import ValueSpace

/// The layer x multiplier sweep on a tiny random model scored by the letter evaluator: every cell
/// measured against the unsteered model, the report files, resuming, and a folder of another sweep
/// refused.
@Suite struct SteeringSweepTests {
    func vector(_ c: ModelConfiguration, name: String = "benevolence") -> SteeringVector {
        let d = Fixtures.normalValues(c.hiddenSize, seed: 9, std: 1).map { Float($0) }
        return SteeringVector(directions: [1: d, 2: d.map { -$0 }], layers: [1], multiplier: 1, hiddenSize: c.hiddenSize,
                              modelFingerprint: PEFTAdapter.fingerprint(c), name: name, method: "caa")
    }

    func parameters(_ data: ToyData) throws -> SteeringSweep.Parameters {
        var p = SteeringSweep.Parameters(
            layers: [1, 2], multipliers: [2, 8],
            sets: EvaluationSets(values: data.path("values.jsonl"), text: data.path("text.txt"), split: "train", limit: 5),
            target: try ProfileStore.defaultTarget())
        p.maxNewTokens = 8
        p.batchSize = 4
        p.maxPerplexityRatio = 1000  // random weights: any effect counts here
        p.bootstrap = BootstrapParameters(resamples: 200, seed: 1)
        return p
    }

    @Test func sweepsEveryCellAgainstTheUnsteeredModelAndResumes() async throws {
        let data = try ToyData()
        let loaded = try TinyModels.chatModel(seed: 3, layers: 3)
        let c = loaded.model.configuration
        let v = vector(c)
        let out = data.root.appendingPathComponent("sweep")
        let sweep = try SteeringSweep(parameters: try parameters(data), directory: out, vector: v, vectorPath: "v.safetensors")
        let backend = LocalChatBackend(loaded)
        let report = try await sweep.run(backend: backend, evaluator: LetterEvaluator())
        #expect(report.cells.count == 4)
        #expect(report.cells.map(\.layer) == [1, 1, 2, 2] && report.cells.map(\.multiplier) == [2, 8, 2, 8])
        for cell in report.cells {
            #expect(cell.answers == 5)
            #expect(cell.perplexityRatio != nil)
            #expect(cell.wrongWay == Int((cell.wrongWayShare * 5).rounded()))
        }
        // Strong steering of a random model changes its answers: some cell's effect is not zero.
        #expect(report.cells.contains { abs($0.effect.value) > 1e-6 })
        #expect(try await backend.perform { loaded, _ in loaded.model.steering == nil }, "the model is left unsteered")
        for file in ["sweep.json", "report.json", "report.md", "report.html", "cells/unsteered/summary.json", "cells/L2_x8.0/answers.jsonl"] {
            #expect(FileManager.default.fileExists(atPath: out.appendingPathComponent(file).path), "\(file)")
        }
        let html = try String(contentsOf: out.appendingPathComponent("report.html"), encoding: .utf8)
        #expect(html.contains("Perplexity ratio") && html.contains("wrong way"))
        if let best = report.recommended {
            let chosen = try SteeringVector.load(out.appendingPathComponent("recommended.safetensors").path)
            #expect(chosen.layers == [best.layer] && chosen.multiplier == best.multiplier)
            #expect(best.effect.value == report.cells.filter { $0.effect.value > 0 }.map(\.effect.value).max())
        } else {
            #expect(report.cells.allSatisfy { $0.effect.value <= 0 })
        }
        // A second run reads the finished cells back: same figures, no new answers.
        let stamp = try FileManager.default.attributesOfItem(atPath: out.appendingPathComponent("cells/L1_x2.0/summary.json").path)[.modificationDate] as? Date
        let again = try await sweep.run(backend: backend, evaluator: LetterEvaluator())
        #expect(again.cells == report.cells)
        let stamp2 = try FileManager.default.attributesOfItem(atPath: out.appendingPathComponent("cells/L1_x2.0/summary.json").path)[.modificationDate] as? Date
        #expect(stamp == stamp2)
        // Another vector in the same folder is refused.
        var other = v
        other.directions[1] = other.directions[1]!.map { $0 * 2 }
        let foreign = try SteeringSweep(parameters: try parameters(data), directory: out, vector: other, vectorPath: "w.safetensors")
        await #expect { _ = try await foreign.run(backend: backend, evaluator: LetterEvaluator()) } throws: { "\($0)".contains("another vector") }
    }

    @Test func bandsApplyTheVectorAtSeveralLayers() async throws {
        let data = try ToyData()
        let loaded = try TinyModels.chatModel(seed: 3, layers: 3)
        var p = try parameters(data)
        p.layers = [1]
        p.band = 2
        p.multipliers = [4]
        let out = data.root.appendingPathComponent("band")
        let report = try await SteeringSweep(parameters: p, directory: out, vector: vector(loaded.model.configuration), vectorPath: "v")
            .run(backend: LocalChatBackend(loaded), evaluator: LetterEvaluator())
        #expect(report.cells.count == 1)
        #expect(FileManager.default.fileExists(atPath: out.appendingPathComponent("cells/L1-2_x4.0/summary.json").path))
        #expect(try String(contentsOf: out.appendingPathComponent("report.md"), encoding: .utf8).contains("| 1-2 | 4.0 |"))
        if report.recommended != nil {
            #expect(try SteeringVector.load(out.appendingPathComponent("recommended.safetensors").path).layers == [1, 2])
            #expect(FileManager.default.fileExists(atPath: out.appendingPathComponent("cells/control_L1-2_x4.0/summary.json").path))
        }
        p.layers = [2]  // 2-3: layer 3 is not in the vector
        #expect(throws: AlignError.self) { try SteeringSweep(parameters: p, directory: out, vector: vector(loaded.model.configuration), vectorPath: "v") }
    }

    @Test func effectMeansTheVectorsIntent() throws {
        let data = try ToyData()
        let c = try TinyModels.chatModel(seed: 3, layers: 3).model.configuration
        var before = [Double](repeating: 0, count: 10), after = before
        before[SchwartzValue.benevolence.index] = 0.2
        after[SchwartzValue.benevolence.index] = 0.7
        after[SchwartzValue.security.index] = 1
        let b = try ValueVector(before), a = try ValueVector(after)
        let valueSweep = try SteeringSweep(parameters: try parameters(data), directory: data.root, vector: vector(c), vectorPath: "v")
        #expect(abs(valueSweep.effect(before: b, after: a) - 0.5) < 1e-12)
        let profileSweep = try SteeringSweep(parameters: try parameters(data), directory: data.root, vector: vector(c, name: "target:basealign-ideal"), vectorPath: "v")
        let t = try ProfileStore.defaultTarget().vector
        let expected = ValueDistance.weighted.distance(b, to: t) - ValueDistance.weighted.distance(a, to: t)
        #expect(expected > 0 && abs(profileSweep.effect(before: b, after: a) - expected) < 1e-12)
        // A layer the vector has no direction for is refused up front.
        var p = try parameters(data)
        p.layers = [1, 5]
        #expect { try SteeringSweep(parameters: p, directory: data.root, vector: vector(c), vectorPath: "v.safetensors") } throws: { "\($0)".contains("no direction at layer 5") }
    }

    @Test func testSplitReportIsAnAlignStyleReport() async throws {
        let data = try ToyData()
        let loaded = try TinyModels.chatModel(seed: 3, layers: 3)
        let v = vector(loaded.model.configuration)
        let out = data.root.appendingPathComponent("test")
        let report = try await SteeringSweep.test(
            vector: v, vectorPath: "v", layers: [2], multiplier: 4,
            sets: EvaluationSets(values: data.path("values.jsonl"), harm: data.path("harm.jsonl"), benign: data.path("benign.jsonl"), text: data.path("text.txt")),
            target: try ProfileStore.defaultTarget(), maxNewTokens: 8, batchSize: 4, bootstrap: BootstrapParameters(resamples: 200, seed: 1), seed: 1,
            directory: out, backend: LocalChatBackend(loaded), evaluator: LetterEvaluator(), gold: ContraryEvaluator())
        #expect(report.training.method.hasPrefix("steer(benevolence, caa, layer 2 x4.0)"))
        #expect(report.training.steps == 0 && report.goldDistanceChange != nil && report.perplexityRatioEstimate != nil)
        #expect(report.before.answers["values"] == 4 && report.after.answers["harm"] == 3)
        #expect(try String(contentsOf: out.appendingPathComponent("report.md"), encoding: .utf8).contains("moved the wrong way by the steering"))
        let wrong = try JSONDecoder().decode(SteeringSweep.TestWrongWay.self, from: Data(contentsOf: out.appendingPathComponent("steering.json")))
        #expect(wrong.answers == 7 && wrong.wrongWay <= 7)
        #expect(loaded.model.steering == nil)
        // The steered answers differ from the unsteered ones somewhere.
        let (_, a0) = try HeldOutEvaluation.load(out.appendingPathComponent("before"))
        let (_, a1) = try HeldOutEvaluation.load(out.appendingPathComponent("after"))
        #expect(zip(a0, a1).contains { $0.response != $1.response })
    }
}
