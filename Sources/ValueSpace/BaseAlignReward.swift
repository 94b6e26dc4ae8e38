public import ValueAlignCore

/// A reward for training (GRPO, best-of-N and DPO rounds): one number per response, given the
/// conversation it answers (`prompts[i]` and `responses[i]` belong together). Higher is better.
public typealias RewardFunction = @Sendable (_ prompts: [[ChatMessage]], _ responses: [String]) async throws -> [Double]

/// BaseAlign's reward: the value evaluator reads each response's value vector v, and the reward
/// is r = -d(v, t) with BaseAlign's distance (`ValueDistance.basealign`: sum over values the
/// target weighs and the response clearly touches, |v_i - t_i| * |t_i|).
///
/// Blandness: with the paper's distance an answer that touches none of the target's values has
/// distance 0 and the best reward, so a model could gain reward by saying nothing value-laden.
/// By default (`chargesUntouchedValues`) the reward also subtracts
/// `ValueDistance.untouchedCharge`: r = -(d(v, t) + charge(v, t)); `false` gives the paper's reward.
///
/// BaseAlign maximises E[r] - λ KL(π || π_ref). The KL term cannot be computed from text, so
/// `klWeight` (λ) is handed to the policy trainer: `GRPOObjective(model:prompts:baseAlign:)`
/// uses it as GRPO's β on the k3 estimator of the KL to the reference.
public struct BaseAlignReward: Sendable {
    public var evaluator: any ValueEvaluator
    public var target: ValueVector
    /// λ, the weight of the KL penalty to the reference model (default 0.04, GRPO's β default:
    /// see `GRPOObjective.Options.beta`).
    public var klWeight: Double
    /// The distance; BaseAlign's by default.
    public var distance: ValueDistance
    /// Whether leaving the target's values untouched costs reward (the default; see above).
    public var chargesUntouchedValues: Bool

    public init(evaluator: any ValueEvaluator, target: ValueVector, klWeight: Double = 0.04, distance: ValueDistance = .basealign,
                chargesUntouchedValues: Bool = true) {
        self.evaluator = evaluator
        self.target = target
        self.klWeight = klWeight
        self.distance = distance
        self.chargesUntouchedValues = chargesUntouchedValues
    }

    public init(evaluator: any ValueEvaluator, target: ValueProfile, klWeight: Double = 0.04, distance: ValueDistance = .basealign,
                chargesUntouchedValues: Bool = true) {
        self.init(evaluator: evaluator, target: target.vector, klWeight: klWeight, distance: distance, chargesUntouchedValues: chargesUntouchedValues)
    }

    /// The reward of one value vector.
    public func reward(_ vector: ValueVector) -> Double {
        -(distance.distance(vector, to: target) + (chargesUntouchedValues ? ValueDistance.untouchedCharge(vector, target) : 0))
    }

    /// -d(v, t) per response; the evaluator sees the last user turn and the response.
    public func rewards(prompts: [[ChatMessage]], responses: [String]) async throws -> [Double] {
        guard prompts.count == responses.count else { throw ValueSpaceError.reward("\(prompts.count) prompts but \(responses.count) responses") }
        let pairs = zip(prompts, responses).map { conversation, response in
            ValuePair(prompt: conversation.last(where: { $0.role == .user })?.content ?? conversation.last?.content ?? "", response: response)
        }
        let assessments = try await evaluator.evaluate(pairs)
        guard assessments.count == pairs.count else {
            throw ValueSpaceError.reward("the evaluator \(evaluator.name) returned \(assessments.count) assessments for \(pairs.count) responses")
        }
        return assessments.map { reward($0.vector) }
    }

    /// The reward as a `RewardFunction`.
    public var function: RewardFunction {
        { prompts, responses in try await rewards(prompts: prompts, responses: responses) }
    }
}
