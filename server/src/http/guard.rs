//! Rate limits per client address: enrollment attempts, and failed authentications. Both answer
//! `429 too_many_attempts` with `Retry-After`; both are checked before a request's body is read.
//!
//! - **Enrollment**: every attempt counts, right or wrong (an activation code is the only secret
//!   an unauthenticated caller can guess at), `enroll_per_minute` per address.
//! - **Failed authentication**: wrong, missing or malformed credentials count. Once an address has
//!   spent its `auth_failures_per_minute`, it is *blocked*: every request from it that needs
//!   credentials is answered 429 without its credentials being looked at — otherwise a guesser
//!   would keep trying at full speed and only the wrong guesses would be slowed. The block lasts
//!   until the budget has one failure to spare again, so guessing proceeds at the budget's pace.
//!
//! The buckets are [`governor`]'s (GCRA, one small state per address); addresses whose bucket is
//! full again are forgotten by [`Guard::housekeeping`], so memory follows the addresses active in
//! the last minute. IPv6 clients are keyed by their /64 (one subscriber's usual allocation), so a
//! client cannot dodge the limit by rotating addresses within it.
//!
//! The guard is the HTTP layer's own state: the router puts it in every request's extensions,
//! where the extractors find it, and `App` knows nothing of it.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::StatusCode;
use axum::http::request::Parts;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::config::EdgeConfig;
use crate::http::error::ApiError;

pub struct Guard {
    enroll: Option<DefaultKeyedRateLimiter<IpAddr>>,
    failures: Option<DefaultKeyedRateLimiter<IpAddr>>,
    /// Addresses that spent their failure budget, and until when they are refused.
    blocked: Mutex<HashMap<IpAddr, Instant>>,
    trusted_proxies: Vec<IpAddr>,
    clock: DefaultClock,
}

/// A per-minute budget, all of it usable at once; `None` for 0 (no limit).
fn per_minute(n: u32) -> Option<DefaultKeyedRateLimiter<IpAddr>> {
    NonZeroU32::new(n).map(|n| RateLimiter::keyed(Quota::per_minute(n)))
}

impl Guard {
    /// The per-address limits that [`crate::http::router`] puts in every request's extensions
    /// (they are the HTTP layer's state, not the domain's).
    pub fn of(parts: &Parts) -> Result<Arc<Guard>, ApiError> {
        parts
            .extensions
            .get::<Arc<Guard>>()
            .cloned()
            .ok_or_else(|| {
                ApiError::internal("reading the request", "no rate-limit guard installed")
            })
    }

    pub fn new(config: &EdgeConfig) -> Self {
        Self {
            enroll: per_minute(config.enroll_per_minute),
            failures: per_minute(config.auth_failures_per_minute),
            blocked: Mutex::new(HashMap::new()),
            trusted_proxies: config.trusted_proxies.clone(),
            clock: DefaultClock::default(),
        }
    }

    /// The client's address as the limits key it: the TCP peer, or the last `X-Forwarded-For`
    /// entry when the peer is a trusted proxy. `None` when the router runs without the server's
    /// accept loop (no peer address recorded): no limit applies then.
    pub fn client(&self, parts: &Parts) -> Option<IpAddr> {
        let ConnectInfo(peer) = parts.extensions.get::<ConnectInfo<SocketAddr>>()?;
        let peer = peer.ip();
        let forwarded = || {
            let header = parts
                .headers
                .get_all("x-forwarded-for")
                .iter()
                .next_back()?;
            let last = header.to_str().ok()?.rsplit(',').next()?.trim();
            last.parse::<IpAddr>().ok()
        };
        let client = if self.trusted_proxies.contains(&peer) {
            forwarded().unwrap_or(peer)
        } else {
            peer
        };
        Some(key(client))
    }

    /// Counts an enrollment attempt from `client`, or refuses it.
    pub fn enroll_attempt(&self, client: Option<IpAddr>) -> Result<(), ApiError> {
        let (Some(limiter), Some(client)) = (&self.enroll, client) else {
            return Ok(());
        };
        limiter.check_key(&client).map_err(|not_until| {
            too_many(
                not_until.wait_time_from(self.clock.now()),
                "too many enrollment attempts from this address",
            )
        })
    }

    /// Refuses a request that needs credentials while its address is blocked.
    pub fn admit(&self, client: Option<IpAddr>) -> Result<(), ApiError> {
        let Some(client) = client else {
            return Ok(());
        };
        let mut blocked = self.blocked.lock().unwrap_or_else(|p| p.into_inner());
        let Some(until) = blocked.get(&client).copied() else {
            return Ok(());
        };
        let now = Instant::now();
        if until <= now {
            blocked.remove(&client);
            return Ok(());
        }
        Err(too_many(until - now, BLOCKED))
    }

    /// Counts a failed authentication from `client`, and blocks it once its budget is spent.
    /// Returns the answer for the request: `refusal` itself, or 429 when this failure spent the
    /// budget.
    pub fn failed(&self, client: Option<IpAddr>, refusal: ApiError) -> ApiError {
        let (Some(limiter), Some(client)) = (&self.failures, client) else {
            return refusal;
        };
        match limiter.check_key(&client) {
            Ok(()) => refusal,
            Err(not_until) => {
                let wait = not_until.wait_time_from(self.clock.now());
                tracing::warn!(%client, "authentication failures over the limit; address blocked");
                self.blocked
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(client, Instant::now() + wait);
                too_many(wait, BLOCKED)
            }
        }
    }

