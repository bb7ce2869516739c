//! The embedded mode's stores on one SQLite file (WAL journal), opened and migrated at
//! start. Queries are plain parameterized SQL; nothing is built from input.

use std::collections::HashMap;
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use chat_protocol::http::{ConversationKind, Message, User};
use chat_protocol::{ConversationId, MessageId, UserId};
use chrono::{DateTime, TimeZone, Utc};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{QueryBuilder, Row, SqlitePool};
use uuid::Uuid;

use super::{
    ConversationActivity, ConversationRecord, CreateUserError, Credentials, Directory,
    MemberRecord, MessageStore, RotateError, Sessions, StoreResult,
};

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
pub async fn open(data_dir: &Path) -> anyhow::Result<SqlitePools> {
    std::fs::create_dir_all(data_dir)?;
    let options = SqliteConnectOptions::from_str("sqlite://")?
        .filename(data_dir.join("chat.db"))
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        // With WAL, NORMAL loses nothing committed when the process dies; only a power
        // loss could drop the last transactions.
        .synchronous(SqliteSynchronous::Normal)
        .busy_timeout(Duration::from_secs(10))
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

#[derive(Clone)]
pub struct SqliteStore {
    read: SqlitePool,
    write: SqlitePool,
}

impl SqliteStore {
    pub fn new(pools: SqlitePools) -> Self {
        Self {
            read: pools.read,
            write: pools.write,
        }
    }
}

pub(crate) fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}

pub(crate) fn time_of(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms).single().unwrap_or_default()
}

fn user_of(row: &sqlx::sqlite::SqliteRow) -> User {
    User {
        id: UserId(row.get("id")),
        username: row.get("username"),
        display_name: row.get("display_name"),
    }
}

pub(crate) fn message_of(row: &sqlx::sqlite::SqliteRow) -> Message {
    let client_msg_id: String = row.get("client_msg_id");
    Message {
        id: MessageId(row.get("id")),
        conversation_id: ConversationId(row.get("conversation_id")),
        sender_id: UserId(row.get("sender_id")),
        body: row.get("body"),
        client_msg_id: Uuid::parse_str(&client_msg_id).unwrap_or_default(),
        created_at: time_of(row.get("created_at")),
    }
}

fn kind_of(kind: &str) -> ConversationKind {
    if kind == "direct" {
        ConversationKind::Direct
    } else {
        ConversationKind::Group
    }
}

/// Adds members (keeping existing ones as they are); returns how many were new.
async fn insert_members(
    tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
    id: ConversationId,
    users: &[UserId],
    now: i64,
) -> StoreResult<u64> {
    let mut added = 0;
    for user in users {
        added += sqlx::query(
            "INSERT OR IGNORE INTO members (conversation_id, user_id, joined_at) VALUES (?, ?, ?)",
        )
        .bind(id.0)
        .bind(user.0)
        .bind(now)
        .execute(&mut **tx)
        .await?
        .rows_affected();
    }
    Ok(added)
}

const MESSAGE_COLUMNS: &str = "id, conversation_id, sender_id, client_msg_id, body, created_at";

#[async_trait]
impl Directory for SqliteStore {
    async fn create_user(
        &self,
        username: &str,
        display_name: &str,
        password_hash: &str,
    ) -> Result<User, CreateUserError> {
        let result = sqlx::query(
            "INSERT INTO users (username, display_name, password_hash, created_at) VALUES (?, ?, ?, ?)
             RETURNING id, username, display_name",
        )
        .bind(username)
        .bind(display_name)
        .bind(password_hash)
        .bind(now_ms())
        .fetch_one(&self.write)
        .await;
        match result {
            Ok(row) => Ok(user_of(&row)),
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => Err(CreateUserError::Taken),
            Err(e) => Err(e.into()),
        }
    }

    async fn credentials(&self, username: &str) -> StoreResult<Option<Credentials>> {
        let row = sqlx::query(
            "SELECT id, username, display_name, password_hash FROM users WHERE username = ?",
        )
        .bind(username)
        .fetch_optional(&self.read)
        .await?;
        Ok(row.map(|row| Credentials {
            user: user_of(&row),
            password_hash: row.get("password_hash"),
        }))
    }

    async fn user(&self, id: UserId) -> StoreResult<Option<User>> {
        let row = sqlx::query("SELECT id, username, display_name FROM users WHERE id = ?")
            .bind(id.0)
            .fetch_optional(&self.read)
            .await?;
        Ok(row.as_ref().map(user_of))
    }

