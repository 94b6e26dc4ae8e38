@testable import Alignment
import Foundation
import LanguageModels
import MLXEngine
import MLXNN
import Testing
import ValueAlignTesting

@Suite struct RunnerTests {
    let examples = [
        SFTExample(prompt: [.user("Greet me")], response: "hello"),
        SFTExample(prompt: [.user("Greet me")], response: "hello"),
    ]

    @Test func sftMemorisesAResponse() throws {
        let loaded = try tinyLoaded()
        var p = toyParameters(SFTObjective.self, steps: 40, batchSize: 2)
        p.maxGradientNorm = 0
        var losses: [Double] = []
        let summary = try TrainingRunner(objective: SFTObjective(model: loaded, examples: examples), parameters: p).run { losses.append($0.loss); return true }
        #expect(summary.steps == 40 && !summary.stopped)
        #expect(losses.count == 40)
        // Starts near uniform over 260 ids (ln 260 = 5.56), ends far below.
        #expect(losses[0] > 3)
        #expect(losses.last! < 0.2 * losses[0])
        // The memorised answer is the greedy continuation.
        let out = try loaded.makeGenerator().generate([loaded.promptTokens([.user("Greet me")])], parameters: GenerationParameters(maxTokens: 8))
        #expect(out[0].text == "hello")
    }

