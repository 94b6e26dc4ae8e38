import Dispatch
import Foundation
public import LanguageModels
public import MLXEngine
import MLXNN
public import ValueSpace

/// The default `ValueEvaluator`: small heads over pooled hidden states of the embedded model,
/// trained on FULCRA labels and FULCRA-evaluator scores (see Sources/Evaluators/Resources/README.md).
///
/// Only the base model's layers up to the deepest one the features read are loaded and run, so
/// an evaluation costs less than a full prefill of the pair. All model work runs on a private
/// serial queue, off Swift's cooperative pool; the evaluator can be shared freely.
///
/// Its vector is the expected label per value, p(+1) - p(-1), in [-1, 1]: near +1 when the
/// response clearly supports a value, near -1 when it clearly opposes it, near 0 when the
/// response does not touch it or the heads are unsure.
public final class TrainedValueEvaluator: ValueEvaluator, @unchecked Sendable {
    public let name: String
    public let configuration: EvaluatorConfiguration
    /// Pairs run through the base model together.
    public let batchSize: Int
    /// Whether a response longer than the encoding's window is read whole, in windows combined by
    /// `WindowAggregation` (the default: the guard must see every passage), or only its first
    /// window, as the heads were trained and as their held-out figures were measured.
    public let readsWholeText: Bool
    let heads: ValueHeads
    /// Reads refusal / partial / compliance from the same features (`ValueAssessment.refusal`),
    /// when the weights file has one.
    let refusalHead: ValueHeads?
    /// Reads whether a request read alone asks for harm (`ValueAssessment.requestHarm`), when the
    /// weights file has one.
    let requestHead: ValueHeads?
    let extractor: FeatureExtractor
    let encoder: PairEncoding.Encoder
    private let queue = DispatchQueue(label: "valuealign.value-evaluator", qos: .userInitiated)

    /// An evaluator from parts (tests, freshly trained heads). `model` must hold at least the
    /// configuration's deepest layer.
    public init(configuration: EvaluatorConfiguration, heads: ValueHeads, model: any CausalLanguageModel, tokenizer: any Tokenizer,
                template: ChatTemplate, batchSize: Int = 32, readsWholeText: Bool = true, refusalHead: ValueHeads? = nil,
                requestHead: ValueHeads? = nil) throws(EvaluatorError) {
        try configuration.validate(source: configuration.name)
        guard model.configuration.hiddenSize == configuration.baseModel.hiddenSize else {
            throw .baseModelMismatch(expected: "hidden size \(configuration.baseModel.hiddenSize)", got: "hidden size \(model.configuration.hiddenSize)")
        }
        guard heads.inputWidth == configuration.featureWidth else {
            throw .invalidWeights(path: configuration.name, message: "the heads read \(heads.inputWidth) features but the configuration makes \(configuration.featureWidth)")
        }
        guard batchSize >= 1 else { throw .invalidParameter(field: "batchSize", message: "must be at least 1, got \(batchSize)") }
        for (kind, head) in [("refusal", refusalHead), ("request", requestHead)] {
            if let head, head.groups != 1 || head.inputWidth != heads.inputWidth {
                throw .invalidWeights(path: configuration.name, message: "the \(kind) head must be one 3-way group over \(heads.inputWidth) features")
            }
            head?.train(false)
        }
        self.refusalHead = refusalHead
        self.requestHead = requestHead
        self.name = configuration.name
        self.configuration = configuration
        self.batchSize = batchSize
        self.readsWholeText = readsWholeText
        self.heads = heads
        heads.train(false)
        // Arrays cross to the evaluator's queue evaluated (MLX binds lazy work to its thread).
        do { try eval([heads, refusalHead, requestHead].compactMap { $0 }.flatMap { Array($0.parameters().values) }) } catch { throw .invalidWeights(path: configuration.name, message: "\(error)") }
        encoder = try PairEncoding.Encoder(encoding: configuration.encoding, tokenizer: tokenizer, template: template)
        extractor = try FeatureExtractor(model: model, layers: configuration.layers, poolings: configuration.poolings,
                                         batchSize: batchSize, padTokenId: tokenizer.padTokenId)
    }

