//! The chat server: HTTP API, WebSocket gateway, send path, message log, consumers
//! and stores. Read the send path top to bottom: [`gateway`] (socket loop) →
//! [`send`] (validate, authorize, idempotency, append) → [`log`] → consumers, each a
//! handler of [`log::runner`] ([`fanout`] to local sockets, [`persister`] into
//! history). [`app`] composes it all and is imported by nothing below it.

pub mod app;
pub mod auth;
pub mod cache;
pub mod cluster;
pub mod config;
pub mod conversations;
pub mod database;
pub mod error;
pub mod events;
pub mod fanout;
pub mod gateway;
pub mod history;
pub mod http;
pub mod hub;
pub mod indexer;
pub mod listener;
pub mod log;
pub mod membership;
pub mod persister;
pub mod pipeline;
pub mod search;
pub mod send;
pub mod sessions;
pub mod snowflake;
pub mod store;
pub mod text;
