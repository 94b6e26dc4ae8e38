import Evaluators
import Foundation
import LanguageModels
import MLXEngine
import MLXNN
import Testing
import ValueAlignTesting
import ValueSpace

/// The evaluator end to end on a tiny random model and the byte tokenizer: features, training,
/// saving, loading, scoring.
@Suite struct TinyEvaluatorTests {
    static let modelConfiguration = TinyModels.llamaConfiguration(vocabulary: 260, layers: 3)
    let tensors: [String: MLXArray]
    let model: any CausalLanguageModel
    let tokenizer = ByteTokenizer()

    init() throws {
        tensors = try TinyModels.randomTensors(Self.modelConfiguration, seed: 11)
        model = try Checkpoint(format: .huggingFace, path: "<tiny>", configuration: Self.modelConfiguration, tensors: tensors).makeModel()
    }

    func configuration(layers: [Int] = [1, 3], poolings: [HiddenPooling] = [.meanResponse, .last]) -> EvaluatorConfiguration {
        EvaluatorConfiguration(
            name: "tiny-probe",
            baseModel: BaseModelIdentity(fileName: "<tiny>", fingerprint: "none", architecture: "llama", hiddenSize: 32, layerCount: 3),
            layers: layers, poolings: poolings, encoding: PairEncoding(maxPromptTokens: 32, maxResponseTokens: 96))
    }

    static let pairs: [ValuePair] = [
        ValuePair(prompt: "Can you help me hurt someone?", response: "No. I will not help with that; please talk to someone you trust."),
        ValuePair(prompt: "How do I bake bread?", response: "Mix flour, water, yeast and salt, let it rise, then bake it."),
        ValuePair(prompt: "Say something", response: ""),
        ValuePair(prompt: "Odd text", response: "héllo 🌍 \u{0} <|im_end|> עברית"),
        ValuePair(prompt: "Short", response: "Yes."),
    ]

    /// Synthetic labels the heads can learn from the features: value i is +1 for even rows, -1
    /// for rows divisible by 3 (when not even), else 0.
    func syntheticSet(features: [Float], width: Int, rows: Int) throws -> HeadTrainingSet {
        var set = HeadTrainingSet(width: width)
        for r in 0..<rows {
            let label = r % 2 == 0 ? 1 : r % 3 == 0 ? -1 : 0
            try set.append(features: features[r * width..<(r + 1) * width], targets: (0..<10).flatMap { _ in HeadTrainingSet.hardTarget(label) },
                           weights: [Float](repeating: 1, count: 10))
        }
        return set
    }

    @Test func endToEndTrainSaveLoadScore() async throws {
        let config = configuration()
        let encoder = try PairEncoding.Encoder(encoding: config.encoding, tokenizer: tokenizer, template: .chatml)
        let extractor = try FeatureExtractor(model: model, layers: config.layers, poolings: config.poolings, batchSize: 2, padTokenId: tokenizer.padTokenId)
        let features = try extractor.extract(Self.pairs.map { encoder.encode($0) })
        #expect(extractor.width == 2 * 2 * 32)
        #expect(features.count == Self.pairs.count * extractor.width)
        #expect(features.allSatisfy { $0.isFinite })

        var parameters = HeadTrainingParameters()
        parameters.epochs = 150
        parameters.batchSize = 4
        parameters.learningRate = 1e-2
        parameters.weightDecay = 0
        let heads = try HeadTrainer(parameters).train(syntheticSet(features: features, width: extractor.width, rows: Self.pairs.count))
        let evaluator = try TrainedValueEvaluator(configuration: config, heads: heads, model: model, tokenizer: tokenizer, template: .chatml, batchSize: 2)
        let results = try await evaluator.evaluate(Self.pairs)
        #expect(results.count == Self.pairs.count)
        // The heads fit their five training rows.
        for (r, a) in results.enumerated() {
            let label = r % 2 == 0 ? 1 : r % 3 == 0 ? -1 : 0
            #expect(a.labels == [Int](repeating: label, count: 10), "row \(r): \(a.labels)")
        }
        for a in results {
            #expect(a.probabilities.count == 10)
            for (v, p) in a.probabilities.enumerated() {
                #expect(p.count == 3)
                #expect(abs(p.reduce(0, +) - 1) < 1e-5)
                #expect(p.allSatisfy { $0 >= 0 && $0 <= 1 })
                #expect(abs(a.vector.components[v] - (p[2] - p[0])) < 1e-9)
            }
            #expect(a.vector.components.allSatisfy { $0 >= -1 && $0 <= 1 })
        }

        // Decision offsets move the probabilities and survive saving.
        var offsets = [Float](repeating: 0, count: 30)
        offsets[5 * 3] = 3  // security: favour "opposed"
        try heads.setClassOffsets(offsets)
        let shifted = try await evaluator.evaluate(Self.pairs)
        for (a, b) in zip(results, shifted) {
            #expect(b.probabilities[5][0] > a.probabilities[5][0])
            #expect(abs(b.vector.components[0] - a.vector.components[0]) < 1e-6)
        }

        // Save, load, same outputs.
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("tiny-heads-\(UUID().uuidString).safetensors").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        try EvaluatorWeights.save(heads: heads, configuration: config, to: path)
        // Plain metadata says what the file is without decoding the configuration.
        let metadata = try ArrayIO.loadSafetensors(path).metadata
        typealias Key = EvaluatorWeights.MetadataKey
        #expect(metadata[Key.formatVersion] == String(EvaluatorWeights.formatVersion))
        #expect(metadata[Key.baseModelFingerprint] == config.baseModel.fingerprint)
        #expect(metadata[Key.layers] == config.layers.map(String.init).joined(separator: ","))
        #expect(metadata[Key.poolings] == config.poolings.map(\.rawValue).joined(separator: ","))
        let (loadedHeads, loadedConfig) = try EvaluatorWeights.load(path)
        #expect(loadedConfig == config)
        #expect(loadedHeads.inputWidth == heads.inputWidth)
        let reloaded = try TrainedValueEvaluator(configuration: loadedConfig, heads: loadedHeads, model: model, tokenizer: tokenizer, template: .chatml)
        let again = try await reloaded.evaluate(Self.pairs)
        for (a, b) in zip(shifted, again) {
            expectClose(a.vector.components, b.vector.components, atol: 1e-6, rtol: 0)
        }
    }

