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

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use uuid::Uuid;

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

/// PostgreSQL, Redis and a broker for one server or one cluster.
pub struct Services {
    database: String,
    prefix: String,
    pub broker: Broker,
}

impl Services {
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

/// A `tansu` broker process with in-memory storage on a free loopback port.
pub struct Broker {
    port: u16,
    child: Mutex<Option<Child>>,
}

impl Broker {
    fn start() -> Broker {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("find a free port");
        let broker = Broker {
            port,
            child: Mutex::new(None),
        };
        broker.spawn();
        broker
    }

    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn spawn(&self) {
        let binary = std::env::var("CHAT_TEST_TANSU")
            .expect("distributed mode needs CHAT_TEST_TANSU, the tansu broker binary (scripts/test installs it)");
        let url = format!("tcp://127.0.0.1:{}", self.port);
        let child = Command::new(binary)
            .args(["broker", "--storage-engine", "memory://tansu/"])
            .args(["--listener-url", &url, "--advertised-listener-url", &url])
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start tansu");
        *self.child.lock().unwrap() = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(self.address()).is_err() {
            assert!(
                Instant::now() < deadline,
                "tansu did not listen on {}",
                self.address()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn signal(&self, signal: &str) {
        if let Some(child) = self.child.lock().unwrap().as_ref() {
            let _ = Command::new("kill")
                .args([signal, &child.id().to_string()])
                .status();
        }
    }

    /// Freezes the broker (SIGSTOP): connections stay open but nothing answers, as
    /// with a broker that hangs or is cut off.
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    pub fn resume(&self) {
        self.signal("-CONT");
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.lock().unwrap().take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
