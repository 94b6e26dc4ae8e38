public import LanguageModels
public import ValueSpace

/// How a prompt/response pair becomes the token ids the base model reads.
///
/// The pair is laid out in the model's chat format as one user turn (no system prompt: it would
/// add ~20 tokens to every pair and says nothing about the response) followed by the assistant's
/// response and the template's end-of-turn token. The end-of-turn token guarantees every response
/// has at least one token (an empty response is a valid input) and gives `last` pooling a position
/// that has read the whole exchange.
///
/// Long inputs are cut, never rejected: the prompt's content keeps its first `maxPromptTokens`
/// tokens, the response its first `maxResponseTokens` (the opening of an answer, where a refusal
/// or a compliance shows, matters most for its values). Text beyond `characterLimitPerToken` x the
/// token limit is not even tokenized, so a multi-megabyte response costs no more than a long one.
public struct PairEncoding: Sendable, Codable, Equatable {
    /// Most tokens of prompt content (the chat template's own tokens come on top).
    public var maxPromptTokens: Int
    /// Most tokens of response content (the end-of-turn token comes on top).
    public var maxResponseTokens: Int

    /// Characters tokenized per allowed token before cutting; BPE tokens average ~4 characters,
    /// so 16 leaves a wide margin and still bounds the work on huge inputs.
    public static let characterLimitPerToken = 16

    public init(maxPromptTokens: Int = 128, maxResponseTokens: Int = 320) {
        self.maxPromptTokens = maxPromptTokens
        self.maxResponseTokens = maxResponseTokens
    }

    /// Checks the limits.
    public func validate() throws(EvaluatorError) {
        guard maxPromptTokens >= 1 else { throw .invalidParameter(field: "maxPromptTokens", message: "must be at least 1, got \(maxPromptTokens)") }
        guard maxResponseTokens >= 1 else { throw .invalidParameter(field: "maxResponseTokens", message: "must be at least 1, got \(maxResponseTokens)") }
    }

    /// One encoded pair.
    public struct Encoded: Sendable, Equatable {
        /// Chat-formatted prompt, ending with the assistant's turn header.
        public var prompt: [Int]
        /// Response content plus the end-of-turn token (never empty).
        public var response: [Int]
        /// Whether the prompt or the response was cut.
        public var truncated: Bool
        public var count: Int { prompt.count + response.count }
    }

    /// A reusable encoder for one tokenizer and chat format.
    public struct Encoder: Sendable {
        public let encoding: PairEncoding
        public let tokenizer: any Tokenizer
        let header: [Int]
        let footer: [Int]
        let endOfTurn: Int

        /// - Throws: `EvaluatorError.invalidParameter` when the tokenizer lacks the template's
        ///   end-of-turn token.
        public init(encoding: PairEncoding, tokenizer: any Tokenizer, template: ChatTemplate) throws(EvaluatorError) {
            try encoding.validate()
            self.encoding = encoding
            self.tokenizer = tokenizer
            // Render around a private-use marker to find the template's text before and after the
            // user's content; content is tokenized on its own so it can be cut by tokens.
            let marker = "\u{F8FF}"
            let rendered = template.render([.user(marker)], addGenerationPrompt: true, defaultSystemPrompt: nil)
            let parts = rendered.components(separatedBy: marker)
            guard parts.count == 2 else {
                throw .invalidParameter(field: "template", message: "the \(template.rawValue) template does not place the user's content once")
            }
            header = tokenizer.encode(parts[0], addSpecialTokens: false, parseSpecialTokens: true)
            footer = tokenizer.encode(parts[1], addSpecialTokens: false, parseSpecialTokens: true)
            guard let end = template.stopStrings.lazy.compactMap({ tokenizer.tokenId($0) }).first else {
                throw .invalidParameter(field: "template", message: "the tokenizer has none of the \(template.rawValue) end-of-turn tokens \(template.stopStrings)")
            }
            endOfTurn = end
        }

        /// Encodes one pair. Special-token strings inside the texts are read as plain text, so a
        /// response cannot forge the end of its turn.
        public func encode(_ pair: ValuePair) -> Encoded {
            let (promptContent, promptCut) = tokens(pair.prompt, limit: encoding.maxPromptTokens)
            let (responseContent, responseCut) = tokens(pair.response, limit: encoding.maxResponseTokens)
            return Encoded(prompt: header + promptContent + footer, response: responseContent + [endOfTurn], truncated: promptCut || responseCut)
        }

        func tokens(_ text: String, limit: Int) -> ([Int], Bool) {
            let characterLimit = limit * PairEncoding.characterLimitPerToken
            var cut = false
            var source = text
            // Only look as far as the limit: counting a huge text's scalars would read all of it.
            let head = text.unicodeScalars.prefix(characterLimit + 1)
            if head.count > characterLimit {
                source = String(String.UnicodeScalarView(head.dropLast()))
                cut = true
            }
            let ids = tokenizer.encode(source, addSpecialTokens: false, parseSpecialTokens: false)
            if ids.count > limit { return (Array(ids.prefix(limit)), true) }
            return (ids, cut)
        }
    }
}
