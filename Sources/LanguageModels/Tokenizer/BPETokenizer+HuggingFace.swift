public import Foundation

extension BPETokenizer {
    /// The tokenizer of a Hugging Face model folder: `tokenizer.json`, with `tokenizer_config.json`
    /// (BOS/EOS/padding tokens, `add_bos_token`) and `generation_config.json` (further
    /// `eos_token_id`s) when present.
    public convenience init(directory: URL) throws(LanguageModelError) {
        let config = directory.appendingPathComponent("tokenizer_config.json")
        let generation = directory.appendingPathComponent("generation_config.json")
        let exists = { (url: URL) in FileManager.default.fileExists(atPath: url.path) }
        try self.init(
            tokenizerJSON: directory.appendingPathComponent("tokenizer.json"),
            config: exists(config) ? config : nil,
            generationConfig: exists(generation) ? generation : nil)
    }

    /// A tokenizer from a Hugging Face `tokenizer.json` and, optionally, its `tokenizer_config.json`.
    ///
    /// Supported: a `BPE` model (merges as `"a b"` strings or `["a", "b"]` pairs, `ignore_merges`),
    /// `added_tokens`, no normalizer or `NFC`, a pre-tokenizer equal to one of ``PreTokenizer``'s
    /// kinds (`ByteLevel` with its regex; `Digits(individual_digits)` then `ByteLevel`; `Split` with
    /// the Llama 3 or Qwen2 expression then `ByteLevel` without regex), a `ByteLevel` decoder, and a
    /// `TemplateProcessing` post-processor that adds BOS/EOS. Anything else is an error that names it.
    public convenience init(tokenizerJSON: URL, config: URL? = nil, generationConfig: URL? = nil) throws(LanguageModelError) {
        let root = try Self.readJSONObject(tokenizerJSON)
        let configObject = try config.map { (url) throws(LanguageModelError) in try Self.readJSONObject(url) }
        let generationObject = try generationConfig.map { (url) throws(LanguageModelError) in try Self.readJSONObject(url) }
        do {
            let parts = try HuggingFaceTokenizerFile(root: root, config: configObject, generationConfig: generationObject)
            try self.init(
                tokens: parts.tokens, merges: parts.merges, addedTokens: parts.addedTokens, preTokenizer: parts.preTokenizer,
                normalization: parts.normalization, ignoreMerges: parts.ignoreMerges, bosTokenId: parts.bosTokenId,
                addBOS: parts.addBOS, eosTokenId: parts.eosTokenId, addEOS: parts.addEOS,
                endOfGenerationTokenIds: parts.endOfGenerationTokenIds, padTokenId: parts.padTokenId)
        } catch let .tokenizer(message) {
            throw .tokenizer("\(tokenizerJSON.lastPathComponent): \(message)")
        }
    }

    private static func readJSONObject(_ url: URL) throws(LanguageModelError) -> [String: Any] {
        let data: Data
        do {
            data = try Data(contentsOf: url)
        } catch {
            throw .tokenizer("cannot read \(url.path): \(error.localizedDescription)")
        }
        let object: Any
        do {
            object = try JSONSerialization.jsonObject(with: data)
        } catch {
            throw .tokenizer("\(url.path) is not valid JSON: \(error.localizedDescription)")
        }
        guard let dictionary = object as? [String: Any] else { throw .tokenizer("\(url.path) is not a JSON object") }
        return dictionary
    }
}

/// The parts of a `tokenizer.json` (+ configs) that a ``BPETokenizer`` needs.
private struct HuggingFaceTokenizerFile {
    var tokens: [String?] = []
    var merges: [(String, String)] = []
    var addedTokens: [BPETokenizer.AddedToken] = []
    var preTokenizer: PreTokenizer = .gpt2
    var normalization: BPETokenizer.Normalization = .none
    var ignoreMerges = false
    var bosTokenId: Int?
    var addBOS = false
    var eosTokenId: Int?
    var addEOS = false
    var endOfGenerationTokenIds: Set<Int> = []
    var padTokenId: Int?

    init(root: [String: Any], config: [String: Any]?, generationConfig: [String: Any]?) throws(LanguageModelError) {
        try readModel(root)
        try readAddedTokens(root)
        try readNormalizer(root["normalizer"])
        preTokenizer = try Self.preTokenizer(root["pre_tokenizer"])
        try Self.checkDecoder(root["decoder"])
        try readSpecialTokens(root: root, config: config, generationConfig: generationConfig)
    }

    private var idOfToken: [String: Int] = [:]

