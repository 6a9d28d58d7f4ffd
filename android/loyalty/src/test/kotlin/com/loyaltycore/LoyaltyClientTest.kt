// JVM unit tests of the Kotlin API, run the way Android's JVM unit tests run: against the library
// built for the host, loaded by JNA. They talk to a real `loyalty server` on loopback, started by
// scripts/mobile-tests.sh, which passes its URL and tokens in the environment.
package com.loyaltycore

import java.io.File
import java.net.ServerSocket
import java.net.URI
import java.net.http.HttpClient
import java.net.http.HttpRequest
import java.net.http.HttpResponse
import java.nio.file.Files
import java.util.Locale
import java.util.UUID
import java.util.concurrent.ConcurrentHashMap
import kotlin.test.assertFailsWith
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.async
import kotlinx.coroutines.awaitAll
import kotlinx.coroutines.flow.first
import kotlinx.coroutines.runBlocking
import kotlinx.coroutines.withTimeout
import org.junit.Assert.assertEquals
import org.junit.Assert.assertFalse
import org.junit.Assert.assertNotNull
import org.junit.Assert.assertNull
import org.junit.Assert.assertTrue
import org.junit.Test

/** The platform secret store stand-in: a map (an app uses the Keystore). */
class MapSecretStore : SecretStore {
    val map = ConcurrentHashMap<String, ByteArray>()
    override fun get(name: String): ByteArray? = map[name]
    override fun put(name: String, value: ByteArray) { map[name] = value }
    override fun delete(name: String) { map.remove(name) }
}

/** The retailer's side of the tests: the operator and till HTTP APIs of the real server. */
object Server {
    val url: String = env("LOYALTY_SERVER_URL")
    private val operatorToken = env("LOYALTY_OPERATOR_TOKEN")
    private val tillToken = env("LOYALTY_TILL_TOKEN")
    private val http = HttpClient.newHttpClient()

    private fun env(name: String): String =
        System.getenv(name) ?: error("$name is not set: run scripts/mobile-tests.sh")

    private fun call(method: String, path: String, token: String, body: String?, tillId: Boolean = false): Map<String, Any?> {
        val b = HttpRequest.newBuilder(URI.create(url + path))
            .header("Authorization", "Bearer $token")
            .header("Content-Type", "application/json")
            .method(method, if (body == null) HttpRequest.BodyPublishers.noBody() else HttpRequest.BodyPublishers.ofString(body))
        if (tillId) b.header("X-Till-Id", "till-1")
        val response = http.send(b.build(), HttpResponse.BodyHandlers.ofString())
        check(response.statusCode() in 200..299) { "$method $path: ${response.statusCode()} ${response.body()}" }
        if (response.body().isBlank()) return emptyMap()   // 204
        @Suppress("UNCHECKED_CAST")
        return Json.parse(response.body()) as Map<String, Any?>
    }

    /** A new member: (member id, card number, activation code). */
    fun createMember(): Triple<String, String, String> {
        val m = call("POST", "/v1/admin/members", operatorToken, "{}")
        return Triple(m["member_id"] as String, m["card_number"] as String, m["activation_code"] as String)
    }

    fun offer(member: String, id: String, needsActivation: Boolean, fromMs: Long, untilMs: Long) {
        call("POST", "/v1/admin/members/$member/offers", operatorToken,
            """{"id":"$id","title":"Offer $id","valid_from_ms":$fromMs,"valid_until_ms":$untilMs,"needs_activation":$needsActivation,"reward":"fixed_points","value":100}""")
    }

    fun message(member: String, id: String, subject: String) {
        call("POST", "/v1/admin/members/$member/messages", operatorToken,
            """{"id":"$id","kind":"service","subject":"$subject","body":"Hello from the tests"}""")
    }

    /** Another activation code for [member], for a device that enrolls again. */
    fun activationCode(member: String): String =
        call("POST", "/v1/admin/members/$member/activation-codes", operatorToken, null)["activation_code"] as String

    fun revoke(deviceId: String) {
        call("POST", "/v1/admin/devices/$deviceId/revoke", operatorToken, null)
    }

    fun member(member: String): Map<String, Any?> = call("GET", "/v1/admin/members/$member", operatorToken, null)

