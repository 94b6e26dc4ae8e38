public import Foundation
public import ValueSpace
import Yams

/// What the guard enforces: a target profile, per-value thresholds on the user's input and on
/// the model's output, and what to do when one is crossed.
///
/// A policy file is JSON or YAML (docs/server.md, examples/guard-policy.json). Loading is strict:
/// unknown fields, unknown value names, out-of-range numbers and impossible combinations are
/// errors that name the file and the field (`output.thresholds.power.max`).
public struct GuardPolicy: Sendable, Equatable {
    /// What happens when a threshold is crossed, in rising severity: the strictest action among
    /// the crossed thresholds decides.
    public enum Action: String, Sendable, Codable, CaseIterable, Comparable {
        /// Pass the text on (the crossing is still audited).
        case allow
        /// Pass the text on, marked in the audit log, the metrics and the reply's `valuealign` field.
        case flag
        /// Output only: ask the upstream model to critique and rewrite its answer, up to
        /// `revision.maxRounds` times; if no rewrite passes, block.
        case revise
        /// Answer with the policy's refusal instead (finish reason `content_filter`).
        case block

        var severity: Int { Self.allCases.firstIndex(of: self)! }
        public static func < (a: Action, b: Action) -> Bool { a.severity < b.severity }
    }

    /// A bound on one value's component: crossed when the component is below `min` or above `max`.
    public struct Threshold: Sendable, Equatable {
        public var min: Double?
        public var max: Double?
        public var action: Action
        public init(min: Double? = nil, max: Double? = nil, action: Action) {
            self.min = min
            self.max = max
            self.action = action
        }
    }

    /// The checks on one side of the conversation.
    public struct Stage: Sendable, Equatable {
        public var thresholds: [SchwartzValue: Threshold]
        /// Output only: bounds on the probe monitor's reading of the answer's own activations
        /// (`serve --monitor probes`; p(supported) - p(opposed) per value, in [-1, 1]).
        public var probeThresholds: [SchwartzValue: Threshold] = [:]
        /// Crossed when the text's distance to the target exceeds it.
        public var maxDistance: Double?
        public var distanceAction: Action
        public init(thresholds: [SchwartzValue: Threshold] = [:], maxDistance: Double? = nil, distanceAction: Action = .flag) {
            self.thresholds = thresholds
            self.maxDistance = maxDistance
            self.distanceAction = distanceAction
        }
        /// Whether the stage checks anything (an empty stage needs no evaluation).
        public var isEmpty: Bool { thresholds.isEmpty && maxDistance == nil }
    }

    /// Critique-and-revise settings.
    public struct Revision: Sendable, Equatable {
        /// Rewrites tried before falling back to block (1...5).
        public var maxRounds: Int
        /// What the upstream model is told after the list of crossed thresholds.
        public var instructions: String
        public init(maxRounds: Int = 1, instructions: String = Revision.defaultInstructions) {
            self.maxRounds = maxRounds
            self.instructions = instructions
        }
        public static let defaultInstructions =
            "Rewrite your previous answer so that it no longer does this, keeping whatever was helpful. Reply with the rewritten answer only."
    }

    /// How streamed answers are checked.
    public struct Streaming: Sendable, Equatable {
        public enum Mode: String, Sendable, CaseIterable {
            /// Text is released in windows, each after the answer so far has passed the output
            /// check; a failed check ends the stream with the refusal and `content_filter`.
            case windowed
            /// The whole answer is generated and checked (revise works) before any of it is sent.
            case buffered
        }
        public var mode: Mode
        /// Characters held back and checked together in windowed mode (16...8192).
        public var windowCharacters: Int
        /// Characters of already-released text read before each new window (0...65536), so that
        /// each window's check costs the same however long the answer is; the last window is
        /// checked with the whole answer (`WindowedStream`).
        public var contextCharacters: Int
        public init(mode: Mode = .windowed, windowCharacters: Int = 160, contextCharacters: Int = 1_200) {
            self.mode = mode
            self.windowCharacters = windowCharacters
            self.contextCharacters = contextCharacters
        }
    }

    public var name: String
    public var target: ValueProfile
    public var distance: ValueDistance
    public var input: Stage
    public var output: Stage
    /// The answer a client gets when a request or an answer is blocked.
    public var refusal: String
    public var revision: Revision
    public var streaming: Streaming

