import ArgumentParser
import Foundation
import LanguageModels

struct GenerateCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "generate",
        abstract: "Answer every prompt of a JSONL file into a JSONL file, in batches; a rerun resumes.",
        discussion: """
        Input lines: {"id": "...", "prompt": "...", "system": "..."} or {"id": "...", "messages": [{"role": "user", "content": "..."}]}; \
        id is optional (default: line-N). Output lines: id, messages, response, finish_reason, prompt_tokens, completion_tokens, model. \
        Ids already in the output file are skipped, so an interrupted run continues where it stopped.
        """
    )

    @OptionGroup var modelOptions: ModelOptions
    @OptionGroup var generation: GenerationOptions

    @Option(help: "Prompts file (JSONL).") var prompts: String
    @Option(help: "Output file (JSONL); appended to.") var out: String
    @Option(help: "Prompts per batch (local models generate a batch at once).") var batchSize = 16
    @Option(help: "Only prompts with this split field (train, heldout).") var split: String?
    @Option(help: "At most this many prompts.") var limit: Int?
    @Flag(help: "No progress bar.") var quiet = false

    func validate() throws {
        guard batchSize >= 1 else { throw ValidationError("--batch-size must be at least 1") }
        guard FileManager.default.fileExists(atPath: prompts) else { throw ValidationError("--prompts: no such file '\(prompts)'") }
    }

    func run() async throws {
        var parameters = GenerationJob.Parameters(promptsPath: prompts, outputPath: out)
        parameters.batchSize = batchSize
        parameters.generation = generation.parameters
        parameters.split = split
        parameters.limit = limit
        let job = GenerationJob(parameters)
        let total = try job.loadPrompts().count  // fails on a bad line before the model loads
        let backend = try modelOptions.makeBackend()
        let bar = ProgressBar(total: total, label: "generate", unit: "prompts", quiet: quiet)
        var last: GenerationJob.Progress?
        let written = try await job.run(backend: backend) { p in
            last = p
            bar.update(p.done, extra: String(format: "%.1f tok/s", p.elapsed > 0 ? Double(p.generatedTokens) / p.elapsed : 0))
            return true
        }
        if let p = last {
            bar.update(p.done, extra: String(format: "%.1f tok/s", p.elapsed > 0 ? Double(p.generatedTokens) / p.elapsed : 0), final: true)
        }
        FileHandle.standardError.write(Data("wrote \(written) answers to \(out) (\(total - written) already there)\n".utf8))
    }
}
