//! Token-bucket rate limits in Redis: one hash per key (`rate:{key}`) with the
//! tokens left and the time of the last refill, updated by one atomic script.

use std::sync::LazyLock;
use std::time::Duration;

use async_trait::async_trait;
use redis::Script;

use super::{RedisCache, down};
use crate::cache::{CacheError, Limit, RateLimits};

/// KEYS[1] holds tokens and the last refill (ms). ARGV: rate per ms, burst, and
/// `take` (a token, if there is one) or `give` (one back, up to the burst). Returns 0
/// when allowed, else ms to wait.
static BUCKET: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
    local now = redis.call('TIME')
    local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
    local rate, burst, mode = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3]
    local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
    local tokens, at = tonumber(state[1]), tonumber(state[2])
    if not tokens then tokens, at = burst, now_ms end
    tokens = math.min(burst, tokens + (now_ms - at) * rate)
    local wait = 0
    if mode == 'give' then
        tokens = math.min(burst, tokens + 1)
    elseif tokens >= 1 then
        tokens = tokens - 1
    else
        wait = math.ceil((1 - tokens) / rate)
    end
    redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', now_ms)
    redis.call('PEXPIRE', KEYS[1], math.ceil(burst / rate) + 1000)
    return wait
"#,
    )
});

impl RedisCache {
    async fn bucket(
        &self,
        key: &str,
        limit: Limit,
        mode: &str,
    ) -> Result<Option<Duration>, CacheError> {
        let mut conn = self.conn.clone();
        let wait_ms: u64 = BUCKET
            .key(self.key(&format!("rate:{key}")))
            .arg(limit.rate_per_sec / 1000.0)
            .arg(limit.burst)
            .arg(mode)
            .invoke_async(&mut conn)
            .await
            .map_err(down)?;
        Ok((wait_ms > 0).then(|| Duration::from_millis(wait_ms)))
    }
}

#[async_trait]
impl RateLimits for RedisCache {
    async fn acquire(&self, key: &str, limit: Limit) -> Result<Result<(), Duration>, CacheError> {
        Ok(match self.bucket(key, limit, "take").await? {
            None => Ok(()),
            Some(wait) => Err(wait),
        })
    }

    async fn refund(&self, key: &str, limit: Limit) -> Result<(), CacheError> {
        self.bucket(key, limit, "give").await.map(|_| ())
    }
}
