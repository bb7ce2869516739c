//! The one loop every log consumer runs in. A consumer is a [`Handler`]: it is given
//! batches in log order and says whether it processed them; the runner owns the rest
//! (connecting, reconnecting after errors, retrying a batch the handler could not
//! process, committing a group's position only after the batch is processed,
//! rejoining a group that stalls, and stopping at shutdown), so a new consumer is a
//! handler, not a copy of this loop.
//!
//! A handler tells a store that is unavailable ([`Failure::Retry`]: the same batch
//! again after a pause, for as long as it takes) from a store that refused the batch
//! for good ([`Failure::Refused`], e.g. PostgreSQL refusing a NUL in text). A refused
//! batch is offered again event by event, and the one event the store still refuses
//! on its own is skipped: logged at error level and counted in
//! `chat_log_events_skipped_total{consumer}`. One bad record never wedges a group.
//!
//! A handler may also buffer (the dataset sink writes files of tens of MB): it says
//! when it wants [`Handler::flush`] called, even on a quiet log, and while it holds
//! records only in memory the runner commits nothing, so the group's position never
//! passes what is durable.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chat_protocol::events::Event;
use tokio::sync::watch;
use tokio::time::Instant;
use tracing::Instrument;

use super::{LogConsumer, MessageLog, Record};

/// Where a consumer reads from.
#[derive(Clone, Copy, Debug)]
pub enum Start {
    /// The end of the log as of connecting, nothing committed (the fan-out).
    End,
    /// The group's committed position; the runner commits after each batch.
    Group(&'static str),
}

/// A batch the handler could not process.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    /// Something it needs is unavailable: the runner waits and offers the batch again.
    #[error("{0}")]
    Retry(String),
    /// The store refused the batch for good (bad data, not an outage): the runner
    /// offers its events one by one and skips the one refused on its own.
    #[error("{0}")]
    Refused(String),
}

#[async_trait]
pub trait Handler: Send {
    /// Processes a batch, in log order. Returning [`Failure::Retry`] gets the same
    /// batch again after a pause, [`Failure::Refused`] its events one at a time; the
    /// position moves on only after every event was processed or skipped.
    async fn handle(&mut self, batch: &[Record]) -> Result<(), Failure>;

    /// When the handler next wants [`Handler::flush`] called, whether or not records
    /// come; `None`: not at all (a handler that writes through).
    fn flush_due(&self) -> Option<Instant> {
        None
    }

    /// Makes what the handler buffered durable. [`Failure::Retry`] gets it called
    /// again after a pause (no new batch meanwhile).
    async fn flush(&mut self) -> Result<(), Failure> {
        Ok(())
    }

    /// Whether records it took are still only in memory: the runner commits the
    /// group's position only when none are, so a crash replays them.
    fn holds_unflushed(&self) -> bool {
        false
    }
}

/// The metric counting events a consumer skipped because its store refused them.
pub const SKIPPED_METRIC: &str = "chat_log_events_skipped_total";

/// How a consumer runs.
#[derive(Clone, Copy, Debug)]
pub struct Settings {
    pub name: &'static str,
    pub start: Start,
    /// The most records handed to the handler at once.
    pub max_batch: usize,
    /// How long to wait after a batch smaller than `max_batch` before reading on, so
    /// a consumer whose work is cheaper in bulk gets large batches from a busy log
    /// (zero: read on at once).
    pub linger: Duration,
}

/// How long to wait before reconnecting, or before offering a failed batch again.
const PAUSE: Duration = Duration::from_secs(1);
/// How long a group consumer waits for records before checking it is not stuck.
const STALL_CHECK: Duration = Duration::from_secs(10);

/// Runs `handler` on the log until shutdown.
pub async fn run(
    log: Arc<dyn MessageLog>,
    settings: Settings,
    mut handler: impl Handler,
    mut shutdown: watch::Receiver<bool>,
) {
    let span = tracing::info_span!("consumer", name = settings.name);
    async move {
        while let Some(mut consumer) = connect(log.as_ref(), settings.start, &mut shutdown).await {
            match consume(
                log.as_ref(),
                settings,
                consumer.as_mut(),
                &mut handler,
                &mut shutdown,
            )
            .await
            {
                Ended::Shutdown => return,
                Ended::Reconnect(why) => tracing::warn!(%why, "reconnecting to the log"),
            }
        }
    }
    .instrument(span)
    .await
}

