//! End-to-end tests of the `chat` binary: each test starts the real server on a random
//! port with a fresh data directory and drives it with real HTTP and WebSocket clients
//! (issue 2, "Tests"). Nothing of the server is mocked. The helpers (start a server,
//! sign up, connect, wait) live in the `chat-test-support` crate.

mod api;
mod auth;
mod cluster;
mod contract;
mod dataset;
mod durability;
mod events;
mod faults;
mod hostile;
mod http_limits;
mod realtime;
mod roles;
mod ws_protocol;

use std::time::Duration;

use chat_protocol::ConversationId;
use chat_test_support::server::{Server, ServerBuilder};
use chat_test_support::ws::Ws;
use reqwest::StatusCode;
use tokio::time::Instant;

/// The `chat` binary cargo built for this test run, to configure and start. Only a
/// test of the chat-server package can name it, so the path is handed over here.
fn chat() -> ServerBuilder {
    Server::builder(env!("CARGO_BIN_EXE_chat"))
}

/// A node with a small outbound queue and no send or frame limits, so one fast
/// sender can fill a slow reader's queue and get it disconnected.
async fn slow_reader_server() -> Server {
    chat()
        .env(&[
            ("CHAT_OUTBOUND_QUEUE", "128"),
            ("CHAT_SEND_RATE_PER_SEC", "100000"),
            ("CHAT_SEND_BURST", "100000"),
            ("CHAT_FRAMES_PER_SEC", "100000"),
            ("CHAT_FRAME_BURST", "100000"),
        ])
        .start()
        .await
}

/// Two users chatting on their own sockets, beside a hostile client: afterwards the
/// node must still be up and serving them promptly.
struct Bystanders {
    conversation: ConversationId,
    alice_ws: Ws,
    bob_ws: Ws,
}

impl Bystanders {
    async fn join(server: &Server) -> Bystanders {
        let alice = server.signup("alice").await;
        let bob = server.signup("bob").await;
        let conversation = alice.direct_with(&bob).await.id;
        let alice_ws = alice.connect().await;
        let bob_ws = bob.connect().await;
        Bystanders {
            conversation,
            alice_ws,
            bob_ws,
        }
    }

    /// The node answers `/healthz`, and a message from alice reaches bob within 2 s.
    async fn are_still_served(&mut self, server: &Server) {
        assert_eq!(server.get_text("/healthz").await.0, StatusCode::OK);
        let started = Instant::now();
        let id = self
            .alice_ws
            .send_and_ack(self.conversation, "still here")
            .await;
        self.bob_ws.message_with_id(id).await;
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "a bystander's message took {:?}",
            started.elapsed()
        );
    }
}
