// The idiomatic Swift layer over the generated bindings (LoyaltyCore.swift, do not edit that one):
// an AsyncStream of changes and a way to observe any read. No business logic lives here;
// everything is in the Rust core.
import Foundation

/// A `ChangeListener` that fans the core's notifications out to any number of `AsyncStream`s.
/// The core calls `onChange` on its own background thread; a slow consumer loses the oldest
/// notifications and never blocks the core.
public final class ChangeFeed: ChangeListener, @unchecked Sendable {
    private let lock = NSLock()
    private var continuations: [UUID: AsyncStream<[Document]>.Continuation] = [:]

    public init() {}

    public func onChange(documents: [Document]) {
        lock.lock()
        let targets = Array(continuations.values)
        lock.unlock()
        for continuation in targets { continuation.yield(documents) }
    }

    /// A new stream of the documents each sync changed, from now on (subscribed on return).
    public func changes() -> AsyncStream<[Document]> {
        AsyncStream(bufferingPolicy: .bufferingNewest(64)) { continuation in
            let id = UUID()
            lock.lock()
            continuations[id] = continuation
            lock.unlock()
            continuation.onTermination = { [weak self] _ in
                guard let self else { return }
                self.lock.lock()
                self.continuations[id] = nil
                self.lock.unlock()
            }
        }
    }
}

/// The entry point for an app: a `LoyaltyClient` on the member store at `databasePath`,
/// talking to `serverUrl`, keeping its signing key in `secretStore` (the Keychain), with its
/// changes as `AsyncStream`s. One per store; it is thread-safe, share it.
public final class Loyalty: @unchecked Sendable {
    /// Every operation: enroll, sync, card, offers, inbox, preferences, checkout code, reset (sign out).
    public let client: LoyaltyClient
    private let feed = ChangeFeed()

    public init(databasePath: String, serverUrl: String, secretStore: SecretStore) throws {
        client = try LoyaltyClient(databasePath: databasePath, serverUrl: serverUrl,
                                   secretStore: secretStore, listener: feed)
    }

    /// The documents each sync changed, as they happen.
    public func changes() -> AsyncStream<[Document]> { feed.changes() }

    /// `read`'s value now and again after every sync that changed something, e.g.
    /// `for try await offers in loyalty.observe({ try await $0.offers(filter: .all) }) { ... }`.
    /// An error of `read` (a `LoyaltyError`) ends the stream.
    public func observe<T>(_ read: @escaping @Sendable (LoyaltyClient) async throws -> T)
        -> AsyncThrowingStream<T, Error>
    {
        let changes = feed.changes()   // subscribed before the first read: nothing is missed
        let client = self.client
        return AsyncThrowingStream { continuation in
            let task = Task {
                do {
                    continuation.yield(try await read(client))
                    for await _ in changes {
                        continuation.yield(try await read(client))
                    }
                    continuation.finish()
                } catch {
                    continuation.finish(throwing: error)
                }
            }
            continuation.onTermination = { _ in task.cancel() }
        }
    }
}

extension QrCode {
    /// Whether module (`x`, `y`) is dark; 0 ≤ x, y < size. Draw with a 4-module quiet zone.
    public func isDark(x: Int, y: Int) -> Bool { modules[y * Int(size) + x] }
}

extension LedgerEntry {
    /// Whether this entry's points are still pending (not yet spendable) at `nowMs`: decided from
    /// `availableAtMs` and the clock, so the entry turns available without new text.
    public func isPending(at nowMs: Int64) -> Bool {
        ledgerEntryIsPending(entry: self, nowMs: nowMs)
    }
}
