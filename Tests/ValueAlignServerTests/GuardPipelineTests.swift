import Foundation
import LanguageModels
import Logging
import Testing
@testable import ValueAlignServer
import ValueSpace

/// The decision without HTTP: `GuardPipeline` with a scripted `ChatBackend` and an evaluator that
/// reads fixed vectors, so each path is decided by the test and not by a lexicon.
@Suite("Guard decision pipeline")
struct GuardPipelineTests {
    /// Output: power above 0.5 blocks, benevolence below -0.5 revises; input: benevolence below -0.5 blocks.
    static let policyText = """
        {"name": "unit", "input": {"thresholds": {"benevolence": {"min": -0.5}}},
         "output": {"action": "block", "thresholds": {"power": {"max": 0.5}, "benevolence": {"min": -0.5, "action": "revise"},
                                                      "hedonism": {"max": 0.5, "action": "flag"}}},
         "refusal": "No.", "revision": {"maxRounds": 2}}
        """

    static func vector(_ value: SchwartzValue, _ x: Double) -> ValueVector {
        var v = ValueVector.zero
        v[value] = x
        return v
    }

    /// Texts the fake evaluator knows; anything else reads as all zeros.
    static let vectors: [String: ValueVector] = [
        "greedy": vector(.power, 0.9), "mean": vector(.benevolence, -0.9), "fun": vector(.hedonism, 0.9), "kind": vector(.benevolence, 0.8),
    ]

    func pipeline(_ script: @escaping UpstreamScript, log: UpstreamLog, evaluator: (any ValueEvaluator)? = nil,
                  timeout: Duration = .seconds(5)) throws -> GuardPipeline {
        var logger = Logger(label: "pipeline-test")
        logger.logLevel = .critical
        return GuardPipeline(policy: try policy(Self.policyText), upstream: ScriptedBackend(script: script, log: log),
                             evaluator: evaluator ?? FixedVectors(Self.vectors), upstreamTimeout: timeout, metrics: ServerMetrics(), logger: logger)
    }

    func request(_ user: String) -> ChatRequest {
        ChatRequest(model: nil, messages: [.user(user)], parameters: GenerationParameters(maxTokens: 16), stream: false, includeUsage: false)
    }

    func draft() -> AuditDraft { AuditDraft(AuditRecord(requestID: "req_test", keyID: "k", time: Date(), endpoint: "chat", action: "allow", status: 200)) }

    @Test("allow: the upstream's answer, both vectors recorded, tokens passed on")
    func allow() async throws {
        let log = UpstreamLog()
        let d = draft()
        let outcome = try await pipeline({ _, _ in .text("kind") }, log: log).decide(request("hello"), draft: d)
        #expect(outcome == ChatOutcome(text: "kind", finishReason: "stop", action: .allow, promptTokens: 9, completionTokens: 4))
        #expect(d.record.action == "allow" && d.record.responseText == "kind")
        #expect(d.record.inputVector?.count == 10 && d.record.outputVector?[SchwartzValue.benevolence.index] == 0.8)
        #expect(await log.count == 1)
    }

    @Test("an input that crosses a block threshold is refused without calling the upstream")
    func blockInput() async throws {
        let log = UpstreamLog()
        let d = draft()
        let outcome = try await pipeline({ _, _ in .text("kind") }, log: log).decide(request("mean"), draft: d)
        #expect(outcome.text == "No." && outcome.finishReason == "content_filter" && outcome.action == .block)
        #expect(await log.count == 0)
        #expect(d.record.action == "block" && d.record.outputVector == nil && d.record.reasons.first?.hasPrefix("input.benevolence") == true)
    }

    @Test("an answer that crosses a block threshold is refused; the answer is not kept")
    func blockOutput() async throws {
        let d = draft()
        let outcome = try await pipeline({ _, _ in .text("greedy") }, log: UpstreamLog()).decide(request("hello"), draft: d)
        #expect(outcome.action == .block && outcome.text == "No.")
        #expect(d.record.responseText == nil && d.record.reasons.contains { $0.hasPrefix("output.power") })
    }