    private mutating func readModel(_ root: [String: Any]) throws(LanguageModelError) {
        guard let model = root["model"] as? [String: Any] else { throw .tokenizer("field 'model' is missing or not an object") }
        let type = model["type"] as? String ?? "BPE"
        guard type == "BPE" else { throw .tokenizer("model.type '\(type)' is not supported (only byte-level BPE)") }
        for key in ["continuing_subword_prefix", "end_of_word_suffix"] {
            if let value = model[key] as? String, !value.isEmpty {
                throw .tokenizer("model.\(key) '\(value)' is not supported (not a byte-level BPE)")
            }
        }
        if model["byte_fallback"] as? Bool == true { throw .tokenizer("model.byte_fallback is not supported (not a byte-level BPE)") }
        guard let vocab = model["vocab"] as? [String: Any] else { throw .tokenizer("field 'model.vocab' is missing or not an object") }
        var maxId = -1
        for (token, value) in vocab {
            guard let id = Self.integer(value), id >= 0, id < 1 << 31 else {
                throw .tokenizer("model.vocab['\(token)'] is not a valid token id")
            }
            idOfToken[token] = id
            maxId = max(maxId, id)
        }
        tokens = [String?](repeating: nil, count: maxId + 1)
        for (token, id) in idOfToken { tokens[id] = token }
        guard let mergeList = model["merges"] as? [Any] else { throw .tokenizer("field 'model.merges' is missing or not an array") }
        merges.reserveCapacity(mergeList.count)
        for (index, item) in mergeList.enumerated() {
            let field = "model.merges[\(index)]"
            if let line = item as? String {
                merges.append(try BPETokenizer.splitMerge(line, field: field))
            } else if let pair = item as? [Any], pair.count == 2, let left = pair[0] as? String, let right = pair[1] as? String {
                merges.append((left, right))
            } else {
                throw .tokenizer("\(field) is neither \"a b\" nor [\"a\", \"b\"]")
            }
        }
        ignoreMerges = model["ignore_merges"] as? Bool ?? false
    }

    private mutating func readAddedTokens(_ root: [String: Any]) throws(LanguageModelError) {
        guard let value = root["added_tokens"], !(value is NSNull) else { return }
        guard let list = value as? [Any] else { throw .tokenizer("field 'added_tokens' is not an array") }
        for (index, item) in list.enumerated() {
            let field = "added_tokens[\(index)]"
            guard let token = item as? [String: Any] else { throw .tokenizer("\(field) is not an object") }
            guard let id = token["id"].flatMap(Self.integer), id >= 0, id < 1 << 31 else { throw .tokenizer("\(field).id is missing or invalid") }
            guard let content = token["content"] as? String else { throw .tokenizer("\(field).content is missing") }
            if token["single_word"] as? Bool == true {
                throw .tokenizer("\(field) ('\(content)') uses single_word, which is not supported")
            }
            addedTokens.append(
                BPETokenizer.AddedToken(
                    content: content, id: id, isSpecial: token["special"] as? Bool ?? false,
                    leftStrip: token["lstrip"] as? Bool ?? false, rightStrip: token["rstrip"] as? Bool ?? false))
            idOfToken[content] = id
        }
    }

    private mutating func readNormalizer(_ value: Any?) throws(LanguageModelError) {
        guard let value, !(value is NSNull) else { return }
        guard let object = value as? [String: Any], let type = object["type"] as? String else {
            throw .tokenizer("field 'normalizer' is not an object with a type")
        }
        switch type {
        case "NFC": normalization = .nfc
        case "Sequence":
            let items = object["normalizers"] as? [Any] ?? []
            for item in items { try readNormalizer(item) }
        default: throw .tokenizer("normalizer '\(type)' is not supported (only none or NFC)")
        }
    }

    /// Maps the pre-tokenizer JSON onto a supported kind by its exact shape.
    private static func preTokenizer(_ value: Any?) throws(LanguageModelError) -> PreTokenizer {
        guard let object = value as? [String: Any] else {
            throw .tokenizer("pre_tokenizer is missing; byte-level BPE needs one (supported: \(supportedShapes))")
        }
        var steps = [object]
        if object["type"] as? String == "Sequence" {
            steps = (object["pretokenizers"] as? [Any] ?? []).compactMap { $0 as? [String: Any] }
        }
        let shape = steps.map(describe)
        func byteLevel(_ step: [String: Any], regex: Bool) -> Bool {
            step["type"] as? String == "ByteLevel" && (step["use_regex"] as? Bool ?? true) == regex
                && (step["add_prefix_space"] as? Bool ?? false) == false
        }
        switch steps.count {
        case 1 where byteLevel(steps[0], regex: true):
            return .gpt2
        case 2 where steps[0]["type"] as? String == "Digits" && steps[0]["individual_digits"] as? Bool == true
            && byteLevel(steps[1], regex: true):
            return .smollm
        case 2 where steps[0]["type"] as? String == "Split" && byteLevel(steps[1], regex: false):
            let split = steps[0]
            let pattern = (split["pattern"] as? [String: Any])?["Regex"] as? String
            let isolated = split["behavior"] as? String == "Isolated" && (split["invert"] as? Bool ?? false) == false
            switch pattern {
            case PreTokenizer.llama3Pattern? where isolated: return .llama3
            case PreTokenizer.qwen2Pattern? where isolated: return .qwen2
            case PreTokenizer.gpt2Pattern? where isolated: return .gpt2
            default: break
            }
        default: break
        }
        throw .tokenizer("pre_tokenizer \(shape.joined(separator: " then ")) is not supported; supported: \(supportedShapes)")
    }

