//! Reading a target back: which sets and segments it holds, each object
//! opened and checked against what it claims (its name, its manifest, its
//! digest), the chain of segments that follows a set, and `verify`, which
//! checks every object of a target without restoring anything.

use std::io::{Read, Write};
use std::sync::Arc;

use futures::StreamExt;
use object_store::ObjectStoreExt;
use object_store::path::Path;
use ring::digest::{Context, SHA256};

use super::error::BackupError;
use super::layout::{ARCHIVE_PREFIX, FULL_PREFIX, SegmentName, SetName, format_ms, misnamed};
use super::objects::{Manifest, OBJECTS_FORMAT, Pair, PairDecoder, Segment, entries_digest, hex_digest};
use super::progress;
use super::sealed::{Unsealer, open_all};
use super::target::Target;
use crate::crypto::KeyProvider;
use crate::storage::describe_entry;

/// Bytes read from a downloaded data file at a time.
const READ_CHUNK_BYTES: usize = 1 << 20;

/// What a target holds, by name, in log order.
#[derive(Debug, Default)]
pub struct Catalog {
    /// Sets with a manifest.
    pub sets: Vec<SetName>,
    pub segments: Vec<SegmentName>,
    /// Objects under the backup folders whose names mean nothing here.
    pub strays: Vec<String>,
}

impl Catalog {
    /// Lists `target`.
    pub async fn list(target: &Target) -> Result<Self, BackupError> {
        let mut catalog = Catalog::default();
        for prefix in [FULL_PREFIX, ARCHIVE_PREFIX] {
            let mut listing = target.store.list(Some(&Path::from(prefix)));
            while let Some(meta) = listing.next().await {
                let path = meta?.location;
                if let Some(set) = SetName::from_manifest_path(&path) {
                    catalog.sets.push(set);
                } else if let Some(segment) = SegmentName::from_path(&path) {
                    catalog.segments.push(segment);
                } else if !path.as_ref().ends_with("/data") {
                    catalog.strays.push(path.to_string());
                }
            }
        }
        catalog.sets.sort();
        catalog.segments.sort();
        Ok(catalog)
    }

    /// Lists only the full backup sets of `target` (cheap: no segments).
    pub async fn list_sets(target: &Target) -> Result<Vec<SetName>, BackupError> {
        let mut sets = Vec::new();
        let mut listing = target.store.list(Some(&Path::from(FULL_PREFIX)));
        while let Some(meta) = listing.next().await {
            if let Some(set) = SetName::from_manifest_path(&meta?.location) {
                sets.push(set);
            }
        }
        sets.sort();
        Ok(sets)
    }

    /// The segments that continue the log after `index`, in order, as far
    /// as they reach without a gap; a gap followed by more segments is an
    /// error (an archive with a hole must not pass for a shorter one).
    pub fn chain_after(&self, index: u64) -> Result<Vec<SegmentName>, BackupError> {
        let mut next = index + 1;
        let mut chain = Vec::new();
        loop {
            let best = self
                .segments
                .iter()
                .filter(|s| s.first <= next && next <= s.last)
                .max_by_key(|s| s.last);
            match best {
                Some(segment) => {
                    chain.push(*segment);
                    next = segment.last + 1;
                }
                None => {
                    if let Some(later) = self.segments.iter().find(|s| s.first > next) {
                        return Err(BackupError::Gap {
                            from: next,
                            next_starts: later.first,
                        });
                    }
                    return Ok(chain);
                }
            }
        }
    }
}

/// Reads an object whole.
async fn fetch(target: &Target, path: &Path) -> Result<Vec<u8>, BackupError> {
    match target.store.get(path).await {
        Ok(result) => Ok(result.bytes().await?.to_vec()),
        Err(object_store::Error::NotFound { .. }) => Err(BackupError::Missing {
            object: path.to_string(),
        }),
        Err(e) => Err(e.into()),
    }
}

/// Opens a set's manifest and checks it describes that set.
pub async fn read_manifest(
    target: &Target,
    provider: &Arc<dyn KeyProvider>,
    set: &SetName,
) -> Result<Manifest, BackupError> {
    let path = set.manifest_path();
    let sealed = fetch(target, &path).await?;
    let plain = open_all(provider.clone(), path.as_ref(), &sealed)?;
    let manifest: Manifest =
        serde_json::from_slice(&plain).map_err(|e| misnamed(&path, format!("it does not parse: {e}")))?;
    if manifest.format != OBJECTS_FORMAT {
        return Err(misnamed(
            &path,
            format!("format {} is not {OBJECTS_FORMAT}", manifest.format),
        ));
    }
    if manifest.last_index != set.index || manifest.taken_at_ms != set.taken_at_ms || manifest.node != set.node {
        return Err(misnamed(&path, "it describes another set"));
    }
    Ok(manifest)
}