    /** An operator credits [points] to [member] with a reason, a note and a reference. */
    fun adjust(member: String, points: Long, reason: String, note: String, reference: String) {
        call("POST", "/v1/admin/members/$member/adjustments", operatorToken,
            """{"idempotency_key":"${UUID.randomUUID()}","points":$points,"reason":"$reason","note":"$note","reference":"$reference"}""")
    }

    /** The till scans a card number (no app): the session's answer. */
    fun scanCard(cardNumber: String): Map<String, Any?> =
        call("POST", "/v1/till/scan", tillToken, """{"code":"$cardNumber"}""", tillId = true)

    /** The member's PIN entered at the till for a card session. */
    fun enterPin(session: String, pin: String): Map<String, Any?> =
        call("POST", "/v1/till/sessions/$session/pin", tillToken, """{"pin":"$pin"}""", tillId = true)

    /** The till scans [code] and posts a purchase; returns the server's answer. */
    fun purchase(code: String, totalMinor: Long): Map<String, Any?> {
        val scan = call("POST", "/v1/till/scan", tillToken, """{"code":"$code"}""", tillId = true)
        val key = UUID.randomUUID().toString()
        return call("POST", "/v1/till/purchases", tillToken,
            """{"session_id":"${scan["session_id"]}","idempotency_key":"$key","receipt_id":"R-$key","total_minor":$totalMinor}""",
            tillId = true)
    }
}

/** Just enough JSON for the operator API's answers. */
object Json {
    fun parse(s: String): Any? = Parser(s).run { value().also { ws(); check(i == s.length) { "trailing JSON" } } }

    private class Parser(val s: String) {
        var i = 0
        fun ws() { while (i < s.length && s[i].isWhitespace()) i++ }
        fun value(): Any? {
            ws()
            return when (s[i]) {
                '{' -> obj()
                '[' -> arr()
                '"' -> str()
                't' -> { i += 4; true }
                'f' -> { i += 5; false }
                'n' -> { i += 4; null }
                else -> num()
            }
        }
        fun obj(): Map<String, Any?> {
            i++; val m = LinkedHashMap<String, Any?>(); ws()
            if (s[i] == '}') { i++; return m }
            do { ws(); val k = str(); ws(); check(s[i++] == ':'); m[k] = value(); ws() } while (s[i++] == ',')
            return m
        }
        fun arr(): List<Any?> {
            i++; val l = ArrayList<Any?>(); ws()
            if (s[i] == ']') { i++; return l }
            do { l.add(value()); ws() } while (s[i++] == ',')
            return l
        }
        fun num(): Any {
            val st = i
            while (i < s.length && (s[i] in "+-.eE" || s[i].isDigit())) i++
            check(i > st) { "bad JSON at $st" }
            val t = s.substring(st, i)
            return t.toLongOrNull() ?: t.toDouble()
        }
        fun str(): String {
            check(s[i++] == '"'); val b = StringBuilder()
            while (s[i] != '"') {
                if (s[i] == '\\') {
                    i++
                    when (s[i]) {
                        'n' -> b.append('\n'); 't' -> b.append('\t'); 'r' -> b.append('\r')
                        'b' -> b.append('\b'); 'f' -> b.append('\u000c')
                        'u' -> { b.append(s.substring(i + 1, i + 5).toInt(16).toChar()); i += 4 }
                        else -> b.append(s[i])
                    }
                } else b.append(s[i])
                i++
            }
            i++; return b.toString()
        }
    }
}

@Suppress("UNCHECKED_CAST")
private fun Map<String, Any?>.obj(key: String) = this[key] as Map<String, Any?>

class LoyaltyClientTest {
    private val dir: File = Files.createTempDirectory("loyalty-kotlin").toFile().also { it.deleteOnExit() }
    private fun db(name: String) = File(dir, "$name.db").path
    private val day = 86_400_000L
    private val now get() = System.currentTimeMillis()

    /** A URL where nothing listens: the server is unreachable there. */
    private fun closedUrl(): String = ServerSocket(0).use { "http://127.0.0.1:${it.localPort}" }

    private suspend fun enrolled(db: String, secrets: SecretStore = MapSecretStore()): Triple<Loyalty, String, String> {
        val (member, _, code) = Server.createMember()
        val loyalty = Loyalty(db, Server.url, secrets)
        loyalty.client.enroll(code, "kotlin test")
        return Triple(loyalty, member, code)
    }

