public import Foundation
public import ValueAlignCore

/// A constitution: written principles a model's answers are critiqued and revised against
/// (Constitutional AI). Each principle carries its critique request and its revision request.
///
/// Files are JSON (`{"name": ..., "principles": [{"id", "text", "critique", "revision"}]}`, where
/// `critique` and `revision` are optional) or plain text with one principle per line ("#" starts a
/// comment); principles without their own requests get ones derived from their text.
/// `Constitution.fromProfile` writes one from a target value profile.
public struct Constitution: Sendable, Codable, Equatable {
    /// One principle.
    public struct Principle: Sendable, Codable, Equatable {
        public var id: String
        /// The principle in one plain sentence ("Respect the safety of others.").
        public var text: String
        /// What the critic is asked to find.
        public var critique: String
        /// What the reviser is asked to do.
        public var revision: String
        /// Relative chance of being drawn for an answer (default 1).
        public var weight: Double

        public init(id: String, text: String, critique: String? = nil, revision: String? = nil, weight: Double = 1) {
            self.id = id
            self.text = text
            self.critique = critique ?? "Identify specific ways in which the assistant's last response goes against this principle: \(text)"
            self.revision = revision ?? "Rewrite the assistant's response so that it follows this principle: \(text) Keep everything that was helpful and answer the user's request directly."
            self.weight = weight
        }

