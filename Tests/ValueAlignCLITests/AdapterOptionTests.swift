import ArgumentParser
import Foundation
import LanguageModels
import MLXNN
import Testing
@testable import ValueAlignCLI
import ValueAlignTesting

/// Issue 26, item 1: every command that loads a chat model takes `--adapter`.
@Suite struct AdapterOptionTests {
    @Test func everyModelCommandChecksItsAdapter() {
        let prompts = repo("data/prompts/value_prompts.jsonl"), missing = scratch("no-adapter-\(UUID().uuidString)")
        let commands: [[String]] = [
            ["chat"], ["generate", "--prompts", prompts, "--out", scratch("never.jsonl")], ["evaluate", "--prompts", prompts, "--out", scratch("never")],
            ["serve"], ["redteam"],
        ]
        for command in commands {
            let message = parseError(command + ["--adapter", missing])
            #expect(message?.contains("--adapter: no PEFT adapter (adapter_config.json) in '\(missing)'") == true, "\(command[0]): \(message ?? "parsed")")
            let remote = parseError(command + ["--adapter", repo("Tests"), "--base-url", "http://127.0.0.1:9/v1", "--model", "m"])
            #expect(remote?.contains("--adapter applies to a local model") == true, "\(command[0]): \(remote ?? "parsed")")
        }
    }

    /// On the embedded model: an adapter made for it loads and names itself in the model's name;
    /// one made for another base model is refused, naming the folder.
    @Test func theAdapterIsLoadedOrRefusedWithReason() throws {
        let base = try #require(ModelLocator.embeddedModelPath(), "the embedded model is not installed (make deps)")
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("adapter-opt-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        let lora = LoRAConfiguration(rank: 2, alpha: 4, targetModules: ["q_proj"])
        let own = try LoadedModel.load(base)
        _ = try own.model.applyLoRA(lora)
        try PEFTAdapter.save(own.model, configuration: lora, to: dir.appendingPathComponent("own"), baseModel: base)
        let tiny = try TinyModels.chatModel()
        _ = try tiny.model.applyLoRA(lora)
        try PEFTAdapter.save(tiny.model, configuration: lora, to: dir.appendingPathComponent("tiny"), baseModel: "tiny")

        let options = try ModelOptions.parse(["--model", base, "--adapter", dir.appendingPathComponent("own").path])
        let loaded = try options.loadLocal()
        #expect(loaded.name.hasSuffix("+" + dir.appendingPathComponent("own").path))
        #expect(loaded.model.parameters().keys.contains { $0.contains(".lora_A.") })
        // Two adapters stack: the first is merged into the weights, the second stays a LoRA layer.
        let two = try ModelOptions.parse(["--model", base, "--adapter", dir.appendingPathComponent("own").path, "--adapter", dir.appendingPathComponent("own").path])
        let stacked = try two.loadLocal()
        #expect(stacked.name.hasSuffix("+" + dir.appendingPathComponent("own").path + "+" + dir.appendingPathComponent("own").path))
        #expect(stacked.model.parameters().keys.filter { $0.contains(".lora_A.") }.count == own.model.configuration.layerCount)
        let wrong = try ModelOptions.parse(["--model", base, "--adapter", dir.appendingPathComponent("tiny").path])
        #expect { try wrong.loadLocal() } throws: { "\($0)".contains("different base model") && "\($0)".contains("tiny") }
    }
}
