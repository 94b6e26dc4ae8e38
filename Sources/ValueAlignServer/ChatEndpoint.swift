import Foundation
import Hummingbird
import LanguageModels
import NIOCore
import OpenAIBackend

// POST /v1/chat/completions: the request parsed, the pipeline's decision, OpenAI's reply.
extension GuardServer {
    /// POST /v1/chat/completions (behind `ClientAuthMiddleware`, `AuditMiddleware` and
    /// `BodyLimitMiddleware`). Bad input throws its 400, which the audit middleware records.
    func chatCompletions(_ request: Request, context: GuardContext) async throws -> Response {
        let draft = try context.auditDraft()
        let chat = try ChatRequest.parse(try await bodyData(request), defaultMaxTokens: configuration.defaultMaxTokens)
        if chat.stream { draft.record.endpoint = "chat.stream" }
        draft.record.promptText = chat.lastUserText
        // Probe rules read the finished answer's activations: such streams are buffered.
        if chat.stream && policy.streaming.mode == .windowed && policy.output.probeThresholds.isEmpty { return try await streamWindowed(chat, draft: draft) }
        let outcome = try await pipeline.decide(chat, draft: draft)
        return chat.stream ? sseResponse(outcome, draft: draft) : completionResponse(outcome, draft: draft)
    }

    // MARK: - Replies

    func completionResponse(_ outcome: ChatOutcome, draft: AuditDraft) -> Response {
        let body = ChatCompletionReply(
            id: "chatcmpl-\(draft.record.requestID)", created: Int(draft.record.time.timeIntervalSince1970), model: upstream.modelName,
            choices: [.init(message: .init(role: "assistant", content: outcome.text), finishReason: outcome.finishReason,
                            logprobs: outcome.logProbs.map(LogProbs.init))],
            usage: Usage(promptTokens: outcome.promptTokens, completionTokens: outcome.completionTokens,
                         totalTokens: outcome.promptTokens + outcome.completionTokens),
            valuealign: guardInfo(draft))
        // Codable, not JSONSerialization: on the hot path, sorting dictionary keys cost 10% of the CPU.
        let data = (try? wireEncoder.encode(body)) ?? Data("{}".utf8)
        return Response(status: .ok, headers: [.contentType: "application/json", .init(GuardHeader.valueAlignAction)!: outcome.action.rawValue],
                        body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }

    /// What the client learns of the decision (no vectors: those are in the audit log).
    func guardInfo(_ draft: AuditDraft) -> GuardAnnotation {
        GuardAnnotation(requestID: draft.record.requestID, action: draft.record.action, reasons: draft.record.reasons, policy: policy.name)
    }

    /// A whole outcome as a server-sent event stream (input blocked, or buffered mode).
    func sseResponse(_ outcome: ChatOutcome, draft: AuditDraft) -> Response {
        let stream = sseChunks(draft)
        var buffers = [stream.chunk(delta: .init(role: "assistant"))]
        if !outcome.text.isEmpty { buffers.append(stream.chunk(delta: .init(content: outcome.text))) }
        buffers.append(stream.chunk(delta: .init(), finish: outcome.finishReason, extra: guardInfo(draft)))
        buffers.append(SSEChunks.done)
        var response = Response(status: .ok, headers: SSEChunks.headers, body: .init(contentsOf: buffers))
        response.headers[.init(GuardHeader.valueAlignAction)!] = outcome.action.rawValue
        return response
    }

    func sseChunks(_ draft: AuditDraft) -> SSEChunks {
        SSEChunks(id: "chatcmpl-\(draft.record.requestID)", created: Int(draft.record.time.timeIntervalSince1970), model: upstream.modelName)
    }
}

/// OpenAI's `chat.completion.chunk` events.
struct SSEChunks {
    var id: String
    var created: Int
    var model: String

    static let headers: HTTPFields = [.contentType: "text/event-stream", .cacheControl: "no-cache"]
    static let done = ByteBuffer(string: "data: [DONE]\n\n")

    func chunk(delta: ChatCompletionChunk.Delta, finish: String? = nil, extra: GuardAnnotation? = nil) -> ByteBuffer {
        event(ChatCompletionChunk(id: id, created: created, model: model, choices: [.init(delta: delta, finishReason: finish)], valuealign: extra))
    }

    /// OpenAI's in-stream error event.
    func error(_ failure: APIError) -> ByteBuffer {
        event(ErrorReply(error: failure.detail))
    }

    func event(_ value: some Encodable) -> ByteBuffer {
        var buffer = ByteBuffer(string: "data: ")
        buffer.writeBytes((try? wireEncoder.encode(value)) ?? Data("{}".utf8))
        buffer.writeString("\n\n")
        return buffer
    }
}

let wireEncoder: JSONEncoder = {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.withoutEscapingSlashes]
    return encoder
}()