    async fn users(&self, ids: &[UserId]) -> StoreResult<Vec<User>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut query =
            QueryBuilder::new("SELECT id, username, display_name FROM users WHERE id IN (");
        let mut list = query.separated(", ");
        for id in ids {
            list.push_bind(id.0);
        }
        query.push(") ORDER BY id");
        let rows = query.build().fetch_all(&self.read).await?;
        Ok(rows.iter().map(user_of).collect())
    }

    async fn search_users(&self, prefix: &str, limit: u32) -> StoreResult<Vec<User>> {
        // Escape LIKE's wildcards so the prefix is matched literally.
        let pattern = format!(
            "{}%",
            prefix
                .replace('\\', "\\\\")
                .replace('%', "\\%")
                .replace('_', "\\_")
        );
        let rows = sqlx::query(
            "SELECT id, username, display_name FROM users
             WHERE username LIKE ?1 ESCAPE '\\' OR display_name LIKE ?1 ESCAPE '\\'
             ORDER BY username LIMIT ?2",
        )
        .bind(pattern)
        .bind(limit)
        .fetch_all(&self.read)
        .await?;
        Ok(rows.iter().map(user_of).collect())
    }

    async fn direct_conversation(
        &self,
        a: UserId,
        b: UserId,
    ) -> StoreResult<(ConversationId, bool)> {
        let key = format!("{}:{}", a.0.min(b.0), a.0.max(b.0));
        let mut tx = self.write.begin().await?;
        let existing = sqlx::query("SELECT id FROM conversations WHERE direct_key = ?")
            .bind(&key)
            .fetch_optional(&mut *tx)
            .await?;
        if let Some(row) = existing {
            return Ok((ConversationId(row.get("id")), false));
        }
        let now = now_ms();
        let id: i64 = sqlx::query(
            "INSERT INTO conversations (kind, direct_key, created_at) VALUES ('direct', ?, ?) RETURNING id",
        )
        .bind(&key)
        .bind(now)
        .fetch_one(&mut *tx)
        .await?
        .get("id");
        insert_members(&mut tx, ConversationId(id), &[a, b], now).await?;
        tx.commit().await?;
        Ok((ConversationId(id), true))
    }

    async fn create_group(&self, title: &str, members: &[UserId]) -> StoreResult<ConversationId> {
        let mut tx = self.write.begin().await?;
        let now = now_ms();
        let id: i64 =
            sqlx::query("INSERT INTO conversations (kind, title, created_at) VALUES ('group', ?, ?) RETURNING id")
                .bind(title)
                .bind(now)
                .fetch_one(&mut *tx)
                .await?
                .get("id");
        insert_members(&mut tx, ConversationId(id), members, now).await?;
        tx.commit().await?;
        Ok(ConversationId(id))
    }

    async fn conversation(&self, id: ConversationId) -> StoreResult<Option<ConversationRecord>> {
        let row = sqlx::query("SELECT id, kind, title, created_at FROM conversations WHERE id = ?")
            .bind(id.0)
            .fetch_optional(&self.read)
            .await?;
        Ok(row.map(|row| ConversationRecord {
            id: ConversationId(row.get("id")),
            kind: kind_of(row.get("kind")),
            title: row.get("title"),
            created_at: time_of(row.get("created_at")),
        }))
    }

    async fn members(&self, id: ConversationId) -> StoreResult<Vec<MemberRecord>> {
        let rows = sqlx::query(
            "SELECT u.id, u.username, u.display_name, m.last_read_id
             FROM members m JOIN users u ON u.id = m.user_id
             WHERE m.conversation_id = ? ORDER BY m.joined_at, u.id",
        )
        .bind(id.0)
        .fetch_all(&self.read)
        .await?;
        Ok(rows
            .iter()
            .map(|row| MemberRecord {
                user: user_of(row),
                last_read_id: row.get::<Option<i64>, _>("last_read_id").map(MessageId),
            })
            .collect())
    }

    async fn member_ids(&self, id: ConversationId) -> StoreResult<Vec<UserId>> {
        let rows = sqlx::query("SELECT user_id FROM members WHERE conversation_id = ?")
            .bind(id.0)
            .fetch_all(&self.read)
            .await?;
        Ok(rows.iter().map(|row| UserId(row.get("user_id"))).collect())
    }

    async fn is_member(&self, id: ConversationId, user: UserId) -> StoreResult<bool> {
        let row = sqlx::query("SELECT 1 FROM members WHERE conversation_id = ? AND user_id = ?")
            .bind(id.0)
            .bind(user.0)
            .fetch_optional(&self.read)
            .await?;
        Ok(row.is_some())
    }

    async fn conversations_of(&self, user: UserId) -> StoreResult<Vec<ConversationId>> {
        let rows = sqlx::query("SELECT conversation_id FROM members WHERE user_id = ?")
            .bind(user.0)
            .fetch_all(&self.read)
            .await?;
        Ok(rows
            .iter()
            .map(|row| ConversationId(row.get("conversation_id")))
            .collect())
    }

    async fn add_members(&self, id: ConversationId, users: &[UserId]) -> StoreResult<Vec<UserId>> {
        let mut tx = self.write.begin().await?;
        let mut added = Vec::new();
        let now = now_ms();
        for user in users {
            if insert_members(&mut tx, id, &[*user], now).await? == 1 {
                added.push(*user);
            }
        }
        tx.commit().await?;
        Ok(added)
    }

    async fn remove_member(&self, id: ConversationId, user: UserId) -> StoreResult<bool> {
        let done = sqlx::query("DELETE FROM members WHERE conversation_id = ? AND user_id = ?")
            .bind(id.0)
            .bind(user.0)
            .execute(&self.write)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn mark_read(
        &self,
        id: ConversationId,
        user: UserId,
        upto: MessageId,
    ) -> StoreResult<bool> {
        let done = sqlx::query(
            "UPDATE members SET last_read_id = ?3
             WHERE conversation_id = ?1 AND user_id = ?2 AND (last_read_id IS NULL OR last_read_id < ?3)",
        )
        .bind(id.0)
        .bind(user.0)
        .bind(upto.0)
        .execute(&self.write)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn contacts(&self, user: UserId) -> StoreResult<Vec<UserId>> {
        let rows = sqlx::query(
            "SELECT DISTINCT other.user_id FROM members mine
             JOIN members other ON other.conversation_id = mine.conversation_id
             WHERE mine.user_id = ?1 AND other.user_id != ?1",
        )
        .bind(user.0)
        .fetch_all(&self.read)
        .await?;
        Ok(rows.iter().map(|row| UserId(row.get("user_id"))).collect())
    }

    async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1")
            .execute(&self.write)
            .await
            .map(|_| ())
    }
}

