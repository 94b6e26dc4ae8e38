import ValueAlignCore

/// The example order of one epoch: 0..<count shuffled by a generator seeded with (seed, epoch),
/// or in file order when `shuffle` is false.
func epochOrder(count: Int, seed: UInt64, epoch: Int, shuffle: Bool) -> [Int] {
    guard shuffle else { return Array(0..<count) }
    return SplitMix64.permutation(count: count, seed: SplitMix64.derive(seed, 0xDA7A, UInt64(epoch)))
}
