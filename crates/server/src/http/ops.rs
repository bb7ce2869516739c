//! Operations endpoints: liveness, readiness of each dependency, Prometheus metrics
//! and the OpenAPI document.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use chat_protocol::http::Readiness;
use utoipa::OpenApi;

use super::{ApiDoc, Json};
use crate::app::ApiContext;

#[utoipa::path(get, path = "/healthz", tag = "operations", responses((status = 200, description = "the process is alive")))]
pub async fn healthz() -> &'static str {
    "ok"
}

#[utoipa::path(get, path = "/readyz", tag = "operations",
    responses((status = 200, body = Readiness, description = "every dependency answers"),
              (status = 503, body = Readiness, description = "at least one dependency is down; `checks` says which")))]
pub async fn readyz(State(ctx): State<ApiContext>) -> (StatusCode, Json<Readiness>) {
    let mut checks = BTreeMap::new();
    let database = ctx.directory.ping().await.map_err(|e| e.to_string());
    checks.insert(
        "database".to_owned(),
        database.err().unwrap_or_else(|| "ok".into()),
    );
    if let Some(redis) = &ctx.redis {
        let redis = redis.ping().await.map_err(|e| e.to_string());
        checks.insert(
            "redis".to_owned(),
            redis.err().unwrap_or_else(|| "ok".into()),
        );
    }
    let log = ctx.log.check().await.map_err(|e| e.to_string());
    checks.insert(
        "message_log".to_owned(),
        log.err().unwrap_or_else(|| "ok".into()),
    );
    if *ctx.shutdown.borrow() {
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

#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "Prometheus text format", content_type = "text/plain")))]
pub async fn metrics(State(ctx): State<ApiContext>) -> impl IntoResponse {
    metrics::gauge!("chat_connections").set(ctx.hub.connection_count() as f64);
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        ctx.metrics.render(),
    )
}

pub async fn openapi() -> impl IntoResponse {
    axum::Json(ApiDoc::openapi())
}