    public init(
        name: String = "default", target: ValueProfile, distance: ValueDistance = .basealign, input: Stage = Stage(), output: Stage = Stage(),
        refusal: String = GuardPolicy.defaultRefusal, revision: Revision = Revision(), streaming: Streaming = Streaming()
    ) {
        self.name = name
        self.target = target
        self.distance = distance
        self.input = input
        self.output = output
        self.refusal = refusal
        self.revision = revision
        self.streaming = streaming
    }

    public static let defaultRefusal = "I can't help with that request."

    /// A policy that only measures: the default target, no thresholds (everything is allowed and audited).
    public static func monitorOnly() throws -> GuardPolicy {
        GuardPolicy(name: "monitor", target: try ProfileStore.defaultTarget())
    }

    // MARK: - Loading

    /// Reads and validates a policy file (`.json`, `.yaml` or `.yml`). A target given as a
    /// relative path is looked up beside the policy file first.
    public static func load(contentsOf path: String) throws(GuardConfigurationError) -> GuardPolicy {
        guard let data = FileManager.default.contents(atPath: path) else { throw .policy(path: path, field: nil, message: "cannot read the file") }
        let yaml = path.hasSuffix(".yaml") || path.hasSuffix(".yml")
        return try decode(data, origin: path, yaml: yaml, directory: URL(fileURLWithPath: path).deletingLastPathComponent().path)
    }

    /// Validates policy text; `origin` names it in errors.
    public static func decode(_ data: Data, origin: String, yaml: Bool = false, directory: String? = nil) throws(GuardConfigurationError) -> GuardPolicy {
        let root: JSON
        if yaml {
            guard let text = String(data: data, encoding: .utf8) else { throw .policy(path: origin, field: nil, message: "not valid UTF-8") }
            do {
                root = try JSON(yaml: try Yams.load(yaml: text) as Any)
            } catch let error as GuardConfigurationError {
                throw error.located(origin)
            } catch {
                throw .policy(path: origin, field: nil, message: "not valid YAML: \(error)")
            }
        } else {
            do { root = try JSONDecoder().decode(JSON.self, from: data) } catch {
                throw .policy(path: origin, field: nil, message: "not valid JSON")
            }
        }
        var reader = PolicyReader(origin: origin, directory: directory)
        return try reader.policy(root)
    }
}

/// A start-up error: a policy, key or server setting that cannot work. Messages name the file
/// and the field.
public enum GuardConfigurationError: Error, Equatable, CustomStringConvertible {
    case policy(path: String, field: String?, message: String)
    case keys(path: String, field: String?, message: String)
    case setting(name: String, message: String)
    case audit(String)

    public var description: String {
        switch self {
        case let .policy(path, field, message), let .keys(path, field, message):
            "\(path): \(field.map { "field '\($0)': " } ?? "")\(message)"
        case let .setting(name, message): "\(name): \(message)"
        case let .audit(message): "audit log: \(message)"
        }
    }

    func located(_ origin: String) -> GuardConfigurationError {
        if case let .policy(_, field, message) = self { return .policy(path: origin, field: field, message: message) }
        return self
    }
}

extension JSON {
    /// The JSON form of what Yams parsed.
    init(yaml value: Any) throws(GuardConfigurationError) {
        switch value {
        case is NSNull: self = .null
        case let b as Bool: self = .bool(b)
        case let i as Int: self = .number(Double(i))
        case let d as Double: self = .number(d)
        case let s as String: self = .string(s)
        case let a as [Any]: self = .array(try a.map { v throws(GuardConfigurationError) in try JSON(yaml: v) })
        case let o as [String: Any]:
            var result: [String: JSON] = [:]
            for (k, v) in o { result[k] = try JSON(yaml: v) }
            self = .object(result)
        case let o as [AnyHashable: Any]:
            var result: [String: JSON] = [:]
            for (k, v) in o { result["\(k.base)"] = try JSON(yaml: v) }
            self = .object(result)
        default:
            if "\(type(of: value))".hasPrefix("Optional") { self = .null; return }
            throw .policy(path: "", field: nil, message: "unsupported YAML value \(value)")
        }
    }
}

/// Walks the policy document, keeping the path of the field being read for error messages.
struct PolicyReader {
    let origin: String
    let directory: String?

    func fail(_ field: String?, _ message: String) -> GuardConfigurationError { .policy(path: origin, field: field, message: message) }

