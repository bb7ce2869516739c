//! The SQL databases the adapters share: the SQLite file of the embedded mode
//! ([`sqlite`]), which holds the stores, the sessions and the message log, and the
//! PostgreSQL pool of the distributed mode ([`postgres`]). This module knows the
//! driver and nothing of the ports; each port turns driver errors into its own
//! error type once (`store/sql.rs`, `sessions/sql.rs`), so no port signature names
//! a driver type.

pub mod postgres;
pub mod sqlite;

/// Whether the database refused a row because it breaks a unique constraint.
pub fn is_unique_violation(error: &sqlx::Error) -> bool {
    matches!(error, sqlx::Error::Database(e) if e.is_unique_violation())
}
