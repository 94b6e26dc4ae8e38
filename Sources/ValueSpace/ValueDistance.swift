/// Ways to measure how far a value vector lies from a target.
public enum ValueDistance: String, CaseIterable, Sendable, Codable {
    /// BaseAlign's masked L1: sum_i |v_i - t_i| * |t_i| * [|v_i| > 0.3]. Only values the
    /// target weighs and the response clearly touches count; the reward is its negative.
    case basealign
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
        case .l2: Self.euclidean(vector, target)
        case .cosine: Self.cosineDistance(vector, target)
        }
    }

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

    /// BaseAlign's reward for a response vector: the negative distance.
    public static func baseAlignReward(_ v: ValueVector, target t: ValueVector) -> Double { -baseAlign(v, to: t) }

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
