internal import CMLXBridge

/// The element type of an array.
public enum DType: Int, Sendable, CaseIterable, CustomStringConvertible, Codable {
    case bool, uint8, uint16, uint32, uint64, int8, int16, int32, int64
    case float16, float32, float64, bfloat16, complex64

    var bridge: mlxb_dtype { mlxb_dtype(rawValue: UInt32(rawValue)) }

    init(bridge: mlxb_dtype) { self = DType(rawValue: Int(bridge.rawValue)) ?? .float32 }

    /// Bytes per element.
    public var size: Int {
        switch self {
        case .bool, .uint8, .int8: 1
        case .uint16, .int16, .float16, .bfloat16: 2
        case .uint32, .int32, .float32: 4
        case .uint64, .int64, .float64, .complex64: 8
        }
    }

    /// Whether the type is a real floating-point type.
    public var isFloatingPoint: Bool { self == .float16 || self == .float32 || self == .float64 || self == .bfloat16 }

    public var description: String {
        switch self {
        case .bool: "bool"
        case .uint8: "uint8"
        case .uint16: "uint16"
        case .uint32: "uint32"
        case .uint64: "uint64"
        case .int8: "int8"
        case .int16: "int16"
        case .int32: "int32"
        case .int64: "int64"
        case .float16: "float16"
        case .float32: "float32"
        case .float64: "float64"
        case .bfloat16: "bfloat16"
        case .complex64: "complex64"
        }
    }
}

/// A Swift type that can be copied into and out of an array element for element.
public protocol ArrayElement: Sendable {
    /// The array dtype with this exact memory layout.
    static var dtype: DType { get }
}

extension Float: ArrayElement { public static var dtype: DType { .float32 } }
extension Double: ArrayElement { public static var dtype: DType { .float64 } }
extension Int32: ArrayElement { public static var dtype: DType { .int32 } }
extension UInt32: ArrayElement { public static var dtype: DType { .uint32 } }
extension Int64: ArrayElement { public static var dtype: DType { .int64 } }
extension UInt64: ArrayElement { public static var dtype: DType { .uint64 } }
extension Int16: ArrayElement { public static var dtype: DType { .int16 } }
extension UInt16: ArrayElement { public static var dtype: DType { .uint16 } }
extension Int8: ArrayElement { public static var dtype: DType { .int8 } }
extension UInt8: ArrayElement { public static var dtype: DType { .uint8 } }
extension Bool: ArrayElement { public static var dtype: DType { .bool } }
#if arch(x86_64) || arch(arm64)
@available(macOS 11.0, *)
extension Float16: ArrayElement { public static var dtype: DType { .float16 } }
#endif
