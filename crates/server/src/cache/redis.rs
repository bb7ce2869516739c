//! The distributed mode's cache on Redis (DESIGN.md §9), shared by every node:
//!
//! - node-id leases (`node:{id}`, renewed every few seconds; they also say which
//!   nodes are alive),
//! - presence: per user, a hash of node → open connections; a user is online while
//!   some *live* node counts a connection, so a crashed node's users go offline once
//!   its lease lapses. Each node also keeps the set of its users (`nodeusers:{id}`,
//!   and `nodes`, the ids with such a set), so the surviving nodes can take a dead
//!   node's counts away and tell its users' contacts ([`reap_dead_nodes`]),
//! - token-bucket rate limits and `SET NX` idempotency keys, each one atomic script
//!   or command,
//! - refresh tokens and their families ([`Sessions`]), rotated atomically by script.
//!
//! Every key starts with the configured prefix, so several deployments (or tests)
//! can share one Redis. Commands time out quickly, so an outage surfaces as an error
//! (and a refused send) rather than a hang.

use std::time::Duration;

use async_trait::async_trait;
use chat_protocol::{ConversationId, MessageId, UserId};
use chrono::{DateTime, Utc};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{AsyncCommands, Script};
use uuid::Uuid;

use super::{CacheError, Claim, Limit, Presence, RateLimits, SEND_KEY_TTL, SendKeys, SentMessage};
use crate::store::{RotateError, Sessions, StoreResult};

/// A node's lease lasts this long without renewal.
pub const LEASE_TTL: Duration = Duration::from_secs(15);
/// Leases are renewed this often.
pub const LEASE_RENEWAL: Duration = Duration::from_secs(5);
const MAX_NODE_ID: u16 = 1023;

#[derive(Clone)]
pub struct RedisCache {
    conn: ConnectionManager,
    prefix: String,
    node_id: u16,
}

/// Connects with short timeouts, so callers see errors instead of waiting forever.
pub async fn connect(url: &str) -> anyhow::Result<(redis::Client, ConnectionManager)> {
    let client = redis::Client::open(url)?;
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Duration::from_secs(2))
        .set_response_timeout(Duration::from_secs(2))
        .set_number_of_retries(1)
        .set_max_delay(1_000);
    let conn = ConnectionManager::new_with_config(client.clone(), config).await?;
    Ok((client, conn))
}

fn down(error: redis::RedisError) -> CacheError {
    CacheError(error.to_string())
}

/// Sessions share the stores' error type; a Redis failure reads as an I/O error,
/// which the application maps to 503.
fn store_down(error: redis::RedisError) -> sqlx::Error {
    sqlx::Error::Io(std::io::Error::other(format!("redis: {error}")))
}

impl RedisCache {
    pub fn new(conn: ConnectionManager, prefix: String, node_id: u16) -> Self {
        Self {
            conn,
            prefix,
            node_id,
        }
    }

    pub fn node_id(&self) -> u16 {
        self.node_id
    }

    pub fn connection(&self) -> ConnectionManager {
        self.conn.clone()
    }

    fn key(&self, rest: &str) -> String {
        format!("{}{rest}", self.prefix)
    }

    pub async fn ping(&self) -> Result<(), CacheError> {
        let mut conn = self.conn.clone();
        redis::cmd("PING")
            .query_async::<String>(&mut conn)
            .await
            .map(|_| ())
            .map_err(down)
    }
}

/// Leases a free node id (0–1023) for [`LEASE_TTL`] and returns it with the lease's
/// token.
pub async fn lease_node_id(
    conn: &ConnectionManager,
    prefix: &str,
) -> anyhow::Result<(u16, String)> {
    lease_node_id_for(conn, prefix, LEASE_TTL).await
}

/// [`lease_node_id`] with a given lease time.
pub async fn lease_node_id_for(
    conn: &ConnectionManager,
    prefix: &str,
    ttl: Duration,
) -> anyhow::Result<(u16, String)> {
    let token = Uuid::new_v4().to_string();
    let start = rand::random::<u16>() % (MAX_NODE_ID + 1);
    let mut conn = conn.clone();
    for step in 0..=MAX_NODE_ID {
        let id = (start + step) % (MAX_NODE_ID + 1);
        let taken: Option<String> = redis::cmd("SET")
            .arg(format!("{prefix}node:{id}"))
            .arg(&token)
            .arg("NX")
            .arg("PX")
            .arg(ttl.as_millis() as u64)
            .query_async(&mut conn)
            .await?;
        if taken.is_some() {
            return Ok((id, token));
        }
    }
    anyhow::bail!(
        "all 1024 node ids are leased: too many nodes, or stale leases (they expire in {ttl:?})"
    )
}

