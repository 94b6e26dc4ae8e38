import Foundation

/// SplitMix64 (Steele, Lea and Flood 2014): a tiny seedable generator whose stream depends only
/// on its seed, on every platform and toolchain. Swift's own generators cannot be seeded, and a
/// run must shuffle, sample and bootstrap the same way every time it is repeated or resumed.
public struct SplitMix64: RandomNumberGenerator, Sendable {
    /// The golden-ratio increment added to the state before each output.
    public static let increment: UInt64 = 0x9E37_79B9_7F4A_7C15

    /// The state; the next output mixes `state + increment`.
    public private(set) var state: UInt64

    /// A generator whose first output mixes `seed + increment`.
    public init(seed: UInt64) { state = seed }

    public mutating func next() -> UInt64 {
        state &+= Self.increment
        return Self.finalize(state)
    }

    /// Uniform in [0, 1) with 53 random bits.
    public mutating func nextUnit() -> Double { Double(next() >> 11) * 0x1.0p-53 }

    /// Uniform in [low, high).
    public mutating func uniform(_ low: Double = 0, _ high: Double = 1) -> Double { low + (high - low) * nextUnit() }

    /// A standard normal draw (Box-Muller over two uniforms, the first kept above 1e-300).
    public mutating func normal() -> Double {
        let u1 = Swift.max(uniform(), 1e-300), u2 = uniform()
        return (-2 * Foundation.log(u1)).squareRoot() * Foundation.cos(2 * Double.pi * u2)
    }

    /// A uniform index in 0..<n (Lemire's multiply-high; the bias is below 2^-50 for n < 2^14).
    public mutating func index(below n: Int) -> Int {
        Int(truncatingIfNeeded: next().multipliedFullWidth(by: UInt64(n)).high)
    }

    /// Shuffles `elements` in place: our own Fisher-Yates, `next() % (i + 1)` from the last
    /// position down, rather than the standard library's `shuffle(using:)`, whose use of the
    /// generator may change between toolchains (a checkpoint must resume identically).
    public mutating func shuffle<T>(_ elements: inout [T]) {
        for i in stride(from: elements.count - 1, to: 0, by: -1) {
            elements.swapAt(i, Int(next() % UInt64(i + 1)))
        }
    }

    /// 0..<count in the order `shuffle` gives with a new generator seeded by `seed`.
    public static func permutation(count: Int, seed: UInt64) -> [Int] {
        var order = Array(0..<count)
        var g = SplitMix64(seed: seed)
        g.shuffle(&order)
        return order
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

    /// One well-mixed word from two (a sampling stream and its step): SplitMix64's finaliser of
    /// `a + increment * (b + 1)`.
    public static func mix(_ a: UInt64, _ b: UInt64) -> UInt64 {
        finalize(a &+ increment &* (b &+ 1))
    }

    /// SplitMix64's output function: every input bit affects every output bit.
    @inline(__always)
    public static func finalize(_ x: UInt64) -> UInt64 {
        var z = x
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
