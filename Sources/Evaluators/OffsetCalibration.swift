/// Decision thresholds for the heads: per value, offsets added to the "opposed" and "supported"
/// logits, chosen to maximise that value's macro-F1 on out-of-fold predictions of the training
/// side; for values with enough "opposed" labels to measure it (`minimumSupport`), only among
/// offsets whose opposed recall reaches `minimumOpposedRecall` (when any does). Missing an
/// opposed response is the costly error for a reward, so the operating point puts a floor on it.
///
/// Why: class-weighted training alone either leaves the rare "opposed" class under-predicted
/// (recall ~0.5 with hidden-layer heads) or, weighted harder, costs accuracy and agreement with
/// the FULCRA evaluator's scores everywhere. Offsets move only the decision boundary of each value,
/// fitted on predictions for examples the fold's heads never saw.
public enum OffsetCalibration {
    /// Offsets tried for each of the two classes (the "no connection" logit stays fixed).
    public static let grid: [Float] = stride(from: Float(-2), through: 4, by: 0.25).map { $0 }

    /// Adds offsets [30] to logits [N * 30].
    public static func apply(_ offsets: [Float], to logits: [Float]) -> [Float] {
        logits.enumerated().map { $0.element + offsets[$0.offset % 30] }
    }

    /// Offsets [10 * 3] from out-of-fold logits [N * 30] and labels [N][10]. A value without any
    /// -1 (or +1) label keeps offset 0 for that class. Ties go to the smaller total offset.
    public static func fit(logits: [Float], labels: [[Int]], minimumOpposedRecall: Double = 0, minimumSupport: Int = 20) throws(EvaluatorError) -> [Float] {
        guard logits.count == labels.count * 30, !labels.isEmpty else {
            throw .invalidParameter(field: "logits", message: "\(logits.count) logits for \(labels.count) labelled examples")
        }
        var offsets = [Float](repeating: 0, count: 30)
        for v in 0..<10 {
            let truth = labels.map { $0[v] }
            let opposedGrid = truth.contains(-1) ? grid : [0]
            let supportedGrid = truth.contains(1) ? grid : [0]
            let constrained = minimumOpposedRecall > 0 && truth.filter({ $0 == -1 }).count >= minimumSupport
            var best: (f1: Double, cost: Float, a: Float, b: Float) = (-1, .infinity, 0, 0)
            var bestConstrained = best
            for a in opposedGrid {
                for b in supportedGrid {
                    var matrix = ConfusionMatrix()
                    for (n, t) in truth.enumerated() {
                        let base = n * 30 + v * 3
                        let (s0, s1, s2) = (logits[base] + a, logits[base + 1], logits[base + 2] + b)
                        // argmax, first index on ties (as ValueAssessment.labels reads it)
                        let predicted = s0 >= s1 ? (s0 >= s2 ? -1 : 1) : (s1 >= s2 ? 0 : 1)
                        try matrix.add(truth: t, predicted: predicted)
                    }
                    let f1 = matrix.macroF1 ?? 0, cost = Swift.abs(a) + Swift.abs(b)
                    if f1 > best.f1 + 1e-12 || (Swift.abs(f1 - best.f1) <= 1e-12 && cost < best.cost) { best = (f1, cost, a, b) }
                    if constrained, (matrix.recall(-1) ?? 0) >= minimumOpposedRecall,
                       f1 > bestConstrained.f1 + 1e-12 || (Swift.abs(f1 - bestConstrained.f1) <= 1e-12 && cost < bestConstrained.cost) {
                        bestConstrained = (f1, cost, a, b)
                    }
                }
            }
            if bestConstrained.f1 >= 0 { best = bestConstrained }
            offsets[v * 3] = best.a
            offsets[v * 3 + 2] = best.b
        }
        return offsets
    }
}
