/// A point in the basic value space: ten components in [-1, 1], one per `SchwartzValue`
/// (-1 opposed, 0 no connection, +1 supported). Encoded as a JSON object keyed by value name.
public struct ValueVector: Sendable, Equatable, Hashable {
    public private(set) var components: [Double]

    /// All zeros (no connection to any value).
    public static let zero = ValueVector(unchecked: [Double](repeating: 0, count: 10))

    /// A vector from ten components in [-1, 1].
    public init(_ components: [Double]) throws(ValueSpaceError) {
        guard components.count == SchwartzValue.allCases.count else {
            throw .invalidVector("expected \(SchwartzValue.allCases.count) components, got \(components.count)")
        }
        for (i, c) in components.enumerated() where !(c >= -1 && c <= 1) {
            throw .invalidVector("\(SchwartzValue.allCases[i].rawValue) = \(c) is outside [-1, 1]")
        }
        self.components = components
    }

    init(unchecked components: [Double]) { self.components = components }

    /// A vector from named components; values not named are 0.
    public init(_ named: [SchwartzValue: Double]) throws(ValueSpaceError) {
        var c = [Double](repeating: 0, count: 10)
        for (v, x) in named { c[v.index] = x }
        try self.init(c)
    }

    public subscript(_ value: SchwartzValue) -> Double {
        get { components[value.index] }
        set { components[value.index] = Swift.min(1, Swift.max(-1, newValue)) }
    }
}

extension ValueVector: Codable {
    struct Key: CodingKey {
        var stringValue: String
        var intValue: Int? { nil }
        init(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
    }

    public init(from decoder: any Decoder) throws {
        // Either {"security": 0.5, ...} (missing values are 0) or an array of ten numbers.
        if var array = try? decoder.unkeyedContainer() {
            var c: [Double] = []
            while !array.isAtEnd { c.append(try array.decode(Double.self)) }
            do { try self.init(c) } catch {
                throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: error.description))
            }
            return
        }
        let container = try decoder.container(keyedBy: Key.self)
        var named: [SchwartzValue: Double] = [:]
        for key in container.allKeys {
            guard let value = SchwartzValue(name: key.stringValue) else {
                throw DecodingError.dataCorruptedError(
                    forKey: key, in: container,
                    debugDescription: "unknown value name '\(key.stringValue)'; expected one of \(SchwartzValue.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            named[value] = try container.decode(Double.self, forKey: key)
        }
        do { try self.init(named) } catch {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: error.description))
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: Key.self)
        for v in SchwartzValue.allCases { try container.encode(components[v.index], forKey: Key(stringValue: v.rawValue)) }
    }
}

/// Errors of the value space, naming the value, field or file at fault.
public enum ValueSpaceError: Error, Equatable, CustomStringConvertible {
    case invalidVector(String)
    case invalidProfile(path: String, message: String)
    case unknownProfile(String, available: [String])
    case data(path: String, line: Int, message: String)
    /// A computation got inputs it cannot work with (no samples, unpaired data, bad settings).
    case invalidArgument(String)
    /// A reward could not be computed (the evaluator failed or returned the wrong count).
    case reward(String)

    public var description: String {
        switch self {
        case let .invalidVector(m): "value vector: \(m)"
        case let .invalidProfile(path, m): "\(path): \(m)"
        case let .unknownProfile(name, available): "unknown profile '\(name)'; available: \(available.joined(separator: ", "))"
        case let .data(path, line, m): "\(path):\(line): \(m)"
        case let .invalidArgument(m): m
        case let .reward(m): "reward: \(m)"
        }
    }
}
