@testable import Evaluators
import Foundation
import LanguageModels
import MLXEngine
import Testing
import ValueAlignTesting
import ValueSpace

/// The probe monitor reads the decode steps' own states: they equal a teacher-forced forward pass
/// over the same tokens, the reading equals the probes on those pooled states, and observing
/// changes nothing in the answer.
@Suite struct ProbeMonitorTests {
    func probes(hidden h: Int, layers: [Int]) -> ValueProbes {
        ValueProbes(layers: layers.map { l in
            ValueProbes.Layer(layer: l, weight: Fixtures.normalValues(20 * h, seed: UInt64(l), std: 0.5).map(Float.init),
                              bias: Fixtures.normalValues(20, seed: 99, std: 0.1).map(Float.init),
                              mean: [Float](repeating: 0.01, count: h), scale: [Float](repeating: 0.9, count: h))
        })
    }

    @Test func readsWhatATeacherForcedPassWouldAndChangesNothing() throws {
        let loaded = try TinyModels.chatModel(layers: 3)
        let model = loaded.model
        let c = model.configuration
        let norm = try model.parameters()["model.norm.weight"]!.asArray(Float.self)
        var layersPerValue: [Int?] = Array(repeating: 1, count: 10)
        layersPerValue[SchwartzValue.benevolence.index] = 2
        layersPerValue[SchwartzValue.power.index] = nil
        let monitor = try ProbeMonitor(probes: probes(hidden: c.hiddenSize, layers: [1, 2]), valueLayers: layersPerValue, normWeight: norm, eps: c.rmsNormEps)
        #expect(monitor.layers == [1, 2] && !monitor.monitoredValues.contains(.power))
        let prompts = [loaded.promptTokens([.user("hello there")]), loaded.promptTokens([.user("a longer question, please")])]
        let parameters = GenerationParameters(maxTokens: 6, temperature: 0)
        let generator = loaded.makeGenerator()
        generator.stopTokenIds = []
        let plain = try generator.generate(prompts, parameters: parameters)
        generator.observer = monitor
        let watched = try generator.generate(prompts, parameters: parameters)
        #expect(watched.map(\.tokens) == plain.map(\.tokens), "observing must not change the answer")
        for (i, p) in prompts.enumerated() {
            let tokens = watched[i].tokens
            #expect(tokens.count == 6)
            // Teacher-forced: states of the generated tokens but the last, at layers 1 and 2.
            let all = try MLXArray((p + tokens).map(Int32.init), shape: [1, p.count + tokens.count])
            let out = try model.forward(all, cache: nil, keyPadding: nil, captureLayers: [1, 2])
            var means: [Int: [Float]] = [:]
            for l in [1, 2] {
                let states = try out.captured[l]!.asArray(Float.self)
                var sum = [Float](repeating: 0, count: c.hiddenSize)
                for t in p.count..<(p.count + tokens.count - 1) {
                    let x = states[(t * c.hiddenSize)..<((t + 1) * c.hiddenSize)]
                    let inv = 1 / (x.reduce(0) { $0 + $1 * $1 } / Float(c.hiddenSize) + c.rmsNormEps).squareRoot()
                    for (k, v) in x.enumerated() { sum[k] += v * inv * norm[k] }
                }
                means[l] = sum.map { $0 / Float(tokens.count - 1) }
            }
            let expected = ProbeMonitor.read(means: means, probes: [1: probes(hidden: c.hiddenSize, layers: [1]).layers[0],
                                                                    2: probes(hidden: c.hiddenSize, layers: [2]).layers[0]], valueLayers: layersPerValue)
            let got = try #require(try monitor.reading(prompt: i))
            #expect(got.count == 10 && got[SchwartzValue.power.index] == 0)
            #expect(zip(got, expected).allSatisfy { abs($0 - $1) < 1e-4 }, "\(got) vs \(expected)")
            #expect(got.contains { abs($0) > 1e-3 })
        }
    }

    @Test func theLocalBackendHandsTheReadingOn() async throws {
        let loaded = try TinyModels.chatModel(layers: 3)
        let c = loaded.model.configuration
        let norm = try loaded.model.parameters()["model.norm.weight"]!.asArray(Float.self)
        let monitor = try ProbeMonitor(probes: probes(hidden: c.hiddenSize, layers: [2]), valueLayers: Array(repeating: 2, count: 10), normWeight: norm, eps: c.rmsNormEps)
        let backend = LocalChatBackend(loaded, observer: monitor)
        let answers = try await backend.completeBatch([[.user("one")], [.user("two")]], parameters: GenerationParameters(maxTokens: 5))
        for a in answers where a.completionTokens >= 2 { #expect(a.monitorReading?.count == 10) }
        #expect(try await LocalChatBackend(loaded).complete([.user("one")], parameters: GenerationParameters(maxTokens: 5)).monitorReading == nil)
        // Probes for a layer that is not in the file, or for no value, are refused.
        #expect(throws: EvaluatorError.self) { try ProbeMonitor(probes: probes(hidden: c.hiddenSize, layers: [2]), valueLayers: Array(repeating: 1, count: 10), normWeight: norm, eps: 1e-5) }
        #expect(throws: EvaluatorError.self) { try ProbeMonitor(probes: probes(hidden: c.hiddenSize, layers: [2]), valueLayers: Array(repeating: nil, count: 10), normWeight: norm, eps: 1e-5) }
    }
}
