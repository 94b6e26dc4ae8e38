import Foundation

/// A byte-level BPE tokenizer (GPT-2, SmolLM2, Llama 3, Qwen2 vocabularies) that tokenizes
/// exactly as Hugging Face `tokenizers` does for the same vocabulary, merges and pre-tokenizer.
///
/// Build one from a GGUF file's metadata (`init(ggufMetadata:)`), from a Hugging Face
/// `tokenizer.json` (`init(tokenizerJSON:config:generationConfig:)`, `init(directory:)`), or
/// from its parts (`init(tokens:merges:...)`).
/// Encoding is: added tokens are cut out of the text first (special ones only when asked), the
/// rest is normalized (NFC for Qwen2) and split into words by the ``PreTokenizer``, and each
/// word's bytes are merged pair by pair, lowest merge rank first. Merged words are cached, so
/// repeated words cost one dictionary look-up. Instances are immutable apart from that cache
/// (behind a lock) and can be shared across tasks.
public final class BPETokenizer: Tokenizer {
    /// A token matched in the text before pre-tokenization (chat markers, tool tags).
    public struct AddedToken: Sendable, Equatable, Hashable {
        /// The literal text that stands for the token.
        public var content: String
        public var id: Int
        /// Special tokens (control tokens) are matched only when `parseSpecialTokens` is true and
        /// are dropped by `decode(_:skipSpecialTokens: true)`; plain added tokens always match.
        public var isSpecial: Bool
        /// Whether a match also swallows the whitespace on its left / right.
        public var leftStrip: Bool
        public var rightStrip: Bool

        public init(content: String, id: Int, isSpecial: Bool, leftStrip: Bool = false, rightStrip: Bool = false) {
            self.content = content
            self.id = id
            self.isSpecial = isSpecial
            self.leftStrip = leftStrip
            self.rightStrip = rightStrip
        }
    }

    /// Unicode normalization applied to text outside added tokens.
    public enum Normalization: String, Sendable {
        case none
        /// Canonical composition (Qwen2's tokenizers use it).
        case nfc
    }

    public let vocabularySize: Int
    public let bosTokenId: Int?
    public let eosTokenIds: Set<Int>
    public let padTokenId: Int
    /// The end-of-sequence token appended when `addEOS` (and the model's main EOS).
    public let eosTokenId: Int?
    /// Whether `encode(_:addSpecialTokens: true, ...)` prepends the BOS token.
    public let addBOS: Bool
    /// Whether `encode(_:addSpecialTokens: true, ...)` appends the EOS token.
    public let addEOS: Bool
    /// How text is split into words.
    public let preTokenizer: PreTokenizer
    public let normalization: Normalization
    /// The tokens matched before pre-tokenization, in id order.
    public let addedTokens: [AddedToken]

    /// Token string of each id (nil for ids the vocabulary skips).
    private let tokens: [String?]
    /// The bytes each id stands for (see `ByteLevel.decode`).
    private let tokenBytes: [[UInt8]]
    private let idOfToken: [String: Int]
    /// The id of each single byte's token, or -1 when the vocabulary lacks it (such bytes are
    /// dropped, as Hugging Face's BPE without an unknown token does).
    private let byteIds: [Int32]
    /// (left id << 32 | right id) -> (rank << 32 | merged id).
    private let merges: [UInt64: UInt64]
    /// With `ignoreMerges` (Llama 3), a word that is itself in the vocabulary is one token.
    private let wholeWordIds: [[UInt8]: Int]?
    private let specialIds: Set<Int>
    private let matcher: AddedTokenMatcher
    private let cache = WordCache()

