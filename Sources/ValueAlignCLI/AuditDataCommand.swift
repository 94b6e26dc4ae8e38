import ArgumentParser
import DataAudit
import Foundation
import ValueAlignServer

struct AuditDataCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "audit-data",
        abstract: "Score a dataset file with a value evaluator; sort it into keep / review / drop against a guard policy, with near-duplicates, evaluation-set overlap and mislabelled preference pairs; write filtered copies and an HTML report.",
        discussion: """
        FILE: JSON Lines ({prompt, response}, {prompt, chosen, rejected}, HH-style {chosen, rejected}, OpenAI {messages}, \
        Alpaca {instruction, input, output}, {text}; detected per line) or CSV with named columns (--prompt-column ...). \
        Writes into --out: scores.jsonl (every record: values, distance, decision, reasons), keep/review/drop copies \
        (records verbatim), bad-lines.jsonl (with line numbers), summary.json and report.html. Streams the file; a rerun \
        continues where an interrupted one stopped. Decontamination checks prompts against the project's held-out prompt \
        sets and the shared data's test sets (--eval-set adds more, --no-default-eval-sets drops ours).
        """
    )

    @Argument(help: "The dataset file (.jsonl or .csv).") var file: String
    @Option(help: "Output folder.") var out: String
    @Option(help: "Guard policy (JSON or YAML) whose output stage (and input stage, on prompts) decides.") var policy = "examples/guard-policy.json"
    @OptionGroup var evaluatorOptions: EvaluatorOptions
    @Option(help: "Records per evaluator call (the evaluator sorts them by length into its own batches) and per resumable step.") var batchSize = 128
    @Option(help: "Only the first N records.") var limit: Int?
    @Option(help: "Near-duplicate threshold: estimated Jaccard similarity of word 3-grams.") var duplicateThreshold = 0.8
    @Flag(help: "Report near-duplicates but keep them.") var keepDuplicates = false
    @Flag(help: "Report evaluation-set overlap but keep such records.") var keepContaminated = false
    @Option(help: "Preference pairs: suspect when rejected lies closer to the target than chosen by more than this distance.") var pairMargin = 0.1
    @Option(help: "An evaluation set to check prompts against: NAME=PATH (JSONL with prompt, or CSV); repeatable.") var evalSet: [String] = []
    @Flag(help: "Do not check against the project's own evaluation sets.") var noDefaultEvalSets = false
    @Option(help: "CSV: the prompt column.") var promptColumn = "prompt"
    @Option(help: "CSV: the response column.") var responseColumn = "response"
    @Option(help: "CSV: the chosen column (preference data).") var chosenColumn = "chosen"
    @Option(help: "CSV: the rejected column (preference data).") var rejectedColumn = "rejected"
    @Option(help: "CSV: the source column (per-source breakdown).") var sourceColumn = "source"
    @Flag(help: "Skip the policy's input stage (each prompt read alone): about 20% faster; only responses are checked.") var noPromptCheck = false
    @Flag(help: "Discard an earlier audit in --out and begin again.") var restart = false
    @Flag(help: "No progress bar.") var quiet = false

    func validate() throws {
        guard FileManager.default.fileExists(atPath: file) else { throw ValidationError("no such file '\(file)'") }
        guard FileManager.default.fileExists(atPath: policy) else { throw ValidationError("--policy: no such file '\(policy)'") }
        guard batchSize >= 1 else { throw ValidationError("--batch-size must be at least 1") }
        guard duplicateThreshold > 0, duplicateThreshold <= 1 else { throw ValidationError("--duplicate-threshold must be in (0, 1]") }
        guard pairMargin >= 0 else { throw ValidationError("--pair-margin must not be negative") }
        for spec in evalSet {
            guard let eq = spec.firstIndex(of: "="), !spec[..<eq].isEmpty else { throw ValidationError("--eval-set '\(spec)' is not NAME=PATH") }
            let path = String(spec[spec.index(after: eq)...])
            guard FileManager.default.fileExists(atPath: path) else { throw ValidationError("--eval-set: no such file '\(path)'") }
        }
    }

    func run() async throws {
        if restart { try? FileManager.default.removeItem(atPath: out) }
        var sets: [(name: String, path: String)] = evalSet.map { spec in
            let eq = spec.firstIndex(of: "=")!
            return (String(spec[..<eq]), String(spec[spec.index(after: eq)...]))
        }
        let err = FileHandle.standardError
        if !noDefaultEvalSets {
            let defaults = ContaminationIndex.defaultSets()
            sets = defaults.sets.map { (name: $0.0, path: $0.1) } + sets
            for m in defaults.missing { err.write(Data("warning: evaluation set \(m) not found, so not checked (set $VALUEALIGN_DATA for the shared ones)\n".utf8)) }
        }
        let contamination = try ContaminationIndex.load(sets)
        var columns = CSVColumns()
        columns.prompt = promptColumn
        columns.response = responseColumn
        columns.chosen = chosenColumn
        columns.rejected = rejectedColumn
        columns.source = sourceColumn
        var options = DataAudit.Options()
        options.batchSize = batchSize
        options.limit = limit
        options.duplicateThreshold = duplicateThreshold
        options.dropDuplicates = !keepDuplicates
        options.dropContaminated = !keepContaminated
        options.pairMargin = pairMargin
        options.checkPrompts = !noPromptCheck
        let total = min(limit ?? .max, try DataAudit.countRecords(file, csvColumns: columns))
        let guardPolicy = try GuardPolicy.load(contentsOf: policy)
        let evaluatorOptions = self.evaluatorOptions
        let evaluator = try await offPool { try evaluatorOptions.make() }
        let audit = DataAudit(input: file, outputDirectory: out, policy: guardPolicy, evaluator: evaluator, options: options,
                              csvColumns: columns, contamination: contamination)
        let bar = ProgressBar(total: total, label: "audit", unit: "records", quiet: quiet)
        let interrupt = Interrupt(message: "stopping after this batch (scores so far are kept; rerun to continue)")
        defer { interrupt.stop() }
        var last: DataAudit.Progress?
        try await audit.score { p in
            last = p
            bar.update(p.done, extra: String(format: "%.1f records/s", p.elapsed > 0 ? Double(p.scoredNow) / p.elapsed : 0))
            return !interrupt.isRequested
        }
        if interrupt.isRequested {
            err.write(Data("\ninterrupted: \(last?.done ?? 0) records scored are kept in \(out)/scores.jsonl; run the same command again to continue\n".utf8))
            throw ExitCode(130)
        }
        bar.update(total, final: true)
        let summary = try audit.finish(elapsed: last?.elapsed, scoredNow: last?.scoredNow ?? 0)
        let d = summary.decisions
        print("\(summary.records) records: keep \(d["keep"] ?? 0), review \(d["review"] ?? 0), drop \(d["drop"] ?? 0), bad \(d["bad"] ?? 0); near-duplicates \(summary.duplicates), overlapping evaluation sets \(summary.contaminated)")
        if summary.preferencePairs > 0 {
            print("preference pairs: chosen closer to the target in \(summary.chosenCloser) of \(summary.preferencePairs); \(summary.suspectLabels) suspect (sent to review)")
        }
        for b in summary.bad.prefix(5) { err.write(Data("bad record at \(file):\(b.line): \(b.message)\n".utf8)) }
        if summary.badRecords > 5 { err.write(Data("… \(summary.badRecords - 5) more bad records in \(out)/bad-lines.jsonl\n".utf8)) }
        print("wrote \(out)/report.html, summary.json, scores.jsonl and the keep/review/drop copies")
    }
}