    @Test
    fun memberJourneyWorksOfflineAndTheServerAgrees() = runBlocking {
        val (member, cardNumber, code) = Server.createMember()
        Server.offer(member, "coffee", needsActivation = true, fromMs = now - day, untilMs = now + 7 * day)
        Server.offer(member, "bread", needsActivation = false, fromMs = now - day, untilMs = now + 7 * day)
        Server.offer(member, "old", needsActivation = true, fromMs = now - 3 * day, untilMs = now - day)
        Server.message(member, "welcome", "Welcome")
        val secrets = MapSecretStore()
        val path = db("journey")

        Loyalty(path, Server.url, secrets).use { app ->
            val c = app.client
            assertFalse(c.isEnrolled())
            assertNull(c.card())
            val enrollment = c.enroll(code, "Anna's test phone")
            assertEquals(member, enrollment.memberId)
            assertEquals(cardNumber, enrollment.cardNumber)
            assertTrue("the signing key goes to the host's secret store", secrets.map.isNotEmpty())

            val report = c.sync()
            assertTrue(report.changed.containsAll(listOf(Document.CARD, Document.OFFERS, Document.INBOX)))
            val card = requireNotNull(c.card()) { "no card after the first sync" }
            assertEquals(cardNumber, card.cardNumber)
            assertEquals(CardStatus.ACTIVE, card.status)
            assertEquals(0L, c.balance())
            assertEquals(setOf("coffee", "bread", "old"), c.offers(OfferFilter.ALL).map { it.id }.toSet())
            assertEquals(listOf("coffee"), c.offers(OfferFilter.AVAILABLE).map { it.id })
            assertEquals(listOf("bread"), c.offers(OfferFilter.ACTIVE).map { it.id })
            assertEquals(listOf("old"), c.offers(OfferFilter.EXPIRED).map { it.id })
            assertEquals(emptyList<Offer>(), c.offers(OfferFilter.ACTIVATED))
            assertEquals(listOf("welcome"), c.messages(MessageFilter.UNREAD).map { it.id })
        }

        // The app restarts in a basement: the server cannot be reached.
        Loyalty(path, closedUrl(), secrets).use { app ->
            val c = app.client
            c.activateOffer("coffee")
            c.markRead("welcome")
            c.setPreference("store", "berlin-mitte")
            c.setConsent(ConsentChannel.EMAIL, true)
            val coffee = c.offers(OfferFilter.ACTIVATED).single()
            assertEquals("coffee", coffee.id)
            assertEquals(OfferState.ACTIVE, coffee.state)
            assertNotNull(coffee.activatedAtMs)
            assertEquals(emptyList<Message>(), c.messages(MessageFilter.UNREAD))
            assertNotNull(c.messages(MessageFilter.INBOX).single().readAtMs)
            assertEquals(mapOf("store" to "berlin-mitte"), c.preferences())
            assertEquals(listOf(ConsentChannel.EMAIL to true), c.consents().map { it.channel to it.granted })
            val requestId = c.openRequest(RequestKind.QUESTION, "Parking?", "Is there parking at Mitte?")
            assertEquals(listOf(requestId to RequestStatus.OPEN), c.requests().map { it.id to it.status })
            val checkout = c.checkoutCode()   // made offline
            assertEquals(cardNumber, checkout.cardNumber)
            assertEquals(122, checkout.text.length)
            assertEquals(37u, checkout.qr.size)
            assertEquals(37 * 37, checkout.qr.modules.size)
            assertTrue(checkout.qr.isDark(0, 0))   // a finder pattern's corner
            assertTrue(checkout.expiresAtMs > c.serverNowMs())
            assertFailsWith<LoyaltyException.Offline> { c.sync() }
            // The server has not heard of any of it yet.
            val before = Server.member(member).obj("member")
            assertFalse(before.obj("activations").containsKey("coffee"))
        }

        // Back online: one sync and the server agrees.
        Loyalty(path, Server.url, secrets).use { app ->
            val report = app.client.sync()
            assertEquals(emptyList<Rejection>(), report.rejected)
            val m = Server.member(member).obj("member")
            assertTrue(m.obj("activations").containsKey("coffee"))
            assertTrue(m.obj("read").containsKey("welcome"))
            assertEquals("berlin-mitte", m.obj("preferences")["store"])
            assertEquals(true, m.obj("consents").obj("email")["granted"])
            assertEquals(1, m.obj("requests").size)
            assertEquals(listOf("coffee"), app.client.offers(OfferFilter.ACTIVATED).map { it.id })
        }
    }

