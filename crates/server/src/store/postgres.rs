//! The distributed mode's stores on PostgreSQL: the directory, the message history the
//! persister materializes from the log, and refresh-token families, shared by every
//! node of a cluster. Same semantics as the SQLite adapter; where several nodes may
//! race (two users opening the same direct conversation, a refresh token presented
//! twice at once) the outcome is decided by one atomic statement, not read-then-write.
//!
//! Queries are plain parameterized SQL; lists travel as array parameters (`= ANY($1)`,
//! `UNNEST`), so nothing is built from input and a statement's text never depends on
//! how many items it carries (one prepared statement per query).

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use async_trait::async_trait;
use chat_protocol::http::{ConversationKind, Message, User};
use chat_protocol::{ConversationId, MessageId, UserId};
use chrono::{DateTime, Utc};
use sqlx::postgres::{PgPoolOptions, PgRow};
use sqlx::{PgPool, Row};
use uuid::Uuid;

use super::{
    ConversationActivity, ConversationRecord, CreateUserError, Credentials, Directory,
    MemberRecord, MessageStore, RotateError, Sessions, StoreResult,
};

/// Enough for one node's HTTP handlers, persister and gateway lookups; PostgreSQL's
/// default `max_connections` (100) leaves room for several nodes.
const MAX_CONNECTIONS: u32 = 16;
/// Short, so an outage surfaces as `PoolTimedOut` (503) quickly instead of requests
/// piling up behind a dead server.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);

/// Connects to the database at `url` and applies the PostgreSQL migrations.
pub async fn open(url: &str) -> anyhow::Result<PgPool> {
    let pool = PgPoolOptions::new()
        .max_connections(MAX_CONNECTIONS)
        .acquire_timeout(ACQUIRE_TIMEOUT)
        .connect(url)
        .await?;
    sqlx::migrate!("./migrations/postgres").run(&pool).await?;
    Ok(pool)
}

#[derive(Clone)]
pub struct PostgresStore {
    pool: PgPool,
}

impl PostgresStore {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }
}

fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}

fn time_of(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or_default()
}

/// The `LIKE` pattern matching strings that start with `prefix` literally.
fn prefix_pattern(prefix: &str) -> String {
    let escaped = prefix
        .replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_");
    format!("{escaped}%")
}

fn user_of(row: &PgRow) -> StoreResult<User> {
    Ok(User {
        id: UserId(row.try_get("id")?),
        username: row.try_get("username")?,
        display_name: row.try_get("display_name")?,
    })
}

/// Reads the [`MESSAGE_COLUMNS`] of a row.
fn message_of(row: &PgRow) -> StoreResult<Message> {
    let client_msg_id: String = row.try_get("client_msg_id")?;
    Ok(Message {
        id: MessageId(row.try_get("id")?),
        conversation_id: ConversationId(row.try_get("conversation_id")?),
        sender_id: UserId(row.try_get("sender_id")?),
        body: row.try_get("body")?,
        client_msg_id: Uuid::parse_str(&client_msg_id).map_err(|e| sqlx::Error::ColumnDecode {
            index: "client_msg_id".into(),
            source: e.into(),
        })?,
        created_at: time_of(row.try_get("created_at")?),
    })
}

fn kind_of(kind: &str) -> ConversationKind {
    if kind == "direct" {
        ConversationKind::Direct
    } else {
        ConversationKind::Group
    }
}

fn ids<T>(items: &[T], id: impl Fn(&T) -> i64) -> Vec<i64> {
    items.iter().map(id).collect()
}

fn count_of(n: i64) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// The message columns as `message_of` reads them (the UUID as text, since sqlx's
/// `uuid` feature is not enabled).
const MESSAGE_COLUMNS: &str =
    "id, conversation_id, sender_id, client_msg_id::text AS client_msg_id, body, created_at";

