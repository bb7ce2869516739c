//! The distributed message log on Apache Kafka (DESIGN.md §8).
//!
//! Topic `chat.messages`, keyed by conversation id so one conversation lives in one
//! partition and has one order everywhere. Records are the [`Event`] as JSON. The
//! producer is idempotent with `acks=all`; an append returns only once the broker
//! acknowledged it, or fails within `message.timeout.ms`, so nothing is acknowledged
//! to a client that the log does not hold. Ids are stamped under a lock together with
//! the enqueue, so within a partition ids increase in log order.
//!
//! Consumers: the fan-out of each node assigns every partition at the end (no group
//! membership, nothing committed); groups (`persister`) subscribe and commit
//! explicitly, after their batch is processed.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chat_protocol::events::Event;
use futures::FutureExt;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Offset, TopicPartitionList};

use super::{LogConsumer, LogError, MessageLog, NewEvent, Position, Record, now_ms};
use crate::snowflake::Snowflake;

/// How long an append may wait for the brokers before it is refused.
const DELIVERY_TIMEOUT_MS: u32 = 3_000;
/// How far apart the nodes' clocks may be.
const CLOCK_SKEW_ALLOWANCE: Duration = Duration::from_secs(2);
/// Committed positions and partition lists are reused this long, so many `sync`s
/// waiting at once cost the brokers a few requests, not one each per poll.
const COMMITTED_REUSE: Duration = Duration::from_millis(20);
const PARTITIONS_REUSE: Duration = Duration::from_secs(10);
const METADATA_TIMEOUT: Duration = Duration::from_secs(3);

#[derive(Clone, Debug)]
pub struct KafkaSettings {
    pub brokers: String,
    pub topic: String,
    pub partitions: i32,
    pub replication: i32,
    /// `fetch.wait.max.ms` of the consumers.
    pub fetch_wait_ms: u32,
}

pub struct KafkaLog {
    settings: KafkaSettings,
    ids: Arc<Snowflake>,
    /// Replaced when the idempotent producer hits a fatal error (e.g. the broker
    /// lost its producer state), so appends recover by themselves.
    producer: RwLock<FutureProducer>,
    /// Held while stamping an id and enqueueing, so ids follow log order.
    order: Mutex<()>,
    /// Clients that only read metadata and committed offsets, one per group.
    readers: Mutex<HashMap<String, Arc<BaseConsumer>>>,
    /// Recently read committed positions by group, and the partition list.
    recent: Mutex<Recent>,
    /// The last reading of the tail (or its failure) and when it began. Held while
    /// reading, so callers that ask at once share one reading instead of each asking
    /// the brokers.
    tail: tokio::sync::Mutex<Option<(Instant, Result<Position, LogError>)>>,
}

#[derive(Default)]
struct Recent {
    committed: HashMap<String, (Instant, Position)>,
    partitions: Option<(Instant, Vec<i32>)>,
}

fn client_config(settings: &KafkaSettings) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", &settings.brokers)
        .set("socket.keepalive.enable", "true")
        .set("reconnect.backoff.max.ms", "1000")
        .set("log_level", "4");
    config
}

fn unavailable(error: impl std::fmt::Display) -> LogError {
    LogError::Unavailable(error.to_string())
}

/// The topic's `min.insync.replicas` for a replication factor, when it is set: with
/// three replicas or more, `acks=all` then means at least two brokers hold each
/// acknowledged record, so losing one broker loses nothing acknowledged (and a
/// partition down to its last replica refuses writes rather than risk them). Below
/// three it stays the broker's default (1): two replicas requiring two would stop
/// every send while one broker is down.
fn min_insync_replicas(replication: i32) -> Option<&'static str> {
    (replication >= 3).then_some("2")
}

impl KafkaLog {
    /// Connects, creating the topic if it is missing (a topic that exists is left as
    /// it is: change its settings with Kafka's own tools).
    pub async fn open(settings: KafkaSettings, ids: Arc<Snowflake>) -> Result<Self, LogError> {
        let admin: AdminClient<DefaultClientContext> =
            client_config(&settings).create().map_err(unavailable)?;
        let mut topic = NewTopic::new(
            &settings.topic,
            settings.partitions,
            TopicReplication::Fixed(settings.replication),
        );
        if let Some(min_insync) = min_insync_replicas(settings.replication) {
            topic = topic.set("min.insync.replicas", min_insync);
        }
        let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
        let created = admin
            .create_topics([&topic], &options)
            .await
            .map_err(unavailable)?;
        for result in created {
            match result {
                Ok(_) => tracing::info!(topic = %settings.topic, "created the message topic"),
                Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((name, code)) => {
                    return Err(LogError::Unavailable(format!(
                        "creating topic {name}: {code}"
                    )));
                }
            }
        }
        let producer = Self::producer(&settings)?;
        let log = Self {
            settings,
            ids,
            producer: RwLock::new(producer),
            order: Mutex::new(()),
            readers: Mutex::new(HashMap::new()),
            recent: Mutex::new(Recent::default()),
            tail: tokio::sync::Mutex::new(None),
        };
        log.partitions().await?;
        Ok(log)
    }

