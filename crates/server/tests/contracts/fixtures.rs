//! Each adapter with fresh state of its own, and the ports each suite is given.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use chat_server::cache::memory::MemoryCache;
use chat_server::cache::redis::lease;
use chat_server::cache::redis::{self as cache_redis, RedisCache};
use chat_server::cache::{Presence, RateLimits, SendKeys};
use chat_server::database::{self, sqlite::SqlitePools};
use chat_server::log::MessageLog;
use chat_server::log::kafka::{KafkaLog, KafkaSettings};
use chat_server::log::sqlite::SqliteLog;
use chat_server::sessions::Sessions;
use chat_server::sessions::postgres::PostgresSessions;
use chat_server::sessions::redis::RedisSessions;
use chat_server::sessions::sqlite::SqliteSessions;
use chat_server::snowflake::Snowflake;
use chat_server::store::postgres::PostgresStore;
use chat_server::store::sqlite::SqliteStore;
use chat_server::store::{Conversations, MessageStore, ReadMarkers, SearchIndex, Users};
use chat_test_support::broker::Broker;
use redis::aio::ConnectionManager;
use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection, PgPool};
use uuid::Uuid;

const DEFAULT_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";
const DEFAULT_REDIS_URL: &str = "redis://127.0.0.1:6379";

/// The directory and history ports of one adapter.
#[derive(Clone)]
pub struct StorePorts {
    pub users: Arc<dyn Users>,
    pub conversations: Arc<dyn Conversations>,
    pub read_markers: Arc<dyn ReadMarkers>,
    pub history: Arc<dyn MessageStore>,
    pub search: Arc<dyn SearchIndex>,
}

/// The fast ports of one adapter.
#[derive(Clone)]
pub struct CachePorts {
    pub presence: Arc<dyn Presence>,
    pub limits: Arc<dyn RateLimits>,
    pub keys: Arc<dyn SendKeys>,
}

/// Logs as several nodes of one deployment see the same log (the embedded log has
/// one writer, so its "nodes" share it).
#[derive(Clone)]
pub struct LogPorts {
    pub nodes: Vec<Arc<dyn MessageLog>>,
}

/// A temporary SQLite file, removed with the fixture.
pub struct Sqlite {
    pub pools: SqlitePools,
    _dir: tempfile::TempDir,
}

pub async fn sqlite() -> anyhow::Result<Sqlite> {
    let dir = tempfile::tempdir()?;
    let pools = database::sqlite::open(dir.path()).await?;
    Ok(Sqlite { pools, _dir: dir })
}

impl Sqlite {
    pub fn stores(&self) -> StorePorts {
        let store = Arc::new(SqliteStore::new(self.pools.clone()));
        StorePorts {
            users: store.clone(),
            conversations: store.clone(),
            read_markers: store.clone(),
            history: store.clone(),
            search: store,
        }
    }
}

/// A fresh PostgreSQL database with the migrations applied, dropped when the test
/// ends (even when it fails).
pub struct Postgres {
    pub pool: PgPool,
    admin: PgConnectOptions,
    name: String,
}

pub async fn postgres() -> anyhow::Result<Postgres> {
    let (admin, name) = create_database().await?;
    let pool = database::postgres::open(admin.clone().database(&name).to_url_lossy().as_ref())
        .await
        .with_context(|| format!("opening and migrating {name}"))?;
    Ok(Postgres { pool, admin, name })
}

/// A fresh PostgreSQL database with no tables, for testing a migration on rows
/// written before it.
pub async fn postgres_unmigrated() -> anyhow::Result<Postgres> {
    let (admin, name) = create_database().await?;
    let pool = PgPool::connect_with(admin.clone().database(&name))
        .await
        .with_context(|| format!("opening {name}"))?;
    Ok(Postgres { pool, admin, name })
}

/// A new database of a unique name: the server to reach it through, and its name.
async fn create_database() -> anyhow::Result<(PgConnectOptions, String)> {
    let base =
        std::env::var("CHAT_TEST_DATABASE_URL").unwrap_or_else(|_| DEFAULT_DATABASE_URL.into());
    let admin = PgConnectOptions::from_str(&base)
        .with_context(|| format!("CHAT_TEST_DATABASE_URL is not a PostgreSQL URL: {base}"))?;
    let name = format!("chat_contract_{}", Uuid::new_v4().simple());
    let mut conn = admin
        .connect()
        .await
        .with_context(|| format!("cannot reach PostgreSQL at {base} (scripts/test starts it)"))?;
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut conn)
        .await
        .with_context(|| format!("creating the test database {name}"))?;
    conn.close().await?;
    Ok((admin, name))
}

impl Postgres {
    pub fn stores(&self) -> StorePorts {
        let store = Arc::new(PostgresStore::new(self.pool.clone()));
        StorePorts {
            users: store.clone(),
            conversations: store.clone(),
            read_markers: store.clone(),
            history: store.clone(),
            search: store,
        }
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        // Drop runs outside async; a helper thread with its own runtime does the
        // (best-effort) cleanup. FORCE ends the pool's connections still open.
        let admin = self.admin.clone();
        let name = self.name.clone();
        let cleanup = std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            runtime.block_on(async move {
                if let Ok(mut conn) = admin.connect().await {
                    let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .execute(&mut conn)
                        .await;
                }
            });
        });
        let _ = cleanup.join();
    }
}

/// A key prefix of its own in the test Redis, its keys removed with the fixture.
pub struct Redis {
    pub conn: ConnectionManager,
    pub prefix: String,
}

pub fn redis_url() -> String {
    std::env::var("CHAT_TEST_REDIS_URL").unwrap_or_else(|_| DEFAULT_REDIS_URL.into())
}

