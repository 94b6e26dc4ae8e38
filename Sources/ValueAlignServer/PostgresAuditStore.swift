public import Foundation
import ValueAlignCore
import Logging
import PostgresNIO

/// The audit log in PostgreSQL (table `valuealign_decisions`, created if missing), through
/// PostgresNIO's connection pool. Used when the server is given a `postgres://` URL.
///
/// URL form: `postgres://user[:password]@host[:port]/database`. Only unencrypted connections
/// (`sslmode=disable`, the default) are supported: put PostgreSQL on loopback or a private
/// network, or behind a TLS tunnel.
public final class PostgresAuditStore: AuditStore {
    private let client: PostgresClient
    private let runner: Task<Void, Never>
    public let location: String

    private init(client: PostgresClient, location: String) {
        self.client = client
        self.location = location
        runner = Task { await client.run() }
    }

    /// Connects, creates the table if needed, and checks that the server answers within `timeout`.
    public static func open(url: String, timeout: Duration = .seconds(10)) async throws -> PostgresAuditStore {
        let (configuration, location) = try parse(url)
        var logger = Logger(label: "valuealign.audit.postgres")
        logger.logLevel = .error
        let store = PostgresAuditStore(client: PostgresClient(configuration: configuration, backgroundLogger: logger), location: location)
        do {
            try await withDeadline(timeout) {
                try await store.client.query("""
                    CREATE TABLE IF NOT EXISTS valuealign_decisions (
                        id BIGSERIAL PRIMARY KEY,
                        request_id TEXT NOT NULL,
                        key_id TEXT NOT NULL,
                        time TIMESTAMPTZ NOT NULL,
                        endpoint TEXT NOT NULL,
                        model TEXT,
                        action TEXT NOT NULL,
                        status INTEGER NOT NULL,
                        reasons TEXT[] NOT NULL,
                        input_vector DOUBLE PRECISION[],
                        output_vector DOUBLE PRECISION[],
                        revision_rounds INTEGER NOT NULL,
                        total_ms DOUBLE PRECISION NOT NULL,
                        upstream_ms DOUBLE PRECISION NOT NULL,
                        evaluator_ms DOUBLE PRECISION NOT NULL,
                        error TEXT,
                        prompt_text TEXT,
                        response_text TEXT
                    )
                    """)
                try await store.client.query("CREATE INDEX IF NOT EXISTS valuealign_decisions_time ON valuealign_decisions(time)")
            }
        } catch {
            await store.close()
            throw GuardConfigurationError.audit("cannot use PostgreSQL at \(location): \(String(reflecting: error).prefix(300))")
        }
        return store
    }

    /// The client configuration and a credential-free description of `url`.
    static func parse(_ url: String) throws(GuardConfigurationError) -> (PostgresClient.Configuration, String) {
        guard let c = URLComponents(string: url), ["postgres", "postgresql"].contains(c.scheme ?? ""), let host = c.host, !host.isEmpty else {
            throw .setting(name: "audit PostgreSQL URL", message: "expected postgres://user[:password]@host[:port]/database")
        }
        guard let user = c.user, !user.isEmpty else { throw .setting(name: "audit PostgreSQL URL", message: "missing the user name") }
        let database = c.path.hasPrefix("/") ? String(c.path.dropFirst()) : c.path
        guard !database.isEmpty else { throw .setting(name: "audit PostgreSQL URL", message: "missing the database name") }
        if let mode = c.queryItems?.first(where: { $0.name == "sslmode" })?.value, mode != "disable" {
            throw .setting(name: "audit PostgreSQL URL", message: "sslmode=\(mode) is not supported; only sslmode=disable")
        }
        let port = c.port ?? 5432
        let configuration = PostgresClient.Configuration(
            host: host, port: port, username: user, password: c.password?.removingPercentEncoding ?? c.password,
            database: database, tls: .disable)
        return (configuration, "postgres://\(user)@\(host):\(port)/\(database)")
    }

