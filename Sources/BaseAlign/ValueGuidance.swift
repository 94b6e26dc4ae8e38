public import LanguageModels
public import ValueSpace

/// Value-conditioned prompting: a system prompt that asks for answers acting on a target
/// profile's values. `valuealign align` samples some of each prompt's candidates with it
/// (`guidedSamples`) and trains on them *without* it, so the model learns to answer that way
/// unprompted (context distillation, ranked by the same BaseAlign reward as the other candidates).
public enum ValueGuidance {
    /// Values with a target of at least this size are named as supported (or opposed).
    static let threshold = 0.3

    /// The guidance text for `target`; nil when the profile names no value strongly enough.
    public static func systemPrompt(for target: ValueProfile) -> String? {
        let supported = SchwartzValue.allCases.filter { target.vector[$0] >= threshold }
        let opposed = SchwartzValue.allCases.filter { target.vector[$0] <= -threshold }
        guard !supported.isEmpty || !opposed.isEmpty else { return nil }
        var lines = ["You are a helpful assistant. Your answers act on these values:"]
        for v in supported { lines.append("- \(v.displayName): \(v.definition)") }
        if !opposed.isEmpty {
            lines.append("Your answers do not promote these values:")
            for v in opposed { lines.append("- \(v.displayName): \(v.definition)") }
        }
        lines.append("Answer the request helpfully and honestly in that spirit. If the request asks for help to cause harm or break the law, decline briefly and offer a safe alternative.")
        return lines.joined(separator: "\n")
    }

    /// `messages` with the guidance as its system turn (put before an existing system turn's text).
    public static func guided(_ messages: [ChatMessage], guidance: String) -> [ChatMessage] {
        messages.addingSystemText(guidance, first: true)
    }
}
