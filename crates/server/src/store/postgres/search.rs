//! The full-text index on PostgreSQL: `message_search`, one `tsvector` per live
//! message (the `simple` configuration, so any language is found by its words) under
//! a GIN index, with the event that gave it; a deleted message keeps its row with no
//! vector. The search consumer writes a batch in two statements.

use std::sync::Arc;

use async_trait::async_trait;
use chat_protocol::events::Event;

use super::{PostgresStore, ids_of};
use crate::store::{IndexChange, SearchIndex, StoreResult, index_changes};

#[async_trait]
impl SearchIndex for PostgresStore {
    async fn index(&self, events: &[Arc<Event>]) -> StoreResult<()> {
        let changes = index_changes(events);
        if changes.is_empty() {
            return Ok(());
        }
        let (mut set, mut removed) = (Vec::new(), Vec::new());
        for change in changes {
            match change {
                IndexChange::Set {
                    message,
                    conversation,
                    body,
                    by,
                } => set.push((message.0, conversation.0, body, by.0)),
                IndexChange::Remove {
                    message,
                    conversation,
                } => removed.push((message.0, conversation.0)),
            }
        }
        let mut tx = self.pool.begin().await?;
        if !set.is_empty() {
            sqlx::query(
                "INSERT INTO message_search (message_id, conversation_id, event_id, search)
                 SELECT id, conversation_id, event_id, to_tsvector('simple', body)
                 FROM UNNEST($1::bigint[], $2::bigint[], $3::text[], $4::bigint[])
                      AS s (id, conversation_id, body, event_id)
                 ON CONFLICT (message_id) DO UPDATE
                 SET search = excluded.search, event_id = excluded.event_id
                 WHERE message_search.search IS NOT NULL
                   AND message_search.event_id < excluded.event_id",
            )
            .bind(ids_of(&set, |s| s.0))
            .bind(ids_of(&set, |s| s.1))
            .bind(set.iter().map(|s| s.2).collect::<Vec<_>>())
            .bind(ids_of(&set, |s| s.3))
            .execute(&mut *tx)
            .await?;
        }
        if !removed.is_empty() {
            sqlx::query(
                "INSERT INTO message_search (message_id, conversation_id, event_id, search)
                 SELECT id, conversation_id, 0, NULL
                 FROM UNNEST($1::bigint[], $2::bigint[]) AS r (id, conversation_id)
                 ON CONFLICT (message_id) DO UPDATE SET search = NULL",
            )
            .bind(ids_of(&removed, |r| r.0))
            .bind(ids_of(&removed, |r| r.1))
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }
}
