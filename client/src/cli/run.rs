//! Runs one parsed command against the cluster through the SDK and prints
//! its result; every failure comes back as a [`CliError`] for `main` to report.

use std::io::Read;
use std::path::Path;
use std::time::Duration;

use safekeep_client::config::DEFAULT_RETRY_BUDGET;
use safekeep_client::{ApiKey, Client, ClientConfig, ClientTls, Consistency, Error};
use serde_json::json;

use super::args::{Cli, ClusterCommand, Command, ListArgs};
use super::context::{Context, emit, to_json};
use super::{CliError, Target};
use super::{credentials, output};

/// Largest value `put` reads from a file or standard input.
pub const MAX_VALUE_FILE_BYTES: u64 = 4 * 1024 * 1024;
/// Most pages `list --all` follows before giving up.
pub const MAX_LIST_PAGES: usize = 10_000;

/// Connects and runs the command.
pub async fn run(cli: Cli) -> Result<(), CliError> {
    match cli.command {
        Command::Completions { shell } => return super::docs::completions(shell),
        Command::Man => return super::docs::man(),
        _ => {}
    }
    // An empty SAFEKEEP_API_KEY means none.
    let api_key = cli.api_key.as_deref().filter(|key| !key.trim().is_empty());
    let presented = credentials::choose(
        credentials::needs(&cli.command),
        cli.act_as,
        cli.client_cert.is_some() && cli.client_key.is_some(),
        api_key.is_some(),
    )?;
    let timeout = Duration::from_millis(cli.timeout_ms);
    let mut config = ClientConfig::new(cli.endpoints);
    config.tls = match (&cli.ca, cli.plaintext) {
        (Some(ca), false) => {
            let identity =
                (cli.client_cert.as_deref().zip(cli.client_key.as_deref())).filter(|_| presented.certificate);
            let mut tls = ClientTls::from_files(ca, identity).map_err(|e| CliError::Usage(e.to_string()))?;
            tls.server_name = cli.server_name.clone();
            Some(tls)
        }
        (None, true) => None,
        _ => {
            return Err(CliError::Usage(
                "no TLS settings: pass --ca PEM (the cluster's CA; a local cluster prints its path) \
                 or --plaintext for a cluster started with --insecure-dev"
                    .into(),
            ));
        }
    };
    if let Some(key) = api_key.filter(|_| presented.api_key) {
        config.api_key = Some(ApiKey::new(key).map_err(|e| CliError::Usage(e.to_string()))?);
    }
    config.request_timeout = timeout;
    config.retry_budget = DEFAULT_RETRY_BUDGET.max(timeout);
    let client = Client::connect(config).await.map_err(|error| match error {
        Error::Config(message) => CliError::Usage(message),
        error => CliError::Request {
            error,
            target: Target::Cluster,
            timeout_ms: cli.timeout_ms,
        },
    })?;
    let context = Context {
        client,
        tenant: cli.tenant,
        json: cli.json,
        timeout_ms: cli.timeout_ms,
    };
    match cli.command {
        Command::Put {
            key,
            value,
            value_file,
            expected_version,
            ttl,
        } => {
            let value = read_value(value, value_file.as_deref())?;
            put(&context, &key, value, expected_version, ttl).await
        }
        Command::Get {
            key,
            consistency,
            value_only,
        } => get(&context, &key, consistency.into(), value_only).await,
        Command::Delete { key, expected_version } => delete(&context, &key, expected_version).await,
        Command::List(args) => list(&context, args).await,
        Command::Cluster(command) => cluster(&context, command).await,
        Command::Tenant(command) => super::admin::tenant(&context, command).await,
        Command::ApiKey(command) => super::admin::api_key(&context, command).await,
        Command::Audit(command) => super::admin::audit(&context, command).await,
        Command::Backup(command) => super::admin::backup(&context, command).await,
        // Printed above, before connecting.
        Command::Completions { .. } | Command::Man => Ok(()),
    }
}

