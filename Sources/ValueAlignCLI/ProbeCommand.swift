import ArgumentParser
import Evaluators
import Foundation
import LanguageModels
import ValueSpace

/// `valuealign probe`: linear value probes on the model's activations (issue 27).
struct ProbeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "probe",
        abstract: "Linear value probes on a model's activations: train per layer and value, and test saved probes.",
        subcommands: [ProbeTrain.self, ProbeTest.self])
}

/// Layers as "1-30", "4,8,16" or a mix.
func parseLayers(_ text: String, layerCount: Int) throws -> [Int] {
    var out: [Int] = []
    for part in text.split(separator: ",") {
        let bounds = part.split(separator: "-").map { Int($0.trimmingCharacters(in: .whitespaces)) }
        guard !bounds.isEmpty, bounds.count <= 2, bounds.allSatisfy({ $0 != nil }) else { throw ValidationError("--layers: '\(part)' is not a layer or a range like 1-30") }
        let lo = bounds[0]!, hi = bounds.last!!
        guard lo >= 1, hi <= layerCount, lo <= hi else { throw ValidationError("--layers: \(part) is outside 1...\(layerCount) (hidden states after each layer; \(layerCount) is the final normed output)") }
        out += Array(lo...hi)
    }
    return Array(Set(out)).sorted()
}

struct ProbeTrain: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train",
        abstract: "Train linear probes per layer and value on FULCRA's labelled dialogues; choose each value's layer by cross-validation on the training side; report held-out AUROC by layer.",
        discussion: "Writes probes.safetensors, summary.json and report.html into --out. Features are cached (--cache-dir), so a second run skips the model.")

    @Option(name: .shortAndLong, help: "Base model (default: the embedded SmolLM2).") var model: String?
    @Option(help: "Layers: hidden states after these layers, e.g. 1-30 or 4,8,16.") var layers = "1-30"
    @Option(help: "FULCRA labelled dialogues.") var labelled = EvaluatorData.defaultLabelledPath
    @Option(help: "Output folder.") var out: String
    @Option(help: "Feature cache folder ('' for none).") var cacheDir = ".build-eval-cache"
    @Option(help: "Cross-validation folds on the training side.") var folds = 4
    @Option(help: "Optimiser steps per probe.") var steps = 300
    @Flag(help: "No progress output.") var quiet = false

    func validate() throws {
        guard FileManager.default.fileExists(atPath: labelled) else { throw ValidationError("--labelled: no such file '\(labelled)' (set $VALUEALIGN_DATA or pass the FULCRA file)") }
        guard folds >= 2 else { throw ValidationError("--folds must be at least 2") }
        guard steps >= 1 else { throw ValidationError("--steps must be at least 1") }
    }

    func run() throws {
        let path = try ModelLocator.resolve(model)
        let layerCount = try Checkpoint.read(path).configuration.layerCount
        var p = ProbeJob.Parameters(modelPath: path, layers: try parseLayers(layers, layerCount: layerCount), outputDirectory: out)
        p.labelledPath = labelled
        p.cacheDirectory = cacheDir.isEmpty ? nil : cacheDir
        p.settings.folds = folds
        p.settings.steps = steps
        var bar: ProgressBar?
        var stage = ""
        let quiet = quiet
        let report = try ProbeJob(p).run { name, done, total in
            if name != stage { bar?.update(bar?.total ?? 0, final: true); stage = name; bar = ProgressBar(total: total, label: name, unit: "items", quiet: quiet) }
            bar?.update(done)
        }
        bar?.update(bar?.total ?? 0, final: true)
        print("held-out AUROC of the opposed probes at the layer chosen by cross-validation (chance 0.5):")
        for (i, v) in SchwartzValue.allCases.enumerated() {
            let auroc = (report.chosenTestOpposed[i].map { String(format: "%.3f", $0) } ?? "–")
                + (report.chosenTestOpposedInterval[i].map { String(format: " [%.2f, %.2f]", $0[0], $0[1]) } ?? "")
            let few = report.testOpposedPositives[i] < 5 ? ", too few to judge" : ""
            print("  \(v.rawValue.padding(toLength: 15, withPad: " ", startingAt: 0)) layer \(report.bestOpposedLayer[i].map(String.init) ?? "–")  AUROC \(auroc)  (\(report.testOpposedPositives[i]) held-out positives\(few))")
        }
        print("wrote \(out)/probes.safetensors, summary.json, report.html")
    }
}

struct ProbeTest: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "test",
        abstract: "Held-out AUROC by layer of saved probes on FULCRA's held-out dialogues (or another labelled file's whole content).")

    @Option(name: .shortAndLong, help: "Base model the probes were trained on (default: the embedded SmolLM2).") var model: String?
    @Option(help: "Probes file from probe train.") var probes: String
    @Option(help: "FULCRA-format labelled dialogues.") var labelled = EvaluatorData.defaultLabelledPath
    @Flag(help: "Use every example of --labelled, not only the held-out split (for a file the probes never saw).") var all = false
    @Option(help: "Feature cache folder ('' for none).") var cacheDir = ".build-eval-cache"

    func validate() throws {
        guard FileManager.default.fileExists(atPath: probes) else { throw ValidationError("--probes: no such file '\(probes)'") }
        guard FileManager.default.fileExists(atPath: labelled) else { throw ValidationError("--labelled: no such file '\(labelled)'") }
    }

    func run() throws {
        let path = try ModelLocator.resolve(model)
        let configuration = try Checkpoint.read(path).configuration
        let saved = try ValueProbes.load(probes, modelFingerprint: try ModelFingerprint.of(path: path), hiddenSize: configuration.hiddenSize)
        let (examples, _) = try FULCRADataset.load(labelled)
        let chosen = all ? examples : examples.filter { DatasetSplit.isHeldOut($0.prompt, fraction: 0.15, seed: 0) }
        let table = try ProbeJob.table(all ? "all" : "heldout", chosen, modelPath: path, layers: saved.layers.map(\.layer), batchSize: 16,
                                       cacheDirectory: cacheDir.isEmpty ? nil : cacheDir) { _, _, _ in }
        let figures = try saved.evaluate(table, labels: chosen.map(\.labels))
        print("layer  " + SchwartzValue.allCases.map { String($0.rawValue.prefix(8)).padding(toLength: 9, withPad: " ", startingAt: 0) }.joined())
        for f in figures {
            print(String(format: "%5d  ", f.layer) + f.testOpposed.map { ($0.map { String(format: "%.3f", $0) } ?? "  –  ").padding(toLength: 9, withPad: " ", startingAt: 0) }.joined())
        }
        print("held-out AUROC of the opposed probes on \(chosen.count) examples (chance 0.5)")
    }
}
