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
        x = try x / Double(parameters.temperature)
        if parameters.topK > 0, parameters.topK < x.dim(-1) {
            let kth = try x.topK(parameters.topK, axis: -1).min(axis: -1, keepDims: true)
            x = try which(x .< kth, MLXArray(-Float.infinity), x)
        }
        if parameters.topP < 1 {
            let order = try (-x).argSort(axis: -1)
            let sortedLogits = try x.takeAlong(order, axis: -1)
            let probs = try sortedLogits.softmax(axis: -1)
            let before = try probs.cumsum(axis: -1) - probs
            // The smallest prefix whose mass reaches p: keep a token if the mass before it is < p.
            let kept = try which(before .< parameters.topP, sortedLogits, MLXArray(Float.infinity))
            let threshold = try kept.min(axis: -1, keepDims: true)
            x = try which(x .< threshold, MLXArray(-Float.infinity), x)
        }
        if parameters.minP > 0 {
            let logProbs = try x.logSoftmax(axis: -1)
            let floor = try logProbs.max(axis: -1, keepDims: true) + Double(log(parameters.minP))
            x = try which(logProbs .< floor, MLXArray(-Float.infinity), x)
        }
        // Gumbel-max with one key per sequence and step.
        var noise: [MLXArray] = []
        for stream in streams {
            let key = try MLXRandom.key(Self.mix(seed &+ UInt64(stream), UInt64(step)))
            noise.append(try MLXRandom.uniform([x.dim(-1)], low: Float.leastNormalMagnitude, high: 1, key: key))
        }
        let gumbel = try -(-stacked(noise, axis: 0).log()).log()
        return try (x + gumbel).argMax(axis: -1).asType(.int32)
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

    /// SplitMix64 of two words: a well-mixed seed for each (stream, step).
    static func mix(_ a: UInt64, _ b: UInt64) -> UInt64 {
        var z = a &+ 0x9E37_79B9_7F4A_7C15 &* (b &+ 1)
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
