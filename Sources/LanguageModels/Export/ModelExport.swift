public import Foundation
import MLXEngine
public import MLXNN

/// A base model plus a PEFT LoRA adapter folded into its weights, written for the servers people
/// deploy with: a GGUF file (llama.cpp, Ollama; the base's quantization kept tensor by tensor, or
/// F32/F16/BF16/Q8_0) or a Hugging Face safetensors folder (vLLM, transformers).
///
/// Merging: W' = W + (alpha/r) B A for every adapted linear layer, in float32 from the base's
/// exact weights (quantized blocks decoded as ggml decodes them). Everything the adapter does not
/// touch is copied verbatim when the output type allows, so a GGUF keeps its tokenizer, chat
/// template and metadata byte for byte.
public struct ModelExport {
    /// GGUF tensor types on export: `base` keeps each tensor's type (re-quantizing the adapted
    /// ones with ggml's reference quantizer); `mixed` keeps untouched tensors verbatim and writes
    /// adapted ones in Q8_0 (or their own float type), so a partial adapter survives at close to
    /// the base's size; the others convert every matrix.
    public enum GGUFType: String, Sendable, CaseIterable {
        case base, mixed, f32, f16, bf16, q8_0

        var ggml: GGMLType? {
            switch self {
            case .base, .mixed: nil
            case .f32: .f32
            case .f16: .f16
            case .bf16: .bf16
            case .q8_0: .q8_0
            }
        }
    }

    /// Float types of an exported safetensors folder.
    public enum SafetensorsType: String, Sendable, CaseIterable {
        case float32, float16, bfloat16

        var dtype: DType {
            switch self {
            case .float32: .float32
            case .float16: .float16
            case .bfloat16: .bfloat16
            }
        }
    }

    /// The base model file or folder.
    public let basePath: String
    /// The adapters merged, in order (stacked: each was trained on top of the ones before).
    public let adapterPaths: [String]
    public let adapters: [LoRAConfiguration]
    let configuration: ModelConfiguration
    let format: Checkpoint.Format
    /// For GGUF bases: the file's layout and bytes, and each tensor's Hugging Face name.
    let gguf: (layout: GGUFLayout, file: Data, names: [String: String])?
    /// For Hugging Face bases: the tensors.
    let tensors: [String: MLXArray]
    /// A and (alpha/r) B of every adapter per adapted module prefix ("model.layers.0.self_attn.q_proj");
    /// the products are computed on demand.
    let factors: [String: [(a: MLXArray, b: MLXArray)]]

    /// Module prefixes (Hugging Face names without ".weight") the adapter changes, sorted.
    public var adaptedModules: [String] { factors.keys.sorted() }

    /// One adapter.
    public init(base: String, adapter directory: URL) throws {
        try self.init(base: base, adapters: [directory])
    }

    /// Reads the base and the adapters and checks that they fit (base model fingerprint, every
    /// adapter key naming a weight of the base with matching shapes). Several adapters are summed
    /// in order, as `PEFTAdapter.stack` applies them.
    public init(base: String, adapters directories: [URL]) throws {
        guard !directories.isEmpty else { throw LanguageModelError.adapter(path: base, message: "no adapter to merge") }
        basePath = base
        adapterPaths = directories.map(\.path)
        adapters = try directories.map { try PEFTAdapter.configuration(at: $0) }
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: base, isDirectory: &isDirectory) else {
            throw LanguageModelError.invalidModel(path: base, message: "no such file or folder")
        }
        if isDirectory.boolValue {
            let checkpoint = try Checkpoint.readHuggingFace(base)
            configuration = checkpoint.configuration
            format = .huggingFace
            gguf = nil
            tensors = checkpoint.tensors
            if let quantized = tensors.keys.sorted().first(where: { $0.hasSuffix(".scales") }) {
                throw LanguageModelError.tensor(name: quantized, message: "quantized safetensors bases cannot be exported (a float base is needed to merge into)")
            }
        } else {
            let (layout, file) = try GGUFLayout.read(base)
            // The configuration comes from the same reader the loader uses.
            let metadata: [String: GGUFValue]
            do { metadata = try ArrayIO.loadGGUF(base).metadata } catch {
                throw LanguageModelError.invalidModel(path: base, message: "cannot read GGUF: \(error)")
            }
            var c = try ModelConfiguration(ggufMetadata: metadata, source: base)
            let architecture = try ModelRegistry.architecture(named: c.architecture)
            var names: [String: String] = [:]
            for t in layout.tensors {
                guard let hf = architecture.huggingFaceName(ofGGUF: t.name) else {
                    throw LanguageModelError.tensor(name: t.name, message: "unknown GGUF tensor name in \(base)")
                }
                names[t.name] = hf
            }
            c.tieWordEmbeddings = !names.values.contains("lm_head.weight")
            configuration = c
            format = .gguf
            gguf = (layout, file, names)
            tensors = [:]
        }