    fn producer(settings: &KafkaSettings) -> Result<FutureProducer, LogError> {
        client_config(settings)
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("linger.ms", "1")
            .set("message.timeout.ms", DELIVERY_TIMEOUT_MS.to_string())
            .create()
            .map_err(unavailable)
    }

    /// Reads the end of every partition from the brokers.
    async fn read_tail(&self) -> Result<Position, LogError> {
        let partitions = self.partitions().await?;
        let reader = self.reader("chat-metadata")?;
        let topic = self.settings.topic.clone();
        tokio::task::spawn_blocking(move || {
            let mut tail = BTreeMap::new();
            for partition in partitions {
                let (_, high) = reader
                    .fetch_watermarks(&topic, partition, METADATA_TIMEOUT)
                    .map_err(unavailable)?;
                tail.insert(partition, high);
            }
            Ok(Position(tail))
        })
        .await
        .map_err(unavailable)?
    }

    fn reader(&self, group: &str) -> Result<Arc<BaseConsumer>, LogError> {
        let mut readers = self.readers.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(reader) = readers.get(group) {
            return Ok(reader.clone());
        }
        let reader: BaseConsumer = client_config(&self.settings)
            .set("group.id", group)
            .set("enable.auto.commit", "false")
            .create()
            .map_err(unavailable)?;
        let reader = Arc::new(reader);
        readers.insert(group.to_owned(), reader.clone());
        Ok(reader)
    }

    fn recent(&self) -> std::sync::MutexGuard<'_, Recent> {
        self.recent.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The partition numbers of the topic (from the brokers' metadata).
    async fn partitions(&self) -> Result<Vec<i32>, LogError> {
        if let Some((at, partitions)) = &self.recent().partitions
            && at.elapsed() < PARTITIONS_REUSE
        {
            return Ok(partitions.clone());
        }
        let partitions = self.fetch_partitions().await?;
        self.recent().partitions = Some((Instant::now(), partitions.clone()));
        Ok(partitions)
    }

    async fn fetch_partitions(&self) -> Result<Vec<i32>, LogError> {
        let reader = self.reader("chat-metadata")?;
        let topic = self.settings.topic.clone();
        tokio::task::spawn_blocking(move || {
            let metadata = reader
                .fetch_metadata(Some(&topic), METADATA_TIMEOUT)
                .map_err(unavailable)?;
            let partitions: Vec<i32> = metadata
                .topics()
                .iter()
                .filter(|t| t.name() == topic)
                .flat_map(|t| t.partitions().iter().map(|p| p.id()))
                .collect();
            if partitions.is_empty() {
                return Err(LogError::Unavailable(format!(
                    "topic {topic} has no partitions"
                )));
            }
            Ok(partitions)
        })
        .await
        .map_err(unavailable)?
    }

    async fn fetch_committed(&self, group: &str) -> Result<Position, LogError> {
        let partitions = self.partitions().await?;
        let list = self.all_partitions(&partitions, Offset::Invalid)?;
        let reader = self.reader(group)?;
        tokio::task::spawn_blocking(move || {
            let committed = reader
                .committed_offsets(list, METADATA_TIMEOUT)
                .map_err(unavailable)?;
            let position = committed
                .elements()
                .iter()
                .map(|e| {
                    (
                        e.partition(),
                        if let Offset::Offset(next) = e.offset() {
                            next
                        } else {
                            0
                        },
                    )
                })
                .collect();
            Ok(Position(position))
        })
        .await
        .map_err(unavailable)?
    }

    fn all_partitions(
        &self,
        partitions: &[i32],
        offset: Offset,
    ) -> Result<TopicPartitionList, LogError> {
        let mut list = TopicPartitionList::new();
        for partition in partitions {
            list.add_partition_offset(&self.settings.topic, *partition, offset)
                .map_err(unavailable)?;
        }
        Ok(list)
    }

    fn stream_consumer(&self, group: &str) -> Result<StreamConsumer, LogError> {
        client_config(&self.settings)
            .set("group.id", group)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest")
            .set("session.timeout.ms", "6000")
            .set("heartbeat.interval.ms", "1500")
            // Deliver promptly: a broker may hold a fetch until this wait runs out.
            .set("fetch.wait.max.ms", self.settings.fetch_wait_ms.to_string())
            .create()
            .map_err(unavailable)
    }

    /// After a fatal producer error, start over with a fresh idempotent producer. A
    /// fenced producer id counts as fatal too: after appends time out (a frozen
    /// broker) some brokers (tansu) answer the epoch bump with `ProducerFenced` to
    /// every later append, and only a new producer id gets past it.
    fn recover(&self, error: &KafkaError) {
        let producer = self
            .producer
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let fenced = matches!(
            error.rdkafka_error_code(),
            Some(RDKafkaErrorCode::ProducerFenced | RDKafkaErrorCode::InvalidProducerEpoch)
        );
        if producer.client().fatal_error().is_none() && !fenced {
            return;
        }
        tracing::warn!(%error, "the Kafka producer failed fatally; replacing it");
        match Self::producer(&self.settings) {
            Ok(fresh) => *self.producer.write().unwrap_or_else(|p| p.into_inner()) = fresh,
            Err(error) => tracing::error!(%error, "could not create a new Kafka producer"),
        }
    }
}

#[async_trait]
impl MessageLog for KafkaLog {
    async fn append(&self, new: NewEvent) -> Result<Arc<Event>, LogError> {
        let producer = self
            .producer
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let (event, delivery) = {
            let _order = self.order.lock().unwrap_or_else(|p| p.into_inner());
            let event = new.stamp(self.ids.next_id(), now_ms());
            let payload = serde_json::to_vec(&event).map_err(unavailable)?;
            let key = event.conversation_id().to_string();
            let record = FutureRecord::to(&self.settings.topic)
                .key(&key)
                .payload(&payload);
            let delivery = producer
                .send_result(record)
                .map_err(|(error, _)| unavailable(error))?;
            (event, delivery)
        };
        match delivery.await {
            Ok(Ok(_)) => Ok(Arc::new(event)),
            Ok(Err((error, _))) => {
                self.recover(&error);
                Err(unavailable(error))
            }
            Err(_) => Err(LogError::Unavailable(
                "the Kafka producer was dropped".into(),
            )),
        }
    }

