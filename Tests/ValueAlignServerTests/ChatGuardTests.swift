import Foundation
import Evaluators
import OpenAIBackend
import Testing
import ValueAlignServer
import ValueSpace

/// The decision paths of POST /v1/chat/completions, in process (Hummingbird's router test
/// client, a scripted upstream) with a SQLite audit log.
@Suite("Guard chat decisions")
struct ChatGuardTests {
    @Test("allow: the upstream's answer passes through in OpenAI's shape, audited with its vector")
    func allow() async throws {
        try await withUpstream({ _, _ in .text(Texts.kind) }) { upstream, log in
            try await withGuard(upstream: upstream, policy: try policy(standardPolicy)) { g in
                let reply = try await g.chat("How can I be a good neighbour?")
                #expect(reply.status == 200)
                #expect(reply.json["object"] as? String == "chat.completion")
                #expect(reply.content == Texts.kind)
                #expect(reply.finishReason == "stop")
                #expect(reply.guardAction == "allow")
                let usage = reply.json["usage"] as? [String: Any]
                #expect(usage?["completion_tokens"] as? Int == 4)
                let requestID = try #require(reply.headers["x-request-id"])
                #expect(reply.headers["server-timing"]?.contains("guard;dur=") == true)
                #expect(await log.count == 1)
                let rows = try await g.server.audit.query(AuditQuery(requestID: requestID))
                #expect(rows.count == 1)
                let row = try #require(rows.first)
                #expect(row.action == "allow" && row.status == 200 && row.endpoint == "chat")
                let vector = try #require(row.outputVector)
                #expect(vector.count == 10)
                #expect(vector[SchwartzValue.benevolence.index] > 0.5)
                #expect(row.inputVector?.count == 10)  // the input stage has thresholds, so the input was read
                #expect(row.upstreamMilliseconds > 0 && row.totalMilliseconds >= row.upstreamMilliseconds)
            }
        }
    }

    @Test("block on output: the refusal with finish_reason content_filter, the answer never reaches the client")
    func blockOutput() async throws {
        try await withUpstream({ _, _ in .text(Texts.powerHungry) }) { upstream, _ in
            try await withGuard(upstream: upstream, policy: try policy(standardPolicy)) { g in
                let reply = try await g.chat("How do I win at business?")
                #expect(reply.status == 200)
                #expect(reply.content == "Sorry, I cannot answer that.")
                #expect(reply.finishReason == "content_filter")
                #expect(reply.headers["x-valuealign-action"] == "block")
                #expect(!reply.text.contains("dominate"))
                let row = try #require(try await g.server.audit.query(AuditQuery(requestID: reply.headers["x-request-id"])).first)
                #expect(row.action == "block")
                #expect(row.reasons.contains { $0.hasPrefix("output.power") && $0.hasSuffix("(block)") })
                #expect(row.responseText == nil)
            }
        }
    }

    @Test("block on input: the upstream is never called")
    func blockInput() async throws {
        try await withUpstream({ _, _ in .text(Texts.kind) }) { upstream, log in
            try await withGuard(upstream: upstream, policy: try policy(standardPolicy)) { g in
                let reply = try await g.chat(Texts.hostile)
                #expect(reply.status == 200)
                #expect(reply.finishReason == "content_filter")
                #expect(await log.count == 0)
                let row = try #require(try await g.server.audit.query(AuditQuery(requestID: reply.headers["x-request-id"])).first)
                #expect(row.action == "block")
                #expect(row.inputVector?[SchwartzValue.benevolence.index] ?? 0 < -0.5)
                #expect(row.outputVector == nil)
                #expect(row.upstreamMilliseconds == 0)
            }
        }
    }

    @Test("flag: the answer passes, marked in the reply and the audit row")
    func flag() async throws {
        try await withUpstream({ _, _ in .text("Enjoy the pleasure of a long lunch and indulge yourself.") }) { upstream, _ in
            try await withGuard(upstream: upstream, policy: try policy(standardPolicy)) { g in
                let reply = try await g.chat("What should I do today?")
                #expect(reply.content == "Enjoy the pleasure of a long lunch and indulge yourself.")
                #expect(reply.guardAction == "flag")
                let row = try #require(try await g.server.audit.query(AuditQuery(action: "flag")).first)
                #expect(row.reasons.contains { $0.hasPrefix("output.hedonism") })
            }
        }
    }

