public import Foundation
public import Hummingbird
public import LanguageModels
public import Logging
import NIOCore
public import ValueSpace

/// The guard: an OpenAI-compatible HTTP server in front of an upstream model that checks the
/// user's input and the model's output against a `GuardPolicy`, acts on what it finds, and
/// writes every decision to the audit log.
///
/// Endpoints: `POST /v1/chat/completions` (JSON and SSE), `GET /v1/models`,
/// `POST /v1/values/evaluate`, `POST /get_reward` (OpenRLHF's remote reward model),
/// `GET /healthz`, `GET /metrics`, and for admin keys `GET /dashboard`, `GET /admin/audit`.
/// See docs/server.md.
public final class GuardServer: Sendable {
    public let configuration: GuardConfiguration
    public let upstream: any ChatBackend
    public let batcher: EvaluationBatcher
    public let audit: any AuditStore
    let logger: Logger
    let metrics = ServerMetrics()
    let limiter = RateLimiter()
    let sessions = SessionStore()
    let startTime = Date()

    /// - Parameters:
    ///   - upstream: the model that answers (embedded, local, or an OpenAI-compatible URL).
    ///   - evaluator: reads value vectors; shared by concurrent requests through an `EvaluationBatcher`.
    ///   - audit: where decisions go; the server does not close it.
    public init(configuration: GuardConfiguration, upstream: any ChatBackend, evaluator: any ValueEvaluator, audit: any AuditStore,
                logger: Logger = Logger(label: "valuealign.serve")) throws(GuardConfigurationError) {
        try configuration.validate()
        self.configuration = configuration
        self.upstream = upstream
        self.audit = audit
        self.logger = logger
        let metrics = self.metrics
        batcher = EvaluationBatcher(
            evaluator: evaluator, maxBatchSize: configuration.evaluatorBatchSize, maxDelay: configuration.evaluatorBatchDelay,
            observer: { size, seconds in
                metrics.observe("valuealign_evaluator_batch_duration_seconds", seconds)
                metrics.observe("valuealign_evaluator_batch_size", Double(size), buckets: ServerMetrics.sizeBuckets)
            })
    }

    var policy: GuardPolicy { configuration.policy }

    // MARK: - Application