/// Opens a consumer, retrying until it works or the server stops.
async fn connect(
    log: &dyn MessageLog,
    start: Start,
    shutdown: &mut watch::Receiver<bool>,
) -> Option<Box<dyn LogConsumer>> {
    loop {
        let consumer = match start {
            Start::End => log.consume_from_end().await,
            Start::Group(group) => log.consume_as(group).await,
        };
        match consumer {
            Ok(consumer) => return Some(consumer),
            Err(error) => tracing::warn!(%error, "cannot read the log; retrying"),
        }
        if !pause(shutdown).await {
            return None;
        }
    }
}

enum Ended {
    Shutdown,
    Reconnect(String),
}

/// Reads, handles and commits batches until the consumer fails or the server stops.
async fn consume(
    log: &dyn MessageLog,
    settings: Settings,
    consumer: &mut dyn LogConsumer,
    handler: &mut impl Handler,
    shutdown: &mut watch::Receiver<bool>,
) -> Ended {
    loop {
        let due = handler.flush_due();
        let stall_check = !handler.holds_unflushed();
        let batch = tokio::select! {
            batch = next_batch(log, settings, consumer, stall_check) => Some(batch),
            _ = sleep_until(due) => Some(Ok(None)),
            _ = shutdown.wait_for(|stop| *stop) => None,
        };
        let Some(batch) = batch else {
            flush_at_shutdown(settings, consumer, handler).await;
            return Ended::Shutdown;
        };
        let batch = match batch {
            Ok(Some(batch)) => batch,
            Ok(None) => {
                if !flush_if_due(settings, consumer, handler, shutdown).await {
                    return Ended::Shutdown;
                }
                continue;
            }
            Err(why) => return Ended::Reconnect(why),
        };
        if !handle_until_done(settings.name, handler, &batch, shutdown).await {
            return Ended::Shutdown;
        }
        if !flush_if_due(settings, consumer, handler, shutdown).await {
            return Ended::Shutdown;
        }
        commit(settings, consumer, handler).await;
        if batch.len() < settings.max_batch
            && !settings.linger.is_zero()
            && !wait(settings.linger, shutdown).await
        {
            return Ended::Shutdown;
        }
    }
}

/// Commits the group's position, unless the handler still holds records only in
/// memory.
async fn commit(settings: Settings, consumer: &mut dyn LogConsumer, handler: &impl Handler) {
    if matches!(settings.start, Start::Group(_))
        && !handler.holds_unflushed()
        && let Err(error) = consumer.commit().await
    {
        tracing::warn!(%error, "committing the position failed; the batch will replay");
    }
}

/// Sleeps until `due`, or forever when nothing is due.
async fn sleep_until(due: Option<Instant>) {
    match due {
        Some(due) => tokio::time::sleep_until(due).await,
        None => std::future::pending().await,
    }
}

/// Flushes the handler when it is due, retrying until it works, then commits; false
/// if the server stopped first.
async fn flush_if_due(
    settings: Settings,
    consumer: &mut dyn LogConsumer,
    handler: &mut impl Handler,
    shutdown: &mut watch::Receiver<bool>,
) -> bool {
    if handler.flush_due().is_none_or(|due| due > Instant::now()) {
        return true;
    }
    loop {
        match handler.flush().await {
            Ok(()) => break,
            Err(why) => tracing::warn!(%why, "flushing failed; retrying"),
        }
        if !pause(shutdown).await {
            return false;
        }
    }
    commit(settings, consumer, handler).await;
    true
}

/// One last flush when the server stops, so a buffering handler publishes what it
/// holds; what fails here replays at the next start.
async fn flush_at_shutdown(
    settings: Settings,
    consumer: &mut dyn LogConsumer,
    handler: &mut impl Handler,
) {
    if !handler.holds_unflushed() {
        return;
    }
    match handler.flush().await {
        Ok(()) => commit(settings, consumer, handler).await,
        Err(why) => {
            tracing::warn!(%why, "flushing at shutdown failed; it replays at the next start")
        }
    }
}