/// What renewing a node lease found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Renewal {
    /// Still ours, and renewed.
    Renewed,
    /// It had lapsed and nobody took it: ours again. Other nodes may have taken this
    /// node's presence counts away meanwhile ([`restore_presence`] puts them back).
    Retaken,
    /// Another node holds this id now.
    Lost,
}

/// Renews the lease if it is still ours, or re-takes it if it lapsed and nobody else
/// took it.
pub async fn renew_node_lease(
    conn: &ConnectionManager,
    prefix: &str,
    id: u16,
    token: &str,
) -> Result<Renewal, CacheError> {
    const RENEW: &str = r#"
        local holder = redis.call('GET', KEYS[1])
        if holder and holder ~= ARGV[1] then return 0 end
        redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
        if holder then return 1 else return 2 end
    "#;
    let mut conn = conn.clone();
    let renewed: i32 = Script::new(RENEW)
        .key(format!("{prefix}node:{id}"))
        .arg(token)
        .arg(LEASE_TTL.as_millis() as u64)
        .invoke_async(&mut conn)
        .await
        .map_err(down)?;
    Ok(match renewed {
        1 => Renewal::Renewed,
        2 => Renewal::Retaken,
        _ => Renewal::Lost,
    })
}

/// Takes away the presence counts of nodes whose lease lapsed (crashed, or cut off
/// from Redis) and returns their users who are now offline everywhere, each once
/// across all the nodes that call this. With `only`, that node's counts go whatever
/// its lease says: a node starting under the id of a crashed one clears them.
async fn reap(
    conn: &ConnectionManager,
    prefix: &str,
    only: Option<u16>,
) -> Result<Vec<UserId>, CacheError> {
    // At most this many users per node and call, so Redis is never blocked long.
    const BATCH: u32 = 500;
    let script = Script::new(&format!(
        r#"{ONLINE_FN}
        local prefix, batch, only = ARGV[1], tonumber(ARGV[2]), ARGV[3]
        local nodes
        if only ~= '' then nodes = {{only}} else nodes = redis.call('SMEMBERS', prefix .. 'nodes') end
        local offline, more = {{}}, 0
        for _, n in ipairs(nodes) do
            if only ~= '' or redis.call('EXISTS', prefix .. 'node:' .. n) == 0 then
                local set = prefix .. 'nodeusers:' .. n
                for _, u in ipairs(redis.call('SPOP', set, batch)) do
                    local key = prefix .. 'presence:' .. u
                    redis.call('HDEL', key, n)
                    if not online(key, prefix) then offline[#offline + 1] = u end
                end
                if redis.call('SCARD', set) > 0 then
                    more = 1
                elseif only == '' then
                    redis.call('SREM', prefix .. 'nodes', n)
                end
            end
        end
        return {{more, offline}}"#
    ));
    let mut conn = conn.clone();
    let mut gone = Vec::new();
    loop {
        let (more, users): (i32, Vec<String>) = script
            .arg(prefix)
            .arg(BATCH)
            .arg(only.map(|n| n.to_string()).unwrap_or_default())
            .invoke_async(&mut conn)
            .await
            .map_err(down)?;
        gone.extend(users.iter().filter_map(|u| u.parse().ok().map(UserId)));
        if more == 0 {
            return Ok(gone);
        }
    }
}

/// [`reap`] every node whose lease lapsed.
pub async fn reap_dead_nodes(
    conn: &ConnectionManager,
    prefix: &str,
) -> Result<Vec<UserId>, CacheError> {
    reap(conn, prefix, None).await
}

/// Clears the presence counts an earlier process with this node id left behind (it
/// crashed, or was killed, without closing its sockets); returns the users that
/// leaves offline.
pub async fn clear_stale_presence(
    conn: &ConnectionManager,
    prefix: &str,
    node_id: u16,
) -> Result<Vec<UserId>, CacheError> {
    reap(conn, prefix, Some(node_id)).await
}

/// Counts this node's connections again after its lease had lapsed, and returns the
/// users that makes online again (other nodes may have announced them offline).
pub async fn restore_presence(
    conn: &ConnectionManager,
    prefix: &str,
    node_id: u16,
    connections: &[(UserId, usize)],
) -> Result<Vec<UserId>, CacheError> {
    let script = Script::new(&format!(
        r#"{ONLINE_FN}
        local prefix, n = ARGV[1], ARGV[2]
        local back = {{}}
        redis.call('SADD', prefix .. 'nodes', n)
        for i = 3, #ARGV, 2 do
            local key = prefix .. 'presence:' .. ARGV[i]
            local before = online(key, prefix)
            redis.call('HSET', key, n, ARGV[i + 1])
            redis.call('SADD', prefix .. 'nodeusers:' .. n, ARGV[i])
            if not before then back[#back + 1] = ARGV[i] end
        end
        return back"#
    ));
    let mut conn = conn.clone();
    let mut back = Vec::new();
    for chunk in connections.chunks(500) {
        let mut invocation = script.prepare_invoke();
        invocation.arg(prefix).arg(node_id);
        for (user, count) in chunk {
            invocation.arg(user.0).arg(*count);
        }
        let users: Vec<String> = invocation.invoke_async(&mut conn).await.map_err(down)?;
        back.extend(users.iter().filter_map(|u| u.parse().ok().map(UserId)));
    }
    Ok(back)
}

/// Whether `KEYS[1]` (a presence hash) has a connection on a node whose lease is
/// alive. ARGV[1] is the key prefix.
const ONLINE_FN: &str = r#"
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

#[async_trait]
impl Presence for RedisCache {
    async fn connected(&self, user: UserId) -> Result<bool, CacheError> {
        self.count_connection(
            user,
            "local before = online(KEYS[1], ARGV[1])
            redis.call('HINCRBY', KEYS[1], ARGV[2], 1)
            redis.call('SADD', ARGV[1] .. 'nodeusers:' .. ARGV[2], ARGV[3])
            redis.call('SADD', ARGV[1] .. 'nodes', ARGV[2])
            if before then return 0 else return 1 end",
        )
        .await
    }

    async fn disconnected(&self, user: UserId) -> Result<bool, CacheError> {
        self.count_connection(
            user,
            "local left = redis.call('HINCRBY', KEYS[1], ARGV[2], -1)
            if left <= 0 then
                redis.call('HDEL', KEYS[1], ARGV[2])
                redis.call('SREM', ARGV[1] .. 'nodeusers:' .. ARGV[2], ARGV[3])
            end
            if online(KEYS[1], ARGV[1]) then return 0 else return 1 end",
        )
        .await
    }

    async fn online(&self, users: &[UserId]) -> Result<Vec<UserId>, CacheError> {
        if users.is_empty() {
            return Ok(Vec::new());
        }
        let script = format!(
            "{ONLINE_FN}
            local out = {{}}
            for i, key in ipairs(KEYS) do
                if online(key, ARGV[1]) then out[#out + 1] = i end
            end
            return out"
        );
        let script = Script::new(&script);
        let mut invocation = script.prepare_invoke();
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
    /// Runs `body` (Lua, with `online` defined) on the user's presence hash;
    /// true when it returns 1 (the user's online state changed).
    async fn count_connection(&self, user: UserId, body: &str) -> Result<bool, CacheError> {
        let mut conn = self.conn.clone();
        let changed: i32 = Script::new(&format!("{ONLINE_FN}\n{body}"))
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

/// A token bucket: `KEYS[1]` holds tokens and the last refill (ms). ARGV: rate per
/// ms, burst, whether to take a token. Returns 0 when allowed, else ms to wait.
const BUCKET: &str = r#"
    local now = redis.call('TIME')
    local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
    local rate, burst, take = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3] == '1'
    local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
    local tokens, at = tonumber(state[1]), tonumber(state[2])
    if not tokens then tokens, at = burst, now_ms end
    tokens = math.min(burst, tokens + (now_ms - at) * rate)
    local wait = 0
    if tokens >= 1 then
        if take then tokens = tokens - 1 end
    else
        wait = math.ceil((1 - tokens) / rate)
    end
    if take or tokens < burst then
        redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', now_ms)
        redis.call('PEXPIRE', KEYS[1], math.ceil(burst / rate) + 1000)
    end
    return wait
"#;

impl RedisCache {
    async fn bucket(
        &self,
        key: &str,
        limit: Limit,
        take: bool,
    ) -> Result<Option<Duration>, CacheError> {
        let mut conn = self.conn.clone();
        let wait_ms: u64 = Script::new(BUCKET)
            .key(self.key(&format!("rate:{key}")))
            .arg(limit.rate_per_sec / 1000.0)
            .arg(limit.burst)
            .arg(if take { "1" } else { "0" })
            .invoke_async(&mut conn)
            .await
            .map_err(down)?;
        Ok((wait_ms > 0).then(|| Duration::from_millis(wait_ms)))
    }
}

#[async_trait]
impl RateLimits for RedisCache {
    async fn acquire(&self, key: &str, limit: Limit) -> Result<Result<(), Duration>, CacheError> {
        Ok(match self.bucket(key, limit, true).await? {
            None => Ok(()),
            Some(wait) => Err(wait),
        })
    }

    async fn exhausted(&self, key: &str, limit: Limit) -> Result<Option<Duration>, CacheError> {
        self.bucket(key, limit, false).await
    }
}

const PENDING: &str = "pending";
/// A claim whose node died before completing or releasing it lapses after this,
/// so the client's retry is not refused for a day. (An append can take at most the
/// log's delivery timeout.)
const PENDING_TTL: Duration = Duration::from_secs(30);

#[async_trait]
impl SendKeys for RedisCache {
    async fn claim(&self, sender: UserId, client_msg_id: Uuid) -> Result<Claim, CacheError> {
        let key = self.key(&format!("sent:{sender}:{client_msg_id}"));
        let mut conn = self.conn.clone();
        let claimed: Option<String> = redis::cmd("SET")
            .arg(&key)
            .arg(PENDING)
            .arg("NX")
            .arg("PX")
            .arg(PENDING_TTL.as_millis() as u64)
            .query_async(&mut conn)
            .await
            .map_err(down)?;
        if claimed.is_some() {
            return Ok(Claim::New);
        }
        let value: Option<String> = conn.get(&key).await.map_err(down)?;
        Ok(match value.as_deref().and_then(parse_sent) {
            Some(sent) => Claim::Done(sent),
            None => Claim::InFlight,
        })
    }

    async fn complete(
        &self,
        sender: UserId,
        client_msg_id: Uuid,
        sent: SentMessage,
    ) -> Result<(), CacheError> {
        let key = self.key(&format!("sent:{sender}:{client_msg_id}"));
        let value = format!("{}:{}", sent.message_id, sent.conversation_id);
        let mut conn = self.conn.clone();
        conn.pset_ex::<_, _, ()>(&key, value, SEND_KEY_TTL.as_millis() as u64)
            .await
            .map_err(down)
    }

    async fn release(&self, sender: UserId, client_msg_id: Uuid) -> Result<(), CacheError> {
        const RELEASE: &str =
            "if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end return 1";
        let mut conn = self.conn.clone();
        Script::new(RELEASE)
            .key(self.key(&format!("sent:{sender}:{client_msg_id}")))
            .arg(PENDING)
            .invoke_async::<i32>(&mut conn)
            .await
            .map(|_| ())
            .map_err(down)
    }
}

fn parse_sent(value: &str) -> Option<SentMessage> {
    let (message, conversation) = value.split_once(':')?;
    Some(SentMessage {
        message_id: MessageId(message.parse().ok()?),
        conversation_id: ConversationId(conversation.parse().ok()?),
    })
}

/// Rotates `KEYS[1]` (the presented token) into `KEYS[2]`. ARGV: prefix, new expiry
/// (unix ms). Returns the user id, -1 for an invalid token, -2 for reuse.
const ROTATE: &str = r#"
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
"#;

#[async_trait]
impl Sessions for RedisCache {
    async fn start(
        &self,
        user: UserId,
        token_hash: &str,
        expires_at: DateTime<Utc>,
    ) -> StoreResult<()> {
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
    ) -> Result<UserId, RotateError> {
        let mut conn = self.conn.clone();
        let outcome: i64 = Script::new(ROTATE)
            .key(self.key(&format!("refresh:{old_hash}")))
            .key(self.key(&format!("refresh:{new_hash}")))
            .arg(&self.prefix)
            .arg(expires_at.timestamp_millis())
            .invoke_async(&mut conn)
            .await
            .map_err(store_down)?;
        match outcome {
            -2 => Err(RotateError::Reused),
            user if user > 0 => Ok(UserId(user)),
            _ => Err(RotateError::Invalid),
        }
    }

    async fn revoke_family(&self, token_hash: &str) -> StoreResult<()> {
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
