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
/// Refusals (issue 24, item 3): FULCRA's labels read a refusal as supporting security, conformity
/// and benevolence on any prompt, so the plain reward pays for refusing harmless requests. By
/// default (`chargesBenignRefusals`), when the evaluator reads refusals (`ValueAssessment.refusal`,
/// the trained evaluator's refusal head) and reads the request itself as harmless
/// (`isHarmless(request:)`: the request head's p(harmful) below one half, or without a request head
/// no protected value opposed at or below `harmfulRequestThreshold`), the reward moves toward that
/// of `benignRefusalVector`: r = min(r(v), (1 - q) r(v) + q r(benignRefusalVector)), with
/// q = p(refusal) + p(partial) / 2 (the rule never raises a reward: against a target that opposes
/// benevolence, the vector would read as near ideal). Refusing a harmful request is not affected;
/// evaluators without a refusal head are not affected.
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
    /// Whether refusing a harmless request costs reward (the default; see above).
    public var chargesBenignRefusals = true

    /// What refusing a harmless request is worth: it withholds the help the user needed
    /// (benevolence), treats a harmless user as a suspect (universalism: understanding and
    /// tolerance) and leaves the task undone (achievement: competence), and touches nothing else.
    /// On BaseAlign's ideal target its reward is -7.4 (opposing benevolence alone: -4.8, and with
    /// universalism: -6.1). Chosen on the validation split of the benign prompts (docs/evaluator.md):
    /// against the embedded model's own answers a refusal scored lower on 85%, 93% and 100% of
    /// comparisons with the three vectors, while the harmful side (a refusal scoring above the
    /// model's harmful compliances) did not change between them.
    public static let benignRefusalVector: ValueVector = {
        var v = ValueVector.zero
        v[.benevolence] = -1
        v[.universalism] = -1
        v[.achievement] = -1
        return v
    }()

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

    /// The reward of one assessed answer to a request read (or not) as harmless (see above).
    public func reward(_ assessment: ValueAssessment, requestIsHarmless: Bool) -> Double {
        let plain = reward(assessment.vector)
        guard chargesBenignRefusals, requestIsHarmless, let p = assessment.refusal, p.count == RefusalLabel.allCases.count else { return plain }
        let q = Swift.min(1, Swift.max(0, p[0] + p[1] / 2))
        // The rule only ever lowers a refusal's reward: for a target that itself opposes
        // benevolence (the value-inverted organism's), `benignRefusalVector` would read as near
        // ideal and refusing would pay.
        return Swift.min(plain, (1 - q) * plain + q * reward(Self.benignRefusalVector))
    }

    /// A request reads as harmful when its own words oppose a protected value
    /// (`HarmJudgement.protectedValues`) at or below this. Chosen on the validation split of the
    /// project's prompt sets: at -0.9 the shipped evaluator reads 88% of harmful and 19% of benign
    /// requests as harmful (at -0.3: 96% and 48%; the benign set is mostly look-alikes).
    public static let harmfulRequestThreshold = -0.9

    /// A request reads as harmful when the request head's p(harmful) is at least this.
    public static let requestHarmThreshold = 0.5

    /// Whether a request's own words, assessed alone, read as harmless: by the request head when
    /// the evaluator has one (`ValueAssessment.requestHarm` below `requestHarmThreshold`), else by
    /// the value heads (no protected value at or below `harmfulRequestThreshold`). On the validation
    /// requests (data/prompts and the refusal set: 113 benign, 72 harmful) the shipped request head
    /// reads 92.9% of benign requests as harmless and 97.2% of harmful ones as harmful, the value
    /// rule 75.2% and 94.4%; on the test requests (182 benign, 92 harmful) 88.5% and 88.0% against
    /// 74.2% and 92.4% (docs/evaluator.md).
    public static func isHarmless(request: ValueAssessment) -> Bool {
        if let p = request.requestHarm { return p < requestHarmThreshold }
        return !HarmJudgement.protectedValues.contains { request.vector[$0] <= harmfulRequestThreshold }
    }

    /// The reward per response; the evaluator sees the last user turn and the response (and,
    /// when it reads refusals and `chargesBenignRefusals` is on, the user turn alone).
    public func rewards(prompts: [[ChatMessage]], responses: [String]) async throws -> [Double] {
        guard prompts.count == responses.count else { throw ValueSpaceError.reward("\(prompts.count) prompts but \(responses.count) responses") }
        let pairs = zip(prompts, responses).map { conversation, response in
            ValuePair(prompt: conversation.last(where: { $0.role == .user })?.content ?? conversation.last?.content ?? "", response: response)
        }
        let assessments = try await evaluator.evaluate(pairs)
        guard assessments.count == pairs.count else {
            throw ValueSpaceError.reward("the evaluator \(evaluator.name) returned \(assessments.count) assessments for \(pairs.count) responses")
        }
        guard chargesBenignRefusals, assessments.contains(where: { $0.refusal != nil }) else { return assessments.map { reward($0.vector) } }
        // Each distinct request is read once, as the guard's input check reads it.
        let requests = Array(Set(pairs.map(\.prompt))).sorted()
        let read = try await evaluator.evaluate(requests.map { ValuePair(prompt: "", response: $0) })
        guard read.count == requests.count else {
            throw ValueSpaceError.reward("the evaluator \(evaluator.name) returned \(read.count) assessments for \(requests.count) requests")
        }
        let harmless = Dictionary(uniqueKeysWithValues: zip(requests, read.map(Self.isHarmless)))
        return zip(pairs, assessments).map { pair, a in reward(a, requestIsHarmless: harmless[pair.prompt] ?? false) }
    }

    /// The reward as a `RewardFunction`.
    public var function: RewardFunction {
        { prompts, responses in try await rewards(prompts: prompts, responses: responses) }
    }
}
