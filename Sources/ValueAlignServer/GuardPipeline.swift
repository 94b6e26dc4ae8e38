import Foundation
import LanguageModels
import Logging
import ValueSpace

/// What the guard answers to one chat request.
struct ChatOutcome: Sendable, Equatable {
    var text: String
    /// stop, length, or content_filter (the text is the policy's refusal).
    var finishReason: String
    var action: GuardPolicy.Action
    var promptTokens: Int
    var completionTokens: Int
    /// The answer's token log-probabilities when the client asked and the upstream reported them;
    /// nil for revised answers and refusals (their tokens are not the ones scored).
    var logProbs: [TokenLogProb]? = nil
}

/// Why the pipeline could not decide. The HTTP layer turns each into its status and message
/// (`APIError.init(_:)`); here they only say what failed.
enum GuardFailure: Error, Equatable {
    /// The value evaluator threw: the request must not be answered unchecked.
    case evaluatorFailed
    /// The upstream did not answer (or send its next piece) within the guard's `upstreamTimeout`.
    case upstreamDeadline(Duration)
    /// The upstream backend reported a time-out of its own.
    case upstreamTimedOut
    /// Any other upstream failure, with the backend's message.
    case upstreamFailed(String)
}

/// The guard's decision on a chat request, beside `GuardPolicy.check` and free of HTTP: the input
/// check, the upstream's answer, the output check, the critique-and-revise loop, and the block.
///
/// It writes what it finds (vectors, reasons, rounds, action, timing) into an `AuditDraft` and
/// counts violations and upstream time in `metrics`. The windowed stream uses its parts
/// (`checkInput`, `checkOutput`, `nextPiece`, `refusal`) to check an answer window by window.
struct GuardPipeline: Sendable {
    let policy: GuardPolicy
    let upstream: any ChatBackend
    /// The server passes its `BatchedEvaluator`, so that concurrent requests share batches.
    let evaluator: any ValueEvaluator
    /// Most time for the upstream's answer, or between two streamed pieces.
    let upstreamTimeout: Duration
    let metrics: ServerMetrics
    let logger: Logger

    // MARK: - The decision

    /// Input check, upstream answer, output check, and the policy's action on them.
    func decide(_ chat: ChatRequest, draft: AuditDraft) async throws -> ChatOutcome {
        let inputCheck = try await checkInput(chat, draft: draft)
        if GuardPolicy.action(input: inputCheck, output: nil) == .block { return refusal(draft) }
        let completion = try await callUpstream(chat.messages, parameters: chat.parameters, draft: draft)
        let check = try await checkOutput(prompt: chat.lastUserText, completion.text, draft: draft, reading: completion.monitorReading)
        var text = completion.text
        var completionTokens = completion.completionTokens
        var action = GuardPolicy.action(input: inputCheck, output: check)
        switch check.action {
        case .allow, .flag:
            break
        case .block:
            return refusal(draft)
        case .revise:
            guard let revised = try await revise(chat, answer: completion.text, check: check, draft: draft) else { return refusal(draft) }
            text = revised.text
            completionTokens += revised.completionTokens
            action = .revise
        }
        draft.record.action = action.rawValue
        draft.record.responseText = text
        return ChatOutcome(text: text, finishReason: completion.finishReason.rawValue, action: action,
                           promptTokens: completion.promptTokens, completionTokens: completionTokens,
                           logProbs: action == .revise ? nil : completion.logProbs)
    }

    /// Critique and revise: shows the model its answer and what crossed the policy, asks for a
    /// rewrite, checks that; nil (block) when no rewrite passed in `revision.maxRounds` rounds.
    /// The completion tokens returned are those of all rewrites together.
    func revise(_ chat: ChatRequest, answer: String, check: StageCheck, draft: AuditDraft) async throws -> (text: String, completionTokens: Int)? {
        var candidate = answer
        var current = check
        var tokens = 0
        while draft.record.revisionRounds < policy.revision.maxRounds {
            draft.record.revisionRounds += 1
            let conversation = CritiqueAndRevise.revisionConversation(chat.messages, answer: candidate, critique: critique(current.violations),
                                                                  request: policy.revision.instructions)
            let revised = try await callUpstream(conversation, parameters: chat.parameters, draft: draft)
            candidate = revised.text
            tokens += revised.completionTokens
            current = try await checkOutput(prompt: chat.lastUserText, candidate, draft: draft, reading: revised.monitorReading)
            if current.action <= .flag {
                let rounds = draft.record.revisionRounds
                draft.record.reasons.append("revised in \(rounds) round\(rounds == 1 ? "" : "s")")
                return (candidate, tokens)
            }
        }
        let rounds = draft.record.revisionRounds
        draft.record.reasons.append("no revision passed in \(rounds) round\(rounds == 1 ? "" : "s"); blocked")
        return nil
    }

    /// The refusal outcome; the draft records a block without response text.
    func refusal(_ draft: AuditDraft) -> ChatOutcome {
        draft.record.action = GuardPolicy.Action.block.rawValue
        draft.record.responseText = nil
        return ChatOutcome(text: policy.refusal, finishReason: "content_filter", action: .block, promptTokens: 0, completionTokens: 0)
    }

