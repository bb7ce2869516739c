//! The fan-out consumer: one per node. It reads the log from its end and queues each
//! new message, serialized once, on every local connection of every member of its
//! conversation, the sender's included. Clients that were away recover older
//! messages with `sync`.
//!
//! It also notes *late* messages: ones the log delivers after a message with a larger
//! id (several nodes stamp ids before the broker orders them). `sync` replays those
//! too, so a client that syncs from the newest id it has seen skips none of them.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chat_protocol::http::Message;
use tokio::sync::watch;

use crate::events::encode_message;
use crate::gateway::hub::Hub;
use crate::log::MessageLog;
use crate::membership::Members;

/// Recent late messages, kept for twice the log's reorder window.
pub struct LateMessages {
    window: Duration,
    started: Instant,
    inner: Mutex<Late>,
}

#[derive(Default)]
struct Late {
    /// The largest id delivered so far.
    high: i64,
    recent: VecDeque<(Instant, Arc<Message>)>,
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

    fn observe(&self, message: &Arc<Message>) {
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
        if message.id.0 < late.high {
            late.recent.push_back((now, message.clone()));
        } else {
            late.high = message.id.0;
        }
    }

    /// The late messages a client that has seen everything up to `since` may have
    /// missed, or `None` when this node has not watched the log long enough to know
    /// (then replay the whole window instead).
    pub fn at_or_before(&self, since: chat_protocol::MessageId) -> Option<Vec<Arc<Message>>> {
        if self.started.elapsed() < 2 * self.window {
            return None;
        }
        let late = self.lock();
        Some(
            late.recent
                .iter()
                .filter(|(_, m)| m.id <= since)
                .map(|(_, m)| m.clone())
                .collect(),
        )
    }
}

pub async fn run(
    log: Arc<dyn MessageLog>,
    members: Arc<Members>,
    hub: Arc<Hub>,
    late: Arc<LateMessages>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let mut consumer = match log.consume_from_end().await {
            Ok(consumer) => consumer,
            Err(error) => {
                tracing::warn!(%error, "fan-out cannot read the log; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        loop {
            let batch = tokio::select! {
                batch = consumer.next_batch(1024) => batch,
                _ = shutdown.changed() => return,
            };
            let batch = match batch {
                Ok(batch) => batch,
                Err(error) => {
                    tracing::warn!(%error, "fan-out lost the log; reconnecting");
                    break;
                }
            };
            for message in batch {
                late.observe(&message);
                let recipients = match members.of(message.conversation_id).await {
                    Ok(recipients) => recipients,
                    Err(error) => {
                        tracing::error!(%error, id = %message.id, "no members for a message; not delivered live");
                        continue;
                    }
                };
                let frame = encode_message(&message);
                let delivered = hub.deliver(&recipients, &frame, None);
                metrics::counter!("chat_messages_delivered_total").increment(delivered as u64);
            }
        }
    }
}
