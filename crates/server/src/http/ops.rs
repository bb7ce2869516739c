//! Operations endpoints: liveness, readiness of each dependency and Prometheus
//! metrics. (The API's documents are served by [`super::openapi`].)

use std::collections::BTreeMap;
use std::sync::Arc;

use super::Json;
use crate::hub::Hub;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use chat_protocol::http::Readiness;
use futures::future::BoxFuture;
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::sync::watch;

/// Asks one dependency whether it answers; `Err` says what is wrong.
pub type Check = Arc<dyn Fn() -> BoxFuture<'static, Result<(), String>> + Send + Sync>;

/// What the operations endpoints use.
#[derive(Clone)]
pub struct OpsState {
    /// Each dependency by the name `/readyz` reports it under.
    pub checks: Arc<Vec<(&'static str, Check)>>,
    /// For the connection gauge.
    pub hub: Arc<Hub>,
    pub metrics: PrometheusHandle,
    pub shutdown: watch::Receiver<bool>,
}

#[utoipa::path(get, path = "/healthz", tag = "operations", operation_id = "healthz",
    responses((status = 200, description = "the process is alive", content_type = "text/plain", body = String)))]
pub async fn healthz() -> &'static str {
    "ok"
}

#[utoipa::path(get, path = "/readyz", tag = "operations", operation_id = "readyz",
    responses((status = 200, body = Readiness, description = "every dependency answers"),
              (status = 503, body = Readiness, description = "at least one dependency is down; `checks` says which")))]
pub async fn readyz(State(ops): State<OpsState>) -> (StatusCode, Json<Readiness>) {
    let answers = futures::future::join_all(ops.checks.iter().map(|(_, check)| check())).await;
    let mut checks: BTreeMap<String, String> = ops
        .checks
        .iter()
        .zip(answers)
        .map(|((name, _), answer)| {
            (
                (*name).to_owned(),
                answer.err().unwrap_or_else(|| "ok".into()),
            )
        })
        .collect();
    if *ops.shutdown.borrow() {
        checks.insert("server".to_owned(), "shutting down".into());
    }
    let ready = checks.values().all(|v| v == "ok");
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(Readiness { ready, checks }))
}

#[utoipa::path(get, path = "/metrics", tag = "operations", operation_id = "metrics",
    responses((status = 200, description = "Prometheus text format", content_type = "text/plain", body = String)))]
pub async fn metrics(State(ops): State<OpsState>) -> impl IntoResponse {
    metrics::gauge!("chat_connections").set(ops.hub.connection_count() as f64);
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        ops.metrics.render(),
    )
}
