import Foundation
import ValueAlignCore
public import MLXEngine
import MLXNN
import LanguageModels
public import ValueSpace

/// Linear probes on a model's activations (issue 27, item 1): per layer, one logistic regression
/// per value and direction ("opposed" vs the rest, "supported" vs the rest) on response-mean pooled
/// hidden states. The layer for each value is chosen by cross-validated AUROC on the training side
/// only; the held-out side reports AUROC and accuracy at every layer (a table, not a choice).
public struct ValueProbes: Sendable {
    /// Probe weights of one layer: [20, hidden] (rows 0-9 opposed, 10-19 supported, in
    /// `SchwartzValue` order) and a bias [20], on features standardised by `mean` and `scale`.
    public struct Layer: Sendable {
        public var layer: Int
        public var weight: [Float]
        public var bias: [Float]
        public var mean: [Float]
        public var scale: [Float]
    }

    /// Figures of one layer.
    public struct LayerFigures: Sendable, Codable, Equatable {
        public var layer: Int
        /// Cross-validated AUROC on the training side, per value (nil: too few positives).
        public var cvOpposed: [Double?]
        public var cvSupported: [Double?]
        /// Held-out AUROC and accuracy (threshold 0.5 on the balanced probe) per value.
        public var testOpposed: [Double?]
        public var testSupported: [Double?]
        public var testAccuracyOpposed: [Double?]
    }

    public struct Report: Sendable, Codable {
        public var model: String
        public var trainingExamples: Int
        public var testExamples: Int
        /// Held-out positives per value.
        public var testOpposedPositives: [Int]
        public var testSupportedPositives: [Int]
        public var layers: [LayerFigures]
        /// Per value, the layer with the best cross-validated AUROC (nil: too few positives).
        public var bestOpposedLayer: [Int?]
        public var bestSupportedLayer: [Int?]
        /// Held-out AUROC at the chosen layer, and its 95% bootstrap interval (1,000 resamples of
        /// the held-out examples, seeded): with a handful of positives it is wide.
        public var chosenTestOpposed: [Double?]
        public var chosenTestOpposedInterval: [[Double]?]
        public var chosenTestSupported: [Double?]
        public var folds: Int
        public var seconds: Double
    }

    public struct Settings: Sendable, Codable, Equatable {
        public var steps = 300
        public var learningRate: Float = 0.01
        public var weightDecay: Float = 0.01
        public var folds = 4
        /// Fewer positives than this on a side: no AUROC (too noisy to rank layers by).
        public var minimumPositives = 5
        public init() {}
    }

    public var layers: [Layer]

    /// Area under the ROC curve of `scores` for `positive` labels (ties counted half); nil when
    /// one class is empty.
    public static func auroc(_ scores: [Float], _ positive: [Bool]) -> Double? {
        let pos = positive.filter { $0 }.count, neg = positive.count - pos
        guard pos > 0, neg > 0 else { return nil }
        let order = scores.indices.sorted { scores[$0] < scores[$1] }
        var rankSum = 0.0, i = 0
        while i < order.count {
            var j = i
            while j + 1 < order.count, scores[order[j + 1]] == scores[order[i]] { j += 1 }
            let rank = Double(i + j) / 2 + 1
            for k in i...j where positive[order[k]] { rankSum += rank }
            i = j + 1
        }
        return (rankSum - Double(pos * (pos + 1)) / 2) / Double(pos * neg)
    }

    /// Percentile bootstrap interval (95%) of the AUROC of `scores` for `positive`.
    static func aurocInterval(_ scores: [Float], _ positive: [Bool], resamples: Int = 1000, seed: UInt64 = 27) -> [Double]? {
        var g = SplitMix64(seed: seed)
        var values: [Double] = []
        for _ in 0..<resamples {
            let rows = (0..<scores.count).map { _ in Int(g.next() % UInt64(scores.count)) }
            if let a = auroc(rows.map { scores[$0] }, rows.map { positive[$0] }) { values.append(a) }
        }
        guard values.count >= resamples / 2 else { return nil }
        values.sort()
        return [values[Int(0.025 * Double(values.count))], values[min(values.count - 1, Int(0.975 * Double(values.count)))]]
    }

    /// Targets [n, 20]: opposed (label -1) then supported (+1), per value.
    static func targets(_ labels: [[Int]]) -> [Float] {
        labels.flatMap { l in l.map { $0 == -1 ? Float(1) : 0 } + l.map { $0 == 1 ? Float(1) : 0 } }
    }

