//! The FTS5 index on SQLite: `message_search` (contentless: the rowid is the message
//! id and no copy of the body is kept) and, since a contentless table cannot say what
//! it holds, `message_search_state`: per message, the event that gave the indexed
//! body and whether the message is deleted. The search consumer writes both in one
//! transaction per batch; FTS5 writes a new index segment per transaction, so large
//! batches keep both the writes and the later merging cheap.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use chat_protocol::MessageId;
use chat_protocol::events::Event;
use sqlx::{QueryBuilder, Row};

use super::{CHUNK, SqliteStore, push_id_list};
use crate::store::{IndexChange, SearchIndex, StoreResult, index_changes};

type Tx<'a> = sqlx::Transaction<'a, sqlx::Sqlite>;

/// What the index holds of a message it has seen.
#[derive(Clone, Copy)]
struct State {
    by: i64,
    removed: bool,
}

async fn states(tx: &mut Tx<'_>, ids: &[MessageId]) -> StoreResult<HashMap<i64, State>> {
    let mut found = HashMap::new();
    for chunk in ids.chunks(CHUNK) {
        let mut query = QueryBuilder::new(
            "SELECT message_id, event_id, removed FROM message_search_state WHERE message_id IN ",
        );
        push_id_list(&mut query, chunk, |id| id.0);
        for row in query.build().fetch_all(&mut **tx).await? {
            let state = State {
                by: row.try_get("event_id")?,
                removed: row.try_get("removed")?,
            };
            found.insert(row.try_get("message_id")?, state);
        }
    }
    Ok(found)
}

/// One batch's writes: index entries to take out, then to put in, and new states.
#[derive(Default)]
struct Writes<'a> {
    unindex: Vec<i64>,
    index: Vec<(i64, &'a str)>,
    states: Vec<(i64, State)>,
}

impl<'a> Writes<'a> {
    fn plan(changes: &[IndexChange<'a>], states: &HashMap<i64, State>) -> Self {
        let mut writes = Self::default();
        for change in changes {
            match *change {
                IndexChange::Set {
                    message, body, by, ..
                } => {
                    let before = states.get(&message.0);
                    match before {
                        Some(state) if state.removed || state.by >= by.0 => continue,
                        Some(_) => writes.unindex.push(message.0),
                        None => {}
                    }
                    writes.index.push((message.0, body));
                    let state = State {
                        by: by.0,
                        removed: false,
                    };
                    writes.states.push((message.0, state));
                }
                IndexChange::Remove { message, .. } => {
                    let before = states.get(&message.0);
                    if before.is_some_and(|state| state.removed) {
                        continue;
                    }
                    if before.is_some() {
                        writes.unindex.push(message.0);
                    }
                    let state = State {
                        by: before.map_or(0, |state| state.by),
                        removed: true,
                    };
                    writes.states.push((message.0, state));
                }
            }
        }
        writes
    }

    async fn write(&self, tx: &mut Tx<'_>) -> StoreResult<()> {
        for id in &self.unindex {
            sqlx::query("DELETE FROM message_search WHERE rowid = ?")
                .bind(id)
                .execute(&mut **tx)
                .await?;
        }
        for chunk in self.index.chunks(CHUNK) {
            let mut query = QueryBuilder::new("INSERT INTO message_search (rowid, body) ");
            query.push_values(chunk, |mut row, (id, body)| {
                row.push_bind(*id).push_bind(*body);
            });
            query.build().execute(&mut **tx).await?;
        }
        for chunk in self.states.chunks(CHUNK) {
            let mut query = QueryBuilder::new(
                "INSERT OR REPLACE INTO message_search_state (message_id, event_id, removed) ",
            );
            query.push_values(chunk, |mut row, (id, state)| {
                row.push_bind(*id)
                    .push_bind(state.by)
                    .push_bind(state.removed);
            });
            query.build().execute(&mut **tx).await?;
        }
        Ok(())
    }
}

#[async_trait]
impl SearchIndex for SqliteStore {
    async fn index(&self, events: &[Arc<Event>]) -> StoreResult<()> {
        let changes = index_changes(events);
        if changes.is_empty() {
            return Ok(());
        }
        let ids: Vec<MessageId> = changes
            .iter()
            .map(|change| match *change {
                IndexChange::Set { message, .. } | IndexChange::Remove { message, .. } => message,
            })
            .collect();
        let mut tx = self.write.begin().await?;
        let states = states(&mut tx, &ids).await?;
        Writes::plan(&changes, &states).write(&mut tx).await?;
        tx.commit().await?;
        Ok(())
    }
}
