import Foundation
import Hummingbird
import LanguageModels
@testable import OpenAIBackend
import Testing

/// An answer with multi-byte characters, so that byte-level splits fall inside them too.
let streamedPieces = ["The sky ", "is blue — ", "mostly; ", "at dusk, orange ", "and sometimes violet ✨."]

@Suite("OpenAI-compatible backend: streaming and batches")
struct StreamingAndBatchTests {
    @Test("SSE parsing is independent of how the bytes are split", arguments: [1, 2, 3, 7, 64, 100_000])
    func parserSplits(_ size: Int) {
        // Comments, CRLF and CR line ends, a field without a space, an event of two data lines,
        // an ignored field, and a last event without its blank line.
        let text = ": keep-alive\r\ndata: {\"a\": 1}\r\n\r\ndata:{\"b\":\ndata: 2}\n\ndata: {\"c\":\r\ndata: 3}\r\n\r\n"
            + "event: message\rid: 7\rdata: é✨\r\r: bye\ndata: [DONE]\n"
        var parser = ServerSentEventParser()
        var events: [String] = []
        for piece in splitBytes(text, every: size) { events += parser.consume(piece) }
        let (last, cut) = parser.finish()
        if let last { events.append(last) }
        #expect(events == [#"{"a": 1}"#, "{\"b\":\n2}", "{\"c\":\n3}", "é✨", "[DONE]"])
        #expect(!cut)
    }

    @Test("a line cut short at the end is reported")
    func parserCut() {
        var parser = ServerSentEventParser()
        #expect(parser.consume(Array("data: {\"a\": 1}\n\ndata: {\"choi".utf8)) == [#"{"a": 1}"#])
        let (last, cut) = parser.finish()
        #expect(last == nil)
        #expect(cut)
    }

    @Test("streamed pieces concatenate to the answer, whatever the split of the SSE bytes", arguments: [1, 5, 13, 4096])
    func streaming(_ splitSize: Int) async throws {
        // CRLF line ends and a comment line, as some proxies and servers send.
        let body = ": ping\r\n" + sseEvents(for: streamedPieces).replacingOccurrences(of: "\n", with: "\r\n")
        try await withFakeOpenAIServer(respond: { _, _, _ in
            .eventStream(splitBytes(body, every: splitSize), pause: splitSize < 5 ? .zero : .milliseconds(1))
        }) { baseURL, log in
            let pieces = try await collect(try makeBackend(baseURL, apiKey: "sk-stream").stream(conversation, parameters: .greedy))
            #expect(pieces == streamedPieces)
            #expect(pieces.joined() == streamedPieces.joined())
            let request = try #require(await log.requests.first)
            #expect(request.json["stream"] as? Bool == true)
            #expect(request.accept == "text/event-stream")
            #expect(request.authorization == "Bearer sk-stream")
        }
    }

    @Test("a server that ignores stream=true and answers with JSON still streams the answer")
    func streamingFallsBackToJSON() async throws {
        try await withFakeOpenAIServer(respond: { _, _, _ in .completion("All at once.") }) { baseURL, _ in
            let pieces = try await collect(try makeBackend(baseURL).stream([.user("hi")], parameters: .greedy))
            #expect(pieces == ["All at once."])
        }
    }

    @Test("the request opening a stream is retried")
    func streamRetry() async throws {
        try await withFakeOpenAIServer(respond: { _, attempt, _ in
            attempt == 1 ? .openAIError(502, message: "bad gateway", type: "server_error") : .eventStream([Array(sseEvents(for: ["ok"]).utf8)])
        }) { baseURL, log in
            let pieces = try await collect(try makeBackend(baseURL).stream([.user("hi")], parameters: .greedy))
            #expect(pieces == ["ok"])
            #expect(await log.count == 2)
        }
    }

    /// What a stream delivered before it failed, and the failure's message.
    func failingStream(
        _ respond: @escaping ChatResponder, timeout: Duration = .seconds(5), releaseAfterwards: Bool = false
    ) async throws -> (pieces: [String], message: String, requests: Int, elapsed: Duration) {
        try await withFakeOpenAIServer(respond: respond) { baseURL, log in
            var pieces: [String] = []
            let start = ContinuousClock.now
            let message = await backendErrorMessage {
                for try await piece in try makeBackend(baseURL, timeout: timeout).stream([.user("hi")], parameters: .greedy) { pieces.append(piece) }
            }
            let elapsed = ContinuousClock.now - start
            if releaseAfterwards { await log.release() }
            return (pieces, message, await log.count, elapsed)
        }
    }

    @Test("an HTTP error before the stream starts ends it with the status and message")
    func streamHTTPError() async throws {
        let (pieces, message, requests, _) = try await failingStream { _, _, _ in
            .openAIError(401, message: "Invalid authentication", type: "invalid_request_error")
        }
        #expect(pieces.isEmpty)
        #expect(message.contains("HTTP 401") && message.contains("Invalid authentication"))
        #expect(requests == 1)
    }

    @Test("a stream that ends without [DONE] or a finish reason is an error, after the pieces that came")
    func streamEndsEarly() async throws {
        let (pieces, message, _, _) = try await failingStream { _, _, _ in
            .eventStream([Array(sseEvents(for: ["one ", "two "], done: false).utf8)])
        }
        #expect(pieces == ["one ", "two "])
        #expect(message.contains("ended before [DONE] after 2 pieces"))
    }

