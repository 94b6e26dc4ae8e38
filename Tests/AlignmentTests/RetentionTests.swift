@testable import Alignment
import Foundation
import LanguageModels
import MLXEngine
import MLXNN
import Testing
import ValueAlignTesting

/// The capability retention term of best-of-N fine-tuning (issue 24, item 9): a KL to the frozen model on
/// other text keeps the policy's distributions there while it learns the fine-tuning answers.
@Suite struct RetentionTests {
    let examples = [SFTExample(prompt: [.user("Greet me")], response: "hello hello")]
    let retentionText = [
        SFTExample(prompt: [.user("Tell me a story")], response: "once upon a time there was a fox"),
        SFTExample(prompt: [.user("Name a colour")], response: "blue, like the sea on a calm day"),
        SFTExample(prompt: [.user("Count to five")], response: "one two three four five"),
    ]

    /// KL(frozen ‖ model) per retention token, as the objective computes it, with the model as it is now.
    func retentionKL(_ loaded: LoadedModel) throws -> Double {
        let probe = SFTObjective(model: loaded, examples: examples, retention: CapabilityRetention(examples: retentionText, weight: 1, rowsPerBatch: retentionText.count))
        let out = try probe.loss(try probe.prepare([0], seed: 1).batch)
        return try #require(out.metrics["retention_kl"]).item(Double.self)
    }

    func train(retainWeight: Float?) throws -> (loaded: LoadedModel, losses: [Double], kl: [Double]) {
        let loaded = try tinyLoaded()
        var p = toyParameters(SFTObjective.self, steps: 30, batchSize: 1)
        p.maxGradientNorm = 0
        let retention = retainWeight.map { CapabilityRetention(examples: retentionText, weight: $0, rowsPerBatch: 2) }
        var losses: [Double] = [], kl: [Double] = []
        _ = try TrainingRunner(objective: SFTObjective(model: loaded, examples: examples, retention: retention), parameters: p).run {
            losses.append($0.metrics["mean_token_logprob"].map { -$0 } ?? $0.loss)
            if let k = $0.metrics["retention_kl"] { kl.append(k) }
            return true
        }
        return (loaded, losses, kl)
    }

    @Test func retentionKeepsTheFrozenDistributionsWhileTheAnswerIsLearnt() throws {
        let plain = try train(retainWeight: nil)
        let retained = try train(retainWeight: 5)
        // Both learn the fine-tuning answer.
        #expect(plain.losses.last! < 0.3 * plain.losses[0])
        #expect(retained.losses.last! < 0.3 * retained.losses[0])
        // The first step starts from the frozen model (LoRA B = 0): no divergence yet.
        #expect(retained.kl.count == 30)
        #expect(abs(retained.kl[0]) < 1e-4)
        // Plain fine-tuning drifts on the retention text; the retention holds most of it back.
        let drift = try retentionKL(plain.loaded), held = try retentionKL(retained.loaded)
        #expect(drift > 0.05)
        #expect(held < 0.3 * drift, "retained KL \(held) against \(drift) without the retention")
    }

    @Test func retainRowsAreDrawnFromTheBatchSeed() throws {
        let loaded = try tinyLoaded()
        let o = SFTObjective(model: loaded, examples: examples, retention: CapabilityRetention(examples: retentionText, weight: 1, rowsPerBatch: 1))
        func ids(_ seed: UInt64) throws -> [Int32] { try o.prepare([0], seed: seed).batch.retention!.tokens.tokens.asArray(Int32.self) }
        #expect(try ids(11) == ids(11))
        // Different batches draw different rows (3 answers, 12 seeds).
        #expect(Set(try (0..<12).map { try ids($0) }).count > 1)
        // A zero weight adds no rows and no cost.
        let off = SFTObjective(model: loaded, examples: examples, retention: CapabilityRetention(examples: retentionText, weight: 0, rowsPerBatch: 1))
        #expect(try off.prepare([0], seed: 1).batch.retention == nil)
    }

    @Test func retentionFileErrorsNameTheLine() throws {
        let dir = temporaryDirectory("retention")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let good = dir.appendingPathComponent("good.jsonl"), bad = dir.appendingPathComponent("bad.jsonl")
        try #"{"id":"a","prompt":"Hi","response":"Hello there.","topic":"x"}"#.appending("\n\n").write(to: good, atomically: true, encoding: .utf8)
        try #"{"prompt":"Hi","response":"Hello."}"#.appending("\n{\"prompt\":\"Hi\"}\n").write(to: bad, atomically: true, encoding: .utf8)
        let pairs = try CapabilityRetention.loadPairs(good.path)
        #expect(pairs == [SFTExample(prompt: [.user("Hi")], response: "Hello there.")])
        #expect { try CapabilityRetention.loadPairs(bad.path) } throws: { "\($0)".contains("bad.jsonl:2:") }
        #expect { try CapabilityRetention.loadPairs(dir.appendingPathComponent("missing.jsonl").path) } throws: { "\($0)".contains("missing.jsonl") }
        #expect(throws: TrainingError.self) { try CapabilityRetention(examples: [], weight: 1, rowsPerBatch: 2).validate() }
        #expect(throws: TrainingError.self) { try CapabilityRetention(examples: retentionText, weight: -1, rowsPerBatch: 2).validate() }
        #expect { try CapabilityRetention(examples: retentionText, weight: 1, rowsPerBatch: 4).validate() } throws: { "\($0)".contains("at most 3") }
    }
}
