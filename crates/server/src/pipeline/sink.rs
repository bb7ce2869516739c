//! The dataset sink: consumer group `dataset` of the log, a [`Handler`] of the
//! consumer runner that turns conversation events into rows of the dataset table
//! ([`table`](super::table)).
//!
//! It buffers rows and commits them to the table by size (`CHAT_DATASET_FLUSH_BYTES`)
//! or by age (`CHAT_DATASET_FLUSH_MS`), so files are tens of MB on a busy system and a
//! quiet one still publishes within the flush time. The table, not the group's
//! committed position, says what is done: each commit stores per log partition the
//! last offset it covers, and the sink skips every record at or below that (read
//! from the table the first time a partition shows up, then kept in memory). The
//! runner commits the group's position only when nothing is buffered, so that
//! position is never past the table; it only measures lag. A replay after a crash,
//! a failed commit or a rebalance is therefore harmless: skipped, never written twice.
//!
//! Consent: an event enters the table only if its author allowed it when it happened
//! (their choices from the Users port, the operator's default before any). The
//! history is cached per user and asked again when an event is newer than the last
//! answer, so a choice made before a message was sent is always seen.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chat_protocol::events::Event;
use chat_protocol::{ConversationId, UserId};
use chrono::{DateTime, Utc};
use tokio::time::Instant;

use super::pseudonym::Pseudonymizer;
use super::rows::{self, ConversationFacts, Row};
use super::table::DatasetTable;
use crate::log::Record;
use crate::log::runner::{self, Failure, Handler, Start};
use crate::persister::store_failure;
use crate::store::{ConsentChange, Conversations, Users};

pub const GROUP: &str = "dataset";

/// Large batches (rows are cheap to build), read at most every 200 ms when the log
/// is quiet enough to give smaller ones.
pub const SETTINGS: runner::Settings = runner::Settings {
    name: GROUP,
    start: Start::Group(GROUP),
    max_batch: 5_000,
    linger: Duration::from_millis(200),
};

/// How long a conversation's kind and size are reused before being asked again.
const CONVERSATION_FACTS_TTL: Duration = Duration::from_secs(60);
/// Entries kept in each cache before it is emptied (a bound on memory, not a tuning).
const MAX_CACHED: usize = 100_000;

/// The metrics the sink keeps.
pub const EVENTS_WRITTEN_METRIC: &str = "chat_dataset_events_written_total";
pub const EVENTS_EXCLUDED_METRIC: &str = "chat_dataset_events_excluded_total";
pub const COMMITS_METRIC: &str = "chat_dataset_commits_total";
pub const LAST_COMMIT_METRIC: &str = "chat_dataset_last_commit_timestamp_seconds";

/// How the sink flushes.
#[derive(Clone, Copy, Debug)]
pub struct FlushPolicy {
    /// Commit once the buffered rows are about this large.
    pub max_buffered_bytes: usize,
    /// Commit once the oldest buffered record is this old.
    pub max_age: Duration,
}

/// What is done, per log partition: the offset of the last record taken (stored in
/// the table, or buffered for its next commit).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Progress {
    last_taken: BTreeMap<i32, Option<i64>>,
}

impl Progress {
    /// Whether the table's marker for `partition` is known yet.
    pub fn knows(&self, partition: i32) -> bool {
        self.last_taken.contains_key(&partition)
    }

    /// Notes the table's marker for `partition` (`None`: nothing of it stored).
    pub fn start_at(&mut self, partition: i32, stored: Option<i64>) {
        self.last_taken.insert(partition, stored);
    }

    /// Whether the record at `offset` is past everything taken from `partition`.
    pub fn is_new(&self, partition: i32, offset: i64) -> bool {
        self.last_taken
            .get(&partition)
            .copied()
            .flatten()
            .is_none_or(|last| offset > last)
    }

    pub fn take(&mut self, partition: i32, offset: i64) {
        self.last_taken.insert(partition, Some(offset));
    }
}

struct Cached<T> {
    value: T,
    at: DateTime<Utc>,
}

pub struct DatasetSink {
    table: DatasetTable,
    pseudonyms: Pseudonymizer,
    users: Arc<dyn Users>,
    conversations: Arc<dyn Conversations>,
    consent_by_default: bool,
    policy: FlushPolicy,
    progress: Progress,
    /// Rows waiting for the next commit.
    rows: Vec<Row>,
    buffered_bytes: usize,
    /// Per partition, the last offset taken since the last commit: the markers the
    /// next commit carries.
    unflushed: BTreeMap<i32, i64>,
    /// When the oldest record not yet committed was taken.
    unflushed_since: Option<Instant>,
    /// A commit failed without saying whether it landed: read the table again first.
    table_uncertain: bool,
    /// Each user's choices, and when they were read.
    consents: HashMap<UserId, Cached<Vec<ConsentChange>>>,
    usernames: HashMap<UserId, String>,
    facts: HashMap<ConversationId, (ConversationFacts, Instant)>,
}

