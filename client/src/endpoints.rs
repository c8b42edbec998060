//! Where requests go: parsing endpoint addresses, opening one tonic
//! [`Channel`] per endpoint, and choosing the endpoint for each attempt.
//!
//! Connecting happens in [`open_channel`] and nowhere else: TLS is decided
//! there. Requests that change state go to the endpoint that answered as
//! the current leader, when one did and it has not failed recently, so the
//! cluster does not forward them; everything else, and those when no endpoint
//! is known to be the leader, is picked round robin. An endpoint that failed
//! recently is skipped while a healthy one remains, and a retry never goes
//! back to the endpoint its previous attempt just failed on unless it is the
//! only one.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use tokio::time::Instant;
use tonic::transport::{Channel, Endpoint, Uri};

use crate::config::ClientConfig;
use crate::error::Error;

/// How long an endpoint that failed is passed over while others are healthy.
pub const ENDPOINT_FAILURE_COOLDOWN: Duration = Duration::from_secs(2);
/// Interval of HTTP/2 keep-alive pings, to notice a dead connection.
pub const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(10);
/// How long a keep-alive ping may go unanswered before the connection is dropped.
pub const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest endpoint address accepted.
pub const MAX_ENDPOINT_LEN: usize = 1024;

/// Turns `host:port`, `http://host:port` or `https://host:port` into the URI
/// tonic connects to: `https` exactly when the client has TLS settings.
pub(crate) fn parse_endpoint(address: &str, tls: bool) -> Result<Uri, Error> {
    let address = address.trim();
    if address.is_empty() {
        return Err(Error::Config("empty endpoint address".into()));
    }
    if address.len() > MAX_ENDPOINT_LEN {
        return Err(Error::Config(format!(
            "endpoint address longer than {MAX_ENDPOINT_LEN} bytes"
        )));
    }
    let with_scheme = match (address.split_once("://"), tls) {
        (None, false) => format!("http://{address}"),
        (None, true) => format!("https://{address}"),
        (Some(("http", _)), false) | (Some(("https", _)), true) => address.to_string(),
        (Some(("http", _)), true) => {
            return Err(Error::Config(format!(
                "endpoint '{address}' is plaintext but TLS is configured: use host:port or https://host:port"
            )));
        }
        (Some(("https", _)), false) => {
            return Err(Error::Config(format!(
                "endpoint '{address}' needs TLS: give the cluster's CA certificate"
            )));
        }
        (Some((scheme, _)), _) => {
            return Err(Error::Config(format!(
                "endpoint '{address}': unsupported scheme '{scheme}', use host:port"
            )));
        }
    };
    let uri: Uri = with_scheme
        .parse()
        .map_err(|error| Error::Config(format!("endpoint '{address}': {error}")))?;
    let has_host = uri.host().is_some_and(|host| !host.is_empty());
    if !has_host || uri.port_u16().is_none() {
        return Err(Error::Config(format!("endpoint '{address}': expected host:port")));
    }
    let has_path = uri.path_and_query().is_some_and(|path| path.as_str() != "/");
    if has_path {
        return Err(Error::Config(format!(
            "endpoint '{address}': a path or query is not allowed"
        )));
    }
    Ok(uri)
}

/// Opens a lazy channel to one endpoint: the connection is made on first use
/// and remade after it breaks. The one place connection settings and TLS are
/// decided.
pub(crate) fn open_channel(uri: Uri, config: &ClientConfig) -> Result<Channel, Error> {
    let mut endpoint = Endpoint::from(uri)
        .connect_timeout(config.connect_timeout)
        .tcp_nodelay(true)
        .http2_keep_alive_interval(KEEPALIVE_INTERVAL)
        .keep_alive_timeout(KEEPALIVE_TIMEOUT);
    if let Some(tls) = &config.tls {
        endpoint = endpoint
            .tls_config(tls.tonic_config())
            .map_err(|e| Error::Config(format!("TLS settings: {e}")))?;
    }
    Ok(endpoint.connect_lazy())
}

/// One endpoint: the address as the caller wrote it, and its channel.
#[derive(Debug)]
struct Slot {
    address: String,
    channel: Channel,
}

/// The endpoints of one client and the choice among them.
#[derive(Debug)]
pub(crate) struct EndpointSet {
    slots: Vec<Slot>,
    picker: Picker,
    /// Per endpoint: the node id its latest answer came from; 0 until one came.
    answered_as: Vec<AtomicU64>,
}

impl EndpointSet {
    /// Parses every configured endpoint and opens a lazy channel to each.
    pub(crate) fn open(config: &ClientConfig) -> Result<Self, Error> {
        let slots = config
            .endpoints
            .iter()
            .map(|address| {
                let uri = parse_endpoint(address, config.tls.is_some())?;
                Ok(Slot {
                    address: address.trim().to_string(),
                    channel: open_channel(uri, config)?,
                })
            })
            .collect::<Result<Vec<_>, Error>>()?;
        Ok(Self::from_slots(slots))
    }

