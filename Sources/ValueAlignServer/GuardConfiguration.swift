public import Foundation
import ValueAlignCore

/// Everything the guard server needs besides its upstream model, evaluator and audit store.
public struct GuardConfiguration: Sendable {
    /// Address to bind; loopback by default.
    public var host: String
    /// 0 picks a free port (tests); `GuardServer.run` reports the one bound.
    public var port: Int
    public var policy: GuardPolicy
    public var access: AccessPolicy
    /// Largest request body accepted (413 beyond).
    public var maxBodyBytes: Int
    /// Most time a client may take to send its body (408 beyond): slow clients cannot hold a
    /// handler forever.
    public var bodyTimeout: Duration
    /// Connections silent for this long are closed.
    public var idleTimeout: Duration
    /// Most time for the upstream's answer (non-streamed) or between two streamed pieces (504 beyond).
    public var upstreamTimeout: Duration
    /// `max_tokens` when a request gives none.
    public var defaultMaxTokens: Int
    /// Most pairs in one `/v1/values/evaluate` or `/get_reward` request.
    public var maxPairsPerRequest: Int
    /// Evaluator batching.
    public var evaluatorBatchSize: Int
    public var evaluatorBatchDelay: Duration
    /// Keep prompt and answer text in the audit log (off: vectors, actions and reasons only).
    public var storeText: Bool
    /// Put prompt and answer text in the process log (off by default; keys never are).
    public var logText: Bool
    /// Audit rows older than this are deleted (at start-up and hourly); nil keeps everything.
    public var retention: Duration?
    /// Recent audit rows the dashboard summarises.
    public var dashboardWindow: Int

    public init(
        host: String = "127.0.0.1", port: Int = 8080, policy: GuardPolicy, access: AccessPolicy = AccessPolicy(), maxBodyBytes: Int = 1 << 20,
        bodyTimeout: Duration = .seconds(10), idleTimeout: Duration = .seconds(60), upstreamTimeout: Duration = .seconds(120),
        defaultMaxTokens: Int = 512, maxPairsPerRequest: Int = 256, evaluatorBatchSize: Int = 32, evaluatorBatchDelay: Duration = .milliseconds(2),
        storeText: Bool = false, logText: Bool = false, retention: Duration? = nil, dashboardWindow: Int = 500
    ) {
        self.host = host
        self.port = port
        self.policy = policy
        self.access = access
        self.maxBodyBytes = maxBodyBytes
        self.bodyTimeout = bodyTimeout
        self.idleTimeout = idleTimeout
        self.upstreamTimeout = upstreamTimeout
        self.defaultMaxTokens = defaultMaxTokens
        self.maxPairsPerRequest = maxPairsPerRequest
        self.evaluatorBatchSize = evaluatorBatchSize
        self.evaluatorBatchDelay = evaluatorBatchDelay
        self.storeText = storeText
        self.logText = logText
        self.retention = retention
        self.dashboardWindow = dashboardWindow
    }

    /// Checks every setting's range; errors name the setting.
    public func validate() throws(GuardConfigurationError) {
        func bad(_ name: String, _ message: String) -> GuardConfigurationError { .setting(name: name, message: message) }
        guard (0...65535).contains(port) else { throw bad("port", "must be in 0...65535, got \(port)") }
        guard maxBodyBytes >= 1024 else { throw bad("maxBodyBytes", "must be at least 1024, got \(maxBodyBytes)") }
        for (name, d) in [("bodyTimeout", bodyTimeout), ("idleTimeout", idleTimeout), ("upstreamTimeout", upstreamTimeout)] where d <= .zero {
            throw bad(name, "must be > 0")
        }
        guard defaultMaxTokens >= 1 else { throw bad("defaultMaxTokens", "must be >= 1") }
        guard maxPairsPerRequest >= 1 else { throw bad("maxPairsPerRequest", "must be >= 1") }
        guard evaluatorBatchSize >= 1 else { throw bad("evaluatorBatchSize", "must be >= 1") }
        guard evaluatorBatchDelay >= .zero else { throw bad("evaluatorBatchDelay", "must be >= 0") }
        if let retention, retention <= .zero { throw bad("retention", "must be > 0") }
    }
}
