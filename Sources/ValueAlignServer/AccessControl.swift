public import Foundation
import ValueAlignCore
import Crypto

/// Who may call the guard: client keys (chat, evaluate, reward) and admin keys (dashboard,
/// audit), stored as SHA-256 hashes only, each client key with its own rate limit.
///
/// Keys file (JSON): `{"keys": [{"id": "team-a", "sha256": "<64 hex>", "requestsPerMinute": 120,
/// "burst": 20}], "adminKeys": [{"id": "ops", "sha256": "<64 hex>"}]}`. `valuealign serve keygen`
/// makes a key and its entry. With no keys at all, client endpoints are open (key id
/// "anonymous") and admin endpoints are closed.
public struct AccessPolicy: Sendable {
    /// One key's entry.
    public struct Key: Sendable, Equatable, Codable {
        public var id: String
        /// Lower-case hex SHA-256 of the key.
        public var sha256: String
        /// Sustained rate (token bucket refill); nil means no limit.
        public var requestsPerMinute: Double?
        /// Bucket size: requests that may come at once (default: a tenth of a minute's worth, at least 1).
        public var burst: Int?

        public init(id: String, sha256: String, requestsPerMinute: Double? = nil, burst: Int? = nil) {
            self.id = id
            self.sha256 = sha256
            self.requestsPerMinute = requestsPerMinute
            self.burst = burst
        }
    }

    public var keys: [Key]
    public var adminKeys: [Key]
    private var byHash: [String: Key]
    private var adminByHash: [String: Key]

    public init(keys: [Key] = [], adminKeys: [Key] = []) {
        self.keys = keys
        self.adminKeys = adminKeys
        byHash = Dictionary(keys.map { ($0.sha256, $0) }, uniquingKeysWith: { a, _ in a })
        adminByHash = Dictionary(adminKeys.map { ($0.sha256, $0) }, uniquingKeysWith: { a, _ in a })
    }

    /// No client keys: client endpoints are open.
    public var isOpen: Bool { keys.isEmpty }

    /// Hex SHA-256 of a key.
    public static func hash(_ key: String) -> String {
        SHA256.hash(data: Data(key.utf8)).map { String(format: "%02x", $0) }.joined()
    }

    /// A fresh random key: "va-" and 40 hex digits (160 bits).
    public static func newKey() -> String {
        var generator = SystemRandomNumberGenerator()
        return "va-" + (0..<20).map { _ in String(format: "%02x", UInt8.random(in: 0...255, using: &generator)) }.joined()
    }

    func client(_ presented: String) -> Key? { byHash[Self.hash(presented)] }
    func admin(_ presented: String) -> Key? { adminByHash[Self.hash(presented)] }

