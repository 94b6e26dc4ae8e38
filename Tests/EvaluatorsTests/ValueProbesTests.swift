import Evaluators
import Foundation
import LanguageModels
import MLXEngine
import Testing
import ValueAlignTesting
import ValueSpace

@Suite struct ValueProbesTests {
    @Test func aurocMatchesTheRankDefinition() throws {
        #expect(ValueProbes.auroc([0.1, 0.2, 0.8, 0.9], [false, false, true, true]) == 1)
        #expect(ValueProbes.auroc([0.9, 0.8, 0.2, 0.1], [false, false, true, true]) == 0)
        #expect(ValueProbes.auroc([0.5, 0.5, 0.5, 0.5], [false, true, false, true]) == 0.5)
        // Mann-Whitney by hand: positives 0.4, 0.7; negatives 0.1, 0.5, 0.6 -> pairs won 1 + 3 of 6.
        #expect(abs(try #require(ValueProbes.auroc([0.4, 0.7, 0.1, 0.5, 0.6], [true, true, false, false, false])) - 4.0 / 6.0) < 1e-12)
        #expect(ValueProbes.auroc([1, 2], [true, true]) == nil)
    }

    /// Layer 1 carries benevolence-opposed in one feature; layer 2 is noise. Cross-validation on the
    /// training side must pick layer 1, and the held-out AUROC must be high there and near chance
    /// at layer 2.
    @Test func findsThePlantedLayerAndMeasuresItHeldOut() throws {
        let hidden = 16
        func table(_ n: Int, seed: UInt64) throws -> (FeatureTable, [[Int]]) {
            var g = SeededGenerator(seed: seed)
            var labels: [[Int]] = [], values: [Float] = []
            for i in 0..<n {
                var l = [Int](repeating: 0, count: 10)
                if i % 4 == 0 { l[SchwartzValue.benevolence.index] = -1 }
                if i % 5 == 0 { l[SchwartzValue.security.index] = 1 }
                labels.append(l)
                for layer in [1, 2] {
                    for c in 0..<hidden {
                        var v = Float(g.normal())
                        if layer == 1, c == 3, l[SchwartzValue.benevolence.index] == -1 { v += 3 }
                        values.append(v)
                    }
                }
            }
            return (try FeatureTable(count: n, layers: [1, 2], poolings: [.meanResponse], hiddenSize: hidden, values: values), labels)
        }
        let (train, trainLabels) = try table(240, seed: 1)
        let (test, testLabels) = try table(120, seed: 2)
        var settings = ValueProbes.Settings()
        settings.steps = 200
        let (probes, report) = try ValueProbes.train(train: train, trainLabels: trainLabels, test: test, testLabels: testLabels, model: "synthetic", settings: settings)
        let b = SchwartzValue.benevolence.index
        #expect(report.bestOpposedLayer[b] == 1)
        #expect(try #require(report.chosenTestOpposed[b]) > 0.9, "\(report.chosenTestOpposed) \(report.layers)")
        let noise = try #require(report.layers.first { $0.layer == 2 }?.testOpposed[b])
        #expect(noise < 0.75, "layer 2 is noise but reads \(noise)")
        #expect(report.bestOpposedLayer[SchwartzValue.tradition.index] == nil)  // no positives: no choice
        #expect(report.testOpposedPositives[b] == 30)

        // Round trip through the file; another model's fingerprint or width is refused by name.
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("probes-\(UUID().uuidString).safetensors").path
        defer { try? FileManager.default.removeItem(atPath: file) }
        try probes.save(to: file, modelFingerprint: "fp", report: report)
        let loaded = try ValueProbes.load(file, modelFingerprint: "fp", hiddenSize: hidden)
        let again = try loaded.evaluate(test, labels: testLabels)
        #expect(again.map(\.testOpposed) == report.layers.map(\.testOpposed))
        #expect { try ValueProbes.load(file, modelFingerprint: "other", hiddenSize: hidden) } throws: { "\($0)".contains("another model") }
        #expect { try ValueProbes.load(file, modelFingerprint: "fp", hiddenSize: 8) } throws: { "\($0)".contains("expected [20, 8]") }
    }
}
