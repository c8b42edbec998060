//! The `safekeep` command line: global options and subcommands, declared
//! with clap's derive API so `--help` documents every flag.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use safekeep_client::{ApiKeyRole, Consistency};

/// Endpoint used when neither `--endpoints` nor `SAFEKEEP_ENDPOINTS` is given.
pub const DEFAULT_ENDPOINT: &str = "127.0.0.1:7101";
/// Default per-request deadline, in milliseconds.
pub const DEFAULT_TIMEOUT_MS: u64 = 5_000;
/// Longest per-request deadline accepted, in milliseconds.
pub const MAX_TIMEOUT_MS: u64 = 60_000;

const AFTER_HELP: &str = "\
Exit codes:
  0  success
  1  any other error (permission denied, server error, ...)
  2  usage error (bad flags, missing --tenant, invalid argument)
  3  not found
  4  version conflict (compare-and-set did not match)
  5  cluster unreachable or request timed out

Examples:
  safekeep --tenant acme put greeting hello
  safekeep --tenant acme get greeting --json
  safekeep --tenant acme put config --value-file ./config.json --expected-version 12
  safekeep --endpoints 10.0.1.5:7101,10.0.2.5:7101 --ca ca.pem cluster status

TLS: --ca names the CA that signs the nodes' certificates (a local cluster
prints it: safekeep-local/certs/ca.pem). Operators add --client-cert and
--client-key.
Only a cluster started with --insecure-dev is reached with --plaintext.

Credentials: with both an operator's certificate and a tenant's API key set,
operator-only commands (cluster changes, tenant create/list/delete/rotate-key/
rewrap-keys, audit) present the certificate, record commands and tenant
export present the key, and commands either may run (api-key, cluster status)
present the key unless --as operator says otherwise.

Shell completions and the man page:
  safekeep completions bash > ~/.local/share/bash-completion/completions/safekeep
  safekeep man > safekeep.1";

