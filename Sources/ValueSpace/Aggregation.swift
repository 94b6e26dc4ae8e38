import ValueAlignCore
import Foundation

/// Settings of a percentile bootstrap: how many resamples, the interval's level, the seed.
/// The same settings and inputs always give the same interval.
public struct BootstrapParameters: Sendable, Codable, Equatable {
    public var resamples: Int
    /// Two-sided confidence level, in (0, 1).
    public var level: Double
    public var seed: UInt64

    public init(resamples: Int = 2000, level: Double = 0.95, seed: UInt64 = 0) {
        self.resamples = resamples
        self.level = level
        self.seed = seed
    }

    public func validate() throws(ValueSpaceError) {
        guard resamples >= 1 else { throw .invalidArgument("bootstrap resamples must be at least 1, got \(resamples)") }
        guard level > 0 && level < 1 else { throw .invalidArgument("confidence level must be in (0, 1), got \(level)") }
    }
}

/// A mean with its bootstrap confidence interval.
public struct Estimate: Sendable, Codable, Equatable {
    /// The sample mean.
    public var value: Double
    public var lower: Double
    public var upper: Double
    public var level: Double
    /// Samples (or pairs) behind the estimate.
    public var count: Int

    public init(value: Double, lower: Double, upper: Double, level: Double, count: Int) {
        self.value = value
        self.lower = lower
        self.upper = upper
        self.level = level
        self.count = count
    }

    public var interval: ConfidenceInterval { ConfidenceInterval(lower: lower, upper: upper) }
    /// Whether the interval lies wholly on one side of zero: for a change in distance, a change
    /// the data support at this level.
    public var excludesZero: Bool { lower > 0 || upper < 0 }

    /// "0.412 [0.380, 0.447]".
    public func formatted(digits: Int = 3) -> String {
        "\(format(value, digits)) [\(format(lower, digits)), \(format(upper, digits))]"
    }
}

/// Turns many assessed vectors into summaries with percentile-bootstrap confidence intervals:
/// a measured profile, the mean distance to a target, and the change of that distance between
/// two runs over the same prompts.
public enum ValueAggregation {
    /// The measured profile of `vectors`: per value the mean, with a percentile bootstrap CI
    /// (rows are resampled whole, so the ten intervals come from the same resamples).
    public static func measuredProfile(
        name: String, vectors: [ValueVector], bootstrap: BootstrapParameters = BootstrapParameters(),
        source: String? = nil, notes: String? = nil
    ) throws(ValueSpaceError) -> ValueProfile {
        guard !vectors.isEmpty else { throw .invalidArgument("no vectors to aggregate for profile '\(name)'") }
        let k = SchwartzValue.allCases.count
        let estimates = try bootstrapMeans(vectors.map(\.components), dimensions: k, parameters: bootstrap)
        var intervals: [SchwartzValue: ConfidenceInterval] = [:]
        for v in SchwartzValue.allCases {
            // Clamped only against rounding: means of values in [-1, 1] stay in [-1, 1].
            let e = estimates[v.index]
            intervals[v] = ConfidenceInterval(lower: clamp(e.lower), upper: clamp(e.upper))
        }
        let means = estimates.map { clamp($0.value) }
        return ValueProfile(
            name: name, kind: .measured, vector: ValueVector(unchecked: means), sampleCount: vectors.count,
            confidenceLevel: bootstrap.level, intervals: intervals, source: source, notes: notes)
    }

    /// The mean of `samples` with its percentile bootstrap CI.
    public static func mean(_ samples: [Double], bootstrap: BootstrapParameters = BootstrapParameters()) throws(ValueSpaceError) -> Estimate {
        guard !samples.isEmpty else { throw .invalidArgument("no samples to average") }
        return try bootstrapMeans(samples.map { [$0] }, dimensions: 1, parameters: bootstrap)[0]
    }

    /// The mean distance from `vectors` to `target` with its bootstrap CI.
    public static func meanDistance(
        _ vectors: [ValueVector], to target: ValueVector, metric: ValueDistance = .basealign,
        bootstrap: BootstrapParameters = BootstrapParameters()
    ) throws(ValueSpaceError) -> Estimate {
        guard !vectors.isEmpty else { throw .invalidArgument("no vectors to measure") }
        return try mean(vectors.map { metric.distance($0, to: target) }, bootstrap: bootstrap)
    }

    /// The change in mean distance to `target` from `before` to `after` (after minus before;
    /// negative means closer), with a bootstrap CI over prompts. `before[i]` and `after[i]` must
    /// answer the same prompt (see `pairByPrompt`); pairs are resampled together, which is what
    /// makes the interval much narrower than comparing two independent means.
    public static func distanceChange(
        before: [ValueVector], after: [ValueVector], to target: ValueVector, metric: ValueDistance = .basealign,
        bootstrap: BootstrapParameters = BootstrapParameters()
    ) throws(ValueSpaceError) -> Estimate {
        guard before.count == after.count else {
            throw .invalidArgument("paired comparison needs as many vectors after (\(after.count)) as before (\(before.count))")
        }
        guard !before.isEmpty else { throw .invalidArgument("no pairs to compare") }
        let differences = zip(before, after).map { metric.distance($1, to: target) - metric.distance($0, to: target) }
        return try mean(differences, bootstrap: bootstrap)
    }

