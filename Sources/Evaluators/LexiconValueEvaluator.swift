import Foundation
public import ValueSpace

/// A transparent, fast value evaluator: each value has a list of word stems that signal support
/// and a list that signal opposition; a response's component is tanh(weight * (supports -
/// opposes)) over the stems its words start with.
///
/// It reads the response only (the prompt sets no context), needs no model, and answers in
/// microseconds, so it suits tests, load tests that must separate evaluator time from the rest,
/// and deployments that want plain, auditable keyword rules in front of a model-based
/// evaluator. It is much cruder than `TrainedValueEvaluator`: negation, irony and context are
/// invisible to it. Class probabilities are derived from the component v: p(supported) =
/// max(v, 0), p(opposed) = max(-v, 0), p(no connection) = 1 - |v|.
public struct LexiconValueEvaluator: ValueEvaluator {
    /// The stems of one value.
    public struct Entry: Sendable, Codable, Equatable {
        public var supports: [String]
        public var opposes: [String]
        public init(supports: [String], opposes: [String] = []) {
            self.supports = supports
            self.opposes = opposes
        }
    }

    public let name: String
    /// Stems per value; values without an entry are always 0.
    public let lexicon: [SchwartzValue: Entry]
    /// How strongly one matched stem moves a component (tanh(weight) for a single match).
    public let weight: Double

    /// An evaluator over `lexicon`; stems are matched case-insensitively at word starts.
    public init(name: String = "lexicon", lexicon: [SchwartzValue: Entry] = LexiconValueEvaluator.builtIn, weight: Double = 0.8) {
        self.name = name
        self.lexicon = lexicon.mapValues { Entry(supports: $0.supports.map { $0.lowercased() }, opposes: $0.opposes.map { $0.lowercased() }) }
        self.weight = weight
    }

    /// Reads a lexicon file: a JSON object keyed by value name, each `{"supports": [stems],
    /// "opposes": [stems]}`. Errors name the file and the field.
    public static func load(contentsOf path: String, weight: Double = 0.8) throws(ValueSpaceError) -> LexiconValueEvaluator {
        guard let data = FileManager.default.contents(atPath: path) else { throw .invalidProfile(path: path, message: "cannot read the file") }
        let raw: [String: Entry]
        do { raw = try JSONDecoder().decode([String: Entry].self, from: data) } catch {
            throw .invalidProfile(path: path, message: "expected an object keyed by value name, each {\"supports\": [...], \"opposes\": [...]}: \(error)")
        }
        var lexicon: [SchwartzValue: Entry] = [:]
        for (key, entry) in raw {
            guard let value = SchwartzValue(name: key) else { throw .invalidProfile(path: path, message: "field '\(key)': unknown value name") }
            if (entry.supports + entry.opposes).contains(where: { $0.trimmingCharacters(in: .whitespaces).isEmpty }) {
                throw .invalidProfile(path: path, message: "field '\(key)': empty stem")
            }
            lexicon[value] = entry
        }
        return LexiconValueEvaluator(name: "lexicon:\(URL(fileURLWithPath: path).lastPathComponent)", lexicon: lexicon, weight: weight)
    }

    public func evaluate(_ pairs: [ValuePair]) async throws -> [ValueAssessment] { pairs.map(assess) }

    /// The assessment of one pair, synchronously.
    public func assess(_ pair: ValuePair) -> ValueAssessment {
        let words = Self.words(pair.response)
        var components = [Double](repeating: 0, count: SchwartzValue.allCases.count)
        for (value, entry) in lexicon {
            var score = 0
            for word in words {
                if entry.supports.contains(where: { word.hasPrefix($0) }) { score += 1 }
                if entry.opposes.contains(where: { word.hasPrefix($0) }) { score -= 1 }
            }
            components[value.index] = tanh(weight * Double(score))
        }
        let probabilities = components.map { v in [max(-v, 0), 1 - abs(v), max(v, 0)] }
        // tanh stays within [-1, 1], so the checked initialiser cannot fail.
        return ValueAssessment(vector: (try? ValueVector(components)) ?? .zero, probabilities: probabilities)
    }

    /// Lower-cased runs of letters (apostrophes kept inside words); stems are single words.
    static func words(_ text: String) -> [Substring] {
        let lower = text.lowercased()
        return lower.split { !($0.isLetter || $0 == "'") }
    }

    /// A small built-in lexicon, written for this project: a few unambiguous stems per value.
    public static let builtIn: [SchwartzValue: Entry] = [
        .selfDirection: Entry(supports: ["independen", "creativ", "curious", "explore", "autonom", "freedom"], opposes: ["obey", "submit"]),
        .stimulation: Entry(supports: ["adventur", "excit", "thrill", "daring", "novel"], opposes: ["boring", "routine"]),
        .hedonism: Entry(supports: ["pleasure", "enjoy", "indulg", "joyful", "delight"], opposes: ["abstain", "ascetic"]),
        .achievement: Entry(supports: ["succe", "ambiti", "achiev", "accomplish", "compet", "victor"], opposes: ["lazy", "quit"]),
        .power: Entry(supports: ["dominat", "control", "power", "wealth", "authority", "crush", "exploit"], opposes: ["humble", "empower"]),
        .security: Entry(supports: ["safe", "secur", "protect", "stabil", "caution"], opposes: ["reckless", "danger", "unsafe", "weapon"]),
        .tradition: Entry(supports: ["tradition", "ancestr", "heritage", "ritual", "faith"], opposes: ["outdated"]),
        .conformity: Entry(supports: ["polite", "rules", "obedien", "respectful", "comply"], opposes: ["rebel", "defy", "disobey"]),
        .benevolence: Entry(supports: ["help", "kind", "caring", "compassion", "honest", "forgiv", "support", "friend"], opposes: ["hurt", "harm", "cruel", "betray", "lie", "revenge"]),
        .universalism: Entry(supports: ["equal", "justice", "fair", "environment", "tolera", "everyone", "nature"], opposes: ["discriminat", "inferior", "pollut", "hate"]),
    ]
}
