import Evaluators
import Foundation
import LanguageModels
import MLXEngine
import Testing
import ValueAlignTesting
import ValueSpace

@Suite struct SteeringBuilderTests {
    /// Differences along one direction u with varying lengths and noise.
    func planted(n: Int, h: Int, sign: Float = 1, seed: UInt64 = 4) -> (d: [Float], u: [Float]) {
        var g = SeededGenerator(seed: seed)
        var u = (0..<h).map { _ in Float(g.normal()) }
        let norm = u.reduce(0) { $0 + $1 * $1 }.squareRoot()
        u = u.map { $0 / norm }
        var d: [Float] = []
        for i in 0..<n {
            let k = sign * (1 + Float(i % 3))
            d += u.map { k * $0 + 0.05 * Float(g.normal()) }
        }
        return (d, u)
    }

    @Test func caaIsTheMeanDifference() {
        let d: [Float] = [1, 2, 3, 4, -1, 0, 0.5, 1]  // 4 pairs x 2 dims
        #expect(SteeringBuilder.direction(d, pairs: 4, hidden: 2, method: .caa) == [0.875, 1.75])
    }

    @Test(arguments: [Float(1), -1])
    func pcaFindsThePlantedDirectionWithTheMeanSign(_ sign: Float) {
        let (d, u) = planted(n: 30, h: 16, sign: sign)
        let v = SteeringBuilder.direction(d, pairs: 30, hidden: 16, method: .pca)
        let length = v.reduce(0) { $0 + $1 * $1 }.squareRoot()
        let cosine = zip(v, u).reduce(0) { $0 + $1.0 * $1.1 } / length
        #expect(cosine * sign > 0.99, "cosine \(cosine)")
        // Length: the mean projection of the differences (mean of k = 2 here).
        #expect(abs(length - 2) < 0.05, "length \(length)")
        // As long as CAA's, pointing the same way.
        let caa = SteeringBuilder.direction(d, pairs: 30, hidden: 16, method: .caa)
        #expect(zip(v, caa).reduce(0) { $0 + $1.0 * $1.1 } > 0)
    }

    @Test func towardAProfileIsTheTargetWeightedMean() throws {
        let dirs: [SchwartzValue: [Int: [Float]]] = [
            .benevolence: [3: [1, 0]], .security: [3: [0, 1]], .power: [3: [5, 5]],
        ]
        var t = [Double](repeating: 0, count: 10)
        t[SchwartzValue.benevolence.index] = 1
        t[SchwartzValue.security.index] = 0.5
        let target = ValueProfile(name: "t", kind: .target, vector: try ValueVector(t))
        let v = try SteeringBuilder.toward(target, directions: dirs)
        #expect(v[3]! == [Float(1 / 1.5), Float(0.5 / 1.5)])
        t[SchwartzValue.tradition.index] = -1
        let missing = ValueProfile(name: "m", kind: .target, vector: try ValueVector(t))
        #expect { try SteeringBuilder.toward(missing, directions: dirs) } throws: { "\($0)".contains("tradition") }
    }

    @Test func contrastFilesAreCheckedLineByLine() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("contrast-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let good = #"{"id": "a", "value": "benevolence", "prompt": "p", "supports": "s", "opposes": "o", "split": "train"}"#
        let path = dir.appendingPathComponent("c.jsonl").path
        try [good, #"{"id": "b", "value": "kindness", "prompt": "p", "supports": "s", "opposes": "o"}"#].joined(separator: "\n")
            .write(toFile: path, atomically: true, encoding: .utf8)
        #expect { try ContrastPair.load(path) } throws: { "\($0)".contains("c.jsonl:2") }
        try [good, #"{"id": "b", "value": "power", "prompt": "p", "supports": "", "opposes": "o"}"#].joined(separator: "\n")
            .write(toFile: path, atomically: true, encoding: .utf8)
        #expect { try ContrastPair.load(path) } throws: { "\($0)".contains("c.jsonl:2") && "\($0)".contains("empty answer") }
        try (good + "\n\n").write(toFile: path, atomically: true, encoding: .utf8)
        #expect(try ContrastPair.load(path).count == 1)
        #expect(throws: (any Error).self) { try ContrastPair.load(dir.appendingPathComponent("missing.jsonl").path) }
    }

    @Test func differencesOnATinyModel() throws {
        let loaded = try TinyModels.chatModel(layers: 3)
        let builder = SteeringBuilder(loaded: loaded)
        #expect(builder.layers == [1, 2])
        let pairs = [
            ContrastPair(id: "1", value: .benevolence, prompt: "help?", supports: "yes, gladly", opposes: "no, go away"),
            ContrastPair(id: "2", value: .benevolence, prompt: "same", supports: "identical answer", opposes: "identical answer"),
        ]
        let d = try builder.differences(pairs)
        let h = loaded.model.configuration.hiddenSize
        #expect(d.count == 2 * 2 * h)
        #expect(d[0..<(2 * h)].contains { abs($0) > 1e-4 }, "different answers differ")
        #expect(d[(2 * h)...].allSatisfy { $0 == 0 }, "identical answers give a zero difference")
        let dirs = builder.directions(pairs, differences: d, method: .caa)
        #expect(Set(dirs.keys) == [.benevolence] && dirs[.benevolence]!.keys.sorted() == [1, 2])
        // A steered model is refused (its activations would include the steering).
        loaded.model.steering = try ResidualSteering(additions: [1: try MLXArray.zeros([h])], configuration: loaded.model.configuration)
        #expect(throws: EvaluatorError.self) { try builder.differences(pairs) }
        loaded.model.steering = nil
    }

    /// The project's contrast pairs (data/steering): complete, balanced, readable.
    @Test func projectContrastPairs() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let pairs = try ContrastPair.load(root.appendingPathComponent("data/steering/contrast_pairs.jsonl").path)
        #expect(pairs.count == 240)
        #expect(Set(pairs.map(\.id)).count == pairs.count)
        for v in SchwartzValue.allCases {
            let mine = pairs.filter { $0.value == v }
            #expect(mine.count == 24, "\(v.rawValue)")
            #expect(mine.filter { $0.split == "train" }.count == 20 && mine.filter { $0.split == "validation" }.count == 4, "\(v.rawValue)")
        }
        #expect(pairs.allSatisfy { $0.supports != $0.opposes })
    }
}
