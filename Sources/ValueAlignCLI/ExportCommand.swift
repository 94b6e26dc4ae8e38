import ArgumentParser
import Foundation
import LanguageModels

struct ExportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "export",
        abstract: "Merge a LoRA adapter into its base model and write a GGUF file (llama.cpp, Ollama) or a Hugging Face safetensors folder (vLLM, transformers).",
        discussion: """
        --out ending in .gguf writes GGUF (the base must be a GGUF file) with F16 matrices by default; --type q8_0 is half \
        the size and keeps the update; --type base keeps each tensor's type, re-quantizing adapted ones with ggml's reference \
        quantizer (at 4 bits that erases much of a LoRA update: the check says how much); --type mixed keeps untouched \
        tensors verbatim and writes the adapted ones in Q8_0. \
        Any other --out is a folder: model.safetensors, config.json, generation_config.json and tokenizer files (--dtype). \
        Afterwards the export is loaded back and compared with base+adapter on a fixed conversation (logits at every \
        position, 32 greedy tokens); --check-json writes the figures. Example, after `make run`:
          valuealign export --adapter runs/main/adapter --out aligned.gguf
          llama-server -m aligned.gguf      (or: ollama create aligned -f Modelfile with FROM ./aligned.gguf)
        """
    )

    @Option(name: .shortAndLong, help: "Base model: 'embedded' (default), a GGUF file, a Hugging Face folder, or a name in the models folder.")
    var model: String?
    @Option(help: "The PEFT LoRA adapter folder to merge (e.g. runs/main/adapter); repeat it for adapters stacked in order (align --adapter writes such a stack).")
    var adapter: [String] = []
    @Option(help: "Output: FILE.gguf, or a folder for safetensors.") var out: String
    @Option(help: "GGUF tensor types: \(ModelExport.GGUFType.allCases.map(\.rawValue).joined(separator: ", ")) (base keeps the base model's, and 4-bit bases lose much of a LoRA update; mixed keeps untouched tensors and writes adapted ones in Q8_0).")
    var type: String?
    @Option(help: "Safetensors dtype: \(ModelExport.SafetensorsType.allCases.map(\.rawValue).joined(separator: ", ")).")
    var dtype = "float32"
    @Flag(help: "Skip loading the export back for the comparison with base+adapter.") var noCheck = false
    @Option(help: "Write the comparison's figures (and the reference's greedy token ids) as JSON here.") var checkJson: String?
    @Flag(help: "No progress bar.") var quiet = false

    var isGGUF: Bool { out.lowercased().hasSuffix(".gguf") }

    func validate() throws {
        guard ModelExport.GGUFType(rawValue: type ?? "f16") != nil else {
            throw ValidationError("--type must be one of \(ModelExport.GGUFType.allCases.map(\.rawValue).joined(separator: ", ")), got '\(type ?? "")'")
        }
        guard ModelExport.SafetensorsType(rawValue: dtype) != nil else {
            throw ValidationError("--dtype must be one of \(ModelExport.SafetensorsType.allCases.map(\.rawValue).joined(separator: ", ")), got '\(dtype)'")
        }
        if !isGGUF, type != nil { throw ValidationError("--type applies to a .gguf output; use --dtype for a safetensors folder") }
        if isGGUF, dtype != "float32" { throw ValidationError("--dtype applies to a safetensors folder; use --type for a .gguf output") }
        guard !adapter.isEmpty else { throw ValidationError("--adapter is required") }
        try requireAdapterFolders(adapter)
        if noCheck, checkJson != nil { throw ValidationError("--check-json needs the check (drop --no-check)") }
    }

    func run() throws {
        let base = try ModelLocator.resolve(model)
        let adapterURLs = adapter.map { URL(fileURLWithPath: $0) }
        let export = try ModelExport(base: base, adapters: adapterURLs)
        let err = FileHandle.standardError
        let described = zip(adapter, export.adapters).map { "\($0.0) (r=\($0.1.rank), alpha=\($0.1.alpha))" }.joined(separator: " + ")
        err.write(Data("merging \(described), \(export.adaptedModules.count) layers, into \(base)\n".utf8))
        let start = Date()
        let bar = ProgressBar(total: 1, label: "export", unit: "tensors", quiet: quiet)
        let progress: (Int, Int) -> Void = { done, total in
            bar.total = total
            bar.update(done, final: done == total)
        }
        if isGGUF {
            let types = try export.writeGGUF(to: out, type: ModelExport.GGUFType(rawValue: type ?? "f16")!, progress: progress)
            let counts = Dictionary(grouping: types.values, by: \.name).mapValues(\.count).sorted { $0.key < $1.key }
            err.write(Data("wrote \(out): \(types.count) tensors (\(counts.map { "\($0.value) \($0.key)" }.joined(separator: ", "))) in \(String(format: "%.1f", Date().timeIntervalSince(start))) s\n".utf8))
        } else {
            try export.writeHuggingFace(to: out, type: ModelExport.SafetensorsType(rawValue: dtype)!, progress: progress)
            err.write(Data("wrote \(out)/ (safetensors \(dtype), config.json, tokenizer files) in \(String(format: "%.1f", Date().timeIntervalSince(start))) s\n".utf8))
        }
        guard !noCheck else { return }
        let check = try ExportCheck.run(exported: out, base: base, adapters: adapterURLs)
        print(String(format: "check on %d positions: max |logit difference| %.2e, top-1 agreement %.1f%%; greedy: %d of %d tokens agree",
                     check.positions, check.maxLogitDifference, 100 * check.top1Agreement, check.greedyAgreeing, check.greedyTokens))
        print(String(format: "  the adapter itself moves logits by up to %.2f and changes the top token at %d positions; the export keeps %.0f%% of those changes",
                     check.baseMaxLogitDifference, check.adapterChangedPositions, 100 * check.adapterChangesKept))
        if !check.isFaithful {
            FileHandle.standardError.write(Data("""
            warning: the export departs from base+adapter (above). Re-quantizing to 4 bits erases much of a LoRA update, \
            whose changes are smaller than a 4-bit step; --type q8_0 or f16 keeps it.\n
            """.utf8))
        }
        if let checkJson {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            try encoder.encode(check).write(to: URL(fileURLWithPath: checkJson), options: .atomic)
        }
        if isGGUF {
            print("serve it: llama-server -m \(out)   |   ollama: a Modelfile with 'FROM \(out)', then ollama create <name> -f Modelfile")
        } else {
            print("serve it: vllm serve \(out)   |   or load it here: valuealign chat --model \(out)")
        }
    }
}
