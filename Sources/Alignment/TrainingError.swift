/// Errors of the trainers, with messages that name the setting, file or step at fault.
public enum TrainingError: Error, Equatable, CustomStringConvertible {
    /// A setting is out of range or inconsistent with another (checked before any work).
    case invalidConfiguration(field: String, message: String)
    /// There is nothing to train on, or too little for one optimiser step.
    case insufficientData(String)
    /// A checkpoint or run directory cannot be read, written, or does not fit this run.
    case checkpoint(path: String, message: String)
    /// The loss or the gradient norm stopped being a finite number.
    case nonFinite(step: Int, what: String)
    /// A reward function failed or returned the wrong number of rewards.
    case reward(String)

    public var description: String {
        switch self {
        case let .invalidConfiguration(field, message): "\(field): \(message)"
        case let .insufficientData(message): message
        case let .checkpoint(path, message): "checkpoint \(path): \(message)"
        case let .nonFinite(step, what): "\(what) is not finite at step \(step); lower the learning rate or check the data"
        case let .reward(message): "reward: \(message)"
        }
    }
}
