public import MLXEngine
public import Testing
import Foundation
import ValueAlignCore

// Helpers shared by the test targets: seeded random arrays made on the Swift side (so they do not
// depend on the engine's own random generator), a tolerance compare that checks shapes first, and
// a gradient checker against central finite differences.

// MARK: - seeded random arrays

/// Seeded values for fixtures: `SplitMix64` with a normal draw added, so fixtures are the same on
/// every machine and in every run. Seed s gives the stream of `SplitMix64(seed: s + increment)`.
public struct SeededGenerator: RandomNumberGenerator, Sendable {
    private var base: SplitMix64

    public init(seed: UInt64) { base = SplitMix64(seed: seed &+ SplitMix64.increment) }

    public mutating func next() -> UInt64 { base.next() }

    /// A uniform double in [low, high).
    public mutating func uniform(_ low: Double = 0, _ high: Double = 1) -> Double { base.uniform(low, high) }

    /// A standard normal double (`SplitMix64.normal`).
    public mutating func normal() -> Double { base.normal() }
}

/// Random values for fixtures.
public enum Fixtures {
    /// `count` uniform doubles in [low, high) from `seed`.
    public static func uniformValues(_ count: Int, seed: UInt64, low: Double = -1, high: Double = 1) -> [Double] {
        var g = SeededGenerator(seed: seed)
        return (0..<count).map { _ in g.uniform(low, high) }
    }

    /// `count` normal doubles with standard deviation `std` from `seed`.
    public static func normalValues(_ count: Int, seed: UInt64, std: Double = 1) -> [Double] {
        var g = SeededGenerator(seed: seed)
        return (0..<count).map { _ in g.normal() * std }
    }

    /// An array of `shape` with uniform values in [low, high), made from `seed`, of `dtype`.
    public static func uniform(_ shape: [Int], seed: UInt64, low: Double = -1, high: Double = 1, dtype: DType = .float32) throws(MLXError) -> MLXArray {
        try array(uniformValues(shape.reduce(1, *), seed: seed, low: low, high: high), shape: shape, dtype: dtype)
    }

    /// An array of `shape` with normal values (standard deviation `std`), made from `seed`, of `dtype`.
    public static func normal(_ shape: [Int], seed: UInt64, std: Double = 1, dtype: DType = .float32) throws(MLXError) -> MLXArray {
        try array(normalValues(shape.reduce(1, *), seed: seed, std: std), shape: shape, dtype: dtype)
    }

    /// An array of `dtype` holding `values` (rounded to the dtype).
    public static func array(_ values: [Double], shape: [Int], dtype: DType = .float64) throws(MLXError) -> MLXArray {
        try MLXArray(values, shape: shape).asType(dtype)
    }
}

// MARK: - tolerance compare

/// The elements of `array` as doubles, or nil (with an issue recorded) when they cannot be read.
public func readDoubles(_ array: MLXArray, sourceLocation: SourceLocation = #_sourceLocation) -> [Double]? {
    do {
        return try array.asArray(Double.self)
    } catch {
        Issue.record("could not read back an array of shape \(array.shape): \(error)", sourceLocation: sourceLocation)
        return nil
    }
}

/// The worst element-wise mismatch between two value lists under `|a - e| <= atol + rtol * |e|`
/// (NaN matches only NaN, when `equalNaN`), or nil when every element is within tolerance.
public func firstMismatch(_ actual: [Double], _ expected: [Double], atol: Double, rtol: Double, equalNaN: Bool = false)
    -> (index: Int, actual: Double, expected: Double, excess: Double)?
{
    var worst: (index: Int, actual: Double, expected: Double, excess: Double)?
    for (i, (a, e)) in zip(actual, expected).enumerated() {
        if a.isNaN || e.isNaN {
            if equalNaN && a.isNaN && e.isNaN { continue }
            return (i, a, e, .infinity)
        }
        if a == e { continue }  // equal infinities
        let excess = Swift.abs(a - e) - (atol + rtol * Swift.abs(e))
        if excess > 0, excess > (worst?.excess ?? 0) { worst = (i, a, e, excess) }
    }
    return worst
}

/// Expects `actual` to have the shape of `expected` and every element within
/// `atol + rtol * |expected|`. Returns whether it passed.
@discardableResult
public func expectClose(
    _ actual: MLXArray, _ expected: MLXArray, atol: Double = 1e-5, rtol: Double = 1e-5, equalNaN: Bool = false,
    _ comment: Comment? = nil, sourceLocation: SourceLocation = #_sourceLocation
) -> Bool {
    guard actual.shape == expected.shape else {
        Issue.record("shape \(actual.shape) differs from the expected \(expected.shape)\(comment.map { " (\($0))" } ?? "")", sourceLocation: sourceLocation)
        return false
    }
    guard let a = readDoubles(actual, sourceLocation: sourceLocation), let e = readDoubles(expected, sourceLocation: sourceLocation) else { return false }
    return expectClose(a, e, atol: atol, rtol: rtol, equalNaN: equalNaN, comment, shape: actual.shape, sourceLocation: sourceLocation)
}

/// Expects `actual` to have `shape` and values within tolerance of `expected` (row-major).
@discardableResult
public func expectClose(
    _ actual: MLXArray, _ expected: [Double], shape: [Int], atol: Double = 1e-5, rtol: Double = 1e-5, equalNaN: Bool = false,
    _ comment: Comment? = nil, sourceLocation: SourceLocation = #_sourceLocation
) -> Bool {
    guard actual.shape == shape else {
        Issue.record("shape \(actual.shape) differs from the expected \(shape)\(comment.map { " (\($0))" } ?? "")", sourceLocation: sourceLocation)
        return false
    }
    guard let a = readDoubles(actual, sourceLocation: sourceLocation) else { return false }
    return expectClose(a, expected, atol: atol, rtol: rtol, equalNaN: equalNaN, comment, shape: shape, sourceLocation: sourceLocation)
}

