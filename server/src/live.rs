//! The change feed behind the long poll (`GET /v1/members/{id}/changes`): which member changed last
//! when, who is waiting for which member, and the wake-ups.
//!
//! - **A change wakes only its own member's waiters.** [`Live::notify`] looks the member up and
//!   wakes that member's [`Notify`]; however many other phones wait, a change costs one lock, one
//!   map look-up and one sequence number. [`Live::wake_all`] (a fan-out) wakes everyone on purpose.
//! - **Sequence numbers** are at least the time of the change in microseconds (one more than the
//!   last when changes come faster), so they keep growing across restarts, and several instances
//!   behind one load balancer number alike: a device's `since` from one instance or from before a
//!   restart never hides a later change on another (at worst it costs one spare sync).
//!   A number is taken and recorded under the same lock a waiter checks under, so a wait that
//!   times out can answer the current number: no change of its member is at or below it.
//! - **A bounded memory of changes.** The latest change of the last [`RECENT_CHANGES`] changes is
//!   remembered per member; older ones are forgotten into a *floor*: a member not remembered is
//!   taken to have changed at the floor. A device that polls with a `since` older than the floor
//!   is told `changed` once (one spare sync), never told nothing happened when something did.
//! - **Few polls per device.** A device may hold `per_device` polls open; a newer one ends the
//!   oldest with [`Wait::Superseded`] (a phone that switched networks leaves a dead connection
//!   behind; two screens of one app each polling settle on the newer without ping-pong).
//! - **Shutdown answers at once.** [`Live::close`] ends every wait with [`Wait::TimedOut`] and
//!   every later one before it starts.
//!
//! Everything enters through [`Live::notify`] and [`Live::wake_all`], so a listener on another
//! source of changes (PostgreSQL `LISTEN/NOTIFY` from other instances) only has to call them.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::Notify;
use tokio::time::Instant;

/// How many changes the feed remembers per member before forgetting the oldest into its floor.
/// At 5,000 purchases a second that is about 13 s of history: a phone re-polls well within it.
/// Each costs about 100 bytes (the member id, a log slot, a map slot).
pub const RECENT_CHANGES: usize = 65_536;

/// How a wait for a member's change ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wait {
    /// The member's documents changed; wait from this sequence number next.
    Changed(u64),
    /// Everyone was asked to re-check (a fan-out); nothing is known about this member yet.
    Woken,
    /// Nothing happened before the deadline, or the server is shutting down; wait from this
    /// sequence number next.
    TimedOut(u64),
    /// A newer poll of the same device took this one's place.
    Superseded,
}

pub struct Live {
    seq: AtomicU64,
    /// Sequence numbers never fall behind its time (see the module's notes); none in unit tests.
    clock: Option<Arc<dyn loyalty_core::clock::Clock>>,
    /// How many times [`Live::wake_all`] was called; lets a waiter tell it missed one.
    wakes: AtomicU64,
    /// Woken by [`Live::wake_all`] and [`Live::close`]: every waiter listens.
    everyone: Notify,
    closing: AtomicBool,
    per_device: usize,
    recent_cap: usize,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// Each remembered member's latest change.
    recent: HashMap<Arc<str>, u64>,
    /// The changes in the order they happened (so in sequence order); an entry whose member
    /// changed again since is stale and is dropped when it reaches the front.
    log: VecDeque<(u64, Arc<str>)>,
    /// The latest change forgotten: a member not in `recent` changed at most here.
    floor: u64,
    /// Members with a poll open, and what wakes their polls.
    waiting: HashMap<Arc<str>, Waiting>,
    /// Each device's open polls, oldest first.
    polls: HashMap<Arc<str>, VecDeque<(u64, Arc<Notify>)>>,
    next_poll: u64,
}

struct Waiting {
    notify: Arc<Notify>,
    polls: usize,
}

