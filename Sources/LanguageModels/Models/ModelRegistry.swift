import Synchronization

/// One model architecture: builds a model from a configuration and named weights.
///
/// Each architecture lives in its own file and registers under the name a model's metadata uses
/// (`general.architecture` in GGUF, `model_type` in config.json).
public protocol ModelArchitecture: Sendable {
    var name: String { get }
    /// Builds the model, taking its tensors from `weights` (Hugging Face names).
    func makeModel(configuration: ModelConfiguration, weights: inout WeightSource) throws -> any CausalLanguageModel
}

/// The architectures this process can load, keyed by metadata name.
public enum ModelRegistry {
    private static let table = Mutex<[String: any ModelArchitecture]>([
        "llama": LlamaArchitecture(name: "llama"),
        "qwen2": LlamaArchitecture(name: "qwen2"),
    ])

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
