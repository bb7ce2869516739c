//! Node-id leases in Redis (`node:{id}`, renewed every [`LEASE_RENEWAL`]): they
//! keep message ids unique across the cluster and say which nodes are alive. When a
//! node's lease lapses, the survivors take its presence counts away
//! ([`reap_dead_nodes`]) so its users go offline, each announced by exactly one node.

use std::sync::LazyLock;
use std::time::Duration;

use chat_protocol::UserId;
use redis::Script;
use redis::aio::ConnectionManager;
use uuid::Uuid;

use super::down;
use super::presence::ONLINE_FN;
use crate::cache::CacheError;

/// A node's lease lasts this long without renewal.
pub const LEASE_TTL: Duration = Duration::from_secs(15);
/// Leases are renewed this often.
pub const LEASE_RENEWAL: Duration = Duration::from_secs(5);
const MAX_NODE_ID: u16 = 1023;

/// Why no node id could be leased.
#[derive(Debug, thiserror::Error)]
pub enum LeaseError {
    #[error("all 1024 node ids are leased: too many nodes, or stale leases (they expire in {0:?})")]
    Exhausted(Duration),
    #[error("node id {0} is leased by another node")]
    Taken(u16),
    #[error(transparent)]
    Cache(#[from] CacheError),
}

/// KEYS[1] the lease; ARGV token, lease ms. 1 renewed, 2 re-taken, 0 lost.
static RENEW: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
        local holder = redis.call('GET', KEYS[1])
        if holder and holder ~= ARGV[1] then return 0 end
        redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
        if holder then return 1 else return 2 end
    "#,
    )
});

/// At most this many users per node and call, so Redis is never blocked long.
const BATCH: u32 = 500;

/// ARGV prefix, batch, only-node (or empty). Returns {more, offline users}.
static REAP: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
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
    ))
});

/// ARGV prefix, node, then user/count pairs. Returns the users now back online.
static RESTORE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
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
    ))
});

/// Leases a free node id (0–1023) for [`LEASE_TTL`] and returns it with the lease's
/// token.
pub async fn lease_node_id(
    conn: &ConnectionManager,
    prefix: &str,
) -> Result<(u16, String), LeaseError> {
    lease_node_id_for(conn, prefix, LEASE_TTL).await
}

/// [`lease_node_id`] with a given lease time.
pub async fn lease_node_id_for(
    conn: &ConnectionManager,
    prefix: &str,
    ttl: Duration,
) -> Result<(u16, String), LeaseError> {
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
            .await
            .map_err(down)?;
        if taken.is_some() {
            return Ok((id, token));
        }
    }
    Err(LeaseError::Exhausted(ttl))
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
    let mut conn = conn.clone();
    let renewed: i32 = RENEW
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
    let mut conn = conn.clone();
    let mut gone = Vec::new();
    loop {
        let (more, users): (i32, Vec<String>) = REAP
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
    let mut conn = conn.clone();
    let mut back = Vec::new();
    for chunk in connections.chunks(500) {
        let mut invocation = RESTORE.prepare_invoke();
        invocation.arg(prefix).arg(node_id);
        for (user, count) in chunk {
            invocation.arg(user.0).arg(*count);
        }
        let users: Vec<String> = invocation.invoke_async(&mut conn).await.map_err(down)?;
        back.extend(users.iter().filter_map(|u| u.parse().ok().map(UserId)));
    }
    Ok(back)
}