async fn put(
    context: &Context,
    key: &str,
    value: Vec<u8>,
    expected_version: Option<u64>,
    ttl_seconds: Option<u64>,
) -> Result<(), CliError> {
    let tenant = context.tenant()?;
    let client = &context.client;
    let outcome = match (expected_version, ttl_seconds) {
        (Some(version), _) => client.put_if(tenant, key, value, version).await,
        (None, Some(ttl)) => {
            client
                .put_with_ttl(tenant, key, value, std::time::Duration::from_secs(ttl))
                .await
        }
        (None, None) => client.put(tenant, key, value).await,
    }
    .map_err(context.failed(record_target(tenant, key)))?;
    context.print(
        || {
            format!(
                "put '{key}' in tenant '{tenant}': version {} at {}",
                outcome.version,
                output::format_unix_ms(outcome.updated_at_unix_ms)
            )
        },
        || {
            json!({
                "tenant": tenant,
                "key": key,
                "version": outcome.version,
                "updated_at_unix_ms": outcome.updated_at_unix_ms,
                "updated_at": output::format_unix_ms(outcome.updated_at_unix_ms),
            })
        },
    )
}

async fn get(context: &Context, key: &str, consistency: Consistency, value_only: bool) -> Result<(), CliError> {
    let tenant = context.tenant()?;
    let target = record_target(tenant, key);
    let record = context
        .client
        .get_with(tenant, key, consistency)
        .await
        .map_err(context.failed(target.clone()))?
        .ok_or_else(|| context.failed(target)(Error::NotFound))?;
    if value_only {
        return emit(&record.value, false);
    }
    context.print(|| output::record_text(&record), || output::record_json(&record))
}

async fn delete(context: &Context, key: &str, expected_version: Option<u64>) -> Result<(), CliError> {
    let tenant = context.tenant()?;
    let client = &context.client;
    let outcome = match expected_version {
        Some(version) => client.delete_if(tenant, key, version).await,
        None => client.delete(tenant, key).await,
    }
    .map_err(context.failed(record_target(tenant, key)))?;
    context.print(
        || {
            if outcome.deleted {
                format!("deleted '{key}' from tenant '{tenant}' at version {}", outcome.version)
            } else {
                format!("nothing deleted: record '{key}' did not exist in tenant '{tenant}'")
            }
        },
        || {
            json!({
                "tenant": tenant,
                "key": key,
                "deleted": outcome.deleted,
                "version": outcome.version,
            })
        },
    )
}

async fn list(context: &Context, args: ListArgs) -> Result<(), CliError> {
    let tenant = context.tenant()?;
    let mut page_token = args.page_token;
    let mut json_records = Vec::new();
    let mut pages = 0usize;
    loop {
        let page = context
            .client
            .list(tenant, &args.prefix, page_token.as_deref(), args.limit)
            .await
            .map_err(context.failed(Target::Tenant(tenant.to_string())))?;
        pages += 1;
        if context.json {
            json_records.extend(page.records.iter().map(output::record_json));
        } else {
            for record in &page.records {
                emit(output::record_line(record).as_bytes(), true)?;
            }
        }
        let next = page.next_page_token;
        let follow = args.all && next.is_some();
        if follow && next == page_token {
            return Err(CliError::Protocol(format!(
                "the server returned the same page token twice ({:?}); stopping",
                next.unwrap_or_default()
            )));
        }
        if follow && pages >= MAX_LIST_PAGES {
            return Err(CliError::Protocol(format!(
                "stopped after {MAX_LIST_PAGES} pages; continue with --page-token {}",
                next.unwrap_or_default()
            )));
        }
        page_token = next;
        if !follow {
            break;
        }
    }
    if context.json {
        let value = json!({ "records": json_records, "next_page_token": page_token });
        return emit(value.to_string().as_bytes(), true);
    }
    if let Some(token) = page_token {
        emit(format!("next page: --page-token {token}").as_bytes(), true)?;
    }
    Ok(())
}