    /// Pairs two runs by prompt text: the k-th occurrence of a prompt in `before` goes with its
    /// k-th occurrence in `after`, in `before`'s order. Items without a partner are counted.
    public static func pairByPrompt(
        before: [(prompt: String, vector: ValueVector)], after: [(prompt: String, vector: ValueVector)]
    ) -> (before: [ValueVector], after: [ValueVector], unmatched: Int) {
        var queues: [String: [ValueVector]] = [:]
        for item in after { queues[item.prompt, default: []].append(item.vector) }
        var used: [String: Int] = [:]
        var b: [ValueVector] = [], a: [ValueVector] = []
        for item in before {
            let k = used[item.prompt, default: 0]
            guard let queue = queues[item.prompt], k < queue.count else { continue }
            used[item.prompt] = k + 1
            b.append(item.vector)
            a.append(queue[k])
        }
        let unmatched = (before.count - b.count) + (after.count - a.count)
        return (b, a, unmatched)
    }

    /// The ratio of perplexities after / before on the same text, exp(NLL_a / n - NLL_b / n), with
    /// a percentile bootstrap interval over the text's windows resampled in pairs (the same window
    /// before and after). `before[i]` and `after[i]` must be the same window.
    public static func perplexityRatio(
        before: [PerplexityWindow], after: [PerplexityWindow], bootstrap parameters: BootstrapParameters = BootstrapParameters()
    ) throws(ValueSpaceError) -> Estimate {
        try parameters.validate()
        guard !before.isEmpty, before.count == after.count, zip(before, after).allSatisfy({ $0.tokens == $1.tokens && $0.tokens > 0 }) else {
            throw .invalidArgument("the perplexity windows before (\(before.count)) and after (\(after.count)) are not the same text")
        }
        func ratio(_ indices: some Sequence<Int>) -> Double {
            var a = 0.0, b = 0.0, n = 0
            for i in indices {
                a += after[i].nll
                b += before[i].nll
                n += before[i].tokens
            }
            return exp((a - b) / Double(n))
        }
        var generator = SplitMix64(seed: parameters.seed &+ SplitMix64.increment)
        let count = before.count
        let replicates = (0..<parameters.resamples).map { _ in ratio((0..<count).map { _ in generator.index(below: count) }) }.sorted()
        let alpha = 1 - parameters.level
        return Estimate(value: ratio(0..<count), lower: quantile(replicates, alpha / 2), upper: quantile(replicates, 1 - alpha / 2),
                        level: parameters.level, count: count)
    }

    /// Per dimension: the mean of `rows` and its percentile interval over resampled rows.
    static func bootstrapMeans(_ rows: [[Double]], dimensions k: Int, parameters: BootstrapParameters) throws(ValueSpaceError) -> [Estimate] {
        try parameters.validate()
        let n = rows.count
        var means = [Double](repeating: 0, count: k)
        for row in rows { for j in 0..<k { means[j] += row[j] } }
        means = means.map { $0 / Double(n) }
        var replicates = [[Double]](repeating: [Double](repeating: 0, count: parameters.resamples), count: k)
        // Offset by one increment: the stream bootstrap intervals have always been drawn from.
        var generator = SplitMix64(seed: parameters.seed &+ SplitMix64.increment)
        var sums = [Double](repeating: 0, count: k)
        for b in 0..<parameters.resamples {
            for j in 0..<k { sums[j] = 0 }
            for _ in 0..<n {
                let row = rows[generator.index(below: n)]
                for j in 0..<k { sums[j] += row[j] }
            }
            for j in 0..<k { replicates[j][b] = sums[j] / Double(n) }
        }
        let alpha = 1 - parameters.level
        return (0..<k).map { j in
            let sorted = replicates[j].sorted()
            return Estimate(
                value: means[j], lower: quantile(sorted, alpha / 2), upper: quantile(sorted, 1 - alpha / 2),
                level: parameters.level, count: n)
        }
    }

    /// Linear interpolation between order statistics (type 7, as numpy's default).
    static func quantile(_ sorted: [Double], _ q: Double) -> Double {
        let position = q * Double(sorted.count - 1)
        let i = Int(position.rounded(.down)), frac = position - Double(i)
        return i + 1 < sorted.count ? sorted[i] + frac * (sorted[i + 1] - sorted[i]) : sorted[i]
    }

    static func clamp(_ x: Double) -> Double { min(1, max(-1, x)) }
}


/// `x` with `digits` decimals ("-0.000" printed as "0.000").
func format(_ x: Double, _ digits: Int) -> String {
    let s = String(format: "%.\(digits)f", x)
    return s.hasPrefix("-") && s.dropFirst().allSatisfy { $0 == "0" || $0 == "." } ? String(s.dropFirst()) : s
}

/// One window of a text scored by a model: its summed negative log-likelihood (nats) and tokens.
public struct PerplexityWindow: Sendable, Codable, Equatable {
    public var nll: Double
    public var tokens: Int
    public init(nll: Double, tokens: Int) {
        self.nll = nll
        self.tokens = tokens
    }
}
