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
use chat_protocol::{ConversationId, UserId};

use crate::hub::Hub;
use crate::membership::Members;

#[async_trait]
pub trait Events: Send + Sync {
    /// Sends `frame` to every connection of `users`, on every node.
    async fn publish(&self, users: &[UserId], frame: Utf8Bytes);
    /// Makes every node forget its cached members of `conversation`.
    async fn members_changed(&self, conversation: ConversationId);
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
