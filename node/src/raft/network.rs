//! openraft's network over the peer channel: each Raft RPC is one gRPC call
//! carrying an encoded openraft message, stamped with this node's
//! incarnation and the one the membership records for the target; a
//! snapshot is streamed from its file in bounded chunks and never held whole
//! in memory.

use std::future::Future;
use std::os::unix::fs::FileExt;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use openraft::alias::{SnapshotOf, VoteOf};
use openraft::errors::{NetworkError, RPCError, ReplicationClosed, StreamingError, Unreachable};
use openraft::network::{RPCOption, RaftNetworkFactory, RaftNetworkV2};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, TransferLeaderRequest, TransferLeaderResponse,
    VoteRequest, VoteResponse,
};
use safekeep_api::v1::peer_client::PeerClient;
use safekeep_api::v1::{RaftMessage, SnapshotChunk};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tonic::transport::Channel;

use super::channels::PeerChannels;
use super::codec::{decode, encode};
use super::incarnation::{self, RefusalSeen};
use super::types::{NodeId, NodeInfo, TypeConfig};
use crate::storage::SnapshotFile;
use crate::tls::ExpectedPeer;

/// The slowest link an AppendEntries call's deadline allows for, on top of
/// openraft's own deadline (the heartbeat interval): a batch of large values
/// (up to the log store's replication budget) gets the time its bytes need,
/// where a deadline of one heartbeat would fail every attempt and stall
/// replication for good.
pub const SLOWEST_LINK_BYTES_PER_SECOND: u64 = 16 << 20;

/// Size of one snapshot chunk on the wire.
pub const SNAPSHOT_CHUNK_BYTES: usize = 1 << 20;
/// Longest a whole snapshot transfer may take.
pub const SNAPSHOT_TRANSFER_TIMEOUT: Duration = Duration::from_secs(600);

/// What the first snapshot chunk carries before any data.
#[derive(Debug, Serialize, serde::Deserialize)]
pub struct SnapshotHeader {
    pub vote: VoteOf<TypeConfig>,
    pub meta: openraft::alias::SnapshotMetaOf<TypeConfig>,
    /// Total bytes of snapshot data that follow.
    pub len: u64,
}

/// The incarnation the current membership records for a node (0: not
/// known). Set once Raft runs; read on every call, since openraft keeps a
/// target's client across membership changes that record its incarnation.
pub type RecordedIncarnations = Arc<OnceLock<Box<dyn Fn(NodeId) -> u64 + Send + Sync>>>;

/// Makes a network client per target node.
#[derive(Clone)]
pub struct PeerNetworkFactory {
    channels: PeerChannels,
    /// This node's data directory incarnation.
    incarnation: u64,
    recorded: RecordedIncarnations,
    refusals: Arc<RefusalSeen>,
}

impl PeerNetworkFactory {
    pub fn new(channels: PeerChannels, node_id: NodeId, incarnation: u64, recorded: RecordedIncarnations) -> Self {
        Self {
            channels,
            incarnation,
            recorded,
            refusals: Arc::new(RefusalSeen::new(node_id)),
        }
    }
}

impl RaftNetworkFactory<TypeConfig> for PeerNetworkFactory {
    type Network = PeerNetwork;

    async fn new_client(&mut self, target: NodeId, node: &NodeInfo) -> Self::Network {
        PeerNetwork {
            target,
            address: node.peer_address.clone(),
            channels: self.channels.clone(),
            from_incarnation: self.incarnation,
            to_incarnation: node.incarnation,
            recorded: self.recorded.clone(),
            refusals: self.refusals.clone(),
        }
    }
}

/// Raft RPCs to one target node. openraft keeps this for as long as it
/// replicates to the target, so it holds no channel of its own: each call
/// takes the current one, and after a certificate rotation the next call
/// (a heartbeat at the latest) dials with the new certificate.
pub struct PeerNetwork {
    target: NodeId,
    /// The target's peer address, as the membership records it.
    address: String,
    channels: PeerChannels,
    from_incarnation: u64,
    /// What the membership recorded for the target when this client was made.
    to_incarnation: u64,
    recorded: RecordedIncarnations,
    refusals: Arc<RefusalSeen>,
}

fn unreachable(message: impl ToString) -> RPCError<TypeConfig> {
    RPCError::Unreachable(Unreachable::from_string(message))
}

fn status_to_rpc_error(target: NodeId, status: tonic::Status) -> RPCError<TypeConfig> {
    let message = format!("node {target}: {}: {}", status.code(), status.message());
    match status.code() {
        tonic::Code::Unavailable | tonic::Code::Cancelled | tonic::Code::Unknown => unreachable(message),
        _ => RPCError::Network(NetworkError::from_string(message)),
    }
}

impl PeerNetwork {
    /// Stamps a call with this node's incarnation and the target's as the
    /// membership now records it.
    fn stamp<T>(&self, request: &mut tonic::Request<T>) {
        let to = match self.recorded.get() {
            Some(lookup) => lookup(self.target),
            None => self.to_incarnation,
        };
        incarnation::stamp(request.metadata_mut(), self.from_incarnation, to);
    }