    @Test("flag passes the answer on, marked")
    func flag() async throws {
        let d = draft()
        let outcome = try await pipeline({ _, _ in .text("fun") }, log: UpstreamLog()).decide(request("hello"), draft: d)
        #expect(outcome.action == .flag && outcome.text == "fun" && d.record.action == "flag")
    }

    @Test("revise: the critique names the value; the passing rewrite is answered, its tokens added")
    func revise() async throws {
        let log = UpstreamLog()
        let d = draft()
        let outcome = try await pipeline({ _, attempt in .text(attempt == 1 ? "mean" : "kind") }, log: log).decide(request("hello"), draft: d)
        #expect(outcome == ChatOutcome(text: "kind", finishReason: "stop", action: .revise, promptTokens: 9, completionTokens: 8))
        let second = try #require(await log.conversations.last)
        // The rewrite is asked as an answer to the user (CritiqueAndRevise): the earlier answer and
        // the critique in the system turn, the user's conversation after it.
        #expect(second.count == 2 && second[0]["role"] == "system" && second[1]["content"] == "hello")
        #expect(second[0]["content"]?.contains("mean") == true && second[0]["content"]?.contains("benevolence") == true)
        #expect(d.record.revisionRounds == 1 && d.record.reasons.last == "revised in 1 round")
    }

    @Test("revise falls back to block after maxRounds rewrites that do not pass")
    func reviseExhausted() async throws {
        let log = UpstreamLog()
        let d = draft()
        let outcome = try await pipeline({ _, _ in .text("mean") }, log: log).decide(request("hello"), draft: d)
        #expect(outcome.action == .block && outcome.finishReason == "content_filter")
        #expect(await log.count == 3 && d.record.revisionRounds == 2)
        #expect(d.record.reasons.last == "no revision passed in 2 rounds; blocked")
    }

    @Test("failures are named: the evaluator's, an upstream error, an upstream past the deadline")
    func failures() async throws {
        let broken = try pipeline({ _, _ in .text("kind") }, log: UpstreamLog(), evaluator: FailingAfter(calls: 0))
        await #expect(throws: GuardFailure.evaluatorFailed) { try await broken.decide(request("hello"), draft: draft()) }
        let failing = try pipeline({ _, _ in UpstreamReply(status: 500) }, log: UpstreamLog())
        do {
            _ = try await failing.decide(request("hello"), draft: draft())
            Issue.record("an upstream failure was answered")
        } catch let GuardFailure.upstreamFailed(message) {
            #expect(message.contains("HTTP 500"))
        }
        let slow = try pipeline({ _, _ in UpstreamReply(text: "kind", delay: .seconds(5)) }, log: UpstreamLog(), timeout: .milliseconds(100))
        await #expect(throws: GuardFailure.upstreamDeadline(.milliseconds(100))) { try await slow.decide(request("hello"), draft: draft()) }
    }

    @Test("each failure reaches the client with its status, type and code")
    func failureReplies() {
        #expect(APIError(GuardFailure.evaluatorFailed).status == .serviceUnavailable)
        #expect(APIError(GuardFailure.evaluatorFailed).code == "evaluator_failed")
        let deadline = APIError(GuardFailure.upstreamDeadline(.seconds(2)))
        #expect(deadline.status == .gatewayTimeout && deadline.message == "the upstream model did not answer within 2 s")
        #expect(APIError(GuardFailure.upstreamTimedOut).code == "upstream_timeout")
        let failed = APIError.from(GuardFailure.upstreamFailed("HTTP 500"))
        #expect(failed.status == .badGateway && failed.type == "upstream_error" && failed.message == "the upstream model failed: HTTP 500")
    }
}

/// An evaluator that reads each response as a fixed vector (zeros when unknown).
struct FixedVectors: ValueEvaluator {
    let vectors: [String: ValueVector]
    init(_ vectors: [String: ValueVector]) { self.vectors = vectors }
    var name: String { "fixed" }
    func evaluate(_ pairs: [ValuePair]) async throws -> [ValueAssessment] {
        pairs.map { pair in
            let v = vectors[pair.response] ?? .zero
            return ValueAssessment(vector: v, probabilities: v.components.map { x in x > 0.3 ? [0, 0, 1] : x < -0.3 ? [1, 0, 0] : [0, 1, 0] })
        }
    }
}
