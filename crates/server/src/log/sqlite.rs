//! The embedded conversation log: rows of the `conversation_log` table, whose rowid
//! is the offset and whose `record` is the event as JSON (the same JSON as a Kafka
//! record). One writer task takes appends from a channel and commits them in batches
//! (group commit), stamping ids in commit order, then wakes the consumers with the
//! committed batch. Consumers read live batches from a broadcast channel and fall
//! back to the table whenever they are behind it (start, lag, restart), so they see
//! every record exactly in offset order.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use chat_protocol::MessageId;
use chat_protocol::events::Event;
use sqlx::{QueryBuilder, Row, SqlitePool};
use tokio::sync::{broadcast, mpsc, oneshot};

use super::{LogConsumer, LogError, MessageLog, NewEvent, Position, Record, now_ms};
use crate::database::sqlite::SqlitePools;
use crate::snowflake::Snowflake;

/// A row offset in `conversation_log` (rowids start at 1).
type Offset = u64;

const MAX_BATCH: usize = 512;

/// A committed batch: the offset of its first record and the records.
#[derive(Clone)]
struct Committed {
    first: Offset,
    events: Arc<[Arc<Event>]>,
}

/// Where an append's outcome goes.
type Reply = oneshot::Sender<Result<Arc<Event>, LogError>>;

struct Append {
    event: NewEvent,
    reply: Reply,
}

pub struct SqliteLog {
    pools: SqlitePools,
    appends: mpsc::Sender<Append>,
    committed: broadcast::Sender<Committed>,
    /// Offset just past the last committed record.
    tail: Arc<AtomicU64>,
}

impl SqliteLog {
    pub async fn open(pools: SqlitePools, ids: Arc<Snowflake>) -> Result<Self, LogError> {
        let last: Option<i64> = sqlx::query("SELECT MAX(log_offset) AS last FROM conversation_log")
            .fetch_one(&pools.write)
            .await
            .map_err(unavailable)?
            .try_get("last")
            .map_err(unavailable)?;
        // Offsets are rowids starting at 1; a position is "next offset to read".
        let tail = Arc::new(AtomicU64::new(last.map_or(1, |l| l as u64 + 1)));
        let (appends, inbox) = mpsc::channel(8 * MAX_BATCH);
        let (committed, _) = broadcast::channel(1024);
        tokio::spawn(write_batches(
            pools.write.clone(),
            ids,
            inbox,
            committed.clone(),
            tail.clone(),
        ));
        Ok(Self {
            pools,
            appends,
            committed,
            tail,
        })
    }

    async fn committed_offset(&self, group: &str) -> Result<Option<Offset>, LogError> {
        let next: Option<i64> =
            sqlx::query("SELECT next_offset FROM consumer_offsets WHERE consumer = ?")
                .bind(group)
                .fetch_optional(&self.pools.read)
                .await
                .map_err(unavailable)?
                .map(|row| row.try_get("next_offset"))
                .transpose()
                .map_err(unavailable)?;
        Ok(next.map(|n: i64| n as Offset))
    }

    fn consumer_at(&self, next: Offset, group: Option<String>) -> SqliteConsumer {
        SqliteConsumer {
            pools: self.pools.clone(),
            live: self.committed.subscribe(),
            tail: self.tail.clone(),
            next,
            group,
            pending: Vec::new(),
        }
    }
}

#[async_trait]
impl MessageLog for SqliteLog {
    async fn append(&self, event: NewEvent) -> Result<Arc<Event>, LogError> {
        let (reply, answer) = oneshot::channel();
        let stopped = || LogError::Unavailable("the log writer has stopped".into());
        self.appends
            .send(Append { event, reply })
            .await
            .map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }

    async fn tail(&self) -> Result<Position, LogError> {
        Ok(Position::single(self.tail.load(Ordering::Acquire) as i64))
    }

