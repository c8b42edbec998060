//! The last check of a drill: after recovery every replica holds the same
//! data. Each node is read on its own, from its own replica (a stale read,
//! so nothing is forwarded), key by key, until it answers what the cluster
//! finally holds; a node that has not within the deadline diverged, and the
//! drill says which key it holds differently.

use std::collections::BTreeMap;
use std::time::Duration;

use safekeep_client::{Client, Consistency};
use tokio::time::Instant;

/// How long a node has to hold what the cluster holds.
pub const CONVERGE_DEADLINE: Duration = Duration::from_secs(20);
/// Pause between two rounds of reads of a node that still lags.
const RETRY_PAUSE: Duration = Duration::from_millis(200);

/// A record as the final reads saw it: its value and version, or none.
pub type Held = Option<(Vec<u8>, u64)>;

/// One node that did not come to hold what the cluster holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Divergence {
    pub node: u64,
    pub tenant: String,
    pub key: String,
    /// What the node last answered, or why it did not.
    pub node_holds: String,
    pub cluster_holds: String,
}

impl std::fmt::Display for Divergence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "node {} holds {} for {}/{} after recovery; the cluster holds {}",
            self.node, self.node_holds, self.tenant, self.key, self.cluster_holds
        )
    }
}

fn describe(held: &Held) -> String {
    match held {
        None => "no record".to_string(),
        Some((value, version)) => format!("{:?}@v{version}", String::from_utf8_lossy(value)),
    }
}

/// Reads every key of `finals` (by tenant) from `node` through `clients`
/// (one per tenant, each reaching only that node), until each matches or
/// `within` has passed.
pub async fn check_node(
    node: u64,
    clients: &BTreeMap<String, Client>,
    finals: &BTreeMap<(String, String), Held>,
    within: Duration,
) -> Option<Divergence> {
    let deadline = Instant::now() + within;
    loop {
        let mut first_mismatch = None;
        for ((tenant, key), want) in finals {
            let client = &clients[tenant];
            let got = match client.get_with(tenant, key, Consistency::Stale).await {
                Ok(record) => record.map(|r| (r.value, r.version)),
                Err(e) => {
                    first_mismatch = Some((tenant, key, format!("an error ({e})"), want));
                    break;
                }
            };
            if got != *want {
                first_mismatch = Some((tenant, key, describe(&got), want));
                break;
            }
        }
        // Every key matched: the node holds what the cluster holds.
        let Some((tenant, key, node_holds, want)) = first_mismatch else {
            break None;
        };
        if Instant::now() >= deadline {
            break Some(Divergence {
                node,
                tenant: tenant.clone(),
                key: key.clone(),
                node_holds,
                cluster_holds: describe(want),
            });
        }
        tokio::time::sleep(RETRY_PAUSE).await;
    }
}