impl Live {
    /// A feed whose sequence numbers start after `start_seq`, allowing `per_device` open polls per
    /// device (at least one) and remembering `recent_cap` changes.
    pub fn new(start_seq: u64, per_device: usize, recent_cap: usize) -> Self {
        Self {
            seq: AtomicU64::new(start_seq),
            clock: None,
            wakes: AtomicU64::new(0),
            everyone: Notify::new(),
            closing: AtomicBool::new(false),
            per_device: per_device.max(1),
            recent_cap: recent_cap.max(1),
            state: Mutex::new(State::default()),
        }
    }

    /// The feed with sequence numbers kept at or past `clock`'s time in microseconds.
    pub fn following(mut self, clock: Arc<dyn loyalty_core::clock::Clock>) -> Self {
        self.clock = Some(clock);
        self
    }

    /// The next sequence number; called under the state lock, so no two changes share one.
    fn next_seq(&self) -> u64 {
        let now_us = self.clock.as_ref().map_or(0, |c| {
            u64::try_from(c.now_ms()).unwrap_or(0).saturating_mul(1000)
        });
        let next = (self.seq.load(Ordering::SeqCst) + 1).max(now_us);
        self.seq.store(next, Ordering::SeqCst);
        next
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves consistent maps (no step leaves them half done).
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records that a member's server documents changed and wakes that member's polls.
    pub fn notify(&self, member_id: &str) {
        let mut state = self.state();
        // Taken under the lock: see the module's notes on sequence numbers.
        let seq = self.next_seq();
        let member: Arc<str> = match state.recent.get_key_value(member_id) {
            Some((key, _)) => key.clone(),
            None => Arc::from(member_id),
        };
        state.recent.insert(member.clone(), seq);
        state.log.push_back((seq, member));
        while state.log.len() > self.recent_cap {
            let Some((old, member)) = state.log.pop_front() else {
                break;
            };
            if state.recent.get(&member) == Some(&old) {
                state.recent.remove(&member);
                state.floor = state.floor.max(old);
            }
        }
        if let Some(waiting) = state.waiting.get(member_id) {
            waiting.notify.notify_waiters();
        }
    }

    /// Wakes every open poll to re-check whether it has news (offers waiting to be projected after
    /// a fan-out): one call, however many members the fan-out reached.
    pub fn wake_all(&self) {
        self.wakes.fetch_add(1, Ordering::SeqCst);
        self.everyone.notify_waiters();
    }

    /// The number of [`Self::wake_all`] calls so far: read it before checking a condition, pass
    /// it to [`Poll::wait`], and a wake between the check and the wait is not lost.
    pub fn wakes(&self) -> u64 {
        self.wakes.load(Ordering::SeqCst)
    }

    /// Answers every open poll at once and every later one before it waits (shutdown).
    pub fn close(&self) {
        self.closing.store(true, Ordering::SeqCst);
        self.everyone.notify_waiters();
    }

    /// Whether [`Self::close`] was called: the server is shutting down (`/readyz` answers 503).
    pub fn is_closing(&self) -> bool {
        self.closing.load(Ordering::SeqCst)
    }

    /// Opens a poll of `device_id` for `member_id`'s changes; it is closed when dropped. Beyond
    /// the per-device limit, the device's oldest poll is superseded.
    pub fn open(&self, member_id: &str, device_id: &str) -> Poll<'_> {
        let mut state = self.state();
        let own = Arc::new(Notify::new());
        let id = state.next_poll;
        state.next_poll += 1;
        let (member, notify) = match state.waiting.get_key_value(member_id) {
            Some((key, w)) => (key.clone(), w.notify.clone()),
            None => (Arc::from(member_id), Arc::new(Notify::new())),
        };
        state
            .waiting
            .entry(member.clone())
            .or_insert_with(|| Waiting {
                notify: notify.clone(),
                polls: 0,
            })
            .polls += 1;
        let device: Arc<str> = match state.polls.get_key_value(device_id) {
            Some((key, _)) => key.clone(),
            None => Arc::from(device_id),
        };
        let polls = state.polls.entry(device.clone()).or_default();
        polls.push_back((id, own.clone()));
        while polls.len() > self.per_device {
            if let Some((_, oldest)) = polls.pop_front() {
                // A stored permit: the oldest poll sees it even if it is not waiting right now.
                oldest.notify_one();
            }
        }
        Poll {
            live: self,
            member,
            device,
            id,
            notify,
            own,
        }
    }

