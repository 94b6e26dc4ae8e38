import Foundation
import Testing
import ValueSpace

@Suite struct ProfileTests {
    @Test func roundTripThroughTheDocumentedFormat() throws {
        let p = ValueProfile(
            name: "mine", kind: .measured, vector: try ValueVector([.security: 0.5, .power: -0.25]), sampleCount: 12,
            confidenceLevel: 0.9, intervals: [.security: ConfidenceInterval(lower: 0.4, upper: 0.6)], source: "test", notes: "n")
        let path = try temporaryFile([String(decoding: try p.jsonData(), as: UTF8.self)], suffix: ".json")
        #expect(try ValueProfile.load(contentsOf: path) == p)
        let text = try String(contentsOfFile: path, encoding: .utf8)
        #expect(text.contains("\"security\"") && text.contains("\"intervals\"") && text.contains("\"kind\" : \"measured\""))

        // The minimal form: kind defaults to target, values left out are 0, arrays work too.
        let minimal = try ValueProfile.decode(Data(#"{"name": "t", "vector": {"Self-Direction": 1}}"#.utf8), origin: "x")
        #expect(minimal.kind == .target && minimal[.selfDirection] == 1 && minimal.intervals.isEmpty && minimal.sampleCount == nil)
        let array = try ValueProfile.decode(Data(#"{"name": "t", "vector": [0,0,0,0,0,1,0,0,0,0]}"#.utf8), origin: "x")
        #expect(array[.security] == 1)
    }

    @Test(arguments: [
        (#"{"name": "t"}"#, "missing field 'vector'"),
        (#"{"vector": {}}"#, "missing field 'name'"),
        (#"{"name": " ", "vector": {}}"#, "field 'name'"),
        (#"{"name": "t", "vector": {}, "vectr": {}}"#, "field 'vectr': unknown field"),
        (#"{"name": "t", "vector": {"humility": 1}}"#, "field 'vector.humility': unknown value name 'humility'"),
        (#"{"name": "t", "vector": {"power": 1.5}}"#, "power = 1.5 is outside [-1, 1]"),
        (#"{"name": "t", "vector": [1, 0]}"#, "expected 10 components, got 2"),
        (#"{"name": "t", "vector": {"power": "high"}}"#, "field 'vector.power'"),
        (#"{"name": "t", "kind": "goal", "vector": {}}"#, "unknown kind 'goal'"),
        (#"{"name": "t", "vector": {}, "sampleCount": -3}"#, "field 'sampleCount'"),
        (#"{"name": "t", "vector": {}, "confidenceLevel": 95}"#, "field 'confidenceLevel'"),
        (#"{"name": "t", "vector": {}, "intervals": {"power": {"lower": 0.5, "upper": 0.1}}}"#, "field 'intervals.power'"),
        (#"{"name": "t", "vector": {}, "intervals": {"pride": {"lower": 0, "upper": 0.1}}}"#, "unknown value name 'pride'"),
        (#"{"name": "t", "vector": {}, "intervals": {"power": {"lower": 0}}}"#, "missing field 'upper'"),
        (#"{"name": "t", "vector": {"#, "not valid JSON"),
    ])
    func validationErrorsNameFileAndField(json: String, mentions: String) throws {
        let path = try temporaryFile([json], suffix: ".json")
        #expect { try ValueProfile.load(contentsOf: path) } throws: { error in
            guard case let .invalidProfile(p, message)? = error as? ValueSpaceError else { return false }
            let ok = p == path && message.contains(mentions)
            if !ok { print("got: \(message)") }
            return ok
        }
        #expect(throws: ValueSpaceError.invalidProfile(path: "/no/such/file.json", message: "cannot read the file")) {
            try ValueProfile.load(contentsOf: "/no/such/file.json")
        }
    }

    @Test func presetsLoadThroughTheBundle() throws {
        let names = try ProfileStore.presetNames()
        #expect(Array(names.prefix(5)) == ["basealign-ideal", "basealign-safety", "france", "netherlands", "united-kingdom"])
        #expect(names.filter { $0.hasPrefix("valuecompass-") }.count == 33)
        let ideal = try ProfileStore.defaultTarget()
        #expect(ideal.name == "basealign-ideal" && ideal.kind == .target && ideal.source != nil)
        #expect(ideal.vector == (try ValueVector([.achievement: 1, .security: 1, .conformity: 1, .benevolence: 1, .universalism: 1])))
        #expect(try ProfileStore.preset("basealign-safety").vector == (try ValueVector([.security: 1, .conformity: 1])))
        let uk = try ProfileStore.preset("united-kingdom")
        #expect(abs(uk[.benevolence] - 0.652) < 1e-12 && abs(uk[.power] + 0.2383) < 1e-12)
        for p in try ProfileStore.presets().values {
            #expect(p.source?.isEmpty == false, "\(p.name) names its source")
        }
        #expect { try ProfileStore.preset("basealign-idea") } throws: { error in
            guard case let .unknownProfile(name, available)? = error as? ValueSpaceError else { return false }
            return name == "basealign-idea" && available == names
        }
    }

    @Test func resolveNamesAndFiles() throws {
        #expect(try ProfileStore.resolve("france").name == "france")
        let path = try temporaryFile([#"{"name": "custom", "vector": {"tradition": 0.5}}"#], suffix: ".json")
        #expect(try ProfileStore.resolve(path).name == "custom")
        #expect(throws: ValueSpaceError.self) { try ProfileStore.resolve("./missing.json") }
    }

    /// The shipped figures are the source files' figures.
    @Test func presetsMatchTheirSources() throws {
        let targets = try sharedFile("profiles/basealign_targets.json")
        struct File: Decodable { var profiles: [String: [String: Double]] }
        let file = try JSONDecoder().decode(File.self, from: try Data(contentsOf: URL(fileURLWithPath: targets)))
        #expect(file.profiles.count == 5)
        for (name, figures) in file.profiles {
            let preset = try ProfileStore.preset(name)
            for (key, x) in figures { #expect(abs(preset[SchwartzValue(name: key)!] - x) < 1e-12, "\(name).\(key)") }
        }
        let (profiles, skipped) = try ValueCompassLeaderboard.profiles(from: try sharedFile("profiles/value_compass_leaderboard_schwartz.json"))
        #expect(profiles.count + skipped.count == 33)
        for p in profiles {
            let preset = try ProfileStore.preset(p.name)
            #expect(preset.kind == .reference)
            for v in SchwartzValue.allCases { #expect(abs(preset[v] - p[v]) < 1e-9, "\(p.name).\(v)") }
        }
    }

    @Test func leaderboardConversionSkipsOffScaleRows() throws {
        let path = try temporaryFile([#"""
            {"models": {
              "Model A-1": {"self_direction": 50, "stimulation": 0, "hedonism": 100, "achievement": 25, "power": 10,
                            "security": 60, "tradition": 40, "conformity": 30, "benevolence": 70, "universalism": 80},
              "Big": {"self_direction": 150, "stimulation": 0, "hedonism": 0, "achievement": 0, "power": 0,
                      "security": 0, "tradition": 0, "conformity": 0, "benevolence": 0, "universalism": 0},
              "Short": {"self_direction": 10}
            }}
            """#], suffix: ".json")
        let (profiles, skipped) = try ValueCompassLeaderboard.profiles(from: path)
        try #require(profiles.count == 1)
        #expect(profiles[0].name == "valuecompass-model-a-1")
        #expect(profiles[0][.selfDirection] == 0.5 && profiles[0][.hedonism] == 1 && profiles[0][.stimulation] == 0)
        #expect(Set(skipped.keys) == ["Big", "Short"])
        #expect(skipped["Big"]?.contains("outside 0-100") == true)
        #expect(ValueCompassLeaderboard.profileName(model: "LlaMA-3.1-8B-Instruct") == "valuecompass-llama-3-1-8b-instruct")
    }
}
