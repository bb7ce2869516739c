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
            | sqlx::Error::Protocol(_)
            | sqlx::Error::WorkerCrashed => StoreError::Unavailable(error.to_string()),
            sqlx::Error::ColumnDecode { .. }
            | sqlx::Error::Decode(_)
            | sqlx::Error::ColumnNotFound(_)
            | sqlx::Error::TypeNotFound { .. } => StoreError::Corrupt(error.to_string()),
            sqlx::Error::Encode(_) => StoreError::Refused(error.to_string()),
            sqlx::Error::Database(ref db) => match db.code().as_deref().map(classify) {
                Some(Class::Transient) => StoreError::Unavailable(error.to_string()),
                Some(Class::Data) => StoreError::Refused(error.to_string()),
                _ => StoreError::Failed(error.to_string()),
            },
            other => StoreError::Failed(other.to_string()),
        }
    }
}

/// What a database error code says of a statement that failed.
#[derive(Debug, PartialEq, Eq)]
enum Class {
    /// "Not now": wait and try again (the caller, above all a consumer of the log).
    Transient,
    /// "Not this data": the same data will be refused again.
    Data,
    /// Anything else (a missing table, a permission, a syntax error).
    Other,
}

/// PostgreSQL's SQLSTATE (five characters) by class: 08 connection, 40 rolled back
/// (serialization failure, deadlock), 53 out of resources, 57 shutting down and 58
/// system error are transient; 22 data exception (a NUL in text, a bad encoding, a
/// value out of range), 23 constraint violation and 54 program limit (a tsvector too
/// long) are the data's. SQLite's codes (at most four digits, the primary code in the
/// low byte): BUSY, LOCKED, IOERR, FULL and CANTOPEN (5, 6, 10, 13, 14) are transient;
/// TOOBIG, CONSTRAINT, MISMATCH and RANGE (18, 19, 20, 25) the data's.
fn classify(code: &str) -> Class {
    if code.len() < 5
        && let Ok(sqlite) = code.parse::<u32>()
    {
        return match sqlite & 0xff {
            5 | 6 | 10 | 13 | 14 => Class::Transient,
            18 | 19 | 20 | 25 => Class::Data,
            _ => Class::Other,
        };
    }
    match code.get(..2) {
        Some("08" | "40" | "53" | "57" | "58") => Class::Transient,
        Some("22" | "23" | "54") => Class::Data,
        _ => Class::Other,
    }
}

impl From<sqlx::Error> for GroupChangeError {
    fn from(error: sqlx::Error) -> Self {
        GroupChangeError::Store(error.into())
    }
}

#[cfg(test)]
mod tests {
    use super::{Class, classify};

    #[test]
    fn outages_are_transient_refused_data_is_the_datas_and_the_rest_neither() {
        for code in [
            "08006", "40001", "40P01", "53300", "57P01", "58030", "5", "6", "261", "517",
        ] {
            assert_eq!(classify(code), Class::Transient, "{code}");
        }
        // A NUL in text, a bad encoding, a unique or check violation, a tsvector too
        // long; SQLite's CONSTRAINT (and its UNIQUE extension) and TOOBIG.
        for code in [
            "22021", "22P05", "23505", "23514", "54000", "19", "2067", "18",
        ] {
            assert_eq!(classify(code), Class::Data, "{code}");
        }
        // A missing table, a permission, a syntax error; SQLite's ERROR and READONLY.
        for code in ["42P01", "42501", "42601", "1", "8"] {
            assert_eq!(classify(code), Class::Other, "{code}");
        }
    }
}
