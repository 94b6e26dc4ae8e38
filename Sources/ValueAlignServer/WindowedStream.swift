import Foundation
import Hummingbird
import LanguageModels
import NIOCore

// Windowed streaming: the answer is released in windows, each after the answer so far passed
// the output check.
extension GuardServer {
    /// Streams the answer in checked windows. Before the reply starts: input check and the
    /// upstream's first piece, so that their failures are JSON errors with a status (thrown to
    /// `AuditMiddleware`). After it starts: each window of `windowCharacters` is released only
    /// after it passed the output check, read with up to `contextCharacters` of the text before
    /// it (the last window with the whole answer); a failed check (block or revise) ends the
    /// stream with the policy's refusal and finish reason `content_filter`.
    func streamWindowed(_ chat: ChatRequest, draft: AuditDraft) async throws -> Response {
        var state = WindowState()
        if let inputCheck = try await pipeline.checkInput(chat, draft: draft) {
            if inputCheck.action == .block { return sseResponse(pipeline.refusal(draft), draft: draft) }
            state.flagged = inputCheck.action == .flag
        }
        let source = PieceSource(upstream.stream(chat.messages, parameters: chat.parameters))
        let first = try await pipeline.nextPiece(source, draft: draft)
        state.text = first ?? ""
        state.pending = state.text.count
        state.ended = first == nil
        // From here the stream's body writes the audit row, when it ends.
        draft.writtenByResponse = true
        let initial = state
        var headers = SSEChunks.headers
        headers[.init(GuardHeader.requestID)!] = draft.record.requestID
        return Response(status: .ok, headers: headers, body: ResponseBody { writer in
            var state = initial
            await self.releaseWindows(chat, source: source, state: &state, draft: draft, writer: &writer)
            await self.finishStream(state, draft: draft, writer: &writer)
        })
    }

    /// Releases checked windows until the answer ends, a check fails, the upstream fails or the
    /// client leaves; `state` says which.
    func releaseWindows(_ chat: ChatRequest, source: PieceSource, state: inout WindowState, draft: AuditDraft,
                        writer: inout any ResponseBodyWriter) async {
        let stream = sseChunks(draft)
        let window = policy.streaming.windowCharacters
        do {
            try await send(stream.chunk(delta: .init(role: "assistant")), &writer)
            while true {
                while !state.ended && state.pending < window {
                    if let piece = try await pipeline.nextPiece(source, draft: draft) {
                        state.text += piece
                        state.pending += piece.count
                    } else {
                        state.ended = true
                    }
                }
                if state.pending > 0 || (state.ended && state.windows == 0) {
                    state.windows += 1
                    // Each window is read with a bounded stretch of the text before it (linear
                    // cost in the answer's length); the last one with the whole answer.
                    let checked = state.ended ? state.text : Self.recentText(state.text, releasedBytes: state.releasedBytes, context: policy.streaming.contextCharacters)
                    let check = try await pipeline.checkOutput(prompt: chat.lastUserText, checked, draft: draft)
                    if check.action >= .revise {
                        state.blocked = true
                        break
                    }
                    if check.action == .flag { state.flagged = true }
                    if state.text.utf8.count > state.releasedBytes {
                        let fresh = String(decoding: state.text.utf8.dropFirst(state.releasedBytes), as: UTF8.self)
                        try await send(stream.chunk(delta: .init(content: fresh)), &writer)
                        state.releasedBytes = state.text.utf8.count
                    }
                    state.pending = 0
                }
                if state.ended { break }
            }
        } catch is ClientGone {
            state.clientGone = true
        } catch {
            // The pipeline throws GuardFailures; anything else is the upstream's.
            state.failure = APIError.from(pipeline.upstreamFailure(error))
        }
        // Dropping the source cancels the upstream request when the stream ended early.
        source.cancel()
    }

    /// The unreleased text with up to `context` characters of released text before it, starting
    /// at a word boundary when one is near.
    static func recentText(_ text: String, releasedBytes: Int, context: Int) -> String {
        let released = String(decoding: text.utf8.prefix(releasedBytes), as: UTF8.self)
        guard released.count > context else { return text }
        var start = released.index(released.endIndex, offsetBy: -context)
        if let space = released[start...].firstIndex(where: { $0 == " " || $0 == "\n" }), released.distance(from: start, to: space) < 64 {
            start = released.index(after: space)
        }
        return String(released[start...]) + String(decoding: text.utf8.dropFirst(releasedBytes), as: UTF8.self)
    }

