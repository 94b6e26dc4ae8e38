import Foundation
public import LanguageModels
public import ValueSpace

/// One contrast pair for building a steering vector: a prompt, an answer that supports a value
/// and one that opposes it (data/steering/contrast_pairs.jsonl).
public struct ContrastPair: Sendable, Codable, Equatable {
    public var id: String
    public var value: SchwartzValue
    public var prompt: String
    public var supports: String
    public var opposes: String
    public var split: String?

    public init(id: String, value: SchwartzValue, prompt: String, supports: String, opposes: String, split: String? = nil) {
        self.id = id
        self.value = value
        self.prompt = prompt
        self.supports = supports
        self.opposes = opposes
        self.split = split
    }

    /// Reads a JSONL file of pairs; a malformed line is an error naming the file and line.
    public static func load(_ path: String) throws -> [ContrastPair] {
        guard let data = FileManager.default.contents(atPath: path), let text = String(data: data, encoding: .utf8) else {
            throw EvaluatorError.data("\(path): cannot read the contrast pairs (missing or not UTF-8)")
        }
        var pairs: [ContrastPair] = []
        for (n, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() where !line.allSatisfy(\.isWhitespace) {
            do {
                let pair = try JSONDecoder().decode(ContrastPair.self, from: Data(line.utf8))
                guard !pair.supports.isEmpty, !pair.opposes.isEmpty else { throw EvaluatorError.data("empty answer") }
                pairs.append(pair)
            } catch {
                throw EvaluatorError.data("\(path):\(n + 1): expected {id, value, prompt, supports, opposes} with a value among \(SchwartzValue.allCases.map(\.rawValue).joined(separator: ", ")) (\(Self.reason(error)))")
            }
        }
        guard !pairs.isEmpty else { throw EvaluatorError.data("\(path): no contrast pairs") }
        return pairs
    }

    static func reason(_ error: any Error) -> String {
        switch error {
        case let EvaluatorError.data(message): message
        case let DecodingError.keyNotFound(key, _): "missing '\(key.stringValue)'"
        case let DecodingError.dataCorrupted(c): c.codingPath.isEmpty ? "not JSON" : "bad '\(c.codingPath.map(\.stringValue).joined(separator: "."))'"
        case let DecodingError.typeMismatch(_, c): "wrong type at '\(c.codingPath.map(\.stringValue).joined(separator: "."))'"
        default: "\(error)"
        }
    }
}

/// How a steering direction is read from contrast pairs.
public enum SteeringMethod: String, Sendable, CaseIterable, Codable {
    /// Contrastive activation addition: the mean over pairs of (supporting - opposing) activations.
    case caa
    /// The first principal direction of the pairs' differences (uncentred, as representation
    /// engineering reads it), signed and scaled so that its length is the differences' mean
    /// projection on it: comparable to `caa`'s length, so multipliers mean the same for both.
    case pca
}

/// Builds steering vectors from contrast pairs: each answer's residual stream at every steerable
/// layer, averaged over the answer's tokens (its end-of-turn token included), for the supporting
/// and the opposing answer of each pair; the direction per layer comes from their differences.
public struct SteeringBuilder {
    public let loaded: LoadedModel
    public var batchSize = 8
    /// Most tokens of each answer read (the prompt is cut at 256).
    public var maxAnswerTokens = 256

    public init(loaded: LoadedModel) { self.loaded = loaded }

    /// Every steerable layer of the model: 1..<layerCount (see `ResidualSteering`).
    public var layers: [Int] { Array(1..<loaded.model.configuration.layerCount) }

    /// Per pair, per layer: supporting minus opposing pooled activations, [pairs][layers][hidden]
    /// flattened. The model must not be steered while reading.
    public func differences(_ pairs: [ContrastPair], progress: ((Int, Int) -> Bool)? = nil) throws -> [Float] {
        guard loaded.model.steering == nil else {
            throw EvaluatorError.invalidParameter(field: "model", message: "read contrast activations from an unsteered model")
        }
        let encoder = try PairEncoding.Encoder(encoding: PairEncoding(maxPromptTokens: 256, maxResponseTokens: maxAnswerTokens),
                                               tokenizer: loaded.tokenizer, template: loaded.chatTemplate)
        var encoded: [PairEncoding.Encoded] = []
        for p in pairs {
            encoded.append(encoder.encode(ValuePair(prompt: p.prompt, response: p.supports)))
            encoded.append(encoder.encode(ValuePair(prompt: p.prompt, response: p.opposes)))
        }
        let extractor = try FeatureExtractor(model: loaded.model, layers: layers, poolings: [.meanResponse], batchSize: batchSize,
                                             padTokenId: loaded.tokenizer.padTokenId, normalizesStates: false)
        let features = try extractor.extract(encoded) { done, _ in progress?(done, encoded.count) ?? true }
        let width = extractor.width
        var result = [Float](repeating: 0, count: pairs.count * width)
        for i in 0..<pairs.count {
            let s = 2 * i * width, o = (2 * i + 1) * width
            for j in 0..<width { result[i * width + j] = features[s + j] - features[o + j] }
        }
        return result
    }

