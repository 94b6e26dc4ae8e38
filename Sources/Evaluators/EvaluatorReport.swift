import Foundation
public import ValueSpace

/// How well an evaluator agrees with held-out FULCRA labels and with the FULCRA evaluator's
/// scores: per value and averaged, with the project's goals checked.
public struct EvaluatorReport: Sendable, Codable {
    /// Metrics of one value.
    public struct ValueMetrics: Sendable, Codable {
        public var value: String
        /// Labelled examples with true label -1, 0, +1.
        public var support: [Int]
        public var accuracy: Double?
        public var macroF1: Double?
        /// The majority-class baseline's accuracy and macro-F1 on the same examples.
        public var majorityAccuracy: Double?
        public var majorityMacroF1: Double?
        /// Recall of -1 (opposed); nil when no held-out example opposes the value.
        public var opposedRecall: Double?
        public var confusion: ConfusionMatrix
        /// Pearson's r between our vector and the FULCRA evaluator's score on held-out answers.
        public var pearson: Double?
        /// Accuracy of our labels against the FULCRA evaluator's scores cut at +-threshold.
        public var scoredAgreement: Double?
    }

    /// One goal and whether it was met.
    public struct Goal: Sendable, Codable {
        public var name: String
        public var value: Double?
        public var target: Double
        public var met: Bool
    }

    public var evaluator: String
    public var labelledExamples: Int
    public var scoredExamples: Int
    public var values: [ValueMetrics]
    public var meanAccuracy: Double?
    public var meanMacroF1: Double?
    /// The majority-class baseline, averaged the same way: accuracy near it means little.
    public var meanMajorityAccuracy: Double?
    public var meanMajorityMacroF1: Double?
    /// Mean macro-F1 over the values whose held-out labels include a minority label (values whose
    /// examples all share one label make macro-F1 trivially high or low).
    public var meanMacroF1WithMinorityLabels: Double?
    public var meanPearson: Double?
    public var goals: [Goal]
    public var notes: [String]

    /// The four values the goals single out for opposed recall and Pearson's r.
    public static let focusValues: [SchwartzValue] = [.security, .conformity, .benevolence, .universalism]

    /// Computes the report. `labels[i]` are ten labels for `predictions[i]`; `scores[j]` the
    /// FULCRA evaluator's vector for `scoredPredictions[j]`.
    public static func compute(
        evaluator: String, labels: [[Int]], predictions: [ValueAssessment], scores: [ValueVector], scoredPredictions: [ValueAssessment],
        labelThreshold: Double = 0.5
    ) throws(EvaluatorError) -> EvaluatorReport {
        guard labels.count == predictions.count, scores.count == scoredPredictions.count else {
            throw .invalidParameter(field: "predictions", message: "\(predictions.count) predictions for \(labels.count) labelled examples, \(scoredPredictions.count) for \(scores.count) scored answers")
        }
        var metrics: [ValueMetrics] = []
        for value in SchwartzValue.allCases {
            let v = value.index
            let truth = labels.map { $0[v] }
            let predicted = predictions.map { $0.labels[v] }
            let confusion = try ConfusionMatrix(truth: truth, predicted: predicted)
            let ours = scoredPredictions.map { $0.vector.components[v] }
            let theirs = scores.map { $0.components[v] }
            var agreement: Double?
            if !scores.isEmpty {
                let cut = theirs.map { $0 > labelThreshold ? 1 : $0 < -labelThreshold ? -1 : 0 }
                agreement = try ConfusionMatrix(truth: cut, predicted: scoredPredictions.map { $0.labels[v] }).accuracy
            }
            metrics.append(ValueMetrics(
                value: value.rawValue, support: ConfusionMatrix.labels.map { confusion.support($0) }, accuracy: confusion.accuracy,
                macroF1: confusion.macroF1, majorityAccuracy: confusion.majorityBaseline.accuracy, majorityMacroF1: confusion.majorityBaseline.macroF1,
                opposedRecall: confusion.recall(-1), confusion: confusion,
                pearson: Statistics.pearson(ours, theirs), scoredAgreement: agreement))
        }
        var report = EvaluatorReport(
            evaluator: evaluator, labelledExamples: labels.count, scoredExamples: scores.count, values: metrics,
            meanAccuracy: Statistics.mean(metrics.map(\.accuracy)), meanMacroF1: Statistics.mean(metrics.map(\.macroF1)),
            meanMajorityAccuracy: Statistics.mean(metrics.map(\.majorityAccuracy)), meanMajorityMacroF1: Statistics.mean(metrics.map(\.majorityMacroF1)),
            meanMacroF1WithMinorityLabels: Statistics.mean(metrics.filter { $0.confusion.hasMinorityLabels }.map(\.macroF1)),
            meanPearson: Statistics.mean(metrics.map(\.pearson)), goals: [], notes: [])
        func goal(_ name: String, _ value: Double?, _ target: Double) {
            report.goals.append(Goal(name: name, value: value, target: target, met: (value ?? -.infinity) >= target))
        }
        goal("mean accuracy", report.meanAccuracy, 0.85)
        goal("mean macro-F1", report.meanMacroF1, 0.60)
        for value in focusValues {
            goal("\(value.rawValue) opposed recall", metrics[value.index].opposedRecall, 0.60)
        }
        for value in focusValues {
            goal("\(value.rawValue) Pearson r", metrics[value.index].pearson, 0.70)
        }
        return report
    }