    @Test
    fun aRevokedPhoneResetsEnrollsAgainAndHasItsBalanceBack() = runBlocking<Unit> {
        val secrets = MapSecretStore()
        val (app, member, _) = enrolled(db("reset"), secrets)
        app.use {
            val c = app.client
            c.sync()
            val posting = Server.purchase(c.checkoutCode().text, totalMinor = 4250)
            c.sync()
            val balance = c.balance()
            assertEquals(posting["balance"] as Long, balance)
            val oldKey = secrets.map.values.single().copyOf()
            val oldDevice = c.enrollment()!!.deviceId

            Server.revoke(oldDevice)
            assertFailsWith<LoyaltyException.Unauthorized> { c.sync() }
            val code = Server.activationCode(member)
            assertFailsWith<LoyaltyException.InvalidInput> { c.enroll(code, "kotlin test") }

            c.reset()
            assertFalse(c.isEnrolled())
            assertNull(c.enrollment())
            assertNull(c.card())
            assertTrue("the key is gone from the secret store", secrets.map.isEmpty())
            assertFailsWith<LoyaltyException.NotEnrolled> { c.sync() }

            val again = c.enroll(code, "kotlin test")
            assertEquals(member, again.memberId)
            assertTrue(again.deviceId != oldDevice)
            c.sync()
            assertEquals(balance, c.balance())
            assertFalse(oldKey.contentEquals(secrets.map.values.single()))
            Server.purchase(c.checkoutCode().text, totalMinor = 100)   // the new key works
        }
    }

    @Test
    fun aPurchaseAtTheTillShowsInBalanceAndLedger() = runBlocking {
        val (app, _, _) = enrolled(db("till"))
        app.use {
            val c = app.client
            c.sync()
            val posting = Server.purchase(c.checkoutCode().text, totalMinor = 4250)
            val earned = posting["earned"] as Long
            assertTrue(earned > 0)
            c.sync()
            assertEquals(posting["balance"] as Long, c.balance())
            val ledger = c.ledger()
            assertEquals(earned, ledger.sumOf { it.points })
            assertTrue(ledger.all { it.reason.isNotEmpty() && it.transactionId.isNotEmpty() })
            assertTrue(ledger.any { it.rule.startsWith("base:") })
            val standing = c.card()!!.standing!!
            assertEquals("Member", standing.tierName)
            assertEquals(0L, standing.pending)
        }
    }

    /** How an app words entries in its own language (German here) from the code and parameters. */
    private fun german(e: LedgerEntry): String {
        val p = e.reasonParams
        fun money(m: Money) = String.format(Locale.GERMANY, "%,.2f %s", m.minor / 100.0, m.currency)
        return when (e.reasonCode) {
            ReasonCode.PURCHASE -> "Einkauf über ${money(p.amount!!)}"
            ReasonCode.PURCHASE_OFFER -> "Einkauf über ${money(p.amount!!)} mit Angebot „${p.title}“"
            ReasonCode.ADJUST -> when (p.adjustReason) {
                "goodwill" -> "Kulanz: ${p.note} (Vorgang ${p.receipt})"
                else -> "Korrektur: ${p.note}"
            }
            else -> e.reason   // a code this app does not word: the default English text
        }
    }

