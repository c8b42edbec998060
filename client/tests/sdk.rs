//! The SDK against a real tonic server (the fake node in `common`): retries,
//! write ids, error mapping and failover, observed from both sides.

mod common;

use std::future::Future;
use std::time::Duration;

use common::{FakeServer, Injected, TEST_BOUND, dead_endpoint};
use safekeep_client::{Client, ClientConfig, Consistency, Error};
use tonic::Code;

/// Runs a test body under [`TEST_BOUND`], so a hang fails instead of blocking CI.
async fn bounded<F: Future<Output = ()>>(body: F) {
    tokio::time::timeout(TEST_BOUND, body)
        .await
        .expect("the test finished within its bound");
}

/// A configuration with short backoffs so retry tests run fast.
fn fast_config(endpoints: Vec<String>) -> ClientConfig {
    let mut config = ClientConfig::new(endpoints);
    config.initial_backoff = Duration::from_millis(1);
    config.max_backoff = Duration::from_millis(10);
    config.request_timeout = Duration::from_secs(5);
    config
}

async fn client_for(server: &FakeServer) -> Client {
    Client::connect(fast_config(vec![server.endpoint()]))
        .await
        .expect("a valid configuration")
}

#[tokio::test]
async fn put_retries_unavailable_and_every_attempt_carries_the_same_write_id() {
    bounded(async {
        let server = FakeServer::start().await;
        server
            .state
            .script_puts([Injected::Fail(Code::Unavailable, "no leader yet"); 3]);
        let client = client_for(&server).await;

        let outcome = client
            .put("acme", "k", b"v".to_vec())
            .await
            .expect("the put succeeds after retries");

        assert_eq!(server.state.put_calls(), 4);
        let ids = server.state.put_write_ids();
        let first = ids[0].clone().expect("every put carries a write id");
        assert_eq!(first.client_id, client.client_id());
        assert!(ids.iter().all(|id| id.as_ref() == Some(&first)), "{ids:?}");
        let record = client.get("acme", "k").await.expect("the get succeeds");
        assert_eq!(record.map(|r| r.version), Some(outcome.version));
    })
    .await;
}

#[tokio::test]
async fn separate_writes_get_distinct_request_ids() {
    bounded(async {
        let server = FakeServer::start().await;
        let client = client_for(&server).await;
        client.put("acme", "a", b"1".to_vec()).await.expect("put a");
        client.put("acme", "b", b"2".to_vec()).await.expect("put b");
        let ids: Vec<u64> = server
            .state
            .put_write_ids()
            .into_iter()
            .map(|id| id.expect("a write id").request_id)
            .collect();
        assert_eq!(ids.len(), 2);
        assert_ne!(ids[0], ids[1]);
    })
    .await;
}

#[tokio::test]
async fn invalid_argument_is_returned_at_once() {
    bounded(async {
        let server = FakeServer::start().await;
        server
            .state
            .script_puts([Injected::Fail(Code::InvalidArgument, "key too long")]);
        let client = client_for(&server).await;

        let error = client
            .put("acme", "k", b"v".to_vec())
            .await
            .expect_err("the server refuses the put");

        assert_eq!(error, Error::InvalidArgument("key too long".into()));
        assert!(!error.may_have_applied());
        assert_eq!(server.state.put_calls(), 1);
    })
    .await;
}

#[tokio::test]
async fn failed_precondition_with_version_metadata_is_a_conflict() {
    bounded(async {
        let server = FakeServer::start().await;
        server.state.script_puts([Injected::Conflict(7)]);
        let client = client_for(&server).await;

        let error = client
            .put_if("acme", "k", b"v".to_vec(), 3)
            .await
            .expect_err("the compare-and-set fails");

        assert_eq!(
            error,
            Error::Conflict {
                current_version: Some(7)
            }
        );
        assert_eq!(error.code(), Code::FailedPrecondition);
        assert_eq!(server.state.put_calls(), 1);
    })
    .await;
}

#[tokio::test]
async fn put_if_zero_creates_once_then_conflicts_with_the_real_version() {
    bounded(async {
        let server = FakeServer::start().await;
        let client = client_for(&server).await;
        let created = client
            .put_if("acme", "k", b"v1".to_vec(), 0)
            .await
            .expect("the record did not exist");
        let error = client
            .put_if("acme", "k", b"v2".to_vec(), 0)
            .await
            .expect_err("the record exists now");
        assert_eq!(
            error,
            Error::Conflict {
                current_version: Some(created.version)
            }
        );
    })
    .await;
}

