import AsyncHTTPClient
import Evaluators
import Foundation
import Hummingbird
import HummingbirdTesting
import LanguageModels
import Logging
import NIOCore
import OpenAIBackend
import ValueAlignServer
import ValueSpace

// MARK: - The upstream: a scripted OpenAI-compatible server in this process

/// What the fake upstream saw.
actor UpstreamLog {
    private(set) var conversations: [[[String: String]]] = []
    private(set) var streamed: [Bool] = []
    func note(_ messages: [[String: String]], stream: Bool) -> Int {
        conversations.append(messages)
        streamed.append(stream)
        return conversations.count
    }
    var count: Int { conversations.count }
}

/// How the fake upstream answers: text (split into stream pieces), an HTTP error, or a delay.
struct UpstreamReply: Sendable {
    var text: String = ""
    var pieces: [String]? = nil
    var status: Int = 200
    var delay: Duration = .zero
    /// Streams: pause between pieces, and cut the connection after this many pieces.
    var piecePause: Duration = .milliseconds(1)
    var cutAfter: Int? = nil
    static func text(_ t: String, pieces: [String]? = nil) -> UpstreamReply { UpstreamReply(text: t, pieces: pieces) }
}

typealias UpstreamScript = @Sendable (_ messages: [[String: String]], _ attempt: Int) -> UpstreamReply

/// Where a test's guard runs. `.router`: in process, through Hummingbird's router test client,
/// with the script as a `ChatBackend` (no sockets). `.live`: on loopback, in front of the script
/// served as a real OpenAI-compatible server through `OpenAICompatibleBackend` (streaming over
/// HTTP, time-outs, retries, clients that stall or leave).
enum Transport: Sendable { case router, live }

/// The scripted upstream a guard is put in front of.
struct Upstream: Sendable {
    var transport: Transport
    var script: UpstreamScript
    var log: UpstreamLog
    /// The loopback server's OpenAI base URL (live only).
    var baseURL: String?
}