/// Opens a segment and checks its entries are the ones its name promises.
pub async fn read_segment(
    target: &Target,
    provider: &Arc<dyn KeyProvider>,
    name: &SegmentName,
) -> Result<Segment, BackupError> {
    let path = name.path();
    let sealed = fetch(target, &path).await?;
    let plain = open_all(provider.clone(), path.as_ref(), &sealed)?;
    let segment: Segment =
        postcard::from_bytes(&plain).map_err(|e| misnamed(&path, format!("it does not decode: {e}")))?;
    if segment.format != OBJECTS_FORMAT {
        return Err(misnamed(
            &path,
            format!("format {} is not {OBJECTS_FORMAT}", segment.format),
        ));
    }
    if (segment.first, segment.last, segment.first_at_ms, segment.last_at_ms)
        != (name.first, name.last, name.first_at_ms, name.last_at_ms)
    {
        return Err(misnamed(&path, "its contents describe another range"));
    }
    if entries_digest(&segment.entries) != segment.entries_sha256 {
        return Err(misnamed(&path, "its entries do not match their digest"));
    }
    if segment.entries.len() as u64 != segment.last - segment.first + 1 {
        return Err(misnamed(&path, "it holds the wrong number of entries"));
    }
    for (offset, bytes) in segment.entries.iter().enumerate() {
        let entry = describe_entry(bytes).map_err(|e| misnamed(&path, format!("an entry does not decode: {e}")))?;
        if entry.index != segment.first + offset as u64 {
            return Err(misnamed(
                &path,
                format!("entry {} sits at the wrong place", entry.index),
            ));
        }
    }
    Ok(segment)
}

/// Downloads a set's data object into `file`, checking its size and SHA-256
/// against the manifest.
pub async fn download_data(
    target: &Target,
    set: &SetName,
    manifest: &Manifest,
    file: &mut std::fs::File,
) -> Result<(), BackupError> {
    let path = set.data_path();
    let mut stream = match target.store.get(&path).await {
        Ok(result) => result.into_stream(),
        Err(object_store::Error::NotFound { .. }) => {
            return Err(BackupError::Missing {
                object: path.to_string(),
            });
        }
        Err(e) => return Err(e.into()),
    };
    let mut digest = Context::new(&SHA256);
    let mut bytes = 0u64;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk?;
        bytes += chunk.len() as u64;
        if bytes > manifest.data_bytes {
            break;
        }
        digest.update(&chunk);
        file.write_all(&chunk)?;
    }
    if bytes != manifest.data_bytes {
        return Err(misnamed(
            &path,
            format!("it holds {bytes} bytes where its manifest says {}", manifest.data_bytes),
        ));
    }
    if hex_digest(digest.finish().as_ref()) != manifest.data_sha256 {
        return Err(misnamed(&path, "its SHA-256 is not the one in its manifest"));
    }
    file.flush()?;
    Ok(())
}

/// The pairs of a downloaded data object, opened as they are read.
pub struct SealedPairs {
    file: std::fs::File,
    object: String,
    unsealer: Option<Unsealer>,
    decoder: PairDecoder,
    /// The first failure; iteration stops at it.
    pub failure: Option<BackupError>,
    pub pairs: u64,
}

impl SealedPairs {
    /// Reads the data object of `set` from `file` (rewound to its start).
    pub fn new(provider: Arc<dyn KeyProvider>, set: &SetName, mut file: std::fs::File) -> std::io::Result<Self> {
        use std::io::Seek;
        file.rewind()?;
        let object = set.data_path().to_string();
        Ok(Self {
            file,
            unsealer: Some(Unsealer::new(provider, &object)),
            object,
            decoder: PairDecoder::default(),
            failure: None,
            pairs: 0,
        })
    }

    fn step(&mut self) -> Result<Option<Pair>, BackupError> {
        let mut chunk = vec![0u8; READ_CHUNK_BYTES];
        loop {
            if let Some(pair) = self.decoder.next_pair(&self.object)? {
                return Ok(Some(pair));
            }
            let Some(unsealer) = self.unsealer.as_mut() else {
                return Ok(None);
            };
            let read = self.file.read(&mut chunk)?;
            if read == 0 {
                self.unsealer.take().expect("still open").finish()?;
                self.decoder.finish(&self.object)?;
                return Ok(None);
            }
            let decoder = &mut self.decoder;
            unsealer.feed(&chunk[..read], &mut |plain| {
                decoder.feed(plain);
                Ok(())
            })?;
        }
    }
}

