import Foundation
import MLXEngine

/// A steering vector file: one direction per layer of one base model, which layers to apply it
/// at, and a default multiplier. Written by `valuealign steer build`, read by `--steer`.
///
/// Stored as safetensors: tensors `layers.L` ([hidden], float32; L numbered as in
/// `ResidualSteering`) and string metadata (`valuealign.steer.*`, and the base model's
/// fingerprint as adapters record it). A file holds every layer it was built at, so a sweep or a
/// user can pick other layers without rebuilding; `layers` are the ones `--steer` applies.
/// llama.cpp control-vector GGUF files are read and written by `ControlVectorGGUF`.
public struct SteeringVector: Sendable, Equatable {
    /// Layer -> direction, `hiddenSize` floats.
    public var directions: [Int: [Float]]
    /// The layers `--steer` applies (each must have a direction).
    public var layers: [Int]
    /// The multiplier used when `--steer` names none.
    public var multiplier: Float
    public var hiddenSize: Int
    /// `PEFTAdapter.fingerprint` of the base model; nil for an imported vector, which is then
    /// checked by width and layer count only.
    public var modelFingerprint: String?
    /// What it steers toward: a value name, "target:NAME", or an imported file's name.
    public var name: String
    /// How it was made: "caa" (mean difference), "pca" (principal direction of the
    /// differences), "imported".
    public var method: String
    /// Anything else worth keeping (pairs used, model file, recommended-by-sweep figures).
    public var notes: [String: String]

    public init(directions: [Int: [Float]], layers: [Int], multiplier: Float = 1, hiddenSize: Int, modelFingerprint: String?,
                name: String, method: String, notes: [String: String] = [:]) {
        self.directions = directions
        self.layers = layers.sorted()
        self.multiplier = multiplier
        self.hiddenSize = hiddenSize
        self.modelFingerprint = modelFingerprint
        self.name = name
        self.method = method
        self.notes = notes
    }

    static let prefix = "valuealign.steer."

    /// Checks the vector's own consistency (every active layer has a direction of the right width).
    public func validate(path: String) throws(LanguageModelError) {
        guard hiddenSize >= 1 else { throw .steering(path: path, message: "width must be positive, got \(hiddenSize)") }
        guard !layers.isEmpty else { throw .steering(path: path, message: "no layers to apply") }
        for l in layers where directions[l] == nil {
            throw .steering(path: path, message: "layer \(l) is to be applied but the file has no direction for it (it has \(directions.keys.sorted()))")
        }
        for (l, d) in directions where d.count != hiddenSize {
            throw .steering(path: path, message: "the direction at layer \(l) has \(d.count) values, expected \(hiddenSize)")
        }
        guard multiplier.isFinite else { throw .steering(path: path, message: "multiplier is not finite") }
    }

    /// Writes the file.
    public func save(to path: String) throws {
        try validate(path: path)
        var arrays: [String: MLXArray] = [:]
        for (l, d) in directions { arrays["layers.\(l)"] = try MLXArray(d, shape: [hiddenSize]) }
        var metadata = notes.reduce(into: [String: String]()) { $0[Self.prefix + "note." + $1.key] = $1.value }
        metadata[Self.prefix + "format"] = "1"
        metadata[Self.prefix + "layers"] = layers.map(String.init).joined(separator: ",")
        metadata[Self.prefix + "multiplier"] = String(multiplier)
        metadata[Self.prefix + "name"] = name
        metadata[Self.prefix + "method"] = method
        if let modelFingerprint { metadata[PEFTAdapter.fingerprintKey] = modelFingerprint }
        let url = URL(fileURLWithPath: path)
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        try ArrayIO.saveSafetensors(path, arrays: arrays, metadata: metadata)
    }

