//! Assembles the server: picks the adapters, starts the log consumers, builds the
//! router and serves it until shutdown. `chat serve` calls [`serve`].

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::serve::ListenerExt;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use sqlx::Row;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tower_http::trace::TraceLayer;

use crate::auth::{Tokens, load_or_create_secret};
use crate::cache::memory::MemoryCache;
use crate::cache::redis::{self as cache_redis, RedisCache};
use crate::cache::{Limit, Presence, RateLimits, SEND_KEY_TTL, SendKeys, SentMessage};
use crate::cluster::{self, Announcer, Lease};
use crate::config::Config;
use crate::events::redis::{self as events_redis, RedisEvents};
use crate::events::{Events, LocalEvents};
use crate::fanout::LateMessages;
use crate::gateway::hub::Hub;
use crate::log::MessageLog;
use crate::log::kafka::{KafkaLog, KafkaSettings};
use crate::log::sqlite::SqliteLog;
use crate::membership::Members;
use crate::send::SendService;
use crate::snowflake::Snowflake;
use crate::store::postgres::{self, PostgresStore};
use crate::store::sqlite::{self, SqliteStore};
use crate::store::{Directory, MessageStore, Sessions};
use crate::{fanout, http, persister};

/// What the handlers and connections share. Each field is one port or service.
#[derive(Clone)]
pub struct ApiContext {
    pub config: Arc<Config>,
    pub directory: Arc<dyn Directory>,
    pub history: Arc<dyn MessageStore>,
    pub sessions: Arc<dyn Sessions>,
    pub log: Arc<dyn MessageLog>,
    pub presence: Arc<dyn Presence>,
    pub limits: Arc<dyn RateLimits>,
    pub members: Arc<Members>,
    pub sender: Arc<SendService>,
    pub events: Arc<dyn Events>,
    pub hub: Arc<Hub>,
    pub tokens: Arc<Tokens>,
    /// Messages the log delivered out of id order, for `sync`.
    pub late: Arc<LateMessages>,
    /// Set in distributed mode, for readiness checks.
    pub redis: Option<RedisCache>,
    /// Turns true when the server starts shutting down.
    pub shutdown: watch::Receiver<bool>,
    pub metrics: PrometheusHandle,
}

