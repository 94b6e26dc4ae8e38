/// When and how long to wait before trying a request again.
///
/// Exponential back-off with jitter: the n-th retry (n from 0) waits a random time between half and
/// all of `min(baseDelay * 2^n, maxDelay)`, so that many clients failing together do not come back
/// together. A server's `Retry-After` on 429 or 503 replaces that delay, up to `maxRetryAfter`.
struct RetryPolicy: Sendable {
    var maxRetries: Int
    var baseDelay: Duration
    var maxDelay: Duration
    var maxRetryAfter: Duration

    /// Statuses worth another try: request time-out, conflict (OpenAI uses 409 for a lock held by a
    /// concurrent request), rate limit and server errors. Other 4xx are the client's fault and
    /// would fail the same way again.
    static func isRetryable(status: Int) -> Bool {
        status == 408 || status == 409 || status == 429 || (500...599).contains(status)
    }

    /// Whether a status's `Retry-After` is honoured.
    static func honoursRetryAfter(status: Int) -> Bool { status == 429 || status == 503 }

    /// The wait before retry number `retry` (0 for the first retry).
    func delay(beforeRetry retry: Int, retryAfter: Duration?) -> Duration {
        if let retryAfter { return min(max(retryAfter, .zero), maxRetryAfter) }
        let exponential = baseDelay.seconds * Double(1 << min(retry, 30))
        let capped = min(exponential, maxDelay.seconds)
        return .seconds(capped * Double.random(in: 0.5...1.0))
    }

    /// The delay a `Retry-After` header value asks for: a number of seconds (fractions accepted).
    /// The HTTP-date form is not read; exponential back-off applies then.
    static func parseRetryAfter(seconds value: String?) -> Duration? {
        guard let value, let seconds = Double(value.trimmingWhitespace), seconds.isFinite, seconds >= 0 else { return nil }
        return .seconds(seconds)
    }

    /// OpenAI's own `retry-after-ms` header, more precise than `Retry-After` when both are sent.
    static func parseRetryAfter(milliseconds value: String?) -> Duration? {
        guard let value, let ms = Double(value.trimmingWhitespace), ms.isFinite, ms >= 0 else { return nil }
        return .milliseconds(ms)
    }
}

extension String {
    var trimmingWhitespace: Substring {
        let isSpace: (Character) -> Bool = { $0 == " " || $0 == "\t" }
        let start = firstIndex { !isSpace($0) } ?? endIndex
        let end = lastIndex { !isSpace($0) }.map { index(after: $0) } ?? start
        return self[start..<max(start, end)]
    }
}