pub async fn redis() -> anyhow::Result<Redis> {
    let url = redis_url();
    let (_, conn) = cache_redis::connect(&url)
        .await
        .with_context(|| format!("cannot reach Redis at {url} (scripts/test starts it)"))?;
    Ok(Redis {
        conn,
        prefix: format!("contract-test:{}:", Uuid::new_v4().simple()),
    })
}

impl Redis {
    /// The cache as node `node_id` sees it.
    pub fn cache(&self, node_id: u16) -> RedisCache {
        RedisCache::new(self.conn.clone(), self.prefix.clone(), node_id)
    }

    /// A node with a live lease (presence counts only live nodes' connections).
    pub async fn live_node(&self) -> anyhow::Result<RedisCache> {
        let (node_id, _) =
            lease::lease_node_id_for(&self.conn, &self.prefix, Duration::from_secs(120)).await?;
        Ok(self.cache(node_id))
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = std::process::Command::new("redis-cli")
            .args(["-u", &redis_url(), "EVAL"])
            .arg("for _, k in ipairs(redis.call('KEYS', ARGV[1])) do redis.call('DEL', k) end return 0")
            .args(["0", &format!("{}*", self.prefix)])
            .output();
    }
}

/// Fixtures as the suites take them: each holds its resources and hands out ports.
pub struct Held<T, P> {
    _resources: T,
    ports: P,
}

impl<T, P: Clone> Held<T, P> {
    pub fn ports(&self) -> P {
        self.ports.clone()
    }
}

pub async fn sqlite_stores() -> anyhow::Result<Held<Sqlite, StorePorts>> {
    let db = sqlite().await?;
    let ports = db.stores();
    Ok(Held {
        _resources: db,
        ports,
    })
}

pub async fn postgres_stores() -> anyhow::Result<Held<Postgres, StorePorts>> {
    let db = postgres().await?;
    let ports = db.stores();
    Ok(Held {
        _resources: db,
        ports,
    })
}

/// The users a sessions fixture creates first, for the SQL adapters' references.
pub const SESSION_USERS: [chat_protocol::UserId; 2] =
    [chat_protocol::UserId(1), chat_protocol::UserId(2)];

async fn create_session_users(stores: &StorePorts) -> anyhow::Result<()> {
    for (name, want) in ["alice", "bob"].into_iter().zip(SESSION_USERS) {
        let made = stores.users.create_user(name, name, "hash").await?;
        anyhow::ensure!(made.id == want, "a fresh database numbers users from 1");
    }
    Ok(())
}

pub async fn sqlite_sessions() -> anyhow::Result<Held<Sqlite, Arc<dyn Sessions>>> {
    let db = sqlite().await?;
    create_session_users(&db.stores()).await?;
    let ports: Arc<dyn Sessions> = Arc::new(SqliteSessions::new(db.pools.clone()));
    Ok(Held {
        _resources: db,
        ports,
    })
}

pub async fn postgres_sessions() -> anyhow::Result<Held<Postgres, Arc<dyn Sessions>>> {
    let db = postgres().await?;
    create_session_users(&db.stores()).await?;
    let ports: Arc<dyn Sessions> = Arc::new(PostgresSessions::new(db.pool.clone()));
    Ok(Held {
        _resources: db,
        ports,
    })
}

pub async fn redis_sessions() -> anyhow::Result<Held<Redis, Arc<dyn Sessions>>> {
    let redis = redis().await?;
    let ports: Arc<dyn Sessions> =
        Arc::new(RedisSessions::new(redis.conn.clone(), redis.prefix.clone()));
    Ok(Held {
        _resources: redis,
        ports,
    })
}

pub async fn memory_cache() -> anyhow::Result<Held<(), CachePorts>> {
    let cache = Arc::new(MemoryCache::new());
    Ok(Held {
        _resources: (),
        ports: CachePorts {
            presence: cache.clone(),
            limits: cache.clone(),
            keys: cache,
        },
    })
}

pub async fn redis_cache() -> anyhow::Result<Held<Redis, CachePorts>> {
    let redis = redis().await?;
    let cache = Arc::new(redis.live_node().await?);
    Ok(Held {
        _resources: redis,
        ports: CachePorts {
            presence: cache.clone(),
            limits: cache.clone(),
            keys: cache,
        },
    })
}

/// How many nodes the log suites append from.
pub const LOG_NODES: u16 = 4;

pub async fn sqlite_log() -> anyhow::Result<Held<Sqlite, LogPorts>> {
    let db = sqlite().await?;
    let log: Arc<dyn MessageLog> =
        Arc::new(SqliteLog::open(db.pools.clone(), Arc::new(Snowflake::new(1))).await?);
    Ok(Held {
        _resources: db,
        ports: LogPorts {
            nodes: vec![log; LOG_NODES as usize],
        },
    })
}

/// The Kafka log's settings for a test broker.
pub fn kafka_settings(broker: &Broker) -> KafkaSettings {
    KafkaSettings {
        brokers: broker.address(),
        topic: "chat.messages".into(),
        partitions: 3,
        replication: 1,
        fetch_wait_ms: 50,
    }
}

pub async fn kafka_log() -> anyhow::Result<Held<Broker, LogPorts>> {
    let broker = Broker::start();
    let mut nodes: Vec<Arc<dyn MessageLog>> = Vec::new();
    for node in 0..LOG_NODES {
        let ids = Arc::new(Snowflake::new(10 + node));
        nodes.push(Arc::new(
            KafkaLog::open(kafka_settings(&broker), ids).await?,
        ));
    }
    Ok(Held {
        _resources: broker,
        ports: LogPorts { nodes },
    })
}