#[async_trait]
impl Directory for PostgresStore {
    async fn create_user(
        &self,
        username: &str,
        display_name: &str,
        password_hash: &str,
    ) -> Result<User, CreateUserError> {
        let result = sqlx::query(
            "INSERT INTO users (username, display_name, password_hash, created_at)
             VALUES ($1, $2, $3, $4)
             RETURNING id, username, display_name",
        )
        .bind(username)
        .bind(display_name)
        .bind(password_hash)
        .bind(now_ms())
        .fetch_one(&self.pool)
        .await;
        match result {
            Ok(row) => Ok(user_of(&row)?),
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => Err(CreateUserError::Taken),
            Err(e) => Err(e.into()),
        }
    }

    async fn credentials(&self, username: &str) -> StoreResult<Option<Credentials>> {
        let row = sqlx::query(
            "SELECT id, username, display_name, password_hash FROM users WHERE username = $1",
        )
        .bind(username)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|row| {
            Ok(Credentials {
                user: user_of(&row)?,
                password_hash: row.try_get("password_hash")?,
            })
        })
        .transpose()
    }

    async fn user(&self, id: UserId) -> StoreResult<Option<User>> {
        let row = sqlx::query("SELECT id, username, display_name FROM users WHERE id = $1")
            .bind(id.0)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(user_of).transpose()
    }

    async fn users(&self, ids_wanted: &[UserId]) -> StoreResult<Vec<User>> {
        if ids_wanted.is_empty() {
            return Ok(Vec::new());
        }
        let rows = sqlx::query(
            "SELECT id, username, display_name FROM users WHERE id = ANY($1) ORDER BY id",
        )
        .bind(ids(ids_wanted, |id| id.0))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(user_of).collect()
    }

    async fn search_users(&self, prefix: &str, limit: u32) -> StoreResult<Vec<User>> {
        // Case-insensitive like SQLite's LIKE; lower() on both sides so the prefix
        // indexes apply. The pattern's wildcards are escaped, so `_` and `%` match
        // themselves.
        let rows = sqlx::query(
            "SELECT id, username, display_name FROM users
             WHERE lower(username) LIKE lower($1) ESCAPE '\\'
                OR lower(display_name) LIKE lower($1) ESCAPE '\\'
             ORDER BY username LIMIT $2",
        )
        .bind(prefix_pattern(prefix))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(user_of).collect()
    }

    async fn direct_conversation(
        &self,
        a: UserId,
        b: UserId,
    ) -> StoreResult<(ConversationId, bool)> {
        let (low, high) = (a.0.min(b.0), a.0.max(b.0));
        let mut tx = self.pool.begin().await?;
        // ON CONFLICT makes a concurrent creation of the same pair wait for the other
        // transaction and then insert nothing; the SELECT below then sees its row.
        let now = now_ms();
        let created = sqlx::query(
            "INSERT INTO conversations (kind, direct_low, direct_high, created_at)
             VALUES ('direct', $1, $2, $3)
             ON CONFLICT (direct_low, direct_high) DO NOTHING
             RETURNING id",
        )
        .bind(low)
        .bind(high)
        .bind(now)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = created else {
            let id: i64 = sqlx::query(
                "SELECT id FROM conversations WHERE direct_low = $1 AND direct_high = $2",
            )
            .bind(low)
            .bind(high)
            .fetch_one(&mut *tx)
            .await?
            .try_get("id")?;
            return Ok((ConversationId(id), false));
        };
        let id: i64 = row.try_get("id")?;
        sqlx::query(
            "INSERT INTO members (conversation_id, user_id, joined_at)
             SELECT $1, user_id, $3 FROM UNNEST($2::bigint[]) AS u (user_id)
             ON CONFLICT DO NOTHING",
        )
        .bind(id)
        .bind(vec![a.0, b.0])
        .bind(now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok((ConversationId(id), true))
    }

    async fn create_group(&self, title: &str, members: &[UserId]) -> StoreResult<ConversationId> {
        let mut tx = self.pool.begin().await?;
        let now = now_ms();
        let id: i64 = sqlx::query(
            "INSERT INTO conversations (kind, title, created_at) VALUES ('group', $1, $2)
             RETURNING id",
        )
        .bind(title)
        .bind(now)
        .fetch_one(&mut *tx)
        .await?
        .try_get("id")?;
        sqlx::query(
            "INSERT INTO members (conversation_id, user_id, joined_at)
             SELECT $1, user_id, $3 FROM UNNEST($2::bigint[]) AS u (user_id)
             ON CONFLICT DO NOTHING",
        )
        .bind(id)
        .bind(ids(members, |id| id.0))
        .bind(now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(ConversationId(id))
    }

    async fn conversation(&self, id: ConversationId) -> StoreResult<Option<ConversationRecord>> {
        let row =
            sqlx::query("SELECT id, kind, title, created_at FROM conversations WHERE id = $1")
                .bind(id.0)
                .fetch_optional(&self.pool)
                .await?;
        row.map(|row| {
            Ok(ConversationRecord {
                id: ConversationId(row.try_get("id")?),
                kind: kind_of(row.try_get("kind")?),
                title: row.try_get("title")?,
                created_at: time_of(row.try_get("created_at")?),
            })
        })
        .transpose()
    }

    async fn members(&self, id: ConversationId) -> StoreResult<Vec<MemberRecord>> {
        let rows = sqlx::query(
            "SELECT u.id, u.username, u.display_name, m.last_read_id
             FROM members m JOIN users u ON u.id = m.user_id
             WHERE m.conversation_id = $1 ORDER BY m.joined_at, u.id",
        )
        .bind(id.0)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(MemberRecord {
                    user: user_of(row)?,
                    last_read_id: row
                        .try_get::<Option<i64>, _>("last_read_id")?
                        .map(MessageId),
                })
            })
            .collect()
    }

    async fn member_ids(&self, id: ConversationId) -> StoreResult<Vec<UserId>> {
        let rows = sqlx::query("SELECT user_id FROM members WHERE conversation_id = $1")
            .bind(id.0)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|row| Ok(UserId(row.try_get("user_id")?)))
            .collect()
    }

    async fn is_member(&self, id: ConversationId, user: UserId) -> StoreResult<bool> {
        let row = sqlx::query("SELECT 1 FROM members WHERE conversation_id = $1 AND user_id = $2")
            .bind(id.0)
            .bind(user.0)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.is_some())
    }

    async fn conversations_of(&self, user: UserId) -> StoreResult<Vec<ConversationId>> {
        let rows = sqlx::query("SELECT conversation_id FROM members WHERE user_id = $1")
            .bind(user.0)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|row| Ok(ConversationId(row.try_get("conversation_id")?)))
            .collect()
    }

    async fn add_members(&self, id: ConversationId, users: &[UserId]) -> StoreResult<Vec<UserId>> {
        if users.is_empty() {
            return Ok(Vec::new());
        }
        let rows = sqlx::query(
            "INSERT INTO members (conversation_id, user_id, joined_at)
             SELECT $1, user_id, $3 FROM UNNEST($2::bigint[]) AS u (user_id)
             ON CONFLICT DO NOTHING
             RETURNING user_id",
        )
        .bind(id.0)
        .bind(ids(users, |id| id.0))
        .bind(now_ms())
        .fetch_all(&self.pool)
        .await?;
        let mut inserted = rows
            .iter()
            .map(|row| row.try_get::<i64, _>("user_id"))
            .collect::<Result<HashSet<_>, _>>()?;
        // RETURNING has no defined order: report the new members in the caller's order.
        Ok(users
            .iter()
            .filter(|user| inserted.remove(&user.0))
            .copied()
            .collect())
    }

    async fn remove_member(&self, id: ConversationId, user: UserId) -> StoreResult<bool> {
        let done = sqlx::query("DELETE FROM members WHERE conversation_id = $1 AND user_id = $2")
            .bind(id.0)
            .bind(user.0)
            .execute(&self.pool)
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
            "UPDATE members SET last_read_id = $3
             WHERE conversation_id = $1 AND user_id = $2
               AND (last_read_id IS NULL OR last_read_id < $3)",
        )
        .bind(id.0)
        .bind(user.0)
        .bind(upto.0)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn contacts(&self, user: UserId) -> StoreResult<Vec<UserId>> {
        let rows = sqlx::query(
            "SELECT DISTINCT other.user_id FROM members mine
             JOIN members other ON other.conversation_id = mine.conversation_id
             WHERE mine.user_id = $1 AND other.user_id <> $1",
        )
        .bind(user.0)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| Ok(UserId(row.try_get("user_id")?)))
            .collect()
    }

    async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map(|_| ())
    }
}

