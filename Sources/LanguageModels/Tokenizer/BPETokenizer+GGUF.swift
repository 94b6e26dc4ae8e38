public import MLXEngine

extension BPETokenizer {
    /// The tokenizer stored in a GGUF file's metadata (`tokenizer.ggml.*`, llama.cpp's keys).
    ///
    /// Requires `tokenizer.ggml.model` = "gpt2" (byte-level BPE), `tokens`, `merges` and a
    /// supported `pre` (see ``PreTokenizer/supportedGGUFNames``). Control tokens (`token_type` 3)
    /// become special added tokens, user-defined ones (4) plain added tokens. Generation ends at
    /// the EOS, EOT and EOM ids and at control tokens with a known end-of-turn spelling
    /// (`<|im_end|>`, `<|eot_id|>`, ...), as llama.cpp decides.
    public convenience init(ggufMetadata metadata: [String: GGUFValue]) throws(LanguageModelError) {
        func string(_ key: String) -> String? { metadata[key]?.string }
        func int(_ key: String) -> Int? { metadata[key]?.int }
        func bool(_ key: String) -> Bool? { metadata[key]?.int.map { $0 != 0 } }

        guard let model = string("tokenizer.ggml.model") else { throw .tokenizer("GGUF metadata has no tokenizer.ggml.model") }
        guard model == "gpt2" else {
            throw .tokenizer("tokenizer.ggml.model is '\(model)'; only byte-level BPE ('gpt2') is supported")
        }
        guard let tokens = metadata["tokenizer.ggml.tokens"]?.strings, !tokens.isEmpty else {
            throw .tokenizer("GGUF metadata has no tokenizer.ggml.tokens")
        }
        guard let mergeLines = metadata["tokenizer.ggml.merges"]?.strings else {
            throw .tokenizer("GGUF metadata has no tokenizer.ggml.merges (a byte-level BPE vocabulary needs its merges)")
        }
        guard let preName = string("tokenizer.ggml.pre") else {
            throw .tokenizer("GGUF metadata has no tokenizer.ggml.pre (the pre-tokenizer's name)")
        }
        guard let preTokenizer = PreTokenizer(ggufName: preName) else {
            throw .tokenizer(
                "unsupported pre-tokenizer tokenizer.ggml.pre = '\(preName)'; supported: \(PreTokenizer.supportedGGUFNames.joined(separator: ", "))")
        }
        var merges: [(String, String)] = []
        merges.reserveCapacity(mergeLines.count)
        for (index, line) in mergeLines.enumerated() {
            merges.append(try Self.splitMerge(line, field: "tokenizer.ggml.merges[\(index)]"))
        }

        var types: [Int32] = []
        if case let .array(array)? = metadata["tokenizer.ggml.token_type"] {
            guard let values = try? array.asArray(Int32.self), values.count == tokens.count else {
                throw .tokenizer("tokenizer.ggml.token_type has \(array.size) entries for \(tokens.count) tokens")
            }
            types = values
        }
        var added: [AddedToken] = []
        for (id, type) in types.enumerated() where type == Self.ggufControl || type == Self.ggufUserDefined {
            added.append(AddedToken(content: tokens[id], id: id, isSpecial: type == Self.ggufControl))
        }

        var endOfGeneration = Set(["tokenizer.ggml.eot_token_id", "tokenizer.ggml.eom_token_id"].compactMap { int($0) })
        for token in added where token.isSpecial && Self.endOfTurnSpellings.contains(token.content) {
            endOfGeneration.insert(token.id)
        }
        try self.init(
            tokens: tokens, merges: merges, addedTokens: added, preTokenizer: preTokenizer,
            normalization: preTokenizer == .qwen2 ? .nfc : .none,
            ignoreMerges: preTokenizer == .llama3,
            bosTokenId: int("tokenizer.ggml.bos_token_id"), addBOS: bool("tokenizer.ggml.add_bos_token") ?? false,
            eosTokenId: int("tokenizer.ggml.eos_token_id"), addEOS: bool("tokenizer.ggml.add_eos_token") ?? false,
            endOfGenerationTokenIds: endOfGeneration, padTokenId: int("tokenizer.ggml.padding_token_id"))
    }

    /// The tokenizer of a GGUF file (reads the whole file; use ``init(ggufMetadata:)`` when the
    /// metadata is already loaded).
    public convenience init(ggufPath path: String) throws(LanguageModelError) {
        let file: GGUFFile
        do {
            file = try ArrayIO.loadGGUF(path)
        } catch {
            throw .invalidModel(path: path, message: "\(error)")
        }
        try self.init(ggufMetadata: file.metadata)
    }

    /// GGUF token types (llama.cpp's `llama_token_type`).
    static let ggufControl: Int32 = 3
    static let ggufUserDefined: Int32 = 4

    /// Spellings of tokens that end a turn, which llama.cpp treats as end of generation.
    static let endOfTurnSpellings: Set<String> = [
        "<|eot_id|>", "<|eom_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>", "<|end_of_text|>", "<EOT>",
        "<|return|>", "<|call|>",
    ]

    /// A merge rule written "left right".
    static func splitMerge(_ line: String, field: String) throws(LanguageModelError) -> (String, String) {
        let parts = line.split(separator: " ", omittingEmptySubsequences: false)
        guard parts.count == 2, !parts[0].isEmpty, !parts[1].isEmpty else {
            throw .tokenizer("\(field) is '\(line)', not two tokens separated by one space")
        }
        return (String(parts[0]), String(parts[1]))
    }
}
