public import MLXEngine

/// A trainable parameter slot: a reference box, so the module tree can be updated in place.
public final class ParameterBox: @unchecked Sendable {
    public internal(set) var value: MLXArray?
    /// Frozen parameters are left out of `trainableParameters()` and so get no gradient.
    public internal(set) var frozen = false
    init(_ value: MLXArray?) { self.value = value }
}

/// A replaceable child slot (LoRA swaps a linear layer for an adapted one).
public final class ChildBox: @unchecked Sendable {
    public internal(set) var module: Module
    let accepts: (Module) -> Bool
    let typeName: String
    init(_ module: Module, accepts: @escaping (Module) -> Bool, typeName: String) {
        self.module = module
        self.accepts = accepts
        self.typeName = typeName
    }
}

protocol ParameterSlot {
    var key: String? { get }
    var box: ParameterBox { get }
}

protocol ChildSlot {
    var key: String? { get }
    var box: ChildBox { get }
}

/// Declares an array property as a parameter of its module: `@Parameter var weight: MLXArray`.
/// For another name in the tree, initialise `_w = Parameter(wrappedValue: a, key: "weight")`.
@propertyWrapper
public struct Parameter: ParameterSlot {
    let key: String?
    let box: ParameterBox
    public init(wrappedValue: MLXArray, key: String? = nil) {
        self.key = key
        self.box = ParameterBox(wrappedValue)
    }
    public var wrappedValue: MLXArray {
        get { box.value! }
        nonmutating set { box.value = newValue }
    }
}

/// An optional parameter (a bias a layer may lack).
@propertyWrapper
public struct OptionalParameter: ParameterSlot {
    let key: String?
    let box: ParameterBox
    public init(wrappedValue: MLXArray?, key: String? = nil) {
        self.key = key
        self.box = ParameterBox(wrappedValue)
    }
    public var wrappedValue: MLXArray? {
        get { box.value }
        nonmutating set { box.value = newValue }
    }
}

/// Declares a child module that can be replaced in place (see `Module.replace(child:with:)`).
/// To give it another name in the parameter tree, initialise the backing storage in `init`:
/// `_qProj = Child(wrappedValue: layer, key: "q_proj")`.
@propertyWrapper
public struct Child<M>: ChildSlot {
    let key: String?
    let box: ChildBox
    public init(wrappedValue: M, key: String? = nil) {
        self.key = key
        // M is a Module subclass or a protocol whose conformers are modules.
        self.box = ChildBox(wrappedValue as! Module, accepts: { $0 is M }, typeName: String(describing: M.self))
    }
    public var wrappedValue: M {
        get { box.module as! M }
        nonmutating set { box.module = newValue as! Module }
    }
}

/// Errors raised by the module tree.
public enum ModuleError: Error, Equatable, CustomStringConvertible {
    case unknownParameters([String])
    case missingParameters([String])
    case shapeMismatch(key: String, expected: [Int], got: [Int])
    case unknownChild(String)
    case incompatibleChild(path: String, expected: String)

    public var description: String {
        switch self {
        case let .unknownParameters(keys): "unknown parameters: \(keys.sorted().joined(separator: ", "))"
        case let .missingParameters(keys): "missing parameters: \(keys.sorted().joined(separator: ", "))"
        case let .shapeMismatch(key, expected, got): "parameter '\(key)' has shape \(expected), the update has \(got)"
        case let .unknownChild(path): "no child module at '\(path)'"
        case let .incompatibleChild(path, expected): "the replacement for '\(path)' must be a \(expected)"
        }
    }
}

/// A neural-network module: a tree of named parameters and child modules, found by reflection.
///
/// Parameters are properties declared with `@Parameter` / `@OptionalParameter`; children are
/// properties holding a `Module`, an array of modules, or a `@Child`. Names in the tree are the
/// property names (or the `key:` given) joined by dots, with list positions as numbers:
/// `layers.3.self_attn.q_proj.weight`.
open class Module: @unchecked Sendable {
    /// Whether the module is in training mode (dropout active).
    public private(set) var training = true

    public init() {}

    // MARK: reflection

    enum Entry {
        case parameter(String, ParameterBox)
        case child(String, Module, ChildBox?)
        case list(String, [Module])
    }

    func entries() -> [Entry] {
        var result: [Entry] = []
        var mirror: Mirror? = Mirror(reflecting: self)
        var levels: [[Entry]] = []
        while let m = mirror {
            var level: [Entry] = []
            for child in m.children {
                guard let label = child.label else { continue }
                let name = label.hasPrefix("_") ? String(label.dropFirst()) : label
                switch child.value {
                case let slot as any ParameterSlot: level.append(.parameter(slot.key ?? name, slot.box))
                case let slot as any ChildSlot: level.append(.child(slot.key ?? name, slot.box.module, slot.box))
                case let module as Module: level.append(.child(name, module, nil))
                case let modules as [Module]: level.append(.list(name, modules))
                default: continue
                }
            }
            levels.append(level)
            mirror = m.superclassMirror
        }
        // Superclass properties first, as declared.
        for level in levels.reversed() { result.append(contentsOf: level) }
        return result
    }

