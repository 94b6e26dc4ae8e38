public import MLXEngine
import Synchronization

/// One model architecture: reads its configuration, names its tensors and builds its model.
///
/// Each architecture lives in its own file and registers under the name a model's metadata uses
/// (`general.architecture` in GGUF, `model_type` in config.json). Checkpoint reading looks that
/// name up first, so an architecture's own fields and defaults never leak into the shared parser.
public protocol ModelArchitecture: Sendable {
    var name: String { get }

    /// The configuration from GGUF metadata (`<name>.*` keys). Default: the fields every
    /// architecture shares, `ModelConfiguration(sharedGGUFMetadata:architecture:source:)`.
    func configuration(ggufMetadata: [String: GGUFValue], source: String) throws(LanguageModelError) -> ModelConfiguration

    /// The configuration from a Hugging Face config.json object. Default: the shared fields,
    /// `ModelConfiguration(sharedConfigJSON:architecture:source:)`.
    func configuration(configJSON: [String: Any], source: String) throws(LanguageModelError) -> ModelConfiguration

    /// The Hugging Face name of a GGUF tensor, nil for one the architecture does not know.
    /// Default: llama.cpp's standard block names (`Checkpoint.huggingFaceName(ofGGUF:)`).
    func huggingFaceName(ofGGUF name: String) -> String?

    /// Builds the model, taking its tensors from `weights` (Hugging Face names).
    func makeModel(configuration: ModelConfiguration, weights: inout WeightSource) throws -> any CausalLanguageModel
}

extension ModelArchitecture {
    /// The shared GGUF fields only, for architectures with nothing of their own.
    public func configuration(ggufMetadata: [String: GGUFValue], source: String) throws(LanguageModelError) -> ModelConfiguration {
        try ModelConfiguration(sharedGGUFMetadata: ggufMetadata, architecture: name, source: source)
    }

    /// The shared config.json fields only, for architectures with nothing of their own.
    public func configuration(configJSON: [String: Any], source: String) throws(LanguageModelError) -> ModelConfiguration {
        try ModelConfiguration(sharedConfigJSON: configJSON, architecture: name, source: source)
    }

    /// llama.cpp's standard tensor names, which its converters use for most architectures.
    public func huggingFaceName(ofGGUF name: String) -> String? { Checkpoint.huggingFaceName(ofGGUF: name) }
}

/// The architectures this process can load, keyed by metadata name.
public enum ModelRegistry {
    /// The built-in architectures, one line each.
    private static let builtIn: [any ModelArchitecture] = [
        LlamaArchitecture(),
        Qwen2Architecture(),
    ]

    private static let table = Mutex<[String: any ModelArchitecture]>(
        Dictionary(uniqueKeysWithValues: builtIn.map { ($0.name, $0) }))

    /// Adds or replaces an architecture (for models defined outside this package).
    public static func register(_ architecture: any ModelArchitecture) {
        table.withLock { $0[architecture.name] = architecture }
    }

    /// Names of the registered architectures, sorted.
    public static var supported: [String] { table.withLock { $0.keys.sorted() } }

    /// The architecture registered under `name`, or an error listing what is supported.
    public static func architecture(named name: String) throws(LanguageModelError) -> any ModelArchitecture {
        if let a = table.withLock({ $0[name] }) { return a }
        throw .unsupportedArchitecture(name, supported: supported)
    }
}