    /// The Hummingbird application; `onRunning` gets the bound port once the server listens.
    public func makeApplication(onRunning: @escaping @Sendable (Int) async -> Void = { _ in }) -> some ApplicationProtocol {
        let router = Router(context: GuardContext.self)
        router.add(middleware: GuardMiddleware(server: self))
        router.post("/v1/chat/completions") { request, context in try await self.chatCompletions(request, context: context) }
        router.get("/v1/models") { _, _ in self.models() }
        router.post("/v1/values/evaluate") { request, context in try await self.evaluateValues(request, context: context) }
        router.post("/get_reward") { request, context in try await self.reward(request, context: context) }
        router.get("/healthz") { _, _ in self.health() }
        router.get("/metrics") { _, _ in
            Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                     body: .init(byteBuffer: ByteBuffer(string: self.metrics.render())))
        }
        router.get("/dashboard") { request, context in try await self.dashboard(request, context: context) }
        router.post("/dashboard/login") { request, context in try await self.dashboardLogin(request, context: context) }
        router.get("/admin/audit") { request, context in try await self.auditExport(request, context: context) }
        return Application(
            router: router,
            server: .http1(configuration: .init(idleTimeout: .nanoseconds(Int64(configuration.idleTimeout.seconds * 1e9)))),
            configuration: .init(address: .hostname(configuration.host, port: configuration.port), serverName: "valuealign-guard"),
            onServerRunning: { channel in await onRunning(channel.localAddress?.port ?? 0) },
            logger: logger)
    }

    /// Serves until SIGTERM or SIGINT, then finishes the requests in flight (graceful shutdown).
    /// Deletes audit rows beyond `retention` at start-up and hourly.
    public func run(onRunning: @escaping @Sendable (Int) async -> Void = { _ in }) async throws {
        let app = makeApplication(onRunning: onRunning)
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await app.runService() }
            group.addTask { await self.retentionLoop() }
            // The server ending (a signal) ends the retention loop too.
            _ = try await group.next()
            group.cancelAll()
        }
    }

    /// Runs until cancelled (when the server stops), so that the task group in `run` ends with the server.
    func retentionLoop() async {
        guard let retention = configuration.retention else {
            while !Task.isCancelled { try? await Task.sleep(for: .seconds(3600)) }
            return
        }
        while !Task.isCancelled {
            do {
                let removed = try await audit.purge(olderThan: Date().addingTimeInterval(-retention.seconds))
                if removed > 0 { logger.info("audit retention: deleted \(removed) rows") }
            } catch {
                logger.error("audit retention failed: \(error)")
            }
            try? await Task.sleep(for: .seconds(3600))
        }
    }

    // MARK: - Small endpoints

    func models() -> Response {
        json(["object": "list", "data": [["id": upstream.modelName, "object": "model", "created": Int(startTime.timeIntervalSince1970), "owned_by": "valuealign-guard"]]])
    }

    func health() -> Response {
        json(["status": "ok", "model": upstream.modelName, "evaluator": batcher.evaluator.name, "policy": policy.name,
              "audit": audit.location, "uptime_seconds": Int(Date().timeIntervalSince(startTime))])
    }

    // MARK: - Access

    /// The client key's id after checking the key and its rate limit.
    func authenticateClient(_ request: Request, context: GuardContext) throws(APIError) -> String {
        let access = configuration.access
        if access.isOpen { return "anonymous" }
        guard let presented = bearer(request) else {
            metrics.increment("valuealign_auth_failures_total")
            throw APIError(.unauthorized, "missing API key; send 'Authorization: Bearer <key>'", type: "authentication_error", code: "missing_api_key")
        }
        guard let key = access.client(presented) else {
            metrics.increment("valuealign_auth_failures_total")
            throw APIError(.unauthorized, "invalid API key", type: "authentication_error", code: "invalid_api_key")
        }
        if let wait = limiter.admit(key) {
            metrics.increment("valuealign_rate_limited_total")
            throw APIError(.tooManyRequests, "rate limit of \(key.requestsPerMinute.map { String(format: "%g", $0) } ?? "?") requests per minute reached for this key; retry in \(String(format: "%.1f", wait)) s",
                           type: "rate_limit_error", code: "rate_limit_exceeded", retryAfter: max(1, Int(wait.rounded(.up))))
        }
        return key.id
    }

    /// The admin key's id: from `Authorization: Bearer` or a dashboard session cookie.
    func authenticateAdmin(_ request: Request) throws(APIError) -> String {
        guard !configuration.access.adminKeys.isEmpty else {
            throw APIError(.forbidden, "no admin key is configured; add adminKeys to the keys file", type: "permission_error", code: "admin_disabled")
        }
        if let presented = bearer(request) {
            if let admin = configuration.access.admin(presented) { return admin.id }
            metrics.increment("valuealign_auth_failures_total")
            throw APIError(.unauthorized, "invalid admin key", type: "authentication_error", code: "invalid_api_key")
        }
        if let token = cookie(request, "va_session"), let id = sessions.adminID(for: token) { return id }
        throw APIError(.unauthorized, "this endpoint needs an admin key", type: "authentication_error", code: "missing_api_key")
    }

    func bearer(_ request: Request) -> String? {
        guard let header = request.headers[.authorization] else { return nil }
        let parts = header.split(separator: " ", maxSplits: 1)
        guard parts.count == 2, parts[0].lowercased() == "bearer" else { return nil }
        let key = parts[1].trimmingCharacters(in: .whitespaces)
        return key.isEmpty ? nil : key
    }

    func cookie(_ request: Request, _ name: String) -> String? {
        guard let header = request.headers[.cookie] else { return nil }
        for part in header.split(separator: ";") {
            let kv = part.trimmingCharacters(in: .whitespaces).split(separator: "=", maxSplits: 1)
            if kv.count == 2, kv[0] == name { return String(kv[1]) }
        }
        return nil
    }

    // MARK: - Bodies

    /// The whole body, within the size and time limits (413, 408).
    func body(_ request: Request) async throws -> Data {
        let limit = configuration.maxBodyBytes
        if let length = request.headers[.contentLength].flatMap(Int.init), length > limit {
            throw APIError(.contentTooLarge, "the request body has \(length) bytes; at most \(limit)", type: "invalid_request_error", code: "content_too_large")
        }
        let source = request.body
        do {
            let buffer = try await withDeadline(configuration.bodyTimeout) { try await source.collect(upTo: limit) }
            return Data(buffer.readableBytesView)
        } catch is DeadlineExceeded {
            throw APIError(.requestTimeout, "the request body did not arrive within \(Int(configuration.bodyTimeout.seconds)) s", type: "invalid_request_error", code: "request_timeout")
        } catch let error as HTTPError where error.status == .contentTooLarge {
            throw APIError(.contentTooLarge, "the request body is larger than \(limit) bytes", type: "invalid_request_error", code: "content_too_large")
        }
    }

    // MARK: - Evaluation

    /// Assessments through the shared batcher; adds the wait to the draft's timing; evaluator
    /// failures are 503s.
    func assess(_ pairs: [ValuePair], draft: AuditDraft) async throws -> [ValueAssessment] {
        let start = ContinuousClock.now
        defer { draft.timing.evaluator += (ContinuousClock.now - start).seconds }
        do {
            return try await batcher.evaluate(pairs)
        } catch is CancellationError {
            throw CancellationError()
        } catch {
            logger.error("value evaluator failed: \(error)")
            throw APIError(.serviceUnavailable, "the value evaluator failed; the request was not answered", type: "server_error", code: "evaluator_failed")
        }
    }

    /// POST /v1/values/evaluate: `{"pairs": [{"prompt": ..., "response": ...}]}` -> a vector,
    /// labels, distance to the target and the output check per pair.
    func evaluateValues(_ request: Request, context: GuardContext) async throws -> Response {
        let keyID = try authenticateClient(request, context: context)
        let draft = AuditDraft(AuditRecord(requestID: context.requestID, keyID: keyID, time: Date(), endpoint: "evaluate", action: "measure", status: 200))
        return try await audited(draft) {
            let object = try jsonObject(try await body(request))
            guard let raw = object["pairs"] else { throw APIError.invalid("missing required field 'pairs'", param: "pairs") }
            guard case let .array(items) = raw else { throw wrongType("pairs", "an array", raw) }
            guard !items.isEmpty, items.count <= configuration.maxPairsPerRequest else {
                throw APIError.invalid("'pairs' must hold 1 to \(configuration.maxPairsPerRequest) pairs, got \(items.count)", param: "pairs")
            }
            var pairs: [ValuePair] = []
            for (i, item) in items.enumerated() {
                guard case let .object(o) = item else { throw wrongType("pairs[\(i)]", "an object", item) }
                guard let prompt = try optionalString(o, "prompt", path: "pairs[\(i)]."), let response = try optionalString(o, "response", path: "pairs[\(i)].") else {
                    throw APIError.invalid("'pairs[\(i)]' needs string fields 'prompt' and 'response'", param: "pairs[\(i)]")
                }
                pairs.append(ValuePair(prompt: prompt, response: response))
            }
            let assessments = try await assess(pairs, draft: draft)
            draft.record.reasons = ["\(pairs.count) pairs"]
            let data: [[String: Any]] = assessments.enumerated().map { i, a in
                let check = policy.check(a.vector, stage: .output)
                return [
                    "index": i, "vector": named(a.vector.components),
                    "labels": Dictionary(uniqueKeysWithValues: zip(SchwartzValue.allCases.map(\.rawValue), a.labels)),
                    "distance": check.distance, "reward": -check.distance,
                    "output_check": ["action": check.action.rawValue, "violations": check.violations.map(\.description)],
                ]
            }
            return json(["object": "list", "evaluator": batcher.evaluator.name, "target": policy.target.name, "distance": policy.distance.rawValue, "data": data])
        }
    }

    /// POST /get_reward, as OpenRLHF's remote reward model: `{"query": [prompt + response],
    /// "prompts": [prompt]}` -> `{"rewards": [...], "scores": [...]}`, BaseAlign's reward
    /// -d(v, t) to the policy's target. The response is the query with its prompt prefix
    /// removed; without `prompts`, the whole query is the response.
    func reward(_ request: Request, context: GuardContext) async throws -> Response {
        let keyID = try authenticateClient(request, context: context)
        let draft = AuditDraft(AuditRecord(requestID: context.requestID, keyID: keyID, time: Date(), endpoint: "reward", action: "measure", status: 200))
        return try await audited(draft) {
            let object = try jsonObject(try await body(request))
            let queries = try stringArray(object, "query")
            let prompts = object["prompts"] == nil || object["prompts"] == .null ? [String](repeating: "", count: queries.count) : try stringArray(object, "prompts")
            guard !queries.isEmpty, queries.count <= configuration.maxPairsPerRequest else {
                throw APIError.invalid("'query' must hold 1 to \(configuration.maxPairsPerRequest) texts, got \(queries.count)", param: "query")
            }
            guard prompts.count == queries.count else {
                throw APIError.invalid("'prompts' has \(prompts.count) texts but 'query' has \(queries.count)", param: "prompts")
            }
            let responses = zip(queries, prompts).map { q, p in q.hasPrefix(p) ? String(q.dropFirst(p.count)) : q }
            // BaseAlign's reward -d(v, t): the distance is the one the policy's check computes,
            // with the policy's target and distance, for the prompt and the response.
            let pairs = zip(prompts, responses).map { ValuePair(prompt: $0, response: $1) }
            let start = ContinuousClock.now
            let rewards: [Double]
            do {
                rewards = try await batcher.evaluate(pairs).map { -policy.check($0.vector, stage: .output).distance }
            } catch {
                logger.error("reward evaluation failed: \(error)")
                throw APIError(.serviceUnavailable, "the value evaluator failed", type: "server_error", code: "evaluator_failed")
            }
            draft.timing.evaluator += (ContinuousClock.now - start).seconds
            draft.record.reasons = ["\(queries.count) texts"]
            return json(["rewards": rewards, "scores": rewards, "extra_logs": ["distance": rewards.map { -$0 }]])
        }
    }

    // MARK: - Audit

    /// Runs `body`, then writes the draft's record with the outcome (the error's status and
    /// message when it throws) before the reply goes out. A reply whose audit row cannot be
    /// written is not sent: the client gets a 503 instead.
    func audited(_ draft: AuditDraft, _ body: () async throws -> Response) async throws -> Response {
        var outcome: Result<Response, any Error>
        do { outcome = .success(try await body()) } catch { outcome = .failure(error) }
        if case let .failure(error) = outcome {
            let api = APIError.from(error)
            draft.fail(api)
            outcome = .failure(api)
        }
        draft.finishTiming()
        if await write(draft.record) == false, case .success = outcome {
            outcome = .failure(APIError(.serviceUnavailable, "the audit log is unavailable; the answer was withheld", type: "server_error", code: "audit_unavailable"))
        }
        var response = try outcome.get()
        response.headers[.init("X-Request-Id")!] = draft.record.requestID
        response.headers[.init("Server-Timing")!] = draft.timing.header(total: draft.record.totalMilliseconds / 1000)
        return response
    }

    /// Writes an audit row, retrying twice; false when it could not be written.
    func write(_ record: AuditRecord) async -> Bool {
        metrics.increment("valuealign_decisions_total", [("endpoint", record.endpoint), ("action", record.action)])
        if logger.logLevel <= .info { logDecision(record) }
        var stored = record
        if !configuration.storeText {
            stored.promptText = nil
            stored.responseText = nil
        }
        for attempt in 0..<3 {
            do {
                try await audit.record(stored)
                return true
            } catch {
                logger.error("audit write failed (attempt \(attempt + 1)): \(error)")
                try? await Task.sleep(for: .milliseconds(20 * (attempt + 1)))
            }
        }
        metrics.increment("valuealign_audit_failures_total")
        return false
    }

    /// One log line per decision: ids, action, status, time; text only with `logText`.
    func logDecision(_ record: AuditRecord) {
        var logMetadata: Logger.Metadata = [
            "request_id": .string(record.requestID), "key_id": .string(record.keyID), "endpoint": .string(record.endpoint),
            "action": .string(record.action), "status": .stringConvertible(record.status),
            "total_ms": .string(String(format: "%.1f", record.totalMilliseconds)),
        ]
        if configuration.logText {
            logMetadata["prompt"] = record.promptText.map { .string($0) }
            logMetadata["response"] = record.responseText.map { .string($0) }
        }
        logger.info("decision", metadata: logMetadata)
    }

    /// GET /admin/audit?limit=&action=&key=&since=&format=jsonl|csv (admin key).
    func auditExport(_ request: Request, context: GuardContext) async throws -> Response {
        _ = try authenticateAdmin(request)
        let q = request.uri.queryParameters
        var query = AuditQuery(limit: 1000)
        if let l = q["limit"] {
            guard let n = Int(l), (1...100_000).contains(n) else { throw APIError.invalid("'limit' must be an integer in 1...100000", param: "limit") }
            query.limit = n
        }
        query.action = q["action"].map(String.init)
        query.keyID = q["key"].map(String.init)
        query.requestID = q["request_id"].map(String.init)
        if let s = q["since"] {
            guard let date = parseDate(String(s)) else { throw APIError.invalid("'since' must be an ISO 8601 time or unix seconds", param: "since") }
            query.since = date
        }
        let format = AuditExport.Format(rawValue: q["format"].map(String.init) ?? "jsonl")
        guard let format else { throw APIError.invalid("'format' must be jsonl or csv", param: "format") }
        let records = try await audit.query(query)
        let text = AuditExport.render(records, as: format)
        return Response(status: .ok, headers: [.contentType: format == .csv ? "text/csv; charset=utf-8" : "application/x-ndjson"],
                        body: .init(byteBuffer: ByteBuffer(string: text)))
    }
}