/// The next batch; `None` when a group consumer saw nothing for a while but is not
/// stuck. A group whose log holds records past its committed position, yet none came,
/// lost its assignment (e.g. a rebalance that never completed): reconnect as a new
/// member. That check is off while the handler holds records unflushed, as the
/// position is then behind on purpose.
async fn next_batch(
    log: &dyn MessageLog,
    settings: Settings,
    consumer: &mut dyn LogConsumer,
    stall_check: bool,
) -> Result<Option<Vec<Record>>, String> {
    let Start::Group(group) = settings.start else {
        return consumer
            .next_records(settings.max_batch)
            .await
            .map(Some)
            .map_err(|e| e.to_string());
    };
    match tokio::time::timeout(STALL_CHECK, consumer.next_records(settings.max_batch)).await {
        Ok(batch) => batch.map(Some).map_err(|e| e.to_string()),
        Err(_) if stall_check && stalled(log, group).await => {
            Err("no progress with work pending".into())
        }
        Err(_) => Ok(None),
    }
}

/// Whether the log holds records past the group's committed position.
async fn stalled(log: &dyn MessageLog, group: &str) -> bool {
    match (log.tail().await, log.committed(group).await) {
        (Ok(tail), Ok(done)) => !done.covers(&tail),
        _ => false,
    }
}

/// Offers the batch until the handler takes it, or, when the store refuses it for
/// good, each of its events until taken or refused on its own (then skipped); false
/// if the server stopped first.
async fn handle_until_done(
    consumer: &'static str,
    handler: &mut impl Handler,
    batch: &[Record],
    shutdown: &mut watch::Receiver<bool>,
) -> bool {
    loop {
        match handler.handle(batch).await {
            Ok(()) => return true,
            Err(Failure::Retry(why)) => {
                tracing::warn!(%why, count = batch.len(), "a batch failed; retrying it")
            }
            Err(Failure::Refused(why)) => {
                if let [event] = batch {
                    skip(consumer, &event.event, &why);
                    return true;
                }
                tracing::warn!(%why, count = batch.len(), "a batch was refused; retrying it event by event");
                for event in batch {
                    if !handle_alone(consumer, handler, event, shutdown).await {
                        return false;
                    }
                }
                return true;
            }
        }
        if !pause(shutdown).await {
            return false;
        }
    }
}

/// Offers one event until the handler takes it or the store refuses it for good.
async fn handle_alone(
    consumer: &'static str,
    handler: &mut impl Handler,
    record: &Record,
    shutdown: &mut watch::Receiver<bool>,
) -> bool {
    loop {
        match handler.handle(std::slice::from_ref(record)).await {
            Ok(()) => return true,
            Err(Failure::Refused(why)) => {
                skip(consumer, &record.event, &why);
                return true;
            }
            Err(Failure::Retry(why)) => {
                tracing::warn!(%why, event = %record.event.id(), "an event failed; retrying it")
            }
        }
        if !pause(shutdown).await {
            return false;
        }
    }
}

/// Gives up on an event its consumer's store refuses for good.
fn skip(consumer: &'static str, event: &Event, why: &str) {
    tracing::error!(
        %why,
        event = %event.id(),
        conversation = %event.conversation_id(),
        "the store refuses this event for good; skipping it"
    );
    metrics::counter!(SKIPPED_METRIC, "consumer" => consumer).increment(1);
}

/// Waits [`PAUSE`]; false if the server started stopping meanwhile.
async fn pause(shutdown: &mut watch::Receiver<bool>) -> bool {
    wait(PAUSE, shutdown).await
}

/// Waits `time`; false if the server started stopping meanwhile.
async fn wait(time: Duration, shutdown: &mut watch::Receiver<bool>) -> bool {
    let stopped = tokio::select! {
        _ = tokio::time::sleep(time) => false,
        _ = shutdown.wait_for(|stop| *stop) => true,
    };
    !stopped && !*shutdown.borrow()
}

#[cfg(test)]
mod tests {
    use chat_protocol::{ConversationId, MessageId, UserId};

    use super::*;
    use crate::log::{Change, NewEvent};

    fn event(id: i64, body: &str) -> Record {
        let new = NewEvent {
            conversation_id: ConversationId(1),
            user_id: UserId(1),
            client_msg_id: uuid::Uuid::new_v4(),
            change: Change::Post {
                body: body.into(),
                reply_to: None,
                mentions: Vec::new(),
            },
        };
        Record {
            partition: 0,
            offset: id,
            event: Arc::new(new.stamp(MessageId(id), chrono::Utc::now())),
        }
    }

    /// A store that refuses any batch holding a body with a NUL (all or nothing, as a
    /// transaction), and is unavailable the first `outages` times it is asked.
    #[derive(Default)]
    struct PickyStore {
        outages: usize,
        calls: usize,
        stored: Vec<MessageId>,
    }

