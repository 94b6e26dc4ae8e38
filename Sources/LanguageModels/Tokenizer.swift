/// Turns text into token ids and back.
///
/// Implementations are immutable and safe to share across tasks.
public protocol Tokenizer: Sendable {
    /// Number of ids, added tokens included.
    var vocabularySize: Int { get }
    /// The id prepended when `addSpecialTokens` is true and the model wants one (Llama 3), else nil.
    var bosTokenId: Int? { get }
    /// Ids that end a generation (end-of-text, end-of-turn).
    var eosTokenIds: Set<Int> { get }
    /// The id used to pad batches (a model's pad token, else its EOS).
    var padTokenId: Int { get }

    /// The ids of `text`. Special-token strings in `text` (such as `<|im_start|>`) become their
    /// ids when `parseSpecialTokens` is true, and are tokenized as plain text otherwise.
    func encode(_ text: String, addSpecialTokens: Bool, parseSpecialTokens: Bool) -> [Int]

    /// The text of `ids`. Invalid UTF-8 (a partial character) becomes U+FFFD.
    func decode(_ ids: [Int], skipSpecialTokens: Bool) -> String

    /// The raw bytes of `ids` (what `decode` turns into a string), for streaming decoders.
    func bytes(of ids: [Int], skipSpecialTokens: Bool) -> [UInt8]

    /// The id of a token string, if it is in the vocabulary.
    func tokenId(_ token: String) -> Int?
    /// The token string of an id.
    func token(_ id: Int) -> String?
}

extension Tokenizer {
    public func encode(_ text: String) -> [Int] { encode(text, addSpecialTokens: false, parseSpecialTokens: true) }
    public func decode(_ ids: [Int]) -> String { decode(ids, skipSpecialTokens: false) }
}