    /// Loads an evaluator: `weights` (default: the shipped file) on `model` (default: the
    /// embedded model). The model file must be the one the weights were trained on (compared by
    /// fingerprint) unless `checkBaseModel` is false.
    public static func load(weights: String? = nil, model: String? = nil, batchSize: Int = 32, checkBaseModel: Bool = true,
                            readsWholeText: Bool = true) throws -> TrainedValueEvaluator {
        guard let weightsPath = weights ?? EvaluatorWeights.shippedPath() else {
            throw EvaluatorError.invalidWeights(path: EvaluatorWeights.bundledFileName, message: "not in the Evaluators resource bundle (Bundle.module); set VALUEALIGN_EVALUATOR_WEIGHTS or run `valuealign evaluator train`")
        }
        let contents = try EvaluatorWeights.loadContents(weightsPath)
        let configuration = contents.configuration
        let modelPath = try ModelLocator.resolve(model)
        if checkBaseModel {
            let fingerprint = try ModelFingerprint.of(path: modelPath)
            guard fingerprint == configuration.baseModel.fingerprint else {
                throw EvaluatorError.baseModelMismatch(
                    expected: "\(configuration.baseModel.fileName) (\(configuration.baseModel.fingerprint))",
                    got: "\(URL(fileURLWithPath: modelPath).lastPathComponent) (\(fingerprint))")
            }
        }
        let base = try BaseModel.load(modelPath, layers: configuration.layersRun)
        return try TrainedValueEvaluator(configuration: configuration, heads: contents.heads, model: base.model, tokenizer: base.tokenizer,
                                         template: base.template, batchSize: batchSize, readsWholeText: readsWholeText,
                                         refusalHead: contents.refusalHead, requestHead: contents.requestHead)
    }

    public func evaluate(_ pairs: [ValuePair]) async throws -> [ValueAssessment] {
        let flag = CancellationFlag()
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<[ValueAssessment], any Error>) in
                queue.async { [self] in
                    continuation.resume(with: Result { try self.compute(pairs, cancel: flag) })
                }
            }
        } onCancel: {
            flag.cancel()
        }
    }

    /// `evaluate` for synchronous callers (benchmarks, scripts): blocks the calling thread.
    /// Never call it from the cooperative pool.
    public func evaluateBlocking(_ pairs: [ValuePair]) throws -> [ValueAssessment] {
        try queue.sync { try compute(pairs, cancel: nil) }
    }

    /// The encoded form of a pair (what the model reads), for inspection and cost accounting.
    public func encode(_ pair: ValuePair) -> PairEncoding.Encoded { encoder.encode(pair) }

    /// Tokens of `text` as the evaluator reads it (no special tokens).
    public func tokenCount(_ text: String) -> Int {
        encoder.tokenizer.encode(text, addSpecialTokens: false, parseSpecialTokens: false).count
    }

    /// The windows the evaluator reads a pair in (one for a response within the limit).
    public func windows(_ pair: ValuePair) -> [PairEncoding.Encoded] { readsWholeText ? encoder.encodeWindows(pair) : [encoder.encode(pair)] }

    /// Scores every pair over its whole response: each window (`PairEncoding.Encoder.encodeWindows`)
    /// is assessed, and a pair's windows are combined by `WindowAggregation` (one window: as is).
    func compute(_ pairs: [ValuePair], cancel: CancellationFlag?) throws -> [ValueAssessment] {
        guard !pairs.isEmpty else { return [] }
        let perPair = pairs.map { self.windows($0) }
        let encoded = perPair.flatMap { $0 }
        let features = try extractor.extract(encoded) { _, _ in !(cancel?.isCancelled ?? false) }
        let all = try MLXArray(features, shape: [encoded.count, extractor.width])
        var assessed = try Self.assessments(logits: heads(all))
        if let refusalHead {
            // A refusal shows in the opening: each pair's first window is read (the others keep nil).
            var firsts: [Int32] = [], start = 0
            for w in perPair { firsts.append(Int32(start)); start += w.count }
            let probabilities = try Self.refusalProbabilities(logits: refusalHead(all.take(MLXArray(firsts, shape: [firsts.count]), axis: 0)))
            for (k, row) in firsts.enumerated() { assessed[Int(row)].refusal = probabilities[k] }
        }
        // A request read alone is harmful when any of its windows asks for harm (the most likely window counts).
        var requestHarm = [Double?](repeating: nil, count: pairs.count)
        if let requestHead {
            var rows: [Int32] = [], owners: [Int] = [], start = 0
            for (i, w) in perPair.enumerated() {
                if pairs[i].prompt.isEmpty { rows += (start..<(start + w.count)).map(Int32.init); owners += Array(repeating: i, count: w.count) }
                start += w.count
            }
            if !rows.isEmpty {
                let probabilities = try Self.probabilities(logits: requestHead(all.take(MLXArray(rows, shape: [rows.count]), axis: 0)), heads: "request head")
                for (k, owner) in owners.enumerated() { requestHarm[owner] = Swift.max(requestHarm[owner] ?? 0, probabilities[k][0][0]) }
            }
        }
        var result: [ValueAssessment] = []
        result.reserveCapacity(pairs.count)
        var start = 0
        for (i, w) in perPair.enumerated() {
            var combined = try WindowAggregation.combine(Array(assessed[start..<(start + w.count)]))
            combined.requestHarm = requestHarm[i]
            result.append(combined)
            start += w.count
        }
        return result
    }

    /// Whether the weights include a refusal head (`ValueAssessment.refusal` is then filled).
    public var readsRefusals: Bool { refusalHead != nil }

    /// Whether the weights include a request head (`ValueAssessment.requestHarm` is then filled for
    /// requests read alone, pairs with an empty prompt).
    public var readsRequests: Bool { requestHead != nil }

    /// Refusal / partial / compliance probabilities from refusal-head logits [N, 1, 3].
    static func refusalProbabilities(logits: MLXArray) throws -> [[Double]] {
        try probabilities(logits: logits, heads: "refusal head").map { $0[0] }
    }

    /// Assessments from head logits [N, 10, 3]: softmax probabilities and p(+1) - p(-1).
    public static func assessments(logits: MLXArray) throws -> [ValueAssessment] {
        try probabilities(logits: logits, heads: "heads").map { rows in
            ValueAssessment(vector: try ValueVector(rows.map { p in Swift.min(1, Swift.max(-1, p[2] - p[0])) }), probabilities: rows)
        }
    }

    /// Softmax over the last axis of logits [N, groups, 3], as [N][groups][3]; a non-finite
    /// probability is an error naming the pair and `heads`.
    static func probabilities(logits: MLXArray, heads: String) throws -> [[[Double]]] {
        let p = try logits.softmax(axes: [-1], precise: true)
        try eval(p)
        let flat = try p.asArray(Float.self)
        let n = logits.dim(0), groups = logits.dim(1)
        return try (0..<n).map { i in
            try (0..<groups).map { g in
                let base = (i * groups + g) * 3
                let row = [Double(flat[base]), Double(flat[base + 1]), Double(flat[base + 2])]
                guard row.allSatisfy({ $0.isFinite }) else { throw EvaluatorError.invalidInput("pair \(i): the \(heads) produced non-finite probabilities") }
                return row
            }
        }
    }
}

