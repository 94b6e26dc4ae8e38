import ArgumentParser
import Foundation
import LanguageModels
import OpenAIBackend

/// Which model answers: a local one (embedded, GGUF, Hugging Face folder) or an OpenAI-compatible server.
struct ModelOptions: ParsableArguments {
    @Option(name: .shortAndLong, help: "Model: 'embedded' (default), a GGUF file, a Hugging Face folder, a name in the models folder, or with --base-url the served model's name.")
    var model: String?

    @Option(help: "OpenAI-compatible server, e.g. http://127.0.0.1:8000/v1 (vLLM, llama.cpp server, Ollama). The key is read from $OPENAI_API_KEY or --api-key-env.")
    var baseURL: String?

    @Option(help: "Environment variable holding the server's API key.")
    var apiKeyEnv = "OPENAI_API_KEY"

    @Option(help: "Chat format for local models: \(ChatTemplate.allCases.map(\.rawValue).joined(separator: ", ")) (default: from the model's metadata).")
    var chatTemplate: String?

    @Option(help: "Local weights of quantized checkpoints: hybrid (float32 for batches + packed for decode; default), float32, or quantized (smallest).")
    var precision = "hybrid"

    @Option(help: "A PEFT LoRA adapter folder to put on the local model (e.g. runs/main/adapter from make run, or an organism's); repeat it to stack adapters in order (each but the last is merged into the weights).")
    var adapter: [String] = []

    @Option(help: ArgumentHelp("A steering vector to add to the local model's residual stream: FILE[:MULTIPLIER] (from `steer build`, or a llama.cpp/repeng control vector .gguf); repeat to add several.", valueName: "file[:multiplier]"))
    var steer: [String] = []

    func validate() throws {
        guard WeightPrecision(rawValue: precision) != nil else { throw ValidationError("--precision must be hybrid, float32 or quantized, got '\(precision)'") }
        if let chatTemplate { _ = try ChatTemplate.named(chatTemplate) }
        if baseURL != nil, model == nil { throw ValidationError("--base-url needs --model naming the served model") }
        if !adapter.isEmpty {
            guard baseURL == nil else { throw ValidationError("--adapter applies to a local model, not to --base-url (load the adapter in the server)") }
            try requireAdapterFolders(adapter)
        }
        if !steer.isEmpty {
            guard baseURL == nil else { throw ValidationError("--steer applies to a local model, not to --base-url") }
            for spec in try steeringSpecifications where !FileManager.default.fileExists(atPath: spec.path) {
                throw ValidationError("--steer: no such file '\(spec.path)'")
            }
        }
    }

    /// The parsed `--steer` arguments.
    var steeringSpecifications: [SteeringSpecification] {
        get throws { try steer.map { try SteeringSpecification(parsing: $0) } }
    }

    /// The local model these options describe, with its adapters (loading can take seconds). A
    /// wrong base model, shape or missing file in an adapter is an error naming the file.
    func loadLocal() throws -> LoadedModel {
        try LoadedModel.load(try ModelLocator.resolve(model), precision: WeightPrecision(rawValue: precision)!, chatTemplate: chatTemplate)
            .stacking(adapter)
            .steered(by: steeringSpecifications)
    }

    /// The backend these options describe.
    func makeBackend() throws -> any ChatBackend {
        if let baseURL {
            return try OpenAICompatibleBackend(baseURL: baseURL, model: model!, apiKeyEnvironmentVariable: apiKeyEnv)
        }
        return LocalChatBackend(try loadLocal())
    }
}

/// Every `--adapter` folder must hold a PEFT adapter (its adapter_config.json).
func requireAdapterFolders(_ folders: [String]) throws {
    for a in folders where !FileManager.default.fileExists(atPath: URL(fileURLWithPath: a).appendingPathComponent("adapter_config.json").path) {
        throw ValidationError("--adapter: no PEFT adapter (adapter_config.json) in '\(a)'")
    }
}

/// A second chat model a command uses beside its target (a judge, an attacker): the served model
/// `model` at `url`, or else the local model `model` (nil: the embedded one), loaded on its own.
func auxiliaryBackend(model: String?, url: String?) throws -> any ChatBackend {
    if let url { return try OpenAICompatibleBackend(baseURL: url, model: model ?? "") }
    return LocalChatBackend(try LoadedModel.load(try ModelLocator.resolve(model)))
}

/// Sampling options shared by commands that generate.
struct GenerationOptions: ParsableArguments {
    @Option(help: "Most new tokens per answer.") var maxTokens = 256
    @Option(help: "0 = greedy.") var temperature: Float = 0
    @Option(help: "Keep the k most likely tokens (0 = off).") var topK = 0
    @Option(help: "Nucleus sampling mass (1 = off).") var topP: Float = 1
    @Option(help: "Drop tokens below min-p times the best one's probability (0 = off).") var minP: Float = 0
    @Option(help: "Penalty on recently seen tokens (1 = off).") var repetitionPenalty: Float = 1
    @Option(help: "Random seed (same seed, same output).") var seed: UInt64?
    @Option(help: "Stop when the answer ends with this text (repeatable).") var stop: [String] = []

    var parameters: GenerationParameters {
        GenerationParameters(maxTokens: maxTokens, temperature: temperature, topK: topK, topP: topP, minP: minP,
                             repetitionPenalty: repetitionPenalty, seed: seed, stop: stop)
    }

    func validate() throws {
        do { try parameters.validate() } catch { throw ValidationError("\(error)") }
    }
}