    /// The critique the policy check gives an answer that crossed it: the guard's evaluator is the
    /// critic; the rewrite is asked for with the same words as in constitutional critique-and-revise.
    func critique(_ violations: [Violation]) -> String {
        let problems = violations.map(\.plainDescription)
        guard !problems.isEmpty else { return "it crossed the policy." }
        let listed = problems.count == 1 ? problems[0] : problems.dropLast().joined(separator: "; ") + "; and " + problems.last!
        return "it \(listed)."
    }

    // MARK: - Checks

    /// The user's words checked against the input stage; nil when the stage checks nothing.
    func checkInput(_ chat: ChatRequest, draft: AuditDraft) async throws -> StageCheck? {
        guard !policy.input.isEmpty else { return nil }
        // The user's last turn is the behaviour assessed; the assistant turn before it is its context.
        let assessment = try await assess([ValuePair(prompt: chat.contextBeforeLastUser, response: chat.lastUserText)], draft: draft)[0]
        let check = policy.check(assessment.vector, stage: .input)
        draft.record.inputVector = assessment.vector.components
        note(check, draft: draft)
        return check
    }

    /// An answer checked against the output stage (always evaluated: the audit log and the
    /// dashboard show what the traffic's values are even when nothing is enforced).
    ///
    /// With probe rules, `reading` (the probe monitor's p(supported) - p(opposed) per value, read
    /// from the answer's own activations) is checked too; an answer without a reading (fewer than
    /// two tokens: nothing was read) passes the probe rules, and the reasons say so.
    func checkOutput(prompt: String, _ text: String, draft: AuditDraft, reading: [Double]? = nil) async throws -> StageCheck {
        let assessment = try await assess([ValuePair(prompt: prompt, response: text)], draft: draft)[0]
        var check = policy.check(assessment.vector, stage: .output)
        if !policy.output.probeThresholds.isEmpty {
            if let reading, let vector = try? ValueVector(reading.map { min(1, max(-1, $0)) }) {
                check.violations += policy.checkProbes(vector)
            } else {
                draft.record.reasons.append("output.probes: no reading (answer too short to read)")
            }
        }
        draft.record.outputVector = assessment.vector.components
        note(check, draft: draft)
        return check
    }

    /// Records a check's violations as reasons and metrics.
    func note(_ check: StageCheck, draft: AuditDraft) {
        for v in check.violations {
            draft.record.reasons.append(v.description)
            metrics.increment("valuealign_violations_total", [("stage", v.stage.rawValue), ("value", v.value?.rawValue ?? "distance"), ("action", v.action.rawValue)])
        }
    }

    /// Assessments from the evaluator; adds its compute time and the rest of the wait (queue,
    /// batching) to the draft's timing. Any evaluator failure is `GuardFailure.evaluatorFailed`
    /// (its cause goes to the log, not to the client).
    func assess(_ pairs: [ValuePair], draft: AuditDraft) async throws -> [ValueAssessment] {
        let start = ContinuousClock.now
        do {
            let timed = try await evaluator.evaluateTimed(pairs)
            draft.timing.add(evaluation: timed.computeSeconds, wall: (ContinuousClock.now - start).seconds)
            return timed.assessments
        } catch is CancellationError {
            throw CancellationError()
        } catch {
            logger.error("value evaluator failed: \(error)")
            throw GuardFailure.evaluatorFailed
        }
    }

    // MARK: - Upstream

    /// The upstream's answer within `upstreamTimeout`.
    func callUpstream(_ messages: [ChatMessage], parameters: GenerationParameters, draft: AuditDraft) async throws -> ChatCompletion {
        let start = ContinuousClock.now
        defer {
            let elapsed = (ContinuousClock.now - start).seconds
            draft.timing.upstream += elapsed
            metrics.observe("valuealign_upstream_duration_seconds", elapsed)
        }
        let upstream = self.upstream
        do {
            return try await withDeadline(upstreamTimeout) { try await upstream.complete(messages, parameters: parameters) }
        } catch {
            throw upstreamFailure(error)
        }
    }

    /// A stream's next piece within `upstreamTimeout` (nil at the end).
    func nextPiece(_ source: PieceSource, draft: AuditDraft) async throws -> String? {
        let start = ContinuousClock.now
        defer { draft.timing.upstream += (ContinuousClock.now - start).seconds }
        do {
            return try await withDeadline(upstreamTimeout) { try await source.next() }
        } catch {
            throw upstreamFailure(error)
        }
    }

    /// An upstream error as a `GuardFailure` (cancellation and failures already classified pass
    /// through unchanged).
    func upstreamFailure(_ error: any Error) -> any Error {
        if error is CancellationError || error is GuardFailure { return error }
        if error is DeadlineExceeded { return GuardFailure.upstreamDeadline(upstreamTimeout) }
        let message = (error as? LanguageModelError)?.description ?? "\(error)"
        logger.warning("upstream failed: \(message)")
        if message.contains("timed out") { return GuardFailure.upstreamTimedOut }
        return GuardFailure.upstreamFailed(String(message.prefix(500)))
    }
}
