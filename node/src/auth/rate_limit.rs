//! A token bucket per tenant on each node, so one tenant's burst cannot
//! starve the others; a request over the limit gets `RESOURCE_EXHAUSTED`
//! and may be retried after a backoff. A request is charged only once it is
//! authenticated and authorized, to the caller's own bucket (its key's
//! tenant, or the staff member), never to the tenant it names: a key of one
//! tenant cannot drain another's bucket. Buckets that have refilled (idle
//! callers) are dropped every few thousand checks, so the map holds only
//! callers active since the last sweep.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use governor::clock::{Clock, DefaultClock};
use governor::middleware::NoOpMiddleware;
use governor::state::keyed::DashMapStateStore;
use governor::{Quota, RateLimiter};
use tonic::Status;

use super::Principal;

/// Checks between two sweeps of idle buckets: at most this many buckets are
/// added between sweeps, which bounds the map by the callers active since.
pub const SWEEP_EVERY_CHECKS: u64 = 4_096;

/// Per-caller request limits on one node.
#[derive(Clone)]
pub struct TenantRateLimiter<C: Clock = DefaultClock> {
    buckets: Option<Arc<Buckets<C>>>,
}

struct Buckets<C: Clock> {
    limiter: RateLimiter<String, DashMapStateStore<String>, C, NoOpMiddleware<C::Instant>>,
    checks: AtomicU64,
}

/// The bucket a principal's requests are charged to: its key's tenant, or,
/// for staff, its own (a name no tenant id can take: tenant ids hold no `:`).
pub fn bucket_of(principal: &Principal, requested_tenant: &str) -> String {
    match principal {
        Principal::Tenant { tenant, .. } => tenant.clone(),
        Principal::Operator(_) | Principal::Support(_) => principal.to_string(),
        Principal::Dev => requested_tenant.to_string(),
    }
}

impl TenantRateLimiter {
    /// `per_second` requests a second with bursts of `burst`; 0 turns limiting off.
    pub fn new(per_second: u32, burst: u32) -> Self {
        Self::with_clock(per_second, burst, DefaultClock::default())
    }
}

impl<C: Clock> TenantRateLimiter<C> {
    /// Like `new`, timed by `clock`.
    pub fn with_clock(per_second: u32, burst: u32, clock: C) -> Self {
        let buckets = NonZeroU32::new(per_second).map(|rate| {
            let burst = NonZeroU32::new(burst).unwrap_or(rate);
            let quota = Quota::per_second(rate).allow_burst(burst);
            Arc::new(Buckets {
                limiter: RateLimiter::dashmap_with_clock(quota, clock),
                checks: AtomicU64::new(0),
            })
        });
        Self { buckets }
    }

    /// Takes one token of `bucket` (see `bucket_of`), or refuses.
    pub fn check(&self, bucket: &str) -> Result<(), Status> {
        let Some(buckets) = &self.buckets else {
            return Ok(());
        };
        let checks = buckets.checks.fetch_add(1, Ordering::Relaxed) + 1;
        if checks.is_multiple_of(SWEEP_EVERY_CHECKS) {
            buckets.limiter.retain_recent();
            buckets.limiter.shrink_to_fit();
        }
        buckets.limiter.check_key(&bucket.to_string()).map_err(|_| {
            metrics::counter!(crate::metrics_names::RATE_LIMITED).increment(1);
            Status::resource_exhausted(format!(
                "{bucket:?} is over its request rate on this node; retry after a short backoff"
            ))
        })
    }

    /// Buckets held now (idle ones go at the next sweep).
    pub fn tracked(&self) -> usize {
        self.buckets.as_ref().map_or(0, |b| b.limiter.len())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use governor::clock::FakeRelativeClock;

    use super::*;
    use crate::model::command::ApiKeyRole;

    #[test]
    fn one_tenant_exhausting_its_bucket_leaves_others_untouched() {
        let limiter = TenantRateLimiter::new(1, 3);
        for _ in 0..3 {
            limiter.check("noisy").unwrap();
        }
        let refused = limiter.check("noisy").unwrap_err();
        assert_eq!(refused.code(), tonic::Code::ResourceExhausted);
        limiter.check("quiet").unwrap();
        let unlimited = TenantRateLimiter::new(0, 0);
        for _ in 0..1000 {
            unlimited.check("any").unwrap();
        }
    }

    #[test]
    fn requests_are_charged_to_the_callers_own_bucket() {
        let key = Principal::Tenant {
            tenant: "acme".into(),
            role: ApiKeyRole::Reader,
            key_id: "0123456789abcdef".into(),
            staff_issuer: None,
        };
        assert_eq!(bucket_of(&key, "other"), "acme");
        let support = Principal::Support("help".into());
        assert_eq!(bucket_of(&support, "acme"), "support:help");
        assert_eq!(bucket_of(&Principal::Dev, "acme"), "acme");
    }

    #[test]
    fn idle_buckets_are_swept_and_the_map_stays_bounded() {
        let clock = FakeRelativeClock::default();
        let limiter = TenantRateLimiter::with_clock(10, 10, clock.clone());
        let callers = SWEEP_EVERY_CHECKS * 2;
        for n in 0..callers {
            limiter.check(&format!("tenant-{n}")).unwrap();
            assert!(
                limiter.tracked() as u64 <= SWEEP_EVERY_CHECKS,
                "{} buckets after {n} checks",
                limiter.tracked()
            );
            // Every caller goes idle at once: its bucket refills within a second.
            clock.advance(Duration::from_secs(1));
        }
        // A caller still over its rate keeps its bucket (and its debt) through a sweep.
        let busy = TenantRateLimiter::with_clock(1, 1, FakeRelativeClock::default());
        busy.check("busy").unwrap();
        for n in 1..SWEEP_EVERY_CHECKS {
            let _ = busy.check(if n % 2 == 0 { "busy" } else { "other" });
        }
        assert!(busy.check("busy").is_err(), "a sweep does not forgive a busy caller");
    }
}