impl DatasetSink {
    pub fn new(
        table: DatasetTable,
        pseudonyms: Pseudonymizer,
        users: Arc<dyn Users>,
        conversations: Arc<dyn Conversations>,
        consent_by_default: bool,
        policy: FlushPolicy,
    ) -> Self {
        Self {
            table,
            pseudonyms,
            users,
            conversations,
            consent_by_default,
            policy,
            progress: Progress::default(),
            rows: Vec::new(),
            buffered_bytes: 0,
            unflushed: BTreeMap::new(),
            unflushed_since: None,
            table_uncertain: false,
            consents: HashMap::new(),
            usernames: HashMap::new(),
            facts: HashMap::new(),
        }
    }

    /// Reads the table's marker for every partition of `batch` not seen yet.
    async fn learn_partitions(&mut self, batch: &[Record]) -> Result<(), Failure> {
        let partitions: HashSet<i32> = batch.iter().map(|r| r.partition).collect();
        for partition in partitions {
            if self.progress.knows(partition) {
                continue;
            }
            let stored = self
                .table
                .stored_offset(partition)
                .await
                .map_err(|e| Failure::Retry(e.to_string()))?;
            tracing::info!(
                partition,
                ?stored,
                "the dataset table resumes after this offset"
            );
            self.progress.start_at(partition, stored);
        }
        Ok(())
    }

    /// Reads the choices of the authors in `events` whose cached choices are older
    /// than their event.
    async fn refresh_consents(&mut self, events: &[&Event]) -> Result<(), Failure> {
        let stale: Vec<UserId> = distinct(
            events
                .iter()
                .filter(|e| {
                    self.consents
                        .get(&e.user_id())
                        .is_none_or(|cached| cached.at < e.at())
                })
                .map(|e| e.user_id()),
        );
        if stale.is_empty() {
            return Ok(());
        }
        let asked_at = Utc::now();
        let changes = self
            .users
            .dataset_consents(&stale)
            .await
            .map_err(|e| store_failure("reading dataset consents", e))?;
        if self.consents.len() > MAX_CACHED {
            self.consents.clear();
        }
        for user in &stale {
            self.consents.insert(
                *user,
                Cached {
                    value: Vec::new(),
                    at: asked_at,
                },
            );
        }
        for change in changes {
            if let Some(cached) = self.consents.get_mut(&change.user_id) {
                cached.value.push(change);
            }
        }
        Ok(())
    }

    fn allowed(&self, event: &Event) -> bool {
        self.consents.get(&event.user_id()).is_some_and(|cached| {
            rows::consent_at(&cached.value, self.consent_by_default, event.at())
        })
    }

    /// Reads the usernames of mentioned users and the facts of conversations the
    /// caches lack.
    async fn refresh_lookups(&mut self, events: &[&Event]) -> Result<(), Failure> {
        let now = Instant::now();
        let unknown_users: Vec<UserId> = distinct(
            events
                .iter()
                .flat_map(|e| mentions(e).iter().copied())
                .filter(|id| !self.usernames.contains_key(id)),
        );
        if !unknown_users.is_empty() {
            let users = self
                .users
                .users(&unknown_users)
                .await
                .map_err(|e| store_failure("reading mentioned users", e))?;
            if self.usernames.len() > MAX_CACHED {
                self.usernames.clear();
            }
            for user in users {
                self.usernames
                    .insert(user.id, user.username.to_ascii_lowercase());
            }
        }
        let stale: Vec<ConversationId> =
            distinct(events.iter().map(|e| e.conversation_id()).filter(|id| {
                self.facts
                    .get(id)
                    .is_none_or(|(_, at)| now.duration_since(*at) > CONVERSATION_FACTS_TTL)
            }));
        if stale.is_empty() {
            return Ok(());
        }
        let records = self
            .conversations
            .conversations(&stale)
            .await
            .map_err(|e| store_failure("reading conversations", e))?;
        if self.facts.len() > MAX_CACHED {
            self.facts.clear();
        }
        for record in records {
            let members = self
                .conversations
                .member_ids(record.id)
                .await
                .map_err(|e| store_failure("reading conversation members", e))?;
            let facts = ConversationFacts {
                kind: record.kind,
                size: u32::try_from(members.len()).unwrap_or(u32::MAX),
            };
            self.facts.insert(record.id, (facts, now));
        }
        Ok(())
    }

