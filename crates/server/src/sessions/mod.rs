//! Refresh-token families (DESIGN.md §7): every login starts a family, every refresh
//! rotates its token, and a rotated token presented again revokes the whole family.
//! One adapter per file: [`sqlite`] (embedded), [`postgres`] (PostgreSQL without
//! Redis) and [`redis`] (distributed), held to the same contract by
//! `tests/contracts`.

pub mod postgres;
pub mod redis;
mod sql;
pub mod sqlite;

use async_trait::async_trait;
use chat_protocol::UserId;
use chrono::{DateTime, Utc};

use crate::store::StoreError;

/// Why a session operation failed.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("unknown, expired or revoked refresh token")]
    Invalid,
    /// The token was already rotated: someone replayed it. Its family is now revoked.
    #[error("refresh token reused; its family is revoked")]
    Reused,
    #[error(transparent)]
    Store(#[from] StoreError),
}

#[async_trait]
pub trait Sessions: Send + Sync {
    /// Starts a new family (a login) with its first token.
    async fn start(
        &self,
        user: UserId,
        token_hash: &str,
        expires_at: DateTime<Utc>,
    ) -> Result<(), SessionError>;
    /// Replaces `old` by `new` in the same family; returns the family's user.
    async fn rotate(
        &self,
        old_hash: &str,
        new_hash: &str,
        expires_at: DateTime<Utc>,
    ) -> Result<UserId, SessionError>;
    /// Revokes the family of this token (logout). Unknown tokens are ignored.
    async fn revoke_family(&self, token_hash: &str) -> Result<(), SessionError>;
}
