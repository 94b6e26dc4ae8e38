internal import CMLXBridge

/// Where MLX runs work. The CPU is always there; GPUs exist in builds made with
/// `VALUEALIGN_MLX_BACKEND=cuda` on a machine with an NVIDIA GPU.
public struct Device: Sendable, Equatable, CustomStringConvertible {
    public enum Kind: Sendable { case cpu, gpu }
    public var kind: Kind
    public var index: Int

    public static let cpu = Device(kind: .cpu, index: 0)
    public static let gpu = Device(kind: .gpu, index: 0)

    public var description: String { "\(kind == .cpu ? "cpu" : "gpu"):\(index)" }

    /// Whether this build of MLX can run on `kind`.
    public static func isAvailable(_ kind: Kind) -> Bool { mlxb_device_available(kind == .gpu ? MLXB_GPU : MLXB_CPU) }

    /// Whether the package was built against the CUDA wheel.
    public static var isCUDABuild: Bool { mlxb_is_cuda_build() }

    /// The device new operations run on.
    public static var `default`: Device {
        var type = MLXB_CPU
        var index: Int32 = 0
        _ = mlxb_default_device(&type, &index)
        return Device(kind: type == MLXB_GPU ? .gpu : .cpu, index: Int(index))
    }

    /// Makes `device` the default; throws if this build cannot use it.
    public static func setDefault(_ device: Device) throws(MLXError) {
        try check(mlxb_set_default_device(device.kind == .gpu ? MLXB_GPU : MLXB_CPU, Int32(device.index)), "set_default_device")
    }

    /// Parses "cpu", "gpu", "gpu:1".
    public init?(_ text: String) {
        let parts = text.lowercased().split(separator: ":")
        guard let first = parts.first, parts.count <= 2 else { return nil }
        let idx = parts.count == 2 ? Int(parts[1]) : 0
        guard let idx, idx >= 0 else { return nil }
        switch first {
        case "cpu": self.init(kind: .cpu, index: idx)
        case "gpu", "cuda": self.init(kind: .gpu, index: idx)
        default: return nil
        }
    }

    public init(kind: Kind, index: Int) {
        self.kind = kind
        self.index = index
    }
}

/// MLX's memory accounting.
public enum Memory {
    /// Bytes held by live arrays, the peak since the last reset, and the allocator's cache.
    public static var stats: (active: Int, peak: Int, cache: Int) {
        var a = 0, p = 0, c = 0
        _ = mlxb_memory_stats(&a, &p, &c)
        return (a, p, c)
    }
    public static func resetPeak() { _ = mlxb_reset_peak_memory() }
    public static func clearCache() { _ = mlxb_clear_cache() }

    /// Keeps freed memory in the process for reuse instead of handing it back to the kernel.
    ///
    /// On the CPU MLX allocates every array with `malloc` and frees it when the array dies. glibc
    /// serves blocks over 128 KB with a fresh `mmap` each time and returns freed heap tops over
    /// 128 KB, so every activation of a training step arrives as new pages that the kernel faults
    /// in and zeroes one by one: 3 million page faults and 15 s of system time in a 50 s `bench
    /// train` run on the 2-core Xeon. The bridge already applies these settings when it loads, before
    /// any thread exists (a thread keeps the malloc arena it first used, so only then does one
    /// arena for all threads take hold); `VALUEALIGN_MALLOC=default` turns that off, and this call
    /// applies the thresholds later. Returns whether glibc took the settings (false elsewhere).
    @discardableResult
    public static func keepFreedMemory(mmapThreshold: Int = 1 << 30, trimThreshold: Int = 1 << 30) -> Bool {
        mlxb_configure_allocator(mmapThreshold, trimThreshold, 0) == 3
    }
}

/// Facts about the engine build.
public enum Engine {
    /// MLX's version string.
    public static var mlxVersion: String { String(cString: mlxb_mlx_version()) }
    /// The shared object that serves `cblas_sgemm` in this process (OpenBLAS when linked right).
    public static var blasProvider: String { String(cString: mlxb_blas_provider()) }

    /// OpenBLAS's thread count (nil when OpenBLAS does not serve cblas here). Setting it is
    /// process-wide; values below 1 are ignored.
    public static var blasThreads: Int? {
        get { let n = mlxb_blas_threads(); return n > 0 ? Int(n) : nil }
        set { if let newValue, newValue >= 1 { _ = mlxb_set_blas_threads(Int32(newValue)) } }
    }

    /// Calls `cblas_sgemm` directly: c = a (m x k) * b (k x n), row-major. For benchmarks.
    public static func blasSgemm(m: Int, n: Int, k: Int, a: [Float], b: [Float], c: inout [Float]) throws(MLXError) {
        guard a.count == m * k, b.count == k * n, c.count == m * n else { throw .invalidArgument("blasSgemm: buffer sizes do not match m, n, k") }
        try check(mlxb_blas_sgemm(Int32(m), Int32(n), Int32(k), a, b, &c), "cblas_sgemm")
    }
}
