public import AsyncHTTPClient
import Foundation
public import LanguageModels

/// A `ChatBackend` that talks to any server speaking OpenAI's chat-completions API: vLLM,
/// llama.cpp server, Ollama (`/v1`), LM Studio, or a hosted API.
///
/// Requests are retried with exponential back-off and jitter on connection errors and on HTTP
/// 408, 409, 429 and 5xx, honouring `Retry-After` (429 and 503) up to `maxRetryAfter`; other 4xx
/// fail at once. A time-out is final, not retried: a server that did not answer within `timeout`
/// seldom does on a second try, and retrying would multiply the wait. Every failure is a
/// `LanguageModelError.backend` whose message names the request, the HTTP status and the server's
/// own error message. The API key goes only into the `Authorization` header: it is never logged,
/// printed (`description` and `dump` show it redacted) or put into an error message.
///
/// With the default `HTTPClient.shared`, AsyncHTTPClient's own read time-out (90 s without a byte
/// from the server) also applies: for non-streamed answers that take longer, pass an `HTTPClient`
/// configured with a longer read time-out, or use `stream`. That client also retries a refused
/// connection by itself until the time-out, so an unreachable server shows as a time-out; a client
/// with `connectionPool.retryConnectionEstablishment = false` reports the connection error at once
/// (and this backend retries it with back-off).
public struct OpenAICompatibleBackend: ChatBackend, CustomStringConvertible, CustomReflectable {
    /// The model name sent with every request (`"model"` in the body).
    public let modelName: String
    /// The API root, without a trailing slash, e.g. `http://127.0.0.1:8000/v1`.
    public let baseURL: String
    /// Limit for one attempt of a non-streamed request (connection, answer and body); for a stream,
    /// the limit for the response to start and for each silence between two pieces of data.
    public let timeout: Duration
    /// Most retries after the first attempt (0 = no retry).
    public let maxRetries: Int
    /// Most requests `completeBatch` has in flight at once.
    public let maxConcurrentRequests: Int
    /// Whether requests carry an API key.
    public var hasAPIKey: Bool { apiKey != nil }

    private let apiKey: APIKey?
    private let retryPolicy: RetryPolicy
    private let httpClient: HTTPClient

    /// Largest reply body read into memory (a chat completion is a few kB; this only stops a
    /// misbehaving server from exhausting memory).
    static let maxReplyBytes = 32 << 20
    /// Largest error body read to extract a message from.
    static let maxErrorBytes = 64 << 10

