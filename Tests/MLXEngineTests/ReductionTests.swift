import Foundation
import MLXEngine
import Testing
import ValueAlignTesting

/// Reductions, softmax, cumulative sums and ordering, against values computed in Swift.
@Suite("Reductions, softmax, ordering")
struct ReductionTests {
    // [[1, 5, 2], [-3, 0, 4]]
    let m = try! MLXArray([1, 5, 2, -3, 0, 4] as [Float], shape: [2, 3])

    @Test("sum and mean over all, one and several axes, with keepDims")
    func sumMean() throws {
        expectClose(try m.sum(), [9], shape: [])
        expectClose(try m.sum(axis: 0), [-2, 5, 6], shape: [3])
        expectClose(try m.sum(axis: 1), [8, 1], shape: [2])
        expectClose(try m.sum(axis: -1, keepDims: true), [8, 1], shape: [2, 1])
        expectClose(try m.sum(axes: [0, 1], keepDims: true), [9], shape: [1, 1])
        expectClose(try m.mean(), [1.5], shape: [])
        expectClose(try m.mean(axis: 1), [8.0 / 3, 1.0 / 3], shape: [2])
        expectClose(try m.mean(axis: 0, keepDims: true), [-1, 2.5, 3], shape: [1, 3])
    }

    @Test("max, min, prod, variance, all, any")
    func otherReductions() throws {
        expectClose(try m.max(), [5], shape: [])
        expectClose(try m.max(axis: 0), [1, 5, 4], shape: [3])
        expectClose(try m.max(axis: 1, keepDims: true), [5, 4], shape: [2, 1])
        expectClose(try m.min(axis: 1), [1, -3], shape: [2])
        expectClose(try m.prod(axes: [1]), [10, 0], shape: [2])
        // Population variance of [1,5,2] is 26/9.
        expectClose(try m.variance(axes: [1]), [26.0 / 9, 74.0 / 9], shape: [2])
        let b = try m .> 0
        #expect(try b.all(axes: [1]).asArray(Bool.self) == [true, false])
        #expect(try b.any(axes: [1]).asArray(Bool.self) == [true, true])
    }

    @Test("argMax and argMin along an axis and over the flattened array")
    func argMaxMin() throws {
        let rows = try m.argMax(axis: 1)
        #expect(rows.shape == [2])
        #expect(try rows.asArray(Int32.self) == [1, 2])
        #expect(try m.argMax(axis: 0).asArray(Int32.self) == [0, 0, 1])
        #expect(try m.argMax().item(Int32.self) == 1)
        #expect(try m.argMin().item(Int32.self) == 3)
        #expect(try m.argMin(axis: 1, keepDims: true).shape == [2, 1])
        #expect(try m.argMin(axis: 1, keepDims: true).asArray(Int32.self) == [0, 0])
    }

    static func logSumExp(_ xs: [Double]) -> Double {
        let top = xs.max()!
        return top + Foundation.log(xs.map { Foundation.exp($0 - top) }.reduce(0, +))
    }

    @Test("logSumExp with and without keepDims, and stable for large inputs")
    func logSumExp() throws {
        let rows: [[Double]] = [[1, 5, 2], [-3, 0, 4]]
        expectClose(try m.logSumExp(axis: 1), rows.map(Self.logSumExp), shape: [2])
        expectClose(try m.logSumExp(axis: -1, keepDims: true), rows.map(Self.logSumExp), shape: [2, 1])
        expectClose(try m.logSumExp(), [Self.logSumExp(rows.flatMap { $0 })], shape: [])
        let big = try MLXArray([1000, 1000, -1000] as [Float], shape: [3])
        expectClose(try big.logSumExp(axis: 0), [1000 + Foundation.log(2.0)], shape: [], atol: 1e-3)
    }

