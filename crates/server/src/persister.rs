//! The persister: consumer group `persister` of the log, a [`Handler`] of the
//! consumer runner. It applies each batch of events to the [`MessageStore`]
//! (idempotent by event id), then has the log forget the bodies of messages the
//! batch deleted; the runner commits the group's position only afterwards, so a
//! crash in between replays the batch harmlessly. The committed position tells `sync`
//! when history holds everything the log acknowledged ([`caught_up`]).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chat_protocol::events::Event;

use crate::log::runner::{self, Failure, Handler, Start};
use crate::log::{self, MessageLog, Record};
use crate::store::{MessageStore, StoreError};

pub const GROUP: &str = "persister";

/// How the persister runs: its group, and batches as large as one store call takes
/// comfortably.
pub const SETTINGS: runner::Settings = runner::Settings {
    name: GROUP,
    start: Start::Group(GROUP),
    max_batch: 1_000,
    linger: Duration::ZERO,
};

pub struct Persister {
    pub store: Arc<dyn MessageStore>,
    pub log: Arc<dyn MessageLog>,
}

#[async_trait]
impl Handler for Persister {
    async fn handle(&mut self, records: &[Record]) -> Result<(), Failure> {
        let batch = log::events(records);
        self.store
            .apply(&batch)
            .await
            .map_err(|error| store_failure("storing history", error))?;
        let deleted: Vec<_> = batch
            .iter()
            .filter_map(|e| match e.as_ref() {
                Event::Delete(delete) => Some(delete.message_id),
                _ => None,
            })
            .collect();
        self.log.redact(&deleted).await.map_err(|error| {
            Failure::Retry(format!("redacting deleted messages in the log: {error}"))
        })
    }
}

/// A store that refuses the data (or cannot read back what it holds) will refuse it
/// again, so the event that causes it is isolated and skipped. One that is unavailable,
/// or refuses the statement for a reason of its own (a missing table, a permission),
/// is waited for: skipping would drop every event until an operator fixed it.
pub fn store_failure(doing: &str, error: StoreError) -> Failure {
    match error {
        StoreError::Unavailable(_) | StoreError::Failed(_) => {
            Failure::Retry(format!("{doing}: {error}"))
        }
        StoreError::Refused(_) | StoreError::Corrupt(_) => {
            Failure::Refused(format!("{doing}: {error}"))
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
