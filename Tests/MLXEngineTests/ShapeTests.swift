import MLXEngine
import Testing
import ValueAlignTesting

/// Reshaping, transposing, joining and splitting.
@Suite("Shapes")
struct ShapeTests {
    /// 0..<24 as float32 in shape [2, 3, 4].
    let cube = try! MLXArray.arange(24, dtype: .float32).reshaped(2, 3, 4)
    let values = (0..<24).map(Double.init)

    @Test("reshape keeps row-major order; -1 is inferred")
    func reshape() throws {
        let r = try cube.reshaped([4, -1])
        #expect(r.shape == [4, 6])
        expectClose(r, values, shape: [4, 6], atol: 0, rtol: 0)
        #expect(try cube.reshaped(24).shape == [24])
        #expect(try cube.reshaped([2, 12]).shape == [2, 12])
        #expect(try cube.flattened().shape == [24])
        #expect(try cube.flattened(start: 1).shape == [2, 12])
        #expect(try cube.flattened(start: 0, end: 1).shape == [6, 4])
    }

    @Test("transpose reverses or permutes axes, moving the data")
    func transpose() throws {
        let t = try cube.transposed()
        #expect(t.shape == [4, 3, 2])
        // t[i, j, k] = cube[k, j, i] = 12k + 4j + i
        var expected: [Double] = []
        for i in 0..<4 { for j in 0..<3 { for k in 0..<2 { expected.append(Double(12 * k + 4 * j + i)) } } }
        expectClose(t, expected, shape: [4, 3, 2], atol: 0, rtol: 0)

        let p = try cube.transposed(1, 0, 2)
        #expect(p.shape == [3, 2, 4])
        expectClose(try p.index([.at(2), .at(1)]), [20, 21, 22, 23], shape: [4], atol: 0, rtol: 0)

        let m = try MLXArray([1, 2, 3, 4, 5, 6] as [Float], shape: [2, 3])
        expectClose(try m.T, [1, 4, 2, 5, 3, 6], shape: [3, 2], atol: 0, rtol: 0)
        expectClose(try m.swappedAxes(0, 1), [1, 4, 2, 5, 3, 6], shape: [3, 2], atol: 0, rtol: 0)
        expectClose(try m.T.contiguous(), [1, 4, 2, 5, 3, 6], shape: [3, 2], atol: 0, rtol: 0)
    }

    @Test("expand, squeeze, broadcast, repeat")
    func expandSqueeze() throws {
        let v = try MLXArray([1, 2, 3] as [Float], shape: [3])
        #expect(try v.expandedDimensions(axis: 0).shape == [1, 3])
        #expect(try v.expandedDimensions(axes: [0, 2]).shape == [1, 3, 1])
        #expect(try v.reshaped(1, 3, 1).squeezed().shape == [3])
        #expect(try v.reshaped(1, 3, 1).squeezed(axis: 2).shape == [1, 3])
        let b = try v.broadcast(to: [2, 3])
        expectClose(b, [1, 2, 3, 1, 2, 3], shape: [2, 3])
        expectClose(try v.repeated(2, axis: 0), [1, 1, 2, 2, 3, 3], shape: [6])
    }

    @Test("concatenate along the first and last axes")
    func concatenate() throws {
        let a = try MLXArray([1, 2, 3, 4] as [Float], shape: [2, 2])
        let b = try MLXArray([5, 6] as [Float], shape: [1, 2])
        let c = try MLXArray([7, 8] as [Float], shape: [2, 1])
        expectClose(try concatenated([a, b]), [1, 2, 3, 4, 5, 6], shape: [3, 2])
        expectClose(try concatenated([a, c], axis: 1), [1, 2, 7, 3, 4, 8], shape: [2, 3])
        expectClose(try concatenated([a, c], axis: -1), [1, 2, 7, 3, 4, 8], shape: [2, 3])
        expectClose(try concatenated([a]), [1, 2, 3, 4], shape: [2, 2])
    }

    @Test("split into equal parts and at indices; stack")
    func splitStack() throws {
        let parts = try cube.split(parts: 2, axis: 2)
        #expect(parts.count == 2)
        #expect(parts.map(\.shape) == [[2, 3, 2], [2, 3, 2]])
        expectClose(try parts[1].index([.at(0), .at(0)]), [2, 3], shape: [2], atol: 0, rtol: 0)

        let pieces = try cube.split(indices: [1, 3], axis: 2)
        #expect(pieces.map(\.shape) == [[2, 3, 1], [2, 3, 2], [2, 3, 1]])
        expectClose(try pieces[2].flattened(), [3, 7, 11, 15, 19, 23], shape: [6], atol: 0, rtol: 0)
        // Splitting and concatenating again is the identity.
        expectClose(try concatenated(pieces, axis: 2), cube, atol: 0, rtol: 0)

        let a = try MLXArray([1, 2] as [Float], shape: [2]), b = try MLXArray([3, 4] as [Float], shape: [2])
        expectClose(try stacked([a, b]), [1, 2, 3, 4], shape: [2, 2])
        expectClose(try stacked([a, b], axis: 1), [1, 3, 2, 4], shape: [2, 2])
    }

    @Test("pad, tril, triu")
    func padTri() throws {
        let m = try MLXArray([1, 2, 3, 4] as [Float], shape: [2, 2])
        expectClose(try m.padded(low: [1, 0], high: [0, 1], value: -1), [-1, -1, -1, 1, 2, -1, 3, 4, -1], shape: [3, 3])
        let sq = try MLXArray.ones([3, 3])
        expectClose(try sq.tril(), [1, 0, 0, 1, 1, 0, 1, 1, 1], shape: [3, 3])
        expectClose(try sq.triu(1), [0, 1, 1, 0, 0, 1, 0, 0, 0], shape: [3, 3])
    }
}
