// XCTest tests of the Swift API against a real `loyalty server` on loopback, started by
// scripts/mobile-tests.sh, which passes its URL and tokens in the environment. On Linux they link
// the host-built libloyalty_ffi.so.
import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import XCTest
import LoyaltyCore

/// The platform secret store stand-in: a locked dictionary (an app uses the Keychain).
final class MapSecretStore: SecretStore, @unchecked Sendable {
    private let lock = NSLock()
    private var map: [String: Data] = [:]
    var count: Int { lock.lock(); defer { lock.unlock() }; return map.count }
    var values: [Data] { lock.lock(); defer { lock.unlock() }; return Array(map.values) }
    func get(name: String) throws -> Data? { lock.lock(); defer { lock.unlock() }; return map[name] }
    func put(name: String, value: Data) throws { lock.lock(); defer { lock.unlock() }; map[name] = value }
    func delete(name: String) throws { lock.lock(); defer { lock.unlock() }; map[name] = nil }
}

/// A secret store whose platform store is locked.
final class BrokenSecretStore: SecretStore, @unchecked Sendable {
    struct Locked: Error {}
    func get(name: String) throws -> Data? { throw SecretStoreError.Failed(detail: "keychain locked") }
    func put(name: String, value: Data) throws { throw SecretStoreError.Failed(detail: "keychain locked") }
    func delete(name: String) throws { throw Locked() }
}

struct HTTPFailure: Error, CustomStringConvertible { let description: String }
struct Timeout: Error {}

/// The retailer's side of the tests: the operator and till HTTP APIs of the real server.
enum Server {
    static let url = env("LOYALTY_SERVER_URL")
    static let closedUrl = env("LOYALTY_CLOSED_URL")
    static let operatorToken = env("LOYALTY_OPERATOR_TOKEN")
    static let tillToken = env("LOYALTY_TILL_TOKEN")

    static func env(_ name: String) -> String {
        guard let v = ProcessInfo.processInfo.environment[name] else {
            fatalError("\(name) is not set: run scripts/mobile-tests.sh")
        }
        return v
    }

