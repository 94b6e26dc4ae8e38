import Foundation
import Synchronization
public import MLXEngine
public import MLXNN

/// The arithmetic of many-row matmuls with a checkpoint's frozen weights.
public enum MatmulPrecision: String, Sendable, Codable, CaseIterable {
    /// float32 operands through BLAS (the default: exact dequantized weights).
    case float32
    /// bfloat16 operands with float32 accumulation on Intel AMX tiles (`Fast.bf16Linear`), the
    /// precision of PyTorch's bf16 autocast; only where AMX works (`Fast.amxAvailable`), only on
    /// the CPU, and only for frozen weights (a LoRA adapter's base layers, the tied output head
    /// when frozen): anything else stays float32. Few-row matmuls (decode) keep the packed kernel.
    case bfloat16
}

/// A frozen weight's bf16 packs, made on first use and dropped when the weight changes or the
/// precision goes back to float32.
final class BF16Cache: @unchecked Sendable {
    private let lock = NSLock()
    private var entry: (source: MLXArray, packed: Fast.BF16Weight)?
    var precision: MatmulPrecision = .float32 {
        didSet { if precision == .float32 { lock.withLock { entry = nil } } }
    }

    /// The packs of `weight` when the bf16 path applies to it, else nil.
    func packed(_ weight: MLXArray, frozen: Bool) throws -> Fast.BF16Weight? {
        guard precision == .bfloat16, frozen, Device.default.kind == .cpu, Fast.amxAvailable else { return nil }
        return try lock.withLock {
            if let entry, entry.source === weight { return entry.packed }
            let packed = try Fast.BF16Weight(weight)
            entry = (weight, packed)
            return packed
        }
    }
}

/// A layer whose many-row matmuls can run in bfloat16 (`MatmulPrecision`).
protocol BF16Capable: AnyObject {
    var bf16: BF16Cache { get }
}

extension Module {
    /// Sets the precision of the many-row matmuls of every checkpoint layer in this tree
    /// (`HybridLinear`, `HybridEmbedding`) and returns the one the first layer had. The trainers
    /// set `.bfloat16` for a run when AMX works and restore the previous setting after it.
    @discardableResult
    public func setMatmulPrecision(_ precision: MatmulPrecision) -> MatmulPrecision {
        var previous: MatmulPrecision?
        for (_, module) in namedModules() {
            if precision == .float32, let holder = module as? any FusedProjectionHolder {
                for fused in holder.fusedProjections { fused.dropBF16() }
            }
            guard let layer = module as? any BF16Capable else { continue }
            if previous == nil { previous = layer.bf16.precision }
            layer.bf16.precision = precision
        }
        return previous ?? .float32
    }
}

/// OpenBLAS's threads while a training run is on (TrainingRunner, bench train). OpenBLAS's own
/// thread team wakes for each GEMM and then its idle workers spin in `sched_yield` for ~0.1 s
/// (THREAD_TIMEOUT), holding the cores that the kernel pool (attention, norms, rope, log-softmax)
/// needs: 11% of a bf16 `bench train` profile on 2 cores, and in float32 the pool's worker was
/// woken onto the caller's core and ran after it. So training runs OpenBLAS single-threaded and
/// the big products go to the kernel pool instead: in bfloat16 the AMX kernels, in float32
/// `Fast.linear`'s blocks, which then run in parallel. Process-wide while a run lasts; runs that
/// overlap in one process (a server's jobs, tests) share it, and the last one puts the count back.
public enum TrainingBLASThreads {
    /// Training runs in progress that asked for it, and OpenBLAS's count before the first.
    private static let state = Mutex<(runs: Int, saved: Int)>((0, 0))

    /// Makes OpenBLAS single-threaded on the CPU when the kernel pool can take the big products
    /// (bfloat16 with AMX, or float32 splitting in `Fast.linear`). Returns whether this call took
    /// part; pass that to `leave` when the run ends. Runs overlapping in one process (a server's
    /// jobs, tests) share it: the first saves the count, the last puts it back.
    public static func enter(_ precision: MatmulPrecision) -> Bool {
        guard Device.default.kind == .cpu, (precision == .bfloat16 && Fast.amxAvailable) || Fast.canSplitGEMMs else { return false }
        return state.withLock { s in
            if s.runs == 0 {
                guard let current = Engine.blasThreads, current > 1 else { return false }
                s.saved = current
                Engine.blasThreads = 1
            }
            s.runs += 1
            return true
        }
    }

    public static func leave(_ entered: Bool) {
        guard entered else { return }
        state.withLock { s in
            s.runs -= 1
            if s.runs == 0 { Engine.blasThreads = s.saved }
        }
    }

    /// Runs inside `enter` / `leave` now.
    public static var activeRuns: Int { state.withLock { $0.runs } }

    /// OpenBLAS's thread count outside training runs: the saved count while one is on.
    public static var outsideCount: Int? { state.withLock { s in s.runs > 0 ? s.saved : Engine.blasThreads } }
}

