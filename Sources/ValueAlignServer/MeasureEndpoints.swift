import Foundation
import ValueAlignCore
import Hummingbird
import ValueSpace

// The measuring endpoints: value vectors and OpenRLHF's reward, with no upstream call.
extension GuardServer {
    /// POST /v1/values/evaluate: `{"pairs": [{"prompt": ..., "response": ...}]}` -> a vector,
    /// labels, distance to the target and the output check per pair.
    func evaluateValues(_ request: Request, context: GuardContext) async throws -> Response {
        let draft = try context.auditDraft()
        let object = try jsonObject(try await bodyData(request))
        guard let raw = object["pairs"] else { throw APIError.invalid("missing required field 'pairs'", param: "pairs") }
        guard case let .array(items) = raw else { throw wrongType("pairs", "an array", raw) }
        guard !items.isEmpty, items.count <= configuration.maxPairsPerRequest else {
            throw APIError.invalid("'pairs' must hold 1 to \(configuration.maxPairsPerRequest) pairs, got \(items.count)", param: "pairs")
        }
        var pairs: [ValuePair] = []
        for (i, item) in items.enumerated() {
            guard case let .object(o) = item else { throw wrongType("pairs[\(i)]", "an object", item) }
            guard let prompt = try optionalString(o, "prompt", path: "pairs[\(i)]."), let response = try optionalString(o, "response", path: "pairs[\(i)].") else {
                throw APIError.invalid("'pairs[\(i)]' needs string fields 'prompt' and 'response'", param: "pairs[\(i)]")
            }
            pairs.append(ValuePair(prompt: prompt, response: response))
        }
        let assessments = try await pipeline.assess(pairs, draft: draft)
        draft.record.reasons = ["\(pairs.count) pairs"]
        let data: [[String: Any]] = assessments.enumerated().map { i, a in
            let check = policy.check(a.vector, stage: .output)
            return [
                "index": i, "vector": named(a.vector.components),
                "labels": Dictionary(uniqueKeysWithValues: zip(SchwartzValue.allCases.map(\.rawValue), a.labels)),
                "distance": check.distance, "reward": -check.distance,
                "output_check": ["action": check.action.rawValue, "violations": check.violations.map(\.description)],
            ]
        }
        return json(["object": "list", "evaluator": batcher.evaluator.name, "target": policy.target.name, "distance": policy.distance.rawValue, "data": data])
    }

    /// POST /get_reward, as OpenRLHF's remote reward model: `{"query": [prompt + response],
    /// "prompts": [prompt]}` -> `{"rewards": [...], "scores": [...]}`, BaseAlign's reward
    /// -d(v, t) to the policy's target. The response is the query with its prompt prefix
    /// removed; without `prompts`, the whole query is the response.
    func reward(_ request: Request, context: GuardContext) async throws -> Response {
        let draft = try context.auditDraft()
        let object = try jsonObject(try await bodyData(request))
        let queries = try stringArray(object, "query")
        let prompts = object["prompts"] == nil || object["prompts"] == .null ? [String](repeating: "", count: queries.count) : try stringArray(object, "prompts")
        guard !queries.isEmpty, queries.count <= configuration.maxPairsPerRequest else {
            throw APIError.invalid("'query' must hold 1 to \(configuration.maxPairsPerRequest) texts, got \(queries.count)", param: "query")
        }
        guard prompts.count == queries.count else {
            throw APIError.invalid("'prompts' has \(prompts.count) texts but 'query' has \(queries.count)", param: "prompts")
        }
        let responses = zip(queries, prompts).map { q, p in q.hasPrefix(p) ? String(q.dropFirst(p.count)) : q }
        // BaseAlign's reward -d(v, t): the distance is the one the policy's check computes,
        // with the policy's target and distance, for the prompt and the response.
        let pairs = zip(prompts, responses).map { ValuePair(prompt: $0, response: $1) }
        let start = ContinuousClock.now
        let rewards: [Double]
        do {
            let timed = try await batcher.evaluateTimed(pairs)
            draft.timing.add(evaluation: timed.computeSeconds, wall: (ContinuousClock.now - start).seconds)
            rewards = timed.assessments.map { -policy.check($0.vector, stage: .output).distance }
        } catch {
            logger.error("reward evaluation failed: \(error)")
            throw APIError(.serviceUnavailable, "the value evaluator failed", type: "server_error", code: "evaluator_failed")
        }
        draft.record.reasons = ["\(queries.count) texts"]
        return json(["rewards": rewards, "scores": rewards, "extra_logs": ["distance": rewards.map { -$0 }]])
    }
}
