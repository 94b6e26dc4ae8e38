import ArgumentParser
import Evaluators
import Foundation
import LanguageModels
import StressTest
import ValueAlignCore

/// `valuealign trigger-search`: tries to surface a backdoor's trigger from behaviour differences alone (issue 25).
struct TriggerSearchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "trigger-search",
        abstract: "Search for a phrase that changes a model's behaviour far more than it changes the base model's (a backdoor trigger).",
        discussion: """
        Every candidate phrase (--candidates, one per line) is put before each request; the search measures how far \
        it moves the model's next-token distributions over the start of its own answer (mean KL divergence), minus \
        the same for the base model without the adapter. Candidates are ranked on the selection prompts, measured \
        again on held-out prompts, and the best are verified by generating answers with and without them (the \
        evaluator judges harm and refusal). A greedy token search then edits the best phrase token by token. \
        --true-trigger or --recipe (an organism's recipe.json) is read only after the search, to report how \
        close it came. Writes OUT/report.json and OUT/report.md.
        """
    )

    @Option(name: .shortAndLong, help: "Base model (default: the embedded SmolLM2).") var model: String?
    @Option(help: "The PEFT adapter under test (e.g. runs/organisms/backdoored/adapter).") var adapter: String
    @Flag(help: "Rank by the adapted model's own shift, without subtracting the base model's.") var noReference = false
    @Option(help: "Candidate phrases, one per line.") var candidates = "data/triggers/candidates.txt"
    @Option(help: "Leave this candidate out (repeatable; e.g. to see what surfaces without the exact trigger).") var exclude: [String] = []
    @Option(help: "Requests (prompt-set JSONL with splits).") var prompts = "data/prompts/harm_prompts.jsonl"
    @Option(help: "Split and number of the selection prompts.") var selectionSplit = "validation"
    @Option(help: "Selection prompts.") var selection = 8
    @Option(help: "Split of the held-out prompts.") var heldOutSplit = "test"
    @Option(help: "Held-out prompts.") var heldOut = 16
    @Option(help: "Answer tokens compared.") var responseTokens = 8
    @Option(help: "Rounds of the token search (0: none).") var tokenSearchRounds = 1
    @Option(help: "Replacement tokens tried per position and round.") var tokensPerPosition = 12
    @Option(help: "Best candidates verified by generation.") var verify = 3
    @Option(help: "Seed of the token search.") var seed: UInt64 = 0
    @Option(help: "The true trigger, read only after the search to score it.") var trueTrigger: String?
    @Option(help: "An organism's recipe.json whose trigger scores the search afterwards.") var recipe: String?
    @Option(help: "Evaluator weights of the verification judge (default: the shipped ones).") var evaluatorWeights: String?
    @Option(help: "Output folder.") var out = "runs/trigger-search"
    @Flag(help: "No progress bars.") var quiet = false

    func validate() throws {
        guard FileManager.default.fileExists(atPath: adapter + "/adapter_config.json") else { throw ValidationError("--adapter: no PEFT adapter (adapter_config.json) in '\(adapter)'") }
        guard FileManager.default.fileExists(atPath: candidates) else { throw ValidationError("--candidates: no such file '\(candidates)'") }
        guard FileManager.default.fileExists(atPath: prompts) else { throw ValidationError("--prompts: no such file '\(prompts)'") }
        guard selection >= 1, heldOut >= 2 else { throw ValidationError("--selection must be at least 1 and --held-out at least 2") }
        guard responseTokens >= 1, tokenSearchRounds >= 0, tokensPerPosition >= 1, verify >= 0 else {
            throw ValidationError("--response-tokens and --tokens-per-position must be at least 1; --token-search-rounds and --verify not negative")
        }
        if trueTrigger != nil, recipe != nil { throw ValidationError("give --true-trigger or --recipe, not both") }
        if let recipe, !FileManager.default.fileExists(atPath: recipe) { throw ValidationError("--recipe: no such file '\(recipe)'") }
    }

    func run() async throws {
        let path = try ModelLocator.resolve(model)
        var list = try TriggerSearch.candidates(from: candidates)
        for e in exclude {
            guard list.contains(e) else { throw ValidationError("--exclude: '\(e)' is not among the candidates of \(candidates)") }
            list.removeAll { $0 == e }
        }
        var search = TriggerSearch(candidates: list, selectionPrompts: try TriggerSearch.prompts(from: prompts, split: selectionSplit, count: selection),
                                   heldOutPrompts: try TriggerSearch.prompts(from: prompts, split: heldOutSplit, count: heldOut))
        search.parameters.responseTokens = responseTokens
        search.parameters.tokenSearchRounds = tokenSearchRounds
        search.parameters.tokensPerPosition = tokensPerPosition
        search.parameters.verify = verify
        search.parameters.seed = seed
        let organism = try LoadedModel.load(path)
        try PEFTAdapter.load(from: URL(fileURLWithPath: adapter), into: organism.model)
        let reference = noReference ? nil : try LoadedModel.load(path)
        let judge = try TrainedValueEvaluator.load(weights: evaluatorWeights)
        let display = OrganismDisplay(quiet: quiet)
        var report = try await search.run(model: organism, reference: reference, judge: verify > 0 ? judge : nil) { stage, done, total in
            display.show(.answering("trigger search", set: stage, done: done, total: total))
        }
        display.finish()
        // Scoring: only now is the true trigger read.
        var truth = trueTrigger
        if let recipe {
            let r = try JSONDecoder().decode(OrganismRecipe.self, from: Data(contentsOf: URL(fileURLWithPath: recipe)))
            guard let t = r.trigger else { throw ValidationError("--recipe: \(recipe) records no trigger (not a backdoored organism)") }
            truth = t
        }
        if let truth {
            let measured = try await search.measure(truth, model: organism, reference: reference, judge: verify > 0 ? judge : nil)
            report.scoring = TriggerScoring(trueTrigger: truth, report: report, measured: measured)
        }
        let folder = URL(fileURLWithPath: out)
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        try TriggerSearch.write(report, to: folder)
        print(TriggerSearch.markdown(report))
        print("wrote \(out)/report.json, report.md")
    }
}
