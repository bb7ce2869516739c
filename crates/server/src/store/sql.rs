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
            sqlx::Error::Database(ref db) if db.code().is_some_and(|c| transient(&c)) => {
                StoreError::Unavailable(error.to_string())
            }
            other => StoreError::Failed(other.to_string()),
        }
    }
}

/// Whether a database error code says "not now" rather than "not this": the caller
/// (a consumer of the log, above all) waits and tries again instead of giving up on
/// the data. PostgreSQL's SQLSTATE classes 08 (connection), 40 (rolled back:
/// serialization failure, deadlock), 53 (out of resources), 57 (shutting down) and
/// 58 (system error); SQLite's BUSY, LOCKED, IOERR, FULL and CANTOPEN (primary codes
/// 5, 6, 10, 13, 14, in the low byte of the extended code it reports, which has at
/// most four digits; a SQLSTATE always has five characters).
fn transient(code: &str) -> bool {
    if code.len() < 5
        && let Ok(sqlite) = code.parse::<u32>()
    {
        return matches!(sqlite & 0xff, 5 | 6 | 10 | 13 | 14);
    }
    ["08", "40", "53", "57", "58"]
        .iter()
        .any(|class| code.starts_with(class))
}

impl From<sqlx::Error> for GroupChangeError {
    fn from(error: sqlx::Error) -> Self {
        GroupChangeError::Store(error.into())
    }
}

#[cfg(test)]
mod tests {
    use super::transient;

    #[test]
    fn outages_are_transient_and_refused_data_is_not() {
        for code in [
            "08006", "40001", "40P01", "53300", "57P01", "58030", "5", "6", "261", "517",
        ] {
            assert!(transient(code), "{code}");
        }
        // NUL in text, a bad encoding, a unique or check violation, SQLite's CONSTRAINT
        // and TOOBIG: the same data is refused again.
        for code in [
            "22021", "22P05", "23505", "23514", "54000", "19", "2067", "18",
        ] {
            assert!(!transient(code), "{code}");
        }
    }
}
