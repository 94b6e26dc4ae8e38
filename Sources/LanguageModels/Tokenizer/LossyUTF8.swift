/// UTF-8 decoding that replaces invalid bytes with U+FFFD exactly as Rust's
/// `String::from_utf8_lossy` does (one replacement per maximal invalid subpart, the Unicode
/// standard's recommended practice), which is what Hugging Face's decoders produce.
enum LossyUTF8 {
    /// How a sequence starting at some offset reads.
    enum Unit: Equatable {
        /// A valid character of `length` bytes.
        case valid(length: Int)
        /// An invalid subpart of `length` bytes, replaced by one U+FFFD.
        case invalid(length: Int)
        /// The bytes run out inside a sequence that is valid so far (`length` bytes of it).
        case truncated(length: Int)
    }

    /// The unit of `bytes` starting at `start` (which must be < `bytes.endIndex`).
    @inline(__always)
    static func unit<C: RandomAccessCollection<UInt8>>(_ bytes: C, at start: C.Index) -> Unit where C.Index == Int {
        let b0 = bytes[start]
        if b0 < 0x80 { return .valid(length: 1) }
        let need: Int
        var low: UInt8 = 0x80, high: UInt8 = 0xBF  // the allowed range of the second byte
        switch b0 {
        case 0xC2...0xDF: need = 2
        case 0xE0: need = 3; low = 0xA0
        case 0xE1...0xEC, 0xEE...0xEF: need = 3
        case 0xED: need = 3; high = 0x9F
        case 0xF0: need = 4; low = 0x90
        case 0xF1...0xF3: need = 4
        case 0xF4: need = 4; high = 0x8F
        default: return .invalid(length: 1)
        }
        var index = start + 1
        for k in 1..<need {
            guard index < bytes.endIndex else { return .truncated(length: k) }
            let b = bytes[index]
            let ok = k == 1 ? (low...high).contains(b) : (0x80...0xBF).contains(b)
            guard ok else { return .invalid(length: k) }
            index += 1
        }
        return .valid(length: need)
    }

    /// The text of `bytes` with each invalid subpart (a truncated one at the end included) as U+FFFD.
    static func decode<C: RandomAccessCollection<UInt8>>(_ bytes: C) -> String where C.Index == Int {
        decode(bytes, upTo: bytes.endIndex)
    }

    /// Decodes `bytes[..<end]` lossily.
    static func decode<C: RandomAccessCollection<UInt8>>(_ bytes: C, upTo end: Int) -> String where C.Index == Int {
        let slice = bytes[bytes.startIndex..<end]
        // Fast path: valid UTF-8 (almost always) needs no repair.
        if let text = String(validating: slice, as: UTF8.self) { return text }
        var repaired: [UInt8] = []
        repaired.reserveCapacity(slice.count + 8)
        var i = slice.startIndex
        while i < end {
            switch unit(slice, at: i) {
            case let .valid(length):
                repaired.append(contentsOf: slice[i..<(i + length)])
                i += length
            case let .invalid(length), let .truncated(length):
                repaired.append(contentsOf: [0xEF, 0xBF, 0xBD])
                i += length
            }
        }
        return String(decoding: repaired, as: UTF8.self)
    }

    /// Where a streaming decoder may cut `bytes`: the end of the last unit that later bytes cannot
    /// change, that is everything but a trailing truncated sequence. Linear in `bytes.count`; a
    /// streaming decoder's buffer is short (at most three held-back bytes plus one token's).
    static func completePrefixLength(_ bytes: [UInt8]) -> Int {
        var i = 0
        while i < bytes.count {
            switch unit(bytes, at: i) {
            case let .valid(length), let .invalid(length): i += length
            case .truncated: return i
            }
        }
        return bytes.count
    }
}
