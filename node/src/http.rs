//! The plain-HTTP port for load balancers and monitoring: `/healthz` (the
//! process is alive), `/readyz` (this node can serve: joined, a live leader,
//! caught up; 503 with a JSON reason otherwise) and `/metrics` (Prometheus).
//! It needs no client certificate and exposes no customer data.

use std::sync::OnceLock;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Json};
use axum::routing::get;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use serde_json::json;

use crate::metrics_names::{self, LATENCY_BUCKETS};
use crate::raft::Consensus;

/// What the HTTP handlers need.
#[derive(Clone)]
struct HttpState {
    consensus: Consensus,
    insecure: bool,
    metrics: PrometheusHandle,
}

/// The process-wide Prometheus recorder, installed once.
pub fn prometheus() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), LATENCY_BUCKETS)
                .expect("latency buckets are not empty");
            let recorder = builder.build_recorder();
            let handle = recorder.handle();
            // Described to this recorder itself, so its HELP lines do not depend on which recorder is global.
            metrics::with_local_recorder(&recorder, metrics_names::describe);
            // Another recorder may already be installed (tests embedding the node); keep ours readable.
            let _ = metrics::set_global_recorder(recorder);
            handle
        })
        .clone()
}

/// The HTTP router of one node.
pub fn router(consensus: Consensus, insecure: bool) -> Router {
    let state = HttpState {
        consensus,
        insecure,
        metrics: prometheus(),
    };
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_text))
        .with_state(state)
}

async fn healthz() -> impl IntoResponse {
    (StatusCode::OK, "ok\n")
}

async fn readyz(State(state): State<HttpState>) -> impl IntoResponse {
    let view = state.consensus.view();
    match state.consensus.readiness() {
        Ok(()) => (
            StatusCode::OK,
            Json(json!({
                "ready": true,
                "node_id": view.node_id,
                "leader_id": view.leader_id,
                "applied_index": view.applied_index,
                "insecure": state.insecure,
            })),
        ),
        Err(reason) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({
                "ready": false,
                "reason": reason,
                "node_id": view.node_id,
                "leader_id": view.leader_id,
                "insecure": state.insecure,
            })),
        ),
    }
}

async fn metrics_text(State(state): State<HttpState>) -> impl IntoResponse {
    (
        [(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
}

#[cfg(test)]
mod tests {
    use metrics_exporter_prometheus::PrometheusBuilder;

    use crate::metrics_names::{self, DESCRIPTIONS, Kind};

    #[test]
    fn every_exported_family_has_help_text() {
        let recorder = PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        metrics::with_local_recorder(&recorder, || {
            metrics_names::describe();
            for d in DESCRIPTIONS {
                match d.kind {
                    Kind::Counter => metrics::counter!(d.name).increment(1),
                    Kind::Gauge => metrics::gauge!(d.name).set(1.0),
                    Kind::Histogram => metrics::histogram!(d.name).record(0.01),
                }
            }
        });
        let text = handle.render();
        for d in DESCRIPTIONS {
            let help = format!("# HELP {} {}\n", d.name, d.help);
            assert!(text.contains(&help), "no help text for {}:\n{text}", d.name);
        }
        let families = text.lines().filter(|l| l.starts_with("# TYPE ")).count();
        assert_eq!(families, DESCRIPTIONS.len(), "{text}");
    }
}