    /// A tokenizer from its parts.
    ///
    /// - Parameters:
    ///   - tokens: the token string of each id in byte-level spelling (`"Ġthe"`), added tokens
    ///     included (nil for unused ids).
    ///   - merges: merge rules, highest priority first; both halves and their concatenation must
    ///     be tokens.
    ///   - addedTokens: tokens cut out of the text before pre-tokenization; ids must be in range.
    ///   - ignoreMerges: look a whole word up in the vocabulary before merging (Llama 3).
    ///   - endOfGenerationTokenIds: further ids that end a generation (end-of-turn tokens).
    /// - Throws: `LanguageModelError.tokenizer` naming the first inconsistent merge or id.
    public init(
        tokens: [String?], merges: [(String, String)], addedTokens: [AddedToken] = [], preTokenizer: PreTokenizer,
        normalization: Normalization = .none, ignoreMerges: Bool = false, bosTokenId: Int? = nil, addBOS: Bool = false,
        eosTokenId: Int? = nil, addEOS: Bool = false, endOfGenerationTokenIds: Set<Int> = [], padTokenId: Int? = nil
    ) throws(LanguageModelError) {
        guard !tokens.isEmpty else { throw .tokenizer("the vocabulary is empty") }
        var allTokens = tokens
        for added in addedTokens {
            guard added.id >= 0, added.id < 1 << 31 else { throw .tokenizer("added token '\(added.content)' has invalid id \(added.id)") }
            if added.id >= allTokens.count { allTokens += [String?](repeating: nil, count: added.id + 1 - allTokens.count) }
            allTokens[added.id] = added.content
        }
        let count = allTokens.count
        for (name, id) in [("bos", bosTokenId), ("eos", eosTokenId), ("padding", padTokenId)] {
            if let id, !(0..<count).contains(id) { throw .tokenizer("\(name) token id \(id) is outside the vocabulary (0..<\(count))") }
        }
        for id in endOfGenerationTokenIds where !(0..<count).contains(id) {
            throw .tokenizer("end-of-generation token id \(id) is outside the vocabulary (0..<\(count))")
        }

        var idOfToken: [String: Int] = [:]
        idOfToken.reserveCapacity(count)
        var tokenBytes: [[UInt8]] = []
        tokenBytes.reserveCapacity(count)
        for (id, token) in allTokens.enumerated() {
            guard let token else {
                tokenBytes.append([])
                continue
            }
            // The first id of a duplicated string wins, as in a vocabulary dictionary.
            if idOfToken[token] == nil { idOfToken[token] = id }
            tokenBytes.append(ByteLevel.decode(token))
        }
        // Added tokens' strings map to their own ids even where the model's vocabulary repeats them.
        for added in addedTokens { idOfToken[added.content] = added.id }

        var byteIds = [Int32](repeating: -1, count: 256)
        for byte in 0..<256 {
            if let id = idOfToken[String(ByteLevel.characterOfByte[byte])] { byteIds[byte] = Int32(id) }
        }

        var mergeTable: [UInt64: UInt64] = [:]
        mergeTable.reserveCapacity(merges.count)
        for (rank, (left, right)) in merges.enumerated() {
            func id(_ token: String) throws(LanguageModelError) -> UInt64 {
                guard let id = idOfToken[token] else {
                    throw .tokenizer("merge \(rank) ('\(left)' '\(right)'): '\(token)' is not in the vocabulary")
                }
                return UInt64(id)
            }
            let key = try id(left) << 32 | id(right)
            let merged = try id(left + right)
            // A repeated pair keeps its first (highest-priority) rank, as llama.cpp does.
            if mergeTable[key] == nil { mergeTable[key] = UInt64(rank) << 32 | merged }
        }

        if ignoreMerges {
            var whole: [[UInt8]: Int] = [:]
            whole.reserveCapacity(count)
            let addedIds = Set(addedTokens.map(\.id))
            for (id, token) in allTokens.enumerated() where token != nil && !addedIds.contains(id) {
                let bytes = tokenBytes[id]
                if whole[bytes] == nil { whole[bytes] = id }
            }
            wholeWordIds = whole
        } else {
            wholeWordIds = nil
        }

        self.vocabularySize = count
        self.tokens = allTokens
        self.tokenBytes = tokenBytes
        self.idOfToken = idOfToken
        self.byteIds = byteIds
        self.merges = mergeTable
        self.addedTokens = addedTokens.sorted { $0.id < $1.id }
        self.specialIds = Set(addedTokens.filter(\.isSpecial).map(\.id))
        self.matcher = AddedTokenMatcher(addedTokens)
        self.preTokenizer = preTokenizer
        self.normalization = normalization
        self.bosTokenId = bosTokenId
        self.addBOS = addBOS && bosTokenId != nil
        self.eosTokenId = eosTokenId
        self.addEOS = addEOS && eosTokenId != nil
        var eos = endOfGenerationTokenIds
        if let eosTokenId { eos.insert(eosTokenId) }
        self.eosTokenIds = eos
        self.padTokenId = padTokenId ?? eosTokenId ?? eos.min() ?? 0
    }

