import Foundation
import Hummingbird
import LanguageModels
import NIOCore
import ValueSpace

/// What the guard answers to one chat request.
struct ChatOutcome: Sendable {
    var text: String
    /// stop, length, or content_filter (the text is the policy's refusal).
    var finishReason: String
    var action: GuardPolicy.Action
    var promptTokens: Int
    var completionTokens: Int
}

extension GuardServer {
    /// POST /v1/chat/completions.
    func chatCompletions(_ request: Request, context: GuardContext) async throws -> Response {
        let keyID = try authenticateClient(request, context: context)
        let draft = AuditDraft(AuditRecord(requestID: context.requestID, keyID: keyID, time: Date(), endpoint: "chat", model: upstream.modelName, action: "allow", status: 200))
        let chat: ChatRequest
        do {
            chat = try ChatRequest.parse(try await body(request), defaultMaxTokens: configuration.defaultMaxTokens)
        } catch {
            // Bad input is a decision too: audited, then answered with its status.
            return try await audited(draft) { throw error }
        }
        if chat.stream { draft.record.endpoint = "chat.stream" }
        draft.record.promptText = chat.lastUserText
        if chat.stream && policy.streaming.mode == .windowed { return try await streamWindowed(chat, draft: draft) }
        return try await audited(draft) {
            let outcome = try await decide(chat, draft: draft)
            return chat.stream ? sseResponse(outcome, draft: draft) : completionResponse(outcome, draft: draft)
        }
    }

    // MARK: - The decision (non-streamed, and buffered streams)

    /// Input check, upstream answer, output check, and the policy's action on them.
    func decide(_ chat: ChatRequest, draft: AuditDraft) async throws -> ChatOutcome {
        var flagged = false
        if let inputCheck = try await checkInput(chat, draft: draft) {
            if inputCheck.action == .block { return refusal(draft) }
            flagged = inputCheck.action == .flag
        }
        let completion = try await callUpstream(chat.messages, parameters: chat.parameters, draft: draft)
        var text = completion.text
        var completionTokens = completion.completionTokens
        let check = try await checkOutput(prompt: chat.lastUserText, text, draft: draft)
        var action: GuardPolicy.Action = max(flagged ? .flag : .allow, check.action)
        switch check.action {
        case .allow, .flag:
            break
        case .block:
            return refusal(draft)
        case .revise:
            // Critique and revise: show the model its answer and what crossed the policy, ask for
            // a rewrite, check that; after maxRounds failed rewrites, block.
            var conversation = chat.messages
            var candidate = text
            var current = check
            var passed = false
            while draft.record.revisionRounds < policy.revision.maxRounds {
                draft.record.revisionRounds += 1
                conversation += [.assistant(candidate), .user(revisionRequest(current.violations))]
                let revised = try await callUpstream(conversation, parameters: chat.parameters, draft: draft)
                candidate = revised.text
                completionTokens += revised.completionTokens
                current = try await checkOutput(prompt: chat.lastUserText, candidate, draft: draft)
                if current.action <= .flag {
                    passed = true
                    break
                }
            }
            let rounds = draft.record.revisionRounds
            guard passed else {
                draft.record.reasons.append("no revision passed in \(rounds) round\(rounds == 1 ? "" : "s"); blocked")
                return refusal(draft)
            }
            draft.record.reasons.append("revised in \(rounds) round\(rounds == 1 ? "" : "s")")
            text = candidate
            action = .revise
        }
        draft.record.action = action.rawValue
        draft.record.responseText = text
        return ChatOutcome(text: text, finishReason: completion.finishReason.rawValue, action: action,
                           promptTokens: completion.promptTokens, completionTokens: completionTokens)
    }

    /// The user's words checked against the input stage; nil when the stage checks nothing.
    func checkInput(_ chat: ChatRequest, draft: AuditDraft) async throws -> StageCheck? {
        guard !policy.input.isEmpty else { return nil }
        // The user's last turn is the behaviour assessed; the assistant turn before it is its context.
        let assessment = try await assess([ValuePair(prompt: chat.contextBeforeLastUser, response: chat.lastUserText)], draft: draft)[0]
        let check = policy.check(assessment.vector, stage: .input)
        draft.record.inputVector = assessment.vector.components
        note(check, draft: draft)
        return check
    }

