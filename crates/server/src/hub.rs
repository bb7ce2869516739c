//! The local connections of this node, by user, and the encoding of the frames
//! delivered to them. Fan-out and ephemeral events hand a frame (serialized once,
//! shared as cheap-to-clone bytes) to the hub, which queues it on every connection of
//! the addressed users without waiting: a connection whose bounded queue is full is a
//! slow reader and is told to close, so one slow client never holds up or grows
//! memory for the others.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use axum::extract::ws::Utf8Bytes;
use chat_protocol::events::{Event, MessageDeleted, MessageEdited, MessagePosted, ReactionChanged};
use chat_protocol::http::Message;
use chat_protocol::ws::ServerFrame;
use chat_protocol::{ConversationId, MessageId, UserId};
use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio::sync::{Notify, mpsc};
use uuid::Uuid;

pub type ConnectionId = u64;

/// A frame queued for one connection.
pub type Outbound = Utf8Bytes;

/// Serializes a frame once, for any number of recipients.
pub fn encode(frame: &ServerFrame) -> Outbound {
    // Serializing our own types to JSON cannot fail (no maps with non-string keys).
    Utf8Bytes::from(serde_json::to_string(frame).unwrap_or_default())
}

/// The frame that tells members about an event of the log, serialized from the
/// borrowed event: the same JSON as `encode(&ServerFrame::…)` of it, without copying
/// the body (and the rest) of every message first.
pub fn encode_event(event: &Event) -> Outbound {
    let json = match event {
        Event::Message(posted) => serde_json::to_string(&PostedFrame {
            message: PostedMessage::of(posted),
        }),
        Event::Edit(event) => serde_json::to_string(&EditedFrame { event }),
        Event::Delete(event) => serde_json::to_string(&DeletedFrame { event }),
        Event::Reaction(event) => serde_json::to_string(&ReactionFrame { event }),
    };
    Utf8Bytes::from(json.unwrap_or_default())
}

/// The `message` frame of a message as history holds it (a `sync` replay), without
/// copying it first.
pub fn encode_message(message: &Message) -> Outbound {
    #[derive(Serialize)]
    #[serde(tag = "type", rename = "message")]
    struct MessageFrame<'a> {
        message: &'a Message,
    }
    Utf8Bytes::from(serde_json::to_string(&MessageFrame { message }).unwrap_or_default())
}

#[derive(Serialize)]
#[serde(tag = "type", rename = "message")]
struct PostedFrame<'a> {
    message: PostedMessage<'a>,
}

/// A new message as `chat_protocol::http::Message` serializes it (same fields, same
/// order): never edited, not deleted, no reactions yet.
#[derive(Serialize)]
struct PostedMessage<'a> {
    id: MessageId,
    conversation_id: ConversationId,
    sender_id: UserId,
    body: &'a str,
    client_msg_id: Uuid,
    created_at: DateTime<Utc>,
    reply_to: Option<MessageId>,
    mentions: &'a [UserId],
    edited_at: Option<DateTime<Utc>>,
    deleted: bool,
    reactions: [(); 0],
}

impl<'a> PostedMessage<'a> {
    fn of(posted: &'a MessagePosted) -> Self {
        Self {
            id: posted.id,
            conversation_id: posted.conversation_id,
            sender_id: posted.sender_id,
            body: &posted.body,
            client_msg_id: posted.client_msg_id,
            created_at: posted.created_at,
            reply_to: posted.reply_to,
            mentions: &posted.mentions,
            edited_at: None,
            deleted: false,
            reactions: [],
        }
    }
}

#[derive(Serialize)]
#[serde(tag = "type", rename = "edited")]
struct EditedFrame<'a> {
    #[serde(flatten)]
    event: &'a MessageEdited,
}

#[derive(Serialize)]
#[serde(tag = "type", rename = "deleted")]
struct DeletedFrame<'a> {
    #[serde(flatten)]
    event: &'a MessageDeleted,
}

#[derive(Serialize)]
#[serde(tag = "type", rename = "reaction")]
struct ReactionFrame<'a> {
    #[serde(flatten)]
    event: &'a ReactionChanged,
}

struct Handle {
    id: ConnectionId,
    queue: mpsc::Sender<Outbound>,
    /// Woken when the connection must close because it cannot keep up.
    kick: Arc<Notify>,
}

#[derive(Default)]
pub struct Hub {
    users: RwLock<HashMap<UserId, Vec<Handle>>>,
    next_id: AtomicU64,
}

impl Hub {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn register(
        &self,
        user: UserId,
        queue: mpsc::Sender<Outbound>,
        kick: Arc<Notify>,
    ) -> ConnectionId {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let mut users = self.users.write().unwrap_or_else(|p| p.into_inner());
        users
            .entry(user)
            .or_default()
            .push(Handle { id, queue, kick });
        id
    }

