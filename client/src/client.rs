//! The [`Client`]: typed record and cluster calls over gRPC, with bounded
//! retries across the configured endpoints.
//!
//! Every call runs through [`Client::execute`]: one attempt per endpoint
//! pick (the leader's endpoint first for writes, when known), each under its own deadline, retried per the call's
//! [`RetryPolicy`] with full-jitter backoff until `max_attempts` or the retry
//! budget runs out. Writes take one `WriteId` before the first attempt and
//! send it on every attempt.

use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use safekeep_api::v1;
use safekeep_api::v1::cluster_client::ClusterClient;
use safekeep_api::v1::records_client::RecordsClient;
use tokio::time::Instant;
use tonic::transport::Channel;
use tonic::{Request, Response, Status};

use crate::backoff::Backoff;
use crate::config::ClientConfig;
use crate::endpoints::EndpointSet;
use crate::error::Error;
use crate::retry::{Failure, RetryPolicy};
use crate::types::{
    BatchOp, BatchOutcome, ClusterStatus, Consistency, DeleteOutcome, HasHeader, LeaderHint, ListPage, Member,
    PutOutcome, Record, ResponseHeader,
};
use crate::write_id::WriteIdSource;
use rand::SeedableRng;
use rand::rngs::StdRng;

/// A handle to a safekeep cluster; cheap to clone, and clones share
/// connections, client id and write numbering.
#[derive(Debug, Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    config: ClientConfig,
    endpoints: EndpointSet,
    write_ids: WriteIdSource,
    backoff: Backoff,
    /// Draws retry jitter; seeded by `ClientConfig::rng_seed` when set.
    jitter: Mutex<StdRng>,
    last_header: Mutex<Option<ResponseHeader>>,
    leader_hint: Mutex<Option<LeaderHint>>,
}

impl Client {
    /// Validates `config` and opens a lazy channel per endpoint; nothing is
    /// dialled until the first request. Must be called inside a tokio runtime.
    pub async fn connect(config: ClientConfig) -> Result<Self, Error> {
        config.validate()?;
        let endpoints = EndpointSet::open(&config)?;
        Ok(Self::assemble(config, endpoints))
    }

    /// Like [`Client::connect`], but over channels the caller built, one per
    /// entry of `config.endpoints` and in the same order (the addresses then
    /// only label errors). For transports other than plain TCP, such as a
    /// simulated network in tests.
    pub fn from_channels(config: ClientConfig, channels: Vec<Channel>) -> Result<Self, Error> {
        config.validate()?;
        let endpoints = EndpointSet::from_channels(&config, channels)?;
        Ok(Self::assemble(config, endpoints))
    }

    fn assemble(config: ClientConfig, endpoints: EndpointSet) -> Self {
        let backoff = Backoff::new(config.initial_backoff, config.max_backoff);
        let mut rng = match config.rng_seed {
            Some(seed) => StdRng::seed_from_u64(seed),
            None => StdRng::from_os_rng(),
        };
        Self {
            inner: Arc::new(Inner {
                config,
                endpoints,
                write_ids: WriteIdSource::new(&mut rng),
                backoff,
                jitter: Mutex::new(rng),
                last_header: Mutex::new(None),
                leader_hint: Mutex::new(None),
            }),
        }
    }

    /// The configuration this client runs with.
    pub fn config(&self) -> &ClientConfig {
        &self.inner.config
    }

    /// The random 128-bit hex id every write of this client carries.
    pub fn client_id(&self) -> &str {
        self.inner.write_ids.client_id()
    }

    /// The header of the most recent successful response, if any.
    pub fn last_response_header(&self) -> Option<ResponseHeader> {
        lock(&self.inner.last_header).clone()
    }

    /// The leader most recently named by a response (highest term seen), if any.
    pub fn leader_hint(&self) -> Option<LeaderHint> {
        lock(&self.inner.leader_hint).clone()
    }

