//! The embedded mode's cache: plain maps behind short-lived std mutexes (never held
//! across an `.await`). Send keys are also reloaded from the durable log at start
//! (see [`MemoryCache::remember`]), so a retry after a restart is still recognized.
//! The send keys are bounded like Redis's: an acknowledged key lives a day, a pending
//! claim half a minute, and beyond [`MAX_SEND_KEYS`] the oldest are forgotten first.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chat_protocol::UserId;
use uuid::Uuid;

use super::{CacheError, Claim, Limit, Presence, RateLimits, SEND_KEY_TTL, SendKeys, SentMessage};

/// The most send keys kept in memory (about 100 bytes each): a retry comes within
/// minutes, and this holds well over that many minutes of the embedded mode's sends.
pub const MAX_SEND_KEYS: usize = 500_000;
/// How long a claim whose change never ended is honoured (as in Redis).
const PENDING_TTL: Duration = Duration::from_secs(30);

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

type SendKey = (UserId, Uuid);

/// Send keys with when each was written (`None`: claimed, not yet acknowledged), and
/// the order they were written in, oldest first, to forget them by age or beyond the
/// cap. A key written again is queued again; its older place is skipped when reached.
struct SendKeyMap {
    keys: HashMap<SendKey, (Instant, Option<SentMessage>)>,
    order: VecDeque<(Instant, SendKey)>,
    ttl: Duration,
    pending_ttl: Duration,
    max_keys: usize,
}

impl Default for SendKeyMap {
    fn default() -> Self {
        Self::new(SEND_KEY_TTL, PENDING_TTL, MAX_SEND_KEYS)
    }
}

impl SendKeyMap {
    fn new(ttl: Duration, pending_ttl: Duration, max_keys: usize) -> Self {
        Self {
            keys: HashMap::new(),
            order: VecDeque::new(),
            ttl,
            pending_ttl,
            max_keys,
        }
    }

    fn get(&self, key: &SendKey, now: Instant) -> Option<Option<SentMessage>> {
        let (at, sent) = self.keys.get(key)?;
        let ttl = if sent.is_some() {
            self.ttl
        } else {
            self.pending_ttl
        };
        (now.saturating_duration_since(*at) < ttl).then_some(*sent)
    }

    fn insert(&mut self, key: SendKey, at: Instant, sent: Option<SentMessage>) {
        self.keys.insert(key, (at, sent));
        self.order.push_back((at, key));
        self.forget_old(Instant::now());
        if self.order.len() > 2 * self.max_keys.max(1) {
            // Mostly places of keys written again: keep only the current ones.
            let keys = &self.keys;
            self.order
                .retain(|(at, key)| keys.get(key).is_some_and(|(current, _)| current == at));
        }
    }

    fn remove(&mut self, key: &SendKey) {
        self.keys.remove(key);
    }

    /// Drops, oldest first, keys past their time and keys beyond the cap.
    fn forget_old(&mut self, now: Instant) {
        while let Some(&(at, key)) = self.order.front() {
            let current = self
                .keys
                .get(&key)
                .is_some_and(|(written, _)| *written == at);
            let expired = now.saturating_duration_since(at) >= self.ttl;
            if current && !expired && self.keys.len() <= self.max_keys {
                break;
            }
            self.order.pop_front();
            if current {
                self.keys.remove(&key);
            }
        }
    }
}

impl MemoryCache {
    pub fn new() -> Self {
        Self::default()
    }