    /// Trains the 20 probes of one layer on rows `x` [n, h] with labels; balanced class weights.
    static func fit(_ x: [Float], rows n: Int, hidden h: Int, labels: [[Int]], settings: Settings, seed: UInt64) throws -> Layer {
        var mean = [Float](repeating: 0, count: h), scale = [Float](repeating: 0, count: h)
        for r in 0..<n { for c in 0..<h { mean[c] += x[r * h + c] } }
        mean = mean.map { $0 / Float(n) }
        for r in 0..<n { for c in 0..<h { let d = x[r * h + c] - mean[c]; scale[c] += d * d } }
        scale = scale.map { max(($0 / Float(n)).squareRoot(), 1e-6) }
        var z = x
        for r in 0..<n { for c in 0..<h { z[r * h + c] = (x[r * h + c] - mean[c]) / scale[c] } }
        let features = try MLXArray(z, shape: [n, h])
        let t = targets(labels)
        let y = try MLXArray(t, shape: [n, 20])
        // Balanced weights: each class of each probe weighs half.
        var weights = [Float](repeating: 1, count: n * 20)
        for k in 0..<20 {
            let positives = (0..<n).filter { t[$0 * 20 + k] == 1 }.count
            guard positives > 0, positives < n else { continue }
            let wp = Float(n) / Float(2 * positives), wn = Float(n) / Float(2 * (n - positives))
            for r in 0..<n { weights[r * 20 + k] = t[r * 20 + k] == 1 ? wp : wn }
        }
        let w = try MLXArray(weights, shape: [n, 20])
        let probe = Linear(weight: try MLXRandom.normal([20, h], std: 0.01, key: MLXRandom.key(seed)), bias: try MLXArray.zeros([20]))
        let optimizer = AdamW(learningRate: .constant(settings.learningRate), weightDecay: settings.weightDecay)
        for _ in 0..<settings.steps {
            let (_, grads) = try MLXNN.valueAndGrad(probe) { m in
                let logits = try m(features)
                // Binary cross-entropy with logits, stable: max(z, 0) - z y + log(1 + exp(-|z|)).
                let loss = try maximum(logits, MLXArray(Float(0))) - logits * y + (MLXArray(Float(1)) + (-logits.abs()).exp()).log()
                return try (loss * w).mean()
            }
            try optimizer.update(probe, gradients: grads)
        }
        try eval(Array(probe.parameters().values))
        return Layer(layer: 0, weight: try probe.weight.asArray(Float.self), bias: try probe.bias!.asArray(Float.self), mean: mean, scale: scale)
    }

    /// Probe scores [n, 20] (logits) of rows `x` [n, h].
    static func scores(_ p: Layer, _ x: [Float], rows n: Int, hidden h: Int) -> [Float] {
        var out = [Float](repeating: 0, count: n * 20)
        for r in 0..<n {
            for k in 0..<20 {
                var s = p.bias[k]
                for c in 0..<h { s += p.weight[k * h + c] * (x[r * h + c] - p.mean[c]) / p.scale[c] }
                out[r * 20 + k] = s
            }
        }
        return out
    }

    static func aurocs(_ s: [Float], labels: [[Int]], offset: Int, minimumPositives: Int) -> [Double?] {
        (0..<10).map { v in
            let positive = labels.map { $0[v] == (offset == 0 ? -1 : 1) }
            guard positive.filter({ $0 }).count >= minimumPositives else { return nil }
            return auroc(labels.indices.map { s[$0 * 20 + offset + v] }, positive)
        }
    }

