public import Foundation

/// A confidence interval for one value's component.
public struct ConfidenceInterval: Sendable, Codable, Equatable, Hashable {
    public var lower: Double
    public var upper: Double

    public init(lower: Double, upper: Double) {
        self.lower = lower
        self.upper = upper
    }

    public var width: Double { upper - lower }
    /// Whether `x` lies in the interval (bounds included).
    public func contains(_ x: Double) -> Bool { lower <= x && x <= upper }
}

/// A named point in the value space with what is known of its origin: a target to align to, a
/// profile measured from a model's responses, or a reference (a country, another model).
///
/// JSON form (docs/profile-format.md): `name`, `kind`, `vector` (object by value name or array
/// of ten), optional `sampleCount`, `confidenceLevel`, `intervals` (by value name:
/// `{"lower", "upper"}`), `source`, `notes`. Decoding is strict: unknown fields, unknown value
/// names, components outside [-1, 1] and inverted intervals are errors naming the field.
public struct ValueProfile: Sendable, Equatable {
    /// What a profile stands for.
    public enum Kind: String, Sendable, Codable, CaseIterable {
        /// Where alignment should lead (BaseAlign's target).
        case target
        /// Measured from a model's responses.
        case measured
        /// For comparison: a country's values, a published model profile.
        case reference
    }

    public var name: String
    public var kind: Kind
    public var vector: ValueVector
    /// How many assessed responses a measured profile averages.
    public var sampleCount: Int?
    /// The level of `intervals` (e.g. 0.95).
    public var confidenceLevel: Double?
    /// Per-value confidence intervals of the components; values absent have none.
    public var intervals: [SchwartzValue: ConfidenceInterval]
    /// Where the figures come from.
    public var source: String?
    public var notes: String?

    public init(
        name: String, kind: Kind, vector: ValueVector, sampleCount: Int? = nil, confidenceLevel: Double? = nil,
        intervals: [SchwartzValue: ConfidenceInterval] = [:], source: String? = nil, notes: String? = nil
    ) {
        self.name = name
        self.kind = kind
        self.vector = vector
        self.sampleCount = sampleCount
        self.confidenceLevel = confidenceLevel
        self.intervals = intervals
        self.source = source
        self.notes = notes
    }

    /// One value's component.
    public subscript(_ value: SchwartzValue) -> Double { vector[value] }

    /// Reads and validates a profile file; errors are `ValueSpaceError.invalidProfile` naming
    /// `path` and the field.
    public static func load(contentsOf path: String) throws(ValueSpaceError) -> ValueProfile {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw .invalidProfile(path: path, message: "cannot read the file")
        }
        return try decode(data, origin: path)
    }

    /// Decodes and validates profile JSON; `origin` names the data in errors (a path, a preset).
    public static func decode(_ data: Data, origin: String) throws(ValueSpaceError) -> ValueProfile {
        do {
            return try JSONDecoder().decode(ValueProfile.self, from: data)
        } catch let error as DecodingError {
            throw .invalidProfile(path: origin, message: describe(error))
        } catch {
            throw .invalidProfile(path: origin, message: "\(error)")
        }
    }

    /// Pretty, key-sorted JSON in the documented format.
    public func jsonData() throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        return try encoder.encode(self)
    }

    /// Writes the profile as JSON to `path`.
    public func write(to path: String) throws {
        try jsonData().write(to: URL(fileURLWithPath: path), options: .atomic)
    }

    static func describe(_ error: DecodingError) -> String {
        func field(_ path: [any CodingKey]) -> String {
            let p = path.map { $0.intValue.map { "[\($0)]" } ?? $0.stringValue }.joined(separator: ".")
            return p.isEmpty ? "" : "field '\(p)': "
        }
        switch error {
        case let .keyNotFound(key, c): return "\(field(c.codingPath))missing field '\(key.stringValue)'"
        case let .typeMismatch(type, c): return "\(field(c.codingPath))expected \(type)"
        case let .valueNotFound(type, c): return "\(field(c.codingPath))is null, expected \(type)"
        case let .dataCorrupted(c):
            if c.codingPath.isEmpty && c.underlyingError != nil { return "not valid JSON" }
            return "\(field(c.codingPath))\(c.debugDescription)"
        @unknown default: return "\(error)"
        }
    }
}

