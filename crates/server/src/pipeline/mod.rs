//! The dataset pipeline (DESIGN.md §10): from the conversation log to consented,
//! pseudonymous training data. [`pseudonym`] makes the HMAC pseudonyms of users and
//! conversations, [`scrub`] puts PII placeholders in bodies, [`rows`] turns an event
//! into a row of the table, [`table`] is the Delta Lake table on disk and [`sink`]
//! the log consumer (group `dataset`) that writes it exactly once. [`open_sink`]
//! builds the sink from its settings, for `chat serve` (embedded mode) and `chat
//! pipeline` (distributed mode) alike.

pub mod pseudonym;
pub mod rows;
pub mod scrub;
pub mod sink;
pub mod table;

use std::path::PathBuf;
use std::sync::Arc;

use crate::store::{Conversations, Users};

/// What the sink is told by configuration.
#[derive(Clone)]
pub struct SinkSettings {
    /// `CHAT_DATASET_DIR`: where the table lives.
    pub dir: PathBuf,
    /// `CHAT_DATASET_KEY`: the pseudonyms' secret.
    pub key: Option<String>,
    pub flush: sink::FlushPolicy,
    /// `CHAT_DATASET_CONSENT=opt_out`: users who never chose allow it.
    pub consent_by_default: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    #[error(
        "CHAT_DATASET_KEY is required when the dataset sink runs (CHAT_DATASET_DIR is set): \
         set a random secret of at least 32 bytes (e.g. `openssl rand -base64 48`) and keep it \
         like a password"
    )]
    MissingKey,
    #[error(transparent)]
    Key(#[from] pseudonym::KeyError),
    #[error(transparent)]
    Table(#[from] table::TableError),
}

/// Opens (or creates) the table and builds the sink; refuses without a key.
pub async fn open_sink(
    settings: SinkSettings,
    users: Arc<dyn Users>,
    conversations: Arc<dyn Conversations>,
) -> Result<sink::DatasetSink, SinkError> {
    let key = settings.key.as_deref().ok_or(SinkError::MissingKey)?;
    let pseudonyms = pseudonym::Pseudonymizer::new(key.as_bytes())?;
    let table = table::DatasetTable::open_or_create(&settings.dir).await?;
    tracing::info!(
        dir = %settings.dir.display(),
        key_id = pseudonyms.key_id(),
        "the dataset sink writes to this table"
    );
    Ok(sink::DatasetSink::new(
        table,
        pseudonyms,
        users,
        conversations,
        settings.consent_by_default,
        settings.flush,
    ))
}