    // MARK: - Tokenizer

    public func encode(_ text: String, addSpecialTokens: Bool, parseSpecialTokens: Bool) -> [Int] {
        var ids: [Int] = []
        ids.reserveCapacity(text.utf8.count / 3 + 2)
        if addSpecialTokens, addBOS, let bos = bosTokenId { ids.append(bos) }
        let bytes = Array(text.utf8)
        for segment in matcher.segments(of: bytes, parseSpecialTokens: parseSpecialTokens) {
            switch segment {
            case let .token(id): ids.append(id)
            case let .text(range): encodeText(bytes, range, into: &ids)
            }
        }
        if addSpecialTokens, addEOS, let eos = eosTokenId { ids.append(eos) }
        return ids
    }

    public func decode(_ ids: [Int], skipSpecialTokens: Bool) -> String {
        LossyUTF8.decode(bytes(of: ids, skipSpecialTokens: skipSpecialTokens))
    }

    /// Ids outside the vocabulary contribute nothing, as in Hugging Face's decoder.
    public func bytes(of ids: [Int], skipSpecialTokens: Bool) -> [UInt8] {
        var result: [UInt8] = []
        result.reserveCapacity(ids.count * 4)
        for id in ids where id >= 0 && id < tokenBytes.count {
            if skipSpecialTokens, specialIds.contains(id) { continue }
            result.append(contentsOf: tokenBytes[id])
        }
        return result
    }

    public func tokenId(_ token: String) -> Int? { idOfToken[token] }

    public func token(_ id: Int) -> String? { id >= 0 && id < tokens.count ? tokens[id] : nil }

    /// Whether `id` is a special (control) token.
    public func isSpecialToken(_ id: Int) -> Bool { specialIds.contains(id) }

    // MARK: - encoding

    private func encodeText(_ bytes: [UInt8], _ range: Range<Int>, into ids: inout [Int]) {
        if range.isEmpty { return }
        if normalization == .nfc {
            let text = String(decoding: bytes[range], as: UTF8.self)
            let normalized = Array(text.precomposedStringWithCanonicalMapping.utf8)
            if normalized != Array(bytes[range]) {
                encodeWords(normalized, 0..<normalized.count, into: &ids)
                return
            }
        }
        encodeWords(bytes, range, into: &ids)
    }

    private func encodeWords(_ bytes: [UInt8], _ range: Range<Int>, into ids: inout [Int]) {
        preTokenizer.split(bytes, range) { word in
            let key = Array(bytes[word])
            if let cached = cache[key] {
                ids.append(contentsOf: cached)
                return
            }
            let merged = mergeWord(key)
            cache[key] = merged
            ids.append(contentsOf: merged)
        }
    }

    /// The ids of one pre-tokenized word: its bytes merged pair by pair, always the pair of lowest
    /// rank first (the leftmost among equal ranks), as Hugging Face's BPE model does.
    func mergeWord(_ word: [UInt8]) -> [Int] {
        if let wholeWordIds, let id = wholeWordIds[word] { return [id] }
        var symbols: [Int32] = []
        symbols.reserveCapacity(word.count)
        for byte in word where byteIds[Int(byte)] >= 0 { symbols.append(byteIds[Int(byte)]) }
        if symbols.count < 2 { return symbols.map(Int.init) }
        return symbols.count <= 32 ? mergeShort(symbols) : mergeLong(symbols)
    }

    private static let rankMask: UInt64 = 0xFFFF_FFFF_0000_0000

    @inline(__always)
    private func merge(_ left: Int32, _ right: Int32) -> UInt64? {
        merges[UInt64(UInt32(bitPattern: left)) << 32 | UInt64(UInt32(bitPattern: right))]
    }

