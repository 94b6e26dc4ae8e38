/// Counts of true against predicted labels over {-1, 0, +1}.
public struct ConfusionMatrix: Sendable, Codable, Equatable {
    /// `counts[t][p]`: examples whose true label is `t - 1` and predicted label `p - 1`.
    public private(set) var counts: [[Int]]

    public static let labels = [-1, 0, 1]

    public init() { counts = [[0, 0, 0], [0, 0, 0], [0, 0, 0]] }

    /// A matrix from paired labels (each -1, 0 or +1).
    public init(truth: [Int], predicted: [Int]) throws(EvaluatorError) {
        guard truth.count == predicted.count else {
            throw .invalidParameter(field: "predicted", message: "\(predicted.count) predictions for \(truth.count) labels")
        }
        self.init()
        for (t, p) in zip(truth, predicted) { try add(truth: t, predicted: p) }
    }

    /// Counts one example.
    public mutating func add(truth: Int, predicted: Int) throws(EvaluatorError) {
        guard (-1...1).contains(truth), (-1...1).contains(predicted) else {
            throw .invalidParameter(field: "label", message: "labels must be -1, 0 or +1 (got truth \(truth), predicted \(predicted))")
        }
        counts[truth + 1][predicted + 1] += 1
    }

    public var total: Int { counts.joined().reduce(0, +) }
    /// Examples whose true label is `label`.
    public func support(_ label: Int) -> Int { counts[label + 1].reduce(0, +) }
    /// Examples predicted as `label`.
    public func predictedCount(_ label: Int) -> Int { counts.reduce(0) { $0 + $1[label + 1] } }

    /// Fraction predicted correctly; nil with no examples.
    public var accuracy: Double? {
        total == 0 ? nil : Double((0..<3).reduce(0) { $0 + counts[$1][$1] }) / Double(total)
    }

    /// Of the examples truly `label`, the fraction predicted `label`; nil when there are none.
    public func recall(_ label: Int) -> Double? {
        let s = support(label)
        return s == 0 ? nil : Double(counts[label + 1][label + 1]) / Double(s)
    }

    /// Of the examples predicted `label`, the fraction truly `label`; nil when none were predicted.
    public func precision(_ label: Int) -> Double? {
        let n = predictedCount(label)
        return n == 0 ? nil : Double(counts[label + 1][label + 1]) / Double(n)
    }

    /// F1 of `label` (0 when it is predicted or present but never both right); nil when the label
    /// is neither present nor predicted.
    public func f1(_ label: Int) -> Double? {
        if support(label) == 0, predictedCount(label) == 0 { return nil }
        let tp = Double(counts[label + 1][label + 1])
        let denominator = Double(support(label) + predictedCount(label))
        return denominator == 0 ? 0 : 2 * tp / denominator
    }

    /// The matrix of the majority-class baseline: every example predicted as the truth's most
    /// frequent label (ties: 0, then -1, then +1). Its accuracy and macro-F1 are what an
    /// evaluator must beat to have learned anything about this value.
    public var majorityBaseline: ConfusionMatrix {
        let majority = [0, -1, 1].max { support($0) < support($1) } ?? 0
        var m = ConfusionMatrix()
        for t in Self.labels { m.counts[t + 1][majority + 1] = support(t) }
        return m
    }

    /// Whether the truth holds more than one label (the value has a minority label to find).
    public var hasMinorityLabels: Bool { Self.labels.filter { support($0) > 0 }.count > 1 }

    /// Mean F1 over the labels present in the truth or the predictions (scikit-learn's
    /// `f1_score(average="macro")` with default labels); nil with no examples.
    public var macroF1: Double? {
        let scores = Self.labels.compactMap { f1($0) }
        return scores.isEmpty ? nil : scores.reduce(0, +) / Double(scores.count)
    }
}

/// Statistics used by the evaluator's reports.
public enum Statistics {
    /// Pearson's correlation; nil when fewer than two points or either side is constant.
    public static func pearson(_ x: [Double], _ y: [Double]) -> Double? {
        guard x.count == y.count, x.count >= 2 else { return nil }
        let n = Double(x.count)
        let mx = x.reduce(0, +) / n, my = y.reduce(0, +) / n
        var sxy = 0.0, sxx = 0.0, syy = 0.0
        for (a, b) in zip(x, y) {
            sxy += (a - mx) * (b - my)
            sxx += (a - mx) * (a - mx)
            syy += (b - my) * (b - my)
        }
        guard sxx > 0, syy > 0 else { return nil }
        return sxy / (sxx * syy).squareRoot()
    }

    /// The arithmetic mean of the non-nil entries; nil when there are none.
    public static func mean(_ values: [Double?]) -> Double? {
        let present = values.compactMap { $0 }
        return present.isEmpty ? nil : present.reduce(0, +) / Double(present.count)
    }
}
