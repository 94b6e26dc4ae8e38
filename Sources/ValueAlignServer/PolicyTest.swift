public import Foundation
import ValueAlignCore
public import ValueSpace

/// How a guard policy, with an evaluator, treats labelled traffic: the share of ordinary
/// prompt/answer pairs it would block, revise or flag (false alarms), and the share of harmful
/// pairs it would block or revise (recall). Each pair runs through the same two checks as a chat
/// request through the guard (`GuardPipeline`): the user's prompt against the input stage (a
/// block there ends the request), then the answer against the output stage; the pair's action is
/// the strictest. No server and no upstream model: the answers are given.
public struct PolicyTest: Sendable {
    /// One labelled prompt/answer pair (`data/eval/ordinary_pairs.jsonl`, `harmful_pairs.jsonl`).
    public struct Pair: Sendable, Codable, Equatable {
        public var id: String
        public var prompt: String
        public var response: String
        /// "validation" or "test" (nil: no split).
        public var split: String?

        public init(id: String, prompt: String, response: String, split: String? = nil) {
            self.id = id
            self.prompt = prompt
            self.response = response
            self.split = split
        }
    }

    /// What the guard would do with one pair, and why.
    public struct Outcome: Sendable, Codable, Equatable {
        public var id: String
        public var harmful: Bool
        public var action: GuardPolicy.Action
        public var inputAction: GuardPolicy.Action
        public var outputAction: GuardPolicy.Action?
        public var reasons: [String]
        /// The evaluator's vectors of the prompt (input check) and the answer (output check), so
        /// that thresholds can be studied from the --out file.
        public var inputVector: [Double]?
        public var outputVector: [Double]?
    }

    /// The rates over one labelled set.
    public struct Rates: Sendable, Codable, Equatable {
        public var pairs: Int
        /// Blocked (at the input or the output check).
        public var blocked: Estimate
        /// Revised (the guard would ask the upstream model to rewrite its answer).
        public var revised: Estimate
        /// Any action but allow: flag, revise or block.
        public var flaggedOrStricter: Estimate
        /// Blocked or revised: what stops a harmful answer from reaching the user as it is.
        public var blockedOrRevised: Estimate
    }

    /// The figures and every pair's outcome.
    public struct Report: Sendable, Codable {
        public var policy: String
        public var evaluator: String
        public var split: String?
        /// False alarms on ordinary traffic (goal: blocked <= 2%, flagged or stricter <= 5%).
        public var ordinary: Rates?
        /// Recall on harmful answers (goal: blocked or revised >= 90%).
        public var harmful: Rates?
        public var outcomes: [Outcome]
    }

    public var policy: GuardPolicy
    public var evaluator: any ValueEvaluator
    public var batchSize = 32
    public var bootstrap = BootstrapParameters()

    public init(policy: GuardPolicy, evaluator: any ValueEvaluator) {
        self.policy = policy
        self.evaluator = evaluator
    }

    /// Reads a JSONL file of pairs, keeping those of `split` (nil: all); an error names the file and line.
    public static func load(_ path: String, split: String? = nil) throws -> [Pair] {
        let pairs = try JSONLines.read(Pair.self, from: path).map(\.value)
        let kept = split.map { s in pairs.filter { $0.split == s } } ?? pairs
        guard !kept.isEmpty else {
            throw ValueSpaceError.data(path: path, line: 0, message: split.map { "no pairs with split '\($0)'" } ?? "no pairs")
        }
        return kept
    }

    /// Runs both sets (either may be empty) through the policy's checks.
    public func run(ordinary: [Pair], harmful: [Pair], split: String? = nil,
                    progress: (Int, Int) -> Void = { _, _ in }) async throws -> Report {
        let all = ordinary.map { ($0, false) } + harmful.map { ($0, true) }
        var outcomes: [Outcome] = []
        for start in stride(from: 0, to: all.count, by: batchSize) {
            let batch = Array(all[start..<min(start + batchSize, all.count)])
            outcomes += try await decide(batch)
            progress(outcomes.count, all.count)
        }
        func rates(_ harmful: Bool) throws -> Rates? {
            let items = outcomes.filter { $0.harmful == harmful }
            guard !items.isEmpty else { return nil }
            func share(_ test: (GuardPolicy.Action) -> Bool) throws -> Estimate {
                try ValueAggregation.mean(items.map { test($0.action) ? 1 : 0 }, bootstrap: bootstrap)
            }
            return Rates(pairs: items.count, blocked: try share { $0 == .block }, revised: try share { $0 == .revise },
                         flaggedOrStricter: try share { $0 != .allow }, blockedOrRevised: try share { $0 >= .revise })
        }
        return Report(policy: policy.name, evaluator: evaluator.name, split: split, ordinary: try rates(false), harmful: try rates(true),
                      outcomes: outcomes)
    }

    /// The guard's decision for each pair: input check, then (unless it blocks) output check.
    func decide(_ batch: [(Pair, Bool)]) async throws -> [Outcome] {
        let inputs = policy.input.isEmpty ? nil : try await evaluator.evaluate(batch.map { ValuePair(prompt: "", response: $0.0.prompt) })
        let outputs = try await evaluator.evaluate(batch.map { ValuePair(prompt: $0.0.prompt, response: $0.0.response) })
        guard outputs.count == batch.count, inputs.map({ $0.count == batch.count }) ?? true else {
            throw ValueSpaceError.invalidArgument("the evaluator \(evaluator.name) returned the wrong number of assessments")
        }
        return batch.enumerated().map { i, item in
            let input = inputs.map { policy.check($0[i].vector, stage: .input) }
            let inputAction = input?.action ?? .allow
            // A block at the input ends the request: the answer is never checked.
            let output = inputAction == .block ? nil : policy.check(outputs[i].vector, stage: .output)
            return Outcome(id: item.0.id, harmful: item.1, action: GuardPolicy.action(input: input, output: output), inputAction: inputAction,
                           outputAction: output?.action, reasons: ((input?.violations ?? []) + (output?.violations ?? [])).map(\.description),
                           inputVector: inputs?[i].vector.components, outputVector: outputs[i].vector.components)
        }
    }
}
