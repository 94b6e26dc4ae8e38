public import Foundation
public import Hummingbird
public import LanguageModels
public import Logging
import NIOCore
import OpenAIBackend
public import ValueSpace

/// The guard: an OpenAI-compatible HTTP server in front of an upstream model that checks the
/// user's input and the model's output against a `GuardPolicy`, acts on what it finds, and
/// writes every decision to the audit log.
///
/// Endpoints: `POST /v1/chat/completions` (JSON and SSE), `GET /v1/models`,
/// `POST /v1/values/evaluate`, `POST /get_reward` (OpenRLHF's remote reward model),
/// `GET /healthz`, `GET /metrics`, and for admin keys `GET /dashboard`, `GET /admin/audit`.
/// See docs/server.md.
///
/// The parts: middleware (`GuardMiddleware.swift`) authenticates, limits bodies, sets request
/// ids and audits; `GuardPipeline` decides; the endpoint files turn requests into its calls and
/// its outcomes into OpenAI's replies.
public final class GuardServer: Sendable {
    public let configuration: GuardConfiguration
    public let upstream: any ChatBackend
    public let batcher: EvaluationBatcher
    public let audit: any AuditStore
    let logger: Logger
    let metrics = ServerMetrics()
    let sessions = SessionStore()
    let startTime = Date()
    let gate: Gatekeeper
    let auditWriter: AuditWriter
    let pipeline: GuardPipeline

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
        gate = Gatekeeper(access: configuration.access, limiter: RateLimiter(), sessions: sessions, metrics: metrics)
        auditWriter = AuditWriter(audit: audit, metrics: metrics, logger: logger, storeText: configuration.storeText, logText: configuration.logText)
        pipeline = GuardPipeline(policy: configuration.policy, upstream: upstream, evaluator: BatchedEvaluator(batcher),
                                 upstreamTimeout: configuration.upstreamTimeout, metrics: metrics, logger: logger)
    }

    var policy: GuardPolicy { configuration.policy }

    // MARK: - Application

    /// The routes and their middleware. Client endpoints sit behind the client-key gate, admin
    /// endpoints behind the admin gate; the audited ones open their audit row before the body is
    /// read, so that a body that is too large, too slow or malformed is audited too.
    public func makeRouter() -> Router<GuardContext> {
        let router = Router(context: GuardContext.self)
        router.add(middleware: RequestMiddleware(metrics: metrics, logger: logger))
        let body = BodyLimitMiddleware(maxBytes: configuration.maxBodyBytes, timeout: configuration.bodyTimeout)

        router.get("/v1/models") { _, _ in self.models() }
        router.get("/healthz") { _, _ in self.health() }
        router.get("/metrics") { _, _ in
            Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                     body: .init(byteBuffer: ByteBuffer(string: self.metrics.render())))
        }
        // The dashboard answers unauthenticated visitors with its login form, so it checks keys itself.
        router.get("/dashboard") { request, context in try await self.dashboard(request, context: context) }
        router.group("/dashboard/login").add(middleware: body).post { request, context in try await self.dashboardLogin(request, context: context) }

        let client = router.group().add(middleware: ClientAuthMiddleware(gate: gate))
        client.group("/v1/chat/completions").add(middleware: audited("chat", action: "allow", model: upstream.modelName)).add(middleware: body)
            .post { request, context in try await self.chatCompletions(request, context: context) }
        client.group("/v1/values/evaluate").add(middleware: audited("evaluate", action: "measure")).add(middleware: body)
            .post { request, context in try await self.evaluateValues(request, context: context) }
        client.group("/get_reward").add(middleware: audited("reward", action: "measure")).add(middleware: body)
            .post { request, context in try await self.reward(request, context: context) }

        router.group("/admin").add(middleware: AdminAuthMiddleware(gate: gate))
            .get("audit") { request, context in try await self.auditExport(request, context: context) }
        return router
    }

    func audited(_ endpoint: String, action: String, model: String? = nil) -> AuditMiddleware {
        AuditMiddleware(writer: auditWriter, endpoint: endpoint, model: model, action: action)
    }

    /// The Hummingbird application; `onRunning` gets the bound port once the server listens.
    public func makeApplication(onRunning: @escaping @Sendable (Int) async -> Void = { _ in }) -> some ApplicationProtocol {
        Application(
            router: makeRouter(),
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
        let list = ModelList(data: [.init(id: upstream.modelName, created: Int(startTime.timeIntervalSince1970), ownedBy: "valuealign-guard")])
        return Response(status: .ok, headers: [.contentType: "application/json"],
                        body: .init(byteBuffer: ByteBuffer(bytes: (try? wireEncoder.encode(list)) ?? Data("{}".utf8))))
    }

    func health() -> Response {
        json(["status": "ok", "model": upstream.modelName, "evaluator": batcher.evaluator.name, "policy": policy.name,
              "audit": audit.location, "uptime_seconds": Int(Date().timeIntervalSince(startTime))])
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
