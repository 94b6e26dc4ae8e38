/// Words of a text for matching: lower-cased runs of letters and digits (punctuation, case and
/// spacing differences do not make two texts different).
func normalizedWords(_ text: String) -> [Substring] {
    text.lowercased().split { !($0.isLetter || $0.isNumber) }
}

/// FNV-1a, 64-bit: a hash that is the same in every process (Swift's `Hasher` is seeded per run).
@inline(__always)
func stableHash<S: Sequence>(_ bytes: S, seed: UInt64 = 0xcbf2_9ce4_8422_2325) -> UInt64 where S.Element == UInt8 {
    var h = seed
    for b in bytes {
        h ^= UInt64(b)
        h = h &* 0x100_0000_01b3
    }
    return h
}

@inline(__always)
func mix(_ x: UInt64) -> UInt64 {
    var z = x &+ 0x9e37_79b9_7f4a_7c15
    z = (z ^ (z >> 30)) &* 0xbf58_476d_1ce4_e5b9
    z = (z ^ (z >> 27)) &* 0x94d0_49bb_1331_11eb
    return z ^ (z >> 31)
}

/// Hashes of a text's word n-grams (n = `size`, or the whole text when it is shorter).
func shingles(_ words: [Substring], size: Int) -> Set<UInt64> {
    guard !words.isEmpty else { return [] }
    let n = min(size, words.count)
    var out = Set<UInt64>()
    out.reserveCapacity(words.count)
    for start in 0...(words.count - n) {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for w in words[start..<(start + n)] {
            h = stableHash(w.utf8, seed: h)
            h = stableHash([0x20], seed: h)
        }
        out.insert(h)
    }
    return out
}

/// Near-duplicate search by MinHash with locality-sensitive hashing: each text keeps a signature
/// of 64 minima over its word 3-grams (256 bytes) and 16 band keys of 4 minima; a later text whose band matches
/// an earlier one's is compared by the share of equal minima (an estimate of the Jaccard
/// similarity of their 3-gram sets, standard error about 0.05 at 0.8). Texts themselves are not
/// kept: memory grows by about 0.5 KB per text, whatever their length.
public struct NearDuplicateIndex: Sendable {
    public static let permutations = 64
    static let bands = 16
    static let rows = 4
    public let threshold: Double
    var signatures: [[UInt32]] = []
    var ids: [Int] = []
    var buckets: [[UInt64: Int32]] = Array(repeating: [:], count: bands)

    public init(threshold: Double = 0.8) { self.threshold = threshold }

    public var count: Int { ids.count }

    public static func signature(_ text: String) -> [UInt32]? {
        let grams = shingles(normalizedWords(text), size: 3)
        guard !grams.isEmpty else { return nil }
        var sig = [UInt32](repeating: .max, count: permutations)
        for g in grams {
            for i in 0..<permutations {
                let v = UInt32(truncatingIfNeeded: mix(g ^ (UInt64(i) &* 0x9e37_79b9_7f4a_7c15)) >> 32)
                if v < sig[i] { sig[i] = v }
            }
        }
        return sig
    }

    static func similarity(_ a: [UInt32], _ b: [UInt32]) -> Double {
        Double(zip(a, b).filter { $0 == $1 }.count) / Double(permutations)
    }

    func bandKeys(_ sig: [UInt32]) -> [UInt64] {
        (0..<Self.bands).map { b in
            var h: UInt64 = UInt64(b)
            for r in 0..<Self.rows { h = mix(h ^ UInt64(sig[b * Self.rows + r])) }
            return h
        }
    }

    /// The most similar earlier text (its id and estimated similarity) at or above the
    /// threshold, if any.
    public func match(_ sig: [UInt32]) -> (id: Int, similarity: Double)? {
        var best: (Int, Double)?
        var seen = Set<Int32>()
        for (b, key) in bandKeys(sig).enumerated() {
            guard let k = buckets[b][key], seen.insert(k).inserted else { continue }
            let s = Self.similarity(sig, signatures[Int(k)])
            if s >= threshold, s > (best?.1 ?? -1) { best = (ids[Int(k)], s) }
        }
        return best
    }

    /// Adds a text under `id` (the first text of a bucket represents it).
    public mutating func insert(_ sig: [UInt32], id: Int) {
        let index = Int32(signatures.count)
        signatures.append(sig)
        ids.append(id)
        for (b, key) in bandKeys(sig).enumerated() where buckets[b][key] == nil { buckets[b][key] = index }
    }
}

/// Evaluation items a training set must not contain (decontamination): an example is
/// contaminated when its prompt contains at least half of an item's word n-grams (n = 8, or the
/// item's length for items of 4 to 7 words; shorter items must match the whole prompt), the
/// usual n-gram overlap test of contamination studies.
public struct ContaminationIndex: Sendable {
    public struct Item: Sendable {
        public var set: String
        public var id: String
        var grams: Int
    }

    public static let gramSize = 8
    var items: [Item] = []
    var gramToItems: [UInt64: [Int32]] = [:]
    var exact: [UInt64: Int32] = [:]
    var lengths = Set<Int>()
    public private(set) var sets: [String: Int] = [:]

    public init() {}

    public var count: Int { items.count }

    static func joined(_ words: ArraySlice<Substring>) -> UInt64 {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for w in words {
            h = stableHash(w.utf8, seed: h)
            h = stableHash([0x20], seed: h)
        }
        return h
    }

    public mutating func add(set: String, id: String, text: String) {
        let words = normalizedWords(text)
        guard !words.isEmpty else { return }
        let index = Int32(items.count)
        sets[set, default: 0] += 1
        exact[Self.joined(words[...])] = index
        guard words.count >= 4 else {
            items.append(Item(set: set, id: id, grams: 0))
            return
        }
        let n = min(Self.gramSize, words.count)
        lengths.insert(n)
        var grams = Set<UInt64>()
        for start in 0...(words.count - n) { grams.insert(Self.joined(words[start..<(start + n)])) }
        for g in grams { gramToItems[g, default: []].append(index) }
        items.append(Item(set: set, id: id, grams: grams.count))
    }

    /// The evaluation item `text` overlaps most (share of its n-grams found), if it reaches half.
    public func match(_ text: String) -> (item: Item, overlap: Double)? {
        let words = normalizedWords(text)
        guard !words.isEmpty else { return nil }
        if let i = exact[Self.joined(words[...])] { return (items[Int(i)], 1) }
        var hits: [Int32: Int] = [:]
        for n in lengths where words.count >= n {
            var seen = Set<UInt64>()
            for start in 0...(words.count - n) {
                let g = Self.joined(words[start..<(start + n)])
                guard seen.insert(g).inserted, let owners = gramToItems[g] else { continue }
                for o in owners where items[Int(o)].grams > 0 { hits[o, default: 0] += 1 }
            }
        }
        var best: (Item, Double)?
        for (i, h) in hits {
            let share = Double(h) / Double(items[Int(i)].grams)
            if share >= 0.5, share > (best?.1 ?? 0) { best = (items[Int(i)], share) }
        }
        return best
    }
}
