//! Which credentials a command presents. An operator's client certificate
//! and a tenant's API key may both be configured (the README's quick start
//! exports both), and a node takes an API key over a certificate, so sending
//! both would make every operator command a tenant's. Instead, commands only
//! an operator may run present the certificate, commands on a tenant's
//! records present the key, and commands either may run (`api-key`,
//! `cluster status`) follow `--as`, else the key.

use super::CliError;
use super::args::{ActAs, ApiKeyCommand, ClusterCommand, Command, TenantCommand};

/// Who may run a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Needs {
    /// Operators only (client certificate): membership, tenants, data keys, the audit log.
    Operator,
    /// A tenant's key (or support staff's certificate): records and exports.
    Tenant,
    /// Either: a tenant's own API keys (its admin key), the cluster's status.
    Either,
}

/// The credentials one run of the tool presents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Presented {
    /// Present the client certificate in the TLS handshake.
    pub certificate: bool,
    /// Send the API key with every request.
    pub api_key: bool,
}

/// Who may run `command`.
pub fn needs(command: &Command) -> Needs {
    match command {
        Command::Put { .. } | Command::Get { .. } | Command::Delete { .. } | Command::List(_) => Needs::Tenant,
        Command::Tenant(TenantCommand::Export { .. } | TenantCommand::Import { .. }) => Needs::Tenant,
        Command::Tenant(TenantCommand::SetRetention { .. }) => Needs::Either,
        Command::Tenant(_) | Command::Audit(_) | Command::Backup(_) => Needs::Operator,
        Command::Cluster(ClusterCommand::Status) => Needs::Either,
        Command::Cluster(_) => Needs::Operator,
        Command::ApiKey(ApiKeyCommand::Issue { .. } | ApiKeyCommand::List | ApiKeyCommand::Revoke { .. }) => {
            Needs::Either
        }
        Command::Completions { .. } | Command::Man => Needs::Either,
    }
}

/// What to present for a command that `needs` this, given `--as` and which
/// credentials are configured. Without `--as`, a command presents the one
/// credential it needs when that is configured, else whatever is (so the
/// node's refusal names what is missing); a command either may run presents
/// the key when there is one.
pub fn choose(
    needs: Needs,
    act_as: Option<ActAs>,
    have_certificate: bool,
    have_key: bool,
) -> Result<Presented, CliError> {
    const CERTIFICATE: Presented = Presented {
        certificate: true,
        api_key: false,
    };
    const KEY: Presented = Presented {
        certificate: false,
        api_key: true,
    };
    let acting = match act_as {
        Some(ActAs::Operator) if !have_certificate => {
            return Err(CliError::Usage(
                "--as operator needs an operator's client certificate: --client-cert and --client-key \
                 (or SAFEKEEP_CERT and SAFEKEEP_KEY)"
                    .into(),
            ));
        }
        Some(ActAs::Tenant) if !have_key => {
            return Err(CliError::Usage(
                "--as tenant needs a tenant's API key: --api-key (or SAFEKEEP_API_KEY)".into(),
            ));
        }
        Some(who) => who,
        None => match (needs, have_certificate, have_key) {
            (Needs::Operator, true, _) | (_, true, false) => ActAs::Operator,
            (_, _, true) => ActAs::Tenant,
            (_, false, false) => {
                return Ok(Presented {
                    certificate: false,
                    api_key: false,
                });
            }
        },
    };
    Ok(match acting {
        ActAs::Operator => CERTIFICATE,
        ActAs::Tenant => KEY,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::args::Cli;
    use clap::Parser;

    fn needs_of(args: &[&str]) -> Needs {
        let cli = Cli::try_parse_from([&["safekeep"], args].concat()).expect("a valid command line");
        needs(&cli.command)
    }

    #[test]
    fn operator_commands_tenant_commands_and_the_rest() {
        for operator in [
            &["audit", "list"][..],
            &["audit", "verify"],
            &["tenant", "create", "globex"],
            &["tenant", "list"],
            &["tenant", "rewrap-keys"],
            &["cluster", "transfer-leader", "2"],
        ] {
            assert_eq!(needs_of(operator), Needs::Operator, "{operator:?}");
        }
        for tenant in [
            &["get", "k"][..],
            &["put", "k", "v"],
            &["list"],
            &["tenant", "export", "acme"],
        ] {
            assert_eq!(needs_of(tenant), Needs::Tenant, "{tenant:?}");
        }
        for either in [
            &["api-key", "list"][..],
            &["api-key", "revoke", "00"],
            &["cluster", "status"],
        ] {
            assert_eq!(needs_of(either), Needs::Either, "{either:?}");
        }
    }

    #[test]
    fn with_both_credentials_each_command_presents_the_one_it_needs() {
        let certificate = |p: Presented| p.certificate && !p.api_key;
        let key = |p: Presented| p.api_key && !p.certificate;
        assert!(certificate(choose(Needs::Operator, None, true, true).unwrap()));
        assert!(key(choose(Needs::Tenant, None, true, true).unwrap()));
        assert!(key(choose(Needs::Either, None, true, true).unwrap()));
        assert!(certificate(
            choose(Needs::Either, Some(ActAs::Operator), true, true).unwrap()
        ));
        assert!(key(choose(Needs::Operator, Some(ActAs::Tenant), true, true).unwrap()));
    }

    #[test]
    fn with_one_credential_it_is_presented_and_as_cannot_ask_for_the_missing_one() {
        assert!(choose(Needs::Tenant, None, true, false).unwrap().certificate);
        assert!(choose(Needs::Operator, None, false, true).unwrap().api_key);
        let none = choose(Needs::Either, None, false, false).unwrap();
        assert!(!none.certificate && !none.api_key);
        assert!(matches!(
            choose(Needs::Either, Some(ActAs::Operator), false, true),
            Err(CliError::Usage(_))
        ));
        assert!(matches!(
            choose(Needs::Either, Some(ActAs::Tenant), true, false),
            Err(CliError::Usage(_))
        ));
    }
}
