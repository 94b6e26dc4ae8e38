public import ValueAlignCore

/// One answer critiqued against a principle and rewritten.
public struct RevisionRecord: Sendable, Codable, Equatable {
    /// The principle's id (or "policy" for the guard's policy check).
    public var principle: String
    public var critique: String
    public var revised: String

    public init(principle: String, critique: String, revised: String) {
        self.principle = principle
        self.critique = critique
        self.revised = revised
    }
}

/// Critique-and-revise (Constitutional AI's supervised stage): the model is shown its answer and a
/// principle's critique request, writes a critique, then is shown the critique and the revision
/// request and rewrites its answer. The conversations are built here, once, for every user of
/// the loop: `valuealign cai generate`, `align --method cai-sft|cai-dpo`, and the guard's `revise`
/// action (which takes its critique from the policy check instead of from the model).
///
/// The loop is independent of how text is generated: callers pass a function that answers a
/// batch of conversations (a local generator on a training thread, or any `ChatBackend`).
public struct CritiqueAndRevise: Sendable {
    public let constitution: Constitution

    public init(constitution: Constitution) {
        self.constitution = constitution
    }

    /// The conversation that asks for a critique of `answer` to `prompt`.
    public static func critiqueConversation(_ prompt: [ChatMessage], answer: String, request: String) -> [ChatMessage] {
        prompt + [.assistant(answer), .user("\(request)\nWrite the critique in two or three sentences.")]
    }

    /// The system turn that asks for a rewrite after a critique: the earlier answer, the critique
    /// and the request, with the instruction to answer the user directly.
    public static func revisionInstructions(answer: String, critique: String, request: String) -> String {
        """
        \(request)
        An earlier answer to the user's last message was:
        \(answer.trimmingCharacters(in: .whitespacesAndNewlines))
        A critique of that answer: \(critique.trimmingCharacters(in: .whitespacesAndNewlines))
        Now answer the user's last message again, better. Reply to the user directly, as the assistant; \
        do not mention the earlier answer, the critique or these instructions.
        """
    }

    /// The conversation that asks for a rewrite of `answer` after `critique`: the user's own
    /// conversation, preceded by the instructions as the system turn (joined to an existing system
    /// turn), so that the model's next turn is an answer to the user rather than a comment on an
    /// answer. (Asking for the rewrite as a new user turn made the embedded 135M model write
    /// commentary such as "The response is ...", which the evaluator rewarded: docs/oversight.md.)
    public static func revisionConversation(_ prompt: [ChatMessage], answer: String, critique: String, request: String) -> [ChatMessage] {
        prompt.addingSystemText(revisionInstructions(answer: answer, critique: critique, request: request), first: false)
    }

    /// Whether a rewrite can be trained on: not empty, not looping (at least half of its word
    /// trigrams distinct, from 12 words on), and not opening with commentary on an answer ("The
    /// response ...", "This revised answer ...", "Rewritten: ..."). Small models write such
    /// commentary instead of an answer, and the value evaluator can read it as close to the target.
    public static func isUsableRevision(_ text: String) -> Bool {
        let t = text.trimmingCharacters(in: .whitespacesAndNewlines)
        guard !t.isEmpty else { return false }
        let words = t.lowercased().split(whereSeparator: { $0.isWhitespace }).map(String.init)
        if words.count >= 12 {
            var trigrams: [[String]] = []
            for i in 0..<(words.count - 2) { trigrams.append(Array(words[i...(i + 2)])) }
            if Double(Set(trigrams).count) < 0.5 * Double(trigrams.count) { return false }
        }
        let opening = String(t.lowercased().prefix(100))
        let commentary = #"^(the|this|my|your|our|that)\s+(\w+\s+){0,2}(response|answer|reply|critique|revision|rewrite)\b|^(here is|here's)\s+(a|the|my)\s+(\w+\s+){0,2}(response|answer|version|rewrite)|\b(rewritten|revised) (response|answer|version)\b|\b(original|previous|earlier) (response|answer)\b"#
        return opening.range(of: commentary, options: .regularExpression) == nil
    }