    /// The direction of one layer from the pairs' differences at it ([pairs][hidden] flattened).
    public static func direction(_ differences: [Float], pairs n: Int, hidden h: Int, method: SteeringMethod) -> [Float] {
        var mean = [Float](repeating: 0, count: h)
        for i in 0..<n { for j in 0..<h { mean[j] += differences[i * h + j] / Float(n) } }
        switch method {
        case .caa:
            return mean
        case .pca:
            // Power iteration on D^T D from the mean difference: the top right singular vector.
            var u = normalised(mean)
            for _ in 0..<200 {
                var next = [Float](repeating: 0, count: h)
                for i in 0..<n {
                    let row = differences[(i * h)..<((i + 1) * h)]
                    var dot: Float = 0
                    for (a, b) in zip(row, u) { dot += a * b }
                    for (j, a) in row.enumerated() { next[j] += dot * a }
                }
                let updated = normalised(next)
                let change = zip(updated, u).reduce(Float(0)) { $0 + abs($1.0 - $1.1) }
                u = updated
                if change < 1e-7 { break }
            }
            var projection: Float = 0
            for i in 0..<n { for j in 0..<h { projection += differences[i * h + j] * u[j] } }
            projection /= Float(n)
            return u.map { $0 * projection }  // a negative mean projection flips the sign
        }
    }

    static func normalised(_ v: [Float]) -> [Float] {
        let norm = v.reduce(0) { $0 + $1 * $1 }.squareRoot()
        return norm > 0 ? v.map { $0 / norm } : v
    }

    /// Directions per layer for each value present in `pairs`, from `differences(pairs)`.
    public func directions(_ pairs: [ContrastPair], differences: [Float], method: SteeringMethod) -> [SchwartzValue: [Int: [Float]]] {
        let h = loaded.model.configuration.hiddenSize
        let width = layers.count * h
        var result: [SchwartzValue: [Int: [Float]]] = [:]
        for value in SchwartzValue.allCases {
            let rows = pairs.indices.filter { pairs[$0].value == value }
            guard !rows.isEmpty else { continue }
            var perLayer: [Int: [Float]] = [:]
            for (k, layer) in layers.enumerated() {
                var d: [Float] = []
                d.reserveCapacity(rows.count * h)
                for r in rows { d += differences[(r * width + k * h)..<(r * width + (k + 1) * h)] }
                perLayer[layer] = Self.direction(d, pairs: rows.count, hidden: h, method: method)
            }
            result[value] = perLayer
        }
        return result
    }

    /// Toward a whole profile: per layer, the target-weighted mean of the values' directions,
    /// sum_v t_v d_v / sum_v |t_v| (a value the target does not weigh adds nothing; weights are
    /// normalised so the result is as long as one value's direction when they agree).
    public static func toward(_ target: ValueProfile, directions: [SchwartzValue: [Int: [Float]]]) throws -> [Int: [Float]] {
        let weighted = SchwartzValue.allCases.filter { target.vector[$0] != 0 }
        guard !weighted.isEmpty else { throw EvaluatorError.invalidParameter(field: "target", message: "\(target.name) weighs no value") }
        let missing = weighted.filter { directions[$0] == nil }
        guard missing.isEmpty else {
            throw EvaluatorError.invalidParameter(field: "target", message: "\(target.name) weighs \(missing.map(\.rawValue).joined(separator: ", ")), which the contrast pairs do not cover")
        }
        let total = weighted.reduce(0.0) { $0 + abs(target.vector[$1]) }
        var result: [Int: [Float]] = [:]
        for (layer, first) in directions[weighted[0]]! {
            var sum = [Float](repeating: 0, count: first.count)
            for v in weighted {
                let w = Float(target.vector[v] / total)
                for (j, x) in directions[v]![layer]!.enumerated() { sum[j] += w * x }
            }
            result[layer] = sum
        }
        return result
    }

    /// The default layer to apply a new vector at before a sweep has chosen one: 40% of the depth
    /// (layer 12 of SmolLM2's 30), where contrastive steering usually works best on small Llamas.
    public var defaultLayers: [Int] { [max(1, Int((Double(loaded.model.configuration.layerCount) * 0.4).rounded()))] }
}