/// Expects two value lists of the same length to agree within tolerance.
@discardableResult
public func expectClose(
    _ actual: [Double], _ expected: [Double], atol: Double = 1e-5, rtol: Double = 1e-5, equalNaN: Bool = false,
    _ comment: Comment? = nil, shape: [Int]? = nil, sourceLocation: SourceLocation = #_sourceLocation
) -> Bool {
    guard actual.count == expected.count else {
        Issue.record("\(actual.count) values differ in count from the expected \(expected.count)\(comment.map { " (\($0))" } ?? "")", sourceLocation: sourceLocation)
        return false
    }
    if let m = firstMismatch(actual, expected, atol: atol, rtol: rtol, equalNaN: equalNaN) {
        let position = shape.map { " at \(unravel(m.index, $0))" } ?? ""
        let maxError = zip(actual, expected).map { Swift.abs($0 - $1) }.max() ?? 0
        Issue.record(
            "element \(m.index)\(position): \(m.actual) vs expected \(m.expected) (atol \(atol), rtol \(rtol); max abs error \(maxError))\(comment.map { " — \($0)" } ?? "")",
            sourceLocation: sourceLocation)
        return false
    }
    return true
}

/// The multi-index of flat position `index` in `shape`.
public func unravel(_ index: Int, _ shape: [Int]) -> [Int] {
    var rest = index
    var result = [Int](repeating: 0, count: shape.count)
    for axis in stride(from: shape.count - 1, through: 0, by: -1) where shape[axis] > 0 {
        result[axis] = rest % shape[axis]
        rest /= shape[axis]
    }
    return result
}

/// The largest absolute difference between two arrays of the same shape.
public func maxAbsDifference(_ a: MLXArray, _ b: MLXArray) throws -> Double {
    let x = try a.asArray(Double.self), y = try b.asArray(Double.self)
    return zip(x, y).map { Swift.abs($0 - $1) }.max() ?? 0
}

// MARK: - gradient checks

/// Compares the gradients MLX computes with central finite differences.
///
/// `f` may return any shape: the checked scalar is `sum(f(x) * r)` for a fixed random `r` of the
/// output's shape, so every output element weighs in differently (a plain sum would hide errors,
/// e.g. the gradient of `sum(softmax(x))` is zero whatever softmax's VJP does).
public enum GradientCheck {
    /// The finite-difference formula.
    public enum Stencil: Sendable {
        /// (f(x+h) - f(x-h)) / 2h: truncation error O(h^2).
        case central
        /// (8(f(x+h) - f(x-h)) - (f(x+2h) - f(x-2h))) / 12h: truncation error O(h^4), so a larger
        /// h can be used when the function's values are only float32-accurate.
        case fivePoint
    }

    /// Checks the gradient with respect to the inputs at `wrt` (all floating inputs when nil).
    /// Returns whether every gradient element agreed.
    @discardableResult
    public static func check(
        _ inputs: [MLXArray], wrt: [Int]? = nil, eps: Double = 1e-6, atol: Double = 1e-7, rtol: Double = 1e-5,
        stencil: Stencil = .central, seed: UInt64 = 7, _ comment: Comment? = nil, sourceLocation: SourceLocation = #_sourceLocation,
        _ f: @escaping ([MLXArray]) throws -> MLXArray
    ) throws -> Bool {
        let argnums = wrt ?? inputs.indices.filter { inputs[$0].dtype.isFloatingPoint }
        let probe = try f(inputs)
        let dtype = probe.dtype
        let weights = try Fixtures.uniform(probe.shape, seed: seed, low: 0.5, high: 1.5, dtype: dtype.isFloatingPoint ? dtype : .float32)
        let loss: ([MLXArray]) throws -> MLXArray = { arrays in try (f(arrays) * weights).sum() }

        let (_, analytic) = try valueAndGrad(inputs, argnums: argnums) { [try loss($0)] }
        var ok = true
        for (slot, index) in argnums.enumerated() {
            let input = inputs[index]
            let values = try input.asArray(Double.self)
            var numeric = [Double](repeating: 0, count: values.count)
            for i in values.indices {
                func lossAt(_ offset: Double) throws -> Double {
                    var shifted = values
                    shifted[i] += offset
                    var args = inputs
                    args[index] = try Fixtures.array(shifted, shape: input.shape, dtype: input.dtype)
                    return try loss(args).item(Double.self)
                }
                switch stencil {
                case .central:
                    numeric[i] = try (lossAt(eps) - lossAt(-eps)) / (2 * eps)
                case .fivePoint:
                    numeric[i] = try (8 * (lossAt(eps) - lossAt(-eps)) - (lossAt(2 * eps) - lossAt(-2 * eps))) / (12 * eps)
                }
            }
            let grad = analytic[slot]
            guard grad.shape == input.shape else {
                Issue.record("gradient of input \(index) has shape \(grad.shape), the input \(input.shape)", sourceLocation: sourceLocation)
                ok = false
                continue
            }
            let got = try grad.asArray(Double.self)
            let note: Comment = "gradient of input \(index)\(comment.map { ", \($0)" } ?? "")"
            ok = expectClose(got, numeric, atol: atol, rtol: rtol, note, shape: input.shape, sourceLocation: sourceLocation) && ok
        }
        return ok
    }
}
