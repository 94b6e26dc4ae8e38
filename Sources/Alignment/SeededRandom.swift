/// SplitMix64 (Steele, Lea and Flood 2014): a tiny seedable generator. Swift's own generators
/// cannot be seeded, and a run must shuffle its data the same way every time it is resumed.
public struct SplitMix64: RandomNumberGenerator, Sendable {
    private var state: UInt64

    public init(seed: UInt64) { state = seed }

    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// A seed derived from `seed` and a few counters (epoch, step, micro-batch), so that every
    /// random draw of a run depends only on where the run is, not on what ran before.
    public static func derive(_ seed: UInt64, _ counters: UInt64...) -> UInt64 {
        var g = SplitMix64(seed: seed)
        var value = g.next()
        for c in counters {
            g = SplitMix64(seed: value ^ (c &* 0xD6E8_FEB8_6659_FD93))
            value = g.next()
        }
        return value
    }
}

/// The example order of one epoch: a Fisher-Yates shuffle of 0..<count seeded by (seed, epoch).
func epochOrder(count: Int, seed: UInt64, epoch: Int, shuffle: Bool) -> [Int] {
    var order = Array(0..<count)
    guard shuffle else { return order }
    // Our own Fisher-Yates rather than the standard library's `shuffle(using:)`, whose use of
    // the generator may change between toolchains: a checkpoint must resume identically.
    var g = SplitMix64(seed: SplitMix64.derive(seed, 0xDA7A, UInt64(epoch)))
    for i in stride(from: count - 1, to: 0, by: -1) {
        order.swapAt(i, Int(g.next() % UInt64(i + 1)))
    }
    return order
}