    /// Rewrites the records of the deleted messages' posts and edits with an empty
    /// body, so the file keeps no deleted text (the persister has stored the
    /// deletion by then; nothing reads these bodies again).
    async fn redact(&self, messages: &[MessageId]) -> Result<(), LogError> {
        if messages.is_empty() {
            return Ok(());
        }
        let mut query = QueryBuilder::new(
            "UPDATE conversation_log SET record = json_set(record, '$.body', '')
             WHERE json_extract(record, '$.type') IN ('message', 'edit') AND message_id IN (",
        );
        let mut ids = query.separated(", ");
        for id in messages {
            ids.push_bind(id.0);
        }
        query.push(")");
        query
            .build()
            .execute(&self.pools.write)
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn committed(&self, group: &str) -> Result<Position, LogError> {
        Ok(Position::single(
            self.committed_offset(group).await?.unwrap_or(1) as i64,
        ))
    }

    async fn consume_from_end(&self) -> Result<Box<dyn LogConsumer>, LogError> {
        // Subscribe before reading the tail so no batch falls between the two.
        let mut consumer = self.consumer_at(0, None);
        consumer.next = self.tail.load(Ordering::Acquire);
        Ok(Box::new(consumer))
    }

    async fn consume_as(&self, group: &str) -> Result<Box<dyn LogConsumer>, LogError> {
        let next = self.committed_offset(group).await?.unwrap_or(1);
        Ok(Box::new(self.consumer_at(next, Some(group.to_owned()))))
    }

    async fn check(&self) -> Result<(), LogError> {
        if self.appends.is_closed() {
            return Err(LogError::Unavailable("the log writer has stopped".into()));
        }
        sqlx::query("SELECT 1")
            .execute(&self.pools.read)
            .await
            .map_err(unavailable)?;
        Ok(())
    }
}

fn unavailable(error: impl std::fmt::Display) -> LogError {
    LogError::Unavailable(error.to_string())
}

/// The single writer: takes every queued append, commits them in one transaction,
/// answers each, and publishes the batch to consumers.
async fn write_batches(
    pool: SqlitePool,
    ids: Arc<Snowflake>,
    mut inbox: mpsc::Receiver<Append>,
    committed: broadcast::Sender<Committed>,
    tail: Arc<AtomicU64>,
) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while inbox.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let (replies, events) = stamp(&ids, &mut batch);
        let first = tail.load(Ordering::Acquire);
        match insert(&pool, first, &events).await {
            Ok(()) => {
                tail.store(first + events.len() as u64, Ordering::Release);
                for (reply, event) in replies.into_iter().zip(events.iter()) {
                    let _ = reply.send(Ok(event.clone()));
                }
                // No receivers is fine: consumers catch up from the table.
                let _ = committed.send(Committed {
                    first,
                    events: events.into(),
                });
            }
            Err(error) => {
                tracing::error!(%error, "appending to the message log failed");
                for reply in replies {
                    let _ = reply.send(Err(unavailable(&error)));
                }
            }
        }
    }
}

/// Gives each queued append its id and time, moving its body into the event
/// (shared from here on, never copied).
fn stamp(ids: &Snowflake, batch: &mut Vec<Append>) -> (Vec<Reply>, Vec<Arc<Event>>) {
    batch
        .drain(..)
        .map(|Append { event, reply }| (reply, Arc::new(event.stamp(ids.next_id(), now_ms()))))
        .unzip()
}

/// Rows per INSERT: SQLite binds at most 32,766 parameters.
const ROWS_PER_INSERT: usize = 1_000;