    /// Maps a failed call to openraft's error, counting an incarnation refusal.
    fn failed(&self, status: tonic::Status) -> RPCError<TypeConfig> {
        if incarnation::is_refusal(&status) {
            self.refusals.note(self.target, &status);
        }
        status_to_rpc_error(self.target, status)
    }

    /// A client over the current channel to the target, which must answer as itself.
    fn client(&self) -> Result<PeerClient<Channel>, RPCError<TypeConfig>> {
        self.channels
            .client(&self.address, ExpectedPeer::Node(self.target))
            .map_err(unreachable)
    }

    async fn call<Req, Resp, F, Fut>(&self, rpc: &Req, timeout: Duration, send: F) -> Result<Resp, RPCError<TypeConfig>>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
        F: FnOnce(PeerClient<Channel>, tonic::Request<RaftMessage>) -> Fut,
        Fut: Future<Output = Result<tonic::Response<RaftMessage>, tonic::Status>>,
    {
        let payload = encode(rpc).map_err(|e| RPCError::Network(NetworkError::from_string(e)))?;
        let mut request = tonic::Request::new(RaftMessage { payload });
        request.set_timeout(timeout);
        self.stamp(&mut request);
        let response = send(self.client()?, request).await.map_err(|s| self.failed(s))?;
        decode(&response.into_inner().payload).map_err(|e| RPCError::Network(NetworkError::from_string(e)))
    }
}

impl RaftNetworkV2<TypeConfig> for PeerNetwork {
    type SnapshotData = SnapshotFile;

    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<TypeConfig>, RPCError<TypeConfig>> {
        let allowance = Duration::from_millis(entry_bytes(&rpc) as u64 * 1000 / SLOWEST_LINK_BYTES_PER_SECOND);
        self.call(&rpc, option.hard_ttl() + allowance, |mut c, r| async move {
            c.append_entries(r).await
        })
        .await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        self.call(&rpc, option.hard_ttl(), |mut c, r| async move { c.vote(r).await })
            .await
    }

    async fn pre_vote(
        &mut self,
        rpc: VoteRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        self.call(&rpc, option.hard_ttl(), |mut c, r| async move { c.pre_vote(r).await })
            .await
    }

    async fn transfer_leader(
        &mut self,
        req: TransferLeaderRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<TransferLeaderResponse<TypeConfig>, RPCError<TypeConfig>> {
        self.call(
            &req,
            option.hard_ttl(),
            |mut c, r| async move { c.transfer_leader(r).await },
        )
        .await
    }

    async fn full_snapshot(
        &mut self,
        vote: VoteOf<TypeConfig>,
        snapshot: SnapshotOf<TypeConfig, SnapshotFile>,
        cancel: impl Future<Output = ReplicationClosed> + Send + 'static,
        _option: RPCOption,
    ) -> Result<SnapshotResponse<TypeConfig>, StreamingError<TypeConfig>> {
        let header = SnapshotHeader {
            vote,
            meta: snapshot.meta.clone(),
            len: snapshot.snapshot.len,
        };
        let header = encode(&header).map_err(|e| StreamingError::Network(NetworkError::from_string(e)))?;
        let chunks = snapshot_chunks(header, snapshot.snapshot);
        let mut client = self.client()?;
        let mut request = tonic::Request::new(chunks);
        request.set_timeout(SNAPSHOT_TRANSFER_TIMEOUT);
        self.stamp(&mut request);
        tokio::select! {
            closed = cancel => Err(StreamingError::Closed(closed)),
            response = client.install_snapshot(request) => {
                let response = response.map_err(|s| StreamingError::from(self.failed(s)))?;
                decode(&response.into_inner().payload)
                    .map_err(|e| StreamingError::Network(NetworkError::from_string(e)))
            }
        }
    }
}

/// The chunks of one snapshot: the header first, then the file in order.
/// A read error ends the stream early; the receiver sees the short length.
fn snapshot_chunks(header: Vec<u8>, file: SnapshotFile) -> impl futures::Stream<Item = SnapshotChunk> + Send + 'static {
    futures::stream::unfold((Some(header), 0u64), move |(header, offset)| {
        let file = file.clone();
        async move {
            if let Some(header) = header {
                return Some((
                    SnapshotChunk {
                        header,
                        data: Vec::new(),
                    },
                    (None, offset),
                ));
            }
            if offset >= file.len {
                return None;
            }
            let want =
                usize::try_from(file.len - offset).map_or(SNAPSHOT_CHUNK_BYTES, |left| left.min(SNAPSHOT_CHUNK_BYTES));
            let mut data = vec![0; want];
            match file.file.read_exact_at(&mut data, offset) {
                Ok(()) => Some((
                    SnapshotChunk {
                        header: Vec::new(),
                        data,
                    },
                    (None, offset + want as u64),
                )),
                Err(e) => {
                    tracing::warn!(error = %e, path = %file.path.display(), "reading snapshot file failed");
                    None
                }
            }
        }
    })
}

/// Roughly the bytes of entries an AppendEntries request carries.
fn entry_bytes(rpc: &AppendEntriesRequest<TypeConfig>) -> usize {
    use openraft::EntryPayload;
    rpc.entries
        .iter()
        .map(|entry| match &entry.payload {
            EntryPayload::Normal(command) => command.approximate_bytes(),
            EntryPayload::Blank | EntryPayload::Membership(_) => 256,
        })
        .sum()
}
