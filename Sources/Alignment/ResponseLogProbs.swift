import Foundation
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
    /// Rows that share a prompt (DPO's chosen and rejected, a GRPO group), laid out to run each
    /// prompt once; nil when no two rows share one (see `SharedPrompts`).
    public let shared: SharedPrompts?

    /// Whether rows that share a prompt run it once by default: on, unless the environment sets
    /// `VALUEALIGN_SHARED_PROMPTS=0` (for comparisons).
    public static let sharePromptsDefault = ProcessInfo.processInfo.environment["VALUEALIGN_SHARED_PROMPTS"] != "0"

    /// `sharePrompts: false` runs every row whole even where rows share a prompt.
    public init(_ batch: TokenBatch, sharePrompts: Bool = ResponseTokens.sharePromptsDefault) throws {
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
        shared = sharePrompts ? try SharedPrompts(ids: ids, width: l, promptLengths: batch.promptLengths, responseLengths: batch.responseLengths) : nil
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

/// A batch whose rows share prompts, laid out so that each distinct prompt runs through the model
/// once: the prompts, left-padded, fill the key/value caches; the caches are copied to the rows
/// that share them; the responses then run on top. Causal attention makes this the same
/// computation as running every row whole (a prompt's states do not depend on what follows it,
/// and rotary embeddings depend only on relative positions, so the left padding changes nothing
/// but rounding), with the prompt's projections, MLP and backward done once per distinct prompt
/// instead of once per row: 25% fewer token rows for DPO pairs of equal halves, 44% for a GRPO
/// group of 8 answers to one prompt. TRL computes every row whole.
public struct SharedPrompts {
    /// The distinct prompts, left-padded: [G, Lp], with `promptKeep` [G, Lp] false at padding.
    public let prompts: MLXArray
    public let promptKeep: MLXArray
    /// The responses, right-padded: [B, Lr].
    public let responses: MLXArray
    /// Each row's prompt, [B].
    public let group: MLXArray
    /// Key padding of the response pass: the row's prompt padding, then the response [B, Lp + Lr].
    public let responseKeep: MLXArray
    /// Flat indices into [B * (Lr + 1)] of the states that predict each packed response token:
    /// state 0 of a row is its prompt's last, state j its response token j - 1.
    public let positions: MLXArray
    public let groupCount: Int

    /// nil when every row has its own prompt.
    init?(ids: [Int32], width: Int, promptLengths: [Int], responseLengths: [Int]) throws {
        let b = promptLengths.count
        var groupOf: [[Int32]: Int] = [:], firstRow: [Int] = [], group: [Int32] = []
        for row in 0..<b {
            let prompt = Array(ids[(row * width)..<(row * width + promptLengths[row])])
            if let g = groupOf[prompt] {
                group.append(Int32(g))
            } else {
                groupOf[prompt] = firstRow.count
                group.append(Int32(firstRow.count))
                firstRow.append(row)
            }
        }
        let g = firstRow.count
        let lr = max(responseLengths.max() ?? 0, 1)
        guard g < b else { return nil }
        let lp = firstRow.map { promptLengths[$0] }.max()!
        var prompts: [Int32] = [], keep: [Bool] = []
        for row in firstRow {
            let p = promptLengths[row]
            prompts += [Int32](repeating: 0, count: lp - p) + ids[(row * width)..<(row * width + p)]
            keep += [Bool](repeating: false, count: lp - p) + [Bool](repeating: true, count: p)
        }
        var responses: [Int32] = [], responseKeep: [Bool] = [], positions: [Int32] = []
        for row in 0..<b {
            let p = promptLengths[row], r = responseLengths[row]
            responses += ids[(row * width + p)..<(row * width + p + r)] + [Int32](repeating: 0, count: lr - r)
            responseKeep += keep[(Int(group[row]) * lp)..<(Int(group[row]) * lp + lp)] + [Bool](repeating: true, count: lr)
            positions += (0..<r).map { Int32(row * (lr + 1) + $0) }
        }
        self.prompts = try MLXArray(prompts, shape: [g, lp])
        promptKeep = try MLXArray(keep, shape: [g, lp])
        self.responses = try MLXArray(responses, shape: [b, lr])
        self.group = MLXArray(group)
        self.responseKeep = try MLXArray(responseKeep, shape: [b, lp + lr])
        self.positions = MLXArray(positions)
        groupCount = g
    }
}

extension CausalLanguageModel {
    /// The final hidden states that predict each packed response token, [T, H]: each distinct
    /// prompt runs once (`SharedPrompts`) when rows share prompts, else every row runs whole.
    public func responseStates(_ batch: TokenBatch, _ packed: ResponseTokens) throws -> MLXArray {
        guard let shared = packed.shared else {
            let hidden = try forward(batch.tokens, cache: nil, keyPadding: nil, captureLayers: []).hidden
            return try hidden.reshaped(-1, hidden.dim(-1)).take(packed.positions, axis: 0)
        }
        let cache = (0..<configuration.layerCount).map { _ in KVCache(preallocate: false) }
        let prompt = try forward(shared.prompts, cache: cache, keyPadding: shared.promptKeep, captureLayers: []).hidden
        for layer in cache { try layer.select(batchIndices: shared.group) }
        let response = try forward(shared.responses, cache: cache, keyPadding: shared.responseKeep, captureLayers: []).hidden
        let lp = prompt.dim(1)
        let last = try prompt.index([.all, .stride(lp - 1, lp, 1)]).take(shared.group, axis: 0)
        let states = try concatenated([last, response], axis: 1)
        return try states.reshaped(-1, states.dim(-1)).take(shared.positions, axis: 0)
    }

    /// log p(token | prefix) of every response token, packed [T] (see `ResponseTokens`), with the
    /// logits divided by `temperature`. Differentiable; equal to the response entries of
    /// `tokenLogProbs` (at temperature 1), computed with the head only at response positions.
    public func responseLogProbs(_ batch: TokenBatch, _ packed: ResponseTokens, temperature: Float = 1) throws -> MLXArray {
        guard temperature > 0 else { throw MLXError.invalidArgument("temperature must be positive, got \(temperature)") }
        // One vectorised pass over the logits forward and one backward (Fast.logSoftmaxPicked).
        return try Fast.logSoftmaxPicked(logits(responseStates(batch, packed)), targets: packed.targets, scale: 1 / temperature)
    }

    /// The whole next-token log-distribution at every packed response position, [T, V]
    /// (differentiable): what a KL between two models' distributions needs (`CapabilityRetention`).
    public func responseLogDistributions(_ batch: TokenBatch, _ packed: ResponseTokens) throws -> MLXArray {
        try logits(responseStates(batch, packed)).logSoftmax(axis: -1)
    }
}
