//! Refresh-token families in Redis, shared by every node: `refresh:{hash}` per
//! token and `refresh_family:{id}` per family, expiring with them; rotation is one
//! atomic script. They survive a Redis restart only if Redis persists (AOF).

use std::sync::LazyLock;

use async_trait::async_trait;
use chat_protocol::UserId;
use chrono::{DateTime, Utc};
use redis::aio::ConnectionManager;
use redis::{AsyncCommands, Script};
use uuid::Uuid;

use super::{SessionError, Sessions};
use crate::store::StoreError;

#[derive(Clone)]
pub struct RedisSessions {
    conn: ConnectionManager,
    prefix: String,
}

impl RedisSessions {
    pub fn new(conn: ConnectionManager, prefix: String) -> Self {
        Self { conn, prefix }
    }

    fn key(&self, rest: &str) -> String {
        format!("{}{rest}", self.prefix)
    }
}

/// A Redis failure makes the sessions unavailable (503), like a database outage.
fn store_down(error: redis::RedisError) -> SessionError {
    SessionError::Store(StoreError::Unavailable(format!("redis: {error}")))
}

/// Rotates `KEYS[1]` (the presented token) into `KEYS[2]`. ARGV: prefix, new expiry
/// (unix ms). Returns the user id, -1 for an invalid token, -2 for reuse.
static ROTATE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
    local family = redis.call('HGET', KEYS[1], 'family')
    if not family then return -1 end
    local family_key = ARGV[1] .. 'refresh_family:' .. family
    if redis.call('HGET', family_key, 'revoked') ~= '0' then return -1 end
    if redis.call('HGET', KEYS[1], 'rotated') == '1' then
        redis.call('HSET', family_key, 'revoked', '1')
        return -2
    end
    local user = redis.call('HGET', KEYS[1], 'user')
    redis.call('HSET', KEYS[1], 'rotated', '1')
    redis.call('HSET', KEYS[2], 'family', family, 'user', user, 'rotated', '0')
    redis.call('PEXPIREAT', KEYS[2], ARGV[2])
    redis.call('PEXPIREAT', family_key, ARGV[2])
    return tonumber(user)
"#,
    )
});

#[async_trait]
impl Sessions for RedisSessions {
    async fn start(
        &self,
        user: UserId,
        token_hash: &str,
        expires_at: DateTime<Utc>,
    ) -> Result<(), SessionError> {
        let family = Uuid::new_v4().to_string();
        let family_key = self.key(&format!("refresh_family:{family}"));
        let token_key = self.key(&format!("refresh:{token_hash}"));
        let expires_ms = expires_at.timestamp_millis();
        let mut conn = self.conn.clone();
        redis::pipe()
            .atomic()
            .hset_multiple(
                &family_key,
                &[("user", user.to_string()), ("revoked", "0".to_owned())],
            )
            .pexpire_at(&family_key, expires_ms)
            .hset_multiple(
                &token_key,
                &[
                    ("family", family),
                    ("user", user.to_string()),
                    ("rotated", "0".to_owned()),
                ],
            )
            .pexpire_at(&token_key, expires_ms)
            .query_async::<()>(&mut conn)
            .await
            .map_err(store_down)
    }

    async fn rotate(
        &self,
        old_hash: &str,
        new_hash: &str,
        expires_at: DateTime<Utc>,
    ) -> Result<UserId, SessionError> {
        let mut conn = self.conn.clone();
        let outcome: i64 = ROTATE
            .key(self.key(&format!("refresh:{old_hash}")))
            .key(self.key(&format!("refresh:{new_hash}")))
            .arg(&self.prefix)
            .arg(expires_at.timestamp_millis())
            .invoke_async(&mut conn)
            .await
            .map_err(store_down)?;
        match outcome {
            -2 => Err(SessionError::Reused),
            user if user > 0 => Ok(UserId(user)),
            _ => Err(SessionError::Invalid),
        }
    }

    async fn revoke_family(&self, token_hash: &str) -> Result<(), SessionError> {
        let mut conn = self.conn.clone();
        let family: Option<String> = conn
            .hget(self.key(&format!("refresh:{token_hash}")), "family")
            .await
            .map_err(store_down)?;
        if let Some(family) = family {
            let _: () = conn
                .hset(
                    self.key(&format!("refresh_family:{family}")),
                    "revoked",
                    "1",
                )
                .await
                .map_err(store_down)?;
        }
        Ok(())
    }
}