    public func record(_ r: AuditRecord) async throws {
        try await client.query("""
            INSERT INTO valuealign_decisions (request_id, key_id, time, endpoint, model, action, status, reasons, input_vector, output_vector,
                revision_rounds, total_ms, upstream_ms, evaluator_ms, error, prompt_text, response_text)
            VALUES (\(r.requestID), \(r.keyID), \(r.time), \(r.endpoint), \(r.model), \(r.action), \(r.status), \(r.reasons), \(r.inputVector),
                \(r.outputVector), \(r.revisionRounds), \(r.totalMilliseconds), \(r.upstreamMilliseconds), \(r.evaluatorMilliseconds), \(r.error),
                \(r.promptText), \(r.responseText))
            """)
    }

    public func query(_ q: AuditQuery) async throws -> [AuditRecord] {
        var conditions: [String] = []
        var binds = PostgresBindings()
        func placeholder() -> String { "$\(binds.count)" }
        if let since = q.since { binds.append(since); conditions.append("time >= \(placeholder())") }
        if let until = q.until { binds.append(until); conditions.append("time < \(placeholder())") }
        if let key = q.keyID { binds.append(key); conditions.append("key_id = \(placeholder())") }
        if let action = q.action { binds.append(action); conditions.append("action = \(placeholder())") }
        if let id = q.requestID { binds.append(id); conditions.append("request_id = \(placeholder())") }
        binds.append(max(0, q.limit))
        let sql = "SELECT * FROM valuealign_decisions \(conditions.isEmpty ? "" : "WHERE " + conditions.joined(separator: " AND ")) ORDER BY time DESC, id DESC LIMIT \(placeholder())"
        let rows = try await client.query(PostgresQuery(unsafeSQL: sql, binds: binds))
        var records: [AuditRecord] = []
        for try await row in rows {
            let r = row.makeRandomAccess()
            records.append(AuditRecord(
                requestID: try r["request_id"].decode(String.self), keyID: try r["key_id"].decode(String.self), time: try r["time"].decode(Date.self),
                endpoint: try r["endpoint"].decode(String.self), model: try r["model"].decode(String?.self), action: try r["action"].decode(String.self),
                status: Int(try r["status"].decode(Int32.self)), reasons: try r["reasons"].decode([String].self),
                inputVector: try r["input_vector"].decode([Double]?.self), outputVector: try r["output_vector"].decode([Double]?.self),
                revisionRounds: Int(try r["revision_rounds"].decode(Int32.self)), totalMilliseconds: try r["total_ms"].decode(Double.self),
                upstreamMilliseconds: try r["upstream_ms"].decode(Double.self), evaluatorMilliseconds: try r["evaluator_ms"].decode(Double.self),
                error: try r["error"].decode(String?.self), promptText: try r["prompt_text"].decode(String?.self),
                responseText: try r["response_text"].decode(String?.self)))
        }
        return records
    }

    public func purge(olderThan date: Date) async throws -> Int {
        let rows = try await client.query("WITH gone AS (DELETE FROM valuealign_decisions WHERE time < \(date) RETURNING 1) SELECT COUNT(*) FROM gone")
        for try await row in rows { return Int(try row.decode(Int64.self)) }
        return 0
    }

    public func count() async throws -> Int {
        let rows = try await client.query("SELECT COUNT(*) FROM valuealign_decisions")
        for try await row in rows { return Int(try row.decode(Int64.self)) }
        return 0
    }

    public func close() async {
        runner.cancel()
        _ = await runner.value
    }
}

/// Thrown by `withDeadline` when time ran out.
struct DeadlineExceeded: Error, CustomStringConvertible {
    var limit: Duration
    var description: String { "no answer within \(limit)" }
}

/// Runs `operation`, cancelling it and throwing `DeadlineExceeded` after `limit`.
func withDeadline<T: Sendable>(_ limit: Duration, _ operation: @escaping @Sendable () async throws -> T) async throws -> T {
    try await withThrowingTaskGroup(of: T?.self) { group in
        group.addTask { try await operation() }
        group.addTask {
            try await Task.sleep(for: limit)
            return nil
        }
        defer { group.cancelAll() }
        guard let first = try await group.next(), let value = first else { throw DeadlineExceeded(limit: limit) }
        return value
    }
}
