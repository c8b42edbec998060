//! API keys: 256 random bits from the OS, shown to their holder once, stored
//! only as a SHA-256 hash (a key this random needs no slow hash), and checked
//! in constant time. A key reads `skp_<id>_<secret>`: the id finds the stored
//! hash, the secret proves possession.

use std::fmt;

use ring::digest;
use ring::rand::{SecureRandom, SystemRandom};
use subtle::ConstantTimeEq;

use crate::crypto::CryptoError;

/// Prefix of every API key, so leaked keys are easy to recognise and scan for.
pub const API_KEY_PREFIX: &str = "skp_";
/// Random bytes of a key id.
const KEY_ID_BYTES: usize = 8;
/// Random bytes of a secret: 256 bits.
const SECRET_BYTES: usize = 32;

/// A parsed API key. Its `Debug` never shows the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKeyToken {
    pub key_id: String,
    secret: Vec<u8>,
}

impl fmt::Debug for ApiKeyToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiKeyToken")
            .field("key_id", &self.key_id)
            .field("secret", &"[redacted]")
            .finish()
    }
}

impl ApiKeyToken {
    /// A new key from the system random source.
    pub fn generate() -> Result<Self, CryptoError> {
        let random = SystemRandom::new();
        let mut id = [0u8; KEY_ID_BYTES];
        let mut secret = vec![0u8; SECRET_BYTES];
        random.fill(&mut id).map_err(|_| CryptoError::Random)?;
        random.fill(&mut secret).map_err(|_| CryptoError::Random)?;
        Ok(Self {
            key_id: hex::encode(id),
            secret,
        })
    }

    /// Parses `skp_<16 hex>_<64 hex>`; anything else is not a key.
    pub fn parse(text: &str) -> Option<Self> {
        let rest = text.strip_prefix(API_KEY_PREFIX)?;
        let (id, secret) = rest.split_once('_')?;
        crate::model::validate::api_key_id(id).ok()?;
        let secret = hex::decode(secret).ok().filter(|s| s.len() == SECRET_BYTES)?;
        Some(Self {
            key_id: id.to_string(),
            secret,
        })
    }

    /// The text the holder presents. Shown once, at issue.
    pub fn expose(&self) -> String {
        format!("{API_KEY_PREFIX}{}_{}", self.key_id, hex::encode(&self.secret))
    }

    /// The hash stored in place of the secret.
    pub fn secret_hash(&self) -> [u8; 32] {
        let hash = digest::digest(&digest::SHA256, &self.secret);
        let mut out = [0u8; 32];
        out.copy_from_slice(hash.as_ref());
        out
    }

    /// Whether this key's secret hashes to `stored`, compared in constant time.
    pub fn matches(&self, stored: &[u8; 32]) -> bool {
        self.secret_hash().ct_eq(stored).into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_key_round_trips_and_matches_only_its_hash() {
        let key = ApiKeyToken::generate().unwrap();
        let text = key.expose();
        assert!(text.starts_with(API_KEY_PREFIX));
        let parsed = ApiKeyToken::parse(&text).unwrap();
        assert_eq!(parsed, key);
        assert!(parsed.matches(&key.secret_hash()));
        let other = ApiKeyToken::generate().unwrap();
        assert!(!other.matches(&key.secret_hash()));
        assert_ne!(other.key_id, key.key_id);
        assert!(!format!("{key:?}").contains(&text[20..]), "Debug hides the secret");
    }

    #[test]
    fn malformed_keys_do_not_parse() {
        let good = ApiKeyToken::generate().unwrap().expose();
        for bad in [
            "",
            "skp_",
            &good[4..],
            &good[..good.len() - 2],
            &good.replace("skp_", "skq_"),
            &format!("{good}00"),
            "skp_0123456789abcdef_zz",
            "skp_0123456789ABCDEF_0000000000000000000000000000000000000000000000000000000000000000",
        ] {
            assert!(ApiKeyToken::parse(bad).is_none(), "{bad:?}");
        }
    }
}
