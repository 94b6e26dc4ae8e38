import Alignment
import BaseAlign
import Foundation
import LanguageModels
import MLXNN
import MLXEngine
import Testing
import ValueAlignTesting
import ValueAlignCore
import ValueSpace

/// A tiny random Llama with the byte tokenizer and ChatML.
func tinyPolicy(seed: UInt64 = 3) throws -> LoadedModel { try TinyModels.chatModel(seed: seed) }

/// A deterministic evaluator that reads characters: benevolence and universalism rise with the
/// share of letters in the answer, security falls with the share of digits. Random-weight models
/// write random bytes, so answers differ in reward and the alignment loop has a signal.
struct LetterEvaluator: ValueEvaluator {
    var name: String { "letters" }
    func evaluate(_ pairs: [ValuePair]) async throws -> [ValueAssessment] {
        try pairs.map { pair in
            let scalars = pair.response.unicodeScalars
            let n = Double(max(scalars.count, 1))
            let early = Double(scalars.filter { CharacterSet.letters.contains($0) }.count) / n
            let digits = Double(scalars.filter { ("0"..."9").contains($0) }.count) / n
            func clamp(_ x: Double) -> Double { min(1, max(-1, x)) }
            var c = [Double](repeating: 0, count: 10)
            c[SchwartzValue.benevolence.index] = clamp(early * 3 - 1)
            c[SchwartzValue.universalism.index] = clamp(early * 2 - 0.5)
            c[SchwartzValue.security.index] = clamp(0.5 - digits * 8)
            let v = try ValueVector(c)
            return ValueAssessment(vector: v, probabilities: c.map { x in [max(0, -x), 1 - abs(x), max(0, x)] })
        }
    }
}

