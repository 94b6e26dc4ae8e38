import Foundation
import LanguageModels
import MLXEngine
import MLXNN
import Testing
import ValueAlignTesting

/// ggml's block encoders against gguf-py's (scripts/fixtures/ggml_quants.py made the fixture).
@Suite struct GGMLQuantizationTests {
    struct Fixture: Decodable {
        struct Encoded: Decodable { var hex: String; var decoded_bits: [UInt32] }
        var input_bits: [UInt32]
        var types: [String: Encoded]
    }

    @Test(arguments: [GGMLType.f16, .bf16, .q8_0, .q4_0, .q4_1])
    func encodesAndDecodesBitForBitLikeGGUFPy(_ type: GGMLType) throws {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/reference/ggml_quants.json")
        let f = try JSONDecoder().decode(Fixture.self, from: Data(contentsOf: url))
        let expected = try #require(f.types[type.name])
        let input = f.input_bits.map(Float.init(bitPattern:))
        let bytes = try GGMLQuantization.encode(input, as: type)
        let hex = bytes.map { String(format: "%02x", $0) }.joined()
        #expect(hex.count == expected.hex.count)
        if hex != expected.hex {
            let at = zip(hex, expected.hex).enumerated().first { $0.element.0 != $0.element.1 }!.offset / 2
            Issue.record("\(type.name): first differing byte \(at) (block \(at / type.byteCount(elements: type.blockSize)))")
        }
        let decoded = try GGMLQuantization.decode(bytes, as: type, name: "fixture")
        #expect(decoded.map(\.bitPattern) == expected.decoded_bits, "\(type.name) decode")
    }

    @Test func refusesWhatItCannotWriteOrPartialBlocks() {
        #expect(throws: LanguageModelError.self) { try GGMLQuantization.encode([Float](repeating: 0, count: 256), as: .q4_k) }
        #expect(throws: LanguageModelError.self) { try GGMLQuantization.encode([Float](repeating: 0, count: 33), as: .q8_0) }
    }
}

/// The llama.cpp tools that `make test` builds (bench/anchors/llamacpp.sh), for checks against
/// an independent engine. Missing tools fail the test that needs them.
enum LlamaCpp {
    static let bin: URL = ProcessInfo.processInfo.environment["VALUEALIGN_LLAMACPP_BIN"].map { URL(fileURLWithPath: $0) }
        ?? URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent(".deps/llamacpp/build/bin")

    struct Missing: Error, CustomStringConvertible {
        var description: String
    }

    /// llama.cpp's greedy continuation of `prompt` (token ids) with the GGUF at `model`.
    static func greedy(model: String, prompt: [Int], count: Int) throws -> [Int] {
        try run([model, String(count)] + prompt.map(String.init))
    }

    /// llama.cpp's most likely next token after each position of `tokens` (one forward pass).
    static func argmax(model: String, tokens: [Int]) throws -> [Int] {
        try run(["--argmax", model] + tokens.map(String.init))
    }

    static func run(_ arguments: [String]) throws -> [Int] {
        let tool = bin.appendingPathComponent("llama-greedy")
        guard FileManager.default.isExecutableFile(atPath: tool.path) else {
            throw Missing(description: "\(tool.path) is missing: build it with `bash bench/anchors/llamacpp.sh` (make test does)")
        }
        let process = Process()
        process.executableURL = tool
        process.arguments = arguments
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        let errors = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        guard process.terminationStatus == 0 else { throw Missing(description: "llama-greedy failed (\(process.terminationStatus)): \(errors)") }
        return String(decoding: data, as: UTF8.self).split(whereSeparator: \.isWhitespace).compactMap { Int($0) }
    }
}

