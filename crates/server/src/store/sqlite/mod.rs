//! The embedded mode's stores on the SQLite file ([`crate::database::sqlite`]).
//! Queries are plain parameterized SQL; lists are bound one variable each, in chunks
//! well under SQLite's limit of 32,766 variables, so nothing is built from input.

use std::collections::HashMap;

use async_trait::async_trait;
use chat_protocol::http::{ConversationKind, MemberRole, Message, User};
use chat_protocol::{ConversationId, MessageId, UserId};
use chrono::{DateTime, Utc};
use sqlx::sqlite::SqliteRow;
use sqlx::{QueryBuilder, Row, Sqlite, SqlitePool};

use super::roster::{Roster, RosterEntry, role_column, role_of};
use super::{
    ConsentChange, ConversationRecord, Conversations, CreateUserError, Credentials,
    GroupChangeError, GroupUpdate, MemberRecord, ReadMarkers, Removal, StoreResult, Users,
};
use crate::database::is_unique_violation;
use crate::database::sqlite::{SqlitePools, now_ms, time_of};

fn message_of(row: &SqliteRow) -> StoreResult<Message> {
    Ok(crate::database::sqlite::message_of(row)?)
}

/// Ids bound per statement when a list is long.
const CHUNK: usize = 500;

#[derive(Clone)]
pub struct SqliteStore {
    read: SqlitePool,
    write: SqlitePool,
}

mod messages;
mod search;

impl SqliteStore {
    pub fn new(pools: SqlitePools) -> Self {
        Self {
            read: pools.read,
            write: pools.write,
        }
    }
}

fn user_of(row: &SqliteRow) -> StoreResult<User> {
    Ok(User {
        id: UserId(row.try_get("id")?),
        username: row.try_get("username")?,
        display_name: row.try_get("display_name")?,
    })
}

fn kind_of(kind: &str) -> ConversationKind {
    if kind == "direct" {
        ConversationKind::Direct
    } else {
        ConversationKind::Group
    }
}

/// `(?, ?, …)` with one bound id per item.
fn push_id_list<T>(query: &mut QueryBuilder<'_, Sqlite>, items: &[T], id: impl Fn(&T) -> i64) {
    query.push("(");
    let mut list = query.separated(", ");
    for item in items {
        list.push_bind(id(item));
    }
    list.push_unseparated(")");
}

/// Adds members (keeping existing ones as they are); returns the ones that were new.
async fn insert_members(
    tx: &mut sqlx::Transaction<'_, Sqlite>,
    id: ConversationId,
    users: &[UserId],
    now: i64,
) -> StoreResult<Vec<UserId>> {
    let mut added = Vec::new();
    for user in users {
        let inserted = sqlx::query(
            "INSERT OR IGNORE INTO members (conversation_id, user_id, joined_at) VALUES (?, ?, ?)",
        )
        .bind(id.0)
        .bind(user.0)
        .bind(now)
        .execute(&mut **tx)
        .await?
        .rows_affected();
        if inserted == 1 {
            added.push(*user);
        }
    }
    Ok(added)
}

