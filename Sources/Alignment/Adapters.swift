import Foundation
import LanguageModels
import MLXEngine
public import MLXNN

extension Module {
    /// The paths of the LoRA layers in this tree.
    public var loraPaths: [String] { namedModules().filter { $0.1 is LoRALinear }.map(\.0) }

    /// Whether the tree has LoRA layers.
    public var hasLoRA: Bool { namedModules().contains { $0.1 is LoRALinear } }

    /// Runs `body` with every LoRA layer swapped for its frozen base layer, so the model computes
    /// the base model's outputs: the reference policy of DPO and GRPO without a second copy of the
    /// weights. The layers are put back afterwards, also when `body` throws.
    ///
    /// Arrays computed inside do not depend on the adapter; evaluate them (or stop their gradient)
    /// before using them in a loss.
    public func withAdaptersDisabled<T>(_ body: () throws -> T) throws -> T {
        let adapted = namedModules().compactMap { path, module in (module as? LoRALinear).map { (path, $0) } }
        for (path, lora) in adapted { try replace(child: path, with: lora.base) }
        defer { for (path, lora) in adapted { try? replace(child: path, with: lora) } }
        return try body()
    }
}

/// Reading and writing the trainable state of a run in files.
enum AdapterFiles {
    static let extraFile = "extra_parameters.safetensors"

    /// The LoRA parameters of `module` (PEFT's `lora_A` / `lora_B` names).
    static func isLoRAKey(_ name: String) -> Bool { name.contains(".lora_A.") || name.contains(".lora_B.") }

    /// Writes the adapter of `model` in PEFT's layout and every other trainable parameter of
    /// `trainable` (a reward head) to `extra_parameters.safetensors`, into `directory`.
    static func save(trainable: Module, model: any CausalLanguageModel, lora: LoRAConfiguration, to directory: URL, baseModel: String?) throws {
        try PEFTAdapter.save(model, configuration: lora, to: directory, baseModel: baseModel)
        let extra = trainable.trainableParameters().filter { !isLoRAKey($0.key) }
        if !extra.isEmpty {
            try ArrayIO.saveSafetensors(directory.appendingPathComponent(extraFile).path, arrays: extra,
                                        metadata: ["format": "pt"])
        }
    }

    /// Checks, without loading it, that the adapter in `directory` was made for `model`'s shapes.
    static func checkFingerprint(of directory: URL, for model: any CausalLanguageModel) throws {
        _ = try PEFTAdapter.configuration(at: directory)  // a readable PEFT LoRA config
        let file = directory.appendingPathComponent("adapter_model.safetensors").path
        guard FileManager.default.fileExists(atPath: file) else {
            throw LanguageModelError.adapter(path: directory.path, message: "no adapter_model.safetensors")
        }
        let (_, metadata) = try ArrayIO.loadSafetensors(file)
        let mine = PEFTAdapter.fingerprint(model.configuration)
        if let recorded = metadata["valuealign.base_fingerprint"], recorded != mine {
            throw LanguageModelError.adapter(path: directory.path, message: "made for a different base model (\(recorded)); this model is \(mine)")
        }
    }

    /// Loads an adapter (and extra parameters, when the file is there) into `trainable`, whose
    /// language model `model` may or may not carry LoRA layers already.
    static func load(from directory: URL, trainable: Module, model: any CausalLanguageModel) throws {
        if model.hasLoRA {
            try checkFingerprint(of: directory, for: model)
            let file = directory.appendingPathComponent("adapter_model.safetensors").path
            let (arrays, _) = try ArrayIO.loadSafetensors(file)
            var mapped: [String: MLXArray] = [:]
            for (key, value) in arrays {
                let name = key.hasPrefix("base_model.model.") ? String(key.dropFirst("base_model.model.".count)) : key
                mapped[name.replacingOccurrences(of: ".default.", with: ".")] = value
            }
            let expected = model.parameters().filter { isLoRAKey($0.key) }
            guard Set(expected.keys) == Set(mapped.keys) else {
                throw LanguageModelError.adapter(path: directory.path, message: "its LoRA layers do not match the model's (\(mapped.count) in the file, \(expected.count) in the model)")
            }
            try model.update(parameters: mapped)
        } else {
            try PEFTAdapter.load(from: directory, into: model)
        }
        let extraURL = directory.appendingPathComponent(extraFile)
        if FileManager.default.fileExists(atPath: extraURL.path) {
            let (extra, _) = try ArrayIO.loadSafetensors(extraURL.path)
            try trainable.update(parameters: extra)
        }
    }
}
