import Foundation
import Testing
import ValueAlignServer
import ValueSpace

@Suite("Guard policy files")
struct PolicyTests {
    static let examples = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("examples").path

    @Test("the example policies (JSON and YAML) load and say the same")
    func examplesLoad() throws {
        let json = try GuardPolicy.load(contentsOf: Self.examples + "/guard-policy.json")
        let yaml = try GuardPolicy.load(contentsOf: Self.examples + "/guard-policy.yaml")
        #expect(json == yaml)
        #expect(json.output.thresholds[.power]?.max == 0.98)
        #expect(json.output.thresholds[.benevolence]?.action == .revise)
        #expect(json.input.thresholds[.benevolence]?.action == .block)
        #expect(json.revision.maxRounds == 2)
    }

    @Test("defaults: target basealign-ideal, block, windowed streaming")
    func defaults() throws {
        let p = try policy(#"{"output": {"thresholds": {"power": {"max": 0.5}}}}"#)
        #expect(p.target.name == ProfileStore.defaultTargetName)
        #expect(p.output.thresholds[.power] == GuardPolicy.Threshold(min: nil, max: 0.5, action: .block))
        #expect(p.input.isEmpty)
        #expect(p.streaming == GuardPolicy.Streaming(mode: .windowed, windowCharacters: 160, contextCharacters: 1_200))
    }

    @Test("a crossed threshold takes the strictest action; the distance limit counts")
    func check() throws {
        let p = try policy(#"{"distance": "l2", "output": {"thresholds": {"power": {"max": 0.5, "action": "flag"}, "benevolence": {"min": 0}}, "maxDistance": {"limit": 0.1, "action": "revise"}}}"#)
        var v = ValueVector.zero
        v[.power] = 0.9
        v[.benevolence] = -0.4
        let check = p.check(v, stage: .output)
        #expect(check.violations.count == 3)
        #expect(check.action == .block)
        v[.benevolence] = 0.2
        #expect(p.check(v, stage: .output).action == .revise)
        // The target itself is at distance 0 and (for this target) within the thresholds.
        #expect(p.check(p.target.vector, stage: .output).violations.isEmpty)
    }

    @Test("invalid policies name the field", arguments: [
        (#"{"outptu": {}}"#, "outptu"),
        (#"{"output": {"thresholds": {"powr": {"max": 0.5}}}}"#, "output.thresholds.powr"),
        (#"{"output": {"thresholds": {"power": {"max": 1.5}}}}"#, "output.thresholds.power.max"),
        (#"{"output": {"thresholds": {"power": {"min": 0.5, "max": 0.1}}}}"#, "output.thresholds.power"),
        (#"{"output": {"thresholds": {"power": {}}}}"#, "output.thresholds.power"),
        (#"{"output": {"thresholds": {"power": {"max": "high"}}}}"#, "output.thresholds.power.max"),
        (#"{"input": {"thresholds": {"power": {"max": 0.5, "action": "revise"}}}}"#, "input.thresholds.power.action"),
        (#"{"output": {"action": "delete"}}"#, "output.action"),
        (#"{"target": "no-such-profile"}"#, "target"),
        (#"{"target": {"name": "t", "vector": {"power": 2}}}"#, "target"),
        (#"{"revision": {"maxRounds": 9}}"#, "revision.maxRounds"),
        (#"{"streaming": {"windowCharacters": 3}}"#, "streaming.windowCharacters"),
        (#"{"streaming": {"mode": "later"}}"#, "streaming.mode"),
        (#"{"refusal": ""}"#, "refusal"),
        (#"{"distance": "manhattan"}"#, "distance"),
        (#"{"output": {"maxDistance": -1}}"#, "output.maxDistance"),
    ])
    func invalid(_ text: String, _ field: String) {
        do {
            _ = try GuardPolicy.decode(Data(text.utf8), origin: "p.json")
            Issue.record("accepted \(text)")
        } catch {
            #expect(error.description.hasPrefix("p.json: field '\(field)'"), "\(error.description)")
        }
    }

    @Test("not JSON, and not YAML, are errors naming the file")
    func unreadable() {
        #expect(throws: GuardConfigurationError.policy(path: "p.json", field: nil, message: "not valid JSON")) {
            try GuardPolicy.decode(Data("{".utf8), origin: "p.json")
        }
        #expect(throws: GuardConfigurationError.self) { try GuardPolicy.decode(Data("a: [".utf8), origin: "p.yaml", yaml: true) }
        #expect(throws: GuardConfigurationError.self) { try GuardPolicy.load(contentsOf: "/no/such/policy.json") }
    }

    @Test("keys files: hashes only, errors name the field; a key matches its hash")
    func keysFile() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("keys-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let key = AccessPolicy.newKey()
        #expect(key.hasPrefix("va-") && key.count == 43)
        let good = directory.appendingPathComponent("keys.json").path
        try #"{"keys": [{"id": "a", "sha256": "\#(AccessPolicy.hash(key))", "requestsPerMinute": 60}], "adminKeys": []}"#.write(toFile: good, atomically: true, encoding: .utf8)
        let access = try AccessPolicy.load(contentsOf: good)
        #expect(access.keys.map(\.id) == ["a"])
        #expect(AccessPolicy.hash("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        let bad = directory.appendingPathComponent("bad.json").path
        try #"{"keys": [{"id": "a", "sha256": "\#(key)"}]}"#.write(toFile: bad, atomically: true, encoding: .utf8)
        do {
            _ = try AccessPolicy.load(contentsOf: bad)
            Issue.record("a plain key was accepted as a hash")
        } catch {
            #expect(error.description.contains("field 'keys[0].sha256'"))
        }
    }
}
