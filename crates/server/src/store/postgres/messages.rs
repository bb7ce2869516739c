//! History on PostgreSQL: each message's current state, the events `sync` replays,
//! reactions and mentions, all written by the persister in one transaction per batch.
//! Search reads the index the search consumer keeps (`search.rs`).

use std::sync::Arc;

use async_trait::async_trait;
use chat_protocol::events::{Event, MessageDeleted, MessageEdited, MessagePosted, ReactionChanged};
use chat_protocol::http::Message;
use chat_protocol::{ConversationId, MessageId, UserId};
use sqlx::{Postgres, Row, Transaction};

use super::{MESSAGE_COLUMNS, PostgresStore, count_of, ids_of, message_of};
use crate::search::SearchTerms;
use crate::store::{
    ActivityQuery, ConversationActivity, MessageStore, Replay, StoreError, StoreResult,
    attach_reactions, event_of, mention_rows, merge_replay, posts_of, record_of,
    summarize_reactions,
};

type Tx<'a> = Transaction<'a, Postgres>;

/// Mentioned user ids as `insert_posts` passes them: a JSON array per post.
fn json(mentions: &[i64]) -> StoreResult<String> {
    serde_json::to_string(mentions).map_err(|e| StoreError::Refused(e.to_string()))
}

async fn insert_mentions(tx: &mut Tx<'_>, rows: &[(i64, i64, i64)]) -> StoreResult<()> {
    if rows.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO mentions (user_id, conversation_id, message_id)
         SELECT * FROM UNNEST($1::bigint[], $2::bigint[], $3::bigint[])
         ON CONFLICT DO NOTHING",
    )
    .bind(ids_of(rows, |r| r.0))
    .bind(ids_of(rows, |r| r.1))
    .bind(ids_of(rows, |r| r.2))
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Posts: one statement for the whole batch; only the rows that are new get their
/// mentions, so a replayed post of a since-deleted message revives nothing.
async fn insert_posts(tx: &mut Tx<'_>, posts: &[&MessagePosted]) -> StoreResult<()> {
    if posts.is_empty() {
        return Ok(());
    }
    let client_msg_ids: Vec<String> = posts.iter().map(|m| m.client_msg_id.to_string()).collect();
    let bodies: Vec<&str> = posts.iter().map(|m| m.body.as_str()).collect();
    let replies: Vec<Option<i64>> = posts.iter().map(|m| m.reply_to.map(|r| r.0)).collect();
    // Arrays of arrays must be rectangular in PostgreSQL: mentions travel as JSON.
    let mentions = posts
        .iter()
        .map(|m| json(&ids_of(&m.mentions, |u| u.0)))
        .collect::<StoreResult<Vec<_>>>()?;
    let inserted: Vec<i64> = sqlx::query(
        "INSERT INTO messages
             (id, conversation_id, sender_id, client_msg_id, body, created_at, reply_to, mentions)
         SELECT id, conversation_id, sender_id, client_msg_id::uuid, body, created_at, reply_to,
                ARRAY(SELECT jsonb_array_elements_text(mentions::jsonb)::bigint)
         FROM UNNEST($1::bigint[], $2::bigint[], $3::bigint[], $4::text[], $5::text[],
                     $6::bigint[], $7::bigint[], $8::text[])
              AS p (id, conversation_id, sender_id, client_msg_id, body, created_at, reply_to, mentions)
         ON CONFLICT (id) DO NOTHING
         RETURNING id",
    )
    .bind(ids_of(posts, |m| m.id.0))
    .bind(ids_of(posts, |m| m.conversation_id.0))
    .bind(ids_of(posts, |m| m.sender_id.0))
    .bind(client_msg_ids)
    .bind(bodies)
    .bind(ids_of(posts, |m| m.created_at.timestamp_millis()))
    .bind(replies)
    .bind(mentions)
    .fetch_all(&mut **tx)
    .await?
    .iter()
    .map(|row| row.try_get("id"))
    .collect::<Result<_, _>>()?;
    let mentioned: Vec<(i64, i64, i64)> = posts
        .iter()
        .filter(|m| inserted.contains(&m.id.0))
        .flat_map(|m| mention_rows(&m.mentions, m.sender_id, m.conversation_id, m.id))
        .collect();
    insert_mentions(tx, &mentioned).await
}

