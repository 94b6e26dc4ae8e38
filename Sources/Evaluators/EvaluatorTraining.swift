import Foundation
public import LanguageModels
public import MLXEngine
public import ValueSpace

/// Trains the evaluator's heads: extracts (or reads cached) features of the FULCRA data with the
/// base model, trains on the training side of the split and returns heads plus configuration.
///
/// Deterministic: the same data, parameters and seed give the same weights, bit for bit, on the
/// same machine and build (features are extracted in a fixed order and batching; head training
/// uses its own seeded generator).
public struct EvaluatorTraining {
    public struct Parameters: Sendable {
        public var modelPath: String
        public var labelledPath = EvaluatorData.defaultLabelledPath
        public var scoredPaths = EvaluatorData.defaultScoredPaths
        public var name = "smollm2-probe"
        public var layers = EvaluatorTraining.defaultLayers
        public var poolings = EvaluatorTraining.defaultPoolings
        public var encoding = PairEncoding()
        public var heads = EvaluatorTraining.defaultHeads
        /// Weight of a scored answer's soft target relative to a labelled dialogue's label.
        public var scoredAnswerWeight: Float = EvaluatorTraining.defaultScoredAnswerWeight
        public var heldOutFraction = 0.15
        public var heldOutSeed: UInt64 = 0
        /// When set, this fraction of the training side (by prompt, seed 1) is kept out of
        /// training and reported on: the split used to choose the design.
        public var validationFraction: Double?
        /// Pairs per forward pass during extraction (part of the cache key).
        public var batchSize = 16
        /// Feature cache folder; nil = no cache.
        public var cacheDirectory: String? = ".build-eval-cache"
        /// The command line, recorded in the weights.
        public var command = ""
        public init(modelPath: String) { self.modelPath = modelPath }
    }

    // The design chosen by `valuealign evaluator sweep` (numbers in Resources/README.md).
    public static let defaultLayers = [12]
    public static let defaultPoolings: [HiddenPooling] = [.meanResponse, .last]
    public static let defaultScoredAnswerWeight: Float = 0.5
    public static var defaultHeads: HeadTrainingParameters { HeadTrainingParameters() }

    /// A stage of a run, for progress displays: `done` of `total` units (pairs, epochs).
    public struct Progress: Sendable {
        public var stage: String
        public var done: Int
        public var total: Int
        public var detail: String
    }

    /// What a run produced.
    public struct Result {
        public var heads: ValueHeads
        public var configuration: EvaluatorConfiguration
        /// Metrics on the validation part, when `validationFraction` was set.
        public var validation: EvaluatorReport?
    }

    public let parameters: Parameters
    public init(_ parameters: Parameters) { self.parameters = parameters }

    public func run(progress: @escaping (Progress) -> Bool = { _ in true }) throws -> Result {
        let p = parameters
        let data = try EvaluatorData.load(labelled: p.labelledPath, scored: p.scoredPaths)
        let tables = try FeatureTables.load(data: data, modelPath: p.modelPath, layers: p.layers, poolings: p.poolings, encoding: p.encoding,
                                            batchSize: p.batchSize, cacheDirectory: p.cacheDirectory, progress: progress)
        let split = DataSplit(data: data, heldOutFraction: p.heldOutFraction, heldOutSeed: p.heldOutSeed, validationFraction: p.validationFraction)
        let set = try tables.trainingSet(labelledRows: split.labelledTrain, scoredRows: split.scoredTrain, layers: p.layers, poolings: p.poolings,
                                         scoredAnswerWeight: p.scoredAnswerWeight)
        var heads = p.heads
        heads.seed = p.heads.seed
        let trained = try HeadTrainer(heads).train(set) { epoch, loss in
            progress(Progress(stage: "training heads", done: epoch, total: heads.epochs, detail: String(format: "loss %.4f", loss)))
        }
        var files = data.files
        files[0].trainingExamples = split.labelledTrain.count
        // Scored files share one count: the split is by prompt over their union.
        for i in files.indices.dropFirst() { files[i].trainingExamples = split.scoredTrain.count }
        let record = TrainingRecord(command: p.command, seed: p.heads.seed, heads: heads, scoredAnswerWeight: p.scoredAnswerWeight,
                                    heldOutFraction: p.heldOutFraction, heldOutSeed: p.heldOutSeed, data: files)
        let configuration = EvaluatorConfiguration(name: p.name, baseModel: tables.baseModel, layers: p.layers, poolings: p.poolings,
                                                   encoding: p.encoding, training: record)
        var validation: EvaluatorReport?
        if p.validationFraction != nil {
            validation = try tables.report(heads: trained, name: "\(p.name) (validation)", labelledRows: split.labelledEvaluation,
                                           scoredRows: split.scoredEvaluation, layers: p.layers, poolings: p.poolings)
        }
        return Result(heads: trained, configuration: configuration, validation: validation)
    }
}

/// Row indices of each side of the split.
public struct DataSplit: Sendable {
    public var labelledTrain: [Int] = []
    /// Held-out rows, or the validation rows when a validation fraction is given.
    public var labelledEvaluation: [Int] = []
    public var scoredTrain: [Int] = []
    public var scoredEvaluation: [Int] = []

