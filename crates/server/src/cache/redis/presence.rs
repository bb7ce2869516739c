//! Presence in Redis: per user, a hash of node id → open connections
//! (`presence:{user}`). A user is online while some node whose lease is alive counts
//! a connection, so a crashed node's users go offline once its lease lapses. Each
//! node also keeps the set of its users (`nodeusers:{id}`, and `nodes`, the ids with
//! such a set), so survivors can take a dead node's counts away ([`super::lease`]).

use std::sync::LazyLock;

use async_trait::async_trait;
use chat_protocol::UserId;
use redis::Script;

use super::{RedisCache, down};
use crate::cache::{CacheError, Presence};

/// Whether a presence hash (`key`) has a connection on a node whose lease is
/// alive. Prepended to the scripts that need it.
pub(super) const ONLINE_FN: &str = r#"
    local function online(key, prefix)
        local counts = redis.call('HGETALL', key)
        for i = 1, #counts, 2 do
            if tonumber(counts[i + 1]) > 0 and redis.call('EXISTS', prefix .. 'node:' .. counts[i]) == 1 then
                return true
            end
        end
        return false
    end
"#;

/// KEYS[1] the user's presence hash; ARGV prefix, node id, user id. 1 when the user
/// just came online.
static CONNECTED: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        "{ONLINE_FN}
        local before = online(KEYS[1], ARGV[1])
        redis.call('HINCRBY', KEYS[1], ARGV[2], 1)
        redis.call('SADD', ARGV[1] .. 'nodeusers:' .. ARGV[2], ARGV[3])
        redis.call('SADD', ARGV[1] .. 'nodes', ARGV[2])
        if before then return 0 else return 1 end"
    ))
});

/// Like [`CONNECTED`]; 1 when the user just went offline.
static DISCONNECTED: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        "{ONLINE_FN}
        local left = redis.call('HINCRBY', KEYS[1], ARGV[2], -1)
        if left <= 0 then
            redis.call('HDEL', KEYS[1], ARGV[2])
            redis.call('SREM', ARGV[1] .. 'nodeusers:' .. ARGV[2], ARGV[3])
        end
        if online(KEYS[1], ARGV[1]) then return 0 else return 1 end"
    ))
});

/// KEYS the presence hashes; ARGV[1] the prefix. The 1-based indexes of the online.
static ONLINE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        "{ONLINE_FN}
        local out = {{}}
        for i, key in ipairs(KEYS) do
            if online(key, ARGV[1]) then out[#out + 1] = i end
        end
        return out"
    ))
});

#[async_trait]
impl Presence for RedisCache {
    async fn connected(&self, user: UserId) -> Result<bool, CacheError> {
        self.count_connection(user, &CONNECTED).await
    }

    async fn disconnected(&self, user: UserId) -> Result<bool, CacheError> {
        self.count_connection(user, &DISCONNECTED).await
    }

    async fn online(&self, users: &[UserId]) -> Result<Vec<UserId>, CacheError> {
        if users.is_empty() {
            return Ok(Vec::new());
        }
        let mut invocation = ONLINE.prepare_invoke();
        for user in users {
            invocation.key(self.key(&format!("presence:{user}")));
        }
        invocation.arg(&self.prefix);
        let mut conn = self.conn.clone();
        let indexes: Vec<usize> = invocation.invoke_async(&mut conn).await.map_err(down)?;
        Ok(indexes
            .into_iter()
            .filter_map(|i| users.get(i.wrapping_sub(1)).copied())
            .collect())
    }
}

impl RedisCache {
    /// Runs a connection-counting script on the user's presence hash; true when it
    /// returns 1 (the user's online state changed).
    async fn count_connection(&self, user: UserId, script: &Script) -> Result<bool, CacheError> {
        let mut conn = self.conn.clone();
        let changed: i32 = script
            .key(self.key(&format!("presence:{user}")))
            .arg(&self.prefix)
            .arg(self.node_id)
            .arg(user.0)
            .invoke_async(&mut conn)
            .await
            .map_err(down)?;
        Ok(changed == 1)
    }
}
