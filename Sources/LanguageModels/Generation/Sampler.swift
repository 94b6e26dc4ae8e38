import ValueAlignCore
import Foundation
public import MLXEngine

/// Picks next tokens from logits, one row per sequence, following `GenerationParameters`.
///
/// Randomness is per sequence: row i of a batch draws from `seed + i` and the step number, so a
/// sequence samples the same tokens whether it runs alone (with seed `seed + i`) or in a batch.
public struct Sampler {
    public let parameters: GenerationParameters
    let seed: UInt64

    public init(parameters: GenerationParameters) throws {
        try parameters.validate()
        self.parameters = parameters
        self.seed = parameters.seed ?? UInt64.random(in: 0...UInt64.max)
    }

    /// Next tokens [B] (int32) for logits [B, V]. `history[i]` are sequence i's tokens so far (for
    /// the repetition penalty); `streams[i]` is its random stream index (its position in the
    /// original batch); `step` counts decode steps from 0.
    public func sample(_ logits: MLXArray, history: [[Int]], streams: [Int], step: Int) throws -> MLXArray {
        var x = logits.dtype == .float32 ? logits : try logits.asType(.float32)
        if parameters.repetitionPenalty != 1 { x = try penalize(x, history: history) }
        if parameters.temperature == 0 { return try x.argMax(axis: -1).asType(.int32) }
        // The tempered distribution comes from the vectorised softmax kernel; filtering and the draw
        // run in Swift over each row (MLX's CPU sort and transcendental ops over [B, V] would
        // dominate a batched decode step: ~30 ns per element).
        let probs = try Fast.softmaxLastAxis(x / Double(parameters.temperature))
        let vocabulary = probs.dim(-1)
        let flat = try probs.asArray(Float.self)
        var chosen: [Int32] = []
        chosen.reserveCapacity(streams.count)
        for (row, stream) in streams.enumerated() {
            var rng = SplitMix64(seed: SplitMix64.mix(seed &+ UInt64(stream), UInt64(step)))
            let token = flat.withUnsafeBufferPointer { all in
                drawFiltered(UnsafeBufferPointer(rebasing: all[(row * vocabulary)..<((row + 1) * vocabulary)]), uniform: rng.nextUnit())
            }
            chosen.append(Int32(token))
        }
        return MLXArray(chosen)
    }

    /// Applies top-k, then top-p, then min-p (each on the distribution renormalised over what the
    /// previous filter kept, as Hugging Face's warpers do) and inverts the CDF at `uniform`.
    func drawFiltered(_ p: UnsafeBufferPointer<Float>, uniform: Double) -> Int {
        let k = parameters.topK > 0 ? min(parameters.topK, p.count) : p.count
        var candidates: [Int]
        if k < p.count || parameters.topP < 1 || parameters.minP > 0 {
            // Candidates in descending probability. Sorting all V ids is slow, so first take
            // those above a small floor; fall back to everything when they do not suffice.
            let needed = parameters.topP < 1 ? Double(parameters.topP) : 0
            var floor: Float = 1e-4
            while true {
                candidates = (0..<p.count).filter { p[$0] >= floor }
                let mass = candidates.reduce(0.0) { $0 + Double(p[$1]) }
                if (candidates.count >= k || floor == 0) && (mass >= needed || floor == 0) { break }
                floor = floor > 1e-8 ? floor / 100 : 0
            }
            candidates.sort { p[$0] > p[$1] || (p[$0] == p[$1] && $0 < $1) }
            if candidates.count > k { candidates.removeLast(candidates.count - k) }
            if parameters.topP < 1 {
                let total = candidates.reduce(0.0) { $0 + Double(p[$1]) }
                var mass = 0.0, keep = 0
                // The smallest prefix whose mass reaches p (always at least one token).
                while keep < candidates.count, keep == 0 || mass < Double(parameters.topP) * total {
                    mass += Double(p[candidates[keep]])
                    keep += 1
                }
                candidates.removeLast(candidates.count - keep)
            }
            if parameters.minP > 0, let best = candidates.first {
                let floor = parameters.minP * p[best]
                candidates.removeAll { p[$0] < floor }
            }
        } else {
            candidates = []
        }
        if candidates.isEmpty {
            // No filter: invert the CDF over the whole row.
            let target = uniform * p.reduce(0.0) { $0 + Double($1) }
            var acc = 0.0
            for i in 0..<p.count {
                acc += Double(p[i])
                if acc > target { return i }
            }
            return (0..<p.count).last { p[$0] > 0 } ?? 0
        }
        let target = uniform * candidates.reduce(0.0) { $0 + Double(p[$1]) }
        var acc = 0.0
        for i in candidates {
            acc += Double(p[i])
            if acc > target { return i }
        }
        return candidates.last!
    }

    /// CTRL's penalty: positive logits of recent tokens are divided by it, negative ones multiplied.
    public func penalize(_ logits: MLXArray, history: [[Int]]) throws -> MLXArray {
        let window = parameters.repetitionContextSize
        let recent = history.map { Array($0.suffix(window)) }
        let width = recent.map(\.count).max() ?? 0
        guard width > 0 else { return logits }
        // Rows are padded with copies of their own first id, so duplicate writes agree; empty rows
        // point at id 0 and write its value back unchanged.
        var ids: [Int32] = [], valid: [Bool] = []
        for row in recent {
            let filler = Int32(row.first ?? 0)
            ids += row.map(Int32.init) + [Int32](repeating: filler, count: width - row.count)
            valid += [Bool](repeating: !row.isEmpty, count: width)
        }
        let index = try MLXArray(ids, shape: [recent.count, width])
        let mask = try MLXArray(valid, shape: [recent.count, width])
        let values = try logits.takeAlong(index, axis: -1)
        let p = Double(parameters.repetitionPenalty)
        let penalized = try which(values .> Float(0), values / p, values * p)
        let update = try which(mask, penalized, values)
        return try logits.putAlong(index, values: update, axis: -1)
    }
}
