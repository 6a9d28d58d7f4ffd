// The idiomatic Kotlin layer over the generated bindings (loyalty_ffi.kt, do not edit that one):
// a Flow of changes and a way to observe any read. No business logic lives here; everything is
// in the Rust core.
package com.loyaltycore

import kotlinx.coroutines.channels.BufferOverflow
import kotlinx.coroutines.flow.Flow
import kotlinx.coroutines.flow.MutableSharedFlow
import kotlinx.coroutines.flow.SharedFlow
import kotlinx.coroutines.flow.asSharedFlow
import kotlinx.coroutines.flow.map
import kotlinx.coroutines.flow.onSubscription

/**
 * A [ChangeListener] that republishes the core's change notifications as a hot [SharedFlow].
 * The core calls [onChange] on its own background thread; collectors get the values on their
 * own dispatcher. A slow collector loses the oldest notifications, never blocks the core.
 */
class ChangeFeed : ChangeListener {
    private val flow = MutableSharedFlow<List<Document>>(
        extraBufferCapacity = 64,
        onBufferOverflow = BufferOverflow.DROP_OLDEST,
    )

    /** Each value lists the documents one sync changed. */
    val changes: SharedFlow<List<Document>> = flow.asSharedFlow()

    override fun onChange(documents: List<Document>) {
        flow.tryEmit(documents)
    }
}

/**
 * The entry point for an app: a [LoyaltyClient] on the member store at [databasePath], talking
 * to [serverUrl], keeping its signing key in [secretStore], with its changes as a [Flow].
 * One per store; share it (it is thread-safe) and [close] it when the app no longer needs it.
 */
class Loyalty(databasePath: String, serverUrl: String, secretStore: SecretStore) : AutoCloseable {
    private val feed = ChangeFeed()

    /** Every operation: enroll, sync, card, offers, inbox, preferences, checkout code, reset (sign out). */
    val client: LoyaltyClient = LoyaltyClient(databasePath, serverUrl, secretStore, feed)

    /** The documents each sync changed, as they happen. */
    val changes: SharedFlow<List<Document>> get() = feed.changes

    /**
     * A cold Flow of [read]'s value now and again after every sync that changed something:
     * `loyalty.observe { offers(OfferFilter.ALL) }.collectAsState(emptyList())` in Compose.
     * Errors of [read] end the flow with the [LoyaltyException].
     */
    fun <T> observe(read: suspend LoyaltyClient.() -> T): Flow<T> =
        // Subscribed before the first read, so a sync finishing in between is not missed.
        changes.onSubscription { emit(emptyList()) }.map { client.read() }

    override fun close() = client.close()
}

/** Whether module ([x], [y]) of the QR code is dark; 0 ≤ x, y < size. */
fun QrCode.isDark(x: Int, y: Int): Boolean = modules[y * size.toInt() + x]

/**
 * Whether this entry's points are still pending (not yet spendable) at [nowMs]: decided from
 * [LedgerEntry.availableAtMs] and the clock, so the entry turns available without new text.
 */
fun LedgerEntry.isPending(nowMs: Long = System.currentTimeMillis()): Boolean =
    ledgerEntryIsPending(this, nowMs)