    private static let supportedShapes =
        "ByteLevel(use_regex) [gpt2], Digits(individual_digits) then ByteLevel [smollm], Split(Llama 3 regex) then ByteLevel [llama3], Split(Qwen2 regex) then ByteLevel [qwen2]"

    /// A short description of one pre-tokenizer step for error messages.
    private static func describe(_ step: [String: Any]) -> String {
        let type = step["type"] as? String ?? "?"
        switch type {
        case "Split":
            let pattern = step["pattern"] as? [String: Any]
            let text = (pattern?["Regex"] as? String).map { "regex '\($0)'" } ?? (pattern?["String"] as? String).map { "string '\($0)'" } ?? "?"
            return "Split(\(text), \(step["behavior"] as? String ?? "?"))"
        case "ByteLevel":
            return "ByteLevel(use_regex: \(step["use_regex"] as? Bool ?? true), add_prefix_space: \(step["add_prefix_space"] as? Bool ?? false))"
        case "Digits":
            return "Digits(individual_digits: \(step["individual_digits"] as? Bool ?? false))"
        default:
            return type
        }
    }

    private static func checkDecoder(_ value: Any?) throws(LanguageModelError) {
        guard let value, !(value is NSNull) else { return }
        guard let object = value as? [String: Any], let type = object["type"] as? String else {
            throw .tokenizer("field 'decoder' is not an object with a type")
        }
        switch type {
        case "ByteLevel": return
        case "Sequence":
            for item in object["decoders"] as? [Any] ?? [] { try checkDecoder(item) }
        default: throw .tokenizer("decoder '\(type)' is not supported (only ByteLevel)")
        }
    }

    private mutating func readSpecialTokens(root: [String: Any], config: [String: Any]?, generationConfig: [String: Any]?) throws(LanguageModelError) {
        // The post-processor says whether BOS/EOS are added (Llama 3 adds BOS this way).
        var processorBOS: Int?, processorEOS: Int?
        func template(_ processor: Any?) {
            guard let processor = processor as? [String: Any] else { return }
            if processor["type"] as? String == "Sequence" {
                for item in processor["processors"] as? [Any] ?? [] { template(item) }
                return
            }
            guard processor["type"] as? String == "TemplateProcessing", let single = processor["single"] as? [Any] else { return }
            func specialId(_ item: Any?) -> Int? {
                guard let name = ((item as? [String: Any])?["SpecialToken"] as? [String: Any])?["id"] as? String else { return nil }
                let table = (processor["special_tokens"] as? [String: Any])?[name] as? [String: Any]
                return (table?["ids"] as? [Any])?.first.flatMap(Self.integer) ?? idOfToken[name]
            }
            processorBOS = specialId(single.first)
            if single.count > 1 { processorEOS = specialId(single.last) }
        }
        template(root["post_processor"])

        func configToken(_ key: String) throws(LanguageModelError) -> Int? {
            guard let value = config?[key], !(value is NSNull) else { return nil }
            let content = value as? String ?? (value as? [String: Any])?["content"] as? String
            guard let content else { throw .tokenizer("tokenizer_config.json: \(key) is neither a string nor {\"content\": ...}") }
            guard let id = idOfToken[content] else { throw .tokenizer("tokenizer_config.json: \(key) '\(content)' is not in the vocabulary") }
            return id
        }
        bosTokenId = try configToken("bos_token") ?? processorBOS
        addBOS = config?["add_bos_token"] as? Bool ?? (processorBOS != nil)
        eosTokenId = try configToken("eos_token") ?? processorEOS
        addEOS = config?["add_eos_token"] as? Bool ?? (processorEOS != nil)
        padTokenId = try configToken("pad_token")
        if let eos = generationConfig?["eos_token_id"] {
            if let id = Self.integer(eos) {
                endOfGenerationTokenIds.insert(id)
            } else if let ids = eos as? [Any] {
                endOfGenerationTokenIds.formUnion(ids.compactMap(Self.integer))
            }
        }
        for token in addedTokens where token.isSpecial && BPETokenizer.endOfTurnSpellings.contains(token.content) {
            endOfGenerationTokenIds.insert(token.id)
        }
    }

    /// An integer JSON value (JSONSerialization gives NSNumber).
    private static func integer(_ value: Any) -> Int? {
        guard let number = value as? NSNumber else { return nil }
        let double = number.doubleValue
        guard double == double.rounded(), abs(double) < 1e15 else { return nil }
        return number.intValue
    }
}