    /// Creates a backend for the server at `baseURL`.
    ///
    /// - Parameters:
    ///   - baseURL: the API root, `http` or `https` with a host, e.g. `http://127.0.0.1:8000/v1`
    ///     (vLLM), `http://127.0.0.1:8080/v1` (llama.cpp), `http://127.0.0.1:11434/v1` (Ollama),
    ///     `https://api.openai.com/v1`. Endpoints such as `/chat/completions` are appended to it.
    ///   - model: the model name the server knows the model by.
    ///   - apiKey: sent as `Authorization: Bearer <key>`; when nil, read once, here, from the
    ///     environment variable `apiKeyEnvironmentVariable` (nil: no variable). An empty key
    ///     counts as none, and a request without a key carries no `Authorization` header.
    ///   - timeout: see `timeout`.
    ///   - maxRetries: retries after the first attempt.
    ///   - maxConcurrentRequests: see `maxConcurrentRequests`.
    ///   - retryBaseDelay: back-off before the first retry (doubling for each next one, with jitter).
    ///   - maxRetryDelay: the most any back-off waits.
    ///   - maxRetryAfter: the most a server's `Retry-After` is obeyed.
    ///   - httpClient: the client the requests go through; the caller owns its lifetime.
    /// - Throws: `LanguageModelError.invalidParameter` naming the argument that is out of range.
    public init(
        baseURL: String,
        model: String,
        apiKey: String? = nil,
        apiKeyEnvironmentVariable: String? = "OPENAI_API_KEY",
        timeout: Duration = .seconds(120),
        maxRetries: Int = 3,
        maxConcurrentRequests: Int = 8,
        retryBaseDelay: Duration = .milliseconds(500),
        maxRetryDelay: Duration = .seconds(20),
        maxRetryAfter: Duration = .seconds(60),
        httpClient: HTTPClient = .shared
    ) throws(LanguageModelError) {
        func bad(_ field: String, _ why: String) -> LanguageModelError { .invalidParameter(field: field, message: why) }
        self.baseURL = try Self.normalizedBaseURL(baseURL)
        guard !model.isEmpty else { throw bad("model", "must not be empty") }
        guard timeout > .zero else { throw bad("timeout", "must be > 0, got \(timeout)") }
        guard maxRetries >= 0 else { throw bad("maxRetries", "must be >= 0, got \(maxRetries)") }
        guard maxConcurrentRequests >= 1 else {
            throw bad("maxConcurrentRequests", "must be >= 1, got \(maxConcurrentRequests)")
        }
        for (name, delay) in [("retryBaseDelay", retryBaseDelay), ("maxRetryDelay", maxRetryDelay), ("maxRetryAfter", maxRetryAfter)]
        where delay < .zero {
            throw bad(name, "must be >= 0, got \(delay)")
        }
        self.modelName = model
        self.timeout = timeout
        self.maxRetries = maxRetries
        self.maxConcurrentRequests = maxConcurrentRequests
        self.retryPolicy = RetryPolicy(
            maxRetries: maxRetries, baseDelay: retryBaseDelay, maxDelay: maxRetryDelay, maxRetryAfter: maxRetryAfter)
        self.httpClient = httpClient
        let key = apiKey ?? apiKeyEnvironmentVariable.flatMap { ProcessInfo.processInfo.environment[$0] }
        self.apiKey = key.flatMap { $0.isEmpty ? nil : APIKey(value: $0) }
    }

    /// `OpenAICompatibleBackend(model, baseURL)`, never the key.
    public var description: String {
        "OpenAICompatibleBackend(model: \(modelName), baseURL: \(baseURL), apiKey: \(apiKey == nil ? "none" : "<redacted>"))"
    }

    /// What `dump` and debuggers show: everything but the key.
    public var customMirror: Mirror {
        Mirror(self, children: [
            "modelName": modelName, "baseURL": baseURL, "timeout": timeout, "maxRetries": maxRetries,
            "maxConcurrentRequests": maxConcurrentRequests, "apiKey": apiKey == nil ? "none" : "<redacted>",
        ])
    }

    // MARK: - ChatBackend

    /// The assistant's answer, from `POST {baseURL}/chat/completions` with `stream: false`.
    public func complete(_ messages: [ChatMessage], parameters: GenerationParameters) async throws -> ChatCompletion {
        try parameters.validate()
        let body = try encode(ChatCompletionRequest(model: modelName, messages: messages, parameters: parameters, stream: false))
        let data = try await fetch(.POST, "/chat/completions", body: body)
        return try parseCompletion(data, from: "POST /chat/completions")
    }

    /// Answers to many conversations, at most `maxConcurrentRequests` in flight at once, in the
    /// order of `conversations`. The first failure cancels the requests still running and is thrown.
    /// Conversation i is sent with seed + i, so a seeded batch samples as a local model's batch does.
    public func completeBatch(_ conversations: [[ChatMessage]], parameters: GenerationParameters) async throws -> [ChatCompletion] {
        try parameters.validate()
        return try await withThrowingTaskGroup(of: (Int, ChatCompletion).self) { group in
            var results = [ChatCompletion?](repeating: nil, count: conversations.count)
            var next = 0
            func startNext() {
                let index = next, messages = conversations[index]
                // Conversation i samples with seed + i, as a local batch's row i does.
                var own = parameters
                own.seed = parameters.seed.map { $0 &+ UInt64(index) }
                group.addTask { [own] in (index, try await complete(messages, parameters: own)) }
                next += 1
            }
            while next < min(maxConcurrentRequests, conversations.count) { startNext() }
            while let (index, completion) = try await group.next() {
                results[index] = completion
                if next < conversations.count { startNext() }
            }
            return results.map { $0! }
        }
    }

