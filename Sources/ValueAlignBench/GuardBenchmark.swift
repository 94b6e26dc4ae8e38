import AsyncHTTPClient
public import Foundation
import Hummingbird
import LanguageModels
import Logging
import NIOCore
import OpenAIBackend
public import ValueAlignServer
public import ValueSpace

/// A load test of the guard on loopback: an in-process OpenAI-compatible upstream that answers
/// at once, the guard in front of it (SQLite audit in a temporary folder), and concurrent clients
/// calling first the upstream directly, then the guard, with the same requests. Bounded by a
/// request count and a time limit.
///
/// The guard's added latency is the client-observed latency through the guard minus the median
/// direct latency; the evaluator's compute comes from the guard's `Server-Timing` header
/// (`evaluator;dur=`: the batches that served the request, without queueing or the batcher's
/// wait), so the overhead excluding evaluator compute is reported separately and includes any
/// time a request waited for the evaluator.
/// Clients, guard and upstream share this process and its cores: the figures include that
/// contention and are an upper bound for a guard on its own machine.
public struct GuardBenchmark: Sendable {
    public struct Parameters: Sendable {
        /// Requests per phase (direct, guarded).
        public var requests = 2000
        /// Requests in flight at once.
        public var concurrency = 8
        /// Each phase stops after this long even if `requests` were not all sent.
        public var timeLimit: Duration = .seconds(60)
        /// The upstream's fixed answer.
        public var answer = "Be kind to your neighbour and offer help where you can; small gestures matter."
        /// Policy for the guarded phase (thresholds on both sides make both evaluations run).
        public var policy: GuardPolicy
        public var evaluatorBatchDelay: Duration = .milliseconds(2)
        /// Requests per second, spread evenly (open loop); nil sends as fast as the workers can
        /// (closed loop: each worker sends its next request when the last is answered).
        public var rate: Double? = nil
        public init(policy: GuardPolicy) { self.policy = policy }
    }

    /// Latency figures of one phase, milliseconds.
    public struct Phase: Sendable, Codable {
        public var requests: Int
        public var failures: Int
        public var seconds: Double
        public var requestsPerSecond: Double
        public var p50: Double
        public var p99: Double
    }

    public struct Report: Sendable, Codable {
        public var direct: Phase
        public var guarded: Phase
        /// Guard latency minus the median direct latency.
        public var addedP50: Double
        public var addedP99: Double
        /// The evaluator's compute per request (its batches' time) as the guard measured it.
        public var evaluatorP50: Double
        public var evaluatorP99: Double
        /// Added latency minus the evaluator's time, per request.
        /// Of that overhead, the time spent waiting for the evaluator: queued behind other
        /// batches or held by the batcher for company (`evaluator-wait;dur=`).
        public var evaluatorWaitP50: Double
        public var evaluatorWaitP99: Double
        public var overheadExcludingEvaluatorP50: Double
        public var overheadExcludingEvaluatorP99: Double
        public var evaluator: String
        public var evaluatorBatches: Int
        public var evaluatorMeanBatch: Double
        public var auditRows: Int
        public var concurrency: Int
        public var rate: Double?
    }

    public let parameters: Parameters
    public init(_ parameters: Parameters) { self.parameters = parameters }

