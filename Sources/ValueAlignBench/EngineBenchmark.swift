import Foundation
import MLXEngine

/// `valuealign bench engine`: matmul throughput against OpenBLAS called directly, and one Llama
/// block forward+backward against PyTorch and MLX's Python API run beside it.
public struct EngineBenchmark: Sendable {
    public struct Parameters: Sendable {
        public var matmulSizes = [1024, 2048]
        public var iterations = 10
        /// Runs the Python anchors when bench/anchors has been set up.
        public var anchors = true
        /// The repository root (for bench/anchors and .deps/anchors).
        public var root = FileManager.default.currentDirectoryPath
        public var threads = 2
        public init() {}
    }

    public let parameters: Parameters
    public init(_ parameters: Parameters = .init()) { self.parameters = parameters }

    /// Runs everything; `log` receives progress lines.
    public func run(log: (String) -> Void = { _ in }) throws -> BenchmarkReport {
        var report = BenchmarkReport(benchmark: "bench engine")
        report.notes.append("MLX \(Engine.mlxVersion); BLAS provider \(Engine.blasProvider) (kernels \(BLASCore.current ?? "?")); kernel ISA \(Fast.kernelISA)")

        for n in parameters.matmulSizes {
            log("matmul \(n)x\(n)")
            let (engine, blas) = try matmulRates(n)
            report.figures.append(BenchmarkFigure(name: "matmul_\(n)_gflops", value: engine, unit: "GFLOP/s", anchorName: "cblas_sgemm (OpenBLAS, direct)", anchorValue: blas, higherIsBetter: true, goal: ">= 0.9x"))
        }

        let graph = LlamaBlockGraph()
        log("Llama block, MLX ops")
        let plain = try graph.time(variant: .mlxOps, iterations: parameters.iterations)
        log("Llama block, ValueAlign kernels")
        let fast = try graph.time(variant: .kernels, iterations: parameters.iterations)

        var torch: AnchorResult?
        var mlxPython: AnchorResult?
        if parameters.anchors {
            log("anchor: PyTorch")
            torch = runAnchor(["--framework", "torch", "--threads", "\(parameters.threads)", "--iters", "\(parameters.iterations)"], preloadOpenBLAS: false, note: &report.notes)
            log("anchor: MLX Python API")
            mlxPython = runAnchor(["--framework", "mlx", "--threads", "\(parameters.threads)", "--iters", "\(parameters.iterations)"], preloadOpenBLAS: true, note: &report.notes)
        }
        report.figures.append(BenchmarkFigure(name: "block_fwd_bwd_ms", value: fast.forwardBackward, unit: "ms", anchorName: torch.map { "PyTorch \($0.version)" }, anchorValue: torch?.fwdBwd, higherIsBetter: false, goal: ">= 1.0x (at most PyTorch's time)"))
        report.figures.append(BenchmarkFigure(name: "block_fwd_ms", value: fast.forward, unit: "ms", anchorName: torch.map { "PyTorch \($0.version)" }, anchorValue: torch?.fwd, higherIsBetter: false))
        report.figures.append(BenchmarkFigure(name: "block_fwd_bwd_mlx_ops_ms", value: plain.forwardBackward, unit: "ms", anchorName: mlxPython.map { "MLX Python \($0.version)" }, anchorValue: mlxPython?.fwdBwd, higherIsBetter: false, goal: ">= 0.9x (bridge adds <= 10%)"))
        report.figures.append(BenchmarkFigure(name: "block_fwd_mlx_ops_ms", value: plain.forward, unit: "ms", anchorName: mlxPython.map { "MLX Python \($0.version)" }, anchorValue: mlxPython?.fwd, higherIsBetter: false))
        report.figures.append(BenchmarkFigure(name: "block_fwd_bwd_kernels_vs_mlx_ops", value: fast.forwardBackward, unit: "ms", anchorName: "same block, MLX ops (this run)", anchorValue: plain.forwardBackward, higherIsBetter: false))
        return report
    }

