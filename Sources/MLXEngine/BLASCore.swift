#if canImport(Glibc)
import Glibc
#endif
import Foundation

/// Which OpenBLAS kernel set ("core") serves MLX's float32 matmuls, and how an executable picks a
/// better one when OpenBLAS does not know the CPU.
///
/// OpenBLAS chooses its kernels from the CPU's model number when the library loads. Debian 12's
/// OpenBLAS 0.3.21 predates Intel's 5th-generation Xeon (Emerald Rapids, family 6 model 207): it
/// falls back to "Prescott", its SSE3 kernels from 2004, and a float32 matmul runs ~4x slower than
/// with the AVX-512 ("SkylakeX") kernels the CPU supports (measured: prefill of 512 tokens
/// 174 -> 727 tok/s). The choice can only be overridden before the library loads, through the
/// `OPENBLAS_CORETYPE` environment variable, so an executable that wants it re-executes itself
/// once with the variable set (`reexecWithTunedBLASIfNeeded`). A core named by the user is never
/// changed.
public enum BLASCore {
    /// The kernel set OpenBLAS chose (e.g. "SkylakeX", "Haswell", "Prescott"), or nil when the
    /// process does not use OpenBLAS.
    public static var current: String? {
        typealias CoreName = @convention(c) () -> UnsafePointer<CChar>?
        // The program's own handle searches every loaded library, as RTLD_DEFAULT does.
        guard let program = dlopen(nil, RTLD_NOW), let symbol = dlsym(program, "openblas_get_corename"),
              let name = unsafeBitCast(symbol, to: CoreName.self)() else { return nil }
        return String(cString: name)
    }

    /// The CPU's feature flags (Linux: /proc/cpuinfo), empty when unknown.
    static func cpuFlags() -> Set<String> {
        guard let info = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8),
              let line = info.split(separator: "\n").first(where: { $0.hasPrefix("flags") }),
              let colon = line.firstIndex(of: ":") else { return [] }
        return Set(line[line.index(after: colon)...].split(separator: " ").map(String.init))
    }

    /// The core to ask for instead of `current`, or nil when OpenBLAS's own choice stands: only
    /// when it fell back to its generic x86-64 kernels ("Prescott") on a CPU with AVX-512
    /// (SkylakeX kernels) or AVX2 and FMA (Haswell kernels).
    public static func recommended(current: String?, flags: Set<String>) -> String? {
        guard let current, current.lowercased() == "prescott" else { return nil }
        if flags.isSuperset(of: ["avx512f", "avx512cd", "avx512bw", "avx512dq", "avx512vl"]) { return "SKYLAKEX" }
        if flags.isSuperset(of: ["avx2", "fma"]) { return "HASWELL" }
        return nil
    }

    /// Environment variable that marks a process already re-executed (prevents a loop).
    static let marker = "VALUEALIGN_BLAS_REEXEC"

    /// Re-executes the running program with `OPENBLAS_CORETYPE` set when `recommended` names a
    /// better core; returns (doing nothing) when OpenBLAS's choice stands, when the user set
    /// `OPENBLAS_CORETYPE` or `VALUEALIGN_BLAS_CORETYPE=keep`, after one re-execution, or when
    /// the re-execution fails. Call it first thing in `main`, before any thread starts.
    public static func reexecWithTunedBLASIfNeeded() {
        #if os(Linux)
        let env = ProcessInfo.processInfo.environment
        guard env["OPENBLAS_CORETYPE"] == nil, env[marker] == nil, env["VALUEALIGN_BLAS_CORETYPE"] != "keep",
              let core = recommended(current: current, flags: cpuFlags()) else { return }
        setenv("OPENBLAS_CORETYPE", core, 1)
        setenv(marker, "1", 1)
        let arguments = CommandLine.arguments
        var argv: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) }
        argv.append(nil)
        execv("/proc/self/exe", &argv)
        // execv returned: it failed; carry on with OpenBLAS's own choice.
        for p in argv { free(p) }
        unsetenv("OPENBLAS_CORETYPE")
        #endif
    }
}
