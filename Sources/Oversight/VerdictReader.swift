public import LanguageModels
import Foundation

/// A judge's verdict on one question: a probability for each allowed answer ("A"/"B", "1"..."5",
/// "Yes"/"No").
public struct Verdict: Sendable, Codable, Equatable {
    /// How the probabilities were obtained.
    public enum Source: String, Sendable, Codable {
        /// From the first answer token's log-probabilities (local models; servers that report
        /// `logprobs`): the probability of each label's tokens, renormalised over the labels.
        case logProbs = "logprobs"
        /// From the answer's text (servers without `logprobs`): 1 for the first label named.
        case text
        /// Neither: the answer names no label and the labels' tokens had no probability.
        case unreadable
        /// Not a language model's answer: a reward model's scores.
        case scores
    }

    /// One probability per label, summing to 1; empty when unreadable.
    public var probabilities: [Double]
    /// The share of the first token's probability that fell on the labels (logprobs only): a
    /// judge that mostly wants to say something else has a small mass.
    public var mass: Double?
    public var source: Source
    /// The judge's answer text (a few tokens).
    public var text: String

    public init(probabilities: [Double], mass: Double?, source: Source, text: String) {
        self.probabilities = probabilities
        self.mass = mass
        self.source = source
        self.text = text
    }

    public var isReadable: Bool { source != .unreadable }
}

/// Reads verdicts from any `ChatBackend`: asks for `topLogProbs` alternatives of the first answer
/// token and sums the probability of each label's spellings (" A", "A", "a", "(A"...); without
/// log-probabilities it falls back to the first label named in the text.
public struct VerdictReader: Sendable {
    public let backend: any ChatBackend
    /// Alternatives asked for per token (OpenAI allows up to 20).
    public var topLogProbs: Int
    /// Tokens the judge may write (only the first is read for probabilities; the rest let the
    /// text fallback find a label after a short lead-in).
    public var maxTokens: Int
    /// Conversations per `completeBatch` call.
    public var batchSize: Int

    public init(backend: any ChatBackend, topLogProbs: Int = maxTopLogProbs, maxTokens: Int = 6, batchSize: Int = 8) {
        self.backend = backend
        self.topLogProbs = topLogProbs
        self.maxTokens = maxTokens
        self.batchSize = batchSize
    }

    /// The verdicts on `conversations`, each allowed to answer one of `labels`.
    public func read(_ conversations: [[ChatMessage]], labels: [String],
                     progress: (@Sendable (Int) -> Void)? = nil) async throws -> [Verdict] {
        var parameters = GenerationParameters(maxTokens: maxTokens, temperature: 0, topLogProbs: topLogProbs)
        var verdicts: [Verdict] = []
        var start = 0
        while start < conversations.count {
            try Task.checkCancellation()
            let batch = Array(conversations[start..<min(start + batchSize, conversations.count)])
            let completions: [ChatCompletion]
            do {
                completions = try await backend.completeBatch(batch, parameters: parameters)
            } catch let error where parameters.topLogProbs != nil && verdicts.isEmpty && Self.refusesLogProbs(error) {
                // A server that rejects `logprobs`: ask without them and read verdicts from the text.
                parameters.topLogProbs = nil
                completions = try await backend.completeBatch(batch, parameters: parameters)
            }
            guard completions.count == batch.count else {
                throw OversightError.judge("the judge answered \(completions.count) of \(batch.count) conversations")
            }
            verdicts += completions.map { Self.verdict(from: $0, labels: labels) }
            start += batch.count
            progress?(verdicts.count)
        }
        return verdicts
    }

    /// Whether an error is a server's refusal of the `logprobs` fields (an HTTP 400 or 422 that
    /// names them), not a failure that asking again without them would not fix.
    static func refusesLogProbs(_ error: any Error) -> Bool {
        let text = "\(error)".lowercased()
        return (text.contains("400") || text.contains("422")) && text.contains("logprob")
    }

    /// The label a token spells, if any: the token without spaces, brackets, quotes, asterisks and
    /// a trailing full stop or colon, compared case-insensitively.
    static func label(of token: String, labels: [String]) -> Int? {
        let trimmed = token.trimmingCharacters(in: CharacterSet.whitespacesAndNewlines.union(CharacterSet(charactersIn: "()[]\"'*.:`")))
        guard !trimmed.isEmpty else { return nil }
        return labels.firstIndex { $0.caseInsensitiveCompare(trimmed) == .orderedSame }
    }

    /// The verdict in one completion.
    public static func verdict(from completion: ChatCompletion, labels: [String]) -> Verdict {
        if let first = completion.logProbs?.first {
            var mass = [Double](repeating: 0, count: labels.count)
            var seen: Set<String> = []
            let candidates = first.top.isEmpty ? [TokenLogProb.Alternative(token: first.token, logProb: first.logProb, bytes: first.bytes)] : first.top
            for alternative in candidates where seen.insert(alternative.token).inserted {
                if let i = label(of: alternative.token, labels: labels) { mass[i] += exp(alternative.logProb) }
            }
            let total = mass.reduce(0, +)
            if total > 0 { return Verdict(probabilities: mass.map { $0 / total }, mass: total, source: .logProbs, text: completion.text) }
        }
        // The first word that spells a label.
        let words = completion.text.split(whereSeparator: { $0.isWhitespace || $0 == "," || $0 == ";" }).map(String.init)
        for word in words {
            if let i = label(of: word, labels: labels) {
                var p = [Double](repeating: 0, count: labels.count)
                p[i] = 1
                return Verdict(probabilities: p, mass: nil, source: .text, text: completion.text)
            }
        }
        return Verdict(probabilities: [], mass: completion.logProbs == nil ? nil : 0, source: .unreadable, text: completion.text)
    }
}

/// What went wrong in a judge, debate or constitutional run.
public enum OversightError: Error, Equatable, CustomStringConvertible {
    /// The judge's answers could not be used.
    case judge(String)
    /// An input file or its line is wrong (path:line: what).
    case input(String)
    /// A setting is wrong.
    case invalid(String)

    public var description: String {
        switch self {
        case let .judge(m): "judge: \(m)"
        case let .input(m): m
        case let .invalid(m): m
        }
    }
}
