//! The helpers every test of the chat system shares, in one place instead of copies:
//! start the real `chat` binary on a random port with a fresh data directory, give it
//! the external services of distributed mode, sign users up over HTTP and speak the
//! WebSocket protocol with receive timeouts, so each test reads as a short story.
//! Nothing of the server is mocked; this crate does not even depend on it.
//!
//! - [`server`]: [`server::Server`], the `chat serve` child process (start, SIGTERM,
//!   crash, restart), built with [`server::Server::builder`] from the binary's path.
//! - [`services`]: per-server or per-cluster PostgreSQL database, Redis prefix and
//!   broker in distributed mode (`CHAT_TEST_MODE`).
//! - [`broker`]: [`broker::Broker`], a `tansu` Kafka-protocol broker on a free port,
//!   for the integration suite and for the Kafka adapter's own tests.
//! - [`api`]: an HTTP client with a cookie jar, and replies that explain themselves,
//!   each checked against the server's OpenAPI document ([`contract`]).
//! - [`users`]: signed-up test users and the steps tests take as them.
//! - [`ws`]: a WebSocket client with receive timeouts and a backlog.
//! - [`raw`]: bytes on a socket: WebSocket frames that break the protocol, HTTP
//!   requests trickled slowly.
//! - [`wait`]: the deadlines, and [`wait::eventually`] for state that settles.

pub mod api;
pub mod broker;
pub mod contract;
pub mod raw;
pub mod server;
pub mod services;
pub mod users;
pub mod wait;
pub mod ws;
