//! Transport security on real sockets: a TLS cluster serves and replicates;
//! plaintext clients, certificates of another CA, expired certificates and
//! nodes outside the cluster are refused and change nothing; a node dialing a
//! peer refuses a certificate naming another node than the one it dialed; a
//! node whose TLS files are unusable refuses to start; rotated certificates
//! take effect without a restart, on the peer connections a node opens too.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{TestCluster, TlsFiles, eventually, issue_test_certs, metric_sum, put, tls_channel};
use safekeep_api::v1::ApiKeyRole;
use safekeep_api::v1::cluster_client::ClusterClient;
use safekeep_api::v1::peer_client::PeerClient;
use safekeep_api::v1::records_client::RecordsClient;
use safekeep_api::v1::{IdentifyRequest, RaftMessage, ReadIndexRequest, StatusRequest};
use safekeep_client::{ApiKey, Client, ClientConfig, ClientTls, Error as SdkError};
use safekeep_node::config::{ListenAddresses, NodeConfig};
use safekeep_node::local_cluster::node_tls;
use safekeep_node::metrics_names::PEER_IDENTITY_REFUSALS;
use safekeep_node::raft::IdentifyError;
use safekeep_node::tls::certs::{CertAuthority, LeafSpec, Validity, write_leaf};
use safekeep_node::tls::{CertPrincipal, ExpectedPeer, PEER_SERVER_NAME};
use safekeep_node::{InitialMember, Node, NodeEnvironment};
use tonic::Code;
use tonic::transport::{Channel, Endpoint};

const LOOPBACK_HOSTS: [&str; 2] = ["localhost", "127.0.0.1"];

fn hosts() -> Vec<String> {
    LOOPBACK_HOSTS.iter().map(|h| h.to_string()).collect()
}

/// Whether a connection attempt, or the first call over it, was refused.
async fn refused(address: &str, files: &TlsFiles) -> bool {
    match tls_channel(address, files).await {
        Err(_) => true,
        Ok(channel) => ClusterClient::new(channel).status(StatusRequest {}).await.is_err(),
    }
}

/// Writes a leaf issued by `ca` under its standard names in `dir`.
fn issue_into(ca: &CertAuthority, dir: &Path, spec: &LeafSpec) -> (PathBuf, PathBuf) {
    std::fs::create_dir_all(dir).unwrap();
    write_leaf(dir, &spec.principal, &ca.issue(spec).unwrap()).unwrap()
}

async fn stored_value(cluster: &TestCluster, api_key: &str, id: u64, key: &str) -> Option<(Vec<u8>, u64)> {
    cluster.read_keyed(id, api_key, "acme", key).await.ok()
}