#[tokio::test]
async fn exhausted_attempts_yield_unavailable_that_may_have_applied() {
    bounded(async {
        let server = FakeServer::start().await;
        server
            .state
            .script_puts([Injected::Fail(Code::Unavailable, "no leader"); 10]);
        let mut config = fast_config(vec![server.endpoint()]);
        config.max_attempts = 3;
        let client = Client::connect(config).await.expect("a valid configuration");

        let error = client
            .put("acme", "k", b"v".to_vec())
            .await
            .expect_err("every attempt fails");

        assert!(
            matches!(
                &error,
                Error::Unavailable {
                    maybe_applied: true,
                    ..
                }
            ),
            "{error:?}"
        );
        assert!(error.may_have_applied());
        assert_eq!(server.state.put_calls(), 3);
    })
    .await;
}

#[tokio::test]
async fn timed_out_attempts_are_retried_with_the_same_write_id() {
    bounded(async {
        let server = FakeServer::start().await;
        server.state.script_puts([Injected::Hang]);
        let mut config = fast_config(vec![server.endpoint()]);
        config.request_timeout = Duration::from_millis(200);
        let client = Client::connect(config).await.expect("a valid configuration");

        client
            .put("acme", "k", b"v".to_vec())
            .await
            .expect("the second attempt succeeds");

        let ids = server.state.put_write_ids();
        assert_eq!(ids.len(), 2);
        assert_eq!(ids[0], ids[1]);
    })
    .await;
}

#[tokio::test]
async fn a_write_that_always_times_out_may_have_applied() {
    bounded(async {
        let server = FakeServer::start().await;
        server.state.script_puts([Injected::Hang, Injected::Hang]);
        let mut config = fast_config(vec![server.endpoint()]);
        config.request_timeout = Duration::from_millis(100);
        config.max_attempts = 2;
        let client = Client::connect(config).await.expect("a valid configuration");

        let error = client
            .put("acme", "k", b"v".to_vec())
            .await
            .expect_err("no attempt is answered");

        assert_eq!(error, Error::Timeout { maybe_applied: true });
        assert_eq!(server.state.put_calls(), 2);
    })
    .await;
}

#[tokio::test]
async fn a_write_that_never_connected_was_not_applied() {
    bounded(async {
        let mut config = fast_config(vec![dead_endpoint().await]);
        config.max_attempts = 3;
        let client = Client::connect(config).await.expect("a valid configuration");

        let error = client
            .put("acme", "k", b"v".to_vec())
            .await
            .expect_err("nothing listens there");

        assert!(
            matches!(
                &error,
                Error::Unavailable {
                    maybe_applied: false,
                    ..
                }
            ),
            "{error:?}"
        );
        assert!(error.to_string().contains("gave up after 3 attempts"), "{error}");
    })
    .await;
}

#[tokio::test]
async fn a_dead_endpoint_fails_over_to_the_next() {
    bounded(async {
        let server = FakeServer::start().await;
        let config = fast_config(vec![dead_endpoint().await, server.endpoint()]);
        let client = Client::connect(config).await.expect("a valid configuration");

        for round in 0..4 {
            client
                .put("acme", &format!("k{round}"), b"v".to_vec())
                .await
                .expect("the live endpoint answers");
        }
        assert_eq!(server.state.put_calls(), 4);
    })
    .await;
}

#[tokio::test]
async fn missing_records_read_as_none() {
    bounded(async {
        let server = FakeServer::start().await;
        let client = client_for(&server).await;
        assert_eq!(client.get("acme", "nope").await, Ok(None));
        assert_eq!(client.get_with("acme", "nope", Consistency::Stale).await, Ok(None));
    })
    .await;
}

#[tokio::test]
async fn delete_and_list_round_trip() {
    bounded(async {
        let server = FakeServer::start().await;
        let client = client_for(&server).await;
        for key in ["a1", "a2", "a3", "b1"] {
            client.put("acme", key, key.as_bytes().to_vec()).await.expect("put");
        }
        let first = client.list("acme", "a", None, 2).await.expect("first page");
        let keys: Vec<&str> = first.records.iter().map(|r| r.key.as_str()).collect();
        assert_eq!(keys, ["a1", "a2"]);
        let token = first.next_page_token.expect("more records follow");
        let second = client.list("acme", "a", Some(&token), 2).await.expect("second page");
        assert_eq!(second.records.len(), 1);
        assert_eq!(second.next_page_token, None);

        let deleted = client.delete("acme", "a1").await.expect("delete");
        assert!(deleted.deleted);
        let again = client.delete("acme", "a1").await.expect("delete again");
        assert!(!again.deleted);
        let error = client.delete_if("acme", "a2", 999).await.expect_err("wrong version");
        assert!(matches!(
            error,
            Error::Conflict {
                current_version: Some(_)
            }
        ));
    })
    .await;
}

