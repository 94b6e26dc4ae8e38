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
    /// The stems as lower-case UTF-8 bytes, by value index: matching compares bytes (this
    /// evaluator sits on the guard's hot path).
    private let compiled: [(index: Int, supports: [[UInt8]], opposes: [[UInt8]])]

    /// An evaluator over `lexicon`; stems are matched case-insensitively at word starts.
    public init(name: String = "lexicon", lexicon: [SchwartzValue: Entry] = LexiconValueEvaluator.builtIn, weight: Double = 0.8) {
        self.name = name
        self.lexicon = lexicon.mapValues { Entry(supports: $0.supports.map { $0.lowercased() }, opposes: $0.opposes.map { $0.lowercased() }) }
        self.weight = weight
        compiled = self.lexicon.sorted { $0.key < $1.key }.map { value, entry in
            (value.index, entry.supports.map { Array($0.utf8) }, entry.opposes.map { Array($0.utf8) })
        }
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
        for (index, supports, opposes) in compiled {
            var score = 0
            for word in words {
                if supports.contains(where: { Self.word(word, startsWith: $0) }) { score += 1 }
                if opposes.contains(where: { Self.word(word, startsWith: $0) }) { score -= 1 }
            }
            components[index] = tanh(weight * Double(score))
        }
        let probabilities = components.map { v in [max(-v, 0), 1 - abs(v), max(v, 0)] }
        // tanh stays within [-1, 1], so the checked initialiser cannot fail.
        return ValueAssessment(vector: (try? ValueVector(components)) ?? .zero, probabilities: probabilities)
    }

    /// Lower-cased words as UTF-8 bytes: runs of letters and apostrophes (any non-ASCII byte
    /// counts as a letter, so accented words stay whole); stems are single words.
    static func words(_ text: String) -> [ArraySlice<UInt8>] {
        let bytes = Array(text.lowercased().utf8)
        var result: [ArraySlice<UInt8>] = []
        var start: Int?
        for (i, b) in bytes.enumerated() {
            let inWord = (b >= 0x61 && b <= 0x7A) || b >= 0x80 || b == 0x27 || b == 0x2D
            if inWord, start == nil { start = i }
            if !inWord, let s = start {
                result.append(bytes[s..<i])
                start = nil
            }
        }
        if let s = start { result.append(bytes[s...]) }
        return result
    }

    static func word(_ word: ArraySlice<UInt8>, startsWith stem: [UInt8]) -> Bool {
        guard word.count >= stem.count else { return false }
        var i = word.startIndex
        for b in stem {
            if word[i] != b { return false }
            i += 1
        }
        return true
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