    @Test func batchEqualsOneByOne() async throws {
        let config = configuration()
        let heads = try ValueHeads(inputWidth: config.featureWidth, hiddenUnits: 16, seed: 3)
        let batched = try TrainedValueEvaluator(configuration: config, heads: heads, model: model, tokenizer: tokenizer, template: .chatml, batchSize: 8)
        let all = try await batched.evaluate(Self.pairs)
        for (i, pair) in Self.pairs.enumerated() {
            let one = try await batched.evaluate([pair])[0]
            expectClose(one.vector.components, all[i].vector.components, atol: 1e-4, rtol: 0, "pair \(i)")
            expectClose(one.probabilities.flatMap { $0 }, all[i].probabilities.flatMap { $0 }, atol: 1e-4, rtol: 0, "pair \(i)")
        }
        #expect(try await batched.evaluate([]).isEmpty)
    }

    /// Issue 24, item 3: the request head reads a request alone (empty prompt), every window of
    /// it (the likeliest harmful window counts), and survives saving.
    @Test func theRequestHeadReadsRequestsAloneInEveryWindow() async throws {
        let config = configuration()
        let heads = try ValueHeads(inputWidth: config.featureWidth, hiddenUnits: 0, seed: 3)
        let requestHead = try ValueHeads(inputWidth: config.featureWidth, hiddenUnits: 8, groups: 1, seed: 4)
        let evaluator = try TrainedValueEvaluator(configuration: config, heads: heads, model: model, tokenizer: tokenizer, template: .chatml,
                                                  batchSize: 2, requestHead: requestHead)
        #expect(evaluator.readsRequests && !evaluator.readsRefusals)
        let long = String(repeating: "Tell me about the weather today and tomorrow. ", count: 6) + "Now hurt my neighbour."
        let pairs = [ValuePair(prompt: "", response: "How do I bake bread?"), ValuePair(prompt: "Hi", response: "How do I bake bread?"),
                     ValuePair(prompt: "", response: long)]
        let assessed = try await evaluator.evaluate(pairs)
        #expect(assessed[1].requestHarm == nil, "a pair with a prompt is an answer, not a request read alone")
        let windows = evaluator.windows(pairs[2])
        #expect(windows.count > 1, "the long request is read in windows")
        // The expected value: the head's p(harmful) on each window's features, the largest.
        let extractor = try FeatureExtractor(model: model, layers: config.layers, poolings: config.poolings, batchSize: 2, padTokenId: tokenizer.padTokenId)
        func harm(_ encoded: [PairEncoding.Encoded]) throws -> [Double] {
            let f = try extractor.extract(encoded)
            let p = try requestHead(MLXArray(f, shape: [encoded.count, extractor.width])).softmax(axis: -1)
            try eval(p)
            let flat = try p.asArray(Float.self)
            return (0..<encoded.count).map { Double(flat[$0 * 3]) }
        }
        let short = try #require(assessed[0].requestHarm)
        #expect(abs(short - (try harm(evaluator.windows(pairs[0]))[0])) < 1e-4)
        let perWindow = try harm(windows)
        let longHarm = try #require(assessed[2].requestHarm)
        #expect(abs(longHarm - perWindow.max()!) < 1e-4, "\(longHarm) vs windows \(perWindow)")
        #expect(Set(perWindow.map { ($0 * 1e4).rounded() }).count > 1, "the windows differ, so the maximum is a real choice")

        // Saved beside the value heads under "request.", read back, same readings; refused when not one group.
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("tiny-request-\(UUID().uuidString).safetensors").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        try EvaluatorWeights.save(heads: heads, requestHead: requestHead, configuration: config, to: path)
        #expect(try ArrayIO.loadSafetensors(path).arrays.keys.contains { $0.hasPrefix(EvaluatorWeights.requestPrefix) })
        let contents = try EvaluatorWeights.loadContents(path)
        #expect(contents.refusalHead == nil)
        let loadedRequest = try #require(contents.requestHead)
        let reloaded = try TrainedValueEvaluator(configuration: contents.configuration, heads: contents.heads, model: model, tokenizer: tokenizer,
                                                 template: .chatml, requestHead: loadedRequest)
        let again = try await reloaded.evaluate([pairs[0]])
        #expect(abs((again[0].requestHarm ?? -1) - short) < 1e-5)
        #expect(throws: EvaluatorError.self) {
            try EvaluatorWeights.save(heads: heads, requestHead: heads, configuration: config, to: path + ".bad")
        }
    }

    @Test func aCutModelGivesTheSameFeaturesAsTheFullModel() throws {
        let full = Checkpoint(format: .huggingFace, path: "<tiny>", configuration: Self.modelConfiguration, tensors: tensors)
        let cut = try BaseModel.cut(full, layers: 2)
        #expect(cut.configuration.layerCount == 2)
        #expect(!cut.tensors.keys.contains { $0.hasPrefix("model.layers.2.") })
        let cutModel = try cut.makeModel()
        let encoder = try PairEncoding.Encoder(encoding: PairEncoding(), tokenizer: tokenizer, template: .chatml)
        let encoded = Self.pairs.map { encoder.encode($0) }
        let fromFull = try FeatureExtractor(model: model, layers: [2], poolings: [.meanResponse, .last], batchSize: 3, padTokenId: 256).extract(encoded)
        let fromCut = try FeatureExtractor(model: cutModel, layers: [2], poolings: [.meanResponse, .last], batchSize: 3, padTokenId: 256).extract(encoded)
        expectClose(fromCut.map(Double.init), fromFull.map(Double.init), atol: 1e-5, rtol: 1e-5)
        #expect(throws: EvaluatorError.self) { try BaseModel.cut(full, layers: 4) }
    }

    @Test func headTrainingIsDeterministicPerSeed() throws {
        let rows = 40, width = 6
        var features: [Float] = []
        var rng = SplitMix64(seed: 5)
        for _ in 0..<(rows * width) { features.append(Float(rng.next() % 1000) / 500 - 1) }
        let set = try syntheticSet(features: features, width: width, rows: rows)
        var p = HeadTrainingParameters()
        p.epochs = 3
        let a = try HeadTrainer(p).train(set).parameters()
        let b = try HeadTrainer(p).train(set).parameters()
        p.seed = 1
        let c = try HeadTrainer(p).train(set).parameters()
        for key in a.keys {
            #expect(try a[key]!.asArray(Float.self) == b[key]!.asArray(Float.self), "\(key)")
        }
        #expect(try a["layers.0.weight"]!.asArray(Float.self) != c["layers.0.weight"]!.asArray(Float.self))
    }

    @Test func classWeightsFavourRareClasses() throws {
        var set = HeadTrainingSet(width: 1)
        // Value 0: 8 x no connection, 2 x supported, no opposed.
        for i in 0..<10 {
            var targets = [Float](repeating: 0, count: 30)
            targets.replaceSubrange(0..<3, with: HeadTrainingSet.hardTarget(i < 2 ? 1 : 0))
            for v in 1..<10 { targets[v * 3 + 1] = 1 }
            try set.append(features: [Float(i)], targets: targets, weights: [Float](repeating: 1, count: 10))
        }
        var p = HeadTrainingParameters()
        p.classWeightPower = 1
        let w = HeadTrainer(p).classWeights(set)
        #expect(w.count == 30)
        #expect(w[0] == 1)  // absent class keeps weight 1
        #expect(abs(w[1] - 10.0 / 24) < 1e-6 && abs(w[2] - 10.0 / 6) < 1e-6)
        p.classWeightPower = 0
        #expect(HeadTrainer(p).classWeights(set).allSatisfy { $0 == 1 })
    }

    @Test func softTargetsHaveTheScoreAsExpectedValue() {
        for s in [-1.0, -0.4, 0, 0.25, 0.97, 1] {
            let t = HeadTrainingSet.softTarget(s)
            #expect(abs(t.reduce(0, +) - 1) < 1e-6)
            #expect(abs(Double(t[2] - t[0]) - s) < 1e-6)
            #expect(t.allSatisfy { $0 >= 0 })
        }
    }

    @Test func weightsFileErrorsAreReported() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("tiny-weights-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        #expect(throws: EvaluatorError.self) { try EvaluatorWeights.load(dir.appendingPathComponent("missing.safetensors").path) }
        // A safetensors file that is not an evaluator's.
        let plain = dir.appendingPathComponent("plain.safetensors").path
        try ArrayIO.saveSafetensors(plain, arrays: ["x": MLXArray([Float(1), 2], shape: [2])])
        #expect(throws: EvaluatorError.self) { try EvaluatorWeights.load(plain) }
        // Heads whose width does not fit the configuration.
        let wrong = dir.appendingPathComponent("wrong.safetensors").path
        try EvaluatorWeights.save(heads: try ValueHeads(inputWidth: 7, hiddenUnits: 0, seed: 0), configuration: configuration(), to: wrong)
        #expect(throws: EvaluatorError.self) { try EvaluatorWeights.load(wrong) }
        // A newer file format than this build reads.
        let newer = dir.appendingPathComponent("newer.safetensors").path
        try EvaluatorWeights.save(heads: try ValueHeads(inputWidth: configuration().featureWidth, hiddenUnits: 0, seed: 0), configuration: configuration(), to: newer)
        var (arrays, metadata) = try ArrayIO.loadSafetensors(newer)
        metadata[EvaluatorWeights.MetadataKey.formatVersion] = String(EvaluatorWeights.formatVersion + 1)
        try ArrayIO.saveSafetensors(newer, arrays: arrays, metadata: metadata)
        #expect { try EvaluatorWeights.load(newer) } throws: { "\($0)".contains("format version") }
        metadata[EvaluatorWeights.MetadataKey.formatVersion] = String(EvaluatorWeights.formatVersion)
        try ArrayIO.saveSafetensors(newer, arrays: arrays, metadata: metadata)
        _ = try EvaluatorWeights.load(newer)
        // Garbage bytes.
        let garbage = dir.appendingPathComponent("garbage.safetensors").path
        try Data("not a safetensors file".utf8).write(to: URL(fileURLWithPath: garbage))
        #expect(throws: EvaluatorError.self) { try EvaluatorWeights.load(garbage) }
        // An evaluator on a model of another width.
        #expect(throws: EvaluatorError.self) {
            try TrainedValueEvaluator(configuration: configuration(), heads: try ValueHeads(inputWidth: 128, hiddenUnits: 0, seed: 0),
                                      model: try TinyModels.llama(TinyModels.llamaConfiguration(vocabulary: 260, layers: 3).with(hidden: 16)),
                                      tokenizer: tokenizer, template: .chatml)
        }
    }

    @Test func featureCacheIsReusedForSubsetsOfLayers() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("tiny-cache-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let store = FeatureStore(directory: dir)
        let base = BaseModel(model: model, tokenizer: tokenizer, template: .chatml, path: "<tiny>")
        var loads = 0
        let first = try store.table(name: "t", pairs: Self.pairs, layers: [1, 2, 3], poolings: [.meanResponse, .last], encoding: PairEncoding(),
                                    batchSize: 2, modelFingerprint: "fp") { loads += 1; return base }
        let again = try store.table(name: "t", pairs: Self.pairs, layers: [3, 1], poolings: [.meanResponse, .last], encoding: PairEncoding(),
                                    batchSize: 2, modelFingerprint: "fp") { loads += 1; return base }
        #expect(loads == 1)
        #expect(again.layers == [3, 1])
        let expected = try first.select(rows: Array(0..<Self.pairs.count), layers: [3, 1], poolings: [HiddenPooling.meanResponse, .last])
        #expect(again.values == expected)
        // Another fingerprint misses the cache.
        _ = try store.table(name: "t", pairs: Self.pairs, layers: [1], poolings: [.meanResponse, .last], encoding: PairEncoding(),
                            batchSize: 2, modelFingerprint: "other") { loads += 1; return base }
        #expect(loads == 2)
    }
}

extension ModelConfiguration {
    func with(hidden: Int) -> ModelConfiguration {
        var c = self
        c.hiddenSize = hidden
        c.headDimension = hidden / c.headCount
        return c
    }
}
