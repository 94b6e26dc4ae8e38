import Foundation
import Hummingbird
import LanguageModels
@testable import OpenAIBackend
import Testing

/// A backend for the fake server with test-sized delays; no key unless one is given, so that the
/// developer's own OPENAI_API_KEY never leaks into a test.
func makeBackend(
    _ baseURL: String, apiKey: String? = nil, apiKeyEnvironmentVariable: String? = nil, timeout: Duration = .seconds(5),
    maxRetries: Int = 3, maxConcurrentRequests: Int = 8, maxRetryAfter: Duration = .seconds(2)
) throws -> OpenAICompatibleBackend {
    try OpenAICompatibleBackend(
        baseURL: baseURL, model: "fake-model", apiKey: apiKey, apiKeyEnvironmentVariable: apiKeyEnvironmentVariable,
        timeout: timeout, maxRetries: maxRetries, maxConcurrentRequests: maxConcurrentRequests,
        retryBaseDelay: .milliseconds(5), maxRetryDelay: .milliseconds(40), maxRetryAfter: maxRetryAfter)
}

/// The message of the `LanguageModelError.backend` that `operation` throws; records an issue
/// (and returns "") when it throws anything else or nothing.
func backendErrorMessage(_ operation: () async throws -> Void, sourceLocation: SourceLocation = #_sourceLocation) async -> String {
    do {
        try await operation()
        Issue.record("expected a LanguageModelError.backend, got success", sourceLocation: sourceLocation)
    } catch let LanguageModelError.backend(message) {
        return message
    } catch {
        Issue.record("expected a LanguageModelError.backend, got \(error)", sourceLocation: sourceLocation)
    }
    return ""
}

func collect(_ stream: AsyncThrowingStream<String, any Error>) async throws -> [String] {
    var pieces: [String] = []
    for try await piece in stream { pieces.append(piece) }
    return pieces
}

let conversation: [ChatMessage] = [.system("Answer in one sentence."), .user("What colour is a clear daytime sky?")]

