//! A quick write loop against a running cluster, for a first feel of
//! throughput and latency (the real benchmark lives in its own crate).
//!
//! `cargo run --release -p safekeep-node --example put_loop -- 127.0.0.1:7101,127.0.0.1:7102 32 10`
//! runs 32 concurrent writers for 10 seconds, spread over the endpoints.
//! Against a TLS cluster set `SAFEKEEP_CA` (the cluster CA) and
//! `SAFEKEEP_API_KEY` (a writer key of `SAFEKEEP_TENANT`, default `load`).

use std::time::{Duration, Instant};

use safekeep_api::v1::records_client::RecordsClient;
use safekeep_api::v1::{PutRequest, WriteId};
use tonic::transport::{Channel, Endpoint};

/// Bytes of each value written.
const VALUE_BYTES: usize = 256;
/// Most concurrent writers.
const MAX_WRITERS: usize = 1024;
/// Longest run.
const MAX_SECONDS: u64 = 600;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let ca = std::env::var("SAFEKEEP_CA").ok().map(std::fs::read).transpose()?;
    let api_key = std::env::var("SAFEKEEP_API_KEY").ok();
    let tenant = std::env::var("SAFEKEEP_TENANT").unwrap_or_else(|_| "load".into());
    let scheme = if ca.is_some() { "https" } else { "http" };
    let endpoints: Vec<String> = args
        .get(1)
        .map_or("127.0.0.1:7101", String::as_str)
        .split(',')
        .map(|e| format!("{scheme}://{e}"))
        .collect();
    let writers: usize = args.get(2).map_or(Ok(32), |s| s.parse())?.clamp(1, MAX_WRITERS);
    let seconds: u64 = args.get(3).map_or(Ok(10), |s| s.parse())?.clamp(1, MAX_SECONDS);
    let deadline = Instant::now() + Duration::from_secs(seconds);

    let mut tasks = Vec::new();
    for writer in 0..writers {
        let endpoint = endpoints[writer % endpoints.len()].clone();
        let (ca, api_key, tenant) = (ca.clone(), api_key.clone(), tenant.clone());
        tasks.push(tokio::spawn(async move {
            let mut endpoint = Endpoint::from_shared(endpoint)?;
            if let Some(ca) = ca {
                let tls = safekeep_api::tls::ClientTls {
                    ca_pem: &ca,
                    identity: None,
                    server_name: None,
                };
                endpoint = endpoint.tls_config(tls.config())?;
            }
            let channel: Channel = endpoint.connect().await?;
            let mut client = RecordsClient::new(channel);
            let mut latencies = Vec::new();
            let mut errors = 0u64;
            let mut request_id = 0u64;
            while Instant::now() < deadline {
                request_id += 1;
                let request = PutRequest {
                    ttl_seconds: None,
                    tenant: tenant.clone(),
                    key: format!("w{writer}/k{}", request_id % 1000),
                    value: vec![b'x'; VALUE_BYTES],
                    expected_version: None,
                    write_id: Some(WriteId {
                        client_id: format!("put-loop-{writer}"),
                        request_id,
                        first_incomplete: 0,
                    }),
                };
                let mut request = tonic::Request::new(request);
                if let Some(key) = &api_key {
                    request.metadata_mut().insert(
                        safekeep_api::wire::AUTHORIZATION,
                        safekeep_api::wire::bearer(key).parse().expect("an ASCII key"),
                    );
                }
                let started = Instant::now();
                match client.put(request).await {
                    Ok(_) => latencies.push(started.elapsed()),
                    Err(_) => errors += 1,
                }
            }
            Ok::<_, tonic::transport::Error>((latencies, errors))
        }));
    }
    let mut latencies = Vec::new();
    let mut errors = 0;
    for task in tasks {
        let (l, e) = task.await??;
        latencies.extend(l);
        errors += e;
    }
    latencies.sort();
    let pct = |p: f64| latencies.get(((latencies.len() as f64 * p) as usize).min(latencies.len().saturating_sub(1)));
    println!(
        "writers={writers} seconds={seconds} ok={} errors={errors} throughput={:.0}/s p50={:?} p99={:?} max={:?}",
        latencies.len(),
        latencies.len() as f64 / seconds as f64,
        pct(0.50).copied().unwrap_or_default(),
        pct(0.99).copied().unwrap_or_default(),
        latencies.last().copied().unwrap_or_default(),
    );
    Ok(())
}
