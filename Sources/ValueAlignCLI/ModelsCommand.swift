import ArgumentParser
import Foundation
import LanguageModels

struct ModelsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "models",
        abstract: "List the embedded model and the local models (GGUF files, Hugging Face folders) with their sizes."
    )

    @Option(help: "Folder of local models (default: $VALUEALIGN_MODELS_DIR or ~/.cache/valuealign/models).")
    var directory: String?

    @Flag(help: "Print JSON.")
    var json = false

    func run() throws {
        let directory = directory ?? ModelLocator.modelsDirectory
        let entries = ModelLocator.list(directory: directory)
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
            print(String(decoding: try encoder.encode(entries), as: UTF8.self))
            return
        }
        if entries.isEmpty { print("no models found (embedded model not installed; run `make deps`), and none in \(directory)") }
        for e in entries {
            let size = ByteCountFormatter.string(fromByteCount: e.bytes, countStyle: .file)
            let tag = e.embedded ? " (embedded default)" : ""
            print("\(e.name)\(tag)\n    \(e.format), \(e.architecture ?? "unknown architecture"), \(size)\n    \(e.path)")
        }
        if !entries.contains(where: { !$0.embedded }) { print("no local models in \(directory)") }
    }
}
