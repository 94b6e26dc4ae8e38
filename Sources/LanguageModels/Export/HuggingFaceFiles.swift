import Foundation
import MLXEngine

/// The non-weight files of an exported Hugging Face folder: config.json, generation_config.json,
/// tokenizer.json and tokenizer_config.json, written from a GGUF file's metadata (the same fields
/// our GGUF tokenizer reads, so both tokenize alike) or copied from a Hugging Face base.
enum HuggingFaceFiles {
    static let tokenizerFiles = ["tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "generation_config.json",
                                 "vocab.json", "merges.txt", "chat_template.jinja", "chat_template.json"]

    static let classNames = ["llama": "LlamaForCausalLM", "qwen2": "Qwen2ForCausalLM"]

    /// config.json for `configuration` in Hugging Face's field names.
    static func config(_ c: ModelConfiguration, torchDType: String, bos: Int?, eos: Int?) throws -> [String: Any] {
        guard let className = classNames[c.architecture] else {
            throw LanguageModelError.unsupportedArchitecture(c.architecture, supported: classNames.keys.sorted())
        }
        var o: [String: Any] = [
            "architectures": [className], "model_type": c.architecture, "hidden_size": c.hiddenSize,
            "intermediate_size": c.intermediateSize, "num_attention_heads": c.headCount, "num_hidden_layers": c.layerCount,
            "num_key_value_heads": c.kvHeadCount, "head_dim": c.headDimension, "rms_norm_eps": Double(c.rmsNormEps),
            "rope_theta": Double(c.ropeTheta), "vocab_size": c.vocabularySize, "max_position_embeddings": c.maxPositionEmbeddings,
            "tie_word_embeddings": c.tieWordEmbeddings, "hidden_act": "silu", "torch_dtype": torchDType, "use_cache": true,
        ]
        if c.architecture == "llama" { o["attention_bias"] = c.attentionBias; o["mlp_bias"] = false }
        if c.ropeScale != 1 { o["rope_scaling"] = ["rope_type": "linear", "type": "linear", "factor": Double(1 / c.ropeScale)] }
        if let bos { o["bos_token_id"] = bos }
        if let eos { o["eos_token_id"] = eos }
        return o
    }

