//! The composition root: picks an adapter for each port (DESIGN.md §1: each
//! dependency may be configured alone), builds the services and the HTTP state,
//! starts the background tasks and serves until shutdown. Nothing below this module
//! imports it. `chat serve` calls [`serve`].

use std::sync::Arc;
use std::time::Duration;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::auth::{PasswordHasher, SecretError, Tokens, load_or_create_secret};
use crate::cache::memory::MemoryCache;
use crate::cache::redis::lease::{self, LeaseError, Renewal};
use crate::cache::redis::{self as cache_redis, RedisCache};
use crate::cache::{CacheError, Limit, Presence, RateLimits, SEND_KEY_TTL, SendKeys};
use crate::cluster::{self, Lease, PresenceChange};
use crate::config::Config;
use crate::conversations::ConversationService;
use crate::database::{self, sqlite::SqlitePools};
use crate::events::redis::{self as events_redis, RedisEvents};
use crate::events::{Events, LocalEvents};
use crate::fanout::{self, FanOut, LateMessages};
use crate::gateway::{GatewaySettings, GatewayState};
use crate::history::HistoryService;
use crate::http::auth::{AuthSettings, AuthState};
use crate::http::messages::MessagesState;
use crate::http::ops::{Check, OpsState};
use crate::http::web::WebDir;
use crate::http::{self, ClientAddresses, HttpState};
use crate::hub::Hub;
use crate::indexer::{self, Indexer};
use crate::listener;
use crate::log::kafka::{KafkaLog, KafkaSettings};
use crate::log::sqlite::{self as log_sqlite, SqliteLog};
use crate::log::{LogError, MessageLog, runner};
use crate::membership::Members;
use crate::persister::{self, Persister};
use crate::pipeline::{self, SinkError, sink};
use crate::send::SendService;
use crate::sessions::Sessions;
use crate::sessions::postgres::PostgresSessions;
use crate::sessions::redis::RedisSessions;
use crate::sessions::sqlite::SqliteSessions;
use crate::snowflake::Snowflake;
use crate::store::postgres::PostgresStore;
use crate::store::sqlite::SqliteStore;
use crate::store::{Conversations, MessageStore, ReadMarkers, SearchIndex, StoreError, Users};

