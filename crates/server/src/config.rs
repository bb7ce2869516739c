//! Configuration: one typed struct, read once at start from flags or their `CHAT_*`
//! environment equivalents, and validated before anything starts.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

/// Everything `chat serve` can be told. Defaults give the embedded mode on a laptop.
#[derive(Clone, Debug, Args)]
pub struct Config {
    /// Address to listen on; port 0 picks a free one (the chosen URL is printed).
    #[arg(long, env = "CHAT_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,

    /// Where the embedded mode keeps its SQLite database and generated secret.
    #[arg(long, env = "CHAT_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,

    /// The built web client (`npm run build` in web/), served at `/`.
    #[arg(long, env = "CHAT_WEB_DIR", default_value = "web/dist")]
    pub web_dir: PathBuf,

    /// HS256 secret for access tokens (at least 32 bytes). When unset, one is
    /// generated once and kept in the data dir, so tokens survive restarts.
    #[arg(long, env = "CHAT_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,

    /// Origins allowed to open a WebSocket, comma-separated (e.g.
    /// `https://chat.example.com`). When empty, only the server's own origin is.
    #[arg(long, env = "CHAT_ALLOWED_ORIGINS", value_delimiter = ',')]
    pub allowed_origins: Vec<String>,

    /// Mark the refresh cookie `Secure`. Turn on whenever clients reach the server
    /// over HTTPS (directly or through a TLS-terminating proxy).
    #[arg(long, env = "CHAT_COOKIE_SECURE", default_value_t = false)]
    pub cookie_secure: bool,

    /// Take the client address from `X-Forwarded-For` (only behind a trusted proxy),
    /// for per-address login and signup throttling: the address the trusted proxy
    /// saw, which it appended as the rightmost entry. Anything further left was
    /// written by the client and is ignored.
    #[arg(long, env = "CHAT_TRUST_FORWARDED_FOR", default_value_t = false)]
    pub trust_forwarded_for: bool,

    /// How many trusted proxies in a row append to `X-Forwarded-For` (a CDN in front
    /// of the load balancer makes 2): the client is that many entries from the right.
    #[arg(long, env = "CHAT_TRUSTED_PROXY_HOPS", default_value_t = 1)]
    pub trusted_proxy_hops: u8,

    /// PostgreSQL URL: the directory and message history (and refresh tokens when
    /// Redis is not configured) move from SQLite to PostgreSQL.
    #[arg(long, env = "CHAT_DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,

    /// Redis URL: sessions, presence, rate limits, idempotency keys, node-id leases
    /// and events between nodes move from process memory to Redis.
    #[arg(long, env = "CHAT_REDIS_URL", hide_env_values = true)]
    pub redis_url: Option<String>,

    /// Prefix of every Redis key and channel, so deployments can share a Redis.
    #[arg(long, env = "CHAT_REDIS_PREFIX", default_value = "chat:")]
    pub redis_prefix: String,

    /// Kafka bootstrap servers (`host:port,...`): the message log moves from the
    /// SQLite file to Kafka.
    #[arg(long, env = "CHAT_KAFKA_BROKERS")]
    pub kafka_brokers: Option<String>,

    /// The message topic, created at start if missing.
    #[arg(long, env = "CHAT_KAFKA_TOPIC", default_value = "chat.messages")]
    pub kafka_topic: String,

    /// Partitions of a newly created topic.
    #[arg(long, env = "CHAT_KAFKA_PARTITIONS", default_value_t = 6)]
    pub kafka_partitions: i32,

    /// Replication factor of a newly created topic (3 on a real cluster).
    #[arg(long, env = "CHAT_KAFKA_REPLICATION", default_value_t = 1)]
    pub kafka_replication: i32,

    /// The longest a broker may hold a consumer's fetch when it has nothing new.
    /// Kafka answers as soon as records arrive, so this only bounds idle polling;
    /// brokers that always wait it out (tansu) deliver this much later.
    #[arg(long, env = "CHAT_KAFKA_FETCH_WAIT_MS", default_value_t = 50)]
    pub kafka_fetch_wait_ms: u32,

    /// Node id for message ids (0–1023); must differ between nodes of a cluster.
    /// Unset: leased in Redis when Redis is configured, else 0.
    #[arg(long, env = "CHAT_NODE_ID")]
    pub node_id: Option<u16>,

    /// Lifetime of access tokens in seconds (at most 900).
    #[arg(long, env = "CHAT_ACCESS_TOKEN_TTL_SECS", default_value_t = 900)]
    pub access_token_ttl_secs: u32,

    /// Lifetime of refresh tokens in seconds (default 30 days).
    #[arg(long, env = "CHAT_REFRESH_TOKEN_TTL_SECS", default_value_t = 30 * 24 * 3600)]
    pub refresh_token_ttl_secs: u64,