    /// The answer as the server produces it, from `POST {baseURL}/chat/completions` with
    /// `stream: true`, parsed from server-sent events as they arrive.
    ///
    /// Only the request that opens the stream is retried; once text has been delivered, a failure
    /// ends the stream with a `LanguageModelError.backend` saying what happened (HTTP status, a cut
    /// connection, a stream that ended without `[DONE]`, a malformed chunk, a silence longer than
    /// `timeout`). Cancelling the consuming task, or dropping the stream, cancels the request.
    public func stream(_ messages: [ChatMessage], parameters: GenerationParameters) -> AsyncThrowingStream<String, any Error> {
        let (stream, continuation) = AsyncThrowingStream.makeStream(of: String.self)
        let task = Task {
            do {
                try parameters.validate()
                let body = try encode(ChatCompletionRequest(model: modelName, messages: messages, parameters: parameters, stream: true))
                try await streamPieces(body: body) { continuation.yield($0) }
                continuation.finish()
            } catch {
                continuation.finish(throwing: error)
            }
        }
        continuation.onTermination = { _ in task.cancel() }
        return stream
    }

    // MARK: - Other endpoints

    /// The names of the models the server offers, from `GET {baseURL}/models`.
    public func listModels() async throws -> [String] {
        let data = try await fetch(.GET, "/models", body: nil)
        do {
            return try JSONDecoder().decode(ModelList.self, from: data).data.map(\.id)
        } catch {
            throw malformed("GET /models", data, error)
        }
    }
}

// MARK: - Requests

extension OpenAICompatibleBackend {
    enum Method: String { case GET, POST }

    /// An attempt's failure, and whether another attempt may succeed.
    struct AttemptFailure: Error {
        var error: LanguageModelError
        var retryable: Bool
        var retryAfter: Duration? = nil
    }

    private func encode(_ request: ChatCompletionRequest) throws -> Data {
        do { return try JSONEncoder().encode(request) } catch {
            throw LanguageModelError.backend("cannot encode the request: \(error)")
        }
    }

    private func makeRequest(_ method: Method, _ path: String, body: Data?, streaming: Bool = false) -> HTTPClientRequest {
        var request = HTTPClientRequest(url: baseURL + path)
        request.method = method == .GET ? .GET : .POST
        request.headers.add(name: "User-Agent", value: "ValueAlign")
        request.headers.add(name: "Accept", value: streaming ? "text/event-stream" : "application/json")
        if let apiKey { request.headers.add(name: "Authorization", value: "Bearer \(apiKey.value)") }
        if let body {
            request.headers.add(name: "Content-Type", value: "application/json")
            request.body = .bytes(body)
        }
        return request
    }

    /// One request's reply body, with retries; each attempt (connection, reply, body) gets `timeout`.
    private func fetch(_ method: Method, _ path: String, body: Data?) async throws -> Data {
        let what = "\(method.rawValue) \(path)"
        let request = makeRequest(method, path, body: body)
        return try await withRetries(what) { [self] in
            do {
                return try await withTimeLimit(timeout) { [self] in
                    try await readBody(try await execute(request, what), what)
                }
            } catch is TimeLimitExceeded {
                throw AttemptFailure(error: timedOut(what, "no complete reply"), retryable: false)
            }
        }
    }

