//! The WebSocket gateway at `GET /api/v1/ws` (DESIGN.md §5). The upgrade handler
//! checks the `Origin` and an optional `Authorization: Bearer` header; everything
//! after the upgrade is one task per connection ([`connection`]).

pub mod connection;
pub mod hub;

use axum::extract::State;
use axum::extract::ws::WebSocketUpgrade;
use axum::http::HeaderMap;
use axum::http::header::{HOST, ORIGIN};
use axum::response::Response;
use chat_protocol::MAX_FRAME_BYTES;

use crate::app::ApiContext;
use crate::auth::AccessGrant;

/// Frames up to this size are read whole so an oversized one can be refused with a
/// proper 1009 close; anything larger breaks the connection at the protocol level.
pub const READ_CEILING_BYTES: usize = 4 * MAX_FRAME_BYTES;

/// What the upgrade request already settled.
pub enum Admission {
    /// `Origin` not allowed: close with 1008 at once.
    ForeignOrigin,
    /// A valid bearer token came with the upgrade.
    Authenticated(AccessGrant),
    /// A bearer token came with the upgrade and is invalid: close with 4401.
    BadToken,
    /// Wait for the `auth` frame.
    AwaitAuth,
}

pub async fn upgrade(
    State(ctx): State<ApiContext>,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> Response {
    let admission = if !origin_allowed(&ctx, &headers) {
        Admission::ForeignOrigin
    } else if let Some(token) = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
    {
        match ctx.tokens.verify(token.trim()) {
            Ok(grant) => Admission::Authenticated(grant),
            Err(_) => Admission::BadToken,
        }
    } else {
        Admission::AwaitAuth
    };
    // Small buffers: tungstenite's defaults (128 KiB each) would cost every idle
    // connection far more memory than its state; frames beyond them still work.
    ws.read_buffer_size(4 * 1024)
        .write_buffer_size(8 * 1024)
        .max_message_size(READ_CEILING_BYTES)
        .max_frame_size(READ_CEILING_BYTES)
        .on_upgrade(move |socket| connection::run(ctx, socket, admission))
}

/// Browsers always send `Origin` on a WebSocket upgrade; other clients may omit it.
/// Allowed: the configured origins, or, when none are configured, the server's own.
fn origin_allowed(ctx: &ApiContext, headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(ORIGIN).and_then(|v| v.to_str().ok()) else {
        return true;
    };
    let origin = origin.trim_end_matches('/');
    if !ctx.config.allowed_origins.is_empty() {
        return ctx
            .config
            .allowed_origins
            .iter()
            .any(|allowed| allowed.trim_end_matches('/') == origin);
    }
    let Some(host) = headers.get(HOST).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    origin == format!("http://{host}") || origin == format!("https://{host}")
}
