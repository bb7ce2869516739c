//! The Redis adapters against a real Redis (`CHAT_TEST_REDIS_URL`, default
//! `redis://127.0.0.1:6379`): each test uses its own key prefix and removes its keys.

use std::time::Duration;

use chat_protocol::{ConversationId, MessageId, UserId};
use chat_server::cache::redis::{self as cache_redis, RedisCache, Renewal};
use chat_server::cache::{Claim, Limit, Presence, RateLimits, SendKeys, SentMessage};
use chat_server::store::{RotateError, Sessions};
use chrono::Utc;
use redis::aio::ConnectionManager;
use uuid::Uuid;

struct Fixture {
    conn: ConnectionManager,
    prefix: String,
}

impl Fixture {
    async fn new() -> Fixture {
        let url = std::env::var("CHAT_TEST_REDIS_URL")
            .unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
        let (_, conn) = cache_redis::connect(&url).await.unwrap_or_else(|e| {
            panic!("cannot reach Redis at {url} ({e}); start it with: redis-server --daemonize yes --port 6379")
        });
        Fixture {
            conn,
            prefix: format!("adapter-test:{}:", Uuid::new_v4().simple()),
        }
    }

    fn cache(&self, node_id: u16) -> RedisCache {
        RedisCache::new(self.conn.clone(), self.prefix.clone(), node_id)
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let url = std::env::var("CHAT_TEST_REDIS_URL")
            .unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
        let _ = std::process::Command::new("redis-cli")
            .args(["-u", &url, "EVAL"])
            .arg("for _, k in ipairs(redis.call('KEYS', ARGV[1])) do redis.call('DEL', k) end return 0")
            .args(["0", &format!("{}*", self.prefix)])
            .output();
    }
}

fn hash(n: u32) -> String {
    format!("{n:064x}")
}

#[tokio::test]
async fn refresh_tokens_rotate_and_a_reused_token_revokes_its_family() {
    let redis = Fixture::new().await;
    let sessions = redis.cache(1);
    let later = Utc::now() + chrono::Duration::hours(1);
    sessions.start(UserId(7), &hash(1), later).await.unwrap();

    assert_eq!(
        sessions.rotate(&hash(1), &hash(2), later).await.unwrap(),
        UserId(7)
    );
    assert_eq!(
        sessions.rotate(&hash(2), &hash(3), later).await.unwrap(),
        UserId(7)
    );
    // Replaying an already-rotated token revokes the family: even the newest fails.
    assert!(matches!(
        sessions.rotate(&hash(1), &hash(4), later).await,
        Err(RotateError::Reused)
    ));
    assert!(matches!(
        sessions.rotate(&hash(3), &hash(5), later).await,
        Err(RotateError::Invalid)
    ));
    assert!(matches!(
        sessions.rotate(&hash(99), &hash(6), later).await,
        Err(RotateError::Invalid)
    ));

    // Logout revokes the family; another login's family is untouched.
    sessions.start(UserId(7), &hash(10), later).await.unwrap();
    sessions.start(UserId(8), &hash(20), later).await.unwrap();
    sessions.revoke_family(&hash(10)).await.unwrap();
    assert!(matches!(
        sessions.rotate(&hash(10), &hash(11), later).await,
        Err(RotateError::Invalid)
    ));
    assert_eq!(
        sessions.rotate(&hash(20), &hash(21), later).await.unwrap(),
        UserId(8)
    );
}

#[tokio::test]
async fn an_expired_refresh_token_is_refused() {
    let redis = Fixture::new().await;
    let sessions = redis.cache(1);
    sessions
        .start(
            UserId(3),
            &hash(1),
            Utc::now() + chrono::Duration::milliseconds(200),
        )
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;
    let later = Utc::now() + chrono::Duration::hours(1);
    assert!(matches!(
        sessions.rotate(&hash(1), &hash(2), later).await,
        Err(RotateError::Invalid)
    ));
}

