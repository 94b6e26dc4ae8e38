import Foundation
public import LanguageModels
public import MLXEngine
public import ValueSpace

/// Extracted features of a list of pairs at several layers and poolings, kept in memory so head
/// experiments can pick any combination without running the model again.
public struct FeatureTable: Sendable {
    public var count: Int
    public var layers: [Int]
    public var poolings: [HiddenPooling]
    public var hiddenSize: Int
    /// [count][layer][pooling][hidden], flat.
    public var values: [Float]

    public init(count: Int, layers: [Int], poolings: [HiddenPooling], hiddenSize: Int, values: [Float]) throws(EvaluatorError) {
        guard values.count == count * layers.count * poolings.count * hiddenSize else {
            throw .invalidParameter(field: "values", message: "\(values.count) floats for \(count) x \(layers.count) x \(poolings.count) x \(hiddenSize)")
        }
        self.count = count
        self.layers = layers
        self.poolings = poolings
        self.hiddenSize = hiddenSize
        self.values = values
    }

    /// Rows `rows` with the features of `layers` x `poolings` concatenated (layer-major), flat.
    public func select(rows: [Int], layers wanted: [Int], poolings wantedPoolings: [HiddenPooling]) throws(EvaluatorError) -> [Float] {
        var layerIndex: [Int] = [], poolingIndex: [Int] = []
        for l in wanted {
            guard let i = layers.firstIndex(of: l) else { throw .invalidParameter(field: "layers", message: "layer \(l) was not extracted (have \(layers))") }
            layerIndex.append(i)
        }
        for p in wantedPoolings {
            guard let i = poolings.firstIndex(of: p) else { throw .invalidParameter(field: "poolings", message: "pooling \(p.rawValue) was not extracted") }
            poolingIndex.append(i)
        }
        let h = hiddenSize, perRow = layers.count * poolings.count * h
        var out: [Float] = []
        out.reserveCapacity(rows.count * layerIndex.count * poolingIndex.count * h)
        for r in rows {
            for li in layerIndex {
                for pi in poolingIndex {
                    let start = r * perRow + (li * poolings.count + pi) * h
                    out += values[start..<start + h]
                }
            }
        }
        return out
    }
}

/// Extracts feature tables, keeping them in a cache folder (safetensors, one file per dataset and
/// setting) so that head experiments and retraining skip the model. A cached table is reused for
/// any subset of its layers; its key covers the model fingerprint, the encoding, the poolings, the
/// batch size (batching changes float rounding) and every text.
public struct FeatureStore {
    public var directory: String?
    public init(directory: String?) { self.directory = directory }

    /// Features of `pairs` at `layers` x `poolings`. `model` is loaded only when the cache misses
    /// (it must hold the deepest layer asked for).
    public func table(
        name: String, pairs: [ValuePair], layers: [Int], poolings: [HiddenPooling], encoding: PairEncoding, batchSize: Int,
        modelFingerprint: String, model: () throws -> BaseModel, progress: ((Int, Int) -> Bool)? = nil
    ) throws -> FeatureTable {
        let key = Self.key(pairs: pairs, poolings: poolings, encoding: encoding, batchSize: batchSize, modelFingerprint: modelFingerprint)
        let prefix = "\(name)-\(key)-L"
        if let directory, let cached = try cachedTable(directory: directory, prefix: prefix, layers: layers, poolings: poolings, count: pairs.count) {
            return cached
        }
        let base = try model()
        let encoder = try PairEncoding.Encoder(encoding: encoding, tokenizer: base.tokenizer, template: base.template)
        let extractor = try FeatureExtractor(model: base.model, layers: layers, poolings: poolings, batchSize: batchSize, padTokenId: base.tokenizer.padTokenId)
        let values = try extractor.extract(pairs.map { encoder.encode($0) }, progress: progress)
        let table = try FeatureTable(count: pairs.count, layers: layers, poolings: poolings, hiddenSize: base.model.configuration.hiddenSize, values: values)
        if let directory {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            let file = "\(directory)/\(prefix)\(layers.map(String.init).joined(separator: "_")).safetensors"
            let array = try MLXArray(values, shape: [pairs.count, layers.count, poolings.count, table.hiddenSize])
            try ArrayIO.saveSafetensors(file, arrays: ["features": array], metadata: [
                "layers": layers.map(String.init).joined(separator: ","), "poolings": poolings.map(\.rawValue).joined(separator: ","),
            ])
        }
        return table
    }

    func cachedTable(directory: String, prefix: String, layers: [Int], poolings: [HiddenPooling], count: Int) throws -> FeatureTable? {
        let names = ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []).filter { $0.hasPrefix(prefix) && $0.hasSuffix(".safetensors") }.sorted()
        for name in names {
            let stored = name.dropFirst(prefix.count).dropLast(".safetensors".count).split(separator: "_").compactMap { Int($0) }
            guard Set(layers).isSubset(of: Set(stored)) else { continue }
            guard let (arrays, metadata) = try? ArrayIO.loadSafetensors("\(directory)/\(name)"), let features = arrays["features"],
                  features.ndim == 4, features.dim(0) == count, features.dim(1) == stored.count,
                  metadata["poolings"] == poolings.map(\.rawValue).joined(separator: ",") else { continue }
            let full = try FeatureTable(count: count, layers: stored, poolings: poolings, hiddenSize: features.dim(3), values: try features.asArray(Float.self))
            if stored == layers { return full }
            let values = try full.select(rows: Array(0..<count), layers: layers, poolings: poolings)
            return try FeatureTable(count: count, layers: layers, poolings: poolings, hiddenSize: full.hiddenSize, values: values)
        }
        return nil
    }

    static func key(pairs: [ValuePair], poolings: [HiddenPooling], encoding: PairEncoding, batchSize: Int, modelFingerprint: String) -> String {
        var hash: UInt64 = 0xCBF2_9CE4_8422_2325
        func mix(_ text: String) {
            for b in text.utf8 {
                hash ^= UInt64(b)
                hash &*= 0x0000_0100_0000_01B3
            }
            hash ^= 0xFF
            hash &*= 0x0000_0100_0000_01B3
        }
        mix(modelFingerprint)
        mix("\(encoding.maxPromptTokens)/\(encoding.maxResponseTokens)/\(batchSize)")
        mix(poolings.map(\.rawValue).joined(separator: ","))
        for p in pairs {
            mix(p.prompt)
            mix(p.response)
        }
        return String(format: "%016llx", hash)
    }
}
