public import LanguageModels

/// A real, trivial tokenizer for tests with tiny models: ids 0-255 are bytes, then `<pad>`,
/// `<eos>`, `<|im_start|>`, `<|im_end|>` (vocabulary 260).
public struct ByteTokenizer: Tokenizer {
    public static let specials = ["<pad>", "<eos>", "<|im_start|>", "<|im_end|>"]
    public init() {}

    public var vocabularySize: Int { 256 + Self.specials.count }
    public var bosTokenId: Int? { nil }
    public var eosTokenIds: Set<Int> { [257, 259] }
    public var padTokenId: Int { 256 }

    public func encode(_ text: String, addSpecialTokens: Bool, parseSpecialTokens: Bool) -> [Int] {
        var ids: [Int] = []
        var rest = Substring(text)
        while !rest.isEmpty {
            if parseSpecialTokens, let (i, s) = Self.specials.enumerated().first(where: { rest.hasPrefix($0.element) }) {
                ids.append(256 + i)
                rest = rest.dropFirst(s.count)
            } else {
                let c = rest.removeFirst()
                ids += String(c).utf8.map(Int.init)
            }
        }
        return ids
    }

    public func bytes(of ids: [Int], skipSpecialTokens: Bool) -> [UInt8] {
        ids.flatMap { id -> [UInt8] in
            if id < 256 { return [UInt8(id)] }
            return skipSpecialTokens ? [] : Array(Self.specials[id - 256].utf8)
        }
    }

    public func decode(_ ids: [Int], skipSpecialTokens: Bool) -> String {
        String(decoding: bytes(of: ids, skipSpecialTokens: skipSpecialTokens), as: UTF8.self)
    }

    public func tokenId(_ token: String) -> Int? {
        if let i = Self.specials.firstIndex(of: token) { return 256 + i }
        let b = Array(token.utf8)
        return b.count == 1 ? Int(b[0]) : nil
    }

    public func token(_ id: Int) -> String? {
        id < 256 ? String(decoding: [UInt8(id)], as: UTF8.self) : id < vocabularySize ? Self.specials[id - 256] : nil
    }
}
