//! The durable stores behind small traits, so the send path and the HTTP handlers
//! never name an adapter:
//!
//! - [`Directory`]: users, conversations, members and read markers.
//! - [`MessageStore`]: the queryable history the persister materializes from the log.
//! - [`Sessions`]: refresh tokens and their families (rotation, reuse detection).
//!
//! The embedded mode implements all three on one SQLite file ([`sqlite`]); the
//! distributed mode on PostgreSQL ([`postgres`]), shared by every node.

pub mod postgres;
pub mod sqlite;

use std::collections::HashMap;

use async_trait::async_trait;
use chat_protocol::http::{ConversationKind, Message, User};
use chat_protocol::{ConversationId, MessageId, UserId};
use chrono::{DateTime, Utc};

pub type StoreResult<T> = Result<T, sqlx::Error>;

/// A user row with its password hash, for login.
#[derive(Clone, Debug)]
pub struct Credentials {
    pub user: User,
    pub password_hash: String,
}

#[derive(Clone, Debug)]
pub struct ConversationRecord {
    pub id: ConversationId,
    pub kind: ConversationKind,
    pub title: Option<String>,
    pub created_at: DateTime<Utc>,
}

#[derive(Clone, Debug)]
pub struct MemberRecord {
    pub user: User,
    pub last_read_id: Option<MessageId>,
}

#[derive(Debug, thiserror::Error)]
pub enum CreateUserError {
    #[error("username taken")]
    Taken,
    #[error(transparent)]
    Store(#[from] sqlx::Error),
}

#[async_trait]
pub trait Directory: Send + Sync {
    async fn create_user(
        &self,
        username: &str,
        display_name: &str,
        password_hash: &str,
    ) -> Result<User, CreateUserError>;
    async fn credentials(&self, username: &str) -> StoreResult<Option<Credentials>>;
    async fn user(&self, id: UserId) -> StoreResult<Option<User>>;
    /// The users among `ids` that exist.
    async fn users(&self, ids: &[UserId]) -> StoreResult<Vec<User>>;
    /// Users whose username or display name starts with `prefix`.
    async fn search_users(&self, prefix: &str, limit: u32) -> StoreResult<Vec<User>>;

    /// The direct conversation of `a` and `b`, created if missing. The flag says
    /// whether this call created it.
    async fn direct_conversation(
        &self,
        a: UserId,
        b: UserId,
    ) -> StoreResult<(ConversationId, bool)>;
    async fn create_group(&self, title: &str, members: &[UserId]) -> StoreResult<ConversationId>;
    async fn conversation(&self, id: ConversationId) -> StoreResult<Option<ConversationRecord>>;
    async fn members(&self, id: ConversationId) -> StoreResult<Vec<MemberRecord>>;
    async fn member_ids(&self, id: ConversationId) -> StoreResult<Vec<UserId>>;
    async fn is_member(&self, id: ConversationId, user: UserId) -> StoreResult<bool>;
    /// The conversations `user` belongs to.
    async fn conversations_of(&self, user: UserId) -> StoreResult<Vec<ConversationId>>;
    /// Adds members; returns the ones that were not members before.
    async fn add_members(&self, id: ConversationId, users: &[UserId]) -> StoreResult<Vec<UserId>>;
    /// Removes a member; false if they were not one.
    async fn remove_member(&self, id: ConversationId, user: UserId) -> StoreResult<bool>;
    /// Moves the read marker forward (never back); true if it moved.
    async fn mark_read(
        &self,
        id: ConversationId,
        user: UserId,
        upto: MessageId,
    ) -> StoreResult<bool>;
    /// Everyone who shares a conversation with `user`, `user` excluded.
    async fn contacts(&self, user: UserId) -> StoreResult<Vec<UserId>>;
    async fn ping(&self) -> StoreResult<()>;
}

/// The last message of a conversation and the caller's unread count there.
#[derive(Clone, Debug, Default)]
pub struct ConversationActivity {
    pub last_message: Option<Message>,
    pub unread_count: u32,
}

#[async_trait]
pub trait MessageStore: Send + Sync {
    /// Stores messages; a message whose id is already stored is skipped, so a batch
    /// replayed after a crash changes nothing.
    async fn store(&self, messages: &[Message]) -> StoreResult<()>;
    /// Newest first: at most `limit` messages with `after < id < before`.
    async fn history(
        &self,
        conversation: ConversationId,
        before: Option<MessageId>,
        after: Option<MessageId>,
        limit: u32,
    ) -> StoreResult<Vec<Message>>;
    /// Oldest first: at most `limit` messages of these conversations with id > `since`.
    async fn since(
        &self,
        conversations: &[ConversationId],
        since: MessageId,
        limit: u32,
    ) -> StoreResult<Vec<Message>>;
    async fn message(&self, id: MessageId) -> StoreResult<Option<Message>>;
    /// For each (conversation, reader's read marker): the last message and how many
    /// messages from others are newer than the marker.
    async fn activity(
        &self,
        reader: UserId,
        conversations: &[(ConversationId, Option<MessageId>)],
    ) -> StoreResult<HashMap<ConversationId, ConversationActivity>>;
}

/// Why a refresh token was refused.
#[derive(Debug, thiserror::Error)]
pub enum RotateError {
    #[error("unknown, expired or revoked refresh token")]
    Invalid,
    /// The token was already rotated: someone replayed it. Its family is now revoked.
    #[error("refresh token reused; its family is revoked")]
    Reused,
    #[error(transparent)]
    Store(#[from] sqlx::Error),
}

#[async_trait]
pub trait Sessions: Send + Sync {
    /// Starts a new family (a login) with its first token.
    async fn start(
        &self,
        user: UserId,
        token_hash: &str,
        expires_at: DateTime<Utc>,
    ) -> StoreResult<()>;
    /// Replaces `old` by `new` in the same family; returns the family's user.
    async fn rotate(
        &self,
        old_hash: &str,
        new_hash: &str,
        expires_at: DateTime<Utc>,
    ) -> Result<UserId, RotateError>;
    /// Revokes the family of this token (logout). Unknown tokens are ignored.
    async fn revoke_family(&self, token_hash: &str) -> StoreResult<()>;
}
