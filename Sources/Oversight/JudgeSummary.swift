import Foundation
import Evaluators

/// Agreement statistics for judges.
public enum Agreement {
    /// Cohen's kappa of two labellings over `categories`; nil without items or when chance
    /// agreement is 1 (one category only).
    public static func kappa(_ truth: [String], _ predicted: [String], categories: [String]) -> Double? {
        precondition(truth.count == predicted.count)
        guard !truth.isEmpty else { return nil }
        let n = Double(truth.count)
        let observed = Double(zip(truth, predicted).filter { $0 == $1 }.count) / n
        var chance = 0.0
        for c in categories {
            chance += Double(truth.filter { $0 == c }.count) / n * Double(predicted.filter { $0 == c }.count) / n
        }
        guard chance < 1 else { return nil }
        return (observed - chance) / (1 - chance)
    }

    /// Cohen's kappa with quadratic weights for ordinal grades in `range` (the usual agreement
    /// figure for 1-5 grades: a 4 against a 5 costs less than a 1 against a 5).
    public static func quadraticKappa(_ truth: [Int], _ predicted: [Int], range: ClosedRange<Int>) -> Double? {
        precondition(truth.count == predicted.count)
        guard !truth.isEmpty, range.count > 1 else { return nil }
        let k = range.count, n = Double(truth.count)
        func w(_ i: Int, _ j: Int) -> Double { Double((i - j) * (i - j)) / Double((k - 1) * (k - 1)) }
        var observed = 0.0
        for (t, p) in zip(truth, predicted) { observed += w(t, p) }
        var expected = 0.0
        for i in range { for j in range {
            expected += w(i, j) * Double(truth.filter { $0 == i }.count) * Double(predicted.filter { $0 == j }.count) / n
        } }
        guard expected > 0 else { return nil }
        return 1 - observed / expected
    }

    /// Spearman's rank correlation (average ranks for ties).
    public static func spearman(_ x: [Double], _ y: [Double]) -> Double? {
        Statistics.pearson(ranks(x), ranks(y))
    }

    static func ranks(_ values: [Double]) -> [Double] {
        let order = values.indices.sorted { values[$0] < values[$1] }
        var ranks = [Double](repeating: 0, count: values.count)
        var i = 0
        while i < order.count {
            var j = i
            while j + 1 < order.count && values[order[j + 1]] == values[order[i]] { j += 1 }
            for k in i...j { ranks[order[k]] = Double(i + j) / 2 + 1 }
            i = j + 1
        }
        return ranks
    }
}

/// What a judge run measured: how often the judge could answer, its agreement with the labels
/// beside the majority-class baseline, and its known biases (position, verbosity).
public struct JudgeSummary: Sendable, Codable, Equatable {
    public var judge: String
    public var task: JudgeTask
    public var items: Int
    /// Items the judge gave no usable verdict on (left out of every figure below).
    public var unreadable: Int
    public var labelled: Int
    /// Mean share of the first token's probability on the allowed answers (logprob verdicts).
    public var meanVerdictMass: Double?
    /// Share of verdicts read from log-probabilities (the rest from text).
    public var logProbShare: Double?

    /// Agreement with the labels: pairwise, a tie counts as a miss against an a/b label.
    public var agreement: Double?
    /// Pairwise: agreement on the items the judge decided (not tied).
    public var decidedAgreement: Double?
    /// Pairwise: agreement of the order-averaged probability (first better when > 0.5): also
    /// order-consistent, and defined where the MT-Bench rule ties.
    public var averagedAgreement: Double?
    /// Single: share within one grade of the label.
    public var withinOne: Double?
    public var kappa: Double?
    /// Single: quadratic-weighted kappa.
    public var weightedKappa: Double?
    /// Single: Spearman correlation of the expected grade with the label.
    public var spearman: Double?
    /// The agreement of always answering the labels' most common value.
    public var majorityBaseline: Double?

    /// Pairwise: share of items whose two orders disagreed (counted as ties).
    public var tieRate: Double?
    /// Pairwise: mean P(the first position wins) minus 0.5 (positive: prefers the first shown).
    public var positionBias: Double?
    /// Pairwise: share of single-order decisions that picked the answer shown first.
    public var firstPositionRate: Double?
    /// Pairwise: share of items where the order-averaged probability favours the longer answer, and where the
    /// label did (so a preference for length inherited from the labels shows).
    public var longerChosenRate: Double?
    public var longerLabelledRate: Double?
    /// Correlation of length with the judge's score (pairwise: length difference with P(first better)).
    public var verbosityCorrelation: Double?