    /// Uses channels the caller built (one per configured endpoint, in order),
    /// for transports this module does not know, such as a simulated network.
    pub(crate) fn from_channels(config: &ClientConfig, channels: Vec<Channel>) -> Result<Self, Error> {
        if channels.len() != config.endpoints.len() {
            return Err(Error::Config(format!(
                "{} channels given for {} endpoints",
                channels.len(),
                config.endpoints.len()
            )));
        }
        let slots: Vec<Slot> = config
            .endpoints
            .iter()
            .zip(channels)
            .map(|(address, channel)| Slot {
                address: address.trim().to_string(),
                channel,
            })
            .collect();
        Ok(Self::from_slots(slots))
    }

    fn from_slots(slots: Vec<Slot>) -> Self {
        let picker = Picker::new(slots.len());
        let answered_as = (0..slots.len()).map(|_| AtomicU64::new(0)).collect();
        Self {
            slots,
            picker,
            answered_as,
        }
    }

    /// The index of the endpoint for the next attempt, never `avoid` unless it is the only one.
    pub(crate) fn pick(&self, avoid: Option<usize>) -> usize {
        self.picker.pick(avoid, Instant::now())
    }

    /// The endpoint whose latest answer came from node `leader`, unless it is
    /// `avoid` or failed recently; `None` sends the caller to [`Self::pick`].
    pub(crate) fn leader(&self, leader: u64, avoid: Option<usize>) -> Option<usize> {
        if leader == 0 {
            return None;
        }
        let now = Instant::now();
        (0..self.slots.len()).find(|&index| {
            Some(index) != avoid
                && self.answered_as[index].load(Ordering::Relaxed) == leader
                && !self.picker.cooling_down(index, now)
        })
    }

    /// Notes that endpoint `index` answered as node `node_id` (0: not said).
    pub(crate) fn note_answered_as(&self, index: usize, node_id: u64) {
        if node_id != 0 {
            self.answered_as[index].store(node_id, Ordering::Relaxed);
        }
    }

    /// A handle to the channel of endpoint `index`.
    pub(crate) fn channel(&self, index: usize) -> Channel {
        self.slots[index].channel.clone()
    }

    /// The address of endpoint `index` as configured.
    pub(crate) fn address(&self, index: usize) -> &str {
        &self.slots[index].address
    }

    /// Notes that an attempt on endpoint `index` failed in a way that suggests moving on.
    pub(crate) fn mark_failed(&self, index: usize) {
        self.picker.mark_failed(index, Instant::now());
    }

    /// Notes that endpoint `index` answered.
    pub(crate) fn mark_healthy(&self, index: usize) {
        self.picker.mark_healthy(index);
    }
}

/// Round-robin choice that passes over recently failed endpoints.
#[derive(Debug)]
struct Picker {
    cursor: AtomicUsize,
    /// Per endpoint: milliseconds after `epoch` of its last failure, plus one; zero when healthy.
    failed_at_ms: Vec<AtomicU64>,
    epoch: Instant,
}

impl Picker {
    fn new(count: usize) -> Self {
        Self {
            cursor: AtomicUsize::new(0),
            failed_at_ms: (0..count).map(|_| AtomicU64::new(0)).collect(),
            epoch: Instant::now(),
        }
    }

    fn millis_since_epoch(&self, now: Instant) -> u64 {
        u64::try_from(now.saturating_duration_since(self.epoch).as_millis()).unwrap_or(u64::MAX)
    }

    fn cooling_down(&self, index: usize, now: Instant) -> bool {
        let stamp = self.failed_at_ms[index].load(Ordering::Relaxed);
        if stamp == 0 {
            return false;
        }
        let failed_at = stamp - 1;
        let cooldown_ms = ENDPOINT_FAILURE_COOLDOWN.as_millis() as u64;
        self.millis_since_epoch(now).saturating_sub(failed_at) < cooldown_ms
    }

    fn pick(&self, avoid: Option<usize>, now: Instant) -> usize {
        let count = self.failed_at_ms.len();
        if count <= 1 {
            return 0;
        }
        let start = self.cursor.fetch_add(1, Ordering::Relaxed) % count;
        let candidates = || (0..count).map(|offset| (start + offset) % count);
        candidates()
            .find(|index| Some(*index) != avoid && !self.cooling_down(*index, now))
            .or_else(|| candidates().find(|index| Some(*index) != avoid))
            .unwrap_or(start)
    }

    fn mark_failed(&self, index: usize, now: Instant) {
        let stamp = self.millis_since_epoch(now).saturating_add(1);
        self.failed_at_ms[index].store(stamp, Ordering::Relaxed);
    }