/// Export of the embedded model with an adapter whose update is large enough to change answers:
/// GGUF (checked by llama.cpp) and safetensors (checked by our Hugging Face loader).
@Suite(.serialized, .enabled(if: Embedded.path != nil)) struct ModelExportTests {
    static let work: URL = {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("export-\(UUID().uuidString)")
        try? FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }()

    /// A seeded adapter on q, k, v and down projections with random lora_B (std 0.05), made once.
    static let adapter: Result<URL, any Error> = Result {
        try makeAdapter(named: "adapter", std: 0.05)
    }

    static func makeAdapter(named name: String, std: Double, targets: [String] = ["q_proj", "k_proj", "v_proj", "down_proj"], seed: UInt64 = 100) throws -> URL {
        let path = try #require(Embedded.path)
        let loaded = try LoadedModel.load(path, precision: .float32)
        let lora = LoRAConfiguration(rank: 4, alpha: 8, dropout: 0, targetModules: targets)
        try loaded.model.applyLoRA(lora, seed: seed)
        var update: [String: MLXArray] = [:]
        for (i, (key, value)) in loaded.model.parameters().sorted(by: { $0.key < $1.key }).enumerated() where key.hasSuffix(".lora_B.weight") {
            update[key] = std == 0 ? try MLXArray.zeros(value.shape) : try Fixtures.normal(value.shape, seed: seed + UInt64(i), std: std)
        }
        try loaded.model.update(parameters: update)
        let dir = work.appendingPathComponent(name)
        try PEFTAdapter.save(loaded.model, configuration: lora, to: dir, baseModel: "SmolLM2-135M-Instruct")
        return dir
    }

    @Test func f32GGUFReproducesBaseWithAdapterHereAndInLlamaCpp() throws {
        let base = try #require(Embedded.path), adapter = try Self.adapter.get()
        let out = Self.work.appendingPathComponent("merged-f32.gguf").path
        let types = try ModelExport(base: base, adapter: adapter).writeGGUF(to: out, type: .f32)
        #expect(Set(types.values) == [.f32])
        let check = try ExportCheck.run(exported: out, base: base, adapter: adapter)
        #expect(check.adapterChangedPositions >= 3, "the test adapter must change answers to prove the merge: \(check)")
        #expect(check.maxLogitDifference < 2e-3, "\(check)")
        #expect(check.top1Agreement == 1 && check.greedyAgreeing == 32 && check.adapterChangesKept == 1)
        #expect(check.isFaithful)
        // llama.cpp reads the file and continues exactly as base+adapter does in our engine.
        let theirs = try LlamaCpp.greedy(model: out, prompt: check.prompt, count: 32)
        #expect(theirs == check.referenceGreedy, "llama.cpp \(theirs) vs ours \(check.referenceGreedy)")
        try? FileManager.default.removeItem(atPath: out)
    }

    @Test func baseTypeGGUFKeepsTypesMetadataAndUntouchedBytes() throws {
        let base = try #require(Embedded.path), adapter = try Self.adapter.get()
        let out = Self.work.appendingPathComponent("merged-base.gguf").path
        try ModelExport(base: base, adapter: adapter).writeGGUF(to: out, type: .base)
        let (source, sourceData) = try GGUFLayout.read(base)
        let (written, writtenData) = try GGUFLayout.read(out)
        #expect(written.tensors.map(\.name) == source.tensors.map(\.name))
        #expect(written.tensors.map(\.type) == source.tensors.map(\.type))
        // Every original entry is kept byte for byte; two of ours are added.
        for e in source.entries { #expect(written[e.key]?.value == e.value, "\(e.key)") }
        #expect(written.entries.count == source.entries.count + 2)
        var changed = 0
        for (s, w) in zip(source.tensors, written.tensors) {
            let same = source.bytes(of: s, in: sourceData) == written.bytes(of: w, in: writtenData)
            let adapted = ["attn_q", "attn_k", "attn_v", "ffn_down"].contains { s.name.contains(".\($0).") }
            #expect(same != adapted, "\(s.name): adapted \(adapted), bytes unchanged \(same)")
            if !same { changed += 1 }
        }
        #expect(changed == 4 * 30)
        // llama.cpp loads it and, position by position on the same history, picks the same next
        // token as our engine on the same file (it multiplies with 8-bit activations, so a
        // free-running greedy continuation may part ways at a near-tie).
        let check = try ExportCheck.run(exported: out, base: base, adapter: adapter)
        let sequence = check.prompt + check.referenceGreedy
        let exported = try LoadedModel.load(out, precision: .float32)
        let ours = try exported.model(try MLXArray(sequence.map(Int32.init), shape: [1, sequence.count])).argMax(axis: -1).asArray(Int32.self).map(Int.init)
        let theirs = try LlamaCpp.argmax(model: out, tokens: sequence)
        #expect(theirs.count == sequence.count)
        let agree = zip(ours, theirs).filter { $0 == $1 }.count
        #expect(Double(agree) >= 0.9 * Double(sequence.count), "next-token agreement \(agree) of \(sequence.count)")
        try? FileManager.default.removeItem(atPath: out)
    }

    /// `--type mixed`: untouched tensors verbatim, adapted ones in Q8_0; the update survives.
    @Test func mixedGGUFKeepsUntouchedTensorsAndTheUpdate() throws {
        let base = try #require(Embedded.path), adapter = try Self.adapter.get()
        let out = Self.work.appendingPathComponent("merged-mixed.gguf").path
        try ModelExport(base: base, adapter: adapter).writeGGUF(to: out, type: .mixed)
        let (source, sourceData) = try GGUFLayout.read(base)
        let (written, writtenData) = try GGUFLayout.read(out)
        for (s, w) in zip(source.tensors, written.tensors) {
            let adapted = ["attn_q", "attn_k", "attn_v", "ffn_down"].contains { s.name.contains(".\($0).") }
            if adapted {
                #expect(w.type == .q8_0, "\(s.name)")
            } else {
                #expect(w.type == s.type && source.bytes(of: s, in: sourceData) == written.bytes(of: w, in: writtenData), "\(s.name)")
            }
        }
        let check = try ExportCheck.run(exported: out, base: base, adapter: adapter)
        // Q8_0 rounding of the adapted weights may flip a near-tie, but the update survives
        // (a 4-bit re-quantization keeps almost none of it; docs/export-and-audit.md).
        #expect(check.greedyAgreeing == 32 && check.top1Agreement >= 0.97 && check.adapterChangesKept >= 0.8, "\(check)")
        try? FileManager.default.removeItem(atPath: out)
    }

    @Test func safetensorsFolderLoadsBackWithEqualLogitsAndTokenizer() throws {
        let base = try #require(Embedded.path), adapter = try Self.adapter.get()
        let out = Self.work.appendingPathComponent("merged-hf").path
        try ModelExport(base: base, adapter: adapter).writeHuggingFace(to: out, type: .float32)
        for file in ["config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "generation_config.json"] {
            #expect(FileManager.default.fileExists(atPath: out + "/" + file), "\(file)")
        }
        let check = try ExportCheck.run(exported: out, base: base, adapter: adapter)
        #expect(check.maxLogitDifference < 2e-3 && check.greedyAgreeing == 32, "\(check)")
        #expect(check.adapterChangedPositions >= 3 && check.adapterChangesKept == 1)
        let gguf = try LoadedModel.load(base), hf = try LoadedModel.load(out)
        #expect(hf.chatTemplate == gguf.chatTemplate && hf.defaultSystemPrompt == gguf.defaultSystemPrompt)
        for text in ["Hello, world! 12345", "  spaces\tand\nnewlines  ", "<|im_start|>user\nhi<|im_end|>", "naïve café — 東京 🙂", "don't we'll 3.14159"] {
            #expect(hf.tokenizer.encode(text, addSpecialTokens: true, parseSpecialTokens: true)
                    == gguf.tokenizer.encode(text, addSpecialTokens: true, parseSpecialTokens: true), "\(text)")
        }
        #expect(hf.tokenizer.eosTokenIds == gguf.tokenizer.eosTokenIds)
        let config = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: out + "/config.json"))) as! [String: Any]
        #expect(config["architectures"] as? [String] == ["LlamaForCausalLM"] && config["tie_word_embeddings"] as? Bool == true)
    }

    /// An adapter trained on the GGUF (q/k rows permuted) works on the Hugging Face weights: its
    /// lora_B rows are moved to the other layout on load.
    @Test func adapterMovesBetweenGGUFAndHuggingFaceRowLayouts() throws {
        let base = try #require(Embedded.path), adapter = try Self.adapter.get()
        let zero = try Self.makeAdapter(named: "zero", std: 0)
        let folder = Self.work.appendingPathComponent("base-hf").path
        try ModelExport(base: base, adapter: zero).writeHuggingFace(to: folder, type: .float32)
        let gguf = try LoadedModel.load(base, precision: .float32), hf = try LoadedModel.load(folder, precision: .float32)
        try PEFTAdapter.load(from: adapter, into: gguf.model)
        try PEFTAdapter.load(from: adapter, into: hf.model)
        let ids = gguf.promptTokens(ExportCheck.conversation).map(Int32.init)
        let tokens = try MLXArray(ids, shape: [1, ids.count])
        let difference = try (gguf.model(tokens) - hf.model(tokens)).abs().max().item(Float.self)
        #expect(difference < 2e-3, "max |logit difference| \(difference)")
    }

    /// Two adapters stacked (the second trained on top of the first) merge into one file that
    /// reproduces the stack as loaded at run time.
    @Test func stackedAdaptersMergeIntoOneExport() throws {
        let base = try #require(Embedded.path), first = try Self.adapter.get()
        let second = try Self.makeAdapter(named: "second", std: 0.05, targets: ["q_proj", "o_proj", "up_proj"], seed: 500)
        let out = Self.work.appendingPathComponent("stacked.gguf").path
        let export = try ModelExport(base: base, adapters: [first, second])
        #expect(export.adaptedModules.count == 30 * 6)
        try export.writeGGUF(to: out, type: .f32)
        let check = try ExportCheck.run(exported: out, base: base, adapters: [first, second])
        #expect(check.maxLogitDifference < 2e-3 && check.greedyAgreeing == 32, "\(check)")
        // Against the first adapter alone the stack differs: the second one counts.
        let single = try ExportCheck.run(exported: out, base: base, adapter: first)
        #expect(single.maxLogitDifference > 0.1, "\(single)")
        try? FileManager.default.removeItem(atPath: out)
    }

    @Test func mismatchedAdaptersAndBasesAreClearErrors() throws {
        let base = try #require(Embedded.path), adapter = try Self.adapter.get()
        // A key naming no weight of the base.
        let bad = Self.work.appendingPathComponent("bad-key")
        try? FileManager.default.removeItem(at: bad)
        try FileManager.default.copyItem(at: adapter, to: bad)
        var (arrays, metadata) = try ArrayIO.loadSafetensors(adapter.appendingPathComponent("adapter_model.safetensors").path)
        arrays["base_model.model.model.layers.99.self_attn.q_proj.lora_A.weight"] = arrays["base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight"]
        arrays["base_model.model.model.layers.99.self_attn.q_proj.lora_B.weight"] = arrays["base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight"]
        try ArrayIO.saveSafetensors(bad.appendingPathComponent("adapter_model.safetensors").path, arrays: arrays, metadata: metadata)
        #expect { try ModelExport(base: base, adapter: bad) } throws: { "\($0)".contains("layers.99.self_attn.q_proj") && "\($0)".contains("matches no weight") }
        // An adapter made for another base model.
        metadata[PEFTAdapter.fingerprintKey] = "llama vocab=97 hidden=32 layers=2 heads=4/2 mlp=64"
        try ArrayIO.saveSafetensors(bad.appendingPathComponent("adapter_model.safetensors").path, arrays: arrays, metadata: metadata)
        #expect { try ModelExport(base: base, adapter: bad) } throws: { "\($0)".contains("different base model") }
        // GGUF output needs a GGUF base.
        let folder = Self.work.appendingPathComponent("merged-hf-for-gguf").path
        try ModelExport(base: base, adapter: adapter).writeHuggingFace(to: folder, type: .float16)
        #expect { try ModelExport(base: folder, adapter: adapter).writeGGUF(to: folder + ".gguf", type: .f16) } throws: {
            "\($0)".contains("GGUF export needs a GGUF base model")
        }
    }

    @Test func rewritingALayoutUnchangedReproducesTheFileByteForByte() throws {
        let base = try #require(Embedded.path)
        let (layout, data) = try GGUFLayout.read(base)
        let out = Self.work.appendingPathComponent("copy.gguf").path
        try layout.write(to: out) { layout.bytes(of: $0, in: data) }
        #expect(try Data(contentsOf: URL(fileURLWithPath: out)) == Data(contentsOf: URL(fileURLWithPath: base)))
        try? FileManager.default.removeItem(atPath: out)
    }
}
