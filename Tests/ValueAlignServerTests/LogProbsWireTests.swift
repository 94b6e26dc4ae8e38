import Foundation
import LanguageModels
import OpenAIBackend
import Testing
import ValueAlignServer

@Suite("logprobs on the wire") struct LogProbsWireTests {
    func parse(_ json: String) throws(APIError) -> ChatRequest {
        try ChatRequest.parse(Data(json.utf8), defaultMaxTokens: 16)
    }

    @Test("logprobs and top_logprobs are read into the generation parameters; bad values name the field")
    func requests() throws {
        let messages = #""messages": [{"role": "user", "content": "hi"}]"#
        #expect(try parse("{\(messages), \"logprobs\": true, \"top_logprobs\": 5}").parameters.topLogProbs == 5)
        #expect(try parse("{\(messages), \"logprobs\": true}").parameters.topLogProbs == 0)
        #expect(try parse("{\(messages)}").parameters.topLogProbs == nil)
        #expect(try parse("{\(messages), \"logprobs\": false}").parameters.topLogProbs == nil)
        for (body, field, words) in [
            ("{\(messages), \"logprobs\": true, \"top_logprobs\": 21}", "top_logprobs", "0...20"),
            ("{\(messages), \"top_logprobs\": 3}", "top_logprobs", "needs 'logprobs'"),
            ("{\(messages), \"logprobs\": \"yes\"}", "logprobs", "a boolean"),
            ("{\(messages), \"logprobs\": true, \"stream\": true}", "logprobs", "not supported with 'stream'"),
        ] {
            #expect { _ = try parse(body) } throws: { e in
                guard let api = e as? APIError else { return false }
                return api.param == field && api.message.contains(words)
            }
        }
    }

    @Test("a reply's logprobs survive encoding and decoding, bytes included")
    func replies() throws {
        let tokens = [TokenLogProb(token: "é", logProb: -0.25, bytes: [0xC3, 0xA9], top: [.init(token: "é", logProb: -0.25, bytes: [0xC3, 0xA9]), .init(token: "e", logProb: -1.5, bytes: [0x65])])]
        let reply = ChatCompletionReply(id: "x", created: 0, model: "m", choices: [.init(message: .init(role: "assistant", content: "é"), finishReason: "stop", logprobs: LogProbs(tokens))], usage: nil)
        let decoded = try JSONDecoder().decode(ChatCompletionReply.self, from: try JSONEncoder().encode(reply))
        #expect(decoded.choices?.first?.logprobs?.tokens == tokens)
        let json = String(decoding: try JSONEncoder().encode(reply), as: UTF8.self)
        #expect(json.contains("\"top_logprobs\"") && json.contains("\"logprob\""))
    }
}