    /// Trains probes at every layer of `train` (features [n][layer][hidden], pooling already
    /// chosen) and measures them on `test`.
    public static func train(train: FeatureTable, trainLabels: [[Int]], test: FeatureTable, testLabels: [[Int]], model: String,
                             settings: Settings = Settings(), progress: (Int, Int) -> Void = { _, _ in }) throws -> (ValueProbes, Report) {
        let start = Date()
        let h = train.hiddenSize, pooling = train.poolings[0]
        var probes: [Layer] = [], figures: [LayerFigures] = []
        var testScores: [Int: [Float]] = [:]
        var order = Array(0..<train.count)
        var generator = SplitMix64(seed: 0xF01D)
        generator.shuffle(&order)
        var foldOf = [Int](repeating: 0, count: train.count)
        for (position, row) in order.enumerated() { foldOf[row] = position % settings.folds }
        for (index, layer) in train.layers.enumerated() {
            let x = try train.select(rows: Array(0..<train.count), layers: [layer], poolings: [pooling])
            // Cross-validation on the training side: the mean over folds of each fold's AUROC
            // (scores of different folds' probes are not on one scale, so they are not pooled),
            // rows assigned to folds in a seeded random order (not by position, which data order
            // could align with labels).
            var foldOpposed: [[Double]] = Array(repeating: [], count: 10), foldSupported: [[Double]] = Array(repeating: [], count: 10)
            for fold in 0..<settings.folds {
                let inFold = (0..<train.count).filter { foldOf[$0] == fold }
                let outFold = (0..<train.count).filter { foldOf[$0] != fold }
                let xt = outFold.flatMap { x[$0 * h ..< ($0 + 1) * h] }
                let p = try fit(Array(xt), rows: outFold.count, hidden: h, labels: outFold.map { trainLabels[$0] }, settings: settings, seed: UInt64(fold))
                let xv = Array(inFold.flatMap { x[$0 * h ..< ($0 + 1) * h] })
                let s = scores(p, xv, rows: inFold.count, hidden: h)
                let labels = inFold.map { trainLabels[$0] }
                for v in 0..<10 {
                    if let a = auroc(labels.indices.map { s[$0 * 20 + v] }, labels.map { $0[v] == -1 }) { foldOpposed[v].append(a) }
                    if let a = auroc(labels.indices.map { s[$0 * 20 + 10 + v] }, labels.map { $0[v] == 1 }) { foldSupported[v].append(a) }
                }
            }
            func cv(_ perFold: [[Double]], _ sign: Int) -> [Double?] {
                (0..<10).map { v in
                    let positives = trainLabels.filter { $0[v] == sign }.count
                    guard positives >= settings.minimumPositives, !perFold[v].isEmpty else { return nil }
                    return perFold[v].reduce(0, +) / Double(perFold[v].count)
                }
            }
            var final = try fit(x, rows: train.count, hidden: h, labels: trainLabels, settings: settings, seed: 99)
            final.layer = layer
            probes.append(final)
            let xs = try test.select(rows: Array(0..<test.count), layers: [layer], poolings: [pooling])
            let s = scores(final, xs, rows: test.count, hidden: h)
            testScores[layer] = s
            let accuracy: [Double?] = (0..<10).map { v in
                guard !testLabels.isEmpty else { return nil }
                let right = testLabels.indices.filter { (s[$0 * 20 + v] > 0) == (testLabels[$0][v] == -1) }.count
                return Double(right) / Double(testLabels.count)
            }
            figures.append(LayerFigures(
                layer: layer,
                cvOpposed: cv(foldOpposed, -1), cvSupported: cv(foldSupported, 1),
                testOpposed: aurocs(s, labels: testLabels, offset: 0, minimumPositives: 1),
                testSupported: aurocs(s, labels: testLabels, offset: 10, minimumPositives: 1),
                testAccuracyOpposed: accuracy))
            progress(index + 1, train.layers.count)
        }
        func best(_ key: KeyPath<LayerFigures, [Double?]>) -> [Int?] {
            (0..<10).map { v in figures.filter { $0[keyPath: key][v] != nil }.max { $0[keyPath: key][v]! < $1[keyPath: key][v]! }?.layer }
        }
        let bestOpposed = best(\.cvOpposed), bestSupported = best(\.cvSupported)
        func chosen(_ layers: [Int?], _ key: KeyPath<LayerFigures, [Double?]>) -> [Double?] {
            (0..<10).map { v in layers[v].flatMap { l in figures.first { $0.layer == l }?[keyPath: key][v] } }
        }
        let report = Report(
            model: model, trainingExamples: train.count, testExamples: test.count,
            testOpposedPositives: (0..<10).map { v in testLabels.filter { $0[v] == -1 }.count },
            testSupportedPositives: (0..<10).map { v in testLabels.filter { $0[v] == 1 }.count },
            layers: figures, bestOpposedLayer: bestOpposed, bestSupportedLayer: bestSupported,
            chosenTestOpposed: chosen(bestOpposed, \.testOpposed),
            chosenTestOpposedInterval: (0..<10).map { v in
                bestOpposed[v].flatMap { l in testScores[l].flatMap { s in
                    aurocInterval(testLabels.indices.map { s[$0 * 20 + v] }, testLabels.map { $0[v] == -1 })
                } }
            },
            chosenTestSupported: chosen(bestSupported, \.testSupported),
            folds: settings.folds, seconds: Date().timeIntervalSince(start))
        return (ValueProbes(layers: probes), report)
    }

