//! Sealed backup objects: every object a backup writes is encrypted and
//! authenticated as a whole, so a reader of the bucket learns nothing (not
//! even tenant names or record keys) and any change is caught.
//!
//! ```text
//! "SKBACKUP"  u32-be header-len  header (postcard: format, object name,
//!                                        wrapped object key, nonce prefix)
//! frames:     u32-be frame-len   AES-256-GCM(chunk of at most 1 MiB)
//! ```
//!
//! Each object has its own random key, wrapped by the key provider (the
//! master key file or KMS), so nothing in the bucket opens without it. A
//! frame's nonce is the object's random prefix, the frame's number and a
//! final-frame flag; every frame is authenticated together with a hash of
//! the header. So a frame altered, dropped, reordered or moved from another
//! object, an object renamed, and an object cut short (no final frame) are
//! all refused.

use std::sync::Arc;

use ring::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use ring::digest::{SHA256, digest};
use ring::rand::{SecureRandom, SystemRandom};
use serde::{Deserialize, Serialize};

use super::error::BackupError;
use crate::crypto::{KEY_BYTES, KeyProvider};
use crate::model::command::WrappedDataKey;

/// Every sealed object starts with these bytes.
const MAGIC: &[u8; 8] = b"SKBACKUP";
/// Version of the sealed object layout.
const FORMAT: u32 = 1;
/// Plaintext bytes per frame.
pub const FRAME_BYTES: usize = 1 << 20;
/// AES-GCM tag bytes each frame adds.
const TAG_BYTES: usize = 16;
/// Largest header a reader accepts.
const MAX_HEADER_BYTES: usize = 4096;
/// Who the object keys are wrapped for: not a tenant id (':' is not allowed in one).
pub const BACKUP_KEY_OWNER: &str = "backup:object";

#[derive(Debug, Serialize, Deserialize)]
struct Header {
    format: u32,
    /// The object's path in its target: an object moved elsewhere is refused.
    name: String,
    key: WrappedDataKey,
    nonce_prefix: [u8; 7],
}

fn nonce(prefix: &[u8; 7], frame: u32, last: bool) -> Nonce {
    let mut bytes = [0u8; 12];
    bytes[..7].copy_from_slice(prefix);
    bytes[7..11].copy_from_slice(&frame.to_be_bytes());
    bytes[11] = u8::from(last);
    Nonce::assume_unique_for_key(bytes)
}

fn header_hash(preamble: &[u8]) -> [u8; 32] {
    digest(&SHA256, preamble)
        .as_ref()
        .try_into()
        .expect("SHA-256 is 32 bytes")
}

/// Seals one object frame by frame.
pub struct Sealer {
    key: LessSafeKey,
    prefix: [u8; 7],
    aad: [u8; 32],
    frame: u32,
    finished: bool,
}

impl Sealer {
    /// A sealer for the object at `name`, and the preamble to write first.
    pub fn new(provider: &dyn KeyProvider, name: &str) -> Result<(Self, Vec<u8>), BackupError> {
        let random = SystemRandom::new();
        let mut key_bytes = [0u8; KEY_BYTES];
        let mut prefix = [0u8; 7];
        random
            .fill(&mut key_bytes)
            .and_then(|()| random.fill(&mut prefix))
            .map_err(|_| BackupError::Crypto("the system random source failed".into()))?;
        let wrapped = provider
            .wrap(BACKUP_KEY_OWNER, FORMAT, &key_bytes)
            .map_err(|e| BackupError::Crypto(format!("wrapping an object key: {e}")))?;
        let header = Header {
            format: FORMAT,
            name: name.to_string(),
            key: wrapped,
            nonce_prefix: prefix,
        };
        let header = postcard::to_allocvec(&header).map_err(|e| BackupError::Crypto(e.to_string()))?;
        let mut preamble = Vec::with_capacity(12 + header.len());
        preamble.extend_from_slice(MAGIC);
        preamble.extend_from_slice(&(header.len() as u32).to_be_bytes());
        preamble.extend_from_slice(&header);
        let key = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &key_bytes).expect("a 32-byte key"));
        key_bytes.fill(0);
        let sealer = Sealer {
            key,
            prefix,
            aad: header_hash(&preamble),
            frame: 0,
            finished: false,
        };
        Ok((sealer, preamble))
    }

    /// Seals the next frame (at most `FRAME_BYTES`); `last` for the final one.
    pub fn seal(&mut self, plain: &[u8], last: bool) -> Result<Vec<u8>, BackupError> {
        assert!(plain.len() <= FRAME_BYTES, "a frame holds at most {FRAME_BYTES} bytes");
        assert!(!self.finished, "no frame follows the final one");
        let mut sealed = Vec::with_capacity(4 + plain.len() + TAG_BYTES);
        sealed.extend_from_slice(&((plain.len() + TAG_BYTES) as u32).to_be_bytes());
        let mut body = plain.to_vec();
        self.key
            .seal_in_place_append_tag(nonce(&self.prefix, self.frame, last), Aad::from(self.aad), &mut body)
            .map_err(|_| BackupError::Crypto("sealing a frame failed".into()))?;
        sealed.extend_from_slice(&body);
        self.frame = self
            .frame
            .checked_add(1)
            .ok_or_else(|| BackupError::Crypto("an object of more than 2^32 frames".into()))?;
        self.finished = last;
        Ok(sealed)
    }
}

