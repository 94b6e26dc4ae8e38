public import Foundation
import GRDB

/// The audit log in a SQLite file (`audit.sqlite` in the data directory), through GRDB, in WAL
/// mode: readers (the dashboard, `valuealign audit`) never block the writer, and each row is
/// committed before `record` returns.
public final class SQLiteAuditStore: AuditStore {
    public let path: String
    private let pool: DatabasePool

    public var location: String { "sqlite:\(path)" }

    /// Opens or creates `directory/audit.sqlite`.
    public init(directory: String) throws {
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        } catch {
            throw GuardConfigurationError.audit("cannot create the data directory \(directory): \(error.localizedDescription)")
        }
        path = URL(fileURLWithPath: directory).appendingPathComponent("audit.sqlite").path
        var configuration = Configuration()
        // Writers wait for each other instead of failing (the CLI may purge while the server runs).
        configuration.busyMode = .timeout(5)
        configuration.prepareDatabase { db in
            // WAL with synchronous=NORMAL is durable across process crashes; a power loss can
            // drop the last transactions but never corrupts the file.
            try db.execute(sql: "PRAGMA synchronous = NORMAL")
        }
        do {
            pool = try DatabasePool(path: path, configuration: configuration)
            try Self.migrator.migrate(pool)
        } catch {
            throw GuardConfigurationError.audit("cannot open \(path): \(error)")
        }
    }

    static var migrator: DatabaseMigrator {
        var m = DatabaseMigrator()
        m.registerMigration("v1") { db in
            try db.execute(sql: """
                CREATE TABLE decisions (
                    id INTEGER PRIMARY KEY AUTOINCREMENT,
                    request_id TEXT NOT NULL,
                    key_id TEXT NOT NULL,
                    time REAL NOT NULL,
                    endpoint TEXT NOT NULL,
                    model TEXT,
                    action TEXT NOT NULL,
                    status INTEGER NOT NULL,
                    reasons TEXT NOT NULL,
                    input_vector TEXT,
                    output_vector TEXT,
                    revision_rounds INTEGER NOT NULL,
                    total_ms REAL NOT NULL,
                    upstream_ms REAL NOT NULL,
                    evaluator_ms REAL NOT NULL,
                    error TEXT,
                    prompt_text TEXT,
                    response_text TEXT
                );
                CREATE INDEX decisions_time ON decisions(time);
                CREATE INDEX decisions_request ON decisions(request_id);
                """)
        }
        return m
    }

    public func record(_ r: AuditRecord) async throws {
        try await pool.write { db in
            try db.execute(
                sql: """
                    INSERT INTO decisions (request_id, key_id, time, endpoint, model, action, status, reasons, input_vector, output_vector,
                        revision_rounds, total_ms, upstream_ms, evaluator_ms, error, prompt_text, response_text)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                    """,
                arguments: [
                    r.requestID, r.keyID, r.time.timeIntervalSince1970, r.endpoint, r.model, r.action, r.status, encodeJSON(r.reasons),
                    r.inputVector.map(encodeVector), r.outputVector.map(encodeVector), r.revisionRounds, r.totalMilliseconds,
                    r.upstreamMilliseconds, r.evaluatorMilliseconds, r.error, r.promptText, r.responseText,
                ])
        }
    }

    public func query(_ q: AuditQuery) async throws -> [AuditRecord] {
        var conditions: [String] = []
        var arguments: StatementArguments = []
        if let since = q.since { conditions.append("time >= ?"); arguments += [since.timeIntervalSince1970] }
        if let until = q.until { conditions.append("time < ?"); arguments += [until.timeIntervalSince1970] }
        if let key = q.keyID { conditions.append("key_id = ?"); arguments += [key] }
        if let action = q.action { conditions.append("action = ?"); arguments += [action] }
        if let id = q.requestID { conditions.append("request_id = ?"); arguments += [id] }
        let whereClause = conditions.isEmpty ? "" : "WHERE " + conditions.joined(separator: " AND ")
        arguments += [max(0, q.limit)]
        let sql = "SELECT * FROM decisions \(whereClause) ORDER BY time DESC, id DESC LIMIT ?"
        let bound = arguments
        return try await pool.read { db in
            try Row.fetchAll(db, sql: sql, arguments: bound).map { row in
                AuditRecord(
                    requestID: row["request_id"], keyID: row["key_id"], time: Date(timeIntervalSince1970: row["time"]), endpoint: row["endpoint"],
                    model: row["model"], action: row["action"], status: row["status"], reasons: decodeJSON(row["reasons"]) ?? [],
                    inputVector: decodeJSON(row["input_vector"]), outputVector: decodeJSON(row["output_vector"]),
                    revisionRounds: row["revision_rounds"], totalMilliseconds: row["total_ms"], upstreamMilliseconds: row["upstream_ms"],
                    evaluatorMilliseconds: row["evaluator_ms"], error: row["error"], promptText: row["prompt_text"], responseText: row["response_text"])
            }
        }
    }

    public func purge(olderThan date: Date) async throws -> Int {
        try await pool.write { db in
            try db.execute(sql: "DELETE FROM decisions WHERE time < ?", arguments: [date.timeIntervalSince1970])
            return db.changesCount
        }
    }

    public func count() async throws -> Int {
        try await pool.read { db in try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM decisions") ?? 0 }
    }

    public func close() async {
        try? pool.close()
    }
}

func encodeJSON<T: Encodable>(_ value: T) -> String {
    String(decoding: (try? JSONEncoder().encode(value)) ?? Data("null".utf8), as: UTF8.self)
}

/// A vector as a JSON array, without JSONEncoder (one per audit row on the hot path).
func encodeVector(_ v: [Double]) -> String { "[" + v.map { $0.isFinite ? "\($0)" : "0" }.joined(separator: ",") + "]" }

func decodeJSON<T: Decodable>(_ text: String?) -> T? {
    guard let text else { return nil }
    return try? JSONDecoder().decode(T.self, from: Data(text.utf8))
}