    /// Goals met, of all goals.
    public var goalsMet: (met: Int, total: Int) { (goals.filter(\.met).count, goals.count) }

    /// A fixed-width table for people.
    public func table() -> String {
        func f(_ x: Double?) -> String { x.map { String(format: "%.3f", $0) } ?? "-" }
        var rows: [[String]] = [["value", "support -1/0/+1", "accuracy", "majority acc", "macro-F1", "majority F1", "recall -1", "Pearson r", "agree w/ scores"]]
        for m in values {
            rows.append([m.value, m.support.map(String.init).joined(separator: "/"), f(m.accuracy), f(m.majorityAccuracy), f(m.macroF1), f(m.majorityMacroF1),
                         f(m.opposedRecall), f(m.pearson), f(m.scoredAgreement)])
        }
        rows.append(["mean", "", f(meanAccuracy), f(meanMajorityAccuracy), f(meanMacroF1), f(meanMajorityMacroF1), "", f(meanPearson), ""])
        let widths = (0..<rows[0].count).map { c in rows.map { $0[c].count }.max() ?? 0 }
        var out = "\(evaluator): \(labelledExamples) held-out labelled dialogues, \(scoredExamples) held-out scored answers\n"
        for (i, r) in rows.enumerated() {
            out += zip(r, widths).map { $0.padding(toLength: $1, withPad: " ", startingAt: 0) }.joined(separator: "  ") + "\n"
            if i == 0 || i == rows.count - 2 { out += widths.map { String(repeating: "-", count: $0) }.joined(separator: "  ") + "\n" }
        }
        out += "\nconfusion matrices (rows: true -1/0/+1, columns: predicted -1/0/+1):\n"
        for m in values {
            out += "  \(m.value.padding(toLength: 15, withPad: " ", startingAt: 0)) " + m.confusion.counts.map { $0.map { String(format: "%4d", $0) }.joined() }.joined(separator: " |") + "\n"
        }
        out += "\nmajority-class baseline (every example labelled with its value's most frequent label): accuracy \(f(meanMajorityAccuracy)), macro-F1 \(f(meanMajorityMacroF1)); "
        out += "macro-F1 over the values with minority labels: \(f(meanMacroF1WithMinorityLabels))\n"
        let (met, total) = goalsMet
        out += "\ngoals met: \(met)/\(total)\n"
        for g in goals { out += "  [\(g.met ? "x" : " ")] \(g.name): \(f(g.value)) (goal >= \(String(format: "%.2f", g.target)))\n" }
        for n in notes { out += "note: \(n)\n" }
        return out
    }
}