    /// Messages each user may send per second, on average.
    #[arg(long, env = "CHAT_SEND_RATE_PER_SEC", default_value_t = 20.0)]
    pub send_rate_per_sec: f64,

    /// Messages a user may send in a burst.
    #[arg(long, env = "CHAT_SEND_BURST", default_value_t = 40.0)]
    pub send_burst: f64,

    /// Frames one WebSocket may send per second on average, pings and pongs
    /// included; beyond the burst the socket is closed with 4429.
    #[arg(long, env = "CHAT_FRAMES_PER_SEC", default_value_t = 50.0)]
    pub frames_per_sec: f64,

    #[arg(long, env = "CHAT_FRAME_BURST", default_value_t = 200.0)]
    pub frame_burst: f64,

    /// Failed logins allowed per account in 15 minutes.
    #[arg(long, env = "CHAT_LOGIN_FAILURES_PER_ACCOUNT", default_value_t = 5)]
    pub login_failures_per_account: u32,

    /// Failed logins allowed per client address in 15 minutes.
    #[arg(long, env = "CHAT_LOGIN_FAILURES_PER_ADDRESS", default_value_t = 50)]
    pub login_failures_per_address: u32,

    /// Signups allowed per client address per minute.
    #[arg(long, env = "CHAT_SIGNUPS_PER_MINUTE", default_value_t = 30)]
    pub signups_per_minute: u32,

    /// Whose messages the training dataset may use before they choose: nobody's
    /// (`opt_in`, the default) or everybody's until they say no (`opt_out`).
    #[arg(long, env = "CHAT_DATASET_CONSENT", value_enum, default_value_t = ConsentDefault::OptIn)]
    pub dataset_consent: ConsentDefault,

    /// Where the training-data table (a Delta Lake table) is written. Set, `chat
    /// serve` in embedded mode runs the dataset sink; `chat pipeline` needs it.
    #[arg(long, env = "CHAT_DATASET_DIR")]
    pub dataset_dir: Option<PathBuf>,

    /// Secret key of the dataset's pseudonyms (HMAC-SHA256, at least 32 bytes);
    /// required whenever the sink runs. Keep it like a password: with it, the
    /// pseudonyms can be tied back to users.
    #[arg(long, env = "CHAT_DATASET_KEY", hide_env_values = true)]
    pub dataset_key: Option<String>,

    /// The dataset sink commits its buffered rows once they are about this large.
    #[arg(long, env = "CHAT_DATASET_FLUSH_BYTES", default_value_t = 32 * 1024 * 1024)]
    pub dataset_flush_bytes: usize,

    /// ... or once the oldest of them waited this long: the table's lag on a quiet
    /// system.
    #[arg(long, env = "CHAT_DATASET_FLUSH_MS", default_value_t = 60_000)]
    pub dataset_flush_ms: u64,

    /// Password hashes (Argon2id, 19 MiB each) computed at once, one thread each;
    /// 0 means one per core. More threads than cores only share the cores and add
    /// 19 MiB each at the peak of a burst of logins.
    #[arg(long, env = "CHAT_PASSWORD_HASH_THREADS", default_value_t = 0)]
    pub password_hash_threads: usize,

    /// Sign-ups and logins that may wait for a hashing thread; beyond that they are
    /// refused with 503 and `Retry-After`. Unset: 64 per hashing thread (about
    /// 1.5 s of waiting at 25 ms a hash).
    #[arg(long, env = "CHAT_PASSWORD_HASH_QUEUE")]
    pub password_hash_queue: Option<usize>,

    /// How long a new WebSocket may stay unauthenticated.
    #[arg(long, env = "CHAT_AUTH_TIMEOUT_MS", default_value_t = chat_protocol::AUTH_TIMEOUT_MS)]
    pub auth_timeout_ms: u64,

    /// Interval of the server's WebSocket pings, told to clients in `ready`.
    #[arg(long, env = "CHAT_HEARTBEAT_MS", default_value_t = 25_000)]
    pub heartbeat_ms: u32,

    /// Frames queued for one connection before it counts as a slow reader and is
    /// disconnected.
    #[arg(long, env = "CHAT_OUTBOUND_QUEUE", default_value_t = 1024)]
    pub outbound_queue: usize,

    /// How long a client may take to send a request head; then its connection is
    /// closed (slow-loris clients trickle heads to hold connections).
    #[arg(long, env = "CHAT_HEAD_READ_TIMEOUT_MS", default_value_t = 10_000)]
    pub head_read_timeout_ms: u64,

    /// How long a request body may take to arrive after its head; then the request
    /// is answered 408 `request_timeout` and the connection closed.
    #[arg(long, env = "CHAT_BODY_READ_TIMEOUT_MS", default_value_t = 30_000)]
    pub body_read_timeout_ms: u64,

