//! WebSocket frames on `GET /api/v1/ws` (DESIGN.md §5): text frames, one JSON object
//! each, tagged by `type`.

use serde::{Deserialize, Serialize};
use ts_rs::TS;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::errors::ErrorCode;
use crate::events::{MessageDeleted, MessageEdited, ReactionChanged};
use crate::http::{Conversation, Message, User};
use crate::ids::{ConversationId, MessageId, UserId};

/// A frame from the client.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, TS, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientFrame {
    /// Must come first, within 10 s.
    Auth {
        token: String,
    },
    /// Post a message; idempotent per (sender, `client_msg_id`).
    Send {
        conversation_id: ConversationId,
        #[ts(type = "string")]
        client_msg_id: Uuid,
        body: String,
        /// A message of the same conversation this one answers.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[ts(optional)]
        reply_to: Option<MessageId>,
    },
    /// Change the body of one's own message.
    Edit {
        conversation_id: ConversationId,
        message_id: MessageId,
        #[ts(type = "string")]
        client_msg_id: Uuid,
        body: String,
    },
    /// Delete one's own message, or any message of a group one is an admin of.
    Delete {
        conversation_id: ConversationId,
        message_id: MessageId,
        #[ts(type = "string")]
        client_msg_id: Uuid,
    },
    /// Turn one's reaction with `emoji` on or off.
    React {
        conversation_id: ConversationId,
        message_id: MessageId,
        #[ts(type = "string")]
        client_msg_id: Uuid,
        emoji: String,
        on: bool,
    },
    Typing {
        conversation_id: ConversationId,
    },
    /// Read up to and including `message_id`.
    Read {
        conversation_id: ConversationId,
        message_id: MessageId,
    },
    /// Replay every conversation event after `since` in the caller's conversations,
    /// in id order, then `synced`: each message posted after `since` once, as it is
    /// now (edited, deleted, with its reactions), and each edit, deletion and
    /// reaction after `since` of a message posted before it. Without `since` nothing is replayed (send `"0"` for
    /// everything). In a cluster the replay may start a few seconds before `since`
    /// (messages from different nodes can land slightly out of id order); drop
    /// what you already have by id. The replay runs beside the connection's other
    /// frames, so live messages and acks interleave with it: resume a later sync
    /// from what a *completed* replay covered (`synced.until`, or anything that
    /// arrived before `synced`), never from a live message received mid-replay. One
    /// sync at a time per connection; another gets the error `sync_in_progress`.
    Sync {
        #[serde(default)]
        #[ts(optional)]
        since: Option<MessageId>,
    },
    Ping,
}

/// A frame from the server.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, TS, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerFrame {
    Ready {
        user: User,
        heartbeat_ms: u32,
    },
    /// The send, edit, deletion or reaction is durable.
    Ack {
        #[ts(type = "string")]
        client_msg_id: Uuid,
        /// The message posted or changed.
        message_id: MessageId,
        conversation_id: ConversationId,
        /// The event's id (a send's is the message's).
        event_id: MessageId,
    },
    Message {
        message: Message,
    },
    /// A message's body changed. Apply it when it is newer than the message's
    /// `edited_at`; hold it for a message not loaded yet.
    Edited(MessageEdited),
    /// A message was deleted: drop its body, show it as deleted.
    Deleted(MessageDeleted),
    /// A member turned a reaction on or off: add or remove `user_id` in the
    /// message's reaction with `emoji`.
    Reaction(ReactionChanged),
    Typing {
        conversation_id: ConversationId,
        user_id: UserId,
    },
    Read {
        conversation_id: ConversationId,
        user_id: UserId,
        message_id: MessageId,
    },
    Presence {
        user_id: UserId,
        online: bool,
    },
    /// The caller was added to, or a member change happened in, this conversation.
    Conversation {
        conversation: Conversation,
    },
    /// The caller was removed from this conversation.
    Removed {
        conversation_id: ConversationId,
    },
    /// The end of a sync replay: every message up to `until` has been sent.
    Synced {
        until: Option<MessageId>,
    },
    /// The frame was refused; the connection stays open.
    Error {
        code: ErrorCode,
        message: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[ts(optional, type = "string")]
        client_msg_id: Option<Uuid>,
        /// A temporary refusal (`unavailable`, `rate_limited`): how long to wait before
        /// sending the frame again. A client retries a refused `sync` after at least
        /// this long, backing off further on each refusal.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[ts(optional, type = "number")]
        retry_after_ms: Option<u64>,
    },
    Pong,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_frames_are_tagged_by_type() {
        let frame: ClientFrame = serde_json::from_str(
            r#"{"type":"send","conversation_id":"5","client_msg_id":"67e55044-10b1-426f-9247-bb680e5fe0c8","body":"hi"}"#,
        )
        .unwrap();
        assert!(matches!(
            frame,
            ClientFrame::Send {
                conversation_id: ConversationId(5),
                ..
            }
        ));
        assert_eq!(
            serde_json::from_str::<ClientFrame>(r#"{"type":"ping"}"#).unwrap(),
            ClientFrame::Ping
        );
        assert!(serde_json::from_str::<ClientFrame>(r#"{"type":"launch"}"#).is_err());
    }

    #[test]
    fn errors_omit_a_missing_client_msg_id() {
        let json = serde_json::to_string(&ServerFrame::Error {
            code: ErrorCode::MalformedJson,
            message: "x".into(),
            client_msg_id: None,
            retry_after_ms: None,
        })
        .unwrap();
        assert_eq!(
            json,
            r#"{"type":"error","code":"malformed_json","message":"x"}"#
        );
    }
}
