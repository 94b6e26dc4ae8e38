import MLXEngine
import Testing
import ValueAlignTesting

/// Subscripts (NumPy basic indexing) and gathers.
@Suite("Indexing")
struct IndexingTests {
    /// cube[i, j, k] = 12i + 4j + k, shape [2, 3, 4].
    let cube = try! MLXArray.arange(24, dtype: .float32).reshaped(2, 3, 4)

    func value(_ i: Int, _ j: Int, _ k: Int) -> Double { Double(12 * i + 4 * j + k) }

    @Test("integer subscripts drop their axis; negatives count from the end")
    func integers() throws {
        expectClose(try cube[1], (12..<24).map(Double.init), shape: [3, 4])
        expectClose(try cube[1, 2], [20, 21, 22, 23], shape: [4])
        expectClose(try cube[1, 2, 3], [23], shape: [])
        expectClose(try cube[-1, -1, -1], [23], shape: [])
        expectClose(try cube[-2, 0, -4], [0], shape: [])
        expectClose(try cube[0, -1], [8, 9, 10, 11], shape: [4])
    }

    @Test("ranges keep their axis")
    func ranges() throws {
        expectClose(try cube[0, 1..<3], [4, 5, 6, 7, 8, 9, 10, 11], shape: [2, 4])
        expectClose(try cube[0, 1...2, 3], [7, 11], shape: [2])
        expectClose(try cube[1, ..<1, 2...], [14, 15], shape: [1, 2])
        expectClose(try cube[1, ...0, ..<2], [12, 13], shape: [1, 2])
        #expect(try cube[0..<1].shape == [1, 3, 4])
        #expect(try cube[ArrayIndex.all, 1].shape == [2, 4])
        // Out-of-range bounds clamp as in Python.
        #expect(try cube[ArrayIndex.stride(1, 100, 1)].shape == [1, 3, 4])
    }

    @Test("strides, negative strides and negative bounds")
    func strides() throws {
        let v = try MLXArray.arange(10, dtype: .float32)
        expectClose(try v[ArrayIndex.stride(nil, nil, 2)], [0, 2, 4, 6, 8], shape: [5])
        expectClose(try v[ArrayIndex.stride(1, nil, 3)], [1, 4, 7], shape: [3])
        expectClose(try v[ArrayIndex.stride(nil, nil, -1)], [9, 8, 7, 6, 5, 4, 3, 2, 1, 0], shape: [10])
        expectClose(try v[ArrayIndex.stride(7, 2, -2)], [7, 5, 3], shape: [3])
        expectClose(try v[ArrayIndex.stride(-3, nil, 1)], [7, 8, 9], shape: [3])
        expectClose(try v[ArrayIndex.stride(nil, -8, 1)], [0, 1], shape: [2])
        // Negative steps running off either end, as in Python: v[-100::-1] is empty,
        // v[:-100:-1] is the whole reversal, v[0::-1] is [0], v[3:-11:-1] is [3, 2, 1, 0].
        #expect(try v[ArrayIndex.stride(-100, nil, -1)].shape == [0])
        expectClose(try v[ArrayIndex.stride(nil, -100, -1)], (0..<10).reversed().map(Double.init), shape: [10])
        expectClose(try v[ArrayIndex.stride(0, nil, -1)], [0], shape: [1])
        expectClose(try v[ArrayIndex.stride(3, -11, -1)], [3, 2, 1, 0], shape: [4])
        expectClose(try v[ArrayIndex.stride(100, 5, -3)], [9, 6], shape: [2])
        expectClose(try cube[0, ArrayIndex.all, ArrayIndex.stride(nil, nil, -2)], [3, 1, 7, 5, 11, 9], shape: [3, 2])
    }

    @Test("newAxis inserts a size-1 axis where it appears")
    func newAxis() throws {
        #expect(try cube[ArrayIndex.newAxis].shape == [1, 2, 3, 4])
        let mid = try cube[ArrayIndex.all, ArrayIndex.newAxis, 1]
        #expect(mid.shape == [2, 1, 4])
        expectClose(mid, [4, 5, 6, 7, 16, 17, 18, 19], shape: [2, 1, 4])
        let v = try MLXArray.arange(3, dtype: .float32)
        #expect(try v[ArrayIndex.all, ArrayIndex.newAxis].shape == [3, 1])
    }

