/// Errors of the language-model layer, with messages that name the file, tensor or field at fault.
public enum LanguageModelError: Error, Equatable, CustomStringConvertible {
    /// A model file or folder could not be read or is malformed.
    case invalidModel(path: String, message: String)
    /// The model's metadata names an architecture no registered implementation handles.
    case unsupportedArchitecture(String, supported: [String])
    /// A tensor is missing, of the wrong shape, or of a type the loader cannot read.
    case tensor(name: String, message: String)
    /// Tokenizer data is missing or inconsistent.
    case tokenizer(String)
    /// A chat template name that is not one of ours.
    case unknownChatTemplate(String, supported: [String])
    /// A generation or scoring parameter is out of range.
    case invalidParameter(field: String, message: String)
    /// An adapter does not fit the model it is loaded into.
    case adapter(path: String, message: String)
    /// A steering vector does not fit the model, or its file is malformed.
    case steering(path: String, message: String)
    /// A remote backend failed (HTTP status, time-out, malformed reply).
    case backend(String)

    public var description: String {
        switch self {
        case let .invalidModel(path, message): "\(path): \(message)"
        case let .unsupportedArchitecture(name, supported):
            "unsupported model architecture '\(name)'; supported: \(supported.joined(separator: ", "))"
        case let .tensor(name, message): "tensor '\(name)': \(message)"
        case let .tokenizer(message): "tokenizer: \(message)"
        case let .unknownChatTemplate(name, supported):
            "unknown chat template '\(name)'; supported: \(supported.joined(separator: ", "))"
        case let .invalidParameter(field, message): "\(field): \(message)"
        case let .adapter(path, message): "adapter \(path): \(message)"
        case let .steering(path, message): "steering vector \(path): \(message)"
        case let .backend(message): message
        }
    }
}
