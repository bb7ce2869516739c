//! The distributed mode's cache on Redis (DESIGN.md §9), shared by every node; one
//! file per port:
//!
//! - [`lease`]: node-id leases (`node:{id}`, renewed every few seconds; they also
//!   say which nodes are alive) and taking over a dead node's presence,
//! - [`presence`]: per user, a hash of node → open connections; a user is online
//!   while some *live* node counts a connection,
//! - [`limits`]: token-bucket rate limits, one atomic script,
//! - [`send_keys`]: `SET NX` idempotency keys.
//!
//! Refresh tokens live in Redis too, behind their own port (`sessions/redis.rs`).
//! Every key starts with the configured prefix, so several deployments (or tests)
//! can share one Redis. Commands time out quickly, so an outage surfaces as an error
//! (and a refused send) rather than a hang. Lua scripts are built once per process.

pub mod lease;
pub mod limits;
pub mod presence;
pub mod send_keys;

use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use super::CacheError;

/// A connection to Redis with the deployment's key prefix. Cheap to clone: the
/// connection manager multiplexes one connection and reconnects by itself.
#[derive(Clone)]
pub struct RedisCache {
    conn: ConnectionManager,
    prefix: String,
    /// This node's id, under which its connections are counted.
    node_id: u16,
}

/// The client (for pub/sub, which needs a connection of its own) and a managed
/// connection with short timeouts, so callers see errors instead of waiting forever.
pub async fn connect(url: &str) -> Result<(redis::Client, ConnectionManager), CacheError> {
    let client = redis::Client::open(url).map_err(down)?;
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Duration::from_secs(2))
        .set_response_timeout(Duration::from_secs(2))
        .set_number_of_retries(1)
        .set_max_delay(1_000);
    let conn = ConnectionManager::new_with_config(client.clone(), config)
        .await
        .map_err(down)?;
    Ok((client, conn))
}

pub(crate) fn down(error: redis::RedisError) -> CacheError {
    CacheError(error.to_string())
}

impl RedisCache {
    pub fn new(conn: ConnectionManager, prefix: String, node_id: u16) -> Self {
        Self {
            conn,
            prefix,
            node_id,
        }
    }

    pub fn node_id(&self) -> u16 {
        self.node_id
    }

    pub fn connection(&self) -> ConnectionManager {
        self.conn.clone()
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    fn key(&self, rest: &str) -> String {
        format!("{}{rest}", self.prefix)
    }

    /// Whether Redis answers, for `/readyz`.
    pub async fn ping(&self) -> Result<(), CacheError> {
        let mut conn = self.conn.clone();
        redis::cmd("PING")
            .query_async::<String>(&mut conn)
            .await
            .map(|_| ())
            .map_err(down)
    }
}
