import Foundation
import Hummingbird
import HummingbirdTesting

/// One request as the fake server received it.
struct ReceivedRequest: Sendable {
    var method: String
    var path: String
    var authorization: String?
    var accept: String?
    var body: Data

    /// The JSON body as a dictionary (empty when the body is not a JSON object).
    var json: [String: Any] {
        (try? JSONSerialization.jsonObject(with: body)) as? [String: Any] ?? [:]
    }
}

/// What the fake server saw: every request, and how many were in flight at most.
actor ServerLog {
    private(set) var requests: [ReceivedRequest] = []
    private(set) var inFlight = 0
    private(set) var maxInFlight = 0
    /// Set when writing a streamed reply failed because the client went away.
    private(set) var streamWriteFailed = false

    /// Records `request` and returns its 1-based number.
    func begin(_ request: ReceivedRequest) -> Int {
        requests.append(request)
        inFlight += 1
        maxInFlight = max(maxInFlight, inFlight)
        return requests.count
    }

    func end() { inFlight -= 1 }

    private var released = false

    /// Lets handlers waiting in `hold` go on (the test got what it waited for).
    func release() { released = true }

    /// Waits until `release()` or `limit`, so that a slow handler ends as soon as the test is done
    /// with it instead of holding up the server's shutdown.
    func hold(atMost limit: Duration) async {
        let deadline = ContinuousClock.now + limit
        while !released, ContinuousClock.now < deadline { try? await Task.sleep(for: .milliseconds(5)) }
    }
    func noteStreamWriteFailed() { streamWriteFailed = true }
    var count: Int { requests.count }
}

/// How the fake server answers request number `attempt` (1-based) to `/v1/chat/completions`.
typealias ChatResponder = @Sendable (_ request: ReceivedRequest, _ attempt: Int, _ log: ServerLog) async throws -> Response

/// An OpenAI-compatible server in this process on 127.0.0.1 and an ephemeral port, whose chat
/// replies come from `respond`; `body` gets the base URL (`http://127.0.0.1:PORT/v1`) and the log.
func withFakeOpenAIServer<T: Sendable>(
    models: [String] = ["fake-model"],
    respond: @escaping ChatResponder,
    _ body: @Sendable (_ baseURL: String, _ log: ServerLog) async throws -> T
) async throws -> T {
    let log = ServerLog()
    let router = Router()
    router.post("/v1/chat/completions") { request, _ -> Response in
        let received = try await ReceivedRequest(request)
        let attempt = await log.begin(received)
        do {
            let response = try await respond(received, attempt, log)
            await log.end()
            return response
        } catch {
            await log.end()
            throw error
        }
    }
    router.get("/v1/models") { request, _ -> Response in
        _ = await log.begin(try await ReceivedRequest(request))
        await log.end()
        let list = models.map { #"{"id": "\#($0)", "object": "model", "owned_by": "test"}"# }.joined(separator: ", ")
        return .json(#"{"object": "list", "data": [\#(list)]}"#)
    }
    var app = Application(router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0)))
    app.logger.logLevel = .warning  // not one "server started" line per test

    return try await app.test(.live) { client in
        guard let port = client.port else { throw FakeServerError.noPort }
        return try await body("http://127.0.0.1:\(port)/v1", log)
    }
}

enum FakeServerError: Error { case noPort, cutOnPurpose }

extension ReceivedRequest {
    init(_ request: Request) async throws {
        let buffer = try await request.body.collect(upTo: 1 << 20)
        self.init(
            method: request.method.rawValue, path: request.uri.path,
            authorization: request.headers[.authorization], accept: request.headers[.accept],
            body: Data(buffer.readableBytesView))
    }
}

extension Response {
    /// A JSON reply with `status` and extra header fields.
    static func json(_ text: String, status: Int = 200, headers extra: [(String, String)] = []) -> Response {
        var headers: HTTPFields = [.contentType: "application/json"]
        for (name, value) in extra { headers[.init(name)!] = value }
        return Response(status: .init(code: status), headers: headers, body: .init(byteBuffer: ByteBuffer(string: text)))
    }

    /// An OpenAI-shaped chat completion.
    static func completion(
        _ content: String, finishReason: String? = "stop", usage: (prompt: Int, completion: Int)? = (11, 7)
    ) -> Response {
        var reply: [String: Any] = [
            "id": "chatcmpl-test", "object": "chat.completion", "created": 0, "model": "fake-model",
            "choices": [["index": 0, "message": ["role": "assistant", "content": content], "finish_reason": finishReason.map { $0 as Any } ?? NSNull()]],
        ]
        if let usage { reply["usage"] = ["prompt_tokens": usage.prompt, "completion_tokens": usage.completion] }
        let data = try! JSONSerialization.data(withJSONObject: reply)
        return .json(String(decoding: data, as: UTF8.self))
    }

    /// OpenAI's error shape.
    static func openAIError(_ status: Int, message: String, type: String, headers: [(String, String)] = []) -> Response {
        .json(#"{"error": {"message": "\#(message)", "type": "\#(type)", "param": null, "code": null}}"#, status: status, headers: headers)
    }

    /// A `text/event-stream` reply written in the given byte pieces, `pause` apart, so that the
    /// client receives lines split wherever the pieces split them. `cut` ends the connection
    /// abruptly after the pieces instead of finishing the body.
    /// With `holdAfter`, the server goes silent after that many pieces until `log.release()`.
    static func eventStream(
        _ pieces: [[UInt8]], pause: Duration = .milliseconds(2), cut: Bool = false, log: ServerLog? = nil, holdAfter: Int? = nil
    ) -> Response {
        Response(
            status: .ok, headers: [.contentType: "text/event-stream", .cacheControl: "no-cache"],
            body: ResponseBody { writer in
                do {
                    for (index, piece) in pieces.enumerated() {
                        if index == holdAfter { await log?.hold(atMost: .seconds(3)) }
                        try await writer.write(ByteBuffer(bytes: piece))
                        try await Task.sleep(for: pause)
                    }
                } catch {
                    await log?.noteStreamWriteFailed()
                    throw error
                }
                if cut { throw FakeServerError.cutOnPurpose }
                try await writer.finish(nil)
            })
    }
}

/// `data: {chunk}` events for `pieces` of an answer, in OpenAI's chunk shape, ending with a
/// finish reason and `[DONE]`.
func sseEvents(for pieces: [String], done: Bool = true) -> String {
    func chunk(_ delta: [String: Any], finish: String?) -> String {
        let object: [String: Any] = [
            "id": "chatcmpl-test", "object": "chat.completion.chunk", "created": 0, "model": "fake-model",
            "choices": [["index": 0, "delta": delta, "finish_reason": finish.map { $0 as Any } ?? NSNull()]],
        ]
        let data = try! JSONSerialization.data(withJSONObject: object)
        return "data: " + String(decoding: data, as: UTF8.self) + "\n\n"
    }
    var text = chunk(["role": "assistant"], finish: nil)
    for piece in pieces { text += chunk(["content": piece], finish: nil) }
    if done { text += chunk([:], finish: "stop") + "data: [DONE]\n\n" }
    return text
}

/// `text`'s bytes cut into pieces of `size` bytes (the last may be shorter).
func splitBytes(_ text: String, every size: Int) -> [[UInt8]] {
    let bytes = Array(text.utf8)
    return stride(from: 0, to: bytes.count, by: size).map { Array(bytes[$0..<min($0 + size, bytes.count)]) }
}