async fn insert(
    pool: &SqlitePool,
    first: Offset,
    events: &[Arc<Event>],
) -> Result<(), sqlx::Error> {
    let records = events
        .iter()
        .map(|event| serde_json::to_string(event.as_ref()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| sqlx::Error::Encode(e.into()))?;
    let mut tx = pool.begin().await?;
    for (chunk_index, chunk) in events.chunks(ROWS_PER_INSERT).enumerate() {
        let base = chunk_index * ROWS_PER_INSERT;
        let mut query = QueryBuilder::new(
            "INSERT INTO conversation_log (log_offset, id, conversation_id, user_id, \
             client_msg_id, message_id, created_at, record) ",
        );
        query.push_values(chunk.iter().enumerate(), |mut row, (i, e)| {
            row.push_bind((first + (base + i) as u64) as i64)
                .push_bind(e.id().0)
                .push_bind(e.conversation_id().0)
                .push_bind(e.user_id().0)
                .push_bind(e.client_msg_id().to_string())
                .push_bind(e.message_id().0)
                .push_bind(e.at().timestamp_millis())
                .push_bind(records[base + i].as_str());
        });
        query.build().execute(&mut *tx).await?;
    }
    tx.commit().await
}

struct SqliteConsumer {
    pools: SqlitePools,
    live: broadcast::Receiver<Committed>,
    tail: Arc<AtomicU64>,
    next: Offset,
    group: Option<String>,
    /// Records read but not yet returned (a live batch larger than `max`).
    pending: Vec<Record>,
}

impl SqliteConsumer {
    async fn read_table(&mut self, max: usize) -> Result<Vec<Record>, LogError> {
        let rows = sqlx::query(
            "SELECT log_offset, record FROM conversation_log
             WHERE log_offset >= ? ORDER BY log_offset LIMIT ?",
        )
        .bind(self.next as i64)
        .bind(max as i64)
        .fetch_all(&self.pools.read)
        .await
        .map_err(unavailable)?;
        self.next += rows.len() as u64;
        // A record that does not decode would stall every consumer behind it.
        Ok(rows
            .iter()
            .filter_map(|row| {
                let record: Result<String, _> = row.try_get("record");
                let offset: Option<i64> = row.try_get("log_offset").ok();
                match (record.map(|r| Event::decode(r.as_bytes())), offset) {
                    (Ok(Ok(event)), Some(offset)) => Some(Record {
                        partition: 0,
                        offset,
                        event: Arc::new(event),
                    }),
                    (Ok(Err(error)), _) => {
                        tracing::error!(%error, ?offset, "skipping an unreadable log record");
                        None
                    }
                    (Err(error), _) => {
                        tracing::error!(%error, "skipping an unreadable log record");
                        None
                    }
                    (Ok(Ok(_)), None) => {
                        tracing::error!("skipping a log record without an offset");
                        None
                    }
                }
            })
            .collect())
    }
}

#[async_trait]
impl LogConsumer for SqliteConsumer {
    async fn next_records(&mut self, max: usize) -> Result<Vec<Record>, LogError> {
        let max = max.max(1);
        let mut out = self.first_batch(max).await?;
        // Then every batch already committed, up to `max`: a consumer that took a
        // while (or lingers on purpose) gets one batch, not one group commit at a time.
        while out.len() < max && self.pending.is_empty() {
            let Ok(batch) = self.live.try_recv() else {
                break;
            };
            if batch.first > self.next {
                // A gap (the channel lagged): the table has the rest, next time.
                break;
            }
            if let Some(more) = self.take_live(batch, max - out.len()) {
                out.extend(more);
            }
        }
        Ok(out)
    }

    async fn commit(&mut self) -> Result<(), LogError> {
        let Some(group) = &self.group else {
            return Ok(());
        };
        let next = self.next - self.pending.len() as u64;
        sqlx::query(
            "INSERT INTO consumer_offsets (consumer, next_offset) VALUES (?, ?)
             ON CONFLICT (consumer) DO UPDATE SET next_offset = excluded.next_offset",
        )
        .bind(group)
        .bind(next as i64)
        .execute(&self.pools.write)
        .await
        .map_err(unavailable)?;
        Ok(())
    }
}

impl SqliteConsumer {
    /// Takes the part of a live batch at or after `next`; a batch that starts past
    /// `next` means records were missed, so they are read from the table instead.
    /// The next events: what a split batch left, a live batch, or rows of the table.
    async fn first_batch(&mut self, max: usize) -> Result<Vec<Record>, LogError> {
        if !self.pending.is_empty() {
            let take = self.pending.len().min(max);
            return Ok(self.pending.drain(..take).collect());
        }
        loop {
            if self.next < self.tail.load(Ordering::Acquire) {
                // Behind the committed tail: either catching up, or a live batch is on
                // its way. Drain what the channel already holds first.
                match self.live.try_recv() {
                    Ok(batch) => {
                        if let Some(out) = self.take_live(batch, max) {
                            return Ok(out);
                        }
                        continue;
                    }
                    Err(broadcast::error::TryRecvError::Lagged(_))
                    | Err(broadcast::error::TryRecvError::Empty)
                    | Err(broadcast::error::TryRecvError::Closed) => {
                        let out = self.read_table(max).await?;
                        if !out.is_empty() {
                            return Ok(out);
                        }
                        continue;
                    }
                }
            }
            match self.live.recv().await {
                Ok(batch) => {
                    if let Some(out) = self.take_live(batch, max) {
                        return Ok(out);
                    }
                }
                Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => {
                    return Err(LogError::Unavailable("the log writer has stopped".into()));
                }
            }
        }
    }

    fn take_live(&mut self, batch: Committed, max: usize) -> Option<Vec<Record>> {
        let end = batch.first + batch.events.len() as u64;
        if end <= self.next || batch.first > self.next {
            return None;
        }
        let skip = (self.next - batch.first) as usize;
        let mut fresh: Vec<Record> = batch.events[skip..]
            .iter()
            .zip(self.next..)
            .map(|(event, offset)| Record {
                partition: 0,
                offset: offset as i64,
                event: event.clone(),
            })
            .collect();
        self.next = end;
        if fresh.len() > max {
            self.pending = fresh.split_off(max);
        }
        Some(fresh)
    }
}

/// A send the log acknowledged, as found in the log table at start.
pub struct AcknowledgedSend {
    pub sender: chat_protocol::UserId,
    pub client_msg_id: uuid::Uuid,
    pub sent: crate::cache::SentMessage,
    pub created_at_ms: i64,
}

/// The events acknowledged since `since_ms`, so their keys can be remembered again
/// after a restart (a retry must still be recognized).
pub async fn acknowledged_since(
    pools: &SqlitePools,
    since_ms: i64,
) -> Result<Vec<AcknowledgedSend>, LogError> {
    let rows = sqlx::query(
        "SELECT id, conversation_id, user_id, client_msg_id, message_id, created_at
         FROM conversation_log WHERE created_at > ?",
    )
    .bind(since_ms)
    .fetch_all(&pools.read)
    .await
    .map_err(unavailable)?;
    let mut sends = Vec::with_capacity(rows.len());
    for row in rows {
        let read = || -> Result<Option<AcknowledgedSend>, sqlx::Error> {
            let Ok(client_msg_id) = uuid::Uuid::parse_str(row.try_get("client_msg_id")?) else {
                return Ok(None);
            };
            Ok(Some(AcknowledgedSend {
                sender: chat_protocol::UserId(row.try_get("user_id")?),
                client_msg_id,
                sent: crate::cache::SentMessage {
                    message_id: MessageId(row.try_get("message_id")?),
                    conversation_id: chat_protocol::ConversationId(row.try_get("conversation_id")?),
                    event_id: MessageId(row.try_get("id")?),
                },
                created_at_ms: row.try_get("created_at")?,
            }))
        };
        sends.extend(read().map_err(unavailable)?);
    }
    Ok(sends)
}