    /// Creates or replaces a record unconditionally.
    pub async fn put(&self, tenant: &str, key: &str, value: impl Into<Vec<u8>>) -> Result<PutOutcome, Error> {
        self.put_inner(tenant, key, value.into(), None, None).await
    }

    /// Creates or replaces a record that expires `ttl` after this write
    /// (whole seconds, at least one): the cluster removes it within about a
    /// second after that, unless it is written again first.
    pub async fn put_with_ttl(
        &self,
        tenant: &str,
        key: &str,
        value: impl Into<Vec<u8>>,
        ttl: std::time::Duration,
    ) -> Result<PutOutcome, Error> {
        if ttl.as_secs() == 0 || ttl.subsec_nanos() != 0 {
            return Err(Error::InvalidArgument(format!(
                "a time to live is whole seconds, at least one; got {ttl:?}"
            )));
        }
        self.put_inner(tenant, key, value.into(), None, Some(ttl.as_secs()))
            .await
    }

    /// Creates or replaces a record only if its current version is
    /// `expected_version`; 0 means the record must not exist yet.
    pub async fn put_if(
        &self,
        tenant: &str,
        key: &str,
        value: impl Into<Vec<u8>>,
        expected_version: u64,
    ) -> Result<PutOutcome, Error> {
        self.put_inner(tenant, key, value.into(), Some(expected_version), None)
            .await
    }

    async fn put_inner(
        &self,
        tenant: &str,
        key: &str,
        value: Vec<u8>,
        expected_version: Option<u64>,
        ttl_seconds: Option<u64>,
    ) -> Result<PutOutcome, Error> {
        require_non_empty("tenant", tenant)?;
        require_non_empty("key", key)?;
        // In flight until this write's outcome is handed back.
        let ticket = self.inner.write_ids.next();
        let request = v1::PutRequest {
            tenant: tenant.to_string(),
            key: key.to_string(),
            value,
            expected_version,
            write_id: Some(ticket.id()),
            ttl_seconds,
        };
        let response = self
            .execute(RetryPolicy::Write, |channel, timeout| {
                let request = self.request(request.clone(), timeout);
                async move { records_client(channel).put(request).await }
            })
            .await?;
        Ok(PutOutcome {
            version: response.version,
            updated_at_unix_ms: response.updated_at_unix_ms,
        })
    }

    /// Reads a record with linearizable consistency; `None` when it does not exist.
    pub async fn get(&self, tenant: &str, key: &str) -> Result<Option<Record>, Error> {
        self.get_with(tenant, key, Consistency::Linearizable).await
    }

    /// Reads a record with the given consistency; `None` when it does not exist.
    pub async fn get_with(&self, tenant: &str, key: &str, consistency: Consistency) -> Result<Option<Record>, Error> {
        require_non_empty("tenant", tenant)?;
        require_non_empty("key", key)?;
        let request = v1::GetRequest {
            tenant: tenant.to_string(),
            key: key.to_string(),
            consistency: v1::Consistency::from(consistency).into(),
        };
        let result = self
            .execute(RetryPolicy::Read, |channel, timeout| {
                let request = self.request(request.clone(), timeout);
                async move { records_client(channel).get(request).await }
            })
            .await;
        match result {
            Ok(response) => Ok(response.record.map(Record::from)),
            Err(Error::NotFound) => Ok(None),
            Err(error) => Err(error),
        }
    }

    /// Deletes a record unconditionally; `deleted` is false when it did not exist.
    pub async fn delete(&self, tenant: &str, key: &str) -> Result<DeleteOutcome, Error> {
        self.delete_inner(tenant, key, None).await
    }

    /// Deletes a record only if its current version is `expected_version`.
    pub async fn delete_if(&self, tenant: &str, key: &str, expected_version: u64) -> Result<DeleteOutcome, Error> {
        self.delete_inner(tenant, key, Some(expected_version)).await
    }