    /// Forgets addresses whose buckets are full again and blocks that are over. The server runs
    /// it every minute.
    pub fn housekeeping(&self) {
        for limiter in [&self.enroll, &self.failures].into_iter().flatten() {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
        let now = Instant::now();
        let mut blocked = self.blocked.lock().unwrap_or_else(|p| p.into_inner());
        blocked.retain(|_, until| *until > now);
        blocked.shrink_to_fit();
    }
}

const BLOCKED: &str = "too many failed authentications from this address";

/// `429 too_many_attempts`, with `Retry-After` in whole seconds (at least one).
fn too_many(wait: Duration, message: &str) -> ApiError {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        "too_many_attempts",
        format!("{message}; retry in {} s", secs.max(1)),
    )
    .with_retry_after(secs.max(1))
}

/// The key of an address: itself for IPv4 (also written as IPv4-mapped IPv6), its /64 for IPv6.
fn key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

/// An unauthenticated request that presents a credential of its own in its body (a console
/// login's token, a provider's signed receipt): refused at once while its address is blocked, and
/// a wrong credential ([`Attempt::failed`]) counted against it, as a wrong bearer token is.
pub struct Attempt {
    guard: Arc<Guard>,
    client: Option<IpAddr>,
}

impl Attempt {
    /// The answer for a failed attempt: `refusal`, counted when it is a `401`.
    pub fn failed(&self, refusal: ApiError) -> ApiError {
        if refusal.status == StatusCode::UNAUTHORIZED {
            self.guard.failed(self.client, refusal)
        } else {
            refusal
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Attempt {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let guard = Guard::of(parts)?;
        let client = guard.client(parts);
        guard.admit(client)?;
        Ok(Attempt { guard, client })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(enroll: u32, failures: u32) -> EdgeConfig {
        EdgeConfig {
            enroll_per_minute: enroll,
            auth_failures_per_minute: failures,
            ..EdgeConfig::default()
        }
    }

    fn ip(s: &str) -> Option<IpAddr> {
        Some(key(s.parse().unwrap()))
    }

    #[test]
    fn enrollment_attempts_beyond_the_budget_are_refused_per_address() {
        let guard = Guard::new(&config(3, 0));
        for _ in 0..3 {
            guard.enroll_attempt(ip("10.0.0.1")).unwrap();
        }
        let refused = guard.enroll_attempt(ip("10.0.0.1")).unwrap_err();
        assert_eq!(
            (refused.status, refused.code),
            (StatusCode::TOO_MANY_REQUESTS, "too_many_attempts")
        );
        assert!(refused.retry_after.is_some_and(|s| (1..=20).contains(&s)));
        guard.enroll_attempt(ip("10.0.0.2")).unwrap();
    }

    #[test]
    fn an_address_that_spent_its_failures_is_blocked_even_with_good_credentials() {
        let guard = Guard::new(&config(0, 2));
        let client = ip("10.0.0.1");
        let wrong = || ApiError::unauthorized("wrong");
        for _ in 0..2 {
            guard.admit(client).unwrap();
            assert_eq!(guard.failed(client, wrong()).code, "unauthorized");
        }
        assert_eq!(guard.failed(client, wrong()).code, "too_many_attempts");
        // Now refused before its credentials are even looked at.
        assert_eq!(guard.admit(client).unwrap_err().code, "too_many_attempts");
        guard.admit(ip("10.0.0.2")).unwrap();
        guard.housekeeping();
        assert_eq!(guard.admit(client).unwrap_err().code, "too_many_attempts");
    }

    #[test]
    fn ipv6_clients_share_their_slash_64_and_mapped_ipv4_is_ipv4() {
        assert_eq!(ip("2001:db8:1:2:aaaa::1"), ip("2001:db8:1:2:bbbb::2"));
        assert_ne!(ip("2001:db8:1:2::1"), ip("2001:db8:1:3::1"));
        assert_eq!(ip("::ffff:10.0.0.1"), ip("10.0.0.1"));
    }

    fn parts(peer: &str, forwarded: Option<&str>) -> Parts {
        let mut request = axum::http::Request::builder();
        if let Some(f) = forwarded {
            request = request.header("x-forwarded-for", f);
        }
        let mut parts = request.body(()).unwrap().into_parts().0;
        let peer: SocketAddr = peer.parse().unwrap();
        parts.extensions.insert(ConnectInfo(peer));
        parts
    }

    #[test]
    fn forwarded_for_is_believed_from_trusted_proxies_only() {
        let guard = Guard::new(&EdgeConfig {
            trusted_proxies: vec!["10.9.9.9".parse().unwrap()],
            ..EdgeConfig::default()
        });
        let via_proxy = parts("10.9.9.9:4000", Some("203.0.113.7, 198.51.100.2"));
        assert_eq!(guard.client(&via_proxy), ip("198.51.100.2"));
        let spoofed = parts("203.0.113.50:4000", Some("198.51.100.2"));
        assert_eq!(guard.client(&spoofed), ip("203.0.113.50"));
        let proxy_without_header = parts("10.9.9.9:4000", None);
        assert_eq!(guard.client(&proxy_without_header), ip("10.9.9.9"));
        assert_eq!(
            guard.client(&axum::http::Request::new(()).into_parts().0),
            None
        );
    }

    #[test]
    fn no_limit_when_set_to_zero_or_without_a_peer_address() {
        let guard = Guard::new(&config(0, 0));
        for _ in 0..100 {
            guard.enroll_attempt(ip("10.0.0.1")).unwrap();
            assert_eq!(
                guard
                    .failed(ip("10.0.0.1"), ApiError::unauthorized("x"))
                    .code,
                "unauthorized"
            );
        }
        let guard = Guard::new(&config(1, 1));
        for _ in 0..10 {
            guard.enroll_attempt(None).unwrap();
        }
    }
}
