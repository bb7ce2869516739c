//! The SQL databases the adapters share: the SQLite file of the embedded mode
//! ([`sqlite`]), which holds the stores, the sessions and the message log, and the
//! PostgreSQL pool of the distributed mode ([`postgres`]). Driver errors become the
//! ports' [`StoreError`] here, once, so no port signature names a driver type.

pub mod postgres;
pub mod sqlite;

use crate::store::StoreError;

impl From<sqlx::Error> for StoreError {
    fn from(error: sqlx::Error) -> Self {
        match error {
            sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::WorkerCrashed => StoreError::Unavailable(error.to_string()),
            sqlx::Error::ColumnDecode { .. }
            | sqlx::Error::Decode(_)
            | sqlx::Error::ColumnNotFound(_)
            | sqlx::Error::TypeNotFound { .. } => StoreError::Corrupt(error.to_string()),
            other => StoreError::Failed(other.to_string()),
        }
    }
}

/// Whether the database refused a row because it breaks a unique constraint.
pub fn is_unique_violation(error: &sqlx::Error) -> bool {
    matches!(error, sqlx::Error::Database(e) if e.is_unique_violation())
}

impl From<sqlx::Error> for crate::sessions::SessionError {
    fn from(error: sqlx::Error) -> Self {
        Self::Store(error.into())
    }
}
