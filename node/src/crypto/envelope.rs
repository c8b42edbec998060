//! The sealed form of a record value: AES-256-GCM under the tenant's data
//! key, with a fresh random 96-bit nonce per value and the tenant, the record
//! key and the data key version as associated data, so a ciphertext moved to
//! another record, tenant or key version fails to open.
//!
//! ```text
//! 0x01  u32-be data-key-version  nonce(12)  ciphertext  tag(16)
//! ```

use ring::aead::{Aad, LessSafeKey, NONCE_LEN, Nonce};
use ring::rand::{SecureRandom, SystemRandom};

use super::CryptoError;

/// First byte of a sealed value.
pub const SEALED_FORMAT: u8 = 0x01;
/// Bytes of the header before the ciphertext.
const HEADER_LEN: usize = 1 + 4 + NONCE_LEN;
/// Bytes of the authentication tag.
const TAG_LEN: usize = 16;
/// Bytes sealing adds to a value.
pub const SEALING_OVERHEAD: usize = HEADER_LEN + TAG_LEN;
/// Domain separation of sealed values.
const SEAL_CONTEXT: &[u8] = b"safekeep/record/v1";

fn aad(tenant: &str, key: &str, version: u32) -> Vec<u8> {
    let mut aad = Vec::with_capacity(SEAL_CONTEXT.len() + 12 + tenant.len() + key.len());
    aad.extend_from_slice(SEAL_CONTEXT);
    for part in [tenant.as_bytes(), key.as_bytes()] {
        aad.extend_from_slice(&(part.len() as u32).to_be_bytes());
        aad.extend_from_slice(part);
    }
    aad.extend_from_slice(&version.to_be_bytes());
    aad
}

/// Seals `plaintext` as the value of `key` of `tenant` with data key `version`.
pub fn seal(
    data_key: &LessSafeKey,
    version: u32,
    tenant: &str,
    key: &str,
    plaintext: &[u8],
    random: &SystemRandom,
) -> Result<Vec<u8>, CryptoError> {
    let mut nonce = [0u8; NONCE_LEN];
    random.fill(&mut nonce).map_err(|_| CryptoError::Random)?;
    let mut out = Vec::with_capacity(plaintext.len() + SEALING_OVERHEAD);
    out.push(SEALED_FORMAT);
    out.extend_from_slice(&version.to_be_bytes());
    out.extend_from_slice(&nonce);
    out.extend_from_slice(plaintext);
    let mut body = out.split_off(HEADER_LEN);
    data_key
        .seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(aad(tenant, key, version)),
            &mut body,
        )
        .map_err(|_| CryptoError::Random)?;
    out.extend_from_slice(&body);
    Ok(out)
}

/// The data key version a sealed value names.
pub fn sealed_version(sealed: &[u8]) -> Result<u32, CryptoError> {
    if sealed.len() < SEALING_OVERHEAD || sealed[0] != SEALED_FORMAT {
        return Err(CryptoError::Malformed);
    }
    Ok(u32::from_be_bytes([sealed[1], sealed[2], sealed[3], sealed[4]]))
}

/// Opens a value sealed by `seal` for the same tenant and key.
pub fn open(data_key: &LessSafeKey, tenant: &str, key: &str, sealed: &[u8]) -> Result<Vec<u8>, CryptoError> {
    let version = sealed_version(sealed)?;
    let nonce = Nonce::try_assume_unique_for_key(&sealed[5..HEADER_LEN]).map_err(|_| CryptoError::Malformed)?;
    let mut body = sealed[HEADER_LEN..].to_vec();
    let plain = data_key
        .open_in_place(nonce, Aad::from(aad(tenant, key, version)), &mut body)
        .map_err(|_| CryptoError::Tampered)?;
    let len = plain.len();
    body.truncate(len);
    Ok(body)
}

#[cfg(test)]
mod tests {
    use ring::aead::{AES_256_GCM, UnboundKey};

    use super::*;

    fn key(byte: u8) -> LessSafeKey {
        LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &[byte; 32]).unwrap())
    }

    #[test]
    fn a_sealed_value_opens_only_where_it_was_sealed() {
        let random = SystemRandom::new();
        let sealed = seal(&key(1), 3, "acme", "users/1", b"secret", &random).unwrap();
        assert_eq!(sealed.len(), b"secret".len() + SEALING_OVERHEAD);
        assert_eq!(sealed_version(&sealed).unwrap(), 3);
        assert_eq!(open(&key(1), "acme", "users/1", &sealed).unwrap(), b"secret");
        assert!(matches!(
            open(&key(1), "acme", "users/2", &sealed),
            Err(CryptoError::Tampered)
        ));
        assert!(matches!(
            open(&key(1), "acmf", "users/1", &sealed),
            Err(CryptoError::Tampered)
        ));
        assert!(matches!(
            open(&key(2), "acme", "users/1", &sealed),
            Err(CryptoError::Tampered)
        ));
        let mut relabelled = sealed.clone();
        relabelled[4] ^= 1;
        assert!(matches!(
            open(&key(1), "acme", "users/1", &relabelled),
            Err(CryptoError::Tampered)
        ));
        for position in [6, sealed.len() / 2, sealed.len() - 1] {
            let mut flipped = sealed.clone();
            flipped[position] ^= 0x80;
            assert!(matches!(
                open(&key(1), "acme", "users/1", &flipped),
                Err(CryptoError::Tampered)
            ));
        }
        assert!(matches!(
            open(&key(1), "acme", "users/1", b"plain"),
            Err(CryptoError::Malformed)
        ));
    }

    #[test]
    fn nonces_differ_between_seals_of_the_same_value() {
        let random = SystemRandom::new();
        let a = seal(&key(1), 1, "t", "k", b"same", &random).unwrap();
        let b = seal(&key(1), 1, "t", "k", b"same", &random).unwrap();
        assert_ne!(a, b);
    }
}
