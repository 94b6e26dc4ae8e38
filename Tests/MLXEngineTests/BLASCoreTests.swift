import MLXEngine
import Testing

@Suite struct BLASCoreTests {
    static let avx512: Set<String> = ["sse3", "avx", "avx2", "fma", "avx512f", "avx512cd", "avx512bw", "avx512dq", "avx512vl"]

    @Test func genericFallbackOnAnAVX512CPUAsksForSkylakeX() {
        #expect(BLASCore.recommended(current: "Prescott", flags: Self.avx512) == "SKYLAKEX")
    }

    @Test func genericFallbackOnAnAVX2CPUAsksForHaswell() {
        #expect(BLASCore.recommended(current: "Prescott", flags: ["sse3", "avx", "avx2", "fma"]) == "HASWELL")
        // AVX-512F alone (no BW/DQ/VL) is not enough for the SkylakeX kernels.
        #expect(BLASCore.recommended(current: "Prescott", flags: ["avx2", "fma", "avx512f"]) == "HASWELL")
    }

    @Test func aKnownCoreOrAnOldCPUIsLeftAlone() {
        #expect(BLASCore.recommended(current: "SkylakeX", flags: Self.avx512) == nil)
        #expect(BLASCore.recommended(current: "Haswell", flags: Self.avx512) == nil)
        #expect(BLASCore.recommended(current: "Prescott", flags: ["sse3"]) == nil)
        #expect(BLASCore.recommended(current: nil, flags: Self.avx512) == nil)
    }

    @Test func theProcessReportsItsOpenBLASCore() throws {
        // The test binaries link Debian's OpenBLAS (the bridge's linker settings).
        let core = try #require(BLASCore.current)
        #expect(!core.isEmpty)
    }
}
