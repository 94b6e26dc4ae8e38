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
/// Long inputs are never rejected. `encode` cuts them: the prompt's content keeps its first
/// `maxPromptTokens` tokens, the response its first `maxResponseTokens` (text beyond
/// `characterLimitPerToken` x the limit is not even tokenized). `encodeWindows`, which the
/// evaluator uses, reads the whole response in overlapping windows instead (the prompt is cut as
/// in `encode`), and `WindowAggregation` combines their assessments.
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
            let (prompt, promptCut) = chatPrompt(pair.prompt)
            let (responseContent, responseCut) = tokens(pair.response, limit: encoding.maxResponseTokens)
            return Encoded(prompt: prompt, response: responseContent + [endOfTurn], truncated: promptCut || responseCut)
        }

        /// The prompt's content, cut to `maxPromptTokens`, inside the chat format's user turn.
        func chatPrompt(_ text: String) -> (ids: [Int], cut: Bool) {
            let (content, cut) = tokens(text, limit: encoding.maxPromptTokens)
            return (header + content + footer, cut)
        }

        /// Encodes one pair as windows that together read the whole response, at two scales: the
        /// prompt as in `encode`, and the response (1) in sliding windows of `maxResponseTokens`
        /// tokens that overlap by `overlap` tokens, and (2) paragraph by paragraph (split after
        /// each newline; paragraphs shorter than `minimumParagraphTokens` are joined with the next,
        /// longer ones cut into sliding windows), so that a passage is also read without the text
        /// around it, which would otherwise dilute it. A response within the limit is one window,
        /// exactly `encode(pair)`. Every token is read about twice, so cost is linear in the
        /// response's length, up to `maxTokens` tokens (16,384 by default); a longer response is
        /// read that far and its windows are marked `truncated`.
        public func encodeWindows(_ pair: ValuePair, overlap: Int = 64, minimumParagraphTokens: Int = 24, maxTokens: Int = 16_384) -> [Encoded] {
            let limit = encoding.maxResponseTokens
            let (prompt, promptCut) = chatPrompt(pair.prompt)
            // Within the limit: one window, as `encode` makes it (the text tokenized once).
            let (head, headCut) = tokens(pair.response, limit: limit)
            guard headCut else { return [Encoded(prompt: prompt, response: head + [endOfTurn], truncated: promptCut)] }
            let (ids, paragraphStarts, cut) = paragraphTokens(pair.response, limit: Swift.max(limit + 1, maxTokens))
            let stride = Swift.max(1, limit - Swift.min(overlap, limit / 2))
            var ranges = Self.sliding(0..<ids.count, limit: limit, stride: stride)
            // Paragraph chunks: from one paragraph start to the next start at least
            // `minimumParagraphTokens` on (or the end).
            var begin = 0
            for next in paragraphStarts.dropFirst() + [ids.count] where next - begin >= minimumParagraphTokens || next == ids.count {
                if next > begin { ranges += Self.sliding(begin..<next, limit: limit, stride: stride) }
                begin = next
            }
            var seen = Set<Range<Int>>()
            return ranges.filter { seen.insert($0).inserted }.map {
                Encoded(prompt: prompt, response: Array(ids[$0]) + [endOfTurn], truncated: promptCut || cut)
            }
        }

        /// `range` in windows of at most `limit` positions, each `stride` after the last, the last
        /// ending at the range's end.
        static func sliding(_ range: Range<Int>, limit: Int, stride: Int) -> [Range<Int>] {
            var result: [Range<Int>] = []
            var start = range.lowerBound
            while true {
                let end = Swift.min(start + limit, range.upperBound)
                result.append(start..<end)
                if end == range.upperBound { return result }
                start += stride
            }
        }

        /// The response's tokens, paragraph by paragraph (split after each newline), with the
        /// index where each paragraph's tokens start; cut after `limit` tokens.
        func paragraphTokens(_ text: String, limit: Int) -> (ids: [Int], starts: [Int], cut: Bool) {
            var ids: [Int] = [], starts: [Int] = []
            var remaining = Substring(text)
            var cut = false
            while !remaining.isEmpty {
                guard ids.count < limit else { cut = true; break }
                let end = remaining.firstIndex(of: "\n").map { remaining.index(after: $0) } ?? remaining.endIndex
                let (piece, pieceCut) = tokens(String(remaining[..<end]), limit: limit - ids.count)
                if !piece.isEmpty {
                    starts.append(ids.count)
                    ids += piece
                }
                remaining = remaining[end...]
                if pieceCut { cut = true; break }
            }
            return (ids, starts, cut)
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