    async fn tail(&self) -> Result<Position, LogError> {
        // A reading that began after this call did is as good as a new one: it
        // includes every append acknowledged before the call.
        let asked = Instant::now();
        let mut last = self.tail.lock().await;
        if let Some((began, tail)) = last.as_ref()
            && *began >= asked
        {
            return tail.clone();
        }
        let began = Instant::now();
        let tail = self.read_tail().await;
        *last = Some((began, tail.clone()));
        tail
    }

    async fn committed(&self, group: &str) -> Result<Position, LogError> {
        // A slightly old committed position only makes a waiter wait a little longer.
        if let Some((at, position)) = self.recent().committed.get(group)
            && at.elapsed() < COMMITTED_REUSE
        {
            return Ok(position.clone());
        }
        let position = self.fetch_committed(group).await?;
        self.recent()
            .committed
            .insert(group.to_owned(), (Instant::now(), position.clone()));
        Ok(position)
    }

    async fn consume_from_end(&self) -> Result<Box<dyn LogConsumer>, LogError> {
        // The end as of now, as explicit offsets: `Offset::End` would be resolved only
        // at the first fetch, skipping whatever is appended in between.
        let tail = self.tail().await?;
        let mut assignment = TopicPartitionList::new();
        for (partition, next) in &tail.0 {
            assignment
                .add_partition_offset(&self.settings.topic, *partition, Offset::Offset(*next))
                .map_err(unavailable)?;
        }
        // A throwaway group id: assignment is manual and nothing is committed.
        let consumer = self.stream_consumer(&format!("chat-fanout-{}", uuid::Uuid::new_v4()))?;
        consumer.assign(&assignment).map_err(unavailable)?;
        Ok(Box::new(KafkaConsumer {
            consumer,
            topic: self.settings.topic.clone(),
            read: ReadPositions {
                next: tail.0,
                gaps: HashMap::new(),
            },
            commits: false,
        }))
    }

    async fn consume_as(&self, group: &str) -> Result<Box<dyn LogConsumer>, LogError> {
        let consumer = self.stream_consumer(group)?;
        consumer
            .subscribe(&[&self.settings.topic])
            .map_err(unavailable)?;
        Ok(Box::new(KafkaConsumer {
            consumer,
            topic: self.settings.topic.clone(),
            read: ReadPositions::default(),
            commits: true,
        }))
    }

