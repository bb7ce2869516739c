//! The conversation log: the source of truth for every conversation event (DESIGN.md
//! §2): new messages, edits, deletions and reactions ([`Event`]).
//!
//! An event is acknowledged only after [`MessageLog::append`] returns, and from then
//! on it must never be lost. The log orders events per conversation and stamps each
//! with its Snowflake id *as it is appended*, so ids increase in log order. Consumers read it from the end (the fan-out of each node) or from a
//! committed position (the persister).
//!
//! Embedded mode: [`sqlite`], an append-only table in the same SQLite file;
//! distributed mode: [`kafka`]. Consumers are handlers of one [`runner`], which owns
//! connecting, retrying, committing and shutdown for all of them.

pub mod kafka;
pub mod runner;
pub mod sqlite;

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use chat_protocol::events::{Event, MessageDeleted, MessageEdited, MessagePosted, ReactionChanged};
use chat_protocol::{ConversationId, MessageId, UserId};
use chrono::{DateTime, Utc};
use uuid::Uuid;

/// An event as the send path hands it to the log, before it has an id and a time.
#[derive(Clone, Debug)]
pub struct NewEvent {
    pub conversation_id: ConversationId,
    /// Who causes it.
    pub user_id: UserId,
    pub client_msg_id: Uuid,
    pub change: Change,
}

/// What a [`NewEvent`] does.
#[derive(Clone, Debug)]
pub enum Change {
    Post {
        body: String,
        reply_to: Option<MessageId>,
        mentions: Vec<UserId>,
    },
    Edit {
        message_id: MessageId,
        body: String,
        mentions: Vec<UserId>,
    },
    Delete {
        message_id: MessageId,
    },
    React {
        message_id: MessageId,
        emoji: String,
        on: bool,
    },
}

impl NewEvent {
    /// The event with the id and time the log gave it. `at` is whole milliseconds,
    /// as stored, so the ack and history agree.
    pub fn stamp(self, id: MessageId, at: DateTime<Utc>) -> Event {
        let NewEvent {
            conversation_id,
            user_id,
            client_msg_id,
            change,
        } = self;
        match change {
            Change::Post {
                body,
                reply_to,
                mentions,
            } => Event::Message(MessagePosted {
                id,
                conversation_id,
                sender_id: user_id,
                client_msg_id,
                body,
                reply_to,
                mentions,
                created_at: at,
            }),
            Change::Edit {
                message_id,
                body,
                mentions,
            } => Event::Edit(MessageEdited {
                id,
                conversation_id,
                message_id,
                user_id,
                client_msg_id,
                body,
                mentions,
                at,
            }),
            Change::Delete { message_id } => Event::Delete(MessageDeleted {
                id,
                conversation_id,
                message_id,
                user_id,
                client_msg_id,
                at,
            }),
            Change::React {
                message_id,
                emoji,
                on,
            } => Event::Reaction(ReactionChanged {
                id,
                conversation_id,
                message_id,
                user_id,
                client_msg_id,
                emoji,
                on,
                at,
            }),
        }
    }
}

/// Now, in whole milliseconds (what the stores keep).
pub fn now_ms() -> DateTime<Utc> {
    DateTime::from_timestamp_millis(Utc::now().timestamp_millis()).unwrap_or_default()
}

#[derive(Clone, Debug, thiserror::Error)]
pub enum LogError {
    #[error("the message log is unavailable: {0}")]
    Unavailable(String),
}

/// A point in the log: for each partition, the offset of the next record. The
/// embedded log has one partition; Kafka has several.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Position(pub BTreeMap<i32, i64>);

impl Position {
    pub fn single(next: i64) -> Self {
        Self(BTreeMap::from([(0, next)]))
    }

    /// Whether every record before `target` is also before `self`.
    pub fn covers(&self, target: &Position) -> bool {
        target
            .0
            .iter()
            .all(|(partition, next)| self.0.get(partition).copied().unwrap_or(0) >= *next)
    }
}

#[async_trait]
pub trait MessageLog: Send + Sync {
    /// Appends durably and returns the event as stored, with its id.
    async fn append(&self, event: NewEvent) -> Result<Arc<Event>, LogError>;
    /// Drops the bodies of a deleted message (its post and its edits) from the
    /// records the log keeps, where the log can rewrite them; Kafka cannot, and
    /// keeps records for the topic's retention.
    async fn redact(&self, _messages: &[MessageId]) -> Result<(), LogError> {
        Ok(())
    }
    /// The position just past the last appended event.
    async fn tail(&self) -> Result<Position, LogError>;
    /// A consumer that starts at the end of the log.
    async fn consume_from_end(&self) -> Result<Box<dyn LogConsumer>, LogError>;
    /// A consumer that resumes from the named group's committed position.
    async fn consume_as(&self, group: &str) -> Result<Box<dyn LogConsumer>, LogError>;
    /// The named group's committed position (what it has finished processing).
    async fn committed(&self, group: &str) -> Result<Position, LogError>;
    /// Whether the log answers, for `/readyz`.
    async fn check(&self) -> Result<(), LogError>;
    /// How far, in id time, a message may land in the log behind one with a larger
    /// id. Zero when one writer stamps ids in log order; with several nodes
    /// appending to one partition, up to an append's timeout plus clock skew. `sync`
    /// replays this much before its cursor so no such message is skipped.
    fn reorder_window(&self) -> std::time::Duration {
        std::time::Duration::ZERO
    }
}

/// An event and where it sits in the log: a consumer that keeps its own position
/// (the dataset sink, which stores it with its data) needs both.
#[derive(Clone, Debug)]
pub struct Record {
    pub partition: i32,
    pub offset: i64,
    pub event: Arc<Event>,
}

/// The events of `records`, in order.
pub fn events(records: &[Record]) -> Vec<Arc<Event>> {
    records.iter().map(|r| r.event.clone()).collect()
}

#[async_trait]
pub trait LogConsumer: Send {
    /// Waits for the next records, in log order, at most `max` of them.
    async fn next_records(&mut self, max: usize) -> Result<Vec<Record>, LogError>;
    /// Waits for the next events, in log order, at most `max` of them.
    async fn next_batch(&mut self, max: usize) -> Result<Vec<Arc<Event>>, LogError> {
        Ok(events(&self.next_records(max).await?))
    }
    /// Records that everything returned so far is processed.
    async fn commit(&mut self) -> Result<(), LogError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_position_covers_another_when_every_partition_is_as_far() {
        let target = Position(BTreeMap::from([(0, 5), (1, 3)]));
        assert!(Position(BTreeMap::from([(0, 5), (1, 4)])).covers(&target));
        assert!(!Position(BTreeMap::from([(0, 5)])).covers(&target));
        assert!(!Position(BTreeMap::from([(0, 4), (1, 9)])).covers(&target));
        assert!(Position::default().covers(&Position::default()));
    }
}
