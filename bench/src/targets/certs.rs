//! The development CA both clusters' certificates come from. `safekeep-node
//! certs` makes the CA, one certificate per member (server and client
//! authentication, `127.0.0.1` and `localhost` as subject alternative names)
//! and a client certificate; safekeep's local cluster reuses the CA, and
//! etcd's members present the member certificates on their client and peer
//! ports, so both systems pay for the same kind of TLS.

use std::path::{Path, PathBuf};

use crate::error::BenchError;
use crate::procs::run_helper;
use crate::settings::REPLACEMENT_MEMBER;

/// The operator (safekeep) or client (etcd) the benchmark authenticates as.
pub const BENCH_CLIENT: &str = "bench";
/// Names the certificates are valid for.
const HOSTS: &str = "127.0.0.1,localhost";
/// Days the development certificates stay valid.
const VALIDITY_DAYS: &str = "2";

/// Paths of the development certificates in one directory.
#[derive(Debug, Clone)]
pub struct DevCerts {
    pub dir: PathBuf,
}

impl DevCerts {
    /// Makes the CA and certificates in `dir` with `safekeep-node certs`: one
    /// per initial member and one for the replacement.
    pub async fn make(node_program: &Path, dir: &Path) -> Result<Self, BenchError> {
        let nodes: Vec<String> = (1..=REPLACEMENT_MEMBER).map(|id| id.to_string()).collect();
        let args = [
            "certs".to_string(),
            "--dir".into(),
            dir.display().to_string(),
            "--nodes".into(),
            nodes.join(","),
            "--hosts".into(),
            HOSTS.into(),
            "--client".into(),
            format!("operator:{BENCH_CLIENT}"),
            "--validity-days".into(),
            VALIDITY_DAYS.into(),
        ];
        run_helper("making the development certificates", node_program, args).await?;
        let certs = Self { dir: dir.to_path_buf() };
        let mut expected = vec![certs.ca(), certs.ca_key(), certs.client().0, certs.client().1];
        for member in 1..=REPLACEMENT_MEMBER {
            let (cert, key) = certs.member(member);
            expected.extend([cert, key]);
        }
        if let Some(missing) = expected.iter().find(|path| !path.is_file()) {
            return Err(BenchError::Malformed {
                path: missing.clone(),
                detail: "safekeep-node certs did not write this file".into(),
            });
        }
        Ok(certs)
    }

    /// The CA certificate.
    pub fn ca(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    /// The CA's private key (a development CA: it signs nothing else).
    pub fn ca_key(&self) -> PathBuf {
        self.dir.join("ca.key")
    }

    /// Certificate and key of member `member` (1-based; the replacement's too).
    pub fn member(&self, member: u16) -> (PathBuf, PathBuf) {
        assert!(
            (1..=REPLACEMENT_MEMBER).contains(&member),
            "member {member} out of 1..={REPLACEMENT_MEMBER}"
        );
        (
            self.dir.join(format!("node-{member}.pem")),
            self.dir.join(format!("node-{member}.key")),
        )
    }

    /// The benchmark's client certificate and key.
    pub fn client(&self) -> (PathBuf, PathBuf) {
        (
            self.dir.join(format!("operator-{BENCH_CLIENT}.pem")),
            self.dir.join(format!("operator-{BENCH_CLIENT}.key")),
        )
    }
}