    /// Sends `request` and returns the response once its head shows a 2xx status; throws an
    /// `AttemptFailure` for any other status or a transport error.
    private func execute(_ request: HTTPClientRequest, _ what: String) async throws -> HTTPClientResponse {
        let response: HTTPClientResponse
        do {
            response = try await httpClient.execute(request, timeout: .nanoseconds(Int64(min(timeout.seconds, 1e9) * 1e9)))
        } catch {
            throw transportFailure(error, what, while: "sending the request")
        }
        let status = Int(response.status.code)
        guard !(200..<300).contains(status) else { return response }
        let errorBody = try? await response.body.collect(upTo: Self.maxErrorBytes)
        let serverMessage = errorBody.map { Self.serverMessage(Data($0.readableBytesView)) } ?? nil
        var retryAfter: Duration?
        if RetryPolicy.honoursRetryAfter(status: status) {
            retryAfter = RetryPolicy.parseRetryAfter(milliseconds: response.headers.first(name: "retry-after-ms"))
                ?? RetryPolicy.parseRetryAfter(seconds: response.headers.first(name: "retry-after"))
        }
        let reason = response.status.reasonPhrase.trimmingCharacters(in: .whitespaces)
        let statusText = reason.isEmpty ? "HTTP \(status)" : "HTTP \(status) \(reason)"
        throw AttemptFailure(
            error: failure(what, serverMessage.map { "\(statusText): \($0)" } ?? statusText),
            retryable: RetryPolicy.isRetryable(status: status), retryAfter: retryAfter)
    }

    /// The whole body of a 2xx reply; a transport error is an `AttemptFailure`.
    private func readBody(_ response: HTTPClientResponse, _ what: String) async throws -> Data {
        do {
            return Data(try await response.body.collect(upTo: Self.maxReplyBytes).readableBytesView)
        } catch {
            throw transportFailure(error, what, while: "reading the reply")
        }
    }

    /// The error to report when no retry follows.
    static func finalError(_ error: any Error) -> any Error { (error as? AttemptFailure)?.error ?? error }

    /// Runs `attempt` until it succeeds, fails for good, or `maxRetries` retries are spent.
    private func withRetries<T: Sendable>(_ what: String, _ attempt: @Sendable () async throws -> T) async throws -> T {
        var retry = 0
        while true {
            do {
                return try await attempt()
            } catch let failure as AttemptFailure {
                try Task.checkCancellation()
                guard failure.retryable, retry < retryPolicy.maxRetries else {
                    guard retry > 0, case let .backend(message) = failure.error else { throw failure.error }
                    throw LanguageModelError.backend("\(message) (gave up after \(retry + 1) attempts)")
                }
                try await Task.sleep(for: retryPolicy.delay(beforeRetry: retry, retryAfter: failure.retryAfter))
                retry += 1
            }
        }
    }

    /// An error from AsyncHTTPClient or NIO, classified: cancellation passes through, time-outs
    /// are final, misconfiguration is final, anything else is a connection problem worth a retry.
    func transportFailure(_ error: any Error, _ what: String, while doing: String) -> any Error {
        if error is CancellationError || Task.isCancelled { return CancellationError() }
        if let error = error as? AttemptFailure { return error }
        if let error = error as? HTTPClientError {
            switch error {
            case .cancelled: return CancellationError()
            case .deadlineExceeded:
                return AttemptFailure(error: timedOut(what, "no reply"), retryable: false)
            case .readTimeout:
                return AttemptFailure(
                    error: failure(what, "the HTTP client's read time-out expired while \(doing) (the server sent nothing for that long; configure the HTTPClient with a longer read time-out)"),
                    retryable: false)
            case .invalidURL, .emptyHost, .emptyScheme, .alreadyShutdown, .missingSocketPath:
                return AttemptFailure(error: failure(what, "\(error)"), retryable: false)
            default: break
            }
        }
        return AttemptFailure(error: failure(what, "connection error while \(doing): \(error)"), retryable: true)
    }

    // MARK: Messages

    /// A backend error naming the request, with the key scrubbed should a server echo it.
    func failure(_ what: String, _ message: String) -> LanguageModelError {
        var text = "\(what) at \(baseURL): \(message)"
        if let apiKey, apiKey.value.count >= 4 { text = text.replacingOccurrences(of: apiKey.value, with: "<redacted>") }
        return .backend(text)
    }

