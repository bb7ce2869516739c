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
mod realtime;
mod roles;

use chat_test_support::server::{Server, ServerBuilder};

/// The `chat` binary cargo built for this test run, to configure and start. Only a
/// test of the chat-server package can name it, so the path is handed over here.
fn chat() -> ServerBuilder {
    Server::builder(env!("CARGO_BIN_EXE_chat"))
}
