public import Alignment
public import Foundation
public import LanguageModels
public import ValueSpace
import ValueAlignCore

/// One alignment method: its defaults, its checks and its training loop. `AlignmentJob` measures,
/// asks the configuration's method for its strategy to train, measures again and reports; nothing
/// else in the job knows which method runs.
///
/// To add a method: a case in `AlignMethod`, a conforming type in its own file in this folder, and
/// one line in `AlignMethod.strategy` (docs/extending.md).
public protocol AlignStrategy: Sendable {
    /// The method this strategy implements (`--method`).
    var method: AlignMethod { get }
    /// Defaults of the settings whose good value depends on the method. A new configuration for
    /// this method starts from them, and the command line shows them as its defaults.
    var defaults: AlignMethodDefaults { get }
    /// Checks the settings this method reads, beyond the range checks every method shares
    /// (`AlignConfiguration.validate`).
    func validate(_ configuration: AlignConfiguration) throws(AlignError)
    /// Checks that `count` training prompts are enough for this method's configuration.
    func validate(trainingPrompts count: Int, configuration: AlignConfiguration) throws(AlignError)
    /// Trains the run's policy in place until its steps or its budget are used, recording
    /// progress in `state` (saved through `run.save`) so that a rerun continues. Returns true if
    /// the user stopped it (`run.shouldStop`); the run folder then resumes.
    func train(_ run: AlignTrainingRun, state: inout AlignRunState) async throws -> Bool
}

extension AlignStrategy {
    public func validate(trainingPrompts count: Int, configuration: AlignConfiguration) throws(AlignError) {}
}

/// The settings whose defaults depend on the method.
public struct AlignMethodDefaults: Sendable, Equatable {
    /// Peak learning rate (constant after warm-up).
    public var learningRate: Float
    /// DPO/IPO's β, or GRPO's KL weight λ.
    public var beta: Float
    /// Candidates per prompt sampled with the value-conditioned system prompt (`ValueGuidance`).
    public var guidedSamples: Int
    /// The capability retention term (bon-sft only; nil: none).
    public var retention: RetentionSettings?

    public init(learningRate: Float, beta: Float, guidedSamples: Int, retention: RetentionSettings? = nil) {
        self.learningRate = learningRate
        self.beta = beta
        self.guidedSamples = guidedSamples
        self.retention = retention
    }
}

extension AlignMethod {
    /// The strategy that implements this method: the one place where a method is registered.
    public var strategy: any AlignStrategy {
        switch self {
        case .grpo: GRPOStrategy()
        case .dpo: PreferenceRoundsStrategy(loss: .dpo)
        case .ipo: PreferenceRoundsStrategy(loss: .ipo)
        case .bonSFT: BestOfNStrategy()
        case .caiSFT: ConstitutionalStrategy(training: .sft)
        case .caiDPO: ConstitutionalStrategy(training: .dpo)
        }
    }

    /// "bon-sft 5e-4, dpo 1e-4, ..." for one default, for help texts.
    public static func describeDefaults(_ value: (AlignMethodDefaults) -> String) -> String {
        allCases.map { "\($0.rawValue) \(value($0.strategy.defaults))" }.joined(separator: ", ")
    }
}

/// What a strategy trains with: the policy, the reward, the configuration and the run folder, the
/// clock and budget, and the job's event and stop callbacks.
public struct AlignTrainingRun: Sendable {
    public let configuration: AlignConfiguration
    /// The model being aligned; LoRA adapters are attached to it in place.
    public let policy: LoadedModel
    public let reward: RewardFunction
    /// The training prompts (ids prefixed by their file's name), after the split and the limit.
    public let prompts: [(id: String, messages: [ChatMessage])]
    /// The run folder.
    public let directory: URL
    /// bon-sft's capability retention term, loaded from `configuration.retention` (nil: none).
    public internal(set) var retention: CapabilityRetention?
    /// Seconds since the run began (over all its processes) by which training must end; nil: no budget.
    public internal(set) var deadline: Double?
    public let events: @Sendable (AlignEvent) -> Void
    public let shouldStop: @Sendable () -> Bool
    let clock: RunClock

    /// Seconds since the run began, over all its processes.
    public var now: Double { clock.now }

    /// Whether the budget is spent.
    public var timeUp: @Sendable () -> Bool {
        let clock = clock, deadline = deadline
        return { deadline.map { clock.now >= $0 } ?? false }
    }

    /// The same run with training to end by `deadline`.
    func withDeadline(_ deadline: Double?) -> AlignTrainingRun {
        var run = self
        run.deadline = deadline
        return run
    }

    /// A path in the run folder.
    public func url(_ name: String) -> URL { directory.appendingPathComponent(name) }

    /// Records the elapsed time in `state` and writes `state.json`.
    public func save(_ state: inout AlignRunState) throws {
        state.elapsedSeconds = clock.now
        try AlignmentFiles.writeJSON(state, to: url("state.json"))
    }

    /// The runner's parameters for a training stage of this run: the configuration's learning
    /// rate, LoRA and precision, a constant schedule after warm-up, checkpoints every 5 steps.
    public func runnerParameters<O: TrainingObjective>(steps: Int, seed: UInt64, directory: URL, initialAdapter: String?,
                                                       warmup: Int, batchSize: Int? = nil) -> TrainingRunner<O>.Parameters {
        var p = TrainingRunner<O>.Parameters()
        p.steps = steps
        p.batchSize = batchSize ?? configuration.batchSize
        p.learningRate = configuration.learningRate
        p.decay = .constant
        p.warmupSteps = min(warmup, steps)
        p.lora = configuration.lora
        p.seed = seed
        p.runDirectory = directory.path
        p.checkpointEvery = 5
        p.keepCheckpoints = 1
        p.initialAdapter = initialAdapter
        p.baseModelName = policy.name
        p.matmulPrecision = configuration.matmulPrecision ?? .float32
        return p
    }
}

/// Tokens trained, from the runner's per-step rates (called on the training thread only).
final class TokenMeter: @unchecked Sendable {
    private(set) var tokens = 0
    private var lastElapsed = 0.0
    func add(_ p: TrainingProgress) {
        tokens += Int((p.tokensPerSecond * (p.elapsed - lastElapsed)).rounded())
        lastElapsed = p.elapsed
    }
}

/// Seconds since the run began, over all its processes.
final class RunClock: Sendable {
    let offset: Double
    let start = Date()
    init(offset: Double) { self.offset = offset }
    var now: Double { offset + Date().timeIntervalSince(start) }
}

/// Runs blocking model work on a thread of its own (never on Swift's cooperative pool: the
/// training loop waits there for async rewards).
func onThread<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await onOwnThread(body)
}