/// A request's audit row while it is being answered, with its timing. Confined to the task
/// answering the request (and, for streams, the body writer that continues it).
final class AuditDraft: @unchecked Sendable {
    var record: AuditRecord
    var timing = Timing()
    let start = ContinuousClock.now

    init(_ record: AuditRecord) { self.record = record }

    func fail(_ error: APIError) {
        record.action = "error"
        record.status = Int(error.status.code)
        record.error = error.message
    }

    func finishTiming() {
        record.totalMilliseconds = (ContinuousClock.now - start).seconds * 1000
        record.upstreamMilliseconds = timing.upstream * 1000
        record.evaluatorMilliseconds = timing.evaluator * 1000
    }
}

/// Time a request spent waiting on the upstream model and on the evaluator (seconds).
struct Timing: Sendable {
    var upstream = 0.0
    var evaluator = 0.0

    /// `Server-Timing`: upstream, evaluator, and the guard's own share of the total.
    func header(total: Double) -> String {
        String(format: "upstream;dur=%.3f, evaluator;dur=%.3f, guard;dur=%.3f", upstream * 1000, evaluator * 1000, max(0, total - upstream - evaluator) * 1000)
    }
}

/// An ISO 8601 time or unix seconds.
public func parseDate(_ text: String) -> Date? {
    if let seconds = Double(text) { return Date(timeIntervalSince1970: seconds) }
    if let d = try? Date(text, strategy: .iso8601) { return d }
    if let d = try? Date(text + "T00:00:00Z", strategy: .iso8601) { return d }
    return nil
}

