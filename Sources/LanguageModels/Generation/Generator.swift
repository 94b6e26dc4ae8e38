import Foundation
public import MLXEngine

/// One generated continuation.
public struct GeneratedSequence: Sendable, Equatable {
    /// New token ids (without the end-of-sequence token that stopped it).
    public var tokens: [Int]
    /// Their text, cut before a matched stop string.
    public var text: String
    public var finishReason: FinishReason
    public var promptTokens: Int
    /// Each token's log-probability and alternatives when `GenerationParameters.topLogProbs`
    /// asked for them (one per token of `tokens`), else nil.
    public var logProbs: [TokenLogProb]? = nil
}

/// Batched autoregressive generation with a KV cache: left-padded prefill, then one decode step
/// per token for every sequence still running. Sequences that stop (end-of-sequence token, stop
/// string, `maxTokens`) leave the batch, so the rest run faster.
///
/// Not thread-safe (it drives one model); `LocalChatBackend` wraps it in an actor.
public final class Generator {
    public let model: any CausalLanguageModel
    public let tokenizer: any Tokenizer
    /// Ids that end a sequence; the tokenizer's EOS ids plus the chat template's end-of-turn tokens.
    public var stopTokenIds: Set<Int>
    /// Reads the residual stream of the generated tokens from the decode steps themselves (no
    /// extra forward pass): each step's captured states of the tokens it was fed.
    public var observer: (any ActivationObserver)?

    public init(model: any CausalLanguageModel, tokenizer: any Tokenizer, extraStopTokenIds: Set<Int> = []) {
        self.model = model
        self.tokenizer = tokenizer
        self.stopTokenIds = tokenizer.eosTokenIds.union(extraStopTokenIds)
    }

