//! The suite's two modes. `CHAT_TEST_MODE=distributed` runs every test against
//! PostgreSQL, Redis and a Kafka-protocol broker instead of the embedded adapters:
//! each server (or cluster) gets its own database, its own Redis key prefix and its
//! own broker process (`tansu`, in memory, on a free loopback port), so tests stay
//! independent while running in parallel. Unset or `embedded`: nothing external.
//!
//! Distributed mode needs, from the environment (`scripts/test` sets them):
//! `CHAT_TEST_DATABASE_URL` (an admin connection, default
//! `postgres://postgres@127.0.0.1:5432/postgres`), `CHAT_TEST_REDIS_URL` (default
//! `redis://127.0.0.1:6379`) and `CHAT_TEST_TANSU` (the broker binary).

use std::process::{Command, Stdio};

use uuid::Uuid;

use crate::broker::Broker;

/// Whether the suite runs in distributed mode (`CHAT_TEST_MODE=distributed`).
pub fn distributed() -> bool {
    std::env::var("CHAT_TEST_MODE").is_ok_and(|mode| mode == "distributed")
}

fn admin_database_url() -> String {
    std::env::var("CHAT_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

fn redis_url() -> String {
    std::env::var("CHAT_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// PostgreSQL, Redis and a broker for one server or one cluster. Dropping it drops
/// the database, deletes the keys under its prefix and kills the broker.
pub struct Services {
    database: String,
    prefix: String,
    pub broker: Broker,
}

impl Services {
    /// Creates a fresh database, picks a fresh Redis prefix and starts a broker.
    pub fn start() -> Services {
        let database = format!("chat_it_{}", Uuid::new_v4().simple());
        psql(&format!("CREATE DATABASE {database}"));
        Services {
            database,
            prefix: format!("it:{}:", Uuid::new_v4().simple()),
            broker: Broker::start(),
        }
    }

    pub fn database_url(&self) -> String {
        let admin = admin_database_url();
        let base = admin
            .rsplit_once('/')
            .map_or(admin.as_str(), |(base, _)| base);
        format!("{base}/{}", self.database)
    }

    pub fn redis_prefix(&self) -> &str {
        &self.prefix
    }

    /// What `chat serve` needs to use these services.
    pub fn env(&self) -> Vec<(String, String)> {
        vec![
            ("CHAT_DATABASE_URL".into(), self.database_url()),
            ("CHAT_REDIS_URL".into(), redis_url()),
            ("CHAT_REDIS_PREFIX".into(), self.prefix.clone()),
            ("CHAT_KAFKA_BROKERS".into(), self.broker.address()),
            ("CHAT_KAFKA_PARTITIONS".into(), "3".into()),
        ]
    }
}

impl Drop for Services {
    fn drop(&mut self) {
        psql(&format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            self.database
        ));
        let _ = Command::new("redis-cli")
            .args(["-u", &redis_url(), "EVAL"])
            .arg("for _, k in ipairs(redis.call('KEYS', ARGV[1])) do redis.call('DEL', k) end return 0")
            .args(["0", &format!("{}*", self.prefix)])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

fn psql(sql: &str) {
    let output = Command::new("psql")
        .arg(admin_database_url())
        .args(["-v", "ON_ERROR_STOP=1", "-q", "-c", sql])
        .output()
        .expect("run psql (Debian package postgresql-client)");
    assert!(
        output.status.success(),
        "`{sql}` failed; is PostgreSQL running (pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start)? {}",
        String::from_utf8_lossy(&output.stderr)
    );
}
