//! The search indexer: consumer group `search` of the log, a [`Handler`] of the
//! consumer runner. It keeps the [`SearchIndex`] in step with the log, apart from the
//! persister, so indexing never holds up storing history; it lingers between small
//! batches because a full-text index is far cheaper to write in bulk. Search results
//! come from history (bodies as they are now, deleted messages left out), so an index
//! a moment behind the log can miss a newest message but never shows a stale body.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::log::runner::{self, Failure, Handler, Start};
use crate::log::{self, Record};
use crate::persister::store_failure;
use crate::store::SearchIndex;

pub const GROUP: &str = "search";

/// Batches of up to 5,000 events, read at most every 100 ms when the log is quiet
/// enough to give smaller ones: the index trails the log by about that much.
pub const SETTINGS: runner::Settings = runner::Settings {
    name: GROUP,
    start: Start::Group(GROUP),
    max_batch: 5_000,
    linger: Duration::from_millis(100),
};

pub struct Indexer {
    pub index: Arc<dyn SearchIndex>,
}

#[async_trait]
impl Handler for Indexer {
    async fn handle(&mut self, records: &[Record]) -> Result<(), Failure> {
        self.index
            .index(&log::events(records))
            .await
            .map_err(|error| store_failure("indexing for search", error))
    }
}