        let shapes = Self.weightShapes(gguf: gguf, tensors: tensors)
        var factors: [String: [(a: MLXArray, b: MLXArray)]] = [:]
        for (directory, adapter) in zip(directories, adapters) {
            for (module, pair) in try Self.factors(of: directory, adapter: adapter, shapes: shapes, configuration: configuration, base: base) {
                factors[module, default: []].append(pair)
            }
        }
        self.factors = factors
    }

    /// One adapter's (A, (alpha/r) B) per module, checked against the base's weight shapes.
    static func factors(of directory: URL, adapter: LoRAConfiguration, shapes: [String: [Int]], configuration: ModelConfiguration,
                        base: String) throws -> [String: (a: MLXArray, b: MLXArray)] {
        let file = directory.appendingPathComponent("adapter_model.safetensors").path
        let (arrays, metadata) = try ArrayIO.loadSafetensors(file)
        try PEFTAdapter.requireBase(metadata, directory: directory, configuration: configuration)
        let layoutNote = metadata[PEFTAdapter.rowLayoutKey]
        var a: [String: MLXArray] = [:], b: [String: MLXArray] = [:]
        for (key, value) in arrays {
            guard key.hasPrefix(PEFTAdapter.keyPrefix) else {
                throw LanguageModelError.adapter(path: file, message: "key '\(key)' does not start with '\(PEFTAdapter.keyPrefix)'")
            }
            let name = String(key.dropFirst(PEFTAdapter.keyPrefix.count)).replacingOccurrences(of: ".default.", with: ".")
            if name.hasSuffix(".lora_A.weight") { a[String(name.dropLast(".lora_A.weight".count))] = value }
            else if name.hasSuffix(".lora_B.weight") { b[String(name.dropLast(".lora_B.weight".count))] = value }
            else { throw LanguageModelError.adapter(path: file, message: "key '\(key)' is neither a lora_A nor a lora_B weight") }
        }
        guard !a.isEmpty else { throw LanguageModelError.adapter(path: file, message: "the adapter has no LoRA weights") }
        var factors: [String: (a: MLXArray, b: MLXArray)] = [:]
        for (module, down) in a.sorted(by: { $0.key < $1.key }) {
            guard var up = b[module] else { throw LanguageModelError.adapter(path: file, message: "'\(module)' has lora_A but no lora_B") }
            guard let shape = shapes[module + ".weight"] else {
                throw LanguageModelError.adapter(path: file, message: "'\(module)' matches no weight of the base model \(base)")
            }
            guard down.ndim == 2, up.ndim == 2, down.dim(0) == adapter.rank, up.dim(1) == adapter.rank,
                  up.dim(0) == shape[0], down.dim(1) == shape[1] else {
                throw LanguageModelError.adapter(
                    path: file, message: "'\(module)': lora_A \(down.shape) and lora_B \(up.shape) do not fit rank \(adapter.rank) and the weight \(shape)")
            }
            up = try PEFTAdapter.convertRows(up, module: module, recorded: layoutNote, configuration: configuration)
            factors[module] = (try down.asType(.float32), try up.asType(.float32) * adapter.scale)
        }
        if let orphan = b.keys.sorted().first(where: { a[$0] == nil }) {
            throw LanguageModelError.adapter(path: file, message: "'\(orphan)' has lora_B but no lora_A")
        }
        return factors
    }

    /// [rows, columns] of every 2-D weight by Hugging Face name.
    static func weightShapes(gguf: (layout: GGUFLayout, file: Data, names: [String: String])?, tensors: [String: MLXArray]) -> [String: [Int]] {
        if let gguf {
            return Dictionary(uniqueKeysWithValues: gguf.layout.tensors.compactMap { t in
                t.dimensions.count == 2 ? (gguf.names[t.name]!, t.shape) : nil
            })
        }
        return tensors.compactMapValues { $0.ndim == 2 ? $0.shape : nil }
    }

    /// The float32 values of a tensor by Hugging Face name, with the adapter's update added.
    func values(_ name: String) throws -> (values: [Float], shape: [Int]) {
        var values: [Float], shape: [Int]
        if let gguf {
            guard let t = gguf.layout.tensors.first(where: { gguf.names[$0.name] == name }) else {
                throw LanguageModelError.tensor(name: name, message: "not in \(basePath)")
            }
            values = try GGMLQuantization.decode(gguf.layout.bytes(of: t, in: gguf.file), as: t.type, name: t.name)
            shape = t.shape
        } else {
            guard let t = tensors[name] else { throw LanguageModelError.tensor(name: name, message: "not in \(basePath)") }
            values = try t.asType(.float32).asArray(Float.self)
            shape = t.shape
        }
        if name.hasSuffix(".weight"), let list = factors[String(name.dropLast(".weight".count))] {
            var sum = try list[0].b.matmul(list[0].a)
            for f in list.dropFirst() { sum = try sum + f.b.matmul(f.a) }
            let delta = try sum.asArray(Float.self)
            for i in values.indices { values[i] += delta[i] }
        }
        return (values, shape)
    }

    // MARK: GGUF

    /// Writes the merged model as a GGUF file. Returns the tensor types written (name -> type).
    @discardableResult
    public func writeGGUF(to path: String, type: GGUFType, progress: ((Int, Int) -> Void)? = nil) throws -> [String: GGMLType] {
        guard let gguf else {
            throw LanguageModelError.invalidModel(
                path: basePath, message: "GGUF export needs a GGUF base model; export this one to a safetensors folder and convert it with llama.cpp's convert_hf_to_gguf.py")
        }
        var layout = gguf.layout
        var types: [String: GGMLType] = [:]
        for (i, t) in layout.tensors.enumerated() {
            let hf = gguf.names[t.name]!
            let adapted = hf.hasSuffix(".weight") && factors[String(hf.dropLast(".weight".count))] != nil
            var target = t.type
            if t.dimensions.count >= 2, let forced = type.ggml { target = forced }
            if type == .mixed, adapted, ![.f32, .f16, .bf16].contains(t.type) { target = .q8_0 }
            if (adapted || target != t.type) && !target.isWritable {
                throw LanguageModelError.tensor(name: t.name, message: "is \(t.type.name), which this exporter cannot write; use --type f16, bf16, f32 or q8_0")
            }
            if target != t.type, t.dimensions[0] % target.blockSize != 0 {
                throw LanguageModelError.tensor(name: t.name, message: "rows of \(t.dimensions[0]) do not fit \(target.name) blocks of \(target.blockSize)")
            }
            layout.tensors[i].type = target
            types[t.name] = target
        }
        if let forced = type.ggml, let code = forced.fileType { layout["general.file_type"] = .uint32("general.file_type", code) }
        layout["valuealign.merged_adapter"] = .string("valuealign.merged_adapter", adapterPaths.map { URL(fileURLWithPath: $0).lastPathComponent }.joined(separator: " + "))
        layout["valuealign.merged_lora"] = .string("valuealign.merged_lora", adapters.map {
            "r=\($0.rank) alpha=\($0.alpha) modules=\($0.targetModules.sorted().joined(separator: ","))"
        }.joined(separator: " + "))
        let originals = Dictionary(uniqueKeysWithValues: gguf.layout.tensors.map { ($0.name, $0) })
        var done = 0
        try layout.write(to: path) { t in
            defer { done += 1; progress?(done, layout.tensors.count) }
            let original = originals[t.name]!
            let hf = gguf.names[t.name]!
            let adapted = hf.hasSuffix(".weight") && factors[String(hf.dropLast(".weight".count))] != nil
            if !adapted && t.type == original.type { return gguf.layout.bytes(of: original, in: gguf.file) }
            return try GGMLQuantization.encode(try values(hf).values, as: t.type)
        }
        return types
    }

    // MARK: Hugging Face

    /// Writes the merged model as a Hugging Face folder: model.safetensors (sharded above
    /// `shardBytes`, with an index), config.json, generation_config.json and the tokenizer files
    /// (copied from a Hugging Face base; written from the GGUF metadata otherwise). Q and K rows
    /// go back to Hugging Face's order when the base is a llama GGUF (llama.cpp permutes them).
    public func writeHuggingFace(to folder: String, type: SafetensorsType, shardBytes: Int = 4 << 30, progress: ((Int, Int) -> Void)? = nil) throws {
        let dir = URL(fileURLWithPath: folder)
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        var names: [String]
        if let gguf { names = gguf.layout.tensors.map { gguf.names[$0.name]! } } else { names = tensors.keys.sorted() }
        names.sort()
        let permuted = format == .gguf && configuration.ropeTraditional
        let bytesPer = type == .float32 ? 4 : 2
        var shards: [[String: MLXArray]] = [[:]]
        var shardSize = 0
        for (i, name) in names.enumerated() {
            var (values, shape) = try values(name)
            if permuted, name.hasSuffix("self_attn.q_proj.weight") || name.hasSuffix("self_attn.q_proj.bias") {
                values = Self.unpermuteRows(values, rows: shape[0], heads: configuration.headCount)
            } else if permuted, name.hasSuffix("self_attn.k_proj.weight") || name.hasSuffix("self_attn.k_proj.bias") {
                values = Self.unpermuteRows(values, rows: shape[0], heads: configuration.kvHeadCount)
            }
            let array = try MLXArray(values, shape: shape).asType(type.dtype)
            try eval([array])
            let size = values.count * bytesPer
            if shardSize > 0, shardSize + size > shardBytes {
                shards.append([:])
                shardSize = 0
            }
            shards[shards.count - 1][name] = array
            shardSize += size
            progress?(i + 1, names.count)
        }
        // Old shards of an earlier export would otherwise be read back with the new ones.
        for old in (try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? [] where old.hasSuffix(".safetensors") || old == "model.safetensors.index.json" {
            try FileManager.default.removeItem(at: dir.appendingPathComponent(old))
        }
        if shards.count == 1 {
            try ArrayIO.saveSafetensors(dir.appendingPathComponent("model.safetensors").path, arrays: shards[0], metadata: ["format": "pt"])
        } else {
            var map: [String: String] = [:]
            var total = 0
            for (i, shard) in shards.enumerated() {
                let file = String(format: "model-%05d-of-%05d.safetensors", i + 1, shards.count)
                try ArrayIO.saveSafetensors(dir.appendingPathComponent(file).path, arrays: shard, metadata: ["format": "pt"])
                for (name, array) in shard {
                    map[name] = file
                    total += array.size * bytesPer
                }
            }
            try Self.writeJSON(["metadata": ["total_size": total], "weight_map": map], to: dir.appendingPathComponent("model.safetensors.index.json"))
        }
        if let gguf {
            try HuggingFaceFiles.write(configuration: configuration, metadata: try ArrayIO.loadGGUF(basePath).metadata,
                                       torchDType: type.rawValue, to: dir, ggufTensorCount: gguf.layout.tensors.count)
        } else {
            try HuggingFaceFiles.copyTokenizerAndConfig(from: URL(fileURLWithPath: basePath), to: dir, torchDType: type.rawValue)
        }
    }

    /// Undoes llama.cpp's Q/K permutation (convert_hf_to_gguf's `permute`): within each head,
    /// GGUF rows interleave the two rotary halves; Hugging Face rows keep them apart.
    static func unpermuteRows(_ values: [Float], rows: Int, heads: Int) -> [Float] {
        let columns = values.count / rows
        let half = rows / heads / 2
        var out = values
        for h in 0..<heads {
            for i in 0..<half {
                for pair in 0..<2 {
                    let from = h * 2 * half + i * 2 + pair   // GGUF: (head, i, pair)
                    let to = h * 2 * half + pair * half + i  // Hugging Face: (head, pair, i)
                    for c in 0..<columns { out[to * columns + c] = values[from * columns + c] }
                }
            }
        }
        return out
    }

    static func writeJSON(_ object: Any, to url: URL) throws {
        let data = try JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes])
        try data.write(to: url, options: .atomic)
    }
}

