//! The `tenant` and `api-key` commands: tenants and their API keys through
//! the SDK's admin calls. An issued key's secret is printed once, on stdout
//! only, so it can be piped into a secret store.

use std::time::Duration;

use serde_json::json;

use super::args::{ApiKeyCommand, AuditCommand, BackupCommand, TenantCommand};
use super::context::{Context, to_json};
use super::{CliError, Target};
use safekeep_client::{ApiKeyInfo, AuditEntryInfo, TenantInfo};

fn tenant_line(tenant: &TenantInfo) -> String {
    let state = if tenant.deleted { "deleted" } else { "live" };
    format!(
        "{:<24} {:<8} data key v{}",
        tenant.tenant, state, tenant.data_key_version
    )
}

fn key_line(key: &ApiKeyInfo) -> String {
    let role = key
        .role
        .map_or("unknown".to_string(), |r| format!("{r:?}").to_lowercase());
    let state = if key.revoked { "revoked" } else { "active" };
    format!("{}  {:<7} {:<8} {}", key.key_id, role, state, key.label)
}

/// Runs a `tenant` subcommand.
pub(super) async fn tenant(context: &Context, command: TenantCommand) -> Result<(), CliError> {
    let client = &context.client;
    match command {
        TenantCommand::Create { tenant } => {
            let created = client
                .create_tenant(&tenant)
                .await
                .map_err(context.failed(Target::Tenant(tenant.clone())))?;
            context.print(|| format!("created tenant '{}'", created.tenant), || to_json(&created))
        }
        TenantCommand::List => {
            let tenants = client.list_tenants().await.map_err(context.failed(Target::Cluster))?;
            context.print(
                || tenants.iter().map(tenant_line).collect::<Vec<_>>().join("\n"),
                || to_json(&tenants),
            )
        }
        TenantCommand::SetRetention {
            tenant,
            days,
            seconds,
            forever: _,
        } => {
            let window = days
                .map(|d| d.saturating_mul(86_400))
                .or(seconds)
                .map(Duration::from_secs);
            client
                .set_retention(&tenant, window)
                .await
                .map_err(context.failed(Target::Tenant(tenant.clone())))?;
            let seconds = window.map_or(0, |w| w.as_secs());
            context.print(
                || match window {
                    Some(w) => format!("tenant '{tenant}' removes records not written for {} s", w.as_secs()),
                    None => format!("tenant '{tenant}' keeps records until they are deleted"),
                },
                || json!({ "tenant": tenant, "retention_seconds": seconds }),
            )
        }
        TenantCommand::RotateKey { tenant } => {
            let version = client
                .rotate_data_key(&tenant)
                .await
                .map_err(context.failed(Target::Tenant(tenant.clone())))?;
            context.print(
                || format!("tenant '{tenant}' now seals new writes with data key v{version}"),
                || json!({ "tenant": tenant, "data_key_version": version }),
            )
        }
        TenantCommand::RewrapKeys => {
            let (tenants, master_key_id) = client
                .rewrap_data_keys()
                .await
                .map_err(context.failed(Target::Cluster))?;
            context.print(
                || format!("rewrapped the data keys of {tenants} tenants with master key '{master_key_id}'"),
                || json!({ "tenants": tenants, "master_key_id": master_key_id }),
            )
        }
        TenantCommand::Delete { tenant, reason } => {
            client
                .delete_tenant(&tenant, &reason)
                .await
                .map_err(context.failed(Target::Tenant(tenant.clone())))?;
            context.print(
                || format!("deleted tenant '{tenant}': its records, keys and data keys are gone"),
                || json!({ "deleted": tenant }),
            )
        }
        TenantCommand::Export { tenant, output, resume } => {
            super::export::run(context, &tenant, output.as_deref(), resume.as_deref()).await
        }
        TenantCommand::Import { tenant, input } => super::import::run(context, &tenant, input.as_deref()).await,
    }
}

