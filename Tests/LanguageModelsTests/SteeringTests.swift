import Foundation
@testable import LanguageModels
import MLXEngine
import MLXNN
import Testing
import ValueAlignTesting

/// Activation steering: the hook against adding the vector by hand, the fused decode path against
/// op-by-op steps, the files (ours and llama.cpp's), and bad inputs.
@Suite struct SteeringTests {
    static let work: URL = {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("steering-\(UUID().uuidString)")
        try? FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }()

    /// A 3-layer tiny Llama and a seeded vector for layer `layer` of its width.
    func tiny(seed: UInt64 = 5) throws -> LlamaModel {
        var c = TinyModels.llamaConfiguration(vocabulary: 97, layers: 3)
        c.hiddenSize = 32
        c.intermediateSize = 48
        c.headDimension = 8
        return try #require(try TinyModels.llama(c, seed: seed) as? LlamaModel)
    }

    func vector(_ c: ModelConfiguration, seed: UInt64 = 11, scale: Double = 1) throws -> [Float] {
        Fixtures.normalValues(c.hiddenSize, seed: seed, std: scale).map { Float($0) }
    }

    @Test func theHookEqualsAddingTheVectorByHand() throws {
        let model = try tiny()
        let c = model.configuration
        let v = try vector(c)
        let tokens = try MLXArray([Int32(3), 9, 27, 81, 5, 6], shape: [1, 6])
        let plain = try model.forward(tokens, cache: nil, keyPadding: nil, captureLayers: [1, 2])
        // By hand: run the blocks one by one and add v after block 1 (layer 2).
        let context = try attentionContext(batch: 1, length: 6, cache: nil, keyPadding: nil)
        var h = try model.model.embedTokens(tokens)
        for (i, layer) in model.model.layers.enumerated() {
            h = try layer(h, cache: nil, context: context)
            if i + 1 == 2 { h = try h + MLXArray(v, shape: [c.hiddenSize]) }
        }
        let byHand = try model.logits(try model.model.norm(h))
        model.steering = try ResidualSteering(additions: [2: try MLXArray(v, shape: [c.hiddenSize])], configuration: c)
        let steered = try model.forward(tokens, cache: nil, keyPadding: nil, captureLayers: [1, 2])
        try expectClose(try model.logits(steered.hidden), byHand, atol: 1e-5)
        // Layer 1 is untouched; layer 2's captured state carries the addition.
        try expectClose(try #require(steered.captured[1]), try #require(plain.captured[1]), atol: 0)
        try expectClose(try #require(steered.captured[2]), try #require(plain.captured[2]) + MLXArray(v, shape: [c.hiddenSize]), atol: 1e-6)
        // And it changes the output (or this test could not fail).
        #expect(try maxAbsDifference(try model.logits(plain.hidden), byHand) > 1e-3)
        model.steering = nil
        try expectClose(try model(tokens), try model.logits(plain.hidden), atol: 0)
    }

    @Test func fusedDecodeStepsCarryTheSteering() throws {
        let checkpoint = try HybridWeightTests().quantizedCheckpoint(bias: false, traditional: true, layers: 3)
        let fused = try #require(try checkpoint.makeModel(precision: .hybrid) as? LlamaModel)
        let plain = try #require(try checkpoint.makeModel(precision: .hybrid) as? LlamaModel)
        fused.fusedDecodeEnabled = true
        plain.fusedDecodeEnabled = false
        let c = fused.configuration
        let v = try MLXArray(try vector(c, scale: 2), shape: [c.hiddenSize])
        let steering = try ResidualSteering(additions: [1: v, 2: try v * MLXArray(Float(-0.5))], configuration: c)
        fused.steering = steering
        plain.steering = steering
        let unsteered = try #require(try checkpoint.makeModel(precision: .hybrid) as? LlamaModel)
        let prompt = try MLXArray([Int32(3), 9, 27, 81, 243], shape: [1, 5])
        let fc = fused.makeCache(), pc = plain.makeCache(), uc = unsteered.makeCache()
        try expectClose(try fused(prompt, cache: fc), try plain(prompt, cache: pc), atol: 1e-5)
        _ = try unsteered(prompt, cache: uc)
        var differs = 0.0
        for t in [Int32(7), 14, 21, 28] {
            let x = try MLXArray([t], shape: [1, 1])
            let a = try fused(x, cache: fc), b = try plain(x, cache: pc)
            try expectClose(a, b, atol: 1e-4, rtol: 1e-4)
            differs = max(differs, try maxAbsDifference(a, try unsteered(x, cache: uc)))
        }
        #expect(differs > 1e-3, "the steering must change the decode steps")
        // The fused path stayed on: the plan is current, and fusedDecodeStep answers.
        let step = try fused.fusedDecodeStep(try MLXArray([Int32(1)], shape: [1, 1]), cache: fc, keyPadding: nil, captureLayers: [])
        #expect(step != nil)
    }

    @Test func fileRoundTripAndApplication() throws {
        let model = try tiny()
        let c = model.configuration
        let directions = [1: try vector(c, seed: 1), 2: try vector(c, seed: 2)]
        let v = SteeringVector(directions: directions, layers: [2], multiplier: 3, hiddenSize: c.hiddenSize,
                               modelFingerprint: PEFTAdapter.fingerprint(c), name: "benevolence", method: "caa", notes: ["pairs": "20"])
        let path = Self.work.appendingPathComponent("v.safetensors").path
        try v.save(to: path)
        let back = try SteeringVector.load(path)
        #expect(back == v)
        #expect(back.identity == v.identity)
        let s = try back.steering(for: c, multiplier: 0.5, path: path)
        #expect(s.layers == [2])
        try expectClose(try #require(s.additions[2]), try MLXArray(directions[2]!.map { $0 * 0.5 }, shape: [c.hiddenSize]), atol: 1e-7)
        #expect(try back.steering(for: c, path: path).additions[2]!.asArray(Float.self)[0] == directions[2]![0] * 3)
    }

    @Test func llamaCppControlVectorRoundTrip() throws {
        let c = try tiny().configuration
        let directions = [1: try vector(c, seed: 1), 2: try vector(c, seed: 2)]
        let v = SteeringVector(directions: directions, layers: [2], multiplier: 2, hiddenSize: c.hiddenSize,
                               modelFingerprint: PEFTAdapter.fingerprint(c), name: "security", method: "pca")
        let path = Self.work.appendingPathComponent("cv.gguf").path
        try ControlVectorGGUF.write(v, to: path, modelHint: "llama")
        let (layout, _) = try GGUFLayout.read(path)
        #expect(layout.tensors.map(\.name) == ["direction.1"], "our layer 2 is the output of block 1")
        #expect(layout["general.architecture"]?.stringValue == "controlvector")
        let back = try SteeringVector.load(path)
        #expect(back.layers == [2] && back.multiplier == 1 && back.modelFingerprint == nil && back.method == "imported")
        #expect(back.directions[2] == directions[2]!.map { $0 * 2 }, "the multiplier is baked in")
        // Layer 1 has no llama.cpp tensor.
        #expect(throws: LanguageModelError.self) { try ControlVectorGGUF.write(try v.applied(at: [1]), to: path + "2.gguf", modelHint: "llama") }
    }

    @Test func badInputsAreClearErrors() throws {
        let model = try tiny()
        let c = model.configuration
        let v = SteeringVector(directions: [1: try vector(c), 2: try vector(c)], layers: [2], hiddenSize: c.hiddenSize,
                               modelFingerprint: PEFTAdapter.fingerprint(c), name: "power", method: "caa")
        // Another base model.
        var other = c
        other.intermediateSize = 64
        #expect { try v.steering(for: other, path: "v") } throws: { "\($0)".contains("different base model") }
        // Wrong width (an imported vector records no model).
        var imported = v
        imported.modelFingerprint = nil
        var wide = c
        wide.hiddenSize = 64
        #expect { try imported.steering(for: wide, path: "v") } throws: { "\($0)".contains("width 32") }
        // A layer the model cannot steer: the last (read through the final norm) and beyond.
        var last = imported
        last.directions[3] = try vector(c)
        last.layers = [3]
        #expect { try last.steering(for: c, path: "v") } throws: { "\($0)".contains("outside 1...2") }
        #expect(throws: LanguageModelError.self) { try ResidualSteering(additions: [0: try MLXArray(try vector(c), shape: [c.hiddenSize])], configuration: c) }
        // A layer to apply without a direction.
        #expect(throws: LanguageModelError.self) { try v.applied(at: [5]) }
        // Files: missing, not ours, a GGUF that is a model.
        #expect { try SteeringVector.load("/nonexistent/v.safetensors") } throws: { "\($0)".contains("no such file") }
        let foreign = Self.work.appendingPathComponent("foreign.safetensors").path
        try ArrayIO.saveSafetensors(foreign, arrays: ["x": try MLXArray([Float(1), 2], shape: [2])])
        #expect { try SteeringVector.load(foreign) } throws: { "\($0)".contains("not a ValueAlign steering vector") }
        let badGGUF = Self.work.appendingPathComponent("zero.gguf").path
        try GGUFLayout(entries: [.string("general.architecture", "controlvector")],
                       tensors: [GGUFLayout.Tensor(name: "direction.0", dimensions: [c.hiddenSize], type: .f32)])
            .write(to: badGGUF) { _ in [UInt8](repeating: 0, count: c.hiddenSize * 4) }
        #expect { try SteeringVector.load(badGGUF) } throws: { "\($0)".contains("direction.N with N >= 1") }
        if let embedded = Embedded.path {
            #expect { try SteeringVector.load(embedded) } throws: { "\($0)".contains("not a control vector") || "\($0)".contains("not a readable GGUF") }
        }
    }

    @Test func specificationParsing() throws {
        #expect(try SteeringSpecification(parsing: "a.safetensors:2.5") == SteeringSpecification(path: "a.safetensors", multiplier: 2.5))
        #expect(try SteeringSpecification(parsing: "a.safetensors:-4") == SteeringSpecification(path: "a.safetensors", multiplier: -4))
        #expect(try SteeringSpecification(parsing: "runs/x.gguf") == SteeringSpecification(path: "runs/x.gguf"))
        #expect(try SteeringSpecification(parsing: "c:/odd:name.gguf") == SteeringSpecification(path: "c:/odd:name.gguf"))
        #expect(throws: LanguageModelError.self) { try SteeringSpecification(parsing: ":3") }
        #expect(throws: LanguageModelError.self) { try SteeringSpecification(parsing: "a:inf") }
    }

    @Test func steeringsAddUpAndTheLoadedModelIsNamedAfterThem() throws {
        let loaded = try TinyModels.chatModel(layers: 3)
        let c = loaded.model.configuration
        let a = SteeringVector(directions: [1: try vector(c, seed: 1)], layers: [1], hiddenSize: c.hiddenSize,
                               modelFingerprint: PEFTAdapter.fingerprint(c), name: "a", method: "caa")
        let b = SteeringVector(directions: [1: try vector(c, seed: 2), 2: try vector(c, seed: 3)], layers: [1, 2], hiddenSize: c.hiddenSize,
                               modelFingerprint: PEFTAdapter.fingerprint(c), name: "b", method: "caa")
        let pa = Self.work.appendingPathComponent("a.safetensors").path, pb = Self.work.appendingPathComponent("b.safetensors").path
        try a.save(to: pa)
        try b.save(to: pb)
        let steered = try loaded.steered(by: [SteeringSpecification(path: pa, multiplier: 2), SteeringSpecification(path: pb)])
        #expect(steered.name.hasSuffix("+steer(a.safetensors:2.0,b.safetensors)"))
        let s = try #require(steered.model.steering)
        #expect(s.layers == [1, 2])
        let expected = zip(a.directions[1]!, b.directions[1]!).map { 2 * $0 + $1 }
        try expectClose(try #require(s.additions[1]), try MLXArray(expected, shape: [c.hiddenSize]), atol: 1e-6)
    }
}

/// The embedded model steered here and in llama.cpp (the anchor build `make test` makes) by the
/// same control vector: same greedy tokens. The model is an F32 GGUF export of the embedded one,
/// so both engines compute in float32 and only the steering could make them differ.
@Suite(.serialized, .enabled(if: Embedded.path != nil)) struct SteeringLlamaCppTests {
    @Test func llamaCppSteersAsWeDo() throws {
        let base = try #require(Embedded.path)
        let work = SteeringTests.work
        let adapter = try ModelExportTests.makeAdapter(named: "zero-adapter-steer", std: 0)
        let f32 = work.appendingPathComponent("base-f32.gguf").path
        try ModelExport(base: base, adapter: adapter).writeGGUF(to: f32, type: .f32)
        let loaded = try LoadedModel.load(f32, precision: .float32)
        let c = loaded.model.configuration
        // A seeded direction at two layers, long enough to change the answer.
        let d = Fixtures.normalValues(c.hiddenSize, seed: 27, std: 1).map { Float($0) }
        let vector = SteeringVector(directions: [10: d, 14: d.map { -$0 * 0.5 }], layers: [10, 14], multiplier: 0.6, hiddenSize: c.hiddenSize,
                                    modelFingerprint: PEFTAdapter.fingerprint(c), name: "seeded", method: "caa")
        let cvec = work.appendingPathComponent("seeded.gguf").path
        try ControlVectorGGUF.write(vector, to: cvec, modelHint: "llama")
        let prompt = loaded.promptTokens([.user("Give me one tip for a calm morning.")])
        let generator = loaded.makeGenerator()
        generator.stopTokenIds = []  // llama-greedy never stops early either
        let parameters = GenerationParameters(maxTokens: 24, temperature: 0)
        let unsteered = try generator.generate([prompt], parameters: parameters)[0].tokens
        loaded.model.steering = try vector.steering(for: c, path: cvec)
        let ours = try generator.generate([prompt], parameters: parameters)[0].tokens
        loaded.model.steering = nil
        #expect(ours != unsteered, "the vector must change the answer for the comparison to mean anything")
        let theirs = try LlamaCpp.run(["--cvec", cvec, f32, String(ours.count)] + prompt.map(String.init))
        #expect(theirs == ours, "llama.cpp steered \(theirs) vs ours \(ours)")
        let theirsPlain = try LlamaCpp.greedy(model: f32, prompt: prompt, count: unsteered.count)
        #expect(theirsPlain == unsteered)
        for p in [f32, cvec] { try? FileManager.default.removeItem(atPath: p) }
    }
}
