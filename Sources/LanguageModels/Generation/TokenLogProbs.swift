/// One generated token's log-probability and the most likely alternatives at its position, as
/// OpenAI's `logprobs.content[i]` carries them.
///
/// Log-probabilities are of the model's own next-token distribution (temperature 1, before any
/// sampling filter), whatever the sampling parameters were: that is what judges read verdicts
/// from and what OpenAI-compatible servers report.
public struct TokenLogProb: Sendable, Codable, Equatable, Hashable {
    /// One candidate token at a position.
    public struct Alternative: Sendable, Codable, Equatable, Hashable {
        /// The token's text (lossy where a token is part of a multi-byte character: see `bytes`).
        public var token: String
        public var logProb: Double
        /// The token's UTF-8 bytes.
        public var bytes: [UInt8]
        public init(token: String, logProb: Double, bytes: [UInt8]) {
            self.token = token
            self.logProb = logProb
            self.bytes = bytes
        }
    }

    /// The token that was generated.
    public var token: String
    public var logProb: Double
    public var bytes: [UInt8]
    /// The `topLogProbs` most likely tokens at this position, most likely first.
    public var top: [Alternative]

    public init(token: String, logProb: Double, bytes: [UInt8], top: [Alternative]) {
        self.token = token
        self.logProb = logProb
        self.bytes = bytes
        self.top = top
    }
}

/// Most alternatives per position, as in OpenAI's API.
public let maxTopLogProbs = 20

/// The `count` largest entries of `row` as (index, value), largest first; ties by lower index.
func largestEntries(_ row: UnsafeBufferPointer<Float>, count: Int) -> [(index: Int, value: Float)] {
    guard count > 0 else { return [] }
    var best: [(index: Int, value: Float)] = []
    best.reserveCapacity(count + 1)
    for (i, v) in row.enumerated() {
        if best.count == count, let last = best.last, !(v > last.value) { continue }
        // insertion into a short sorted list
        var at = best.count
        while at > 0 && v > best[at - 1].value { at -= 1 }
        best.insert((i, v), at: at)
        if best.count > count { best.removeLast() }
    }
    return best
}