/// A checkpoint's packed quantized matrix kept beside its float32 copy.
public struct PackedWeight: @unchecked Sendable {
    public var weight: MLXArray
    public var scales: MLXArray
    public var biases: MLXArray?
    public var groupSize: Int
    public var bits: Int

    /// x @ dequantize(W)^T through the few-rows kernel.
    func apply(_ x: MLXArray) throws -> MLXArray {
        try Fast.quantizedMatmulRows(x, weight: weight, scales: scales, biases: biases, groupSize: groupSize, bits: bits)
    }
}

/// Row counts at or below which the packed weights serve a matmul (`WeightPrecision.hybrid`),
/// outside gradient transforms (`GradientTrace`): their backward would dequantise the whole
/// matrix each time, so differentiated calls take the float32 or bfloat16 path at any size.
///
/// Measured on this project's 2-core AVX-512 machine (`valuealign bench quantized --rows 16 32 64`,
/// Benchmarks/kernels `--qmm`): the kernel reads 4 or 8 bits per weight, and from 8 rows dequantises
/// each weight tile once for all rows, so it beats or matches float32 OpenBLAS (which reads 32 bits
/// per weight) up to about 64 rows; prefill and training batches (hundreds of rows) go to OpenBLAS.
/// Decode steps of up to this many sequences also run fused (`Fast.decodeLayer`).
public enum HybridThreshold {
    public static let rows = 64

    /// Whether the packed weights serve a product of `x` [..., inputs]: few rows, and not under a
    /// gradient transform.
    static func packedServes(_ x: MLXArray, inputs: Int) -> Bool {
        x.size / max(inputs, 1) <= rows && !GradientTrace.isActive
    }
}

/// A linear layer with a float32 weight (the parameter; fast BLAS matmuls for prefill, big
/// batches and training) and the packed quantized weight it came from (decode steps: a fraction
/// of the memory traffic). Both describe the same matrix: the float weight is the exact
/// dequantization of the packed one.
public final class HybridLinear: Linear, BF16Capable, @unchecked Sendable {
    public let packed: PackedWeight
    let bf16 = BF16Cache()

    public init(weight: MLXArray, bias: MLXArray?, packed: PackedWeight) {
        self.packed = packed
        super.init(weight: weight, bias: bias)
    }

    public override func callAsFunction(_ x: MLXArray) throws -> MLXArray {
        let y: MLXArray
        if HybridThreshold.packedServes(x, inputs: inputDimensions) {
            y = try packed.apply(x)
        } else if let w = try bf16.packed(weight, frozen: isWeightFrozen) {
            y = try Fast.bf16Linear(x, w)
        } else {
            return try super.callAsFunction(x)
        }
        if let bias { return try y + bias }
        return y
    }
}

/// An embedding table whose use as the tied output head reads the packed weights for few rows.
public final class HybridEmbedding: Embedding, BF16Capable, @unchecked Sendable {
    public let packed: PackedWeight
    let bf16 = BF16Cache()

    public init(weight: MLXArray, packed: PackedWeight) {
        self.packed = packed
        super.init(weight: weight)
    }

    public override func asLinear(_ x: MLXArray) throws -> MLXArray {
        if HybridThreshold.packedServes(x, inputs: dimensions) { return try packed.apply(x) }
        if let w = try bf16.packed(weight, frozen: isWeightFrozen) { return try Fast.bf16Linear(x, w) }
        return try super.asLinear(x)
    }
}

/// Several `HybridLinear` layers that read the same input, fused along their outputs: one product
/// instead of one per layer. Used for q/k/v and gate/up, in two places:
/// - decode steps and other few-row products outside gradients (`callAsFunction`): one kernel call,
///   one pass over the packed weights. Applies only while the layers are still the ones it was
///   built from (a LoRA adapter replacing one of them turns it off).
/// - bfloat16 training and scoring (`bf16`): one AMX product over the concatenated weights, with
///   each LoRA adapter's update added to its layer's part. x is rounded to bf16 once instead of once
///   per layer, the input gradient is one product (K = 960 for q/k/v, not 576 + 192 + 192) instead
///   of three and two additions, and the narrow k/v products (192 columns) run as part of a wide one.
final class FusedProjection: @unchecked Sendable {
    /// Whether the bf16 fused path is used: on, unless the environment sets
    /// `VALUEALIGN_FUSED_PROJECTIONS=0` (for comparisons); tests switch it per process.
    static let bf16Enabled = Atomic<Bool>(ProcessInfo.processInfo.environment["VALUEALIGN_FUSED_PROJECTIONS"] != "0")

    let packed: PackedWeight
    let sources: [HybridLinear]
    let widths: [Int]
    let bias: MLXArray?
    private let bf16Lock = NSLock()
    private var bf16Entry: (weights: [MLXArray], packed: Fast.BF16Weight)?

