import Foundation
public import LanguageModels
import MLXEngine
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
        /// Folds of the cross-validation whose out-of-fold logits set the decision offsets
        /// (`OffsetCalibration`); 0 = no offsets.
        public var calibrationFolds = EvaluatorTraining.defaultCalibrationFolds
        /// Floor on out-of-fold opposed recall when setting the offsets.
        public var minimumOpposedRecall = EvaluatorTraining.defaultMinimumOpposedRecall
        /// The project's own labelled training files (`ProjectTrainingData`); [] = FULCRA only.
        public var projectLabelledPaths = ProjectTrainingData.defaultLabelledPaths
        /// The refusal set (its train split trains; its other splits are excluded); nil = none,
        /// and no refusal head.
        public var refusalPath: String? = ProjectTrainingData.defaultRefusalPath
        /// Files whose prompts are never trained on.
        public var evaluationPaths = ProjectTrainingData.defaultEvaluationPaths
        /// Request-only prompt files (their train split teaches the input check).
        public var requestPaths = ProjectTrainingData.defaultRequestPaths
        /// Labelled model answers for the refusal head only.
        public var modelAnswerPaths = ProjectTrainingData.defaultModelAnswerPaths
        /// How the refusal head is trained.
        public var refusalHead = EvaluatorTraining.defaultRefusalHead
        /// Request files (the prompt sets' format) whose train split trains the request head only.
        public var requestHeadPaths = ProjectTrainingData.defaultRequestHeadPaths
        /// How the request head is trained; nil = no request head (one is trained whenever the
        /// project data has requests).
        public var requestHead: HeadTrainingParameters? = EvaluatorTraining.defaultRequestHead
        /// Pairs per forward pass during extraction (part of the cache key).
        public var batchSize = 16
        /// Feature cache folder; nil = no cache.
        public var cacheDirectory: String? = ".build-eval-cache"
        /// The command line, recorded in the weights.
        public var command = ""
        public init(modelPath: String) { self.modelPath = modelPath }
    }

    // The design chosen by `valuealign evaluator sweep` (measurements in docs/evaluator.md): the
    // response-averaged hidden state after layer 16 of 30 (so the evaluator runs half the model),
    // a 512-unit hidden layer, strong weight decay, no class weights (the decision offsets do
    // that job), scored answers weighted like labelled dialogues, and offsets that keep
    // out-of-fold opposed recall at 0.7 or more. The shipped weights are these defaults, seed 0.
    public static let defaultLayers = [16]
    public static let defaultPoolings: [HiddenPooling] = [.meanResponse]
    public static let defaultScoredAnswerWeight: Float = 1
    public static let defaultMinimumOpposedRecall = 0.7
    public static let defaultCalibrationFolds = 5
    public static var defaultHeads: HeadTrainingParameters {
        var h = HeadTrainingParameters()
        h.hiddenUnits = 512
        h.weightDecay = 1
        h.classWeightPower = 0
        return h
    }
    /// The refusal head: a linear probe (refusal / partial / compliance) on the same features,
    /// balanced classes (compliance outnumbers the rest). Chosen on the refusal set's validation
    /// split (docs/evaluator.md).
    public static var defaultRefusalHead: HeadTrainingParameters {
        var h = HeadTrainingParameters()
        h.hiddenUnits = 0
        h.epochs = 60
        h.weightDecay = 0.05
        h.classWeightPower = 1
        return h
    }

    /// The request head: harmful / (unused) / harmless of a request read alone, on the same
    /// features; one hidden layer of 128 units, strong weight decay, balanced classes. Chosen on
    /// the validation prompts (docs/evaluator.md, "Refusals cost reward"): a linear probe read
    /// fewer benign look-alikes as harmless at the same harmful recall. The middle class has no
    /// training examples (its probability stays near zero); `ValueAssessment.requestHarm` is p(harmful).
    public static var defaultRequestHead: HeadTrainingParameters {
        var h = HeadTrainingParameters()
        h.hiddenUnits = 128
        h.epochs = 40
        h.weightDecay = 1
        h.classWeightPower = 1
        return h
    }

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
        /// The refusal head, when a refusal set was given.
        public var refusalHead: ValueHeads?
        /// The request head, when the project data has requests and `requestHead` is set.
        public var requestHead: ValueHeads?
        /// The project's data as read (counts of what was dropped).
        public var project: ProjectTrainingData?
    }

    public let parameters: Parameters
    public init(_ parameters: Parameters) { self.parameters = parameters }

    public func run(progress: @escaping (Progress) -> Bool = { _ in true }) throws -> Result {
        let p = parameters
        let data = try EvaluatorData.load(labelled: p.labelledPath, scored: p.scoredPaths)
        let project = p.projectLabelledPaths.isEmpty && p.refusalPath == nil && p.requestPaths.isEmpty ? nil
            : try ProjectTrainingData.load(labelled: p.projectLabelledPaths, refusals: p.refusalPath, evaluation: p.evaluationPaths, requests: p.requestPaths,
                                             modelAnswers: p.refusalPath == nil ? [] : p.modelAnswerPaths,
                                             requestHeadOnly: p.requestHead == nil ? [] : p.requestHeadPaths)
        let tables = try FeatureTables.load(data: data, project: project, modelPath: p.modelPath, layers: p.layers, poolings: p.poolings, encoding: p.encoding,
                                            batchSize: p.batchSize, cacheDirectory: p.cacheDirectory, withRequests: p.requestHead != nil, progress: progress)
        let split = DataSplit(data: data, heldOutFraction: p.heldOutFraction, heldOutSeed: p.heldOutSeed, validationFraction: p.validationFraction)
        let extra = try tables.projectValueSet(layers: p.layers, poolings: p.poolings)
        var set = try tables.trainingSet(labelledRows: split.labelledTrain, scoredRows: split.scoredTrain, layers: p.layers, poolings: p.poolings,
                                         scoredAnswerWeight: p.scoredAnswerWeight)
        try set.append(contentsOf: extra)
        let heads = p.heads
        var offsets = [Float](repeating: 0, count: 30)
        if p.calibrationFolds >= 2 {
            let oof = try tables.outOfFoldLogits(
                labelledRows: split.labelledTrain, scoredRows: split.scoredTrain, folds: p.calibrationFolds, foldSeed: p.heldOutSeed &+ 1,
                layers: p.layers, poolings: p.poolings, heads: heads, scoredAnswerWeight: p.scoredAnswerWeight, alwaysTrain: extra) { fold in
                progress(Progress(stage: "calibrating decision offsets", done: fold, total: p.calibrationFolds, detail: "folds"))
            }
            offsets = try OffsetCalibration.fit(logits: oof.labelled, labels: split.labelledTrain.map { data.labelled[$0].labels },
                                                minimumOpposedRecall: p.minimumOpposedRecall)
        }
        let trained = try HeadTrainer(heads).train(set) { epoch, loss in
            progress(Progress(stage: "training heads", done: epoch, total: heads.epochs, detail: String(format: "loss %.4f", loss)))
        }
        try trained.setClassOffsets(offsets)
        var refusalHead: ValueHeads?
        if p.refusalPath != nil {
            let refusalSet = try tables.projectRefusalSet(layers: p.layers, poolings: p.poolings)
            refusalHead = try HeadTrainer(p.refusalHead).train(refusalSet) { epoch, loss in
                progress(Progress(stage: "training the refusal head", done: epoch, total: p.refusalHead.epochs, detail: String(format: "loss %.4f", loss)))
            }
        }
        var requestHead: ValueHeads?
        if let parameters = p.requestHead, let requests = project?.requestTraining, !requests.isEmpty {
            let requestSet = try tables.requestSet(layers: p.layers, poolings: p.poolings)
            requestHead = try HeadTrainer(parameters).train(requestSet) { epoch, loss in
                progress(Progress(stage: "training the request head", done: epoch, total: parameters.epochs, detail: String(format: "loss %.4f", loss)))
            }
        }
        var files = data.files
        files[0].trainingExamples = split.labelledTrain.count
        // Scored files share one count: the split is by prompt over their union.
        for i in files.indices.dropFirst() { files[i].trainingExamples = split.scoredTrain.count }
        var record = TrainingRecord(command: p.command, seed: p.heads.seed, heads: heads, scoredAnswerWeight: p.scoredAnswerWeight,
                                    heldOutFraction: p.heldOutFraction, heldOutSeed: p.heldOutSeed, data: files)
        record.calibrationFolds = p.calibrationFolds
        record.minimumOpposedRecall = p.minimumOpposedRecall
        if let project {
            record.data += project.files
            record.projectDataRule = "issue 24: project-written answers teach their labels; their requests and the prompt sets' harmful requests teach opposed labels only, benign requests no connection; harmful compliances oppose benevolence; refusals train only the refusal head (ProjectTrainingData)"
        }
        if refusalHead != nil { record.refusalHead = p.refusalHead }
        if requestHead != nil { record.requestHead = p.requestHead }
        let configuration = EvaluatorConfiguration(name: p.name, baseModel: tables.baseModel, layers: p.layers, poolings: p.poolings,
                                                   encoding: p.encoding, training: record)
        var validation: EvaluatorReport?
        if p.validationFraction != nil {
            validation = try tables.report(heads: trained, name: "\(p.name) (validation)", labelledRows: split.labelledEvaluation,
                                           scoredRows: split.scoredEvaluation, layers: p.layers, poolings: p.poolings)
        }
        return Result(heads: trained, configuration: configuration, validation: validation, refusalHead: refusalHead, requestHead: requestHead, project: project)
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

/// Feature tables of the labelled and the scored data (every row, so one cache serves any split),
/// and of the project's own training data when given.
public struct FeatureTables: Sendable {
    public var data: EvaluatorData
    public var labelled: FeatureTable
    public var scored: FeatureTable
    public var baseModel: BaseModelIdentity
    public var project: ProjectTrainingData?
    /// The distinct pairs of `project` (value examples and refusal answers share rows).
    public var projectPairs: [ValuePair] = []
    public var projectTable: FeatureTable?
    /// The request head's requests, each read alone (a row of `requestTable`).
    public var requestTable: FeatureTable?

    public static func load(
        data: EvaluatorData, project: ProjectTrainingData? = nil, modelPath: String, layers: [Int], poolings: [HiddenPooling], encoding: PairEncoding, batchSize: Int,
        cacheDirectory: String?, withRequests: Bool = false, progress: @escaping (EvaluatorTraining.Progress) -> Bool
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
        var tables = FeatureTables(data: data, labelled: labelled, scored: scored, baseModel: identity)
        if let project {
            var seen = Set<ValuePair>()
            tables.projectPairs = (project.valueExamples.map(\.pair) + project.refusalTraining.map(\.pair)).filter { seen.insert($0).inserted }
            tables.project = project
            tables.projectTable = try table("project", tables.projectPairs)
            if withRequests, !project.requestTraining.isEmpty {
                tables.requestTable = try table("requests", project.requestTraining.map { ValuePair(prompt: "", response: $0.request) })
            }
        }
        return tables
    }

    /// The project's value examples (empty when there is no project data).
    public func projectValueSet(layers: [Int], poolings: [HiddenPooling]) throws -> HeadTrainingSet {
        try projectSet(project?.valueExamples.map { ($0.pair, $0.targets, $0.weights) } ?? [], groups: ValueHeads.valueCount, layers: layers, poolings: poolings)
    }

    /// The refusal head's examples: one group, classes in `RefusalLabel` order.
    public func projectRefusalSet(layers: [Int], poolings: [HiddenPooling]) throws -> HeadTrainingSet {
        let examples = (project?.refusalTraining ?? []).map { e in
            (e.pair, RefusalLabel.allCases.map { Float($0 == e.label ? 1 : 0) }, [Float(1)])
        }
        return try projectSet(examples, groups: 1, layers: layers, poolings: poolings)
    }

    /// The request head's examples: one group, classes harmful / (unused) / harmless.
    public func requestSet(layers: [Int], poolings: [HiddenPooling]) throws -> HeadTrainingSet {
        let requests = project?.requestTraining ?? []
        return try rowSet(requestTable, rows: Array(requests.indices), targets: requests.map { $0.harmful ? [1, 0, 0] : [0, 0, 1] },
                          weights: requests.map { _ in [1] }, groups: 1, layers: layers, poolings: poolings)
    }

    /// A training set of project pairs (each a row of `projectTable`) with their targets and weights.
    func projectSet(_ examples: [(pair: ValuePair, targets: [Float], weights: [Float])], groups: Int, layers: [Int], poolings: [HiddenPooling]) throws -> HeadTrainingSet {
        let index = Dictionary(projectPairs.enumerated().map { ($1, $0) }, uniquingKeysWith: { a, _ in a })
        return try rowSet(projectTable, rows: examples.map { index[$0.pair]! }, targets: examples.map(\.targets), weights: examples.map(\.weights),
                          groups: groups, layers: layers, poolings: poolings)
    }

    /// A training set of `rows` of `table` with their targets and weights (empty without a table or rows).
    func rowSet(_ table: FeatureTable?, rows: [Int], targets: [[Float]], weights: [[Float]], groups: Int, layers: [Int], poolings: [HiddenPooling]) throws -> HeadTrainingSet {
        let width = layers.count * poolings.count * labelled.hiddenSize
        var set = HeadTrainingSet(width: width, groups: groups)
        guard let table, !rows.isEmpty else { return set }
        let f = try table.select(rows: rows, layers: layers, poolings: poolings)
        for k in rows.indices {
            try set.append(features: f[k * width..<(k + 1) * width], targets: targets[k], weights: weights[k])
        }
        return set
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

    /// Head logits [rows.count * 30] for `rows` of a table.
    public func logits(_ heads: ValueHeads, table: FeatureTable, rows: [Int], layers: [Int], poolings: [HiddenPooling]) throws -> [Float] {
        guard !rows.isEmpty else { return [] }
        let features = try table.select(rows: rows, layers: layers, poolings: poolings)
        let out = try heads(MLXArray(features, shape: [rows.count, features.count / rows.count]))
        try eval(out)
        return try out.asArray(Float.self)
    }

    /// Assessments of `rows` of a table by `heads`.
    public func assess(_ heads: ValueHeads, table: FeatureTable, rows: [Int], layers: [Int], poolings: [HiddenPooling]) throws -> [ValueAssessment] {
        guard !rows.isEmpty else { return [] }
        return try TrainedValueEvaluator.assessments(logits: MLXArray(logits(heads, table: table, rows: rows, layers: layers, poolings: poolings), shape: [rows.count, 10, 3]))
    }

    /// Out-of-fold logits: the rows are split into `folds` by prompt (hash seed `foldSeed`); each
    /// fold is predicted by heads trained on the others. Returns [labelledRows.count * 30] and
    /// [scoredRows.count * 30].
    public func outOfFoldLogits(
        labelledRows: [Int], scoredRows: [Int], folds: Int, foldSeed: UInt64, layers: [Int], poolings: [HiddenPooling],
        heads parameters: HeadTrainingParameters, scoredAnswerWeight: Float, alwaysTrain: HeadTrainingSet? = nil, progress: (Int) -> Bool = { _ in true }
    ) throws -> (labelled: [Float], scored: [Float]) {
        func fold(_ prompt: String) -> Int { Int(DatasetSplit.stableHash(prompt, seed: foldSeed) % UInt64(folds)) }
        let labelledFold = labelledRows.map { fold(data.labelled[$0].prompt) }
        let scoredFold = scoredRows.map { fold(data.scored[$0].prompt) }
        var labelledLogits = [Float](repeating: 0, count: labelledRows.count * 30)
        var scoredLogits = [Float](repeating: 0, count: scoredRows.count * 30)
        for f in 0..<folds {
            let trainL = labelledRows.indices.filter { labelledFold[$0] != f }.map { labelledRows[$0] }
            let trainS = scoredRows.indices.filter { scoredFold[$0] != f }.map { scoredRows[$0] }
            let testL = labelledRows.indices.filter { labelledFold[$0] == f }
            let testS = scoredRows.indices.filter { scoredFold[$0] == f }
            var set = try trainingSet(labelledRows: trainL, scoredRows: trainS, layers: layers, poolings: poolings, scoredAnswerWeight: scoredAnswerWeight)
            if let alwaysTrain { try set.append(contentsOf: alwaysTrain) }
            let heads = try HeadTrainer(parameters).train(set)
            let l = try logits(heads, table: labelled, rows: testL.map { labelledRows[$0] }, layers: layers, poolings: poolings)
            for (k, i) in testL.enumerated() { labelledLogits.replaceSubrange(i * 30..<(i + 1) * 30, with: l[k * 30..<(k + 1) * 30]) }
            let s = try logits(heads, table: scored, rows: testS.map { scoredRows[$0] }, layers: layers, poolings: poolings)
            for (k, i) in testS.enumerated() { scoredLogits.replaceSubrange(i * 30..<(i + 1) * 30, with: s[k * 30..<(k + 1) * 30]) }
            if !progress(f + 1) { throw EvaluatorError.cancelled }
        }
        return (labelledLogits, scoredLogits)
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
