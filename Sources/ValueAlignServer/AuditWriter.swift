import Foundation
import ValueAlignCore
import Logging

/// Writes the guard's decisions to the audit store: the row, its metric and its log line. One
/// place for the retries and the `storeText` / `logText` rules, used by `AuditMiddleware` and by
/// windowed streams (which write their row when the stream ends).
struct AuditWriter: Sendable {
    let audit: any AuditStore
    let metrics: ServerMetrics
    let logger: Logger
    /// Keep prompt and answer text in the stored row.
    let storeText: Bool
    /// Put prompt and answer text in the log line.
    let logText: Bool

    /// Writes an audit row, retrying twice; false when it could not be written.
    func write(_ record: AuditRecord) async -> Bool {
        metrics.increment("valuealign_decisions_total", [("endpoint", record.endpoint), ("action", record.action)])
        if logger.logLevel <= .info { logDecision(record) }
        var stored = record
        if !storeText {
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
        if logText {
            logMetadata["prompt"] = record.promptText.map { .string($0) }
            logMetadata["response"] = record.responseText.map { .string($0) }
        }
        logger.info("decision", metadata: logMetadata)
    }
}

/// A request's audit row while it is being answered, with its timing. Confined to the task
/// answering the request (and, for streams, the body writer that continues it).
final class AuditDraft: @unchecked Sendable {
    var record: AuditRecord
    var timing = Timing()
    let start = ContinuousClock.now
    /// Set by a handler whose reply writes the row itself when it ends (a windowed stream), so
    /// that `AuditMiddleware` does not write it when the handler returns.
    var writtenByResponse = false

    init(_ record: AuditRecord) { self.record = record }

    /// Marks the row as a failed request with the status and message the client gets.
    func fail(status: Int, message: String) {
        record.action = "error"
        record.status = status
        record.error = message
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
    /// The evaluator's compute for this request's pairs (the batches that served them).
    var evaluator = 0.0
    /// The rest of the time waiting for assessments: queued behind other batches, or the
    /// batcher's deliberate wait for company. It is the guard's cost, not the evaluator's.
    var evaluatorWait = 0.0

    mutating func add(evaluation compute: Double, wall: Double) {
        evaluator += Swift.min(compute, wall)
        evaluatorWait += Swift.max(0, wall - compute)
    }

    /// `Server-Timing`: upstream, evaluator compute, evaluator wait (queue and batching), and the
    /// guard's own share of the total (everything but upstream and evaluator compute, the wait included).
    func header(total: Double) -> String {
        String(format: "upstream;dur=%.3f, evaluator;dur=%.3f, evaluator-wait;dur=%.3f, guard;dur=%.3f",
               upstream * 1000, evaluator * 1000, evaluatorWait * 1000, Swift.max(0, total - upstream - evaluator) * 1000)
    }
}
