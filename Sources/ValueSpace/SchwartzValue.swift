/// Schwartz's ten basic human values, in the order used everywhere in ValueAlign (it matches the
/// FULCRA data and the BaseAlign code): a `ValueVector`'s component i is `allCases[i]`.
public enum SchwartzValue: String, CaseIterable, Sendable, Codable, Hashable, Comparable {
    case selfDirection = "self_direction"
    case stimulation
    case hedonism
    case achievement
    case power
    case security
    case tradition
    case conformity
    case benevolence
    case universalism

    /// Position in vectors (0...9).
    public var index: Int { Self.allCases.firstIndex(of: self)! }

    public static func < (a: SchwartzValue, b: SchwartzValue) -> Bool { a.index < b.index }

    /// The value named `name`: snake_case ("self_direction"), spaced or hyphenated forms
    /// ("self-direction", "Self Direction") and case variants all match; nil otherwise.
    public init?(name: String) {
        let key = name.lowercased().trimmingCharacters(in: .whitespacesAndNewlines)
            .replacingOccurrences(of: "-", with: "_").replacingOccurrences(of: " ", with: "_")
        guard let v = SchwartzValue(rawValue: key) else { return nil }
        self = v
    }
}

import Foundation
