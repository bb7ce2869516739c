//! The PostgreSQL pool of the distributed mode, shared by the stores and sessions.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;

/// Enough for one node's HTTP handlers, persister and gateway lookups; PostgreSQL's
/// default `max_connections` (100) leaves room for several nodes.
const MAX_CONNECTIONS: u32 = 16;
/// Short, so an outage surfaces as `PoolTimedOut` (503) quickly instead of requests
/// piling up behind a dead server.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);

/// Connects to the database at `url` and applies the PostgreSQL migrations.
pub async fn open(url: &str) -> Result<PgPool, sqlx::Error> {
    let pool = PgPoolOptions::new()
        .max_connections(MAX_CONNECTIONS)
        .acquire_timeout(ACQUIRE_TIMEOUT)
        .connect(url)
        .await?;
    sqlx::migrate!("./migrations/postgres").run(&pool).await?;
    Ok(pool)
}

pub fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}

pub fn time_of(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or_default()
}

/// Whether the database answers, for `/readyz`.
pub async fn ping(pool: &PgPool) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT 1").execute(pool).await?;
    Ok(())
}