    /// A rewrite without the lead-in small models put before it ("Rewritten answer:", "Sure, here
    /// is the revised response:") and without surrounding quotes.
    public static func cleanRevision(_ text: String) -> String {
        var t = text.trimmingCharacters(in: .whitespacesAndNewlines)
        let lower = t.lowercased()
        for lead in ["rewritten answer:", "revised answer:", "revised response:", "rewritten response:", "revision:"] where lower.hasPrefix(lead) {
            t = String(t.dropFirst(lead.count)).trimmingCharacters(in: .whitespacesAndNewlines)
            break
        }
        if let newline = t.firstIndex(of: "\n") {
            let first = t[..<newline].lowercased()
            if (first.hasPrefix("sure") || first.hasPrefix("here is") || first.hasPrefix("here's")) && first.hasSuffix(":") {
                t = String(t[t.index(after: newline)...]).trimmingCharacters(in: .whitespacesAndNewlines)
            }
        }
        if t.count >= 2, t.first == "\"", t.last == "\"" { t = String(t.dropFirst().dropLast()) }
        return t
    }

    /// Critiques and revises every answer: one principle per item, drawn from `seeds[i]`;
    /// two batched calls of `complete` (all critiques, then all rewrites).
    public func run(_ items: [(prompt: [ChatMessage], answer: String)], seeds: [UInt64],
                    complete: ([[ChatMessage]]) async throws -> [String]) async throws -> [RevisionRecord] {
        let principles = principles(items, seeds: seeds)
        let critiques = try await complete(critiqueConversations(items, principles))
        let revisions = try await complete(try revisionConversations(items, principles, critiques: critiques))
        return try records(principles, critiques: critiques, revisions: revisions)
    }

    /// The same loop with a blocking `complete` (for a training thread).
    public func runBlocking(_ items: [(prompt: [ChatMessage], answer: String)], seeds: [UInt64],
                            complete: ([[ChatMessage]]) throws -> [String]) throws -> [RevisionRecord] {
        let principles = principles(items, seeds: seeds)
        let critiques = try complete(critiqueConversations(items, principles))
        let revisions = try complete(try revisionConversations(items, principles, critiques: critiques))
        return try records(principles, critiques: critiques, revisions: revisions)
    }

    // The loop's steps, shared by `run` and `runBlocking`.

    private func principles(_ items: [(prompt: [ChatMessage], answer: String)], seeds: [UInt64]) -> [Constitution.Principle] {
        precondition(items.count == seeds.count, "one seed per item")
        return seeds.map { constitution.principle(seed: $0) }
    }

    private func critiqueConversations(_ items: [(prompt: [ChatMessage], answer: String)], _ principles: [Constitution.Principle]) -> [[ChatMessage]] {
        zip(items, principles).map { Self.critiqueConversation($0.prompt, answer: $0.answer, request: $1.critique) }
    }

    private func revisionConversations(_ items: [(prompt: [ChatMessage], answer: String)], _ principles: [Constitution.Principle],
                                       critiques: [String]) throws(ConstitutionError) -> [[ChatMessage]] {
        try check(critiques.count, items.count)
        return items.indices.map {
            Self.revisionConversation(items[$0].prompt, answer: items[$0].answer, critique: critiques[$0], request: principles[$0].revision)
        }
    }

    private func records(_ principles: [Constitution.Principle], critiques: [String], revisions: [String]) throws(ConstitutionError) -> [RevisionRecord] {
        try check(revisions.count, principles.count)
        return principles.indices.map {
            RevisionRecord(principle: principles[$0].id, critique: critiques[$0].trimmingCharacters(in: .whitespacesAndNewlines),
                           revised: Self.cleanRevision(revisions[$0]))
        }
    }

    private func check(_ got: Int, _ expected: Int) throws(ConstitutionError) {
        guard got == expected else { throw .invalid("the model answered \(got) of \(expected) conversations") }
    }
}