    static func call(_ method: String, _ path: String, token: String, body: String?, till: Bool = false)
        async throws -> [String: Any]
    {
        var request = URLRequest(url: URL(string: url + path)!)
        request.httpMethod = method
        request.setValue("Bearer \(token)", forHTTPHeaderField: "Authorization")
        request.setValue("application/json", forHTTPHeaderField: "Content-Type")
        if till { request.setValue("till-1", forHTTPHeaderField: "X-Till-Id") }
        request.httpBody = body?.data(using: .utf8)
        let (data, response): (Data, URLResponse) = try await withCheckedThrowingContinuation { c in
            URLSession.shared.dataTask(with: request) { d, r, e in
                if let e { c.resume(throwing: e) } else if let r { c.resume(returning: (d ?? Data(), r)) }
                else { c.resume(throwing: HTTPFailure(description: "no response")) }
            }.resume()
        }
        let status = (response as? HTTPURLResponse)?.statusCode ?? 0
        guard (200..<300).contains(status) else {
            throw HTTPFailure(description: "\(method) \(path): \(status) \(String(decoding: data, as: UTF8.self))")
        }
        if data.isEmpty { return [:] }   // 204
        guard let json = try JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw HTTPFailure(description: "\(method) \(path): not a JSON object")
        }
        return json
    }

    /// A new member: (member id, card number, activation code).
    static func createMember() async throws -> (String, String, String) {
        let m = try await call("POST", "/v1/admin/members", token: operatorToken, body: "{}")
        return (m["member_id"] as! String, m["card_number"] as! String, m["activation_code"] as! String)
    }

    static func offer(_ member: String, _ id: String, needsActivation: Bool, from: Int64, until: Int64) async throws {
        _ = try await call("POST", "/v1/admin/members/\(member)/offers", token: operatorToken,
            body: #"{"id":"\#(id)","title":"Offer \#(id)","valid_from_ms":\#(from),"valid_until_ms":\#(until),"needs_activation":\#(needsActivation),"reward":"fixed_points","value":100}"#)
    }

    static func message(_ member: String, _ id: String, subject: String) async throws {
        _ = try await call("POST", "/v1/admin/members/\(member)/messages", token: operatorToken,
            body: #"{"id":"\#(id)","kind":"service","subject":"\#(subject)","body":"Hello from the tests"}"#)
    }

    /// An operator credits `points` to `member` with a reason, a note and a reference.
    static func adjust(_ member: String, points: Int, reason: String, note: String, reference: String) async throws {
        _ = try await call("POST", "/v1/admin/members/\(member)/adjustments", token: operatorToken,
            body: #"{"idempotency_key":"\#(UUID().uuidString)","points":\#(points),"reason":"\#(reason)","note":"\#(note)","reference":"\#(reference)"}"#)
    }

    /// Another activation code for `member`, for a device that enrolls again.
    static func activationCode(_ member: String) async throws -> String {
        let c = try await call("POST", "/v1/admin/members/\(member)/activation-codes", token: operatorToken, body: nil)
        return c["activation_code"] as! String
    }

    static func revoke(_ deviceId: String) async throws {
        _ = try await call("POST", "/v1/admin/devices/\(deviceId)/revoke", token: operatorToken, body: nil)
    }

    /// The member's document as the server holds it.
    static func memberDoc(_ member: String) async throws -> [String: Any] {
        let m = try await call("GET", "/v1/admin/members/\(member)", token: operatorToken, body: nil)
        return m["member"] as! [String: Any]
    }

    /// The till scans `code` and posts a purchase; returns the server's answer.
    /// The till scans a card number (no app): the session's answer.
    static func scanCard(_ cardNumber: String) async throws -> [String: Any] {
        try await call("POST", "/v1/till/scan", token: tillToken, body: "{\"code\":\"\(cardNumber)\"}", till: true)
    }

    /// The member's PIN entered at the till for a card session.
    static func enterPin(session: String, pin: String) async throws -> [String: Any] {
        try await call("POST", "/v1/till/sessions/\(session)/pin", token: tillToken, body: "{\"pin\":\"\(pin)\"}", till: true)
    }

    static func purchase(code: String, totalMinor: Int) async throws -> [String: Any] {
        let scan = try await call("POST", "/v1/till/scan", token: tillToken, body: #"{"code":"\#(code)"}"#, till: true)
        let key = UUID().uuidString
        return try await call("POST", "/v1/till/purchases", token: tillToken,
            body: #"{"session_id":"\#(scan["session_id"] as! String)","idempotency_key":"\#(key)","receipt_id":"R-\#(key)","total_minor":\#(totalMinor)}"#,
            till: true)
    }
}

func int64(_ any: Any?) -> Int64? { (any as? NSNumber)?.int64Value }

/// Runs `body`, failing with `Timeout` after `seconds`.
func withTimeout<T: Sendable>(_ seconds: Double, _ body: @escaping @Sendable () async throws -> T) async throws -> T {
    try await withThrowingTaskGroup(of: T.self) { group in
        group.addTask { try await body() }
        group.addTask {
            try await Task.sleep(nanoseconds: UInt64(seconds * 1e9))
            throw Timeout()
        }
        let first = try await group.next()!
        group.cancelAll()
        return first
    }
}

final class LoyaltyCoreTests: XCTestCase {
    let day: Int64 = 86_400_000
    var now: Int64 { Int64(Date().timeIntervalSince1970 * 1000) }
    lazy var dir: URL = {
        let d = FileManager.default.temporaryDirectory.appendingPathComponent("loyalty-swift-\(UUID().uuidString)")
        try? FileManager.default.createDirectory(at: d, withIntermediateDirectories: true)
        return d
    }()

    override func tearDown() {
        try? FileManager.default.removeItem(at: dir)
    }

    func db(_ name: String) -> String { dir.appendingPathComponent("\(name).db").path }

    /// Asserts that `body` throws a `LoyaltyError` that `matches` accepts.
    func assertThrows<T>(_ what: String, _ body: () async throws -> T, matches: (LoyaltyError) -> Bool,
                         file: StaticString = #filePath, line: UInt = #line) async {
        do {
            _ = try await body()
            XCTFail("\(what): no error", file: file, line: line)
        } catch let e as LoyaltyError {
            XCTAssertTrue(matches(e), "\(what): wrong error \(e)", file: file, line: line)
        } catch {
            XCTFail("\(what): not a LoyaltyError: \(error)", file: file, line: line)
        }
    }

    func enrolled(_ name: String) async throws -> (Loyalty, String, String) {
        let (member, _, code) = try await Server.createMember()
        let app = try Loyalty(databasePath: db(name), serverUrl: Server.url, secretStore: MapSecretStore())
        _ = try await app.client.enroll(activationCode: code, deviceName: "swift test")
        return (app, member, code)
    }

    func testMemberJourneyWorksOfflineAndTheServerAgrees() async throws {
        let (member, cardNumber, code) = try await Server.createMember()
        try await Server.offer(member, "coffee", needsActivation: true, from: now - day, until: now + 7 * day)
        try await Server.offer(member, "bread", needsActivation: false, from: now - day, until: now + 7 * day)
        try await Server.offer(member, "old", needsActivation: true, from: now - 3 * day, until: now - day)
        try await Server.message(member, "welcome", subject: "Welcome")
        let secrets = MapSecretStore()
        let path = db("journey")

        do {
            let c = try Loyalty(databasePath: path, serverUrl: Server.url, secretStore: secrets).client
            XCTAssertFalse(c.isEnrolled())
            let noCard = try await c.card()
            XCTAssertNil(noCard)
            let enrollment = try await c.enroll(activationCode: code, deviceName: "Anna's test iPhone")
            XCTAssertEqual(enrollment.memberId, member)
            XCTAssertEqual(enrollment.cardNumber, cardNumber)
            XCTAssertEqual(secrets.count, 1, "the signing key goes to the host's secret store")

            let report = try await c.sync()
            XCTAssertTrue(Set(report.changed).isSuperset(of: [.card, .offers, .inbox]))
            let card = try await c.card()
            XCTAssertEqual(card?.cardNumber, cardNumber)
            XCTAssertEqual(card?.status, .active)
            let balance = try await c.balance()
            XCTAssertEqual(balance, 0)
            let all = try await c.offers(filter: .all)
            XCTAssertEqual(Set(all.map(\.id)), ["coffee", "bread", "old"])
            let available = try await c.offers(filter: .available)
            XCTAssertEqual(available.map(\.id), ["coffee"])
            let active = try await c.offers(filter: .active)
            XCTAssertEqual(active.map(\.id), ["bread"])
            let expired = try await c.offers(filter: .expired)
            XCTAssertEqual(expired.map(\.id), ["old"])
            let activated = try await c.offers(filter: .activated)
            XCTAssertEqual(activated.count, 0)
            let unread = try await c.messages(filter: .unread)
            XCTAssertEqual(unread.map(\.id), ["welcome"])
        }

        // The app restarts in a basement: the server cannot be reached.
        do {
            let c = try Loyalty(databasePath: path, serverUrl: Server.closedUrl, secretStore: secrets).client
            try await c.activateOffer(offerId: "coffee")
            try await c.markRead(messageId: "welcome")
            try await c.setPreference(name: "store", value: "berlin-mitte")
            try await c.setConsent(channel: .email, granted: true)
            let activated = try await c.offers(filter: .activated)
            XCTAssertEqual(activated.map(\.id), ["coffee"])
            XCTAssertEqual(activated.first?.state, .active)
            XCTAssertNotNil(activated.first?.activatedAtMs)
            let unread = try await c.messages(filter: .unread)
            XCTAssertEqual(unread.count, 0)
            let prefs = try await c.preferences()
            XCTAssertEqual(prefs, ["store": "berlin-mitte"])
            let consents = try await c.consents()
            XCTAssertEqual(consents.map(\.channel), [.email])
            XCTAssertEqual(consents.map(\.granted), [true])
            let requestId = try await c.openRequest(kind: .question, subject: "Parking?", body: "Is there parking?")
            let requests = try await c.requests()
            XCTAssertEqual(requests.map(\.id), [requestId])
            XCTAssertEqual(requests.map(\.status), [.open])
            let checkout = try await c.checkoutCode()   // made offline
            XCTAssertEqual(checkout.cardNumber, cardNumber)
            XCTAssertEqual(checkout.text.count, 122)
            XCTAssertEqual(checkout.qr.size, 37)
            XCTAssertEqual(checkout.qr.modules.count, 37 * 37)
            XCTAssertTrue(checkout.qr.isDark(x: 0, y: 0))
            XCTAssertGreaterThan(checkout.expiresAtMs, c.serverNowMs())
            await assertThrows("sync offline", { try await c.sync() }) {
                if case .Offline = $0 { return true } else { return false }
            }
            let before = try await Server.memberDoc(member)
            XCTAssertNil((before["activations"] as? [String: Any])?["coffee"])
        }

        // Back online: one sync and the server agrees.
        do {
            let c = try Loyalty(databasePath: path, serverUrl: Server.url, secretStore: secrets).client
            let report = try await c.sync()
            XCTAssertEqual(report.rejected, [])
            let m = try await Server.memberDoc(member)
            XCTAssertNotNil((m["activations"] as? [String: Any])?["coffee"])
            XCTAssertNotNil((m["read"] as? [String: Any])?["welcome"])
            XCTAssertEqual((m["preferences"] as? [String: Any])?["store"] as? String, "berlin-mitte")
            XCTAssertEqual(((m["consents"] as? [String: Any])?["email"] as? [String: Any])?["granted"] as? Bool, true)
        }
    }

    func testARevokedPhoneResetsEnrollsAgainAndHasItsBalanceBack() async throws {
        let (member, _, firstCode) = try await Server.createMember()
        let secrets = MapSecretStore()
        let c = try Loyalty(databasePath: db("reset"), serverUrl: Server.url, secretStore: secrets).client
        let first = try await c.enroll(activationCode: firstCode, deviceName: "swift test")
        _ = try await c.sync()
        let code1 = try await c.checkoutCode()
        let posting = try await Server.purchase(code: code1.text, totalMinor: 4250)
        _ = try await c.sync()
        let balance = try await c.balance()
        XCTAssertEqual(balance, int64(posting["balance"]))
        let oldKey = secrets.values

        try await Server.revoke(first.deviceId)
        await assertThrows("sync when revoked", { try await c.sync() }) {
            if case .Unauthorized = $0 { return true } else { return false }
        }
        let code = try await Server.activationCode(member)
        await assertThrows("enroll without reset", { try await c.enroll(activationCode: code, deviceName: "swift test") }) {
            if case .InvalidInput = $0 { return true } else { return false }
        }

        try await c.reset()
        XCTAssertFalse(c.isEnrolled())
        XCTAssertNil(c.enrollment())
        let noCard = try await c.card()
        XCTAssertNil(noCard)
        XCTAssertEqual(secrets.count, 0, "the key is gone from the Keychain")

        let again = try await c.enroll(activationCode: code, deviceName: "swift test")
        XCTAssertEqual(again.memberId, member)
        XCTAssertNotEqual(again.deviceId, first.deviceId)
        _ = try await c.sync()
        let back = try await c.balance()
        XCTAssertEqual(back, balance)
        XCTAssertNotEqual(secrets.values, oldKey)
        let code2 = try await c.checkoutCode()
        _ = try await Server.purchase(code: code2.text, totalMinor: 100)   // the new key works
    }

    func testAPurchaseAtTheTillShowsInBalanceAndLedger() async throws {
        let (app, _, _) = try await enrolled("till")
        let c = app.client
        _ = try await c.sync()
        let code = try await c.checkoutCode()
        let posting = try await Server.purchase(code: code.text, totalMinor: 4250)
        let earned = try XCTUnwrap(int64(posting["earned"]))
        XCTAssertGreaterThan(earned, 0)
        _ = try await c.sync()
        let balance = try await c.balance()
        XCTAssertEqual(balance, int64(posting["balance"]))
        let ledger = try await c.ledger()
        XCTAssertEqual(ledger.map(\.points).reduce(0, +), earned)
        XCTAssertTrue(ledger.allSatisfy { !$0.reason.isEmpty && !$0.transactionId.isEmpty })
        XCTAssertTrue(ledger.contains { $0.rule.hasPrefix("base:") })
        let card = try await c.card()
        let standing = try XCTUnwrap(card?.standing)
        XCTAssertEqual(standing.tierName, "Member")
        XCTAssertEqual(standing.pending, 0)
    }

    /// How an app words entries in its own language (French here) from the code and parameters.
    func french(_ e: LedgerEntry) -> String {
        let p = e.reasonParams
        func money(_ m: Money) -> String {
            "\(m.minor / 100),\(String(format: "%02d", Int(m.minor % 100))) \(m.currency)"
        }
        switch e.reasonCode {
        case .purchase: return "Achat de \(money(p.amount!))"
        case .purchaseOffer: return "Achat de \(money(p.amount!)) avec l’offre « \(p.title!) »"
        case .adjust where p.adjustReason == "goodwill":
            return "Geste commercial : \(p.note!) (dossier \(p.receipt!))"
        default: return e.reason   // a code this app does not word: the default English text
        }
    }

    func testAnAppWordsEntriesItselfAndPendingPointsMatureWithoutNewText() async throws {
        let (app, member, _) = try await enrolled("reasons")
        let c = app.client
        try await Server.offer(member, "latte", needsActivation: false, from: now - day, until: now + day)
        _ = try await c.sync()
        let code = try await c.checkoutCode()
        _ = try await Server.purchase(code: code.text, totalMinor: 1250)
        try await Server.adjust(member, points: 25, reason: "goodwill", note: "Sorry for the wait", reference: "T-42")
        _ = try await c.sync()
        let ledger = try await c.ledger()
        let offer = try XCTUnwrap(ledger.first { $0.reasonCode == .purchaseOffer })
        XCTAssertEqual(offer.reasonParams.offerId, "latte")
        XCTAssertEqual(offer.reasonParams.ruleId, "offer:latte")
        XCTAssertEqual(offer.reasonParams.amount, Money(minor: 1250, currency: "EUR"))
        XCTAssertTrue(offer.reasonParams.receipt?.hasPrefix("R-") ?? false)
        XCTAssertEqual(french(offer), "Achat de 12,50 EUR avec l’offre « Offer latte »")
        let base = try XCTUnwrap(ledger.first { $0.reasonCode == .purchase })
        XCTAssertEqual(french(base), "Achat de 12,50 EUR")
        let adjust = try XCTUnwrap(ledger.first { $0.reasonCode == .adjust })
        XCTAssertEqual(adjust.points, 25)
        XCTAssertEqual(french(adjust), "Geste commercial : Sorry for the wait (dossier T-42)")
        // The server's English is the core's wording of the same code and parameters.
        for e in ledger {
            XCTAssertEqual(e.reason, reasonDefaultText(code: e.reasonCode, params: e.reasonParams))
        }

        // This programme has no pending period: nothing is pending now.
        let t = now
        XCTAssertFalse(ledger.contains { $0.isPending(at: t) })
        // An entry maturing in a week is pending until then and available after, same words.
        var maturing = offer
        maturing.availableAtMs = t + 7 * day
        XCTAssertTrue(maturing.isPending(at: t))
        XCTAssertTrue(maturing.isPending(at: t + 7 * day - 1))
        XCTAssertFalse(maturing.isPending(at: t + 7 * day))
        XCTAssertEqual(french(maturing), french(offer))
        XCTAssertEqual(maturing.reason, offer.reason)
    }

    func testAPinAndAPlasticCardLetTheMemberPayWithPointsWithoutThePhone() async throws {
        let (app, _, _) = try await enrolled("pin")
        let c = app.client
        do {
            try await c.setPin(pin: "1234")
            XCTFail("a run of digits is refused")
        } catch LoyaltyError.InvalidInput {}
        try await c.setPin(pin: "4071")
        // A plastic card from the retailer's stock, as printed (another than the Kotlin test's:
        // both run against one server).
        let cards = try await c.linkCard(cardNumber: "4000 0000 0000 0721")
        XCTAssertEqual(cards.map(\.status), [.linked])
        XCTAssertEqual(cards.first?.cardNumber, "4000000000000721")
        let scan = try await Server.scanCard("4000000000000721")
        XCTAssertEqual(scan["trust"] as? String, "card")
        XCTAssertEqual(scan["may_redeem"] as? Bool, false)
        let standing = try await Server.enterPin(session: scan["session_id"] as! String, pin: "4071")
        XCTAssertEqual(standing["may_redeem"] as? Bool, true)
    }

    func testEveryErrorReachesTheAppTyped() async throws {
        // Not enrolled; a code no one issued; one that is not even a code.
        do {
            let c = try Loyalty(databasePath: db("fresh"), serverUrl: Server.url, secretStore: MapSecretStore()).client
            await assertThrows("sync", { try await c.sync() }) { $0 == .NotEnrolled }
            await assertThrows("code", { try await c.checkoutCode() }) { $0 == .NotEnrolled }
            await assertThrows("wrong code", { try await c.enroll(activationCode: "0000-0000-0000", deviceName: "p") }) {
                if case .ServerRejected(404, "activation_code_not_found", _) = $0 { return true } else { return false }
            }
            await assertThrows("malformed code", { try await c.enroll(activationCode: "not a code!", deviceName: "p") }) {
                if case .InvalidInput = $0 { return true } else { return false }
            }
            XCTAssertFalse(c.isEnrolled())
        }
        // Server down.
        do {
            let c = try Loyalty(databasePath: db("down"), serverUrl: Server.closedUrl, secretStore: MapSecretStore()).client
            let (_, _, code) = try await Server.createMember()
            await assertThrows("enroll offline", { try await c.enroll(activationCode: code, deviceName: "p") }) {
                if case .Offline = $0 { return true } else { return false }
            }
            XCTAssertFalse(c.isEnrolled())
        }
        // Invalid input.
        XCTAssertThrowsError(try Loyalty(databasePath: db("url"), serverUrl: "ftp://nowhere", secretStore: MapSecretStore())) {
            guard case LoyaltyError.InvalidInput = $0 else { return XCTFail("wrong error \($0)") }
        }
        let (app, _, code) = try await enrolled("input")
        let c = app.client
        _ = try await c.sync()
        let isInput: (LoyaltyError) -> Bool = { if case .InvalidInput = $0 { return true } else { return false } }
        await assertThrows("unknown offer", { try await c.activateOffer(offerId: "no-such-offer") }, matches: isInput)
        await assertThrows("unknown message", { try await c.markRead(messageId: "no-such-message") }, matches: isInput)
        await assertThrows("empty preference", { try await c.setPreference(name: "", value: "x") }, matches: isInput)
        await assertThrows("enroll twice", { try await c.enroll(activationCode: code, deviceName: "again") }, matches: isInput)
        // A used code, on another phone.
        do {
            let other = try Loyalty(databasePath: db("second"), serverUrl: Server.url, secretStore: MapSecretStore()).client
            await assertThrows("used code", { try await other.enroll(activationCode: code, deviceName: "p2") }) {
                if case .ServerRejected(_, "activation_code_used", _) = $0 { return true } else { return false }
            }
        }
        // The host's secret store failing is a storage error, not a crash.
        do {
            let c = try Loyalty(databasePath: db("broken"), serverUrl: Server.url, secretStore: BrokenSecretStore()).client
            let (_, _, code2) = try await Server.createMember()
            await assertThrows("keychain locked", { try await c.enroll(activationCode: code2, deviceName: "p") }) {
                if case .Storage(let detail) = $0 { return detail.contains("keychain locked") } else { return false }
            }
        }
    }

    func testTheChangeStreamFiresAfterASyncBringsNewData() async throws {
        let (app, member, _) = try await enrolled("listener")
        let c = app.client
        _ = try await c.sync()
        let quiet = try await c.sync()
        XCTAssertEqual(quiet.changed, [], "nothing new: no event")
        let changes = app.changes()
        let unread = app.observe { try await $0.messages(filter: .unread).map(\.id) }
        try await Server.message(member, "news", subject: "News")
        let report = try await c.sync()
        XCTAssertEqual(report.changed, [.inbox])
        let first = try await withTimeout(10) { () -> [Document]? in
            var it = changes.makeAsyncIterator()
            return await it.next()
        }
        XCTAssertEqual(first, [.inbox])
        let seen = try await withTimeout(10) { () -> [String] in
            for try await ids in unread where ids.contains("news") { return ids }
            return []
        }
        XCTAssertEqual(seen, ["news"])
    }

    func testWatchingSyncsByItselfWhenTheServerChanges() async throws {
        do {
            let c = try Loyalty(databasePath: db("watch-fresh"), serverUrl: Server.url, secretStore: MapSecretStore()).client
            await assertThrows("not enrolled", { try await c.startWatching() }) { $0 == .NotEnrolled }
        }
        let (app, member, _) = try await enrolled("watch")
        let c = app.client
        _ = try await c.sync()
        let changes = app.changes()
        try await c.startWatching()
        try await c.startWatching()   // once is enough; twice changes nothing
        XCTAssertTrue(c.isWatching())
        try await Task.sleep(nanoseconds: 300_000_000)
        try await Server.message(member, "live", subject: "Live")   // no sync() from the app
        // The watcher's own first sync may bring a card refresh before the message
        // lands; what matters is that the inbox change arrives without a sync() call.
        let inbox = try await withTimeout(10) { () -> Bool in
            for await docs in changes where docs.contains(.inbox) { return true }
            return false
        }
        XCTAssertTrue(inbox, "the inbox change arrived by itself")
        let unread = try await c.messages(filter: .unread)
        XCTAssertEqual(unread.map(\.id), ["live"])
        c.stopWatching()
        XCTAssertFalse(c.isWatching())
    }

    func testManyConcurrentCallsNeitherDeadlockNorCrash() async throws {
        let (app, member, _) = try await enrolled("concurrent")
        let c = app.client
        for i in 0..<20 {
            try await Server.offer(member, "o\(i)", needsActivation: true, from: now - day, until: now + day)
        }
        _ = try await c.sync()
        let done = try await withTimeout(60) { () -> Int in
            try await withThrowingTaskGroup(of: Int.self) { group in
                for i in 0..<200 {
                    group.addTask {
                        switch i % 6 {
                        case 0: return Int(try await c.sync().roundTrips)
                        case 1: try await c.activateOffer(offerId: "o\((i / 6) % 20)"); return 1
                        case 2: return try await c.offers(filter: .all).count
                        case 3: return Int(try await c.checkoutCode().timeStep)
                        case 4: return Int(try await c.card()?.balance ?? -1)
                        default: try await c.setPreference(name: "p\((i / 6) % 10)", value: "v\(i)"); return 1
                        }
                    }
                }
                var n = 0
                for try await _ in group { n += 1 }
                return n
            }
        }
        XCTAssertEqual(done, 200)
        _ = try await c.sync()
        let activated = try await c.offers(filter: .activated)
        XCTAssertEqual(activated.count, 20)
        let m = try await Server.memberDoc(member)
        XCTAssertEqual(Set((m["activations"] as? [String: Any])?.keys.map { $0 } ?? []), Set((0..<20).map { "o\($0)" }))
        XCTAssertEqual((m["preferences"] as? [String: Any])?.count, 10)
    }
}