#[async_trait]
impl MessageStore for PostgresStore {
    async fn store(&self, messages: &[Message]) -> StoreResult<()> {
        if messages.is_empty() {
            return Ok(());
        }
        // One statement for the whole batch: six array parameters, whatever its size.
        let client_msg_ids: Vec<String> = messages
            .iter()
            .map(|m| m.client_msg_id.to_string())
            .collect();
        let bodies: Vec<&str> = messages.iter().map(|m| m.body.as_str()).collect();
        sqlx::query(
            "INSERT INTO messages (id, conversation_id, sender_id, client_msg_id, body, created_at)
             SELECT * FROM UNNEST($1::bigint[], $2::bigint[], $3::bigint[], $4::text[]::uuid[],
                                  $5::text[], $6::bigint[])
             ON CONFLICT (id) DO NOTHING",
        )
        .bind(ids(messages, |m| m.id.0))
        .bind(ids(messages, |m| m.conversation_id.0))
        .bind(ids(messages, |m| m.sender_id.0))
        .bind(client_msg_ids)
        .bind(bodies)
        .bind(ids(messages, |m| m.created_at.timestamp_millis()))
        .execute(&self.pool)
        .await?;
        Ok(())
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
             WHERE conversation_id = $1 AND id < $2 AND id > $3
             ORDER BY id DESC LIMIT $4"
        ))
        .bind(conversation.0)
        .bind(before.map_or(i64::MAX, |id| id.0))
        .bind(after.map_or(i64::MIN, |id| id.0))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(message_of).collect()
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
        let rows = sqlx::query(&format!(
            "SELECT {MESSAGE_COLUMNS} FROM messages
             WHERE conversation_id = ANY($1) AND id > $2
             ORDER BY id LIMIT $3"
        ))
        .bind(ids(conversations, |id| id.0))
        .bind(since.0)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(message_of).collect()
    }

    async fn message(&self, id: MessageId) -> StoreResult<Option<Message>> {
        let row = sqlx::query(&format!(
            "SELECT {MESSAGE_COLUMNS} FROM messages WHERE id = $1"
        ))
        .bind(id.0)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(message_of).transpose()
    }

    async fn activity(
        &self,
        reader: UserId,
        conversations: &[(ConversationId, Option<MessageId>)],
    ) -> StoreResult<HashMap<ConversationId, ConversationActivity>> {
        if conversations.is_empty() {
            return Ok(HashMap::new());
        }
        // One round trip for the whole conversation list: per conversation, the newest
        // message and the count of others' messages past the marker, each a short walk
        // of messages_by_conversation.
        let read_markers: Vec<Option<i64>> = conversations
            .iter()
            .map(|(_, marker)| marker.map(|id| id.0))
            .collect();
        let rows = sqlx::query(
            "SELECT c.conversation_id AS wanted, last.id, last.conversation_id, last.sender_id,
                    last.client_msg_id, last.body, last.created_at, unread.n
             FROM UNNEST($1::bigint[], $2::bigint[]) AS c (conversation_id, last_read_id)
             LEFT JOIN LATERAL (
                 SELECT id, conversation_id, sender_id, client_msg_id::text AS client_msg_id,
                        body, created_at
                 FROM messages m WHERE m.conversation_id = c.conversation_id
                 ORDER BY m.id DESC LIMIT 1
             ) last ON true
             CROSS JOIN LATERAL (
                 SELECT count(*) AS n FROM messages m
                 WHERE m.conversation_id = c.conversation_id
                   AND m.id > COALESCE(c.last_read_id, -1)
                   AND m.sender_id <> $3
             ) unread",
        )
        .bind(ids(conversations, |(id, _)| id.0))
        .bind(read_markers)
        .bind(reader.0)
        .fetch_all(&self.pool)
        .await?;
        let mut out = HashMap::with_capacity(rows.len());
        for row in &rows {
            let last_message = match row.try_get::<Option<i64>, _>("id")? {
                Some(_) => Some(message_of(row)?),
                None => None,
            };
            out.insert(
                ConversationId(row.try_get("wanted")?),
                ConversationActivity {
                    last_message,
                    unread_count: count_of(row.try_get("n")?),
                },
            );
        }
        Ok(out)
    }
}

