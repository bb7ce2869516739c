//! The dataset table on disk: a Delta Lake table (the `deltalake` crate) under
//! `CHAT_DATASET_DIR`, partitioned by `day`, in Parquet files compressed with ZSTD
//! that carry [`SCHEMA_VERSION`] in their metadata.
//!
//! Delta is what makes the sink exactly-once: a commit is one atomic file in
//! `_delta_log/`, and each commit carries, beside its data files, one application
//! transaction marker per log partition (`chat.messages-<partition>` → the offset of
//! the last record the commit covers). Data files written before a commit lands are
//! invisible to readers, so a kill at any instant shows either the whole commit or
//! none of it, and a restart reads the markers to know where the table ends. (The
//! files of a commit that never landed stay on disk, unreferenced, for a later
//! vacuum.)
//!
//! Every [`CHECKPOINT_EVERY_VERSIONS`] commits the table gets a checkpoint (one
//! Parquet file summing up the log, markers included), so opening it reads a
//! checkpoint and a few commits instead of every commit since the table began: at
//! one commit a minute that would be 1,440 more JSON files to read per day.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use deltalake::arrow::array::{
    ArrayRef, Date32Array, Int32Array, Int64Array, ListBuilder, RecordBatch, StringArray,
    StringBuilder, TimestampMicrosecondArray,
};
use deltalake::arrow::compute::cast;
use deltalake::kernel::transaction::CommitProperties;
use deltalake::kernel::{ArrayType, DataType, StructField, Transaction};
use deltalake::parquet::basic::{Compression, ZstdLevel};
use deltalake::parquet::file::metadata::KeyValue;
use deltalake::parquet::file::properties::WriterProperties;
use deltalake::writer::{DeltaWriter, RecordBatchWriter};
use deltalake::{DeltaTable, DeltaTableError, TableProperty};

use super::rows::{Row, SCHEMA_VERSION, SCHEMA_VERSION_KEY};

/// The ZSTD level: 3 is zstd's own default, a good ratio at little CPU.
const ZSTD_LEVEL: i32 = 3;

/// How many commits pass between checkpoints (kafka-delta-ingest's default is 10 at
/// a commit every few seconds; this sink commits once a minute when quiet).
pub const CHECKPOINT_EVERY_VERSIONS: u64 = 100;

#[derive(Debug, thiserror::Error)]
pub enum TableError {
    #[error("the dataset directory {0} cannot be used: {1}")]
    Location(String, String),
    #[error("the dataset table: {0}")]
    Delta(#[from] DeltaTableError),
    #[error("building the rows for the dataset table: {0}")]
    Arrow(#[from] deltalake::arrow::error::ArrowError),
}

/// The application id of a log partition's marker.
pub fn marker_app_id(partition: i32) -> String {
    format!("chat.messages-{partition}")
}

pub struct DatasetTable {
    table: DeltaTable,
}

impl std::fmt::Debug for DatasetTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DatasetTable")
            .field("url", &self.table.table_url().as_str())
            .field("version", &self.table.version())
            .finish()
    }
}

impl DatasetTable {
    /// Opens the table in `dir`, creating the directory and the table if missing.
    pub async fn open_or_create(dir: &Path) -> Result<Self, TableError> {
        let location = |why: String| TableError::Location(dir.display().to_string(), why);
        std::fs::create_dir_all(dir).map_err(|e| location(e.to_string()))?;
        let dir = dir.canonicalize().map_err(|e| location(e.to_string()))?;
        let url = deltalake::ensure_table_uri(dir.to_string_lossy())?;
        // Loading a location without a log reports an error of its own before saying
        // it is not a table: look first. (A log folder without a commit, from a crash
        // while creating, is created over.)
        if dir.join("_delta_log").exists() {
            match deltalake::open_table(url.clone()).await {
                Ok(table) => return Ok(Self { table }),
                Err(DeltaTableError::NotATable(_)) => {}
                Err(error) => return Err(error.into()),
            }
        }
        let table = deltalake::DeltaTableBuilder::from_url(url)?
            .build()?
            .create()
            .with_table_name("chat_events")
            .with_comment("Conversation events for training data (DESIGN.md §10)")
            .with_columns(columns())
            .with_partition_columns(["day"])
            .with_configuration_property(
                TableProperty::DataSkippingStatsColumns,
                Some("event_id,kind,time"),
            )
            .await?;
        tracing::info!(dir = %dir.display(), "created the dataset table");
        Ok(Self { table })
    }

