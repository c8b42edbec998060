//! The customer data lifecycle on a real three-node cluster with TLS and
//! sealed values: an export holds the tenant exactly as of one log index
//! while writes go on, resumes on another node at that same point, is
//! refused once the tenant changed, and is audited.

mod common;

use std::collections::BTreeMap;

use common::{TestCluster, TlsFiles};
use safekeep_api::v1::ApiKeyRole;
use safekeep_client::{ApiKey, Client, ClientConfig, ClientTls, Error};

/// Records written before the export: more than one chunk by count.
const RECORDS: usize = 1_500;
/// Values large enough that chunks also split by bytes (4 MiB each).
const LARGE_VALUES: usize = 20;
const LARGE_VALUE_BYTES: usize = 300 << 10;
/// Tasks sharing one client while the records are written.
const WRITERS: usize = 16;

/// What a tenant holds, key by key: value and version.
type State = BTreeMap<String, (Vec<u8>, u64)>;

/// An SDK client with a tenant's key, through the given nodes only.
async fn tenant_sdk(cluster: &TestCluster, nodes: &[u64], api_key: &str) -> Client {
    let certs = cluster.certs.as_ref().expect("a secure cluster");
    let tls = ClientTls::from_files(&TlsFiles::operator(certs).ca, None).unwrap();
    let endpoints: Vec<String> = nodes
        .iter()
        .map(|id| cluster.addresses[id].client.to_string())
        .collect();
    let config = ClientConfig::new(endpoints)
        .with_tls(tls)
        .with_api_key(ApiKey::new(api_key).unwrap());
    Client::connect(config).await.unwrap()
}

fn value_of(i: usize) -> Vec<u8> {
    if i < LARGE_VALUES {
        vec![(i % 251) as u8; LARGE_VALUE_BYTES]
    } else if i.is_multiple_of(3) {
        // Not UTF-8.
        vec![0xff, (i % 256) as u8, 0x00]
    } else {
        format!("value {i}").into_bytes()
    }
}

