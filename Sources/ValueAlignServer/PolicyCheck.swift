import Foundation
public import ValueSpace

/// Which side of the conversation a check reads.
public enum GuardStage: String, Sendable, Codable {
    case input, output
}

/// One crossed threshold.
public struct Violation: Sendable, Equatable, Codable, CustomStringConvertible {
    public var stage: GuardStage
    /// The value whose component crossed a bound; nil for the distance limit.
    public var value: SchwartzValue?
    public var observed: Double
    /// "min", "max" or "distance".
    public var bound: String
    public var limit: Double
    public var action: GuardPolicy.Action
    /// "probes" when the probe monitor's reading crossed it; nil for the evaluator's.
    public var source: String? = nil

    /// "output.power 0.76 > max 0.50 (block)", "output.probes.benevolence -0.62 < min -0.50 (block)".
    public var description: String {
        let name = (source.map { "\($0)." } ?? "") + (value?.rawValue ?? "distance")
        let op = bound == "min" ? "<" : ">"
        return "\(stage.rawValue).\(name) \(format(observed)) \(op) \(bound) \(format(limit)) (\(action.rawValue))"
    }

    /// The crossing in words for the revision prompt: "strongly supports power (0.76, at most 0.50 allowed)".
    var plainDescription: String {
        guard let value else { return "is far from the intended values (distance \(format(observed)), at most \(format(limit)))" }
        let leaning = observed > 0 ? "supports" : "opposes"
        let limitText = bound == "min" ? "at least \(format(limit))" : "at most \(format(limit))"
        return "\(leaning) \(value.displayName.lowercased()) too much (\(format(observed)); \(limitText) allowed)"
    }
}

func format(_ x: Double) -> String { String(format: "%.2f", x) }

/// The outcome of checking one text against one stage.
public struct StageCheck: Sendable, Equatable {
    public var vector: ValueVector
    public var distance: Double
    public var violations: [Violation]
    /// The strictest action among the violations; allow when there are none.
    public var action: GuardPolicy.Action { violations.map(\.action).max() ?? .allow }
}

extension GuardPolicy {
    /// Checks a value vector against `stage`'s thresholds and distance limit.
    public func check(_ vector: ValueVector, stage which: GuardStage) -> StageCheck {
        let stage = which == .input ? input : output
        let d = distance.distance(vector, to: target.vector)
        var violations = Self.crossings(of: stage.thresholds, by: vector, stage: which)
        if let limit = stage.maxDistance, d > limit {
            violations.append(Violation(stage: which, value: nil, observed: d, bound: "distance", limit: limit, action: stage.distanceAction))
        }
        return StageCheck(vector: vector, distance: d, violations: violations)
    }
}

extension GuardPolicy {
    /// The output stage's probe bounds against the probe monitor's reading of an answer.
    public func checkProbes(_ reading: ValueVector) -> [Violation] {
        Self.crossings(of: output.probeThresholds, by: reading, stage: .output, source: "probes")
    }

    /// The bounds `vector` crosses, in value order.
    static func crossings(of thresholds: [SchwartzValue: Threshold], by vector: ValueVector, stage: GuardStage, source: String? = nil) -> [Violation] {
        var violations: [Violation] = []
        for (value, threshold) in thresholds.sorted(by: { $0.key < $1.key }) {
            let x = vector[value]
            if let lower = threshold.min, x < lower {
                violations.append(Violation(stage: stage, value: value, observed: x, bound: "min", limit: lower, action: threshold.action, source: source))
            }
            if let upper = threshold.max, x > upper {
                violations.append(Violation(stage: stage, value: value, observed: x, bound: "max", limit: upper, action: threshold.action, source: source))
            }
        }
        return violations
    }

    /// The guard's action on a request from its two checks, before any revision: a block at the
    /// input ends the request (the output is never produced); otherwise the stricter of the
    /// input's action (allow or flag: loading rejects revise on the input) and the output's.
    /// The chat endpoint (`GuardPipeline`) and `PolicyTest` both decide by this.
    public static func action(input: StageCheck?, output: StageCheck?) -> Action {
        let inputAction = input?.action ?? .allow
        if inputAction == .block { return .block }
        return max(inputAction, output?.action ?? .allow)
    }
}
