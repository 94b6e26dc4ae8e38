/// Ways to measure how far a value vector lies from a target.
public enum ValueDistance: String, CaseIterable, Sendable, Codable {
    /// BaseAlign's masked L1: sum_i |v_i - t_i| * |t_i| * [|v_i| > 0.3]. Only values the
    /// target weighs and the response clearly touches count; the reward is its negative.
    case basealign
    /// The same weighted L1 without the mask: sum_i |v_i - t_i| * |t_i|. The distance for
    /// aggregated profiles (a mean of answers), which BaseAlign's per-answer mask must never be
    /// applied to: a mean's components shrink toward 0 and would fall under the mask.
    case weighted
    /// Euclidean distance over all ten components.
    case l2
    /// 1 - cosine similarity (0 same direction, 1 orthogonal, 2 opposite); 1 when either
    /// vector is all zeros, since a zero vector has no direction.
    case cosine

    /// The distance from `vector` to `target`. Not symmetric for `basealign`.
    public func callAsFunction(_ vector: ValueVector, to target: ValueVector) -> Double {
        distance(vector, to: target)
    }

    /// The distance from `vector` to `target`. Not symmetric for `basealign`.
    public func distance(_ vector: ValueVector, to target: ValueVector) -> Double {
        switch self {
        case .basealign: Self.baseAlign(vector, to: target)
        case .weighted: Self.weightedL1(vector, to: target)
        case .l2: Self.euclidean(vector, target)
        case .cosine: Self.cosineDistance(vector, target)
        }
    }

    /// The distances that apply to an aggregated profile (a mean vector): all but BaseAlign's
    /// masked one, which is defined per answer.
    public static let profileMetrics: [ValueDistance] = [.weighted, .l2, .cosine]

    /// The threshold below which BaseAlign treats a component as "not touched".
    public static let baseAlignThreshold = 0.3

    /// BaseAlign's distance, as in its reference code: the mask uses the response's components
    /// (|v_i| > threshold, strictly), the weight the target's (|t_i|).
    public static func baseAlign(_ v: ValueVector, to t: ValueVector, threshold: Double = baseAlignThreshold) -> Double {
        var d = 0.0
        for i in 0..<v.components.count where abs(v.components[i]) > threshold {
            d += abs(v.components[i] - t.components[i]) * abs(t.components[i])
        }
        return d
    }

    /// BaseAlign's reward for a response vector, as the paper defines it: the negative distance.
    /// An answer that touches none of the target's values scores 0, the best possible reward;
    /// `BaseAlignReward` adds `untouchedCharge` by default so that blandness cannot pay.
    public static func baseAlignReward(_ v: ValueVector, target t: ValueVector) -> Double { -baseAlign(v, to: t) }

    /// Σ_i |v_i - t_i| * |t_i| over all values: BaseAlign's weights without its mask.
    public static func weightedL1(_ v: ValueVector, to t: ValueVector) -> Double {
        zip(v.components, t.components).reduce(0) { $0 + abs($1.0 - $1.1) * abs($1.1) }
    }

    /// Whether `v` touches (|v_i| > threshold) at least one value the target weighs (t_i != 0).
    public static func touchesTarget(_ v: ValueVector, _ t: ValueVector, threshold: Double = baseAlignThreshold) -> Bool {
        zip(v.components, t.components).contains { abs($0.0) > threshold && $0.1 != 0 }
    }

    /// The charge for leaving the target's strong values untouched: for every value with
    /// |t_i| > threshold that the answer does not touch (|v_i| <= threshold),
    /// (|t_i| - threshold) * |t_i|, which is what BaseAlign's distance would count for an answer
    /// that touched the value just past the threshold on the target's side. So an untouched
    /// value costs at least as much as the weakest touch on the right side, and more than any touch
    /// within |t_i| - threshold of the target; an answer touching nothing pays for every value the
    /// target asks for.
    public static func untouchedCharge(_ v: ValueVector, _ t: ValueVector, threshold: Double = baseAlignThreshold) -> Double {
        var charge = 0.0
        for (x, y) in zip(v.components, t.components) where abs(x) <= threshold && abs(y) > threshold {
            charge += (abs(y) - threshold) * abs(y)
        }
        return charge
    }

    /// Euclidean distance.
    public static func euclidean(_ a: ValueVector, _ b: ValueVector) -> Double {
        zip(a.components, b.components).reduce(0) { $0 + ($1.0 - $1.1) * ($1.0 - $1.1) }.squareRoot()
    }

    /// 1 - cosine similarity; 1 when either vector is all zeros.
    public static func cosineDistance(_ a: ValueVector, _ b: ValueVector) -> Double {
        var dot = 0.0, na = 0.0, nb = 0.0
        for (x, y) in zip(a.components, b.components) {
            dot += x * y
            na += x * x
            nb += y * y
        }
        guard na > 0, nb > 0 else { return 1 }
        return 1 - max(-1, min(1, dot / (na.squareRoot() * nb.squareRoot())))
    }
}
