/// Finds added tokens in text before pre-tokenization, leftmost first and longest among those
/// starting at the same place (Hugging Face's Aho-Corasick leftmost-longest matching).
struct AddedTokenMatcher: Sendable {
    enum Segment: Equatable {
        case token(Int)
        /// A byte range of the text to tokenize normally.
        case text(Range<Int>)
    }

    private struct Entry: Sendable {
        var bytes: [UInt8]
        var id: Int
        var isSpecial: Bool
        var leftStrip: Bool
        var rightStrip: Bool
    }

    /// Entries by their first byte, longest first.
    private let byFirstByte: [[Entry]]
    private let isEmpty: Bool

    init(_ tokens: [BPETokenizer.AddedToken]) {
        var buckets = [[Entry]](repeating: [], count: 256)
        for token in tokens where !token.content.isEmpty {
            let bytes = Array(token.content.utf8)
            buckets[Int(bytes[0])].append(
                Entry(bytes: bytes, id: token.id, isSpecial: token.isSpecial, leftStrip: token.leftStrip, rightStrip: token.rightStrip))
        }
        byFirstByte = buckets.map { $0.sorted { $0.bytes.count > $1.bytes.count } }
        isEmpty = tokens.allSatisfy { $0.content.isEmpty }
    }

    /// The text cut into added tokens and plain stretches, in order. With `parseSpecialTokens`
    /// false a special token's text stays plain text (and, as in Hugging Face, the search goes on
    /// after it, so nothing inside it is matched either).
    func segments(of bytes: [UInt8], parseSpecialTokens: Bool) -> [Segment] {
        if isEmpty || bytes.isEmpty { return bytes.isEmpty ? [] : [.text(0..<bytes.count)] }
        var result: [Segment] = []
        var textStart = 0  // start of the pending plain stretch
        var i = 0
        let n = bytes.count
        while i < n {
            let bucket = byFirstByte[Int(bytes[i])]
            guard let entry = bucket.first(where: { matches($0.bytes, bytes, at: i) }) else {
                i += 1
                continue
            }
            var start = i, stop = i + entry.bytes.count
            if entry.isSpecial && !parseSpecialTokens {
                i = stop
                continue
            }
            if entry.leftStrip {
                while start > textStart, let (scalar, length) = scalar(before: start, in: bytes), scalar.properties.isWhitespace {
                    start -= length
                }
            }
            if entry.rightStrip {
                while stop < n, let (scalar, length) = scalar(at: stop, in: bytes), scalar.properties.isWhitespace { stop += length }
            }
            if textStart < start { result.append(.text(textStart..<start)) }
            result.append(.token(entry.id))
            textStart = stop
            i = stop
        }
        if textStart < n { result.append(.text(textStart..<n)) }
        return result
    }

    @inline(__always)
    private func matches(_ token: [UInt8], _ bytes: [UInt8], at i: Int) -> Bool {
        guard i + token.count <= bytes.count else { return false }
        for k in 1..<token.count where bytes[i + k] != token[k] { return false }
        return true
    }

    private func scalar(at i: Int, in bytes: [UInt8]) -> (Unicode.Scalar, Int)? {
        var iterator = bytes[i...].makeIterator()
        var decoder = UTF8()
        guard case let .scalarValue(scalar) = decoder.decode(&iterator) else { return nil }
        return (scalar, UTF8.width(scalar))
    }

    private func scalar(before i: Int, in bytes: [UInt8]) -> (Unicode.Scalar, Int)? {
        var start = i - 1
        while start > 0, bytes[start] & 0xC0 == 0x80 { start -= 1 }
        return scalar(at: start, in: bytes)
    }
}
