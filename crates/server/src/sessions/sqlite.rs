//! Refresh-token families in the embedded mode's SQLite file.

use async_trait::async_trait;
use chat_protocol::UserId;
use chrono::{DateTime, Utc};
use sqlx::{Row, SqlitePool};
use uuid::Uuid;

use super::{SessionError, Sessions};
use crate::database::sqlite::{SqlitePools, now_ms};

#[derive(Clone)]
pub struct SqliteSessions {
    write: SqlitePool,
}

impl SqliteSessions {
    pub fn new(pools: SqlitePools) -> Self {
        // Rotation reads and writes in one transaction, so everything goes through
        // the writer connection.
        Self { write: pools.write }
    }
}

#[async_trait]
impl Sessions for SqliteSessions {
    async fn start(
        &self,
        user: UserId,
        token_hash: &str,
        expires_at: DateTime<Utc>,
    ) -> Result<(), SessionError> {
        let family = Uuid::new_v4().to_string();
        let mut tx = self.write.begin().await?;
        sqlx::query("INSERT INTO refresh_families (id, user_id) VALUES (?, ?)")
            .bind(&family)
            .bind(user.0)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO refresh_tokens (token_hash, family_id, expires_at) VALUES (?, ?, ?)",
        )
        .bind(token_hash)
        .bind(&family)
        .bind(expires_at.timestamp_millis())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn rotate(
        &self,
        old_hash: &str,
        new_hash: &str,
        expires_at: DateTime<Utc>,
    ) -> Result<UserId, SessionError> {
        let mut tx = self.write.begin().await?;
        let row = sqlx::query(
            "SELECT t.family_id, t.expires_at, t.rotated_at, f.user_id, f.revoked_at
             FROM refresh_tokens t JOIN refresh_families f ON f.id = t.family_id
             WHERE t.token_hash = ?",
        )
        .bind(old_hash)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            return Err(SessionError::Invalid);
        };
        let family: String = row.try_get("family_id")?;
        let now = now_ms();
        if row.try_get::<Option<i64>, _>("revoked_at")?.is_some()
            || row.try_get::<i64, _>("expires_at")? <= now
        {
            return Err(SessionError::Invalid);
        }
        if row.try_get::<Option<i64>, _>("rotated_at")?.is_some() {
            sqlx::query("UPDATE refresh_families SET revoked_at = ? WHERE id = ?")
                .bind(now)
                .bind(&family)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            return Err(SessionError::Reused);
        }
        // The guard on rotated_at makes two concurrent rotations of one token end
        // with one winner; the loser sees reuse next time.
        let done = sqlx::query(
            "UPDATE refresh_tokens SET rotated_at = ? WHERE token_hash = ? AND rotated_at IS NULL",
        )
        .bind(now)
        .bind(old_hash)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() != 1 {
            return Err(SessionError::Invalid);
        }
        sqlx::query(
            "INSERT INTO refresh_tokens (token_hash, family_id, expires_at) VALUES (?, ?, ?)",
        )
        .bind(new_hash)
        .bind(&family)
        .bind(expires_at.timestamp_millis())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(UserId(row.try_get("user_id")?))
    }

    async fn revoke_family(&self, token_hash: &str) -> Result<(), SessionError> {
        sqlx::query(
            "UPDATE refresh_families SET revoked_at = ?
             WHERE revoked_at IS NULL AND id = (SELECT family_id FROM refresh_tokens WHERE token_hash = ?)",
        )
        .bind(now_ms())
        .bind(token_hash)
        .execute(&self.write)
        .await?;
        Ok(())
    }
}
