//! The HTTP API under `/api/v1` (DESIGN.md §4): one module per resource with its
//! handlers, plus the extractors they share. Handlers return `AppResult<...>`, so
//! every refusal goes through [`AppError`]'s one mapping to status and code.

pub mod auth;
pub mod conversations;
pub mod ops;
pub mod users;
pub mod web;

use std::net::{IpAddr, SocketAddr};

use axum::Router;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::routing::{delete, get, post};
use chat_protocol::ErrorCode;
use chat_protocol::UserId;
use utoipa::OpenApi;

use crate::app::ApiContext;
use crate::error::AppError;

/// The largest JSON body accepted (a 4,000-character message is at most 16 KiB).
pub const MAX_BODY_BYTES: usize = 64 * 1024;

pub fn api_routes() -> Router<ApiContext> {
    Router::new()
        .route("/auth/signup", post(auth::signup))
        .route("/auth/login", post(auth::login))
        .route("/auth/refresh", post(auth::refresh))
        .route("/auth/logout", post(auth::logout))
        .route("/me", get(users::me))
        .route("/users", get(users::search))
        .route(
            "/conversations",
            post(conversations::create).get(conversations::list),
        )
        .route("/conversations/{id}", get(conversations::get_one))
        .route(
            "/conversations/{id}/members",
            post(conversations::add_members),
        )
        .route(
            "/conversations/{id}/members/{user_id}",
            delete(conversations::remove_member),
        )
        .route(
            "/conversations/{id}/messages",
            get(conversations::history).post(conversations::send),
        )
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz))
        .route("/metrics", get(ops::metrics))
        .route("/openapi.json", get(ops::openapi))
        .route("/ws", get(crate::gateway::upgrade))
}

#[derive(OpenApi)]
#[openapi(
    info(title = "chat", description = "Real-time chat: HTTP API. The WebSocket protocol at /api/v1/ws is described in DESIGN.md §5."),
    servers((url = "/api/v1")),
    paths(
        auth::signup, auth::login, auth::refresh, auth::logout,
        users::me, users::search,
        conversations::create, conversations::list, conversations::get_one,
        conversations::add_members, conversations::remove_member,
        conversations::history, conversations::send,
        ops::healthz, ops::readyz, ops::metrics,
    ),
    modifiers(&BearerAuth),
)]
pub struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
    }
}

/// A JSON body whose rejections are [`AppError`]s (400, or 413 when too large).
#[derive(FromRequest)]
#[from_request(via(axum::Json), rejection(AppError))]
pub struct Json<T>(pub T);

impl<T: serde::Serialize> axum::response::IntoResponse for Json<T> {
    fn into_response(self) -> axum::response::Response {
        axum::Json(self.0).into_response()
    }
}

#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(AppError))]
pub struct Query<T>(pub T);

#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(AppError))]
pub struct Path<T>(pub T);

impl From<JsonRejection> for AppError {
    fn from(rejection: JsonRejection) -> Self {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            AppError::TooLarge
        } else {
            AppError::invalid(ErrorCode::InvalidInput, rejection.body_text())
        }
    }
}

impl From<QueryRejection> for AppError {
    fn from(rejection: QueryRejection) -> Self {
        AppError::invalid(ErrorCode::InvalidInput, rejection.body_text())
    }
}

impl From<PathRejection> for AppError {
    fn from(_: PathRejection) -> Self {
        AppError::NotFound("resource")
    }
}

/// The caller, from a valid `Authorization: Bearer` access token.
pub struct AuthUser(pub UserId);

impl FromRequestParts<ApiContext> for AuthUser {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, ctx: &ApiContext) -> Result<Self, AppError> {
        let token = bearer_token(parts).ok_or(AppError::Unauthenticated)?;
        let grant = ctx
            .tokens
            .verify(token)
            .map_err(|_| AppError::Unauthenticated)?;
        Ok(AuthUser(grant.user))
    }
}

pub fn bearer_token(parts: &Parts) -> Option<&str> {
    parts
        .headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::trim)
}

/// The client's address: the peer, or the first `X-Forwarded-For` hop when the
/// server is configured to sit behind a trusted proxy.
pub struct ClientAddr(pub IpAddr);

impl FromRequestParts<ApiContext> for ClientAddr {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, ctx: &ApiContext) -> Result<Self, AppError> {
        if ctx.config.trust_forwarded_for
            && let Some(forwarded) = parts
                .headers
                .get("x-forwarded-for")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.split(',').next())
                .and_then(|v| v.trim().parse().ok())
        {
            return Ok(ClientAddr(forwarded));
        }
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(addr)| addr.ip())
            .unwrap_or(IpAddr::from([127, 0, 0, 1]));
        Ok(ClientAddr(peer))
    }
}
