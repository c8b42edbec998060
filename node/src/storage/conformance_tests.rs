//! Runs openraft's storage conformance suite against the RocksDB log store
//! and state machine, each run on a fresh database in a temporary directory.

use openraft::StorageError;
use openraft::testing::log::{StoreBuilder, Suite};
use openraft::{ErrorSubject, ErrorVerb};
use tempfile::TempDir;

use super::types::TypeConfig;
use super::{LogStore, LogSync, StateMachineStore, Store};

struct RocksStoreBuilder(LogSync);

fn setup_error(e: std::io::Error) -> StorageError<TypeConfig> {
    StorageError::from_io_error(ErrorSubject::Store, ErrorVerb::Write, e)
}

impl StoreBuilder<TypeConfig, LogStore, StateMachineStore, TempDir> for RocksStoreBuilder {
    async fn build(&self) -> Result<(TempDir, LogStore, StateMachineStore), StorageError<TypeConfig>> {
        let dir = TempDir::new().map_err(setup_error)?;
        let store =
            Store::open(dir.path(), 1, "conformance", self.0).map_err(|e| setup_error(std::io::Error::other(e)))?;
        let state_machine = store
            .state_machine()
            .map_err(|e| setup_error(std::io::Error::other(e)))?;
        Ok((dir, store.log_store(), state_machine))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rocksdb_stores_pass_openraft_conformance_suite_with_group_commit() {
    Suite::test_all(RocksStoreBuilder(LogSync::GroupCommit))
        .await
        .expect("openraft storage conformance suite");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rocksdb_stores_pass_openraft_conformance_suite_with_inline_sync() {
    Suite::test_all(RocksStoreBuilder(LogSync::Inline))
        .await
        .expect("openraft storage conformance suite");
}
