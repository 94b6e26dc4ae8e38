public import Foundation
import MLXEngine
public import MLXNN

/// LoRA adapters in Hugging Face PEFT's layout: a folder with `adapter_config.json` and
/// `adapter_model.safetensors` whose keys read `base_model.model.<module path>.lora_A.weight`.
/// PEFT, vLLM and llama.cpp's converter read such folders; so does `load`.
public enum PEFTAdapter {
    static let keyPrefix = "base_model.model."
    public static let fingerprintKey = "valuealign.base_fingerprint"
    /// Metadata key recording the order of the q/k projection rows the adapter was trained on:
    /// llama GGUF files hold them permuted for interleaved rotary embeddings, Hugging Face
    /// checkpoints do not. An adapter moves between the two by permuting its lora_B rows.
    public static let rowLayoutKey = "valuealign.qk_row_layout"
    static let interleavedRows = "gguf-interleaved"
    static let huggingFaceRows = "huggingface"

    /// The q/k row layout of a model with this configuration.
    static func rowLayout(_ c: ModelConfiguration) -> String { c.ropeTraditional ? interleavedRows : huggingFaceRows }

    /// lora_B of `module` moved from the `recorded` q/k row layout to the model's (unchanged for
    /// other modules, for adapters that record no layout, or when the layouts agree).
    static func convertRows(_ b: MLXArray, module: String, recorded: String?, configuration c: ModelConfiguration) throws -> MLXArray {
        guard let recorded, recorded != rowLayout(c) else { return b }
        let heads: Int
        if module.hasSuffix("self_attn.q_proj") { heads = c.headCount } else if module.hasSuffix("self_attn.k_proj") { heads = c.kvHeadCount } else { return b }
        switch recorded {
        case huggingFaceRows: return try permuteQKRows(b, heads: heads, toHuggingFace: false)
        case interleavedRows: return try permuteQKRows(b, heads: heads, toHuggingFace: true)
        default:
            throw LanguageModelError.adapter(path: module, message: "unknown \(rowLayoutKey) '\(recorded)' (known: \(interleavedRows), \(huggingFaceRows))")
        }
    }

    /// The rows of a q or k projection's weight, bias or lora_B (rows first) moved between
    /// llama.cpp's order (convert_hf_to_gguf's `permute`: within each head the two rotary halves
    /// interleaved, rows (head, i, pair)) and Hugging Face's (halves apart, rows (head, pair, i)).
    static func permuteQKRows(_ a: MLXArray, heads: Int, toHuggingFace: Bool) throws -> MLXArray {
        let rows = a.dim(0), rest = a.size / rows
        let half = rows / heads / 2
        let from = toHuggingFace ? [heads, half, 2, rest] : [heads, 2, half, rest]
        return try a.reshaped(from).swappedAxes(1, 2).reshaped(a.shape)
    }

    /// PEFT's adapter_config.json fields that we write and read.
    struct Config: Codable {
        var peft_type = "LORA"
        var task_type: String? = "CAUSAL_LM"
        var r: Int
        var lora_alpha: Float
        var lora_dropout: Float? = 0
        /// A list of module names (PEFT also allows a regular expression string; we do not).
        var target_modules: [String]
        var bias: String? = "none"
        var base_model_name_or_path: String?
        var fan_in_fan_out: Bool? = false
        var inference_mode: Bool? = true
        var use_rslora: Bool? = false
    }

    /// A string that identifies the base model's shapes; an adapter only loads onto a model with
    /// the same one.
    public static func fingerprint(_ c: ModelConfiguration) -> String {
        "\(c.architecture) vocab=\(c.vocabularySize) hidden=\(c.hiddenSize) layers=\(c.layerCount) heads=\(c.headCount)/\(c.kvHeadCount) mlp=\(c.intermediateSize)"
    }

    /// Writes the LoRA parameters of `model` (adapted with `configuration`) to `directory`.
    public static func save(_ model: any CausalLanguageModel, configuration: LoRAConfiguration, to directory: URL, baseModel: String?) throws {
        var arrays: [String: MLXArray] = [:]
        for (name, value) in model.parameters() where name.contains(".lora_A.") || name.contains(".lora_B.") {
            arrays[keyPrefix + name] = value
        }
        guard !arrays.isEmpty else {
            throw LanguageModelError.adapter(path: directory.path, message: "the model has no LoRA layers to save")
        }
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let config = Config(r: configuration.rank, lora_alpha: configuration.alpha, lora_dropout: configuration.dropout,
                            target_modules: configuration.targetModules.sorted(), base_model_name_or_path: baseModel)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try encoder.encode(config).write(to: directory.appendingPathComponent("adapter_config.json"), options: .atomic)
        try ArrayIO.saveSafetensors(directory.appendingPathComponent("adapter_model.safetensors").path, arrays: arrays,
                                    metadata: ["format": "pt", fingerprintKey: fingerprint(model.configuration),
                                               rowLayoutKey: rowLayout(model.configuration)])
    }

    /// Reads the configuration of the adapter in `directory`.
    public static func configuration(at directory: URL) throws -> LoRAConfiguration {
        let url = directory.appendingPathComponent("adapter_config.json")
        guard let data = try? Data(contentsOf: url) else {
            throw LanguageModelError.adapter(path: directory.path, message: "no readable adapter_config.json")
        }
        let config: Config
        do { config = try JSONDecoder().decode(Config.self, from: data) } catch {
            throw LanguageModelError.adapter(path: url.path, message: "not a PEFT LoRA config: \(describe(error))")
        }
        guard config.peft_type == "LORA" else {
            throw LanguageModelError.adapter(path: url.path, message: "peft_type is '\(config.peft_type)', only LORA is supported")
        }
        guard config.r > 0 else { throw LanguageModelError.adapter(path: url.path, message: "r must be positive, got \(config.r)") }
        if config.fan_in_fan_out == true { throw LanguageModelError.adapter(path: url.path, message: "fan_in_fan_out adapters are not supported") }
        if let bias = config.bias, bias != "none" { throw LanguageModelError.adapter(path: url.path, message: "bias '\(bias)' is not supported (only 'none')") }
        if config.use_rslora == true { throw LanguageModelError.adapter(path: url.path, message: "use_rslora adapters are not supported") }
        return LoRAConfiguration(rank: config.r, alpha: config.lora_alpha, dropout: config.lora_dropout ?? 0, targetModules: config.target_modules)
    }

