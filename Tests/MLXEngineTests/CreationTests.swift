import Foundation
import MLXEngine
import Testing
import ValueAlignTesting

/// Making arrays and reading them back: every dtype, shapes, scalars and the creation functions.
@Suite("Creation and read-back")
struct CreationTests {
    @Test("float32 values keep their shape and order")
    func float32RoundTrip() throws {
        let a = try MLXArray([1.5, -2, 3.25, 4, 5, 6] as [Float], shape: [2, 3])
        #expect(a.shape == [2, 3])
        #expect(a.ndim == 2)
        #expect(a.size == 6)
        #expect(a.dim(-1) == 3)
        #expect(a.dtype == .float32)
        #expect(try a.asArray(Float.self) == [1.5, -2, 3.25, 4, 5, 6])
    }

    @Test("arrays made directly from each element type")
    func nativeElementTypes() throws {
        let i = try MLXArray([-3, 0, 7, Int32.max] as [Int32], shape: [2, 2])
        #expect(i.dtype == .int32)
        #expect(try i.asArray(Int32.self) == [-3, 0, 7, Int32.max])

        let u = MLXArray([0, 1, UInt32.max] as [UInt32])
        #expect(u.dtype == .uint32)
        #expect(try u.asArray(UInt32.self) == [0, 1, UInt32.max])

        let b = MLXArray([true, false, true])
        #expect(b.dtype == .bool)
        #expect(try b.asArray(Bool.self) == [true, false, true])

        // A value float32 cannot hold exactly: float64 must keep every bit.
        let d = MLXArray([0.1, 1.0 / 3.0, 1e300] as [Double])
        #expect(d.dtype == .float64)
        #expect(try d.asArray(Double.self) == [0.1, 1.0 / 3.0, 1e300])

        let ints = try MLXArray([1, -2, 3, 4, 5, 6], shape: [3, 2])
        #expect(ints.dtype == .int32)
        #expect(try ints.asArray(Int32.self) == [1, -2, 3, 4, 5, 6])

        let h = MLXArray([0.5, -1.25, 2048] as [Float16])
        #expect(h.dtype == .float16)
        #expect(try h.asArray(Float16.self) == [0.5, -1.25, 2048])
    }

    struct Conversion: Sendable, CustomTestStringConvertible {
        let dtype: DType
        let input: [Float]
        let expected: [Double]
        var testDescription: String { "\(dtype)" }
    }

    static let conversions: [Conversion] = [
        // 1.1 rounds differently in each float format: a silent float32 would be caught.
        Conversion(dtype: .float16, input: [1.1, -2.5, 65504, 0], expected: [1.099609375, -2.5, 65504, 0]),
        Conversion(dtype: .bfloat16, input: [1.1, -2.5, 257, 0], expected: [1.1015625, -2.5, 256, 0]),
        Conversion(dtype: .float64, input: [1.1, -2.5, 1e-30, 0], expected: [Double(Float(1.1)), -2.5, Double(Float(1e-30)), 0]),
        Conversion(dtype: .int32, input: [1.9, -2.5, 300, 0], expected: [1, -2, 300, 0]),
        Conversion(dtype: .uint32, input: [1.9, 2.5, 4_000_000_000, 0], expected: [1, 2, 4_000_000_000, 0]),
        Conversion(dtype: .bool, input: [1.1, -2.5, 0, 0], expected: [1, 1, 0, 0]),
        Conversion(dtype: .int8, input: [1, -128, 127, 0], expected: [1, -128, 127, 0]),
        Conversion(dtype: .uint8, input: [1, 200, 255, 0], expected: [1, 200, 255, 0]),
    ]

    @Test("asType converts and reads back", arguments: conversions)
    func asTypeReadBack(_ c: Conversion) throws {
        let a = try MLXArray(c.input, shape: [2, 2]).asType(c.dtype)
        #expect(a.dtype == c.dtype)
        #expect(a.shape == [2, 2])
        let back = try a.asArray(Double.self)
        #expect(back.count == 4)
        for (x, e) in zip(back, c.expected) {
            #expect(Swift.abs(x - e) <= Swift.abs(e) * 1e-7, "\(c.dtype): read \(x), expected \(e)")
        }
        // Converting back to float32 gives the same rounded values.
        expectClose(try a.asType(.float32), c.expected.map { Double(Float($0)) }, shape: [2, 2], atol: 0, rtol: 1e-7)
    }

