//! Full backups: the state machine read from one RocksDB snapshot on this
//! node, streamed as sealed frames into a multipart upload (memory stays at
//! a few frames whatever the data's size), then a sealed manifest naming the
//! data's size and SHA-256. The manifest goes last, so a set that has one
//! is whole.

use std::sync::Arc;

use object_store::{ObjectStoreExt, PutPayload, WriteMultipart};
use ring::digest::{Context, SHA256};
use tokio::sync::mpsc;

use super::error::BackupError;
use super::layout::SetName;
use super::objects::{Manifest, OBJECTS_FORMAT, encode_pair, hex_digest};
use super::sealed::{FRAME_BYTES, Sealer, seal_all};
use super::target::Target;
use crate::crypto::KeyProvider;
use crate::storage::RecordReader;

/// Sealed frames between the reader thread and the upload: bounds memory.
const FRAMES_IN_FLIGHT: usize = 4;
/// Size of one part of a multipart upload (S3 wants at least 5 MiB).
const UPLOAD_PART_BYTES: usize = 8 << 20;
/// Parts one upload sends at once.
const UPLOAD_PARTS_IN_FLIGHT: usize = 2;

/// What the reader thread hands the upload.
enum Piece {
    /// The set's name, known once the snapshot is taken.
    Begin(SetName),
    Bytes(Vec<u8>),
}

/// Who takes a full backup, and of what.
pub struct FullBackup<'a> {
    pub targets: &'a [Target],
    pub provider: Arc<dyn KeyProvider>,
    pub reader: RecordReader,
    pub cluster_name: String,
    pub node: u64,
    pub now_ms: i64,
}

impl FullBackup<'_> {
    /// Takes one full backup into every target; returns its set and manifest.
    pub async fn run(self) -> Result<(SetName, Manifest), BackupError> {
        let (sender, mut receiver) = mpsc::channel::<Piece>(FRAMES_IN_FLIGHT);
        let provider = self.provider.clone();
        let (node, now_ms) = (self.node, self.now_ms);
        let reader = self.reader.clone();
        let dump = tokio::task::spawn_blocking(move || -> Result<_, BackupError> {
            let sealer: std::cell::RefCell<Option<Sealer>> = std::cell::RefCell::new(None);
            let mut plain = Vec::with_capacity(FRAME_BYTES + 1024);
            let send = |piece: Piece| {
                sender
                    .blocking_send(piece)
                    .map_err(|_| std::io::Error::other("the upload stopped"))
            };
            let summary = reader.dump(
                |start| {
                    let set = SetName {
                        index: start.last_index,
                        taken_at_ms: now_ms,
                        node,
                    };
                    let (new_sealer, preamble) = Sealer::new(provider.as_ref(), set.data_path().as_ref())
                        .map_err(|e| std::io::Error::other(e.to_string()))?;
                    *sealer.borrow_mut() = Some(new_sealer);
                    send(Piece::Begin(set))?;
                    send(Piece::Bytes(preamble))
                },
                |key, value| {
                    encode_pair(&mut plain, key, value);
                    while plain.len() >= FRAME_BYTES {
                        let rest = plain.split_off(FRAME_BYTES);
                        let frame = sealer
                            .borrow_mut()
                            .as_mut()
                            .expect("begin comes first")
                            .seal(&plain, false)
                            .map_err(|e| std::io::Error::other(e.to_string()))?;
                        plain = rest;
                        send(Piece::Bytes(frame))?;
                    }
                    Ok(())
                },
            )?;
            let last = sealer
                .borrow_mut()
                .as_mut()
                .expect("begin comes first")
                .seal(&plain, true)?;
            send(Piece::Bytes(last))?;
            Ok(summary)
        });

        let mut uploads = Vec::new();
        let mut set = None;
        let mut digest = Context::new(&SHA256);
        let mut data_bytes = 0u64;
        while let Some(piece) = receiver.recv().await {
            match piece {
                Piece::Begin(name) => {
                    for target in self.targets {
                        let upload = target.store.put_multipart(&name.data_path()).await?;
                        uploads.push(WriteMultipart::new_with_chunk_size(upload, UPLOAD_PART_BYTES));
                    }
                    set = Some(name);
                }
                Piece::Bytes(bytes) => {
                    digest.update(&bytes);
                    data_bytes += bytes.len() as u64;
                    for upload in &mut uploads {
                        upload.wait_for_capacity(UPLOAD_PARTS_IN_FLIGHT).await?;
                        upload.write(&bytes);
                    }
                }
            }
        }
        let summary = match dump.await {
            Ok(Ok(summary)) => summary,
            Ok(Err(e)) => {
                for upload in uploads {
                    let _ = upload.abort().await;
                }
                return Err(e);
            }
            Err(e) => {
                return Err(BackupError::Io(std::io::Error::other(format!(
                    "the dump thread failed: {e}"
                ))));
            }
        };
        for upload in uploads {
            upload.finish().await?;
        }
        let set = set.expect("a finished dump began");
        assert_eq!(set.index, summary.last_index, "the set is named after the dumped index");
        let manifest = Manifest {
            format: OBJECTS_FORMAT,
            cluster_name: self.cluster_name.clone(),
            node: self.node,
            last_index: summary.last_index,
            last_term: summary.last_term,
            applied_at_ms: summary.applied_at_ms,
            taken_at_ms: self.now_ms,
            pairs: summary.pairs,
            records: summary.records,
            data_bytes,
            data_sha256: hex_digest(digest.finish().as_ref()),
            records_sha256: hex_digest(&summary.records_sha256),
        };
        let encoded = serde_json::to_vec(&manifest).map_err(|e| BackupError::Crypto(e.to_string()))?;
        let sealed = seal_all(self.provider.as_ref(), set.manifest_path().as_ref(), &encoded)?;
        for target in self.targets {
            target
                .store
                .put(&set.manifest_path(), PutPayload::from(sealed.clone()))
                .await?;
        }
        Ok((set, manifest))
    }
}