    async fn check(&self) -> Result<(), LogError> {
        // Ask the brokers every time: readiness must not answer from a cache.
        self.fetch_partitions().await.map(|_| ())
    }

    /// Nodes stamp ids before producing, so two nodes' messages to one conversation
    /// can land in the other order; an acknowledged append took at most the delivery
    /// timeout, and node clocks are assumed within a few seconds (NTP).
    fn reorder_window(&self) -> Duration {
        Duration::from_millis(u64::from(DELIVERY_TIMEOUT_MS)) + CLOCK_SKEW_ALLOWANCE
    }
}

struct KafkaConsumer {
    consumer: StreamConsumer,
    topic: String,
    read: ReadPositions,
    commits: bool,
}

#[derive(Default)]
struct ReadPositions {
    /// Next offset per partition, past everything returned so far.
    next: BTreeMap<i32, i64>,
    /// Partitions where a record arrived past `next`: the missing offset and when it
    /// was first missed.
    gaps: HashMap<i32, (i64, Instant)>,
}

/// How long a gap in a partition's offsets is read again before it is taken as real.
/// This topic has no transactions and no compaction, so its offsets have no gaps;
/// but a broker may show a batch before an earlier one that it has numbered and not
/// yet stored (tansu advances the high watermark first), and taking the later one
/// would skip the earlier for good.
const GAP_PATIENCE: Duration = Duration::from_secs(2);

/// What to do with a record, given the next offset expected in its partition.
#[derive(Debug, PartialEq)]
enum Arrival {
    Take,
    /// Offsets from `missing` on have not arrived: read the partition from there again.
    ReadAgain {
        missing: i64,
    },
    /// Offsets from `missing` on never came within [`GAP_PATIENCE`]: log and take it.
    TakeAfterGap {
        missing: i64,
    },
}

fn arrival(
    expected: Option<i64>,
    offset: i64,
    gap_since: Option<(i64, Instant)>,
    now: Instant,
) -> Arrival {
    match expected {
        Some(missing) if offset > missing => match gap_since {
            Some((at, since)) if at == missing && now.duration_since(since) >= GAP_PATIENCE => {
                Arrival::TakeAfterGap { missing }
            }
            _ => Arrival::ReadAgain { missing },
        },
        _ => Arrival::Take,
    }
}

impl ReadPositions {
    /// Notes the record's position and decodes it into `out`, unless it arrived past
    /// a gap: then `consumer` reads the partition again from the gap.
    fn take(
        &mut self,
        consumer: &StreamConsumer,
        topic: &str,
        record: &impl rdkafka::message::Message,
        out: &mut Vec<Record>,
    ) {
        let (partition, offset) = (record.partition(), record.offset());
        let now = Instant::now();
        let gap = self.gaps.get(&partition).copied();
        match arrival(self.next.get(&partition).copied(), offset, gap, now) {
            Arrival::Take => {}
            Arrival::ReadAgain { missing } => {
                if gap.is_none_or(|(at, _)| at != missing) {
                    self.gaps.insert(partition, (missing, now));
                }
                // Zero timeout: the seek is queued, not awaited.
                match consumer.seek(topic, partition, Offset::Offset(missing), Duration::ZERO) {
                    Ok(()) => return,
                    Err(error) => {
                        tracing::warn!(%error, partition, missing, offset, "cannot read a gap again; taking what came")
                    }
                }
            }
            Arrival::TakeAfterGap { missing } => tracing::warn!(
                partition,
                missing,
                offset,
                "offsets missing from the log; going on without them"
            ),
        }
        self.gaps.remove(&partition);
        self.next.insert(partition, offset + 1);
        match record.payload().map(Event::decode) {
            Some(Ok(event)) => out.push(Record {
                partition,
                offset,
                event: Arc::new(event),
            }),
            // Not ours (or corrupt): skip it rather than stall the partition.
            _ => tracing::warn!(partition, offset, "skipping an unreadable record"),
        }
    }
}

#[async_trait]
impl LogConsumer for KafkaConsumer {
    async fn next_records(&mut self, max: usize) -> Result<Vec<Record>, LogError> {
        let mut out = Vec::new();
        while out.is_empty() {
            match self.consumer.recv().await {
                Ok(record) => self
                    .read
                    .take(&self.consumer, &self.topic, &record, &mut out),
                Err(error) => {
                    // Transient (a broker restarting): librdkafka reconnects by itself.
                    tracing::warn!(%error, "reading the log");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
        while out.len() < max {
            let Some(Ok(record)) = self.consumer.recv().now_or_never() else {
                break;
            };
            self.read
                .take(&self.consumer, &self.topic, &record, &mut out);
        }
        Ok(out)
    }

    async fn commit(&mut self) -> Result<(), LogError> {
        if !self.commits || self.read.next.is_empty() {
            return Ok(());
        }
        let mut list = TopicPartitionList::new();
        for (partition, next) in &self.read.next {
            list.add_partition_offset(&self.topic, *partition, Offset::Offset(*next))
                .map_err(unavailable)?;
        }
        self.consumer
            .commit(&list, CommitMode::Async)
            .map_err(unavailable)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_in_sequence_or_from_an_unknown_position_are_taken() {
        let now = Instant::now();
        assert_eq!(arrival(Some(5), 5, None, now), Arrival::Take);
        assert_eq!(arrival(None, 42, None, now), Arrival::Take);
        // Earlier than expected: the partition was read again (a seek, a rebalance).
        assert_eq!(arrival(Some(5), 3, None, now), Arrival::Take);
    }

    #[test]
    fn a_record_past_a_gap_reads_the_gap_again_until_patience_runs_out() {
        let start = Instant::now();
        assert_eq!(
            arrival(Some(5), 7, None, start),
            Arrival::ReadAgain { missing: 5 }
        );
        let waited = start + GAP_PATIENCE / 2;
        assert_eq!(
            arrival(Some(5), 7, Some((5, start)), waited),
            Arrival::ReadAgain { missing: 5 }
        );
        let gave_up = start + GAP_PATIENCE;
        assert_eq!(
            arrival(Some(5), 7, Some((5, start)), gave_up),
            Arrival::TakeAfterGap { missing: 5 }
        );
        // A new gap further on starts its own wait.
        assert_eq!(
            arrival(Some(9), 12, Some((5, start)), gave_up),
            Arrival::ReadAgain { missing: 9 }
        );
    }

    #[test]
    fn three_replicas_or_more_require_two_in_sync() {
        assert_eq!(min_insync_replicas(1), None);
        assert_eq!(min_insync_replicas(2), None);
        assert_eq!(min_insync_replicas(3), Some("2"));
        assert_eq!(min_insync_replicas(5), Some("2"));
    }

    /// Against a real broker (tansu, `CHAT_TEST_TANSU`): a consumer that expects an
    /// offset its broker skipped reads the partition again from there. Assigned at
    /// the third of four records while expecting the first, it returns all four,
    /// once each, in order.
    #[tokio::test]
    async fn a_gap_is_read_again_from_the_broker() {
        let broker = chat_test_support::broker::Broker::start();
        let brokers = broker.address();
        let settings = KafkaSettings {
            brokers,
            topic: "chat.messages".into(),
            partitions: 2,
            replication: 1,
            fetch_wait_ms: 50,
        };
        let log = KafkaLog::open(settings, Arc::new(Snowflake::new(5)))
            .await
            .expect("open the log");
        let before = log.tail().await.expect("tail").0;
        let mut appended = Vec::new();
        for i in 0..4 {
            let event = NewEvent {
                conversation_id: chat_protocol::ConversationId(1),
                user_id: chat_protocol::UserId(1),
                client_msg_id: uuid::Uuid::new_v4(),
                change: super::super::Change::Post {
                    body: format!("record {i}"),
                    reply_to: None,
                    mentions: Vec::new(),
                },
            };
            appended.push(log.append(event).await.expect("append").id());
        }
        let after = log.tail().await.expect("tail").0;
        let (partition, first) = before
            .iter()
            .find(|(p, start)| after[p] == **start + 4)
            .map(|(p, start)| (*p, *start))
            .expect("the conversation's partition");

        let consumer = log
            .stream_consumer(&format!("gap-test-{}", uuid::Uuid::new_v4()))
            .expect("consumer");
        let mut assignment = TopicPartitionList::new();
        assignment
            .add_partition_offset(&log.settings.topic, partition, Offset::Offset(first + 2))
            .expect("assignment");
        consumer.assign(&assignment).expect("assign");
        let mut gapped = KafkaConsumer {
            consumer,
            topic: log.settings.topic.clone(),
            read: ReadPositions {
                next: BTreeMap::from([(partition, first)]),
                gaps: HashMap::new(),
            },
            commits: false,
        };
        let mut seen = Vec::new();
        while seen.len() < appended.len() {
            let batch = tokio::time::timeout(Duration::from_secs(10), gapped.next_batch(10))
                .await
                .expect("the records within 10 s")
                .expect("a batch");
            seen.extend(batch.iter().map(|e| e.id()));
        }
        assert_eq!(seen, appended);
    }
}