    @Test("ellipsis stands for the remaining axes")
    func ellipsis() throws {
        let last = try cube[ArrayIndex.ellipsis, 0]
        #expect(last.shape == [2, 3])
        expectClose(last, [0, 4, 8, 12, 16, 20], shape: [2, 3])
        expectClose(try cube[1, ArrayIndex.ellipsis, 1], [13, 17, 21], shape: [3])
        #expect(try cube[ArrayIndex.ellipsis].shape == [2, 3, 4])
        #expect(try cube[ArrayIndex.ellipsis, ArrayIndex.newAxis].shape == [2, 3, 4, 1])
    }

    @Test("updatingSlice replaces a region and leaves the original alone")
    func updatingSlice() throws {
        let z = try MLXArray.zeros([2, 3])
        let u = try MLXArray([1, 2] as [Float], shape: [1, 2])
        let r = try z.updatingSlice(start: [1, 1], stop: [2, 3], with: u)
        expectClose(r, [0, 0, 0, 0, 1, 2], shape: [2, 3])
        expectClose(z, [0, 0, 0, 0, 0, 0], shape: [2, 3])
    }

    @Test("take gathers rows (embedding lookup) and from the flattened array")
    func take() throws {
        let table = try MLXArray([0, 1, 10, 11, 20, 21] as [Float], shape: [3, 2])
        let ids = try MLXArray([2, 0, 2, 1], shape: [2, 2])
        let rows = try table.take(ids, axis: 0)
        #expect(rows.shape == [2, 2, 2])
        expectClose(rows, [20, 21, 0, 1, 20, 21, 10, 11], shape: [2, 2, 2])
        let flat = try table.take(MLXArray([5, 0, 3], shape: [3]))
        expectClose(flat, [21, 0, 11], shape: [3])
        let cols = try table.take(MLXArray([1, 1, 0], shape: [3]), axis: 1)
        expectClose(cols, [1, 1, 0, 11, 11, 10, 21, 21, 20], shape: [3, 3])
    }

    @Test("takeAlong picks one element per row; putAlong writes them")
    func takePutAlong() throws {
        let logits = try MLXArray([0.1, 0.2, 0.3, 1.1, 1.2, 1.3] as [Float], shape: [2, 3])
        let targets = try MLXArray([2, 0], shape: [2, 1])
        let picked = try logits.takeAlong(targets, axis: 1)
        expectClose(picked, [0.3, 1.1], shape: [2, 1])
        let written = try logits.putAlong(targets, values: MLXArray.full([2, 1], value: -5), axis: 1)
        expectClose(written, [0.1, 0.2, -5, -5, 1.2, 1.3], shape: [2, 3])
        // Along axis 0 with a broadcast index.
        let first = try logits.takeAlong(MLXArray([1, 0, 1], shape: [1, 3]), axis: 0)
        expectClose(first, [1.1, 0.2, 1.3], shape: [1, 3])
    }

    @Test("which selects element-wise")
    func which() throws {
        let x = try MLXArray([-1, 2, -3, 4] as [Float], shape: [4])
        expectClose(try MLXEngine.which(x .> 0, x, MLXArray.zeros([4])), [0, 2, 0, 4], shape: [4])
        expectClose(try MLXEngine.which(x .> 0, MLXArray(Float(1)), MLXArray(Float(-1))), [-1, 1, -1, 1], shape: [4])
    }

    @Test("index views read the right elements for every position", arguments: 0..<2, 0..<3)
    func everyPosition(_ i: Int, _ j: Int) throws {
        expectClose(try cube[i, j], (0..<4).map { value(i, j, $0) }, shape: [4], atol: 0, rtol: 0)
        expectClose(try cube[i - 2, j - 3, ArrayIndex.stride(nil, nil, -1)], (0..<4).reversed().map { value(i, j, $0) }, shape: [4], atol: 0, rtol: 0)
    }
}
