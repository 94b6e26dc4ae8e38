import ArgumentParser
import Evaluators
import Foundation
import LanguageModels
import Logging
import ValueAlignBench
import ValueAlignServer
import ValueSpace

/// `valuealign serve`: the guard server, and `serve keygen` for its API keys.
struct ServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Run the guard: an OpenAI-compatible proxy that enforces a value policy, with audit log and dashboard.",
        discussion: "See docs/server.md. `valuealign serve --policy examples/guard-policy.json` serves the embedded model on 127.0.0.1:8080.",
        subcommands: [ServeRunCommand.self, KeygenCommand.self],
        defaultSubcommand: ServeRunCommand.self
    )
}

struct ServeRunCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Serve until SIGINT/SIGTERM (graceful shutdown: requests in flight finish)."
    )

    @OptionGroup var modelOptions: ModelOptions
    @OptionGroup var evaluatorOptions: EvaluatorOptions

    @Option(help: "Policy file (JSON or YAML); without one, everything is allowed and audited (monitor mode).")
    var policy: String?
    @Option(help: "Address to bind.") var host = "127.0.0.1"
    @Option(help: "Port (0: any free port).") var port = 8080
    @Option(help: "API keys file (hashes only; see `valuealign serve keygen`). Without one, client endpoints are open and admin endpoints closed.")
    var keys: String?
    @Option(help: "Data directory for the SQLite audit log.") var dataDir = "valuealign-data"
    @Option(help: "PostgreSQL URL for the audit log instead of SQLite (default: $VALUEALIGN_AUDIT_POSTGRES_URL).")
    var auditPostgresURL: String?
    @Option(help: "Delete audit rows older than this many days (default: keep all).") var retentionDays: Double?
    @Option(help: "Largest request body in bytes.") var maxBodyBytes = 1 << 20
    @Option(help: "Seconds to wait for the upstream's answer (or between streamed pieces).") var upstreamTimeout: Double = 120
    @Option(help: "max_tokens when a request gives none.") var defaultMaxTokens = 512
    @Option(help: "Most pairs per evaluator batch.") var batchSize = 32
    @Option(help: "Milliseconds a lone request waits for others to share its evaluator batch.") var batchDelayMs: Double = 2
    @Flag(help: "Keep prompt and answer text in the audit log (default: vectors, actions and reasons only).") var auditText = false
    @Flag(help: "Put prompt and answer text in the process log.") var logText = false
    @Option(help: "Log level: trace, debug, info, notice, warning, error.") var logLevel = "info"

    @Option(help: "Read the live answer's own activations as it is generated: 'probes' (needs --probes and a local model).") var monitor: String?
    @Option(help: "Probes file from `valuealign probe train` for --monitor probes (policy rules: output.probes).") var probes: String?

    func validate() throws {
        if let monitor {
            guard monitor == "probes" else { throw ValidationError("--monitor: only 'probes' is known, got '\(monitor)'") }
            guard probes != nil else { throw ValidationError("--monitor probes needs --probes FILE (from valuealign probe train)") }
            guard modelOptions.baseURL == nil else { throw ValidationError("--monitor probes reads a local model's activations; it cannot with --base-url") }
        }
        if let probes, !FileManager.default.fileExists(atPath: probes) { throw ValidationError("--probes: no such file '\(probes)'") }
        guard Logger.Level(rawValue: logLevel) != nil else { throw ValidationError("--log-level must be one of trace, debug, info, notice, warning, error") }
        guard upstreamTimeout > 0, batchDelayMs >= 0 else { throw ValidationError("--upstream-timeout must be > 0 and --batch-delay-ms >= 0") }
        if let retentionDays, retentionDays <= 0 { throw ValidationError("--retention-days must be > 0") }
    }

    func run() async throws {
        // Everything is validated before the model loads, so a typo fails in milliseconds.
        let guardPolicy = try policy.map { try GuardPolicy.load(contentsOf: $0) } ?? GuardPolicy.monitorOnly()
        let access = try keys.map { try AccessPolicy.load(contentsOf: $0) } ?? AccessPolicy()
        let configuration = GuardConfiguration(
            host: host, port: port, policy: guardPolicy, access: access, maxBodyBytes: maxBodyBytes,
            upstreamTimeout: .milliseconds(Int64(upstreamTimeout * 1000)), defaultMaxTokens: defaultMaxTokens, evaluatorBatchSize: batchSize,
            evaluatorBatchDelay: .microseconds(Int64(batchDelayMs * 1000)), storeText: auditText, logText: logText,
            retention: retentionDays.map { .seconds($0 * 86400) })
        try configuration.validate()
        var logger = Logger(label: "valuealign.serve")
        logger.logLevel = Logger.Level(rawValue: logLevel)!
        let postgresURL = auditPostgresURL ?? ProcessInfo.processInfo.environment["VALUEALIGN_AUDIT_POSTGRES_URL"]
        let audit = try await openAuditStore(dataDirectory: dataDir, postgresURL: postgresURL)
        if !guardPolicy.output.probeThresholds.isEmpty, monitor == nil {
            throw ValidationError("the policy has output.probes rules; run with --monitor probes --probes FILE")
        }
        let upstream: any ChatBackend
        if monitor != nil, let probes {
            let loaded = try modelOptions.loadLocal()
            let probeMonitor = try ProbeMonitor.load(probes, model: loaded.model, modelPath: loaded.path)
            logger.info("probe monitor: \(probeMonitor.monitoredValues.map(\.rawValue).joined(separator: ", ")) at layers \(probeMonitor.layers.sorted())")
            upstream = LocalChatBackend(loaded, observer: probeMonitor)
        } else {
            upstream = try modelOptions.makeBackend()
        }
        let evaluator = try evaluatorOptions.make()
        if access.isOpen { logger.warning("no API keys: every client request is accepted as 'anonymous'; admin endpoints are closed") }
        let server = try GuardServer(configuration: configuration, upstream: upstream, evaluator: evaluator, audit: audit, logger: logger)
        let summary = "model \(upstream.modelName), evaluator \(evaluator.name), policy \(guardPolicy.name), audit \(audit.location)"
        let host = self.host
        try await server.run { port in
            // Unbuffered, so that scripts waiting for this line see it at once.
            FileHandle.standardOutput.write(Data("valuealign guard on http://\(host):\(port) (\(summary))\n".utf8))
        }
        await audit.close()
    }
}

