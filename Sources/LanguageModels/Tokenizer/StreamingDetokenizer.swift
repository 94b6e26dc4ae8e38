/// Turns generated ids into text as they arrive, giving back only complete characters.
///
/// A byte-level token can end in the middle of a UTF-8 character (an emoji is often split over
/// several byte tokens), so decoding each token on its own would print replacement characters.
/// This decoder holds back an incomplete trailing character until the bytes that finish it
/// arrive. The pieces returned by ``append(_:)`` followed by ``finish()`` concatenate to
/// `tokenizer.decode(allIds, skipSpecialTokens:)`, invalid bytes included (they become U+FFFD
/// as soon as they can no longer be completed).
public struct StreamingDetokenizer: Sendable {
    public let tokenizer: any Tokenizer
    public let skipSpecialTokens: Bool
    /// Bytes not yet returned: at most an incomplete character's first three bytes between calls.
    private var pending: [UInt8] = []

    public init(tokenizer: any Tokenizer, skipSpecialTokens: Bool = false) {
        self.tokenizer = tokenizer
        self.skipSpecialTokens = skipSpecialTokens
    }

    /// Adds one id; returns the text that is now complete (possibly empty).
    public mutating func append(_ id: Int) -> String {
        append(contentsOf: [id])
    }

    /// Adds several ids; returns the text that is now complete (possibly empty).
    public mutating func append(contentsOf ids: [Int]) -> String {
        pending.append(contentsOf: tokenizer.bytes(of: ids, skipSpecialTokens: skipSpecialTokens))
        let complete = LossyUTF8.completePrefixLength(pending)
        if complete == 0 { return "" }
        let text = LossyUTF8.decode(pending, upTo: complete)
        pending.removeFirst(complete)
        return text
    }

    /// Whether bytes of an unfinished character are held back.
    public var hasPendingBytes: Bool { !pending.isEmpty }

    /// Returns what is held back, an unfinished character becoming U+FFFD, and starts afresh.
    public mutating func finish() -> String {
        defer { pending.removeAll() }
        return LossyUTF8.decode(pending)
    }
}