/// Seals a whole small object at once.
pub fn seal_all(provider: &dyn KeyProvider, name: &str, plain: &[u8]) -> Result<Vec<u8>, BackupError> {
    let (mut sealer, mut out) = Sealer::new(provider, name)?;
    let mut chunks = plain.chunks(FRAME_BYTES).peekable();
    if chunks.peek().is_none() {
        out.extend(sealer.seal(&[], true)?);
    }
    while let Some(chunk) = chunks.next() {
        out.extend(sealer.seal(chunk, chunks.peek().is_none())?);
    }
    Ok(out)
}

/// Opens a sealed object from its bytes as they arrive, in any pieces.
pub struct Unsealer {
    provider: Arc<dyn KeyProvider>,
    name: String,
    buffer: Vec<u8>,
    state: Option<OpenState>,
    done: bool,
}

struct OpenState {
    key: LessSafeKey,
    prefix: [u8; 7],
    aad: [u8; 32],
    frame: u32,
}

impl Unsealer {
    /// An unsealer for the object at `name` (its header must say so).
    pub fn new(provider: Arc<dyn KeyProvider>, name: &str) -> Self {
        Unsealer {
            provider,
            name: name.to_string(),
            buffer: Vec::new(),
            state: None,
            done: false,
        }
    }

    fn tampered(&self, why: impl Into<String>) -> BackupError {
        BackupError::Tampered {
            object: self.name.clone(),
            why: why.into(),
        }
    }

    /// Takes the next bytes of the object and hands each opened frame to `out`.
    pub fn feed(
        &mut self,
        bytes: &[u8],
        out: &mut impl FnMut(&[u8]) -> Result<(), BackupError>,
    ) -> Result<(), BackupError> {
        self.buffer.extend_from_slice(bytes);
        let mut used = 0;
        loop {
            let rest = &self.buffer[used..];
            if self.state.is_none() {
                if rest.len() < 12 {
                    break;
                }
                if &rest[..8] != MAGIC {
                    return Err(self.tampered("it is not a sealed backup object"));
                }
                let len = u32::from_be_bytes(rest[8..12].try_into().expect("4 bytes")) as usize;
                if len > MAX_HEADER_BYTES {
                    return Err(self.tampered("its header is too long"));
                }
                if rest.len() < 12 + len {
                    break;
                }
                let preamble = &rest[..12 + len];
                let header: Header =
                    postcard::from_bytes(&preamble[12..]).map_err(|_| self.tampered("its header is malformed"))?;
                if header.format != FORMAT {
                    return Err(self.tampered(format!("it has format {}, not {FORMAT}", header.format)));
                }
                if header.name != self.name {
                    return Err(self.tampered(format!("it was written as {:?}", header.name)));
                }
                let mut key_bytes = self
                    .provider
                    .unwrap(BACKUP_KEY_OWNER, &header.key)
                    .map_err(|e| self.tampered(format!("its key does not unwrap: {e}")))?;
                let key = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &key_bytes).expect("a 32-byte key"));
                key_bytes.fill(0);
                self.state = Some(OpenState {
                    key,
                    prefix: header.nonce_prefix,
                    aad: header_hash(preamble),
                    frame: 0,
                });
                used += 12 + len;
                continue;
            }
            if rest.is_empty() {
                break;
            }
            if self.done {
                return Err(self.tampered("bytes follow its final frame"));
            }
            if rest.len() < 4 {
                break;
            }
            let len = u32::from_be_bytes(rest[..4].try_into().expect("4 bytes")) as usize;
            if !(TAG_BYTES..=FRAME_BYTES + TAG_BYTES).contains(&len) {
                return Err(self.tampered("a frame has an impossible length"));
            }
            if rest.len() < 4 + len {
                break;
            }
            let mut body = rest[4..4 + len].to_vec();
            let state = self.state.as_mut().expect("the header came first");
            let frame = state.frame;
            // A frame is either the final one or not; only one of the two opens it.
            let opened = [false, true].into_iter().find_map(|last| {
                let mut attempt = body.clone();
                state
                    .key
                    .open_in_place(nonce(&state.prefix, frame, last), Aad::from(state.aad), &mut attempt)
                    .ok()
                    .map(|plain| (plain.to_vec(), last))
            });
            body.clear();
            let Some((plain, last)) = opened else {
                return Err(self.tampered(format!("frame {frame} fails authentication")));
            };
            state.frame += 1;
            self.done = last;
            used += 4 + len;
            out(&plain)?;
        }
        self.buffer.drain(..used);
        Ok(())
    }

    /// Checks the object ended with its final frame and nothing after it.
    pub fn finish(self) -> Result<(), BackupError> {
        if !self.done {
            return Err(BackupError::Truncated { object: self.name });
        }
        if !self.buffer.is_empty() {
            return Err(self.tampered("bytes follow its final frame"));
        }
        Ok(())
    }
}