/// Runs an `api-key` subcommand.
pub(super) async fn api_key(context: &Context, command: ApiKeyCommand) -> Result<(), CliError> {
    let client = &context.client;
    match command {
        ApiKeyCommand::Issue { role, label } => {
            let tenant = context.tenant()?;
            let issued = client
                .issue_api_key(tenant, role.into(), &label)
                .await
                .map_err(context.failed(Target::Tenant(tenant.to_string())))?;
            eprintln!(
                "issued key {} for tenant '{tenant}'; it is shown this once:",
                issued.key.key_id
            );
            context.print(|| issued.secret.clone(), || to_json(&issued))
        }
        ApiKeyCommand::List => {
            let tenant = context.tenant()?;
            let keys = client
                .list_api_keys(tenant)
                .await
                .map_err(context.failed(Target::Tenant(tenant.to_string())))?;
            context.print(
                || keys.iter().map(key_line).collect::<Vec<_>>().join("\n"),
                || to_json(&keys),
            )
        }
        ApiKeyCommand::Revoke { key_id } => {
            client
                .revoke_api_key(&key_id)
                .await
                .map_err(context.failed(Target::Cluster))?;
            context.print(|| format!("revoked key {key_id}"), || json!({ "revoked": key_id }))
        }
    }
}

fn audit_line(entry: &AuditEntryInfo) -> String {
    let mut line = format!(
        "{:>6}  {}  {:<24} {:<22} tenant={:<12} result={}",
        entry.seq, entry.at_unix_ms, entry.actor, entry.action, entry.tenant, entry.result
    );
    if !entry.reason.is_empty() {
        line.push_str(&format!("  reason={:?}", entry.reason));
    }
    if !entry.detail.is_empty() {
        line.push_str(&format!("  {}", entry.detail));
    }
    line
}

/// Runs an `audit` subcommand.
/// How often `backup now` looks at the cluster's status while it waits.
const BACKUP_POLL: Duration = Duration::from_millis(500);

pub(super) async fn backup(context: &Context, command: BackupCommand) -> Result<(), CliError> {
    let BackupCommand::Now {
        reason,
        no_wait,
        timeout,
    } = command;
    let client = &context.client;
    let requested = client
        .backup_now(&reason)
        .await
        .map_err(context.failed(Target::Cluster))?;
    if no_wait {
        return context.print(
            || format!("full backup requested at log index {requested}"),
            || json!({ "requested_at_index": requested }),
        );
    }
    let started = std::time::Instant::now();
    loop {
        let status = client.status().await.map_err(context.failed(Target::Cluster))?;
        let backup = status.backup.unwrap_or_default();
        if backup.last_full_index >= requested {
            return context.print(
                || {
                    format!(
                        "full backup at log index {} by node {}, finished {} (requested at index {requested})",
                        backup.last_full_index,
                        backup.shipper_node_id,
                        super::output::format_unix_ms(backup.last_full_unix_ms)
                    )
                },
                || json!({ "requested_at_index": requested, "backup": to_json(&backup) }),
            );
        }
        if started.elapsed() > Duration::from_secs(timeout) {
            return Err(CliError::Protocol(format!(
                "no full backup covering log index {requested} after {timeout} s{}",
                backup.error.map(|e| format!(": {e}")).unwrap_or_default()
            )));
        }
        tokio::time::sleep(BACKUP_POLL).await;
    }
}

pub(super) async fn audit(context: &Context, command: AuditCommand) -> Result<(), CliError> {
    let client = &context.client;
    match command {
        AuditCommand::List { after, limit } => {
            let entries = client
                .list_audit(after, limit)
                .await
                .map_err(context.failed(Target::Cluster))?;
            context.print(
                || entries.iter().map(audit_line).collect::<Vec<_>>().join("\n"),
                || to_json(&entries),
            )
        }
        AuditCommand::Verify => {
            let report = client.verify_audit().await.map_err(context.failed(Target::Cluster))?;
            match &report.broken {
                None => context.print(
                    || format!("audit log intact: {} entries, hash chain verified", report.entries),
                    || to_json(&report),
                ),
                Some(broken) => {
                    if context.json() {
                        println!("{}", to_json(&report));
                    }
                    Err(CliError::Tampered(format!("audit log tampered: {broken}")))
                }
            }
        }
    }
}