/// The group's kind and members with their roles, longest-standing first. There is
/// one writer connection, so inside a write transaction nothing changes the group
/// until it commits.
async fn roster(
    tx: &mut sqlx::Transaction<'_, Sqlite>,
    id: ConversationId,
) -> Result<Roster, GroupChangeError> {
    let Some(row) = sqlx::query("SELECT kind FROM conversations WHERE id = ?")
        .bind(id.0)
        .fetch_optional(&mut **tx)
        .await?
    else {
        return Err(GroupChangeError::Outsider);
    };
    let kind = kind_of(row.try_get("kind")?);
    let rows = sqlx::query(
        "SELECT user_id, role FROM members WHERE conversation_id = ? ORDER BY joined_at, user_id",
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
    tx: &mut sqlx::Transaction<'_, Sqlite>,
    id: ConversationId,
    users: &[UserId],
    role: MemberRole,
) -> StoreResult<()> {
    for user in users {
        sqlx::query("UPDATE members SET role = ? WHERE conversation_id = ? AND user_id = ?")
            .bind(role_column(role))
            .bind(id.0)
            .bind(user.0)
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

#[async_trait]
impl Users for SqliteStore {
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
            Ok(row) => Ok(user_of(&row)?),
            Err(e) if is_unique_violation(&e) => Err(CreateUserError::Taken),
            Err(e) => Err(CreateUserError::Store(e.into())),
        }
    }

    async fn credentials(&self, username: &str) -> StoreResult<Option<Credentials>> {
        let row = sqlx::query(
            "SELECT id, username, display_name, password_hash FROM users WHERE username = ?",
        )
        .bind(username)
        .fetch_optional(&self.read)
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
        let row = sqlx::query("SELECT id, username, display_name FROM users WHERE id = ?")
            .bind(id.0)
            .fetch_optional(&self.read)
            .await?;
        row.as_ref().map(user_of).transpose()
    }

    async fn users(&self, ids: &[UserId]) -> StoreResult<Vec<User>> {
        let mut out = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(CHUNK) {
            let mut query =
                QueryBuilder::new("SELECT id, username, display_name FROM users WHERE id IN ");
            push_id_list(&mut query, chunk, |id| id.0);
            for row in query.build().fetch_all(&self.read).await? {
                out.push(user_of(&row)?);
            }
        }
        out.sort_by_key(|u| u.id);
        out.dedup_by_key(|u| u.id);
        Ok(out)
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
        rows.iter().map(user_of).collect()
    }

    async fn set_dataset_consent(
        &self,
        user: UserId,
        allowed: bool,
        at: DateTime<Utc>,
    ) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO dataset_consents (user_id, at_ms, allowed) VALUES (?, ?, ?)
             ON CONFLICT (user_id, at_ms) DO UPDATE SET allowed = excluded.allowed",
        )
        .bind(user.0)
        .bind(at.timestamp_millis())
        .bind(allowed)
        .execute(&self.write)
        .await?;
        Ok(())
    }

    async fn dataset_consents(&self, users: &[UserId]) -> StoreResult<Vec<ConsentChange>> {
        let mut out = Vec::new();
        for chunk in users.chunks(CHUNK) {
            let mut query = QueryBuilder::new(
                "SELECT user_id, at_ms, allowed FROM dataset_consents WHERE user_id IN ",
            );
            push_id_list(&mut query, chunk, |id| id.0);
            for row in query.build().fetch_all(&self.read).await? {
                out.push(ConsentChange {
                    user_id: UserId(row.try_get("user_id")?),
                    allowed: row.try_get("allowed")?,
                    at: time_of(row.try_get("at_ms")?),
                });
            }
        }
        out.sort_by_key(|c| (c.user_id, c.at));
        out.dedup_by_key(|c| (c.user_id, c.at));
        Ok(out)
    }
}

