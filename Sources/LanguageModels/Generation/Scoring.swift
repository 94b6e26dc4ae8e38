public import MLXEngine

/// Prompt + response pairs as one right-padded batch, for scoring and training.
///
/// Row i holds prompt_i ++ response_i then padding. `targetMask` [B, L-1] is 1 where position t's
/// next token (t+1) is a response token, so prompt tokens and padding never count.
public struct TokenBatch {
    public var tokens: MLXArray
    public var targetMask: MLXArray
    public var promptLengths: [Int]
    public var responseLengths: [Int]

    /// Builds the batch; every response needs at least one token, every prompt too.
    public init(prompts: [[Int]], responses: [[Int]], padTokenId: Int) throws {
        guard prompts.count == responses.count, !prompts.isEmpty else {
            throw LanguageModelError.invalidParameter(field: "responses", message: "need one response per prompt and at least one pair (got \(prompts.count) prompts, \(responses.count) responses)")
        }
        for i in prompts.indices where prompts[i].isEmpty || responses[i].isEmpty {
            throw LanguageModelError.invalidParameter(field: "pairs[\(i)]", message: prompts[i].isEmpty ? "empty prompt" : "empty response")
        }
        let width = zip(prompts, responses).map { $0.count + $1.count }.max()!
        var ids: [Int32] = [], mask: [Float] = []
        for (p, r) in zip(prompts, responses) {
            let row = p + r
            ids += row.map(Int32.init) + [Int32](repeating: Int32(padTokenId), count: width - row.count)
            // target t+1 is a response token for t in [p.count-1, p.count+r.count-2]
            for t in 0..<(width - 1) { mask.append(t >= p.count - 1 && t < row.count - 1 ? 1 : 0) }
        }
        tokens = try MLXArray(ids, shape: [prompts.count, width])
        targetMask = try MLXArray(mask, shape: [prompts.count, width - 1])
        promptLengths = prompts.map(\.count)
        responseLengths = responses.map(\.count)
    }
}

/// How to pool a sequence's hidden states into one vector.
public enum HiddenPooling: String, Sendable, Codable, CaseIterable {
    /// Mean over the response tokens.
    case meanResponse = "mean-response"
    /// Mean over all tokens of prompt and response.
    case mean
    /// The last token's state (it has seen the whole sequence).
    case last
}

/// Log-probabilities of one response under the model.
public struct ResponseScore: Sendable, Equatable {
    /// log p(token | everything before it), one per response token.
    public var tokenLogProbs: [Float]
    public var total: Float { tokenLogProbs.reduce(0, +) }
    public var mean: Float { tokenLogProbs.isEmpty ? 0 : total / Float(tokenLogProbs.count) }
}

extension CausalLanguageModel {
    /// Per-position log-probability of the next token, [B, L-1], zero where `targetMask` is 0.
    /// Differentiable (used by SFT, DPO, GRPO losses).
    public func tokenLogProbs(_ batch: TokenBatch) throws -> MLXArray {
        let logits = try self(batch.tokens).index([.all, .stride(nil, -1, 1)])
        let targets = try batch.tokens.index([.all, .stride(1, nil, 1)])
        let (b, l) = (targets.dim(0), targets.dim(1))
        let picked = try Fast.logSoftmaxPicked(logits.reshaped(b * l, logits.dim(-1)), targets: targets.reshaped(-1)).reshaped(b, l)
        return try picked * batch.targetMask
    }

    /// Summed response log-probability per row, [B]. Differentiable.
    public func sequenceLogProbs(_ batch: TokenBatch) throws -> MLXArray {
        try tokenLogProbs(batch).sum(axis: -1)
    }

    /// Scores each response given its prompt, in batches of `batchSize` pairs.
    public func score(prompts: [[Int]], responses: [[Int]], padTokenId: Int, batchSize: Int = 8) throws -> [ResponseScore] {
        guard batchSize > 0 else { throw LanguageModelError.invalidParameter(field: "batchSize", message: "must be positive") }
        var results: [ResponseScore] = []
        for start in stride(from: 0, to: prompts.count, by: batchSize) {
            let end = min(start + batchSize, prompts.count)
            let batch = try TokenBatch(prompts: Array(prompts[start..<end]), responses: Array(responses[start..<end]), padTokenId: padTokenId)
            let lp = try tokenLogProbs(batch)
            try eval(lp)
            let width = lp.dim(1)
            let flat = try lp.asArray(Float.self)
            for row in 0..<(end - start) {
                let from = batch.promptLengths[row] - 1
                results.append(ResponseScore(tokenLogProbs: Array(flat[(row * width + from)..<(row * width + from + batch.responseLengths[row])])))
            }
        }
        return results
    }

    /// Pooled hidden states [N, hidden] of `layer` (Hugging Face's hidden_states index: 0 =
    /// embeddings, layerCount = final normed states) for prompt + response pairs.
    public func pooledHiddenStates(
        prompts: [[Int]], responses: [[Int]], layer: Int, pooling: HiddenPooling, padTokenId: Int, batchSize: Int = 8
    ) throws -> MLXArray {
        guard (0...configuration.layerCount).contains(layer) else {
            throw LanguageModelError.invalidParameter(field: "layer", message: "must be in 0...\(configuration.layerCount), got \(layer)")
        }
        guard batchSize > 0 else { throw LanguageModelError.invalidParameter(field: "batchSize", message: "must be positive") }
        var pooled: [MLXArray] = []
        for start in stride(from: 0, to: prompts.count, by: batchSize) {
            let end = min(start + batchSize, prompts.count)
            let batch = try TokenBatch(prompts: Array(prompts[start..<end]), responses: Array(responses[start..<end]), padTokenId: padTokenId)
            let out = try forward(batch.tokens, cache: nil, keyPadding: nil, captureLayers: [layer])
            guard let h = out.captured[layer] else { throw LanguageModelError.invalidParameter(field: "layer", message: "layer \(layer) was not captured") }
            let width = batch.tokens.dim(1)
            var weights: [Float] = []
            for row in 0..<(end - start) {
                let p = batch.promptLengths[row], total = p + batch.responseLengths[row]
                for t in 0..<width {
                    switch pooling {
                    case .meanResponse: weights.append(t >= p && t < total ? 1 / Float(total - p) : 0)
                    case .mean: weights.append(t < total ? 1 / Float(total) : 0)
                    case .last: weights.append(t == total - 1 ? 1 : 0)
                    }
                }
            }
            let w = try MLXArray(weights, shape: [end - start, width, 1])
            let v = try (h * w).sum(axis: 1)
            try eval(v)
            pooled.append(v)
        }
        return try concatenated(pooled, axis: 0)
    }
}
