internal import CMLXBridge

// Element-wise arithmetic, comparison and math. Operators throw (a shape mismatch is an error
// the caller can catch); one `try` covers a whole expression: `let y = try x * w + b`.

func unary(_ op: mlxb_unary_op, _ name: String, _ a: MLXArray) throws(MLXError) -> MLXArray {
    try produce(name) { mlxb_unary(op, a.handle, $0) }
}

func binary(_ op: mlxb_binary_op, _ name: String, _ a: MLXArray, _ b: MLXArray) throws(MLXError) -> MLXArray {
    try produce(name) { mlxb_binary(op, a.handle, b.handle, $0) }
}

/// A scalar with the dtype it takes next to `array` (floating arrays keep their precision, so a
/// literal next to a float64 array is not rounded to float32 first).
func scalar(_ value: Double, like array: MLXArray) throws(MLXError) -> MLXArray {
    let dtype = array.dtype
    return try MLXArray(value, dtype: dtype.isFloatingPoint ? dtype : .float32)
}

@_disfavoredOverload func scalar(_ value: Float, like array: MLXArray) throws(MLXError) -> MLXArray { try scalar(Double(value), like: array) }

extension MLXArray {
    public static func + (a: MLXArray, b: MLXArray) throws(MLXError) -> MLXArray { try binary(MLXB_ADD, "add", a, b) }
    public static func - (a: MLXArray, b: MLXArray) throws(MLXError) -> MLXArray { try binary(MLXB_SUBTRACT, "subtract", a, b) }
    public static func * (a: MLXArray, b: MLXArray) throws(MLXError) -> MLXArray { try binary(MLXB_MULTIPLY, "multiply", a, b) }
    public static func / (a: MLXArray, b: MLXArray) throws(MLXError) -> MLXArray { try binary(MLXB_DIVIDE, "divide", a, b) }

    @_disfavoredOverload public static func + (a: MLXArray, b: Float) throws(MLXError) -> MLXArray { try a + scalar(b, like: a) }
    @_disfavoredOverload public static func - (a: MLXArray, b: Float) throws(MLXError) -> MLXArray { try a - scalar(b, like: a) }
    @_disfavoredOverload public static func * (a: MLXArray, b: Float) throws(MLXError) -> MLXArray { try a * scalar(b, like: a) }
    @_disfavoredOverload public static func / (a: MLXArray, b: Float) throws(MLXError) -> MLXArray { try a / scalar(b, like: a) }
    @_disfavoredOverload public static func + (a: Float, b: MLXArray) throws(MLXError) -> MLXArray { try scalar(a, like: b) + b }
    @_disfavoredOverload public static func - (a: Float, b: MLXArray) throws(MLXError) -> MLXArray { try scalar(a, like: b) - b }
    @_disfavoredOverload public static func * (a: Float, b: MLXArray) throws(MLXError) -> MLXArray { try scalar(a, like: b) * b }
    @_disfavoredOverload public static func / (a: Float, b: MLXArray) throws(MLXError) -> MLXArray { try scalar(a, like: b) / b }

    public static func + (a: MLXArray, b: Double) throws(MLXError) -> MLXArray { try a + scalar(b, like: a) }
    public static func - (a: MLXArray, b: Double) throws(MLXError) -> MLXArray { try a - scalar(b, like: a) }
    public static func * (a: MLXArray, b: Double) throws(MLXError) -> MLXArray { try a * scalar(b, like: a) }
    public static func / (a: MLXArray, b: Double) throws(MLXError) -> MLXArray { try a / scalar(b, like: a) }
    public static func + (a: Double, b: MLXArray) throws(MLXError) -> MLXArray { try scalar(a, like: b) + b }
    public static func - (a: Double, b: MLXArray) throws(MLXError) -> MLXArray { try scalar(a, like: b) - b }
    public static func * (a: Double, b: MLXArray) throws(MLXError) -> MLXArray { try scalar(a, like: b) * b }
    public static func / (a: Double, b: MLXArray) throws(MLXError) -> MLXArray { try scalar(a, like: b) / b }

    public static prefix func - (a: MLXArray) throws(MLXError) -> MLXArray { try unary(MLXB_NEG, "negative", a) }