    public init(judge: String, task: JudgeTask, judgements: [Judgement]) {
        self.judge = judge
        self.task = task
        items = judgements.count
        let read = judgements.filter { $0.decision != Judgement.unreadable }
        unreadable = items - read.count
        let verdicts = read.flatMap(\.verdicts)
        let masses = verdicts.compactMap(\.mass)
        meanVerdictMass = masses.isEmpty ? nil : masses.reduce(0, +) / Double(masses.count)
        let answered = verdicts.filter { $0.source == .logProbs || $0.source == .text }
        logProbShare = answered.isEmpty ? nil : Double(answered.filter { $0.source == .logProbs }.count) / Double(answered.count)
        let labelled = read.filter { $0.label != nil }
        self.labelled = judgements.filter { $0.label != nil }.count
        func share(_ xs: [Judgement], _ p: (Judgement) -> Bool) -> Double? { xs.isEmpty ? nil : Double(xs.filter(p).count) / Double(xs.count) }
        func majority(_ labels: [String]) -> Double? {
            guard !labels.isEmpty else { return nil }
            return Double(Dictionary(grouping: labels, by: { $0 }).values.map(\.count).max()!) / Double(labels.count)
        }
        switch task {
        case .pairwise:
            tieRate = share(read) { $0.decision == "tie" }
            let first = read.compactMap(\.firstPosition)
            positionBias = first.isEmpty ? nil : first.reduce(0, +) / Double(first.count) - 0.5
            let orderVerdicts = read.flatMap(\.verdicts).filter { $0.probabilities.count == 2 }
            firstPositionRate = read.allSatisfy({ $0.verdicts.count == 2 }) && !orderVerdicts.isEmpty
                ? Double(orderVerdicts.filter { $0.probabilities[0] > 0.5 }.count) / Double(orderVerdicts.count) : nil
            agreement = share(labelled) { $0.decision == $0.label }
            decidedAgreement = share(labelled.filter { $0.decision != "tie" }) { $0.decision == $0.label }
            averagedAgreement = share(labelled) { Self.averagedDecision($0) == $0.label }
            let labels = labelled.map { $0.label! }
            kappa = Agreement.kappa(labels, labelled.map(\.decision), categories: ["a", "b", "tie"])
            majorityBaseline = majority(labels)
            let unequal = read.filter { $0.lengths[0] != $0.lengths[1] }
            let longer: (Judgement) -> String = { $0.lengths[0] > $0.lengths[1] ? "a" : "b" }
            longerChosenRate = share(unequal.filter { Self.averagedDecision($0) != "tie" }) { Self.averagedDecision($0) == longer($0) }
            longerLabelledRate = share(unequal.filter { $0.label == "a" || $0.label == "b" }) { $0.label == longer($0) }
            verbosityCorrelation = Statistics.pearson(read.map { Double($0.lengths[0] - $0.lengths[1]) }, read.map { $0.score! })
        case .single:
            let truth = labelled.compactMap { $0.label.flatMap(Int.init) }
            let predicted = labelled.compactMap { Int($0.decision) }
            if truth.count == predicted.count, !truth.isEmpty {
                agreement = Double(zip(truth, predicted).filter { $0 == $1 }.count) / Double(truth.count)
                withinOne = Double(zip(truth, predicted).filter { abs($0 - $1) <= 1 }.count) / Double(truth.count)
                kappa = Agreement.kappa(truth.map(String.init), predicted.map(String.init), categories: (1...5).map(String.init))
                weightedKappa = Agreement.quadraticKappa(truth, predicted, range: 1...5)
                spearman = Agreement.spearman(labelled.map { $0.score! }, truth.map(Double.init))
                majorityBaseline = majority(truth.map(String.init))
            }
            verbosityCorrelation = Statistics.pearson(read.map { Double($0.lengths[0]) }, read.map { $0.score! })
        case .reference:
            let labels = labelled.map { $0.label! }
            agreement = share(labelled) { $0.decision == $0.label }
            kappa = Agreement.kappa(labels, labelled.map(\.decision), categories: ["agrees", "disagrees"])
            majorityBaseline = majority(labels)
            verbosityCorrelation = Statistics.pearson(read.map { Double($0.lengths[0]) }, read.map { $0.score! })
        }
    }

    /// The pairwise decision of the order-averaged probability.
    static func averagedDecision(_ j: Judgement) -> String {
        guard let p = j.score else { return Judgement.unreadable }
        return Judgement.side(p)
    }

    /// The summary as Markdown (a table of the figures that apply).
    public var markdown: String {
        func pct(_ x: Double?) -> String { x.map { String(format: "%.1f%%", 100 * $0) } ?? "n/a" }
        func num(_ x: Double?) -> String { x.map { String(format: "%+.3f", $0) } ?? "n/a" }
        var rows: [(String, String)] = [("judge", judge), ("task", task.rawValue), ("items", "\(items)"),
                                        ("unreadable verdicts", "\(unreadable)"), ("labelled", "\(labelled)")]
        if let m = meanVerdictMass { rows.append(("mean verdict mass (first token)", String(format: "%.3f", m))) }
        if let s = logProbShare { rows.append(("verdicts from log-probabilities", pct(s))) }
        if labelled > 0 {
            rows.append(("agreement with labels", pct(agreement)))
            if task == .pairwise {
                rows += [("agreement where decided", pct(decidedAgreement)), ("agreement of the order-averaged probability", pct(averagedAgreement))]
            }
            if task == .single { rows.append(("within one grade", pct(withinOne))) }
            rows.append(("Cohen's kappa", num(kappa)))
            if task == .single { rows += [("quadratic-weighted kappa", num(weightedKappa)), ("Spearman (expected grade)", num(spearman))] }
            rows.append(("majority-class baseline", pct(majorityBaseline)))
        }
        if task == .pairwise {
            rows += [("tie rate (orders disagree)", pct(tieRate)), ("position bias (P first wins - 0.5)", num(positionBias)),
                     ("single-order picks of the first answer", pct(firstPositionRate)),
                     ("judge favours the longer answer (averaged)", pct(longerChosenRate)), ("label prefers the longer answer", pct(longerLabelledRate))]
        }
        rows.append(("verbosity correlation", num(verbosityCorrelation)))
        return "| figure | value |\n|---|---|\n" + rows.map { "| \($0.0) | \($0.1) |" }.joined(separator: "\n") + "\n"
    }
}