    @Test func killedRunResumesToTheSameWeights() throws {
        let data = (0..<5).map { SFTExample(prompt: [.user("Q\($0)")], response: "answer \($0 * 7)") }
        func parameters(_ dir: URL?) -> TrainingRunner<SFTObjective>.Parameters {
            var p = toyParameters(SFTObjective.self, steps: 6, batchSize: 2, learningRate: 5e-3)
            p.decay = .linear
            p.warmupSteps = 2
            p.gradientAccumulation = 2
            p.runDirectory = dir?.path
            p.checkpointEvery = 3
            return p
        }
        // Straight through.
        let straight = try tinyLoaded()
        let dirA = temporaryDirectory("straight")
        defer { try? FileManager.default.removeItem(at: dirA) }
        var lossesA: [Double] = []
        try TrainingRunner(objective: SFTObjective(model: straight, examples: data), parameters: parameters(dirA)).run { lossesA.append($0.loss); return true }

        // Killed after step 4 (the checkpoint at 3 survives), then resumed by a new process.
        let dirB = temporaryDirectory("killed")
        defer { try? FileManager.default.removeItem(at: dirB) }
        let first = try tinyLoaded()
        #expect(throws: SimulatedKill.self) {
            try TrainingRunner(objective: SFTObjective(model: first, examples: data), parameters: parameters(dirB)).run { if $0.step == 4 { throw SimulatedKill() }; return true }
        }
        let resumed = try tinyLoaded()
        var lossesB: [Double] = []
        var starts: [Int] = []
        let summary = try TrainingRunner(objective: SFTObjective(model: resumed, examples: data), parameters: parameters(dirB)).run {
            lossesB.append($0.loss); starts.append($0.startStep); return true
        }
        #expect(summary.startStep == 3 && summary.steps == 6)
        #expect(starts == [3, 3, 3])
        #expect(lossesB.count == 3)
        // MLX's CPU kernels are not bit-reproducible run to run (two straight runs differ by ~1e-7
        // relative), so "the same" means within 1e-6.
        for (a, b) in zip(lossesA.suffix(3), lossesB) { #expect(abs(a - b) <= 1e-6 * max(1, abs(a))) }

        let wa = try adapterWeights(straight.model), wb = try adapterWeights(resumed.model)
        #expect(wa.count == wb.count && !wa.isEmpty)
        var maxDifference: Float = 0
        for (k, a) in wa {
            let b = try #require(wb[k])
            #expect(a.count == b.count)
            for (x, y) in zip(a, b) { maxDifference = max(maxDifference, abs(x - y)) }
        }
        #expect(maxDifference <= 1e-6)
        // The adapter really moved (the comparison is not between two untouched adapters).
        let moved = wa.keys.filter { $0.contains("lora_B") }.contains { k in wa[k]!.contains { $0 != 0 } }
        #expect(moved)

        // The metrics log holds one line per step, 1...6, after the resume trimmed the redone ones.
        let log = try String(contentsOf: dirB.appendingPathComponent("metrics.jsonl"), encoding: .utf8)
        let steps = log.split(separator: "\n").compactMap { line in
            (try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])?["step"] as? Int
        }
        #expect(steps == [1, 2, 3, 4, 5, 6])
        // The final adapter is a PEFT folder that loads onto a fresh base model.
        let final = try #require(summary.output)
        let reloaded = try tinyLoaded()
        try PEFTAdapter.load(from: final, into: reloaded.model)
        #expect(try adapterWeights(reloaded.model) == wb)
    }

    @Test func trainingRunsOpenBLASSingleThreadedAndRestoresIt() throws {
        // Other tests may train at the same time: the count outside runs is the saved one then.
        let outside = try #require(TrainingBLASThreads.outsideCount)
        var p = toyParameters(SFTObjective.self, steps: 2, batchSize: 2)
        for precision in [MatmulPrecision.bfloat16, .float32] {
            p.matmulPrecision = precision
            var during: [Int?] = []
            var runs: [Int] = []
            _ = try TrainingRunner(objective: SFTObjective(model: try tinyLoaded(), examples: examples), parameters: p).run { _ in
                during.append(Engine.blasThreads)
                runs.append(TrainingBLASThreads.activeRuns)
                return true
            }
            #expect(during.count == 2)
            // Single-threaded while the run lasts where the kernel pool takes the big products
            // (AMX in bf16, split GEMMs in float32; both also in bf16 without AMX). A ValueAlign
            // process starts single-threaded when it can split, and then the run changes nothing.
            if Fast.canSplitGEMMs || (precision == .bfloat16 && Fast.amxAvailable) {
                #expect(during.allSatisfy { $0 == 1 }, "\(precision): \(during)")
                if outside > 1 { #expect(runs.allSatisfy { $0 >= 1 }) }
            }
            if TrainingBLASThreads.activeRuns == 0 { #expect(Engine.blasThreads == outside, "\(precision)") }
        }
    }

    @Test func stoppingWritesACheckpointThatResumes() throws {
        let dir = temporaryDirectory("stop")
        defer { try? FileManager.default.removeItem(at: dir) }
        var p = toyParameters(SFTObjective.self, steps: 5, batchSize: 2)
        p.runDirectory = dir.path
        p.checkpointEvery = 0
        let summary = try TrainingRunner(objective: SFTObjective(model: try tinyLoaded(), examples: examples), parameters: p).run { $0.step < 2 }
        #expect(summary.stopped && summary.steps == 2)
        #expect(summary.output?.lastPathComponent == "checkpoint-000002")
        let rest = try TrainingRunner(objective: SFTObjective(model: try tinyLoaded(), examples: examples), parameters: p).run()
        #expect(rest.startStep == 2 && rest.steps == 5 && !rest.stopped)
        // A rerun of a finished run does nothing.
        var calls = 0
        let again = try TrainingRunner(objective: SFTObjective(model: try tinyLoaded(), examples: examples), parameters: p).run { _ in calls += 1; return true }
        #expect(again.steps == 5 && calls == 0)
    }

    @Test func backgroundRunReportsProgress() async throws {
        let runner = TrainingRunner(objective: SFTObjective(model: try tinyLoaded(), examples: examples), parameters: toyParameters(SFTObjective.self, steps: 3, batchSize: 1))
        let summary = try await runner.runInBackground()
        #expect(summary.steps == 3)
        let last = try #require(summary.last)
        #expect(last.tokensPerSecond > 0 && last.gradientNorm > 0 && last.estimatedRemaining == 0)
        #expect(last.learningRate == Double(Float(1e-2)))
    }

    // MARK: configurations rejected before any work

    func expectConfigurationError(_ parameters: TrainingRunner<SFTObjective>.Parameters, examples: [SFTExample], model: LoadedModel? = nil, containing text: String) throws {
        let loaded = try model ?? tinyLoaded()
        let runner = TrainingRunner(objective: SFTObjective(model: loaded, examples: examples), parameters: parameters)
        var message = ""
        do { try runner.run { _ in Issue.record("a step ran"); return true } } catch { message = "\(error)" }
        #expect(message.contains(text), "got: \(message)")
        #expect(!loaded.model.hasLoRA, "work was done before the error")
    }

    @Test func emptyDataIsRejected() throws {
        try expectConfigurationError(toyParameters(SFTObjective.self, steps: 3, batchSize: 1), examples: [], containing: "no training examples")
    }

    @Test func budgetTooSmallForOneStepIsRejected() throws {
        try expectConfigurationError(toyParameters(SFTObjective.self, steps: 0, batchSize: 1), examples: examples, containing: "too small for one optimiser step")
        try expectConfigurationError(toyParameters(SFTObjective.self, steps: 3, batchSize: 4), examples: examples, containing: "2 examples cannot fill one batch of 4")
    }

    @Test(arguments: ["learningRate", "gradientAccumulation", "lora.rank", "adamBeta2", "maxGradientNorm"])
    func badSettingsAreRejected(field: String) throws {
        var p = toyParameters(SFTObjective.self, steps: 3, batchSize: 1)
        switch field {
        case "learningRate": p.learningRate = 0
        case "gradientAccumulation": p.gradientAccumulation = 0
        case "lora.rank": p.lora.rank = 0
        case "adamBeta2": p.adamBeta2 = 1
        default: p.maxGradientNorm = -1
        }
        try expectConfigurationError(p, examples: examples, containing: field)
    }

    @Test func adapterForAnotherBaseModelIsRejected() throws {
        // An adapter trained on a 97-id model cannot start a run on the 260-id model.
        let other = try TinyModels.llama(TinyModels.llamaConfiguration(vocabulary: 97), seed: 1)
        try other.applyLoRA(allLinear)
        let dir = temporaryDirectory("other-adapter")
        defer { try? FileManager.default.removeItem(at: dir) }
        try PEFTAdapter.save(other, configuration: allLinear, to: dir, baseModel: "other")
        var p = toyParameters(SFTObjective.self, steps: 3, batchSize: 1)
        p.initialAdapter = dir.path
        try expectConfigurationError(p, examples: examples, containing: "made for a different base model")

        // Nor can a run directory whose checkpoints were made on another base model.
        let run = temporaryDirectory("other-run")
        defer { try? FileManager.default.removeItem(at: run) }
        var q = toyParameters(SFTObjective.self, steps: 2, batchSize: 1)
        q.runDirectory = run.path
        q.checkpointEvery = 1
        try TrainingRunner(objective: SFTObjective(model: try tinyLoaded(), examples: examples), parameters: q).run { $0.step < 1 }
        let bigger = LoadedModel(model: try TinyModels.llama(TinyModels.llamaConfiguration(vocabulary: 260, layers: 3)), tokenizer: ByteTokenizer(),
                                 chatTemplate: .chatml, defaultSystemPrompt: nil, name: "tiny3", path: "<memory>")
        try expectConfigurationError(q, examples: examples, model: bigger, containing: "made for a different base model")
        // And a checkpoint made with other batching says which setting differs.
        q.batchSize = 2
        try expectConfigurationError(q, examples: examples, containing: "batch size 1, this run has 2")
    }
}

@Suite struct ResponseLogProbTests {
    @Test func packedLogProbsMatchTheFullOnesWithTheirGradient() throws {
        let loaded = try tinyLoaded()
        try loaded.model.applyLoRA(allLinear, seed: 1)
        // Move B off zero so the adapter matters for the gradient.
        for (k, v) in loaded.model.trainableParameters() where k.contains("lora_B") {
            try loaded.model.update(parameters: [k: try MLXRandom.normal(v.shape, std: 0.1, key: MLXRandom.key(UInt64(k.count)))])
        }
        let batch = try TokenBatch(prompts: [[1, 2, 3], [4, 5], [7]], responses: [[9, 10], [11, 12, 13, 14], [15]], padTokenId: 256)
        let packed = try ResponseTokens(batch)
        #expect(packed.count == 7 && packed.rows == [0, 0, 1, 1, 1, 1, 2])
        #expect(packed.rowMatrix.shape == [3, 7])
        let full = try loaded.model.tokenLogProbs(batch)
        let mine = try loaded.model.responseLogProbs(batch, packed)
        #expect(mine.shape == [7])
        let fullSums = try full.sum(axis: 1).asArray(Float.self), mySums = try packed.rowSums(mine).asArray(Float.self)
        for (a, b) in zip(fullSums, mySums) { #expect(abs(a - b) <= 1e-4 * max(1, abs(a))) }
        // Same gradient with respect to the adapter.
        let step = GradientStep(trainable: loaded.model, optimizer: SGD(learningRate: 0), maxGradientNorm: 0)
        let g1 = try step.lossAndGradients { ObjectiveOutput(loss: try full.sum() * 0 + loaded.model.tokenLogProbs(batch).sum()) }.2
        let g2 = try step.lossAndGradients { ObjectiveOutput(loss: try loaded.model.responseLogProbs(batch, packed).sum()) }.2
        #expect(g1.count == g2.count && !g1.isEmpty)
        for (k, a) in g1 {
            let x = try a.asArray(Float.self), y = try #require(g2[k]).asArray(Float.self)
            let scale = x.map(abs).max() ?? 1
            for (u, v) in zip(x, y) { #expect(abs(u - v) <= 1e-4 * max(scale, 1e-3), "\(k)") }
        }
    }

    @Test("rows sharing a prompt run it once: same log-probs and adapter gradient as whole rows")
    func sharedPromptsMatchWholeRows() throws {
        let loaded = try tinyLoaded()
        try loaded.model.applyLoRA(allLinear, seed: 2)
        for (k, v) in loaded.model.trainableParameters() where k.contains("lora_B") {
            try loaded.model.update(parameters: [k: try MLXRandom.normal(v.shape, std: 0.1, key: MLXRandom.key(UInt64(k.count + 7)))])
        }
        // Two groups of different prompt lengths (the shorter is left-padded in the shared pass),
        // a prompt of its own, responses of 1 to 5 tokens.
        let a: [Int] = [1, 2, 3, 4, 5], b: [Int] = [6, 7], c: [Int] = [8, 9, 10]
        let prompts = [a, b, a, c, b, a]
        let responses: [[Int]] = [[11, 12], [13, 14, 15, 16, 17], [18], [19, 20, 21], [22, 23, 24], [25, 26, 27, 28]]
        let batch = try TokenBatch(prompts: prompts, responses: responses, padTokenId: 256)
        let shared = try ResponseTokens(batch), whole = try ResponseTokens(batch, sharePrompts: false)
        let layout = try #require(shared.shared)
        #expect(layout.groupCount == 3 && whole.shared == nil)
        #expect(try layout.group.asArray(Int32.self) == [0, 1, 0, 2, 1, 0])
        #expect(layout.prompts.shape == [3, 5] && layout.responses.shape == [6, 5])
        let x = try loaded.model.responseLogProbs(batch, shared), y = try loaded.model.responseLogProbs(batch, whole)
        #expect(x.shape == [shared.count])
        try expectClose(x, y, atol: 1e-4, rtol: 1e-4)
        // A weighted sum, so that every token's gradient counts differently.
        let weights = try MLXRandom.uniform([shared.count], low: -1, high: 1, key: MLXRandom.key(3))
        let step = GradientStep(trainable: loaded.model, optimizer: SGD(learningRate: 0), maxGradientNorm: 0)
        let g1 = try step.lossAndGradients { ObjectiveOutput(loss: try (loaded.model.responseLogProbs(batch, shared) * weights).sum()) }.2
        let g2 = try step.lossAndGradients { ObjectiveOutput(loss: try (loaded.model.responseLogProbs(batch, whole) * weights).sum()) }.2
        #expect(g1.count == g2.count && !g1.isEmpty)
        for (k, u) in g1 { try expectClose(u, try #require(g2[k]), atol: 1e-4, rtol: 1e-3) }
        // One-token prompts and one-token answers (the prompt pass is a single position).
        let tiny = try TokenBatch(prompts: [[5], [5], [6], [6]], responses: [[7], [8], [10], [11]], padTokenId: 256)
        let tinyShared = try ResponseTokens(tiny)
        #expect(tinyShared.shared?.groupCount == 2)
        try expectClose(try loaded.model.responseLogProbs(tiny, tinyShared),
                        try loaded.model.responseLogProbs(tiny, try ResponseTokens(tiny, sharePrompts: false)), atol: 1e-4, rtol: 1e-4)
        let t1 = try step.lossAndGradients { ObjectiveOutput(loss: try loaded.model.responseLogProbs(tiny, tinyShared).sum()) }.2
        let t2 = try step.lossAndGradients { ObjectiveOutput(loss: try loaded.model.responseLogProbs(tiny, try ResponseTokens(tiny, sharePrompts: false)).sum()) }.2
        for (k, u) in t1 { try expectClose(u, try #require(t2[k]), atol: 1e-4, rtol: 1e-3) }
        // Distinct prompts give no shared layout.
        #expect(try ResponseTokens(try TokenBatch(prompts: [a, b], responses: [[1, 2], [3]], padTokenId: 256)).shared == nil)
    }
}