    // MARK: files

    /// Writes the probes as safetensors: `layer.<L>.weight` [20, hidden], `.bias`, `.mean`, `.scale`.
    public func save(to path: String, modelFingerprint: String, report: Report) throws {
        var arrays: [String: MLXArray] = [:]
        for p in layers {
            let h = p.mean.count
            arrays["layer.\(p.layer).weight"] = try MLXArray(p.weight, shape: [20, h])
            arrays["layer.\(p.layer).bias"] = try MLXArray(p.bias, shape: [20])
            arrays["layer.\(p.layer).mean"] = try MLXArray(p.mean, shape: [h])
            arrays["layer.\(p.layer).scale"] = try MLXArray(p.scale, shape: [h])
        }
        let best = report.bestOpposedLayer.map { $0.map(String.init) ?? "-" }.joined(separator: ",")
        try ArrayIO.saveSafetensors(path, arrays: arrays, metadata: [
            "format": "valuealign-probes-1", "model": modelFingerprint, "rows": "opposed x10 then supported x10, SchwartzValue order",
            "pooling": HiddenPooling.meanResponse.rawValue, "best_opposed_layer": best,
        ])
    }

    /// Reads probes written by `save`; an error names the file and what is wrong (another model,
    /// a missing tensor, a wrong width).
    public static func load(_ path: String, modelFingerprint: String, hiddenSize: Int) throws -> ValueProbes {
        try loadWithMetadata(path, modelFingerprint: modelFingerprint, hiddenSize: hiddenSize).probes
    }

    /// `load`, and the file's metadata (the chosen layers, for `ProbeMonitor`), from one read.
    static func loadWithMetadata(_ path: String, modelFingerprint: String, hiddenSize: Int) throws -> (probes: ValueProbes, metadata: [String: String]) {
        let (arrays, metadata) = try ArrayIO.loadSafetensors(path)
        guard metadata["format"] == "valuealign-probes-1" else { throw EvaluatorError.invalidWeights(path: path, message: "not a probes file (format '\(metadata["format"] ?? "none")')") }
        guard metadata["model"] == modelFingerprint else {
            throw EvaluatorError.invalidWeights(path: path, message: "made for another model (\(metadata["model"] ?? "?")); this model is \(modelFingerprint)")
        }
        let layerIds = Set(arrays.keys.compactMap { key -> Int? in
            let parts = key.split(separator: ".")
            return parts.count == 3 && parts[0] == "layer" ? Int(parts[1]) : nil
        }).sorted()
        var layers: [Layer] = []
        for l in layerIds {
            func get(_ name: String, _ shape: [Int]) throws -> [Float] {
                guard let a = arrays["layer.\(l).\(name)"] else { throw EvaluatorError.invalidWeights(path: path, message: "missing layer.\(l).\(name)") }
                guard a.shape == shape else { throw EvaluatorError.invalidWeights(path: path, message: "layer.\(l).\(name) has shape \(a.shape), expected \(shape)") }
                return try a.asType(.float32).asArray(Float.self)
            }
            layers.append(Layer(layer: l, weight: try get("weight", [20, hiddenSize]), bias: try get("bias", [20]),
                                mean: try get("mean", [hiddenSize]), scale: try get("scale", [hiddenSize])))
        }
        guard !layers.isEmpty else { throw EvaluatorError.invalidWeights(path: path, message: "no probe layers") }
        return (ValueProbes(layers: layers), metadata)
    }

    /// Held-out AUROC per layer of these probes on `table` (its layers must include the probes').
    public func evaluate(_ table: FeatureTable, labels: [[Int]]) throws -> [LayerFigures] {
        try layers.map { p in
            let x = try table.select(rows: Array(0..<table.count), layers: [p.layer], poolings: [table.poolings[0]])
            let s = Self.scores(p, x, rows: table.count, hidden: table.hiddenSize)
            return LayerFigures(layer: p.layer, cvOpposed: [], cvSupported: [],
                                testOpposed: Self.aurocs(s, labels: labels, offset: 0, minimumPositives: 1),
                                testSupported: Self.aurocs(s, labels: labels, offset: 10, minimumPositives: 1), testAccuracyOpposed: [])
        }
    }
}