    /// Element-wise comparisons, giving bool arrays.
    public static func .== (a: MLXArray, b: MLXArray) throws(MLXError) -> MLXArray { try binary(MLXB_EQUAL, "equal", a, b) }
    public static func .!= (a: MLXArray, b: MLXArray) throws(MLXError) -> MLXArray { try binary(MLXB_NOT_EQUAL, "not_equal", a, b) }
    public static func .< (a: MLXArray, b: MLXArray) throws(MLXError) -> MLXArray { try binary(MLXB_LESS, "less", a, b) }
    public static func .<= (a: MLXArray, b: MLXArray) throws(MLXError) -> MLXArray { try binary(MLXB_LESS_EQUAL, "less_equal", a, b) }
    public static func .> (a: MLXArray, b: MLXArray) throws(MLXError) -> MLXArray { try binary(MLXB_GREATER, "greater", a, b) }
    public static func .>= (a: MLXArray, b: MLXArray) throws(MLXError) -> MLXArray { try binary(MLXB_GREATER_EQUAL, "greater_equal", a, b) }
    public static func .== (a: MLXArray, b: Float) throws(MLXError) -> MLXArray { try a .== scalar(b, like: a) }
    public static func .< (a: MLXArray, b: Float) throws(MLXError) -> MLXArray { try a .< scalar(b, like: a) }
    public static func .> (a: MLXArray, b: Float) throws(MLXError) -> MLXArray { try a .> scalar(b, like: a) }
    public static func .<= (a: MLXArray, b: Float) throws(MLXError) -> MLXArray { try a .<= scalar(b, like: a) }
    public static func .>= (a: MLXArray, b: Float) throws(MLXError) -> MLXArray { try a .>= scalar(b, like: a) }

    /// Matrix product with NumPy broadcasting of batch dimensions.
    public func matmul(_ other: MLXArray) throws(MLXError) -> MLXArray { try binary(MLXB_MATMUL, "matmul", self, other) }

    /// Converts the elements to `dtype`.
    public func asType(_ dtype: DType) throws(MLXError) -> MLXArray {
        if self.dtype == dtype { return self }
        return try produce("astype") { mlxb_astype(handle, dtype.bridge, $0) }
    }

    public func exp() throws(MLXError) -> MLXArray { try unary(MLXB_EXP, "exp", self) }
    public func log() throws(MLXError) -> MLXArray { try unary(MLXB_LOG, "log", self) }
    public func log1p() throws(MLXError) -> MLXArray { try unary(MLXB_LOG1P, "log1p", self) }
    public func expm1() throws(MLXError) -> MLXArray { try unary(MLXB_EXPM1, "expm1", self) }
    public func sqrt() throws(MLXError) -> MLXArray { try unary(MLXB_SQRT, "sqrt", self) }
    public func rsqrt() throws(MLXError) -> MLXArray { try unary(MLXB_RSQRT, "rsqrt", self) }
    public func square() throws(MLXError) -> MLXArray { try unary(MLXB_SQUARE, "square", self) }
    public func abs() throws(MLXError) -> MLXArray { try unary(MLXB_ABS, "abs", self) }
    public func sin() throws(MLXError) -> MLXArray { try unary(MLXB_SIN, "sin", self) }
    public func cos() throws(MLXError) -> MLXArray { try unary(MLXB_COS, "cos", self) }
    public func tanh() throws(MLXError) -> MLXArray { try unary(MLXB_TANH, "tanh", self) }
    public func sigmoid() throws(MLXError) -> MLXArray { try unary(MLXB_SIGMOID, "sigmoid", self) }
    public func erf() throws(MLXError) -> MLXArray { try unary(MLXB_ERF, "erf", self) }
    public func floor() throws(MLXError) -> MLXArray { try unary(MLXB_FLOOR, "floor", self) }
    public func ceil() throws(MLXError) -> MLXArray { try unary(MLXB_CEIL, "ceil", self) }
    public func round() throws(MLXError) -> MLXArray { try unary(MLXB_ROUND, "round", self) }
    public func sign() throws(MLXError) -> MLXArray { try unary(MLXB_SIGN, "sign", self) }
    public func reciprocal() throws(MLXError) -> MLXArray { try unary(MLXB_RECIPROCAL, "reciprocal", self) }
    public func logicalNot() throws(MLXError) -> MLXArray { try unary(MLXB_LOGICAL_NOT, "logical_not", self) }
    public func isNaN() throws(MLXError) -> MLXArray { try unary(MLXB_ISNAN, "isnan", self) }
    public func isInf() throws(MLXError) -> MLXArray { try unary(MLXB_ISINF, "isinf", self) }
    /// Blocks gradients: the result is `self` in the forward pass and a constant to `grad`.
    public func stopGradient() throws(MLXError) -> MLXArray { try unary(MLXB_STOP_GRADIENT, "stop_gradient", self) }

