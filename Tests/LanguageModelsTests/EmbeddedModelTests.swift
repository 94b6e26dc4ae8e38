import Foundation
import LanguageModels
import MLXEngine
import Testing

/// The embedded SmolLM2, loaded once for the integration tests (about 4 s in a debug build).
enum Embedded {
    static let path = ModelLocator.embeddedModelPath()
    static let backend: LocalChatBackend? = path.flatMap { try? LocalChatBackend(LoadedModel.load($0)) }
}

@Suite(.serialized, .enabled(if: Embedded.path != nil)) struct EmbeddedModelTests {
    @Test func loadsWithTokenizerAndChatML() throws {
        let loaded = try #require(Embedded.backend).loaded
        #expect(loaded.chatTemplate == .chatml)
        #expect(loaded.defaultSystemPrompt?.isEmpty == false)
        #expect(loaded.tokenizer.vocabularySize == 49152)
        #expect(loaded.makeGenerator().stopTokenIds.contains(loaded.tokenizer.tokenId("<|im_end|>")!))
    }

    @Test func greedyAnswerNamesParis() async throws {
        let backend = try #require(Embedded.backend)
        let answer = try await backend.complete([.user("What is the capital of France?")], parameters: GenerationParameters(maxTokens: 40))
        #expect(answer.text.contains("Paris"), "answer: \(answer.text)")
        #expect(answer.finishReason == .stop || answer.completionTokens == 40)
    }

    @Test func batchedGreedyEqualsUnbatchedOnTheRealModel() async throws {
        let backend = try #require(Embedded.backend)
        let conversations: [[ChatMessage]] = [[.user("Name a colour.")], [.user("Write one short sentence about rivers and why people settle near them.")]]
        let p = GenerationParameters(maxTokens: 16)
        let batch = try await backend.completeBatch(conversations, parameters: p)
        for (i, c) in conversations.enumerated() {
            #expect(try await backend.complete(c, parameters: p).text == batch[i].text, "conversation \(i)")
        }
    }
}
