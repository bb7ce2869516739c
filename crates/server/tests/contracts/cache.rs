//! The fast ports: `Presence`, `RateLimits` and `SendKeys`, in memory and on Redis.

use std::time::Duration;

use chat_protocol::{ConversationId, MessageId, UserId};
use chat_server::cache::{Claim, Limit, SentMessage};
use uuid::Uuid;

use crate::fixtures::CachePorts;

crate::contract!(
    adapters: [
        memory => crate::fixtures::memory_cache,
        redis => crate::fixtures::redis_cache,
    ],
    tests: [
        presence_counts_connections,
        a_rate_limit_bucket_allows_its_burst_then_says_how_long_to_wait,
        a_refunded_token_can_be_taken_again_but_never_beyond_the_burst,
        a_send_is_claimed_once_and_remembered_when_acknowledged,
    ]
);

async fn presence_counts_connections(c: &CachePorts) -> anyhow::Result<()> {
    let (alice, bob) = (UserId(1), UserId(2));
    assert!(
        c.presence.connected(alice).await?,
        "first connection: online"
    );
    assert!(!c.presence.connected(alice).await?, "a second connection");
    assert!(!c.presence.disconnected(alice).await?, "one is still open");
    assert_eq!(c.presence.online(&[alice, bob]).await?, vec![alice]);
    assert!(
        c.presence.disconnected(alice).await?,
        "the last one closed: offline"
    );
    assert!(c.presence.online(&[alice]).await?.is_empty());
    assert!(c.presence.online(&[]).await?.is_empty());
    Ok(())
}

async fn a_rate_limit_bucket_allows_its_burst_then_says_how_long_to_wait(
    c: &CachePorts,
) -> anyhow::Result<()> {
    let limit = Limit {
        rate_per_sec: 2.0,
        burst: 3.0,
    };
    for _ in 0..3 {
        assert_eq!(c.limits.acquire("k", limit).await?, Ok(()));
    }
    let wait = c.limits.acquire("k", limit).await?.err();
    assert!(
        wait.is_some_and(|wait| wait > Duration::ZERO && wait <= Duration::from_millis(500)),
        "{wait:?}"
    );
    assert_eq!(
        c.limits.acquire("other", limit).await?,
        Ok(()),
        "buckets are per key"
    );
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(c.limits.acquire("k", limit).await?, Ok(()), "tokens refill");
    Ok(())
}

async fn a_refunded_token_can_be_taken_again_but_never_beyond_the_burst(
    c: &CachePorts,
) -> anyhow::Result<()> {
    // Slow enough that nothing refills during the test.
    let limit = Limit {
        rate_per_sec: 0.001,
        burst: 2.0,
    };
    c.limits.refund("r", limit).await?;
    for _ in 0..2 {
        assert_eq!(c.limits.acquire("r", limit).await?, Ok(()));
    }
    assert!(
        c.limits.acquire("r", limit).await?.is_err(),
        "a refund of a full bucket adds nothing"
    );
    c.limits.refund("r", limit).await?;
    assert_eq!(
        c.limits.acquire("r", limit).await?,
        Ok(()),
        "the refunded token"
    );
    assert!(c.limits.acquire("r", limit).await?.is_err());
    Ok(())
}

async fn a_send_is_claimed_once_and_remembered_when_acknowledged(
    c: &CachePorts,
) -> anyhow::Result<()> {
    let (user, key) = (UserId(5), Uuid::new_v4());
    assert_eq!(c.keys.claim(user, key).await?, Claim::New);
    assert_eq!(c.keys.claim(user, key).await?, Claim::InFlight);
    c.keys.release(user, key).await?;
    assert_eq!(
        c.keys.claim(user, key).await?,
        Claim::New,
        "a failed append frees the key"
    );
    let sent = SentMessage {
        message_id: MessageId(42),
        conversation_id: ConversationId(9),
        event_id: MessageId(43),
    };
    c.keys.complete(user, key, sent).await?;
    assert_eq!(c.keys.claim(user, key).await?, Claim::Done(sent));
    c.keys.release(user, key).await?;
    assert_eq!(
        c.keys.claim(user, key).await?,
        Claim::Done(sent),
        "release never forgets an acknowledged send"
    );
    assert_eq!(
        c.keys.claim(UserId(6), key).await?,
        Claim::New,
        "keys are per sender"
    );
    Ok(())
}
