import ArgumentParser
import Foundation
import LanguageModels
import MLXEngine
import ValueAlignBench

struct BenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Benchmarks: each prints a table and, last, one JSON line with figures and ratios.",
        subcommands: [EngineBench.self, GenerateBench.self, QuantizedBench.self, EvaluatorBench.self, TrainBench.self, ServeBench.self, AuditBench.self]
    )
}

struct EngineBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "engine",
        abstract: "Matmul throughput vs OpenBLAS, and a Llama block forward+backward vs PyTorch and MLX's Python API."
    )

    @Option(help: "Timed iterations per figure (median reported).")
    var iterations = 10

    @Option(parsing: .upToNextOption, help: "Matrix sizes for the matmul figures.")
    var matmulSizes: [Int] = [1024, 2048]

    @Flag(help: "Skip the Python anchors (PyTorch, MLX Python).")
    var noAnchors = false

    @Option(help: "Threads for the anchors (match this machine's cores).")
    var threads = ProcessInfo.processInfo.activeProcessorCount

    @Flag(help: "Print only the JSON line.")
    var json = false

    func validate() throws {
        guard iterations >= 1 else { throw ValidationError("--iterations must be at least 1") }
        guard matmulSizes.allSatisfy({ $0 >= 16 && $0 <= 8192 }) else { throw ValidationError("--matmul-sizes must be between 16 and 8192") }
    }

    func run() async throws {
        var parameters = EngineBenchmark.Parameters()
        parameters.iterations = iterations
        parameters.matmulSizes = matmulSizes
        parameters.anchors = !noAnchors
        parameters.threads = threads
        let quiet = json
        let report = try EngineBenchmark(parameters).run { line in
            if !quiet { FileHandle.standardError.write(Data("… \(line)\n".utf8)) }
        }
        if !json { print(report.table()) }
        print(try report.jsonLine())
    }
}

struct GenerateBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "generate",
        abstract: "Prefill, batch-1 decode and batched sampling rates, beside llama.cpp on the same GGUF."
    )

    @Option(help: "GGUF file or Hugging Face folder (default: the embedded SmolLM2, $VALUEALIGN_MODEL).")
    var model: String?

    @Option(help: "Timed repetitions per figure (median reported).")
    var iterations = 3

    @Option(help: "New tokens per sequence.")
    var newTokens = 128

    @Option(parsing: .upToNextOption, help: "Batch sizes for the aggregate sampling figures.")
    var batchSizes: [Int] = [16, 64]

    @Option(help: "Weights in memory: hybrid, float32 or quantized.")
    var precision: String = "hybrid"

    @Flag(help: "Skip the llama.cpp anchor.")
    var noAnchors = false

    @Option(help: "A PEFT LoRA adapter folder: the decode figures again with it loaded, beside those without.")
    var adapter: String?

    @Option(help: "A steering vector FILE[:MULTIPLIER]: batch-1 decode with it, alternating with none (goal >= 0.97x).")
    var steer: String?

    @Option(help: "A probes file (valuealign probe train): batch-1 decode with the probe monitor, alternating with none (goal: <= 3% slower).")
    var probes: String?

    @Option(help: "Threads for llama.cpp (match this machine's cores).")
    var threads = ProcessInfo.processInfo.activeProcessorCount

    @Flag(help: "Print only the JSON line.")
    var json = false

    func validate() throws {
        guard iterations >= 1 else { throw ValidationError("--iterations must be at least 1") }
        if let adapter, !FileManager.default.fileExists(atPath: URL(fileURLWithPath: adapter).appendingPathComponent("adapter_config.json").path) {
            throw ValidationError("--adapter \(adapter): no adapter_config.json there (expected a PEFT adapter folder)")
        }
        guard newTokens >= 2 else { throw ValidationError("--new-tokens must be at least 2") }
        guard batchSizes.allSatisfy({ $0 >= 1 && $0 <= 512 }) else { throw ValidationError("--batch-sizes must be between 1 and 512") }
        guard WeightPrecision(rawValue: precision) != nil else { throw ValidationError("--precision must be hybrid, float32 or quantized") }
    }

    func run() async throws {
        guard let path = model ?? ProcessInfo.processInfo.environment["VALUEALIGN_MODEL"] else {
            throw ValidationError("no model: pass --model or set VALUEALIGN_MODEL (make run sets it to the embedded SmolLM2)")
        }
        var parameters = GenerationBenchmark.Parameters(modelPath: path)
        parameters.iterations = iterations
        parameters.newTokens = newTokens
        parameters.batchSizes = batchSizes
        parameters.anchors = !noAnchors
        parameters.threads = threads
        parameters.precision = WeightPrecision(rawValue: precision)!
        parameters.adapter = adapter
        parameters.steer = steer
        parameters.probes = probes
        let quiet = json
        let report = try GenerationBenchmark(parameters).run { line in
            if !quiet { FileHandle.standardError.write(Data("… \(line)\n".utf8)) }
        }
        if !json { print(report.table()) }
        print(try report.jsonLine())
    }
}