    /// Checks, without loading it, that the adapter in `directory` has a readable configuration
    /// and was made for a model of `configuration` (when its file records the base model).
    public static func check(_ directory: URL, fits configuration: ModelConfiguration) throws {
        _ = try self.configuration(at: directory)
        let metadata = try ArrayIO.loadSafetensors(directory.appendingPathComponent("adapter_model.safetensors").path).metadata
        try requireBase(metadata, directory: directory, configuration: configuration)
    }

    static func requireBase(_ metadata: [String: String], directory: URL, configuration: ModelConfiguration) throws {
        if let recorded = metadata[fingerprintKey], recorded != fingerprint(configuration) {
            throw LanguageModelError.adapter(path: directory.path, message: "made for a different base model (\(recorded)); this model is \(fingerprint(configuration))")
        }
    }

    /// The LoRA weights of the adapter in `directory`, by model parameter name
    /// ("model.layers.0.self_attn.q_proj.lora_A.weight"), after checking that it was made for a
    /// model of `configuration`; with the file (for errors) and its metadata.
    static func weights(in directory: URL, for configuration: ModelConfiguration) throws -> (file: String, weights: [String: MLXArray], metadata: [String: String]) {
        let file = directory.appendingPathComponent("adapter_model.safetensors").path
        let (arrays, metadata) = try ArrayIO.loadSafetensors(file)
        try requireBase(metadata, directory: directory, configuration: configuration)
        var weights: [String: MLXArray] = [:]
        for (key, value) in arrays {
            guard key.hasPrefix(keyPrefix) else {
                throw LanguageModelError.adapter(path: file, message: "key '\(key)' does not start with '\(keyPrefix)'")
            }
            // PEFT may name the adapter ("lora_A.default.weight") in memory; files usually do not.
            weights[String(key.dropFirst(keyPrefix.count)).replacingOccurrences(of: ".default.", with: ".")] = value
        }
        return (file, weights, metadata)
    }

    /// Attaches the adapter in `directory` to `model` (which must not have LoRA layers yet) and
    /// loads its weights. Fails, naming the key, if the adapter was made for another base model.
    @discardableResult
    public static func load(from directory: URL, into model: any CausalLanguageModel) throws -> LoRAConfiguration {
        let configuration = try configuration(at: directory)
        var (file, mapped, metadata) = try weights(in: directory, for: model.configuration)
        try model.applyLoRA(configuration)
        let expected = model.parameters().filter { $0.key.contains(".lora_A.") || $0.key.contains(".lora_B.") }
        for (name, value) in mapped {
            guard let current = expected[name] else {
                throw LanguageModelError.adapter(path: file, message: "key '\(keyPrefix + name)' matches no LoRA layer of this model")
            }
            guard current.shape == value.shape else {
                throw LanguageModelError.adapter(path: file, message: "key '\(keyPrefix + name)' has shape \(value.shape), the model expects \(current.shape)")
            }
        }
        if let missing = expected.keys.sorted().first(where: { mapped[$0] == nil }) {
            throw LanguageModelError.adapter(path: file, message: "missing key '\(keyPrefix + missing)'")
        }
        for (name, value) in mapped where name.hasSuffix(".lora_B.weight") {
            mapped[name] = try convertRows(value, module: String(name.dropLast(".lora_B.weight".count)),
                                           recorded: metadata[rowLayoutKey], configuration: model.configuration)
        }
        try model.update(parameters: mapped.mapValues { $0.dtype == .float32 ? $0 : try $0.asType(.float32) })
        return configuration
    }

    /// Puts several adapters on `model`, in order: each but the last is loaded and then merged
    /// into the weights it adapts (those layers become float32), and the last stays a live LoRA
    /// layer (or is merged too with `mergeLast`). This is how an adapter trained on top of another
    /// (`align --adapter A` writes one that expects A underneath) is used: `--adapter A --adapter B`.
    /// Returns the configurations in order.
    @discardableResult
    public static func stack(_ directories: [URL], into model: any CausalLanguageModel, mergeLast: Bool = false) throws -> [LoRAConfiguration] {
        var configurations: [LoRAConfiguration] = []
        for (i, directory) in directories.enumerated() {
            configurations.append(try load(from: directory, into: model))
            if i < directories.count - 1 || mergeLast {
                try model.mergeLoRA()
                // Merged weights are lazy sums: evaluate them here (MLX streams belong to the thread
                // that made them, and the model may run on another).
                try eval(Array(model.parameters().values))
            }
        }
        return configurations
    }

    static func describe(_ error: any Error) -> String {
        switch error {
        case let DecodingError.keyNotFound(key, _): "missing field '\(key.stringValue)'"
        case let DecodingError.typeMismatch(_, c): "wrong type at '\(c.codingPath.map(\.stringValue).joined(separator: "."))'"
        case let DecodingError.valueNotFound(_, c): "null at '\(c.codingPath.map(\.stringValue).joined(separator: "."))'"
        case DecodingError.dataCorrupted: "not valid JSON"
        default: "\(error)"
        }
    }
}
