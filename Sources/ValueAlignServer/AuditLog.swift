public import Foundation

/// One decision of the guard, as the audit log keeps it.
///
/// Text is stored only when the server is started with `storeText` (off by default): the
/// vectors, the action and the reasons say what happened without keeping what people wrote.
public struct AuditRecord: Sendable, Codable, Equatable {
    /// The request's id (also in the `X-Request-Id` reply header and the reply's `valuealign` field).
    public var requestID: String
    /// The API key's id (never the key), or "anonymous" when the server has no keys.
    public var keyID: String
    public var time: Date
    /// "chat", "chat.stream", "evaluate", "reward".
    public var endpoint: String
    public var model: String?
    /// allow, flag, revise, block, or error (the request failed: see `status` and `error`).
    public var action: String
    /// The HTTP status answered.
    public var status: Int
    /// The crossed thresholds ("output.power 0.76 > max 0.50 (block)") and notes ("revised in 1 round").
    public var reasons: [String]
    /// Ten components in the value order, or nil when that side was not evaluated.
    public var inputVector: [Double]?
    public var outputVector: [Double]?
    public var revisionRounds: Int
    public var totalMilliseconds: Double
    public var upstreamMilliseconds: Double
    public var evaluatorMilliseconds: Double
    public var error: String?
    public var promptText: String?
    public var responseText: String?

    public init(
        requestID: String, keyID: String, time: Date, endpoint: String, model: String? = nil, action: String, status: Int, reasons: [String] = [],
        inputVector: [Double]? = nil, outputVector: [Double]? = nil, revisionRounds: Int = 0, totalMilliseconds: Double = 0,
        upstreamMilliseconds: Double = 0, evaluatorMilliseconds: Double = 0, error: String? = nil, promptText: String? = nil, responseText: String? = nil
    ) {
        self.requestID = requestID
        self.keyID = keyID
        self.time = time
        self.endpoint = endpoint
        self.model = model
        self.action = action
        self.status = status
        self.reasons = reasons
        self.inputVector = inputVector
        self.outputVector = outputVector
        self.revisionRounds = revisionRounds
        self.totalMilliseconds = totalMilliseconds
        self.upstreamMilliseconds = upstreamMilliseconds
        self.evaluatorMilliseconds = evaluatorMilliseconds
        self.error = error
        self.promptText = promptText
        self.responseText = responseText
    }
}

/// Which audit rows to read; every filter is optional. Newest first.
public struct AuditQuery: Sendable, Equatable {
    public var since: Date?
    public var until: Date?
    public var keyID: String?
    public var action: String?
    public var requestID: String?
    public var limit: Int
    public init(since: Date? = nil, until: Date? = nil, keyID: String? = nil, action: String? = nil, requestID: String? = nil, limit: Int = 1000) {
        self.since = since
        self.until = until
        self.keyID = keyID
        self.action = action
        self.requestID = requestID
        self.limit = limit
    }
}

/// Where audit rows go: SQLite (`SQLiteAuditStore`) or PostgreSQL (`PostgresAuditStore`).
public protocol AuditStore: Sendable {
    /// Where the rows live, for logs ("sqlite:/data/audit.sqlite"), without credentials.
    var location: String { get }
    /// Writes one row durably before returning.
    func record(_ record: AuditRecord) async throws
    func query(_ query: AuditQuery) async throws -> [AuditRecord]
    /// Deletes rows older than `date`; returns how many.
    @discardableResult func purge(olderThan date: Date) async throws -> Int
    func count() async throws -> Int
    /// Releases connections; further calls fail.
    func close() async
}

/// Audit rows as JSON Lines or CSV.
public enum AuditExport {
    public enum Format: String, Sendable, CaseIterable { case jsonl, csv }

    static let encoder: JSONEncoder = {
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        e.dateEncodingStrategy = .custom { date, encoder in
            var c = encoder.singleValueContainer()
            try c.encode(timestamp(date))
        }
        return e
    }()

    /// ISO 8601 with milliseconds, UTC.
    public static func timestamp(_ date: Date) -> String {
        date.formatted(Date.ISO8601FormatStyle(includingFractionalSeconds: true, timeZone: TimeZone(identifier: "UTC")!))
    }

    /// One JSON object per line.
    public static func jsonl(_ records: [AuditRecord]) -> String {
        records.map { String(decoding: (try? encoder.encode($0)) ?? Data(), as: UTF8.self) + "\n" }.joined()
    }

    public static let csvColumns = [
        "request_id", "key_id", "time", "endpoint", "model", "action", "status", "reasons", "input_vector", "output_vector",
        "revision_rounds", "total_ms", "upstream_ms", "evaluator_ms", "error", "prompt_text", "response_text",
    ]

    /// RFC 4180 CSV with a header row; vectors as ten numbers separated by spaces, reasons by "; ".
    /// Text that users or models wrote (and anything else not made of our own numbers) is kept
    /// from running as a spreadsheet formula: a cell starting with =, +, -, @, a tab or a carriage
    /// return gets a leading apostrophe (OWASP's advice on CSV injection).
    public static func csv(_ records: [AuditRecord]) -> String {
        func text(_ s: String?) -> String? {
            guard let s, let first = s.first, "=+-@\t\r".contains(first) else { return s }
            return "'" + s
        }
        func field(_ s: String?) -> String {
            guard let s else { return "" }
            if s.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" || $0 == "\r" }) {
                return "\"" + s.replacingOccurrences(of: "\"", with: "\"\"") + "\""
            }
            return s
        }
        func vector(_ v: [Double]?) -> String? { v.map { $0.map { String(format: "%.4f", $0) }.joined(separator: " ") } }
        var out = csvColumns.joined(separator: ",") + "\r\n"
        for r in records {
            let row: [String?] = [
                text(r.requestID), text(r.keyID), timestamp(r.time), text(r.endpoint), text(r.model), text(r.action), String(r.status), text(r.reasons.joined(separator: "; ")),
                vector(r.inputVector), vector(r.outputVector), String(r.revisionRounds), String(format: "%.3f", r.totalMilliseconds),
                String(format: "%.3f", r.upstreamMilliseconds), String(format: "%.3f", r.evaluatorMilliseconds), text(r.error), text(r.promptText), text(r.responseText),
            ]
            out += row.map(field).joined(separator: ",") + "\r\n"
        }
        return out
    }

    public static func render(_ records: [AuditRecord], as format: Format) -> String {
        format == .jsonl ? jsonl(records) : csv(records)
    }
}

/// Opens the audit store the settings name: PostgreSQL when `postgresURL` is given, else SQLite
/// in `dataDirectory` (created if missing).
public func openAuditStore(dataDirectory: String, postgresURL: String?) async throws -> any AuditStore {
    if let postgresURL { return try await PostgresAuditStore.open(url: postgresURL) }
    return try SQLiteAuditStore(directory: dataDirectory)
}
