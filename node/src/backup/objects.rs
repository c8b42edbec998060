//! What is inside each backup object once it is opened: a set's manifest,
//! a set's stream of state machine pairs, and a log segment. The sealing
//! around them (`sealed.rs`) authenticates them under a key from the key
//! provider; these types add what a reader checks on top: the data's size
//! and SHA-256 in the manifest, and each segment's entry range and digest.

use ring::digest::{Context, SHA256};
use serde::{Deserialize, Serialize};

use super::error::BackupError;

/// Version of the manifest and segment layouts.
pub const OBJECTS_FORMAT: u32 = 1;
/// Largest key or value the pair stream accepts (the state machine's values
/// are far smaller; this only bounds what a damaged stream can make a reader allocate).
const MAX_PAIR_PART_BYTES: usize = 64 << 20;

/// What a full backup set holds. Written last: a set without one is unfinished.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub format: u32,
    /// The backed-up cluster (a restore must give the new cluster another name).
    pub cluster_name: String,
    /// The node the set was read on.
    pub node: u64,
    /// The last log entry the state holds.
    pub last_index: u64,
    pub last_term: u64,
    /// The leader's clock at the last command the state holds (ms since the Unix epoch).
    pub applied_at_ms: i64,
    /// When the set was taken (ms since the Unix epoch).
    pub taken_at_ms: i64,
    /// Pairs and customer records in the data object.
    pub pairs: u64,
    pub records: u64,
    /// The data object exactly as stored: its size and SHA-256 (hex).
    pub data_bytes: u64,
    pub data_sha256: String,
    /// SHA-256 over the customer records the set holds (hex), as the node
    /// that took it read them: a test restore must find the same.
    #[serde(default)]
    pub records_sha256: String,
}

/// A log archive segment: committed entries, contiguous, as the log stores them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Segment {
    pub format: u32,
    pub cluster_name: String,
    pub first: u64,
    pub last: u64,
    pub first_at_ms: i64,
    pub last_at_ms: i64,
    /// SHA-256 of the entries, each prefixed by its length.
    pub entries_sha256: [u8; 32],
    pub entries: Vec<Vec<u8>>,
}

/// SHA-256 of a segment's entries, each prefixed by its length.
pub fn entries_digest(entries: &[Vec<u8>]) -> [u8; 32] {
    let mut context = Context::new(&SHA256);
    for entry in entries {
        context.update(&(entry.len() as u64).to_be_bytes());
        context.update(entry);
    }
    context.finish().as_ref().try_into().expect("SHA-256 is 32 bytes")
}

/// Appends one pair to a pair stream.
pub fn encode_pair(out: &mut Vec<u8>, key: &[u8], value: &[u8]) {
    assert!(
        key.len() <= MAX_PAIR_PART_BYTES && value.len() <= MAX_PAIR_PART_BYTES,
        "an oversized pair"
    );
    out.extend_from_slice(&(key.len() as u32).to_be_bytes());
    out.extend_from_slice(key);
    out.extend_from_slice(&(value.len() as u32).to_be_bytes());
    out.extend_from_slice(value);
}

/// One key-value pair of the state machine.
pub type Pair = (Vec<u8>, Vec<u8>);

/// Reads a pair stream as it arrives in pieces.
#[derive(Default)]
pub struct PairDecoder {
    buffer: Vec<u8>,
    used: usize,
}

impl PairDecoder {
    /// Takes the next piece of the stream.
    pub fn feed(&mut self, bytes: &[u8]) {
        if self.used > 0 && self.used == self.buffer.len() {
            self.buffer.clear();
            self.used = 0;
        }
        self.buffer.extend_from_slice(bytes);
    }

    /// The next whole pair, if the stream holds one yet.
    pub fn next_pair(&mut self, object: &str) -> Result<Option<Pair>, BackupError> {
        let rest = &self.buffer[self.used..];
        let part = |at: usize| -> Result<Option<(usize, usize)>, BackupError> {
            let Some(len) = rest.get(at..at + 4) else {
                return Ok(None);
            };
            let len = u32::from_be_bytes(len.try_into().expect("4 bytes")) as usize;
            if len > MAX_PAIR_PART_BYTES {
                return Err(BackupError::Tampered {
                    object: object.to_string(),
                    why: format!("a pair claims {len} bytes"),
                });
            }
            Ok((rest.len() >= at + 4 + len).then_some((at + 4, len)))
        };
        let Some((key_at, key_len)) = part(0)? else {
            return Ok(None);
        };
        let Some((value_at, value_len)) = part(key_at + key_len)? else {
            return Ok(None);
        };
        let pair = (
            rest[key_at..key_at + key_len].to_vec(),
            rest[value_at..value_at + value_len].to_vec(),
        );
        self.used += value_at + value_len;
        if self.used > (1 << 20) {
            self.buffer.drain(..self.used);
            self.used = 0;
        }
        Ok(Some(pair))
    }

    /// Checks the stream ended on a pair boundary.
    pub fn finish(&self, object: &str) -> Result<(), BackupError> {
        if self.used != self.buffer.len() {
            return Err(BackupError::Tampered {
                object: object.to_string(),
                why: "it ends inside a pair".into(),
            });
        }
        Ok(())
    }
}

/// Hex of a digest, for manifests and messages.
pub fn hex_digest(bytes: &[u8]) -> String {
    hex::encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pair_stream_decodes_in_any_pieces_and_a_cut_one_is_refused() {
        let mut stream = Vec::new();
        let pairs: Vec<(Vec<u8>, Vec<u8>)> = (0..50u8)
            .map(|i| (vec![i; i as usize], vec![i ^ 7; 3 * i as usize]))
            .collect();
        for (k, v) in &pairs {
            encode_pair(&mut stream, k, v);
        }
        let mut decoder = PairDecoder::default();
        let mut out = Vec::new();
        for piece in stream.chunks(13) {
            decoder.feed(piece);
            while let Some(pair) = decoder.next_pair("o").unwrap() {
                out.push(pair);
            }
        }
        decoder.finish("o").unwrap();
        assert_eq!(out, pairs);

        let mut cut = PairDecoder::default();
        cut.feed(&stream[..stream.len() - 1]);
        while cut.next_pair("o").unwrap().is_some() {}
        assert!(cut.finish("o").is_err());
    }
}