    /// An answer checked against the output stage (always evaluated: the audit log and the
    /// dashboard show what the traffic's values are even when nothing is enforced).
    func checkOutput(prompt: String, _ text: String, draft: AuditDraft) async throws -> StageCheck {
        let assessment = try await assess([ValuePair(prompt: prompt, response: text)], draft: draft)[0]
        let check = policy.check(assessment.vector, stage: .output)
        draft.record.outputVector = assessment.vector.components
        note(check, draft: draft)
        return check
    }

    func note(_ check: StageCheck, draft: AuditDraft) {
        for v in check.violations {
            draft.record.reasons.append(v.description)
            metrics.increment("valuealign_violations_total", [("stage", v.stage.rawValue), ("value", v.value?.rawValue ?? "distance"), ("action", v.action.rawValue)])
        }
    }

    func refusal(_ draft: AuditDraft) -> ChatOutcome {
        draft.record.action = GuardPolicy.Action.block.rawValue
        draft.record.responseText = nil
        return ChatOutcome(text: policy.refusal, finishReason: "content_filter", action: .block, promptTokens: 0, completionTokens: 0)
    }

    func revisionRequest(_ violations: [Violation]) -> String {
        let problems = violations.map(\.plainDescription)
        let listed = problems.count == 1 ? problems[0] : problems.dropLast().joined(separator: "; ") + "; and " + problems.last!
        return "Your previous answer \(listed). \(policy.revision.instructions)"
    }

    /// The upstream's answer within `upstreamTimeout`; failures become 502, time-outs 504.
    func callUpstream(_ messages: [ChatMessage], parameters: GenerationParameters, draft: AuditDraft) async throws -> ChatCompletion {
        let start = ContinuousClock.now
        defer {
            let elapsed = (ContinuousClock.now - start).seconds
            draft.timing.upstream += elapsed
            metrics.observe("valuealign_upstream_duration_seconds", elapsed)
        }
        let upstream = self.upstream
        do {
            return try await withDeadline(configuration.upstreamTimeout) { try await upstream.complete(messages, parameters: parameters) }
        } catch {
            throw upstreamError(error)
        }
    }

    func upstreamError(_ error: any Error) -> any Error {
        if error is CancellationError { return error }
        if error is DeadlineExceeded {
            return APIError(.gatewayTimeout, "the upstream model did not answer within \(String(format: "%g", configuration.upstreamTimeout.seconds)) s",
                            type: "timeout_error", code: "upstream_timeout")
        }
        let message = (error as? LanguageModelError)?.description ?? "\(error)"
        logger.warning("upstream failed: \(message)")
        if message.contains("timed out") {
            return APIError(.gatewayTimeout, "the upstream model timed out", type: "timeout_error", code: "upstream_timeout")
        }
        return APIError(.badGateway, "the upstream model failed: \(message.prefix(500))", type: "upstream_error", code: "upstream_error")
    }

    // MARK: - Replies