/// Runs the server until `stop` resolves, then shuts down gracefully: stops
/// accepting, lets in-flight requests and sends finish, closes sockets with 1001.
pub async fn serve(
    config: Config,
    stop: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let listener = TcpListener::bind(config.listen).await?;
    let address = listener.local_addr()?;
    let grace = Duration::from_millis(config.shutdown_grace_ms);
    let (shutdown_tx, shutdown) = watch::channel(false);
    let (ctx, tasks) = build(config, shutdown).await?;
    let hub = ctx.hub.clone();
    let app = router(ctx);

    // The one line scripts and tests wait for.
    println!("listening on http://{address}");
    tracing::info!(%address, "listening");

    // TCP_NODELAY on every accepted socket. Without it Nagle's algorithm holds a
    // small write (an ack, a message frame) while an earlier one is unacknowledged,
    // and the client's delayed ACK makes that a 40 ms stall: the bench measured it
    // as a p99 of 40-50 ms at light load. Frames are already batched per flush.
    let listener = listener.tap_io(|tcp| {
        if let Err(error) = tcp.set_nodelay(true) {
            tracing::debug!(%error, "cannot set TCP_NODELAY");
        }
    });
    let server = axum::serve(
        listener,
        app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(async move {
        stop.await;
        tracing::info!("shutting down");
        shutdown_tx.send_replace(true);
    });
    server.await?;
    // Upgraded sockets are not tracked by axum's graceful shutdown: wait for their
    // tasks to send 1001 before returning drops the runtime under them.
    let sockets_closed = async {
        while hub.connection_count() > 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    let _ = tokio::time::timeout(grace, sockets_closed).await;
    for task in tasks {
        let _ = tokio::time::timeout(grace, task).await;
    }
    tracing::info!("stopped");
    Ok(())
}

pub fn router(ctx: ApiContext) -> Router {
    Router::new()
        .nest("/api/v1", http::api_routes())
        .route("/openapi.json", axum::routing::get(http::ops::openapi))
        .route("/healthz", axum::routing::get(http::ops::healthz))
        // Probes and scrapers look at the root too; without these the web client's
        // fallback would answer them with 200 and an HTML page.
        .route("/readyz", axum::routing::get(http::ops::readyz))
        .route("/metrics", axum::routing::get(http::ops::metrics))
        .fallback(http::web::serve)
        .layer(DefaultBodyLimit::max(http::MAX_BODY_BYTES))
        .layer(TraceLayer::new_for_http())
        .with_state(ctx)
}

/// Picks an adapter for each port (DESIGN.md §1: each dependency may be configured
/// alone) and starts the background consumers.
async fn build(
    config: Config,
    shutdown: watch::Receiver<bool>,
) -> anyhow::Result<(ApiContext, Vec<tokio::task::JoinHandle<()>>)> {
    let secret = match &config.jwt_secret {
        Some(secret) => secret.as_bytes().to_vec(),
        None => load_or_create_secret(&config.data_dir)?,
    };
    let tokens = Arc::new(Tokens::new(
        &secret,
        Duration::from_secs(u64::from(config.access_token_ttl_secs)),
    ));
    let mut tasks = Vec::new();

    // The SQLite file holds whatever has no other home.
    let needs_sqlite = config.database_url.is_none() || config.kafka_brokers.is_none();
    let sqlite_pool = if needs_sqlite {
        Some(sqlite::open(&config.data_dir).await?)
    } else {
        None
    };

    let (directory, history, durable_sessions): (
        Arc<dyn Directory>,
        Arc<dyn MessageStore>,
        Arc<dyn Sessions>,
    ) = match (&config.database_url, &sqlite_pool) {
        (Some(url), _) => {
            let store = Arc::new(PostgresStore::new(postgres::open(url).await?));
            (store.clone(), store.clone(), store)
        }
        (None, Some(pool)) => {
            let store = Arc::new(SqliteStore::new(pool.clone()));
            (store.clone(), store.clone(), store)
        }
        (None, None) => unreachable!("SQLite is opened whenever PostgreSQL is not configured"),
    };
    let members = Arc::new(Members::new(directory.clone()));
    let hub = Arc::new(Hub::new());

    // Set once the events port exists; the cluster task announces presence with it.
    let announcer = Arc::new(OnceLock::new());
    let redis = match &config.redis_url {
        Some(url) => Some(
            connect_redis(
                url, &config, &hub, &members, &announcer, &shutdown, &mut tasks,
            )
            .await?,
        ),
        None => None,
    };
    let node_id = redis
        .as_ref()
        .map(RedisCache::node_id)
        .or(config.node_id)
        .unwrap_or(0);
    tracing::info!(node_id, "message ids carry this node id");
    let ids = Arc::new(Snowflake::new(node_id));

    let log: Arc<dyn MessageLog> = match (&config.kafka_brokers, &sqlite_pool) {
        (Some(brokers), _) => {
            let settings = KafkaSettings {
                brokers: brokers.clone(),
                topic: config.kafka_topic.clone(),
                partitions: config.kafka_partitions,
                replication: config.kafka_replication,
                fetch_wait_ms: config.kafka_fetch_wait_ms,
            };
            Arc::new(KafkaLog::open(settings, ids).await?)
        }
        (None, Some(pool)) => Arc::new(SqliteLog::open(pool.clone(), ids).await?),
        (None, None) => unreachable!("SQLite is opened whenever Kafka is not configured"),
    };

    let ephemeral = match &redis {
        Some(cache) => {
            let cache = Arc::new(cache.clone());
            Ephemeral {
                presence: cache.clone(),
                limits: cache.clone(),
                keys: cache.clone(),
                sessions: cache.clone(),
                events: Arc::new(RedisEvents::new(cache.connection(), &config.redis_prefix)),
            }
        }
        None => {
            let cache = Arc::new(MemoryCache::new());
            if config.kafka_brokers.is_none()
                && let Some(pool) = &sqlite_pool
            {
                reload_send_keys(&pool.read, &cache).await?;
            }
            Ephemeral {
                presence: cache.clone(),
                limits: cache.clone(),
                keys: cache,
                sessions: durable_sessions,
                events: Arc::new(LocalEvents::new(hub.clone(), members.clone())),
            }
        }
    };
    let Ephemeral {
        presence,
        limits,
        keys,
        sessions,
        events,
    } = ephemeral;
    let _ = announcer.set(Announcer {
        directory: directory.clone(),
        events: events.clone(),
    });

    let sender = Arc::new(SendService {
        members: members.clone(),
        log: log.clone(),
        keys,
        limits: limits.clone(),
        limit: Limit {
            rate_per_sec: config.send_rate_per_sec,
            burst: config.send_burst,
        },
    });

    tasks.push(tokio::spawn(persister::run(
        log.clone(),
        history.clone(),
        shutdown.clone(),
    )));
    let late = Arc::new(LateMessages::new(log.reorder_window()));
    tasks.push(tokio::spawn(fanout::run(
        log.clone(),
        members.clone(),
        hub.clone(),
        late.clone(),
        shutdown.clone(),
    )));

    let ctx = ApiContext {
        config: Arc::new(config),
        directory,
        history,
        sessions,
        log,
        presence,
        limits,
        members,
        sender,
        events,
        hub,
        tokens,
        late,
        redis,
        shutdown,
        metrics: metrics_recorder()?,
    };
    Ok((ctx, tasks))
}

/// The ports that live in Redis in a cluster and in the process (or SQLite) alone.
struct Ephemeral {
    presence: Arc<dyn Presence>,
    limits: Arc<dyn RateLimits>,
    keys: Arc<dyn SendKeys>,
    sessions: Arc<dyn Sessions>,
    events: Arc<dyn Events>,
}

/// Connects to Redis, leases a node id (unless configured), clears what a crashed
/// predecessor with the same id left behind, and starts lease renewal
/// ([`cluster::keep_node_alive`]) and the event listener.
async fn connect_redis(
    url: &str,
    config: &Config,
    hub: &Arc<Hub>,
    members: &Arc<Members>,
    announcer: &Arc<OnceLock<Announcer>>,
    shutdown: &watch::Receiver<bool>,
    tasks: &mut Vec<tokio::task::JoinHandle<()>>,
) -> anyhow::Result<RedisCache> {
    let prefix = config.redis_prefix.clone();
    let (client, conn) = cache_redis::connect(url).await?;
    let (node_id, token) = match config.node_id {
        Some(id) => {
            // A configured id has no lease token of its own; take the key at once so
            // this node's users count as online from the first connection.
            let token = format!("configured-{id}");
            if cache_redis::renew_node_lease(&conn, &prefix, id, &token).await?
                == cache_redis::Renewal::Lost
            {
                anyhow::bail!("node id {id} is leased by another node");
            }
            (id, token)
        }
        None => cache_redis::lease_node_id(&conn, &prefix).await?,
    };
    let offline = cache_redis::clear_stale_presence(&conn, &prefix, node_id).await?;
    let lease = Lease {
        conn: conn.clone(),
        prefix: prefix.clone(),
        node_id,
        token,
    };
    tasks.push(tokio::spawn(cluster::keep_node_alive(
        lease,
        hub.clone(),
        announcer.clone(),
        offline,
        shutdown.clone(),
    )));
    tasks.push(tokio::spawn(events_redis::listen(
        client,
        prefix.clone(),
        hub.clone(),
        members.clone(),
        shutdown.clone(),
    )));
    Ok(RedisCache::new(conn, prefix, node_id))
}

/// Sends acknowledged in the last 24 h are recognized as retries after a restart.
async fn reload_send_keys(pool: &sqlx::SqlitePool, cache: &MemoryCache) -> anyhow::Result<()> {
    let now = chrono::Utc::now().timestamp_millis();
    let since = now - SEND_KEY_TTL.as_millis() as i64;
    let rows = sqlx::query(
        "SELECT id, conversation_id, sender_id, client_msg_id, created_at FROM message_log WHERE created_at > ?",
    )
    .bind(since)
    .fetch_all(pool)
    .await?;
    for row in rows {
        let Ok(client_msg_id) = uuid::Uuid::parse_str(row.get("client_msg_id")) else {
            continue;
        };
        let sent = SentMessage {
            message_id: chat_protocol::MessageId(row.get("id")),
            conversation_id: chat_protocol::ConversationId(row.get("conversation_id")),
        };
        let age = Duration::from_millis((now - row.get::<i64, _>("created_at")).max(0) as u64);
        cache.remember(
            chat_protocol::UserId(row.get("sender_id")),
            client_msg_id,
            sent,
            age,
        );
    }
    Ok(())
}

/// The process-wide Prometheus recorder, installed once (tests start several
/// servers in one process).
fn metrics_recorder() -> anyhow::Result<PrometheusHandle> {
    static HANDLE: std::sync::OnceLock<PrometheusHandle> = std::sync::OnceLock::new();
    if let Some(handle) = HANDLE.get() {
        return Ok(handle.clone());
    }
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Full("chat_send_latency_seconds".into()),
            &[
                0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
            ],
        )?
        .install_recorder()?;
    metrics::describe_gauge!(
        "chat_connections",
        "open WebSocket connections on this node"
    );
    metrics::describe_counter!(
        "chat_messages_sent_total",
        "messages acknowledged by this node"
    );
    metrics::describe_counter!(
        "chat_messages_delivered_total",
        "message frames queued to local connections"
    );
    metrics::describe_histogram!(
        "chat_send_latency_seconds",
        "send received to durable acknowledgement"
    );
    // Register the series so they show before the first message.
    metrics::gauge!("chat_connections").set(0.0);
    metrics::counter!("chat_messages_sent_total").increment(0);
    metrics::counter!("chat_messages_delivered_total").increment(0);
    Ok(HANDLE.get_or_init(|| handle).clone())
}
