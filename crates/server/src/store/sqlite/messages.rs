//! History on SQLite: each message's current state, the events `sync` replays,
//! reactions and mentions, all written by the persister in one transaction per batch.
//! Search reads the FTS5 index the search consumer keeps (`search.rs`).

use std::sync::Arc;

use async_trait::async_trait;
use chat_protocol::events::{Event, MessageDeleted, MessageEdited, MessagePosted, ReactionChanged};
use chat_protocol::http::Message;
use chat_protocol::{ConversationId, MessageId, UserId};
use sqlx::{QueryBuilder, Row, Sqlite, Transaction};

use super::{CHUNK, SqliteStore, message_of, push_id_list};
use crate::database::sqlite::MESSAGE_COLUMNS;
use crate::search::SearchTerms;
use crate::store::{
    ActivityQuery, ConversationActivity, MessageStore, Replay, StoreError, StoreResult,
    attach_reactions, event_of, mention_rows, merge_replay, posts_of, record_of,
    summarize_reactions,
};

type Tx<'a> = Transaction<'a, Sqlite>;

/// Mentioned user ids as the `mentions` column holds them: a JSON array.
fn json(mentions: &[UserId]) -> StoreResult<String> {
    serde_json::to_string(mentions).map_err(|e| StoreError::Refused(e.to_string()))
}

/// Posts: one INSERT per chunk; only the rows that are new get their mentions, so a
/// replayed post of a since-deleted message revives nothing.
async fn insert_posts(tx: &mut Tx<'_>, posts: &[&MessagePosted]) -> StoreResult<()> {
    // 9 variables per row keeps chunks of 1,000 well under SQLite's limit.
    for chunk in posts.chunks(1_000) {
        let mut query = QueryBuilder::new(
            "INSERT OR IGNORE INTO messages \
             (id, conversation_id, sender_id, client_msg_id, body, created_at, reply_to, mentions) ",
        );
        let mentions = chunk
            .iter()
            .map(|m| json(&m.mentions))
            .collect::<StoreResult<Vec<_>>>()?;
        query.push_values(chunk.iter().zip(&mentions), |mut row, (m, mentions)| {
            row.push_bind(m.id.0)
                .push_bind(m.conversation_id.0)
                .push_bind(m.sender_id.0)
                .push_bind(m.client_msg_id.to_string())
                .push_bind(m.body.as_str())
                .push_bind(m.created_at.timestamp_millis())
                .push_bind(m.reply_to.map(|r| r.0))
                .push_bind(mentions.as_str());
        });
        query.push(" RETURNING id");
        let inserted: Vec<i64> = query
            .build()
            .fetch_all(&mut **tx)
            .await?
            .iter()
            .map(|row| row.try_get("id"))
            .collect::<Result<_, _>>()?;
        if inserted.is_empty() {
            continue;
        }
        let fresh: Vec<&&MessagePosted> = chunk
            .iter()
            .filter(|m| inserted.contains(&m.id.0))
            .collect();
        let mentioned: Vec<(i64, i64, i64)> = fresh
            .iter()
            .flat_map(|m| mention_rows(&m.mentions, m.sender_id, m.conversation_id, m.id))
            .collect();
        insert_mentions(tx, &mentioned).await?;
    }
    Ok(())
}

async fn insert_mentions(tx: &mut Tx<'_>, rows: &[(i64, i64, i64)]) -> StoreResult<()> {
    for chunk in rows.chunks(CHUNK) {
        let mut query = QueryBuilder::new(
            "INSERT OR IGNORE INTO mentions (user_id, conversation_id, message_id) ",
        );
        query.push_values(chunk, |mut row, (user, conversation, message)| {
            row.push_bind(*user)
                .push_bind(*conversation)
                .push_bind(*message);
        });
        query.build().execute(&mut **tx).await?;
    }
    Ok(())
}