    @Test
    fun anAppWordsEntriesItselfAndPendingPointsMatureWithoutNewText() = runBlocking {
        val (app, member, _) = enrolled(db("reasons"))
        app.use {
            val c = app.client
            Server.offer(member, "latte", needsActivation = false, fromMs = now - day, untilMs = now + day)
            c.sync()
            val posting = Server.purchase(c.checkoutCode().text, totalMinor = 125_050)
            Server.adjust(member, 25, "goodwill", "Sorry for the wait", "T-42")
            c.sync()
            val ledger = c.ledger()
            val offer = ledger.single { it.reasonCode == ReasonCode.PURCHASE_OFFER }
            assertEquals("latte", offer.reasonParams.offerId)
            assertEquals("offer:latte", offer.reasonParams.ruleId)
            assertEquals(Money(125_050L, "EUR"), offer.reasonParams.amount)
            assertEquals(posting["posting"].toString().substringAfterLast(':').let { "R-$it" }, offer.reasonParams.receipt)
            assertEquals("Einkauf über 1.250,50 EUR mit Angebot „Offer latte“", german(offer))
            val base = ledger.single { it.reasonCode == ReasonCode.PURCHASE }
            assertEquals("Einkauf über 1.250,50 EUR", german(base))
            val adjust = ledger.single { it.reasonCode == ReasonCode.ADJUST }
            assertEquals(25L, adjust.points)
            assertEquals("Kulanz: Sorry for the wait (Vorgang T-42)", german(adjust))
            // The server's English is the core's wording of the same code and parameters.
            for (e in ledger) assertEquals(e.reason, reasonDefaultText(e.reasonCode, e.reasonParams))

            // This programme has no pending period: nothing is pending now. (`now` reads the
            // clock on every use: one instant for all the comparisons.)
            val t = now
            assertTrue(ledger.none { it.isPending(t) })
            // An entry maturing in a week is pending until then and available after, same words.
            val maturing = offer.copy(availableAtMs = t + 7 * day)
            assertTrue(maturing.isPending(t))
            assertTrue(maturing.isPending(t + 7 * day - 1))
            assertFalse(maturing.isPending(t + 7 * day))
            assertEquals(german(offer), german(maturing))
            assertEquals(offer.reason, maturing.reason)
        }
    }

    @Test
    fun aPinAndAPlasticCardLetTheMemberPayWithPointsWithoutThePhone() = runBlocking {
        val (app, _, _) = enrolled(db("pin"))
        app.use {
            val c = app.client
            assertFailsWith<LoyaltyException.InvalidInput> { c.setPin("1234") }
            c.setPin("4071")
            // A plastic card from the retailer's stock, as printed.
            val card = "4000 0000 0000 0713"
            val cards = c.linkCard(card)
            assertEquals(LinkedCardStatus.LINKED, cards.single().status)
            assertEquals("4000000000000713", cards.single().cardNumber)
            val scan = Server.scanCard(card)
            assertEquals("card", scan["trust"])
            assertEquals(false, scan["may_redeem"])
            val standing = Server.enterPin(scan["session_id"] as String, "4071")
            assertEquals(true, standing["may_redeem"])
        }
    }

    @Test
    fun everyErrorReachesTheAppTyped() = runBlocking {
        // Not enrolled.
        Loyalty(db("fresh"), Server.url, MapSecretStore()).use { app ->
            assertFailsWith<LoyaltyException.NotEnrolled> { app.client.sync() }
            assertFailsWith<LoyaltyException.NotEnrolled> { app.client.checkoutCode() }
            // A code no one issued, and one that is not even a code.
            val wrong = assertFailsWith<LoyaltyException.ServerRejected> { app.client.enroll("0000-0000-0000", "phone") }
            assertEquals(404, wrong.status)
            assertEquals("activation_code_not_found", wrong.code)
            assertFailsWith<LoyaltyException.InvalidInput> { app.client.enroll("not a code!", "phone") }
            assertFalse(app.client.isEnrolled())
        }
        // Server down.
        Loyalty(db("down"), closedUrl(), MapSecretStore()).use { app ->
            val (_, _, code) = Server.createMember()
            assertFailsWith<LoyaltyException.Offline> { app.client.enroll(code, "phone") }
            assertFalse(app.client.isEnrolled())
        }
        // Invalid input.
        assertFailsWith<LoyaltyException.InvalidInput> { Loyalty(db("url"), "ftp://nowhere", MapSecretStore()) }
        val (app, _, code) = enrolled(db("input"))
        app.use {
            val c = app.client
            c.sync()
            assertFailsWith<LoyaltyException.InvalidInput> { c.activateOffer("no-such-offer") }
            assertFailsWith<LoyaltyException.InvalidInput> { c.markRead("no-such-message") }
            assertFailsWith<LoyaltyException.InvalidInput> { c.setPreference("", "empty name") }
            assertFailsWith<LoyaltyException.InvalidInput> { c.enroll(code, "twice") }
        }
        // A used code, on another phone.
        Loyalty(db("second"), Server.url, MapSecretStore()).use { other ->
            val used = assertFailsWith<LoyaltyException.ServerRejected> { other.client.enroll(code, "phone 2") }
            assertEquals("activation_code_used", used.code)
        }
        // The host's secret store failing is a storage error, not a crash.
        val broken = object : SecretStore {
            override fun get(name: String): ByteArray? = throw SecretStoreException.Failed("keystore locked")
            override fun put(name: String, value: ByteArray) = throw IllegalStateException("keystore locked")
            override fun delete(name: String) {}
        }
        Loyalty(db("broken"), Server.url, broken).use { app ->
            val (_, _, c2) = Server.createMember()
            val e = assertFailsWith<LoyaltyException.Storage> { app.client.enroll(c2, "phone") }
            assertTrue(e.detail, e.detail.contains("keystore locked"))
        }
    }

