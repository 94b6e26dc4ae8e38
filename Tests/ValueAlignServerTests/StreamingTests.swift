import Foundation
import Testing
import ValueAlignServer
import ValueSpace

/// Streamed answers: what a client sees when the output check passes, and when it fails midway.
@Suite("Guard streaming")
struct StreamingTests {
    static let kindPieces = ["I am glad ", "to help. ", "Be kind to ", "your neighbour ", "and offer ", "support ", "where you can."]

    @Test("windowed: checked windows arrive in order and concatenate to the upstream's answer")
    func passThrough() async throws {
        try await withUpstream({ _, _ in .text("", pieces: Self.kindPieces) }) { upstreamURL, _ in
            try await withGuard(upstreamURL: upstreamURL, policy: try policy(standardPolicy)) { g in
                let reply = try await chat(g.baseURL, "How can I be a good neighbour?", stream: true)
                #expect(reply.status == 200)
                #expect(reply.headers["content-type"]?.hasPrefix("text/event-stream") == true)
                #expect(reply.events.last == "[DONE]")
                #expect(reply.streamedContent == Self.kindPieces.joined())
                #expect(reply.streamFinishReason == "stop")
                // Windows of 24 characters: more than one content chunk, fewer than the upstream's pieces.
                let contentChunks = reply.events.filter { $0.contains("\"content\"") }.count
                #expect(contentChunks > 1 && contentChunks < Self.kindPieces.count)
                let id = try #require(reply.headers["x-request-id"])
                let row = try #require(try await g.server.audit.query(AuditQuery(requestID: id)).first)
                #expect(row.endpoint == "chat.stream" && row.action == "allow")
                #expect(row.responseText == Self.kindPieces.joined())
                #expect(row.reasons.contains { $0.hasPrefix("checked ") && $0.hasSuffix("windows") })
            }
        }
    }

    @Test("windowed, blocked midway: checked text, then the refusal, then finish_reason content_filter and [DONE]")
    func blockedMidway() async throws {
        let pieces = Self.kindPieces + [" Then crush ", "your rivals, ", "dominate and ", "take control."]
        try await withUpstream({ _, _ in .text("", pieces: pieces) }) { upstreamURL, _ in
            try await withGuard(upstreamURL: upstreamURL, policy: try policy(standardPolicy)) { g in
                let reply = try await chat(g.baseURL, "How do I get ahead?", stream: true)
                #expect(reply.status == 200)
                let content = reply.streamedContent
                // What was released had passed the check: a prefix of the kind part, none of the rest.
                let released = content.components(separatedBy: "\n\nSorry, I cannot answer that.")[0]
                #expect(!released.isEmpty)
                #expect(Self.kindPieces.joined().hasPrefix(released))
                #expect(content.hasSuffix("\n\nSorry, I cannot answer that."))
                #expect(!content.contains("crush") && !content.contains("dominate"))
                #expect(reply.streamFinishReason == "content_filter")
                #expect(reply.events.last == "[DONE]")
                let row = try #require(try await g.server.audit.query(AuditQuery(requestID: reply.headers["x-request-id"])).first)
                #expect(row.action == "block")
                #expect(row.reasons.contains { $0.hasPrefix("output.power") })
                #expect(row.reasons.contains { $0.hasPrefix("blocked mid-stream after \(released.utf8.count) bytes") })
            }
        }
    }

    @Test("buffered mode: the whole answer is checked first, so revise works in a stream")
    func bufferedRevise() async throws {
        let buffered = standardPolicy.replacingOccurrences(of: "\"mode\": \"windowed\"", with: "\"mode\": \"buffered\"")
        try await withUpstream({ _, attempt in .text(attempt == 1 ? Texts.hostile : Texts.kind) }) { upstreamURL, log in
            try await withGuard(upstreamURL: upstreamURL, policy: try policy(buffered)) { g in
                let reply = try await chat(g.baseURL, "My colleague was rude to me.", stream: true)
                #expect(reply.streamedContent == Texts.kind)
                #expect(reply.streamFinishReason == "stop")
                #expect(reply.headers["x-valuealign-action"] == "revise")
                #expect(await log.streamed == [false, false])  // buffered: non-streamed upstream calls
            }
        }
    }

    @Test("a blocked input in a stream: the refusal as a stream, the upstream never called")
    func inputBlockedStream() async throws {
        try await withUpstream({ _, _ in .text(Texts.kind) }) { upstreamURL, log in
            try await withGuard(upstreamURL: upstreamURL, policy: try policy(standardPolicy)) { g in
                let reply = try await chat(g.baseURL, Texts.hostile, stream: true)
                #expect(reply.streamedContent == "Sorry, I cannot answer that.")
                #expect(reply.streamFinishReason == "content_filter")
                #expect(await log.count == 0)
            }
        }
    }

    @Test("an upstream failing before the first piece is a JSON 502, audited")
    func upstreamFailsBeforeStreaming() async throws {
        try await withUpstream({ _, _ in UpstreamReply(status: 500) }) { upstreamURL, _ in
            try await withGuard(upstreamURL: upstreamURL, policy: try policy(standardPolicy)) { g in
                let reply = try await chat(g.baseURL, "Hello", stream: true)
                #expect(reply.status == 502)
                #expect(reply.error["type"] as? String == "upstream_error")
                let row = try #require(try await g.server.audit.query(AuditQuery(requestID: reply.headers["x-request-id"])).first)
                #expect(row.action == "error" && row.status == 502)
            }
        }
    }
}