    /// Writes config.json, generation_config.json and the tokenizer files from GGUF metadata.
    static func write(configuration: ModelConfiguration, metadata m: [String: GGUFValue], torchDType: String, to dir: URL) throws {
        let bos = m["tokenizer.ggml.bos_token_id"]?.int, eos = m["tokenizer.ggml.eos_token_id"]?.int
        try ModelExport.writeJSON(try config(configuration, torchDType: torchDType, bos: bos, eos: eos), to: dir.appendingPathComponent("config.json"))

        guard m["tokenizer.ggml.model"]?.string == "gpt2", let tokens = m["tokenizer.ggml.tokens"]?.strings,
              let merges = m["tokenizer.ggml.merges"]?.strings, let preName = m["tokenizer.ggml.pre"]?.string,
              let pre = PreTokenizer(ggufName: preName) else {
            throw LanguageModelError.tokenizer("only byte-level BPE GGUF tokenizers with a supported tokenizer.ggml.pre can be written as tokenizer.json")
        }
        var types: [Int32] = []
        if case let .array(a)? = m["tokenizer.ggml.token_type"] { types = try a.asArray(Int32.self) }
        var added: [[String: Any]] = []
        for (id, type) in types.enumerated() where type == BPETokenizer.ggufControl || type == BPETokenizer.ggufUserDefined {
            added.append(["id": id, "content": tokens[id], "single_word": false, "lstrip": false, "rstrip": false,
                          "normalized": type != BPETokenizer.ggufControl, "special": type == BPETokenizer.ggufControl])
        }
        var vocab: [String: Int] = [:]
        for (id, token) in tokens.enumerated() where vocab[token] == nil { vocab[token] = id }
        let byteLevel: (Bool) -> [String: Any] = { regex in
            ["type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": regex]
        }
        let preTokenizer: [String: Any]
        switch pre {
        case .gpt2: preTokenizer = byteLevel(true)
        case .smollm:
            preTokenizer = ["type": "Sequence", "pretokenizers": [["type": "Digits", "individual_digits": true], byteLevel(true)]]
        case .llama3, .qwen2:
            let pattern = pre == .llama3 ? PreTokenizer.llama3Pattern : PreTokenizer.qwen2Pattern
            preTokenizer = ["type": "Sequence", "pretokenizers": [
                ["type": "Split", "pattern": ["Regex": pattern], "behavior": "Isolated", "invert": false], byteLevel(false)]]
        }
        let tokenizer: [String: Any] = [
            "version": "1.0", "truncation": NSNull(), "padding": NSNull(), "added_tokens": added,
            "normalizer": pre == .qwen2 ? ["type": "NFC"] as Any : NSNull(),
            "pre_tokenizer": preTokenizer,
            "post_processor": postProcessor(addBOS: (m["tokenizer.ggml.add_bos_token"]?.int ?? 0) != 0,
                                            bos: bos.flatMap { $0 < tokens.count ? tokens[$0] : nil }, bosId: bos),
            "decoder": ["type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true],
            "model": ["type": "BPE", "dropout": NSNull(), "unk_token": NSNull(), "continuing_subword_prefix": NSNull(),
                      "end_of_word_suffix": NSNull(), "fuse_unk": false, "byte_fallback": false,
                      "ignore_merges": pre == .llama3, "vocab": vocab, "merges": merges] as [String: Any],
        ]
        try ModelExport.writeJSON(tokenizer, to: dir.appendingPathComponent("tokenizer.json"))

        func token(_ key: String) -> Any { m[key]?.int.flatMap { $0 < tokens.count ? tokens[$0] : nil } ?? NSNull() }
        var tokenizerConfig: [String: Any] = [
            "tokenizer_class": "PreTrainedTokenizerFast", "model_max_length": configuration.maxPositionEmbeddings,
            "bos_token": token("tokenizer.ggml.bos_token_id"), "eos_token": token("tokenizer.ggml.eos_token_id"),
            "pad_token": token("tokenizer.ggml.padding_token_id"), "unk_token": token("tokenizer.ggml.unknown_token_id"),
            "add_bos_token": (m["tokenizer.ggml.add_bos_token"]?.int ?? 0) != 0,
            "add_eos_token": (m["tokenizer.ggml.add_eos_token"]?.int ?? 0) != 0,
            "clean_up_tokenization_spaces": false,
        ]
        if let template = m["tokenizer.chat_template"]?.string { tokenizerConfig["chat_template"] = template }
        try ModelExport.writeJSON(tokenizerConfig, to: dir.appendingPathComponent("tokenizer_config.json"))

        var endIds = Set(["tokenizer.ggml.eos_token_id", "tokenizer.ggml.eot_token_id", "tokenizer.ggml.eom_token_id"].compactMap { m[$0]?.int })
        for entry in added where entry["special"] as? Bool == true {
            if let content = entry["content"] as? String, BPETokenizer.endOfTurnSpellings.contains(content), let id = entry["id"] as? Int { endIds.insert(id) }
        }
        var generation: [String: Any] = ["_from_model_config": false, "eos_token_id": endIds.sorted()]
        if let bos { generation["bos_token_id"] = bos }
        if let pad = m["tokenizer.ggml.padding_token_id"]?.int { generation["pad_token_id"] = pad }
        try ModelExport.writeJSON(generation, to: dir.appendingPathComponent("generation_config.json"))
    }

    /// A post-processor that adds BOS when the GGUF says so (what transformers' fast tokenizers
    /// follow), and a plain byte-level one otherwise.
    static func postProcessor(addBOS: Bool, bos: String?, bosId: Int?) -> [String: Any] {
        guard addBOS, let bos, let bosId else {
            return ["type": "ByteLevel", "add_prefix_space": true, "trim_offsets": false, "use_regex": true]
        }
        let special: [String: Any] = ["SpecialToken": ["id": bos, "type_id": 0]]
        return ["type": "TemplateProcessing",
                "single": [special, ["Sequence": ["id": "A", "type_id": 0]]],
                "pair": [special, ["Sequence": ["id": "A", "type_id": 0]], special, ["Sequence": ["id": "B", "type_id": 1]]],
                "special_tokens": [bos: ["id": bos, "ids": [bosId], "tokens": [bos]]]]
    }

    /// Copies a Hugging Face base's tokenizer files and config.json (its dtype updated).
    static func copyTokenizerAndConfig(from base: URL, to dir: URL, torchDType: String) throws {
        let fm = FileManager.default
        for name in tokenizerFiles where fm.fileExists(atPath: base.appendingPathComponent(name).path) {
            let target = dir.appendingPathComponent(name)
            try? fm.removeItem(at: target)
            try fm.copyItem(at: base.appendingPathComponent(name), to: target)
        }
        let data = try Data(contentsOf: base.appendingPathComponent("config.json"))
        guard var object = try JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw LanguageModelError.invalidModel(path: base.path, message: "config.json is not a JSON object")
        }
        object["torch_dtype"] = torchDType
        try ModelExport.writeJSON(object, to: dir.appendingPathComponent("config.json"))
    }
}