struct KeygenCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "keygen",
        abstract: "Make an API key: prints the key once, and adds its SHA-256 to the keys file."
    )

    @Option(help: "The key's id (what the audit log and the dashboard show).") var id: String
    @Flag(help: "An admin key (dashboard and audit endpoints) instead of a client key.") var admin = false
    @Option(help: "Client keys: sustained requests per minute (default: unlimited).") var requestsPerMinute: Double?
    @Option(help: "Client keys: requests that may come at once.") var burst: Int?
    @Option(help: "Keys file to add the entry to (created if missing); without it the entry is printed.") var keys: String?

    func validate() throws {
        guard !id.isEmpty else { throw ValidationError("--id must not be empty") }
        if let requestsPerMinute, requestsPerMinute <= 0 { throw ValidationError("--requests-per-minute must be > 0") }
        if let burst, burst < 1 { throw ValidationError("--burst must be >= 1") }
        if admin, requestsPerMinute != nil || burst != nil { throw ValidationError("admin keys have no rate limit") }
    }

    func run() throws {
        let key = AccessPolicy.newKey()
        let entry = AccessPolicy.Key(id: id, sha256: AccessPolicy.hash(key), requestsPerMinute: requestsPerMinute, burst: burst)
        if let keys {
            var access = FileManager.default.fileExists(atPath: keys) ? try AccessPolicy.load(contentsOf: keys) : AccessPolicy()
            guard !(access.keys + access.adminKeys).contains(where: { $0.id == id }) else { throw ValidationError("\(keys) already has a key with id '\(id)'") }
            access = admin ? AccessPolicy(keys: access.keys, adminKeys: access.adminKeys + [entry]) : AccessPolicy(keys: access.keys + [entry], adminKeys: access.adminKeys)
            try access.jsonData().write(to: URL(fileURLWithPath: keys), options: .atomic)
            FileHandle.standardError.write(Data("added \(admin ? "admin" : "client") key '\(id)' to \(keys); the key (shown once):\n".utf8))
        } else {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys]
            FileHandle.standardError.write(Data("entry for the \(admin ? "adminKeys" : "keys") list: \(String(decoding: try encoder.encode(entry), as: UTF8.self))\nthe key (shown once):\n".utf8))
        }
        print(key)
    }
}