    /// Connections (WebSockets included) one client address may hold at once; a new
    /// one beyond it is refused at once. Not applied with `CHAT_TRUST_FORWARDED_FOR`:
    /// behind a proxy every connection comes from the proxy's address.
    #[arg(long, env = "CHAT_MAX_CONNECTIONS_PER_ADDRESS", default_value_t = 256)]
    pub max_connections_per_address: usize,

    /// How long shutdown waits for in-flight work before giving up.
    #[arg(long, env = "CHAT_SHUTDOWN_GRACE_MS", default_value_t = 10_000)]
    pub shutdown_grace_ms: u64,
}

/// The operator's default for users who have not chosen about the dataset.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
#[value(rename_all = "snake_case")]
pub enum ConsentDefault {
    /// Nobody's messages are used until they agree.
    OptIn,
    /// Everybody's are, until they say no.
    OptOut,
}

impl ConsentDefault {
    /// Whether a user who never chose counts as allowing it.
    pub fn allows(self) -> bool {
        self == ConsentDefault::OptOut
    }
}

/// Whether `secret` is a value from an example file or a tutorial rather than one
/// of its own: the words examples use to say "put yours here". A node refuses to start
/// with one, so a copied example file never goes live with a published key.
pub fn is_placeholder(secret: &str) -> bool {
    let lower = secret.to_ascii_lowercase();
    [
        "replace",
        "change-me",
        "changeme",
        "change_me",
        "example",
        "placeholder",
    ]
    .iter()
    .any(|word| lower.contains(word))
}

impl Config {
    /// Checks what clap cannot, with messages that say what to change.
    pub fn validate(&self) -> Result<(), String> {
        if let Some(id) = self.node_id
            && id > 1023
        {
            return Err(format!("CHAT_NODE_ID must be 0..=1023, not {id}"));
        }
        if self.kafka_partitions < 1 || self.kafka_replication < 1 {
            return Err(
                "CHAT_KAFKA_PARTITIONS and CHAT_KAFKA_REPLICATION must be at least 1".into(),
            );
        }
        if !(1..=10_000).contains(&self.kafka_fetch_wait_ms) {
            return Err("CHAT_KAFKA_FETCH_WAIT_MS must be between 1 and 10000".into());
        }
        if !(1..=900).contains(&self.access_token_ttl_secs) {
            return Err("CHAT_ACCESS_TOKEN_TTL_SECS must be between 1 and 900".into());
        }
        if let Some(secret) = &self.jwt_secret {
            if secret.len() < crate::auth::MIN_SECRET_BYTES {
                return Err(format!(
                    "CHAT_JWT_SECRET must be at least {} bytes (it has {}); unset it to have \
                     the embedded mode generate one in the data directory",
                    crate::auth::MIN_SECRET_BYTES,
                    secret.len()
                ));
            }
            if is_placeholder(secret) {
                return Err(
                    "CHAT_JWT_SECRET is still the example's placeholder: set your own random \
                     secret (e.g. `openssl rand -base64 48`)"
                        .into(),
                );
            }
        }
        for (name, value) in [
            ("CHAT_SEND_RATE_PER_SEC", self.send_rate_per_sec),
            ("CHAT_SEND_BURST", self.send_burst),
            ("CHAT_FRAMES_PER_SEC", self.frames_per_sec),
            ("CHAT_FRAME_BURST", self.frame_burst),
        ] {
            if !(value.is_finite() && value > 0.0) {
                return Err(format!("{name} must be a positive number"));
            }
        }
        if !(1..=10).contains(&self.trusted_proxy_hops) {
            return Err("CHAT_TRUSTED_PROXY_HOPS must be between 1 and 10".into());
        }
        if self.password_hash_threads > 256 {
            return Err(
                "CHAT_PASSWORD_HASH_THREADS must be between 0 (one per core) and 256".into(),
            );
        }
        for (name, value) in [
            ("CHAT_HEAD_READ_TIMEOUT_MS", self.head_read_timeout_ms),
            ("CHAT_BODY_READ_TIMEOUT_MS", self.body_read_timeout_ms),
        ] {
            if !(1..=3_600_000).contains(&value) {
                return Err(format!("{name} must be between 1 and 3600000 (an hour)"));
            }
        }
        if self.max_connections_per_address == 0 {
            return Err("CHAT_MAX_CONNECTIONS_PER_ADDRESS must be at least 1".into());
        }
        if self.outbound_queue == 0 {
            return Err("CHAT_OUTBOUND_QUEUE must be at least 1".into());
        }
        if self.dataset_dir.is_some() {
            self.validate_dataset()?;
        }
        for origin in &self.allowed_origins {
            if !(origin.starts_with("http://") || origin.starts_with("https://")) {
                return Err(format!(
                    "CHAT_ALLOWED_ORIGINS entries look like https://host[:port], not `{origin}`"
                ));
            }
        }
        Ok(())
    }

