/// One behaviour to evaluate: a prompt and the model's response.
public struct ValuePair: Sendable, Codable, Equatable, Hashable {
    public var prompt: String
    public var response: String
    public init(prompt: String, response: String) {
        self.prompt = prompt
        self.response = response
    }
}

/// The evaluator's reading of one pair: a value vector plus, per value, the probabilities of
/// opposed / no connection / supported (each triple sums to 1).
public struct ValueAssessment: Sendable, Codable, Equatable {
    public var vector: ValueVector
    /// [value index][0: opposed, 1: no connection, 2: supported]
    public var probabilities: [[Double]]
    /// When the evaluator also reads refusals (the trained evaluator's refusal head): the
    /// probabilities of refusal, partial refusal and compliance, in `RefusalLabel` order.
    public var refusal: [Double]?
    /// When the pair is a request read alone (no prompt: the user's words as the response, the
    /// layout of the guard's input check) and the evaluator has a request head (the trained
    /// evaluator's): the probability that the words ask for something harmful.
    public var requestHarm: Double?

    public init(vector: ValueVector, probabilities: [[Double]], refusal: [Double]? = nil, requestHarm: Double? = nil) {
        self.vector = vector
        self.probabilities = probabilities
        self.refusal = refusal
        self.requestHarm = requestHarm
    }

    /// The most likely label per value: -1, 0 or +1.
    public var labels: [Int] { probabilities.map { p in (p.indices.max { p[$0] < p[$1] } ?? 1) - 1 } }

    /// The refusal label, when the evaluator reads refusals: refusal or partial (the likelier of
    /// the two) when their probabilities sum to at least `RefusalLabel.decisionThreshold`, else
    /// compliance.
    public var refusalLabel: RefusalLabel? {
        guard let refusal, refusal.count == RefusalLabel.allCases.count else { return nil }
        guard refusal[0] + refusal[1] >= RefusalLabel.decisionThreshold else { return .compliance }
        return refusal[0] >= refusal[1] ? .refusal : .partial
    }
}

/// What an answer does with its request: refuses it, does part of it while declining the rest, or
/// does it (a brief caveat does not make a compliance partial).
public enum RefusalLabel: String, Sendable, Codable, CaseIterable {
    case refusal, partial, compliance

    /// p(refusal) + p(partial) at which an answer counts as refusing. Chosen on the validation
    /// answers of the refusal set and of the embedded model (data/refusals): 0.8 agrees with their
    /// labels on 98.1% and 92.3%, the plain argmax (about 0.5) on 95.6% and 88.5% (the model's
    /// long, rambling answers are read as refusals too often).
    public static let decisionThreshold = 0.8
}

/// Maps prompt/response pairs to value vectors: the reward at the heart of BaseAlign.
///
/// Implementations: the trained evaluator on the embedded model's representations, and an LLM
/// judge over any `ChatBackend`. Batched, because evaluators are much faster on batches.
public protocol ValueEvaluator: Sendable {
    /// A short name for reports ("smollm2-probe", "judge:gpt-4o").
    var name: String { get }
    func evaluate(_ pairs: [ValuePair]) async throws -> [ValueAssessment]
}