/// `valuealign audit`: read, export and prune the guard's audit log.
struct AuditCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "audit",
        abstract: "Query and export the guard's audit log (JSONL or CSV), newest first.",
        discussion: "Reads the SQLite log in --data-dir, or PostgreSQL with --postgres-url / $VALUEALIGN_AUDIT_POSTGRES_URL."
    )

    @Option(help: "Data directory of the SQLite audit log.") var dataDir = "valuealign-data"
    @Option(help: "PostgreSQL URL (default: $VALUEALIGN_AUDIT_POSTGRES_URL).") var postgresURL: String?
    @Option(help: "Rows at or after this time (ISO 8601, a date, or unix seconds).") var since: String?
    @Option(help: "Rows before this time.") var until: String?
    @Option(help: "Only this key id.") var key: String?
    @Option(help: "Only this action: allow, flag, revise, block, error, measure.") var action: String?
    @Option(help: "Only this request id.") var requestID: String?
    @Option(help: "At most this many rows.") var limit = 1000
    @Option(help: "jsonl or csv.") var format = "jsonl"
    @Option(help: "Write here instead of standard output.") var out: String?
    @Option(help: "Delete rows older than this many days (and print how many), instead of exporting.") var purgeOlderThanDays: Double?
    @Flag(help: "Print the number of rows, instead of exporting.") var count = false

    func validate() throws {
        guard AuditExport.Format(rawValue: format) != nil else { throw ValidationError("--format must be jsonl or csv") }
        guard limit >= 1 else { throw ValidationError("--limit must be >= 1") }
        for (name, value) in [("--since", since), ("--until", until)] {
            if let value, parseDate(value) == nil { throw ValidationError("\(name): '\(value)' is not an ISO 8601 time, a date or unix seconds") }
        }
        if let purgeOlderThanDays, purgeOlderThanDays <= 0 { throw ValidationError("--purge-older-than-days must be > 0") }
    }

    func run() async throws {
        let url = postgresURL ?? ProcessInfo.processInfo.environment["VALUEALIGN_AUDIT_POSTGRES_URL"]
        if url == nil, !FileManager.default.fileExists(atPath: URL(fileURLWithPath: dataDir).appendingPathComponent("audit.sqlite").path) {
            throw ValidationError("no audit log in \(dataDir) (expected \(dataDir)/audit.sqlite); pass --data-dir or --postgres-url")
        }
        let store = try await openAuditStore(dataDirectory: dataDir, postgresURL: url)
        defer { Task { await store.close() } }
        if let days = purgeOlderThanDays {
            let removed = try await store.purge(olderThan: Date().addingTimeInterval(-days * 86400))
            print("deleted \(removed) rows older than \(days) days from \(store.location)")
            return
        }
        if count {
            print(try await store.count())
            return
        }
        let records = try await store.query(AuditQuery(
            since: since.flatMap(parseDate), until: until.flatMap(parseDate), keyID: key, action: action, requestID: requestID, limit: limit))
        let text = AuditExport.render(records, as: AuditExport.Format(rawValue: format)!)
        if let out {
            try text.write(toFile: out, atomically: true, encoding: .utf8)
            FileHandle.standardError.write(Data("wrote \(records.count) rows to \(out)\n".utf8))
        } else {
            FileHandle.standardOutput.write(Data(text.utf8))
        }
        await store.close()
    }
}