    public func run(evaluator: any ValueEvaluator) async throws -> Report {
        let answer = parameters.answer
        let router = Router()
        router.post("/v1/chat/completions") { request, _ -> Response in
            _ = try await request.body.collect(upTo: 1 << 20)
            let body = #"{"id":"b","object":"chat.completion","created":0,"model":"bench","choices":[{"index":0,"message":{"role":"assistant","content":"\#(answer)"},"finish_reason":"stop"}],"usage":{"prompt_tokens":12,"completion_tokens":16}}"#
            return Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(string: body)))
        }
        var quiet = Logger(label: "bench")
        quiet.logLevel = .error
        let upstreamPort = PortBox()
        let upstreamApp = Application(router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0)),
                                      onServerRunning: { await upstreamPort.set($0.localAddress?.port ?? 0) }, logger: quiet)
        let upstreamTask = Task { try await upstreamApp.run() }
        defer { upstreamTask.cancel() }
        let upstreamURL = "http://127.0.0.1:\(try await upstreamPort.wait())"

        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("valuealign-bench-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let audit = try SQLiteAuditStore(directory: directory)
        let client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: .init(
            redirectConfiguration: .disallow, connectionPool: .init(idleTimeout: .seconds(60), concurrentHTTP1ConnectionsPerHostSoftLimit: parameters.concurrency * 2)))
        let backend = try OpenAICompatibleBackend(baseURL: upstreamURL + "/v1", model: "bench", apiKey: nil, apiKeyEnvironmentVariable: nil,
                                                  timeout: .seconds(30), maxRetries: 0, maxConcurrentRequests: parameters.concurrency * 2, httpClient: client)
        let configuration = GuardConfiguration(host: "127.0.0.1", port: 0, policy: parameters.policy, evaluatorBatchDelay: parameters.evaluatorBatchDelay)
        let server = try GuardServer(configuration: configuration, upstream: backend, evaluator: evaluator, audit: audit, logger: quiet)
        let guardPort = PortBox()
        let guardApp = server.makeApplication { await guardPort.set($0) }
        let guardTask = Task { try await guardApp.run() }
        defer { guardTask.cancel() }
        let guardURL = "http://127.0.0.1:\(try await guardPort.wait())"

        let body = Data(#"{"model":"bench","messages":[{"role":"user","content":"How can I help my neighbour this week?"}],"max_tokens":64}"#.utf8)
        // Warm the connection pools of both paths.
        _ = try await load(client: client, url: upstreamURL + "/v1/chat/completions", body: body, count: 50)
        _ = try await load(client: client, url: guardURL + "/v1/chat/completions", body: body, count: 50)
        let direct = try await load(client: client, url: upstreamURL + "/v1/chat/completions", body: body, count: parameters.requests)
        let batchesBefore = await server.batcher.batches, pairsBefore = await server.batcher.pairs
        let guarded = try await load(client: client, url: guardURL + "/v1/chat/completions", body: body, count: parameters.requests)
        let batches = await server.batcher.batches - batchesBefore, pairs = await server.batcher.pairs - pairsBefore
        let rows = try await audit.count()
        try await client.shutdown()
        await audit.close()

        let directMedian = percentile(direct.latencies, 0.5)
        let added = guarded.latencies.map { $0 - directMedian }
        let overhead = zip(guarded.latencies, guarded.evaluator).map { $0 - directMedian - $1 }
        return Report(
            direct: direct.phase, guarded: guarded.phase,
            addedP50: percentile(added, 0.5), addedP99: percentile(added, 0.99),
            evaluatorP50: percentile(guarded.evaluator, 0.5), evaluatorP99: percentile(guarded.evaluator, 0.99),
            evaluatorWaitP50: percentile(guarded.evaluatorWait, 0.5), evaluatorWaitP99: percentile(guarded.evaluatorWait, 0.99),
            overheadExcludingEvaluatorP50: percentile(overhead, 0.5), overheadExcludingEvaluatorP99: percentile(overhead, 0.99),
            evaluator: evaluator.name, evaluatorBatches: batches, evaluatorMeanBatch: batches > 0 ? Double(pairs) / Double(batches) : 0,
            auditRows: rows, concurrency: parameters.concurrency, rate: parameters.rate)
    }

    struct Samples: Sendable {
        var latencies: [Double] = []
        var evaluator: [Double] = []
        var evaluatorWait: [Double] = []
        var failures = 0
        var seconds = 0.0
        var phase: Phase {
            Phase(requests: latencies.count, failures: failures, seconds: seconds, requestsPerSecond: Double(latencies.count) / max(seconds, 1e-9),
                  p50: percentile(latencies, 0.5), p99: percentile(latencies, 0.99))
        }
    }

    /// `count` requests from `concurrency` workers, stopping at the time limit.
    func load(client: HTTPClient, url: String, body: Data, count: Int) async throws -> Samples {
        let start = ContinuousClock.now
        let deadline = start + parameters.timeLimit
        let counter = Counter(limit: count, start: start, interval: parameters.rate.map { 1 / $0 })
        let results = try await withThrowingTaskGroup(of: Samples.self) { group in
            for _ in 0..<parameters.concurrency {
                group.addTask {
                    var samples = Samples()
                    while let slot = await counter.take(), ContinuousClock.now < deadline {
                        if let slot { try? await Task.sleep(until: slot, clock: .continuous) }
                        var request = HTTPClientRequest(url: url)
                        request.method = .POST
                        request.headers.add(name: "Content-Type", value: "application/json")
                        request.body = .bytes(ByteBuffer(bytes: body))
                        let t0 = ContinuousClock.now
                        do {
                            let response = try await client.execute(request, timeout: .seconds(30))
                            _ = try await response.body.collect(upTo: 1 << 20)
                            let ms = (ContinuousClock.now - t0).seconds * 1000
                            guard response.status.code == 200 else {
                                samples.failures += 1
                                continue
                            }
                            samples.latencies.append(ms)
                            let timing = response.headers.first(name: "Server-Timing")
                            samples.evaluator.append(Self.evaluatorMilliseconds(timing))
                            samples.evaluatorWait.append(Self.evaluatorMilliseconds(timing, metric: "evaluator-wait"))
                        } catch {
                            samples.failures += 1
                        }
                    }
                    return samples
                }
            }
            var all = Samples()
            for try await s in group {
                all.latencies += s.latencies
                all.evaluator += s.evaluator
                all.evaluatorWait += s.evaluatorWait
                all.failures += s.failures
            }
            return all
        }
        var samples = results
        samples.seconds = (ContinuousClock.now - start).seconds
        return samples
    }

    /// `<metric>;dur=X` from a Server-Timing header (default `evaluator`); 0 when absent (direct calls).
    static func evaluatorMilliseconds(_ header: String?, metric: String = "evaluator") -> Double {
        guard let header else { return 0 }
        for part in header.split(separator: ",") {
            let fields = part.trimmingCharacters(in: .whitespaces).split(separator: ";")
            if fields.first.map(String.init) == metric, let dur = fields.dropFirst().first(where: { $0.hasPrefix("dur=") }) {
                return Double(dur.dropFirst(4)) ?? 0
            }
        }
        return 0
    }
}

