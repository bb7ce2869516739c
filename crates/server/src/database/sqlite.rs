//! The embedded mode's SQLite file (WAL journal), opened and migrated at start. The
//! stores, the sessions and the message log all live in it, so they share the
//! connections and the row decoding here.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use chat_protocol::http::Message;
use chat_protocol::{ConversationId, MessageId, UserId};
use chrono::{DateTime, TimeZone, Utc};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteRow, SqliteSynchronous,
};
use sqlx::{Row, SqlitePool};
use uuid::Uuid;

/// The connections to the SQLite file: one writer (SQLite runs one write
/// transaction at a time; queuing writers here instead of in SQLite's lock avoids its
/// sleep-and-retry back-off and `database is locked` errors) and several readers
/// (WAL lets them read while the writer writes).
#[derive(Clone)]
pub struct SqlitePools {
    pub read: SqlitePool,
    pub write: SqlitePool,
}

/// Opens (creating if needed) `chat.db` in `data_dir` and applies the migrations.
pub async fn open(data_dir: &Path) -> Result<SqlitePools, sqlx::Error> {
    std::fs::create_dir_all(data_dir)?;
    let options = SqliteConnectOptions::from_str("sqlite://")?
        .filename(data_dir.join("chat.db"))
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        // With WAL, NORMAL loses nothing committed when the process dies; only a power
        // loss could drop the last transactions.
        .synchronous(SqliteSynchronous::Normal)
        .busy_timeout(Duration::from_secs(10))
        // Deleted message bodies are overwritten in the file, not only unlinked.
        .pragma("secure_delete", "on")
        .foreign_keys(true);
    let write = SqlitePoolOptions::new()
        .max_connections(1)
        .acquire_timeout(Duration::from_secs(10))
        .connect_with(options.clone())
        .await?;
    sqlx::migrate!("./migrations/sqlite").run(&write).await?;
    let read = SqlitePoolOptions::new()
        .max_connections(8)
        .acquire_timeout(Duration::from_secs(10))
        .connect_with(options.read_only(true))
        .await?;
    Ok(SqlitePools { read, write })
}

pub fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}

pub fn time_of(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms).single().unwrap_or_default()
}

/// The columns of a history row that [`message_of`] reads.
pub const MESSAGE_COLUMNS: &str = "id, conversation_id, sender_id, client_msg_id, body, created_at, \
     reply_to, mentions, edited_at, deleted_at";

/// Reads the [`MESSAGE_COLUMNS`] of a row. A row that does not decode (a client
/// message id that is no UUID) is a decoding error, as it is in PostgreSQL, never a
/// default value.
pub fn message_of(row: &SqliteRow) -> Result<Message, sqlx::Error> {
    let client_msg_id: String = row.try_get("client_msg_id")?;
    let client_msg_id = Uuid::parse_str(&client_msg_id).map_err(|e| sqlx::Error::ColumnDecode {
        index: "client_msg_id".into(),
        source: e.into(),
    })?;
    let mentions: String = row.try_get("mentions")?;
    let mentions: Vec<UserId> =
        serde_json::from_str(&mentions).map_err(|e| sqlx::Error::ColumnDecode {
            index: "mentions".into(),
            source: e.into(),
        })?;
    Ok(Message {
        id: MessageId(row.try_get("id")?),
        conversation_id: ConversationId(row.try_get("conversation_id")?),
        sender_id: UserId(row.try_get("sender_id")?),
        body: row.try_get("body")?,
        client_msg_id,
        created_at: time_of(row.try_get("created_at")?),
        reply_to: row.try_get::<Option<i64>, _>("reply_to")?.map(MessageId),
        mentions,
        edited_at: row.try_get::<Option<i64>, _>("edited_at")?.map(time_of),
        deleted: row.try_get::<Option<i64>, _>("deleted_at")?.is_some(),
        reactions: Vec::new(),
    })
}

/// Whether the database answers, for `/readyz`.
pub async fn ping(pools: &SqlitePools) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT 1").execute(&pools.write).await?;
    Ok(())
}
