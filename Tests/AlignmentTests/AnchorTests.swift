@testable import Alignment
import Foundation
import LanguageModels
import MLXEngine
import MLXNN
import Testing
import ValueAlignTesting

/// The capability anchor of best-of-N fine-tuning (issue 24, item 9): a KL to the frozen model on
/// other text keeps the policy's distributions there while it learns the fine-tuning answers.
@Suite struct AnchorTests {
    let examples = [SFTExample(prompt: [.user("Greet me")], response: "hello hello")]
    let anchorText = [
        SFTExample(prompt: [.user("Tell me a story")], response: "once upon a time there was a fox"),
        SFTExample(prompt: [.user("Name a colour")], response: "blue, like the sea on a calm day"),
        SFTExample(prompt: [.user("Count to five")], response: "one two three four five"),
    ]

    /// KL(frozen ‖ model) per anchor token, as the objective computes it, with the model as it is now.
    func anchorKL(_ loaded: LoadedModel) throws -> Double {
        let probe = SFTObjective(model: loaded, examples: examples, anchor: DistributionAnchor(examples: anchorText, weight: 1, rowsPerBatch: anchorText.count))
        let out = try probe.loss(try probe.prepare([0], seed: 1).batch)
        return try #require(out.metrics["anchor_kl"]).item(Double.self)
    }

    func train(anchorWeight: Float?) throws -> (loaded: LoadedModel, losses: [Double], kl: [Double]) {
        let loaded = try tinyLoaded()
        var p = toyParameters(SFTObjective.self, steps: 30, batchSize: 1)
        p.maxGradientNorm = 0
        let anchor = anchorWeight.map { DistributionAnchor(examples: anchorText, weight: $0, rowsPerBatch: 2) }
        var losses: [Double] = [], kl: [Double] = []
        _ = try TrainingRunner(objective: SFTObjective(model: loaded, examples: examples, anchor: anchor), parameters: p).run {
            losses.append($0.metrics["mean_token_logprob"].map { -$0 } ?? $0.loss)
            if let k = $0.metrics["anchor_kl"] { kl.append(k) }
            return true
        }
        return (loaded, losses, kl)
    }

    @Test func anchorKeepsTheFrozenDistributionsWhileTheAnswerIsLearnt() throws {
        let plain = try train(anchorWeight: nil)
        let anchored = try train(anchorWeight: 5)
        // Both learn the fine-tuning answer.
        #expect(plain.losses.last! < 0.3 * plain.losses[0])
        #expect(anchored.losses.last! < 0.3 * anchored.losses[0])
        // The first step starts from the frozen model (LoRA B = 0): no divergence yet.
        #expect(anchored.kl.count == 30)
        #expect(abs(anchored.kl[0]) < 1e-4)
        // Plain fine-tuning drifts on the anchor text; the anchor holds most of it back.
        let drift = try anchorKL(plain.loaded), held = try anchorKL(anchored.loaded)
        #expect(drift > 0.05)
        #expect(held < 0.3 * drift, "anchored KL \(held) against \(drift) without the anchor")
    }

    @Test func anchorRowsAreDrawnFromTheBatchSeed() throws {
        let loaded = try tinyLoaded()
        let o = SFTObjective(model: loaded, examples: examples, anchor: DistributionAnchor(examples: anchorText, weight: 1, rowsPerBatch: 1))
        func ids(_ seed: UInt64) throws -> [Int32] { try o.prepare([0], seed: seed).batch.anchor!.tokens.tokens.asArray(Int32.self) }
        #expect(try ids(11) == ids(11))
        // Different batches draw different rows (3 answers, 12 seeds).
        #expect(Set(try (0..<12).map { try ids($0) }).count > 1)
        // A zero weight adds no rows and no cost.
        let off = SFTObjective(model: loaded, examples: examples, anchor: DistributionAnchor(examples: anchorText, weight: 0, rowsPerBatch: 1))
        #expect(try off.prepare([0], seed: 1).batch.anchor == nil)
    }

    @Test func anchorFileErrorsNameTheLine() throws {
        let dir = temporaryDirectory("anchor")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let good = dir.appendingPathComponent("good.jsonl"), bad = dir.appendingPathComponent("bad.jsonl")
        try #"{"id":"a","prompt":"Hi","response":"Hello there.","topic":"x"}"#.appending("\n\n").write(to: good, atomically: true, encoding: .utf8)
        try #"{"prompt":"Hi","response":"Hello."}"#.appending("\n{\"prompt\":\"Hi\"}\n").write(to: bad, atomically: true, encoding: .utf8)
        let pairs = try DistributionAnchor.loadPairs(good.path)
        #expect(pairs == [SFTExample(prompt: [.user("Hi")], response: "Hello there.")])
        #expect { try DistributionAnchor.loadPairs(bad.path) } throws: { "\($0)".contains("bad.jsonl:2:") }
        #expect { try DistributionAnchor.loadPairs(dir.appendingPathComponent("missing.jsonl").path) } throws: { "\($0)".contains("missing.jsonl") }
        #expect(throws: TrainingError.self) { try DistributionAnchor(examples: [], weight: 1, rowsPerBatch: 2).validate() }
        #expect(throws: TrainingError.self) { try DistributionAnchor(examples: anchorText, weight: -1, rowsPerBatch: 2).validate() }
    }
}