    func timedOut(_ what: String, _ problem: String) -> LanguageModelError {
        failure(what, "timed out: \(problem) within \(Self.format(timeout))")
    }

    func malformed(_ what: String, _ data: Data, _ error: any Error) -> LanguageModelError {
        let detail: String
        if let error = error as? DecodingError {
            switch error {
            case let .keyNotFound(key, context): detail = "missing '\((context.codingPath + [key]).map(\.stringValue).joined(separator: "."))'"
            case let .typeMismatch(_, context), let .valueNotFound(_, context):
                detail = "unexpected value at '\(context.codingPath.map(\.stringValue).joined(separator: "."))'"
            case .dataCorrupted: detail = "not valid JSON"
            @unknown default: detail = "\(error)"
            }
        } else {
            detail = "\(error)"
        }
        return failure(what, "malformed reply (\(detail)): \(Self.excerpt(String(decoding: data, as: UTF8.self)))")
    }

    /// The server's error message from an error body, or the start of the body when it is not in
    /// any known shape.
    static func serverMessage(_ data: Data) -> String? {
        if let reply = try? JSONDecoder().decode(ErrorReply.self, from: data), let summary = reply.summary {
            return excerpt(summary)
        }
        let text = String(decoding: data, as: UTF8.self)
        return text.allSatisfy(\.isWhitespace) ? nil : excerpt(text)
    }

    /// `text` on one line, at most `limit` characters, so a server's HTML error page cannot flood a log.
    static func excerpt(_ text: String, limit: Int = 300) -> String {
        let flat = text.split(whereSeparator: \.isNewline).joined(separator: " ").trimmingCharacters(in: .whitespaces)
        return flat.count <= limit ? flat : String(flat.prefix(limit)) + "… (\(flat.count) characters)"
    }

    static func format(_ duration: Duration) -> String {
        let seconds = duration.seconds
        return seconds >= 1 ? "\((seconds * 100).rounded() / 100) s" : "\(Int((seconds * 1000).rounded())) ms"
    }

    private static func normalizedBaseURL(_ text: String) throws(LanguageModelError) -> String {
        let example = "expected an http(s) URL with a host, such as http://127.0.0.1:8000/v1"
        var trimmed = text.trimmingCharacters(in: .whitespaces)
        while trimmed.hasSuffix("/") { trimmed.removeLast() }
        guard let url = URL(string: trimmed), let scheme = url.scheme?.lowercased(), scheme == "http" || scheme == "https",
              let host = url.host, !host.isEmpty
        else { throw .invalidParameter(field: "baseURL", message: "'\(excerpt(text, limit: 200))': \(example)") }
        guard url.query == nil, url.fragment == nil else {
            throw .invalidParameter(field: "baseURL", message: "'\(excerpt(text, limit: 200))' must not have a query or fragment")
        }
        return trimmed
    }
}

// MARK: - Replies

extension OpenAICompatibleBackend {
    func parseCompletion(_ data: Data, from what: String) throws -> ChatCompletion {
        let reply: ChatCompletionReply
        do { reply = try JSONDecoder().decode(ChatCompletionReply.self, from: data) } catch {
            throw malformed(what, data, error)
        }
        if let error = reply.error {
            throw failure(what, "the server reported an error: \(Self.excerpt(error.message ?? "(no message)"))")
        }
        guard let choice = reply.choices?.first else {
            throw failure(what, "malformed reply (no choices): \(Self.excerpt(String(decoding: data, as: UTF8.self)))")
        }
        return ChatCompletion(
            text: choice.message?.content ?? "",
            finishReason: FinishReason(openAI: choice.finishReason),
            promptTokens: reply.usage?.promptTokens ?? 0,
            completionTokens: reply.usage?.completionTokens ?? 0,
            logProbs: choice.logprobs?.tokens)
    }

