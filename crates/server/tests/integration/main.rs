//! End-to-end tests of the `chat` binary: each test starts the real server on a random
//! port with a fresh data directory and drives it with real HTTP and WebSocket clients
//! (issue 2, "Tests"). Nothing of the server is mocked.

mod api;
mod auth;
mod cluster;
mod common;
mod durability;
mod faults;
mod hostile;
mod realtime;
mod services;