    /// The offset of the last record of log `partition` in the table, if any.
    pub async fn stored_offset(&self, partition: i32) -> Result<Option<i64>, TableError> {
        Ok(self
            .table
            .snapshot()?
            .transaction_version(self.table.log_store().as_ref(), marker_app_id(partition))
            .await?)
    }

    /// Reads the table's latest version again (after a commit whose outcome is
    /// unknown).
    pub async fn reload(&mut self) -> Result<(), TableError> {
        Ok(self.table.update_state().await?)
    }

    /// Appends `rows` and, in the same commit, the markers `offsets` (per log
    /// partition, the last offset covered). Returns the new table version.
    pub async fn append(
        &mut self,
        rows: &[Row],
        offsets: &BTreeMap<i32, i64>,
        now_ms: i64,
    ) -> Result<u64, TableError> {
        let mut properties = CommitProperties::default();
        for (partition, offset) in offsets {
            properties = properties.with_application_transaction(
                Transaction::new_with_last_update(marker_app_id(*partition), *offset, Some(now_ms)),
            );
        }
        let mut writer = RecordBatchWriter::for_table(&self.table)?
            .with_writer_properties(writer_properties()?)
            .with_commit_properties(properties);
        let batch = record_batch(&writer, rows)?;
        let written = async {
            writer.write(batch).await?;
            writer.flush_and_commit(&mut self.table).await
        }
        .await;
        match written {
            Ok(version) => {
                if version % CHECKPOINT_EVERY_VERSIONS == 0 {
                    self.checkpoint().await;
                }
                Ok(version)
            }
            Err(error) => {
                writer.reset();
                Err(error.into())
            }
        }
    }

    /// Writes a checkpoint of the current version. A failure costs only slower
    /// opening (the commits stay the truth), so it is logged, not returned.
    async fn checkpoint(&self) {
        let version = self.table.version();
        match deltalake::checkpoints::create_checkpoint(&self.table, None).await {
            Ok(()) => tracing::info!(?version, "checkpointed the dataset table"),
            Err(error) => {
                tracing::warn!(?version, %error, "could not checkpoint the dataset table")
            }
        }
    }
}

fn columns() -> Vec<StructField> {
    let string = |name: &str, nullable| StructField::new(name, DataType::STRING, nullable);
    let long = |name: &str, nullable| StructField::new(name, DataType::LONG, nullable);
    vec![
        long("event_id", false),
        string("kind", false),
        long("message_id", false),
        string("conversation", false),
        string("author", false),
        string("key_id", false),
        StructField::new("time", DataType::TIMESTAMP, false),
        string("body", true),
        long("reply_to", true),
        StructField::new(
            "mentions",
            DataType::Array(Box::new(ArrayType::new(DataType::STRING, false))),
            false,
        ),
        string("conversation_kind", false),
        StructField::new("conversation_size", DataType::INTEGER, false),
        StructField::new("day", DataType::DATE, false),
    ]
}

fn writer_properties() -> Result<WriterProperties, TableError> {
    let level = ZstdLevel::try_new(ZSTD_LEVEL)
        .map_err(|e| TableError::Delta(DeltaTableError::Generic(format!("ZSTD level: {e}"))))?;
    Ok(WriterProperties::builder()
        .set_compression(Compression::ZSTD(level))
        .set_key_value_metadata(Some(vec![KeyValue::new(
            SCHEMA_VERSION_KEY.to_owned(),
            SCHEMA_VERSION.to_string(),
        )]))
        .build())
}

