import Evaluators
import Testing

@Suite struct OffsetCalibrationTests {
    /// 40 examples of value 0: 10 opposed, 30 not. The opposed logit of opposed examples is 1
    /// below "no connection" (so argmax never says -1) but 1 above that of the others.
    func underPredicted() -> (logits: [Float], labels: [[Int]]) {
        var logits: [Float] = [], labels: [[Int]] = []
        for i in 0..<40 {
            let opposed = i < 10
            var row = [Float](repeating: 0, count: 30)
            for v in 0..<10 { row[v * 3 + 1] = 2 }  // "no connection" leads everywhere
            row[0] = opposed ? 1 : 0  // value 0, opposed logit
            logits += row
            labels.append([opposed ? -1 : 0] + [Int](repeating: 0, count: 9))
        }
        return (logits, labels)
    }

    @Test func raisesTheOpposedLogitOfAnUnderPredictedValue() throws {
        let (logits, labels) = underPredicted()
        let offsets = try OffsetCalibration.fit(logits: logits, labels: labels)
        #expect(offsets.count == 30)
        // Any offset in [1, 2) separates the classes perfectly (a tie between logits reads as
        // "opposed", the first class); among equal macro-F1 the smallest offset wins.
        #expect(offsets[0] == 1, "offset \(offsets[0])")
        let adjusted = OffsetCalibration.apply(offsets, to: logits)
        let predicted = (0..<40).map { n -> Int in
            let s = Array(adjusted[n * 30..<n * 30 + 3])
            return s[0] >= s[1] ? (s[0] >= s[2] ? -1 : 1) : (s[1] >= s[2] ? 0 : 1)
        }
        #expect(try ConfusionMatrix(truth: labels.map { $0[0] }, predicted: predicted).macroF1 == 1)
        // Values with no -1 and no +1 labels keep zero offsets.
        #expect(offsets[3...].allSatisfy { $0 == 0 })
    }

    @Test func theRecallFloorWinsOverMacroF1WhenReachable() throws {
        // Opposed examples overlap the others: reaching recall 1 costs precision.
        var (logits, labels) = underPredicted()
        for n in 10..<15 { logits[n * 30] = 1 }  // five non-opposed rows look opposed too
        for n in 0..<3 { logits[n * 30] = 0 }  // three opposed rows look like the rest
        let free = try OffsetCalibration.fit(logits: logits, labels: labels, minimumOpposedRecall: 0, minimumSupport: 5)
        let floored = try OffsetCalibration.fit(logits: logits, labels: labels, minimumOpposedRecall: 1, minimumSupport: 5)
        #expect(floored[0] > free[0])
        // Too few opposed labels: the floor does not apply.
        let few = try OffsetCalibration.fit(logits: logits, labels: labels, minimumOpposedRecall: 1, minimumSupport: 50)
        #expect(few == free)
    }

    @Test func rejectsMismatchedInputs() {
        #expect(throws: EvaluatorError.self) { try OffsetCalibration.fit(logits: [0, 1], labels: [[0]]) }
    }
}
