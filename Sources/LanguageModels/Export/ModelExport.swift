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
    /// A GGUF base: the file's layout and bytes, each tensor's Hugging Face name, the tensors by
    /// Hugging Face name, and the metadata as the loader reads it.
    struct GGUFBase {
        var layout: GGUFLayout
        var file: Data
        var names: [String: String]
        var byName: [String: GGUFLayout.Tensor]
        var metadata: [String: GGUFValue]
    }

    let gguf: GGUFBase?
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
        // The configuration and metadata come from the same reader the loader uses.
        let checkpoint = try Checkpoint.read(base)
        configuration = checkpoint.configuration
        format = checkpoint.format
        switch checkpoint.format {
        case .huggingFace:
            gguf = nil
            tensors = checkpoint.tensors
            if let quantized = tensors.keys.sorted().first(where: { $0.hasSuffix(".scales") }) {
                throw LanguageModelError.tensor(name: quantized, message: "quantized safetensors bases cannot be exported (a float base is needed to merge into)")
            }
        case .gguf:
            let (layout, file) = try GGUFLayout.read(base)
            let architecture = try ModelRegistry.architecture(named: configuration.architecture)
            var names: [String: String] = [:], byName: [String: GGUFLayout.Tensor] = [:]
            for t in layout.tensors {
                guard let hf = architecture.huggingFaceName(ofGGUF: t.name) else {
                    throw LanguageModelError.tensor(name: t.name, message: "unknown GGUF tensor name in \(base)")
                }
                names[t.name] = hf
                byName[hf] = t
            }
            gguf = GGUFBase(layout: layout, file: file, names: names, byName: byName, metadata: checkpoint.ggufMetadata)
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
        let (file, weights, metadata) = try PEFTAdapter.weights(in: directory, for: configuration)
        let layoutNote = metadata[PEFTAdapter.rowLayoutKey]
        var a: [String: MLXArray] = [:], b: [String: MLXArray] = [:]
        for (name, value) in weights {
            if name.hasSuffix(".lora_A.weight") { a[String(name.dropLast(".lora_A.weight".count))] = value }
            else if name.hasSuffix(".lora_B.weight") { b[String(name.dropLast(".lora_B.weight".count))] = value }
            else { throw LanguageModelError.adapter(path: file, message: "key '\(PEFTAdapter.keyPrefix + name)' is neither a lora_A nor a lora_B weight") }
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
    static func weightShapes(gguf: GGUFBase?, tensors: [String: MLXArray]) -> [String: [Int]] {
        if let gguf { return gguf.byName.compactMapValues { $0.dimensions.count == 2 ? $0.shape : nil } }
        return tensors.compactMapValues { $0.ndim == 2 ? $0.shape : nil }
    }

    /// The adapters' factors for the tensor with Hugging Face name `name` (nil: not adapted).
    func updates(for name: String) -> [(a: MLXArray, b: MLXArray)]? {
        name.hasSuffix(".weight") ? factors[String(name.dropLast(".weight".count))] : nil
    }

    /// The float32 values of a tensor by Hugging Face name, with the adapters' updates added.
    func values(_ name: String) throws -> (values: [Float], shape: [Int]) {
        var values: [Float], shape: [Int]
        if let gguf {
            guard let t = gguf.byName[name] else { throw LanguageModelError.tensor(name: name, message: "not in \(basePath)") }
            values = try GGMLQuantization.decode(gguf.layout.bytes(of: t, in: gguf.file), as: t.type, name: t.name)
            shape = t.shape
        } else {
            guard let t = tensors[name] else { throw LanguageModelError.tensor(name: name, message: "not in \(basePath)") }
            values = try t.asType(.float32).asArray(Float.self)
            shape = t.shape
        }
        if let list = updates(for: name) {
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
            let adapted = updates(for: gguf.names[t.name]!) != nil
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
            if updates(for: hf) == nil && t.type == original.type { return gguf.layout.bytes(of: original, in: gguf.file) }
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
        let names = (gguf.map { Array($0.byName.keys) } ?? Array(tensors.keys)).sorted()
        let permuted = format == .gguf && configuration.ropeTraditional
        let bytesPer = type == .float32 ? 4 : 2
        var shards: [[String: MLXArray]] = [[:]]
        var shardSize = 0
        for (i, name) in names.enumerated() {
            let (values, shape) = try values(name)
            var array = try MLXArray(values, shape: shape)
            if permuted, name.hasSuffix("self_attn.q_proj.weight") || name.hasSuffix("self_attn.q_proj.bias") {
                array = try PEFTAdapter.permuteQKRows(array, heads: configuration.headCount, toHuggingFace: true)
            } else if permuted, name.hasSuffix("self_attn.k_proj.weight") || name.hasSuffix("self_attn.k_proj.bias") {
                array = try PEFTAdapter.permuteQKRows(array, heads: configuration.kvHeadCount, toHuggingFace: true)
            }
            array = try array.asType(type.dtype)
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
            try HuggingFaceFiles.write(configuration: configuration, metadata: gguf.metadata, torchDType: type.rawValue, to: dir)
        } else {
            try HuggingFaceFiles.copyTokenizerAndConfig(from: URL(fileURLWithPath: basePath), to: dir, torchDType: type.rawValue)
        }
    }

    static func writeJSON(_ object: Any, to url: URL) throws {
        let data = try JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes])
        try data.write(to: url, options: .atomic)
    }
}
