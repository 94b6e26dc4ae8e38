import Evaluators
import Foundation
import LanguageModels
import Synchronization
import Testing
import ValueSpace

/// A scripted chat backend: answers from a queue, recording what it was asked.
final class ScriptedBackend: ChatBackend, @unchecked Sendable {
    let answers: Mutex<[String]>
    let asked = Mutex<[[ChatMessage]]>([])
    init(_ answers: [String]) { self.answers = Mutex(answers) }
    var modelName: String { "scripted" }
    func complete(_ messages: [ChatMessage], parameters: GenerationParameters) async throws -> ChatCompletion {
        asked.withLock { $0.append(messages) }
        let text = answers.withLock { $0.isEmpty ? "" : $0.removeFirst() }
        return ChatCompletion(text: text, finishReason: .stop, promptTokens: 0, completionTokens: 0)
    }
    func stream(_ messages: [ChatMessage], parameters: GenerationParameters) -> AsyncThrowingStream<String, any Error> {
        AsyncThrowingStream { $0.finish() }
    }
}

@Suite struct LLMJudgeTests {
    let all = "{\"self_direction\": 0, \"stimulation\": 0, \"hedonism\": 0, \"achievement\": 0, \"power\": -1, \"security\": 1, \"tradition\": 0, \"conformity\": 1, \"benevolence\": \"+1\", \"universalism\": 0}"

    @Test func parsesValidAnswersInsideProse() throws {
        let r = LLMJudgeEvaluator.parse("Sure:\n```json\n\(all)\n```", values: SchwartzValue.allCases)
        let labels = try r.get()
        #expect(labels[.security] == 1 && labels[.power] == -1 && labels[.benevolence] == 1 && labels.count == 10)
    }

    @Test(arguments: [
        ("no json here", "no JSON object"),
        ("{\"security\": 2}", "'security' must be -1, 0 or 1"),
        ("{\"humility\": 1}", "unknown key 'humility'"),
        ("{\"security\": 1}", "missing keys: self_direction"),
        ("{\"security\": true}", "'security' must be -1, 0 or 1"),
    ])
    func rejectsMalformedAnswers(text: String, message: String) {
        guard case let .failure(e) = LLMJudgeEvaluator.parse(text, values: SchwartzValue.allCases) else {
            Issue.record("accepted \(text)")
            return
        }
        #expect(e.message.contains(message), "\(e.message)")
    }

    @Test func retriesWithTheErrorThenSucceeds() async throws {
        let backend = ScriptedBackend(["I think it is fine.", all])
        let judge = LLMJudgeEvaluator(backend: backend, maxRetries: 1)
        let out = try await judge.evaluate([ValuePair(prompt: "p", response: "r")])
        #expect(out[0].vector[.security] == 1 && out[0].vector[.power] == -1)
        #expect(out[0].labels[SchwartzValue.power.index] == -1)
        let second = try #require(backend.asked.withLock { $0.last })
        #expect(second.last?.content.contains("no JSON object") == true)
        #expect(second.first?.content.contains(SchwartzValue.universalism.definition) == true)
    }

    @Test func givesUpNamingThePair() async throws {
        let judge = LLMJudgeEvaluator(backend: ScriptedBackend(["x", "y", "z"]), maxRetries: 2)
        await #expect {
            _ = try await judge.evaluate([ValuePair(prompt: "p", response: "r")])
        } throws: { "\($0)".contains("pair 0 after 3 attempts") }
    }

    @Test func perValueModeAsksTenQuestions() async throws {
        let answers = SchwartzValue.allCases.map { "{\"\($0.rawValue)\": \($0 == .tradition ? 1 : 0)}" }
        let backend = ScriptedBackend(answers)
        let out = try await LLMJudgeEvaluator(backend: backend, mode: .perValue).evaluate([ValuePair(prompt: "p", response: "r")])
        #expect(backend.asked.withLock { $0.count } == 10)
        #expect(out[0].vector.components == [0, 0, 0, 0, 0, 0, 1, 0, 0, 0])
    }
}