/// Records the event for `sync`; false when it was recorded before (a replay).
async fn record_event(tx: &mut Tx<'_>, event: &Event) -> StoreResult<bool> {
    let done = sqlx::query(
        "INSERT INTO message_events (id, conversation_id, message_id, record)
         VALUES ($1, $2, $3, $4) ON CONFLICT (id) DO NOTHING",
    )
    .bind(event.id().0)
    .bind(event.conversation_id().0)
    .bind(event.message_id().0)
    .bind(record_of(event)?)
    .execute(&mut **tx)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Whether the message exists and is not deleted; locks its row until the end of
/// the transaction, so two persisters (a rebalance) apply its changes one at a time.
async fn is_live(tx: &mut Tx<'_>, message: MessageId) -> StoreResult<bool> {
    let row = sqlx::query("SELECT deleted_at FROM messages WHERE id = $1 FOR UPDATE")
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
        "UPDATE messages SET body = $2, mentions = $3, edited_at = $4, edit_id = $5
         WHERE id = $1 AND deleted_at IS NULL AND (edit_id IS NULL OR edit_id < $5)
         RETURNING sender_id, conversation_id",
    )
    .bind(edit.message_id.0)
    .bind(edit.body.as_str())
    .bind(ids_of(&edit.mentions, |u| u.0))
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
    sqlx::query("DELETE FROM mentions WHERE message_id = $1")
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
    sqlx::query("UPDATE messages SET body = '', mentions = '{}', deleted_at = $2 WHERE id = $1")
        .bind(id)
        .bind(delete.at.timestamp_millis())
        .execute(&mut **tx)
        .await?;
    for statement in [
        "DELETE FROM mentions WHERE message_id = $1",
        "DELETE FROM reactions WHERE message_id = $1",
    ] {
        sqlx::query(statement).bind(id).execute(&mut **tx).await?;
    }
    // The message's edits (with their bodies) and reactions go; the deletion stays.
    sqlx::query("DELETE FROM message_events WHERE message_id = $1 AND id <> $2")
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
         VALUES ($1, $2, $3, $4, $5)
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

impl PostgresStore {
    /// The messages' reactions, filled in.
    async fn with_reactions(&self, mut messages: Vec<Message>) -> StoreResult<Vec<Message>> {
        let ids: Vec<i64> = messages
            .iter()
            .filter(|m| !m.deleted)
            .map(|m| m.id.0)
            .collect();
        if ids.is_empty() {
            return Ok(messages);
        }
        let rows = sqlx::query(
            "SELECT message_id, emoji, user_id FROM reactions
             WHERE active AND message_id = ANY($1) ORDER BY message_id, event_id",
        )
        .bind(ids)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|row| {
            Ok((
                MessageId(row.try_get("message_id")?),
                row.try_get::<String, _>("emoji")?,
                UserId(row.try_get("user_id")?),
            ))
        })
        .collect::<StoreResult<Vec<_>>>()?;
        attach_reactions(&mut messages, summarize_reactions(rows));
        Ok(messages)
    }

    /// The messages of these rows, with their reactions.
    async fn messages_of(&self, rows: &[sqlx::postgres::PgRow]) -> StoreResult<Vec<Message>> {
        let messages = rows.iter().map(message_of).collect::<StoreResult<_>>()?;
        self.with_reactions(messages).await
    }
}

