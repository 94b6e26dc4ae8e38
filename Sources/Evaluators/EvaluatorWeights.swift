import Foundation
public import MLXEngine
import MLXNN

/// Reading and writing an evaluator's weights file: the heads' tensors in safetensors, with the
/// `EvaluatorConfiguration` as JSON under the metadata key `valuealign.evaluator`.
public enum EvaluatorWeights {
    public static let metadataKey = "valuealign.evaluator"

    /// The shipped weights: $VALUEALIGN_EVALUATOR_WEIGHTS when set, else the file bundled with
    /// this library (Sources/Evaluators/Resources). nil when neither exists.
    public static func shippedPath() -> String? {
        if let p = ProcessInfo.processInfo.environment["VALUEALIGN_EVALUATOR_WEIGHTS"] { return p }
        return bundledPath()
    }

    /// The bundled file name.
    public static let bundledFileName = "smollm2-value-heads.safetensors"

    static func bundledPath() -> String? {
        // SwiftPM copies Resources/ into ValueAlign_Evaluators.resources beside the executable.
        // Bundle.module is not used: it traps when that folder is missing (a binary copied away
        // from its build), and an evaluator that cannot find its weights must throw instead. A
        // checkout's Sources/Evaluators/Resources (from the working directory or above the
        // executable) is the fallback.
        var candidates: [String] = []
        var roots = [FileManager.default.currentDirectoryPath]
        if let executable = Bundle.main.executableURL?.resolvingSymlinksInPath().deletingLastPathComponent() {
            candidates.append(executable.appendingPathComponent("ValueAlign_Evaluators.resources/\(bundledFileName)").path)
            var dir = executable
            for _ in 0..<5 {
                roots.append(dir.path)
                dir = dir.deletingLastPathComponent()
            }
        }
        candidates += roots.map { "\($0)/Sources/Evaluators/Resources/\(bundledFileName)" }
        return candidates.first { FileManager.default.fileExists(atPath: $0) }
    }

    /// Writes heads and configuration.
    public static func save(heads: ValueHeads, configuration: EvaluatorConfiguration, to path: String) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let json = String(decoding: try encoder.encode(configuration), as: UTF8.self)
        try heads.save(safetensors: path, metadata: [metadataKey: json])
    }

    /// Reads heads and configuration, checking they fit each other.
    public static func load(_ path: String) throws(EvaluatorError) -> (heads: ValueHeads, configuration: EvaluatorConfiguration) {
        guard FileManager.default.fileExists(atPath: path) else { throw .invalidWeights(path: path, message: "no such file") }
        let arrays: [String: MLXArray], metadata: [String: String]
        do { (arrays, metadata) = try ArrayIO.loadSafetensors(path) } catch {
            throw .invalidWeights(path: path, message: "cannot read safetensors: \(error)")
        }
        guard let json = metadata[metadataKey] else { throw .invalidWeights(path: path, message: "no '\(metadataKey)' metadata (not an evaluator weights file)") }
        let configuration: EvaluatorConfiguration
        do { configuration = try JSONDecoder().decode(EvaluatorConfiguration.self, from: Data(json.utf8)) } catch {
            throw .invalidWeights(path: path, message: "the configuration does not decode: \(error)")
        }
        try configuration.validate(source: path)
        let heads: ValueHeads
        do {
            heads = try ValueHeads(shapedAs: arrays)
            try heads.update(parameters: arrays, strict: true)
        } catch let e as EvaluatorError {
            if case let .invalidWeights(_, message) = e { throw .invalidWeights(path: path, message: message) }
            throw e
        } catch {
            throw .invalidWeights(path: path, message: "\(error)")
        }
        guard heads.inputWidth == configuration.featureWidth else {
            throw .invalidWeights(path: path, message: "the heads read \(heads.inputWidth) features but the configuration makes \(configuration.featureWidth)")
        }
        return (heads, configuration)
    }
}