#[tokio::test]
async fn a_leased_node_id_is_exclusive_until_it_lapses() {
    let redis = Fixture::new().await;
    let held = Duration::from_secs(120);
    let mut ids = std::collections::HashSet::new();
    let mut first = None;
    for _ in 0..1024 {
        let (id, token) = cache_redis::lease_node_id_for(&redis.conn, &redis.prefix, held)
            .await
            .unwrap();
        assert!(ids.insert(id), "node id {id} was leased twice");
        first.get_or_insert((id, token));
    }
    assert!(
        cache_redis::lease_node_id_for(&redis.conn, &redis.prefix, held)
            .await
            .is_err(),
        "all 1024 ids are held, so a 1025th node gets none"
    );
    let (id, token) = first.unwrap();
    assert_eq!(
        cache_redis::renew_node_lease(&redis.conn, &redis.prefix, id, "someone else")
            .await
            .unwrap(),
        Renewal::Lost
    );
    assert_eq!(
        cache_redis::renew_node_lease(&redis.conn, &redis.prefix, id, &token)
            .await
            .unwrap(),
        Renewal::Renewed
    );

    // A lease nobody renews lapses, and its id is free again.
    let other = format!("{}lapse:", redis.prefix);
    let short = Duration::from_millis(300);
    let (id, _) = cache_redis::lease_node_id_for(&redis.conn, &other, short)
        .await
        .unwrap();
    let mut conn = redis.conn.clone();
    let key = format!("{other}node:{id}");
    assert!(
        redis::AsyncCommands::exists::<_, bool>(&mut conn, &key)
            .await
            .unwrap()
    );
    tokio::time::sleep(short + Duration::from_millis(300)).await;
    assert!(
        !redis::AsyncCommands::exists::<_, bool>(&mut conn, &key)
            .await
            .unwrap()
    );
}

#[tokio::test]
async fn presence_spans_nodes_and_a_crashed_nodes_users_go_offline() {
    let redis = Fixture::new().await;
    let ttl = Duration::from_millis(800);
    let (a, token_a) =
        cache_redis::lease_node_id_for(&redis.conn, &redis.prefix, Duration::from_secs(60))
            .await
            .unwrap();
    let (b, _) = cache_redis::lease_node_id_for(&redis.conn, &redis.prefix, ttl)
        .await
        .unwrap();
    let (node_a, node_b) = (redis.cache(a), redis.cache(b));
    let (alice, bob) = (UserId(1), UserId(2));

    assert!(
        node_a.connected(alice).await.unwrap(),
        "first connection: online"
    );
    assert!(
        !node_b.connected(alice).await.unwrap(),
        "second connection, other node"
    );
    assert!(
        !node_a.disconnected(alice).await.unwrap(),
        "still connected on node b"
    );
    assert_eq!(node_a.online(&[alice, bob]).await.unwrap(), vec![alice]);
    assert!(
        node_b.disconnected(alice).await.unwrap(),
        "last connection gone: offline"
    );
    assert!(node_a.online(&[alice]).await.unwrap().is_empty());

    // Bob's only node stops renewing its lease (it crashed): he goes offline.
    assert!(node_b.connected(bob).await.unwrap());
    assert_eq!(node_a.online(&[bob]).await.unwrap(), vec![bob]);
    tokio::time::sleep(ttl + Duration::from_millis(400)).await;
    assert!(node_a.online(&[bob]).await.unwrap().is_empty());
    assert_eq!(
        cache_redis::renew_node_lease(&redis.conn, &redis.prefix, a, &token_a)
            .await
            .unwrap(),
        Renewal::Renewed
    );
}

