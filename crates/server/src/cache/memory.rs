//! The embedded mode's cache: plain maps behind short-lived std mutexes (never held
//! across an `.await`). Send keys are also reloaded from the durable log at start
//! (see [`MemoryCache::remember`]), so a retry after a restart is still recognized.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chat_protocol::UserId;
use uuid::Uuid;

use super::{CacheError, Claim, Limit, Presence, RateLimits, SEND_KEY_TTL, SendKeys, SentMessage};

#[derive(Default)]
pub struct MemoryCache {
    connections: Mutex<HashMap<UserId, u32>>,
    buckets: Mutex<HashMap<String, Bucket>>,
    send_keys: Mutex<SendKeyMap>,
}

struct Bucket {
    tokens: f64,
    updated: Instant,
}

impl Bucket {
    fn refill(&mut self, limit: Limit, now: Instant) {
        let elapsed = now.duration_since(self.updated).as_secs_f64();
        self.tokens = (self.tokens + elapsed * limit.rate_per_sec).min(limit.burst);
        self.updated = now;
    }

    fn wait_for_one(&self, limit: Limit) -> Duration {
        Duration::from_secs_f64(((1.0 - self.tokens) / limit.rate_per_sec).max(0.0))
    }
}

#[derive(Default)]
struct SendKeyMap {
    keys: HashMap<(UserId, Uuid), (Instant, Option<SentMessage>)>,
    last_sweep: Option<Instant>,
}

impl MemoryCache {
    pub fn new() -> Self {
        Self::default()
    }

    /// Records an acknowledged send found in the durable log at start.
    pub fn remember(&self, sender: UserId, client_msg_id: Uuid, sent: SentMessage, age: Duration) {
        let at = Instant::now().checked_sub(age).unwrap_or_else(Instant::now);
        lock(&self.send_keys)
            .keys
            .insert((sender, client_msg_id), (at, Some(sent)));
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding one of these maps leaves it consistent (single inserts).
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[async_trait]
impl Presence for MemoryCache {
    async fn connected(&self, user: UserId) -> Result<bool, CacheError> {
        let mut connections = lock(&self.connections);
        let count = connections.entry(user).or_insert(0);
        *count += 1;
        Ok(*count == 1)
    }

    async fn disconnected(&self, user: UserId) -> Result<bool, CacheError> {
        let mut connections = lock(&self.connections);
        match connections.get_mut(&user) {
            Some(count) if *count > 1 => {
                *count -= 1;
                Ok(false)
            }
            Some(_) => {
                connections.remove(&user);
                Ok(true)
            }
            None => Ok(false),
        }
    }

    async fn online(&self, users: &[UserId]) -> Result<Vec<UserId>, CacheError> {
        let connections = lock(&self.connections);
        Ok(users
            .iter()
            .copied()
            .filter(|u| connections.contains_key(u))
            .collect())
    }
}

#[async_trait]
impl RateLimits for MemoryCache {
    async fn acquire(&self, key: &str, limit: Limit) -> Result<Result<(), Duration>, CacheError> {
        let now = Instant::now();
        let mut buckets = lock(&self.buckets);
        if buckets.len() > 100_000 {
            // Full buckets carry no information; drop them so memory stays bounded.
            buckets.retain(|_, b| {
                b.refill(limit, now);
                b.tokens < limit.burst
            });
        }
        let bucket = buckets.entry(key.to_owned()).or_insert(Bucket {
            tokens: limit.burst,
            updated: now,
        });
        bucket.refill(limit, now);
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(Ok(()))
        } else {
            Ok(Err(bucket.wait_for_one(limit)))
        }
    }

    async fn exhausted(&self, key: &str, limit: Limit) -> Result<Option<Duration>, CacheError> {
        let now = Instant::now();
        let mut buckets = lock(&self.buckets);
        Ok(buckets.get_mut(key).and_then(|bucket| {
            bucket.refill(limit, now);
            (bucket.tokens < 1.0).then(|| bucket.wait_for_one(limit))
        }))
    }
}

#[async_trait]
impl SendKeys for MemoryCache {
    async fn claim(&self, sender: UserId, client_msg_id: Uuid) -> Result<Claim, CacheError> {
        let now = Instant::now();
        let mut map = lock(&self.send_keys);
        if map
            .last_sweep
            .is_none_or(|at| now.duration_since(at) > Duration::from_secs(60))
        {
            map.keys
                .retain(|_, (at, _)| now.duration_since(*at) < SEND_KEY_TTL);
            map.last_sweep = Some(now);
        }
        match map.keys.get(&(sender, client_msg_id)) {
            Some((_, Some(sent))) => Ok(Claim::Done(*sent)),
            Some((_, None)) => Ok(Claim::InFlight),
            None => {
                map.keys.insert((sender, client_msg_id), (now, None));
                Ok(Claim::New)
            }
        }
    }

    async fn complete(
        &self,
        sender: UserId,
        client_msg_id: Uuid,
        sent: SentMessage,
    ) -> Result<(), CacheError> {
        lock(&self.send_keys)
            .keys
            .insert((sender, client_msg_id), (Instant::now(), Some(sent)));
        Ok(())
    }

    async fn release(&self, sender: UserId, client_msg_id: Uuid) -> Result<(), CacheError> {
        // Only a pending claim is released: an acknowledged send stays remembered.
        let mut map = lock(&self.send_keys);
        if let Some((_, None)) = map.keys.get(&(sender, client_msg_id)) {
            map.keys.remove(&(sender, client_msg_id));
        }
        Ok(())
    }
}
