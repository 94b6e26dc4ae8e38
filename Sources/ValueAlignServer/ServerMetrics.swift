import Foundation

/// Counters and histograms in Prometheus' text format (`GET /metrics`). Labels hold only
/// endpoint names, statuses, actions and value names: never keys, key ids or text.
final class ServerMetrics: @unchecked Sendable {
    private struct Histogram {
        var buckets: [Double]
        var counts: [Int]
        var sum = 0.0
        var count = 0
        init(buckets: [Double]) {
            self.buckets = buckets
            counts = [Int](repeating: 0, count: buckets.count)
        }
        mutating func observe(_ x: Double) {
            for (i, b) in buckets.enumerated() where x <= b { counts[i] += 1 }
            sum += x
            count += 1
        }
    }

    private let lock = NSLock()
    private var counters: [String: [String: Double]] = [:]  // name -> rendered labels -> value
    private var histograms: [String: [String: Histogram]] = [:]
    private var gauges: [String: Double] = [:]
    private let help: [String: (type: String, text: String)] = [
        "valuealign_requests_total": ("counter", "HTTP requests answered, by endpoint and status."),
        "valuealign_decisions_total": ("counter", "Guard decisions, by endpoint and action."),
        "valuealign_violations_total": ("counter", "Crossed thresholds, by stage, value and action."),
        "valuealign_auth_failures_total": ("counter", "Requests refused for a missing or wrong key."),
        "valuealign_rate_limited_total": ("counter", "Requests refused by a key's rate limit."),
        "valuealign_audit_failures_total": ("counter", "Audit rows that could not be written."),
        "valuealign_request_duration_seconds": ("histogram", "Time to answer, by endpoint (streams: to the last byte)."),
        "valuealign_upstream_duration_seconds": ("histogram", "Time spent waiting for the upstream model."),
        "valuealign_evaluator_batch_duration_seconds": ("histogram", "Time of one evaluator batch."),
        "valuealign_evaluator_batch_size": ("histogram", "Pairs per evaluator batch."),
        "valuealign_requests_in_flight": ("gauge", "Requests being answered now."),
    ]
    static let secondsBuckets = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60]
    static let sizeBuckets = [1.0, 2, 4, 8, 16, 32, 64, 128]

    static func labels(_ pairs: [(String, String)]) -> String {
        pairs.isEmpty ? "" : "{" + pairs.map { "\($0.0)=\"\(escapeLabel($0.1))\"" }.joined(separator: ",") + "}"
    }

    static func escapeLabel(_ s: String) -> String {
        s.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"").replacingOccurrences(of: "\n", with: "\\n")
    }

    func increment(_ name: String, _ labels: [(String, String)] = [], by amount: Double = 1) {
        let key = Self.labels(labels)
        lock.lock(); defer { lock.unlock() }
        counters[name, default: [:]][key, default: 0] += amount
    }

    func observe(_ name: String, _ value: Double, _ labels: [(String, String)] = [], buckets: [Double] = ServerMetrics.secondsBuckets) {
        let key = Self.labels(labels)
        lock.lock(); defer { lock.unlock() }
        histograms[name, default: [:]][key, default: Histogram(buckets: buckets)].observe(value)
    }

    func add(gauge name: String, _ delta: Double) {
        lock.lock(); defer { lock.unlock() }
        gauges[name, default: 0] += delta
    }

    func counter(_ name: String, _ labels: [(String, String)] = []) -> Double {
        lock.lock(); defer { lock.unlock() }
        return counters[name]?[Self.labels(labels)] ?? 0
    }

    /// Everything in the exposition format, names sorted.
    func render() -> String {
        lock.lock(); defer { lock.unlock() }
        var out = ""
        func header(_ name: String) {
            if let h = help[name] { out += "# HELP \(name) \(h.text)\n# TYPE \(name) \(h.type)\n" }
        }
        func number(_ x: Double) -> String { x == x.rounded() && abs(x) < 1e15 ? String(Int(x)) : String(x) }
        for name in counters.keys.sorted() {
            header(name)
            for (labels, value) in counters[name]!.sorted(by: { $0.key < $1.key }) { out += "\(name)\(labels) \(number(value))\n" }
        }
        for name in gauges.keys.sorted() {
            header(name)
            out += "\(name) \(number(gauges[name]!))\n"
        }
        for name in histograms.keys.sorted() {
            header(name)
            for (labels, h) in histograms[name]!.sorted(by: { $0.key < $1.key }) {
                let inner = labels.isEmpty ? "" : String(labels.dropFirst().dropLast()) + ","
                for (b, c) in zip(h.buckets, h.counts) { out += "\(name)_bucket{\(inner)le=\"\(b)\"} \(c)\n" }
                out += "\(name)_bucket{\(inner)le=\"+Inf\"} \(h.count)\n"
                out += "\(name)_sum\(labels) \(h.sum)\n\(name)_count\(labels) \(h.count)\n"
            }
        }
        return out
    }
}
