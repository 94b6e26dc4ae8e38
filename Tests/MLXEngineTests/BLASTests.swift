import MLXEngine
import Testing
import ValueAlignTesting

/// MLX's float32 matmuls must run on OpenBLAS (the wheel's bundled reference BLAS is ~80x slower).
@Suite("BLAS")
struct BLASTests {
    @Test("cblas_sgemm resolves to OpenBLAS")
    func provider() {
        let provider = Engine.blasProvider
        #expect(provider.lowercased().contains("openblas"), "cblas_sgemm comes from \(provider)")
        #expect(!Engine.mlxVersion.isEmpty)
    }

    @Test("OpenBLAS's thread count can be read and set; the allocator settings take on glibc")
    func threadsAndAllocator() throws {
        let threads = try #require(Engine.blasThreads, "OpenBLAS serves cblas here")
        #expect(threads >= 1)
        defer { Engine.blasThreads = threads }
        Engine.blasThreads = 1
        #expect(Engine.blasThreads == 1)
        Engine.blasThreads = 0  // ignored
        #expect(Engine.blasThreads == 1)
        #if canImport(Glibc)
        #expect(Memory.keepFreedMemory())
        #endif
    }

    @Test("a 512x512 float32 matmul through MLX equals cblas_sgemm and exact dot products")
    func matmul512() throws {
        let n = 512
        let a = Fixtures.uniformValues(n * n, seed: 1).map(Float.init)
        let b = Fixtures.uniformValues(n * n, seed: 2).map(Float.init)
        var c = [Float](repeating: 0, count: n * n)
        try Engine.blasSgemm(m: n, n: n, k: n, a: a, b: b, c: &c)
        let product = try MLXArray(a, shape: [n, n]).matmul(MLXArray(b, shape: [n, n]))
        #expect(product.shape == [n, n])
        let mlx = try product.asArray(Float.self)
        expectClose(mlx.map(Double.init), c.map(Double.init), atol: 1e-4, rtol: 1e-4, "MLX vs cblas_sgemm")

        // Both against exact (double) dot products at a spread of positions.
        for (i, j) in [(0, 0), (1, 511), (255, 256), (511, 0), (511, 511), (100, 37)] {
            var exact = 0.0
            for k in 0..<n { exact += Double(a[i * n + k]) * Double(b[k * n + j]) }
            #expect(Swift.abs(Double(mlx[i * n + j]) - exact) < 1e-3, "MLX [\(i), \(j)]")
            #expect(Swift.abs(Double(c[i * n + j]) - exact) < 1e-3, "sgemm [\(i), \(j)]")
        }
    }
}