    @Test
    fun theChangeFlowFiresAfterASyncBringsNewData() = runBlocking {
        val (app, member, _) = enrolled(db("listener"))
        app.use {
            val c = app.client
            c.sync()
            assertEquals(emptyList<Document>(), c.sync().changed)   // nothing new: no event
            val unread = async(Dispatchers.Default) {
                withTimeout(10_000) { app.observe { messages(MessageFilter.UNREAD).map { it.id } }.first { "news" in it } }
            }
            val change = async(Dispatchers.Default) { withTimeout(10_000) { app.changes.first() } }
            Thread.sleep(200)   // let both collectors subscribe
            Server.message(member, "news", "News")
            assertEquals(listOf(Document.INBOX), c.sync().changed)
            assertEquals(listOf(Document.INBOX), change.await())
            assertEquals(listOf("news"), unread.await())
        }
    }

    @Test
    fun watchingSyncsByItselfWhenTheServerChanges() = runBlocking {
        Loyalty(db("watch-fresh"), Server.url, MapSecretStore()).use { app ->
            assertFailsWith<LoyaltyException.NotEnrolled> { app.client.startWatching() }
        }
        val (app, member, _) = enrolled(db("watch"))
        app.use {
            val c = app.client
            c.sync()
            // The watcher's own first sync may bring a card refresh before the message
            // lands; what matters is that the inbox change arrives without a sync() call.
            val change = async(Dispatchers.Default) {
                withTimeout(10_000) { app.changes.first { Document.INBOX in it } }
            }
            c.startWatching()
            c.startWatching()   // once is enough; twice changes nothing
            assertTrue(c.isWatching())
            Thread.sleep(300)
            Server.message(member, "live", "Live")   // no sync() from the app
            assertTrue(Document.INBOX in change.await())
            assertEquals(listOf("live"), c.messages(MessageFilter.UNREAD).map { it.id })
            c.stopWatching()
            assertFalse(c.isWatching())
        }
    }

    @Test
    fun manyConcurrentCallsNeitherDeadlockNorCrash() = runBlocking {
        val (app, member, _) = enrolled(db("concurrent"))
        app.use {
            val c = app.client
            for (i in 0 until 20) Server.offer(member, "o$i", needsActivation = true, fromMs = now - day, untilMs = now + day)
            c.sync()
            withTimeout(60_000) {
                (0 until 200).map { i ->
                    async(Dispatchers.Default) {
                        when (i % 6) {
                            0 -> c.sync().roundTrips
                            1 -> c.activateOffer("o${(i / 6) % 20}").let { 1u }
                            2 -> c.offers(OfferFilter.ALL).size.toUInt()
                            3 -> c.checkoutCode().timeStep
                            4 -> c.card()!!.balance.toUInt()
                            else -> c.setPreference("p${(i / 6) % 10}", "v$i").let { 1u }
                        }
                    }
                }.awaitAll()
            }
            c.sync()
            assertEquals(20, c.offers(OfferFilter.ACTIVATED).size)
            val m = Server.member(member).obj("member")
            assertEquals((0 until 20).map { "o$it" }.toSet(), m.obj("activations").keys)
            assertEquals(10, m.obj("preferences").size)
        }
    }
}