/// Command-line client for safekeep, the replicated record store.
#[derive(Debug, Parser)]
#[command(name = "safekeep", version, after_help = AFTER_HELP)]
pub struct Cli {
    /// Comma-separated endpoints to try, as host:port or http://host:port
    /// (nodes, or a load balancer in front of them).
    #[arg(
        long,
        global = true,
        env = "SAFEKEEP_ENDPOINTS",
        value_delimiter = ',',
        default_value = DEFAULT_ENDPOINT
    )]
    pub endpoints: Vec<String>,

    /// Tenant whose records to read or write; required for record commands.
    #[arg(long, global = true, env = "SAFEKEEP_TENANT")]
    pub tenant: Option<String>,

    /// Deadline of each attempt of a request, in milliseconds; transient
    /// failures are retried within a total budget of at least 15 s.
    #[arg(
        long,
        global = true,
        default_value_t = DEFAULT_TIMEOUT_MS,
        value_parser = clap::value_parser!(u64).range(1..=MAX_TIMEOUT_MS)
    )]
    pub timeout_ms: u64,

    /// API key of a tenant (`skp_...`); sent as `authorization: Bearer <key>`.
    #[arg(long, global = true, env = "SAFEKEEP_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,

    /// CA certificate (PEM) the nodes' certificates chain to; turns TLS on.
    #[arg(long, global = true, env = "SAFEKEEP_CA", value_name = "PEM")]
    pub ca: Option<PathBuf>,

    /// Client certificate (PEM) to present, e.g. an operator's.
    #[arg(
        long,
        global = true,
        env = "SAFEKEEP_CERT",
        value_name = "PEM",
        requires = "client_key"
    )]
    pub client_cert: Option<PathBuf>,

    /// Private key (PEM) of --client-cert.
    #[arg(
        long,
        global = true,
        env = "SAFEKEEP_KEY",
        value_name = "PEM",
        requires = "client_cert"
    )]
    pub client_key: Option<PathBuf>,

    /// Name to check the nodes' certificates against, if not the endpoint's host.
    #[arg(long, global = true, env = "SAFEKEEP_SERVER_NAME")]
    pub server_name: Option<String>,

    /// Connect without TLS, to a cluster started with --insecure-dev.
    #[arg(
        long,
        global = true,
        env = "SAFEKEEP_PLAINTEXT",
        conflicts_with = "ca",
        value_parser = clap::builder::FalseyValueParser::new()
    )]
    pub plaintext: bool,

    /// Print machine-readable JSON on stdout instead of human-readable text.
    #[arg(long, global = true)]
    pub json: bool,

    /// Act as the operator (present the client certificate, not the API key) or the tenant
    /// (present the API key, not the certificate), for commands either may run when both are
    /// set. Without it, operator-only commands use the certificate, record commands the key,
    /// and the rest the key.
    #[arg(long = "as", global = true, env = "SAFEKEEP_AS", value_enum, value_name = "WHO")]
    pub act_as: Option<ActAs>,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create or replace a record.
    #[command(group(clap::ArgGroup::new("source").args(["value", "value_file"])))]
    Put {
        /// The record's key.
        key: String,
        /// The value, as a UTF-8 string (use --value-file for binary data).
        value: Option<String>,
        /// Read the value from this file, or from standard input when '-'.
        #[arg(long, value_name = "PATH|-")]
        value_file: Option<PathBuf>,
        /// Write only if the record's current version is N (0: only if it does not exist).
        #[arg(long, value_name = "N")]
        expected_version: Option<u64>,
        /// The record expires this many seconds after the write and is then removed
        /// (within about a second), unless written again.
        #[arg(long, value_name = "SECONDS", conflicts_with = "expected_version")]
        ttl: Option<u64>,
    },
    /// Read a record.
    Get {
        /// The record's key.
        key: String,
        /// How fresh the read must be.
        #[arg(long, value_enum, default_value_t = ConsistencyArg::Linearizable)]
        consistency: ConsistencyArg,
        /// Print only the value's bytes, exactly as stored (no newline added).
        #[arg(long, conflicts_with = "json")]
        value_only: bool,
    },
    /// Delete a record.
    Delete {
        /// The record's key.
        key: String,
        /// Delete only if the record's current version is N.
        #[arg(long, value_name = "N")]
        expected_version: Option<u64>,
    },
    /// List records in key order.
    List(ListArgs),
    /// Inspect and change cluster membership (operators).
    #[command(subcommand)]
    Cluster(ClusterCommand),
    /// Create, list and delete tenants (operators).
    #[command(subcommand)]
    Tenant(TenantCommand),
    /// Issue, list and revoke a tenant's API keys (operators, or the tenant's admin key).
    #[command(subcommand)]
    ApiKey(ApiKeyCommand),
    /// Read and verify the replicated, hash-chained audit log (operators).
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Full backups on demand (operators). `cluster status` shows where backups stand;
    /// verifying and restoring a backup are `safekeep-node backup verify` and
    /// `safekeep-node restore`.
    #[command(subcommand)]
    Backup(BackupCommand),
    /// Print a completion script for a shell, e.g.
    /// `safekeep completions bash > ~/.local/share/bash-completion/completions/safekeep`.
    Completions {
        /// The shell to complete in.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff), e.g. `safekeep man > safekeep.1`.
    Man,
}

/// `--as` values: whose credentials a command presents.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ActAs {
    /// The operator's client certificate.
    Operator,
    /// The tenant's API key.
    Tenant,
}

/// The `backup` subcommands.
#[derive(Debug, Subcommand)]
pub enum BackupCommand {
    /// Ask for a full backup now and wait until one that covers the request is in
    /// the backup target. The request goes through the log, so whichever node ships
    /// backups takes it; it is recorded in the audit log.
    Now {
        /// Why; recorded in the audit log.
        #[arg(long, default_value = "")]
        reason: String,
        /// Return once the request is in the log, without waiting for the backup.
        #[arg(long)]
        no_wait: bool,
        /// Longest wait for the backup, seconds.
        #[arg(long, default_value_t = 600)]
        timeout: u64,
    },
}