/// Opens a whole small object at once.
pub fn open_all(provider: Arc<dyn KeyProvider>, name: &str, sealed: &[u8]) -> Result<Vec<u8>, BackupError> {
    let mut unsealer = Unsealer::new(provider, name);
    let mut plain = Vec::new();
    unsealer.feed(sealed, &mut |chunk| {
        plain.extend_from_slice(chunk);
        Ok(())
    })?;
    unsealer.finish()?;
    Ok(plain)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::MasterKeyFile;

    fn provider() -> Arc<dyn KeyProvider> {
        Arc::new(MasterKeyFile::parse(&format!("k1 {}\n", "ab".repeat(32)), "test").unwrap())
    }

    #[test]
    fn an_object_round_trips_in_any_pieces() {
        let provider = provider();
        let plain: Vec<u8> = (0..(2 * FRAME_BYTES + 17)).map(|i| (i % 251) as u8).collect();
        let sealed = seal_all(provider.as_ref(), "full/a/data", &plain).unwrap();
        assert!(!sealed.windows(64).any(|w| w == &plain[..64]), "the plaintext shows");
        assert_eq!(open_all(provider.clone(), "full/a/data", &sealed).unwrap(), plain);
        let mut unsealer = Unsealer::new(provider, "full/a/data");
        let mut opened = Vec::new();
        for piece in sealed.chunks(7_777) {
            unsealer
                .feed(piece, &mut |chunk| {
                    opened.extend_from_slice(chunk);
                    Ok(())
                })
                .unwrap();
        }
        unsealer.finish().unwrap();
        assert_eq!(opened, plain);
        let empty = seal_all(provider_ref(), "e", b"").unwrap();
        assert_eq!(open_all(super::tests::provider(), "e", &empty).unwrap(), b"");
    }

    fn provider_ref() -> &'static dyn KeyProvider {
        Box::leak(Box::new(
            MasterKeyFile::parse(&format!("k1 {}\n", "ab".repeat(32)), "test").unwrap(),
        ))
    }

    #[test]
    fn altered_cut_renamed_or_foreign_objects_are_refused() {
        let provider = provider();
        let plain = vec![7u8; FRAME_BYTES + 100];
        let sealed = seal_all(provider.as_ref(), "full/a/data", &plain).unwrap();

        let mut flipped = sealed.clone();
        let at = flipped.len() - 50;
        flipped[at] ^= 1;
        let err = open_all(provider.clone(), "full/a/data", &flipped).unwrap_err();
        assert!(matches!(err, BackupError::Tampered { .. }), "{err}");

        // Cut after the first frame: every remaining frame authenticates, yet it is refused.
        let first_frame_end = sealed.len() - (4 + 100 + TAG_BYTES);
        let err = open_all(provider.clone(), "full/a/data", &sealed[..first_frame_end]).unwrap_err();
        assert!(matches!(err, BackupError::Truncated { .. }), "{err}");

        let err = open_all(provider.clone(), "full/b/data", &sealed).unwrap_err();
        assert!(err.to_string().contains("written as \"full/a/data\""), "{err}");

        let mut longer = sealed.clone();
        longer.extend_from_slice(b"extra");
        assert!(open_all(provider.clone(), "full/a/data", &longer).is_err());

        let other: Arc<dyn KeyProvider> =
            Arc::new(MasterKeyFile::parse(&format!("k2 {}\n", "cd".repeat(32)), "test").unwrap());
        let err = open_all(other, "full/a/data", &sealed).unwrap_err();
        assert!(err.to_string().contains("does not unwrap"), "{err}");
    }
}
