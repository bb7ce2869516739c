//! Fast, ephemeral state behind small traits: who is online ([`Presence`]), rate
//! limits ([`RateLimits`]) and send idempotency keys ([`SendKeys`]). The embedded
//! mode keeps them in process memory ([`memory`]); the distributed mode keeps them in
//! Redis so every node sees the same.

pub mod memory;
pub mod redis;

use std::time::Duration;

use async_trait::async_trait;
use chat_protocol::{ConversationId, MessageId, UserId};
use uuid::Uuid;

#[derive(Debug, thiserror::Error)]
#[error("the cache is unavailable: {0}")]
pub struct CacheError(pub String);

#[async_trait]
pub trait Presence: Send + Sync {
    /// Counts a new connection of `user`; true if the user just came online.
    async fn connected(&self, user: UserId) -> Result<bool, CacheError>;
    /// Counts a closed connection; true if the user just went offline.
    async fn disconnected(&self, user: UserId) -> Result<bool, CacheError>;
    /// Which of `users` are online.
    async fn online(&self, users: &[UserId]) -> Result<Vec<UserId>, CacheError>;
}

/// A token bucket per key: `rate_per_sec` tokens refill up to `burst`.
#[derive(Clone, Copy, Debug)]
pub struct Limit {
    pub rate_per_sec: f64,
    pub burst: f64,
}

impl Limit {
    /// `count` events per `window`, all of which may come at once.
    pub fn per_window(count: u32, window: Duration) -> Self {
        Self {
            rate_per_sec: f64::from(count) / window.as_secs_f64(),
            burst: f64::from(count),
        }
    }
}

#[async_trait]
pub trait RateLimits: Send + Sync {
    /// Takes a token for `key`; when none is left, says how long until one is.
    async fn acquire(&self, key: &str, limit: Limit) -> Result<Result<(), Duration>, CacheError>;
    /// Gives back a token taken by [`acquire`](Self::acquire) for something that did
    /// not count after all (a reserved login attempt that succeeded); never beyond the
    /// burst.
    async fn refund(&self, key: &str, limit: Limit) -> Result<(), CacheError>;
}

/// What an earlier send (or edit, deletion, reaction) with the same (sender,
/// client_msg_id) became.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SentMessage {
    /// The message posted or changed.
    pub message_id: MessageId,
    pub conversation_id: ConversationId,
    /// The event's id: a send's is the message's.
    pub event_id: MessageId,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Claim {
    /// First time: go ahead, then [`SendKeys::complete`] or [`SendKeys::release`].
    New,
    /// Already acknowledged: answer with the same message.
    Done(SentMessage),
    /// Another send with this key is being appended right now.
    InFlight,
}

#[async_trait]
pub trait SendKeys: Send + Sync {
    async fn claim(&self, sender: UserId, client_msg_id: Uuid) -> Result<Claim, CacheError>;
    async fn complete(
        &self,
        sender: UserId,
        client_msg_id: Uuid,
        sent: SentMessage,
    ) -> Result<(), CacheError>;
    /// Forgets a claim whose append failed, so a retry can go through.
    async fn release(&self, sender: UserId, client_msg_id: Uuid) -> Result<(), CacheError>;
}

/// How long a send key is remembered.
pub const SEND_KEY_TTL: Duration = Duration::from_secs(24 * 3600);
