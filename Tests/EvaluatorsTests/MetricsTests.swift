import Evaluators
import Testing
import ValueSpace

@Suite struct MetricsTests {
    /// truth:     -1 -1  0  0  0 +1 +1 +1 +1
    /// predicted: -1  0  0  0 +1 +1 +1  0 -1
    let truth = [-1, -1, 0, 0, 0, 1, 1, 1, 1]
    let predicted = [-1, 0, 0, 0, 1, 1, 1, 0, -1]

    @Test func countsAKnownMatrix() throws {
        let m = try ConfusionMatrix(truth: truth, predicted: predicted)
        #expect(m.counts == [[1, 1, 0], [0, 2, 1], [1, 1, 2]])
        #expect(m.total == 9)
        #expect(m.support(-1) == 2 && m.support(0) == 3 && m.support(1) == 4)
        #expect(m.predictedCount(-1) == 2 && m.predictedCount(0) == 4 && m.predictedCount(1) == 3)
        #expect(abs(m.accuracy! - 5.0 / 9) < 1e-12)
        #expect(m.recall(-1) == 0.5)
        #expect(abs(m.recall(0)! - 2.0 / 3) < 1e-12)
        #expect(m.precision(1) == 2.0 / 3)
        // F1 = 2 tp / (support + predicted): -1: 2/4, 0: 4/7, +1: 4/7
        #expect(abs(m.f1(-1)! - 0.5) < 1e-12)
        #expect(abs(m.f1(0)! - 4.0 / 7) < 1e-12)
        #expect(abs(m.f1(1)! - 4.0 / 7) < 1e-12)
        #expect(abs(m.macroF1! - (0.5 + 8.0 / 7) / 3) < 1e-12)
    }

    @Test func absentLabelsFollowScikitLearn() throws {
        // No -1 anywhere: macro-F1 averages over {0, +1} only; recall of -1 is undefined.
        let m = try ConfusionMatrix(truth: [0, 0, 1, 1], predicted: [0, 1, 1, 1])
        #expect(m.f1(-1) == nil)
        #expect(m.recall(-1) == nil)
        #expect(abs(m.macroF1! - (2.0 / 3 + 0.8) / 2) < 1e-12)
        // -1 predicted but never true: its F1 is 0 and counts in the mean.
        let n = try ConfusionMatrix(truth: [0, 0, 0], predicted: [-1, 0, 0])
        #expect(n.f1(-1) == 0)
        #expect(abs(n.macroF1! - (0 + 0.8) / 2) < 1e-12)
        #expect(ConfusionMatrix().accuracy == nil && ConfusionMatrix().macroF1 == nil)
    }

    @Test func rejectsBadLabelsAndLengths() {
        #expect(throws: EvaluatorError.self) { try ConfusionMatrix(truth: [0, 2], predicted: [0, 0]) }
        #expect(throws: EvaluatorError.self) { try ConfusionMatrix(truth: [0], predicted: [0, 1]) }
    }

    @Test(arguments: [
        ([1.0, 2, 3, 4], [2.0, 4, 6, 8], 1.0),
        ([1.0, 2, 3, 4], [8.0, 6, 4, 2], -1.0),
        // Hand-computed: x = 1,2,3; y = 1,3,2 -> r = 0.5
        ([1.0, 2, 3], [1.0, 3, 2], 0.5),
    ])
    func pearson(x: [Double], y: [Double], expected: Double) throws {
        let r = try #require(Statistics.pearson(x, y))
        #expect(abs(r - expected) < 1e-12)
    }

    @Test func pearsonIsUndefinedForConstantsAndSinglePoints() {
        #expect(Statistics.pearson([1, 1, 1], [1, 2, 3]) == nil)
        #expect(Statistics.pearson([1], [2]) == nil)
        #expect(Statistics.pearson([1, 2], [1]) == nil)
    }

    /// The majority-class baseline beside accuracy and macro-F1 (issue 24, item 4): 8 of 10
    /// examples are 0, so always answering 0 is 80% accurate with a macro-F1 of 0.889 / 3.
    @Test func majorityBaselineAndMinorityLabels() throws {
        let truth = [0, 0, 0, 0, 0, 0, 0, 0, -1, 1]
        let m = try ConfusionMatrix(truth: truth, predicted: [0, 0, 0, 0, 0, 0, 0, -1, -1, 1])
        let baseline = m.majorityBaseline
        #expect(baseline.accuracy == 0.8)
        #expect(baseline.predictedCount(0) == 10 && baseline.support(-1) == 1)
        #expect(abs((baseline.macroF1 ?? 0) - (2 * 8.0 / 18) / 3) < 1e-12)
        let uniform = try ConfusionMatrix(truth: [0, 0], predicted: [1, 0])
        #expect(m.hasMinorityLabels && !uniform.hasMinorityLabels)
        let labels = (0..<10).map { i in (0..<10).map { v in v == 0 ? truth[i] : 0 } }
        let predictions = labels.map { row in
            ValueAssessment(vector: .zero, probabilities: row.map { l in l == 1 ? [0, 0, 1] : l == -1 ? [1, 0, 0] : [0, 1, 0] })
        }
        let report = try EvaluatorReport.compute(evaluator: "perfect", labels: labels, predictions: predictions, scores: [], scoredPredictions: [])
        #expect(report.values[0].majorityAccuracy == 0.8 && report.values[0].accuracy == 1)
        // Only self-direction has minority labels: the mean over values with them is its macro-F1.
        #expect(report.meanMacroF1WithMinorityLabels == 1)
        #expect(report.table().contains("majority-class baseline"))
    }
}
