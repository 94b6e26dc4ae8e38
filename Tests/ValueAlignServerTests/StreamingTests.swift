import AsyncHTTPClient
import Evaluators
import NIOCore
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
        // Live: the upstream's SSE through OpenAICompatibleBackend, the guard's SSE over a socket.
        try await withUpstream({ _, _ in .text("", pieces: Self.kindPieces) }, transport: .live) { upstream, _ in
            try await withGuard(upstream: upstream, policy: try policy(standardPolicy)) { g in
                let reply = try await g.chat("How can I be a good neighbour?", stream: true)
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
        try await withUpstream({ _, _ in .text("", pieces: pieces) }) { upstream, _ in
            try await withGuard(upstream: upstream, policy: try policy(standardPolicy)) { g in
                let reply = try await g.chat("How do I get ahead?", stream: true)
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
        try await withUpstream({ _, attempt in .text(attempt == 1 ? Texts.hostile : Texts.kind) }) { upstream, log in
            try await withGuard(upstream: upstream, policy: try policy(buffered)) { g in
                let reply = try await g.chat("My colleague was rude to me.", stream: true)
                #expect(reply.streamedContent == Texts.kind)
                #expect(reply.streamFinishReason == "stop")
                #expect(reply.headers["x-valuealign-action"] == "revise")
                #expect(await log.streamed == [false, false])  // buffered: non-streamed upstream calls
            }
        }
    }

    @Test("a blocked input in a stream: the refusal as a stream, the upstream never called")
    func inputBlockedStream() async throws {
        try await withUpstream({ _, _ in .text(Texts.kind) }) { upstream, log in
            try await withGuard(upstream: upstream, policy: try policy(standardPolicy)) { g in
                let reply = try await g.chat(Texts.hostile, stream: true)
                #expect(reply.streamedContent == "Sorry, I cannot answer that.")
                #expect(reply.streamFinishReason == "content_filter")
                #expect(await log.count == 0)
            }
        }
    }

    @Test("an upstream failing before the first piece is a JSON 502, audited")
    func upstreamFailsBeforeStreaming() async throws {
        // Live: a real HTTP 500 from the upstream, as the client backend reports it.
        try await withUpstream({ _, _ in UpstreamReply(status: 500) }, transport: .live) { upstream, _ in
            try await withGuard(upstream: upstream, policy: try policy(standardPolicy)) { g in
                let reply = try await g.chat("Hello", stream: true)
                #expect(reply.status == 502)
                #expect(reply.error["type"] as? String == "upstream_error")
                let row = try #require(try await g.server.audit.query(AuditQuery(requestID: reply.headers["x-request-id"])).first)
                #expect(row.action == "error" && row.status == 502)
            }
        }
    }
}

@Suite("Guard streaming failures")
struct StreamingFailureTests {
    static let pieces = (0..<12).map { "Be kind and help \($0). " }

    @Test("the upstream cut mid-stream: checked text, then an error event and [DONE]; audited as error")
    func upstreamCut() async throws {
        // Live: the upstream's connection really cut mid-stream.
        try await withUpstream({ _, _ in UpstreamReply(pieces: Self.pieces, cutAfter: 6) }, transport: .live) { upstream, _ in
            try await withGuard(upstream: upstream, policy: try policy(standardPolicy)) { g in
                let reply = try await g.chat("hello", stream: true)
                #expect(reply.status == 200)
                #expect(Self.pieces.joined().hasPrefix(reply.streamedContent))
                let error = try #require(reply.events.first { $0.hasPrefix("{\"error\"") })
                #expect(error.contains("upstream"))
                #expect(reply.events.last == "[DONE]")
                let row = try #require(try await g.server.audit.query(AuditQuery(requestID: reply.headers["x-request-id"])).first)
                #expect(row.action == "error" && row.error != nil)
            }
        }
    }

    @Test("the evaluator failing mid-stream fails closed: the refusal and content_filter")
    func evaluatorFails() async throws {
        try await withUpstream({ _, _ in UpstreamReply(pieces: Self.pieces) }) { upstream, _ in
            try await withGuard(upstream: upstream, policy: try policy(standardPolicy), evaluator: FailingAfter(calls: 3)) { g in
                let reply = try await g.chat("hello", stream: true)
                #expect(reply.streamFinishReason == "content_filter")
                #expect(reply.streamedContent.hasSuffix("Sorry, I cannot answer that."))
                let row = try #require(try await g.server.audit.query(AuditQuery(requestID: reply.headers["x-request-id"])).first)
                #expect(row.action == "block")
                #expect(row.error?.contains("evaluator") == true)
            }
        }
    }

    @Test("a client leaving mid-stream: the upstream is cancelled and the audit row still written")
    func clientLeaves() async throws {
        // Live: only a socket can go away mid-stream.
        // 200 pieces 40 ms apart: 8 s to read to the end, far beyond the bound below even with the
        // scheduling delay of a loaded 2-core VM.
        let slow = (0..<200).map { "Be kind and help \($0). " }
        try await withUpstream({ _, _ in UpstreamReply(pieces: slow, piecePause: .milliseconds(40)) }, transport: .live) { upstream, _ in
            try await withGuard(upstream: upstream, policy: try policy(standardPolicy)) { g in
                var request = HTTPClientRequest(url: g.baseURL + "/v1/chat/completions")
                request.method = .POST
                request.body = .bytes(ByteBuffer(string: #"{"messages": [{"role": "user", "content": "hi"}], "stream": true}"#))
                let reader = Task {
                    let response = try await HTTPClient.shared.execute(request, timeout: .seconds(10))
                    var chunks = 0
                    for try await _ in response.body {
                        chunks += 1
                        if chunks == 2 { break }  // leave after the role chunk and one window
                    }
                    return response.headers.first(name: "X-Request-Id")
                }
                let id = try #require(try await reader.value)
                var row: AuditRecord?
                for _ in 0..<100 where row == nil {
                    try await Task.sleep(for: .milliseconds(50))
                    row = try await g.server.audit.query(AuditQuery(requestID: id)).first
                }
                let written = try #require(row, "no audit row within 5 s of the client leaving")
                #expect(written.reasons.contains("client disconnected"))
                #expect(written.totalMilliseconds < 6000)  // the 200 x 40 ms stream was not read to its end
            }
        }
    }
}

/// The lexicon evaluator until `calls` evaluations, then failing (a crashed model server).
actor FailingAfter: ValueEvaluator {
    struct Broken: Error {}
    let calls: Int
    private var made = 0
    init(calls: Int) { self.calls = calls }
    nonisolated var name: String { "failing" }
    func evaluate(_ pairs: [ValuePair]) async throws -> [ValueAssessment] {
        made += 1
        if made > calls { throw Broken() }
        return try await LexiconValueEvaluator().evaluate(pairs)
    }
}
