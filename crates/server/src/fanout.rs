//! The fan-out consumer: one per node, a [`Handler`] of the consumer runner. It
//! reads the log from its end and queues each new event (a message, an edit, a
//! deletion, a reaction), serialized once, on every local connection of every member
//! of its conversation, the sender's included. Clients that were away recover older
//! events with `sync`.
//!
//! It also notes *late* events: ones the log delivers after an event with a larger
//! id (several nodes stamp ids before the broker orders them). `sync` replays those
//! too, so a client that syncs from the newest id it has seen skips none of them.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chat_protocol::events::Event;

use crate::hub::{Hub, encode_event};
use crate::log::Record;
use crate::log::runner::{self, Failure, Handler, Start};
use crate::membership::Members;

/// Recent late events, kept for twice the log's reorder window.
pub struct LateMessages {
    window: Duration,
    started: Instant,
    inner: Mutex<Late>,
}

#[derive(Default)]
struct Late {
    /// The largest id delivered so far.
    high: i64,
    recent: VecDeque<(Instant, Arc<Event>)>,
}

impl LateMessages {
    pub fn new(window: Duration) -> Self {
        Self {
            window,
            started: Instant::now(),
            inner: Mutex::new(Late::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Late> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn observe(&self, event: &Arc<Event>) {
        if self.window.is_zero() {
            return;
        }
        let mut late = self.lock();
        let now = Instant::now();
        while late
            .recent
            .front()
            .is_some_and(|(at, _)| now.duration_since(*at) > 2 * self.window)
        {
            late.recent.pop_front();
        }
        let id = event.id().0;
        if id < late.high {
            late.recent.push_back((now, event.clone()));
        } else {
            late.high = id;
        }
    }

    /// The late events a client that has seen everything up to `since` may have
    /// missed, or `None` when this node has not watched the log long enough to know
    /// (then replay the whole window instead).
    pub fn at_or_before(&self, since: chat_protocol::MessageId) -> Option<Vec<Arc<Event>>> {
        if self.started.elapsed() < 2 * self.window {
            return None;
        }
        let late = self.lock();
        Some(
            late.recent
                .iter()
                .filter(|(_, e)| e.id() <= since)
                .map(|(_, e)| e.clone())
                .collect(),
        )
    }
}

/// How the fan-out runs: from the end of the log, in batches as large as the log
/// offers (frames are queued without waiting, so a large batch costs no latency).
pub const SETTINGS: runner::Settings = runner::Settings {
    name: "fanout",
    start: Start::End,
    max_batch: 1024,
    linger: Duration::ZERO,
};

/// Delivers each event to the local connections of its conversation's members.
pub struct FanOut {
    pub members: Arc<Members>,
    pub hub: Arc<Hub>,
    pub late: Arc<LateMessages>,
}

#[async_trait]
impl Handler for FanOut {
    async fn handle(&mut self, batch: &[Record]) -> Result<(), Failure> {
        for Record { event, .. } in batch {
            self.late.observe(event);
            self.deliver_to_local_members(event).await;
        }
        Ok(())
    }
}

impl FanOut {
    async fn deliver_to_local_members(&self, event: &Event) {
        let recipients = match self.members.of(event.conversation_id()).await {
            Ok(recipients) => recipients,
            Err(error) => {
                // Not retried: a live delivery that waits on the directory would hold up
                // every other conversation; the members recover it with `sync`.
                tracing::error!(%error, id = %event.id(), "no members for an event; not delivered live");
                return;
            }
        };
        let frame = encode_event(event);
        let delivered = self.hub.deliver(&recipients, &frame, None);
        metrics::counter!("chat_messages_delivered_total").increment(delivered as u64);
    }
}