    /// Commits the buffered rows with their markers.
    async fn commit(&mut self) -> Result<(), Failure> {
        if self.table_uncertain {
            self.drop_what_the_table_has().await?;
        }
        if self.rows.is_empty() {
            // Nothing to publish (everything was excluded): a replay of these records
            // would be excluded again, so they need no marker.
            self.unflushed.clear();
            self.unflushed_since = None;
            return Ok(());
        }
        let now_ms = Utc::now().timestamp_millis();
        match self.table.append(&self.rows, &self.unflushed, now_ms).await {
            Ok(version) => {
                metrics::counter!(EVENTS_WRITTEN_METRIC).increment(self.rows.len() as u64);
                metrics::counter!(COMMITS_METRIC).increment(1);
                metrics::gauge!(LAST_COMMIT_METRIC).set(now_ms as f64 / 1000.0);
                tracing::debug!(
                    version,
                    rows = self.rows.len(),
                    "committed to the dataset table"
                );
                self.rows.clear();
                self.buffered_bytes = 0;
                self.unflushed.clear();
                self.unflushed_since = None;
                Ok(())
            }
            Err(error) => {
                self.table_uncertain = true;
                Err(Failure::Retry(error.to_string()))
            }
        }
    }

    /// After a commit whose outcome is unknown: reads the table again, and if it
    /// holds that commit (its markers are there), forgets the buffer.
    async fn drop_what_the_table_has(&mut self) -> Result<(), Failure> {
        self.table
            .reload()
            .await
            .map_err(|e| Failure::Retry(e.to_string()))?;
        let mut landed = true;
        for (partition, offset) in &self.unflushed {
            let stored = self
                .table
                .stored_offset(*partition)
                .await
                .map_err(|e| Failure::Retry(e.to_string()))?;
            landed &= stored.is_some_and(|stored| stored >= *offset);
        }
        if landed {
            tracing::info!("the commit that reported a failure had landed");
            self.rows.clear();
            self.buffered_bytes = 0;
            self.unflushed.clear();
            self.unflushed_since = None;
        }
        self.table_uncertain = false;
        Ok(())
    }
}

/// Each item once.
fn distinct<T: Eq + std::hash::Hash>(items: impl Iterator<Item = T>) -> Vec<T> {
    items.collect::<HashSet<_>>().into_iter().collect()
}

fn mentions(event: &Event) -> &[UserId] {
    match event {
        Event::Message(m) => &m.mentions,
        Event::Edit(e) => &e.mentions,
        Event::Delete(_) | Event::Reaction(_) => &[],
    }
}

#[async_trait]
impl Handler for DatasetSink {
    async fn handle(&mut self, batch: &[Record]) -> Result<(), Failure> {
        self.learn_partitions(batch).await?;
        let fresh: Vec<&Record> = batch
            .iter()
            .filter(|r| self.progress.is_new(r.partition, r.offset))
            .collect();
        if fresh.is_empty() {
            return Ok(());
        }
        let events: Vec<&Event> = fresh.iter().map(|r| r.event.as_ref()).collect();
        self.refresh_consents(&events).await?;
        let allowed: Vec<&Event> = events.into_iter().filter(|e| self.allowed(e)).collect();
        self.refresh_lookups(&allowed).await?;
        // Everything looked up: from here on nothing fails, so the batch is taken
        // whole or not at all.
        let mut excluded = 0u64;
        for record in fresh {
            let event = record.event.as_ref();
            let facts = self.facts.get(&event.conversation_id()).map(|(f, _)| *f);
            match facts {
                Some(facts) if self.allowed(event) => {
                    let row = rows::row(event, &self.pseudonyms, facts, &self.usernames);
                    self.buffered_bytes += row.approx_bytes();
                    self.rows.push(row);
                }
                // Not allowed, or a conversation the directory no longer has.
                _ => excluded += 1,
            }
            self.progress.take(record.partition, record.offset);
            self.unflushed.insert(record.partition, record.offset);
            self.unflushed_since.get_or_insert_with(Instant::now);
        }
        metrics::counter!(EVENTS_EXCLUDED_METRIC).increment(excluded);
        Ok(())
    }

    fn flush_due(&self) -> Option<Instant> {
        let since = self.unflushed_since?;
        if self.buffered_bytes >= self.policy.max_buffered_bytes {
            return Some(Instant::now());
        }
        Some(since + self.policy.max_age)
    }

    async fn flush(&mut self) -> Result<(), Failure> {
        self.commit().await
    }

    fn holds_unflushed(&self) -> bool {
        !self.unflushed.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_at_or_below_the_stored_offset_are_skipped() {
        let mut progress = Progress::default();
        progress.start_at(0, Some(41));
        progress.start_at(1, None);
        assert!(!progress.is_new(0, 40));
        assert!(!progress.is_new(0, 41), "the stored offset itself is done");
        assert!(progress.is_new(0, 42));
        assert!(progress.is_new(1, 0), "nothing of partition 1 is stored");
        progress.take(1, 7);
        assert!(!progress.is_new(1, 7), "a replay of a buffered record");
        assert!(progress.is_new(1, 8));
    }
}