    async fn delete_inner(
        &self,
        tenant: &str,
        key: &str,
        expected_version: Option<u64>,
    ) -> Result<DeleteOutcome, Error> {
        require_non_empty("tenant", tenant)?;
        require_non_empty("key", key)?;
        // In flight until this write's outcome is handed back.
        let ticket = self.inner.write_ids.next();
        let request = v1::DeleteRequest {
            tenant: tenant.to_string(),
            key: key.to_string(),
            expected_version,
            write_id: Some(ticket.id()),
        };
        let response = self
            .execute(RetryPolicy::Write, |channel, timeout| {
                let request = self.request(request.clone(), timeout);
                async move { records_client(channel).delete(request).await }
            })
            .await?;
        Ok(DeleteOutcome {
            deleted: response.deleted,
            version: response.version,
        })
    }

    /// One page of a tenant's records in key order: keys starting with
    /// `prefix`, after `page_token` (from the previous page), at most `limit`
    /// records (0: the server's default; the server bounds it).
    pub async fn list(
        &self,
        tenant: &str,
        prefix: &str,
        page_token: Option<&str>,
        limit: u32,
    ) -> Result<ListPage, Error> {
        require_non_empty("tenant", tenant)?;
        let request = v1::ListRequest {
            tenant: tenant.to_string(),
            prefix: prefix.to_string(),
            page_token: page_token.unwrap_or_default().to_string(),
            limit,
            consistency: v1::Consistency::Linearizable.into(),
        };
        let response = self
            .execute(RetryPolicy::Read, |channel, timeout| {
                let request = self.request(request.clone(), timeout);
                async move { records_client(channel).list(request).await }
            })
            .await?;
        Ok(ListPage {
            records: response.records.into_iter().map(Record::from).collect(),
            next_page_token: Some(response.next_page_token).filter(|token| !token.is_empty()),
        })
    }

    /// Applies several puts and deletes of one tenant atomically.
    pub async fn batch(&self, tenant: &str, ops: Vec<BatchOp>) -> Result<BatchOutcome, Error> {
        require_non_empty("tenant", tenant)?;
        // In flight until this write's outcome is handed back.
        let ticket = self.inner.write_ids.next();
        let request = v1::BatchRequest {
            tenant: tenant.to_string(),
            ops: ops.into_iter().map(v1::BatchOp::from).collect(),
            write_id: Some(ticket.id()),
        };
        let response = self
            .execute(RetryPolicy::Write, |channel, timeout| {
                let request = self.request(request.clone(), timeout);
                async move { records_client(channel).batch(request).await }
            })
            .await?;
        Ok(BatchOutcome {
            version: response.version,
            updated_at_unix_ms: response.updated_at_unix_ms,
        })
    }

    /// The cluster's members, leader and progress as the answering node sees them.
    pub async fn status(&self) -> Result<ClusterStatus, Error> {
        let response = self
            .execute(RetryPolicy::Read, |channel, timeout| {
                let request = self.request(v1::StatusRequest {}, timeout);
                async move { ClusterClient::new(channel).status(request).await }
            })
            .await?;
        Ok(ClusterStatus::from(response))
    }

    /// Adds a node that receives the log but does not vote; returns the new membership.
    pub async fn add_learner(
        &self,
        node_id: u64,
        zone: &str,
        peer_address: &str,
        client_address: &str,
    ) -> Result<Vec<Member>, Error> {
        require_non_empty("zone", zone)?;
        require_non_empty("peer address", peer_address)?;
        require_non_empty("client address", client_address)?;
        let request = v1::AddLearnerRequest {
            node_id,
            zone: zone.to_string(),
            peer_address: peer_address.to_string(),
            client_address: client_address.to_string(),
        };
        let response = self
            .execute(RetryPolicy::Membership, |channel, timeout| {
                let request = self.request(request.clone(), timeout);
                async move { ClusterClient::new(channel).add_learner(request).await }
            })
            .await?;
        Ok(members(response))
    }