    /// Reads and validates a keys file; errors name the file and the field.
    public static func load(contentsOf path: String) throws(GuardConfigurationError) -> AccessPolicy {
        guard let data = FileManager.default.contents(atPath: path) else { throw .keys(path: path, field: nil, message: "cannot read the file") }
        let root: JSON
        do { root = try JSONDecoder().decode(JSON.self, from: data) } catch { throw .keys(path: path, field: nil, message: "not valid JSON") }
        guard case let .object(o) = root else { throw .keys(path: path, field: nil, message: "expected an object with keys and adminKeys") }
        for k in o.keys where !["keys", "adminKeys"].contains(k) { throw .keys(path: path, field: k, message: "unknown field; expected keys, adminKeys") }
        func entries(_ field: String) throws(GuardConfigurationError) -> [Key] {
            guard let value = o[field], value != .null else { return [] }
            guard case let .array(items) = value else { throw .keys(path: path, field: field, message: "expected an array") }
            var result: [Key] = []
            var seen = Set<String>()
            for (i, item) in items.enumerated() {
                let at = "\(field)[\(i)]"
                guard case let .object(e) = item else { throw .keys(path: path, field: at, message: "expected an object") }
                for k in e.keys where !["id", "sha256", "requestsPerMinute", "burst"].contains(k) {
                    throw .keys(path: path, field: "\(at).\(k)", message: "unknown field; expected id, sha256, requestsPerMinute, burst")
                }
                guard case let .string(id)? = e["id"], !id.isEmpty else { throw .keys(path: path, field: "\(at).id", message: "missing or not a non-empty string") }
                guard case let .string(hash)? = e["sha256"] else { throw .keys(path: path, field: "\(at).sha256", message: "missing or not a string") }
                let lower = hash.lowercased()
                guard lower.count == 64, lower.allSatisfy({ $0.isHexDigit }) else {
                    throw .keys(path: path, field: "\(at).sha256", message: "expected 64 hex digits (the SHA-256 of the key, never the key itself)")
                }
                guard seen.insert(lower).inserted else { throw .keys(path: path, field: "\(at).sha256", message: "the same key hash appears twice") }
                var key = Key(id: id, sha256: lower)
                if let v = e["requestsPerMinute"], v != .null {
                    guard case let .number(rate) = v, rate > 0, rate.isFinite else { throw .keys(path: path, field: "\(at).requestsPerMinute", message: "must be a number > 0") }
                    key.requestsPerMinute = rate
                }
                if let v = e["burst"], v != .null {
                    guard case let .number(b) = v, b >= 1, b == b.rounded(), b < 1e9 else { throw .keys(path: path, field: "\(at).burst", message: "must be an integer >= 1") }
                    key.burst = Int(b)
                }
                result.append(key)
            }
            return result
        }
        return AccessPolicy(keys: try entries("keys"), adminKeys: try entries("adminKeys"))
    }

    /// The keys file as JSON (what `keygen` appends to).
    public func jsonData() throws -> Data {
        struct File: Encodable { var keys: [Key]; var adminKeys: [Key] }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        return try encoder.encode(File(keys: keys, adminKeys: adminKeys))
    }
}

/// Per-key token buckets. A lock, not an actor: the check is a few arithmetic operations on the
/// request path.
final class RateLimiter: @unchecked Sendable {
    private struct Bucket {
        var tokens: Double
        var last: ContinuousClock.Instant
    }

    private let lock = NSLock()
    private var buckets: [String: Bucket] = [:]

    /// nil when `key` may go on; otherwise the seconds until it may.
    func admit(_ key: AccessPolicy.Key, now: ContinuousClock.Instant = .now) -> Double? {
        guard let perMinute = key.requestsPerMinute else { return nil }
        let rate = perMinute / 60
        let capacity = Double(key.burst ?? max(1, Int(perMinute / 10)))
        lock.lock()
        defer { lock.unlock() }
        var bucket = buckets[key.id] ?? Bucket(tokens: capacity, last: now)
        let elapsed = now - bucket.last
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) * 1e-18
        bucket.tokens = min(capacity, bucket.tokens + seconds * rate)
        bucket.last = now
        if bucket.tokens >= 1 {
            bucket.tokens -= 1
            buckets[key.id] = bucket
            return nil
        }
        buckets[key.id] = bucket
        return (1 - bucket.tokens) / rate
    }
}

/// Dashboard sessions: random tokens in an HttpOnly cookie, kept in memory for `lifetime`, so
/// that a browser does not carry the admin key itself.
final class SessionStore: @unchecked Sendable {
    private let lock = NSLock()
    private var sessions: [String: (adminID: String, expires: ContinuousClock.Instant)] = [:]
    let lifetime: Duration

    init(lifetime: Duration = .seconds(8 * 3600)) { self.lifetime = lifetime }

    func open(adminID: String) -> String {
        let token = AccessPolicy.newKey()
        lock.lock()
        defer { lock.unlock() }
        let now = ContinuousClock.now
        sessions = sessions.filter { $0.value.expires > now }
        sessions[AccessPolicy.hash(token)] = (adminID, now + lifetime)
        return token
    }

    func adminID(for token: String) -> String? {
        lock.lock()
        defer { lock.unlock() }
        guard let s = sessions[AccessPolicy.hash(token)], s.expires > .now else { return nil }
        return s.adminID
    }
}