    func object(_ value: JSON, _ field: String?, allowed: [String]) throws(GuardConfigurationError) -> [String: JSON] {
        guard case let .object(o) = value else { throw fail(field, "expected an object, got \(value.typeName)") }
        for key in o.keys.sorted() where !allowed.contains(key) {
            throw fail(field.map { "\($0).\(key)" } ?? key, "unknown field; expected one of \(allowed.joined(separator: ", "))")
        }
        return o
    }

    func string(_ value: JSON?, _ field: String) throws(GuardConfigurationError) -> String? {
        switch value {
        case nil, .null?: return nil
        case let .string(s)?: return s
        case let other?: throw fail(field, "expected a string, got \(other.typeName)")
        }
    }

    func number(_ value: JSON?, _ field: String) throws(GuardConfigurationError) -> Double? {
        switch value {
        case nil, .null?: return nil
        case let .number(d)?:
            guard d.isFinite else { throw fail(field, "must be finite") }
            return d
        case let other?: throw fail(field, "expected a number, got \(other.typeName)")
        }
    }

    func action(_ value: JSON?, _ field: String, default fallback: GuardPolicy.Action, input: Bool) throws(GuardConfigurationError) -> GuardPolicy.Action {
        guard let name = try string(value, field) else { return fallback }
        guard let action = GuardPolicy.Action(rawValue: name) else {
            throw fail(field, "unknown action '\(name)'; expected one of \(GuardPolicy.Action.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        if input && action == .revise { throw fail(field, "revise is only possible on the output (the user's words cannot be rewritten); use flag or block") }
        return action
    }

    mutating func policy(_ root: JSON) throws(GuardConfigurationError) -> GuardPolicy {
        let o = try object(root, nil, allowed: ["version", "name", "target", "distance", "input", "output", "refusal", "revision", "streaming"])
        if let version = try number(o["version"], "version"), version != 1 { throw fail("version", "only version 1 is known, got \(version)") }
        let name = try string(o["name"], "name") ?? URL(fileURLWithPath: origin).deletingPathExtension().lastPathComponent
        let target = try target(o["target"])
        var distance = ValueDistance.basealign
        if let d = try string(o["distance"], "distance") {
            guard let parsed = ValueDistance(rawValue: d) else {
                throw fail("distance", "unknown distance '\(d)'; expected one of \(ValueDistance.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            distance = parsed
        }
        let input = try stage(o["input"], "input")
        let output = try stage(o["output"], "output")
        let refusal = try string(o["refusal"], "refusal") ?? GuardPolicy.defaultRefusal
        if refusal.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty { throw fail("refusal", "must not be empty") }
        var revision = GuardPolicy.Revision()
        if let r = o["revision"], r != .null {
            let ro = try object(r, "revision", allowed: ["maxRounds", "instructions"])
            if let rounds = try number(ro["maxRounds"], "revision.maxRounds") {
                guard rounds == rounds.rounded(), (1...5).contains(rounds) else { throw fail("revision.maxRounds", "must be an integer in 1...5, got \(rounds)") }
                revision.maxRounds = Int(rounds)
            }
            if let text = try string(ro["instructions"], "revision.instructions") {
                guard !text.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty else { throw fail("revision.instructions", "must not be empty") }
                revision.instructions = text
            }
        }
        var streaming = GuardPolicy.Streaming()
        if let s = o["streaming"], s != .null {
            let so = try object(s, "streaming", allowed: ["mode", "windowCharacters", "contextCharacters"])
            if let mode = try string(so["mode"], "streaming.mode") {
                guard let m = GuardPolicy.Streaming.Mode(rawValue: mode) else {
                    throw fail("streaming.mode", "unknown mode '\(mode)'; expected windowed or buffered")
                }
                streaming.mode = m
            }
            if let w = try number(so["windowCharacters"], "streaming.windowCharacters") {
                guard w == w.rounded(), (16...8192).contains(w) else { throw fail("streaming.windowCharacters", "must be an integer in 16...8192, got \(w)") }
                streaming.windowCharacters = Int(w)
            }
            if let c = try number(so["contextCharacters"], "streaming.contextCharacters") {
                guard c == c.rounded(), (0...65_536).contains(c) else { throw fail("streaming.contextCharacters", "must be an integer in 0...65536, got \(c)") }
                streaming.contextCharacters = Int(c)
            }
        }
        return GuardPolicy(name: name, target: target, distance: distance, input: input, output: output, refusal: refusal,
                           revision: revision, streaming: streaming)
    }

    func target(_ value: JSON?) throws(GuardConfigurationError) -> ValueProfile {
        switch value {
        case nil, .null?:
            do { return try ProfileStore.defaultTarget() } catch { throw fail("target", error.description) }
        case let .string(nameOrPath)?:
            var candidate = nameOrPath
            if let directory, !nameOrPath.hasPrefix("/") {
                let beside = URL(fileURLWithPath: directory).appendingPathComponent(nameOrPath).path
                if FileManager.default.fileExists(atPath: beside) { candidate = beside }
            }
            do { return try ProfileStore.resolve(candidate) } catch { throw fail("target", error.description) }
        case let .object(fields)?:
            // An inline profile: re-encoded and read by ValueProfile's own strict decoder.
            do {
                let data = try JSONSerialization.data(withJSONObject: fields.mapValues(\.foundation))
                return try ValueProfile.decode(data, origin: "target")
            } catch let error as ValueSpaceError {
                if case let .invalidProfile(_, message) = error { throw fail("target", message) }
                throw fail("target", error.description)
            } catch {
                throw fail("target", "\(error)")
            }
        case let other?:
            throw fail("target", "expected a preset name, a profile file or an inline profile object, got \(other.typeName)")
        }
    }

    /// Bounds per value name: `{"benevolence": {"min": -0.5, "action": "block"}, ...}`.
    func thresholds(_ t: JSON?, _ field: String, stageAction: GuardPolicy.Action, input isInput: Bool) throws(GuardConfigurationError) -> [SchwartzValue: GuardPolicy.Threshold] {
        guard let t, t != .null else { return [:] }
        guard case let .object(entries) = t else { throw fail(field, "expected an object keyed by value name, got \(t.typeName)") }
        var result: [SchwartzValue: GuardPolicy.Threshold] = [:]
        for key in entries.keys.sorted() {
            let path = "\(field).\(key)"
            guard let schwartz = SchwartzValue(name: key) else {
                throw fail(path, "unknown value name; expected one of \(SchwartzValue.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            let to = try object(entries[key]!, path, allowed: ["min", "max", "action"])
            let lower = try number(to["min"], "\(path).min"), upper = try number(to["max"], "\(path).max")
            if lower == nil && upper == nil { throw fail(path, "needs min, max or both") }
            for (bound, name) in [(lower, "min"), (upper, "max")] {
                if let b = bound, !(b >= -1 && b <= 1) { throw fail("\(path).\(name)", "\(b) is outside [-1, 1]") }
            }
            if let lower, let upper, lower > upper { throw fail(path, "min \(lower) is above max \(upper)") }
            result[schwartz] = GuardPolicy.Threshold(
                min: lower, max: upper, action: try action(to["action"], "\(path).action", default: stageAction, input: isInput))
        }
        return result
    }

    func stage(_ value: JSON?, _ field: String) throws(GuardConfigurationError) -> GuardPolicy.Stage {
        guard let value, value != .null else { return GuardPolicy.Stage() }
        let isInput = field == "input"
        let o = try object(value, field, allowed: isInput ? ["action", "thresholds", "maxDistance"] : ["action", "thresholds", "maxDistance", "probes"])
        let stageAction = try action(o["action"], "\(field).action", default: .block, input: isInput)
        var stage = GuardPolicy.Stage()
        stage.thresholds = try thresholds(o["thresholds"], "\(field).thresholds", stageAction: stageAction, input: isInput)
        stage.probeThresholds = try thresholds(o["probes"], "\(field).probes", stageAction: stageAction, input: isInput)
        if let d = o["maxDistance"], d != .null {
            let path = "\(field).maxDistance"
            let limit: Double?
            var distanceAction = GuardPolicy.Action.flag
            if case let .number(n) = d {
                limit = n
                distanceAction = stageAction
            } else {
                let dobj = try object(d, path, allowed: ["limit", "action"])
                limit = try number(dobj["limit"], "\(path).limit")
                distanceAction = try action(dobj["action"], "\(path).action", default: stageAction, input: isInput)
            }
            guard let limit else { throw fail("\(path).limit", "missing") }
            guard limit > 0 else { throw fail(path, "must be > 0, got \(limit)") }
            stage.maxDistance = limit
            stage.distanceAction = distanceAction
        }
        return stage
    }
}

extension JSON {
    /// Foundation's form, for JSONSerialization.
    var foundation: Any {
        switch self {
        case .null: NSNull()
        case let .bool(b): b
        case let .number(d): d
        case let .string(s): s
        case let .array(a): a.map(\.foundation)
        case let .object(o): o.mapValues(\.foundation)
        }
    }
}