    func matmulRates(_ n: Int) throws -> (engine: Double, blas: Double) {
        let key = try MLXRandom.key(UInt64(n))
        let a = try MLXRandom.normal([n, n], key: key)
        let b = try MLXRandom.normal([n, n], key: MLXRandom.split(key)[1])
        try eval(a, b)
        let flops = 2 * Double(n) * Double(n) * Double(n)
        let iterations = n >= 2048 ? Swift.max(3, parameters.iterations / 2) : parameters.iterations
        let engineMs = try medianMilliseconds(warmup: 2, iterations: iterations) { try eval(a.matmul(b)) }
        let av = try a.asArray(Float.self), bv = try b.asArray(Float.self)
        var c = [Float](repeating: 0, count: n * n)
        let blasMs = try medianMilliseconds(warmup: 2, iterations: iterations) {
            try Engine.blasSgemm(m: n, n: n, k: n, a: av, b: bv, c: &c)
        }
        return (flops / engineMs / 1e6, flops / blasMs / 1e6)
    }

    struct AnchorResult {
        var version: String
        var fwd: Double
        var fwdBwd: Double
    }

    /// Runs bench/anchors/llama_block.py with the anchors' Python packages, or explains why not.
    func runAnchor(_ arguments: [String], preloadOpenBLAS: Bool, note notes: inout [String]) -> AnchorResult? {
        let root = parameters.root
        let script = "\(root)/bench/anchors/llama_block.py"
        let site = "\(root)/.deps/anchors"
        guard FileManager.default.fileExists(atPath: script), FileManager.default.fileExists(atPath: site) else {
            let missing = "anchors not installed: run `bash bench/anchors/setup.sh` for PyTorch and MLX Python figures"
            if !notes.contains(missing) { notes.append(missing) }
            return nil
        }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", script] + arguments
        var environment = ProcessInfo.processInfo.environment
        environment["PYTHONPATH"] = site
        // MLX's wheel bundles reference BLAS; the fair anchor runs it with OpenBLAS, as we do.
        // PyTorch brings its own BLAS (MKL), which a preloaded OpenBLAS would displace.
        if preloadOpenBLAS { environment["LD_PRELOAD"] = "/usr/lib/x86_64-linux-gnu/libopenblas.so.0" }
        environment["OMP_NUM_THREADS"] = "\(parameters.threads)"
        environment["OPENBLAS_NUM_THREADS"] = "\(parameters.threads)"
        process.environment = environment
        // stderr goes to a file: reading two pipes one after the other can deadlock once the
        // second fills its buffer.
        let errURL = FileManager.default.temporaryDirectory.appendingPathComponent("valuealign-anchor-\(UUID().uuidString).log")
        guard FileManager.default.createFile(atPath: errURL.path, contents: nil), let err = try? FileHandle(forWritingTo: errURL) else {
            notes.append("anchor \(arguments.joined(separator: " ")) could not start: cannot create \(errURL.path)")
            return nil
        }
        defer {
            try? err.close()
            try? FileManager.default.removeItem(at: errURL)
        }
        let out = Pipe()
        process.standardOutput = out
        process.standardError = err
        do {
            try process.run()
        } catch {
            notes.append("anchor \(arguments.joined(separator: " ")) could not start: \(error)")
            return nil
        }
        let data = out.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        let errData = (try? Data(contentsOf: errURL)) ?? Data()
        let lastLine = String(decoding: data, as: UTF8.self).split(separator: "\n").last.map(String.init) ?? ""
        guard process.terminationStatus == 0,
              let object = try? JSONSerialization.jsonObject(with: Data(lastLine.utf8)) as? [String: Any],
              let fwd = (object["fwd_ms"] as? NSNumber)?.doubleValue,
              let fwdBwd = (object["fwd_bwd_ms"] as? NSNumber)?.doubleValue else {
            let reason = String(decoding: errData, as: UTF8.self).split(separator: "\n").suffix(3).joined(separator: " | ")
            notes.append("anchor \(arguments.joined(separator: " ")) failed (status \(process.terminationStatus)): \(reason)")
            return nil
        }
        let version = (object["version"] as? String) ?? "?"
        return AnchorResult(version: version, fwd: fwd, fwdBwd: fwdBwd)
    }
}
