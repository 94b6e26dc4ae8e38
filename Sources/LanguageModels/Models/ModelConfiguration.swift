public import MLXEngine
public import Foundation

/// The shape and hyper-parameters of a decoder-only transformer, read from a GGUF file's metadata
/// or a Hugging Face `config.json`. Field names follow Hugging Face's where one exists.
public struct ModelConfiguration: Sendable, Codable, Equatable {
    /// The architecture key the registry looks up ("llama", "qwen2").
    public var architecture: String
    public var vocabularySize: Int
    public var hiddenSize: Int
    public var intermediateSize: Int
    public var layerCount: Int
    public var headCount: Int
    public var kvHeadCount: Int
    public var headDimension: Int
    public var rmsNormEps: Float
    public var ropeTheta: Float
    /// Rotary layout: true rotates adjacent pairs (GGUF llama weights, whose Q and K llama.cpp
    /// permutes), false the two halves of each head (Hugging Face weights, NeoX-rope GGUF
    /// architectures). Set by the architecture's parser.
    public var ropeTraditional: Bool
    /// Linear position scaling (1 = none).
    public var ropeScale: Float
    public var tieWordEmbeddings: Bool
    /// Biases on the q/k/v projections (Qwen2). Set by the architecture's parser.
    public var attentionBias: Bool
    public var maxPositionEmbeddings: Int

    public init(
        architecture: String, vocabularySize: Int, hiddenSize: Int, intermediateSize: Int, layerCount: Int,
        headCount: Int, kvHeadCount: Int, headDimension: Int? = nil, rmsNormEps: Float = 1e-5, ropeTheta: Float = 10_000,
        ropeTraditional: Bool = false, ropeScale: Float = 1, tieWordEmbeddings: Bool = true, attentionBias: Bool = false,
        maxPositionEmbeddings: Int = 2048
    ) {
        self.architecture = architecture
        self.vocabularySize = vocabularySize
        self.hiddenSize = hiddenSize
        self.intermediateSize = intermediateSize
        self.layerCount = layerCount
        self.headCount = headCount
        self.kvHeadCount = kvHeadCount
        self.headDimension = headDimension ?? hiddenSize / max(headCount, 1)
        self.rmsNormEps = rmsNormEps
        self.ropeTheta = ropeTheta
        self.ropeTraditional = ropeTraditional
        self.ropeScale = ropeScale
        self.tieWordEmbeddings = tieWordEmbeddings
        self.attentionBias = attentionBias
        self.maxPositionEmbeddings = maxPositionEmbeddings
    }

    /// Checks that the numbers describe a buildable model; `source` names the file in errors.
    public func validate(source: String) throws(LanguageModelError) {
        func bad(_ message: String) -> LanguageModelError { .invalidModel(path: source, message: message) }
        for (name, value) in [("vocabulary size", vocabularySize), ("hidden size", hiddenSize), ("intermediate size", intermediateSize),
                              ("layer count", layerCount), ("head count", headCount), ("kv head count", kvHeadCount),
                              ("head dimension", headDimension)] where value <= 0 {
            throw bad("\(name) must be positive, got \(value)")
        }
        if headCount % kvHeadCount != 0 { throw bad("head count \(headCount) is not a multiple of kv head count \(kvHeadCount)") }
        if headDimension % 2 != 0 { throw bad("head dimension \(headDimension) must be even for rotary embeddings") }
        if !(rmsNormEps > 0) { throw bad("rms norm epsilon must be positive, got \(rmsNormEps)") }
        if !(ropeTheta > 0) { throw bad("rope theta must be positive, got \(ropeTheta)") }
    }
}

// Reading a configuration: the registry's architecture for the name in the metadata parses it
// (ModelRegistry.swift), usually starting from the shared readers below and adding its own
// fields, so that a new architecture never edits this file.
extension ModelConfiguration {
    /// Reads GGUF metadata through the architecture named by `general.architecture`; an
    /// unregistered name is `LanguageModelError.unsupportedArchitecture` (listing the registered
    /// ones).
    public init(ggufMetadata m: [String: GGUFValue], source: String) throws(LanguageModelError) {
        guard let arch = m["general.architecture"]?.string else {
            throw .invalidModel(path: source, message: "GGUF metadata has no 'general.architecture'")
        }
        self = try ModelRegistry.architecture(named: arch).configuration(ggufMetadata: m, source: source)
    }

    /// Reads a Hugging Face `config.json` through the architecture named by its `model_type`.
    public init(configJSON data: Data, source: String) throws(LanguageModelError) {
        let object = try Self.jsonObject(data, source: source)
        guard let type = object["model_type"] as? String else {
            throw .invalidModel(path: source, message: "config.json field 'model_type' is missing or not a string")
        }
        self = try ModelRegistry.architecture(named: type).configuration(configJSON: object, source: source)
    }