/// The rows as one Arrow batch of the writer's schema (each column cast to the
/// type the table's schema converts to, so the writer takes it as it is).
fn record_batch(writer: &RecordBatchWriter, rows: &[Row]) -> Result<RecordBatch, TableError> {
    let schema = writer.arrow_schema();
    let epoch = chrono::NaiveDate::default();
    let mut mentions = ListBuilder::new(StringBuilder::new());
    for row in rows {
        for mention in &row.mentions {
            mentions.values().append_value(mention);
        }
        mentions.append(true);
    }
    let column = |name: &str| -> ArrayRef {
        match name {
            "event_id" => Arc::new(Int64Array::from_iter_values(
                rows.iter().map(|r| r.event_id),
            )),
            "kind" => Arc::new(StringArray::from_iter_values(
                rows.iter().map(|r| r.kind.as_str()),
            )),
            "message_id" => Arc::new(Int64Array::from_iter_values(
                rows.iter().map(|r| r.message_id),
            )),
            "conversation" => Arc::new(StringArray::from_iter_values(
                rows.iter().map(|r| &r.conversation),
            )),
            "author" => Arc::new(StringArray::from_iter_values(
                rows.iter().map(|r| &r.author),
            )),
            "key_id" => Arc::new(StringArray::from_iter_values(
                rows.iter().map(|r| &r.key_id),
            )),
            "time" => Arc::new(
                TimestampMicrosecondArray::from_iter_values(
                    rows.iter().map(|r| r.time.timestamp_micros()),
                )
                .with_timezone("UTC"),
            ),
            "body" => Arc::new(StringArray::from_iter(
                rows.iter().map(|r| r.body.as_deref()),
            )),
            "reply_to" => Arc::new(Int64Array::from_iter(rows.iter().map(|r| r.reply_to))),
            "mentions" => Arc::new(mentions.finish_cloned()),
            "conversation_kind" => Arc::new(StringArray::from_iter_values(
                rows.iter().map(|r| r.conversation_kind),
            )),
            "conversation_size" => Arc::new(Int32Array::from_iter_values(
                rows.iter()
                    .map(|r| i32::try_from(r.conversation_size).unwrap_or(i32::MAX)),
            )),
            "day" => {
                Arc::new(Date32Array::from_iter_values(rows.iter().map(|r| {
                    i32::try_from((r.day - epoch).num_days()).unwrap_or(i32::MAX)
                })))
            }
            _ => deltalake::arrow::array::new_null_array(
                &deltalake::arrow::datatypes::DataType::Null,
                rows.len(),
            ),
        }
    };
    let arrays = schema
        .fields()
        .iter()
        .map(|field| cast(&column(field.name()), field.data_type()))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(RecordBatch::try_new(schema, arrays)?)
}

#[cfg(test)]
mod tests {
    use chrono::{NaiveDate, TimeZone, Utc};

    use super::*;
    use crate::pipeline::rows::Kind;

    fn row(event_id: i64) -> Row {
        let time = Utc
            .with_ymd_and_hms(2026, 12, 3, 12, 0, 0)
            .single()
            .unwrap_or_default();
        Row {
            event_id,
            kind: Kind::Post,
            message_id: event_id,
            conversation: "c1".into(),
            author: "u1".into(),
            key_id: "k1".into(),
            time,
            body: Some(format!("message {event_id}")),
            reply_to: None,
            mentions: Vec::new(),
            conversation_kind: "direct",
            conversation_size: 2,
            day: NaiveDate::from_ymd_opt(2026, 12, 3).unwrap_or_default(),
        }
    }

    #[tokio::test]
    async fn a_checkpoint_keeps_the_markers_and_the_rows() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let mut table = DatasetTable::open_or_create(dir.path()).await?;
        let mut last = 0;
        for version in 1..=CHECKPOINT_EVERY_VERSIONS {
            let offsets = BTreeMap::from([(0, version as i64 * 10), (1, version as i64)]);
            last = table.append(&[row(version as i64)], &offsets, 0).await?;
        }
        assert_eq!(last, CHECKPOINT_EVERY_VERSIONS);
        let log = dir.path().join("_delta_log");
        let checkpoint = format!("{CHECKPOINT_EVERY_VERSIONS:020}.checkpoint.parquet");
        assert!(log.join(&checkpoint).exists(), "no {checkpoint} in {log:?}");
        // Opening again reads the checkpoint: the markers and every file are there.
        let reopened = DatasetTable::open_or_create(dir.path()).await?;
        let hundred = CHECKPOINT_EVERY_VERSIONS as i64;
        assert_eq!(reopened.stored_offset(0).await?, Some(hundred * 10));
        assert_eq!(reopened.stored_offset(1).await?, Some(hundred));
        assert_eq!(reopened.stored_offset(2).await?, None);
        let files = reopened.table.get_file_uris()?.count();
        assert_eq!(files, CHECKPOINT_EVERY_VERSIONS as usize);
        Ok(())
    }
}
