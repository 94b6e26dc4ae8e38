import Alignment
import Foundation
import LanguageModels
import MLXEngine
import MLXNN
import ValueAlignTesting

/// A tiny random Llama with the byte tokenizer and ChatML (vocabulary 260).
func tinyLoaded(seed: UInt64 = 3, layers: Int = 2) throws -> LoadedModel { try TinyModels.chatModel(seed: seed, layers: layers) }

/// A fresh temporary folder, removed by the caller.
func temporaryDirectory(_ name: String) -> URL {
    FileManager.default.temporaryDirectory.appendingPathComponent("alignment-\(name)-\(UUID().uuidString)")
}

/// Every LoRA layer of the tiny model, so small tasks are learnable in a few steps.
let allLinear = LoRAConfiguration(rank: 8, alpha: 16, targetModules: ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"])

/// Runner settings for fast toy runs: constant learning rate, no clipping surprises.
func toyParameters<O: TrainingObjective>(_: O.Type, steps: Int, batchSize: Int, learningRate: Float = 1e-2) -> TrainingRunner<O>.Parameters {
    var p = TrainingRunner<O>.Parameters()
    p.steps = steps
    p.batchSize = batchSize
    p.learningRate = learningRate
    p.decay = .constant
    p.lora = allLinear
    p.seed = 7
    return p
}

/// The LoRA parameters of a model, by name.
func adapterWeights(_ model: any CausalLanguageModel) throws -> [String: [Float]] {
    var result: [String: [Float]] = [:]
    for (k, v) in model.parameters() where k.contains(".lora_") { result[k] = try v.asArray(Float.self) }
    return result
}

/// Stops a run as if the process were killed (no checkpoint is written on the way out).
struct SimulatedKill: Error {}

/// Runs synchronous training code on a thread of its own, as the CLI does: GRPO waits for its
/// async reward there, which must not block one of the few threads of Swift's cooperative pool
/// (tests run in parallel on them).
func offPool<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        let thread = Thread { continuation.resume(with: Result { try body() }) }
        thread.stackSize = 8 << 20
        thread.start()
    }
}