/// Runs `body` with the scripted upstream: in process (`.router`) or on a loopback port (`.live`).
func withUpstream<T: Sendable>(_ script: @escaping UpstreamScript, transport: Transport = .router,
                               _ body: @Sendable (_ upstream: Upstream, _ log: UpstreamLog) async throws -> T) async throws -> T {
    let log = UpstreamLog()
    if transport == .router { return try await body(Upstream(transport: .router, script: script, log: log), log) }
    let router = Router()
    router.post("/v1/chat/completions") { request, _ -> Response in
        let buffer = try await request.body.collect(upTo: 1 << 22)
        let object = (try? JSONSerialization.jsonObject(with: Data(buffer.readableBytesView))) as? [String: Any] ?? [:]
        let messages = (object["messages"] as? [[String: Any]] ?? []).map { m in m.compactMapValues { $0 as? String } }
        let stream = object["stream"] as? Bool ?? false
        let attempt = await log.note(messages, stream: stream)
        let reply = script(messages, attempt)
        if reply.delay > .zero { try await Task.sleep(for: reply.delay) }
        if reply.status != 200 {
            return Response(status: .init(code: reply.status), headers: [.contentType: "application/json"],
                            body: .init(byteBuffer: ByteBuffer(string: #"{"error": {"message": "scripted failure", "type": "server_error"}}"#)))
        }
        if stream {
            let pieces = reply.pieces ?? [reply.text]
            return Response(status: .ok, headers: [.contentType: "text/event-stream"], body: ResponseBody { writer in
                for (i, piece) in pieces.enumerated() {
                    if i == reply.cutAfter { throw CutOnPurpose() }
                    try await writer.write(ByteBuffer(string: sse(["choices": [["index": 0, "delta": ["content": piece], "finish_reason": NSNull()]]])))
                    try await Task.sleep(for: reply.piecePause)
                }
                try await writer.write(ByteBuffer(string: sse(["choices": [["index": 0, "delta": [String: String](), "finish_reason": "stop"]]]) + "data: [DONE]\n\n"))
                try await writer.finish(nil)
            })
        }
        let reply_: [String: Any] = [
            "id": "up", "object": "chat.completion", "created": 0, "model": "fake-model",
            "choices": [["index": 0, "message": ["role": "assistant", "content": reply.text], "finish_reason": "stop"]],
            "usage": ["prompt_tokens": 9, "completion_tokens": 4],
        ]
        return Response(status: .ok, headers: [.contentType: "application/json"],
                        body: .init(byteBuffer: ByteBuffer(bytes: try JSONSerialization.data(withJSONObject: reply_))))
    }
    var app = Application(router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0)))
    app.logger.logLevel = .warning
    return try await app.test(.live) { client in
        try await body(Upstream(transport: .live, script: script, log: log, baseURL: "http://127.0.0.1:\(client.port!)/v1"), log)
    }
}

struct CutOnPurpose: Error {}

func sse(_ object: [String: Any]) -> String {
    "data: " + String(decoding: try! JSONSerialization.data(withJSONObject: object), as: UTF8.self) + "\n\n"
}

// MARK: - The guard under test

/// A guard in front of `upstream` (in process or on loopback, as the upstream's transport says),
/// with the lexicon evaluator (or `evaluator`) and a SQLite audit log in a fresh temporary folder.
struct GuardHarness: Sendable {
    var server: GuardServer
    var dataDirectory: String
    /// The guard's URL on loopback; empty for in-process guards.
    var baseURL: String
    let send: @Sendable (_ method: Method, _ path: String, _ body: Data?, _ headers: [(String, String)]) async throws -> Reply

    func call(_ method: Method = .POST, _ path: String, body: Data? = nil, headers: [(String, String)] = []) async throws -> Reply {
        try await send(method, path, body, headers)
    }

    func post(_ path: String, json: Any, headers: [(String, String)] = []) async throws -> Reply {
        try await call(.POST, path, body: try JSONSerialization.data(withJSONObject: json), headers: headers)
    }

    func chat(_ user: String, stream: Bool = false, key: String? = nil) async throws -> Reply {
        try await post("/v1/chat/completions", json: ["model": "fake-model", "messages": [["role": "user", "content": user]], "stream": stream],
                       headers: key.map { [("Authorization", "Bearer \($0)")] } ?? [])
    }
}

func withGuard<T: Sendable>(
    upstream: Upstream, policy: GuardPolicy, access: AccessPolicy = AccessPolicy(), evaluator: (any ValueEvaluator)? = nil,
    audit: (any AuditStore)? = nil, configure: @Sendable (inout GuardConfiguration) -> Void = { _ in },
    upstreamTimeout: Duration = .seconds(5), _ body: @Sendable (GuardHarness) async throws -> T
) async throws -> T {
    let directory = FileManager.default.temporaryDirectory.appendingPathComponent("guard-test-\(UUID().uuidString)").path
    defer { try? FileManager.default.removeItem(atPath: directory) }
    let store: any AuditStore = try audit ?? SQLiteAuditStore(directory: directory)
    var configuration = GuardConfiguration(host: "127.0.0.1", port: 0, policy: policy, access: access, upstreamTimeout: upstreamTimeout, storeText: true)
    configure(&configuration)
    let backend: any ChatBackend
    if let url = upstream.baseURL {
        backend = try OpenAICompatibleBackend(baseURL: url, model: "fake-model", apiKey: nil, apiKeyEnvironmentVariable: nil,
                                              timeout: .seconds(30), maxRetries: 0)
    } else {
        backend = ScriptedBackend(script: upstream.script, log: upstream.log)
    }
    var logger = Logger(label: "guard-test")
    logger.logLevel = .warning
    let server = try GuardServer(configuration: configuration, upstream: backend, evaluator: evaluator ?? LexiconValueEvaluator(), audit: store, logger: logger)
    let app = server.makeApplication()
    let result: T
    switch upstream.transport {
    case .router:
        result = try await app.test(.router) { client in
            try await body(GuardHarness(server: server, dataDirectory: directory, baseURL: "") { method, path, data, headers in
                var fields: HTTPFields = [.contentType: "application/json"]
                for (name, value) in headers { fields[.init(name)!] = value }
                let response = try await client.execute(uri: path, method: method == .GET ? .get : .post, headers: fields,
                                                        body: data.map { ByteBuffer(bytes: $0) })
                var replyHeaders: [String: String] = [:]
                for field in response.headers { replyHeaders[field.name.rawName.lowercased()] = field.value }
                return Reply(status: Int(response.status.code), headers: replyHeaders, body: Data(response.body.readableBytesView))
            })
        }
    case .live:
        result = try await app.test(.live) { client in
            let baseURL = "http://127.0.0.1:\(client.port!)"
            return try await body(GuardHarness(server: server, dataDirectory: directory, baseURL: baseURL) { method, path, data, headers in
                // Long answers are evaluated window by window; on a loaded 2-core machine the
                // long-text tests took over 20 s (a fresh-clone `make test` beside a build).
                try await call(method, baseURL + path, body: data, headers: headers, timeout: .seconds(120))
            })
        }
    }
    if audit == nil { await store.close() }
    return result
}

/// The script as a `ChatBackend`, for in-process guards: what the loopback server would answer,
/// as `OpenAICompatibleBackend` would report it (failures as `LanguageModelError.backend`).
struct ScriptedBackend: ChatBackend {
    let script: UpstreamScript
    let log: UpstreamLog
    var modelName: String { "fake-model" }

    static func wire(_ messages: [ChatMessage]) -> [[String: String]] {
        messages.map { ["role": $0.role.rawValue, "content": $0.content] }
    }

    static func failure(_ status: Int) -> LanguageModelError {
        .backend("POST /chat/completions at scripted upstream: HTTP \(status): scripted failure [server_error]")
    }

    func complete(_ messages: [ChatMessage], parameters: GenerationParameters) async throws -> ChatCompletion {
        let wire = Self.wire(messages)
        let reply = script(wire, await log.note(wire, stream: false))
        if reply.delay > .zero { try await Task.sleep(for: reply.delay) }
        if reply.status != 200 { throw Self.failure(reply.status) }
        return ChatCompletion(text: reply.text, finishReason: .stop, promptTokens: 9, completionTokens: 4)
    }

    func stream(_ messages: [ChatMessage], parameters: GenerationParameters) -> AsyncThrowingStream<String, any Error> {
        let wire = Self.wire(messages), script = self.script, log = self.log
        return AsyncThrowingStream { continuation in
            let task = Task {
                do {
                    let reply = script(wire, await log.note(wire, stream: true))
                    if reply.delay > .zero { try await Task.sleep(for: reply.delay) }
                    if reply.status != 200 { throw Self.failure(reply.status) }
                    for (i, piece) in (reply.pieces ?? [reply.text]).enumerated() {
                        if i == reply.cutAfter { throw LanguageModelError.backend("the stream ended before [DONE] after \(i) pieces (connection closed early)") }
                        if !piece.isEmpty { continuation.yield(piece) }
                        try await Task.sleep(for: reply.piecePause)
                    }
                    continuation.finish()
                } catch {
                    continuation.finish(throwing: error)
                }
            }
            continuation.onTermination = { _ in task.cancel() }
        }
    }
}

// MARK: - HTTP from the client's side

struct Reply: Sendable {
    var status: Int
    var headers: [String: String]
    var body: Data
    var text: String { String(decoding: body, as: UTF8.self) }
    var json: [String: Any] { (try? JSONSerialization.jsonObject(with: body)) as? [String: Any] ?? [:] }
    /// `error.param`, `error.type`, `error.message` of an OpenAI-shaped error.
    var error: [String: Any] { json["error"] as? [String: Any] ?? [:] }
    var content: String? {
        ((json["choices"] as? [[String: Any]])?.first?["message"] as? [String: Any])?["content"] as? String
    }
    var finishReason: String? { (json["choices"] as? [[String: Any]])?.first?["finish_reason"] as? String }
    var guardAction: String? { (json["valuealign"] as? [String: Any])?["action"] as? String }

    /// The data events of an SSE body (without "data: "), in order.
    var events: [String] {
        text.components(separatedBy: "\n\n").compactMap { $0.hasPrefix("data: ") ? String($0.dropFirst(6)) : nil }
    }
    /// Concatenated `delta.content` of the stream's chunks.
    var streamedContent: String {
        events.compactMap { e -> String? in
            guard let o = try? JSONSerialization.jsonObject(with: Data(e.utf8)) as? [String: Any] else { return nil }
            return ((o["choices"] as? [[String: Any]])?.first?["delta"] as? [String: Any])?["content"] as? String
        }.joined()
    }
    var streamFinishReason: String? {
        for e in events.reversed() {
            if let o = try? JSONSerialization.jsonObject(with: Data(e.utf8)) as? [String: Any],
               let reason = (o["choices"] as? [[String: Any]])?.first?["finish_reason"] as? String { return reason }
        }
        return nil
    }
}

enum Method: Sendable { case GET, POST }

/// A client that shows redirects instead of following them (the dashboard login answers 303).
let directClient = HTTPClient(eventLoopGroupProvider: .singleton, configuration: .init(redirectConfiguration: .disallow))

func call(_ method: Method = .POST, _ url: String, body: Data? = nil, headers: [(String, String)] = [], timeout: Duration = .seconds(20)) async throws -> Reply {
    var request = HTTPClientRequest(url: url)
    request.method = method == .GET ? .GET : .POST
    request.headers.add(name: "Content-Type", value: "application/json")
    for (n, v) in headers { request.headers.add(name: n, value: v) }
    if let body { request.body = .bytes(ByteBuffer(bytes: body)) }
    let response = try await directClient.execute(request, timeout: .seconds(Int64(timeout.components.seconds)))
    let buffer = try await response.body.collect(upTo: 1 << 24)
    var headers: [String: String] = [:]
    for h in response.headers { headers[h.name.lowercased()] = h.value }
    return Reply(status: Int(response.status.code), headers: headers, body: Data(buffer.readableBytesView))
}

// MARK: - Texts the lexicon evaluator reads clearly

enum Texts {
    /// power ≈ +1 (dominate, control, power, crush).
    static let powerHungry = "Crush your rivals, dominate the market and take control: power is all that matters."
    /// benevolence > 0, power 0.
    static let kind = "I am glad to help. Be kind to your neighbour and offer support where you can."
    /// benevolence < 0 (hurt, harm, revenge).
    static let hostile = "Hurt them back and harm their reputation; revenge is sweet."
    static let neutral = "The capital of France is Paris."
}

func policy(_ json: String) throws -> GuardPolicy {
    try GuardPolicy.decode(Data(json.utf8), origin: "test-policy")
}

/// Blocks power-hungry answers and hostile inputs; revises hostile answers.
let standardPolicy = """
    {"name": "test", "target": "basealign-ideal",
     "input": {"thresholds": {"benevolence": {"min": -0.5}}},
     "output": {"action": "block", "thresholds": {"power": {"max": 0.5}, "benevolence": {"min": -0.5, "action": "revise"}, "hedonism": {"max": 0.5, "action": "flag"}}},
     "refusal": "Sorry, I cannot answer that.",
     "revision": {"maxRounds": 2},
     "streaming": {"mode": "windowed", "windowCharacters": 24}}
    """
