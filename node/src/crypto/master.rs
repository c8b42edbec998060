//! Master keys kept by the node itself: `MasterKeyFile` holds keys read from
//! a local file (or one key in an environment variable), for development and
//! self-managed deployments, and wraps data keys with them.
//!
//! File format: one key per line, `ID HEX` with 64 hex digits (256 bits);
//! `#` starts a comment. The first key wraps new data keys; the others still
//! unwrap, which is how a master key is rotated without re-encrypting data.

use std::collections::BTreeMap;
use std::path::Path;

use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};

use super::CryptoError;
use super::{KEY_BYTES, KeyProvider};
use crate::model::command::WrappedDataKey;

/// Longest master key id.
pub const MAX_MASTER_KEY_ID_LEN: usize = 64;
/// Domain separation of wrapped data keys.
const WRAP_CONTEXT: &[u8] = b"safekeep/data-key/v1";

/// Master keys read from a file or an environment variable.
pub struct MasterKeyFile {
    current: String,
    keys: BTreeMap<String, LessSafeKey>,
    random: SystemRandom,
}

pub(super) fn bad(path: &str, reason: impl Into<String>) -> CryptoError {
    CryptoError::MasterKeyFile {
        path: path.to_string(),
        reason: reason.into(),
    }
}

fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_MASTER_KEY_ID_LEN
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

impl MasterKeyFile {
    /// Reads `ID HEX` lines from `path`.
    pub fn load(path: &Path) -> Result<Self, CryptoError> {
        let shown = path.display().to_string();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(path)
                .map_err(|e| bad(&shown, e.to_string()))?
                .permissions()
                .mode();
            if mode & 0o077 != 0 {
                return Err(bad(
                    &shown,
                    format!("readable by others (mode {:o}); chmod 600 it", mode & 0o777),
                ));
            }
        }
        let text = std::fs::read_to_string(path).map_err(|e| bad(&shown, e.to_string()))?;
        Self::parse(&text, &shown)
    }

    /// Parses the file format; `source` names where the text came from in errors.
    pub fn parse(text: &str, source: &str) -> Result<Self, CryptoError> {
        let mut current = None;
        let mut keys = BTreeMap::new();
        for (number, line) in text.lines().enumerate() {
            let line = line.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            let (id, hex_key) = line
                .split_once(char::is_whitespace)
                .ok_or_else(|| bad(source, format!("line {}: expected ID HEX", number + 1)))?;
            let hex_key = hex_key.trim();
            if !valid_id(id) {
                return Err(bad(source, format!("line {}: bad key id", number + 1)));
            }
            let bytes = hex::decode(hex_key)
                .ok()
                .filter(|b| b.len() == KEY_BYTES)
                .ok_or_else(|| {
                    bad(
                        source,
                        format!("line {}: a key is {} hex digits", number + 1, KEY_BYTES * 2),
                    )
                })?;
            let key = UnboundKey::new(&AES_256_GCM, &bytes).map_err(|_| bad(source, "unusable key"))?;
            if keys.insert(id.to_string(), LessSafeKey::new(key)).is_some() {
                return Err(bad(source, format!("line {}: key id '{id}' appears twice", number + 1)));
            }
            current.get_or_insert_with(|| id.to_string());
        }
        let current = current.ok_or_else(|| bad(source, "holds no key"))?;
        Ok(Self {
            current,
            keys,
            random: SystemRandom::new(),
        })
    }

    /// Writes a new file with one fresh key named `id`, readable by its owner only.
    pub fn generate(path: &Path, id: &str) -> Result<(), CryptoError> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let shown = path.display().to_string();
        if !valid_id(id) {
            return Err(bad(&shown, format!("bad key id '{id}'")));
        }
        let mut key = [0u8; KEY_BYTES];
        SystemRandom::new().fill(&mut key).map_err(|_| CryptoError::Random)?;
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .map_err(|e| bad(&shown, e.to_string()))?;
        writeln!(
            file,
            "# safekeep master keys: the first wraps new data keys\n{id} {}",
            hex::encode(key)
        )
        .and_then(|()| file.sync_all())
        .map_err(|e| bad(&shown, e.to_string()))
    }
}

fn wrap_aad(tenant: &str, version: u32, master_key_id: &str) -> Vec<u8> {
    let mut aad = WRAP_CONTEXT.to_vec();
    for part in [tenant.as_bytes(), master_key_id.as_bytes()] {
        aad.extend_from_slice(&(part.len() as u32).to_be_bytes());
        aad.extend_from_slice(part);
    }
    aad.extend_from_slice(&version.to_be_bytes());
    aad
}