    /// Visits every parameter box with its full name.
    func visitParameters(prefix: String = "", _ visit: (String, ParameterBox) throws -> Void) rethrows {
        for entry in entries() {
            switch entry {
            case let .parameter(name, box): try visit(prefix + name, box)
            case let .child(name, module, _): try module.visitParameters(prefix: prefix + name + ".", visit)
            case let .list(name, modules):
                for (i, m) in modules.enumerated() { try m.visitParameters(prefix: "\(prefix)\(name).\(i).", visit) }
            }
        }
    }

    /// Every module of the tree with its path ("" for the root).
    public func namedModules(prefix: String = "") -> [(String, Module)] {
        var result: [(String, Module)] = [(prefix, self)]
        let dot = prefix.isEmpty ? "" : prefix + "."
        for entry in entries() {
            switch entry {
            case .parameter: continue
            case let .child(name, module, _): result.append(contentsOf: module.namedModules(prefix: dot + name))
            case let .list(name, modules):
                for (i, m) in modules.enumerated() { result.append(contentsOf: m.namedModules(prefix: "\(dot)\(name).\(i)")) }
            }
        }
        return result
    }

    // MARK: parameters

    /// All parameters, by full name.
    public func parameters() -> [String: MLXArray] {
        var result: [String: MLXArray] = [:]
        visitParameters { name, box in if let v = box.value { result[name] = v } }
        return result
    }

    /// The parameters that are not frozen.
    public func trainableParameters() -> [String: MLXArray] {
        var result: [String: MLXArray] = [:]
        visitParameters { name, box in if let v = box.value, !box.frozen { result[name] = v } }
        return result
    }

    /// The number of scalars in all (or only trainable) parameters.
    public func parameterCount(trainableOnly: Bool = false) -> Int {
        (trainableOnly ? trainableParameters() : parameters()).values.reduce(0) { $0 + $1.size }
    }

    /// Replaces parameters by name. Unknown names are an error; with `strict`, so is any
    /// parameter the update leaves out. Shapes must match.
    public func update(parameters: [String: MLXArray], strict: Bool = false) throws(ModuleError) {
        var remaining = parameters
        var missing: [String] = []
        var mismatch: ModuleError?
        visitParameters { name, box in
            guard let new = remaining.removeValue(forKey: name) else {
                if box.value != nil { missing.append(name) }
                return
            }
            if let old = box.value, old.shape != new.shape, mismatch == nil {
                mismatch = .shapeMismatch(key: name, expected: old.shape, got: new.shape)
                return
            }
            box.value = new
        }
        if let mismatch { throw mismatch }
        if !remaining.isEmpty { throw .unknownParameters(Array(remaining.keys)) }
        if strict, !missing.isEmpty { throw .missingParameters(missing) }
    }

    /// Freezes parameters (all, or those whose last name component is in `keys`).
    public func freeze(keys: Set<String>? = nil) { setFrozen(true, keys: keys) }

    /// Unfreezes parameters (all, or those whose last name component is in `keys`).
    public func unfreeze(keys: Set<String>? = nil) { setFrozen(false, keys: keys) }

    private func setFrozen(_ frozen: Bool, keys: Set<String>?) {
        visitParameters { name, box in
            let last = String(name.split(separator: ".").last ?? "")
            if keys == nil || keys!.contains(last) { box.frozen = frozen }
        }
    }

    /// Switches training mode (dropout) for the whole tree.
    public func train(_ on: Bool = true) {
        for (_, m) in namedModules() { m.training = on }
    }

    /// Replaces the `@Child` at `path` (dot-separated, from this module) with `module`, which
    /// must fit the property's declared type.
    public func replace(child path: String, with module: Module) throws(ModuleError) {
        var parts = path.split(separator: ".").map(String.init)
        guard let last = parts.popLast() else { throw .unknownChild(path) }
        let parentPath = parts.joined(separator: ".")
        guard let parent = parentPath.isEmpty ? self : self.module(at: parentPath) else { throw .unknownChild(path) }
        for entry in parent.entries() {
            if case let .child(name, _, box?) = entry, name == last {
                guard box.accepts(module) else { throw .incompatibleChild(path: path, expected: box.typeName) }
                box.module = module
                return
            }
        }
        throw .unknownChild(path)
    }
}

extension Module {
    /// The module at a dotted path such as `layers.3.self_attn`.
    /// Walks the path one segment at a time (it does not list the whole tree: adapters swap
    /// dozens of layers per training step through `replace(child:with:)`).
    public func module(at path: String) -> Module? {
        if path.isEmpty { return self }
        var current: Module = self
        var segments = path.split(separator: ".", omittingEmptySubsequences: false)[...]
        while let segment = segments.popFirst() {
            var next: Module?
            for entry in current.entries() {
                switch entry {
                case .parameter: continue
                case let .child(name, module, _):
                    if name == segment { next = module }
                case let .list(name, modules):
                    guard name == segment, let index = segments.popFirst().flatMap({ Int($0) }), modules.indices.contains(index) else { continue }
                    next = modules[index]
                }
                if next != nil { break }
            }
            guard let found = next else { return nil }
            current = found
        }
        return current
    }
}
