public import LanguageModels
public import MLXEngine

/// The response tokens of a `TokenBatch`, packed: one entry per scored token, row by row. The
/// trainers work in this layout: the output head and the log-softmax then run only where a
/// loss needs them, not over the prompt and the padding (for preference data, prompts are most
/// of the tokens, and the head is the model's largest matmul).
public struct ResponseTokens {
    /// Flat indices into the batch's [B * L] positions whose next token is scored.
    public let positions: MLXArray
    /// The scored tokens (the next token at each position), [T].
    public let targets: MLXArray
    /// The row of each entry, and [B, T] with 1 where entry t belongs to row b (per-row sums).
    public let rows: [Int]
    public let rowMatrix: MLXArray
    /// Response tokens per row, [B] (float).
    public let rowLengths: MLXArray
    public let count: Int
    public let batchSize: Int

    public init(_ batch: TokenBatch) throws {
        let b = batch.tokens.dim(0), l = batch.tokens.dim(1)
        let ids = try batch.tokens.asArray(Int32.self)
        var positions: [Int32] = [], targets: [Int32] = [], rows: [Int] = []
        for row in 0..<b {
            let p = batch.promptLengths[row], r = batch.responseLengths[row]
            // Position t predicts token t + 1; responses occupy p ..< p + r.
            for t in (p - 1)..<(p + r - 1) {
                positions.append(Int32(row * l + t))
                targets.append(ids[row * l + t + 1])
                rows.append(row)
            }
        }
        var matrix = [Float](repeating: 0, count: b * rows.count)
        for (t, row) in rows.enumerated() { matrix[row * rows.count + t] = 1 }
        self.positions = MLXArray(positions)
        self.targets = MLXArray(targets)
        self.rows = rows
        rowMatrix = try MLXArray(matrix, shape: [b, rows.count])
        rowLengths = MLXArray(batch.responseLengths.map(Float.init))
        count = rows.count
        batchSize = b
    }

    /// Sums packed values [T] per row, [B]. Differentiable.
    public func rowSums(_ values: MLXArray) throws -> MLXArray {
        try rowMatrix.matmul(values.reshaped(-1, 1)).reshaped(-1)
    }

    /// Spreads one value per row [B] over that row's entries, [T].
    public func perToken(_ rowValues: MLXArray) throws -> MLXArray {
        try rowValues.take(MLXArray(rows.map(Int32.init)), axis: 0)
    }
}

extension CausalLanguageModel {
    /// log p(token | prefix) of every response token, packed [T] (see `ResponseTokens`), with the
    /// logits divided by `temperature`. Differentiable; equal to the response entries of
    /// `tokenLogProbs` (at temperature 1), computed with the head only at response positions.
    public func responseLogProbs(_ batch: TokenBatch, _ packed: ResponseTokens, temperature: Float = 1) throws -> MLXArray {
        guard temperature > 0 else { throw MLXError.invalidArgument("temperature must be positive, got \(temperature)") }
        let hidden = try forward(batch.tokens, cache: nil, keyPadding: nil, captureLayers: []).hidden
        let selected = try hidden.reshaped(-1, hidden.dim(-1)).take(packed.positions, axis: 0)
        // One vectorised pass over the logits forward and one backward (Fast.logSoftmaxPicked).
        return try Fast.logSoftmaxPicked(logits(selected), targets: packed.targets, scale: 1 / temperature)
    }
}
