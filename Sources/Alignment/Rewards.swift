import Dispatch
public import ValueSpace

/// Combinators of reward functions.
public enum Rewards {
    /// Σ weight_k * reward_k, as TRL combines several reward functions (`reward_weights`). The
    /// rewards run concurrently; each must return one finite number per response.
    public static func weightedSum(_ terms: [(weight: Double, reward: RewardFunction)]) -> RewardFunction {
        { prompts, responses in
            try await withThrowingTaskGroup(of: (Int, [Double]).self) { group in
                for (k, term) in terms.enumerated() {
                    group.addTask { (k, try await term.reward(prompts, responses)) }
                }
                var total = [Double](repeating: 0, count: responses.count)
                for try await (k, values) in group {
                    guard values.count == responses.count else {
                        throw TrainingError.reward("reward \(k) returned \(values.count) values for \(responses.count) responses")
                    }
                    for i in values.indices { total[i] += terms[k].weight * values[i] }
                }
                return total
            }
        }
    }
}

/// Waits for async work from synchronous code running on its own thread (the training loop).
/// Never call it from Swift's cooperative pool: the waiting thread would be one the work needs.
public func blockingAwait<T: Sendable>(_ body: @escaping @Sendable () async throws -> T) throws -> T {
    let box = AwaitedResult<T>()
    let done = DispatchSemaphore(value: 0)
    Task.detached {
        do { box.result = .success(try await body()) } catch { box.result = .failure(error) }
        done.signal()
    }
    done.wait()
    return try box.result!.get()
}

/// The result handed from the awaited task to the waiting thread (the semaphore orders the accesses).
final class AwaitedResult<T>: @unchecked Sendable {
    var result: Result<T, any Error>?
}