impl KeyProvider for MasterKeyFile {
    fn current_key_id(&self) -> &str {
        &self.current
    }

    fn wrap(&self, tenant: &str, version: u32, data_key: &[u8; KEY_BYTES]) -> Result<WrappedDataKey, CryptoError> {
        let key = &self.keys[&self.current];
        let mut nonce = [0u8; NONCE_LEN];
        self.random.fill(&mut nonce).map_err(|_| CryptoError::Random)?;
        let mut sealed = data_key.to_vec();
        key.seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(wrap_aad(tenant, version, &self.current)),
            &mut sealed,
        )
        .map_err(|_| CryptoError::Random)?;
        let mut wrapped = nonce.to_vec();
        wrapped.extend_from_slice(&sealed);
        Ok(WrappedDataKey {
            version,
            master_key_id: self.current.clone(),
            wrapped,
        })
    }

    fn unwrap(&self, tenant: &str, wrapped: &WrappedDataKey) -> Result<[u8; KEY_BYTES], CryptoError> {
        let key = self
            .keys
            .get(&wrapped.master_key_id)
            .ok_or_else(|| CryptoError::UnknownMasterKey(wrapped.master_key_id.clone()))?;
        let wrong = || CryptoError::WrongMasterKey {
            tenant: tenant.to_string(),
            version: wrapped.version,
            master_key_id: wrapped.master_key_id.clone(),
        };
        if wrapped.wrapped.len() < NONCE_LEN {
            return Err(wrong());
        }
        let (nonce, sealed) = wrapped.wrapped.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| wrong())?;
        let mut buffer = sealed.to_vec();
        let plain = key
            .open_in_place(
                nonce,
                Aad::from(wrap_aad(tenant, wrapped.version, &wrapped.master_key_id)),
                &mut buffer,
            )
            .map_err(|_| wrong())?;
        <[u8; KEY_BYTES]>::try_from(&*plain).map_err(|_| wrong())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ONE: &str = "k1 0000000000000000000000000000000000000000000000000000000000000001";
    const TWO: &str = "k2 0000000000000000000000000000000000000000000000000000000000000002";

    #[test]
    fn a_wrapped_key_unwraps_only_for_its_tenant_and_version() {
        let keys = MasterKeyFile::parse(ONE, "test").unwrap();
        let data_key = [7u8; KEY_BYTES];
        let wrapped = keys.wrap("acme", 1, &data_key).unwrap();
        assert_eq!(keys.unwrap("acme", &wrapped).unwrap(), data_key);
        assert!(keys.unwrap("other", &wrapped).is_err(), "bound to its tenant");
        let mut moved = wrapped.clone();
        moved.version = 2;
        assert!(keys.unwrap("acme", &moved).is_err(), "bound to its version");
    }

    #[test]
    fn a_second_key_still_unwraps_after_rotation_and_a_wrong_key_is_named() {
        let old = MasterKeyFile::parse(ONE, "test").unwrap();
        let wrapped = old.wrap("acme", 1, &[9u8; KEY_BYTES]).unwrap();
        let rotated = MasterKeyFile::parse(&format!("{TWO}\n{ONE}"), "test").unwrap();
        assert_eq!(rotated.current_key_id(), "k2");
        assert_eq!(rotated.unwrap("acme", &wrapped).unwrap(), [9u8; KEY_BYTES]);
        let impostor = MasterKeyFile::parse(
            "k1 00000000000000000000000000000000000000000000000000000000000000ff",
            "test",
        )
        .unwrap();
        assert!(matches!(
            impostor.unwrap("acme", &wrapped),
            Err(CryptoError::WrongMasterKey { .. })
        ));
        let missing = MasterKeyFile::parse(TWO, "test").unwrap();
        assert!(matches!(
            missing.unwrap("acme", &wrapped),
            Err(CryptoError::UnknownMasterKey(_))
        ));
    }

    #[test]
    fn malformed_files_are_refused() {
        for text in [
            "",
            "# only a comment",
            "k1 abcd",
            "k1",
            "bad/id 00",
            &format!("{ONE}\n{ONE}"),
        ] {
            assert!(MasterKeyFile::parse(text, "test").is_err(), "{text:?}");
        }
    }
}
