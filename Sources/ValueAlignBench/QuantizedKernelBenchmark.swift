import Foundation
import MLXEngine

/// `valuealign bench quantized`: ValueAlign's quantised matmul kernel (`Fast.quantizedMatmulRows`)
/// against MLX's `quantizedMatmul` and a float32 matmul through OpenBLAS, on SmolLM2-135M's decode
/// shapes, and the sum over one token's matmuls (30 layers x 7 projections + the tied 8-bit head).
///
/// Every timed call uses a different weight matrix of the same shape, cycling through a working
/// set larger than the CPU's last-level cache, because in decode every weight comes from memory
/// once per token. With the SmolLM2 GGUF file these are the model's own tensors (each layer's
/// matrix of that kind); without it, random weights quantised the same way (4-bit layers, 8-bit
/// head, groups of 32, float16 scales).
public struct QuantizedKernelBenchmark: Sendable {
    public struct Parameters: Sendable {
        /// Timed calls per figure at most (median reported); fewer when a figure's time budget runs out.
        public var iterations = 60
        /// Rows of x.
        public var rows = [1, 4, 16]
        /// The SmolLM2-135M GGUF file; nil: random weights.
        public var modelPath: String?
        /// Seconds of timed calls per figure at most (at least 3 calls).
        public var budgetSeconds = 1.5
        public init() {}
    }

    /// A matrix kind of the model.
    struct Kind {
        var name: String
        var tensor: String  // GGUF name inside a block ("attn_q"), or the full name for the head
        var outputs: Int
        var inputs: Int
        var bits: Int
        var perToken: Int
    }

    static let kinds: [Kind] = [
        Kind(name: "q,o 576->576", tensor: "attn_q", outputs: 576, inputs: 576, bits: 4, perToken: 60),
        Kind(name: "k,v 576->192", tensor: "attn_k", outputs: 192, inputs: 576, bits: 4, perToken: 60),
        Kind(name: "gate,up 576->1536", tensor: "ffn_gate", outputs: 1536, inputs: 576, bits: 4, perToken: 60),
        Kind(name: "down 1536->576", tensor: "ffn_down", outputs: 576, inputs: 1536, bits: 4, perToken: 30),
        Kind(name: "head 576->49152 8-bit", tensor: "token_embd", outputs: 49152, inputs: 576, bits: 8, perToken: 1),
    ]

    /// One quantised matrix and its float32 copy.
    struct Matrix {
        var weight: MLXArray
        var scales: MLXArray
        var biases: MLXArray
        var dense: MLXArray
        var bits: Int
        var packedBytes: Int { weight.size * weight.dtype.size + scales.size * scales.dtype.size + biases.size * biases.dtype.size }
    }

    public let parameters: Parameters
    public init(_ parameters: Parameters = .init()) { self.parameters = parameters }

    static let groupSize = 32

