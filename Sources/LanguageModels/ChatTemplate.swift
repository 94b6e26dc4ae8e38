/// A prompt format: how a conversation is laid out as text for a chat model.
///
/// Rendered natively rather than by a Jinja engine; ``detect(fromJinja:tokenizer:)`` picks the
/// format a model's own Jinja template (GGUF `tokenizer.chat_template`, or `chat_template` in
/// `tokenizer_config.json`) writes. Rendered prompts already hold their special tokens (Llama 3's
/// `<|begin_of_text|>` included), so encode them with `addSpecialTokens: false` and
/// `parseSpecialTokens: true`.
public enum ChatTemplate: String, CaseIterable, Sendable {
    /// `<|im_start|>role\ncontent<|im_end|>\n` per message (SmolLM2, Qwen2).
    case chatml
    /// `<|start_header_id|>role<|end_header_id|>\n\ncontent<|eot_id|>` per message after
    /// `<|begin_of_text|>`; contents are trimmed as Meta's template does.
    case llama3

    /// The template called `name` (case-insensitive).
    /// - Throws: `LanguageModelError.unknownChatTemplate` listing the supported names.
    public static func named(_ name: String) throws(LanguageModelError) -> ChatTemplate {
        guard let template = ChatTemplate(rawValue: name.lowercased()) else {
            throw .unknownChatTemplate(name, supported: allCases.map(\.rawValue))
        }
        return template
    }

    /// The format a model uses: recognised from its Jinja chat template when it has one, else
    /// from the special tokens of its vocabulary; nil when neither tells.
    public static func detect(fromJinja jinja: String?, tokenizer: any Tokenizer) -> ChatTemplate? {
        if let jinja {
            if jinja.contains("<|im_start|>") { return .chatml }
            if jinja.contains("<|start_header_id|>") { return .llama3 }
        }
        if tokenizer.tokenId("<|im_start|>") != nil, tokenizer.tokenId("<|im_end|>") != nil { return .chatml }
        if tokenizer.tokenId("<|start_header_id|>") != nil, tokenizer.tokenId("<|eot_id|>") != nil { return .llama3 }
        return nil
    }

    /// The prompt text of `messages`.
    ///
    /// - Parameters:
    ///   - addGenerationPrompt: end with the header of an assistant turn, for the model to continue.
    ///   - defaultSystemPrompt: a system message put first when the conversation does not start
    ///     with one (SmolLM2's template does this with its own sentence; read it with
    ///     ``defaultSystemPrompt(fromJinja:)``).
    public func render(_ messages: [ChatMessage], addGenerationPrompt: Bool, defaultSystemPrompt: String? = nil) -> String {
        var conversation = messages
        if let defaultSystemPrompt, let first = messages.first, first.role != .system {
            conversation.insert(.system(defaultSystemPrompt), at: 0)
        }
        var text = ""
        switch self {
        case .chatml:
            for message in conversation {
                text += "<|im_start|>\(message.role.rawValue)\n\(message.content)<|im_end|>\n"
            }
            if addGenerationPrompt { text += "<|im_start|>assistant\n" }
        case .llama3:
            text = "<|begin_of_text|>"
            for message in conversation {
                text += "<|start_header_id|>\(message.role.rawValue)<|end_header_id|>\n\n\(Self.jinjaTrim(message.content))<|eot_id|>"
            }
            if addGenerationPrompt { text += "<|start_header_id|>assistant<|end_header_id|>\n\n" }
        }
        return text
    }

    /// The special-token strings that end an assistant turn in this format.
    public var stopStrings: [String] {
        switch self {
        case .chatml: ["<|im_end|>", "<|endoftext|>"]
        case .llama3: ["<|eot_id|>", "<|eom_id|>", "<|end_of_text|>"]
        }
    }

    /// The ids of ``stopStrings`` that `tokenizer` has.
    public func stopTokenIds(in tokenizer: any Tokenizer) -> Set<Int> {
        Set(stopStrings.compactMap { tokenizer.tokenId($0) })
    }

    /// The system prompt a ChatML Jinja template inserts when a conversation has none, if it
    /// writes one as a literal (`'<|im_start|>system\n...<|im_end|>\n'`); nil otherwise.
    public static func defaultSystemPrompt(fromJinja jinja: String) -> String? {
        let opener = "<|im_start|>system"
        var searchStart = jinja.startIndex
        while let found = jinja.range(of: opener, range: searchStart..<jinja.endIndex) {
            searchStart = found.upperBound
            var rest = jinja[found.upperBound...]
            // The newline after the role, written as a real newline or as the escape `\n`.
            if rest.hasPrefix("\\n") {
                rest = rest.dropFirst(2)
            } else if rest.hasPrefix("\n") {
                rest = rest.dropFirst()
            } else {
                continue
            }
            guard let end = rest.range(of: "<|im_end|>") else { continue }
            let literal = rest[..<end.lowerBound]
            // Only a sentence written inside the same string literal counts: an expression
            // (`' + system_message + '`) or a Jinja block ends the literal.
            if literal.isEmpty || Self.leavesStringLiteral(literal) { continue }
            return Self.unescapeJinjaString(literal)
        }
        return nil
    }

    // MARK: - helpers

    private static func leavesStringLiteral(_ text: Substring) -> Bool {
        var escaped = false
        for character in text {
            if escaped {
                escaped = false
                continue
            }
            if character == "\\" {
                escaped = true
            } else if character == "'" || character == "\"" {
                return true
            }
        }
        return text.contains("{{") || text.contains("{%") || text.contains("}}") || text.contains("%}")
    }

    private static func unescapeJinjaString(_ text: Substring) -> String {
        var result = ""
        var escaped = false
        for character in text {
            if escaped {
                switch character {
                case "n": result.append("\n")
                case "t": result.append("\t")
                case "r": result.append("\r")
                default: result.append(character)
                }
                escaped = false
            } else if character == "\\" {
                escaped = true
            } else {
                result.append(character)
            }
        }
        return result
    }

    /// Jinja's `trim` filter: Python's `str.strip()`, whose whitespace is Unicode White_Space
    /// plus the separators U+001C-U+001F.
    static func jinjaTrim(_ text: String) -> String {
        func isSpace(_ s: Unicode.Scalar) -> Bool { s.properties.isWhitespace || (0x1C...0x1F).contains(s.value) }
        let scalars = text.unicodeScalars
        guard let first = scalars.firstIndex(where: { !isSpace($0) }) else { return "" }
        let last = scalars.lastIndex(where: { !isSpace($0) })!
        return String(scalars[first...last])
    }
}