/// `valuealign probe train`: features of the FULCRA labelled dialogues at every layer (cached by
/// `FeatureStore`), probes trained on the training side and measured on the held-out side, the
/// probes file, summary.json and report.html.
public struct ProbeJob {
    public struct Parameters: Sendable {
        public var modelPath: String
        public var labelledPath = EvaluatorData.defaultLabelledPath
        public var layers: [Int]
        public var outputDirectory: String
        public var cacheDirectory: String? = ".build-eval-cache"
        public var batchSize = 16
        public var settings = ValueProbes.Settings()
        public init(modelPath: String, layers: [Int], outputDirectory: String) {
            self.modelPath = modelPath
            self.layers = layers
            self.outputDirectory = outputDirectory
        }
    }

    let p: Parameters
    public init(_ parameters: Parameters) { p = parameters }

    /// Features of `examples` at the job's layers (response-mean pooling), through the cache.
    public static func table(_ name: String, _ examples: [FULCRAExample], modelPath: String, layers: [Int], batchSize: Int, cacheDirectory: String?,
                             progress: @escaping (String, Int, Int) -> Void) throws -> FeatureTable {
        let fingerprint = try ModelFingerprint.of(path: modelPath)
        var base: BaseModel?
        return try FeatureStore(directory: cacheDirectory).table(
            name: "probe-" + name, pairs: examples.map(\.pair), layers: layers, poolings: [.meanResponse], encoding: PairEncoding(), batchSize: batchSize,
            modelFingerprint: fingerprint, model: {
                if let base { return base }
                base = try BaseModel.load(modelPath, layers: layers.max())
                return base!
            }) { done, _ in
                progress("features of \(name)", done, examples.count)
                return true
            }
    }

    public func run(progress: @escaping (String, Int, Int) -> Void) throws -> ValueProbes.Report {
        let (examples, _) = try FULCRADataset.load(p.labelledPath)
        let train = examples.filter { !DatasetSplit.isHeldOut($0.prompt, fraction: 0.15, seed: 0) }
        let test = examples.filter { DatasetSplit.isHeldOut($0.prompt, fraction: 0.15, seed: 0) }
        guard !train.isEmpty, !test.isEmpty else { throw EvaluatorError.data("\(p.labelledPath): no examples on one side of the held-out split") }
        let trainTable = try Self.table("train", train, modelPath: p.modelPath, layers: p.layers, batchSize: p.batchSize, cacheDirectory: p.cacheDirectory, progress: progress)
        let testTable = try Self.table("heldout", test, modelPath: p.modelPath, layers: p.layers, batchSize: p.batchSize, cacheDirectory: p.cacheDirectory, progress: progress)
        let fingerprint = try ModelFingerprint.of(path: p.modelPath)
        let (probes, report) = try ValueProbes.train(train: trainTable, trainLabels: train.map(\.labels), test: testTable, testLabels: test.map(\.labels),
                                                     model: URL(fileURLWithPath: p.modelPath).lastPathComponent, settings: p.settings) { done, total in
            progress("probes by layer", done, total)
        }
        try FileManager.default.createDirectory(atPath: p.outputDirectory, withIntermediateDirectories: true)
        try probes.save(to: p.outputDirectory + "/probes.safetensors", modelFingerprint: fingerprint, report: report)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try encoder.encode(report).write(to: URL(fileURLWithPath: p.outputDirectory + "/summary.json"), options: .atomic)
        try Data(ProbeReportHTML.render(report).utf8).write(to: URL(fileURLWithPath: p.outputDirectory + "/report.html"), options: .atomic)
        return report
    }
}