    /// Runs everything; `log` receives progress lines and the full per-shape table.
    public func run(log: (String) -> Void = { _ in }) throws -> BenchmarkReport {
        var report = BenchmarkReport(benchmark: "bench quantized")
        report.notes.append("MLX \(Engine.mlxVersion); BLAS provider \(Engine.blasProvider) (kernels \(BLASCore.current ?? "?")); kernel ISA \(Fast.kernelISA)")

        let file = try parameters.modelPath.map { try ArrayIO.loadGGUF($0) }
        report.notes.append(file != nil ? "weights: SmolLM2-135M GGUF (\(parameters.modelPath!))" : "weights: random, quantised like SmolLM2's GGUF (no model file given)")
        // The matrices of each kind: one per layer (two kinds share a shape: q and o, k and v, gate and up).
        var matrices: [[Matrix]] = []
        for kind in Self.kinds {
            log("preparing \(kind.name)")
            matrices.append(try makeMatrices(kind, file: file))
        }

        func pad(_ s: String, _ n: Int) -> String { s.padding(toLength: max(n, s.count), withPad: " ", startingAt: 0) }
        log(pad("shape", 22) + "   M |    ours us  MLX qmm us     f32 us | ours GB/s  f32 GB/s")
        for (kind, mats) in zip(Self.kinds, matrices) {
            for m in parameters.rows {
                let x = try MLXRandom.normal([m, kind.inputs], key: MLXRandom.key(UInt64(m)))
                try eval(x)
                var i = 0
                func next() -> Matrix { defer { i += 1 }; return mats[i % mats.count] }
                let ours = try timeMicroseconds {
                    let w = next()
                    try eval(Fast.quantizedMatmulRows(x, weight: w.weight, scales: w.scales, biases: w.biases, groupSize: Self.groupSize, bits: w.bits))
                }
                let mlx = try timeMicroseconds {
                    let w = next()
                    try eval(Fast.quantizedMatmul(x, weight: w.weight, scales: w.scales, biases: w.biases, transpose: true, groupSize: Self.groupSize, bits: w.bits))
                }
                let f32 = try timeMicroseconds {
                    let w = next()
                    try eval(x.matmul(w.dense.T))
                }
                let packed = Double(mats[0].packedBytes), dense = Double(kind.outputs * kind.inputs * 4)
                log(pad(kind.name, 22) + String(format: " %3d | %10.1f %10.1f %10.1f | %9.1f %9.1f", m, ours, mlx, f32, packed / ours / 1e3, dense / f32 / 1e3))
                let label = "\(kind.name) M=\(m)"
                report.figures.append(BenchmarkFigure(name: "\(label) vs f32", value: ours, unit: "us", anchorName: "float32 matmul (OpenBLAS)", anchorValue: f32, higherIsBetter: false, goal: m == 1 ? "> 1.0x" : nil))
                report.figures.append(BenchmarkFigure(name: "\(label) vs MLX qmm", value: ours, unit: "us", anchorName: "MLX quantized_matmul", anchorValue: mlx, higherIsBetter: false, goal: m == 1 ? "> 1.0x" : nil))
            }
        }

        log("one token's matmuls")
        let token = try tokenMilliseconds(matrices)
        report.figures.append(BenchmarkFigure(name: "token matmuls, eval each (ms)", value: token.oursEach, unit: "ms", anchorName: "float32 matmul (OpenBLAS)", anchorValue: token.f32Each, higherIsBetter: false))
        report.figures.append(BenchmarkFigure(name: "token matmuls, one graph (ms)", value: token.oursGraph, unit: "ms", anchorName: "float32 matmul (OpenBLAS)", anchorValue: token.f32Graph, higherIsBetter: false))
        report.figures.append(BenchmarkFigure(name: "token matmuls vs MLX qmm, one graph (ms)", value: token.oursGraph, unit: "ms", anchorName: "MLX quantized_matmul", anchorValue: token.mlxGraph, higherIsBetter: false))
        let packed = zip(Self.kinds, matrices).reduce(0) { $0 + $1.0.perToken * $1.1[0].packedBytes }
        report.notes.append(String(format: "one token reads %.1f MB of packed weights (float32: %.1f MB); 57 tok/s leaves 17.5 ms per token for everything",
                                   Double(packed) / 1e6, Double(zip(Self.kinds, matrices).reduce(0) { $0 + $1.0.perToken * $1.0.outputs * $1.0.inputs * 4 }) / 1e6))
        report.notes.append("times are medians; each call uses another matrix of the same shape (weights not in cache, as in decode)")
        return report
    }

    /// The matrices of one kind: the model's, one per layer, or random ones.
    func makeMatrices(_ kind: Kind, file: GGUFFile?) throws -> [Matrix] {
        var names: [String] = []
        if kind.tensor == "token_embd" {
            names = ["token_embd"]
        } else {
            // Both matrices of a shape in each layer: 60 for q/o, k/v and gate/up, 30 for down.
            let partner = ["attn_q": "attn_output", "attn_k": "attn_v", "ffn_gate": "ffn_up"][kind.tensor]
            for layer in 0..<30 {
                names.append("blk.\(layer).\(kind.tensor)")
                if let p = partner { names.append("blk.\(layer).\(p)") }
            }
        }
        var out: [Matrix] = []
        for (index, name) in names.enumerated() {
            let w: MLXArray, s: MLXArray, b: MLXArray
            if let file {
                guard let fw = file.tensors["\(name).weight"], let fs = file.tensors["\(name).scales"], let fb = file.tensors["\(name).biases"] else {
                    throw MLXError.invalidArgument("the model file has no quantised tensor \(name)")
                }
                (w, s, b) = (fw, fs, fb)
            } else {
                let key = try MLXRandom.key(UInt64(kind.outputs * 131 + kind.inputs + index))
                let dense = try MLXRandom.normal([kind.outputs, kind.inputs], std: 0.05, dtype: .float16, key: key)
                let q = try Fast.quantize(dense, groupSize: Self.groupSize, bits: kind.bits)
                (w, s, b) = (q.weight, q.scales, q.biases)
            }
            guard w.dim(0) == kind.outputs, w.dim(1) * 32 == kind.inputs * kind.bits else {
                throw MLXError.invalidArgument("\(name) has shape \(w.shape), expected \(kind.outputs) rows of \(kind.inputs) \(kind.bits)-bit weights")
            }
            let dense = try Fast.dequantize(w, scales: s.asType(.float32), biases: b.asType(.float32), groupSize: Self.groupSize, bits: kind.bits)
            try eval(w, s, b, dense)
            out.append(Matrix(weight: w, scales: s, biases: b, dense: dense, bits: kind.bits))
        }
        return out
    }