    /// Opens the stream (with retries) and hands each text piece to `yield` as it arrives.
    private func streamPieces(body: Data, yield: @escaping @Sendable (String) -> Void) async throws {
        let what = "POST /chat/completions (stream)"
        let request = makeRequest(.POST, "/chat/completions", body: body, streaming: true)
        let response = try await withRetries(what) { [self] in
            do {
                return try await withTimeLimit(timeout) { [self] in try await execute(request, what) }
            } catch is TimeLimitExceeded {
                throw AttemptFailure(error: timedOut(what, "no reply"), retryable: false)
            }
        }
        // A server that ignores `stream: true` answers with one JSON reply: deliver it whole.
        if let type = response.headers.first(name: "content-type"), type.lowercased().hasPrefix("application/json") {
            let data: Data
            do {
                data = try await withTimeLimit(timeout) { [self] in try await readBody(response, what) }
            } catch is TimeLimitExceeded {
                throw timedOut(what, "no complete reply")
            } catch {
                throw Self.finalError(error)
            }
            let text = try parseCompletion(data, from: what).text
            if !text.isEmpty { yield(text) }
            return
        }
        let activity = ActivityClock()
        do {
            try await withTimeLimit(timeout, activity: activity) { [self] in
                var reader = StreamReader(backend: self, what: what, yield: yield)
                do {
                    for try await buffer in response.body {
                        activity.touch()
                        if try reader.consume(buffer.readableBytesView) { return }
                    }
                } catch let error as LanguageModelError {
                    throw error
                } catch {
                    throw Self.finalError(transportFailure(error, what, while: "reading the stream after \(reader.pieces) pieces"))
                }
                try reader.finish()
            }
        } catch is TimeLimitExceeded {
            throw failure(what, "timed out: the stream sent no data for \(Self.format(timeout))")
        }
    }
}

/// Turns a stream's bytes into text pieces, and its end into success or a precise error.
private struct StreamReader {
    let backend: OpenAICompatibleBackend
    let what: String
    let yield: @Sendable (String) -> Void
    var parser = ServerSentEventParser()
    private(set) var pieces = 0
    private var finished = false

    init(backend: OpenAICompatibleBackend, what: String, yield: @escaping @Sendable (String) -> Void) {
        self.backend = backend
        self.what = what
        self.yield = yield
    }

    /// Returns true once `[DONE]` has arrived.
    mutating func consume(_ bytes: some Sequence<UInt8>) throws -> Bool {
        for event in parser.consume(bytes) {
            if try handle(event) { return true }
        }
        return false
    }

    /// The body ended without `[DONE]`: accepted only if the last chunk carried a finish reason
    /// (some servers omit `[DONE]`) and no line was cut short.
    mutating func finish() throws {
        let (event, cutMidLine) = parser.finish()
        if let event, try handle(event) { return }
        if cutMidLine || !finished {
            throw backend.failure(what, "the stream ended before [DONE] after \(pieces) pieces (connection closed early)")
        }
    }

    private mutating func handle(_ event: String) throws -> Bool {
        if event.trimmingCharacters(in: .whitespaces) == "[DONE]" { return true }
        let data = Data(event.utf8)
        let chunk: ChatCompletionChunk
        do { chunk = try JSONDecoder().decode(ChatCompletionChunk.self, from: data) } catch {
            throw backend.malformed(what + " chunk \(pieces + 1)", data, error)
        }
        if let error = chunk.error {
            throw backend.failure(
                what, "the server reported an error after \(pieces) pieces: \(OpenAICompatibleBackend.excerpt(error.message ?? "(no message)"))")
        }
        guard let choice = chunk.choices?.first else { return false }  // e.g. a usage-only chunk
        if let text = choice.delta?.content, !text.isEmpty {
            yield(text)
            pieces += 1
        }
        if choice.finishReason != nil { finished = true }
        return false
    }
}

/// The API key, kept out of every description.
struct APIKey: Sendable, CustomStringConvertible, CustomDebugStringConvertible, CustomReflectable {
    let value: String
    var description: String { "<redacted>" }
    var debugDescription: String { "<redacted>" }
    var customMirror: Mirror { Mirror(self, children: []) }
}
