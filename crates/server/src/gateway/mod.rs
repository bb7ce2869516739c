//! The WebSocket gateway at `GET /api/v1/ws` (DESIGN.md §5). The upgrade handler
//! checks the `Origin` and an optional `Authorization: Bearer` header; everything
//! after the upgrade is one task per connection ([`connection`]).

pub mod connection;
pub mod read_error;

use std::sync::Arc;
use std::time::Duration;

use axum::Extension;
use axum::extract::State;
use axum::extract::ws::WebSocketUpgrade;
use axum::http::HeaderMap;
use axum::http::header::{HOST, ORIGIN};
use axum::response::Response;
use chat_protocol::MAX_FRAME_BYTES;
use tokio::sync::watch;

use crate::auth::{AccessGrant, Tokens};
use crate::cache::Presence;
use crate::events::Events;
use crate::history::HistoryService;
use crate::hub::Hub;
use crate::listener::SocketReset;
use crate::membership::Members;
use crate::send::SendService;
use crate::store::{Conversations, ReadMarkers, Users};

/// The close code and reason a connection ends with.
pub type Close = (u16, &'static str);

/// How connections behave, from the configuration.
#[derive(Clone, Debug)]
pub struct GatewaySettings {
    /// Origins allowed to open a socket; empty: only the server's own.
    pub allowed_origins: Vec<String>,
    pub auth_timeout: Duration,
    pub heartbeat_ms: u32,
    /// Frames queued per connection before it counts as a slow reader.
    pub outbound_queue: usize,
    pub frames_per_sec: f64,
    pub frame_burst: f64,
}

/// What a connection uses: the ports and services it answers frames with.
#[derive(Clone)]
pub struct GatewayState {
    pub settings: Arc<GatewaySettings>,
    pub tokens: Arc<Tokens>,
    /// The user's profile for `ready`.
    pub users: Arc<dyn Users>,
    /// Contacts, for presence.
    pub conversations: Arc<dyn Conversations>,
    pub read_markers: Arc<dyn ReadMarkers>,
    pub members: Arc<Members>,
    pub sender: Arc<SendService>,
    pub history: Arc<HistoryService>,
    pub presence: Arc<dyn Presence>,
    /// Typing, receipts and presence to other users, on every node.
    pub events: Arc<dyn Events>,
    /// This node's connections; each registers here to receive its frames.
    pub hub: Arc<Hub>,
    /// Turns true when the server starts shutting down (close with 1001).
    pub shutdown: watch::Receiver<bool>,
}

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
    State(gateway): State<GatewayState>,
    headers: HeaderMap,
    reset: Option<Extension<SocketReset>>,
    ws: WebSocketUpgrade,
) -> Response {
    // Absent only when the router is served by something other than the listener.
    let reset = reset.map(|Extension(reset)| reset).unwrap_or_default();
    let admission = if !origin_allowed(&gateway.settings.allowed_origins, &headers) {
        Admission::ForeignOrigin
    } else if let Some(token) = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
    {
        match gateway.tokens.verify(token.trim()) {
            Ok(grant) => Admission::Authenticated(grant),
            Err(_) => Admission::BadToken,
        }
    } else {
        Admission::AwaitAuth
    };
    // Small buffers: tungstenite's defaults (128 KiB each) would cost every idle
    // connection far more memory than its state; frames beyond them still work.
    // A frame, or a message assembled from fragments, larger than the protocol's
    // limit is refused by tungstenite as it arrives (1009, [`read_error`]), before it
    // is buffered whole.
    ws.read_buffer_size(4 * 1024)
        .write_buffer_size(8 * 1024)
        .max_message_size(MAX_FRAME_BYTES)
        .max_frame_size(MAX_FRAME_BYTES)
        .on_upgrade(move |socket| connection::run(gateway, socket, admission, reset))
}

/// Browsers always send `Origin` on a WebSocket upgrade; other clients may omit it.
/// Allowed: the configured origins, or, when none are configured, the server's own.
fn origin_allowed(allowed_origins: &[String], headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(ORIGIN).and_then(|v| v.to_str().ok()) else {
        return true;
    };
    let origin = origin.trim_end_matches('/');
    if !allowed_origins.is_empty() {
        return allowed_origins
            .iter()
            .any(|allowed| allowed.trim_end_matches('/') == origin);
    }
    let Some(host) = headers.get(HOST).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    origin == format!("http://{host}") || origin == format!("https://{host}")
}