    /// Records an acknowledged send found in the durable log at start.
    pub fn remember(&self, sender: UserId, client_msg_id: Uuid, sent: SentMessage, age: Duration) {
        let at = Instant::now().checked_sub(age).unwrap_or_else(Instant::now);
        lock(&self.send_keys).insert((sender, client_msg_id), at, Some(sent));
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

    async fn refund(&self, key: &str, limit: Limit) -> Result<(), CacheError> {
        let now = Instant::now();
        let mut buckets = lock(&self.buckets);
        if let Some(bucket) = buckets.get_mut(key) {
            bucket.refill(limit, now);
            bucket.tokens = (bucket.tokens + 1.0).min(limit.burst);
        }
        Ok(())
    }
}

#[async_trait]
impl SendKeys for MemoryCache {
    async fn claim(&self, sender: UserId, client_msg_id: Uuid) -> Result<Claim, CacheError> {
        let now = Instant::now();
        let key = (sender, client_msg_id);
        let mut map = lock(&self.send_keys);
        match map.get(&key, now) {
            Some(Some(sent)) => Ok(Claim::Done(sent)),
            Some(None) => Ok(Claim::InFlight),
            None => {
                map.insert(key, now, None);
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
        lock(&self.send_keys).insert((sender, client_msg_id), Instant::now(), Some(sent));
        Ok(())
    }

    async fn release(&self, sender: UserId, client_msg_id: Uuid) -> Result<(), CacheError> {
        // Only a pending claim is released: an acknowledged send stays remembered.
        let key = (sender, client_msg_id);
        let mut map = lock(&self.send_keys);
        if let Some((_, None)) = map.keys.get(&key) {
            map.remove(&key);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use chat_protocol::{ConversationId, MessageId};

    use super::*;

    fn sent(n: i64) -> SentMessage {
        SentMessage {
            message_id: MessageId(n),
            conversation_id: ConversationId(1),
            event_id: MessageId(n),
        }
    }

    fn key(n: u128) -> SendKey {
        (UserId(1), Uuid::from_u128(n))
    }

    #[test]
    fn beyond_the_cap_the_oldest_send_keys_are_forgotten_first() {
        let mut map = SendKeyMap::new(SEND_KEY_TTL, PENDING_TTL, 3);
        let now = Instant::now();
        for n in 1..=5 {
            map.insert(key(n), now, Some(sent(n as i64)));
        }
        assert_eq!(map.keys.len(), 3);
        assert_eq!(map.get(&key(1), now), None);
        assert_eq!(map.get(&key(2), now), None);
        for n in 3..=5 {
            assert_eq!(map.get(&key(n), now), Some(Some(sent(n as i64))));
        }
        // A key written again is young again: the next one evicted is the oldest other.
        map.insert(key(3), Instant::now(), Some(sent(3)));
        map.insert(key(6), Instant::now(), Some(sent(6)));
        assert_eq!(map.get(&key(4), Instant::now()), None);
        assert!(map.get(&key(3), Instant::now()).is_some());
        assert!(map.order.len() <= 6, "{}", map.order.len());
    }

    #[test]
    fn send_keys_expire_and_pending_claims_sooner() {
        let mut map = SendKeyMap::new(Duration::from_secs(60), Duration::from_secs(5), 100);
        let now = Instant::now();
        map.insert(key(1), now, Some(sent(1)));
        map.insert(key(2), now, None);
        let later = now + Duration::from_secs(10);
        assert_eq!(map.get(&key(1), later), Some(Some(sent(1))));
        assert_eq!(map.get(&key(2), later), None, "a stale claim lapses");
        let much_later = now + Duration::from_secs(61);
        assert_eq!(map.get(&key(1), much_later), None);
        map.forget_old(much_later);
        assert!(map.keys.is_empty());
        assert!(map.order.is_empty());
    }

    #[tokio::test]
    async fn a_stale_pending_claim_can_be_claimed_again() {
        let cache = MemoryCache::new();
        let (user, id) = key(7);
        assert_eq!(cache.claim(user, id).await.unwrap(), Claim::New);
        assert_eq!(cache.claim(user, id).await.unwrap(), Claim::InFlight);
        lock(&cache.send_keys).pending_ttl = Duration::ZERO;
        assert_eq!(cache.claim(user, id).await.unwrap(), Claim::New);
    }
}