/// Why the server could not start (or serve).
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("listening: {0}")]
    Listen(#[from] std::io::Error),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("redis: {0}")]
    Cache(#[from] CacheError),
    #[error(transparent)]
    Lease(#[from] LeaseError),
    #[error(transparent)]
    Log(#[from] LogError),
    #[error("the token signing secret: {0}")]
    Secret(#[from] SecretError),
    #[error("metrics: {0}")]
    Metrics(String),
    #[error("the dataset sink: {0}")]
    Dataset(#[from] SinkError),
    #[error("{0}")]
    Pipeline(&'static str),
}

/// Runs the server until `stop` resolves, then shuts down gracefully: stops
/// accepting, lets in-flight requests and sends finish, closes sockets with 1001.
pub async fn serve(
    config: Config,
    stop: impl Future<Output = ()> + Send + 'static,
) -> Result<(), StartError> {
    let tcp = TcpListener::bind(config.listen).await?;
    let address = tcp.local_addr()?;
    let grace = Duration::from_millis(config.shutdown_grace_ms);
    let limits = config.connection_limits();
    let (shutdown_tx, shutdown) = watch::channel(false);
    let node = Node::start(config, shutdown).await?;
    let hub = node.state.gateway.hub.clone();
    let app = http::router(node.state);

    // The one line scripts and tests wait for.
    println!("listening on http://{address}");
    tracing::info!(%address, "listening");

    listener::serve(tcp, app, limits, async move {
        stop.await;
        tracing::info!("shutting down");
        shutdown_tx.send_replace(true);
    })
    .await;
    // Upgraded sockets are not tracked by the listener's graceful shutdown: wait for
    // their tasks to send 1001 before returning drops the runtime under them.
    let sockets_closed = async {
        while hub.connection_count() > 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    let _ = tokio::time::timeout(grace, sockets_closed).await;
    for task in node.tasks {
        let _ = tokio::time::timeout(grace, task).await;
    }
    tracing::info!("stopped");
    Ok(())
}

/// A started node: what the router serves, and the background tasks to wait for at
/// shutdown.
struct Node {
    state: HttpState,
    tasks: Vec<JoinHandle<()>>,
}

/// The durable ports: SQLite in embedded mode, PostgreSQL when configured.
struct Durable {
    users: Arc<dyn Users>,
    conversations: Arc<dyn Conversations>,
    read_markers: Arc<dyn ReadMarkers>,
    history: Arc<dyn MessageStore>,
    search: Arc<dyn SearchIndex>,
    /// Refresh tokens when Redis does not hold them.
    sessions: Arc<dyn Sessions>,
    check: Check,
}

impl Durable {
    fn sqlite(pools: &SqlitePools) -> Self {
        let store = Arc::new(SqliteStore::new(pools.clone()));
        let ping = pools.clone();
        Self {
            users: store.clone(),
            conversations: store.clone(),
            read_markers: store.clone(),
            history: store.clone(),
            search: store,
            sessions: Arc::new(SqliteSessions::new(pools.clone())),
            check: check(move || {
                let pools = ping.clone();
                async move { database::sqlite::ping(&pools).await }
            }),
        }
    }

    async fn postgres(url: &str) -> Result<Self, StartError> {
        let pool = database::postgres::open(url)
            .await
            .map_err(StoreError::from)?;
        let store = Arc::new(PostgresStore::new(pool.clone()));
        let ping = pool.clone();
        Ok(Self {
            users: store.clone(),
            conversations: store.clone(),
            read_markers: store.clone(),
            history: store.clone(),
            search: store,
            sessions: Arc::new(PostgresSessions::new(pool)),
            check: check(move || {
                let pool = ping.clone();
                async move { database::postgres::ping(&pool).await }
            }),
        })
    }
}

/// The fast, shared ports: process memory in embedded mode, Redis in a cluster.
struct Fast {
    presence: Arc<dyn Presence>,
    limits: Arc<dyn RateLimits>,
    keys: Arc<dyn SendKeys>,
    /// Refresh tokens, when Redis holds them.
    sessions: Option<Arc<dyn Sessions>>,
    events: Arc<dyn Events>,
    check: Option<Check>,
}

impl Fast {
    fn memory(cache: Arc<MemoryCache>, hub: &Arc<Hub>, members: &Arc<Members>) -> Self {
        Self {
            presence: cache.clone(),
            limits: cache.clone(),
            keys: cache,
            sessions: None,
            events: Arc::new(LocalEvents::new(hub.clone(), members.clone())),
            check: None,
        }
    }

    fn redis(redis: &RedisNode) -> Self {
        let cache = Arc::new(redis.cache.clone());
        let ping = redis.cache.clone();
        Self {
            presence: cache.clone(),
            limits: cache.clone(),
            keys: cache,
            sessions: Some(Arc::new(RedisSessions::new(
                redis.cache.connection(),
                redis.cache.prefix().to_owned(),
            ))),
            events: Arc::new(RedisEvents::new(
                redis.cache.connection(),
                redis.cache.prefix(),
            )),
            check: Some(check(move || {
                let cache = ping.clone();
                async move { cache.ping().await }
            })),
        }
    }
}

/// This node's place in Redis: its connection and its leased node id.
struct RedisNode {
    client: redis::Client,
    cache: RedisCache,
    /// Presence changes the lease keeper found, for the announcer.
    changes: mpsc::UnboundedReceiver<PresenceChange>,
}

impl RedisNode {
    /// Connects, leases a node id (unless configured), clears what a crashed
    /// predecessor with the same id left behind, and starts renewing the lease at
    /// once ([`cluster::keep_node_alive`]).
    async fn connect(
        url: &str,
        config: &Config,
        hub: &Arc<Hub>,
        shutdown: &watch::Receiver<bool>,
        tasks: &mut Vec<JoinHandle<()>>,
    ) -> Result<Self, StartError> {
        let prefix = config.redis_prefix.clone();
        let (client, conn) = cache_redis::connect(url).await?;
        let (node_id, token) = match config.node_id {
            Some(id) => {
                // A configured id has no lease token of its own; take the key at once
                // so this node's users count as online from the first connection.
                let token = format!("configured-{id}");
                if lease::renew_node_lease(&conn, &prefix, id, &token).await? == Renewal::Lost {
                    return Err(LeaseError::Taken(id).into());
                }
                (id, token)
            }
            None => lease::lease_node_id(&conn, &prefix).await?,
        };
        let (changes_tx, changes) = mpsc::unbounded_channel();
        let offline = lease::clear_stale_presence(&conn, &prefix, node_id).await?;
        let _ = changes_tx.send(PresenceChange {
            users: offline,
            online: false,
        });
        let node_lease = Lease {
            conn: conn.clone(),
            prefix: prefix.clone(),
            node_id,
            token,
        };
        tasks.push(tokio::spawn(cluster::keep_node_alive(
            node_lease,
            hub.clone(),
            changes_tx,
            shutdown.clone(),
        )));
        Ok(Self {
            client,
            cache: RedisCache::new(conn, prefix, node_id),
            changes,
        })
    }
}

impl Node {
    async fn start(config: Config, shutdown: watch::Receiver<bool>) -> Result<Self, StartError> {
        let mut tasks = Vec::new();
        let hub = Arc::new(Hub::new());
        // The SQLite file holds whatever has no other home.
        let needs_sqlite = config.database_url.is_none() || config.kafka_brokers.is_none();
        let sqlite = match needs_sqlite {
            true => Some(
                database::sqlite::open(&config.data_dir)
                    .await
                    .map_err(StoreError::from)?,
            ),
            false => None,
        };
        let durable = match (&config.database_url, &sqlite) {
            (Some(url), _) => Durable::postgres(url).await?,
            (None, Some(pools)) => Durable::sqlite(pools),
            (None, None) => unreachable!("SQLite is opened whenever PostgreSQL is not configured"),
        };
        let members = Arc::new(Members::new(durable.conversations.clone()));
        let redis = match &config.redis_url {
            Some(url) => Some(RedisNode::connect(url, &config, &hub, &shutdown, &mut tasks).await?),
            None => None,
        };
        let node_id = match &redis {
            Some(redis) => redis.cache.node_id(),
            None => config.node_id.unwrap_or(0),
        };
        tracing::info!(node_id, "message ids carry this node id");
        let ids = Arc::new(Snowflake::new(node_id));
        let log = message_log(&config, sqlite.as_ref(), ids).await?;
        let fast = match &redis {
            Some(redis) => Fast::redis(redis),
            None => {
                let cache = Arc::new(MemoryCache::new());
                if let (Some(pools), None) = (&sqlite, &config.kafka_brokers) {
                    reload_send_keys(pools, &cache).await?;
                }
                Fast::memory(cache, &hub, &members)
            }
        };
        if let Some(redis) = redis {
            start_cluster_tasks(
                redis, &durable, &fast, &hub, &members, &shutdown, &mut tasks,
            );
        }
        let late = Arc::new(LateMessages::new(log.reorder_window()));
        start_consumers(&log, &durable, &members, &hub, &late, &shutdown, &mut tasks);
        // In distributed mode the sink is its own process (`chat pipeline`).
        if let (Some(settings), None) = (config.dataset_sink(), &config.kafka_brokers) {
            let sink = pipeline::open_sink(
                settings,
                durable.users.clone(),
                durable.conversations.clone(),
            )
            .await?;
            tasks.push(tokio::spawn(runner::run(
                log.clone(),
                sink::SETTINGS,
                sink,
                shutdown.clone(),
            )));
        }
        let state = http_state(&config, durable, fast, log, members, hub, late, shutdown)?;
        Ok(Self { state, tasks })
    }
}

/// `chat pipeline`: the dataset sink alone, consuming the Kafka log as group
/// `dataset` through the same consumer runner as the persister, until `stop`; then
/// it finishes the commit in progress and publishes what it buffered.
pub async fn pipeline(
    config: Config,
    stop: impl Future<Output = ()> + Send + 'static,
) -> Result<(), StartError> {
    let settings = config
        .dataset_sink()
        .ok_or(StartError::Pipeline("chat pipeline needs CHAT_DATASET_DIR"))?;
    if config.kafka_brokers.is_none() {
        return Err(StartError::Pipeline(
            "chat pipeline reads the Kafka log (CHAT_KAFKA_BROKERS); in embedded mode \
             `chat serve` runs the sink itself when CHAT_DATASET_DIR is set",
        ));
    }
    let durable = match &config.database_url {
        Some(url) => Durable::postgres(url).await?,
        None => Durable::sqlite(
            &database::sqlite::open(&config.data_dir)
                .await
                .map_err(StoreError::from)?,
        ),
    };
    // This process never appends, so its node id stamps nothing.
    let log = message_log(&config, None, Arc::new(Snowflake::new(0))).await?;
    let sink = pipeline::open_sink(settings, durable.users, durable.conversations).await?;
    let (shutdown_tx, shutdown) = watch::channel(false);
    let task = tokio::spawn(runner::run(log, sink::SETTINGS, sink, shutdown));
    println!("pipeline running");
    tracing::info!("the dataset pipeline is running");
    stop.await;
    tracing::info!("shutting down");
    shutdown_tx.send_replace(true);
    let _ = task.await;
    tracing::info!("stopped");
    Ok(())
}

/// The message log: Kafka when configured, else the SQLite file's log table.
async fn message_log(
    config: &Config,
    sqlite: Option<&SqlitePools>,
    ids: Arc<Snowflake>,
) -> Result<Arc<dyn MessageLog>, StartError> {
    Ok(match (&config.kafka_brokers, sqlite) {
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
        (None, Some(pools)) => Arc::new(SqliteLog::open(pools.clone(), ids).await?),
        (None, None) => unreachable!("SQLite is opened whenever Kafka is not configured"),
    })
}

/// The event listener and the presence announcer of a cluster node.
fn start_cluster_tasks(
    redis: RedisNode,
    durable: &Durable,
    fast: &Fast,
    hub: &Arc<Hub>,
    members: &Arc<Members>,
    shutdown: &watch::Receiver<bool>,
    tasks: &mut Vec<JoinHandle<()>>,
) {
    tasks.push(tokio::spawn(events_redis::listen(
        redis.client,
        redis.cache.prefix().to_owned(),
        hub.clone(),
        members.clone(),
        shutdown.clone(),
    )));
    tasks.push(tokio::spawn(cluster::announce_presence_changes(
        redis.changes,
        durable.conversations.clone(),
        fast.events.clone(),
        shutdown.clone(),
    )));
}

/// The log's consumers on this node: the persister, the search indexer and the
/// fan-out.
fn start_consumers(
    log: &Arc<dyn MessageLog>,
    durable: &Durable,
    members: &Arc<Members>,
    hub: &Arc<Hub>,
    late: &Arc<LateMessages>,
    shutdown: &watch::Receiver<bool>,
    tasks: &mut Vec<JoinHandle<()>>,
) {
    let persister = Persister {
        store: durable.history.clone(),
        log: log.clone(),
    };
    tasks.push(tokio::spawn(runner::run(
        log.clone(),
        persister::SETTINGS,
        persister,
        shutdown.clone(),
    )));
    let indexer = Indexer {
        index: durable.search.clone(),
    };
    tasks.push(tokio::spawn(runner::run(
        log.clone(),
        indexer::SETTINGS,
        indexer,
        shutdown.clone(),
    )));
    let fan_out = FanOut {
        members: members.clone(),
        hub: hub.clone(),
        late: late.clone(),
    };
    tasks.push(tokio::spawn(runner::run(
        log.clone(),
        fanout::SETTINGS,
        fan_out,
        shutdown.clone(),
    )));
}

/// The services, and the small state each area of the router takes from them.
#[allow(clippy::too_many_arguments)]
fn http_state(
    config: &Config,
    durable: Durable,
    fast: Fast,
    log: Arc<dyn MessageLog>,
    members: Arc<Members>,
    hub: Arc<Hub>,
    late: Arc<LateMessages>,
    shutdown: watch::Receiver<bool>,
) -> Result<HttpState, StartError> {
    let tokens = Arc::new(tokens(config)?);
    let sender = Arc::new(SendService {
        members: members.clone(),
        log: log.clone(),
        keys: fast.keys.clone(),
        limits: fast.limits.clone(),
        limit: Limit {
            rate_per_sec: config.send_rate_per_sec,
            burst: config.send_burst,
        },
        history: durable.history.clone(),
        users: durable.users.clone(),
        conversations: durable.conversations.clone(),
    });
    let history = Arc::new(HistoryService {
        store: durable.history.clone(),
        log: log.clone(),
        members: members.clone(),
        conversations: durable.conversations.clone(),
        late,
    });
    let conversations = Arc::new(ConversationService {
        conversations: durable.conversations.clone(),
        users: durable.users.clone(),
        history: durable.history.clone(),
        members: members.clone(),
        presence: fast.presence.clone(),
        events: fast.events.clone(),
    });
    let mut checks = vec![("database", durable.check.clone())];
    checks.extend(fast.check.clone().map(|check| ("redis", check)));
    checks.push(("message_log", log_check(&log)));
    Ok(HttpState {
        auth: AuthState {
            settings: Arc::new(auth_settings(config)),
            users: durable.users.clone(),
            sessions: fast.sessions.clone().unwrap_or(durable.sessions.clone()),
            tokens: tokens.clone(),
            passwords: Arc::new(PasswordHasher::start(config.password_hash_pool())),
            limits: fast.limits.clone(),
        },
        conversations,
        messages: MessagesState {
            history: history.clone(),
            sender: sender.clone(),
        },
        gateway: GatewayState {
            settings: Arc::new(gateway_settings(config)),
            tokens: tokens.clone(),
            users: durable.users,
            conversations: durable.conversations,
            read_markers: durable.read_markers,
            members,
            sender,
            history,
            presence: fast.presence,
            events: fast.events,
            hub: hub.clone(),
            shutdown: shutdown.clone(),
        },
        ops: OpsState {
            checks: Arc::new(checks),
            hub,
            metrics: metrics_recorder()?,
            shutdown,
        },
        web: WebDir(config.web_dir.clone()),
        tokens,
        client_addresses: ClientAddresses {
            trust_forwarded_for: config.trust_forwarded_for,
            trusted_proxy_hops: config.trusted_proxy_hops,
        },
    })
}

fn tokens(config: &Config) -> Result<Tokens, StartError> {
    let secret = match &config.jwt_secret {
        Some(secret) => secret.as_bytes().to_vec(),
        None => load_or_create_secret(&config.data_dir)?,
    };
    Ok(Tokens::new(
        &secret,
        Duration::from_secs(u64::from(config.access_token_ttl_secs)),
    ))
}

fn auth_settings(config: &Config) -> AuthSettings {
    AuthSettings {
        cookie_secure: config.cookie_secure,
        refresh_token_ttl_secs: config.refresh_token_ttl_secs,
        login_failures_per_account: config.login_failures_per_account,
        login_failures_per_address: config.login_failures_per_address,
        signups_per_minute: config.signups_per_minute,
        dataset_consent_by_default: config.dataset_consent.allows(),
    }
}

fn gateway_settings(config: &Config) -> GatewaySettings {
    GatewaySettings {
        allowed_origins: config.allowed_origins.clone(),
        auth_timeout: config.auth_timeout(),
        heartbeat_ms: config.heartbeat_ms,
        outbound_queue: config.outbound_queue,
        frames_per_sec: config.frames_per_sec,
        frame_burst: config.frame_burst,
    }
}

/// A readiness check from an async closure.
fn check<F, Fut, E>(probe: F) -> Check
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), E>> + Send + 'static,
    E: std::fmt::Display,
{
    Arc::new(move || {
        let answer = probe();
        Box::pin(async move { answer.await.map_err(|e| e.to_string()) })
    })
}

fn log_check(log: &Arc<dyn MessageLog>) -> Check {
    let log = log.clone();
    check(move || {
        let log = log.clone();
        // Ask the log every time: readiness must not answer from a cache.
        async move { log.check().await }
    })
}

/// Sends acknowledged in the last 24 h are recognized as retries after a restart.
async fn reload_send_keys(pools: &SqlitePools, cache: &MemoryCache) -> Result<(), StartError> {
    let now = chrono::Utc::now().timestamp_millis();
    let since = now - SEND_KEY_TTL.as_millis() as i64;
    for sent in log_sqlite::acknowledged_since(pools, since).await? {
        let age = Duration::from_millis((now - sent.created_at_ms).max(0) as u64);
        cache.remember(sent.sender, sent.client_msg_id, sent.sent, age);
    }
    Ok(())
}

/// The process-wide Prometheus recorder, installed once (tests start several
/// servers in one process).
fn metrics_recorder() -> Result<PrometheusHandle, StartError> {
    static HANDLE: std::sync::OnceLock<PrometheusHandle> = std::sync::OnceLock::new();
    if let Some(handle) = HANDLE.get() {
        return Ok(handle.clone());
    }
    let failed = |e: &dyn std::fmt::Display| StartError::Metrics(e.to_string());
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Full("chat_send_latency_seconds".into()),
            &[
                0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
            ],
        )
        .map_err(|e| failed(&e))?
        .install_recorder()
        .map_err(|e| failed(&e))?;
    describe_metrics();
    Ok(HANDLE.get_or_init(|| handle).clone())
}

fn describe_metrics() {
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
    metrics::describe_counter!(
        sink::EVENTS_WRITTEN_METRIC,
        "conversation events the dataset sink committed to the table"
    );
    metrics::describe_counter!(
        sink::EVENTS_EXCLUDED_METRIC,
        "conversation events kept out of the dataset (no consent, or no conversation)"
    );
    metrics::describe_counter!(
        sink::COMMITS_METRIC,
        "commits of the dataset table (each with its data files and log offsets)"
    );
    metrics::describe_gauge!(
        sink::LAST_COMMIT_METRIC,
        "when the dataset table was last committed (Unix seconds)"
    );
    metrics::describe_counter!(
        crate::log::runner::SKIPPED_METRIC,
        "log events a consumer skipped because its store refused them for good"
    );
    // Register the series so they show before the first message.
    metrics::gauge!("chat_connections").set(0.0);
    for consumer in [crate::persister::GROUP, crate::indexer::GROUP] {
        metrics::counter!(crate::log::runner::SKIPPED_METRIC, "consumer" => consumer).increment(0);
    }
    metrics::counter!("chat_messages_sent_total").increment(0);
    metrics::counter!("chat_messages_delivered_total").increment(0);
}
