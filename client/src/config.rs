//! What a [`Client`](crate::Client) needs to know before it connects: which
//! nodes (or load balancers) to talk to and how long and how often to try.
//! Every limit has a named default here, and [`ClientConfig::validate`] keeps
//! each one inside a sane bound so a typo cannot make a client retry forever.

use std::time::Duration;

use crate::error::Error;
use crate::tls::{ApiKey, ClientTls};

/// Deadline of one attempt of one request, unless configured otherwise.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// How long connecting to one endpoint may take before the attempt counts as failed.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Attempts of one logical request, the first one included: enough, with the
/// backoff below, to outlast a leader election of a few seconds.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 16;
/// Total time one logical request may spend, attempts and backoff included.
pub const DEFAULT_RETRY_BUDGET: Duration = Duration::from_secs(15);
/// Upper bound of the first backoff before a retry.
pub const DEFAULT_INITIAL_BACKOFF: Duration = Duration::from_millis(25);
/// Upper bound of any single backoff before a retry.
pub const DEFAULT_MAX_BACKOFF: Duration = Duration::from_secs(1);

/// Most endpoints one client accepts.
pub const MAX_ENDPOINTS: usize = 64;
/// Most attempts of one logical request a configuration may ask for.
pub const MAX_ATTEMPTS_LIMIT: u32 = 100;
/// Longest per-request deadline, connect timeout or retry budget a configuration may ask for.
pub const MAX_DURATION_LIMIT: Duration = Duration::from_secs(3600);
/// Longest total retry budget: well inside the time the server remembers a
/// write's result (two minutes), so a late retry is still recognised.
pub const MAX_RETRY_BUDGET: Duration = Duration::from_secs(60);

/// How to reach a safekeep cluster and how hard to try.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientConfig {
    /// Nodes or load balancers, as `host:port` or `http://host:port`.
    pub endpoints: Vec<String>,
    /// Deadline of one attempt (sent to the server as `grpc-timeout` too).
    pub request_timeout: Duration,
    /// Deadline for opening a connection to one endpoint.
    pub connect_timeout: Duration,
    /// Attempts of one logical request, the first one included.
    pub max_attempts: u32,
    /// Total time one logical request may take, all attempts and backoffs included.
    pub retry_budget: Duration,
    /// Upper bound of the first backoff; it doubles with every retry.
    pub initial_backoff: Duration,
    /// Upper bound of any single backoff.
    pub max_backoff: Duration,
    /// TLS settings; `None` connects in plaintext (clusters run with `--insecure-dev` only).
    pub tls: Option<ClientTls>,
    /// The API key sent with every request; operators use a client certificate instead.
    pub api_key: Option<ApiKey>,
    /// Seed of the client id and the retry jitter. Leave it `None` (OS
    /// randomness) outside simulations: two clients with one seed share a
    /// client id, and the server would take one's writes for the other's retries.
    pub rng_seed: Option<u64>,
}

impl ClientConfig {
    /// A configuration for these endpoints with every other setting at its default.
    pub fn new<I, S>(endpoints: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self {
            endpoints: endpoints.into_iter().map(Into::into).collect(),
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            retry_budget: DEFAULT_RETRY_BUDGET,
            initial_backoff: DEFAULT_INITIAL_BACKOFF,
            max_backoff: DEFAULT_MAX_BACKOFF,
            tls: None,
            api_key: None,
            rng_seed: None,
        }
    }

    /// The same configuration with a fixed random seed (simulations only: see `rng_seed`).
    pub fn with_rng_seed(mut self, seed: u64) -> Self {
        self.rng_seed = Some(seed);
        self
    }

    /// The same configuration, sending `api_key` with every request.
    pub fn with_api_key(mut self, api_key: ApiKey) -> Self {
        self.api_key = Some(api_key);
        self
    }

    /// The same configuration over TLS.
    pub fn with_tls(mut self, tls: ClientTls) -> Self {
        self.tls = Some(tls);
        self
    }

    /// Checks every field against its bound; [`Client::connect`](crate::Client::connect) calls it.
    pub fn validate(&self) -> Result<(), Error> {
        if self.endpoints.is_empty() {
            return Err(Error::Config("no endpoints given".into()));
        }
        if self.endpoints.len() > MAX_ENDPOINTS {
            return Err(Error::Config(format!(
                "{} endpoints given, at most {MAX_ENDPOINTS} are allowed",
                self.endpoints.len()
            )));
        }
        if self.max_attempts == 0 || self.max_attempts > MAX_ATTEMPTS_LIMIT {
            return Err(Error::Config(format!(
                "max_attempts must be between 1 and {MAX_ATTEMPTS_LIMIT}, got {}",
                self.max_attempts
            )));
        }
        for (name, value) in [
            ("request_timeout", self.request_timeout),
            ("connect_timeout", self.connect_timeout),
            ("retry_budget", self.retry_budget),
        ] {
            if value.is_zero() || value > MAX_DURATION_LIMIT {
                return Err(Error::Config(format!(
                    "{name} must be above zero and at most {} s, got {value:?}",
                    MAX_DURATION_LIMIT.as_secs()
                )));
            }
        }
        if self.retry_budget > MAX_RETRY_BUDGET {
            return Err(Error::Config(format!(
                "retry_budget must be at most {} s (the server remembers write results for two minutes), got {:?}",
                MAX_RETRY_BUDGET.as_secs(),
                self.retry_budget
            )));
        }
        if self.max_backoff > MAX_DURATION_LIMIT {
            return Err(Error::Config(format!(
                "max_backoff must be at most {} s, got {:?}",
                MAX_DURATION_LIMIT.as_secs(),
                self.max_backoff
            )));
        }
        if self.api_key.is_some() && self.tls.is_none() {
            return Err(Error::Config(
                "an API key is sent only over TLS: give the cluster's CA certificate".into(),
            ));
        }
        if self.initial_backoff > self.max_backoff {
            return Err(Error::Config(format!(
                "initial_backoff ({:?}) must not exceed max_backoff ({:?})",
                self.initial_backoff, self.max_backoff
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_documented_ones() {
        let config = ClientConfig::new(["127.0.0.1:7101"]);
        assert_eq!(config.request_timeout, Duration::from_secs(5));
        assert_eq!(config.max_attempts, 16);
        assert_eq!(config.retry_budget, Duration::from_secs(15));
        let mut long = config.clone();
        long.retry_budget = Duration::from_secs(61);
        assert!(
            long.validate().is_err(),
            "a retry budget past the server's memory is refused"
        );
        assert_eq!(config.initial_backoff, Duration::from_millis(25));
        assert_eq!(config.max_backoff, Duration::from_secs(1));
        assert!(config.validate().is_ok());
    }

    #[test]
    fn validate_rejects_out_of_bound_settings() {
        let empty = ClientConfig::new(Vec::<String>::new());
        assert!(matches!(empty.validate(), Err(Error::Config(_))));

        let mut zero_attempts = ClientConfig::new(["a:1"]);
        zero_attempts.max_attempts = 0;
        assert!(zero_attempts.validate().is_err());

        let mut zero_timeout = ClientConfig::new(["a:1"]);
        zero_timeout.request_timeout = Duration::ZERO;
        assert!(zero_timeout.validate().is_err());

        let mut inverted_backoff = ClientConfig::new(["a:1"]);
        inverted_backoff.initial_backoff = Duration::from_secs(2);
        assert!(inverted_backoff.validate().is_err());
    }
}