    /// Quadratic, but with no allocation beyond two small arrays: the common case of short words.
    private func mergeShort(_ start: [Int32]) -> [Int] {
        var symbols = start
        // rank of the pair (k, k + 1), UInt64.max when there is no merge.
        var ranks = [UInt64](repeating: .max, count: symbols.count - 1)
        for k in 0..<ranks.count { if let m = merge(symbols[k], symbols[k + 1]) { ranks[k] = m } }
        while !ranks.isEmpty {
            var best = 0
            for k in 1..<ranks.count where ranks[k] >> 32 < ranks[best] >> 32 { best = k }
            let entry = ranks[best]
            if entry == .max { break }
            symbols[best] = Int32(truncatingIfNeeded: entry & 0xFFFF_FFFF)
            symbols.remove(at: best + 1)
            ranks.remove(at: best)
            if best > 0 { ranks[best - 1] = merge(symbols[best - 1], symbols[best]) ?? .max }
            if best < ranks.count { ranks[best] = merge(symbols[best], symbols[best + 1]) ?? .max }
        }
        return symbols.map(Int.init)
    }

    /// A priority queue of candidate merges over a linked list of symbols, O(n log n): long words
    /// (runs of spaces, base64, minified code) would be quadratic otherwise.
    private func mergeLong(_ start: [Int32]) -> [Int] {
        var symbols = start
        let n = symbols.count
        var prev = [Int32](unsafeUninitializedCapacity: n) { b, c in for i in 0..<n { b[i] = Int32(i - 1) }; c = n }
        var next = [Int32](unsafeUninitializedCapacity: n) { b, c in for i in 0..<n { b[i] = i + 1 < n ? Int32(i + 1) : -1 }; c = n }
        var alive = [Bool](repeating: true, count: n)
        var heap = MinHeap()
        for k in 0..<(n - 1) {
            if let m = merge(symbols[k], symbols[k + 1]) { heap.push(m & Self.rankMask | UInt64(k)) }
        }
        while let top = heap.pop() {
            let rank = top >> 32, pos = Int(top & 0xFFFF_FFFF)
            guard alive[pos], next[pos] >= 0 else { continue }
            let right = Int(next[pos])
            // Stale entry: the pair at `pos` changed since it was queued.
            guard let m = merge(symbols[pos], symbols[right]), m >> 32 == rank else { continue }
            symbols[pos] = Int32(truncatingIfNeeded: m & 0xFFFF_FFFF)
            alive[right] = false
            next[pos] = next[right]
            if next[right] >= 0 { prev[Int(next[right])] = Int32(pos) }
            if prev[pos] >= 0, let l = merge(symbols[Int(prev[pos])], symbols[pos]) {
                heap.push(l & Self.rankMask | UInt64(prev[pos]))
            }
            if next[pos] >= 0, let r = merge(symbols[pos], symbols[Int(next[pos])]) {
                heap.push(r & Self.rankMask | UInt64(pos))
            }
        }
        var result: [Int] = []
        var k = 0
        while k >= 0 {
            result.append(Int(symbols[k]))
            k = Int(next[k])
        }
        return result
    }
}

/// A binary min-heap of packed (rank << 32 | position) keys: lowest rank, then leftmost.
private struct MinHeap {
    private var items: [UInt64] = []

    mutating func push(_ value: UInt64) {
        items.append(value)
        var i = items.count - 1
        while i > 0 {
            let parent = (i - 1) / 2
            if items[parent] <= items[i] { break }
            items.swapAt(parent, i)
            i = parent
        }
    }

    mutating func pop() -> UInt64? {
        guard let last = items.popLast() else { return nil }
        guard !items.isEmpty else { return last }
        let top = items[0]
        items[0] = last
        var i = 0
        let n = items.count
        while true {
            let l = 2 * i + 1, r = l + 1
            var smallest = i
            if l < n, items[l] < items[smallest] { smallest = l }
            if r < n, items[r] < items[smallest] { smallest = r }
            if smallest == i { break }
            items.swapAt(i, smallest)
            i = smallest
        }
        return top
    }
}

/// Merged words by their bytes, shared by all encodes of one tokenizer. Bounded: once full it
/// stops growing (text from one domain repeats the same words).
private final class WordCache: @unchecked Sendable {
    private var words: [[UInt8]: [Int]] = [:]
    private let lock = NSLock()
    private static let capacity = 100_000
    private static let longestWord = 256

    subscript(word: [UInt8]) -> [Int]? {
        get {
            lock.lock()
            defer { lock.unlock() }
            return words[word]
        }
        set {
            guard word.count <= Self.longestWord, let newValue else { return }
            lock.lock()
            defer { lock.unlock() }
            if words.count < Self.capacity { words[word] = newValue }
        }
    }
}