/// A base model loaded for feature extraction: tokenizer, chat format and the decoder cut after
/// `layers` layers (its final norm kept; no output head).
public struct BaseModel {
    public var model: any CausalLanguageModel
    public var tokenizer: any Tokenizer
    public var template: ChatTemplate
    public var path: String

    public init(model: any CausalLanguageModel, tokenizer: any Tokenizer, template: ChatTemplate, path: String) {
        self.model = model
        self.tokenizer = tokenizer
        self.template = template
        self.path = path
    }

    /// Loads the model at `path` keeping `layers` decoder layers (nil = all). Weights are
    /// dequantised to float32, the fast path on CPUs (see engine-notes).
    public static func load(_ path: String, layers: Int? = nil) throws -> BaseModel {
        var checkpoint = try Checkpoint.read(path)
        let tokenizer: BPETokenizer
        var jinja: String?
        switch checkpoint.format {
        case .gguf:
            tokenizer = try BPETokenizer(ggufMetadata: checkpoint.ggufMetadata)
            jinja = checkpoint.ggufMetadata["tokenizer.chat_template"]?.string
        case .huggingFace:
            tokenizer = try BPETokenizer(directory: URL(fileURLWithPath: path))
        }
        guard let template = ChatTemplate.detect(fromJinja: jinja, tokenizer: tokenizer) else {
            throw LanguageModelError.unknownChatTemplate("(none found in \(path))", supported: ChatTemplate.allCases.map(\.rawValue))
        }
        if let layers { checkpoint = try cut(checkpoint, layers: layers) }
        return BaseModel(model: try checkpoint.makeModel(precision: .float32), tokenizer: tokenizer, template: template, path: path)
    }

    /// `checkpoint` without the decoder layers from `layers` on and without an output head; its
    /// forward pass then ends with the final norm applied to layer `layers`'s output.
    public static func cut(_ checkpoint: Checkpoint, layers keep: Int) throws(EvaluatorError) -> Checkpoint {
        let full = checkpoint.configuration.layerCount
        guard (0...full).contains(keep) else {
            throw .invalidParameter(field: "layers", message: "\(checkpoint.path) has \(full) layers; cannot keep \(keep)")
        }
        guard keep < full else { return checkpoint }
        var cut = checkpoint
        cut.configuration.layerCount = keep
        cut.tensors = checkpoint.tensors.filter { name, _ in
            if name.hasPrefix("lm_head.") { return false }
            guard name.hasPrefix("model.layers."), let i = Int(name.dropFirst(13).prefix { $0 != "." }) else { return true }
            return i < keep
        }
        // Logits are never computed from a cut model; tying skips loading an output matrix.
        cut.configuration.tieWordEmbeddings = true
        return cut
    }
}