    /// Every user with a connection here, and how many connections each has.
    pub fn local_users(&self) -> Vec<(UserId, usize)> {
        let users = self.users.read().unwrap_or_else(|p| p.into_inner());
        users.iter().map(|(user, h)| (*user, h.len())).collect()
    }

    pub fn unregister(&self, user: UserId, id: ConnectionId) {
        let mut users = self.users.write().unwrap_or_else(|p| p.into_inner());
        if let Some(handles) = users.get_mut(&user) {
            handles.retain(|h| h.id != id);
            if handles.is_empty() {
                users.remove(&user);
            }
        }
    }

    /// Queues `frame` on every local connection of `users` (but `except`); returns
    /// how many connections got it.
    pub fn deliver(
        &self,
        users: &[UserId],
        frame: &Outbound,
        except: Option<ConnectionId>,
    ) -> usize {
        let map = self.users.read().unwrap_or_else(|p| p.into_inner());
        let mut delivered = 0;
        for user in users {
            for handle in map.get(user).into_iter().flatten() {
                if Some(handle.id) == except {
                    continue;
                }
                match handle.queue.try_send(frame.clone()) {
                    Ok(()) => delivered += 1,
                    Err(mpsc::error::TrySendError::Full(_)) => handle.kick.notify_one(),
                    Err(mpsc::error::TrySendError::Closed(_)) => {}
                }
            }
        }
        delivered
    }

    pub fn connection_count(&self) -> usize {
        let map = self.users.read().unwrap_or_else(|p| p.into_inner());
        map.values().map(Vec::len).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_borrowed_frames_are_the_protocol_frames_byte_for_byte() {
        let posted = MessagePosted {
            id: MessageId(7_000_000_000_001),
            conversation_id: ConversationId(42),
            sender_id: UserId(9),
            body: "héllo \"world\" \n<b> @ann".into(),
            client_msg_id: Uuid::new_v4(),
            reply_to: Some(MessageId(7_000_000_000_000)),
            mentions: vec![UserId(3)],
            created_at: Utc::now(),
        };
        let message = Message::posted(&posted);
        let frame = encode_event(&Event::Message(posted));
        let expected = encode(&ServerFrame::Message {
            message: message.clone(),
        });
        assert_eq!(frame.as_str(), expected.as_str());
        assert_eq!(encode_message(&message).as_str(), expected.as_str());
        let parsed: ServerFrame = serde_json::from_str(frame.as_str()).unwrap();
        assert_eq!(parsed, ServerFrame::Message { message });

        let edit = MessageEdited {
            id: MessageId(7_000_000_000_002),
            conversation_id: ConversationId(42),
            message_id: MessageId(7_000_000_000_001),
            user_id: UserId(9),
            client_msg_id: Uuid::new_v4(),
            body: "fixed".into(),
            mentions: vec![],
            at: Utc::now(),
        };
        let reaction = ReactionChanged {
            id: MessageId(7_000_000_000_003),
            conversation_id: ConversationId(42),
            message_id: MessageId(7_000_000_000_001),
            user_id: UserId(3),
            client_msg_id: Uuid::new_v4(),
            emoji: "👍🏽".into(),
            on: true,
            at: Utc::now(),
        };
        let delete = MessageDeleted {
            id: MessageId(7_000_000_000_004),
            conversation_id: ConversationId(42),
            message_id: MessageId(7_000_000_000_001),
            user_id: UserId(9),
            client_msg_id: Uuid::new_v4(),
            at: Utc::now(),
        };
        for (event, frame) in [
            (Event::Edit(edit.clone()), ServerFrame::Edited(edit)),
            (
                Event::Reaction(reaction.clone()),
                ServerFrame::Reaction(reaction),
            ),
            (Event::Delete(delete.clone()), ServerFrame::Deleted(delete)),
        ] {
            assert_eq!(encode_event(&event).as_str(), encode(&frame).as_str());
        }
    }

    #[tokio::test]
    async fn a_full_queue_kicks_its_connection_and_spares_the_others() {
        let hub = Hub::new();
        let (slow_tx, _slow_rx) = mpsc::channel(1);
        let (fast_tx, mut fast_rx) = mpsc::channel(8);
        let slow_kick = Arc::new(Notify::new());
        hub.register(UserId(1), slow_tx, slow_kick.clone());
        hub.register(UserId(2), fast_tx, Arc::new(Notify::new()));
        let frame = Utf8Bytes::from_static("{}");
        assert_eq!(hub.deliver(&[UserId(1), UserId(2)], &frame, None), 2);
        assert_eq!(hub.deliver(&[UserId(1), UserId(2)], &frame, None), 1);
        tokio::time::timeout(std::time::Duration::from_secs(1), slow_kick.notified())
            .await
            .unwrap();
        assert!(fast_rx.recv().await.is_some() && fast_rx.recv().await.is_some());
    }
}
