//! Unauthenticated traffic on real TLS sockets: garbage API keys are refused
//! after a bounded number of catch-ups with the leader (then locally), a
//! request with credentials that can never be valid is refused before its
//! body is decoded, and silent TCP connections from one address do not stall
//! anyone else's handshake. Each test checks that stored data is unchanged.
//! (The load test is `abuse_load.rs`: its own process, so these tests read
//! their counters undisturbed.)

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::{TestCluster, TlsFiles, get, keyed, put, tls_channel};
use rand::Rng;
use safekeep_api::v1::records_client::RecordsClient;
use safekeep_api::v1::{ApiKeyRole, BatchOp, BatchPut, BatchRequest, batch_op};
use tokio::io::AsyncReadExt;
use tokio::net::{TcpSocket, TcpStream};
use tonic::Code;
use tonic::transport::Channel;

/// Where the silent connections come from: another loopback address, so the
/// legitimate client (on 127.0.0.1) is not the same address.
const SILENT_FROM: &str = "127.0.0.2";

/// A well-formed key with a random id: unknown to every node.
fn garbage_key() -> String {
    let mut random = rand::rng();
    let id: u64 = random.random();
    let secret: [u8; 32] = random.random();
    format!("skp_{id:016x}_{}", hex::encode(secret))
}

/// The sum of a counter's series on a node's `/metrics` whose labels include
/// `label` (any, when empty); 0 when it has none yet.
async fn counter(http: SocketAddr, name: &str, label: &str) -> f64 {
    let text = reqwest::get(format!("http://{http}/metrics"))
        .await
        .expect("scrape /metrics")
        .text()
        .await
        .expect("read /metrics");
    text.lines()
        .filter(|line| line.starts_with(name) && line.contains(label))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

async fn client(cluster: &TestCluster) -> RecordsClient<Channel> {
    let address = cluster.addresses[&1].client.to_string();
    let files = TlsFiles::operator(cluster.certs.as_ref().unwrap());
    RecordsClient::new(tls_channel(&address, &files).await.expect("connect over TLS"))
}

/// Opens `n` TCP connections from `SILENT_FROM` to `to` that never send a byte.
async fn silent_connections(to: SocketAddr, n: usize) -> Vec<TcpStream> {
    let mut open = Vec::with_capacity(n);
    for _ in 0..n {
        let socket = TcpSocket::new_v4().unwrap();
        socket.bind(format!("{SILENT_FROM}:0").parse().unwrap()).unwrap();
        open.push(socket.connect(to).await.expect("a TCP connection"));
    }
    open
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_keys_cost_a_bounded_number_of_catch_ups_then_are_refused_locally() {
    const CATCH_UPS_PER_SECOND: u32 = 5;
    let cluster = TestCluster::start_secure(1, |c| {
        c.limits.unknown_key_catch_ups_per_second = CATCH_UPS_PER_SECOND;
    })
    .await;
    cluster.leader().await;
    let key = cluster.tenant_key("acme", ApiKeyRole::Writer).await;
    let version = cluster.put_keyed(1, &key, put("acme", "k", b"v", "abuse", 1)).await;
    let http = cluster.addresses[&1].http;
    let catch_ups_before = counter(http, "safekeep_unknown_api_key_catch_ups_total", "").await;

    let mut records = client(&cluster).await;
    let started = Instant::now();
    let repeated = garbage_key();
    let mut codes = Vec::new();
    for n in 0..300 {
        let garbage = if n % 3 == 0 { repeated.clone() } else { garbage_key() };
        let refused = records.get(keyed(get("acme", "k"), &garbage)).await.unwrap_err();
        codes.push(refused.code());
    }
    let elapsed = started.elapsed().as_secs_f64();
    assert!(codes.iter().all(|c| *c == Code::Unauthenticated), "{codes:?}");
    let catch_ups = counter(http, "safekeep_unknown_api_key_catch_ups_total", "").await - catch_ups_before;
    let bound = f64::from(CATCH_UPS_PER_SECOND) * (1.0 + elapsed.ceil());
    assert!(
        catch_ups <= bound,
        "{catch_ups} catch-ups for 300 garbage keys in {elapsed:.1} s (bound {bound})"
    );
    let remembered = counter(http, "safekeep_unknown_api_key_refusals_total", "reason=\"remembered\"").await;
    assert!(
        remembered >= 90.0,
        "a repeated unknown id is refused locally: {remembered}"
    );

    // A key with an unparsable or remembered id is refused before an 18 MiB body is decoded.
    let huge = BatchRequest {
        tenant: "acme".into(),
        ops: (0..18)
            .map(|i| BatchOp {
                op: Some(batch_op::Op::Put(BatchPut {
                    key: format!("huge/{i}"),
                    value: vec![7; 1 << 20],
                    expected_version: None,
                })),
            })
            .collect(),
        write_id: None,
    };
    for credentials in ["not-a-key".to_string(), repeated.clone()] {
        let refused = records.batch(keyed(huge.clone(), &credentials)).await.unwrap_err();
        assert_eq!(refused.code(), Code::Unauthenticated, "{refused}");
    }
    assert_eq!(
        cluster.read_keyed(1, &key, "acme", "k").await,
        Ok((b"v".to_vec(), version))
    );
    assert_eq!(cluster.read_keyed(1, &key, "acme", "huge/0").await, Err(Code::NotFound));
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_connections_from_one_address_stall_no_one_else() {
    let cluster = TestCluster::start_secure(1, |_| {}).await;
    cluster.leader().await;
    let key = cluster.tenant_key("acme", ApiKeyRole::Writer).await;
    let version = cluster.put_keyed(1, &key, put("acme", "k", b"v", "silent", 1)).await;
    let address = cluster.addresses[&1].client;
    let limits = &cluster.configs[&1].limits;

    // More silent connections than the node has handshake slots (256).
    let silent = silent_connections(address, 300).await;
    let started = Instant::now();
    let mut records = client(&cluster).await;
    let read = records.get(keyed(get("acme", "k"), &key)).await.unwrap();
    let waited = started.elapsed();
    assert_eq!(read.into_inner().record.unwrap().value, b"v");
    let deadline = Duration::from_millis(limits.handshake_timeout_ms);
    assert!(
        waited < deadline,
        "a new client waited {waited:?} behind silent connections"
    );

    // All but the address's share were closed at once, and the rest by the handshake deadline.
    let mut open = silent;
    while !open.is_empty() {
        assert!(
            started.elapsed() < common::WAIT,
            "{} silent connections stay open",
            open.len()
        );
        let mut still_open = Vec::new();
        for mut connection in open {
            let mut byte = [0u8; 1];
            match tokio::time::timeout(Duration::from_millis(1), connection.read(&mut byte)).await {
                Ok(Ok(0)) | Ok(Err(_)) => {}
                _ => still_open.push(connection),
            }
        }
        open = still_open;
    }
    let closed = started.elapsed();
    assert!(
        closed < deadline + Duration::from_secs(2),
        "every silent connection is closed within the handshake deadline, took {closed:?}"
    );
    assert_eq!(
        cluster.read_keyed(1, &key, "acme", "k").await,
        Ok((b"v".to_vec(), version))
    );
    cluster.shutdown().await;
}