    /// Generates a continuation of each prompt (token ids).
    ///
    /// - Parameter onText: called with (prompt index, text piece) as text becomes final (complete
    ///   UTF-8, and not possibly the start of a stop string); the pieces of a sequence concatenate
    ///   to its `text`. Return false to cancel the whole run (throws `CancellationError`).
    /// - Parameter onStep: called after every decode step with the number of sequences still
    ///   running (for progress and tokens/s).
    public func generate(
        _ prompts: [[Int]], parameters: GenerationParameters,
        onText: ((Int, String) -> Bool)? = nil, onStep: ((Int) -> Void)? = nil
    ) throws -> [GeneratedSequence] {
        let sampler = try Sampler(parameters: parameters)
        guard !prompts.isEmpty else { return [] }
        let limit = model.configuration.maxPositionEmbeddings
        for (i, p) in prompts.enumerated() {
            if p.isEmpty { throw LanguageModelError.invalidParameter(field: "prompts[\(i)]", message: "prompt has no tokens") }
            if let bad = p.first(where: { $0 < 0 || $0 >= model.configuration.vocabularySize }) {
                throw LanguageModelError.invalidParameter(field: "prompts[\(i)]", message: "token id \(bad) outside the vocabulary of \(model.configuration.vocabularySize)")
            }
            if p.count + parameters.maxTokens > limit {
                throw LanguageModelError.invalidParameter(
                    field: "prompts[\(i)]", message: "\(p.count) prompt tokens + \(parameters.maxTokens) new tokens exceed the model's context of \(limit)")
            }
        }
        var states = prompts.map { SequenceState(prompt: $0, stops: parameters.stop) }
        if parameters.maxTokens == 0 {
            return states.map { $0.result(.length) }
        }

        // Prefill, left-padded.
        let width = prompts.map(\.count).max()!
        let pad = tokenizer.padTokenId
        var ids: [Int32] = [], keep: [Bool] = []
        for p in prompts {
            ids += [Int32](repeating: Int32(pad), count: width - p.count) + p.map(Int32.init)
            keep += [Bool](repeating: false, count: width - p.count) + [Bool](repeating: true, count: p.count)
        }
        let padded = keep.contains(false)
        var keyPadding: MLXArray? = padded ? try MLXArray(keep, shape: [prompts.count, width]) : nil
        let cache = model.makeCache()
        let out = try model.forward(try MLXArray(ids, shape: [prompts.count, width]), cache: cache, keyPadding: keyPadding, captureLayers: [])
        var logits = try model.logits(out.hidden.index([.all, .at(-1)]))

        var active = Array(prompts.indices)  // batch row -> prompt index
        let observer = observer
        observer?.begin(prompts: prompts.count)
        for step in 0..<parameters.maxTokens {
            let next = try sampler.sample(logits, history: active.map { states[$0].prompt + states[$0].tokens }, streams: active, step: step)
            let chosen = try next.asArray(Int32.self)
            let distribution = try parameters.topLogProbs.map { _ in try logits.asType(.float32).logSoftmax(axis: -1).asArray(Float.self) }
            var stillRunning: [Int] = []
            for (row, index) in active.enumerated() {
                let token = Int(chosen[row])
                if stopTokenIds.contains(token) {
                    states[index].finish(.stop)
                } else {
                    states[index].append(token, bytes: tokenizer.bytes(of: [token], skipSpecialTokens: true))
                    if let distribution, let k = parameters.topLogProbs {
                        states[index].logProbs.append(tokenLogProb(token, row: row, of: distribution, vocabulary: distribution.count / active.count, top: k))
                    }
                    if states[index].finishReason == nil, states[index].tokens.count >= parameters.maxTokens {
                        states[index].finish(.length)
                    }
                }
                if let piece = states[index].takeEmittable(), !piece.isEmpty, let onText, !onText(index, piece) {
                    throw CancellationError()
                }
                if states[index].finishReason == nil { stillRunning.append(row) }
            }
            onStep?(stillRunning.count)
            if stillRunning.isEmpty { break }
            var nextTokens = next
            if stillRunning.count < active.count {
                let rows = MLXArray(stillRunning.map(Int32.init))
                for c in cache { try c.select(batchIndices: rows) }
                keyPadding = try keyPadding?.take(rows, axis: 0)
                nextTokens = try next.take(rows, axis: 0)
                active = stillRunning.map { active[$0] }
            }
            if let kp = keyPadding {
                keyPadding = try concatenated([kp, MLXArray.ones([kp.dim(0), 1], dtype: .bool)], axis: 1)
            }
            let out = try model.forward(nextTokens.reshaped(-1, 1), cache: cache, keyPadding: keyPadding, captureLayers: observer?.layers ?? [])
            logits = try model.logits(out.hidden).index([.all, .at(0)])
            try observer?.observe(prompts: active, states: out.captured)
        }
        return states.map {
            var result = $0.result($0.finishReason ?? .length)
            if parameters.topLogProbs != nil { result.logProbs = $0.logProbs }
            return result
        }
    }

    /// Token `token`'s entry from row `row` of a [B, V] log-softmax read back as one array.
    func tokenLogProb(_ token: Int, row: Int, of distribution: [Float], vocabulary: Int, top: Int) -> TokenLogProb {
        let start = row * vocabulary
        func text(_ id: Int) -> (String, [UInt8]) {
            let bytes = tokenizer.bytes(of: [id], skipSpecialTokens: false)
            return (String(decoding: bytes, as: UTF8.self), bytes)
        }
        let alternatives = distribution.withUnsafeBufferPointer { all in
            largestEntries(UnsafeBufferPointer(rebasing: all[start..<(start + vocabulary)]), count: top)
        }.map { entry in
            let (t, b) = text(entry.index)
            return TokenLogProb.Alternative(token: t, logProb: Double(entry.value), bytes: b)
        }
        let (t, b) = text(token)
        return TokenLogProb(token: t, logProb: Double(distribution[start + token]), bytes: b, top: alternatives)
    }
}

