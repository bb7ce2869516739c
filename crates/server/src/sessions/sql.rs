//! Driver errors as [`SessionError`]s, for the SQL adapters of this port.

use super::SessionError;
use crate::store::StoreError;

impl From<sqlx::Error> for SessionError {
    fn from(error: sqlx::Error) -> Self {
        Self::Store(StoreError::from(error))
    }
}
