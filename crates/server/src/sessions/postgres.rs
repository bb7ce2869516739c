//! Refresh-token families on PostgreSQL, for a deployment without Redis. Where two
//! nodes race (a token presented twice at once) one atomic statement decides.

use async_trait::async_trait;
use chat_protocol::UserId;
use chrono::{DateTime, Utc};
use sqlx::{PgPool, Row};

use super::{SessionError, Sessions};
use crate::database::postgres::now_ms;

#[derive(Clone)]
pub struct PostgresSessions {
    pool: PgPool,
}

impl PostgresSessions {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }
}

#[async_trait]
impl Sessions for PostgresSessions {
    async fn start(
        &self,
        user: UserId,
        token_hash: &str,
        expires_at: DateTime<Utc>,
    ) -> Result<(), SessionError> {
        sqlx::query(
            "WITH family AS (INSERT INTO refresh_families (user_id) VALUES ($1) RETURNING id)
             INSERT INTO refresh_tokens (token_hash, family_id, expires_at)
             SELECT $2, id, $3 FROM family",
        )
        .bind(user.0)
        .bind(token_hash)
        .bind(expires_at.timestamp_millis())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn rotate(
        &self,
        old_hash: &str,
        new_hash: &str,
        expires_at: DateTime<Utc>,
    ) -> Result<UserId, SessionError> {
        let now = now_ms();
        let mut tx = self.pool.begin().await?;
        // Claim the token in one statement: of two concurrent rotations, the second
        // waits on the row lock, re-checks `rotated_at IS NULL` and claims nothing.
        let claimed = sqlx::query(
            "UPDATE refresh_tokens t SET rotated_at = $2
             FROM refresh_families f
             WHERE t.token_hash = $1 AND t.rotated_at IS NULL AND t.expires_at > $2
               AND f.id = t.family_id AND f.revoked_at IS NULL
             RETURNING t.family_id, f.user_id",
        )
        .bind(old_hash)
        .bind(now)
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(row) = claimed {
            let family: i64 = row.try_get("family_id")?;
            sqlx::query(
                "INSERT INTO refresh_tokens (token_hash, family_id, expires_at) VALUES ($1, $2, $3)",
            )
            .bind(new_hash)
            .bind(family)
            .bind(expires_at.timestamp_millis())
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            return Ok(UserId(row.try_get("user_id")?));
        }
        // Not claimable: find out why.
        let row = sqlx::query(
            "SELECT t.family_id, t.expires_at, t.rotated_at, f.revoked_at
             FROM refresh_tokens t JOIN refresh_families f ON f.id = t.family_id
             WHERE t.token_hash = $1",
        )
        .bind(old_hash)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            return Err(SessionError::Invalid);
        };
        if row.try_get::<Option<i64>, _>("revoked_at")?.is_some()
            || row.try_get::<i64, _>("expires_at")? <= now
            || row.try_get::<Option<i64>, _>("rotated_at")?.is_none()
        {
            return Err(SessionError::Invalid);
        }
        sqlx::query(
            "UPDATE refresh_families SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL",
        )
        .bind(row.try_get::<i64, _>("family_id")?)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Err(SessionError::Reused)
    }

    async fn revoke_family(&self, token_hash: &str) -> Result<(), SessionError> {
        sqlx::query(
            "UPDATE refresh_families SET revoked_at = $1
             WHERE revoked_at IS NULL
               AND id = (SELECT family_id FROM refresh_tokens WHERE token_hash = $2)",
        )
        .bind(now_ms())
        .bind(token_hash)
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}
