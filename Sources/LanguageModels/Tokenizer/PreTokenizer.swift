/// How text is cut into words before byte-pair merges: one of the splitting rules of the
/// byte-level BPE tokenizers we support, each an exact hand-written equivalent of its regular
/// expression (Oniguruma semantics, as in Hugging Face `tokenizers` and llama.cpp).
///
/// Merges never cross the boundary between two pieces, so a tokenizer must split exactly as the
/// one its vocabulary was trained with, whitespace and digits included.
public enum PreTokenizer: String, Sendable, CaseIterable {
    /// GPT-2's `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`.
    case gpt2
    /// SmolLM2's: every digit on its own (`Digits(individual_digits)`), then GPT-2's expression on
    /// the text between digits.
    case smollm
    /// Llama 3's `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|
    /// ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`.
    case llama3
    /// Qwen2's: Llama 3's expression with single digits (`\p{N}` for `\p{N}{1,3}`).
    case qwen2

    /// The kind a GGUF file names in `tokenizer.ggml.pre` (llama.cpp's names), if supported.
    public init?(ggufName: String) {
        switch ggufName {
        case "gpt-2", "gpt2": self = .gpt2
        case "smollm": self = .smollm
        case "llama-bpe", "llama3", "llama-v3": self = .llama3
        case "qwen2": self = .qwen2
        default: return nil
        }
    }

    /// The GGUF `tokenizer.ggml.pre` names we accept.
    public static let supportedGGUFNames = ["gpt-2", "smollm", "llama-bpe", "llama3", "llama-v3", "qwen2"]

    /// The split expression of the Hugging Face `Split` pre-tokenizer this kind reproduces.
    static let llama3Pattern =
        #"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#
    static let qwen2Pattern =
        #"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#
    static let gpt2Pattern = #"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"#

    /// The pieces of `text`, in order; they concatenate to `text`.
    public func pieces(of text: String) -> [String] {
        let bytes = Array(text.utf8)
        var result: [String] = []
        split(bytes, 0..<bytes.count) { range in result.append(String(decoding: bytes[range], as: UTF8.self)) }
        return result
    }

    /// Calls `body` with the byte range of each piece of `bytes[range]` (valid UTF-8), in order.
    func split(_ bytes: [UInt8], _ range: Range<Int>, _ body: (Range<Int>) -> Void) {
        let text = ScannedText(bytes, range)
        func emit(_ start: Int, _ end: Int) { body(Int(text.offsets[start])..<Int(text.offsets[end])) }
        let n = text.count
        switch self {
        case .gpt2:
            Self.scanGPT2(text, 0, n, emit)
        case .smollm:
            var start = 0
            for i in 0..<n where text.classes[i] == CharClass.number {
                if start < i { Self.scanGPT2(text, start, i, emit) }
                emit(i, i + 1)
                start = i + 1
            }
            if start < n { Self.scanGPT2(text, start, n, emit) }
        case .llama3:
            Self.scanLlama3(text, 0, n, maxDigits: 3, emit)
        case .qwen2:
            Self.scanLlama3(text, 0, n, maxDigits: 1, emit)
        }
    }

    // MARK: - scanners

    // Each scanner walks the alternatives of its expression in order at the current position, as
    // a backtracking engine does. Every character is matched by some alternative, so matches are
    // contiguous and the position only moves forward. `end` acts as the end of the input (for
    // `(?!\S)`), which is how a Sequence of pre-tokenizers sees each earlier piece.

    private static func scanGPT2(_ t: ScannedText, _ start: Int, _ end: Int, _ emit: (Int, Int) -> Void) {
        let c = t.classes, s = t.scalars
        @inline(__always) func run(_ from: Int, _ cls: UInt8) -> Int {
            var j = from
            while j < end, c[j] == cls { j += 1 }
            return j
        }
        var i = start
        while i < end {
            let cls = c[i]
            let next: Int
            if s[i] == 0x27, let length = contraction(s, i, end, caseInsensitive: false) {
                next = i + length
            } else if cls == CharClass.letter || cls == CharClass.number || cls == CharClass.other {
                next = run(i, cls)
            } else if s[i] == 0x20, i + 1 < end, c[i + 1] == CharClass.letter || c[i + 1] == CharClass.number || c[i + 1] == CharClass.other {
                next = run(i + 1, c[i + 1])
            } else {
                next = whitespaceRun(t, i, end)
            }
            emit(i, next)
            i = next
        }
    }

