import Foundation
import LanguageModels
import OpenAIBackend
import Oversight
import Testing
import ValueAlignServer
import ValueAlignTesting
import ValueSpace
import Evaluators

/// The embedded SmolLM2, loaded once: verdicts need a model that puts probability on "A" and "B"
/// (a tiny random model's top 20 tokens seldom include them). EmbeddedModelPresenceTests fails
/// when the model is missing.
enum Embedded {
    static let path = ModelLocator.embeddedModelPath()
    static let backend: LocalChatBackend? = path.flatMap { try? LocalChatBackend(LoadedModel.load($0)) }
}

/// A tiny random chat model behind `LocalChatBackend`.
func tinyBackend(seed: UInt64 = 3) throws -> LocalChatBackend { LocalChatBackend(try TinyModels.chatModel(seed: seed, context: 4096)) }

/// Runs `body` with the project's own OpenAI-compatible server (`valuealign serve`'s `GuardServer`,
/// monitor-only policy) in front of `backend`, on a loopback port; `body` gets the base URL.
func withServed<T: Sendable>(_ backend: any ChatBackend, _ body: @escaping @Sendable (String) async throws -> T) async throws -> T {
    let directory = FileManager.default.temporaryDirectory.appendingPathComponent("oversight-serve-\(UUID().uuidString)").path
    defer { try? FileManager.default.removeItem(atPath: directory) }
    let store = try SQLiteAuditStore(directory: directory)
    let configuration = GuardConfiguration(host: "127.0.0.1", port: 0, policy: try GuardPolicy.monitorOnly())
    let server = try GuardServer(configuration: configuration, upstream: backend, evaluator: LexiconValueEvaluator(), audit: store)
    let ports = AsyncStream.makeStream(of: Int.self)
    let running = Task { try await server.run { ports.continuation.yield($0) } }
    defer { running.cancel() }
    var iterator = ports.stream.makeAsyncIterator()
    let port = try #require(await iterator.next())
    let result = try await body("http://127.0.0.1:\(port)/v1")
    running.cancel()
    _ = await running.result
    await store.close()
    return result
}

/// A chat backend that answers every conversation with the same text and no log-probabilities
/// (a judge that answers garbage), counting its calls.
final class ScriptedBackend: ChatBackend, @unchecked Sendable {
    let text: String
    private let lock = NSLock()
    private var _calls = 0
    init(_ text: String) { self.text = text }
    var modelName: String { "scripted" }
    var calls: Int { lock.withLock { _calls } }
    func complete(_ messages: [ChatMessage], parameters: GenerationParameters) async throws -> ChatCompletion {
        lock.withLock { _calls += 1 }
        return ChatCompletion(text: text, finishReason: .stop, promptTokens: 1, completionTokens: 1)
    }
    func stream(_ messages: [ChatMessage], parameters: GenerationParameters) -> AsyncThrowingStream<String, any Error> {
        AsyncThrowingStream { $0.yield(text); $0.finish() }
    }
}

/// A temporary folder removed by the caller.
func temporaryFolder(_ name: String) throws -> URL {
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("\(name)-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    return url
}

func write(_ lines: [String], to url: URL) throws {
    try (lines.joined(separator: "\n") + "\n").write(to: url, atomically: true, encoding: .utf8)
}