    /// Median microseconds of `body`, within the iteration count and time budget.
    func timeMicroseconds(_ body: () throws -> Void) throws -> Double {
        for _ in 0..<2 { try body() }
        var times: [Double] = []
        let start = DispatchTime.now().uptimeNanoseconds
        while times.count < max(3, parameters.iterations) {
            let t0 = DispatchTime.now().uptimeNanoseconds
            try body()
            let t1 = DispatchTime.now().uptimeNanoseconds
            times.append(Double(t1 - t0) / 1e3)
            if times.count >= 3, Double(t1 - start) / 1e9 > parameters.budgetSeconds { break }
        }
        times.sort()
        return times[times.count / 2]
    }

    struct TokenTimes {
        var oursEach: Double, oursGraph: Double, f32Each: Double, f32Graph: Double, mlxGraph: Double
    }

    /// One decode token's matmuls in model order, all with distinct weights, at M = 1: evaluated
    /// one call at a time, and as one graph evaluated once (as a decode step evaluates its token).
    func tokenMilliseconds(_ matrices: [[Matrix]]) throws -> TokenTimes {
        // Layer l uses q, k, v, o, gate, up, down: kinds 0, 1, 1, 0, 2, 2, 3.
        var sequence: [Matrix] = []
        for layer in 0..<30 {
            for (kind, slot) in [(0, 0), (1, 0), (1, 1), (0, 1), (2, 0), (2, 1), (3, 0)] {
                let mats = matrices[kind]
                sequence.append(mats[(layer * (kind == 3 ? 1 : 2) + slot) % mats.count])
            }
        }
        sequence.append(matrices[4][0])
        let x576 = try MLXRandom.normal([1, 576], key: MLXRandom.key(1)), x1536 = try MLXRandom.normal([1, 1536], key: MLXRandom.key(2))
        try eval(x576, x1536)
        func input(_ m: Matrix) -> MLXArray { m.dense.dim(1) == 576 ? x576 : x1536 }
        func ours(_ m: Matrix) throws -> MLXArray {
            try Fast.quantizedMatmulRows(input(m), weight: m.weight, scales: m.scales, biases: m.biases, groupSize: Self.groupSize, bits: m.bits)
        }
        func mlx(_ m: Matrix) throws -> MLXArray {
            try Fast.quantizedMatmul(input(m), weight: m.weight, scales: m.scales, biases: m.biases, transpose: true, groupSize: Self.groupSize, bits: m.bits)
        }
        func f32(_ m: Matrix) throws -> MLXArray { try input(m).matmul(m.dense.T) }
        let iterations = max(5, parameters.iterations / 6)
        func each(_ f: (Matrix) throws -> MLXArray) throws -> Double {
            try medianMilliseconds(warmup: 1, iterations: iterations) { for m in sequence { try eval(f(m)) } }
        }
        func graph(_ f: (Matrix) throws -> MLXArray, iterations: Int) throws -> Double {
            try medianMilliseconds(warmup: 1, iterations: iterations) { try eval(sequence.map(f)) }
        }
        return TokenTimes(oursEach: try each(ours), oursGraph: try graph(ours, iterations: iterations),
                          f32Each: try each(f32), f32Graph: try graph(f32, iterations: iterations),
                          mlxGraph: try graph(mlx, iterations: 3))
    }
}
