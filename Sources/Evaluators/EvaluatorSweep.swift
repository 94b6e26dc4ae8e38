import Foundation
public import LanguageModels
public import ValueSpace

/// Chooses the evaluator's design by measurement: trains heads for many feature and training
/// settings on the training side only and scores each by k-fold cross-validation (folds by
/// prompt), so the held-out split stays untouched for the final test.
///
/// Out-of-fold predictions of all folds are pooled before scoring, so every training example
/// (and every rare "opposed" label) counts once.
public struct EvaluatorSweep {
    /// One setting to try.
    public struct Candidate: Sendable, Codable, Equatable {
        public var layers: [Int]
        public var poolings: [HiddenPooling]
        public var heads: HeadTrainingParameters
        public var scoredAnswerWeight: Float
        public init(layers: [Int], poolings: [HiddenPooling], heads: HeadTrainingParameters, scoredAnswerWeight: Float) {
            self.layers = layers
            self.poolings = poolings
            self.heads = heads
            self.scoredAnswerWeight = scoredAnswerWeight
        }
        public var label: String {
            "L\(layers.map(String.init).joined(separator: "+")) \(poolings.map(\.rawValue).joined(separator: "+")) hidden \(heads.hiddenUnits) cw^\(heads.classWeightPower) wd \(heads.weightDecay) ep \(heads.epochs) scored x\(scoredAnswerWeight)"
        }
    }

    /// A candidate's cross-validated figures.
    public struct Outcome: Sendable, Codable {
        public var candidate: Candidate
        public var meanAccuracy: Double?
        public var meanMacroF1: Double?
        /// Mean over security, conformity, benevolence, universalism.
        public var focusOpposedRecall: Double?
        public var focusPearson: Double?
        public var goalsMet: Int
        /// meanMacroF1 + focusOpposedRecall + focusPearson: the figure candidates are ranked by.
        public var score: Double
        public var seconds: Double
    }

    public let tables: FeatureTables
    public let folds: Int
    public let heldOutFraction: Double
    public let heldOutSeed: UInt64
    let labelledRows: [Int]
    let scoredRows: [Int]
    let labelledFold: [Int]
    let scoredFold: [Int]

    public init(tables: FeatureTables, folds: Int = 5, heldOutFraction: Double = 0.15, heldOutSeed: UInt64 = 0) throws(EvaluatorError) {
        guard folds >= 2 else { throw .invalidParameter(field: "folds", message: "need at least 2, got \(folds)") }
        self.tables = tables
        self.folds = folds
        self.heldOutFraction = heldOutFraction
        self.heldOutSeed = heldOutSeed
        let split = DataSplit(data: tables.data, heldOutFraction: heldOutFraction, heldOutSeed: heldOutSeed, validationFraction: nil)
        labelledRows = split.labelledTrain
        scoredRows = split.scoredTrain
        func fold(_ prompt: String) -> Int { Int(DatasetSplit.stableHash(prompt, seed: heldOutSeed &+ 1) % UInt64(folds)) }
        labelledFold = labelledRows.map { fold(tables.data.labelled[$0].prompt) }
        scoredFold = scoredRows.map { fold(tables.data.scored[$0].prompt) }
    }

    /// Cross-validates one candidate.
    public func evaluate(_ candidate: Candidate) throws -> Outcome {
        let start = Date()
        var predictions = [ValueAssessment?](repeating: nil, count: labelledRows.count)
        var scoredPredictions = [ValueAssessment?](repeating: nil, count: scoredRows.count)
        for f in 0..<folds {
            let trainL = labelledRows.indices.filter { labelledFold[$0] != f }.map { labelledRows[$0] }
            let trainS = scoredRows.indices.filter { scoredFold[$0] != f }.map { scoredRows[$0] }
            let testL = labelledRows.indices.filter { labelledFold[$0] == f }
            let testS = scoredRows.indices.filter { scoredFold[$0] == f }
            let set = try tables.trainingSet(labelledRows: trainL, scoredRows: trainS, layers: candidate.layers, poolings: candidate.poolings,
                                             scoredAnswerWeight: candidate.scoredAnswerWeight)
            let heads = try HeadTrainer(candidate.heads).train(set)
            let pl = try tables.assess(heads, table: tables.labelled, rows: testL.map { labelledRows[$0] }, layers: candidate.layers, poolings: candidate.poolings)
            for (k, i) in testL.enumerated() { predictions[i] = pl[k] }
            let ps = try tables.assess(heads, table: tables.scored, rows: testS.map { scoredRows[$0] }, layers: candidate.layers, poolings: candidate.poolings)
            for (k, i) in testS.enumerated() { scoredPredictions[i] = ps[k] }
        }
        let report = try EvaluatorReport.compute(
            evaluator: candidate.label, labels: labelledRows.map { tables.data.labelled[$0].labels }, predictions: predictions.map { $0! },
            scores: scoredRows.map { tables.data.scored[$0].scores }, scoredPredictions: scoredPredictions.map { $0! })
        let focus = EvaluatorReport.focusValues.map { report.values[$0.index] }
        let recall = Statistics.mean(focus.map(\.opposedRecall)), pearson = Statistics.mean(focus.map(\.pearson))
        return Outcome(
            candidate: candidate, meanAccuracy: report.meanAccuracy, meanMacroF1: report.meanMacroF1, focusOpposedRecall: recall,
            focusPearson: pearson, goalsMet: report.goalsMet.met, score: (report.meanMacroF1 ?? 0) + (recall ?? 0) + (pearson ?? 0),
            seconds: Date().timeIntervalSince(start))
    }
}