    /// The sequence number a member changed at last, as far as the feed remembers.
    fn last_change(state: &State, member_id: &str) -> u64 {
        state.recent.get(member_id).copied().unwrap_or(state.floor)
    }

    /// Members remembered with their latest change, and members with a poll open (for tests and
    /// benchmarks of the bounds).
    pub fn sizes(&self) -> (usize, usize) {
        let state = self.state();
        (state.recent.len(), state.waiting.len())
    }

    /// Polls open now, over all devices.
    pub fn open_polls(&self) -> usize {
        self.state().polls.values().map(VecDeque::len).sum()
    }
}

/// One open long poll; closed (and forgotten by the feed) when dropped — also when the client
/// went away and the request was cancelled.
pub struct Poll<'a> {
    live: &'a Live,
    member: Arc<str>,
    device: Arc<str>,
    id: u64,
    notify: Arc<Notify>,
    own: Arc<Notify>,
}

impl Poll<'_> {
    /// Waits until the member's documents change after `since`, [`Live::wake_all`] is called (or
    /// was, since `wakes_seen` was read), a newer poll of the device takes this one's place, the
    /// feed closes, or `deadline` passes.
    pub async fn wait(&self, since: u64, wakes_seen: u64, deadline: Instant) -> Wait {
        let live = self.live;
        // Every future is created before the condition it stands for is checked: a wake-up
        // between the check and the `select!` below is kept by the future, not lost.
        let everyone = live.everyone.notified();
        let superseded = self.own.notified();
        tokio::pin!(superseded);
        if superseded.as_mut().enable() {
            // Enabling consumed the permit: hand it back so a later wait also sees it.
            self.own.notify_one();
            return Wait::Superseded;
        }
        if live.closing.load(Ordering::SeqCst) {
            return self.settle(since);
        }
        if live.wakes() != wakes_seen {
            return Wait::Woken;
        }
        let changed = {
            let state = live.state();
            let last = Live::last_change(&state, &self.member);
            if last > since {
                return Wait::Changed(last);
            }
            // Created under the lock a change takes to notify: no change slips in between.
            self.notify.notified()
        };
        tokio::select! {
            biased;
            _ = superseded => {
                self.own.notify_one();
                Wait::Superseded
            }
            _ = changed => self.settle(since),
            _ = everyone => {
                if live.closing.load(Ordering::SeqCst) {
                    self.settle(since)
                } else {
                    Wait::Woken
                }
            }
            _ = tokio::time::sleep_until(deadline) => self.settle(since),
        }
    }

    /// How the wait ends when it stops now: [`Wait::Changed`] if the member changed after `since`
    /// (also when the change and the deadline come together), else [`Wait::TimedOut`] with the
    /// feed's current number — read under the lock changes are recorded under, so no change of
    /// this member at or below it can still be on its way.
    fn settle(&self, since: u64) -> Wait {
        let state = self.live.state();
        let last = Live::last_change(&state, &self.member);
        if last > since {
            Wait::Changed(last)
        } else {
            Wait::TimedOut(since.max(self.live.seq.load(Ordering::SeqCst)))
        }
    }
}