struct QuantizedBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "quantized",
        abstract: "The quantised matmul kernel vs MLX's quantized_matmul and float32 OpenBLAS on SmolLM2's decode shapes."
    )

    @Option(help: "Timed calls per figure at most (median reported).")
    var iterations = 60

    @Option(parsing: .upToNextOption, help: "Rows of x (decode batch sizes).")
    var rows: [Int] = [1, 4, 16]

    @Option(help: "The SmolLM2-135M GGUF file (default: $VALUEALIGN_MODEL, else random weights).")
    var model: String?

    @Flag(help: "Print only the JSON line.")
    var json = false

    func validate() throws {
        guard iterations >= 3 else { throw ValidationError("--iterations must be at least 3") }
        guard !rows.isEmpty, rows.allSatisfy({ $0 >= 1 && $0 <= 512 }) else { throw ValidationError("--rows must be between 1 and 512") }
        if let model, !FileManager.default.fileExists(atPath: model) { throw ValidationError("no model file at \(model)") }
    }

    func run() async throws {
        var parameters = QuantizedKernelBenchmark.Parameters()
        parameters.iterations = iterations
        parameters.rows = rows
        let fromEnvironment = ProcessInfo.processInfo.environment["VALUEALIGN_MODEL"].flatMap { FileManager.default.fileExists(atPath: $0) ? $0 : nil }
        parameters.modelPath = model ?? fromEnvironment
        let quiet = json
        let report = try QuantizedKernelBenchmark(parameters).run { line in
            if !quiet { FileHandle.standardError.write(Data("… \(line)\n".utf8)) }
        }
        if !json { print(report.table()) }
        print(try report.jsonLine())
    }
}


struct EvaluatorBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "evaluator",
        abstract: "Pairs/s of the trained value evaluator at a batch of ~200-token pairs, beside a full prefill of the same tokens; whole-text scoring at several response lengths."
    )

    @Option(help: "Base model (default: the embedded SmolLM2).") var model: String?
    @Option(help: "Evaluator weights (default: the shipped ones).") var weights: String?
    @Option(help: "Pairs per batch.") var batchSize = 32
    @Option(help: "Approximate tokens per pair.") var pairTokens = 200
    @Option(help: "Timed repetitions per figure (median reported).") var iterations = 3
    @Option(parsing: .upToNextOption, help: "Response lengths (tokens) for the whole-text figures; none to skip them.")
    var responseLengths: [Int] = [100, 1000, 4000]
    @Flag(help: "Print only the JSON line.") var json = false

    func validate() throws {
        guard iterations >= 1 else { throw ValidationError("--iterations must be at least 1") }
        guard responseLengths.allSatisfy({ (16...16_000).contains($0) }) else { throw ValidationError("--response-lengths must be between 16 and 16000 tokens") }
        guard (1...512).contains(batchSize) else { throw ValidationError("--batch-size must be between 1 and 512") }
        guard (32...2048).contains(pairTokens) else { throw ValidationError("--pair-tokens must be between 32 and 2048") }
    }

    func run() async throws {
        var parameters = EvaluatorBenchmark.Parameters(modelPath: try ModelLocator.resolve(model))
        parameters.weightsPath = weights
        parameters.batchSize = batchSize
        parameters.pairTokens = pairTokens
        parameters.iterations = iterations
        parameters.responseLengths = responseLengths
        let quiet = json
        let report = try EvaluatorBenchmark(parameters).run { line in
            if !quiet { FileHandle.standardError.write(Data("… \(line)\n".utf8)) }
        }
        if !json { print(report.table()) }
        print(try report.jsonLine())
    }
}


