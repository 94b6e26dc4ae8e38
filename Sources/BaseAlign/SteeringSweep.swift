public import Foundation
public import LanguageModels
import ValueAlignCore
public import ValueSpace

/// "Which layer, what strength": a steering vector applied at each layer x multiplier of a grid,
/// each setting measured as `align` measures a model (greedy answers to held-out prompts scored
/// by the evaluator, perplexity of held-out text), against the unsteered model on the same
/// prompts. Settings are chosen on the validation split; `test` then reads the test split once
/// for the chosen setting, as `align` reports a run (issue 27, items 3 and 6).
///
/// Files in `directory`: `sweep.json` (the settings; a folder holding another sweep is refused),
/// `cells/unsteered/` and `cells/L<layer>_x<multiplier>/` (each a `HeldOutEvaluation` folder,
/// resumable: a finished cell is read back, not rerun), `report.json`, `report.md`,
/// `report.html` (heat maps), `recommended.safetensors`; with `test`, `test/before`,
/// `test/after` and the align-style `test/report.*`.
public struct SteeringSweep {
    public struct Parameters: Sendable, Codable, Equatable {
        /// First layers of the settings tried; each setting applies the vector at `band` layers
        /// from there (1: that layer alone), with the multiplier at every one of them.
        public var layers: [Int]
        public var band = 1
        public var multipliers: [Float]
        /// The prompts and text of each cell (default: the value prompts' validation split).
        public var sets: EvaluationSets
        public var target: ValueProfile
        public var maxNewTokens = 64
        public var batchSize = 16
        /// A setting whose perplexity ratio on the held-out text exceeds this is not recommended.
        public var maxPerplexityRatio = 1.10
        /// A prompt moved the wrong way when its effect (below) is below minus this.
        public var wrongWayTolerance = 0.05
        public var bootstrap = BootstrapParameters()

        public init(layers: [Int], multipliers: [Float], sets: EvaluationSets, target: ValueProfile) {
            self.layers = layers
            self.multipliers = multipliers
            self.sets = sets
            self.target = target
        }

        enum CodingKeys: String, CodingKey {
            case layers, band, multipliers, sets, target, maxNewTokens, batchSize, maxPerplexityRatio, wrongWayTolerance, bootstrap
        }