/// The q-quantile by nearest rank.
func percentile(_ values: [Double], _ q: Double) -> Double {
    guard !values.isEmpty else { return .nan }
    let sorted = values.sorted()
    return sorted[min(sorted.count - 1, max(0, Int((q * Double(sorted.count)).rounded(.up)) - 1))]
}

/// Hands out at most `limit` tickets; with an interval, each carries its start time.
actor Counter {
    private var given = 0
    private let limit: Int
    private let start: ContinuousClock.Instant
    private let interval: Double?
    init(limit: Int, start: ContinuousClock.Instant, interval: Double?) {
        self.limit = limit
        self.start = start
        self.interval = interval
    }
    /// nil when all tickets are gone; otherwise the time to send at (nil: now).
    func take() -> ContinuousClock.Instant?? {
        guard given < limit else { return nil }
        defer { given += 1 }
        guard let interval else { return .some(nil) }
        return .some(start + .microseconds(Int64(Double(given) * interval * 1e6)))
    }
}

/// The port a server bound, once it listens.
actor PortBox {
    private var port: Int?
    private var waiters: [CheckedContinuation<Int, Never>] = []
    func set(_ p: Int) {
        port = p
        for w in waiters { w.resume(returning: p) }
        waiters = []
    }
    func wait() async throws -> Int {
        if let port { return port }
        return await withCheckedContinuation { waiters.append($0) }
    }
}