    @Test("softmax and logSoftmax match the definitions; rows sum to one")
    func softmax() throws {
        let rows: [[Double]] = [[1, 5, 2], [-3, 0, 4]]
        let expected = rows.flatMap { r -> [Double] in
            let z = Self.logSumExp(r)
            return r.map { Foundation.exp($0 - z) }
        }
        expectClose(try m.softmax(), expected, shape: [2, 3], atol: 1e-6)
        expectClose(try m.softmax(axis: -1), expected, shape: [2, 3], atol: 1e-6)
        expectClose(try m.softmax(axes: [-1], precise: true), expected, shape: [2, 3], atol: 1e-6)
        expectClose(try m.logSoftmax(), expected.map { Foundation.log($0) }, shape: [2, 3], atol: 1e-5)
        expectClose(try m.softmax().sum(axis: -1), [1, 1], shape: [2], atol: 1e-6)
        // Along axis 0: columns sum to one.
        expectClose(try m.softmax(axis: 0).sum(axis: 0), [1, 1, 1], shape: [3], atol: 1e-6)
        // Large logits do not overflow.
        let big = try MLXArray([1000, 1000, 0] as [Float], shape: [1, 3])
        expectClose(try big.softmax(), [0.5, 0.5, 0], shape: [1, 3], atol: 1e-6)
        expectClose(try big.logSoftmax(), [-Foundation.log(2.0), -Foundation.log(2.0), -1000 - Foundation.log(2.0)], shape: [1, 3], atol: 1e-3)
    }

    @Test("softmax of half-precision input keeps the dtype")
    func softmaxHalf() throws {
        let h = try m.asType(.float16)
        let s = try h.softmax(axes: [-1], precise: true)
        #expect(s.dtype == .float16)
        expectClose(try s.asType(.float32), try m.softmax(), atol: 1e-3, rtol: 1e-2)
    }

    @Test("cumsum inclusive, exclusive, reversed, along either axis")
    func cumsum() throws {
        expectClose(try m.cumsum(axis: 1), [1, 6, 8, -3, -3, 1], shape: [2, 3])
        expectClose(try m.cumsum(axis: 0), [1, 5, 2, -2, 5, 6], shape: [2, 3])
        expectClose(try m.cumsum(axis: 1, inclusive: false), [0, 1, 6, 0, -3, -3], shape: [2, 3])
        expectClose(try m.cumsum(axis: 1, reverse: true), [8, 7, 2, 1, 4, 4], shape: [2, 3])
    }

    @Test("sort and argSort along the last and first axes")
    func sort() throws {
        expectClose(try m.sorted(), [1, 2, 5, -3, 0, 4], shape: [2, 3])
        expectClose(try m.sorted(axis: 0), [-3, 0, 2, 1, 5, 4], shape: [2, 3])
        #expect(try m.argSort().asArray(Int32.self) == [0, 2, 1, 0, 1, 2])
        #expect(try m.argSort(axis: 0).asArray(Int32.self) == [1, 1, 0, 0, 0, 1])
    }

    @Test("argPartition puts the kth smallest in place with smaller ones before it")
    func argPartition() throws {
        let values: [Float] = [9, 2, 7, 4, 8, 1, 6, 3, 5, 0]
        let x = MLXArray(values)
        for kth in [0, 3, 9] {
            let idx = try x.argPartition(kth: kth).asArray(Int32.self)
            #expect(Set(idx) == Set(0..<10), "a permutation")
            let reordered = idx.map { values[Int($0)] }
            let sorted = values.sorted()
            #expect(reordered[kth] == sorted[kth], "kth=\(kth)")
            #expect(reordered[..<kth].allSatisfy { $0 <= sorted[kth] }, "kth=\(kth)")
            #expect(reordered[(kth + 1)...].allSatisfy { $0 >= sorted[kth] }, "kth=\(kth)")
        }
    }

    @Test("topK returns the k largest values of each row")
    func topK() throws {
        let x = try MLXArray([3, 9, 1, 7, 5, 0, -1, 4, 8, 2] as [Float], shape: [2, 5])
        let top = try x.topK(2)
        #expect(top.shape == [2, 2])
        let v = try top.asArray(Float.self)
        #expect(Set(v[0..<2]) == [9, 7])
        #expect(Set(v[2..<4]) == [8, 4])
        let top0 = try x.topK(1, axis: 0)
        #expect(top0.shape == [1, 5])
        expectClose(top0, [3, 9, 4, 8, 5], shape: [1, 5])
    }
}