/// The `audit` subcommands.
#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Print audit entries, oldest first.
    List {
        /// Only entries after this sequence number.
        #[arg(long, default_value_t = 0)]
        after: u64,
        /// At most this many entries (0: the server's default).
        #[arg(long, default_value_t = 0)]
        limit: u32,
    },
    /// Check the whole log's hash chain; exits 1 if any entry was removed, reordered or edited.
    Verify,
}

/// The `tenant` subcommands.
#[derive(Debug, Subcommand)]
pub enum TenantCommand {
    /// Create a tenant and its first data key.
    Create {
        /// The tenant id: lowercase letters, digits, '-' and '_'.
        tenant: String,
    },
    /// List every tenant, deleted ones marked.
    List,
    /// Start a new data key version for the tenant's new writes (old versions still decrypt).
    RotateKey {
        /// The tenant id.
        tenant: String,
    },
    /// Set how long the tenant keeps records: a record not written for this long is removed
    /// (by a background pass, audited). With the operator's certificate or the tenant's
    /// admin key.
    SetRetention {
        /// The tenant id.
        tenant: String,
        /// Keep records this many days after their last write.
        #[arg(long, conflicts_with_all = ["seconds", "forever"], required_unless_present_any = ["seconds", "forever"])]
        days: Option<u64>,
        /// Keep records this many seconds after their last write.
        #[arg(long, conflicts_with = "forever")]
        seconds: Option<u64>,
        /// Keep records until they are deleted (the default for a new tenant).
        #[arg(long)]
        forever: bool,
    },
    /// Rewrap every tenant's data keys with the current master key (after adding a new
    /// master key first in every node's key file); no value is re-encrypted.
    RewrapKeys,
    /// Delete a tenant: its records, its API keys and its data keys (crypto-shredding).
    Delete {
        /// The tenant id.
        tenant: String,
        /// Why; recorded in the audit log.
        #[arg(long)]
        reason: String,
    },
    /// Write every record of a tenant as JSON lines, all as of one point in time.
    ///
    /// Each line holds `key`, `value` (UTF-8 text) or `value_base64` (other
    /// bytes), `version` and `updated_at_unix_ms`. A broken connection is
    /// resumed by itself; if the export still stops, it prints a token, and
    /// `--resume TOKEN --output FILE` appends the rest to the same file. The
    /// export is recorded in the audit log.
    Export {
        /// The tenant id.
        tenant: String,
        /// Write here instead of standard output (appended to with --resume).
        #[arg(long, short, value_name = "FILE")]
        output: Option<PathBuf>,
        /// Go on after the chunk this token was printed for.
        #[arg(long, value_name = "TOKEN")]
        resume: Option<String>,
    },
    /// Write records from JSON lines (as `tenant export` writes them: `key`, and
    /// `value` or `value_base64`) into a tenant, in atomic batches of up to 500.
    /// With the export of a one-tenant restore, this brings a tenant's records back
    /// into the live cluster under a new tenant name. Needs a writer key of the tenant.
    Import {
        /// The tenant id to write into.
        tenant: String,
        /// Read from this file instead of standard input.
        #[arg(long, short, value_name = "FILE")]
        input: Option<PathBuf>,
    },
}

/// The `api-key` subcommands; the tenant comes from --tenant.
#[derive(Debug, Subcommand)]
pub enum ApiKeyCommand {
    /// Issue a key for --tenant. Its secret is printed once and never stored.
    Issue {
        /// What the key may do.
        #[arg(long, value_enum)]
        role: RoleArg,
        /// A note for people: what the key is for.
        #[arg(long, default_value = "")]
        label: String,
    },
    /// List the keys of --tenant (never their secrets).
    List,
    /// Revoke a key; every node refuses it once the revocation commits.
    Revoke {
        /// The key's id (the 16 hex digits after `skp_`).
        key_id: String,
    },
}