    func completionResponse(_ outcome: ChatOutcome, draft: AuditDraft) -> Response {
        let body = CompletionBody(
            id: "chatcmpl-\(draft.record.requestID)", created: Int(draft.record.time.timeIntervalSince1970), model: upstream.modelName,
            choices: [.init(message: .init(content: outcome.text), finish_reason: outcome.finishReason)],
            usage: .init(prompt_tokens: outcome.promptTokens, completion_tokens: outcome.completionTokens,
                         total_tokens: outcome.promptTokens + outcome.completionTokens),
            valuealign: guardInfo(draft))
        // Codable, not JSONSerialization: on the hot path, sorting dictionary keys cost 10% of the CPU.
        let data = (try? wireEncoder.encode(body)) ?? Data("{}".utf8)
        return Response(status: .ok, headers: [.contentType: "application/json", .init("X-ValueAlign-Action")!: outcome.action.rawValue],
                        body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }

    /// What the client learns of the decision (no vectors: those are in the audit log).
    func guardInfo(_ draft: AuditDraft) -> GuardInfo {
        GuardInfo(request_id: draft.record.requestID, action: draft.record.action, reasons: draft.record.reasons, policy: policy.name)
    }

    /// A whole outcome as a server-sent event stream (input blocked, or buffered mode).
    func sseResponse(_ outcome: ChatOutcome, draft: AuditDraft) -> Response {
        let stream = SSEChunks(id: "chatcmpl-\(draft.record.requestID)", created: Int(draft.record.time.timeIntervalSince1970), model: upstream.modelName)
        var buffers = [stream.chunk(delta: ["role": "assistant"])]
        if !outcome.text.isEmpty { buffers.append(stream.chunk(delta: ["content": outcome.text])) }
        buffers.append(stream.chunk(delta: [:], finish: outcome.finishReason, extra: guardInfo(draft)))
        buffers.append(SSEChunks.done)
        var response = Response(status: .ok, headers: SSEChunks.headers, body: .init(contentsOf: buffers))
        response.headers[.init("X-ValueAlign-Action")!] = outcome.action.rawValue
        return response
    }

    // MARK: - Windowed streaming

    /// Streams the answer in checked windows. Before the reply starts: input check and the
    /// upstream's first piece, so that their failures are JSON errors with a status. After it
    /// starts: each window of `windowCharacters` is released only after the answer so far passed
    /// the output check; a failed check (block or revise) ends the stream with the policy's
    /// refusal and finish reason `content_filter`.
    func streamWindowed(_ chat: ChatRequest, draft: AuditDraft) async throws -> Response {
        var inputFlagged = false
        let source: PieceSource
        let first: String?
        do {
            if let inputCheck = try await checkInput(chat, draft: draft) {
                if inputCheck.action == .block {
                    let outcome = refusal(draft)
                    return try await audited(draft) { sseResponse(outcome, draft: draft) }
                }
                inputFlagged = inputCheck.action == .flag
            }
            source = PieceSource(upstream.stream(chat.messages, parameters: chat.parameters))
            first = try await nextPiece(source, draft: draft)
        } catch {
            return try await audited(draft) { throw error }
        }
        let flagged = inputFlagged
        var headers = SSEChunks.headers
        headers[.init("X-Request-Id")!] = draft.record.requestID
        return Response(status: .ok, headers: headers, body: ResponseBody { writer in
            await self.releaseWindows(chat, first: first, source: source, inputFlagged: flagged, draft: draft, writer: &writer)
        })
    }

    /// The body of a windowed stream; always ends by writing the audit row.
    func releaseWindows(_ chat: ChatRequest, first: String?, source: PieceSource, inputFlagged: Bool, draft: AuditDraft,
                        writer: inout any ResponseBodyWriter) async {
        let stream = SSEChunks(id: "chatcmpl-\(draft.record.requestID)", created: Int(draft.record.time.timeIntervalSince1970), model: upstream.modelName)
        let window = policy.streaming.windowCharacters
        var text = first ?? ""
        var releasedBytes = 0
        var pending = text.count
        var ended = first == nil
        var flagged = inputFlagged
        var blocked = false
        var windows = 0
        var failure: APIError?
        var clientGone = false

        func send(_ buffer: ByteBuffer, _ writer: inout any ResponseBodyWriter) async throws {
            do { try await writer.write(buffer) } catch { throw ClientGone() }
        }

        do {
            try await send(stream.chunk(delta: ["role": "assistant"]), &writer)
            while true {
                while !ended && pending < window {
                    if let piece = try await nextPiece(source, draft: draft) {
                        text += piece
                        pending += piece.count
                    } else {
                        ended = true
                    }
                }
                if pending > 0 || (ended && windows == 0) {
                    windows += 1
                    let check = try await checkOutput(prompt: chat.lastUserText, text, draft: draft)
                    if check.action >= .revise {
                        blocked = true
                        break
                    }
                    if check.action == .flag { flagged = true }
                    if text.utf8.count > releasedBytes {
                        let fresh = String(decoding: text.utf8.dropFirst(releasedBytes), as: UTF8.self)
                        try await send(stream.chunk(delta: ["content": fresh]), &writer)
                        releasedBytes = text.utf8.count
                    }
                    pending = 0
                }
                if ended { break }
            }
        } catch is ClientGone {
            clientGone = true
        } catch {
            // nextPiece and assess already throw APIErrors; anything else is the upstream's.
            failure = (error as? APIError) ?? APIError.from(upstreamError(error))
        }
        // Dropping the source cancels the upstream request when the stream ended early.
        source.cancel()

        if policy.output.isEmpty == false || blocked { draft.record.reasons.append("checked \(windows) window\(windows == 1 ? "" : "s")") }
        let failClosed = blocked || failure?.code == "evaluator_failed"
        let action: GuardPolicy.Action = failClosed ? .block : (flagged ? .flag : .allow)
        if blocked { draft.record.reasons.append("blocked mid-stream after \(releasedBytes) bytes were sent") }
        draft.record.action = action.rawValue
        if failure != nil, !failClosed { draft.record.action = "error" }
        if let failure { draft.record.error = failure.message }
        draft.record.responseText = blocked ? nil : String(decoding: text.utf8.prefix(releasedBytes), as: UTF8.self)

        // The decision's last chunk (refusal, error event or finish reason), then the audit row,
        // then [DONE]: a client that saw [DONE] can find its row in the audit log.
        if !clientGone {
            do {
                if failClosed {
                    // Fail closed: what was already released stays; nothing unchecked follows.
                    let notice = (releasedBytes > 0 ? "\n\n" : "") + policy.refusal
                    try await send(stream.chunk(delta: ["content": notice]), &writer)
                    try await send(stream.chunk(delta: [:], finish: "content_filter", extra: guardInfo(draft)), &writer)
                } else if let failure {
                    try await send(stream.error(failure), &writer)
                } else {
                    try await send(stream.chunk(delta: [:], finish: "stop", extra: guardInfo(draft)), &writer)
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
        _ = await write(draft.record)
        if !clientGone {
            // A client leaving now has the whole answer and its finish reason; only [DONE] is lost.
            try? await send(SSEChunks.done, &writer)
            try? await writer.finish(nil)
        }
    }

    /// The upstream's next piece within `upstreamTimeout` (nil at the end).
    func nextPiece(_ source: PieceSource, draft: AuditDraft) async throws -> String? {
        let start = ContinuousClock.now
        defer { draft.timing.upstream += (ContinuousClock.now - start).seconds }
        do {
            return try await withDeadline(configuration.upstreamTimeout) { try await source.next() }
        } catch {
            throw upstreamError(error)
        }
    }
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

/// OpenAI's `chat.completion.chunk` events.
struct SSEChunks {
    var id: String
    var created: Int
    var model: String

    static let headers: HTTPFields = [.contentType: "text/event-stream", .cacheControl: "no-cache"]
    static let done = ByteBuffer(string: "data: [DONE]\n\n")

    func chunk(delta: [String: String], finish: String? = nil, extra: GuardInfo? = nil) -> ByteBuffer {
        event(ChunkBody(id: id, created: created, model: model, choices: [.init(delta: delta, finish_reason: finish)], valuealign: extra))
    }

    /// OpenAI's in-stream error event.
    func error(_ failure: APIError) -> ByteBuffer {
        event(["error": ErrorBody(message: failure.message, type: failure.type, code: failure.code)])
    }

    func event(_ value: some Encodable) -> ByteBuffer {
        var buffer = ByteBuffer(string: "data: ")
        buffer.writeBytes((try? wireEncoder.encode(value)) ?? Data("{}".utf8))
        buffer.writeString("\n\n")
        return buffer
    }
}

// MARK: - Wire bodies (OpenAI's field names)

let wireEncoder: JSONEncoder = {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.withoutEscapingSlashes]
    return encoder
}()

struct GuardInfo: Encodable, Sendable {
    var request_id: String
    var action: String
    var reasons: [String]
    var policy: String
}

struct CompletionBody: Encodable {
    struct Message: Encodable {
        var role = "assistant"
        var content: String
    }
    struct Choice: Encodable {
        var index = 0
        var message: Message
        var finish_reason: String
    }
    struct Usage: Encodable {
        var prompt_tokens: Int
        var completion_tokens: Int
        var total_tokens: Int
    }
    var id: String
    var object = "chat.completion"
    var created: Int
    var model: String
    var choices: [Choice]
    var usage: Usage
    var valuealign: GuardInfo
}

struct ChunkBody: Encodable {
    struct Choice: Encodable {
        var index = 0
        var delta: [String: String]
        var finish_reason: String?
        enum CodingKeys: String, CodingKey { case index, delta, finish_reason }
        func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(index, forKey: .index)
            try c.encode(delta, forKey: .delta)
            try c.encode(finish_reason, forKey: .finish_reason)  // null while streaming, as OpenAI sends it
        }
    }
    var id: String
    var object = "chat.completion.chunk"
    var created: Int
    var model: String
    var choices: [Choice]
    var valuealign: GuardInfo?
}

struct ErrorBody: Encodable {
    var message: String
    var type: String
    var code: String?
    var param: String? = nil
    enum CodingKeys: String, CodingKey { case message, type, code, param }
    func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(message, forKey: .message)
        try c.encode(type, forKey: .type)
        try c.encode(code, forKey: .code)
        try c.encode(param, forKey: .param)
    }
}