    @Test("bytes per element", arguments: [(DType.float32, 4), (.float16, 2), (.bfloat16, 2), (.float64, 8), (.int32, 4), (.uint32, 4), (.bool, 1)])
    func dtypeSizes(_ dtype: DType, _ size: Int) {
        #expect(dtype.size == size)
    }

    @Test("scalars have no dimensions and one element")
    func scalars() throws {
        let s = MLXArray(Float(3.5))
        #expect(s.shape == [])
        #expect(s.ndim == 0)
        #expect(s.size == 1)
        #expect(try s.item(Float.self) == 3.5)
        #expect(try s.item(Double.self) == 3.5)
        #expect(try s.item(Int32.self) == 3)

        let d = try MLXArray(0.1, dtype: .float64)
        #expect(d.dtype == .float64)
        #expect(try d.item(Double.self) == 0.1)

        let i = try MLXArray(-7, dtype: .int32)
        #expect(i.dtype == .int32)
        #expect(try i.item(Int32.self) == -7)

        // item() of a one-element array that is not zero-dimensional is fine too.
        #expect(try MLXArray([9] as [Float], shape: [1, 1]).item(Float.self) == 9)
    }

    @Test("empty arrays")
    func emptyArrays() throws {
        let e = try MLXArray([] as [Float], shape: [0, 3])
        #expect(e.shape == [0, 3])
        #expect(e.size == 0)
        #expect(try e.asArray(Float.self).isEmpty)
    }

    @Test("arange with default, fractional and negative steps")
    func arange() throws {
        let a = try MLXArray.arange(5)
        #expect(a.dtype == .int32)
        #expect(try a.asArray(Int32.self) == [0, 1, 2, 3, 4])

        let b = try MLXArray.arange(1, 2, step: 0.25, dtype: .float32)
        #expect(b.shape == [4])
        #expect(try b.asArray(Float.self) == [1, 1.25, 1.5, 1.75])

        let c = try MLXArray.arange(5, 0, step: -2)
        #expect(try c.asArray(Int32.self) == [5, 3, 1])

        #expect(try MLXArray.arange(3, 3).size == 0)
    }

    @Test("full, zeros, ones and their like-variants")
    func fullZerosOnes() throws {
        let f = try MLXArray.full([2, 3], value: 7.5)
        #expect(f.shape == [2, 3])
        #expect(f.dtype == .float32)
        #expect(try f.asArray(Float.self) == Array(repeating: 7.5, count: 6))

        let z = try MLXArray.zeros([4], dtype: .int32)
        #expect(z.dtype == .int32)
        #expect(try z.asArray(Int32.self) == [0, 0, 0, 0])

        let o = try MLXArray.ones([2, 2], dtype: .float16)
        #expect(o.dtype == .float16)
        #expect(try o.asArray(Float.self) == [1, 1, 1, 1])

        let like = try MLXArray([1, 2, 3] as [Int32], shape: [1, 3])
        let zl = try MLXArray.zeros(like: like), ol = try MLXArray.ones(like: like)
        #expect(zl.shape == [1, 3] && zl.dtype == .int32)
        #expect(ol.shape == [1, 3] && ol.dtype == .int32)
        #expect(try ol.asArray(Int32.self) == [1, 1, 1])

        let scalarFull = try MLXArray.full([], value: -2)
        #expect(scalarFull.shape == [])
        #expect(try scalarFull.item(Float.self) == -2)
    }

    @Test("tri is lower-triangular with an offset")
    func tri() throws {
        let t = try MLXArray.tri(3, 4, k: 1)
        #expect(t.shape == [3, 4])
        #expect(try t.asArray(Float.self) == [1, 1, 0, 0, 1, 1, 1, 0, 1, 1, 1, 1])
    }

    @Test("read-back converts between element types")
    func readBackConverts() throws {
        let a = try MLXArray([1.75, -2.25] as [Float], shape: [2])
        #expect(try a.asArray(Double.self) == [1.75, -2.25])
        #expect(try a.asArray(Int32.self) == [1, -2])
        let i = MLXArray([3, -4] as [Int32])
        #expect(try i.asArray(Float.self) == [3, -4])
    }

    @Test("description shows the values")
    func description() throws {
        let a = try MLXArray([1, 2] as [Float], shape: [2])
        #expect(a.description.contains("1"))
        #expect(a.description.contains("2"))
    }
}
