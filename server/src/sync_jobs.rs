//! The bound on expensive sync work running at once; it sits beside [`crate::locks`], below the
//! services that take a permit and the [`crate::app::App`] that holds it. Answering a sync is
//! Automerge work on the blocking pool — loading the member's documents, applying what the device sent, saving — and
//! each job's memory is bounded by the request budgets (`loyalty_core::budget`), but not how many
//! run together: a burst of heavy requests would take the memory of all of them at once. Jobs
//! take a permit first, so a burst queues (each request waits for its turn, holding only its
//! body) instead.
//!
//! The counters say what the bound did: jobs running now, the most that ever ran at once, and how
//! many had to wait. They are what the tests check, and what an operator would graph.

use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::{AcquireError, Semaphore, SemaphorePermit};

pub struct SyncJobs {
    permits: Semaphore,
    limit: usize,
    running: AtomicUsize,
    peak: AtomicUsize,
    waiting: AtomicUsize,
    waited: AtomicUsize,
}

/// A running job; dropping it frees its place.
pub struct Job<'a> {
    jobs: &'a SyncJobs,
    _permit: SemaphorePermit<'a>,
}

impl Drop for Job<'_> {
    fn drop(&mut self) {
        self.jobs.running.fetch_sub(1, Ordering::SeqCst);
    }
}

/// One job waiting for a place, for as long as it lives.
struct Waiting<'a>(&'a AtomicUsize);

impl<'a> Waiting<'a> {
    fn new(count: &'a AtomicUsize) -> Self {
        count.fetch_add(1, Ordering::SeqCst);
        Self(count)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl SyncJobs {
    /// At most `limit` jobs at once (at least one).
    pub fn new(limit: usize) -> Self {
        let limit = limit.max(1);
        Self {
            permits: Semaphore::new(limit),
            limit,
            running: AtomicUsize::new(0),
            peak: AtomicUsize::new(0),
            waiting: AtomicUsize::new(0),
            waited: AtomicUsize::new(0),
        }
    }

    /// Waits for a place, then holds it until the returned [`Job`] is dropped. Fails only if
    /// the semaphore was closed, which nothing does.
    pub async fn start(&self) -> Result<Job<'_>, AcquireError> {
        let permit = match self.permits.try_acquire() {
            Ok(p) => p,
            Err(_) => {
                self.waited.fetch_add(1, Ordering::SeqCst);
                // Counted down on drop: a request whose client went away is dropped mid-wait.
                let _waiting = Waiting::new(&self.waiting);
                self.permits.acquire().await?
            }
        };
        let now = self.running.fetch_add(1, Ordering::SeqCst) + 1;
        self.peak.fetch_max(now, Ordering::SeqCst);
        Ok(Job {
            jobs: self,
            _permit: permit,
        })
    }

    pub fn limit(&self) -> usize {
        self.limit
    }

    pub fn running(&self) -> usize {
        self.running.load(Ordering::SeqCst)
    }

    /// The most jobs that ever ran at once.
    pub fn peak(&self) -> usize {
        self.peak.load(Ordering::SeqCst)
    }

    /// Jobs waiting for a place now.
    pub fn waiting(&self) -> usize {
        self.waiting.load(Ordering::SeqCst)
    }

    /// Jobs that had to wait, since the start.
    pub fn waited(&self) -> usize {
        self.waited.load(Ordering::SeqCst)
    }

    /// Takes every place (for tests that need the queue to fill deterministically); the places
    /// come back when the returned permit is dropped.
    #[doc(hidden)]
    pub async fn hold_all(&self) -> Result<SemaphorePermit<'_>, AcquireError> {
        let all = u32::try_from(self.limit).unwrap_or(u32::MAX);
        self.permits.acquire_many(all).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn jobs_over_the_limit_wait_and_the_counters_say_so() {
        let jobs = std::sync::Arc::new(SyncJobs::new(2));
        let a = jobs.start().await.unwrap();
        let b = jobs.start().await.unwrap();
        assert_eq!((jobs.running(), jobs.waiting()), (2, 0));
        let third = {
            let jobs = jobs.clone();
            tokio::spawn(async move {
                let _job = jobs.start().await.unwrap();
                jobs.running()
            })
        };
        while jobs.waiting() == 0 {
            tokio::task::yield_now().await;
        }
        assert_eq!(jobs.running(), 2);
        drop(a);
        assert_eq!(third.await.unwrap(), 2);
        drop(b);
        assert_eq!((jobs.running(), jobs.peak(), jobs.waited()), (0, 2, 1));
    }

    #[tokio::test]
    async fn a_job_given_up_while_waiting_is_no_longer_counted_as_waiting() {
        let jobs = SyncJobs::new(1);
        let held = jobs.start().await.unwrap();
        {
            let mut waiter = Box::pin(jobs.start());
            let pending = std::future::poll_fn(|cx| {
                std::task::Poll::Ready(waiter.as_mut().poll(cx).is_pending())
            })
            .await;
            assert!(pending);
            assert_eq!(jobs.waiting(), 1);
        }
        // The request went away mid-wait (its future dropped).
        assert_eq!((jobs.waiting(), jobs.waited()), (0, 1));
        drop(held);
        assert_eq!(jobs.running(), 0);
    }
}