#[tokio::test]
async fn a_dead_nodes_users_are_reaped_once_and_restored_if_it_comes_back() {
    let redis = Fixture::new().await;
    let ttl = Duration::from_millis(600);
    let (live, _) =
        cache_redis::lease_node_id_for(&redis.conn, &redis.prefix, Duration::from_secs(60))
            .await
            .unwrap();
    let (dying, token) = cache_redis::lease_node_id_for(&redis.conn, &redis.prefix, ttl)
        .await
        .unwrap();
    let (node_live, node_dying) = (redis.cache(live), redis.cache(dying));
    // Alice is only on the dying node; Bob on both; Carol closed her connection there.
    let (alice, bob, carol) = (UserId(1), UserId(2), UserId(3));
    node_dying.connected(alice).await.unwrap();
    node_dying.connected(alice).await.unwrap();
    node_dying.connected(bob).await.unwrap();
    node_live.connected(bob).await.unwrap();
    node_dying.connected(carol).await.unwrap();
    node_dying.disconnected(carol).await.unwrap();

    // While its lease holds, nothing is reaped.
    assert!(
        cache_redis::reap_dead_nodes(&redis.conn, &redis.prefix)
            .await
            .unwrap()
            .is_empty()
    );
    tokio::time::sleep(ttl + Duration::from_millis(300)).await;

    // Two survivors reap at once: Alice is announced offline exactly once, Bob (still
    // on the live node) and Carol (already offline) not at all.
    let (first, second) = tokio::join!(
        cache_redis::reap_dead_nodes(&redis.conn, &redis.prefix),
        cache_redis::reap_dead_nodes(&redis.conn, &redis.prefix),
    );
    let mut reaped = first.unwrap();
    reaped.extend(second.unwrap());
    assert_eq!(reaped, vec![alice]);
    assert_eq!(node_live.online(&[alice, bob]).await.unwrap(), vec![bob]);

    // The node was only cut off: it takes its lease back and counts its
    // connections again, which brings Alice back (Bob never left).
    assert_eq!(
        cache_redis::renew_node_lease(&redis.conn, &redis.prefix, dying, &token)
            .await
            .unwrap(),
        Renewal::Retaken
    );
    let back =
        cache_redis::restore_presence(&redis.conn, &redis.prefix, dying, &[(alice, 2), (bob, 1)])
            .await
            .unwrap();
    assert_eq!(back, vec![alice]);
    assert_eq!(
        node_live.online(&[alice, bob]).await.unwrap(),
        vec![alice, bob]
    );
    // Her two connections are counted: closing one leaves her online.
    assert!(!node_dying.disconnected(alice).await.unwrap());
    assert!(node_dying.disconnected(alice).await.unwrap());

    // A process that starts under the dying node's id clears what is left there.
    let offline = cache_redis::clear_stale_presence(&redis.conn, &redis.prefix, dying)
        .await
        .unwrap();
    assert!(
        offline.is_empty(),
        "bob is still on the live node: {offline:?}"
    );
    assert_eq!(node_live.online(&[alice, bob]).await.unwrap(), vec![bob]);
    assert!(
        node_live.disconnected(bob).await.unwrap(),
        "his last connection is gone"
    );
}

#[tokio::test]
async fn a_rate_limit_bucket_allows_its_burst_then_says_how_long_to_wait() {
    let redis = Fixture::new().await;
    let limits = redis.cache(1);
    let limit = Limit {
        rate_per_sec: 2.0,
        burst: 3.0,
    };
    assert!(limits.exhausted("k", limit).await.unwrap().is_none());
    for _ in 0..3 {
        assert_eq!(limits.acquire("k", limit).await.unwrap(), Ok(()));
    }
    let wait = limits.acquire("k", limit).await.unwrap().unwrap_err();
    assert!(
        wait > Duration::ZERO && wait <= Duration::from_millis(500),
        "{wait:?}"
    );
    assert!(limits.exhausted("k", limit).await.unwrap().is_some());
    assert_eq!(
        limits.acquire("other", limit).await.unwrap(),
        Ok(()),
        "buckets are per key"
    );
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(
        limits.acquire("k", limit).await.unwrap(),
        Ok(()),
        "tokens refill"
    );
}

#[tokio::test]
async fn a_send_is_claimed_once_and_remembered_when_acknowledged() {
    let redis = Fixture::new().await;
    let keys = redis.cache(1);
    let (user, key) = (UserId(5), Uuid::new_v4());
    assert_eq!(keys.claim(user, key).await.unwrap(), Claim::New);
    assert_eq!(keys.claim(user, key).await.unwrap(), Claim::InFlight);
    keys.release(user, key).await.unwrap();
    assert_eq!(
        keys.claim(user, key).await.unwrap(),
        Claim::New,
        "a failed append frees the key"
    );
    let sent = SentMessage {
        message_id: MessageId(42),
        conversation_id: ConversationId(9),
    };
    keys.complete(user, key, sent).await.unwrap();
    assert_eq!(keys.claim(user, key).await.unwrap(), Claim::Done(sent));
    keys.release(user, key).await.unwrap();
    assert_eq!(
        keys.claim(user, key).await.unwrap(),
        Claim::Done(sent),
        "release never forgets an acknowledged send"
    );
    assert_eq!(
        keys.claim(UserId(6), key).await.unwrap(),
        Claim::New,
        "keys are per sender"
    );
}
