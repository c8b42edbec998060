//! Which key provider a node uses: `load_provider` picks the one its
//! settings name, `MasterKeyFile` (`master.rs`) for keys the node holds
//! (from a file or the environment), or `KmsKeyProvider` (`kms.rs`) for an
//! AWS KMS key; exactly one of them.

use super::master::MasterKeyFile;
use super::{CryptoError, KeyProvider};

/// Where a node's master keys come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MasterKeySource {
    File,
    Environment,
    Kms,
}

/// Picks the one source the settings and `SAFEKEEP_MASTER_KEY` (`from_env`,
/// set when non-empty) name; two or more is an error, none is `NoMasterKey`.
fn master_key_source(
    settings: &crate::config::EncryptionSettings,
    from_env: bool,
) -> Result<MasterKeySource, CryptoError> {
    use crate::config::MASTER_KEY_ENV;
    let named = [
        (
            settings.master_key_file.is_some(),
            MasterKeySource::File,
            "encryption.master_key_file",
        ),
        (from_env, MasterKeySource::Environment, MASTER_KEY_ENV),
        (
            settings.kms_key_id.is_some(),
            MasterKeySource::Kms,
            "encryption.kms_key_id",
        ),
    ];
    let set: Vec<_> = named.iter().filter(|(set, _, _)| *set).collect();
    match set.as_slice() {
        [] => Err(CryptoError::NoMasterKey),
        [(_, source, _)] => Ok(*source),
        several => Err(CryptoError::ConflictingMasterKeys(
            several
                .iter()
                .map(|(_, _, name)| *name)
                .collect::<Vec<_>>()
                .join(" and "),
        )),
    }
}

/// The key provider a node's settings name: a key file, the environment
/// variable, or an AWS KMS key; exactly one of them.
pub fn load_provider(
    settings: &crate::config::EncryptionSettings,
) -> Result<std::sync::Arc<dyn KeyProvider>, CryptoError> {
    use crate::config::MASTER_KEY_ENV;
    let from_env = std::env::var_os(MASTER_KEY_ENV).filter(|value| !value.is_empty());
    match master_key_source(settings, from_env.is_some())? {
        MasterKeySource::File => {
            let path = settings.master_key_file.as_deref().ok_or(CryptoError::NoMasterKey)?;
            Ok(std::sync::Arc::new(MasterKeyFile::load(path)?))
        }
        MasterKeySource::Environment => {
            let source = format!("${MASTER_KEY_ENV}");
            let text = from_env
                .and_then(|value| value.into_string().ok())
                .ok_or_else(|| super::master::bad(&source, "not valid UTF-8"))?;
            Ok(std::sync::Arc::new(MasterKeyFile::parse(&text, &source)?))
        }
        MasterKeySource::Kms => kms_provider(settings),
    }
}

#[cfg(feature = "aws-kms")]
fn kms_provider(settings: &crate::config::EncryptionSettings) -> Result<std::sync::Arc<dyn KeyProvider>, CryptoError> {
    Ok(std::sync::Arc::new(super::kms::KmsKeyProvider::connect(settings)?))
}

#[cfg(not(feature = "aws-kms"))]
fn kms_provider(_settings: &crate::config::EncryptionSettings) -> Result<std::sync::Arc<dyn KeyProvider>, CryptoError> {
    Err(CryptoError::KmsNotBuilt)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exactly_one_source_of_master_keys_is_chosen() {
        use crate::config::EncryptionSettings;
        let file = EncryptionSettings {
            master_key_file: Some("master.keys".into()),
            ..EncryptionSettings::default()
        };
        let kms = EncryptionSettings {
            kms_key_id: Some("alias/safekeep".into()),
            ..EncryptionSettings::default()
        };
        let none = EncryptionSettings::default();
        assert_eq!(master_key_source(&file, false).unwrap(), MasterKeySource::File);
        assert_eq!(master_key_source(&kms, false).unwrap(), MasterKeySource::Kms);
        assert_eq!(master_key_source(&none, true).unwrap(), MasterKeySource::Environment);
        assert!(matches!(master_key_source(&none, false), Err(CryptoError::NoMasterKey)));
        for (settings, conflict) in [
            (&file, "encryption.master_key_file and SAFEKEEP_MASTER_KEY"),
            (&kms, "SAFEKEEP_MASTER_KEY and encryption.kms_key_id"),
        ] {
            let err = master_key_source(settings, true).unwrap_err();
            assert!(err.to_string().contains(conflict), "{err}");
        }
    }

    #[cfg(not(feature = "aws-kms"))]
    #[test]
    fn a_kms_key_needs_the_aws_kms_feature() {
        let kms = crate::config::EncryptionSettings {
            kms_key_id: Some("alias/safekeep".into()),
            ..Default::default()
        };
        let err = kms_provider(&kms).err().expect("refused");
        assert!(matches!(err, CryptoError::KmsNotBuilt), "{err}");
    }
}
