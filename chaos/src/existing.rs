//! A drill against a cluster that runs elsewhere (staging, say): the drill
//! reaches it through `--endpoints` (nodes, or a load balancer), as an
//! operator with a client certificate, makes its two tenants there if they
//! are missing and issues each a key for this run (revoked at the end).
//! The fault comes from outside: a start command and a stop command (an
//! AWS FIS experiment started and stopped with the AWS CLI, for example),
//! or marks an SRE makes by hand at the terminal.

use std::path::{Path, PathBuf};
use std::time::Duration;

use safekeep_client::{ApiKeyRole, Client, ClientTls};
use tokio::io::AsyncBufReadExt;

use crate::cluster::{TENANTS, drill_client};

/// Longest a fault hook may run.
const HOOK_TIMEOUT: Duration = Duration::from_secs(300);

/// How to reach the cluster and where its fault comes from.
#[derive(Debug, Clone)]
pub struct ExistingOptions {
    pub endpoints: Vec<String>,
    /// The CA the nodes' certificates chain to; none means plaintext.
    pub ca: Option<PathBuf>,
    /// An operator's client certificate and key, to make the drill's tenants and keys.
    pub operator: Option<(PathBuf, PathBuf)>,
    /// Name to check the nodes' certificates against, if not the endpoint's host.
    pub server_name: Option<String>,
    /// Run through `sh -c` when the fault begins.
    pub fault_start_cmd: Option<String>,
    /// Run through `sh -c` when the fault ends.
    pub fault_stop_cmd: Option<String>,
}

/// Why the cluster could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ExistingError {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("the SDK failed: {0}")]
    Client(#[from] safekeep_client::Error),
    #[error("the fault hook `{command}` {outcome}")]
    Hook { command: String, outcome: String },
    #[error("cannot read the mark from the terminal: {0}")]
    Terminal(std::io::Error),
}

/// The cluster elsewhere.
pub struct ExistingCluster {
    options: ExistingOptions,
    tls: Option<ClientTls>,
    issued: Vec<String>,
}

fn read(path: &Path) -> Result<Vec<u8>, ExistingError> {
    std::fs::read(path).map_err(|source| ExistingError::Read {
        path: path.to_path_buf(),
        source,
    })
}

impl ExistingCluster {
    /// Reads the credentials; nothing is sent until the first request.
    pub fn open(options: ExistingOptions) -> Result<Self, ExistingError> {
        let tls = match &options.ca {
            None => None,
            Some(ca) => Some(ClientTls {
                ca_pem: read(ca)?,
                identity: match &options.operator {
                    Some((cert, key)) => Some((read(cert)?, read(key)?)),
                    None => None,
                },
                server_name: options.server_name.clone(),
            }),
        };
        Ok(Self {
            options,
            tls,
            issued: Vec::new(),
        })
    }

    /// The endpoints as given.
    pub fn endpoints(&self) -> Vec<String> {
        self.options.endpoints.clone()
    }

    /// An SDK client over `endpoints`, as the operator or with `api_key`.
    pub async fn client(&self, endpoints: Vec<String>, api_key: Option<&str>) -> Result<Client, ExistingError> {
        Ok(drill_client(endpoints, self.tls.clone(), api_key).await?)
    }

    /// Makes the drill's tenants where missing, and issues each a key for this run.
    pub async fn tenant_keys(&mut self, run: &str) -> Result<Vec<(String, String)>, ExistingError> {
        let admin = self.client(self.endpoints(), None).await?;
        let mut keys = Vec::new();
        for tenant in TENANTS {
            match admin.create_tenant(tenant).await {
                Ok(_) => {}
                Err(e) if e.code() == tonic::Code::AlreadyExists => {}
                Err(e) => return Err(e.into()),
            }
            let issued = admin
                .issue_api_key(tenant, ApiKeyRole::Admin, &format!("chaos drill {run}"))
                .await?;
            self.issued.push(issued.key.key_id.clone());
            keys.push((tenant.to_string(), issued.secret));
        }
        Ok(keys)
    }

    /// Revokes the keys this run issued (best effort: the drill's verdict stands either way).
    pub async fn revoke_keys(&mut self) {
        let Ok(admin) = self.client(self.endpoints(), None).await else {
            return;
        };
        for key in self.issued.drain(..) {
            let _ = admin.revoke_api_key(&key).await;
        }
    }

    /// Begins the fault: runs the start hook, or waits for the SRE's mark.
    /// Returns how the report words it.
    pub async fn begin_fault(&self) -> Result<String, ExistingError> {
        match &self.options.fault_start_cmd {
            Some(command) => {
                run_hook(command).await?;
                Ok(format!("external, started with `{command}`"))
            }
            None => {
                wait_for_mark("inject the fault now; press Enter once it is in force").await?;
                Ok("external, marked by hand".to_string())
            }
        }
    }

    /// Ends the fault: runs the stop hook, or waits for the SRE's mark when
    /// the start was marked by hand. With a start hook and no stop hook the
    /// fault ends on its own (an experiment with its own duration).
    pub async fn end_fault(&self) -> Result<(), ExistingError> {
        match (&self.options.fault_start_cmd, &self.options.fault_stop_cmd) {
            (_, Some(command)) => run_hook(command).await,
            (None, None) => wait_for_mark("heal the fault now; press Enter once it is healed").await,
            (Some(_), None) => Ok(()),
        }
    }

    /// Whether the fault's length is marked by hand rather than held for `--outage`.
    pub fn marked_by_hand(&self) -> bool {
        self.options.fault_start_cmd.is_none()
    }
}

async fn run_hook(command: &str) -> Result<(), ExistingError> {
    let failed = |outcome: String| ExistingError::Hook {
        command: command.to_string(),
        outcome,
    };
    let run = tokio::process::Command::new("sh")
        .args(["-c", command])
        .kill_on_drop(true)
        .status();
    match tokio::time::timeout(HOOK_TIMEOUT, run).await {
        Err(_) => Err(failed(format!("did not finish within {HOOK_TIMEOUT:?}"))),
        Ok(Err(e)) => Err(failed(format!("could not start: {e}"))),
        Ok(Ok(status)) if status.success() => Ok(()),
        Ok(Ok(status)) => Err(failed(format!("failed with {status}"))),
    }
}

async fn wait_for_mark(prompt: &str) -> Result<(), ExistingError> {
    eprintln!("{prompt}");
    let mut line = String::new();
    tokio::io::BufReader::new(tokio::io::stdin())
        .read_line(&mut line)
        .await
        .map_err(ExistingError::Terminal)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_failing_hook_is_an_error_that_names_it() {
        run_hook("true").await.unwrap();
        let error = run_hook("exit 3").await.unwrap_err().to_string();
        assert!(error.contains("`exit 3`") && error.contains("3"), "{error}");
    }
}