        /// Sweeps written before bands existed read as band 1.
        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            layers = try c.decode([Int].self, forKey: .layers)
            band = try c.decodeIfPresent(Int.self, forKey: .band) ?? 1
            multipliers = try c.decode([Float].self, forKey: .multipliers)
            sets = try c.decode(EvaluationSets.self, forKey: .sets)
            target = try c.decode(ValueProfile.self, forKey: .target)
            maxNewTokens = try c.decode(Int.self, forKey: .maxNewTokens)
            batchSize = try c.decode(Int.self, forKey: .batchSize)
            maxPerplexityRatio = try c.decode(Double.self, forKey: .maxPerplexityRatio)
            wrongWayTolerance = try c.decode(Double.self, forKey: .wrongWayTolerance)
            bootstrap = try c.decode(BootstrapParameters.self, forKey: .bootstrap)
        }
    }

    /// One setting's figures, each paired by prompt against the unsteered model.
    public struct Cell: Sendable, Codable, Equatable {
        public var layer: Int
        public var multiplier: Float
        /// The intended effect: for a value's vector, the mean gain of that value's component;
        /// for a profile's vector, the mean fall of the weighted (unmasked) distance to the target.
        public var effect: Estimate
        /// BaseAlign's distance to the target (masked, per answer) and its paired change.
        public var distance: Estimate
        public var distanceChange: Estimate
        public var weightedDistance: Estimate
        /// Perplexity of the held-out text, steered / unsteered, with its window bootstrap.
        public var perplexityRatio: Estimate?
        /// Share of prompts whose effect was below -wrongWayTolerance.
        public var wrongWayShare: Double
        public var wrongWay: Int
        public var answers: Int
        public var meanAnswerTokens: Double
        public var refusalShare: Double
    }

    public struct Report: Sendable, Codable {
        public var vector: String
        public var vectorName: String
        public var method: String
        public var model: String
        public var evaluator: String
        public var effectMeaning: String
        public var parameters: Parameters
        public var unsteeredDistance: Estimate
        public var unsteeredWeightedDistance: Estimate
        public var unsteeredPerplexity: Double?
        public var unsteeredMeanAnswerTokens: Double
        public var unsteeredRefusalShare: Double
        public var cells: [Cell]
        public var recommended: Cell?
        /// The trivial baseline of the recommended setting: a random direction of the same length
        /// at the same layer and multiplier (what any perturbation of the model does to the
        /// figures: greedy answers change, and the evaluator's per-answer reading is noisy).
        public var control: Cell?
        public var recommendation: String
        public var seconds: Double
    }

    public enum Stage: Sendable { case cell(name: String, index: Int, total: Int, inner: HeldOutEvaluation.Stage) }

    public let parameters: Parameters
    public let directory: URL
    public let vector: SteeringVector
    public let vectorPath: String

    public init(parameters: Parameters, directory: URL, vector: SteeringVector, vectorPath: String) throws {
        guard !parameters.layers.isEmpty, !parameters.multipliers.isEmpty else {
            throw AlignError.invalidConfiguration(field: "layers", message: "a sweep needs at least one layer and one multiplier")
        }
        guard parameters.band >= 1 else { throw AlignError.invalidConfiguration(field: "band", message: "must be at least 1") }
        for l in parameters.layers.flatMap({ Self.band($0, parameters.band) }) where vector.directions[l] == nil {
            throw AlignError.invalidConfiguration(field: "layers", message: "\(vectorPath) has no direction at layer \(l) (it has \(vector.directions.keys.sorted().map(String.init).joined(separator: ",")))")
        }
        guard parameters.multipliers.allSatisfy(\.isFinite) else { throw AlignError.invalidConfiguration(field: "multipliers", message: "must be finite") }
        self.parameters = parameters
        self.directory = directory
        self.vector = vector
        self.vectorPath = vectorPath
    }

    /// The value a vector named after one steers (nil for a profile's vector).
    var steeredValue: SchwartzValue? { SchwartzValue(rawValue: vector.name) }

    var effectMeaning: String {
        if let v = steeredValue { return "mean gain of \(v.rawValue) (steered - unsteered, per prompt)" }
        return "mean fall of the weighted distance to \(parameters.target.name) (unsteered - steered, per prompt)"
    }

    /// Per answer: how far it moved the intended way (see `Cell.effect`).
    func effect(before: ValueVector, after: ValueVector) -> Double {
        Self.effect(of: vector, target: parameters.target, before: before, after: after)
    }

    /// The layers of the setting that starts at `layer`.
    static func band(_ layer: Int, _ width: Int) -> [Int] { Array(layer..<(layer + width)) }

    /// "12" or "8-12".
    static func layerLabel(_ layer: Int, _ width: Int) -> String { width == 1 ? "\(layer)" : "\(layer)-\(layer + width - 1)" }

    static func cellName(layer: Int, band: Int = 1, multiplier: Float) -> String { "L\(layerLabel(layer, band))_x\(multiplier)" }

    struct Settings: Codable, Equatable {
        var vector: SteeringVector.Identity
        var parameters: Parameters
        var model: String
        var evaluator: String
    }

    /// Runs (or resumes) every cell and writes the report.
    public func run(backend: LocalChatBackend, evaluator: any ValueEvaluator,
                    progress: @escaping @Sendable (Stage) -> Void = { _ in }) async throws -> Report {
        let start = Date()
        let p = parameters
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let settings = Settings(vector: vector.identity, parameters: p, model: backend.modelName, evaluator: evaluator.name)
        let settingsURL = directory.appendingPathComponent("sweep.json")
        if FileManager.default.fileExists(atPath: settingsURL.path) {
            let old = try? AlignmentFiles.readJSON(Settings.self, from: settingsURL)
            guard old == settings else {
                throw AlignError.runDirectory(path: directory.path, message: "holds a sweep of another vector, model, evaluator or grid (sweep.json); use another --out")
            }
        } else {
            try AlignmentFiles.writeJSON(settings, to: settingsURL)
        }
        var evaluation = HeldOutEvaluation(sets: p.sets, target: p.target, maxNewTokens: p.maxNewTokens, batchSize: p.batchSize, bootstrap: p.bootstrap)
        evaluation.evaluatorBatchSize = 32
        let total = 1 + p.layers.count * p.multipliers.count
        let steeringVector = vector
        func measure(_ name: String, index: Int, layer: Int?, multiplier: Float, vector: SteeringVector? = nil) async throws -> (HeldOutSummary, [HeldOutAnswer]) {
            let folder = directory.appendingPathComponent("cells").appendingPathComponent(name)
            if FileManager.default.fileExists(atPath: folder.appendingPathComponent("summary.json").path),
               let done = try? HeldOutEvaluation.load(folder) { return done }
            let steering = try layer.map { try (vector ?? steeringVector).applied(at: Self.band($0, p.band)) }
            let summary = try await Self.steered(backend, by: steering, multiplier: multiplier, path: vectorPath) {
                try await evaluation.run(label: name, backend: backend, evaluator: evaluator, directory: folder) {
                    progress(.cell(name: name, index: index, total: total, inner: $0))
                }
            }
            return (summary, try HeldOutEvaluation.load(folder).1)
        }
        let (base, baseAnswers) = try await measure("unsteered", index: 0, layer: nil, multiplier: 0)
        var cells: [Cell] = []
        var index = 1
        for layer in p.layers {
            for m in p.multipliers {
                let (s, answers) = try await measure(Self.cellName(layer: layer, band: p.band, multiplier: m), index: index, layer: layer, multiplier: m)
                cells.append(try cell(layer: layer, multiplier: m, base: (base, baseAnswers), steered: (s, answers)))
                index += 1
            }
        }
        let eligible = cells.filter { ($0.perplexityRatio?.value ?? 1) <= p.maxPerplexityRatio && $0.effect.value > 0 }
        let best = eligible.max { a, b in a.effect.value != b.effect.value ? a.effect.value < b.effect.value : abs(a.multiplier) > abs(b.multiplier) }
        let rule = String(format: "the largest effect among settings whose perplexity ratio is at most %.2f", p.maxPerplexityRatio)
        let recommendation = best.map { String(format: "layer %@ x%@: effect %+.3f [%+.3f, %+.3f], perplexity x%.3f, %.0f%% of prompts moved the wrong way (%@)",
                                                 Self.layerLabel($0.layer, p.band), String($0.multiplier), $0.effect.value, $0.effect.lower, $0.effect.upper,
                                                 $0.perplexityRatio?.value ?? .nan, $0.wrongWayShare * 100, rule) }
            ?? "none: no setting moved the intended way within the perplexity limit (\(rule))"
        var control: Cell?
        if let best {
            let name = "control_" + Self.cellName(layer: best.layer, band: p.band, multiplier: best.multiplier)
            let (s, answers) = try await measure(name, index: total, layer: best.layer, multiplier: best.multiplier,
                                                 vector: try randomControl(layers: Self.band(best.layer, p.band)))
            control = try cell(layer: best.layer, multiplier: best.multiplier, base: (base, baseAnswers), steered: (s, answers))
        }
        let report = Report(
            vector: vectorPath, vectorName: vector.name, method: vector.method, model: backend.modelName, evaluator: evaluator.name,
            effectMeaning: effectMeaning, parameters: p, unsteeredDistance: base.distance,
            unsteeredWeightedDistance: base.weightedDistance ?? base.distance, unsteeredPerplexity: base.perplexity,
            unsteeredMeanAnswerTokens: base.meanAnswerTokens, unsteeredRefusalShare: Self.refusalShare(baseAnswers),
            cells: cells, recommended: best, control: control, recommendation: recommendation, seconds: Date().timeIntervalSince(start))
        try AlignmentFiles.writeJSON(report, to: directory.appendingPathComponent("report.json"))
        try Data(Self.markdown(report).utf8).write(to: directory.appendingPathComponent("report.md"))
        try Data(Self.html(report).utf8).write(to: directory.appendingPathComponent("report.html"))
        if let best {
            var chosen = try vector.applied(at: Self.band(best.layer, p.band))
            chosen.multiplier = best.multiplier
            chosen.notes["recommended_by"] = "steer sweep (\(p.sets.split ?? "all") split): " + recommendation
            try chosen.save(to: directory.appendingPathComponent("recommended.safetensors").path)
        }
        return report
    }

    /// Runs `body` with the backend's model steered by `vector` (nil: unsteered) and always
    /// leaves it unsteered afterwards.
    static func steered<T>(_ backend: LocalChatBackend, by vector: SteeringVector?, multiplier: Float, path: String,
                           _ body: () async throws -> T) async throws -> T {
        try await backend.perform { loaded, _ in
            loaded.model.steering = try vector?.steering(for: loaded.model.configuration, multiplier: multiplier, path: path)
        }
        do {
            let result = try await body()
            try await backend.perform { loaded, _ in loaded.model.steering = nil }
            return result
        } catch {
            try? await backend.perform { loaded, _ in loaded.model.steering = nil }
            throw error
        }
    }

    /// Seeded random directions as long as the vector's at each of `layers`, applied there.
    func randomControl(layers: [Int]) throws -> SteeringVector {
        var control = vector
        control.directions = [:]
        for layer in layers {
            var generator = SplitMix64(seed: 27 &+ UInt64(layer))
            var d = (0..<vector.hiddenSize).map { _ in Float(generator.normal()) }
            let norm = d.reduce(0) { $0 + $1 * $1 }.squareRoot()
            d = d.map { $0 / norm * vector.norm(at: layer) }
            control.directions[layer] = d
        }
        control.layers = layers
        control.name = "random control"
        return control
    }

    static func refusalShare(_ answers: [HeldOutAnswer]) -> Double {
        answers.isEmpty ? 0 : Double(answers.filter(\.refusal).count) / Double(answers.count)
    }

    func cell(layer: Int, multiplier: Float, base: (HeldOutSummary, [HeldOutAnswer]), steered: (HeldOutSummary, [HeldOutAnswer])) throws -> Cell {
        let pairs = HeldOutAnswer.paired(before: base.1, after: steered.1).filter { HeldOutEvaluation.profiledSets.contains($0.before.set) }
        guard !pairs.isEmpty, pairs.count == base.1.filter({ HeldOutEvaluation.profiledSets.contains($0.set) }).count else {
            throw AlignError.data("the unsteered and steered answers of \(Self.cellName(layer: layer, band: parameters.band, multiplier: multiplier)) do not pair up")
        }
        let boot = parameters.bootstrap
        let effects = pairs.map { effect(before: $0.0.vector, after: $0.1.vector) }
        let wrong = effects.filter { $0 < -parameters.wrongWayTolerance }.count
        var ratio: Estimate?
        if let w0 = base.0.perplexityWindows, let w1 = steered.0.perplexityWindows {
            ratio = try ValueAggregation.perplexityRatio(before: w0, after: w1, bootstrap: boot)
        }
        return Cell(
            layer: layer, multiplier: multiplier, effect: try ValueAggregation.mean(effects, bootstrap: boot),
            distance: steered.0.distance,
            distanceChange: try ValueAggregation.distanceChange(before: pairs.map(\.0.vector), after: pairs.map(\.1.vector),
                                                                to: parameters.target.vector, metric: .basealign, bootstrap: boot),
            weightedDistance: steered.0.weightedDistance ?? steered.0.distance, perplexityRatio: ratio,
            wrongWayShare: Double(wrong) / Double(pairs.count), wrongWay: wrong, answers: pairs.count,
            meanAnswerTokens: steered.0.meanAnswerTokens, refusalShare: Self.refusalShare(steered.1))
    }

    /// The chosen setting against the unsteered model on `sets` (the test split, read once),
    /// measured and reported as `align` reports a training run, so that steering and training sit
    /// in one comparison table (`valuealign compare`). `gold` measures beside the evaluator.
    public static func test(
        vector: SteeringVector, vectorPath: String, layers: [Int], multiplier: Float, sets: EvaluationSets, target: ValueProfile, maxNewTokens: Int,
        batchSize: Int, bootstrap: BootstrapParameters, seed: UInt64, wrongWayTolerance: Double = 0.05, directory: URL, backend: LocalChatBackend, evaluator: any ValueEvaluator,
        gold: (any ValueEvaluator)?, progress: @escaping @Sendable (String, HeldOutEvaluation.Stage) -> Void = { _, _ in }
    ) async throws -> AlignmentReport {
        let start = Date()
        var evaluation = HeldOutEvaluation(sets: sets, target: target, maxNewTokens: maxNewTokens, batchSize: batchSize, bootstrap: bootstrap)
        evaluation.gold = gold
        func measure(_ label: String, _ steering: SteeringVector?) async throws -> (HeldOutSummary, [HeldOutAnswer]) {
            let folder = directory.appendingPathComponent(label)
            let summary = try await steered(backend, by: steering, multiplier: multiplier, path: vectorPath) {
                try await evaluation.run(label: label, backend: backend, evaluator: evaluator, directory: folder) { progress(label, $0) }
            }
            return (summary, try HeldOutEvaluation.load(folder).1)
        }
        let before = try await measure("before", nil)
        let after = try await measure("after", try vector.applied(at: layers))
        let report = try AlignmentReport(
            target: target, bootstrap: bootstrap, seed: seed, before: before.0, after: after.0, beforeAnswers: before.1, afterAnswers: after.1,
            training: .init(method: "steer(\(vector.name), \(vector.method), layer \(layerLabel(layers[0], layers.count)) x\(multiplier))", reward: "none (no training)",
                            rounds: 0, steps: 0, examples: 0, seconds: 0, tokens: 0, tokensPerSecond: 0, stopReason: nil),
            wallSeconds: Date().timeIntervalSince(start))
        try report.write(to: directory)
        // How many prompts moved the wrong way, as the sweep counts them (beside the report).
        let effects = try Self.pairedEffects(vector: vector, target: target, before: before.1, after: after.1)
        let wrong = effects.filter { $0 < -wrongWayTolerance }.count
        let share = effects.isEmpty ? 0 : Double(wrong) / Double(effects.count)
        try AlignmentFiles.writeJSON(TestWrongWay(wrongWay: wrong, answers: effects.count, share: share, tolerance: wrongWayTolerance),
                                     to: directory.appendingPathComponent("steering.json"))
        let line = String(format: "- **prompts moved the wrong way by the steering**: %.1f%% (%d of %d value and harm prompts; effect below -%.2f)\n",
                          share * 100, wrong, effects.count, wrongWayTolerance)
        let md = directory.appendingPathComponent("report.md")
        if var text = try? String(contentsOf: md, encoding: .utf8) {
            text += "\n" + line
            try Data(text.utf8).write(to: md)
        }
        return report
    }

    /// The wrong-way count of a test measurement (`steering.json`).
    public struct TestWrongWay: Codable, Sendable {
        public var wrongWay: Int
        public var answers: Int
        public var share: Double
        public var tolerance: Double
    }

    /// Per prompt of the profiled sets, paired by set and id: the effect as `Cell.effect` defines it.
    static func pairedEffects(vector: SteeringVector, target: ValueProfile, before: [HeldOutAnswer], after: [HeldOutAnswer]) throws -> [Double] {
        HeldOutAnswer.paired(before: before, after: after).filter { HeldOutEvaluation.profiledSets.contains($0.before.set) }
            .map { effect(of: vector, target: target, before: $0.before.vector, after: $0.after.vector) }
    }

    /// For a value's vector, the gain of that value; for a profile's, the fall of the weighted
    /// distance to `target`.
    static func effect(of vector: SteeringVector, target: ValueProfile, before: ValueVector, after: ValueVector) -> Double {
        if let v = SchwartzValue(rawValue: vector.name) { return after[v] - before[v] }
        return ValueDistance.weighted.distance(before, to: target.vector) - ValueDistance.weighted.distance(after, to: target.vector)
    }

    // MARK: reports

    static func markdown(_ r: Report) -> String {
        func f(_ e: Estimate) -> String { String(format: "%+.3f [%+.3f, %+.3f]", e.value, e.lower, e.upper) }
        var s = """
        # Steering sweep: \(r.vectorName) (\(r.method)) on \(r.model)

        - **vector**: \(r.vector)
        - **prompts**: \(r.parameters.sets.values) (split \(r.parameters.sets.split ?? "all")\(r.parameters.sets.limit.map { ", first \($0)" } ?? "")), \(r.parameters.maxNewTokens) new tokens, greedy
        - **evaluator**: \(r.evaluator); target \(r.parameters.target.name)
        - **effect**: \(r.effectMeaning)
        - **unsteered**: BaseAlign distance \(String(format: "%.3f", r.unsteeredDistance.value)), weighted \(String(format: "%.3f", r.unsteeredWeightedDistance.value)), perplexity \(r.unsteeredPerplexity.map { String(format: "%.2f", $0) } ?? "-"), \(String(format: "%.0f", r.unsteeredMeanAnswerTokens)) tokens per answer, refusals \(String(format: "%.0f%%", r.unsteeredRefusalShare * 100))
        - **recommended**: \(r.recommendation)

        | layer | multiplier | effect [95% CI] | BaseAlign distance change | perplexity × | wrong way | refusals | answer tokens |
        |---:|---:|---|---|---:|---:|---:|---:|

        """
        for c in r.cells {
            let mark = (r.recommended.map { $0.layer == c.layer && $0.multiplier == c.multiplier } ?? false) ? " **←**" : ""
            s += "| \(layerLabel(c.layer, r.parameters.band)) | \(c.multiplier) | \(f(c.effect))\(mark) | \(f(c.distanceChange)) | \(c.perplexityRatio.map { String(format: "%.3f", $0.value) } ?? "-") | "
                + String(format: "%.0f%% (%d/%d)", c.wrongWayShare * 100, c.wrongWay, c.answers)
                + " | \(String(format: "%.0f%%", c.refusalShare * 100)) | \(String(format: "%.0f", c.meanAnswerTokens)) |\n"
        }
        if let c = r.control {
            s += "| \(layerLabel(c.layer, r.parameters.band)) | \(c.multiplier) | \(f(c.effect)) *random direction, same length (control)* | \(f(c.distanceChange)) | \(c.perplexityRatio.map { String(format: "%.3f", $0.value) } ?? "-") | "
                + String(format: "%.0f%% (%d/%d)", c.wrongWayShare * 100, c.wrongWay, c.answers)
                + " | \(String(format: "%.0f%%", c.refusalShare * 100)) | \(String(format: "%.0f", c.meanAnswerTokens)) |\n"
        }
        s += "\nEffects and changes are paired by prompt against the unsteered model; intervals are 95% percentile bootstraps. The control row applies a seeded random direction as long as the vector at the recommended layer and multiplier: its effect and wrong-way share are what any perturbation of that size does (answers change, and per-answer readings are noisy). The evaluator that judges the effect had no part in making the vector (it comes from the contrast pairs' written stances), but it is one instrument: confirm a chosen setting on the test split with the gold evaluator (steer sweep --test).\n"
        return s
    }

    static func html(_ r: Report) -> String {
        let layers = r.parameters.layers, multipliers = r.parameters.multipliers
        func cell(_ l: Int, _ m: Float) -> Cell? { r.cells.first { $0.layer == l && $0.multiplier == m } }
        // Diverging colour: green for the intended way, red against it; `scale` is the value at full colour.
        func colour(_ x: Double, scale: Double) -> String {
            let t = max(-1, min(1, x / max(scale, 1e-9)))
            let (r0, g0, b0) = t >= 0 ? (255 - 155 * t, 255 - 55 * t, 255 - 155 * t) : (255 + 35 * t, 255 + 155 * t, 255 + 155 * t)
            return String(format: "rgb(%.0f,%.0f,%.0f)", r0, g0, b0)
        }
        let maxEffect = r.cells.map { abs($0.effect.value) }.max() ?? 1
        func grid(_ title: String, _ note: String, _ text: (Cell) -> String, _ score: (Cell) -> Double, scale: Double) -> String {
            var h = "<h2>\(HTML.escape(title))</h2><p><small>\(HTML.escape(note))</small></p><table><tr><th>layer \\ multiplier</th>"
                + multipliers.map { "<th>\($0)</th>" }.joined() + "</tr>"
            for l in layers {
                h += "<tr><th>\(layerLabel(l, r.parameters.band))</th>"
                for m in multipliers {
                    guard let c = cell(l, m) else { h += "<td>–</td>"; continue }
                    let chosen = r.recommended.map { $0.layer == l && $0.multiplier == m } ?? false
                    h += "<td style=\"background:\(colour(score(c), scale: scale))\"\(chosen ? " class=chosen" : "")>\(text(c))</td>"
                }
                h += "</tr>"
            }
            return h + "</table>"
        }
        var h = """
        <!doctype html><html lang="en"><head><meta charset="utf-8"><title>Steering sweep: \(HTML.escape(r.vectorName))</title>
        <style>body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1100px;padding:0 1em;color:#222}
        table{border-collapse:collapse;font-size:.85em;margin-bottom:1em}td,th{border:1px solid #ddd;padding:.3em .6em;text-align:right}
        .chosen{outline:3px solid #222;font-weight:bold}small{color:#666}</style></head><body>
        <h1>Steering sweep: \(HTML.escape(r.vectorName)) (\(HTML.escape(r.method))) on \(HTML.escape(r.model))</h1>
        <p>Each cell: the vector added after the given layer times the multiplier, \(r.cells.first?.answers ?? 0) prompts of
        \(HTML.escape(r.parameters.sets.values)) (split \(HTML.escape(r.parameters.sets.split ?? "all"))) answered greedily and scored by
        \(HTML.escape(r.evaluator)), paired against the unsteered model. <b>Recommended</b> (outlined): \(HTML.escape(r.recommendation)).</p>
        """
        h += grid("Effect", "Effect = \(r.effectMeaning). Green: the intended way.", { String(format: "%+.3f", $0.effect.value) }, { $0.effect.value }, scale: maxEffect)
        h += grid("Perplexity ratio of held-out text", String(format: "Steered / unsteered. Red above 1 (at full red: x%.2f, the limit for a recommendation).", r.parameters.maxPerplexityRatio),
                  { $0.perplexityRatio.map { String(format: "x%.3f", $0.value) } ?? "–" }, { 1 - ($0.perplexityRatio?.value ?? 1) }, scale: r.parameters.maxPerplexityRatio - 1)
        h += grid("Prompts moved the wrong way", String(format: "Share of prompts whose effect was below -%.2f.", r.parameters.wrongWayTolerance),
                  { String(format: "%.0f%%", $0.wrongWayShare * 100) }, { -$0.wrongWayShare }, scale: 0.5)
        h += grid("BaseAlign distance change", "Paired mean change of the masked distance to \(r.parameters.target.name) (negative: closer). Green: closer.",
                  { String(format: "%+.3f", $0.distanceChange.value) }, { -$0.distanceChange.value }, scale: max(0.05, r.cells.map { abs($0.distanceChange.value) }.max() ?? 1))
        if let c = r.control {
            h += String(format: "<h2>Control</h2><p>A seeded random direction of the same length at the recommended layer %@ x%@: effect %+.3f [%+.3f, %+.3f], perplexity x%.3f, %.0f%% of prompts moved the wrong way. That is the size of change any perturbation brings; the recommended setting's figures mean something only beyond it.</p>",
                        layerLabel(c.layer, r.parameters.band), String(c.multiplier), c.effect.value, c.effect.lower, c.effect.upper, c.perplexityRatio?.value ?? .nan, c.wrongWayShare * 100)
        }
        h += "<p><small>\(String(format: "%.0f", r.seconds)) s. report.md has every figure with its interval.</small></p></body></html>\n"
        return h
    }
}