extension ValueProfile: Codable {
    struct Key: CodingKey {
        var stringValue: String
        var intValue: Int? { nil }
        init(_ s: String) { stringValue = s }
        init(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
    }

    static let fields = ["name", "kind", "vector", "sampleCount", "confidenceLevel", "intervals", "source", "notes"]

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: Key.self)
        for key in c.allKeys where !Self.fields.contains(key.stringValue) {
            throw DecodingError.dataCorruptedError(
                forKey: key, in: c, debugDescription: "unknown field; expected one of \(Self.fields.joined(separator: ", "))")
        }
        name = try c.decode(String.self, forKey: Key("name"))
        if name.trimmingCharacters(in: .whitespaces).isEmpty {
            throw DecodingError.dataCorruptedError(forKey: Key("name"), in: c, debugDescription: "the name is empty")
        }
        if let raw = try c.decodeIfPresent(String.self, forKey: Key("kind")) {
            guard let k = Kind(rawValue: raw) else {
                throw DecodingError.dataCorruptedError(
                    forKey: Key("kind"), in: c,
                    debugDescription: "unknown kind '\(raw)'; expected one of \(Kind.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            kind = k
        } else {
            kind = .target
        }
        guard c.contains(Key("vector")) else {
            throw DecodingError.keyNotFound(Key("vector"), .init(codingPath: c.codingPath, debugDescription: "missing vector"))
        }
        vector = try c.decode(ValueVector.self, forKey: Key("vector"))
        sampleCount = try c.decodeIfPresent(Int.self, forKey: Key("sampleCount"))
        if let n = sampleCount, n < 0 {
            throw DecodingError.dataCorruptedError(forKey: Key("sampleCount"), in: c, debugDescription: "\(n) is negative")
        }
        confidenceLevel = try c.decodeIfPresent(Double.self, forKey: Key("confidenceLevel"))
        if let level = confidenceLevel, !(level > 0 && level < 1) {
            throw DecodingError.dataCorruptedError(forKey: Key("confidenceLevel"), in: c, debugDescription: "\(level) is not in (0, 1)")
        }
        intervals = [:]
        if c.contains(Key("intervals")) {
            let ic = try c.nestedContainer(keyedBy: Key.self, forKey: Key("intervals"))
            for key in ic.allKeys {
                guard let value = SchwartzValue(name: key.stringValue) else {
                    throw DecodingError.dataCorruptedError(
                        forKey: key, in: ic,
                        debugDescription: "unknown value name '\(key.stringValue)'; expected one of \(SchwartzValue.allCases.map(\.rawValue).joined(separator: ", "))")
                }
                let interval = try ic.decode(ConfidenceInterval.self, forKey: key)
                guard interval.lower >= -1, interval.upper <= 1, interval.lower <= interval.upper else {
                    throw DecodingError.dataCorruptedError(
                        forKey: key, in: ic,
                        debugDescription: "[\(interval.lower), \(interval.upper)] is not an interval within [-1, 1]")
                }
                intervals[value] = interval
            }
        }
        source = try c.decodeIfPresent(String.self, forKey: Key("source"))
        notes = try c.decodeIfPresent(String.self, forKey: Key("notes"))
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: Key.self)
        try c.encode(name, forKey: Key("name"))
        try c.encode(kind.rawValue, forKey: Key("kind"))
        try c.encode(vector, forKey: Key("vector"))
        try c.encodeIfPresent(sampleCount, forKey: Key("sampleCount"))
        try c.encodeIfPresent(confidenceLevel, forKey: Key("confidenceLevel"))
        if !intervals.isEmpty {
            var ic = c.nestedContainer(keyedBy: Key.self, forKey: Key("intervals"))
            for (value, interval) in intervals.sorted(by: { $0.key < $1.key }) {
                try ic.encode(interval, forKey: Key(value.rawValue))
            }
        }
        try c.encodeIfPresent(source, forKey: Key("source"))
        try c.encodeIfPresent(notes, forKey: Key("notes"))
    }
}
