import Foundation
@testable import OpenAIBackend
import Testing

/// The wire types both sides share: what the guard server encodes, the client backend decodes.
@Suite("OpenAI wire types")
struct WireFormatTests {
    @Test("a reply encoded by the server side decodes to the same fields, its extension included")
    func completionRoundTrip() throws {
        let annotation = GuardAnnotation(requestID: "req_1", action: "revise", reasons: ["revised in 1 round"], policy: "p")
        let reply = ChatCompletionReply(id: "chatcmpl-1", created: 7, model: "m", choices: [.init(message: .init(role: "assistant", content: "hi"), finishReason: "stop")],
                                        usage: Usage(promptTokens: 3, completionTokens: 2, totalTokens: 5), valuealign: annotation)
        let data = try JSONEncoder().encode(reply)
        let object = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        #expect(object["object"] as? String == "chat.completion")
        #expect((object["valuealign"] as? [String: Any])?["request_id"] as? String == "req_1")
        #expect(object["error"] == nil)  // absent, not null: OpenAI clients treat a present `error` as a failure
        let back = try JSONDecoder().decode(ChatCompletionReply.self, from: data)
        #expect(back.choices?.first?.message == .init(role: "assistant", content: "hi") && back.choices?.first?.finishReason == "stop")
        #expect(back.usage == Usage(promptTokens: 3, completionTokens: 2, totalTokens: 5) && back.valuealign == annotation)
    }

    @Test("a streamed chunk writes finish_reason as null while streaming, and omits unset delta fields")
    func chunkEncoding() throws {
        let chunk = ChatCompletionChunk(id: "c", created: 1, model: "m", choices: [.init(delta: .init(content: "x"), finishReason: nil)])
        let text = String(decoding: try JSONEncoder().encode(chunk), as: UTF8.self)
        #expect(text.contains(#""finish_reason":null"#) && text.contains(#""delta":{"content":"x"}"#))
        let back = try JSONDecoder().decode(ChatCompletionChunk.self, from: Data(text.utf8))
        #expect(back.choices?.first?.delta?.content == "x" && back.choices?.first?.finishReason == nil)
    }

    @Test("error bodies: param and code written as null; a numeric code (llama.cpp) still decodes")
    func errors() throws {
        let text = String(decoding: try JSONEncoder().encode(ErrorReply(error: .init(message: "bad", type: "invalid_request_error"))), as: UTF8.self)
        #expect(text.contains(#""param":null"#) && text.contains(#""code":null"#))
        let llama = try JSONDecoder().decode(ErrorReply.self, from: Data(#"{"error": {"code": 500, "message": "boom", "type": "server_error"}}"#.utf8))
        #expect(llama.summary == "boom [server_error]")
        let inReply = try JSONDecoder().decode(ChatCompletionReply.self, from: Data(#"{"error": {"code": 503, "message": "loading"}}"#.utf8))
        #expect(inReply.error?.message == "loading")
    }

    @Test("fields the client does not read may be odd without making the reply unreadable")
    func lenientExtras() throws {
        let data = Data(#"{"id": 42, "created": 1.5, "object": null, "choices": [{"index": "0", "message": {"role": 1, "content": "ok"}}]}"#.utf8)
        let reply = try JSONDecoder().decode(ChatCompletionReply.self, from: data)
        #expect(reply.choices?.first?.message?.content == "ok" && reply.id == nil && reply.created == nil)
        // What the client reads stays strict: a number as content is malformed.
        #expect(throws: DecodingError.self) {
            try JSONDecoder().decode(ChatCompletionReply.self, from: Data(#"{"choices": [{"message": {"content": 5}}]}"#.utf8))
        }
    }
}