/// Something that reads a model's activations while it generates (a probe monitor): the
/// generator captures `layers` in every decode step and hands over the states of the tokens that
/// step was fed, i.e. every generated token but the last (whose state no step computes). One
/// observer serves one `generate` call at a time.
public protocol ActivationObserver: AnyObject {
    /// Hidden-state indices to capture (as `CausalLanguageModel.forward` numbers them).
    var layers: Set<Int> { get }
    /// A new generation of `prompts` sequences starts.
    func begin(prompts: Int)
    /// One decode step: `states[layer]` is [rows, 1, hidden], row r belonging to prompt `prompts[r]`.
    func observe(prompts: [Int], states: [Int: MLXArray]) throws
    /// What it read of prompt `index`'s answer (nil: nothing to report).
    func reading(prompt index: Int) throws -> [Double]?
}

/// Text bookkeeping of one sequence: UTF-8 assembly, stop strings, what has been streamed.
struct SequenceState {
    let prompt: [Int]
    let stops: [String]
    var tokens: [Int] = []
    var bytes: [UInt8] = []
    /// Decoded text of the complete UTF-8 prefix of `bytes`.
    var text = ""
    var decodedBytes = 0
    var emitted = 0  // Unicode scalars of `text` already handed out
    var finishReason: FinishReason?
    var matchedStop = false
    var logProbs: [TokenLogProb] = []

    init(prompt: [Int], stops: [String]) {
        self.prompt = prompt
        self.stops = stops
    }

    mutating func append(_ token: Int, bytes newBytes: [UInt8]) {
        tokens.append(token)
        bytes += newBytes
        let complete = completeUTF8Prefix(bytes, from: decodedBytes)
        if complete > decodedBytes {
            text += String(decoding: bytes[decodedBytes..<complete], as: UTF8.self)
            decodedBytes = complete
        }
        for stop in stops {
            if finishReason == nil, let range = text.range(of: stop) {
                text = String(text[..<range.lowerBound])
                matchedStop = true
                finish(.stop)
            }
        }
    }

    mutating func finish(_ reason: FinishReason) {
        guard finishReason == nil else { return }
        finishReason = reason
        if decodedBytes < bytes.count {
            // A partial character at the end: decode it lossily (U+FFFD), as a full decode would.
            if !matchedStop { text += String(decoding: bytes[decodedBytes...], as: UTF8.self) }
            decodedBytes = bytes.count
        }
    }

    /// Text that can no longer change: everything once finished, else all but a tail that could
    /// still grow into a stop string. Counted in Unicode scalars, so a combining mark arriving
    /// after its base character is still handed out.
    mutating func takeEmittable() -> String? {
        let scalars = Array(text.unicodeScalars)
        var end = scalars.count
        if finishReason == nil {
            var hold = 0
            for stop in stops {
                let s = Array(stop.unicodeScalars)
                for k in stride(from: min(s.count - 1, scalars.count), through: 1, by: -1)
                where scalars[(scalars.count - k)...].elementsEqual(s[..<k]) {
                    hold = max(hold, k)
                    break
                }
            }
            end -= hold
        }
        guard end > emitted else { return nil }
        var piece = String.UnicodeScalarView()
        piece.append(contentsOf: scalars[emitted..<end])
        emitted = end
        return String(piece)
    }

    func result(_ reason: FinishReason) -> GeneratedSequence {
        GeneratedSequence(tokens: tokens, text: text, finishReason: reason, promptTokens: prompt.count)
    }
}

/// The length of the longest prefix of `bytes` (at least `from`) that does not end inside a
/// multi-byte UTF-8 character. Invalid bytes count as complete (they decode to U+FFFD).
func completeUTF8Prefix(_ bytes: [UInt8], from: Int) -> Int {
    let n = bytes.count
    // Look back at most 3 bytes for the lead byte of an unfinished character.
    var i = n - 1
    while i >= max(from, n - 4), i >= 0 {
        let b = bytes[i]
        if b & 0xC0 == 0x80 { i -= 1; continue }  // continuation byte
        let need = b >= 0xF0 ? 4 : b >= 0xE0 ? 3 : b >= 0xC0 ? 2 : 1
        return n - i < need && b >= 0xC0 && b < 0xF8 ? i : n
    }
    return n
}