async fn cluster(context: &Context, command: ClusterCommand) -> Result<(), CliError> {
    let client = &context.client;
    match command {
        ClusterCommand::Status => {
            let status = client.status().await.map_err(context.failed(Target::Cluster))?;
            context.print(|| output::status_text(&status), || to_json(&status))
        }
        ClusterCommand::AddLearner {
            id,
            zone,
            peer_address,
            client_address,
        } => {
            let members = client
                .add_learner(id, &zone, &peer_address, &client_address)
                .await
                .map_err(context.failed(Target::Node(id)))?;
            print_members(context, &format!("added node {id} as a learner"), &members)
        }
        ClusterCommand::Promote { id, force } => {
            let members = client
                .promote(id, force)
                .await
                .map_err(context.failed(Target::Node(id)))?;
            print_members(context, &format!("promoted node {id} to voter"), &members)
        }
        ClusterCommand::Remove { id, force } => {
            let members = client
                .remove_member(id, force)
                .await
                .map_err(context.failed(Target::Node(id)))?;
            print_members(context, &format!("removed node {id}"), &members)
        }
        ClusterCommand::Replace { old, new, force } => {
            let members = client
                .replace_voter(old, new, force)
                .await
                .map_err(context.failed(Target::Node(old)))?;
            print_members(context, &format!("node {new} replaced node {old}"), &members)
        }
        ClusterCommand::TransferLeader { id } => {
            let header = client
                .transfer_leader(id)
                .await
                .map_err(context.failed(Target::Node(id)))?;
            context.print(
                || {
                    format!(
                        "asked the leader to hand leadership to node {id} ({})",
                        output::header_text(&header)
                    )
                },
                || json!({ "requested_leader": id, "header": to_json(&header) }),
            )
        }
    }
}

fn print_members(context: &Context, summary: &str, members: &[safekeep_client::Member]) -> Result<(), CliError> {
    context.print(
        || format!("{summary}\n{}", output::members_text(members).trim_end()),
        || json!({ "members": to_json(&members) }),
    )
}

fn record_target(tenant: &str, key: &str) -> Target {
    Target::Record {
        tenant: tenant.to_string(),
        key: key.to_string(),
    }
}

/// The value to put: the positional argument, a file, or standard input for `-`.
fn read_value(value: Option<String>, file: Option<&Path>) -> Result<Vec<u8>, CliError> {
    match (value, file) {
        (Some(value), None) => Ok(value.into_bytes()),
        (None, Some(path)) if path == Path::new("-") => read_bounded(std::io::stdin().lock(), "standard input"),
        (None, Some(path)) => {
            let shown = path.display();
            let file = std::fs::File::open(path)
                .map_err(|error| CliError::Io(format!("cannot open value file '{shown}': {error}")))?;
            read_bounded(file, &format!("value file '{shown}'"))
        }
        _ => Err(CliError::Usage(
            "give the value either as an argument or with --value-file".into(),
        )),
    }
}

fn read_bounded(reader: impl Read, what: &str) -> Result<Vec<u8>, CliError> {
    let mut value = Vec::new();
    reader
        .take(MAX_VALUE_FILE_BYTES + 1)
        .read_to_end(&mut value)
        .map_err(|error| CliError::Io(format!("cannot read {what}: {error}")))?;
    if value.len() as u64 > MAX_VALUE_FILE_BYTES {
        return Err(CliError::Usage(format!(
            "{what} is larger than {MAX_VALUE_FILE_BYTES} bytes"
        )));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn put_without_a_value_is_a_usage_error() {
        assert!(matches!(read_value(None, None), Err(CliError::Usage(_))));
        assert_eq!(read_value(Some("v".into()), None).ok(), Some(b"v".to_vec()));
    }

    #[test]
    fn oversized_values_are_refused() {
        let big = std::io::repeat(b'x').take(MAX_VALUE_FILE_BYTES + 1);
        assert!(matches!(read_bounded(big, "input"), Err(CliError::Usage(_))));
        let exact = std::io::repeat(b'x').take(MAX_VALUE_FILE_BYTES);
        assert_eq!(
            read_bounded(exact, "input").map(|v| v.len() as u64).ok(),
            Some(MAX_VALUE_FILE_BYTES)
        );
    }
}