#[async_trait]
impl MessageStore for SqliteStore {
    async fn store(&self, messages: &[Message]) -> StoreResult<()> {
        if messages.is_empty() {
            return Ok(());
        }
        let mut tx = self.write.begin().await?;
        // SQLite allows 32766 bound variables; 6 per row keeps chunks well under.
        for chunk in messages.chunks(1_000) {
            let mut query = QueryBuilder::new(format!(
                "INSERT OR IGNORE INTO messages ({MESSAGE_COLUMNS}) "
            ));
            query.push_values(chunk, |mut row, m| {
                row.push_bind(m.id.0)
                    .push_bind(m.conversation_id.0)
                    .push_bind(m.sender_id.0)
                    .push_bind(m.client_msg_id.to_string())
                    .push_bind(m.body.as_str())
                    .push_bind(m.created_at.timestamp_millis());
            });
            query.build().execute(&mut *tx).await?;
        }
        tx.commit().await
    }

    async fn history(
        &self,
        conversation: ConversationId,
        before: Option<MessageId>,
        after: Option<MessageId>,
        limit: u32,
    ) -> StoreResult<Vec<Message>> {
        let rows = sqlx::query(&format!(
            "SELECT {MESSAGE_COLUMNS} FROM messages
             WHERE conversation_id = ? AND id < ? AND id > ?
             ORDER BY id DESC LIMIT ?"
        ))
        .bind(conversation.0)
        .bind(before.map_or(i64::MAX, |id| id.0))
        .bind(after.map_or(-1, |id| id.0))
        .bind(limit)
        .fetch_all(&self.read)
        .await?;
        Ok(rows.iter().map(message_of).collect())
    }

    async fn since(
        &self,
        conversations: &[ConversationId],
        since: MessageId,
        limit: u32,
    ) -> StoreResult<Vec<Message>> {
        if conversations.is_empty() {
            return Ok(Vec::new());
        }
        let mut query = QueryBuilder::new(format!(
            "SELECT {MESSAGE_COLUMNS} FROM messages WHERE id > "
        ));
        query.push_bind(since.0).push(" AND conversation_id IN (");
        let mut list = query.separated(", ");
        for id in conversations {
            list.push_bind(id.0);
        }
        query.push(") ORDER BY id LIMIT ").push_bind(limit);
        let rows = query.build().fetch_all(&self.read).await?;
        Ok(rows.iter().map(message_of).collect())
    }