impl Iterator for SealedPairs {
    type Item = Pair;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failure.is_some() {
            return None;
        }
        match self.step() {
            Ok(Some(pair)) => {
                self.pairs += 1;
                Some(pair)
            }
            Ok(None) => None,
            Err(e) => {
                self.failure = Some(e);
                None
            }
        }
    }
}

/// What `verify` found.
#[derive(Debug, Default)]
pub struct VerifyReport {
    pub sets: usize,
    pub segments: usize,
    pub bytes: u64,
    /// The log range the archive covers without a gap after the oldest set.
    pub covered: Option<(u64, u64)>,
    /// Deleted tenants in the erasure ledger.
    pub erasures: usize,
    pub problems: Vec<String>,
}

/// Checks every set and segment of `target` without restoring anything:
/// each manifest opens and describes its set, each data object has the
/// size and digest its manifest names and opens frame by frame to its
/// final frame with the pair count the manifest names, each segment opens
/// and holds the entries its name promises, and the segments after the
/// oldest set follow each other without a gap.
pub async fn verify(target: &Target, provider: &Arc<dyn KeyProvider>) -> Result<VerifyReport, BackupError> {
    let catalog = Catalog::list(target).await?;
    let mut report = VerifyReport::default();
    for stray in &catalog.strays {
        report.problems.push(format!("{stray}: not a backup object"));
    }
    for set in &catalog.sets {
        report.sets += 1;
        match verify_set(target, provider, set).await {
            Ok(bytes) => report.bytes += bytes,
            Err(e) => report.problems.push(e.to_string()),
        }
    }
    for segment in &catalog.segments {
        report.segments += 1;
        if let Err(e) = read_segment(target, provider, segment).await {
            report.problems.push(e.to_string());
        }
    }
    match super::ledger::read_all(target, provider).await {
        Ok(erasures) => report.erasures = erasures.len(),
        Err(e) => report.problems.push(e.to_string()),
    }
    if let Some(oldest) = catalog.sets.first() {
        match catalog.chain_after(oldest.index) {
            Ok(chain) => {
                let (ends_at, last_at_ms) = chain
                    .last()
                    .map_or((oldest.index, oldest.taken_at_ms), |s| (s.last, s.last_at_ms));
                report.covered = Some((oldest.index, ends_at));
                if let Err(e) = check_tail(target, provider, ends_at, last_at_ms).await {
                    report.problems.push(e.to_string());
                }
            }
            Err(e) => report.problems.push(e.to_string()),
        }
    } else if !catalog.segments.is_empty() {
        report
            .problems
            .push("log segments but no full backup to replay them on".into());
    }
    Ok(report)
}

/// Checks that the archive, which ends at log index `ends_at` (its newest
/// commit at `last_at_ms`), reaches as far as the shipping node recorded in
/// the progress object it writes after every segment: a gap between
/// segments shows in their names, a lost newest segment only here. Without
/// a progress object (an older target) there is nothing to compare with.
pub(crate) async fn check_tail(
    target: &Target,
    provider: &Arc<dyn KeyProvider>,
    ends_at: u64,
    last_at_ms: i64,
) -> Result<(), BackupError> {
    match progress::read(target, provider).await? {
        Some(recorded) if recorded.archived_index > ends_at => Err(BackupError::MissingTail {
            ends_at,
            archived: recorded.archived_index,
            last_at: format_ms(last_at_ms),
        }),
        _ => Ok(()),
    }
}

async fn verify_set(target: &Target, provider: &Arc<dyn KeyProvider>, set: &SetName) -> Result<u64, BackupError> {
    let manifest = read_manifest(target, provider, set).await?;
    let mut file = tempfile::tempfile()?;
    download_data(target, set, &manifest, &mut file).await?;
    let provider = provider.clone();
    let set = *set;
    tokio::task::spawn_blocking(move || {
        let mut pairs = SealedPairs::new(provider, &set, file)?;
        for _ in pairs.by_ref() {}
        if let Some(failure) = pairs.failure.take() {
            return Err(failure);
        }
        if pairs.pairs != manifest.pairs {
            return Err(misnamed(
                &set.data_path(),
                format!(
                    "it holds {} pairs where its manifest says {}",
                    pairs.pairs, manifest.pairs
                ),
            ));
        }
        Ok(manifest.data_bytes)
    })
    .await
    .map_err(|e| BackupError::Io(std::io::Error::other(e.to_string())))?
}
