import Foundation
public import LanguageModels

/// Everything needed to rebuild an evaluator around its heads: the base model it reads, which
/// layers and poolings make the features, how pairs are encoded, and how it was trained. Stored as
/// JSON in the weights file's metadata (key `valuealign.evaluator`).
public struct EvaluatorConfiguration: Sendable, Codable, Equatable {
    /// The layout version of this configuration; loaders refuse newer ones.
    public static let currentVersion = 1
    public var version = EvaluatorConfiguration.currentVersion
    /// The evaluator's name in reports.
    public var name: String
    public var baseModel: BaseModelIdentity
    /// Hugging Face hidden-state indices whose pooled states are concatenated.
    public var layers: [Int]
    public var poolings: [HiddenPooling]
    public var encoding: PairEncoding
    /// How the value vector is read from the probabilities.
    public var vectorRule = "expected label: p(+1) - p(-1) per value"
    /// How FULCRA evaluator scores became training targets, and at what |score| a score counts
    /// as a label (-1 / +1) in reports.
    public var softTargetRule = "p(+1) = max(s, 0), p(-1) = max(-s, 0), p(0) = 1 - |s|"
    public var labelThreshold = 0.5
    public var training: TrainingRecord?

    public init(name: String, baseModel: BaseModelIdentity, layers: [Int], poolings: [HiddenPooling], encoding: PairEncoding, training: TrainingRecord? = nil) {
        self.name = name
        self.baseModel = baseModel
        self.layers = layers
        self.poolings = poolings
        self.encoding = encoding
        self.training = training
    }

    /// Features per pair.
    public var featureWidth: Int { layers.count * poolings.count * baseModel.hiddenSize }
    /// The base model's layers the evaluator runs (the deepest layer it reads).
    public var layersRun: Int { layers.max() ?? 0 }

    /// Checks internal consistency.
    public func validate(source: String) throws(EvaluatorError) {
        guard version <= Self.currentVersion else {
            throw .invalidWeights(path: source, message: "configuration version \(version) is newer than this build reads (\(Self.currentVersion))")
        }
        guard !layers.isEmpty, !poolings.isEmpty else { throw .invalidWeights(path: source, message: "no layers or no poolings") }
        for l in layers where !(0...baseModel.layerCount).contains(l) {
            throw .invalidWeights(path: source, message: "layer \(l) is outside the base model's 0...\(baseModel.layerCount)")
        }
        do { try encoding.validate() } catch { throw .invalidWeights(path: source, message: "\(error)") }
    }
}

/// Which base model an evaluator was trained on.
public struct BaseModelIdentity: Sendable, Codable, Equatable {
    public var fileName: String
    /// `ModelFingerprint.of(path:)` of the model file or folder.
    public var fingerprint: String
    public var architecture: String
    public var hiddenSize: Int
    public var layerCount: Int

    public init(fileName: String, fingerprint: String, architecture: String, hiddenSize: Int, layerCount: Int) {
        self.fileName = fileName
        self.fingerprint = fingerprint
        self.architecture = architecture
        self.hiddenSize = hiddenSize
        self.layerCount = layerCount
    }
}

/// How a weights file was made, so the same command reproduces it.
public struct TrainingRecord: Sendable, Codable, Equatable {
    /// The command line that made the file.
    public var command: String
    public var seed: UInt64
    public var heads: HeadTrainingParameters
    /// Weight of one FULCRA-evaluator-scored answer relative to one labelled FULCRA dialogue.
    public var scoredAnswerWeight: Float
    public var heldOutFraction: Double
    public var heldOutSeed: UInt64
    /// Data files by name with their fingerprints and the examples used from each.
    public var data: [DataFileRecord]
    /// Folds whose out-of-fold logits set the decision offsets (0 = none).
    public var calibrationFolds = 0
    /// Floor on out-of-fold opposed recall used when setting the offsets.
    public var minimumOpposedRecall = 0.0
    /// How the project's own training files were turned into examples (nil: FULCRA only).
    public var projectDataRule: String?
    /// How the refusal head was trained (nil: no refusal head).
    public var refusalHead: HeadTrainingParameters?
    /// How the request head was trained (nil: no request head).
    public var requestHead: HeadTrainingParameters?

    public init(command: String, seed: UInt64, heads: HeadTrainingParameters, scoredAnswerWeight: Float, heldOutFraction: Double, heldOutSeed: UInt64, data: [DataFileRecord]) {
        self.command = command
        self.seed = seed
        self.heads = heads
        self.scoredAnswerWeight = scoredAnswerWeight
        self.heldOutFraction = heldOutFraction
        self.heldOutSeed = heldOutSeed
        self.data = data
    }
}

/// One training data file.
public struct DataFileRecord: Sendable, Codable, Equatable {
    public var name: String
    public var fingerprint: String
    public var trainingExamples: Int
    public init(name: String, fingerprint: String, trainingExamples: Int) {
        self.name = name
        self.fingerprint = fingerprint
        self.trainingExamples = trainingExamples
    }
}

/// A cheap identity for model and data files: FNV-1a (64-bit) over the size, the first MiB and
/// 64 evenly spaced 64 KiB blocks of each file (a folder: its files in name order). It tells
/// different checkpoints apart without reading hundreds of megabytes; it is not a security hash.
public enum ModelFingerprint {
    public static func of(path: String) throws(EvaluatorError) -> String {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw .invalidParameter(field: "path", message: "\(path): no such file or folder")
        }
        var files = [path]
        if isDirectory.boolValue {
            let names = ((try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []).sorted()
            files = names.map { "\(path)/\($0)" }.filter { !FileManager.default.fileExists(atPath: $0, isDirectory: &isDirectory) || !isDirectory.boolValue }
        }
        var hash: UInt64 = 0xCBF2_9CE4_8422_2325
        func mix<S: Sequence>(_ bytes: S) where S.Element == UInt8 {
            for b in bytes {
                hash ^= UInt64(b)
                hash &*= 0x0000_0100_0000_01B3
            }
        }
        for file in files {
            guard let handle = FileHandle(forReadingAtPath: file) else { throw .invalidParameter(field: "path", message: "\(file): cannot be read") }
            defer { try? handle.close() }
            let size = (try? handle.seekToEnd()) ?? 0
            withUnsafeBytes(of: size.littleEndian) { mix($0) }
            var offsets: [UInt64] = [0]
            let block: UInt64 = 65_536
            if size > 1_048_576 + block {
                for i in 0..<64 { offsets.append(1_048_576 + (size - 1_048_576 - block) * UInt64(i) / 63) }
            }
            for (k, offset) in offsets.enumerated() {
                do {
                    try handle.seek(toOffset: offset)
                    let data = try handle.read(upToCount: Int(k == 0 ? 1_048_576 : block)) ?? Data()
                    mix(data)
                } catch {
                    throw .invalidParameter(field: "path", message: "\(file): read failed: \(error.localizedDescription)")
                }
            }
        }
        return String(format: "fnv1a64-sampled:%016llx", hash)
    }
}
