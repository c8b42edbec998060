//! Certificates that change on disk without a restart. The files are read at
//! start (any problem refuses the start) and then polled; new contents are
//! checked as thoroughly as at start and swapped in only if they pass, so a
//! half-written or wrong certificate never replaces a working one.

use std::sync::Arc;
use std::time::Duration;

use ring::digest;
use rustls::ServerConfig;
use tokio::sync::watch;

use super::material::{TlsError, TlsMaterial};
use super::peer_identity::PeerClientTls;
use crate::config::TlsSettings;
use crate::metrics_names::{TLS_CERT_NOT_AFTER, TLS_RELOAD_FAILURES, TLS_RELOADS};

/// The TLS configurations in force, swapped as a whole on reload.
pub struct LoadedTls {
    pub client_api: Arc<ServerConfig>,
    pub peer_server: Arc<ServerConfig>,
    /// How this node dials its peers.
    pub peer_client: PeerClientTls,
    /// When the node certificate expires (Unix seconds).
    pub not_after_unix: i64,
    /// Digest of the files these configurations came from.
    fingerprint: digest::Digest,
}

impl LoadedTls {
    fn load(settings: &TlsSettings, node_id: u64, fingerprint: digest::Digest) -> Result<Self, TlsError> {
        let material = TlsMaterial::load(settings, node_id)?;
        Ok(Self {
            client_api: material.client_api_server()?,
            peer_server: material.peer_server()?,
            peer_client: material.peer_client()?,
            not_after_unix: material.not_after.unix_timestamp(),
            fingerprint,
        })
    }
}

/// Digest of every file the settings name; unreadable files digest as absent.
fn fingerprint(settings: &TlsSettings) -> digest::Digest {
    let mut context = digest::Context::new(&digest::SHA256);
    let paths = [
        Some(&settings.cert),
        Some(&settings.key),
        Some(&settings.ca),
        settings.client_ca.as_ref(),
    ];
    for path in paths.into_iter().flatten() {
        let contents = std::fs::read(path).unwrap_or_default();
        context.update(&(contents.len() as u64).to_le_bytes());
        context.update(&contents);
    }
    context.finish()
}

/// Loads the node's TLS files, refusing to start on any problem, and keeps
/// them current until `stop` turns true.
pub fn start(
    settings: &TlsSettings,
    node_id: u64,
    mut stop: watch::Receiver<bool>,
) -> Result<watch::Receiver<Arc<LoadedTls>>, TlsError> {
    let loaded = LoadedTls::load(settings, node_id, fingerprint(settings))?;
    metrics::gauge!(TLS_CERT_NOT_AFTER).set(loaded.not_after_unix as f64);
    let (current_tx, current_rx) = watch::channel(Arc::new(loaded));
    let settings = settings.clone();
    let interval = Duration::from_millis(settings.reload_interval_ms);
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = stop.wait_for(|stop| *stop) => break,
                _ = ticks.tick() => {}
            }
            let seen = fingerprint(&settings);
            if seen.as_ref() == current_tx.borrow().fingerprint.as_ref() {
                continue;
            }
            match LoadedTls::load(&settings, node_id, seen) {
                Ok(loaded) => {
                    tracing::info!(
                        node = node_id,
                        not_after = loaded.not_after_unix,
                        "certificates reloaded"
                    );
                    metrics::counter!(TLS_RELOADS).increment(1);
                    metrics::gauge!(TLS_CERT_NOT_AFTER).set(loaded.not_after_unix as f64);
                    current_tx.send_replace(Arc::new(loaded));
                }
                Err(e) => {
                    metrics::counter!(TLS_RELOAD_FAILURES).increment(1);
                    tracing::error!(node = node_id, error = %e, "new certificates refused; the current ones stay in use");
                    refused_until_changed(&settings, seen, &mut stop, interval).await;
                }
            }
        }
    });
    Ok(current_rx)
}

/// Waits until the files differ from the refused `seen` (or the node stops).
async fn refused_until_changed(
    settings: &TlsSettings,
    seen: digest::Digest,
    stop: &mut watch::Receiver<bool>,
    interval: Duration,
) {
    loop {
        tokio::select! {
            _ = stop.wait_for(|stop| *stop) => return,
            _ = tokio::time::sleep(interval) => {}
        }
        if fingerprint(settings).as_ref() != seen.as_ref() {
            return;
        }
    }
}