    private static func scanLlama3(_ t: ScannedText, _ start: Int, _ end: Int, maxDigits: Int, _ emit: (Int, Int) -> Void) {
        let c = t.classes, s = t.scalars
        @inline(__always) func run(_ from: Int, _ cls: UInt8) -> Int {
            var j = from
            while j < end, c[j] == cls { j += 1 }
            return j
        }
        var i = start
        while i < end {
            let cls = c[i]
            var next: Int
            if s[i] == 0x27, let length = contraction(s, i, end, caseInsensitive: true) {
                // (?i:'s|'t|'re|'ve|'m|'ll|'d)
                next = i + length
            } else if cls == CharClass.letter {
                // [^\r\n\p{L}\p{N}]?\p{L}+ without the optional character
                next = run(i, CharClass.letter)
            } else if cls != CharClass.newline, cls != CharClass.number, i + 1 < end, c[i + 1] == CharClass.letter {
                // [^\r\n\p{L}\p{N}]?\p{L}+ with it
                next = run(i + 1, CharClass.letter)
            } else if cls == CharClass.number {
                // \p{N}{1,maxDigits}
                next = i + 1
                while next < end, next - i < maxDigits, c[next] == CharClass.number { next += 1 }
            } else if cls == CharClass.other || (s[i] == 0x20 && i + 1 < end && c[i + 1] == CharClass.other) {
                // ?[^\s\p{L}\p{N}]+[\r\n]*
                next = run(cls == CharClass.other ? i : i + 1, CharClass.other)
                next = run(next, CharClass.newline)
            } else {
                // Whitespace. \s*[\r\n]+ ends after the run's last \r or \n, if it has one.
                var j = i
                var afterNewline = -1
                while j < end, c[j] >= CharClass.space {
                    if c[j] == CharClass.newline { afterNewline = j + 1 }
                    j += 1
                }
                next = afterNewline > 0 ? afterNewline : whitespaceRun(t, i, end)
            }
            emit(i, next)
            i = next
        }
    }

    /// `\s+(?!\S)|\s+` at `i` (a whitespace character): the whole run when it ends the input,
    /// else the run less its last character (which then leads the next word), unless that leaves
    /// nothing.
    @inline(__always)
    private static func whitespaceRun(_ t: ScannedText, _ i: Int, _ end: Int) -> Int {
        var j = i
        while j < end, t.classes[j] >= CharClass.space { j += 1 }
        if j == end || j - 1 == i { return j }
        return j - 1
    }

    /// The length of the contraction (`'s`, `'t`, `'re`, `'ve`, `'m`, `'ll`, `'d`) at `i` (an
    /// apostrophe), if there is one. Case-insensitive matching folds like Oniguruma: `ſ` (U+017F)
    /// is an `s`.
    @inline(__always)
    private static func contraction(_ s: [UInt32], _ i: Int, _ end: Int, caseInsensitive: Bool) -> Int? {
        guard i + 1 < end else { return nil }
        func fold(_ v: UInt32) -> UInt32 {
            guard caseInsensitive else { return v }
            if v >= 0x41 && v <= 0x5A { return v + 0x20 }
            if v == 0x17F { return 0x73 }
            return v
        }
        let a = fold(s[i + 1])
        switch a {
        case 0x73, 0x74, 0x6D, 0x64: return 2  // s t m d
        case 0x72, 0x76:  // r v, then e
            return i + 2 < end && fold(s[i + 2]) == 0x65 ? 3 : nil
        case 0x6C:  // l, then l
            return i + 2 < end && fold(s[i + 2]) == 0x6C ? 3 : nil
        default: return nil
        }
    }
}

/// The character classes the split expressions distinguish.
enum CharClass {
    static let other: UInt8 = 0
    /// `\p{L}`
    static let letter: UInt8 = 1
    /// `\p{N}`
    static let number: UInt8 = 2
    /// `\s` other than `\r` and `\n` (Oniguruma's `\s` is Unicode White_Space).
    static let space: UInt8 = 3
    /// `\r` or `\n`.
    static let newline: UInt8 = 4

    static let ascii: [UInt8] = (0..<128).map { classify(Unicode.Scalar(UInt8($0))) }

    static func classify(_ scalar: Unicode.Scalar) -> UInt8 {
        if scalar == "\r" || scalar == "\n" { return newline }
        let properties = scalar.properties
        switch properties.generalCategory {
        case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter: return letter
        case .decimalNumber, .letterNumber, .otherNumber: return number
        default: return properties.isWhitespace ? space : other
        }
    }
}

/// The Unicode scalars of a stretch of UTF-8, with their classes and byte offsets.
struct ScannedText {
    var scalars: [UInt32] = []
    var classes: [UInt8] = []
    /// Byte offset of each scalar in the original buffer, plus one past the end.
    var offsets: [Int32] = []
    var count: Int { scalars.count }

    init(_ bytes: [UInt8], _ range: Range<Int>) {
        scalars.reserveCapacity(range.count)
        classes.reserveCapacity(range.count)
        offsets.reserveCapacity(range.count + 1)
        bytes.withUnsafeBufferPointer { b in
            var i = range.lowerBound
            let end = range.upperBound
            while i < end {
                let b0 = UInt32(b[i])
                offsets.append(Int32(i))
                if b0 < 0x80 {
                    scalars.append(b0)
                    classes.append(CharClass.ascii[Int(b0)])
                    i += 1
                    continue
                }
                // The bytes come from a Swift String, so they are valid UTF-8.
                let value: UInt32
                if b0 < 0xE0 {
                    value = (b0 & 0x1F) << 6 | UInt32(b[i + 1] & 0x3F)
                    i += 2
                } else if b0 < 0xF0 {
                    value = (b0 & 0x0F) << 12 | UInt32(b[i + 1] & 0x3F) << 6 | UInt32(b[i + 2] & 0x3F)
                    i += 3
                } else {
                    value = (b0 & 0x07) << 18 | UInt32(b[i + 1] & 0x3F) << 12 | UInt32(b[i + 2] & 0x3F) << 6 | UInt32(b[i + 3] & 0x3F)
                    i += 4
                }
                scalars.append(value)
                classes.append(CharClass.classify(Unicode.Scalar(value) ?? "\u{FFFD}"))
            }
            offsets.append(Int32(end))
        }
    }
}