/// Reads a whole export; returns its point in time and the records.
async fn drain(client: &Client, tenant: &str, resume: Option<&str>, state: &mut State) -> Result<u64, Error> {
    let mut export = client.export(tenant, resume).await?;
    while let Some(chunk) = export.next_chunk().await? {
        for record in chunk.records {
            let previous = state.insert(record.key.clone(), (record.value, record.version));
            assert!(previous.is_none(), "{} exported twice", record.key);
        }
    }
    Ok(export.as_of_version().expect("every export tells its point in time"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_is_one_point_in_time_resumes_elsewhere_and_is_audited() {
    let cluster = TestCluster::start_secure(3, |_| {}).await;
    let writer_key = cluster.tenant_key("acme", ApiKeyRole::Writer).await;
    let reader_key = cluster.tenant_key("acme", ApiKeyRole::Reader).await;
    let other_key = cluster.tenant_key("globex", ApiKeyRole::Writer).await;
    let writer = tenant_sdk(&cluster, &[1, 2, 3], &writer_key).await;

    // Every acknowledged write, as (key, version, value or None for a delete).
    let mut acked: Vec<(String, u64, Option<Vec<u8>>)> = Vec::new();
    let mut tasks = tokio::task::JoinSet::new();
    for task in 0..WRITERS {
        let writer = writer.clone();
        tasks.spawn(async move {
            let mut done = Vec::new();
            for i in (task..RECORDS).step_by(WRITERS) {
                let key = format!("rec/{i:05}");
                let outcome = writer
                    .put("acme", &key, value_of(i))
                    .await
                    .expect("the write is acknowledged");
                done.push((key, outcome.version, Some(value_of(i))));
            }
            done
        });
    }
    while let Some(done) = tasks.join_next().await {
        acked.extend(done.unwrap());
    }

    // Export through node 2 while the writer overwrites, deletes and adds
    // records after the first chunk: none of that may show.
    let reader = tenant_sdk(&cluster, &[2], &reader_key).await;
    let mut export = reader.export("acme", None).await.unwrap();
    let mut exported = State::new();
    let first = export.next_chunk().await.unwrap().expect("a first chunk");
    let as_of = first.as_of_version;
    for record in first.records {
        exported.insert(record.key, (record.value, record.version));
    }
    for i in 0..50 {
        let key = format!("rec/{:05}", RECORDS - 1 - i);
        let outcome = writer.put("acme", &key, b"overwritten".to_vec()).await.unwrap();
        acked.push((key, outcome.version, Some(b"overwritten".to_vec())));
        let gone = format!("rec/{:05}", RECORDS - 100 - i);
        let deleted = writer.delete("acme", &gone).await.unwrap();
        acked.push((gone, deleted.version, None));
        let new = format!("rec/new/{i}");
        let outcome = writer.put("acme", &new, b"new".to_vec()).await.unwrap();
        acked.push((new, outcome.version, Some(b"new".to_vec())));
    }
    while let Some(chunk) = export.next_chunk().await.unwrap() {
        assert_eq!(chunk.as_of_version, as_of);
        for record in chunk.records {
            assert!(
                exported
                    .insert(record.key.clone(), (record.value, record.version))
                    .is_none()
            );
        }
    }

    // Exactly the acknowledged writes up to the point in time, key by key.
    acked.sort_by_key(|(_, version, _)| *version);
    let mut expected = State::new();
    for (key, version, value) in acked.iter().filter(|(_, version, _)| *version <= as_of) {
        match value {
            Some(value) => expected.insert(key.clone(), (value.clone(), *version)),
            None => expected.remove(key),
        };
    }
    assert_eq!(expected.len(), RECORDS, "every first write precedes the export");
    assert!(
        acked.iter().any(|(_, version, _)| *version > as_of),
        "writes went on during the export"
    );
    assert_eq!(exported.len(), expected.len());
    assert!(
        exported == expected,
        "the export differs from the writes acknowledged up to version {as_of}"
    );

    // Cut after one chunk and resumed through node 3: the same point in time,
    // though another tenant was written in between.
    let mut export = reader.export("acme", None).await.unwrap();
    let mut resumed = State::new();
    let first = export.next_chunk().await.unwrap().unwrap();
    let point = first.as_of_version;
    for record in first.records {
        resumed.insert(record.key, (record.value, record.version));
    }
    drop(export);
    let globex = tenant_sdk(&cluster, &[1], &other_key).await;
    globex.put("globex", "k", b"v".to_vec()).await.unwrap();
    let elsewhere = tenant_sdk(&cluster, &[3], &reader_key).await;
    let resumed_at = drain(&elsewhere, "acme", Some(&first.resume_token), &mut resumed)
        .await
        .unwrap();
    assert_eq!(resumed_at, point);
    let whole = {
        let mut whole = State::new();
        drain(&reader, "acme", None, &mut whole).await.unwrap();
        whole
    };
    assert!(resumed == whole, "a resumed export differs from a whole one");

    // Once the tenant's records change, the old point in time cannot be resumed.
    writer.put("acme", "late", b"late".to_vec()).await.unwrap();
    let refused = drain(&elsewhere, "acme", Some(&first.resume_token), &mut State::new())
        .await
        .unwrap_err();
    assert!(
        refused.to_string().contains("changed") && refused.to_string().contains("start a new export"),
        "{refused}"
    );

    // A garbled token is a clear INVALID_ARGUMENT.
    let garbled = drain(&elsewhere, "acme", Some("not-a-token"), &mut State::new())
        .await
        .unwrap_err();
    assert!(matches!(garbled, Error::InvalidArgument(_)), "{garbled:?}");

    // Every export is in the audit log, by the key that ran it.
    let audit = common::operator_sdk(&cluster, &[1])
        .await
        .list_audit(0, 0)
        .await
        .unwrap();
    let exports: Vec<_> = audit
        .iter()
        .filter(|e| e.action == "export" && e.tenant == "acme")
        .collect();
    assert!(exports.len() >= 4, "{exports:#?}");
    assert!(
        exports.iter().any(|e| e.detail.starts_with("resumed at version")),
        "{exports:#?}"
    );
    cluster.shutdown().await;
}
