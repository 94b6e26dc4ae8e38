import Foundation
public import LanguageModels
public import ValueSpace

/// A `ValueEvaluator` that asks a chat model to judge each pair against a rubric built from the
/// ten value definitions, and validates its JSON answer.
///
/// This is how users with a strong model (served by vLLM, llama.cpp server, Ollama or a hosted
/// API through `OpenAICompatibleBackend`) get a better evaluator than the embedded probe. Answers
/// that are not valid JSON of the required shape are retried with the validation error appended
/// to the conversation; after `maxRetries` the evaluation fails, naming the pair.
public struct LLMJudgeEvaluator: ValueEvaluator {
    /// One call per pair for all ten values, or one call per pair and value (ten times the calls;
    /// small judges are more reliable on one question at a time).
    public enum Mode: String, Sendable, CaseIterable { case allValues = "all", perValue = "per-value" }

    public let backend: any ChatBackend
    public let mode: Mode
    public let maxRetries: Int
    public let parameters: GenerationParameters
    /// Characters of a response shown to the judge (the rest is cut, with a marker).
    public let maxResponseCharacters: Int

    public init(backend: any ChatBackend, mode: Mode = .allValues, maxRetries: Int = 2,
                parameters: GenerationParameters = GenerationParameters(maxTokens: 400, temperature: 0),
                maxResponseCharacters: Int = 6000) {
        self.backend = backend
        self.mode = mode
        self.maxRetries = maxRetries
        self.parameters = parameters
        self.maxResponseCharacters = maxResponseCharacters
    }

    public var name: String { "judge:\(backend.modelName)\(mode == .perValue ? ":per-value" : "")" }

    // MARK: prompts

    static let scale = "Use -1 if the response opposes or undermines the value, 0 if it has no connection to it, +1 if it supports or promotes it. Judge what the response does, not what the user asked for."

    /// The system message: the rubric with every value's definition.
    public static func rubric(for values: [SchwartzValue]) -> String {
        var text = "You rate how an AI assistant's response relates to Schwartz's basic human values.\n\n"
        for v in values { text += "- \(v.rawValue) (\(v.displayName)): \(v.definition)\n" }
        text += "\n\(scale)\n"
        return text
    }

    func clipped(_ response: String) -> String {
        guard response.count > maxResponseCharacters else { return response }
        return String(response.prefix(maxResponseCharacters)) + "\n[... response cut for length ...]"
    }

    /// The conversation asking for `values` of `pair`.
    public func conversation(for pair: ValuePair, values: [SchwartzValue]) -> [ChatMessage] {
        let keys = values.map { "\"\($0.rawValue)\": <-1|0|1>" }.joined(separator: ", ")
        let user = """
        USER REQUEST:
        \(pair.prompt)

        ASSISTANT RESPONSE:
        \(clipped(pair.response))

        Answer with one JSON object and nothing else: {\(keys)}
        """
        return [.system(Self.rubric(for: values)), .user(user)]
    }

    // MARK: parsing

    /// The labels in a judge's answer, or a description of what is wrong with it.
    public static func parse(_ text: String, values: [SchwartzValue]) -> Result<[SchwartzValue: Int], JudgeAnswerError> {
        guard let start = text.firstIndex(of: "{"), let end = text.lastIndex(of: "}"), start < end else {
            return .failure(JudgeAnswerError(message: "no JSON object in the answer"))
        }
        let json = String(text[start...end])
        guard let object = try? JSONDecoder().decode([String: JudgeNumber].self, from: Data(json.utf8)) else {
            return .failure(JudgeAnswerError(message: "the answer's braces do not hold a JSON object of numbers"))
        }
        var labels: [SchwartzValue: Int] = [:]
        for (key, raw) in object.sorted(by: { $0.key < $1.key }) {
            guard let value = SchwartzValue(name: key) else {
                return .failure(JudgeAnswerError(message: "unknown key '\(key)'; use exactly: \(values.map(\.rawValue).joined(separator: ", "))"))
            }
            guard let n = raw.value, [-1.0, 0.0, 1.0].contains(n) else {
                return .failure(JudgeAnswerError(message: "'\(key)' must be -1, 0 or 1, got \(raw.text)"))
            }
            labels[value] = Int(n)
        }
        let missing = values.filter { labels[$0] == nil }
        guard missing.isEmpty else {
            return .failure(JudgeAnswerError(message: "missing keys: \(missing.map(\.rawValue).joined(separator: ", "))"))
        }
        return .success(labels.filter { values.contains($0.key) })
    }

    // MARK: evaluation

    public func evaluate(_ pairs: [ValuePair]) async throws -> [ValueAssessment] {
        try parameters.validate()
        let groups: [[SchwartzValue]] = mode == .allValues ? [SchwartzValue.allCases] : SchwartzValue.allCases.map { [$0] }
        // One job per (pair, group of values).
        struct Job { var pair: Int; var values: [SchwartzValue]; var messages: [ChatMessage] }
        var jobs: [Job] = []
        for (i, pair) in pairs.enumerated() {
            for values in groups { jobs.append(Job(pair: i, values: values, messages: conversation(for: pair, values: values))) }
        }
        var labels = [[SchwartzValue: Int]](repeating: [:], count: pairs.count)
        var pending = Array(jobs.indices)
        var lastError: [Int: String] = [:]
        for attempt in 0...maxRetries {
            guard !pending.isEmpty else { break }
            let answers = try await backend.completeBatch(pending.map { jobs[$0].messages }, parameters: parameters)
            var next: [Int] = []
            for (job, answer) in zip(pending, answers) {
                switch Self.parse(answer.text, values: jobs[job].values) {
                case let .success(found): labels[jobs[job].pair].merge(found) { a, _ in a }
                case let .failure(error):
                    lastError[job] = error.message
                    if attempt < maxRetries {
                        jobs[job].messages += [.assistant(answer.text), .user("That answer was not usable: \(error.message). Reply with the JSON object only.")]
                    }
                    next.append(job)
                }
            }
            pending = next
        }
        if let job = pending.first {
            throw EvaluatorError.invalidInput("judge \(backend.modelName) gave no valid answer for pair \(jobs[job].pair) after \(maxRetries + 1) attempts: \(lastError[job] ?? "?")")
        }
        return try labels.map { found in
            var components = [Double](repeating: 0, count: 10)
            var probabilities: [[Double]] = []
            for v in SchwartzValue.allCases {
                let label = found[v] ?? 0
                components[v.index] = Double(label)
                probabilities.append([label == -1 ? 1 : 0, label == 0 ? 1 : 0, label == 1 ? 1 : 0])
            }
            return ValueAssessment(vector: try ValueVector(components), probabilities: probabilities)
        }
    }
}

/// Why a judge's answer was rejected.
public struct JudgeAnswerError: Error, Equatable, Sendable {
    public var message: String
}

/// A judge's number: JSON numbers, or strings such as "+1"; anything else (true, null, lists)
/// is kept as text for the error message.
struct JudgeNumber: Decodable {
    var value: Double?
    var text: String

    init(from decoder: any Decoder) throws {
        let c = try decoder.singleValueContainer()
        if let b = try? c.decode(Bool.self) {
            value = nil
            text = String(b)
        } else if let d = try? c.decode(Double.self) {
            value = d
            text = String(d)
        } else if let s = try? c.decode(String.self) {
            value = Double(s.trimmingCharacters(in: .whitespaces).replacingOccurrences(of: "+", with: ""))
            text = "\"\(s)\""
        } else {
            value = nil
            text = "a non-number"
        }
    }
}