impl Drop for Poll<'_> {
    fn drop(&mut self) {
        let mut state = self.live.state();
        if let Some(waiting) = state.waiting.get_mut(&self.member) {
            waiting.polls = waiting.polls.saturating_sub(1);
            if waiting.polls == 0 {
                state.waiting.remove(&self.member);
            }
        }
        if let Some(polls) = state.polls.get_mut(&self.device) {
            polls.retain(|(id, _)| *id != self.id);
            if polls.is_empty() {
                state.polls.remove(&self.device);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn far() -> Instant {
        Instant::now() + Duration::from_secs(3600)
    }

    #[tokio::test(start_paused = true)]
    async fn a_change_wakes_its_own_members_poll_and_no_other() {
        let live = Live::new(1000, 2, 16);
        let a = live.open("mbr_a", "dev_a");
        let b = live.open("mbr_b", "dev_b");
        let deadline = Instant::now() + Duration::from_secs(25);
        let (wa, wb, ()) = tokio::join!(
            a.wait(1000, 0, deadline),
            b.wait(1000, 0, deadline),
            async {
                tokio::task::yield_now().await;
                live.notify("mbr_a");
            }
        );
        assert_eq!(wa, Wait::Changed(1001));
        // B slept to its deadline (paused time: no real wait) and answers from the current number.
        assert_eq!(wb, Wait::TimedOut(1001));
    }

    #[tokio::test]
    async fn a_change_before_the_wait_is_seen_and_polling_from_the_answer_waits() {
        let live = Live::new(0, 2, 16);
        live.notify("mbr_a");
        let poll = live.open("mbr_a", "dev_a");
        assert_eq!(poll.wait(0, 0, far()).await, Wait::Changed(1));
        let soon = Instant::now() + Duration::from_millis(1);
        assert_eq!(poll.wait(1, 0, soon).await, Wait::TimedOut(1));
    }

    #[tokio::test]
    async fn a_wake_all_between_the_check_and_the_wait_is_not_lost() {
        let live = Live::new(0, 2, 16);
        let poll = live.open("mbr_a", "dev_a");
        let seen = live.wakes();
        live.wake_all();
        assert_eq!(poll.wait(0, seen, far()).await, Wait::Woken);
    }

    #[tokio::test]
    async fn the_memory_of_changes_is_bounded_and_a_forgotten_member_is_told_once() {
        let live = Live::new(0, 2, 16);
        for i in 0..1_000 {
            live.notify(&format!("mbr_{i}"));
        }
        assert!(live.sizes().0 <= 16, "remembered {}", live.sizes().0);
        // mbr_0 changed at 1 and was forgotten: a device that saw nothing since 0 is told.
        let poll = live.open("mbr_0", "dev_0");
        let Wait::Changed(seq) = poll.wait(0, 0, far()).await else {
            panic!("a forgotten change must still be reported");
        };
        // Polling from the answer waits again (nothing of mbr_0 after it).
        let soon = Instant::now() + Duration::from_millis(1);
        assert_eq!(poll.wait(seq, 0, soon).await, Wait::TimedOut(1_000));
        drop(poll);
        assert_eq!(live.sizes().1, 0, "a closed poll is forgotten");
    }

    #[tokio::test]
    async fn a_devices_extra_poll_supersedes_its_oldest() {
        let live = Live::new(0, 2, 16);
        let first = live.open("mbr_a", "dev_a");
        let second = live.open("mbr_a", "dev_a");
        let other = live.open("mbr_a", "dev_b");
        let third = live.open("mbr_a", "dev_a");
        assert_eq!(first.wait(0, 0, far()).await, Wait::Superseded);
        // Still superseded when asked again; the others still wait for a change.
        assert_eq!(first.wait(0, 0, far()).await, Wait::Superseded);
        live.notify("mbr_a");
        for p in [&second, &third, &other] {
            assert_eq!(p.wait(0, 0, far()).await, Wait::Changed(1));
        }
    }

    #[tokio::test]
    async fn close_answers_open_and_later_polls_at_once() {
        let live = Live::new(5, 2, 16);
        let poll = live.open("mbr_a", "dev_a");
        let (waited, ()) = tokio::join!(poll.wait(5, 0, far()), async {
            tokio::task::yield_now().await;
            live.close();
        });
        assert_eq!(waited, Wait::TimedOut(5));
        let later = live.open("mbr_b", "dev_b");
        assert_eq!(later.wait(5, 0, far()).await, Wait::TimedOut(5));
    }
}
