import Evaluators
import Foundation
import LanguageModels
import MLXEngine
import Testing
@testable import ValueAlignServer
import ValueAlignCore
import ValueAlignTesting
import ValueSpace

/// The measuring endpoints, evaluator batching, and the audit log's storage and export.
@Suite("Guard evaluation, reward and audit")
struct EvaluationAndAuditTests {
    @Test("POST /v1/values/evaluate: a vector, labels and distance per pair, matching the evaluator")
    func evaluate() async throws {
        try await withUpstream({ _, _ in .text("") }) { upstream, _ in
            let p = try policy(standardPolicy)
            try await withGuard(upstream: upstream, policy: p) { g in
                let pairs = [["prompt": "q", "response": Texts.kind], ["prompt": "q", "response": Texts.powerHungry]]
                let reply = try await g.post("/v1/values/evaluate", json: ["pairs": pairs])
                #expect(reply.status == 200)
                let data = try #require(reply.json["data"] as? [[String: Any]])
                #expect(data.count == 2)
                let expected = LexiconValueEvaluator().assess(ValuePair(prompt: "q", response: Texts.powerHungry))
                let vector = try #require(data[1]["vector"] as? [String: Double])
                #expect(vector.count == 10)
                for value in SchwartzValue.allCases { #expect(abs(vector[value.rawValue]! - expected.vector[value]) < 1e-9) }
                let distance = try #require(data[1]["distance"] as? Double)
                #expect(abs(distance - ValueDistance.basealign(expected.vector, to: p.target.vector)) < 1e-9)
                #expect(((data[1]["output_check"] as? [String: Any])?["action"] as? String) == "block")
                #expect(((data[0]["labels"] as? [String: Int])?["benevolence"]) == 1)
                let bad = try await g.post("/v1/values/evaluate", json: ["pairs": [["prompt": "q"]]])
                #expect(bad.status == 400 && bad.error["param"] as? String == "pairs[0]")
            }
        }
    }

    @Test("POST /get_reward (OpenRLHF): rewards = -BaseAlign distance of query minus prompt, scores alike")
    func reward() async throws {
        try await withUpstream({ _, _ in .text("") }) { upstream, _ in
            let p = try policy(standardPolicy)
            try await withGuard(upstream: upstream, policy: p) { g in
                let prompts = ["<|user|>How should I treat others?<|assistant|>", "<|user|>How do I win?<|assistant|>"]
                let queries = [prompts[0] + Texts.kind, prompts[1] + Texts.hostile]
                let reply = try await g.post("/get_reward", json: ["query": queries, "prompts": prompts, "labels": ["", ""]])
                #expect(reply.status == 200)
                let rewards = try #require(reply.json["rewards"] as? [Double])
                let scores = try #require(reply.json["scores"] as? [Double])
                #expect(rewards.count == 2 && scores == rewards)
                let evaluator = LexiconValueEvaluator()
                for (i, text) in [Texts.kind, Texts.hostile].enumerated() {
                    let v = evaluator.assess(ValuePair(prompt: prompts[i], response: text)).vector
                    #expect(abs(rewards[i] - -ValueDistance.basealign(v, to: p.target.vector)) < 1e-9)
                }
                #expect(rewards[0] > rewards[1] + 0.5)  // the target weighs benevolence: the hostile answer is far from it
                let mismatched = try await g.post("/get_reward", json: ["query": queries, "prompts": ["one"]])
                #expect(mismatched.status == 400 && mismatched.error["param"] as? String == "prompts")
                let wrong = try await g.post("/get_reward", json: ["query": "not a list"])
                #expect(wrong.status == 400 && wrong.error["param"] as? String == "query")
            }
        }
    }

    @Test("concurrent requests share evaluator batches")
    func batching() async throws {
        let evaluator = SlowCountingEvaluator(delay: .milliseconds(60))
        let batcher = EvaluationBatcher(evaluator: evaluator, maxBatchSize: 16, maxDelay: .milliseconds(2))
        let results = try await withThrowingTaskGroup(of: [ValueAssessment].self) { group in
            for i in 0..<12 {
                group.addTask { try await batcher.evaluate([ValuePair(prompt: "p\(i)", response: i % 2 == 0 ? Texts.kind : Texts.hostile)]) }
            }
            var all: [[ValueAssessment]] = []
            for try await r in group { all.append(r) }
            return all
        }
        #expect(results.count == 12 && results.allSatisfy { $0.count == 1 })
        let sizes = await evaluator.batchSizes
        #expect(sizes.reduce(0, +) == 12)
        #expect(sizes.count <= 3, "12 concurrent requests ran in \(sizes.count) batches: \(sizes)")
        #expect(await batcher.batches == sizes.count)
        // A request's pairs come back in order even when split over batches.
        let many = (0..<40).map { ValuePair(prompt: "", response: $0 % 2 == 0 ? Texts.kind : Texts.powerHungry) }
        let assessed = try await batcher.evaluate(many)
        #expect(assessed.count == 40)
        for (i, a) in assessed.enumerated() { #expect((a.vector[.power] > 0.5) == (i % 2 == 1)) }
    }

    /// A lone request waits for company only while waiting has been paying: after batches of one,
    /// the next lone request goes at once; concurrent requests still share a batch.
    @Test func noWaitForCompanyThatNeverComes() async throws {
        let evaluator = SlowCountingEvaluator(delay: .milliseconds(100))
        let batcher = EvaluationBatcher(evaluator: evaluator, maxBatchSize: 8, maxDelay: .milliseconds(30))
        let clock = ContinuousClock()
        func waited() async throws -> Double {
            let start = clock.now
            let timed = try await batcher.evaluateTimed([ValuePair(prompt: "a", response: Texts.kind)])
            return (clock.now - start).seconds - timed.computeSeconds
        }
        let first = try await waited()  // no history: waits up to maxDelay
        #expect(first >= 0.02, "the first lone request waited \(first) s")
        _ = try await waited()
        let later = try await waited()
        #expect(later < 0.008, "after batches of one a lone request goes at once (waited \(later) s)")
        // Concurrent requests still form one batch (they queue while it computes).
        let before = await batcher.batches
        try await withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<6 { group.addTask { _ = try await batcher.evaluate([ValuePair(prompt: "b", response: Texts.kind)]) } }
            try await group.waitForAll()
        }
        let used = await batcher.batches - before
        #expect(used <= 3, "six concurrent requests in \(used) batches")
    }

    /// The compute time a request reports is its batches' own, not the time it sat in the queue
    /// behind another batch or waited for company (issue 26: the guard's overhead figure
    /// subtracted both).
    @Test func computeTimeLeavesOutTheQueue() async throws {
        let evaluator = SlowCountingEvaluator(delay: .milliseconds(40))
        let batcher = EvaluationBatcher(evaluator: evaluator, maxBatchSize: 1, maxDelay: .milliseconds(2))
        let clock = ContinuousClock()
        // Two requests, one pair each, batches of one: the second waits for the first batch.
        async let first = batcher.evaluateTimed([ValuePair(prompt: "a", response: Texts.kind)])
        try await Task.sleep(for: .milliseconds(5))
        let start = clock.now
        let second = try await batcher.evaluateTimed([ValuePair(prompt: "b", response: Texts.kind)])
        let wall = (clock.now - start).seconds
        _ = try await first
        #expect(second.assessments.count == 1)
        #expect(second.computeSeconds >= 0.035 && second.computeSeconds < 0.075, "one batch's compute: \(second.computeSeconds)")
        #expect(wall > second.computeSeconds + 0.02, "it also queued behind the first batch: wall \(wall), compute \(second.computeSeconds)")
        var timing = Timing()
        timing.add(evaluation: second.computeSeconds, wall: wall)
        let header = timing.header(total: wall + 0.001)
        #expect(header.contains("evaluator;dur=") && header.contains("evaluator-wait;dur="))
        #expect(abs(timing.evaluator + timing.evaluatorWait - wall) < 1e-9 && timing.evaluatorWait > 0.02)
    }

    @Test("the trained evaluator (tiny random model and heads) serves through the guard")
    func trainedEvaluator() async throws {
        let configuration = TinyModels.llamaConfiguration(vocabulary: 260, layers: 2)
        let tensors = try TinyModels.randomTensors(configuration, seed: 5)
        let model = try Checkpoint(format: .huggingFace, path: "<tiny>", configuration: configuration, tensors: tensors).makeModel()
        let evaluatorConfiguration = EvaluatorConfiguration(
            name: "tiny-probe",
            baseModel: BaseModelIdentity(fileName: "<tiny>", fingerprint: "none", architecture: "llama", hiddenSize: 32, layerCount: 2),
            layers: [2], poolings: [.meanResponse], encoding: PairEncoding(maxPromptTokens: 32, maxResponseTokens: 48))
        let heads = try ValueHeads(inputWidth: evaluatorConfiguration.featureWidth, hiddenUnits: 0, seed: 3)
        let evaluator = try TrainedValueEvaluator(configuration: evaluatorConfiguration, heads: heads, model: model, tokenizer: ByteTokenizer(),
                                                  template: .chatml, batchSize: 4)
        try await withUpstream({ _, _ in .text(Texts.kind) }) { upstream, _ in
            try await withGuard(upstream: upstream, policy: try policy(standardPolicy), evaluator: evaluator) { g in
                let replies = try await withThrowingTaskGroup(of: Reply.self) { group in
                    for i in 0..<4 { group.addTask { try await g.chat("question \(i)") } }
                    var all: [Reply] = []
                    for try await r in group { all.append(r) }
                    return all
                }
                #expect(replies.allSatisfy { $0.status == 200 })
                let rows = try await g.server.audit.query(AuditQuery())
                #expect(rows.count == 4)
                for row in rows {
                    let v = try #require(row.outputVector)
                    #expect(v.count == 10 && v.allSatisfy { $0 >= -1 && $0 <= 1 && $0.isFinite })
                }
                // Same pair, same vector: the evaluator is deterministic under batching.
                let direct = try await evaluator.evaluate([ValuePair(prompt: "question 0", response: Texts.kind)])[0].vector.components
                let logged = try #require(rows.first { $0.promptText == "question 0" }?.outputVector)
                #expect(zip(direct, logged).allSatisfy { abs($0 - $1) < 1e-4 })
            }
        }
    }

    @Test("SQLite audit: WAL file, query filters, JSONL and CSV export, retention purge")
    func sqliteAudit() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("audit-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let store = try SQLiteAuditStore(directory: directory)
        try await exercise(store)
        #expect(FileManager.default.fileExists(atPath: directory + "/audit.sqlite-wal"))
        await store.close()
        // Rows survive a reopen.
        let reopened = try SQLiteAuditStore(directory: directory)
        #expect(try await reopened.count() == 2)
        await reopened.close()
    }

    @Test("PostgreSQL audit (needs VALUEALIGN_TEST_POSTGRES_URL; `make test` starts a server)",
          .enabled(if: ProcessInfo.processInfo.environment["VALUEALIGN_TEST_POSTGRES_URL"] != nil))
    func postgresAudit() async throws {
        let url = ProcessInfo.processInfo.environment["VALUEALIGN_TEST_POSTGRES_URL"]!
        let store = try await PostgresAuditStore.open(url: url)
        _ = try await store.purge(olderThan: Date().addingTimeInterval(3600 * 24 * 365 * 100))  // start empty
        try await exercise(store)
        // And the server writes its decisions there.
        try await withUpstream({ _, _ in .text(Texts.powerHungry) }) { upstream, _ in
            try await withGuard(upstream: upstream, policy: try policy(standardPolicy), audit: store) { g in
                let reply = try await g.chat("How do I win?")
                let row = try #require(try await store.query(AuditQuery(requestID: reply.headers["x-request-id"])).first)
                #expect(row.action == "block" && row.outputVector?.count == 10)
            }
        }
        await store.close()
    }

    /// Writes two rows, reads them back through every filter, exports and purges.
    func exercise(_ store: any AuditStore) async throws {
        let old = AuditRecord(requestID: "req_old", keyID: "team-a", time: Date().addingTimeInterval(-40 * 86400), endpoint: "chat", model: "m",
                              action: "block", status: 200, reasons: ["output.power 0.90 > max 0.50 (block)"], inputVector: nil,
                              outputVector: [0, 0, 0, 0, 0.9, 0, 0, 0, 0, 0], totalMilliseconds: 12.5, upstreamMilliseconds: 10, evaluatorMilliseconds: 1)
        let new = AuditRecord(requestID: "req_new", keyID: "team-b", time: Date(), endpoint: "chat.stream", action: "allow", status: 200,
                              reasons: [], inputVector: [Double](repeating: 0.1, count: 10), outputVector: [Double](repeating: -0.2, count: 10),
                              revisionRounds: 1, totalMilliseconds: 3, error: "comma, \"quote\"\nnewline", promptText: "p", responseText: "r")
        try await store.record(old)
        try await store.record(new)
        #expect(try await store.count() == 2)
        let all = try await store.query(AuditQuery())
        #expect(all.map(\.requestID) == ["req_new", "req_old"])  // newest first
        let back = try #require(all.last)
        #expect(back.outputVector == old.outputVector && back.reasons == old.reasons && back.inputVector == nil)
        #expect(abs(back.time.timeIntervalSince(old.time)) < 0.001)
        #expect(all.first?.error == new.error && all.first?.revisionRounds == 1)
        #expect(try await store.query(AuditQuery(keyID: "team-a")).map(\.requestID) == ["req_old"])
        #expect(try await store.query(AuditQuery(action: "allow")).map(\.requestID) == ["req_new"])
        #expect(try await store.query(AuditQuery(since: Date().addingTimeInterval(-86400))).map(\.requestID) == ["req_new"])
        #expect(try await store.query(AuditQuery(limit: 1)).count == 1)

        let lines = AuditExport.jsonl(all).split(separator: "\n")
        #expect(lines.count == 2)
        let decoded = try JSONSerialization.jsonObject(with: Data(lines[0].utf8)) as? [String: Any]
        #expect(decoded?["requestID"] as? String == "req_new")
        let csv = AuditExport.csv(all)
        #expect(csv.hasPrefix("request_id,key_id,time,"))
        #expect(csv.contains("\"comma, \"\"quote\"\"\nnewline\""))  // RFC 4180 quoting

        #expect(try await store.purge(olderThan: Date().addingTimeInterval(-30 * 86400)) == 1)
        #expect(try await store.query(AuditQuery()).map(\.requestID) == ["req_new"])
        // Leave the same two rows for the caller's further checks.
        try await store.record(old)
    }
}

/// A real evaluator (the lexicon) that takes `delay` per batch and records batch sizes, so that
/// batching is observable.
actor SlowCountingEvaluator: ValueEvaluator {
    let delay: Duration
    private(set) var batchSizes: [Int] = []
    nonisolated var name: String { "slow-lexicon" }
    init(delay: Duration) { self.delay = delay }
    func evaluate(_ pairs: [ValuePair]) async throws -> [ValueAssessment] {
        batchSizes.append(pairs.count)
        try await Task.sleep(for: delay)
        return try await LexiconValueEvaluator().evaluate(pairs)
    }
}

@Suite struct AuditCSVInjectionTests {
    /// Stored text that a spreadsheet would run as a formula gets a leading apostrophe; our own
    /// numbers (negative vector components among them) stay as they are.
    @Test func formulaCellsAreNeutralised() throws {
        let r = AuditRecord(requestID: "req_1", keyID: "@team", time: Date(), endpoint: "chat", action: "block", status: 200, reasons: ["-rule"],
                            inputVector: [Double](repeating: -0.5, count: 10), outputVector: nil, revisionRounds: 0, totalMilliseconds: 1,
                            error: "+err", promptText: "=HYPERLINK(\"http://x\",\"y\")", responseText: "\tcmd")
        let csv = AuditExport.csv([r])
        let row = csv.split(separator: "\r\n")[1]
        #expect(row.contains("'@team") && row.contains("'-rule") && row.contains("'+err") && row.contains("'\tcmd"))
        #expect(row.contains("\"'=HYPERLINK(\"\"http://x\"\",\"\"y\"\")\""), "quoted and neutralised: \(row)")
        #expect(row.contains(",-0.5000 -0.5000"), "vectors are not text")
        #expect(!row.contains(",=") && !row.contains(",+") && !row.contains(",@"))
    }
}
