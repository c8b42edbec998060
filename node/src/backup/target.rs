//! Backup targets: where the objects go. `file:///DIR` is a local directory
//! (a mounted volume, or tests); `s3://BUCKET[/PREFIX]` is S3 or any
//! S3-compatible store, through the `object_store` crate. Both look the
//! same to the rest of `backup/`: a store of named objects.

use std::sync::Arc;

use object_store::ObjectStore;
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::prefix::PrefixStore;

use super::error::BackupError;
use crate::config::S3Settings;

/// A backup target, opened.
#[derive(Clone)]
pub struct Target {
    /// The target as configured, for messages.
    pub url: String,
    pub store: Arc<dyn ObjectStore>,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.url)
    }
}

/// Whether an endpoint URL points at this machine (plain HTTP is allowed only there).
fn is_loopback(endpoint: &str) -> bool {
    let rest = endpoint.strip_prefix("http://").unwrap_or(endpoint);
    let host = rest.split(['/', ':']).next().unwrap_or("");
    host == "localhost"
        || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
        || rest.starts_with("[::1]")
}

impl Target {
    /// Opens `url` (`file:///DIR` or `s3://BUCKET[/PREFIX]`); a local
    /// directory is created when missing.
    pub fn open(url: &str, s3: &S3Settings) -> Result<Self, BackupError> {
        let bad = |reason: String| BackupError::BadTarget {
            target: url.to_string(),
            reason,
        };
        let store: Arc<dyn ObjectStore> = if let Some(dir) = url.strip_prefix("file://") {
            if !dir.starts_with('/') {
                return Err(bad("a file target needs an absolute path: file:///DIR".into()));
            }
            std::fs::create_dir_all(dir).map_err(|e| bad(format!("cannot create the directory: {e}")))?;
            Arc::new(
                LocalFileSystem::new_with_prefix(dir)
                    .map_err(|e| bad(e.to_string()))?
                    .with_automatic_cleanup(true),
            )
        } else if let Some(rest) = url.strip_prefix("s3://") {
            // The S3 client speaks HTTPS through rustls with the ring provider.
            let _ = rustls::crypto::ring::default_provider().install_default();
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err(bad("an S3 target names a bucket: s3://BUCKET[/PREFIX]".into()));
            }
            let mut builder = AmazonS3Builder::from_env().with_bucket_name(bucket);
            if let Some(region) = &s3.region {
                builder = builder.with_region(region);
            }
            if let Some(endpoint) = &s3.endpoint {
                let plain = endpoint.starts_with("http://");
                if plain && !is_loopback(endpoint) {
                    return Err(bad(format!(
                        "endpoint {endpoint} is plain HTTP: use https:// (plain HTTP only on loopback)"
                    )));
                }
                builder = builder.with_endpoint(endpoint).with_allow_http(plain);
            }
            let s3 = builder.build().map_err(|e| bad(e.to_string()))?;
            let prefix = prefix.trim_matches('/');
            if prefix.is_empty() {
                Arc::new(s3)
            } else {
                Arc::new(PrefixStore::new(s3, prefix))
            }
        } else {
            return Err(bad("a target is file:///DIR or s3://BUCKET[/PREFIX]".into()));
        };
        Ok(Self {
            url: url.to_string(),
            store,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_are_checked_before_use() {
        let s3 = S3Settings::default();
        assert!(
            Target::open("ftp://x", &s3)
                .unwrap_err()
                .to_string()
                .contains("file:///DIR")
        );
        assert!(
            Target::open("file://relative", &s3)
                .unwrap_err()
                .to_string()
                .contains("absolute")
        );
        let plain = S3Settings {
            endpoint: Some("http://s3.example.com".into()),
            ..S3Settings::default()
        };
        assert!(
            Target::open("s3://b", &plain)
                .unwrap_err()
                .to_string()
                .contains("plain HTTP")
        );
        assert!(is_loopback("http://127.0.0.1:5000"));
        assert!(!is_loopback("http://10.0.0.1:5000"));
    }
}
