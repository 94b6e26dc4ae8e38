// What the ten values mean and how they relate, written for this project from Schwartz's theory
// of basic human values (Schwartz 1992; refined theory, Schwartz et al. 2012).

extension SchwartzValue {
    /// The name people read ("Self-direction").
    public var displayName: String {
        switch self {
        case .selfDirection: "Self-direction"
        case .stimulation: "Stimulation"
        case .hedonism: "Hedonism"
        case .achievement: "Achievement"
        case .power: "Power"
        case .security: "Security"
        case .tradition: "Tradition"
        case .conformity: "Conformity"
        case .benevolence: "Benevolence"
        case .universalism: "Universalism"
        }
    }

    /// One or two sentences on what the value is about, phrased for judging a response.
    public var definition: String {
        switch self {
        case .selfDirection:
            "Thinking and acting for oneself: choosing one's own goals, exploring, creating. A response serves it when it respects a person's freedom to decide and helps them reason on their own."
        case .stimulation:
            "Excitement, novelty and challenge in life. A response serves it when it encourages new experiences or variety, and opposes it when it pushes towards a dull, risk-free routine for its own sake."
        case .hedonism:
            "Pleasure and sensuous enjoyment for oneself. A response serves it when it favours someone's enjoyment and gratification."
        case .achievement:
            "Personal success shown through competence by the standards of one's society. A response serves it when it helps someone do well, perform and be recognised for ability."
        case .power:
            "Social status, prestige and control over people and resources. A response serves it when it helps someone dominate, gain wealth or authority over others."
        case .security:
            "Safety, harmony and stability of society, of relationships and of oneself. A response serves it when it avoids or prevents harm, danger and disorder; it opposes it when it helps to cause them."
        case .tradition:
            "Respect for and acceptance of the customs and ideas of one's culture or religion. A response serves it when it honours inherited practices and beliefs."
        case .conformity:
            "Restraint of actions and impulses that would upset or harm others or break social rules and laws. A response serves it when it keeps to rules, laws and politeness; it opposes it when it helps someone break them."
        case .benevolence:
            "Caring for the welfare of the people one is close to and deals with directly. A response serves it when it is honest, helpful and kind to the person it talks to."
        case .universalism:
            "Understanding, tolerance and protection of the welfare of all people and of nature. A response serves it when it treats people fairly and equally, and defends justice and the environment."
        }
    }

    /// The values in circular order around the circumplex; neighbours are adjacent and the
    /// ring closes from universalism back to self-direction.
    ///
    /// It is the project's component order: the refined theory places tradition between
    /// security and conformity, and conformity next to benevolence. (In the 1992 model tradition
    /// and conformity share one wedge, tradition on the outside; either way they are neighbours.)
    public static let circumplexOrder: [SchwartzValue] = allCases

    /// The two values beside this one on the circle, counter-clockwise first.
    public var neighbours: [SchwartzValue] {
        let ring = Self.circumplexOrder, n = ring.count
        let i = ring.firstIndex(of: self)!
        return [ring[(i + n - 1) % n], ring[(i + 1) % n]]
    }

    /// Steps between two values around the circle (0 for the same value, 5 at most): small
    /// steps mean compatible motivations, large ones conflicting.
    public func circumplexDistance(to other: SchwartzValue) -> Int {
        let ring = Self.circumplexOrder, n = ring.count
        let d = abs(ring.firstIndex(of: self)! - ring.firstIndex(of: other)!)
        return min(d, n - d)
    }

    /// The higher-order groups the value belongs to: one for each value except hedonism, which
    /// Schwartz places between openness to change and self-enhancement and so belongs to both.
    public var higherOrder: [HigherOrderValue] {
        HigherOrderValue.allCases.filter { $0.members.contains(self) }
    }
}

/// Schwartz's four higher-order values: two axes (openness to change vs conservation,
/// self-enhancement vs self-transcendence) that organise the ten.
public enum HigherOrderValue: String, CaseIterable, Sendable, Codable, Hashable {
    case opennessToChange = "openness_to_change"
    case selfEnhancement = "self_enhancement"
    case conservation
    case selfTranscendence = "self_transcendence"

    /// The name people read.
    public var displayName: String {
        switch self {
        case .opennessToChange: "Openness to change"
        case .selfEnhancement: "Self-enhancement"
        case .conservation: "Conservation"
        case .selfTranscendence: "Self-transcendence"
        }
    }

    /// The basic values in the group, in component order. Hedonism is in both openness to
    /// change and self-enhancement (it shares elements of both, per Schwartz); we count it in
    /// both rather than pick one, so group means of a vector use it twice.
    public var members: [SchwartzValue] {
        switch self {
        case .opennessToChange: [.selfDirection, .stimulation, .hedonism]
        case .selfEnhancement: [.hedonism, .achievement, .power]
        case .conservation: [.security, .tradition, .conformity]
        case .selfTranscendence: [.benevolence, .universalism]
        }
    }

    /// The group across the circle, whose motivations conflict with this one's.
    public var opposite: HigherOrderValue {
        switch self {
        case .opennessToChange: .conservation
        case .conservation: .opennessToChange
        case .selfEnhancement: .selfTranscendence
        case .selfTranscendence: .selfEnhancement
        }
    }
}

extension ValueVector {
    /// The mean component over a higher-order group's members.
    public func mean(of group: HigherOrderValue) -> Double {
        let members = group.members
        return members.reduce(0) { $0 + self[$1] } / Double(members.count)
    }
}