/// Writes through node `id` with `api_key`; returns the version.
async fn put_with(cluster: &TestCluster, api_key: &str, id: u64, request: safekeep_api::v1::PutRequest) -> u64 {
    cluster.put_keyed(id, api_key, request).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_cluster_serves_through_every_node_and_refuses_plaintext_and_strangers() {
    let cluster = TestCluster::start_secure(3, |_| {}).await;
    cluster.leader().await;
    let certs = cluster.certs.clone().unwrap();
    let api_key = cluster.tenant_key("acme", ApiKeyRole::Writer).await;
    let version = put_with(&cluster, &api_key, 2, put("acme", "k", b"v1", "tls", 1)).await;
    for id in 1..=3 {
        assert_eq!(
            stored_value(&cluster, &api_key, id, "k").await,
            Some((b"v1".to_vec(), version))
        );
    }
    let status = cluster
        .cluster(1)
        .await
        .status(StatusRequest {})
        .await
        .unwrap()
        .into_inner();
    assert!(!status.insecure, "a TLS node does not report itself insecure");

    // The SDK over TLS, through every node.
    let endpoints: Vec<String> = cluster.addresses.values().map(|a| a.client.to_string()).collect();
    let sdk_tls = ClientTls::from_files(&certs.join("ca.pem"), None).unwrap();
    let sdk_config = ClientConfig::new(endpoints.clone())
        .with_tls(sdk_tls)
        .with_api_key(ApiKey::new(api_key.clone()).unwrap());
    let sdk = Client::connect(sdk_config).await.unwrap();
    sdk.put("acme", "sdk", b"over tls".to_vec()).await.unwrap();
    assert_eq!(sdk.get("acme", "sdk").await.unwrap().unwrap().value, b"over tls");
    // An SDK configured for TLS refuses a plaintext endpoint rather than downgrade.
    let downgrade = ClientConfig::new([format!("http://{}", endpoints[0])])
        .with_tls(ClientTls::from_files(&certs.join("ca.pem"), None).unwrap());
    assert!(matches!(Client::connect(downgrade).await, Err(SdkError::Config(_))));

    let address = cluster.addresses[&1].client.to_string();
    // Plaintext to the TLS port.
    let plaintext = async {
        let mut client = RecordsClient::connect(format!("http://{address}")).await.ok()?;
        client.put(put("acme", "k", b"plain", "tls", 2)).await.ok()
    };
    assert!(plaintext.await.is_none(), "a plaintext client is refused");

    // A client certificate from another CA, and an expired one from the right CA.
    let strangers = tempfile::tempdir().unwrap();
    let other_ca = CertAuthority::generate_dev(1).unwrap();
    let intruder = CertPrincipal::Operator("intruder".into());
    let (cert, key) = issue_into(
        &other_ca,
        strangers.path(),
        &LeafSpec::client(intruder, Validity::days_from_now(1)),
    );
    let foreign = TlsFiles {
        ca: certs.join("ca.pem"),
        identity: Some((cert, key)),
    };
    assert!(
        refused(&address, &foreign).await,
        "a certificate of another CA is refused"
    );
    let cluster_ca = CertAuthority::read(&certs).unwrap().unwrap();
    let expired_dir = strangers.path().join("expired");
    let late = CertPrincipal::Operator("late".into());
    let (cert, key) = issue_into(&cluster_ca, &expired_dir, &LeafSpec::client(late, Validity::expired()));
    let expired = TlsFiles {
        ca: certs.join("ca.pem"),
        identity: Some((cert, key)),
    };
    assert!(refused(&address, &expired).await, "an expired certificate is refused");

    // A client that trusts another CA does not trust the node either.
    let other_ca_file = strangers.path().join("other-ca.pem");
    std::fs::write(&other_ca_file, other_ca.cert_pem()).unwrap();
    let distrustful = TlsFiles {
        ca: other_ca_file,
        identity: None,
    };
    assert!(
        refused(&address, &distrustful).await,
        "the node's certificate chains only to its CA"
    );

    for id in 1..=3 {
        assert_eq!(
            stored_value(&cluster, &api_key, id, "k").await,
            Some((b"v1".to_vec(), version)),
            "node {id} unchanged"
        );
    }
    cluster.shutdown().await;
}

async fn peer_client(address: &str, certs: &Path, identity: (&Path, &Path)) -> Result<PeerClient<Channel>, String> {
    let (ca, cert, key) = (
        std::fs::read(certs.join("ca.pem")).unwrap(),
        std::fs::read(identity.0).unwrap(),
        std::fs::read(identity.1).unwrap(),
    );
    let tls = safekeep_api::tls::ClientTls {
        ca_pem: &ca,
        identity: Some((&cert, &key)),
        server_name: Some(PEER_SERVER_NAME),
    };
    let channel = Endpoint::from_shared(format!("https://{address}"))
        .unwrap()
        .tls_config(tls.config())
        .unwrap()
        .connect_timeout(Duration::from_secs(5))
        .connect()
        .await
        .map_err(|e| e.to_string())?;
    Ok(PeerClient::new(channel))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_peer_channel_admits_only_member_nodes() {
    let cluster = TestCluster::start_secure(3, |_| {}).await;
    let leader = cluster.leader().await;
    let certs = cluster.certs.clone().unwrap();
    let api_key = cluster.tenant_key("acme", ApiKeyRole::Writer).await;
    let version = put_with(&cluster, &api_key, 1, put("acme", "k", b"v1", "peer", 1)).await;
    let peer_address = cluster.addresses[&leader].peer.to_string();

    // Node 9 holds a valid certificate of the cluster CA but is not a member.
    let outsider = peer_client(
        &peer_address,
        &certs,
        (&certs.join("node-9.pem"), &certs.join("node-9.key")),
    )
    .await
    .expect("a node of the cluster CA completes the handshake");
    let message = || RaftMessage { payload: Vec::new() };
    let mut calls = outsider.clone();
    let denied = [
        calls.vote(message()).await.map(drop),
        calls.pre_vote(message()).await.map(drop),
        calls.append_entries(message()).await.map(drop),
        calls.propose(message()).await.map(drop),
        calls.transfer_leader(message()).await.map(drop),
        calls.read_index(ReadIndexRequest { lease: false }).await.map(drop),
        calls.install_snapshot(futures::stream::empty()).await.map(drop),
    ];
    for (call, result) in denied.into_iter().enumerate() {
        let status = result.expect_err("an outsider's call is refused");
        assert_eq!(status.code(), Code::PermissionDenied, "call {call}: {status:?}");
    }
    // Asking who a node is stays open to any node of the CA (a joining node asks first).
    let who = calls.identify(IdentifyRequest {}).await.unwrap().into_inner();
    assert_eq!(who.node_id, leader);

    // A member is served.
    let member = if leader == 1 { 2 } else { 1 };
    let (cert, key) = (
        certs.join(format!("node-{member}.pem")),
        certs.join(format!("node-{member}.key")),
    );
    let mut insider = peer_client(&peer_address, &certs, (&cert, &key)).await.unwrap();
    let read_index = insider.read_index(ReadIndexRequest { lease: false }).await.unwrap();
    assert_eq!(read_index.into_inner().leader_id, leader);

    // A member may not speak for another node: a vote in another candidate's name is refused.
    let impersonated = (1..=3).find(|id| *id != member).unwrap();
    let forged = openraft::raft::VoteRequest::<safekeep_node::raft::TypeConfig>::new(
        openraft::alias::VoteOf::<safekeep_node::raft::TypeConfig>::new(1_000, impersonated),
        None,
    );
    let payload = postcard::to_allocvec(&forged).unwrap();
    let status = insider.vote(RaftMessage { payload }).await.unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    assert!(
        cluster.nodes.values().all(|n| n.consensus().view().term < 1_000),
        "the forged term reached no node"
    );

    // An operator's certificate names no node: the peer channel closes on it.
    let operator = (certs.join("operator-admin.pem"), certs.join("operator-admin.key"));
    let refused_operator = match peer_client(&peer_address, &certs, (&operator.0, &operator.1)).await {
        Err(_) => true,
        Ok(mut client) => client.identify(IdentifyRequest {}).await.is_err(),
    };
    assert!(
        refused_operator,
        "a non-node certificate is refused on the peer channel"
    );

    // Plaintext on the peer channel.
    let plaintext = async {
        let mut client = PeerClient::connect(format!("http://{peer_address}")).await.ok()?;
        client.identify(IdentifyRequest {}).await.ok()
    };
    assert!(plaintext.await.is_none(), "plaintext is refused on the peer channel");

    for id in 1..=3 {
        assert_eq!(
            stored_value(&cluster, &api_key, id, "k").await,
            Some((b"v1".to_vec(), version))
        );
    }
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_refuses_a_peer_whose_certificate_names_another_node_than_the_one_dialed() {
    use safekeep_api::v1::AddLearnerRequest;

    let cluster = TestCluster::start_secure(3, |_| {}).await;
    cluster.leader().await;
    let dialer = cluster.nodes[&1].consensus();
    let http = cluster.addresses[&1].http;
    // Node 2's certificate (valid, from the cluster CA) answers at node 2's
    // address; node 1 dials it as though node 3 were there.
    let address = cluster.addresses[&2].peer.to_string();
    let refusals_before = metric_sum(http, PEER_IDENTITY_REFUSALS).await;
    let refusal = match dialer.identify(&address, ExpectedPeer::Node(3)).await {
        Err(IdentifyError::WrongPeer(refusal)) => refusal.to_string(),
        other => panic!("node 2's certificate was taken for node 3's: {other:?}"),
    };
    for part in [address.as_str(), "node 2", "node 3"] {
        assert!(refusal.contains(part), "the refusal names {part}: {refusal}");
    }
    assert!(
        metric_sum(http, PEER_IDENTITY_REFUSALS).await > refusals_before,
        "the refusal is counted"
    );

    // Dialed as itself, or as an unknown seed any node may serve, node 2 answers.
    for expected in [ExpectedPeer::Node(2), ExpectedPeer::AnyNode] {
        let answer = dialer.identify(&address, expected).await.expect("node 2 answers");
        assert_eq!(answer.node_id, 2, "dialed as {expected}");
    }

    // An operator adding node 4 at node 2's address is told so.
    let status = cluster
        .cluster(1)
        .await
        .add_learner(AddLearnerRequest {
            node_id: 4,
            zone: "a".into(),
            peer_address: address.clone(),
            client_address: cluster.addresses[&2].client.to_string(),
        })
        .await
        .expect_err("a learner at another node's address is refused");
    assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
    for part in ["node 2", "node 4"] {
        assert!(status.message().contains(part), "{status:?}");
    }
    assert!(!dialer.member_ids().contains(&4));
    cluster.shutdown().await;
}

/// How long the certificates a cluster starts with in the rotation test
/// stay valid: enough to start and write, short to wait out.
const SHORT_LIVED: time::Duration = time::Duration::seconds(15);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peers_dial_with_rotated_certificates_so_replication_outlives_the_old_ones() {
    let (mut cluster, listeners) =
        TestCluster::prepare(3, true, |c| c.tls.as_mut().unwrap().reload_interval_ms = 200).await;
    let certs = cluster.certs.clone().unwrap();
    let ca = CertAuthority::read(&certs).unwrap().unwrap();
    let now = time::OffsetDateTime::now_utc();
    let old_expiry = now + SHORT_LIVED;
    let short = Validity {
        not_before: now - time::Duration::hours(1),
        not_after: old_expiry,
    };
    for id in 1..=3 {
        issue_into(&ca, &certs, &LeafSpec::node(id, &hosts(), short));
    }
    cluster.start_prepared(listeners, NodeEnvironment::default()).await;
    let leader = cluster.leader().await;
    let api_key = cluster.tenant_key("acme", ApiKeyRole::Writer).await;
    put_with(&cluster, &api_key, leader, put("acme", "before", b"v", "rotation", 1)).await;
    assert!(
        time::OffsetDateTime::now_utc() < old_expiry,
        "the cluster started and served before its first certificates expired (else lengthen SHORT_LIVED)"
    );

    // Every node's files now hold a certificate valid for a day.
    for id in 1..=3 {
        issue_into(&ca, &certs, &LeafSpec::node(id, &hosts(), Validity::days_from_now(1)));
    }
    eventually("the old certificates to expire", || async {
        (time::OffsetDateTime::now_utc() > old_expiry + time::Duration::seconds(1)).then_some(())
    })
    .await;
    let operator = TlsFiles::operator(&certs);
    for id in 1..=3 {
        let address = cluster.addresses[&id].client.to_string();
        assert!(
            !refused(&address, &operator).await,
            "node {id} serves its new certificate"
        );
    }

    // A follower restarts: the leader must dial it again, and the
    // connections it had opened before the old certificates expired are gone.
    let follower = (1..=3).find(|id| *id != leader).unwrap();
    cluster.stop(follower).await;
    cluster.restart(follower).await;
    put_with(&cluster, &api_key, leader, put("acme", "after", b"v", "rotation", 2)).await;
    let committed = cluster.nodes[&leader].consensus().view().applied_index;
    for id in 1..=3 {
        cluster.wait_applied(id, committed).await;
    }
    // A write through the restarted follower, forwarded to the leader.
    put_with(
        &cluster,
        &api_key,
        follower,
        put("acme", "forwarded", b"v", "rotation", 3),
    )
    .await;
    cluster.shutdown().await;
}

/// A single-node TLS config on free loopback ports, certificates in `certs`.
fn single_node_config(dir: &Path, certs: &Path) -> NodeConfig {
    let any = "127.0.0.1:0".parse().unwrap();
    let listen = ListenAddresses {
        client: any,
        peer: any,
        http: any,
    };
    NodeConfig {
        cluster_name: "test".into(),
        init: vec![InitialMember {
            id: 1,
            zone: "a".into(),
            peer_address: "127.0.0.1:1".into(),
            client_address: "127.0.0.1:1".into(),
        }],
        tls: Some(node_tls(certs, 1)),
        encryption: safekeep_node::config::EncryptionSettings {
            master_key_file: Some(certs.join("master.keys")),
            ..Default::default()
        },
        raft: common::test_raft_settings(),
        ..NodeConfig::new(1, "a", dir.join("data"), listen)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_with_unusable_tls_files_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let certs = dir.path().join("certs");
    issue_test_certs(&certs, [1, 2]);
    safekeep_node::crypto::MasterKeyFile::generate(&certs.join("master.keys"), "test-1").unwrap();
    let ca = CertAuthority::read(&certs).unwrap().unwrap();
    let expired = issue_into(
        &ca,
        &dir.path().join("expired"),
        &LeafSpec::node(1, &hosts(), Validity::expired()),
    );
    let other_ca = CertAuthority::generate_dev(1).unwrap();
    let foreign = issue_into(
        &other_ca,
        &dir.path().join("foreign"),
        &LeafSpec::node(1, &hosts(), Validity::days_from_now(1)),
    );
    let garbage = dir.path().join("garbage.pem");
    std::fs::write(&garbage, "not a certificate").unwrap();

    type Breakage = Box<dyn Fn(&mut NodeConfig)>;
    let cases: Vec<(&str, Breakage, &str)> = vec![
        (
            "missing certificate",
            Box::new(|c| c.tls.as_mut().unwrap().cert = PathBuf::from("/nonexistent/node.pem")),
            "cannot read the certificate",
        ),
        (
            "expired certificate",
            Box::new(move |c| {
                let tls = c.tls.as_mut().unwrap();
                (tls.cert, tls.key) = expired.clone();
            }),
            "expired",
        ),
        (
            "key of another certificate",
            Box::new(|c| {
                let tls = c.tls.as_mut().unwrap();
                tls.key = tls.key.with_file_name("node-2.key");
            }),
            "does not belong",
        ),
        (
            "certificate of another node",
            Box::new(|c| {
                let tls = c.tls.as_mut().unwrap();
                tls.cert = tls.cert.with_file_name("node-2.pem");
                tls.key = tls.key.with_file_name("node-2.key");
            }),
            "names node 2, but this is node 1",
        ),
        (
            "certificate of another CA",
            Box::new(move |c| {
                let tls = c.tls.as_mut().unwrap();
                (tls.cert, tls.key) = foreign.clone();
            }),
            "does not chain",
        ),
        (
            "unreadable CA",
            Box::new(move |c| c.tls.as_mut().unwrap().ca = garbage.clone()),
            "holds no certificate",
        ),
        (
            "no TLS and no --insecure-dev",
            Box::new(|c| c.tls = None),
            "--insecure-dev",
        ),
    ];
    for (case, breakage, expected) in cases {
        let mut config = single_node_config(dir.path(), &certs);
        breakage(&mut config);
        let error = match Node::start(config.clone()).await {
            Ok(node) => {
                node.shutdown().await;
                panic!("{case}: the node started");
            }
            Err(error) => error.to_string(),
        };
        assert!(error.contains(expected), "{case}: {error}");
        assert!(!config.data_dir.exists(), "{case}: the data directory was touched");
    }

    // The unbroken config starts.
    let node = Node::start(single_node_config(dir.path(), &certs))
        .await
        .expect("valid TLS starts");
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotated_certificates_take_effect_without_a_restart() {
    let cluster = TestCluster::start_secure(1, |c| c.tls.as_mut().unwrap().reload_interval_ms = 200).await;
    cluster.leader().await;
    let certs = cluster.certs.clone().unwrap();
    let address = cluster.addresses[&1].client.to_string();
    let http = cluster.addresses[&1].http;
    let old_client = TlsFiles::operator(&certs);
    let old_ca = std::fs::read(&old_client.ca).unwrap();
    assert!(!refused(&address, &old_client).await);

    // A new CA: the node's certificate, the CA file and the operator's certificate all change.
    let staging = tempfile::tempdir().unwrap();
    let new_ca = CertAuthority::generate_dev(1).unwrap();
    let admin = CertPrincipal::Operator("admin".into());
    let (admin_cert, admin_key) = issue_into(
        &new_ca,
        staging.path(),
        &LeafSpec::client(admin, Validity::days_from_now(1)),
    );
    let new_client = TlsFiles {
        ca: staging.path().join("ca.pem"),
        identity: Some((admin_cert, admin_key)),
    };
    std::fs::write(&new_client.ca, new_ca.cert_pem()).unwrap();
    assert!(
        refused(&address, &new_client).await,
        "before rotation the node is unknown to the new CA"
    );

    let node_spec = LeafSpec::node(1, &hosts(), Validity::days_from_now(1));
    issue_into(&new_ca, &certs, &node_spec);
    std::fs::write(certs.join("ca.pem"), new_ca.cert_pem()).unwrap();
    eventually("the node to serve its rotated certificate", || async {
        (!refused(&address, &new_client).await).then_some(())
    })
    .await;
    let kept_old = TlsFiles {
        ca: staging.path().join("old-ca.pem"),
        identity: old_client.identity.clone(),
    };
    std::fs::write(&kept_old.ca, &old_ca).unwrap();
    assert!(refused(&address, &kept_old).await, "the old chain is no longer served");

    // A broken certificate on disk is refused and the working one stays.
    std::fs::write(certs.join("node-1.pem"), "-----BEGIN CERTIFICATE-----\ngarbage\n").unwrap();
    eventually("the broken certificate to be refused", || async {
        let text = reqwest::get(format!("http://{http}/metrics"))
            .await
            .ok()?
            .text()
            .await
            .ok()?;
        text.lines()
            .any(|l| l.starts_with("safekeep_tls_reload_failures_total") && !l.ends_with(" 0"))
            .then_some(())
    })
    .await;
    assert!(
        !refused(&address, &new_client).await,
        "the node still serves the last good certificate"
    );
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_joins_a_tls_cluster_only_once_an_operator_added_it() {
    use safekeep_api::v1::AddLearnerRequest;
    use safekeep_api::v1::cluster_client::ClusterClient as Cluster;
    use safekeep_node::NodeListeners;

    let cluster = TestCluster::start_secure(3, |_| {}).await;
    cluster.leader().await;
    let listeners = common::bound_listeners;
    let (first, addresses) = listeners().await;
    let mut config = cluster.config_for(4, &addresses);
    // A fourth zone: a, b, c, d survives the loss of any one.
    config.zone = "d".into();
    config.join = Some(cluster.addresses[&1].peer.to_string());
    config.raft.join_timeout_ms = 1_500;

    // Node 4 holds a valid certificate of the cluster CA, but nobody added it.
    let refused = match Node::start_with_listeners(config.clone(), first).await {
        Ok(node) => {
            node.shutdown().await;
            panic!("a node joined on its own");
        }
        Err(error) => error.to_string(),
    };
    assert!(refused.contains("not a member"), "{refused}");
    assert!(!cluster.nodes[&1].consensus().member_ids().contains(&4));

    // Once the operator adds it, the same node joins and becomes a voter.
    Cluster::new(cluster.channel(1).await)
        .add_learner(AddLearnerRequest {
            node_id: 4,
            zone: "d".into(),
            peer_address: addresses.peer.to_string(),
            client_address: addresses.client.to_string(),
        })
        .await
        .unwrap();
    let rebound = NodeListeners::tcp(
        tokio::net::TcpListener::bind(addresses.client).await.unwrap(),
        tokio::net::TcpListener::bind(addresses.peer).await.unwrap(),
        tokio::net::TcpListener::bind(addresses.http).await.unwrap(),
    );
    let node = Node::start_with_listeners(config, rebound)
        .await
        .expect("the added node joins");
    eventually("node 4 to become a voter", || async {
        let members = cluster.nodes[&1].consensus().view().members;
        members.iter().any(|m| m.id == 4 && m.voter).then_some(())
    })
    .await;
    node.shutdown().await;
    cluster.shutdown().await;
}