/// The probes' report.html: held-out AUROC by layer per value (table and line plot), the layer
/// chosen by cross-validation, and the chance baseline.
enum ProbeReportHTML {
    static func render(_ r: ValueProbes.Report) -> String {
        func f(_ x: Double?) -> String { x.map { String(format: "%.3f", $0) } ?? "–" }
        let values = SchwartzValue.allCases
        var h = """
        <!doctype html><html lang="en"><head><meta charset="utf-8"><title>Value probes: \(r.model)</title>
        <style>body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1200px;padding:0 1em;color:#222}
        table{border-collapse:collapse;font-size:.85em}td,th{border-bottom:1px solid #ddd;padding:.2em .45em;text-align:right}
        th:first-child,td:first-child{text-align:left}.best{font-weight:bold;background:#e6f4ea}small{color:#666}</style></head><body>
        <h1>Value probes on \(r.model)</h1>
        <p>Linear probes on response-mean pooled hidden states, one per value for "opposed" (label −1 vs the rest);
        trained on \(r.trainingExamples) FULCRA dialogues, measured on \(r.testExamples) held-out ones (split by prompt).
        The layer per value is chosen by \(r.folds)-fold cross-validated AUROC on the training side (bold); the held-out
        AUROC is reported at every layer. Chance: AUROC 0.5. Goal (issue 27): ≥ 0.90 for opposed on security, conformity,
        benevolence and universalism at the chosen layer.</p>
        <h2>Held-out AUROC, opposed, chosen layer</h2><table><tr><th>value</th><th>held-out positives</th><th>chosen layer</th><th>AUROC [95% bootstrap interval]</th></tr>
        """
        for (i, v) in values.enumerated() {
            let interval = (r.chosenTestOpposedInterval[i].map { " [\(f($0[0])), \(f($0[1]))]" } ?? "")
                + (r.testOpposedPositives[i] < 5 ? " <small>(too few positives to judge)</small>" : "")
            h += "<tr><td>\(v.rawValue)</td><td>\(r.testOpposedPositives[i])</td><td>\(r.bestOpposedLayer[i].map(String.init) ?? "–")</td><td>\(f(r.chosenTestOpposed[i]))\(interval)</td></tr>"
        }
        h += "</table>"
        // Line plot: held-out AUROC by layer, one line per value.
        let layers = r.layers.map(\.layer)
        if let lo = layers.min(), let hi = layers.max(), hi > lo {
            let width = 760.0, height = 300.0, left = 40.0, bottom = 24.0
            func x(_ l: Int) -> Double { left + (width - left - 10) * Double(l - lo) / Double(hi - lo) }
            func y(_ a: Double) -> Double { (height - bottom) - (height - bottom - 10) * (Swift.max(0.4, a) - 0.4) / 0.6 }
            let colors = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"]
            h += "<h2>Held-out AUROC by layer (opposed)</h2><p><small>Values with at least 5 held-out positives; below 0.4 drawn at 0.4.</small></p><svg width=\"\(Int(width) + 160)\" height=\"\(Int(height))\" role=\"img\">"
            for a in stride(from: 0.4, through: 1.0, by: 0.1) {
                h += "<line x1=\"\(left)\" x2=\"\(width - 10)\" y1=\"\(y(a))\" y2=\"\(y(a))\" stroke=\"#eee\"/><text x=\"4\" y=\"\(y(a) + 4)\" font-size=\"10\">\(String(format: "%.1f", a))</text>"
            }
            for (i, v) in values.enumerated() where r.testOpposedPositives[i] >= 5 {
                let points = r.layers.compactMap { l in l.testOpposed[i].map { "\(x(l.layer)),\(y($0))" } }
                guard points.count > 1 else { continue }
                h += "<polyline fill=\"none\" stroke=\"\(colors[i])\" stroke-width=\"1.5\" points=\"\(points.joined(separator: " "))\"/>"
                h += "<text x=\"\(width + 5)\" y=\"\(20 + i * 16)\" font-size=\"11\" fill=\"\(colors[i])\">\(v.rawValue)</text>"
            }
            for l in layers where l % 5 == 0 || l == lo || l == hi { h += "<text x=\"\(x(l) - 4)\" y=\"\(height - 6)\" font-size=\"10\">\(l)</text>" }
            h += "</svg>"
        }
        h += "<h2>By layer</h2><table><tr><th>layer</th>" + values.map { "<th>\($0.rawValue)<br><small>cv / held-out</small></th>" }.joined() + "</tr>"
        for l in r.layers {
            h += "<tr><td>\(l.layer)</td>"
            for i in values.indices {
                let best = r.bestOpposedLayer[i] == l.layer
                h += "<td\(best ? " class=best" : "")>\(f(l.cvOpposed[i])) / \(f(l.testOpposed[i]))</td>"
            }
            h += "</tr>"
        }
        h += "</table><p><small>\(String(format: "%.1f", r.seconds)) s of probe training (features cached); summary.json has the supported-side figures too.</small></p></body></html>\n"
        return h
    }
}