    /// Checks the dataset sink's settings (when it runs).
    pub fn validate_dataset(&self) -> Result<(), String> {
        let min = crate::pipeline::pseudonym::MIN_KEY_BYTES;
        match &self.dataset_key {
            None => {
                return Err(format!(
                    "CHAT_DATASET_KEY is required when the dataset sink runs (CHAT_DATASET_DIR \
                     is set): set a random secret of at least {min} bytes (e.g. `openssl rand \
                     -base64 48`) and keep it like a password"
                ));
            }
            Some(key) if key.len() < min => {
                return Err(format!(
                    "CHAT_DATASET_KEY must be at least {min} bytes (it has {})",
                    key.len()
                ));
            }
            Some(key) if is_placeholder(key) => {
                return Err(
                    "CHAT_DATASET_KEY is still the example's placeholder: set your own random \
                     secret (e.g. `openssl rand -base64 48`)"
                        .into(),
                );
            }
            Some(_) => {}
        }
        if self.dataset_flush_bytes < 1024 {
            return Err("CHAT_DATASET_FLUSH_BYTES must be at least 1024".into());
        }
        if !(1..=3_600_000).contains(&self.dataset_flush_ms) {
            return Err("CHAT_DATASET_FLUSH_MS must be between 1 and 3600000 (an hour)".into());
        }
        Ok(())
    }

    /// The dataset sink's settings, when `CHAT_DATASET_DIR` is set.
    pub fn dataset_sink(&self) -> Option<crate::pipeline::SinkSettings> {
        Some(crate::pipeline::SinkSettings {
            dir: self.dataset_dir.clone()?,
            key: self.dataset_key.clone(),
            flush: crate::pipeline::sink::FlushPolicy {
                max_buffered_bytes: self.dataset_flush_bytes,
                max_age: Duration::from_millis(self.dataset_flush_ms),
            },
            consent_by_default: self.dataset_consent.allows(),
        })
    }

    /// The password-hashing pool, with the defaults resolved.
    pub fn password_hash_pool(&self) -> crate::auth::PoolSize {
        crate::auth::PoolSize::resolve(self.password_hash_threads, self.password_hash_queue)
    }

    pub fn auth_timeout(&self) -> Duration {
        Duration::from_millis(self.auth_timeout_ms)
    }

    /// What the accept loop enforces on every connection.
    pub fn connection_limits(&self) -> crate::listener::ConnectionLimits {
        crate::listener::ConnectionLimits {
            head_read_timeout: Duration::from_millis(self.head_read_timeout_ms),
            body_read_timeout: Duration::from_millis(self.body_read_timeout_ms),
            max_connections_per_address: (!self.trust_forwarded_for)
                .then_some(self.max_connections_per_address),
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::{FromArgMatches, Parser};

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        config: Config,
    }

    fn with_secret(secret: &str) -> Result<(), String> {
        config(&["--jwt-secret", secret]).validate()
    }

    #[test]
    fn a_secret_of_its_own_is_taken() {
        assert_eq!(with_secret("kT3q9w0sZ1vXbN8yR5uE2aL7cJ4hG6fD0pM"), Ok(()));
    }

    #[test]
    fn a_short_secret_or_an_examples_placeholder_is_refused() {
        assert!(with_secret("too-short").is_err());
        for placeholder in [
            "REPLACE_WITH_THE_OUTPUT_OF_openssl_rand_base64_48",
            "change-me-to-a-long-random-secret-0123456789",
            "changeme0123456789abcdef0123456789abcdef",
            "an-example-secret-0123456789abcdef0123456789",
            "placeholder-0123456789abcdef0123456789abcdef",
        ] {
            let refused = with_secret(placeholder).expect_err(placeholder);
            assert!(refused.contains("placeholder"), "{refused}");
        }
    }

    fn config(args: &[&str]) -> Config {
        let matches = <Cli as clap::CommandFactory>::command()
            .try_get_matches_from(std::iter::once("chat").chain(args.iter().copied()))
            .unwrap();
        Cli::from_arg_matches(&matches).unwrap().config
    }

    #[test]
    fn an_empty_or_short_jwt_secret_is_refused_at_start() {
        for short in ["", "x", &"s".repeat(31)] {
            let error = config(&["--jwt-secret", short]).validate().unwrap_err();
            assert!(
                error.contains("CHAT_JWT_SECRET must be at least 32 bytes"),
                "{error}"
            );
        }
        assert!(
            config(&["--jwt-secret", &"s".repeat(32)])
                .validate()
                .is_ok()
        );
        assert!(config(&[]).validate().is_ok());
    }
}
