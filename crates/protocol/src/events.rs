//! Conversation events: the records of the conversation log (DESIGN.md §2).
//!
//! Every change to what members see of a conversation is one [`Event`] on the log,
//! keyed by conversation id, with its own Snowflake id stamped by the log as it is
//! appended. Event ids and message ids are one id space: a message's id is the id of
//! the event that posted it, and `sync` resumes from any event id. The record is this
//! enum as JSON, tagged by `type` (the Kafka record's value, and the embedded log's
//! row); the README shows one of each.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use ts_rs::TS;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::ids::{ConversationId, MessageId, UserId};

/// One record of the conversation log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    /// A new message.
    Message(MessagePosted),
    /// The author changed a message's body.
    Edit(MessageEdited),
    /// The author or a group admin deleted a message.
    Delete(MessageDeleted),
    /// A member added or removed a reaction.
    Reaction(ReactionChanged),
}

/// A new message, as the log holds it (the message's later state is in history).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessagePosted {
    pub id: MessageId,
    pub conversation_id: ConversationId,
    pub sender_id: UserId,
    pub client_msg_id: Uuid,
    pub body: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<MessageId>,
    /// Members named as `@username` in the body, resolved by the server.
    #[serde(default)]
    pub mentions: Vec<UserId>,
    pub created_at: DateTime<Utc>,
}

/// A message's new body.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema, TS)]
pub struct MessageEdited {
    /// The event's own id.
    pub id: MessageId,
    pub conversation_id: ConversationId,
    /// The message it changes.
    pub message_id: MessageId,
    /// Who edited (always the author).
    pub user_id: UserId,
    #[ts(type = "string")]
    pub client_msg_id: Uuid,
    pub body: String,
    pub mentions: Vec<UserId>,
    /// When it was edited: the message's new `edited_at`.
    #[ts(type = "string")]
    pub at: DateTime<Utc>,
}

/// A message lost its body for good.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema, TS)]
pub struct MessageDeleted {
    pub id: MessageId,
    pub conversation_id: ConversationId,
    pub message_id: MessageId,
    /// Who deleted it: the author, or an admin of the group.
    pub user_id: UserId,
    #[ts(type = "string")]
    pub client_msg_id: Uuid,
    #[ts(type = "string")]
    pub at: DateTime<Utc>,
}

/// A member's reaction to a message, turned on or off.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema, TS)]
pub struct ReactionChanged {
    pub id: MessageId,
    pub conversation_id: ConversationId,
    pub message_id: MessageId,
    pub user_id: UserId,
    #[ts(type = "string")]
    pub client_msg_id: Uuid,
    /// One emoji (a single grapheme).
    pub emoji: String,
    pub on: bool,
    #[ts(type = "string")]
    pub at: DateTime<Utc>,
}

impl Event {
    pub fn id(&self) -> MessageId {
        match self {
            Event::Message(e) => e.id,
            Event::Edit(e) => e.id,
            Event::Delete(e) => e.id,
            Event::Reaction(e) => e.id,
        }
    }

    pub fn conversation_id(&self) -> ConversationId {
        match self {
            Event::Message(e) => e.conversation_id,
            Event::Edit(e) => e.conversation_id,
            Event::Delete(e) => e.conversation_id,
            Event::Reaction(e) => e.conversation_id,
        }
    }

    /// Who caused it.
    pub fn user_id(&self) -> UserId {
        match self {
            Event::Message(e) => e.sender_id,
            Event::Edit(e) => e.user_id,
            Event::Delete(e) => e.user_id,
            Event::Reaction(e) => e.user_id,
        }
    }

    pub fn client_msg_id(&self) -> Uuid {
        match self {
            Event::Message(e) => e.client_msg_id,
            Event::Edit(e) => e.client_msg_id,
            Event::Delete(e) => e.client_msg_id,
            Event::Reaction(e) => e.client_msg_id,
        }
    }

    /// The message the event posts or changes.
    pub fn message_id(&self) -> MessageId {
        match self {
            Event::Message(e) => e.id,
            Event::Edit(e) => e.message_id,
            Event::Delete(e) => e.message_id,
            Event::Reaction(e) => e.message_id,
        }
    }

    pub fn at(&self) -> DateTime<Utc> {
        match self {
            Event::Message(e) => e.created_at,
            Event::Edit(e) => e.at,
            Event::Delete(e) => e.at,
            Event::Reaction(e) => e.at,
        }
    }

    /// Reads a record of the log. Records written before events existed are a bare
    /// message (no `type`); they read as [`Event::Message`].
    pub fn decode(bytes: &[u8]) -> Result<Event, serde_json::Error> {
        serde_json::from_slice(bytes).or_else(|error| {
            serde_json::from_slice::<MessagePosted>(bytes)
                .map(Event::Message)
                .map_err(|_| error)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at() -> DateTime<Utc> {
        DateTime::from_timestamp_millis(1_700_000_000_000).unwrap()
    }

    #[test]
    fn records_are_tagged_by_type_and_read_back() {
        let edit = Event::Edit(MessageEdited {
            id: MessageId(9),
            conversation_id: ConversationId(2),
            message_id: MessageId(7),
            user_id: UserId(1),
            client_msg_id: Uuid::nil(),
            body: "fixed".into(),
            mentions: vec![UserId(3)],
            at: at(),
        });
        let json = serde_json::to_string(&edit).unwrap();
        assert!(
            json.starts_with(r#"{"type":"edit","id":"9","conversation_id":"2","message_id":"7""#)
        );
        assert_eq!(Event::decode(json.as_bytes()).unwrap(), edit);
    }

    #[test]
    fn a_record_from_before_events_reads_as_a_message() {
        let legacy = r#"{"id":"5","conversation_id":"2","sender_id":"1","body":"hi","client_msg_id":"67e55044-10b1-426f-9247-bb680e5fe0c8","created_at":"2023-11-14T22:13:20Z"}"#;
        let Event::Message(message) = Event::decode(legacy.as_bytes()).unwrap() else {
            panic!("not a message");
        };
        assert_eq!(message.body, "hi");
        assert!(message.mentions.is_empty() && message.reply_to.is_none());
        assert!(Event::decode(br#"{"type":"launch"}"#).is_err());
    }
}
