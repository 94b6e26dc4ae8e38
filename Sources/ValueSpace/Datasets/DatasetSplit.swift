import Foundation

/// A deterministic train / held-out split keyed by text, so that one prompt never lands on both
/// sides, on any machine or run (it does not use Swift's per-process randomised `Hashable`).
public enum DatasetSplit {
    /// The form of a text the split is keyed on, so that near-duplicates ("... Car bombings ." and
    /// "... car bombings!") always land on the same side: lower-cased, every character that is not
    /// a letter or a digit (punctuation, symbols, whitespace) treated as a separator, and the words
    /// joined by one space. Curly and straight quotes, dashes and emoji therefore never matter.
    public static func normalizedKey(_ text: String) -> String {
        var words: [String] = []
        var current = ""
        for scalar in text.lowercased().unicodeScalars {
            if CharacterSet.alphanumerics.contains(scalar) {
                current.unicodeScalars.append(scalar)
            } else if !current.isEmpty {
                words.append(current)
                current = ""
            }
        }
        if !current.isEmpty { words.append(current) }
        return words.joined(separator: " ")
    }

    /// A stable 64-bit hash of `text`'s `normalizedKey` under `seed`: FNV-1a over the seed's 8
    /// bytes and the key's UTF-8, then a SplitMix64 finaliser so every bit is mixed.
    public static func stableHash(_ text: String, seed: UInt64 = 0) -> UInt64 {
        var h: UInt64 = 0xCBF2_9CE4_8422_2325
        func mix(_ byte: UInt8) {
            h ^= UInt64(byte)
            h = h &* 0x0000_0100_0000_01B3
        }
        for i in 0..<8 { mix(UInt8(truncatingIfNeeded: seed >> (8 * UInt64(i)))) }
        for byte in normalizedKey(text).utf8 { mix(byte) }
        var z = h
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// Whether `text` (a prompt) belongs to the held-out side: true for about `fraction` of all
    /// texts; the same text always gets the same answer for the same seed.
    public static func isHeldOut(_ text: String, fraction: Double = 0.15, seed: UInt64 = 0) -> Bool {
        let u = Double(stableHash(text, seed: seed) >> 11) * 0x1.0p-53
        return u < fraction
    }

    /// Splits `items` by the text `key` gives, keeping their order on each side.
    public static func split<T>(
        _ items: [T], fraction: Double = 0.15, seed: UInt64 = 0, key: (T) -> String
    ) -> (train: [T], heldOut: [T]) {
        var train: [T] = [], heldOut: [T] = []
        for item in items {
            if isHeldOut(key(item), fraction: fraction, seed: seed) { heldOut.append(item) } else { train.append(item) }
        }
        return (train, heldOut)
    }

    /// `items` without repeats: an item whose `key` normalises (`normalizedKey`) like an earlier
    /// one's is dropped. Returns the kept items in order and how many were dropped.
    public static func deduplicated<T>(_ items: [T], key: (T) -> String) -> (kept: [T], dropped: Int) {
        var seen = Set<String>()
        var kept: [T] = []
        for item in items where seen.insert(normalizedKey(key(item))).inserted { kept.append(item) }
        return (kept, items.count - kept.count)
    }
}