    async fn message(&self, id: MessageId) -> StoreResult<Option<Message>> {
        let row = sqlx::query(&format!(
            "SELECT {MESSAGE_COLUMNS} FROM messages WHERE id = ?"
        ))
        .bind(id.0)
        .fetch_optional(&self.read)
        .await?;
        Ok(row.as_ref().map(message_of))
    }

    async fn activity(
        &self,
        reader: UserId,
        conversations: &[(ConversationId, Option<MessageId>)],
    ) -> StoreResult<HashMap<ConversationId, ConversationActivity>> {
        let mut out = HashMap::with_capacity(conversations.len());
        let mut conn = self.read.acquire().await?;
        for (conversation, last_read) in conversations {
            let last = sqlx::query(&format!(
                "SELECT {MESSAGE_COLUMNS} FROM messages WHERE conversation_id = ? ORDER BY id DESC LIMIT 1"
            ))
            .bind(conversation.0)
            .fetch_optional(&mut *conn)
            .await?;
            let unread: i64 = sqlx::query(
                "SELECT COUNT(*) AS n FROM messages WHERE conversation_id = ? AND id > ? AND sender_id != ?",
            )
            .bind(conversation.0)
            .bind(last_read.map_or(-1, |id| id.0))
            .bind(reader.0)
            .fetch_one(&mut *conn)
            .await?
            .get("n");
            out.insert(
                *conversation,
                ConversationActivity {
                    last_message: last.as_ref().map(message_of),
                    unread_count: u32::try_from(unread).unwrap_or(u32::MAX),
                },
            );
        }
        Ok(out)
    }
}

#[async_trait]
impl Sessions for SqliteStore {
    async fn start(
        &self,
        user: UserId,
        token_hash: &str,
        expires_at: DateTime<Utc>,
    ) -> StoreResult<()> {
        let family = Uuid::new_v4().to_string();
        let mut tx = self.write.begin().await?;
        sqlx::query("INSERT INTO refresh_families (id, user_id) VALUES (?, ?)")
            .bind(&family)
            .bind(user.0)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO refresh_tokens (token_hash, family_id, expires_at) VALUES (?, ?, ?)",
        )
        .bind(token_hash)
        .bind(&family)
        .bind(expires_at.timestamp_millis())
        .execute(&mut *tx)
        .await?;
        tx.commit().await
    }

    async fn rotate(
        &self,
        old_hash: &str,
        new_hash: &str,
        expires_at: DateTime<Utc>,
    ) -> Result<UserId, RotateError> {
        let mut tx = self.write.begin().await?;
        let row = sqlx::query(
            "SELECT t.family_id, t.expires_at, t.rotated_at, f.user_id, f.revoked_at
             FROM refresh_tokens t JOIN refresh_families f ON f.id = t.family_id
             WHERE t.token_hash = ?",
        )
        .bind(old_hash)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            return Err(RotateError::Invalid);
        };
        let family: String = row.get("family_id");
        let now = now_ms();
        if row.get::<Option<i64>, _>("revoked_at").is_some()
            || row.get::<i64, _>("expires_at") <= now
        {
            return Err(RotateError::Invalid);
        }
        if row.get::<Option<i64>, _>("rotated_at").is_some() {
            sqlx::query("UPDATE refresh_families SET revoked_at = ? WHERE id = ?")
                .bind(now)
                .bind(&family)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            return Err(RotateError::Reused);
        }
        // The guard on rotated_at makes two concurrent rotations of one token end
        // with one winner; the loser sees reuse next time.
        let done = sqlx::query(
            "UPDATE refresh_tokens SET rotated_at = ? WHERE token_hash = ? AND rotated_at IS NULL",
        )
        .bind(now)
        .bind(old_hash)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() != 1 {
            return Err(RotateError::Invalid);
        }
        sqlx::query(
            "INSERT INTO refresh_tokens (token_hash, family_id, expires_at) VALUES (?, ?, ?)",
        )
        .bind(new_hash)
        .bind(&family)
        .bind(expires_at.timestamp_millis())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(UserId(row.get("user_id")))
    }

    async fn revoke_family(&self, token_hash: &str) -> StoreResult<()> {
        sqlx::query(
            "UPDATE refresh_families SET revoked_at = ?
             WHERE revoked_at IS NULL AND id = (SELECT family_id FROM refresh_tokens WHERE token_hash = ?)",
        )
        .bind(now_ms())
        .bind(token_hash)
        .execute(&self.write)
        .await?;
        Ok(())
    }
}