#[async_trait]
impl MessageStore for PostgresStore {
    async fn apply(&self, events: &[Arc<Event>]) -> StoreResult<()> {
        if events.is_empty() {
            return Ok(());
        }
        let mut tx = self.pool.begin().await?;
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
             WHERE conversation_id = $1 AND id < $2 AND id > $3
             ORDER BY id DESC LIMIT $4"
        ))
        .bind(conversation.0)
        .bind(before.map_or(i64::MAX, |id| id.0))
        .bind(after.map_or(i64::MIN, |id| id.0))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        self.messages_of(&rows).await
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
        let ids = ids_of(conversations, |id| id.0);
        let rows = sqlx::query(&format!(
            "SELECT {MESSAGE_COLUMNS} FROM messages
             WHERE conversation_id = ANY($1) AND id > $2
             ORDER BY id LIMIT $3"
        ))
        .bind(&ids)
        .bind(after.0)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        let messages = self.messages_of(&rows).await?;
        let changes = sqlx::query(
            "SELECT record FROM message_events
             WHERE conversation_id = ANY($1) AND id > $2 AND message_id <= $3
             ORDER BY id LIMIT $4",
        )
        .bind(ids)
        .bind(after.0)
        .bind(since.0)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|row| event_of(row.try_get("record")?))
        .collect::<StoreResult<Vec<_>>>()?;
        Ok(merge_replay(messages, changes, limit as usize))
    }

    async fn message(&self, id: MessageId) -> StoreResult<Option<Message>> {
        let row = sqlx::query(&format!(
            "SELECT {MESSAGE_COLUMNS} FROM messages WHERE id = $1"
        ))
        .bind(id.0)
        .fetch_optional(&self.pool)
        .await?;
        let Some(message) = row.as_ref().map(message_of).transpose()? else {
            return Ok(None);
        };
        Ok(self.with_reactions(vec![message]).await?.pop())
    }

    async fn activity(&self, queries: &[ActivityQuery]) -> StoreResult<Vec<ConversationActivity>> {
        if queries.is_empty() {
            return Ok(Vec::new());
        }
        // One round trip for every query: per (conversation, reader), the newest
        // message, the count of others' live messages past the reader's marker (a
        // short walk of messages_by_conversation) and of the reader's mentions there.
        let read_markers: Vec<Option<i64>> =
            queries.iter().map(|q| q.last_read.map(|id| id.0)).collect();
        let rows = sqlx::query(
            "SELECT c.idx, last.*, unread.n, mentioned.n AS mentions_n
             FROM UNNEST($1::bigint[], $2::bigint[], $3::bigint[])
                  WITH ORDINALITY AS c (conversation_id, reader, last_read_id, idx)
             LEFT JOIN LATERAL (
                 SELECT id, conversation_id, sender_id, client_msg_id::text AS client_msg_id,
                        body, created_at, reply_to, mentions, edited_at, deleted_at
                 FROM messages m WHERE m.conversation_id = c.conversation_id
                 ORDER BY m.id DESC LIMIT 1
             ) last ON true
             CROSS JOIN LATERAL (
                 SELECT count(*) AS n FROM messages m
                 WHERE m.conversation_id = c.conversation_id
                   AND m.id > COALESCE(c.last_read_id, -1)
                   AND m.sender_id <> c.reader AND m.deleted_at IS NULL
             ) unread
             CROSS JOIN LATERAL (
                 SELECT count(*) AS n FROM mentions n
                 WHERE n.user_id = c.reader AND n.conversation_id = c.conversation_id
                   AND n.message_id > COALESCE(c.last_read_id, -1)
             ) mentioned",
        )
        .bind(ids_of(queries, |q| q.conversation.0))
        .bind(ids_of(queries, |q| q.reader.0))
        .bind(read_markers)
        .fetch_all(&self.pool)
        .await?;
        let mut out = vec![ConversationActivity::default(); queries.len()];
        for row in &rows {
            // ORDINALITY counts from 1.
            let index: i64 = row.try_get("idx")?;
            let Some(slot) = usize::try_from(index - 1).ok().and_then(|i| out.get_mut(i)) else {
                continue;
            };
            slot.unread_count = count_of(row.try_get("n")?);
            slot.unread_mentions = count_of(row.try_get("mentions_n")?);
            if row.try_get::<Option<i64>, _>("id")?.is_some() {
                slot.last_message = Some(message_of(row)?);
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
        let rows = sqlx::query(&format!(
            "SELECT {MESSAGE_COLUMNS} FROM messages
             WHERE id IN (
                 SELECT message_id FROM message_search
                 WHERE search @@ to_tsquery('simple', $1)
                   AND conversation_id = ANY($2) AND message_id < $3
             ) AND deleted_at IS NULL
             ORDER BY id DESC LIMIT $4"
        ))
        .bind(terms.tsquery())
        .bind(ids_of(conversations, |id| id.0))
        .bind(before.map_or(i64::MAX, |id| id.0))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        self.messages_of(&rows).await
    }
}