    /// Reads a file written by `save`, or a llama.cpp control vector (`.gguf`).
    public static func load(_ path: String) throws -> SteeringVector {
        guard FileManager.default.fileExists(atPath: path) else { throw LanguageModelError.steering(path: path, message: "no such file") }
        if path.lowercased().hasSuffix(".gguf") { return try ControlVectorGGUF.read(path) }
        let arrays: [String: MLXArray], metadata: [String: String]
        do { (arrays, metadata) = try ArrayIO.loadSafetensors(path) } catch {
            throw LanguageModelError.steering(path: path, message: "not a safetensors file (\(error))")
        }
        guard metadata[prefix + "format"] == "1" else {
            throw LanguageModelError.steering(path: path, message: "not a ValueAlign steering vector (no \(prefix)format = 1 in its metadata); llama.cpp control vectors must end in .gguf")
        }
        var directions: [Int: [Float]] = [:]
        var width: Int?
        for (key, array) in arrays {
            guard key.hasPrefix("layers."), let l = Int(key.dropFirst("layers.".count)) else {
                throw LanguageModelError.steering(path: path, message: "unexpected tensor '\(key)' (expected layers.N)")
            }
            guard array.ndim == 1 else { throw LanguageModelError.steering(path: path, message: "tensor '\(key)' has shape \(array.shape), expected one dimension") }
            if let width, width != array.dim(0) {
                throw LanguageModelError.steering(path: path, message: "tensor '\(key)' has \(array.dim(0)) values, others \(width)")
            }
            width = array.dim(0)
            directions[l] = try array.asType(.float32).asArray(Float.self)
        }
        guard let width else { throw LanguageModelError.steering(path: path, message: "no directions in the file") }
        let layerText = metadata[prefix + "layers"] ?? ""
        let layers = layerText.split(separator: ",").compactMap { Int($0.trimmingCharacters(in: .whitespaces)) }
        guard layers.count == layerText.split(separator: ",").count else {
            throw LanguageModelError.steering(path: path, message: "unreadable layer list '\(layerText)'")
        }
        guard let multiplier = Float(metadata[prefix + "multiplier"] ?? "1") else {
            throw LanguageModelError.steering(path: path, message: "unreadable multiplier '\(metadata[prefix + "multiplier"] ?? "")'")
        }
        let noteKey = prefix + "note."
        let notes = metadata.filter { $0.key.hasPrefix(noteKey) }.reduce(into: [String: String]()) { $0[String($1.key.dropFirst(noteKey.count))] = $1.value }
        let vector = SteeringVector(
            directions: directions, layers: layers, multiplier: multiplier, hiddenSize: width, modelFingerprint: metadata[PEFTAdapter.fingerprintKey],
            name: metadata[prefix + "name"] ?? URL(fileURLWithPath: path).lastPathComponent, method: metadata[prefix + "method"] ?? "unknown", notes: notes)
        try vector.validate(path: path)
        return vector
    }

    /// The same vector applied at other layers (each must have a direction).
    public func applied(at layers: [Int], path: String = "") throws(LanguageModelError) -> SteeringVector {
        var copy = self
        copy.layers = layers.sorted()
        try copy.validate(path: path)
        return copy
    }

    /// The additions for a model: the directions of `layers` times `multiplier` (default: the
    /// file's). A vector made for another base model, of another width, or at a layer the model
    /// cannot steer is an error naming `path`.
    public func steering(for c: ModelConfiguration, multiplier: Float? = nil, path: String) throws -> ResidualSteering {
        if let modelFingerprint, modelFingerprint != PEFTAdapter.fingerprint(c) {
            throw LanguageModelError.steering(path: path, message: "made for a different base model (\(modelFingerprint)); this model is \(PEFTAdapter.fingerprint(c))")
        }
        let m = multiplier ?? self.multiplier
        var additions: [Int: MLXArray] = [:]
        for l in layers { additions[l] = try MLXArray(directions[l]!.map { $0 * m }, shape: [hiddenSize]) }
        // Width and layers are checked where every steering is (`ResidualSteering`), named by the file.
        do { return try ResidualSteering(additions: additions, configuration: c) } catch {
            guard case let .invalidParameter(_, message) = error else { throw error }
            throw LanguageModelError.steering(path: path, message: message)
        }
    }

    /// What identifies a vector's content (a sweep folder belongs to one).
    public struct Identity: Sendable, Codable, Equatable {
        public var name: String
        public var method: String
        public var modelFingerprint: String?
        public var hiddenSize: Int
        public var layers: [Int]
        /// FNV-1a over the directions' float bits, layer by layer.
        public var checksum: String
    }

    public var identity: Identity {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for l in directions.keys.sorted() {
            for x in directions[l]! {
                hash = (hash ^ UInt64(x.bitPattern)) &* 0x100_0000_01b3
            }
        }
        return Identity(name: name, method: method, modelFingerprint: modelFingerprint, hiddenSize: hiddenSize,
                        layers: directions.keys.sorted(), checksum: String(hash, radix: 16))
    }

    /// Euclidean norm of the direction at `layer` (0 when absent).
    public func norm(at layer: Int) -> Float {
        (directions[layer] ?? []).reduce(0) { $0 + $1 * $1 }.squareRoot()
    }
}

/// `FILE[:MULTIPLIER]`, as `--steer` takes it. The multiplier is the text after the last ':'
/// when that text is a number; otherwise the whole argument is the path.
public struct SteeringSpecification: Sendable, Equatable {
    public var path: String
    public var multiplier: Float?

    public init(path: String, multiplier: Float? = nil) {
        self.path = path
        self.multiplier = multiplier
    }

    public init(parsing text: String) throws(LanguageModelError) {
        if let colon = text.lastIndex(of: ":"), let m = Float(text[text.index(after: colon)...]) {
            guard m.isFinite else { throw .invalidParameter(field: "--steer", message: "multiplier in '\(text)' is not finite") }
            path = String(text[..<colon])
            multiplier = m
        } else {
            path = text
            multiplier = nil
        }
        guard !path.isEmpty else { throw .invalidParameter(field: "--steer", message: "no file in '\(text)'") }
    }

    /// Loads the files and returns their summed steering for `model`'s configuration.
    public static func steering(_ specs: [SteeringSpecification], for c: ModelConfiguration) throws -> ResidualSteering? {
        try ResidualSteering.sum(specs.map { try SteeringVector.load($0.path).steering(for: c, multiplier: $0.multiplier, path: $0.path) }, configuration: c)
    }
}