#[tokio::test]
async fn responses_update_the_leader_hint() {
    bounded(async {
        let server = FakeServer::start().await;
        let client = client_for(&server).await;
        assert_eq!(client.leader_hint(), None);
        client.put("acme", "k", b"v".to_vec()).await.expect("put");
        let hint = client.leader_hint().expect("the fake names itself leader");
        assert_eq!(hint.leader_id, common::FAKE_NODE_ID);
        assert_eq!(hint.term, common::FAKE_TERM);
        assert_eq!(hint.leader_address, Some(server.endpoint()));
        let header = client.last_response_header().expect("a header was seen");
        assert_eq!(header.node_id, common::FAKE_NODE_ID);
    })
    .await;
}

#[tokio::test]
async fn membership_changes_do_not_retry_definite_refusals() {
    bounded(async {
        let server = FakeServer::start().await;
        let client = client_for(&server).await;
        let error = client.promote(2, false).await.expect_err("the fake refuses");
        assert!(matches!(error, Error::FailedPrecondition(_)), "{error:?}");
        let status = client.status().await.expect("status");
        assert_eq!(status.members.len(), 1);
        assert_eq!(status.header.leader_id, common::FAKE_NODE_ID);
    })
    .await;
}

#[tokio::test]
async fn empty_tenant_or_key_is_refused_without_a_call() {
    bounded(async {
        let server = FakeServer::start().await;
        let client = client_for(&server).await;
        let error = client.put("", "k", b"v".to_vec()).await.expect_err("empty tenant");
        assert!(matches!(error, Error::InvalidArgument(_)));
        let error = client.put("acme", "", b"v".to_vec()).await.expect_err("empty key");
        assert!(matches!(error, Error::InvalidArgument(_)));
        assert_eq!(server.state.put_calls(), 0);
    })
    .await;
}

#[tokio::test]
async fn malformed_endpoints_are_refused_at_connect() {
    let error = Client::connect(ClientConfig::new(["https://secure:7101"]))
        .await
        .expect_err("an https endpoint needs TLS settings");
    assert!(matches!(error, Error::Config(_)), "{error:?}");
}

#[tokio::test]
async fn resource_exhausted_is_retried_after_backoff() {
    bounded(async {
        let server = FakeServer::start().await;
        server
            .state
            .script_puts([Injected::Fail(Code::ResourceExhausted, "too many writes"); 2]);
        let client = client_for(&server).await;
        client
            .put("acme", "k", b"v".to_vec())
            .await
            .expect("the third attempt succeeds");
        assert_eq!(server.state.put_calls(), 3);
    })
    .await;
}

#[tokio::test]
async fn caller_built_channels_are_used_in_endpoint_order() {
    bounded(async {
        let server = FakeServer::start().await;
        let config = fast_config(vec![server.endpoint()]);
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", server.addr))
            .expect("a valid URI")
            .connect_lazy();
        let client = Client::from_channels(config.clone(), vec![channel.clone()]).expect("one channel per endpoint");
        client
            .put("acme", "k", b"v".to_vec())
            .await
            .expect("the put goes through the given channel");
        assert_eq!(server.state.put_calls(), 1);

        let error =
            Client::from_channels(config, vec![channel.clone(), channel]).expect_err("two channels for one endpoint");
        assert!(matches!(error, Error::Config(_)), "{error:?}");
    })
    .await;
}

#[tokio::test]
async fn a_cut_export_stream_is_resumed_and_every_record_arrives_once() {
    bounded(async {
        let server = FakeServer::start().await;
        let client = client_for(&server).await;
        let keys: Vec<String> = (0..7).map(|i| format!("k{i}")).collect();
        for key in &keys {
            client.put("acme", key, key.as_bytes().to_vec()).await.expect("put");
        }
        client.put("globex", "other", b"x".to_vec()).await.expect("put");
        // Two streams in a row end after one chunk, without the final one.
        server.state.cut_exports(2);

        let mut export = client.export("acme", None).await.expect("the export starts");
        let mut seen = Vec::new();
        while let Some(chunk) = export.next_chunk().await.expect("every chunk arrives") {
            // The fake's point in time is its last write: the eighth.
            assert_eq!(chunk.as_of_version, 8, "one point in time throughout");
            seen.extend(chunk.records.into_iter().map(|r| (r.key, r.value)));
        }
        let expected: Vec<(String, Vec<u8>)> = keys.iter().map(|k| (k.clone(), k.as_bytes().to_vec())).collect();
        assert_eq!(seen, expected);
        // A new export, then two resumptions after the cut streams' only chunks.
        assert_eq!(server.state.export_tokens(), vec!["", "8/k1", "8/k3"]);
    })
    .await;
}