    /// nil when the layers are not all hybrid with the same quantization.
    init?(_ layers: [any LinearLayer]) throws {
        let hybrid = layers.compactMap { $0 as? HybridLinear }
        guard hybrid.count == layers.count, let first = hybrid.first,
              hybrid.allSatisfy({ $0.packed.bits == first.packed.bits && $0.packed.groupSize == first.packed.groupSize
                  && ($0.packed.biases == nil) == (first.packed.biases == nil) && $0.packed.scales.dtype == first.packed.scales.dtype }),
              hybrid.allSatisfy({ ($0.bias == nil) == (first.bias == nil) }) else { return nil }
        packed = PackedWeight(
            weight: try concatenated(hybrid.map(\.packed.weight), axis: 0),
            scales: try concatenated(hybrid.map(\.packed.scales), axis: 0),
            biases: first.packed.biases == nil ? nil : try concatenated(hybrid.compactMap(\.packed.biases), axis: 0),
            groupSize: first.packed.groupSize, bits: first.packed.bits)
        bias = first.bias == nil ? nil : try concatenated(hybrid.compactMap(\.bias), axis: 0)
        sources = hybrid
        widths = hybrid.map(\.outputDimensions)
        try eval([packed.weight, packed.scales] + [packed.biases, bias].compactMap { $0 })
    }

    /// The outputs of each layer, or nil when the fused path does not apply.
    func callAsFunction(_ x: MLXArray, current: [any LinearLayer]) throws -> [MLXArray]? {
        guard HybridThreshold.packedServes(x, inputs: sources[0].inputDimensions),
              current.count == sources.count, zip(current, sources).allSatisfy({ ($0 as AnyObject) === $1 }) else { return nil }
        var y = try packed.apply(x)
        if let bias { y = try y + bias }
        var parts: [MLXArray] = []
        var start = 0
        for w in widths {
            parts.append(try y.index([.ellipsis, .stride(start, start + w, 1)]))
            start += w
        }
        return parts
    }

    /// The fused product in bfloat16, x [..., in] -> [..., sum of widths] (the layers' outputs side
    /// by side, each plus its LoRA update), when every current layer is its source or a LoRA
    /// adapter on it, the bf16 path serves the sources (`MatmulPrecision.bfloat16`, frozen, AMX,
    /// CPU), and the packed few-row path does not. nil otherwise.
    func bf16(_ x: MLXArray, current: [any LinearLayer]) throws -> (fused: MLXArray, adapters: [LoRALinear?])? {
        guard Self.bf16Enabled.load(ordering: .relaxed), current.count == sources.count,
              !HybridThreshold.packedServes(x, inputs: sources[0].inputDimensions),
              Fast.amxAvailable, Device.default.kind == .cpu,
              sources.allSatisfy({ $0.bf16.precision == .bfloat16 && $0.isWeightFrozen }) else { return nil }
        var adapters: [LoRALinear?] = []
        for (layer, source) in zip(current, sources) {
            if (layer as AnyObject) === source {
                adapters.append(nil)
            } else if let lora = layer as? LoRALinear, (lora.base as AnyObject) === source {
                adapters.append(lora)
            } else {
                return nil
            }
        }
        let weights = sources.map(\.weight)
        let w = try bf16Lock.withLock { () throws -> Fast.BF16Weight in
            if let entry = bf16Entry, entry.weights.count == weights.count, zip(entry.weights, weights).allSatisfy({ $0 === $1 }) {
                return entry.packed
            }
            let packed = try Fast.BF16Weight(try concatenated(weights, axis: 0))
            bf16Entry = (weights, packed)
            return packed
        }
        var y = try Fast.bf16Linear(x, w)
        if let bias { y = try y + bias }
        return (y, adapters)
    }

    /// `bf16`'s fused output split into the layers' outputs, each plus its LoRA update.
    func bf16Parts(_ x: MLXArray, current: [any LinearLayer]) throws -> [MLXArray]? {
        guard let (y, adapters) = try bf16(x, current: current) else { return nil }
        return try parts(of: y, adapters: adapters, input: x)
    }

    /// The fused output y split into the layers' outputs, each plus its adapter's update of `input`.
    func parts(of y: MLXArray, adapters: [LoRALinear?], input x: MLXArray) throws -> [MLXArray] {
        var bounds: [Int] = []
        var end = 0
        for w in widths.dropLast() {
            end += w
            bounds.append(end)
        }
        var parts = try y.split(indices: bounds, axis: -1)
        for (i, adapter) in adapters.enumerated() {
            if let adapter { parts[i] = try parts[i] + adapter.update(x) }
        }
        return parts
    }

    /// Whether the bf16 pack has been made (the bf16 path ran since the precision was set).
    var hasBF16Pack: Bool { bf16Lock.withLock { bf16Entry != nil } }

    /// Drops the bf16 pack (the precision went back to float32).
    func dropBF16() { bf16Lock.withLock { bf16Entry = nil } }
}

/// A module holding fused projections, whose bf16 packs go when the precision returns to float32.
protocol FusedProjectionHolder: AnyObject {
    var fusedProjections: [FusedProjection] { get }
}
