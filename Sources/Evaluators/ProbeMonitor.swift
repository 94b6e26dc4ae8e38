import Foundation
public import LanguageModels
public import MLXEngine
public import ValueSpace

/// Value probes as a live monitor (issue 27, item 5): reads the answer's own activations while a
/// local model generates it, with no extra forward pass, and scores them with the probes of
/// `valuealign probe train`.
///
/// For each value it uses the probes of the layer cross-validation chose for that value (the
/// file's `best_opposed_layer`; a value without one is not monitored). Per answer it keeps the
/// running mean of the RMS-normalised states of the generated tokens at those layers, the
/// features the probes were trained on (response-mean pooling), and reads per value
/// p(supported) - p(opposed) in [-1, 1] from the running mean: a value vector a policy can
/// threshold like the evaluator's. The last generated token has no state (no step is fed it), so
/// an answer of n tokens is read over its first n-1.
public final class ProbeMonitor: ActivationObserver, @unchecked Sendable {
    public let valueLayers: [Int?]
    let probes: [Int: ValueProbes.Layer]
    let normWeight: [Float]
    let eps: Float
    let hidden: Int
    /// Per prompt of the current generation: layer -> running sum, and tokens read.
    private var sums: [[Int: [Float]]] = []
    private var counts: [Int] = []

    public var layers: Set<Int> { Set(probes.keys) }

    /// The values read (those with a chosen layer).
    public var monitoredValues: [SchwartzValue] { SchwartzValue.allCases.filter { valueLayers[$0.index] != nil } }

    public init(probes: ValueProbes, valueLayers: [Int?], normWeight: [Float], eps: Float) throws {
        guard valueLayers.count == 10 else { throw EvaluatorError.invalidParameter(field: "valueLayers", message: "need one entry per value") }
        var used: [Int: ValueProbes.Layer] = [:]
        for l in valueLayers.compactMap({ $0 }) {
            guard let p = probes.layers.first(where: { $0.layer == l }) else {
                throw EvaluatorError.invalidParameter(field: "probes", message: "no probes at layer \(l), which a value is to be read at")
            }
            used[l] = p
        }
        guard !used.isEmpty else { throw EvaluatorError.invalidParameter(field: "probes", message: "no value has a chosen layer to monitor") }
        self.probes = used
        self.valueLayers = valueLayers
        self.normWeight = normWeight
        self.eps = eps
        hidden = normWeight.count
    }

    /// Loads a probes file for `model`, read from `modelPath` (the file's fingerprint and the
    /// width are checked, as `probe test` checks them). Probes read the base model's states; with
    /// adapters or steering on the model they read the changed model's.
    public static func load(_ path: String, model: any CausalLanguageModel, modelPath: String) throws -> ProbeMonitor {
        let c = model.configuration
        let (probes, metadata) = try ValueProbes.loadWithMetadata(path, modelFingerprint: try ModelFingerprint.of(path: modelPath), hiddenSize: c.hiddenSize)
        let text = metadata["best_opposed_layer"] ?? ""
        let layers = text.split(separator: ",").map { Int($0) }
        guard layers.count == 10 else { throw EvaluatorError.invalidWeights(path: path, message: "no best_opposed_layer list of 10 entries in the metadata") }
        guard let norm = model.parameters()["model.norm.weight"] else {
            throw EvaluatorError.invalidParameter(field: "model", message: "the model has no final norm (model.norm.weight) to normalise states with")
        }
        return try ProbeMonitor(probes: probes, valueLayers: layers, normWeight: try norm.asType(.float32).asArray(Float.self), eps: c.rmsNormEps)
    }

    /// The last step's states, read at the next step (or at `reading`): by then the sampler has
    /// evaluated the step, so reading them costs a copy, not an extra evaluation that would split
    /// the step's graph at every probed layer.
    private var pending: (prompts: [Int], states: [Int: MLXArray])?

    public func begin(prompts: Int) {
        sums = Array(repeating: [:], count: prompts)
        counts = Array(repeating: 0, count: prompts)
        pending = nil
    }

    public func observe(prompts: [Int], states: [Int: MLXArray]) throws {
        for layer in probes.keys where states[layer] == nil {
            throw EvaluatorError.invalidParameter(field: "states", message: "layer \(layer) was not captured")
        }
        try flush()
        pending = (prompts, states)
    }

    private func flush() throws {
        guard let (prompts, states) = pending else { return }
        pending = nil
        for layer in probes.keys {
            let s = states[layer]!  // checked in `observe`
            let rows = try (s.dtype == .float32 ? s : s.asType(.float32)).asArray(Float.self)
            guard rows.count == prompts.count * hidden else {
                throw EvaluatorError.invalidParameter(field: "states", message: "layer \(layer) has \(rows.count) values for \(prompts.count) rows of \(hidden)")
            }
            for (r, index) in prompts.enumerated() {
                let x = rows[(r * hidden)..<((r + 1) * hidden)]
                var ms: Float = 0
                for v in x { ms += v * v }
                let inv = 1 / (ms / Float(hidden) + eps).squareRoot()
                var sum = sums[index][layer] ?? [Float](repeating: 0, count: hidden)
                for (c, v) in x.enumerated() { sum[c] += v * inv * normWeight[c] }
                sums[index][layer] = sum
            }
        }
        for index in prompts { counts[index] += 1 }
    }

    /// p(supported) - p(opposed) per value from the running means (0 for values not monitored);
    /// nil before any token was read.
    public func reading(prompt index: Int) throws -> [Double]? {
        try flush()
        guard index < counts.count, counts[index] > 0 else { return nil }
        let n = Float(counts[index])
        return Self.read(means: sums[index].mapValues { $0.map { $0 / n } }, probes: probes, valueLayers: valueLayers)
    }

    /// The reading of features pooled elsewhere (layer -> response-mean normalised state, as
    /// `FeatureExtractor` pools them), e.g. over answers already written.
    public func reading(means: [Int: [Float]]) -> [Double] {
        Self.read(means: means, probes: probes, valueLayers: valueLayers)
    }

    /// The reading of pooled features (layer -> mean normalised state).
    static func read(means: [Int: [Float]], probes: [Int: ValueProbes.Layer], valueLayers: [Int?]) -> [Double] {
        var scores: [Int: [Float]] = [:]
        for (layer, p) in probes { if let x = means[layer] { scores[layer] = ValueProbes.scores(p, x, rows: 1, hidden: x.count) } }
        return (0..<10).map { v in
            guard let l = valueLayers[v], let s = scores[l] else { return 0 }
            func sigmoid(_ z: Float) -> Double { 1 / (1 + exp(-Double(z))) }
            return sigmoid(s[10 + v]) - sigmoid(s[v])
        }
    }
}