/// `--role` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RoleArg {
    /// Get and List.
    Reader,
    /// Reads and writes.
    Writer,
    /// Reads, writes, and the tenant's own API keys.
    Admin,
}

impl From<RoleArg> for ApiKeyRole {
    fn from(arg: RoleArg) -> Self {
        match arg {
            RoleArg::Reader => Self::Reader,
            RoleArg::Writer => Self::Writer,
            RoleArg::Admin => Self::Admin,
        }
    }
}

/// Options of `list`.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// Only keys starting with this prefix.
    #[arg(long, default_value = "")]
    pub prefix: String,
    /// At most this many records per page (0: the server's default).
    #[arg(long, default_value_t = 0)]
    pub limit: u32,
    /// Continue where a previous page stopped.
    #[arg(long)]
    pub page_token: Option<String>,
    /// Follow page tokens until every matching record is listed.
    #[arg(long)]
    pub all: bool,
}

/// The `cluster` subcommands.
#[derive(Debug, Subcommand)]
pub enum ClusterCommand {
    /// Show members, roles, the leader and log progress.
    Status,
    /// Add a node that receives the log but does not vote.
    AddLearner {
        /// The new node's id (never reuse the id of a removed node).
        #[arg(long)]
        id: u64,
        /// The availability zone the node runs in.
        #[arg(long)]
        zone: String,
        /// Address other nodes reach the node at (host:port).
        #[arg(long)]
        peer_address: String,
        /// Address clients reach the node at (host:port).
        #[arg(long)]
        client_address: String,
    },
    /// Make a learner a voter.
    Promote {
        /// The learner's node id.
        id: u64,
        /// Accept a voter set that loses its quorum when one zone is lost.
        #[arg(long)]
        force: bool,
    },
    /// Remove a voter or learner; its id must never be reused.
    Remove {
        /// The member's node id.
        id: u64,
        /// Accept a voter set that loses its quorum when one zone is lost.
        #[arg(long)]
        force: bool,
    },
    /// Swap a voter for a caught-up learner in one joint change: the way to
    /// replace a node without ever passing through a voter set that a zone
    /// loss would stop.
    Replace {
        /// The voter that leaves (its id is never used again).
        #[arg(long = "old")]
        old: u64,
        /// The learner that votes in its place.
        #[arg(long = "new")]
        new: u64,
        /// Accept a voter set that loses its quorum when one zone is lost.
        #[arg(long)]
        force: bool,
    },
    /// Ask the leader to hand leadership to another voter.
    TransferLeader {
        /// The voter to hand leadership to.
        id: u64,
    },
}

/// `--consistency` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ConsistencyArg {
    /// Confirmed with a quorum: sees every write acknowledged before the read.
    Linearizable,
    /// Served under the leader's lease (linearizable unless clocks drift).
    Lease,
    /// The answering node's own replica, possibly behind the leader.
    Stale,
}

impl From<ConsistencyArg> for Consistency {
    fn from(arg: ConsistencyArg) -> Self {
        match arg {
            ConsistencyArg::Linearizable => Self::Linearizable,
            ConsistencyArg::Lease => Self::Lease,
            ConsistencyArg::Stale => Self::Stale,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn command_line_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn put_takes_at_most_one_value_source() {
        assert!(Cli::try_parse_from(["safekeep", "put", "k", "v", "--value-file", "f"]).is_err());
        assert!(Cli::try_parse_from(["safekeep", "put", "k", "v"]).is_ok());
        assert!(Cli::try_parse_from(["safekeep", "put", "k", "--value-file", "-"]).is_ok());
    }

    #[test]
    fn endpoints_split_on_commas() {
        let cli = Cli::try_parse_from(["safekeep", "--endpoints", "a:1,b:2", "cluster", "status"])
            .expect("valid command line");
        assert_eq!(cli.endpoints, ["a:1", "b:2"]);
    }
}
