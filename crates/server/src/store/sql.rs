//! Driver errors as [`StoreError`]s: the one place the SQL adapters' `?` goes
//! through.

use super::{GroupChangeError, StoreError};

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

impl From<sqlx::Error> for GroupChangeError {
    fn from(error: sqlx::Error) -> Self {
        GroupChangeError::Store(error.into())
    }
}
