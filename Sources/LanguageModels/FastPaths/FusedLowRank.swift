import Foundation
import MLXEngine
import MLXNN

/// A layer's LoRA adapters as `Fast.decodeLayer` reads them: A^T and scale * B^T of each adapted
/// projection. Keeps the adapters and arrays it was built from, so that a rebuilt array (an
/// optimiser step, a loaded adapter) is never mistaken for the old one.
final class FusedLowRank: @unchecked Sendable {
    let updates: [Fast.LowRankUpdate?]
    private let adapters: [LoRALinear?]
    private let arrays: [MLXArray?]

    init(adapters: [LoRALinear?]) throws {
        updates = try adapters.map { (l) throws -> Fast.LowRankUpdate? in
            guard let l else { return nil }
            return Fast.LowRankUpdate(at: try l.loraA.weight.asType(.float32).T.contiguous(),
                                      bt: try (l.loraB.weight.asType(.float32).T * l.scale).contiguous())
        }
        try eval(updates.compactMap { $0 }.flatMap { [$0.at, $0.bt] })
        self.adapters = adapters
        arrays = Self.arrays(of: adapters)
    }

    private static func arrays(of adapters: [LoRALinear?]) -> [MLXArray?] {
        adapters.flatMap { [$0?.loraA.weight, $0?.loraB.weight] }
    }

    func matches(_ current: [LoRALinear?]) -> Bool {
        current.count == adapters.count && zip(current, adapters).allSatisfy { $0 === $1 }
            && zip(Self.arrays(of: current), arrays).allSatisfy { $0 === $1 }
    }
}

/// One layer's last `FusedLowRank`, reused while its adapters hold the same arrays. Decode steps
/// would otherwise transpose and scale every adapter at every step; an optimiser step replaces
/// the arrays and so rebuilds it. Locked so that callers on different threads never see a
/// half-replaced entry.
final class FusedLowRankCache: @unchecked Sendable {
    private let lock = NSLock()
    private var lowRank: FusedLowRank?

    /// The updates of `adapters` (one per projection, nil where none adapts it).
    func updates(for adapters: [LoRALinear?]) throws -> [Fast.LowRankUpdate?] {
        try lock.withLock {
            if let lowRank, lowRank.matches(adapters) { return lowRank.updates }
            let built = try FusedLowRank(adapters: adapters)
            lowRank = built
            return built.updates
        }
    }
}
