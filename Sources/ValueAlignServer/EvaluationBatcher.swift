import Foundation
import ValueAlignCore
public import ValueSpace

/// Lets concurrent requests share evaluator batches.
///
/// Callers hand in their pairs and wait; the batcher runs at most `maxConcurrentBatches`
/// evaluator calls at once, each over at most `maxBatchSize` pairs from whichever requests are
/// waiting. While a batch computes, new pairs queue up and form the next batch, so under load
/// batches grow by themselves; when idle, a lone request waits for company for a tenth of the
/// recent batch time, at most `maxDelay` (so a fast evaluator adds no wait, and a slow one waits
/// a little to save a whole batch's time), unless recent batches got no company (their moving
/// average size is under 1.1 pairs): then it goes at once. Batches that fill from the queue while
/// another computes raise the average again, and waiting resumes.
/// The evaluator runs in its own task (the trained evaluator on its own dispatch queue), never on
/// an event loop.
public actor EvaluationBatcher {
    public nonisolated let evaluator: any ValueEvaluator
    public nonisolated let maxBatchSize: Int
    public nonisolated let maxDelay: Duration
    public nonisolated let maxConcurrentBatches: Int

    struct Waiting {
        var pair: ValuePair
        /// The assessment, with the batch it came from (its number and compute seconds).
        var continuation: CheckedContinuation<(ValueAssessment, batch: Int, seconds: Double), any Error>
    }

    /// Assessments with the evaluator's compute time behind them: the seconds of the batches
    /// that served these pairs (each batch counted once), without the time spent queued or
    /// waiting for a batch to fill.
    public struct Timed: Sendable {
        public var assessments: [ValueAssessment]
        public var computeSeconds: Double
    }

    private var queue: [Waiting] = []
    private var running = 0
    private var timerArmed = false
    /// Moving average of batch durations (seconds); nil before the first batch.
    private var recentBatchSeconds: Double?
    /// Moving average of batch sizes (pairs); nil before the first batch. When recent batches
    /// got no company, a lone request does not wait for any (the wait would cost every request
    /// its delay for nothing: issue 26 measured 4.3 ms a request at 8 req/s).
    private var recentBatchSize: Double?
    private let observer: (@Sendable (_ batchSize: Int, _ seconds: Double) -> Void)?

    /// Statistics since start: batches run, pairs evaluated, seconds inside the evaluator.
    public private(set) var batches = 0
    public private(set) var pairs = 0
    public private(set) var evaluatorSeconds = 0.0

    /// - Parameter observer: told the size and duration of every batch (metrics).
    public init(evaluator: any ValueEvaluator, maxBatchSize: Int = 32, maxDelay: Duration = .milliseconds(2), maxConcurrentBatches: Int = 1,
                observer: (@Sendable (_ batchSize: Int, _ seconds: Double) -> Void)? = nil) {
        self.evaluator = evaluator
        self.maxBatchSize = max(1, maxBatchSize)
        self.maxDelay = maxDelay
        self.maxConcurrentBatches = max(1, maxConcurrentBatches)
        self.observer = observer
    }

    /// The assessments of `pairs`, in order, computed together with other callers' pairs.
    public func evaluate(_ pairs: [ValuePair]) async throws -> [ValueAssessment] {
        try await evaluateTimed(pairs).assessments
    }

    /// `evaluate`, with the evaluator's compute time behind the answer.
    public func evaluateTimed(_ pairs: [ValuePair]) async throws -> Timed {
        guard !pairs.isEmpty else { return Timed(assessments: [], computeSeconds: 0) }
        // One child task per pair keeps the continuations independent: the pairs may land in
        // different batches.
        return try await withThrowingTaskGroup(of: (Int, ValueAssessment, Int, Double).self) { group in
            for (i, pair) in pairs.enumerated() {
                group.addTask {
                    let (a, batch, seconds) = try await self.evaluateOne(pair)
                    return (i, a, batch, seconds)
                }
            }
            var results = [ValueAssessment?](repeating: nil, count: pairs.count)
            var batches: [Int: Double] = [:]
            for try await (i, a, batch, seconds) in group {
                results[i] = a
                batches[batch] = seconds
            }
            return Timed(assessments: results.map { $0! }, computeSeconds: batches.values.reduce(0, +))
        }
    }

    func evaluateOne(_ pair: ValuePair) async throws -> (ValueAssessment, batch: Int, seconds: Double) {
        try await withCheckedThrowingContinuation { continuation in
            queue.append(Waiting(pair: pair, continuation: continuation))
            schedule()
        }
    }

    /// Starts full batches while there is capacity; a partial batch waits at most `maxDelay`
    /// for company (or for a running batch to finish, whichever comes first).
    private func schedule() {
        while running < maxConcurrentBatches, queue.count >= maxBatchSize { startBatch() }
        guard running < maxConcurrentBatches, !queue.isEmpty else { return }
        let delay = recentBatchSeconds.map { min(maxDelay, .microseconds(Int64($0 * 0.1 * 1e6))) } ?? maxDelay
        let lonely = (recentBatchSize ?? .infinity) < 1.1
        if delay < .microseconds(20) || lonely {
            while running < maxConcurrentBatches, !queue.isEmpty { startBatch() }
            return
        }
        guard !timerArmed else { return }
        timerArmed = true
        Task { [weak self] in
            try? await Task.sleep(for: delay)
            await self?.timerFired()
        }
    }

    private func timerFired() {
        timerArmed = false
        while running < maxConcurrentBatches, !queue.isEmpty { startBatch() }
    }

    private var nextBatch = 0

    private func startBatch() {
        nextBatch += 1
        let number = nextBatch
        let take = min(maxBatchSize, queue.count)
        let batch = Array(queue.prefix(take))
        queue.removeFirst(take)
        running += 1
        let evaluator = self.evaluator
        Task.detached { [weak self] in
            let start = ContinuousClock.now
            let result: Result<[ValueAssessment], any Error>
            do { result = .success(try await evaluator.evaluate(batch.map(\.pair))) } catch { result = .failure(error) }
            let elapsed = ContinuousClock.now - start
            let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) * 1e-18
            // Counted before anyone is answered: a caller holding its result sees its batch in
            // the statistics.
            await self?.finished(batchSize: batch.count, seconds: seconds)
            switch result {
            case let .success(assessments) where assessments.count == batch.count:
                for (w, a) in zip(batch, assessments) { w.continuation.resume(returning: (a, number, seconds)) }
            case .success(let assessments):
                let error = EvaluatorFailure(message: "the evaluator \(evaluator.name) returned \(assessments.count) assessments for \(batch.count) pairs")
                for w in batch { w.continuation.resume(throwing: error) }
            case let .failure(error):
                for w in batch { w.continuation.resume(throwing: error) }
            }
        }
    }

    private func finished(batchSize: Int, seconds: Double) {
        running -= 1
        batches += 1
        pairs += batchSize
        evaluatorSeconds += seconds
        recentBatchSeconds = recentBatchSeconds.map { 0.9 * $0 + 0.1 * seconds } ?? seconds
        recentBatchSize = recentBatchSize.map { 0.9 * $0 + 0.1 * Double(batchSize) } ?? Double(batchSize)
        observer?(batchSize, seconds)
        // Whatever queued up meanwhile goes at once: it has already waited a batch's time.
        while running < maxConcurrentBatches, !queue.isEmpty { startBatch() }
    }
}

/// The evaluator misbehaved (wrong number of results).
struct EvaluatorFailure: Error, CustomStringConvertible {
    var message: String
    var description: String { message }
}

/// The batcher as a `ValueEvaluator`, so that code taking an evaluator (the guard's
/// `GuardPipeline`) shares the server's batches.
public struct BatchedEvaluator: ValueEvaluator {
    public let batcher: EvaluationBatcher
    public init(_ batcher: EvaluationBatcher) { self.batcher = batcher }
    public var name: String { batcher.evaluator.name }
    public func evaluate(_ pairs: [ValuePair]) async throws -> [ValueAssessment] { try await batcher.evaluate(pairs) }
}

extension ValueEvaluator {
    /// Assessments with the evaluator's compute time: the batches' own time when this is the
    /// server's batcher (`BatchedEvaluator`), else the call's wall time (no queue to leave out).
    func evaluateTimed(_ pairs: [ValuePair]) async throws -> EvaluationBatcher.Timed {
        if let batched = self as? BatchedEvaluator { return try await batched.batcher.evaluateTimed(pairs) }
        let start = ContinuousClock.now
        let assessments = try await evaluate(pairs)
        return .init(assessments: assessments, computeSeconds: (ContinuousClock.now - start).seconds)
    }
}