    public init(data: EvaluatorData, heldOutFraction: Double, heldOutSeed: UInt64, validationFraction: Double?) {
        func side(_ prompt: String) -> Bool? {  // true = train, false = evaluation, nil = unused
            let heldOut = DatasetSplit.isHeldOut(prompt, fraction: heldOutFraction, seed: heldOutSeed)
            guard let validationFraction else { return !heldOut }
            if heldOut { return nil }
            return !DatasetSplit.isHeldOut(prompt, fraction: validationFraction, seed: heldOutSeed &+ 1)
        }
        for (i, e) in data.labelled.enumerated() {
            switch side(e.prompt) {
            case true?: labelledTrain.append(i)
            case false?: labelledEvaluation.append(i)
            case nil: break
            }
        }
        for (i, a) in data.scored.enumerated() {
            switch side(a.prompt) {
            case true?: scoredTrain.append(i)
            case false?: scoredEvaluation.append(i)
            case nil: break
            }
        }
    }
}

/// Feature tables of the labelled and the scored data (every row, so one cache serves any split).
public struct FeatureTables: Sendable {
    public var data: EvaluatorData
    public var labelled: FeatureTable
    public var scored: FeatureTable
    public var baseModel: BaseModelIdentity

    public static func load(
        data: EvaluatorData, modelPath: String, layers: [Int], poolings: [HiddenPooling], encoding: PairEncoding, batchSize: Int,
        cacheDirectory: String?, progress: @escaping (EvaluatorTraining.Progress) -> Bool
    ) throws -> FeatureTables {
        let fingerprint = try ModelFingerprint.of(path: modelPath)
        let checkpointConfiguration = try Checkpoint.read(modelPath).configuration
        let store = FeatureStore(directory: cacheDirectory)
        var base: BaseModel?
        let deepest = layers.max() ?? 0
        func model() throws -> BaseModel {
            if let base { return base }
            _ = progress(.init(stage: "loading \(URL(fileURLWithPath: modelPath).lastPathComponent) (\(deepest) layers)", done: 0, total: 1, detail: ""))
            base = try BaseModel.load(modelPath, layers: deepest)
            return base!
        }
        func table(_ name: String, _ pairs: [ValuePair]) throws -> FeatureTable {
            try store.table(name: name, pairs: pairs, layers: layers, poolings: poolings, encoding: encoding, batchSize: batchSize,
                            modelFingerprint: fingerprint, model: model) { done, tokens in
                progress(.init(stage: "features of \(name)", done: done, total: pairs.count, detail: "\(tokens) tokens"))
            }
        }
        let labelled = try table("labelled", data.labelled.map(\.pair))
        let scored = try table("scored", data.scored.map(\.pair))
        let identity = BaseModelIdentity(
            fileName: URL(fileURLWithPath: modelPath).lastPathComponent, fingerprint: fingerprint, architecture: checkpointConfiguration.architecture,
            hiddenSize: checkpointConfiguration.hiddenSize, layerCount: checkpointConfiguration.layerCount)
        return FeatureTables(data: data, labelled: labelled, scored: scored, baseModel: identity)
    }

    /// Labelled rows with hard targets (weight 1) and scored rows with soft targets.
    public func trainingSet(labelledRows: [Int], scoredRows: [Int], layers: [Int], poolings: [HiddenPooling], scoredAnswerWeight: Float) throws -> HeadTrainingSet {
        let width = layers.count * poolings.count * labelled.hiddenSize
        var set = HeadTrainingSet(width: width)
        let lf = try labelled.select(rows: labelledRows, layers: layers, poolings: poolings)
        for (k, row) in labelledRows.enumerated() {
            try set.append(features: lf[k * width..<(k + 1) * width], targets: data.labelled[row].labels.flatMap { HeadTrainingSet.hardTarget($0) },
                           weights: [Float](repeating: 1, count: 10))
        }
        if scoredAnswerWeight > 0 {
            let sf = try scored.select(rows: scoredRows, layers: layers, poolings: poolings)
            for (k, row) in scoredRows.enumerated() {
                try set.append(features: sf[k * width..<(k + 1) * width], targets: data.scored[row].scores.components.flatMap { HeadTrainingSet.softTarget($0) },
                               weights: [Float](repeating: scoredAnswerWeight, count: 10))
            }
        }
        return set
    }

    /// Assessments of `rows` of a table by `heads`.
    public func assess(_ heads: ValueHeads, table: FeatureTable, rows: [Int], layers: [Int], poolings: [HiddenPooling]) throws -> [ValueAssessment] {
        guard !rows.isEmpty else { return [] }
        let features = try table.select(rows: rows, layers: layers, poolings: poolings)
        return try TrainedValueEvaluator.assessments(logits: heads(MLXArray(features, shape: [rows.count, features.count / rows.count])))
    }

    /// The metrics of `heads` on the given rows.
    public func report(heads: ValueHeads, name: String, labelledRows: [Int], scoredRows: [Int], layers: [Int], poolings: [HiddenPooling]) throws -> EvaluatorReport {
        let predictions = try assess(heads, table: labelled, rows: labelledRows, layers: layers, poolings: poolings)
        let scoredPredictions = try assess(heads, table: scored, rows: scoredRows, layers: layers, poolings: poolings)
        return try EvaluatorReport.compute(
            evaluator: name, labels: labelledRows.map { data.labelled[$0].labels }, predictions: predictions,
            scores: scoredRows.map { data.scored[$0].scores }, scoredPredictions: scoredPredictions)
    }
}