/// `valuealign bench serve`: the guard's added latency under load on loopback.
struct ServeBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Load-test the guard on loopback: requests/s and p50/p99 added latency against calling the upstream directly."
    )

    @OptionGroup var evaluatorOptions: EvaluatorOptions
    @Option(help: "Policy file (default: examples/guard-policy.json if present, else thresholds on both sides).") var policy: String?
    @Option(help: "Requests per phase (direct, then guarded).") var requests = 2000
    @Option(help: "Requests in flight at once.") var concurrency = 8
    @Option(help: "Seconds per phase at most.") var timeLimit: Double = 60
    @Option(help: "Milliseconds a lone request waits for others to share its evaluator batch.") var batchDelayMs: Double = 2
    @Option(help: "Requests per second, evenly spaced (open loop); default: as fast as the clients go.") var rate: Double?
    @Flag(help: "Print only the JSON line.") var json = false

    func validate() throws {
        if let rate, rate <= 0 { throw ValidationError("--rate must be > 0") }
        guard requests >= 1, concurrency >= 1, timeLimit > 0, batchDelayMs >= 0 else { throw ValidationError("--requests, --concurrency and --time-limit must be positive") }
    }

    func run() async throws {
        let defaultPolicy = "examples/guard-policy.json"
        let guardPolicy = try policy.map { try GuardPolicy.load(contentsOf: $0) }
            ?? (FileManager.default.fileExists(atPath: defaultPolicy) ? GuardPolicy.load(contentsOf: defaultPolicy)
                : GuardPolicy.decode(Data(#"{"input": {"thresholds": {"benevolence": {"min": -0.6}}}, "output": {"thresholds": {"power": {"max": 0.6}}}}"#.utf8), origin: "built-in"))
        var parameters = GuardBenchmark.Parameters(policy: guardPolicy)
        parameters.requests = requests
        parameters.concurrency = concurrency
        parameters.timeLimit = .milliseconds(Int64(timeLimit * 1000))
        parameters.evaluatorBatchDelay = .microseconds(Int64(batchDelayMs * 1000))
        parameters.rate = rate
        let evaluator = try evaluatorOptions.make()
        let report = try await GuardBenchmark(parameters).run(evaluator: evaluator)
        if !json {
            func f(_ x: Double) -> String { String(format: "%.2f", x) }
            print("guard load test on loopback: \(report.concurrency) concurrent clients\(rate.map { ", \(String(format: "%g", $0)) req/s offered" } ?? ""), evaluator \(report.evaluator), policy \(guardPolicy.name)")
            print("  direct to upstream: \(report.direct.requests) requests (\(report.direct.failures) failed) in \(f(report.direct.seconds)) s = \(f(report.direct.requestsPerSecond)) req/s; p50 \(f(report.direct.p50)) ms, p99 \(f(report.direct.p99)) ms")
            print("  through the guard:  \(report.guarded.requests) requests (\(report.guarded.failures) failed) in \(f(report.guarded.seconds)) s = \(f(report.guarded.requestsPerSecond)) req/s; p50 \(f(report.guarded.p50)) ms, p99 \(f(report.guarded.p99)) ms")
            print("  added latency: p50 \(f(report.addedP50)) ms, p99 \(f(report.addedP99)) ms")
            print("  evaluator compute (the batches that served each request; queueing not included): p50 \(f(report.evaluatorP50)) ms, p99 \(f(report.evaluatorP99)) ms; \(report.evaluatorBatches) batches, mean \(f(report.evaluatorMeanBatch)) pairs")
            print("  added latency excluding evaluator compute (queueing included): p50 \(f(report.overheadExcludingEvaluatorP50)) ms, p99 \(f(report.overheadExcludingEvaluatorP99)) ms (goal: p99 < 5 ms)")
            print("    of which waiting for the evaluator (queued, or held for a batch): p50 \(f(report.evaluatorWaitP50)) ms, p99 \(f(report.evaluatorWaitP99)) ms")
            print("  audit rows written: \(report.auditRows)")
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        print(String(decoding: try encoder.encode(report), as: UTF8.self))
    }
}
