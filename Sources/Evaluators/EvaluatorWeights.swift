import Foundation
import MLXEngine
import MLXNN

/// Reading and writing an evaluator's weights file: the heads' tensors in safetensors, with the
/// `EvaluatorConfiguration` as JSON under the metadata key `valuealign.evaluator`.
public enum EvaluatorWeights {
    public static let metadataKey = "valuealign.evaluator"

    /// The shipped weights: $VALUEALIGN_EVALUATOR_WEIGHTS when set, else the file bundled with
    /// this library (Sources/Evaluators/Resources, copied by SwiftPM into the
    /// `ValueAlign_Evaluators.resources` bundle and found through `Bundle.module`). nil when
    /// neither exists.
    ///
    /// Like every SwiftPM resource lookup on Linux, `Bundle.module` stops the process when the
    /// resource bundle is neither beside the executable nor in the build folder it was built in;
    /// keep the `.resources` folders next to a copied `valuealign` binary.
    public static func shippedPath() -> String? {
        if let p = ProcessInfo.processInfo.environment["VALUEALIGN_EVALUATOR_WEIGHTS"] { return p }
        return bundledPath()
    }

    /// The bundled file name.
    public static let bundledFileName = "smollm2-value-heads.safetensors"

    /// The gold evaluator's weights (issue 24, item 6: measured with, never optimised):
    /// $VALUEALIGN_GOLD_WEIGHTS when set, else the bundled `smollm2-gold-heads.safetensors`.
    public static func shippedGoldPath() -> String? {
        if let p = ProcessInfo.processInfo.environment["VALUEALIGN_GOLD_WEIGHTS"] { return p }
        return Bundle.module.url(forResource: "smollm2-gold-heads", withExtension: "safetensors")?.path
    }
    public static let bundledGoldFileName = "smollm2-gold-heads.safetensors"

    /// The version of the weights file layout (tensor names and metadata keys); loaders refuse
    /// newer ones. The configuration JSON carries its own version too.
    public static let formatVersion = 1

    /// Metadata keys written beside the configuration JSON so that any safetensors reader (and a
    /// person with `head -c`) can tell what a file is without decoding the JSON.
    public enum MetadataKey {
        public static let formatVersion = "valuealign.format_version"
        public static let baseModelFingerprint = "valuealign.base_model.fingerprint"
        public static let baseModelFile = "valuealign.base_model.file"
        public static let layers = "valuealign.layers"
        public static let poolings = "valuealign.poolings"
    }

    static func bundledPath() -> String? {
        Bundle.module.url(forResource: "smollm2-value-heads", withExtension: "safetensors")?.path
    }

    /// Tensor-name prefix of the refusal head in a weights file.
    public static let refusalPrefix = "refusal."
    /// Tensor-name prefix of the request head in a weights file.
    public static let requestPrefix = "request."

    /// What a weights file holds.
    public struct Contents {
        public var heads: ValueHeads
        /// Refusal / partial / compliance of an answer (`ValueAssessment.refusal`), when present.
        public var refusalHead: ValueHeads?
        /// Harmful / (unused) / harmless of a request read alone (`ValueAssessment.requestHarm`), when present.
        public var requestHead: ValueHeads?
        public var configuration: EvaluatorConfiguration
    }

