//! The identity a data directory is stamped with on first start: which node
//! of which cluster it belongs to. A node refuses a directory stamped for
//! another node or cluster, so ids are never silently reused. Each directory
//! also gets an incarnation, a random number drawn at its first start: the
//! cluster records it in the membership, so a member whose directory was
//! emptied and started again under its old id is told apart from the member
//! that held the data. A directory that joins a running cluster is marked
//! once the cluster has acknowledged the join (`JoinRecord`), so a node that
//! received Raft state before that acknowledgement joins again at start.

use std::sync::Arc;

use rocksdb::{DB, WriteBatch};
use serde::{Deserialize, Serialize};

use super::columns::{CF_META, cf};
use super::error::StoreError;
use super::handle::Db;

/// Key of the identity record in the meta column family.
const IDENTITY_KEY: &[u8] = b"identity";
/// Key of the incarnation in the meta column family (big-endian u64).
const INCARNATION_KEY: &[u8] = b"incarnation";
/// Key of the mark that the cluster acknowledged this directory's join.
const JOINED_KEY: &[u8] = b"joined";

/// The node and cluster a data directory belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    pub node_id: u64,
    pub cluster_name: String,
}

/// Reads the stamped identity, if the directory has one.
pub fn load(db: &DB) -> Result<Option<Identity>, StoreError> {
    let Some(bytes) = db
        .get_cf(cf(db, CF_META), IDENTITY_KEY)
        .map_err(|e| StoreError::Corrupt(e.into_string()))?
    else {
        return Ok(None);
    };
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| StoreError::Corrupt(format!("identity record: {e}")))
}

/// Stamps the directory, synced before the node goes on.
pub(crate) fn save(db: &Db, identity: &Identity) -> Result<(), StoreError> {
    let bytes = serde_json::to_vec(identity).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    let mut batch = WriteBatch::default();
    batch.put_cf(cf(db, CF_META), IDENTITY_KEY, bytes);
    db.write_synced(batch).map_err(StoreError::Io)
}

/// Reads the directory's incarnation, if it has one.
pub fn load_incarnation(db: &DB) -> Result<Option<u64>, StoreError> {
    let Some(bytes) = db
        .get_cf(cf(db, CF_META), INCARNATION_KEY)
        .map_err(|e| StoreError::Corrupt(e.into_string()))?
    else {
        return Ok(None);
    };
    let bytes: [u8; 8] = bytes
        .as_slice()
        .try_into()
        .map_err(|_| StoreError::Corrupt(format!("incarnation record of {} bytes", bytes.len())))?;
    Ok(Some(u64::from_be_bytes(bytes)))
}

/// Stamps the directory's incarnation, synced before the node goes on.
pub(crate) fn save_incarnation(db: &Db, incarnation: u64) -> Result<(), StoreError> {
    assert_ne!(incarnation, 0, "0 stands for an unknown incarnation");
    let mut batch = WriteBatch::default();
    batch.put_cf(cf(db, CF_META), INCARNATION_KEY, incarnation.to_be_bytes());
    db.write_synced(batch).map_err(StoreError::Io)
}

/// Whether the cluster has acknowledged the join of this data directory.
/// Raft state alone does not tell: a leader may replicate to a joining node
/// an entry that adds it and then crash before the entry commits, so the
/// node holds a log but was never a member.
#[derive(Clone)]
pub struct JoinRecord {
    db: Arc<Db>,
}

impl JoinRecord {
    pub(super) fn new(db: Arc<Db>) -> Self {
        Self { db }
    }

    /// True once `mark_acknowledged` has run on this directory.
    pub fn is_acknowledged(&self) -> Result<bool, StoreError> {
        self.db
            .get_cf(cf(&self.db, CF_META), JOINED_KEY)
            .map(|value| value.is_some())
            .map_err(|e| StoreError::Corrupt(e.into_string()))
    }

    /// Marks the join acknowledged, synced before the node goes on.
    pub fn mark_acknowledged(&self) -> Result<(), StoreError> {
        let mut batch = WriteBatch::default();
        batch.put_cf(cf(&self.db, CF_META), JOINED_KEY, [1u8]);
        self.db.write_synced(batch).map_err(StoreError::Io)
    }
}