    /// Makes a learner a voter; `force` accepts a voter set that loses its
    /// quorum when one zone is lost.
    pub async fn promote(&self, node_id: u64, force: bool) -> Result<Vec<Member>, Error> {
        let request = v1::PromoteRequest { node_id, force };
        let response = self
            .execute(RetryPolicy::Membership, |channel, timeout| {
                let request = self.request(request, timeout);
                async move { ClusterClient::new(channel).promote(request).await }
            })
            .await?;
        Ok(members(response))
    }

    /// Removes a voter or learner (its id must never be reused); `force`
    /// accepts a voter set that loses its quorum when one zone is lost.
    pub async fn remove_member(&self, node_id: u64, force: bool) -> Result<Vec<Member>, Error> {
        let request = v1::RemoveMemberRequest { node_id, force };
        let response = self
            .execute(RetryPolicy::Membership, |channel, timeout| {
                let request = self.request(request, timeout);
                async move { ClusterClient::new(channel).remove_member(request).await }
            })
            .await?;
        Ok(members(response))
    }

    /// Swaps voter `old_node_id` for member `new_node_id` (a caught-up
    /// learner) in one joint change; returns the new membership.
    pub async fn replace_voter(&self, old_node_id: u64, new_node_id: u64, force: bool) -> Result<Vec<Member>, Error> {
        let request = v1::ReplaceVoterRequest {
            old_node_id,
            new_node_id,
            force,
        };
        let response = self
            .execute(RetryPolicy::Membership, |channel, timeout| {
                let request = self.request(request, timeout);
                async move { ClusterClient::new(channel).replace_voter(request).await }
            })
            .await?;
        Ok(members(response))
    }

    /// Asks for a full backup now (operators; `reason` goes to the audit log);
    /// returns the log index of the request: a full backup holding at least
    /// that index answers it (see `status().backup.last_full_index`).
    pub async fn backup_now(&self, reason: &str) -> Result<u64, Error> {
        let request = v1::BackupNowRequest {
            wait: false,
            reason: reason.to_string(),
        };
        let response = self
            .execute(RetryPolicy::Membership, |channel, timeout| {
                let request = self.request(request.clone(), timeout);
                async move { ClusterClient::new(channel).backup_now(request).await }
            })
            .await?;
        Ok(response.requested_at_index)
    }

    /// Asks the leader to hand leadership to voter `node_id`; returns who answered.
    pub async fn transfer_leader(&self, node_id: u64) -> Result<ResponseHeader, Error> {
        let request = v1::TransferLeaderRequest { node_id };
        let response = self
            .execute(RetryPolicy::Membership, |channel, timeout| {
                let request = self.request(request, timeout);
                async move { ClusterClient::new(channel).transfer_leader(request).await }
            })
            .await?;
        Ok(response.header.map(Into::into).unwrap_or_default())
    }

    /// Runs `call` until it succeeds, fails for good, or the attempts or the
    /// retry budget run out. `call` gets the channel of the chosen endpoint
    /// and the attempt's deadline, and must send the same request each time.
    /// Wraps a message in a request that carries the attempt's deadline and the API key.
    pub(crate) fn request<M>(&self, message: M, timeout: Duration) -> Request<M> {
        let mut request = self.request_without_deadline(message);
        request.set_timeout(timeout);
        request
    }

    /// Like [`Client::request`], without a deadline: for streams that last
    /// as long as they have data.
    pub(crate) fn request_without_deadline<M>(&self, message: M) -> Request<M> {
        let mut request = Request::new(message);
        if let Some(key) = &self.inner.config.api_key {
            request
                .metadata_mut()
                .insert(safekeep_api::wire::AUTHORIZATION, key.bearer());
        }
        request
    }

    /// The jittered wait before retry `attempt` (1-based).
    pub(crate) fn backoff_delay(&self, attempt: u32) -> Duration {
        let mut jitter = self.inner.jitter.lock().unwrap_or_else(|p| p.into_inner());
        self.inner.backoff.delay(attempt, &mut *jitter)
    }