struct TrainBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train",
        abstract: "Tokens/s of a DPO step and a GRPO update (LoRA r=16 on q/v, 8 x 128 tokens) beside a PyTorch + transformers + PEFT LoRA step."
    )

    @Option(help: "GGUF file or Hugging Face folder (default: the embedded SmolLM2).")
    var model: String?

    @Option(help: "Timed steps per figure (median reported).")
    var iterations = 3

    @Option(help: "Untimed steps first.")
    var warmup = 1

    @Option(help: "Sequences per batch (even: DPO uses half as pairs).")
    var batch = 8

    @Option(help: "Tokens per sequence (half prompt, half answer).")
    var sequence = 128

    @Option(help: "Weights in memory: hybrid, float32 or quantized.")
    var precision: String = "hybrid"

    @Flag(help: "Skip the PyTorch anchor.")
    var noAnchors = false

    @Flag(help: "Skip the bfloat16 (AMX) figures and their bf16-autocast anchor.")
    var noBf16 = false

    @Flag(help: "Skip the float32 figures and their anchor (bf16 only).")
    var noFloat32 = false

    @Flag(help: "Skip the GRPO update and the reference forward (the DPO step only).")
    var noGrpo = false

    @Option(help: "Threads for the anchor (match this machine's cores).")
    var threads = ProcessInfo.processInfo.activeProcessorCount

    @Flag(help: "Print only the JSON line.")
    var json = false

    func validate() throws {
        guard iterations >= 1, warmup >= 0 else { throw ValidationError("--iterations must be at least 1 and --warmup at least 0") }
        guard batch >= 2, batch % 2 == 0, batch <= 64 else { throw ValidationError("--batch must be even, between 2 and 64") }
        guard sequence >= 4, sequence <= 2048 else { throw ValidationError("--sequence must be between 4 and 2048") }
        guard WeightPrecision(rawValue: precision) != nil else { throw ValidationError("--precision must be hybrid, float32 or quantized") }
        guard !(noBf16 && noFloat32) else { throw ValidationError("--no-bf16 and --no-float32 together leave nothing to measure") }
    }

    func run() async throws {
        var parameters = TrainBenchmark.Parameters(modelPath: try ModelLocator.resolve(model))
        parameters.iterations = iterations
        parameters.warmup = warmup
        parameters.batch = batch
        parameters.sequence = sequence
        parameters.precision = WeightPrecision(rawValue: precision)!
        parameters.anchors = !noAnchors
        parameters.bf16 = !noBf16
        parameters.float32 = !noFloat32
        parameters.grpo = !noGrpo
        parameters.threads = threads
        let quiet = json
        let report = try TrainBenchmark(parameters).run { line in
            if !quiet { FileHandle.standardError.write(Data("… \(line)\n".utf8)) }
        }
        if !json { print(report.table()) }
        print(try report.jsonLine())
    }
}


struct EngineInfoCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "engine-info", abstract: "Show the MLX build, BLAS provider, kernels and devices.")

    func run() throws {
        print("MLX \(Engine.mlxVersion) (\(Device.isCUDABuild ? "CUDA" : "CPU") build)")
        print("BLAS provider: \(Engine.blasProvider)")
        print("BLAS kernels: \(BLASCore.current ?? "unknown")\(ProcessInfo.processInfo.environment["VALUEALIGN_BLAS_REEXEC"] != nil ? " (chosen by valuealign: OpenBLAS does not know this CPU)" : "")")
        print("kernel ISA: \(Fast.kernelISA)")
        print("GPU available: \(Device.isAvailable(.gpu))")
    }
}

struct AuditBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "audit",
        abstract: "Records/s of audit-data on real records beside a full prefill of the same pairs; peak memory on synthetic files of 10k and 100k records."
    )

    @Option(help: "Base model (default: the embedded SmolLM2).") var model: String?
    @Option(help: "Records to audit (JSONL or CSV; the first --records are used).") var data = "data/train/ordinary_pairs.jsonl"
    @Option(help: "Guard policy.") var policy = "examples/guard-policy.json"
    @Option(help: "Records audited per timed run.") var records = 128
    @Option(help: "Timed repetitions (median reported).") var iterations = 3
    @Option(parsing: .upToNextOption, help: "Synthetic file sizes for the memory figures; 0 to skip.") var memoryLines: [Int] = [10_000, 100_000]
    @Flag(help: "Print only the JSON line.") var json = false

    func validate() throws {
        guard iterations >= 1 else { throw ValidationError("--iterations must be at least 1") }
        guard records >= 1 else { throw ValidationError("--records must be at least 1") }
        guard FileManager.default.fileExists(atPath: data) else { throw ValidationError("--data: no such file '\(data)'") }
        guard FileManager.default.fileExists(atPath: policy) else { throw ValidationError("--policy: no such file '\(policy)'") }
    }

    func run() async throws {
        var parameters = AuditBenchmark.Parameters(modelPath: try ModelLocator.resolve(model), dataPath: data, policyPath: policy)
        parameters.records = records
        parameters.iterations = iterations
        parameters.memoryLines = memoryLines.filter { $0 > 0 }
        let quiet = json
        let report = try await AuditBenchmark(parameters).run { line in
            if !quiet { FileHandle.standardError.write(Data("… \(line)\n".utf8)) }
        }
        if !json { print(report.table()) }
        print(try report.jsonLine())
    }
}