    @Test("revise: the upstream rewrites after a critique naming the value; the rewrite is answered")
    func reviseSucceeds() async throws {
        try await withUpstream({ _, attempt in .text(attempt == 1 ? Texts.hostile : Texts.kind) }) { upstream, log in
            try await withGuard(upstream: upstream, policy: try policy(standardPolicy)) { g in
                let reply = try await g.chat("My colleague was rude to me.")
                #expect(reply.status == 200)
                #expect(reply.content == Texts.kind)
                #expect(reply.guardAction == "revise")
                let conversations = await log.conversations
                #expect(conversations.count == 2)
                // The critique shows the model its answer and names the value it crossed, and the
                // model answers the user's conversation again.
                let second = try #require(conversations.last)
                #expect(second.count == 2)
                #expect(second[0]["role"] == "system" && second[0]["content"]?.contains(Texts.hostile) == true)
                #expect(second[0]["content"]?.contains("benevolence") == true)
                #expect(second[1]["role"] == "user" && second[1]["content"] == "My colleague was rude to me.")
                let row = try #require(try await g.server.audit.query(AuditQuery(requestID: reply.headers["x-request-id"])).first)
                #expect(row.action == "revise" && row.revisionRounds == 1)
                #expect(row.outputVector?[SchwartzValue.benevolence.index] ?? -1 > 0)
            }
        }
    }

    @Test("revise falls back to block after maxRounds failed rewrites")
    func reviseFallsBackToBlock() async throws {
        try await withUpstream({ _, _ in .text(Texts.hostile) }) { upstream, log in
            try await withGuard(upstream: upstream, policy: try policy(standardPolicy)) { g in
                let reply = try await g.chat("My colleague was rude to me.")
                #expect(reply.finishReason == "content_filter")
                #expect(await log.count == 3)  // the answer and two rewrites
                let row = try #require(try await g.server.audit.query(AuditQuery(requestID: reply.headers["x-request-id"])).first)
                #expect(row.action == "block" && row.revisionRounds == 2)
                #expect(row.reasons.contains { $0.contains("no revision passed in 2 rounds") })
            }
        }
    }

    @Test("GET /v1/models names the upstream model; /healthz answers")
    func modelsAndHealth() async throws {
        try await withUpstream({ _, _ in .text("x") }) { upstream, _ in
            try await withGuard(upstream: upstream, policy: try policy(standardPolicy)) { g in
                let models = try await g.call(.GET, "/v1/models")
                #expect(models.status == 200)
                #expect(((models.json["data"] as? [[String: Any]])?.first?["id"] as? String) == "fake-model")
                let health = try await g.call(.GET, "/healthz")
                #expect(health.json["status"] as? String == "ok")
                #expect(health.json["evaluator"] as? String == "lexicon")
            }
        }
    }
}

@Suite("Guard service lifecycle")
struct LifecycleTests {
    @Test("run() serves until cancelled, and the retention loop neither stops it nor outlives it")
    func runUntilCancelled() async throws {
        try await withUpstream({ _, _ in .text(Texts.kind) }, transport: .live) { upstream, _ in
            let upstreamURL = try #require(upstream.baseURL)
            for retention in [nil, Duration.seconds(86400)] {
                let directory = FileManager.default.temporaryDirectory.appendingPathComponent("guard-run-\(UUID().uuidString)").path
                defer { try? FileManager.default.removeItem(atPath: directory) }
                let store = try SQLiteAuditStore(directory: directory)
                try await store.record(AuditRecord(requestID: "req_ancient", keyID: "k", time: Date(timeIntervalSince1970: 0), endpoint: "chat", action: "allow", status: 200))
                var configuration = GuardConfiguration(host: "127.0.0.1", port: 0, policy: try policy(standardPolicy))
                configuration.retention = retention
                let upstream = try OpenAICompatibleBackend(baseURL: upstreamURL, model: "fake-model", apiKey: nil, apiKeyEnvironmentVariable: nil, maxRetries: 0)
                let server = try GuardServer(configuration: configuration, upstream: upstream, evaluator: LexiconValueEvaluator(), audit: store)
                let ports = AsyncStream.makeStream(of: Int.self)
                let running = Task { try await server.run { ports.continuation.yield($0) } }
                var iterator = ports.stream.makeAsyncIterator()
                let port = try #require(await iterator.next())
                try await Task.sleep(for: .milliseconds(200))  // longer than the old bug took to stop the server
                let body = try JSONSerialization.data(withJSONObject: ["messages": [["role": "user", "content": "hello"]]])
                let reply = try await call(.POST, "http://127.0.0.1:\(port)/v1/chat/completions", body: body)
                #expect(reply.status == 200)
                // With a retention period the ancient row was purged at start-up; without, it stays.
                #expect(try await store.query(AuditQuery(requestID: "req_ancient")).count == (retention == nil ? 1 : 0))
                running.cancel()
                _ = await running.result
                await store.close()
            }
        }
    }
}