#[async_trait]
impl Sessions for PostgresStore {
    async fn start(
        &self,
        user: UserId,
        token_hash: &str,
        expires_at: DateTime<Utc>,
    ) -> StoreResult<()> {
        sqlx::query(
            "WITH family AS (INSERT INTO refresh_families (user_id) VALUES ($1) RETURNING id)
             INSERT INTO refresh_tokens (token_hash, family_id, expires_at)
             SELECT $2, id, $3 FROM family",
        )
        .bind(user.0)
        .bind(token_hash)
        .bind(expires_at.timestamp_millis())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn rotate(
        &self,
        old_hash: &str,
        new_hash: &str,
        expires_at: DateTime<Utc>,
    ) -> Result<UserId, RotateError> {
        let now = now_ms();
        let mut tx = self.pool.begin().await?;
        // Claim the token in one statement: of two concurrent rotations, the second
        // waits on the row lock, re-checks `rotated_at IS NULL` and claims nothing.
        let claimed = sqlx::query(
            "UPDATE refresh_tokens t SET rotated_at = $2
             FROM refresh_families f
             WHERE t.token_hash = $1 AND t.rotated_at IS NULL AND t.expires_at > $2
               AND f.id = t.family_id AND f.revoked_at IS NULL
             RETURNING t.family_id, f.user_id",
        )
        .bind(old_hash)
        .bind(now)
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(row) = claimed {
            let family: i64 = row.try_get("family_id")?;
            sqlx::query(
                "INSERT INTO refresh_tokens (token_hash, family_id, expires_at) VALUES ($1, $2, $3)",
            )
            .bind(new_hash)
            .bind(family)
            .bind(expires_at.timestamp_millis())
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            return Ok(UserId(row.try_get("user_id")?));
        }
        // Not claimable: find out why.
        let row = sqlx::query(
            "SELECT t.family_id, t.expires_at, t.rotated_at, f.revoked_at
             FROM refresh_tokens t JOIN refresh_families f ON f.id = t.family_id
             WHERE t.token_hash = $1",
        )
        .bind(old_hash)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            return Err(RotateError::Invalid);
        };
        if row.try_get::<Option<i64>, _>("revoked_at")?.is_some()
            || row.try_get::<i64, _>("expires_at")? <= now
            || row.try_get::<Option<i64>, _>("rotated_at")?.is_none()
        {
            return Err(RotateError::Invalid);
        }
        sqlx::query(
            "UPDATE refresh_families SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL",
        )
        .bind(row.try_get::<i64, _>("family_id")?)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Err(RotateError::Reused)
    }

    async fn revoke_family(&self, token_hash: &str) -> StoreResult<()> {
        sqlx::query(
            "UPDATE refresh_families SET revoked_at = $1
             WHERE revoked_at IS NULL
               AND id = (SELECT family_id FROM refresh_tokens WHERE token_hash = $2)",
        )
        .bind(now_ms())
        .bind(token_hash)
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}
