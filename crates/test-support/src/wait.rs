//! Deadlines of the helpers. Every receive has one, so a missing frame fails a test
//! in seconds instead of hanging it; state that settles in the background (history,
//! read markers) is polled with [`eventually`] under [`settle_timeout`].

use std::time::Duration;

use tokio::time::Instant;

use crate::services;

/// How long any single expected event may take before the test fails.
pub const RECEIVE_TIMEOUT: Duration = Duration::from_secs(5);

/// How long to listen when checking that something does *not* arrive.
pub const QUIET_PERIOD: Duration = Duration::from_millis(400);

/// How long state that settles in the background (history, read markers) may take.
/// In distributed mode a restarted node's persister first rejoins its consumer
/// group, which waits for the old member's session to time out.
pub fn settle_timeout() -> Duration {
    if services::distributed() {
        Duration::from_secs(30)
    } else {
        RECEIVE_TIMEOUT
    }
}

/// Polls `check` every 25 ms until it returns `Some`, failing after [`settle_timeout`].
pub async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + settle_timeout();
    loop {
        if let Some(found) = check().await {
            return found;
        }
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}