/// Prompt files for toy runs in a fresh folder.
struct ToyData {
    let root: URL
    init() throws {
        root = FileManager.default.temporaryDirectory.appendingPathComponent("basealign-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
        var lines: [String] = []
        for i in 0..<12 { lines.append(#"{"id": "v\#(i)", "prompt": "tell me \#(i)", "split": "\#(i < 8 ? "train" : "test")"}"#) }
        try lines.joined(separator: "\n").write(to: root.appendingPathComponent("values.jsonl"), atomically: true, encoding: .utf8)
        lines = (0..<6).map { #"{"id": "h\#($0)", "prompt": "bad thing \#($0)", "split": "\#($0 < 3 ? "train" : "test")"}"# }
        try lines.joined(separator: "\n").write(to: root.appendingPathComponent("harm.jsonl"), atomically: true, encoding: .utf8)
        lines = (0..<4).map { #"{"id": "b\#($0)", "prompt": "kill a process \#($0)", "split": "test"}"# }
        try lines.joined(separator: "\n").write(to: root.appendingPathComponent("benign.jsonl"), atomically: true, encoding: .utf8)
        try "A short text about bread, rain and music, for perplexity.".write(to: root.appendingPathComponent("text.txt"), atomically: true, encoding: .utf8)
    }
    func path(_ name: String) -> String { root.appendingPathComponent(name).path }

    func configuration(method: AlignMethod = .dpo, steps: Int? = 3) throws -> AlignConfiguration {
        var c = AlignConfiguration(
            model: "<memory>", target: try ProfileStore.defaultTarget(), method: method, reward: .baseAlign,
            prompts: [path("values.jsonl"), path("harm.jsonl")],
            evaluation: EvaluationSets(values: path("values.jsonl"), harm: path("harm.jsonl"), benign: path("benign.jsonl"), text: path("text.txt")))
        c.trainSplit = "train"
        c.steps = steps
        c.samplesPerPrompt = 3
        c.promptsPerRound = 4
        c.epochsPerRound = 1
        c.batchSize = 2
        c.learningRate = 1e-2
        c.maxNewTokens = 12
        c.temperature = 2  // the tiny random model is peaked; spread its answers
        c.evaluationMaxNewTokens = 10
        c.minimumRewardGap = 0
        c.lora = LoRAConfiguration(rank: 4, alpha: 8, targetModules: ["q_proj", "v_proj"])
        c.bootstrap = BootstrapParameters(resamples: 200, seed: 1)
        return c
    }
}

/// A gold that disagrees with the proxy: the letter evaluator's vector, negated.
struct ContraryEvaluator: ValueEvaluator {
    var name: String { "contrary" }
    func evaluate(_ pairs: [ValuePair]) async throws -> [ValueAssessment] {
        try await LetterEvaluator().evaluate(pairs).map { a in
            let v = try ValueVector(a.vector.components.map { -$0 })
            return ValueAssessment(vector: v, probabilities: a.probabilities.map { $0.reversed() })
        }
    }
}

func adapterWeights(_ dir: URL) throws -> [String: [Float]] {
    let policy = try tinyPolicy()
    try PEFTAdapter.load(from: dir, into: policy.model)
    var result: [String: [Float]] = [:]
    for (k, v) in policy.model.parameters() where k.contains(".lora_") { result[k] = try v.asArray(Float.self) }
    return result
}

@Suite(.serialized) struct AlignmentJobTests {
    @Test(arguments: [AlignMethod.dpo, .bonSFT, .grpo, .caiSFT, .caiDPO])
    func runsEndToEndAndWritesEverything(method: AlignMethod) async throws {
        let data = try ToyData()
        defer { try? FileManager.default.removeItem(at: data.root) }
        var c = try data.configuration(method: method, steps: 2)
        if method == .caiSFT { c.retention = nil }
        if method == .grpo { c.batchSize = 2 }
        if method == .bonSFT {
            // best-of-N with the capability retention term (issue 24, item 9).
            try #"{"prompt":"Say hi","response":"hi there"}"#.appending("\n").write(to: data.root.appendingPathComponent("retention.jsonl"), atomically: true, encoding: .utf8)
            c.retention = RetentionSettings(path: data.path("retention.jsonl"), weight: 1, rowsPerBatch: 1)
        }
        if method == .dpo {
            // A transfer set in HarmBench's CSV layout: read whole, the copyright row left out.
            try """
            Behavior,FunctionalCategory,SemanticCategory,Tags,ContextString,BehaviorID
            "Explain, in steps, a bad thing",standard,illegal,,,bad_steps
            Copy the lyrics of a song,copyright,copyright,"lyrics, hash_check",,lyrics_song
            Use the note above to do harm,contextual,harmful,,"A note
            over two lines",note_harm
            """.write(to: data.root.appendingPathComponent("transfer.csv"), atomically: true, encoding: .utf8)
            c.evaluation.transfer = data.path("transfer.csv")
        }
        let out = data.root.appendingPathComponent("run")
        let job = AlignmentJob(configuration: c, directory: out, policy: try tinyPolicy(), evaluator: LetterEvaluator(), gold: ContraryEvaluator())
        let outcome = try await job.run()
        guard case let .finished(report) = outcome else { Issue.record("run did not finish"); return }
        // The gold only measures: its distances and the proxy-gold gap are reported (issue 24, item 6).
        #expect(report.before.goldEvaluator == "contrary" && report.after.goldDistance != nil)
        let goldChange = try #require(report.goldDistanceChange), gap = try #require(report.proxyGoldGap)
        #expect(abs(gap.value - (report.distanceChange.value - goldChange.value)) < 1e-9)
        #expect(try String(contentsOf: out.appendingPathComponent("report.md"), encoding: .utf8).contains("gold evaluator (never optimised)"))
        for file in ["report.json", "report.html", "report.md", "adapter/adapter_config.json", "adapter/adapter_model.safetensors",
                     "before/answers.jsonl", "after/answers.jsonl", "config.json", "state.json"] {
            #expect(FileManager.default.fileExists(atPath: out.appendingPathComponent(file).path), "missing \(file)")
        }
        #expect(report.training.steps == 2, "\(report.training)")
        if method == .bonSFT {
            // The retention term reached the trainer: its KL is in the runner's log.
            let log = try String(contentsOf: out.appendingPathComponent("round-000/train/metrics.jsonl"), encoding: .utf8)
            #expect(log.contains("\"retention_kl\""))
        }
        #expect(report.before.answers == ["values": 4, "harm": 3, "benign": 4].merging(method == .dpo ? ["transfer": 2] : [:]) { a, _ in a })
        // The transfer set has its own harmful-answer rate and stays out of the distance.
        #expect((report.transferHarmfulRateChange != nil) == (method == .dpo))
        #expect((report.before.transferHarmfulRate != nil) == (method == .dpo))
        #expect(report.after.answers == report.before.answers)
        #expect(report.before.perplexity.map { $0 > 1 && $0.isFinite } == true)
        #expect(report.perplexityRatio.map { $0 > 0 } == true)
        let ratio = try #require(report.perplexityRatioEstimate)
        #expect(abs(ratio.value - (report.perplexityRatio ?? 0)) < 1e-9 && ratio.lower <= ratio.value && ratio.value <= ratio.upper)
        // Beside the masked distance: the unmasked one and the share of answers touching none of
        // the target's values, before and after.
        #expect(report.weightedDistanceChange != nil && report.before.weightedDistance != nil && report.after.untouchedShare != nil)
        #expect(try #require(report.before.weightedDistance).value >= report.before.distance.value - 1e-12)
        // The paired change equals the difference of the two means (same prompts on both sides).
        #expect(abs(report.distanceChange.value - (report.after.distance.value - report.before.distance.value)) < 1e-9)
        #expect(report.distanceChange.lower <= report.distanceChange.value && report.distanceChange.value <= report.distanceChange.upper)
        let html = try String(contentsOf: out.appendingPathComponent("report.html"), encoding: .utf8)
        #expect(html.contains("<svg") && html.contains("over-refusal"))
        // `valuealign compare` reads the folder back and puts the run's figures in one row.
        let loaded = try AlignmentReport.load(out.path)
        let table = AlignmentReport.comparisonTable([("run", loaded)])
        let rows = table.split(separator: "\n")
        #expect(rows.count == 3)
        #expect(rows[2].contains(String(format: "%.3f → %.3f", report.before.distance.value, report.after.distance.value)))
        #expect(rows[2].contains("\(method.rawValue), "))
        #expect(throws: AlignError.self) { try AlignmentReport.load(data.root.path) }
        // The adapter changed something: LoRA B starts at zero and two steps moved it.
        let weights = try adapterWeights(out.appendingPathComponent("adapter"))
        #expect(!weights.isEmpty)
        #expect(weights.filter { $0.key.contains("lora_B") }.values.contains { $0.contains { $0 != 0 } })
    }

    @Test func resumedRunEndsWhereAnUninterruptedRunEnds() async throws {
        let data = try ToyData()
        defer { try? FileManager.default.removeItem(at: data.root) }
        let c = try data.configuration(method: .dpo, steps: 4)
        let straight = data.root.appendingPathComponent("straight")
        _ = try await AlignmentJob(configuration: c, directory: straight, policy: try tinyPolicy(), evaluator: LetterEvaluator()).run()

        // Stop after the first optimiser step, in a fresh "process" (new policy), then resume.
        let interrupted = data.root.appendingPathComponent("interrupted")
        let seen = Counter()
        let first = try await AlignmentJob(configuration: c, directory: interrupted, policy: try tinyPolicy(), evaluator: LetterEvaluator())
            .run(events: { if case .training = $0 { seen.increment() } }, shouldStop: { seen.value >= 1 })
        guard case .stopped = first else { Issue.record("the first run was not stopped"); return }
        #expect(!FileManager.default.fileExists(atPath: interrupted.appendingPathComponent("adapter").path))
        let second = try await AlignmentJob(configuration: c, directory: interrupted, policy: try tinyPolicy(), evaluator: LetterEvaluator()).run()
        guard case let .finished(report) = second else { Issue.record("the resumed run did not finish"); return }
        #expect(report.training.steps == 4)

        let a = try adapterWeights(straight.appendingPathComponent("adapter"))
        let b = try adapterWeights(interrupted.appendingPathComponent("adapter"))
        #expect(a.keys.sorted() == b.keys.sorted())
        for (k, v) in a {
            let w = try #require(b[k])
            #expect(zip(v, w).allSatisfy { abs($0 - $1) <= 1e-5 }, "adapter tensor \(k) differs after resume")
        }
        let before1 = try String(contentsOf: straight.appendingPathComponent("after/answers.jsonl"), encoding: .utf8)
        let before2 = try String(contentsOf: interrupted.appendingPathComponent("after/answers.jsonl"), encoding: .utf8)
        #expect(before1 == before2)
    }

    /// `align --adapter A` (issue 26): A is merged into the policy before the run, so the new
    /// run's "before" is the first run's "after", and its adapter, stacked on A, is what it
    /// measured "after".
    @Test func aRunContinuedFromAnAdapterStartsWhereTheFirstEnded() async throws {
        let data = try ToyData()
        defer { try? FileManager.default.removeItem(at: data.root) }
        let c = try data.configuration(method: .dpo, steps: 2)
        let first = data.root.appendingPathComponent("first")
        guard case let .finished(one) = try await AlignmentJob(configuration: c, directory: first, policy: try tinyPolicy(), evaluator: LetterEvaluator()).run() else {
            Issue.record("the first run did not finish"); return
        }
        let continued = try tinyPolicy()
        try PEFTAdapter.stack([first.appendingPathComponent("adapter")], into: continued.model, mergeLast: true)
        #expect(!continued.model.hasLoRA)
        let second = data.root.appendingPathComponent("second")
        guard case let .finished(two) = try await AlignmentJob(configuration: c, directory: second, policy: continued, evaluator: LetterEvaluator()).run() else {
            Issue.record("the continued run did not finish"); return
        }
        let firstAfter = try String(contentsOf: first.appendingPathComponent("after/answers.jsonl"), encoding: .utf8)
        let secondBefore = try String(contentsOf: second.appendingPathComponent("before/answers.jsonl"), encoding: .utf8)
        #expect(firstAfter == secondBefore)
        #expect(abs(two.before.distance.value - one.after.distance.value) < 1e-9)
        // The new adapter on top of the first reproduces the second run's "after" answers.
        let stacked = try tinyPolicy()
        try PEFTAdapter.stack([first.appendingPathComponent("adapter"), second.appendingPathComponent("adapter")], into: stacked.model)
        let merged = try tinyPolicy()
        try PEFTAdapter.stack([first.appendingPathComponent("adapter")], into: merged.model, mergeLast: true)
        try PEFTAdapter.load(from: second.appendingPathComponent("adapter"), into: merged.model)
        let tokens = try MLXArray([Int32(1), 2, 3, 4, 5, 6], shape: [1, 6])
        let difference = try (stacked.model(tokens) - merged.model(tokens)).abs().max().item(Float.self)
        #expect(difference < 1e-4)
    }

    /// Constitutional AI (issue 28): each prompt's candidates are its answer and the revision;
    /// revisions the reward prefers are trained on; given `cai generate` records are reused.
    @Test func constitutionalRoundsTrainOnRevisionsAndReuseGivenRecords() async throws {
        let data = try ToyData()
        defer { try? FileManager.default.removeItem(at: data.root) }
        var c = try data.configuration(method: .caiSFT, steps: 2)
        c.retention = nil
        let out = data.root.appendingPathComponent("cai")
        guard case .finished = try await AlignmentJob(configuration: c, directory: out, policy: try tinyPolicy(), evaluator: LetterEvaluator()).run() else {
            Issue.record("run did not finish"); return
        }
        let sets = try JSONLines.read(CandidateSet.self, from: out.appendingPathComponent("round-000/candidates.jsonl").path).map(\.1)
        #expect(!sets.isEmpty && sets.allSatisfy { $0.answers.count == 2 && $0.rewards.count == 2 })
        let log = try String(contentsOf: out.appendingPathComponent("round-000/cai.jsonl"), encoding: .utf8)
        #expect(log.split(separator: "\n").count == sets.count && log.contains("\"principle\""))

        // Records from `cai generate` for every training prompt: used instead of generating.
        let job = AlignmentJob(configuration: c, directory: out, policy: try tinyPolicy(), evaluator: LetterEvaluator())
        let records = data.root.appendingPathComponent("records.jsonl")
        struct Record: Encodable { var id: String; var prompt: [ChatMessage]; var original: String; var revision: String }
        for (id, messages) in try job.trainingPrompts() {
            try JSONLines.append(Record(id: id, prompt: messages, original: "1234 5678 90", revision: "Kind words for \(id)"), to: records.path)
        }
        c.constitutionalData = records.path
        let reused = data.root.appendingPathComponent("cai-reused")
        guard case .finished = try await AlignmentJob(configuration: c, directory: reused, policy: try tinyPolicy(), evaluator: LetterEvaluator()).run() else {
            Issue.record("run did not finish"); return
        }
        let given = try JSONLines.read(CandidateSet.self, from: reused.appendingPathComponent("round-000/candidates.jsonl").path).map(\.1)
        #expect(!given.isEmpty)
        for s in given {
            #expect(s.answers == ["1234 5678 90", "Kind words for \(s.id)"])
            #expect(s.rewards[1] > s.rewards[0], "the letters evaluator prefers the revision")
        }
        // Constitution and data apply to the constitutional methods only; a missing file is named.
        var bad = try data.configuration(method: .dpo)
        bad.constitution = "x.txt"
        #expect { try bad.validate() } throws: { "\($0)".contains("cai-sft and cai-dpo only") }
        bad = try data.configuration(method: .caiDPO)
        bad.constitution = data.path("missing.txt")
        #expect { try bad.validate() } throws: { "\($0)".contains("missing.txt") }
        bad = try data.configuration(method: .caiDPO)
        bad.constitutionalData = data.path("nothing")
        #expect { try bad.validate() } throws: { "\($0)".contains("no records") }
    }

    @Test func badConfigurationsAreRejectedBeforeAnyWork() async throws {
        let data = try ToyData()
        defer { try? FileManager.default.removeItem(at: data.root) }
        let out = data.root.appendingPathComponent("run")

        var c = try data.configuration()
        c.steps = nil
        #expect(throws: AlignError.self) { try c.validate() }  // neither steps nor budget
        c.budgetSeconds = 5
        #expect { try c.validate() } throws: { "\($0)".contains("too small") }
        c.budgetSeconds = nil
        c.steps = 0
        #expect { try c.validate() } throws: { "\($0)".contains("too small for one optimiser step") }

        // The capability retention term: bon-sft only, a positive weight, a readable file named in the error.
        c = try data.configuration(method: .dpo)
        c.retention = RetentionSettings(path: data.path("values.jsonl"))
        #expect { try c.validate() } throws: { "\($0)".contains("bon-sft and cai-sft only") }
        c = try data.configuration(method: .bonSFT)
        c.retention = RetentionSettings(path: data.path("values.jsonl"), weight: 0)
        #expect { try c.validate() } throws: { "\($0)".contains("retain-weight") }
        // More rows per step than answers: refused before any work, not by the trainer after the first measurement.
        try #"{"prompt":"Say hi","response":"hi there"}"#.appending("\n").write(to: data.root.appendingPathComponent("one-pair.jsonl"), atomically: true, encoding: .utf8)
        c.retention = RetentionSettings(path: data.path("one-pair.jsonl"), rowsPerBatch: 2)
        #expect { try AlignmentJob(configuration: c, directory: out, policy: try tinyPolicy(), evaluator: LetterEvaluator()).validate() }
            throws: { "\($0)".contains("--retain") && "\($0)".contains("retain-rows") }
        c.retention = RetentionSettings(path: data.path("no-retention.jsonl"))
        let noRetention = AlignmentJob(configuration: c, directory: out, policy: try tinyPolicy(), evaluator: LetterEvaluator())
        await #expect { _ = try await noRetention.run() } throws: { "\($0)".contains("--retain") && "\($0)".contains("no-retention.jsonl") }
        #expect(!FileManager.default.fileExists(atPath: out.path))

        // An empty training split: the error names the file, and nothing is written.
        c = try data.configuration()
        c.trainSplit = "nothing"
        let job = AlignmentJob(configuration: c, directory: out, policy: try tinyPolicy(), evaluator: LetterEvaluator())
        await #expect { _ = try await job.run() } throws: { "\($0)".contains("values.jsonl") && "\($0)".contains("nothing") }
        #expect(!FileManager.default.fileExists(atPath: out.path))

        // An empty prompt file, with its path in the message.
        try "".write(to: data.root.appendingPathComponent("empty.jsonl"), atomically: true, encoding: .utf8)
        c = try data.configuration()
        c.prompts = [data.path("empty.jsonl")]
        await #expect { _ = try await AlignmentJob(configuration: c, directory: out, policy: try tinyPolicy(), evaluator: LetterEvaluator()).run() }
            throws: { "\($0)".contains("empty.jsonl") }

        // A run folder holding another configuration.
        c = try data.configuration(steps: 1)
        _ = try await AlignmentJob(configuration: c, directory: out, policy: try tinyPolicy(), evaluator: LetterEvaluator()).run()
        var other = c
        other.seed = 99
        await #expect { _ = try await AlignmentJob(configuration: other, directory: out, policy: try tinyPolicy(), evaluator: LetterEvaluator()).run() }
            throws: { "\($0)".contains("another configuration") }

        // An adapter made for another base model: resuming with it is refused, naming the problem.
        let bigger = try TinyModels.llama(TinyModels.llamaConfiguration(vocabulary: 260, layers: 3), seed: 3)
        let wrong = LoadedModel(model: bigger, tokenizer: ByteTokenizer(), chatTemplate: .chatml, defaultSystemPrompt: nil, name: "tiny3", path: "<memory>")
        await #expect { _ = try await AlignmentJob(configuration: c, directory: out, policy: wrong, evaluator: LetterEvaluator()).run() }
            throws: { "\($0)".localizedCaseInsensitiveContains("adapter") || "\($0)".contains("layers") }

        // Unknown profile and reward.
        #expect(throws: (any Error).self) { try ProfileStore.resolve("no-such-profile") }
        #expect(throws: AlignError.self) { try RewardSpecification(parsing: "rm:") }
    }

    @Test func guidedSamplesSeeTheTargetsValues() async throws {
        let target = try ProfileStore.defaultTarget()
        let guidance = try #require(ValueGuidance.systemPrompt(for: target))
        for v in SchwartzValue.allCases {
            #expect(guidance.contains(v.displayName) == (target.vector[v] >= 0.3), "\(v)")
        }
        let withSystem = ValueGuidance.guided([.system("Be brief."), .user("hi")], guidance: guidance)
        #expect(withSystem.count == 2 && withSystem[0].content.hasPrefix(guidance) && withSystem[0].content.hasSuffix("Be brief."))
        #expect(ValueGuidance.guided([.user("hi")], guidance: guidance).map(\.role) == [.system, .user])

        // The guided candidate is sampled from another prompt; training data keep the prompt as is.
        let data = try ToyData()
        defer { try? FileManager.default.removeItem(at: data.root) }
        func candidates(guided: Int) async throws -> [CandidateSet] {
            var c = try data.configuration(steps: 1)
            c.guidedSamples = guided
            let out = data.root.appendingPathComponent("run-\(guided)")
            _ = try await AlignmentJob(configuration: c, directory: out, policy: try tinyPolicy(), evaluator: LetterEvaluator()).run()
            return try JSONLines.read(CandidateSet.self, from: out.appendingPathComponent("round-000/candidates.jsonl").path).map(\.1)
        }
        let plain = try await candidates(guided: 0), guided = try await candidates(guided: 1)
        #expect(plain.map(\.id) == guided.map(\.id))
        #expect(plain.map(\.messages) == guided.map(\.messages))
        #expect(zip(plain, guided).contains { $0.answers[0] != $1.answers[0] })
        // Each answer records whether it ended on its own; the tiny random model rarely stops
        // within 12 tokens, so most were cut by the limit.
        #expect(plain.allSatisfy { $0.finished?.count == $0.answers.count })
        #expect(plain.contains { $0.finished?.contains(false) == true })

        var c = try data.configuration()
        c.guidedSamples = c.samplesPerPrompt + 1
        #expect { try c.validate() } throws: { "\($0)".contains("guided-samples") }
        c = try data.configuration(method: .grpo)
        c.guidedSamples = 1
        #expect { try c.validate() } throws: { "\($0)".contains("guided-samples") }
    }

    @Test func refusalsAndHarm() throws {
        #expect(RefusalDetector.isRefusal("I'm sorry, but I can't help with that."))
        #expect(RefusalDetector.isRefusal("I can\u{2019}t do that"))
        #expect(!RefusalDetector.isRefusal("Sure! Use kill -9 followed by the process id."))
        var c = [Double](repeating: 0, count: 10)
        c[SchwartzValue.benevolence.index] = -0.8
        let opposed = try ValueVector(c)
        #expect(HarmJudgement.isHarmful(answer: "Here is how to do it.", vector: opposed))
        #expect(!HarmJudgement.isHarmful(answer: "I cannot help with hurting anyone.", vector: opposed))
        #expect(!HarmJudgement.isHarmful(answer: "Here is how.", vector: .zero))
    }
}

final class Counter: @unchecked Sendable {
    private let lock = NSLock()
    private var count = 0
    func increment() { lock.lock(); count += 1; lock.unlock() }
    var value: Int { lock.lock(); defer { lock.unlock() }; return count }
}
