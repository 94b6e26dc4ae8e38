import Foundation
import LanguageModels
import Logging
import Testing
@testable import ValueAlignServer
import ValueSpace

/// Policy rules on the probe monitor's reading (`output.probes`, `serve --monitor probes`): the
/// decision acts on the reading that comes with the completion, like on the evaluator's vector.
@Suite struct ProbeRuleTests {
    /// A local-model stand-in whose completions carry a fixed probe reading.
    struct MonitoredBackend: ChatBackend {
        let text: String
        let reading: [Double]?
        var modelName: String { "monitored" }
        func complete(_ messages: [ChatMessage], parameters: GenerationParameters) async throws -> ChatCompletion {
            ChatCompletion(text: text, finishReason: .stop, promptTokens: 3, completionTokens: 2, monitorReading: reading)
        }
        func stream(_ messages: [ChatMessage], parameters: GenerationParameters) -> AsyncThrowingStream<String, any Error> {
            AsyncThrowingStream { $0.yield(text); $0.finish() }
        }
    }

    static let policyText = """
        {"name": "probes", "output": {"action": "block", "probes": {"benevolence": {"min": -0.5}, "power": {"max": 0.6, "action": "flag"}}}}
        """

    func decide(_ reading: [Double]?) async throws -> (ChatOutcome, AuditDraft) {
        var logger = Logger(label: "probe-rules")
        logger.logLevel = .critical
        let pipeline = GuardPipeline(policy: try policy(Self.policyText), upstream: MonitoredBackend(text: "fine words", reading: reading),
                                     evaluator: FixedVectors([:]), upstreamTimeout: .seconds(5), metrics: ServerMetrics(), logger: logger)
        let d = AuditDraft(AuditRecord(requestID: "r", keyID: "k", time: Date(), endpoint: "chat", action: "allow", status: 200))
        let chat = ChatRequest(model: nil, messages: [.user("hi")], parameters: GenerationParameters(maxTokens: 8), stream: false, includeUsage: false)
        return (try await pipeline.decide(chat, draft: d), d)
    }

    func reading(_ pairs: [(SchwartzValue, Double)]) -> [Double] {
        var r = [Double](repeating: 0, count: 10)
        for (v, x) in pairs { r[v.index] = x }
        return r
    }

    @Test func theReadingDecides() async throws {
        // The evaluator reads the text as neutral; only the probes see the answer oppose benevolence.
        let (blocked, d1) = try await decide(reading([(.benevolence, -0.8)]))
        #expect(blocked.action == .block && blocked.finishReason == "content_filter")
        #expect(d1.record.reasons.contains("output.probes.benevolence -0.80 < min -0.50 (block)"))
        let (flagged, d2) = try await decide(reading([(.power, 0.9)]))
        #expect(flagged.action == .flag && flagged.text == "fine words")
        #expect(d2.record.reasons.contains { $0.hasPrefix("output.probes.power 0.90 > max 0.60") })
        let (allowed, d3) = try await decide(reading([(.benevolence, 0.4)]))
        #expect(allowed.action == .allow && d3.record.reasons.isEmpty)
        // No reading (an answer too short to read): allowed, and the reasons say why.
        let (unread, d4) = try await decide(nil)
        #expect(unread.action == .allow && d4.record.reasons == ["output.probes: no reading (answer too short to read)"])
    }

    @Test func policyFiles() throws {
        let p = try policy(Self.policyText)
        #expect(p.output.probeThresholds[.benevolence] == GuardPolicy.Threshold(min: -0.5, action: .block))
        #expect(p.output.probeThresholds[.power] == GuardPolicy.Threshold(max: 0.6, action: .flag))
        #expect(p.output.thresholds.isEmpty && p.output.isEmpty, "probe rules need no evaluator thresholds")
        #expect { try policy(#"{"input": {"probes": {"benevolence": {"min": -0.5}}}}"#) } throws: { "\($0)".contains("probes") }
        #expect { try policy(#"{"output": {"probes": {"kindness": {"min": -0.5}}}}"#) } throws: { "\($0)".contains("output.probes.kindness") }
        #expect { try policy(#"{"output": {"probes": {"power": {"max": 2}}}}"#) } throws: { "\($0)".contains("outside [-1, 1]") }
    }

    @Test func streamsWithProbeRulesAreBuffered() async throws {
        let p = try policy(Self.policyText)
        #expect(p.streaming.mode == .windowed)
        try await withUpstream({ _, _ in .text("fine words") }) { upstream, log in
            try await withGuard(upstream: upstream, policy: p) { g in
                // The scripted upstream has no monitor: a buffered decision (the upstream is asked
                // for a whole answer, not a stream), no reading, allowed with the reason.
                let reply = try await g.chat("hi", stream: true)
                #expect(reply.status == 200)
                #expect(reply.text.contains("fine words") && reply.text.contains("[DONE]"))
            }
            #expect(await log.streamed == [false])
        }
    }
}
