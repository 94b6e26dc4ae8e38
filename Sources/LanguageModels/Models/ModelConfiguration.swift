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
    /// true for GGUF llama weights (llama.cpp permutes Q and K for the interleaved rotary layout),
    /// false for Hugging Face weights and for GGUF architectures llama.cpp runs with NeoX rope.
    public var ropeTraditional: Bool
    /// Linear position scaling (1 = none).
    public var ropeScale: Float
    public var tieWordEmbeddings: Bool
    /// Biases on the q/k/v projections (Qwen2).
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

    /// Reads `<arch>.*` keys of GGUF metadata.
    public init(ggufMetadata m: [String: GGUFValue], source: String) throws(LanguageModelError) {
        guard let arch = m["general.architecture"]?.string else {
            throw .invalidModel(path: source, message: "GGUF metadata has no 'general.architecture'")
        }
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
            ropeTraditional: arch == "llama",
            ropeScale: m["\(arch).rope.scaling.factor"].flatMap { $0.float }.map { 1 / $0 } ?? 1,
            tieWordEmbeddings: true,  // corrected by the loader when an `output` tensor exists
            attentionBias: arch == "qwen2",
            maxPositionEmbeddings: m["\(arch).context_length"]?.int ?? 2048
        )
        if let type = m["\(arch).rope.scaling.type"]?.string, type != "linear", type != "none" {
            throw .invalidModel(path: source, message: "rope scaling type '\(type)' is not supported (supported: none, linear)")
        }
    }

    /// Reads a Hugging Face `config.json`.
    public init(configJSON data: Data, source: String) throws(LanguageModelError) {
        let object: [String: Any]
        do {
            guard let o = try JSONSerialization.jsonObject(with: data) as? [String: Any] else {
                throw LanguageModelError.invalidModel(path: source, message: "config.json is not a JSON object")
            }
            object = o
        } catch let e as LanguageModelError {
            throw e
        } catch {
            throw .invalidModel(path: source, message: "config.json is not valid JSON: \(error.localizedDescription)")
        }
        func int(_ key: String) throws(LanguageModelError) -> Int {
            guard let v = object[key] as? Int else {
                throw .invalidModel(path: source, message: "config.json field '\(key)' is missing or not an integer")
            }
            return v
        }
        func float(_ key: String) -> Float? { (object[key] as? Double).map(Float.init) ?? (object[key] as? Int).map(Float.init) }
        guard let type = object["model_type"] as? String else {
            throw .invalidModel(path: source, message: "config.json field 'model_type' is missing or not a string")
        }
        let heads = try int("num_attention_heads")
        var scale: Float = 1
        if let scaling = object["rope_scaling"] as? [String: Any] {
            let kind = (scaling["rope_type"] ?? scaling["type"]) as? String ?? "?"
            guard kind == "linear" || kind == "default" else {
                throw .invalidModel(path: source, message: "config.json rope_scaling type '\(kind)' is not supported (supported: default, linear)")
            }
            if kind == "linear", let f = (scaling["factor"] as? Double) { scale = Float(1 / f) }
        }
        self.init(
            architecture: type, vocabularySize: try int("vocab_size"), hiddenSize: try int("hidden_size"),
            intermediateSize: try int("intermediate_size"), layerCount: try int("num_hidden_layers"), headCount: heads,
            kvHeadCount: object["num_key_value_heads"] as? Int ?? heads, headDimension: object["head_dim"] as? Int,
            rmsNormEps: float("rms_norm_eps") ?? 1e-6, ropeTheta: float("rope_theta") ?? 10_000, ropeTraditional: false,
            ropeScale: scale, tieWordEmbeddings: object["tie_word_embeddings"] as? Bool ?? false,
            attentionBias: object["attention_bias"] as? Bool ?? (type == "qwen2"),
            maxPositionEmbeddings: object["max_position_embeddings"] as? Int ?? 2048
        )
    }
}