    fn mark_healthy(&self, index: usize) {
        self.failed_at_ms[index].store(0, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_port_gets_an_http_scheme() {
        let uri = parse_endpoint("127.0.0.1:7101", false).expect("valid endpoint");
        assert_eq!(uri.scheme_str(), Some("http"));
        assert_eq!(uri.port_u16(), Some(7101));
        let uri = parse_endpoint(" http://node-a.internal:7101 ", false).expect("valid endpoint");
        assert_eq!(uri.host(), Some("node-a.internal"));
        assert_eq!(uri.port_u16(), Some(7101));
        assert!(parse_endpoint("[::1]:7101", false).is_ok());
    }

    #[test]
    fn with_tls_host_port_gets_an_https_scheme_and_plaintext_is_refused() {
        let uri = parse_endpoint("127.0.0.1:7101", true).expect("valid endpoint");
        assert_eq!(uri.scheme_str(), Some("https"));
        assert!(parse_endpoint("https://node-a.internal:7101", true).is_ok());
        assert!(matches!(parse_endpoint("http://a:1", true), Err(Error::Config(_))));
        assert!(matches!(parse_endpoint("https://a:1", false), Err(Error::Config(_))));
    }

    #[test]
    fn malformed_endpoints_are_config_errors() {
        for bad in ["", "127.0.0.1", "ftp://a:1", "http://a:1/path", "a b:1"] {
            for tls in [false, true] {
                assert!(
                    matches!(parse_endpoint(bad, tls), Err(Error::Config(_))),
                    "{bad:?} was accepted"
                );
            }
        }
    }

    #[test]
    fn picks_round_robin_when_all_are_healthy() {
        let picker = Picker::new(3);
        let now = Instant::now();
        let picks: Vec<usize> = (0..6).map(|_| picker.pick(None, now)).collect();
        assert_eq!(picks, [0, 1, 2, 0, 1, 2]);
    }

    #[test]
    fn never_retries_on_the_endpoint_that_just_failed() {
        let picker = Picker::new(2);
        let now = Instant::now();
        for _ in 0..10 {
            assert_eq!(picker.pick(Some(0), now), 1);
        }
    }

    #[test]
    fn skips_recently_failed_endpoints_until_the_cooldown_ends() {
        let picker = Picker::new(3);
        let now = Instant::now();
        picker.mark_failed(1, now);
        let picks: Vec<usize> = (0..4).map(|_| picker.pick(None, now)).collect();
        assert!(!picks.contains(&1), "{picks:?}");

        let later = now + ENDPOINT_FAILURE_COOLDOWN + Duration::from_millis(1);
        let picks: Vec<usize> = (0..3).map(|_| picker.pick(None, later)).collect();
        assert!(picks.contains(&1), "{picks:?}");
    }

    #[test]
    fn falls_back_to_failed_endpoints_when_all_failed() {
        let picker = Picker::new(3);
        let now = Instant::now();
        for index in 0..3 {
            picker.mark_failed(index, now);
        }
        let picks: Vec<usize> = (0..3).map(|_| picker.pick(Some(2), now)).collect();
        assert!(!picks.contains(&2), "{picks:?}");
        picker.mark_healthy(2);
        assert_eq!(picker.pick(Some(0), now), 2);
    }

    #[test]
    fn a_single_endpoint_is_always_chosen() {
        let picker = Picker::new(1);
        assert_eq!(picker.pick(Some(0), Instant::now()), 0);
    }

    #[tokio::test]
    async fn the_leader_is_the_endpoint_that_answered_as_it_unless_it_failed_or_is_avoided() {
        let config = ClientConfig::new(["127.0.0.1:7101", "127.0.0.1:7102", "127.0.0.1:7103"]);
        let set = EndpointSet::open(&config).expect("valid endpoints");
        assert_eq!(set.leader(2, None), None, "no endpoint has answered yet");
        set.note_answered_as(0, 1);
        set.note_answered_as(1, 2);
        set.note_answered_as(2, 0);
        assert_eq!(set.leader(2, None), Some(1));
        assert_eq!(set.leader(0, None), None, "0 is no node");
        assert_eq!(set.leader(3, None), None);
        assert_eq!(
            set.leader(2, Some(1)),
            None,
            "a retry leaves the endpoint that just failed"
        );
        set.mark_failed(1);
        assert_eq!(set.leader(2, None), None, "a failed leader endpoint cools down first");
        set.mark_healthy(1);
        // Behind a load balancer an endpoint answers as whichever node it reached last.
        set.note_answered_as(1, 3);
        assert_eq!(set.leader(2, None), None);
        assert_eq!(set.leader(3, None), Some(1));
    }
}