    public func power(_ exponent: MLXArray) throws(MLXError) -> MLXArray { try binary(MLXB_POWER, "power", self, exponent) }
    public func power(_ exponent: Float) throws(MLXError) -> MLXArray { try power(scalar(exponent, like: self)) }
    public func floorDivide(_ other: MLXArray) throws(MLXError) -> MLXArray { try binary(MLXB_FLOOR_DIVIDE, "floor_divide", self, other) }
    public func remainder(_ other: MLXArray) throws(MLXError) -> MLXArray { try binary(MLXB_REMAINDER, "remainder", self, other) }
    public func logicalAnd(_ other: MLXArray) throws(MLXError) -> MLXArray { try binary(MLXB_LOGICAL_AND, "logical_and", self, other) }
    public func logicalOr(_ other: MLXArray) throws(MLXError) -> MLXArray { try binary(MLXB_LOGICAL_OR, "logical_or", self, other) }

    /// Clips to [low, high]; either bound may be omitted.
    public func clip(min low: Float? = nil, max high: Float? = nil) throws(MLXError) -> MLXArray {
        let lo = try low.map { v throws(MLXError) in try scalar(v, like: self) }
        let hi = try high.map { v throws(MLXError) in try scalar(v, like: self) }
        return try produce("clip") { mlxb_clip(handle, lo?.handle, hi?.handle, $0) }
    }
}

/// The element-wise maximum.
public func maximum(_ a: MLXArray, _ b: MLXArray) throws(MLXError) -> MLXArray { try binary(MLXB_MAXIMUM, "maximum", a, b) }
/// The element-wise minimum.
public func minimum(_ a: MLXArray, _ b: MLXArray) throws(MLXError) -> MLXArray { try binary(MLXB_MINIMUM, "minimum", a, b) }
/// log(exp(a) + exp(b)), computed stably.
public func logAddExp(_ a: MLXArray, _ b: MLXArray) throws(MLXError) -> MLXArray { try binary(MLXB_LOGADDEXP, "logaddexp", a, b) }
/// The matrix product.
public func matmul(_ a: MLXArray, _ b: MLXArray) throws(MLXError) -> MLXArray { try a.matmul(b) }
/// `beta * c + alpha * (a @ b)` in one BLAS call.
public func addmm(_ c: MLXArray, _ a: MLXArray, _ b: MLXArray, alpha: Float = 1, beta: Float = 1) throws(MLXError) -> MLXArray {
    try produce("addmm") { mlxb_addmm(c.handle, a.handle, b.handle, alpha, beta, $0) }
}
/// Picks `a` where `condition` is true, else `b`.
public func which(_ condition: MLXArray, _ a: MLXArray, _ b: MLXArray) throws(MLXError) -> MLXArray {
    try produce("where") { mlxb_where(condition.handle, a.handle, b.handle, $0) }
}

// MARK: activations

extension MLXArray {
    /// x * sigmoid(x).
    public func silu() throws(MLXError) -> MLXArray { try self * sigmoid() }
    /// The exact GELU: x * (1 + erf(x / sqrt 2)) / 2.
    public func gelu() throws(MLXError) -> MLXArray { try self * ((self / Double(2).squareRoot()).erf() + 1) * 0.5 }
    /// The tanh approximation of GELU.
    public func geluApproximate() throws(MLXError) -> MLXArray {
        let c = (2.0 / Double.pi).squareRoot()
        let inner = try (self + self * self * self * 0.044715) * c
        return try self * 0.5 * (inner.tanh() + 1)
    }
    /// log(sigmoid(x)), computed stably as -softplus(-x).
    public func logSigmoid() throws(MLXError) -> MLXArray { try -softplus(-self) }
    /// max(x, 0).
    public func relu() throws(MLXError) -> MLXArray { try maximum(self, scalar(0, like: self)) }
}

/// log(1 + exp(x)), computed stably.
public func softplus(_ x: MLXArray) throws(MLXError) -> MLXArray { try logAddExp(x, scalar(0, like: x)) }

infix operator .== : ComparisonPrecedence
infix operator .!= : ComparisonPrecedence
infix operator .< : ComparisonPrecedence
infix operator .<= : ComparisonPrecedence
infix operator .> : ComparisonPrecedence
infix operator .>= : ComparisonPrecedence
