//! A token bucket per tenant on each node, so one tenant's burst cannot
//! starve the others; a request over the limit gets `RESOURCE_EXHAUSTED`
//! and may be retried after a backoff.

use std::num::NonZeroU32;
use std::sync::Arc;

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use tonic::Status;

/// Per-tenant request limits on one node.
#[derive(Clone)]
pub struct TenantRateLimiter {
    limiter: Option<Arc<DefaultKeyedRateLimiter<String>>>,
}

impl TenantRateLimiter {
    /// `per_second` requests a second with bursts of `burst`; 0 turns limiting off.
    pub fn new(per_second: u32, burst: u32) -> Self {
        let limiter = NonZeroU32::new(per_second).map(|rate| {
            let burst = NonZeroU32::new(burst).unwrap_or(rate);
            Arc::new(RateLimiter::keyed(Quota::per_second(rate).allow_burst(burst)))
        });
        Self { limiter }
    }

    /// Takes one token of `tenant`'s bucket, or refuses.
    pub fn check(&self, tenant: &str) -> Result<(), Status> {
        let Some(limiter) = &self.limiter else {
            return Ok(());
        };
        limiter.check_key(&tenant.to_string()).map_err(|_| {
            Status::resource_exhausted(format!(
                "tenant {tenant:?} is over its request rate on this node; retry after a short backoff"
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
