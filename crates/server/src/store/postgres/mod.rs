//! The distributed mode's stores on PostgreSQL: the directory and the message
//! history the persister materializes from the log, shared by every node of a
//! cluster. Same semantics as the SQLite adapter; where several nodes may race (two
//! users opening the same direct conversation) the outcome is decided by one atomic
//! statement, not read-then-write; a change to a group's members or roles first
//! locks the group's row (`FOR NO KEY UPDATE`), so such changes to one group run one
//! after the other and each sees the roster the previous one left.
//!
//! Queries are plain parameterized SQL; lists travel as array parameters (`= ANY($1)`,
//! `UNNEST`), so nothing is built from input and a statement's text never depends on
//! how many items it carries (one prepared statement per query).

use std::collections::{HashMap, HashSet};

use async_trait::async_trait;
use chat_protocol::http::{ConversationKind, MemberRole, Message, User};
use chat_protocol::{ConversationId, MessageId, UserId};
use chrono::{DateTime, Utc};
use sqlx::postgres::PgRow;
use sqlx::{PgPool, Row};
use uuid::Uuid;

use super::roster::{Roster, RosterEntry, role_column, role_of};
use super::{
    ConsentChange, ConversationRecord, Conversations, CreateUserError, Credentials,
    GroupChangeError, GroupUpdate, MemberRecord, ReadMarkers, Removal, StoreError, StoreResult,
    Users,
};
use crate::database::is_unique_violation;
use crate::database::postgres::{now_ms, time_of};

#[derive(Clone)]
pub struct PostgresStore {
    pool: PgPool,
}

impl PostgresStore {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }
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
        client_msg_id: Uuid::parse_str(&client_msg_id).map_err(|e| {
            StoreError::Corrupt(format!("client_msg_id `{client_msg_id}` is no UUID: {e}"))
        })?,
        created_at: time_of(row.try_get("created_at")?),
        reply_to: row.try_get::<Option<i64>, _>("reply_to")?.map(MessageId),
        mentions: row
            .try_get::<Vec<i64>, _>("mentions")?
            .into_iter()
            .map(UserId)
            .collect(),
        edited_at: row.try_get::<Option<i64>, _>("edited_at")?.map(time_of),
        deleted: row.try_get::<Option<i64>, _>("deleted_at")?.is_some(),
        reactions: Vec::new(),
    })
}

fn kind_of(kind: &str) -> ConversationKind {
    if kind == "direct" {
        ConversationKind::Direct
    } else {
        ConversationKind::Group
    }
}

fn ids_of<T>(items: &[T], id: impl Fn(&T) -> i64) -> Vec<i64> {
    items.iter().map(id).collect()
}

fn count_of(n: i64) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// Locks the group's row for the rest of the transaction, then reads its kind and
/// members with their roles, longest-standing first.
async fn locked_roster(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    id: ConversationId,
) -> Result<Roster, GroupChangeError> {
    let Some(row) = sqlx::query("SELECT kind FROM conversations WHERE id = $1 FOR NO KEY UPDATE")
        .bind(id.0)
        .fetch_optional(&mut **tx)
        .await?
    else {
        return Err(GroupChangeError::Outsider);
    };
    let kind = kind_of(row.try_get("kind")?);
    let rows = sqlx::query(
        "SELECT user_id, role FROM members WHERE conversation_id = $1
         ORDER BY joined_at, user_id",
    )
    .bind(id.0)
    .fetch_all(&mut **tx)
    .await?;
    let members = rows
        .iter()
        .map(|row| {
            Ok(RosterEntry {
                user: UserId(row.try_get("user_id")?),
                role: role_of(row.try_get("role")?)?,
            })
        })
        .collect::<StoreResult<_>>()?;
    Ok(Roster { kind, members })
}

async fn set_role(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    id: ConversationId,
    users: &[UserId],
    role: MemberRole,
) -> StoreResult<()> {
    if users.is_empty() {
        return Ok(());
    }
    sqlx::query("UPDATE members SET role = $3 WHERE conversation_id = $1 AND user_id = ANY($2)")
        .bind(id.0)
        .bind(ids_of(users, |id| id.0))
        .bind(role_column(role))
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// The message columns as `message_of` reads them (the UUID as text, since sqlx's
/// `uuid` feature is not enabled).
const MESSAGE_COLUMNS: &str = "id, conversation_id, sender_id, client_msg_id::text AS client_msg_id, \
     body, created_at, reply_to, mentions, edited_at, deleted_at";

mod messages;
mod search;

#[async_trait]
impl Users for PostgresStore {
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
            Err(e) if is_unique_violation(&e) => Err(CreateUserError::Taken),
            Err(e) => Err(CreateUserError::Store(e.into())),
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
        .bind(ids_of(ids_wanted, |id| id.0))
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

    async fn set_dataset_consent(
        &self,
        user: UserId,
        allowed: bool,
        at: DateTime<Utc>,
    ) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO dataset_consents (user_id, at_ms, allowed) VALUES ($1, $2, $3)
             ON CONFLICT (user_id, at_ms) DO UPDATE SET allowed = excluded.allowed",
        )
        .bind(user.0)
        .bind(at.timestamp_millis())
        .bind(allowed)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn dataset_consents(&self, users: &[UserId]) -> StoreResult<Vec<ConsentChange>> {
        if users.is_empty() {
            return Ok(Vec::new());
        }
        let rows = sqlx::query(
            "SELECT user_id, at_ms, allowed FROM dataset_consents WHERE user_id = ANY($1)
             ORDER BY user_id, at_ms",
        )
        .bind(ids_of(users, |id| id.0))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(ConsentChange {
                    user_id: UserId(row.try_get("user_id")?),
                    allowed: row.try_get("allowed")?,
                    at: time_of(row.try_get("at_ms")?),
                })
            })
            .collect()
    }
}