/// Records the event for `sync`; false when it was recorded before (a replay).
async fn record_event(tx: &mut Tx<'_>, event: &Event) -> StoreResult<bool> {
    let done = sqlx::query(
        "INSERT OR IGNORE INTO message_events (id, conversation_id, message_id, record)
         VALUES (?, ?, ?, ?)",
    )
    .bind(event.id().0)
    .bind(event.conversation_id().0)
    .bind(event.message_id().0)
    .bind(record_of(event)?)
    .execute(&mut **tx)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Whether the message exists and is not deleted.
async fn is_live(tx: &mut Tx<'_>, message: MessageId) -> StoreResult<bool> {
    let row = sqlx::query("SELECT deleted_at FROM messages WHERE id = ?")
        .bind(message.0)
        .fetch_optional(&mut **tx)
        .await?;
    Ok(match row {
        Some(row) => row.try_get::<Option<i64>, _>("deleted_at")?.is_none(),
        None => false,
    })
}

async fn apply_edit(tx: &mut Tx<'_>, edit: &MessageEdited, event: &Event) -> StoreResult<()> {
    if !is_live(tx, edit.message_id).await? || !record_event(tx, event).await? {
        return Ok(());
    }
    let done = sqlx::query(
        "UPDATE messages SET body = ?2, mentions = ?3, edited_at = ?4, edit_id = ?5
         WHERE id = ?1 AND deleted_at IS NULL AND (edit_id IS NULL OR edit_id < ?5)
         RETURNING sender_id, conversation_id",
    )
    .bind(edit.message_id.0)
    .bind(edit.body.as_str())
    .bind(json(&edit.mentions)?)
    .bind(edit.at.timestamp_millis())
    .bind(edit.id.0)
    .fetch_optional(&mut **tx)
    .await?;
    let Some(row) = done else {
        // A newer edit is already applied.
        return Ok(());
    };
    let sender = UserId(row.try_get("sender_id")?);
    let conversation = ConversationId(row.try_get("conversation_id")?);
    sqlx::query("DELETE FROM mentions WHERE message_id = ?")
        .bind(edit.message_id.0)
        .execute(&mut **tx)
        .await?;
    let rows = mention_rows(&edit.mentions, sender, conversation, edit.message_id);
    insert_mentions(tx, &rows).await
}

async fn apply_delete(tx: &mut Tx<'_>, delete: &MessageDeleted, event: &Event) -> StoreResult<()> {
    if !is_live(tx, delete.message_id).await? || !record_event(tx, event).await? {
        return Ok(());
    }
    let id = delete.message_id.0;
    sqlx::query("UPDATE messages SET body = '', mentions = '[]', deleted_at = ? WHERE id = ?")
        .bind(delete.at.timestamp_millis())
        .bind(id)
        .execute(&mut **tx)
        .await?;
    for statement in [
        "DELETE FROM mentions WHERE message_id = ?",
        "DELETE FROM reactions WHERE message_id = ?",
    ] {
        sqlx::query(statement).bind(id).execute(&mut **tx).await?;
    }
    // The message's edits (with their bodies) and reactions go; the deletion stays.
    sqlx::query("DELETE FROM message_events WHERE message_id = ? AND id != ?")
        .bind(id)
        .bind(delete.id.0)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

async fn apply_reaction(
    tx: &mut Tx<'_>,
    reaction: &ReactionChanged,
    event: &Event,
) -> StoreResult<()> {
    if !is_live(tx, reaction.message_id).await? || !record_event(tx, event).await? {
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO reactions (message_id, emoji, user_id, active, event_id)
         VALUES (?, ?, ?, ?, ?)
         ON CONFLICT (message_id, emoji, user_id) DO UPDATE
         SET active = excluded.active, event_id = excluded.event_id
         WHERE excluded.event_id > reactions.event_id",
    )
    .bind(reaction.message_id.0)
    .bind(reaction.emoji.as_str())
    .bind(reaction.user_id.0)
    .bind(reaction.on)
    .bind(reaction.id.0)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

impl SqliteStore {
    /// The messages' reactions, filled in.
    async fn with_reactions(&self, mut messages: Vec<Message>) -> StoreResult<Vec<Message>> {
        let ids: Vec<i64> = messages
            .iter()
            .filter(|m| !m.deleted)
            .map(|m| m.id.0)
            .collect();
        let mut rows = Vec::new();
        for chunk in ids.chunks(CHUNK) {
            let mut query = QueryBuilder::new(
                "SELECT message_id, emoji, user_id FROM reactions WHERE active AND message_id IN ",
            );
            push_id_list(&mut query, chunk, |id| *id);
            query.push(" ORDER BY message_id, event_id");
            for row in query.build().fetch_all(&self.read).await? {
                rows.push((
                    MessageId(row.try_get("message_id")?),
                    row.try_get::<String, _>("emoji")?,
                    UserId(row.try_get("user_id")?),
                ));
            }
        }
        attach_reactions(&mut messages, summarize_reactions(rows));
        Ok(messages)
    }
}

#[async_trait]
impl MessageStore for SqliteStore {
    async fn apply(&self, events: &[Arc<Event>]) -> StoreResult<()> {
        if events.is_empty() {
            return Ok(());
        }
        let mut tx = self.write.begin().await?;
        insert_posts(&mut tx, &posts_of(events)).await?;
        for event in events {
            match event.as_ref() {
                Event::Message(_) => {}
                Event::Edit(edit) => apply_edit(&mut tx, edit, event).await?,
                Event::Delete(delete) => apply_delete(&mut tx, delete, event).await?,
                Event::Reaction(reaction) => apply_reaction(&mut tx, reaction, event).await?,
            }
        }
        tx.commit().await?;
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
             WHERE conversation_id = ? AND id < ? AND id > ?
             ORDER BY id DESC LIMIT ?"
        ))
        .bind(conversation.0)
        .bind(before.map_or(i64::MAX, |id| id.0))
        .bind(after.map_or(-1, |id| id.0))
        .bind(limit)
        .fetch_all(&self.read)
        .await?;
        let messages = rows.iter().map(message_of).collect::<StoreResult<_>>()?;
        self.with_reactions(messages).await
    }

    async fn since(
        &self,
        conversations: &[ConversationId],
        since: MessageId,
        after: MessageId,
        limit: u32,
    ) -> StoreResult<Vec<Replay>> {
        if conversations.is_empty() {
            return Ok(Vec::new());
        }
        let after = after.max(since);
        let mut query = QueryBuilder::new(format!(
            "SELECT {MESSAGE_COLUMNS} FROM messages WHERE id > "
        ));
        query.push_bind(after.0).push(" AND conversation_id IN ");
        push_id_list(&mut query, conversations, |id| id.0);
        query.push(" ORDER BY id LIMIT ").push_bind(limit);
        let rows = query.build().fetch_all(&self.read).await?;
        let messages = rows.iter().map(message_of).collect::<StoreResult<_>>()?;
        let messages = self.with_reactions(messages).await?;

        let mut query = QueryBuilder::new("SELECT record FROM message_events WHERE id > ");
        query
            .push_bind(after.0)
            .push(" AND message_id <= ")
            .push_bind(since.0)
            .push(" AND conversation_id IN ");
        push_id_list(&mut query, conversations, |id| id.0);
        query.push(" ORDER BY id LIMIT ").push_bind(limit);
        let changes = query
            .build()
            .fetch_all(&self.read)
            .await?
            .iter()
            .map(|row| event_of(row.try_get("record")?))
            .collect::<StoreResult<Vec<_>>>()?;
        Ok(merge_replay(messages, changes, limit as usize))
    }

    async fn message(&self, id: MessageId) -> StoreResult<Option<Message>> {
        let row = sqlx::query(&format!(
            "SELECT {MESSAGE_COLUMNS} FROM messages WHERE id = ?"
        ))
        .bind(id.0)
        .fetch_optional(&self.read)
        .await?;
        let Some(message) = row.as_ref().map(message_of).transpose()? else {
            return Ok(None);
        };
        Ok(self.with_reactions(vec![message]).await?.pop())
    }

    async fn activity(&self, queries: &[ActivityQuery]) -> StoreResult<Vec<ConversationActivity>> {
        let mut out = vec![ConversationActivity::default(); queries.len()];
        // One statement per chunk: the queries as a VALUES table, each joined to its
        // conversation's newest message and to the counts of others' unread ones.
        for (chunk_index, chunk) in queries.chunks(CHUNK).enumerate() {
            let mut query =
                QueryBuilder::new("WITH q (idx, conversation_id, reader, last_read) AS (");
            query.push_values(chunk.iter().enumerate(), |mut row, (i, q)| {
                row.push_bind((chunk_index * CHUNK + i) as i64)
                    .push_bind(q.conversation.0)
                    .push_bind(q.reader.0)
                    .push_bind(q.last_read.map_or(-1, |id| id.0));
            });
            query.push(
                ") SELECT q.idx, m.id, m.conversation_id, m.sender_id, m.client_msg_id, m.body,
                   m.created_at, m.reply_to, m.mentions, m.edited_at, m.deleted_at,
                   (SELECT COUNT(*) FROM messages u
                    WHERE u.conversation_id = q.conversation_id AND u.id > q.last_read
                      AND u.sender_id != q.reader AND u.deleted_at IS NULL) AS unread,
                   (SELECT COUNT(*) FROM mentions n
                    WHERE n.user_id = q.reader AND n.conversation_id = q.conversation_id
                      AND n.message_id > q.last_read) AS unread_mentions
                 FROM q LEFT JOIN messages m ON m.id =
                   (SELECT MAX(id) FROM messages WHERE conversation_id = q.conversation_id)",
            );
            for row in query.build().fetch_all(&self.read).await? {
                let index: i64 = row.try_get("idx")?;
                let Some(slot) = usize::try_from(index).ok().and_then(|i| out.get_mut(i)) else {
                    continue;
                };
                let unread: i64 = row.try_get("unread")?;
                slot.unread_count = u32::try_from(unread).unwrap_or(u32::MAX);
                let mentions: i64 = row.try_get("unread_mentions")?;
                slot.unread_mentions = u32::try_from(mentions).unwrap_or(u32::MAX);
                if row.try_get::<Option<i64>, _>("id")?.is_some() {
                    slot.last_message = Some(message_of(&row)?);
                }
            }
        }
        Ok(out)
    }

    async fn search(
        &self,
        conversations: &[ConversationId],
        terms: &SearchTerms,
        before: Option<MessageId>,
        limit: u32,
    ) -> StoreResult<Vec<Message>> {
        if conversations.is_empty() {
            return Ok(Vec::new());
        }
        // FTS5 walks its matches by rowid (the message id), newest first, so the
        // limit stops the walk early.
        let mut query = QueryBuilder::new(
            "SELECT m.id, m.conversation_id, m.sender_id, m.client_msg_id, m.body, m.created_at,
                    m.reply_to, m.mentions, m.edited_at, m.deleted_at
             FROM message_search s JOIN messages m ON m.id = s.rowid
             WHERE message_search MATCH ",
        );
        query
            .push_bind(terms.fts5())
            .push(" AND s.rowid < ")
            .push_bind(before.map_or(i64::MAX, |id| id.0))
            .push(" AND m.deleted_at IS NULL AND m.conversation_id IN ");
        push_id_list(&mut query, conversations, |id| id.0);
        query.push(" ORDER BY s.rowid DESC LIMIT ").push_bind(limit);
        let rows = query.build().fetch_all(&self.read).await?;
        let messages = rows.iter().map(message_of).collect::<StoreResult<_>>()?;
        self.with_reactions(messages).await
    }
}
