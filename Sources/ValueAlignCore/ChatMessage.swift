/// One turn of a conversation, with OpenAI's role names.
public struct ChatMessage: Sendable, Codable, Equatable, Hashable {
    /// Who speaks a turn.
    public enum Role: String, Sendable, Codable, CaseIterable {
        case system, user, assistant
    }

    public var role: Role
    public var content: String

    public init(role: Role, content: String) {
        self.role = role
        self.content = content
    }

    public static func system(_ content: String) -> ChatMessage { ChatMessage(role: .system, content: content) }
    public static func user(_ content: String) -> ChatMessage { ChatMessage(role: .user, content: content) }
    public static func assistant(_ content: String) -> ChatMessage { ChatMessage(role: .assistant, content: content) }
}

extension Array where Element == ChatMessage {
    /// The conversation with `text` in its system turn: joined to an existing first system turn
    /// (before its words when `first`, after them otherwise, a blank line between), or inserted as
    /// a new system turn at the start.
    public func addingSystemText(_ text: String, first: Bool) -> [ChatMessage] {
        var out = self
        if let head = out.first, head.role == .system {
            out[0] = .system(first ? text + "\n\n" + head.content : head.content + "\n\n" + text)
        } else {
            out.insert(.system(text), at: 0)
        }
        return out
    }
}