    /// Records the decision, sends its last chunk (refusal, error event or finish reason), then
    /// writes the audit row, then [DONE]: a client that saw [DONE] can find its row in the log.
    func finishStream(_ state: WindowState, draft: AuditDraft, writer: inout any ResponseBodyWriter) async {
        let stream = sseChunks(draft)
        var clientGone = state.clientGone
        let windows = state.windows, releasedBytes = state.releasedBytes
        if policy.output.isEmpty == false || state.blocked { draft.record.reasons.append("checked \(windows) window\(windows == 1 ? "" : "s")") }
        let failClosed = state.blocked || state.failure?.code == "evaluator_failed"
        let action: GuardPolicy.Action = failClosed ? .block : (state.flagged ? .flag : .allow)
        if state.blocked { draft.record.reasons.append("blocked mid-stream after \(releasedBytes) bytes were sent") }
        draft.record.action = action.rawValue
        if state.failure != nil, !failClosed { draft.record.action = "error" }
        if let failure = state.failure { draft.record.error = failure.message }
        draft.record.responseText = state.blocked ? nil : String(decoding: state.text.utf8.prefix(releasedBytes), as: UTF8.self)

        if !clientGone {
            do {
                if failClosed {
                    // Fail closed: what was already released stays; nothing unchecked follows.
                    let notice = (releasedBytes > 0 ? "\n\n" : "") + policy.refusal
                    try await send(stream.chunk(delta: .init(content: notice)), &writer)
                    try await send(stream.chunk(delta: .init(), finish: "content_filter", extra: guardInfo(draft)), &writer)
                } else if let failure = state.failure {
                    try await send(stream.error(failure), &writer)
                } else {
                    try await send(stream.chunk(delta: .init(), finish: "stop", extra: guardInfo(draft)), &writer)
                }
            } catch {
                clientGone = true
            }
        }
        if clientGone {
            draft.record.reasons.append("client disconnected")
            if draft.record.error == nil { draft.record.error = "client disconnected" }
        }
        draft.finishTiming()
        metrics.observe("valuealign_request_duration_seconds", draft.record.totalMilliseconds / 1000, [("endpoint", "/v1/chat/completions")])
        _ = await auditWriter.write(draft.record)
        if !clientGone {
            // A client leaving now has the whole answer and its finish reason; only [DONE] is lost.
            try? await send(SSEChunks.done, &writer)
            try? await writer.finish(nil)
        }
    }

    /// Writes one event; a failed write means the client went away.
    func send(_ buffer: ByteBuffer, _ writer: inout any ResponseBodyWriter) async throws {
        do { try await writer.write(buffer) } catch { throw ClientGone() }
    }
}

/// Where a windowed stream stands.
struct WindowState: Sendable {
    /// The answer so far; the first `releasedBytes` of it (UTF-8) were sent.
    var text = ""
    var releasedBytes = 0
    /// Characters received since the last check.
    var pending = 0
    var ended = false
    var flagged = false
    var blocked = false
    var windows = 0
    var failure: APIError?
    var clientGone = false
}

/// The client went away while the stream was being written.
struct ClientGone: Error {}

/// The upstream's stream, consumed by one task at a time (the handler, then the body writer).
final class PieceSource: @unchecked Sendable {
    private var iterator: AsyncThrowingStream<String, any Error>.AsyncIterator
    private var task: Task<Void, Never>?
    private let (pieces, continuation) = AsyncThrowingStream.makeStream(of: String.self)

    /// Pumps `upstream` into a stream of our own, so that cancelling a `next()` that ran out of
    /// time does not end the upstream stream behind it, and `cancel()` does.
    init(_ upstream: AsyncThrowingStream<String, any Error>) {
        iterator = pieces.makeAsyncIterator()
        let continuation = self.continuation
        task = Task {
            do {
                for try await piece in upstream { continuation.yield(piece) }
                continuation.finish()
            } catch {
                continuation.finish(throwing: error)
            }
        }
    }

    func next() async throws -> String? { try await iterator.next() }

    func cancel() {
        task?.cancel()
        continuation.finish()
    }

    deinit { task?.cancel() }
}