    pub(crate) async fn execute<T, F, Fut>(&self, policy: RetryPolicy, mut call: F) -> Result<T, Error>
    where
        T: HasHeader,
        F: FnMut(Channel, Duration) -> Fut,
        Fut: Future<Output = Result<Response<T>, Status>>,
    {
        let inner = &self.inner;
        let started = Instant::now();
        let give_up_at = started + inner.config.retry_budget;
        let mut maybe_applied = false;
        let mut previous: Option<usize> = None;
        let mut attempt: u32 = 0;
        loop {
            attempt += 1;
            let index = self
                .leader_endpoint(policy, previous)
                .unwrap_or_else(|| inner.endpoints.pick(previous));
            let attempt_timeout = inner
                .config
                .request_timeout
                .min(give_up_at.saturating_duration_since(Instant::now()));
            let outcome =
                tokio::time::timeout(attempt_timeout, call(inner.endpoints.channel(index), attempt_timeout)).await;
            let failure = match outcome {
                Ok(Ok(response)) => {
                    inner.endpoints.mark_healthy(index);
                    let response = response.into_inner();
                    if let Some(header) = response.header() {
                        inner.endpoints.note_answered_as(index, header.node_id);
                        self.note_header(header);
                    }
                    return Ok(response);
                }
                Ok(Err(status)) => Failure::from_status(status),
                Err(_elapsed) => Failure::TimedOut,
            };
            maybe_applied |= policy.is_write() && failure.outcome_unknown();
            if !failure.is_retryable(policy) {
                return Err(failure.into_error(maybe_applied));
            }
            inner.endpoints.mark_failed(index);
            previous = Some(index);

            let delay = self.backoff_delay(attempt);
            let out_of_attempts = attempt >= inner.config.max_attempts;
            let out_of_time = Instant::now() + delay >= give_up_at;
            if out_of_attempts || out_of_time {
                let note = format!(
                    "gave up after {attempt} attempt{} in {} ms; last endpoint {}",
                    if attempt == 1 { "" } else { "s" },
                    started.elapsed().as_millis(),
                    inner.endpoints.address(index)
                );
                return Err(failure.into_error(maybe_applied).with_note(&note));
            }
            tokio::time::sleep(delay).await;
        }
    }

    /// For a request that changes state: the endpoint known to answer as the
    /// leader the latest response named, so no node has to forward it.
    fn leader_endpoint(&self, policy: RetryPolicy, avoid: Option<usize>) -> Option<usize> {
        if !policy.is_write() {
            return None;
        }
        let leader = lock(&self.inner.leader_hint).as_ref()?.leader_id;
        self.inner.endpoints.leader(leader, avoid)
    }

    fn note_header(&self, header: &v1::ResponseHeader) {
        *lock(&self.inner.last_header) = Some(ResponseHeader::from(header.clone()));
        if header.leader_id == 0 {
            return;
        }
        let mut hint = lock(&self.inner.leader_hint);
        let newer = hint.as_ref().is_none_or(|known| header.term >= known.term);
        if newer {
            *hint = Some(LeaderHint {
                leader_id: header.leader_id,
                leader_address: Some(header.leader_address.clone()).filter(|address| !address.is_empty()),
                term: header.term,
            });
        }
    }
}

fn members(response: v1::MembershipResponse) -> Vec<Member> {
    response.members.into_iter().map(Member::from).collect()
}

/// A records client that accepts the largest message the API sends (a page
/// or record holding a 16 MiB value), not only gRPC's default of 4 MiB.
pub(crate) fn records_client(channel: Channel) -> RecordsClient<Channel> {
    RecordsClient::new(channel).max_decoding_message_size(safekeep_api::wire::MAX_RECORDS_MESSAGE_BYTES)
}

fn require_non_empty(what: &str, value: &str) -> Result<(), Error> {
    if value.is_empty() {
        return Err(Error::InvalidArgument(format!("{what} must not be empty")));
    }
    Ok(())
}

/// Locks a mutex that only ever holds plain data, so a panic elsewhere cannot leave it torn.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
