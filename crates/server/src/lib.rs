//! The chat server: HTTP API, WebSocket gateway, send path, message log, consumers
//! and stores. Read the send path top to bottom: [`gateway`] (socket loop) →
//! [`send`] (validate, authorize, idempotency, append) → [`log`] → consumers
//! ([`fanout`] to local sockets, [`persister`] into history).

pub mod app;
pub mod auth;
pub mod cache;
pub mod cluster;
pub mod config;
pub mod conversations;
pub mod error;
pub mod events;
pub mod fanout;
pub mod gateway;
pub mod http;
pub mod log;
pub mod membership;
pub mod persister;
pub mod send;
pub mod snowflake;
pub mod store;
