public import ValueSpace

/// How the assessments of a long text's windows become one: per value, one opposing passage
/// anywhere counts, and support comes from the whole text.
///
/// For each value, if any window opposes it (component below -`threshold`, BaseAlign's "touches"
/// threshold), the pair takes the most opposed window's component and probabilities: a harmful
/// paragraph after pages of harmless text is not averaged away. Otherwise the pair takes the mean
/// over windows (of the components and of the probabilities), so support must be sustained to
/// count. One window is returned as it is. A refusal reading comes from the first window: a refusal
/// shows in the opening of an answer.
public enum WindowAggregation {
    public static let threshold = ValueDistance.baseAlignThreshold

    /// The combined assessment of one pair's windows (at least one).
    public static func combine(_ windows: [ValueAssessment]) throws -> ValueAssessment {
        guard let first = windows.first else { throw EvaluatorError.invalidInput("no windows to combine") }
        guard windows.count > 1 else { return first }
        var vector: [Double] = [], probabilities: [[Double]] = []
        for v in 0..<first.vector.components.count {
            let most = windows.min { $0.vector.components[v] < $1.vector.components[v] }!
            if most.vector.components[v] < -threshold {
                vector.append(most.vector.components[v])
                probabilities.append(most.probabilities[v])
            } else {
                let n = Double(windows.count)
                vector.append(windows.reduce(0) { $0 + $1.vector.components[v] } / n)
                probabilities.append((0..<3).map { k in windows.reduce(0) { $0 + $1.probabilities[v][k] } / n })
            }
        }
        return ValueAssessment(vector: try ValueVector(vector), probabilities: probabilities, refusal: first.refusal)
    }
}
