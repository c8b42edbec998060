//! A short load test that runs in CI: 2,000 garbage-key requests a second
//! and 300 idle TCP connections against one node for a few seconds, while a
//! legitimate client writes. Every legitimate write must succeed; its p99 is
//! printed, not asserted (CI machines vary).

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::{TestCluster, TlsFiles, get, keyed, put, tls_channel};
use rand::Rng;
use safekeep_api::v1::ApiKeyRole;
use safekeep_api::v1::records_client::RecordsClient;
use tokio::net::{TcpSocket, TcpStream};
use tonic::Code;
use tonic::transport::Channel;

/// Where the idle connections come from: another loopback address.
const IDLE_FROM: &str = "127.0.0.2";

/// A well-formed key with a random id: unknown to every node.
fn garbage_key() -> String {
    let mut random = rand::rng();
    let id: u64 = random.random();
    let secret: [u8; 32] = random.random();
    format!("skp_{id:016x}_{}", hex::encode(secret))
}

async fn client(cluster: &TestCluster) -> RecordsClient<Channel> {
    let address = cluster.addresses[&1].client.to_string();
    let files = TlsFiles::operator(cluster.certs.as_ref().unwrap());
    RecordsClient::new(tls_channel(&address, &files).await.expect("connect over TLS"))
}

/// Opens `n` TCP connections from `IDLE_FROM` to `to` that never send a byte.
async fn idle_connections(to: SocketAddr, n: usize) -> Vec<TcpStream> {
    let mut open = Vec::with_capacity(n);
    for _ in 0..n {
        let socket = TcpSocket::new_v4().unwrap();
        socket.bind(format!("{IDLE_FROM}:0").parse().unwrap()).unwrap();
        open.push(socket.connect(to).await.expect("a TCP connection"));
    }
    open
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_legitimate_writer_is_served_through_a_flood_of_garbage_keys_and_idle_connections() {
    const GARBAGE_PER_SECOND: u64 = 2_000;
    const RUN: Duration = Duration::from_secs(3);
    const IDLE_CONNECTIONS: usize = 300;
    let cluster = TestCluster::start_secure(1, |_| {}).await;
    cluster.leader().await;
    let key = cluster.tenant_key("acme", ApiKeyRole::Writer).await;
    let address = cluster.addresses[&1].client;
    let _idle = idle_connections(address, IDLE_CONNECTIONS).await;

    // The flood: every 10 ms, a burst of garbage-key reads over a few connections.
    let flooders: Vec<RecordsClient<Channel>> = futures::future::join_all((0..4).map(|_| client(&cluster))).await;
    let flood = tokio::spawn(async move {
        let mut sent = 0u64;
        let mut refused = 0u64;
        let started = Instant::now();
        let mut tick = tokio::time::interval(Duration::from_millis(10));
        while started.elapsed() < RUN {
            tick.tick().await;
            let burst = (GARBAGE_PER_SECOND / 100) as usize;
            let calls = (0..burst).map(|n| {
                let mut flooder = flooders[n % flooders.len()].clone();
                async move { flooder.get(keyed(get("acme", "k"), &garbage_key())).await }
            });
            for result in futures::future::join_all(calls).await {
                sent += 1;
                if result.err().is_some_and(|s| s.code() == Code::Unauthenticated) {
                    refused += 1;
                }
            }
        }
        (sent, refused, started.elapsed())
    });

    let mut writer = client(&cluster).await;
    let mut latencies = Vec::new();
    let started = Instant::now();
    let mut request_id = 0;
    while started.elapsed() < RUN {
        request_id += 1;
        let sent = Instant::now();
        let value = format!("v{request_id}");
        writer
            .put(keyed(
                put(
                    "acme",
                    &format!("k{request_id}"),
                    value.as_bytes(),
                    "writer",
                    request_id,
                ),
                &key,
            ))
            .await
            .unwrap_or_else(|s| panic!("legitimate write {request_id} failed during the flood: {s}"));
        latencies.push(sent.elapsed());
    }
    let (sent, refused, flooded_for) = flood.await.unwrap();
    assert_eq!(sent, refused, "every garbage key is refused");
    latencies.sort();
    let p99 = latencies[(latencies.len() * 99 / 100).min(latencies.len() - 1)];
    // Straight to stderr, past the test harness's capture: CI logs show it on success too.
    use std::io::Write;
    let _ = writeln!(
        std::io::stderr(),
        "load: {} legitimate writes, p99 {p99:?}; {sent} garbage-key requests ({:.0}/s) and {IDLE_CONNECTIONS} idle connections",
        latencies.len(),
        sent as f64 / flooded_for.as_secs_f64()
    );
    for n in [1, request_id] {
        let stored = cluster.read_keyed(1, &key, "acme", &format!("k{n}")).await;
        assert_eq!(stored.map(|(value, _)| value), Ok(format!("v{n}").into_bytes()));
    }
    cluster.shutdown().await;
}