    /// Writes heads (the refusal head under `refusal.`, the request head under `request.`) and configuration.
    public static func save(heads: ValueHeads, refusalHead: ValueHeads? = nil, requestHead: ValueHeads? = nil,
                            configuration: EvaluatorConfiguration, to path: String) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let json = String(decoding: try encoder.encode(configuration), as: UTF8.self)
        var arrays = heads.parameters()
        for (prefix, extra) in [(refusalPrefix, refusalHead), (requestPrefix, requestHead)] {
            guard let extra else { continue }
            guard extra.groups == 1, extra.inputWidth == heads.inputWidth else {
                throw EvaluatorError.invalidParameter(field: "\(prefix.dropLast())Head", message: "must be one group over the value heads' \(heads.inputWidth) features")
            }
            for (name, array) in extra.parameters() { arrays[prefix + name] = array }
        }
        try ArrayIO.saveSafetensors(path, arrays: arrays, metadata: [
            metadataKey: json,
            MetadataKey.formatVersion: String(formatVersion),
            MetadataKey.baseModelFingerprint: configuration.baseModel.fingerprint,
            MetadataKey.baseModelFile: configuration.baseModel.fileName,
            MetadataKey.layers: configuration.layers.map(String.init).joined(separator: ","),
            MetadataKey.poolings: configuration.poolings.map(\.rawValue).joined(separator: ","),
        ])
    }

    /// Reads heads and configuration, checking they fit each other.
    public static func load(_ path: String) throws(EvaluatorError) -> (heads: ValueHeads, configuration: EvaluatorConfiguration) {
        let all = try loadContents(path)
        return (all.heads, all.configuration)
    }

    /// Reads heads, the refusal and request heads when the file has them, and configuration.
    public static func loadContents(_ path: String) throws(EvaluatorError) -> Contents {
        guard FileManager.default.fileExists(atPath: path) else { throw .invalidWeights(path: path, message: "no such file") }
        let arrays: [String: MLXArray], metadata: [String: String]
        do { (arrays, metadata) = try ArrayIO.loadSafetensors(path) } catch {
            throw .invalidWeights(path: path, message: "cannot read safetensors: \(error)")
        }
        guard let json = metadata[metadataKey] else { throw .invalidWeights(path: path, message: "no '\(metadataKey)' metadata (not an evaluator weights file)") }
        // Files written before the format version was recorded are version 1.
        if let v = metadata[MetadataKey.formatVersion] {
            guard let version = Int(v), version <= formatVersion else {
                throw .invalidWeights(path: path, message: "format version '\(v)' is newer than this build reads (\(formatVersion))")
            }
        }
        let configuration: EvaluatorConfiguration
        do { configuration = try JSONDecoder().decode(EvaluatorConfiguration.self, from: Data(json.utf8)) } catch {
            throw .invalidWeights(path: path, message: "the configuration does not decode: \(error)")
        }
        try configuration.validate(source: path)
        let heads: ValueHeads
        var extras: [ValueHeads?] = []
        do {
            let prefixes = [refusalPrefix, requestPrefix]
            let valueArrays = arrays.filter { entry in !prefixes.contains { entry.key.hasPrefix($0) } }
            heads = try ValueHeads(shapedAs: valueArrays)
            try heads.update(parameters: valueArrays, strict: true)
            for prefix in prefixes {
                let extraArrays = Dictionary(uniqueKeysWithValues: arrays.filter { $0.key.hasPrefix(prefix) }.map { (String($0.key.dropFirst(prefix.count)), $0.value) })
                guard !extraArrays.isEmpty else { extras.append(nil); continue }
                let head = try ValueHeads(shapedAs: extraArrays)
                try head.update(parameters: extraArrays, strict: true)
                guard head.groups == 1, head.inputWidth == heads.inputWidth else {
                    throw EvaluatorError.invalidWeights(path: path, message: "the \(prefix.dropLast()) head must be one 3-way group over \(heads.inputWidth) features")
                }
                head.train(false)
                extras.append(head)
            }
        } catch let e as EvaluatorError {
            if case let .invalidWeights(_, message) = e { throw .invalidWeights(path: path, message: message) }
            throw e
        } catch {
            throw .invalidWeights(path: path, message: "\(error)")
        }
        guard heads.inputWidth == configuration.featureWidth else {
            throw .invalidWeights(path: path, message: "the heads read \(heads.inputWidth) features but the configuration makes \(configuration.featureWidth)")
        }
        return Contents(heads: heads, refusalHead: extras[0], requestHead: extras[1], configuration: configuration)
    }
}
