//! The HTTP API under `/api/v1` (DESIGN.md §4): one module per resource with its
//! handlers, plus the extractors they share. Handlers return `AppResult<...>`, so
//! every refusal goes through [`AppError`]'s one mapping to status and code.

pub mod auth;
pub mod conversations;
pub mod fallback;
pub mod messages;
pub mod openapi;
pub mod ops;
pub mod users;
pub mod web;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::Router;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{ConnectInfo, DefaultBodyLimit, FromRef, FromRequest, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{Request, StatusCode};
use axum::routing::{delete, get, post, put};
use chat_protocol::{ErrorCode, UserId};
use tower_http::trace::TraceLayer;

use crate::auth::Tokens;
use crate::conversations::ConversationService;
use crate::error::AppError;
use crate::gateway::{self, GatewayState};
use crate::listener::is_body_read_timeout;

pub use openapi::ApiDoc;

/// The largest JSON body accepted (a 4,000-character message is at most 16 KiB).
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// The router's state: one small state per area. Each handler takes only the part
/// it uses (`State<AuthState>`, `State<Arc<ConversationService>>`, …), through
/// axum's `FromRef`, so its signature says what it touches.
#[derive(Clone, FromRef)]
pub struct HttpState {
    pub auth: auth::AuthState,
    pub conversations: Arc<ConversationService>,
    pub messages: messages::MessagesState,
    pub gateway: GatewayState,
    pub ops: ops::OpsState,
    pub web: web::WebDir,
    /// Checks the bearer token of every authenticated request ([`AuthUser`]).
    pub tokens: Arc<Tokens>,
    pub client_addresses: ClientAddresses,
}

/// Every route of the server: the API under `/api/v1`, the operations endpoints at
/// the root too (probes and scrapers look there), and the web client for every
/// path outside `/api/`. Under `/api/` an unknown path is a JSON 404 and a wrong
/// method a JSON 405 with `Allow` ([`fallback`]).
pub fn router(state: HttpState) -> Router {
    Router::new()
        .nest("/api/v1", api_routes())
        .route("/openapi.json", get(openapi::serve_openapi))
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz))
        .route("/metrics", get(ops::metrics))
        .fallback(fallback::not_found_or_web_client)
        .method_not_allowed_fallback(fallback::method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(TraceLayer::new_for_http().make_span_with(request_span))
        .with_state(state)
}

/// One span per request, named for what it asked.
fn request_span<B>(request: &Request<B>) -> tracing::Span {
    tracing::info_span!(
        "request",
        method = %request.method(),
        path = %request.uri().path(),
    )
}

fn api_routes() -> Router<HttpState> {
    Router::new()
        .route("/auth/signup", post(auth::signup))
        .route("/auth/login", post(auth::login))
        .route("/auth/refresh", post(auth::refresh))
        .route("/auth/logout", post(auth::logout))
        .route("/me", get(users::me).patch(users::update))
        .route("/users", get(users::search))
        .route(
            "/conversations",
            post(conversations::create).get(conversations::list),
        )
        .route(
            "/conversations/{id}",
            get(conversations::get_one).patch(conversations::update),
        )
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
            get(messages::history).post(messages::send),
        )
        .route(
            "/conversations/{id}/messages/{message_id}",
            get(messages::get_one)
                .patch(messages::edit)
                .delete(messages::delete),
        )
        .route(
            "/conversations/{id}/messages/{message_id}/reactions/{emoji}",
            put(messages::react).delete(messages::unreact),
        )
        .route("/search", get(messages::search))
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz))
        .route("/metrics", get(ops::metrics))
        .route("/openapi.json", get(openapi::serve_openapi))
        .route("/asyncapi.json", get(openapi::serve_asyncapi))
        .route("/ws", get(gateway::upgrade))
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
        if is_body_read_timeout(&rejection) {
            AppError::RequestTimeout
        } else if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
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

impl<S> FromRequestParts<S> for AuthUser
where
    S: Send + Sync,
    Arc<Tokens>: FromRef<S>,
{
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, AppError> {
        let token = bearer_token(parts).ok_or(AppError::Unauthenticated)?;
        let grant = Arc::<Tokens>::from_ref(state)
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

/// Whose word the client's address is taken on.
#[derive(Clone, Copy, Debug)]
pub struct ClientAddresses {
    /// Believe `X-Forwarded-For` (only behind a trusted proxy).
    pub trust_forwarded_for: bool,
    /// How many trusted proxies append to it: the client is this many entries from
    /// the right.
    pub trusted_proxy_hops: u8,
}

impl ClientAddresses {
    /// The client's address in the `X-Forwarded-For` values (all of the request's
    /// headers, in order): the entry the outermost trusted proxy appended. The
    /// entries left of it are whatever the client sent, so they never count.
    pub fn forwarded_client<'a>(&self, values: impl Iterator<Item = &'a str>) -> Option<IpAddr> {
        let entries: Vec<&str> = values.flat_map(|v| v.split(',')).map(str::trim).collect();
        let from_right = usize::from(self.trusted_proxy_hops.max(1));
        let entry = entries.len().checked_sub(from_right).map(|i| entries[i])?;
        entry.parse().ok()
    }
}

/// The client's address: the peer, or the address the trusted proxy saw when the
/// server is configured to sit behind one.
pub struct ClientAddr(pub IpAddr);

impl<S> FromRequestParts<S> for ClientAddr
where
    S: Send + Sync,
    ClientAddresses: FromRef<S>,
{
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, AppError> {
        let policy = ClientAddresses::from_ref(state);
        if policy.trust_forwarded_for {
            let values = parts
                .headers
                .get_all("x-forwarded-for")
                .iter()
                .filter_map(|v| v.to_str().ok());
            if let Some(forwarded) = policy.forwarded_client(values) {
                return Ok(ClientAddr(forwarded));
            }
        }
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(addr)| addr.ip())
            .unwrap_or(IpAddr::from([127, 0, 0, 1]));
        Ok(ClientAddr(peer))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(hops: u8) -> ClientAddresses {
        ClientAddresses {
            trust_forwarded_for: true,
            trusted_proxy_hops: hops,
        }
    }

    #[test]
    fn the_client_is_the_entry_the_trusted_proxy_appended_not_what_the_client_wrote() {
        let ip = |s: &str| Some(s.parse::<IpAddr>().unwrap());
        // nginx appends the peer it saw to whatever the client sent.
        let spoofed = ["1.2.3.4, 5.6.7.8, 203.0.113.9"];
        assert_eq!(
            policy(1).forwarded_client(spoofed.into_iter()),
            ip("203.0.113.9")
        );
        // Two proxies (a CDN, then the load balancer) each append one entry.
        assert_eq!(
            policy(2).forwarded_client(spoofed.into_iter()),
            ip("5.6.7.8")
        );
        // Several headers count as one list, in order.
        let split = ["9.9.9.9", "198.51.100.7"];
        assert_eq!(
            policy(1).forwarded_client(split.into_iter()),
            ip("198.51.100.7")
        );
        // Fewer entries than hops, or garbage where the client should be: not believed.
        assert_eq!(
            policy(3).forwarded_client(["10.0.0.1, 10.0.0.2"].into_iter()),
            None
        );
        assert_eq!(
            policy(1).forwarded_client(["1.2.3.4, banana"].into_iter()),
            None
        );
        assert_eq!(policy(1).forwarded_client(std::iter::empty()), None);
    }
}
