//! Ephemeral events (typing, read receipts, presence, membership changes) go straight
//! to the addressed users' connections, not through the message log (DESIGN.md §2).
//! [`Events`] is the seam: in embedded mode it is this node's hub; in a cluster it
//! is a Redis pub/sub channel that every node's hub listens to ([`redis`]).
//! Membership changes travel the same way, so every node drops its cached member
//! list of a changed conversation.

pub mod redis;

use std::sync::Arc;

use async_trait::async_trait;
use axum::extract::ws::Utf8Bytes;
use chat_protocol::http::Message;
use chat_protocol::ws::ServerFrame;
use chat_protocol::{ConversationId, UserId};
use serde::Serialize;

use crate::gateway::hub::Hub;
use crate::membership::Members;

#[async_trait]
pub trait Events: Send + Sync {
    /// Sends `frame` to every connection of `users`, on every node.
    async fn publish(&self, users: &[UserId], frame: Utf8Bytes);
    /// Makes every node forget its cached members of `conversation`.
    async fn members_changed(&self, conversation: ConversationId);
}

/// Serializes a frame once, for any number of recipients.
pub fn encode(frame: &ServerFrame) -> Utf8Bytes {
    // Serializing our own types to JSON cannot fail (no maps with non-string keys).
    Utf8Bytes::from(serde_json::to_string(frame).unwrap_or_default())
}

/// The `message` frame of `ServerFrame::Message`, serialized from a borrowed message:
/// the same JSON as `encode(&ServerFrame::Message { message: message.clone() })`
/// without copying the body (and the rest) of every message first.
#[derive(Serialize)]
#[serde(tag = "type", rename = "message")]
struct MessageFrame<'a> {
    message: &'a Message,
}

pub fn encode_message(message: &Message) -> Utf8Bytes {
    // Serializing our own types to JSON cannot fail (no maps with non-string keys).
    Utf8Bytes::from(serde_json::to_string(&MessageFrame { message }).unwrap_or_default())
}

/// Embedded mode: this node is the whole cluster.
pub struct LocalEvents {
    hub: Arc<Hub>,
    members: Arc<Members>,
}

impl LocalEvents {
    pub fn new(hub: Arc<Hub>, members: Arc<Members>) -> Self {
        Self { hub, members }
    }
}

#[async_trait]
impl Events for LocalEvents {
    async fn publish(&self, users: &[UserId], frame: Utf8Bytes) {
        self.hub.deliver(users, &frame, None);
    }

    async fn members_changed(&self, conversation: ConversationId) {
        self.members.invalidate(conversation);
    }
}

#[cfg(test)]
mod tests {
    use chat_protocol::{ConversationId, MessageId, UserId};

    use super::*;

    #[test]
    fn the_borrowed_frame_is_the_protocol_frame_byte_for_byte() {
        let message = Message {
            id: MessageId(7_000_000_000_001),
            conversation_id: ConversationId(42),
            sender_id: UserId(9),
            body: "héllo \"world\" \n<b>".into(),
            client_msg_id: uuid::Uuid::new_v4(),
            created_at: chrono::Utc::now(),
        };
        let frame = encode_message(&message);
        let expected = encode(&ServerFrame::Message {
            message: message.clone(),
        });
        assert_eq!(frame.as_str(), expected.as_str());
        let parsed: ServerFrame = serde_json::from_str(frame.as_str()).unwrap();
        assert_eq!(parsed, ServerFrame::Message { message });
    }
}
