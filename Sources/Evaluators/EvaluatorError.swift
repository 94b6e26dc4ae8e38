/// Errors of the trained value evaluator, naming the file, field or input at fault.
public enum EvaluatorError: Error, Equatable, CustomStringConvertible {
    /// The evaluator's weights file is missing, unreadable or inconsistent.
    case invalidWeights(path: String, message: String)
    /// The weights were trained on another base model than the one given.
    case baseModelMismatch(expected: String, got: String)
    /// An input cannot be evaluated (the message says which pair and why).
    case invalidInput(String)
    /// A training, test or benchmark parameter is out of range.
    case invalidParameter(field: String, message: String)
    /// Training or test data is unusable (too few examples, a value with no labels).
    case data(String)
    /// The caller stopped a long run.
    case cancelled

    public var description: String {
        switch self {
        case let .invalidWeights(path, message): "evaluator weights \(path): \(message)"
        case let .baseModelMismatch(expected, got):
            "the evaluator weights were trained on base model \(expected), but the model given is \(got); retrain with `valuealign evaluator train --model ...`"
        case let .invalidInput(message): "evaluator input: \(message)"
        case let .invalidParameter(field, message): "\(field): \(message)"
        case let .data(message): "evaluator data: \(message)"
        case .cancelled: "cancelled"
        }
    }
}