        enum CodingKeys: String, CodingKey { case id, text, critique, revision, weight }

        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            self.init(id: try c.decodeIfPresent(String.self, forKey: .id) ?? "", text: try c.decode(String.self, forKey: .text),
                      critique: try c.decodeIfPresent(String.self, forKey: .critique),
                      revision: try c.decodeIfPresent(String.self, forKey: .revision),
                      weight: try c.decodeIfPresent(Double.self, forKey: .weight) ?? 1)
        }
    }

    public var name: String
    public var principles: [Principle]

    /// A checked constitution: at least one principle, each with non-empty text and requests,
    /// a positive finite weight and a unique id (empty ids become "p1", "p2", ...).
    public init(name: String, principles: [Principle], origin: String = "constitution") throws(ConstitutionError) {
        guard !principles.isEmpty else { throw .empty(origin) }
        var seen: Set<String> = []
        var checked: [Principle] = []
        for (i, p) in principles.enumerated() {
            var p = p
            if p.id.isEmpty { p.id = "p\(i + 1)" }
            let at = "\(origin): principle \(i + 1) ('\(p.id)')"
            for (field, value) in [("text", p.text), ("critique", p.critique), ("revision", p.revision)]
            where value.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty {
                throw .invalid("\(at): empty \(field)")
            }
            guard p.weight > 0, p.weight.isFinite else { throw .invalid("\(at): weight must be a finite number > 0, got \(p.weight)") }
            guard seen.insert(p.id).inserted else { throw .invalid("\(at): id '\(p.id)' appears twice") }
            checked.append(p)
        }
        self.name = name
        self.principles = checked
    }

    enum CodingKeys: String, CodingKey { case name, principles }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        try self.init(name: try c.decodeIfPresent(String.self, forKey: .name) ?? "constitution",
                      principles: try c.decodeIfPresent([Principle].self, forKey: .principles) ?? [])
    }

    /// Reads a constitution file (JSON, or text with one principle per line).
    public static func load(_ path: String) throws -> Constitution {
        guard let data = FileManager.default.contents(atPath: path) else { throw ConstitutionError.unreadable(path) }
        guard let text = String(data: data, encoding: .utf8) else { throw ConstitutionError.invalid("\(path): not UTF-8 text") }
        let name = URL(fileURLWithPath: path).deletingPathExtension().lastPathComponent
        if text.trimmingCharacters(in: .whitespacesAndNewlines).hasPrefix("{") {
            // Decoded unchecked, then checked once with the file named in every error.
            struct File: Decodable { var name: String?; var principles: [Principle]? }
            let file: File
            do { file = try JSONDecoder().decode(File.self, from: data) } catch {
                throw ConstitutionError.invalid("\(path): \(JSONLines.describe(error))")
            }
            return try Constitution(name: file.name ?? "constitution", principles: file.principles ?? [], origin: path)
        }
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
        let principles = lines.filter { !$0.isEmpty && !$0.hasPrefix("#") }.enumerated().map { Principle(id: "p\($0.offset + 1)", text: $0.element) }
        return try Constitution(name: name, principles: principles, origin: path)
    }

    /// Writes the constitution as JSON.
    public func write(to path: String) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        try encoder.encode(self).write(to: URL(fileURLWithPath: path), options: .atomic)
    }

    /// Principle `i` drawn with probability proportional to its weight, from `seed` (the same seed
    /// always draws the same principle).
    public func principle(seed: UInt64) -> Principle {
        let total = principles.reduce(0) { $0 + $1.weight }
        var generator = SplitMix64(seed: seed)
        var x = Double.random(in: 0..<total, using: &generator)
        for p in principles {
            if x < p.weight { return p }
            x -= p.weight
        }
        return principles[principles.count - 1]
    }

    /// Values whose target weight is at least this size become principles.
    public static let profileThreshold = 0.3

    /// The constitution a target profile implies: a principle to uphold each value the target
    /// supports, one not to promote each value it opposes (in plain sentences from the value's
    /// definition), weighted by the target's weight, plus a helpfulness principle so that
    /// revisions stay answers rather than refusals.
    public static func fromProfile(_ target: ValueProfile) throws(ConstitutionError) -> Constitution {
        var principles: [Principle] = []
        for v in SchwartzValue.allCases {
            let w = target.vector[v]
            guard abs(w) >= profileThreshold else { continue }
            let definition = v.definition.prefix(1).lowercased() + v.definition.dropFirst()
            if w > 0 {
                principles.append(Principle(
                    id: "uphold-\(v.rawValue)",
                    text: "Uphold \(v.displayName.lowercased()): \(definition)",
                    critique: "Identify specific ways in which the assistant's last response fails to respect \(v.displayName.lowercased()) (\(definition)), or works against it.",
                    revision: "Rewrite the assistant's response so that it respects \(v.displayName.lowercased()) (\(definition)). Keep everything that was helpful and still answer the user's request.",
                    weight: w))
            } else {
                principles.append(Principle(
                    id: "temper-\(v.rawValue)",
                    text: "Do not promote \(v.displayName.lowercased()) for its own sake: \(definition)",
                    critique: "Identify specific ways in which the assistant's last response pushes \(v.displayName.lowercased()) (\(definition)) at the expense of others.",
                    revision: "Rewrite the assistant's response so that it does not push \(v.displayName.lowercased()) at the expense of others. Keep everything that was helpful and still answer the user's request.",
                    weight: -w))
            }
        }
        guard !principles.isEmpty else { throw .empty("profile '\(target.name)' (no value weighs \(profileThreshold) or more)") }
        principles.append(Principle(
            id: "helpful-harmless",
            text: "Be helpful and honest: answer the request itself, and decline only what would help someone cause harm.",
            critique: "Identify ways in which the assistant's last response is unhelpful, evasive, dishonest, or helps someone cause harm.",
            revision: "Rewrite the assistant's response so that it answers the request helpfully and honestly, and declines only what would help someone cause harm."))
        return try Constitution(name: "from-\(target.name)", principles: principles)
    }
}

/// What is wrong with a constitution.
public enum ConstitutionError: Error, Equatable, CustomStringConvertible {
    case unreadable(String)
    case empty(String)
    case invalid(String)

    public var description: String {
        switch self {
        case let .unreadable(path): "cannot read the constitution '\(path)'"
        case let .empty(origin): "\(origin) has no principles; write at least one (one per line in a text file, or {\"principles\": [{\"text\": ...}]} in JSON)"
        case let .invalid(message): message
        }
    }
}