#[async_trait]
impl Conversations for SqliteStore {
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
            return Ok((ConversationId(row.try_get("id")?), false));
        }
        let now = now_ms();
        let id: i64 = sqlx::query(
            "INSERT INTO conversations (kind, direct_key, created_at) VALUES ('direct', ?, ?) RETURNING id",
        )
        .bind(&key)
        .bind(now)
        .fetch_one(&mut *tx)
        .await?
        .try_get("id")?;
        insert_members(&mut tx, ConversationId(id), &[a, b], now).await?;
        tx.commit().await?;
        Ok((ConversationId(id), true))
    }

    async fn create_group(&self, title: &str, members: &[UserId]) -> StoreResult<ConversationId> {
        let mut tx = self.write.begin().await?;
        let now = now_ms();
        let id: i64 = sqlx::query(
            "INSERT INTO conversations (kind, title, created_at) VALUES ('group', ?, ?) RETURNING id",
        )
        .bind(title)
        .bind(now)
        .fetch_one(&mut *tx)
        .await?
        .try_get("id")?;
        let id = ConversationId(id);
        insert_members(&mut tx, id, members, now).await?;
        if let Some(creator) = members.first() {
            set_role(&mut tx, id, &[*creator], MemberRole::Admin).await?;
        }
        tx.commit().await?;
        Ok(id)
    }

    async fn conversations(&self, ids: &[ConversationId]) -> StoreResult<Vec<ConversationRecord>> {
        let mut out = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(CHUNK) {
            let mut query = QueryBuilder::new(
                "SELECT id, kind, title, created_at FROM conversations WHERE id IN ",
            );
            push_id_list(&mut query, chunk, |id| id.0);
            for row in query.build().fetch_all(&self.read).await? {
                out.push(ConversationRecord {
                    id: ConversationId(row.try_get("id")?),
                    kind: kind_of(row.try_get("kind")?),
                    title: row.try_get("title")?,
                    created_at: time_of(row.try_get("created_at")?),
                });
            }
        }
        Ok(out)
    }

    async fn members(
        &self,
        ids: &[ConversationId],
    ) -> StoreResult<HashMap<ConversationId, Vec<MemberRecord>>> {
        let mut out: HashMap<ConversationId, Vec<MemberRecord>> = HashMap::new();
        for chunk in ids.chunks(CHUNK) {
            let mut query = QueryBuilder::new(
                "SELECT m.conversation_id, u.id, u.username, u.display_name, m.role, m.last_read_id
                 FROM members m JOIN users u ON u.id = m.user_id WHERE m.conversation_id IN ",
            );
            push_id_list(&mut query, chunk, |id| id.0);
            query.push(" ORDER BY m.conversation_id, m.joined_at, u.id");
            for row in query.build().fetch_all(&self.read).await? {
                out.entry(ConversationId(row.try_get("conversation_id")?))
                    .or_default()
                    .push(MemberRecord {
                        user: user_of(&row)?,
                        role: role_of(row.try_get("role")?)?,
                        last_read_id: row
                            .try_get::<Option<i64>, _>("last_read_id")?
                            .map(MessageId),
                    });
            }
        }
        Ok(out)
    }

    async fn member_ids(&self, id: ConversationId) -> StoreResult<Vec<UserId>> {
        let rows = sqlx::query("SELECT user_id FROM members WHERE conversation_id = ?")
            .bind(id.0)
            .fetch_all(&self.read)
            .await?;
        rows.iter()
            .map(|row| Ok(UserId(row.try_get("user_id")?)))
            .collect()
    }

    async fn conversations_of(&self, user: UserId) -> StoreResult<Vec<ConversationId>> {
        let rows = sqlx::query("SELECT conversation_id FROM members WHERE user_id = ?")
            .bind(user.0)
            .fetch_all(&self.read)
            .await?;
        rows.iter()
            .map(|row| Ok(ConversationId(row.try_get("conversation_id")?)))
            .collect()
    }

    async fn is_admin(&self, id: ConversationId, user: UserId) -> StoreResult<bool> {
        let row = sqlx::query("SELECT role FROM members WHERE conversation_id = ? AND user_id = ?")
            .bind(id.0)
            .bind(user.0)
            .fetch_optional(&self.read)
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
        let mut tx = self.write.begin().await?;
        roster(&mut tx, id).await?.check_admin(by)?;
        let added = insert_members(&mut tx, id, users, now_ms()).await?;
        tx.commit().await?;
        Ok(added)
    }

    async fn remove_member(
        &self,
        id: ConversationId,
        by: UserId,
        user: UserId,
    ) -> Result<Removal, GroupChangeError> {
        let mut tx = self.write.begin().await?;
        let removal = roster(&mut tx, id).await?.plan_removal(by, user)?;
        sqlx::query("DELETE FROM members WHERE conversation_id = ? AND user_id = ?")
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
        let mut tx = self.write.begin().await?;
        roster(&mut tx, id)
            .await?
            .plan_role_change(by, update.add_admins, update.remove_admins)?;
        if let Some(title) = update.title {
            sqlx::query("UPDATE conversations SET title = ? WHERE id = ?")
                .bind(title)
                .bind(id.0)
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
             WHERE mine.user_id = ?1 AND other.user_id != ?1",
        )
        .bind(user.0)
        .fetch_all(&self.read)
        .await?;
        rows.iter()
            .map(|row| Ok(UserId(row.try_get("user_id")?)))
            .collect()
    }
}

#[async_trait]
impl ReadMarkers for SqliteStore {
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
}