    private static func jsonObject(_ data: Data, source: String) throws(LanguageModelError) -> [String: Any] {
        do {
            guard let o = try JSONSerialization.jsonObject(with: data) as? [String: Any] else {
                throw LanguageModelError.invalidModel(path: source, message: "config.json is not a JSON object")
            }
            return o
        } catch let e as LanguageModelError {
            throw e
        } catch {
            throw .invalidModel(path: source, message: "config.json is not valid JSON: \(error.localizedDescription)")
        }
    }

    /// The fields every architecture reads alike from GGUF metadata (`<architecture>.*` keys);
    /// the rope layout is split-half and q/k/v have no biases unless the architecture says so.
    public init(sharedGGUFMetadata m: [String: GGUFValue], architecture arch: String, source: String) throws(LanguageModelError) {
        func int(_ key: String) throws(LanguageModelError) -> Int {
            guard let v = m["\(arch).\(key)"]?.int else {
                throw .invalidModel(path: source, message: "GGUF metadata field '\(arch).\(key)' is missing or not an integer")
            }
            return v
        }
        let hidden = try int("embedding_length")
        let heads = try int("attention.head_count")
        let vocab = m["\(arch).vocab_size"]?.int ?? m["tokenizer.ggml.tokens"]?.strings?.count
        guard let vocab else { throw .invalidModel(path: source, message: "GGUF metadata gives no vocabulary size ('\(arch).vocab_size' or 'tokenizer.ggml.tokens')") }
        self.init(
            architecture: arch, vocabularySize: vocab, hiddenSize: hidden, intermediateSize: try int("feed_forward_length"),
            layerCount: try int("block_count"), headCount: heads,
            kvHeadCount: m["\(arch).attention.head_count_kv"]?.int ?? heads,
            headDimension: m["\(arch).attention.key_length"]?.int ?? m["\(arch).rope.dimension_count"]?.int,
            rmsNormEps: m["\(arch).attention.layer_norm_rms_epsilon"]?.float ?? 1e-5,
            ropeTheta: m["\(arch).rope.freq_base"]?.float ?? 10_000,
            ropeTraditional: false,
            ropeScale: m["\(arch).rope.scaling.factor"].flatMap { $0.float }.map { 1 / $0 } ?? 1,
            tieWordEmbeddings: true,  // corrected by the loader when an `output` tensor exists
            attentionBias: false,
            maxPositionEmbeddings: m["\(arch).context_length"]?.int ?? 2048
        )
        if let type = m["\(arch).rope.scaling.type"]?.string, type != "linear", type != "none" {
            throw .invalidModel(path: source, message: "rope scaling type '\(type)' is not supported (supported: none, linear)")
        }
    }

    /// The fields every architecture reads alike from a config.json object (Hugging Face's
    /// common keys; `attention_bias` defaults to false).
    public init(sharedConfigJSON object: [String: Any], architecture: String, source: String) throws(LanguageModelError) {
        func int(_ key: String) throws(LanguageModelError) -> Int {
            guard let v = object[key] as? Int else {
                throw .invalidModel(path: source, message: "config.json field '\(key)' is missing or not an integer")
            }
            return v
        }
        func float(_ key: String) -> Float? { (object[key] as? Double).map(Float.init) ?? (object[key] as? Int).map(Float.init) }
        let heads = try int("num_attention_heads")
        let scale = try Self.linearRopeScale(object["rope_scaling"], source: source)
        self.init(
            architecture: architecture, vocabularySize: try int("vocab_size"), hiddenSize: try int("hidden_size"),
            intermediateSize: try int("intermediate_size"), layerCount: try int("num_hidden_layers"), headCount: heads,
            kvHeadCount: object["num_key_value_heads"] as? Int ?? heads, headDimension: object["head_dim"] as? Int,
            rmsNormEps: float("rms_norm_eps") ?? 1e-6, ropeTheta: float("rope_theta") ?? 10_000, ropeTraditional: false,
            ropeScale: scale, tieWordEmbeddings: object["tie_word_embeddings"] as? Bool ?? false,
            attentionBias: object["attention_bias"] as? Bool ?? false,
            maxPositionEmbeddings: object["max_position_embeddings"] as? Int ?? 2048
        )
    }

    /// The position scale of config.json's `rope_scaling` (1 without it); only linear scaling is supported.
    private static func linearRopeScale(_ value: Any?, source: String) throws(LanguageModelError) -> Float {
        guard let scaling = value as? [String: Any] else { return 1 }
        let kind = (scaling["rope_type"] ?? scaling["type"]) as? String ?? "?"
        guard kind == "linear" || kind == "default" else {
            throw .invalidModel(path: source, message: "config.json rope_scaling type '\(kind)' is not supported (supported: default, linear)")
        }
        if kind == "linear", let f = (scaling["factor"] as? Double) { return Float(1 / f) }
        return 1
    }
}