    @Test("a connection cut in the middle of a line is an error")
    func streamCutMidLine() async throws {
        let text = sseEvents(for: ["one ", "two "], done: false) + #"data: {"choices": [{"delta": {"cont"#
        let (pieces, message, _, _) = try await failingStream { _, _, log in .eventStream(splitBytes(text, every: 40), cut: true, log: log) }
        #expect(pieces == ["one ", "two "])
        #expect(message.contains("after 2 pieces"))
    }

    @Test("a malformed chunk ends the stream with an error naming it")
    func streamMalformedChunk() async throws {
        let text = sseEvents(for: ["one "], done: false) + "data: {\"choices\": oops}\n\n" + sseEvents(for: ["never"])
        let (pieces, message, _, _) = try await failingStream { _, _, _ in .eventStream([Array(text.utf8)]) }
        #expect(pieces == ["one "])
        #expect(message.contains("malformed reply") && message.contains("chunk 2"))
    }

    @Test("an error chunk from the server ends the stream with its message")
    func streamErrorChunk() async throws {
        let text = sseEvents(for: ["one "], done: false) + #"data: {"error": {"message": "out of KV cache", "type": "server_error"}}"# + "\n\n"
        let (pieces, message, _, _) = try await failingStream { _, _, _ in .eventStream([Array(text.utf8)]) }
        #expect(pieces == ["one "])
        #expect(message.contains("out of KV cache"))
    }

    @Test("a stream silent for longer than the time-out fails")
    func streamIdleTimeout() async throws {
        let first = Array(sseEvents(for: ["one "], done: false).utf8)
        let (pieces, message, _, elapsed) = try await failingStream({ _, _, log in
            .eventStream([first, Array(sseEvents(for: ["late"]).utf8)], log: log, holdAfter: 1)
        }, timeout: .seconds(1), releaseAfterwards: true)
        // The server holds the stream until it is released after the call, so only the client's
        // idle time-out can end it; the upper bound leaves room for a machine loaded by the tests
        // running beside this one (seconds of scheduling delay on a 2-core VM).
        #expect(elapsed >= .milliseconds(990) && elapsed < .seconds(20))
        #expect(pieces == ["one "])
        #expect(message.contains("timed out") && message.contains("no data for 1.0 s"))
    }

    @Test("stopping the consumer cancels the request")
    func streamCancellation() async throws {
        let pieces = (0..<200).map { "piece \($0) " }
        try await withFakeOpenAIServer(respond: { _, _, log in
            .eventStream(sseEvents(for: pieces).components(separatedBy: "\n\n").map { Array(($0 + "\n\n").utf8) }, pause: .milliseconds(10), log: log)
        }) { baseURL, log in
            var received: [String] = []
            for try await piece in try makeBackend(baseURL).stream([.user("hi")], parameters: .greedy) {
                received.append(piece)
                if received.count == 3 { break }
            }
            #expect(received == Array(pieces.prefix(3)))
            // The server notices the closed connection when its next writes fail.
            let deadline = ContinuousClock.now + .seconds(2)
            while !(await log.streamWriteFailed), ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(10)) }
            #expect(await log.streamWriteFailed)
        }
    }

    @Test("completeBatch keeps input order and at most maxConcurrentRequests in flight", arguments: [1, 3])
    func batch(_ limit: Int) async throws {
        let questions = (0..<10).map { "Question \($0)?" }
        try await withFakeOpenAIServer(respond: { request, attempt, _ in
            let messages = request.json["messages"] as? [[String: String]]
            let question = messages?.last?["content"] ?? "?"
            // Later questions answer faster, so completion order differs from input order.
            let index = Int(question.dropFirst("Question ".count).dropLast()) ?? 0
            try await Task.sleep(for: .milliseconds(20 + 5 * (10 - index)))
            return .completion("Answer to \(question)")
        }) { baseURL, log in
            let backend = try makeBackend(baseURL, maxConcurrentRequests: limit)
            let completions = try await backend.completeBatch(questions.map { [.user($0)] }, parameters: .greedy)
            #expect(completions.count == questions.count)
            #expect(completions.map(\.text) == questions.map { "Answer to \($0)" })
            #expect(await log.count == questions.count)
            let maxInFlight = await log.maxInFlight
            #expect(maxInFlight <= limit)
            if limit > 1 { #expect(maxInFlight >= 2, "requests should overlap") }
        }
    }

    @Test("a failure in a batch is thrown")
    func batchFailure() async throws {
        try await withFakeOpenAIServer(respond: { request, _, _ in
            let messages = request.json["messages"] as? [[String: String]]
            return messages?.last?["content"] == "bad" ? .openAIError(400, message: "context too long", type: "invalid_request_error") : .completion("ok")
        }) { baseURL, _ in
            let message = await backendErrorMessage {
                _ = try await makeBackend(baseURL).completeBatch([[.user("fine")], [.user("bad")], [.user("fine")]], parameters: .greedy)
            }
            #expect(message.contains("context too long"))
        }
    }
}