/// A JSON reply.
func json(_ object: Any, status: HTTPResponse.Status = .ok) -> Response {
    let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])) ?? Data("{}".utf8)
    return Response(status: status, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: data)))
}

/// Components keyed by value name.
func named(_ components: [Double]) -> [String: Double] {
    Dictionary(uniqueKeysWithValues: zip(SchwartzValue.allCases.map(\.rawValue), components))
}

/// The request context: Hummingbird's core plus the guard's request id.
public struct GuardContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    /// "req_" and 16 hex digits; in the `X-Request-Id` header and the audit row.
    public var requestID: String

    public init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        requestID = "req_" + String(format: "%016llx", UInt64.random(in: 0...UInt64.max))
    }
}

/// Outermost middleware: errors in OpenAI's shape, the request id header, request metrics.
struct GuardMiddleware: RouterMiddleware {
    let server: GuardServer

    func handle(_ request: Request, context: GuardContext, next: (Request, GuardContext) async throws -> Response) async throws -> Response {
        let start = ContinuousClock.now
        let endpoint = Self.endpoint(request.uri.path)
        server.metrics.add(gauge: "valuealign_requests_in_flight", 1)
        defer { server.metrics.add(gauge: "valuealign_requests_in_flight", -1) }
        var response: Response
        do {
            response = try await next(request, context)
        } catch {
            let api = APIError.from(error)
            if api.status == .internalServerError { server.logger.error("request \(context.requestID) failed: \(error)") }
            response = (try? api.response(from: request, context: context)) ?? Response(status: .internalServerError)
        }
        if response.headers[.init("X-Request-Id")!] == nil { response.headers[.init("X-Request-Id")!] = context.requestID }
        server.metrics.increment("valuealign_requests_total", [("endpoint", endpoint), ("status", String(response.status.code))])
        if !(response.headers[.contentType]?.hasPrefix("text/event-stream") ?? false) {
            server.metrics.observe("valuealign_request_duration_seconds", (ContinuousClock.now - start).seconds, [("endpoint", endpoint)])
        }
        return response
    }

    /// A bounded set of label values: known paths, or "other".
    static func endpoint(_ path: String) -> String {
        ["/v1/chat/completions", "/v1/models", "/v1/values/evaluate", "/get_reward", "/healthz", "/metrics", "/dashboard", "/dashboard/login", "/admin/audit"]
            .contains(path) ? path : "other"
    }
}