@Suite("OpenAI-compatible backend")
struct OpenAICompatibleBackendTests {
    @Test("a completion sends OpenAI's fields, the key from the environment, and parses the reply")
    func completionMapsParameters() async throws {
        let variable = "VALUEALIGN_TEST_KEY_\(UInt32.random(in: 0...UInt32.max))"
        let key = "sk-test-\(UInt64.random(in: 0...UInt64.max))"
        setenv(variable, key, 1)
        defer { unsetenv(variable) }
        let parameters = GenerationParameters(
            maxTokens: 50, temperature: 0.7, topK: 40, topP: 0.9, minP: 0.05, repetitionPenalty: 1.1, seed: 42, stop: ["\n\n", "END"])
        try await withFakeOpenAIServer(respond: { _, _, _ in
            .completion("The sky looks blue.", finishReason: "length", usage: (23, 5))
        }) { baseURL, log in
            let backend = try makeBackend(baseURL, apiKeyEnvironmentVariable: variable)
            #expect(backend.hasAPIKey)
            #expect(!backend.description.contains(key))
            var dumped = ""
            dump(backend, to: &dumped)
            #expect(!dumped.contains(key))

            let completion = try await backend.complete(conversation, parameters: parameters)
            #expect(completion == ChatCompletion(text: "The sky looks blue.", finishReason: .length, promptTokens: 23, completionTokens: 5))

            let requests = await log.requests
            try #require(requests.count == 1)
            let request = requests[0]
            #expect(request.method == "POST" && request.path == "/v1/chat/completions")
            #expect(request.authorization == "Bearer \(key)")
            let json = request.json
            #expect(json["model"] as? String == "fake-model")
            let messages = try #require(json["messages"] as? [[String: String]])
            #expect(messages == [
                ["role": "system", "content": "Answer in one sentence."],
                ["role": "user", "content": "What colour is a clear daytime sky?"],
            ])
            #expect(json["max_tokens"] as? Int == 50)
            #expect(abs(try #require(json["temperature"] as? Double) - 0.7) < 1e-9)  // shortest form on the wire
            #expect(abs(try #require(json["top_p"] as? Double) - 0.9) < 1e-9)
            #expect(json["seed"] as? Int == 42)
            #expect(json["stop"] as? [String] == ["\n\n", "END"])
            #expect(json["stream"] as? Bool == false)
            #expect(json["top_k"] as? Int == 40)
            #expect(abs(try #require(json["min_p"] as? Double) - 0.05) < 1e-9)
            #expect(abs(try #require(json["repetition_penalty"] as? Double) - 1.1) < 1e-9)
        }
    }

    @Test("default parameters send only OpenAI's fields; no key, no Authorization header; missing usage is 0")
    func defaultsOmitExtensions() async throws {
        try await withFakeOpenAIServer(respond: { _, _, _ in .completion("Blue.", usage: nil) }) { baseURL, log in
            let unsetVariable = "VALUEALIGN_TEST_UNSET_\(UInt32.random(in: 0...UInt32.max))"
            let backend = try makeBackend(baseURL, apiKeyEnvironmentVariable: unsetVariable)
            #expect(!backend.hasAPIKey)
            let completion = try await backend.complete([.user("Sky colour?")], parameters: .greedy)
            #expect(completion == ChatCompletion(text: "Blue.", finishReason: .stop, promptTokens: 0, completionTokens: 0))
            let request = try #require(await log.requests.first)
            #expect(request.authorization == nil)
            let keys = Set(request.json.keys)
            #expect(keys == ["model", "messages", "max_tokens", "temperature", "top_p", "stream"])
            #expect(request.json["temperature"] as? Double == 0)
        }
    }

    @Test("finish_reason maps onto FinishReason", arguments: [
        ("stop", FinishReason.stop), ("length", .length), ("content_filter", .stop), ("tool_calls", .stop), (nil, .stop),
    ] as [(String?, FinishReason)])
    func finishReasons(_ wire: String?, _ expected: FinishReason) async throws {
        try await withFakeOpenAIServer(respond: { _, _, _ in .completion("x", finishReason: wire) }) { baseURL, _ in
            let completion = try await makeBackend(baseURL).complete([.user("hi")], parameters: .greedy)
            #expect(completion.finishReason == expected)
        }
    }

    @Test("listModels reads GET /models")
    func listModels() async throws {
        try await withFakeOpenAIServer(models: ["model-a", "model-b"], respond: { _, _, _ in .completion("") }) { baseURL, log in
            let names = try await makeBackend(baseURL, apiKey: "sk-list").listModels()
            #expect(names == ["model-a", "model-b"])
            let request = try #require(await log.requests.first)
            #expect(request.method == "GET" && request.path == "/v1/models")
            #expect(request.authorization == "Bearer sk-list")
        }
    }

    @Test("base URLs that are not http(s) with a host are refused up front", arguments: [
        "", "localhost:8000/v1", "ftp://example.com/v1", "http:///v1", "http://127.0.0.1:8000/v1?key=1", "not a url",
    ])
    func invalidBaseURL(_ url: String) {
        #expect(throws: LanguageModelError.self) { try makeBackend(url) }
        do { _ = try makeBackend(url) } catch {
            guard case let .invalidParameter(field, _) = error as? LanguageModelError else { Issue.record("\(error)"); return }
            #expect(field == "baseURL")
        }
    }

    @Test("a trailing slash on the base URL is dropped")
    func trailingSlash() throws {
        #expect(try makeBackend("http://127.0.0.1:8000/v1/").baseURL == "http://127.0.0.1:8000/v1")
    }

    @Test("invalid generation parameters fail before anything is sent")
    func parametersValidated() async throws {
        try await withFakeOpenAIServer(respond: { _, _, _ in .completion("x") }) { baseURL, log in
            let backend = try makeBackend(baseURL)
            let bad = GenerationParameters(temperature: -1)
            await #expect(throws: LanguageModelError.invalidParameter(field: "temperature", message: "must be a finite number >= 0, got -1.0")) {
                try await backend.complete([.user("hi")], parameters: bad)
            }
            await #expect(throws: LanguageModelError.self) { try await collect(backend.stream([.user("hi")], parameters: bad)) }
            #expect(await log.count == 0)
        }
    }
}
