import Foundation
public import LanguageModels
import MLXEngine
import ValueSpace

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
        /// Fit decision offsets (`OffsetCalibration`) on the out-of-fold logits before scoring.
        public var calibrate: Bool
        /// Floor on out-of-fold opposed recall for the offsets (see `OffsetCalibration`).
        public var minimumOpposedRecall: Double
        public init(layers: [Int], poolings: [HiddenPooling], heads: HeadTrainingParameters, scoredAnswerWeight: Float, calibrate: Bool = false,
                    minimumOpposedRecall: Double = 0) {
            self.minimumOpposedRecall = minimumOpposedRecall
            self.layers = layers
            self.poolings = poolings
            self.heads = heads
            self.scoredAnswerWeight = scoredAnswerWeight
            self.calibrate = calibrate
        }
        public var label: String {
            "L\(layers.map(String.init).joined(separator: "+")) \(poolings.map(\.rawValue).joined(separator: "+")) hidden \(heads.hiddenUnits) cw^\(heads.classWeightPower) wd \(heads.weightDecay) ep \(heads.epochs) scored x\(scoredAnswerWeight)\(calibrate ? " calibrated (recall >= \(minimumOpposedRecall))" : "")"
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
        /// The full cross-validated report (per value, confusion matrices).
        public var report: EvaluatorReport
    }

    public let tables: FeatureTables
    public let folds: Int
    public let heldOutFraction: Double
    public let heldOutSeed: UInt64
    let labelledRows: [Int]
    let scoredRows: [Int]

    public init(tables: FeatureTables, folds: Int = 5, heldOutFraction: Double = 0.15, heldOutSeed: UInt64 = 0) throws(EvaluatorError) {
        guard folds >= 2 else { throw .invalidParameter(field: "folds", message: "need at least 2, got \(folds)") }
        self.tables = tables
        self.folds = folds
        self.heldOutFraction = heldOutFraction
        self.heldOutSeed = heldOutSeed
        let split = DataSplit(data: tables.data, heldOutFraction: heldOutFraction, heldOutSeed: heldOutSeed, validationFraction: nil)
        labelledRows = split.labelledTrain
        scoredRows = split.scoredTrain
    }

    /// Cross-validates one candidate. With `calibrate`, offsets are fitted on the same
    /// out-of-fold logits they are then scored on: optimistic by a little, and equally so for
    /// every calibrated candidate (training fits them on its own out-of-fold logits).
    public func evaluate(_ candidate: Candidate) throws -> Outcome {
        let start = Date()
        var (labelledLogits, scoredLogits) = try tables.outOfFoldLogits(
            labelledRows: labelledRows, scoredRows: scoredRows, folds: folds, foldSeed: heldOutSeed &+ 1, layers: candidate.layers,
            poolings: candidate.poolings, heads: candidate.heads, scoredAnswerWeight: candidate.scoredAnswerWeight)
        let labels = labelledRows.map { tables.data.labelled[$0].labels }
        if candidate.calibrate {
            let offsets = try OffsetCalibration.fit(logits: labelledLogits, labels: labels, minimumOpposedRecall: candidate.minimumOpposedRecall)
            labelledLogits = OffsetCalibration.apply(offsets, to: labelledLogits)
            scoredLogits = OffsetCalibration.apply(offsets, to: scoredLogits)
        }
        let predictions = try TrainedValueEvaluator.assessments(logits: MLXArray(labelledLogits, shape: [labelledRows.count, 10, 3]))
        let scoredPredictions = try TrainedValueEvaluator.assessments(logits: MLXArray(scoredLogits, shape: [scoredRows.count, 10, 3]))
        let report = try EvaluatorReport.compute(
            evaluator: candidate.label, labels: labels, predictions: predictions,
            scores: scoredRows.map { tables.data.scored[$0].scores }, scoredPredictions: scoredPredictions)
        let focus = EvaluatorReport.focusValues.map { report.values[$0.index] }
        let recall = Statistics.mean(focus.map(\.opposedRecall)), pearson = Statistics.mean(focus.map(\.pearson))
        return Outcome(
            candidate: candidate, meanAccuracy: report.meanAccuracy, meanMacroF1: report.meanMacroF1, focusOpposedRecall: recall,
            focusPearson: pearson, goalsMet: report.goalsMet.met, score: (report.meanMacroF1 ?? 0) + (recall ?? 0) + (pearson ?? 0),
            seconds: Date().timeIntervalSince(start), report: report)
    }
}