    #[async_trait]
    impl Handler for PickyStore {
        async fn handle(&mut self, batch: &[Record]) -> Result<(), Failure> {
            self.calls += 1;
            if self.outages > 0 {
                self.outages -= 1;
                return Err(Failure::Retry("down".into()));
            }
            let refused = batch.iter().any(|e| match e.event.as_ref() {
                Event::Message(m) => m.body.contains('\0'),
                _ => false,
            });
            if refused {
                return Err(Failure::Refused("a NUL in text".into()));
            }
            self.stored.extend(batch.iter().map(|e| e.event.id()));
            Ok(())
        }
    }

    #[tokio::test]
    async fn a_refused_batch_is_retried_event_by_event_and_only_the_bad_event_is_skipped() {
        let (_stop, mut shutdown) = watch::channel(false);
        let batch: Vec<_> = (1..=5)
            .map(|i| event(i, if i == 3 { "bad \0" } else { "good" }))
            .collect();
        let mut store = PickyStore::default();
        assert!(handle_until_done("test", &mut store, &batch, &mut shutdown).await);
        assert_eq!(
            store.stored,
            [1, 2, 4, 5].map(MessageId),
            "every other event is stored, in order"
        );
        assert_eq!(store.calls, 1 + 5, "the batch once, then each event once");
    }

    /// A consumer that only counts the commits it is asked for.
    #[derive(Default)]
    struct CountingConsumer {
        commits: usize,
    }

    #[async_trait]
    impl LogConsumer for CountingConsumer {
        async fn next_records(
            &mut self,
            _max: usize,
        ) -> Result<Vec<Record>, super::super::LogError> {
            std::future::pending().await
        }
        async fn commit(&mut self) -> Result<(), super::super::LogError> {
            self.commits += 1;
            Ok(())
        }
    }

    /// A handler that buffers everything until flushed, and is due at once.
    #[derive(Default)]
    struct Buffering {
        buffered: usize,
        flushes: usize,
    }

    #[async_trait]
    impl Handler for Buffering {
        async fn handle(&mut self, batch: &[Record]) -> Result<(), Failure> {
            self.buffered += batch.len();
            Ok(())
        }
        fn flush_due(&self) -> Option<Instant> {
            (self.buffered > 0).then(Instant::now)
        }
        async fn flush(&mut self) -> Result<(), Failure> {
            self.flushes += 1;
            self.buffered = 0;
            Ok(())
        }
        fn holds_unflushed(&self) -> bool {
            self.buffered > 0
        }
    }

    const GROUP_SETTINGS: Settings = Settings {
        name: "test",
        start: Start::Group("test"),
        max_batch: 10,
        linger: Duration::ZERO,
    };

    #[tokio::test]
    async fn the_position_is_committed_only_once_what_a_handler_buffered_is_flushed() {
        let (_stop, mut shutdown) = watch::channel(false);
        let mut consumer = CountingConsumer::default();
        let mut handler = Buffering::default();
        assert!(handle_until_done("test", &mut handler, &[event(1, "a")], &mut shutdown).await);
        commit(GROUP_SETTINGS, &mut consumer, &handler).await;
        assert_eq!(consumer.commits, 0, "nothing committed while buffered");
        assert!(flush_if_due(GROUP_SETTINGS, &mut consumer, &mut handler, &mut shutdown).await);
        assert_eq!(
            (handler.flushes, consumer.commits),
            (1, 1),
            "flushed, then committed"
        );
        assert!(flush_if_due(GROUP_SETTINGS, &mut consumer, &mut handler, &mut shutdown).await);
        assert_eq!(handler.flushes, 1, "nothing due, nothing flushed");
    }

    #[tokio::test]
    async fn an_unavailable_store_gets_the_same_batch_again_and_nothing_is_skipped() {
        let (_stop, mut shutdown) = watch::channel(false);
        let batch: Vec<_> = (1..=3).map(|i| event(i, "good")).collect();
        let mut store = PickyStore {
            outages: 1,
            ..Default::default()
        };
        assert!(handle_until_done("test", &mut store, &batch, &mut shutdown).await);
        assert_eq!(store.stored, [1, 2, 3].map(MessageId));
        assert_eq!(store.calls, 2, "the whole batch again after the pause");
    }
}
