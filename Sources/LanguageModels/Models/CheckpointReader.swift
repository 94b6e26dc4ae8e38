public import MLXEngine
import Foundation

/// The tensors and metadata of a model checkpoint on disk, with tensor names translated to
/// Hugging Face's.
public struct Checkpoint {
    public enum Format: String, Sendable { case gguf, huggingFace = "safetensors" }

    public var format: Format
    /// The file or folder it was read from.
    public var path: String
    public var configuration: ModelConfiguration
    public var tensors: [String: MLXArray]
    /// GGUF metadata (tokenizer, chat template); empty for Hugging Face folders.
    public var ggufMetadata: [String: GGUFValue]

    /// A checkpoint assembled in memory (tests, conversions).
    public init(format: Format, path: String, configuration: ModelConfiguration, tensors: [String: MLXArray], ggufMetadata: [String: GGUFValue] = [:]) {
        self.format = format
        self.path = path
        self.configuration = configuration
        self.tensors = tensors
        self.ggufMetadata = ggufMetadata
    }

    /// Reads a GGUF file or a Hugging Face model folder (config.json plus one or more
    /// *.safetensors files, with or without model.safetensors.index.json).
    public static func read(_ path: String) throws -> Checkpoint {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw LanguageModelError.invalidModel(path: path, message: "no such file or folder")
        }
        return isDirectory.boolValue ? try readHuggingFace(path) : try readGGUF(path)
    }

    static func readGGUF(_ path: String) throws -> Checkpoint {
        let file: GGUFFile
        do { file = try ArrayIO.loadGGUF(path) } catch {
            throw LanguageModelError.invalidModel(path: path, message: "cannot read GGUF: \(error)")
        }
        var configuration = try ModelConfiguration(ggufMetadata: file.metadata, source: path)
        let architecture = try ModelRegistry.architecture(named: configuration.architecture)
        var tensors: [String: MLXArray] = [:]
        for (name, array) in file.tensors {
            guard let mapped = architecture.huggingFaceName(ofGGUF: name) else {
                throw LanguageModelError.tensor(name: name, message: "unknown GGUF tensor name in \(path)")
            }
            tensors[mapped] = array
        }
        configuration.tieWordEmbeddings = tensors["lm_head.weight"] == nil
        try configuration.validate(source: path)
        return Checkpoint(format: .gguf, path: path, configuration: configuration, tensors: tensors, ggufMetadata: file.metadata)
    }

    static func readHuggingFace(_ folder: String) throws -> Checkpoint {
        let dir = URL(fileURLWithPath: folder)
        let configURL = dir.appendingPathComponent("config.json")
        guard let data = try? Data(contentsOf: configURL) else {
            throw LanguageModelError.invalidModel(path: folder, message: "no readable config.json in the folder")
        }
        let configuration = try ModelConfiguration(configJSON: data, source: configURL.path)
        try configuration.validate(source: configURL.path)
        let files = try (FileManager.default.contentsOfDirectory(atPath: folder))
            .filter { $0.hasSuffix(".safetensors") }.sorted()
        guard !files.isEmpty else { throw LanguageModelError.invalidModel(path: folder, message: "no *.safetensors files in the folder") }
        var wanted = Set(files)
        let indexURL = dir.appendingPathComponent("model.safetensors.index.json")
        if let indexData = try? Data(contentsOf: indexURL) {
            guard let object = try? JSONSerialization.jsonObject(with: indexData) as? [String: Any],
                  let map = object["weight_map"] as? [String: String] else {
                throw LanguageModelError.invalidModel(path: indexURL.path, message: "no 'weight_map' object")
            }
            wanted = Set(map.values)
            for name in wanted where !files.contains(name) {
                throw LanguageModelError.invalidModel(path: indexURL.path, message: "weight_map names '\(name)', which is not in the folder")
            }
        }
        var tensors: [String: MLXArray] = [:]
        for name in wanted.sorted() {
            let file = dir.appendingPathComponent(name).path
            let arrays: [String: MLXArray]
            do { arrays = try ArrayIO.loadSafetensors(file).arrays } catch {
                throw LanguageModelError.invalidModel(path: file, message: "cannot read safetensors: \(error)")
            }
            for (key, value) in arrays {
                if key.hasSuffix("rotary_emb.inv_freq") { continue }
                tensors[key] = value
            }
        }
        return Checkpoint(format: .huggingFace, path: folder, configuration: configuration, tensors: tensors, ggufMetadata: [:])
    }

    /// llama.cpp's standard tensor names to Hugging Face's (`blk.3.attn_q.weight` ->
    /// `model.layers.3.self_attn.q_proj.weight`): the default of `ModelArchitecture.huggingFaceName(ofGGUF:)`.
    static func huggingFaceName(ofGGUF name: String) -> String? {
        let parts = name.split(separator: ".").map(String.init)
        guard let suffix = parts.last, ["weight", "bias", "scales", "biases"].contains(suffix) else { return nil }
        let stem = parts.dropLast().joined(separator: ".")
        switch stem {
        case "token_embd": return "model.embed_tokens.\(suffix)"
        case "output_norm": return "model.norm.\(suffix)"
        case "output": return "lm_head.\(suffix)"
        default: break
        }
        guard parts.count == 4, parts[0] == "blk", let layer = Int(parts[1]) else { return nil }
        let map = [
            "attn_q": "self_attn.q_proj", "attn_k": "self_attn.k_proj", "attn_v": "self_attn.v_proj",
            "attn_output": "self_attn.o_proj", "ffn_gate": "mlp.gate_proj", "ffn_up": "mlp.up_proj",
            "ffn_down": "mlp.down_proj", "attn_norm": "input_layernorm", "ffn_norm": "post_attention_layernorm",
        ]
        guard let mapped = map[parts[2]] else { return nil }
        return "model.layers.\(layer).\(mapped).\(suffix)"
    }

    /// Builds the model through the registry. Tensors no layer uses are an error (they mean the
    /// architecture and the checkpoint disagree).
    public func makeModel(precision: WeightPrecision = .hybrid) throws -> any CausalLanguageModel {
        let architecture = try ModelRegistry.architecture(named: configuration.architecture)
        var weights = WeightSource(tensors: tensors, precision: precision, source: path)
        let model = try architecture.makeModel(configuration: configuration, weights: &weights)
        let unused = weights.unused
        if !unused.isEmpty {
            throw LanguageModelError.tensor(
                name: unused[0],
                message: "not used by the \(configuration.architecture) architecture (\(unused.count) unused tensors in \(path))")
        }
        model.freeze()
        model.train(false)
        try eval(Array(model.parameters().values))
        return model
    }
}
