//! The persister: consumer group `persister` of the log. It stores each batch in the
//! [`MessageStore`] (idempotent by message id) and only then commits its position, so
//! a crash between the two replays the batch harmlessly. Its committed position tells
//! `sync` when history holds everything the log acknowledged.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::log::MessageLog;
use crate::store::MessageStore;

pub const GROUP: &str = "persister";

/// How long the persister waits for records before checking it is not stuck.
const STALL_CHECK: Duration = Duration::from_secs(10);

/// Whether the log holds records past the group's committed position.
async fn stalled(log: &dyn MessageLog) -> bool {
    match (log.tail().await, log.committed(GROUP).await) {
        (Ok(tail), Ok(done)) => !done.covers(&tail),
        _ => false,
    }
}

pub async fn run(
    log: Arc<dyn MessageLog>,
    store: Arc<dyn MessageStore>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let mut consumer = match log.consume_as(GROUP).await {
            Ok(consumer) => consumer,
            Err(error) => {
                tracing::warn!(%error, "persister cannot read the log; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        loop {
            let batch = tokio::select! {
                batch = tokio::time::timeout(STALL_CHECK, consumer.next_batch(1_000)) => batch,
                _ = shutdown.changed() => return,
            };
            let batch = match batch {
                Ok(Ok(batch)) => batch,
                Ok(Err(error)) => {
                    tracing::warn!(%error, "persister lost the log; reconnecting");
                    break;
                }
                Err(_) if stalled(log.as_ref()).await => {
                    // The log holds records the group has not committed, yet none came
                    // for a while: the consumer lost its assignment (e.g. a group
                    // rebalance that never completed). Start over with a new member.
                    tracing::warn!("persister made no progress with work pending; rejoining");
                    break;
                }
                Err(_) => continue,
            };
            let messages: Vec<_> = batch.iter().map(|m| (**m).clone()).collect();
            let stored = loop {
                match store.store(&messages).await {
                    Ok(()) => break true,
                    Err(error) => {
                        tracing::warn!(%error, count = messages.len(), "storing history failed; retrying");
                        tokio::select! {
                            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                            _ = shutdown.changed() => break false,
                        }
                    }
                }
            };
            if !stored {
                return;
            }
            if let Err(error) = consumer.commit().await {
                tracing::warn!(%error, "committing the persister position failed; it will replay");
            }
        }
    }
}

/// Waits until the persister has stored everything the log holds now, so history
/// reads include every acknowledged message. Gives up after `timeout`.
pub async fn caught_up(log: &dyn MessageLog, timeout: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + timeout;
    let Ok(tail) = log.tail().await else {
        return false;
    };
    loop {
        if log
            .committed(GROUP)
            .await
            .is_ok_and(|done| done.covers(&tail))
        {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}