#[async_trait]
impl Conversations for PostgresStore {
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
        // The creator (the first member) is the admin.
        sqlx::query(
            "INSERT INTO members (conversation_id, user_id, joined_at, role)
             SELECT $1, user_id, $3, CASE WHEN n = 1 THEN 'admin' ELSE 'member' END
             FROM UNNEST($2::bigint[]) WITH ORDINALITY AS u (user_id, n)
             ON CONFLICT DO NOTHING",
        )
        .bind(id)
        .bind(ids_of(members, |id| id.0))
        .bind(now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(ConversationId(id))
    }

    async fn conversations(&self, ids: &[ConversationId]) -> StoreResult<Vec<ConversationRecord>> {
        let rows =
            sqlx::query("SELECT id, kind, title, created_at FROM conversations WHERE id = ANY($1)")
                .bind(ids_of(ids, |id| id.0))
                .fetch_all(&self.pool)
                .await?;
        rows.iter()
            .map(|row| {
                Ok(ConversationRecord {
                    id: ConversationId(row.try_get("id")?),
                    kind: kind_of(row.try_get("kind")?),
                    title: row.try_get("title")?,
                    created_at: time_of(row.try_get("created_at")?),
                })
            })
            .collect()
    }

    async fn members(
        &self,
        ids: &[ConversationId],
    ) -> StoreResult<HashMap<ConversationId, Vec<MemberRecord>>> {
        let rows = sqlx::query(
            "SELECT m.conversation_id, u.id, u.username, u.display_name, m.role, m.last_read_id
             FROM members m JOIN users u ON u.id = m.user_id
             WHERE m.conversation_id = ANY($1) ORDER BY m.conversation_id, m.joined_at, u.id",
        )
        .bind(ids_of(ids, |id| id.0))
        .fetch_all(&self.pool)
        .await?;
        let mut out: HashMap<ConversationId, Vec<MemberRecord>> = HashMap::new();
        for row in &rows {
            out.entry(ConversationId(row.try_get("conversation_id")?))
                .or_default()
                .push(MemberRecord {
                    user: user_of(row)?,
                    role: role_of(row.try_get("role")?)?,
                    last_read_id: row
                        .try_get::<Option<i64>, _>("last_read_id")?
                        .map(MessageId),
                });
        }
        Ok(out)
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

    async fn conversations_of(&self, user: UserId) -> StoreResult<Vec<ConversationId>> {
        let rows = sqlx::query("SELECT conversation_id FROM members WHERE user_id = $1")
            .bind(user.0)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|row| Ok(ConversationId(row.try_get("conversation_id")?)))
            .collect()
    }

    async fn is_admin(&self, id: ConversationId, user: UserId) -> StoreResult<bool> {
        let row =
            sqlx::query("SELECT role FROM members WHERE conversation_id = $1 AND user_id = $2")
                .bind(id.0)
                .bind(user.0)
                .fetch_optional(&self.pool)
                .await?;
        match row {
            Some(row) => Ok(role_of(row.try_get("role")?)? == MemberRole::Admin),
            None => Ok(false),
        }
    }

    async fn add_members(
        &self,
        id: ConversationId,
        by: UserId,
        users: &[UserId],
    ) -> Result<Vec<UserId>, GroupChangeError> {
        let mut tx = self.pool.begin().await?;
        locked_roster(&mut tx, id).await?.check_admin(by)?;
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
        .bind(ids_of(users, |id| id.0))
        .bind(now_ms())
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
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

    async fn remove_member(
        &self,
        id: ConversationId,
        by: UserId,
        user: UserId,
    ) -> Result<Removal, GroupChangeError> {
        let mut tx = self.pool.begin().await?;
        let removal = locked_roster(&mut tx, id).await?.plan_removal(by, user)?;
        sqlx::query("DELETE FROM members WHERE conversation_id = $1 AND user_id = $2")
            .bind(id.0)
            .bind(user.0)
            .execute(&mut *tx)
            .await?;
        if let Some(promoted) = removal.promoted {
            set_role(&mut tx, id, &[promoted], MemberRole::Admin).await?;
        }
        tx.commit().await?;
        Ok(removal)
    }

    async fn update_group(
        &self,
        id: ConversationId,
        by: UserId,
        update: GroupUpdate<'_>,
    ) -> Result<(), GroupChangeError> {
        let mut tx = self.pool.begin().await?;
        locked_roster(&mut tx, id).await?.plan_role_change(
            by,
            update.add_admins,
            update.remove_admins,
        )?;
        if let Some(title) = update.title {
            sqlx::query("UPDATE conversations SET title = $2 WHERE id = $1")
                .bind(id.0)
                .bind(title)
                .execute(&mut *tx)
                .await?;
        }
        set_role(&mut tx, id, update.add_admins, MemberRole::Admin).await?;
        set_role(&mut tx, id, update.remove_admins, MemberRole::Member).await?;
        tx.commit().await?;
        Ok(())
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
}

#[async_trait]
impl ReadMarkers for PostgresStore {
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
}
