//! The `Sessions` port: refresh-token families on SQLite, PostgreSQL and Redis.

use std::sync::Arc;

use chat_protocol::UserId;
use chat_server::sessions::{SessionError, Sessions};
use chrono::{Duration, Utc};

crate::contract!(
    adapters: [
        sqlite => crate::fixtures::sqlite_sessions,
        postgres => crate::fixtures::postgres_sessions,
        redis => crate::fixtures::redis_sessions,
    ],
    tests: [
        refresh_tokens_rotate_and_reuse_revokes_the_family,
        logout_revokes_only_its_own_family,
        an_expired_refresh_token_is_refused,
        of_two_concurrent_rotations_one_wins_and_one_is_reuse,
    ]
);

/// A token hash as the server stores it (64 hex digits).
fn hash(n: u32) -> String {
    format!("{n:064x}")
}

/// The users every sessions fixture has (the SQL adapters refer to the directory).
const ALICE: UserId = crate::fixtures::SESSION_USERS[0];
const BOB: UserId = crate::fixtures::SESSION_USERS[1];

async fn refresh_tokens_rotate_and_reuse_revokes_the_family(
    sessions: &Arc<dyn Sessions>,
) -> anyhow::Result<()> {
    let later = Utc::now() + Duration::days(30);
    sessions.start(ALICE, &hash(1), later).await?;
    assert_eq!(sessions.rotate(&hash(1), &hash(2), later).await?, ALICE);
    assert_eq!(sessions.rotate(&hash(2), &hash(3), later).await?, ALICE);
    // Replaying an already-rotated token revokes the family: even the newest fails.
    assert!(matches!(
        sessions.rotate(&hash(1), &hash(4), later).await,
        Err(SessionError::Reused)
    ));
    assert!(matches!(
        sessions.rotate(&hash(3), &hash(5), later).await,
        Err(SessionError::Invalid)
    ));
    assert!(matches!(
        sessions.rotate(&hash(99), &hash(6), later).await,
        Err(SessionError::Invalid)
    ));
    Ok(())
}

async fn logout_revokes_only_its_own_family(sessions: &Arc<dyn Sessions>) -> anyhow::Result<()> {
    let later = Utc::now() + Duration::days(30);
    sessions.start(ALICE, &hash(10), later).await?;
    sessions.start(BOB, &hash(20), later).await?;
    assert_eq!(sessions.rotate(&hash(10), &hash(11), later).await?, ALICE);
    sessions.revoke_family(&hash(11)).await?;
    sessions.revoke_family(&hash(12345)).await?;
    assert!(matches!(
        sessions.rotate(&hash(11), &hash(13), later).await,
        Err(SessionError::Invalid)
    ));
    assert_eq!(sessions.rotate(&hash(20), &hash(21), later).await?, BOB);
    Ok(())
}

async fn an_expired_refresh_token_is_refused(sessions: &Arc<dyn Sessions>) -> anyhow::Result<()> {
    sessions
        .start(ALICE, &hash(1), Utc::now() + Duration::milliseconds(200))
        .await?;
    tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    let later = Utc::now() + Duration::hours(1);
    assert!(matches!(
        sessions.rotate(&hash(1), &hash(2), later).await,
        Err(SessionError::Invalid)
    ));
    Ok(())
}

async fn of_two_concurrent_rotations_one_wins_and_one_is_reuse(
    sessions: &Arc<dyn Sessions>,
) -> anyhow::Result<()> {
    let later = Utc::now() + Duration::days(30);
    sessions.start(ALICE, &hash(1), later).await?;
    let (old, a, b) = (hash(1), hash(2), hash(3));
    let (x, y) = tokio::join!(
        sessions.rotate(&old, &a, later),
        sessions.rotate(&old, &b, later)
    );
    let outcomes = [&x, &y];
    let wins = outcomes.iter().filter(|r| r.is_ok()).count();
    let reuses = outcomes
        .iter()
        .filter(|r| matches!(r, Err(SessionError::Reused)))
        .count();
    assert_eq!(
        (wins, reuses),
        (1, 1),
        "one rotation wins, the other is reuse: {x:?} {y:?}"
    );
    Ok(())
}
