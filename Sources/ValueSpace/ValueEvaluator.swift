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

    public init(vector: ValueVector, probabilities: [[Double]]) {
        self.vector = vector
        self.probabilities = probabilities
    }

    /// The most likely label per value: -1, 0 or +1.
    public var labels: [Int] { probabilities.map { p in (p.indices.max { p[$0] < p[$1] } ?? 1) - 1 } }
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