extension GGMLQuantization {
    /// Decodes ggml blocks to float32 as ggml's `dequantize_row_*` does.
    public static func decode(_ bytes: [UInt8], as type: GGMLType, name: String) throws(LanguageModelError) -> [Float] {
        let (per, size) = type.block
        guard bytes.count % size == 0 else { throw .tensor(name: name, message: "\(bytes.count) bytes are not whole \(type.name) blocks") }
        let blocks = bytes.count / size
        var out = [Float](repeating: 0, count: blocks * per)
        func half(_ b: UnsafeBufferPointer<UInt8>, _ at: Int) -> Float {
            Float(Float16(bitPattern: UInt16(b[at]) | UInt16(b[at + 1]) << 8))
        }
        var supported = true
        bytes.withUnsafeBufferPointer { b in
            out.withUnsafeMutableBufferPointer { x in
                switch type {
                case .f32:
                    for i in 0..<blocks { x[i] = Float(bitPattern: UInt32(b[4 * i]) | UInt32(b[4 * i + 1]) << 8 | UInt32(b[4 * i + 2]) << 16 | UInt32(b[4 * i + 3]) << 24) }
                case .f16:
                    for i in 0..<blocks { x[i] = half(b, 2 * i) }
                case .bf16:
                    for i in 0..<blocks { x[i] = Float(bitPattern: (UInt32(b[2 * i]) | UInt32(b[2 * i + 1]) << 8) << 16) }
                case .q8_0:
                    for k in 0..<blocks {
                        let d = half(b, k * 34)
                        for j in 0..<32 { x[k * 32 + j] = Float(Int8(bitPattern: b[k * 34 + 2 + j])) * d }
                    }
                case .q4_0:
                    for k in 0..<blocks {
                        let d = half(b, k * 18)
                        for j in 0..<16 {
                            let q = b[k * 18 + 2 + j]
                            x[k * 32 + j] = Float(Int(q & 0x0F) - 8) * d
                            x[k * 32 + 16 + j] = Float(Int(q >> 4) - 8) * d
                        }
                    }
                case .q4_1:
                    for k in 0..<blocks {
                        let d = half(b, k * 20), m = half(b, k * 20 + 2)
                        for j in 0..<16 {
                            let q = b[k * 20 + 4 + j]
                            x[k * 32 + j] = Float(q & 0x0F) * d + m
                            x[k * 32 + 16 + j] = Float(q >> 4) * d + m
                        }
                    }
                default: supported = false
                }
            }
        }
        guard supported else { throw .tensor(name: name, message: "cannot decode \(type.name) tensors (decodable: F32, F16, BF16, Q8_0, Q4_0, Q4_1)") }
        return out
    }
}
