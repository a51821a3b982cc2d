//! Configuration: one typed [`Settings`] tree, built from per-mode defaults, then an optional
//! TOML file, then environment variables (later layers win).
//!
//! Environment variables:
//! - `STATS_TRACKER_REDIS_URL` — the store's Redis URL (name kept from the original service);
//! - `GAME_EVENT_STREAM_REDIS_URL` — the event stream's Redis URL (likewise);
//! - `STATS_TRACKER__<SECTION>__<KEY>` — any other setting, e.g.
//!   `STATS_TRACKER__STREAM__BATCH_SIZE=500` or `STATS_TRACKER__STORE__KEY_PREFIX=st`.
//!
//! Production has no default Redis URLs and refuses to start without them.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::Path;

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};

use super::keys::KeySpace;

/// Environment variable holding the store's Redis URL.
pub const STORE_URL_ENV: &str = "STATS_TRACKER_REDIS_URL";
/// Environment variable holding the event stream's Redis URL.
pub const STREAM_URL_ENV: &str = "GAME_EVENT_STREAM_REDIS_URL";
/// Prefix of the generic, nested environment overrides (`__` separates levels).
pub const ENV_PREFIX: &str = "STATS_TRACKER__";
/// Longest dead-letter age setting: a century, far from overflowing milliseconds.
pub const MAX_DEAD_LETTER_AGE_DAYS: u64 = 36_500;

/// Which built-in defaults to start from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Local Redis, readable logs.
    #[default]
    Development,
    /// Local Redis database 15 under its own key prefix, for trying things out safely.
    Test,
    /// No default Redis URLs (they must be given), JSON logs.
    Production,
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Mode::Development => "development",
            Mode::Test => "test",
            Mode::Production => "production",
        })
    }
}

/// Everything the tracker can be configured with.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    pub store: StoreSettings,
    pub stream: StreamSettings,
    pub server: ServerSettings,
    pub worker: WorkerSettings,
    pub history: HistorySettings,
    pub games: GamesSettings,
    pub log: LogSettings,
    /// Where the worker POSTs the change feed (none by default).
    #[serde(default)]
    pub webhooks: Vec<WebhookSettings>,
}

/// A URL every change feed entry is POSTed to (see `crate::webhooks`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct WebhookSettings {
    /// Names the webhook in metrics, logs and its consumer group on the feeds.
    pub name: String,
    /// `http://` or `https://`.
    pub url: String,
    /// The HMAC-SHA256 key of the signature header (at least 16 characters).
    pub secret: Secret,
    /// Products whose feeds it gets; empty: every product.
    #[serde(default)]
    pub products: Vec<String>,
    /// How long one delivery may take (ms).
    #[serde(default = "default_webhook_timeout_ms")]
    pub timeout_ms: u64,
}

fn default_webhook_timeout_ms() -> u64 {
    5000
}

/// The tracker's own history of the entries it applied (see `crate::history`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct HistorySettings {
    /// Keep every applied entry, per product, in the store (what `rebuild` replays).
    pub enabled: bool,
    /// Entries kept per product, about (whole chunks go, oldest first); 0: no count limit.
    pub max_entries: u64,
    /// Days an entry is kept (by its stream id); 0: no age limit.
    pub max_age_days: u64,
    /// Where `stats-tracker history export` writes segment files and `rebuild` reads them.
    pub segments_dir: Option<std::path::PathBuf>,
    /// Most entries one read of a board `as_of` a past moment may replay (each such read
    /// replays the product's history up to the moment).
    pub as_of_max_entries: u64,
}

/// How a product's history is trimmed as it is written; 0: no bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct HistoryRetention {
    pub max_entries: u64,
    pub max_age_ms: u64,
}

/// Where the per-product boards and stats rules come from.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields)]
pub struct GamesSettings {
    /// The games file (TOML); without one the built-in configuration applies.
    pub file: Option<std::path::PathBuf>,
}

/// Where boards and stats live.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct StoreSettings {
    /// Redis URL of the store (`STATS_TRACKER_REDIS_URL`); with `cluster`, one or more seed
    /// nodes' URLs, comma-separated. May hold a password: never logged.
    pub redis_url: Option<String>,
    /// Whether `redis_url` names a Redis Cluster rather than a single server.
    #[serde(default)]
    pub cluster: bool,
    /// On a cluster, whether the server's reads go to replicas (writes always go to masters).
    /// A replica lags its master by its replication delay, usually below a millisecond, more
    /// while it resynchronises: answers may miss the latest events for that long.
    #[serde(default)]
    pub read_from_replicas: bool,
    /// Namespace in front of every key, so several trackers (or tests) can share one Redis.
    pub key_prefix: String,
    /// How long a single store command may take before the caller gets an error (ms).
    pub command_timeout_ms: u64,
    /// TLS options for a `rediss://` store URL.
    #[serde(default)]
    pub tls: TlsSettings,
}

/// TLS to a Redis (`rediss://` URLs). Without a CA file the system's trusted roots verify the
/// server.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields)]
pub struct TlsSettings {
    /// PEM file of the CA(s) that signed the server's certificate, instead of the system roots.
    pub ca_file: Option<std::path::PathBuf>,
    /// PEM client certificate, for servers that require one (with `client_key_file`).
    pub client_cert_file: Option<std::path::PathBuf>,
    /// PEM private key of `client_cert_file`.
    pub client_key_file: Option<std::path::PathBuf>,
    /// Accepts any server certificate, unverified: for tests against a throw-away server only.
    pub insecure_skip_verify: bool,
}

/// Where game events come from and how the worker reads them.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct StreamSettings {
    /// Redis URL of the event stream (`GAME_EVENT_STREAM_REDIS_URL`); with `cluster`, one or
    /// more seed nodes' URLs, comma-separated. Never logged.
    pub redis_url: Option<String>,
    /// Whether `redis_url` names a Redis Cluster rather than a single server.
    #[serde(default)]
    pub cluster: bool,
    /// Stream key the game servers append to.
    pub name: String,
    /// How many streams the events are spread over (by product, see `core::partition`): 1 is
    /// `name` itself; more are `<name>:0` … `<name>:<N-1>`, shared by the worker pool.
    #[serde(default = "one_partition")]
    pub partitions: u32,
    /// Consumer group of the tracker's workers (other services use their own groups).
    pub group: String,
    /// This worker's consumer name; defaults to `<hostname>-<pid>`.
    pub consumer: Option<String>,
    /// Most entries read and committed in one batch.
    pub batch_size: usize,
    /// How long one blocking wait for new entries lasts before the worker checks in (ms).
    pub block_ms: u64,
    /// How long the worker's lease on the stream lasts without renewal (ms). A killed worker's
    /// successor waits at most this long before taking over its unacknowledged events.
    pub lease_ttl_ms: u64,
    /// TLS options for a `rediss://` stream URL.
    #[serde(default)]
    pub tls: TlsSettings,
}

fn one_partition() -> u32 {
    1
}

/// Most stream partitions: each is a stream, a lease and a task per worker.
pub const MAX_PARTITIONS: u32 = 1024;

/// The HTTP API.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ServerSettings {
    pub bind: SocketAddr,
    /// Distinct product ids used as metric labels before the rest count as `other`.
    pub max_product_labels: usize,
    /// Bearer token of the admin routes (player deletion, board reset); without one they are
    /// disabled.
    pub admin_token: Option<Secret>,
    /// More admin tokens, by name (one per operator or tool): the name is what the moderation
    /// audit trail records as who acted (`server.admin_token` is named `admin`).
    #[serde(default)]
    pub admin_tokens: BTreeMap<String, Secret>,
    /// Bearer token of event ingest over HTTP, separate from the admin token (game servers
    /// hold it, players must not); without one ingest is disabled.
    pub ingest_token: Option<Secret>,
    /// Origins allowed by CORS (`*` for any); empty: no CORS headers.
    pub cors_allowed_origins: Vec<String>,
    /// Largest request body accepted (bytes).
    pub max_body_bytes: usize,
    /// How long a top-ten answer is served from memory (ms); 0 disables the cache.
    pub top_ten_cache_ms: u64,
    /// How long a board's best `page_cache_rows` rows are kept in memory to answer pages
    /// within them (ms); 0 disables the cache.
    pub page_cache_ms: u64,
    /// Rows of a board's head kept for pages: pages past them are read from Redis.
    pub page_cache_rows: u64,
    /// How `GET /stats/{product}/{user}` encodes values: as the original service did
    /// (strings of the stored numbers) or as JSON numbers.
    pub original_stats_values: StatValues,
    /// Connections served at once; more wait in the listen backlog (of the same length).
    pub max_connections: usize,
    /// Largest request line plus headers (bytes); larger gets 431.
    pub max_header_bytes: usize,
    /// How long a client may take from a request's first byte to the end of its headers (ms);
    /// then the connection is closed.
    pub header_read_timeout_ms: u64,
    /// How long a kept-alive connection may sit idle between requests (ms); then it is closed.
    pub keep_alive_timeout_ms: u64,
    /// The worker's metrics (`http://host:port/metrics`), scraped for `GET /v1/health/worker`
    /// when the worker runs in another process; without it, `stats-tracker all` summarises
    /// its own metrics.
    pub worker_metrics_url: Option<String>,
}

/// How the original stats route encodes a stat's value.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum StatValues {
    /// `"1"`, as the original service answered (a portal tests values for truthiness in
    /// JavaScript, where `"0"` is shown and `0` is not).
    #[default]
    Strings,
    /// `1`.
    Numbers,
}

/// One Redis to connect to: its URL (may hold a password: never logged) and TLS options.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RedisEndpoint {
    /// A server's URL, or with `cluster` one or more seed nodes' URLs, comma-separated.
    pub url: String,
    pub tls: TlsSettings,
    /// A Redis Cluster rather than a single server.
    pub cluster: bool,
    /// Reads go to replicas (clusters only).
    pub read_from_replicas: bool,
}

impl RedisEndpoint {
    /// One server's URL.
    pub fn server(url: impl Into<String>) -> Self {
        RedisEndpoint {
            url: url.into(),
            ..RedisEndpoint::default()
        }
    }

    /// The URLs of `url`: one for a server, each seed node of a cluster.
    pub fn seed_urls(&self) -> impl Iterator<Item = &str> {
        seed_urls(&self.url)
    }
}

/// The comma-separated URLs of a URL setting, trimmed, empty ones left out.
fn seed_urls(urls: &str) -> impl Iterator<Item = &str> {
    urls.split(',').map(str::trim).filter(|url| !url.is_empty())
}

impl TlsSettings {
    /// Refuses options that cannot work: a client certificate without its key (or the other
    /// way round), files that are not there, TLS options for a URL that is not `rediss://`.
    fn check(&self, setting: &str, url: Option<&str>) -> Result<(), String> {
        let given = self.ca_file.is_some()
            || self.client_cert_file.is_some()
            || self.client_key_file.is_some()
            || self.insecure_skip_verify;
        let tls_url = url.is_some_and(|url| url.starts_with("rediss://"));
        if given && url.is_some() && !tls_url {
            return Err(format!(
                "{setting}.tls is set but {setting}.redis_url does not start with rediss://"
            ));
        }
        if self.client_cert_file.is_some() != self.client_key_file.is_some() {
            return Err(format!(
                "{setting}.tls.client_cert_file and {setting}.tls.client_key_file go together"
            ));
        }
        for (name, file) in [
            ("ca_file", &self.ca_file),
            ("client_cert_file", &self.client_cert_file),
            ("client_key_file", &self.client_key_file),
        ] {
            if let Some(file) = file
                && !file.is_file()
            {
                return Err(format!(
                    "{setting}.tls.{name}: {} does not exist",
                    file.display()
                ));
            }
        }
        Ok(())
    }
}

/// Refuses a URL setting the client cannot use: not a Redis URL, several URLs without
/// `cluster`, none at all. The client's reasons never quote the URL, which may hold a password.
fn check_redis_urls(setting: &str, urls: &str, cluster: bool) -> Result<(), String> {
    use redis::IntoConnectionInfo;
    let urls: Vec<&str> = seed_urls(urls).collect();
    if urls.is_empty() {
        return Err(format!("{setting}.redis_url is empty"));
    }
    if urls.len() > 1 && !cluster {
        return Err(format!(
            "{setting}.redis_url lists {} URLs; several seed nodes need {setting}.cluster = true",
            urls.len()
        ));
    }
    for url in urls {
        if let Err(error) = url.into_connection_info() {
            return Err(format!(
                "{setting}.redis_url is not a Redis URL the tracker can use: {error}"
            ));
        }
        if cluster && url.starts_with("redis+unix") {
            return Err(format!(
                "{setting}.redis_url: a Redis Cluster is reached over TCP, not a unix socket"
            ));
        }
    }
    Ok(())
}

/// A secret setting (a token): compared in constant time, never printed.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The secret itself, for what must use it (a signing key); never log it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether `candidate` is this secret, in time independent of where they differ.
    pub fn matches(&self, candidate: &str) -> bool {
        let (a, b) = (self.0.as_bytes(), candidate.as_bytes());
        a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// The name the moderation audit trail gives `server.admin_token`.
pub const ADMIN_TOKEN_NAME: &str = "admin";

/// The stream worker's own endpoints.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct WorkerSettings {
    /// Where the worker serves `/metrics` (Prometheus).
    pub metrics_bind: SocketAddr,
    /// Entries the worker keeps in memory between batches: rating states, products' positions,
    /// re-drive markers (past it, it drops them all and reloads what it needs).
    pub rating_cache_entries: usize,
    /// Most entries one commit script call applies (a product's share of a batch is split).
    pub entries_per_script_call: usize,
    /// Dead letters kept, about (trimmed with `MAXLEN ~` as letters are written); 0: no limit.
    pub dead_letter_max_entries: u64,
    /// Days a dead letter is kept, about (trimmed with `MINID ~` as letters are written); 0:
    /// kept until the count limit drops it.
    pub dead_letter_max_age_days: u64,
    /// Change feed entries kept per product, about (trimmed with `MAXLEN ~` as entries are
    /// written).
    #[serde(default = "default_feed_max_entries")]
    pub feed_max_entries: u64,
}

fn default_feed_max_entries() -> u64 {
    100_000
}

/// How long the dead-letter stream grows: both bounds apply, each approximately (Redis trims
/// whole stream nodes, so a few more letters than the bounds may stay).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DeadLetterRetention {
    /// Letters kept; 0: no count limit.
    pub max_entries: u64,
    /// Age of the oldest letter kept (by its stream id); 0: no age limit.
    pub max_age_ms: u64,
}

/// Logging.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LogSettings {
    /// `tracing` filter, e.g. `info` or `stats_tracker=debug`; `RUST_LOG` wins when set.
    pub level: String,
    /// Emit JSON lines instead of human-readable text.
    pub json: bool,
    /// One line per HTTP request: method, route template, status and duration.
    pub access: bool,
}

/// Why the configuration cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A value of the file or the environment that does not fit its setting, described
    /// by [`describe_figment_error`].
    #[error("invalid configuration: {0}")]
    Invalid(String),
    #[error("{mode} mode needs {}", missing_urls(.missing))]
    MissingRedisUrls {
        mode: Mode,
        missing: Vec<MissingRedisUrl>,
    },
    #[error("invalid configuration: {0}")]
    Prefix(#[from] super::keys::InvalidPrefix),
    #[error("invalid configuration: {0}")]
    Other(String),
}

/// A Redis URL a mode has no default for, and how to give it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MissingRedisUrl {
    pub what: &'static str,
    pub env: &'static str,
    pub setting: &'static str,
}

fn missing_urls(missing: &[MissingRedisUrl]) -> String {
    missing
        .iter()
        .map(|url| {
            format!(
                "the {} Redis URL: set {} (or `{}` in the config file)",
                url.what, url.env, url.setting
            )
        })
        .collect::<Vec<_>>()
        .join("; and ")
}

/// A figment error as a person should read it: the setting by its name (`stream.batch_size`,
/// not figment's internal `default.stream.batch_size`), where the value came from (the config
/// file by the path the user gave, or the environment variable), and every error when there
/// are several.
fn describe_figment_error(error: figment::Error, file: Option<&Path>) -> String {
    error
        .into_iter()
        .map(|error| {
            let mut text = error.kind.to_string();
            let setting = error.path.join(".");
            if !setting.is_empty() {
                text.push_str(&format!(" for `{setting}`"));
            }
            let source = error.metadata.as_ref().and_then(|md| md.source.as_ref());
            match (source, file) {
                (Some(figment::Source::File(_)), Some(file)) => {
                    text.push_str(&format!(" in {}", file.display()));
                }
                _ if error
                    .metadata
                    .as_ref()
                    .is_some_and(|md| md.name.contains("environment variable")) =>
                {
                    text.push_str(&format!(" in {}", env_name_of(&error.path)));
                }
                _ => {}
            }
            text
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// The environment variable that sets the setting at `path`.
fn env_name_of(path: &[String]) -> String {
    match path.join(".").as_str() {
        "store.redis_url" => format!("{STORE_URL_ENV} (or {ENV_PREFIX}STORE__REDIS_URL)"),
        "stream.redis_url" => format!("{STREAM_URL_ENV} (or {ENV_PREFIX}STREAM__REDIS_URL)"),
        _ => format!("{ENV_PREFIX}{}", path.join("__").to_ascii_uppercase()),
    }
}

impl Settings {
    /// Built-in defaults of a mode.
    pub fn defaults(mode: Mode) -> Self {
        let local = |db: u8| Some(format!("redis://127.0.0.1:6379/{db}"));
        let (store_url, stream_url, key_prefix, json) = match mode {
            Mode::Development => (local(0), local(0), "stats_tracker", false),
            Mode::Test => (local(15), local(15), "stats_tracker_test", false),
            Mode::Production => (None, None, "stats_tracker", true),
        };
        Settings {
            store: StoreSettings {
                redis_url: store_url,
                key_prefix: key_prefix.to_owned(),
                command_timeout_ms: 800,
                cluster: false,
                read_from_replicas: false,
                tls: TlsSettings::default(),
            },
            stream: StreamSettings {
                redis_url: stream_url,
                name: "game_event_stream".to_owned(),
                partitions: 1,
                group: "stats-tracker".to_owned(),
                consumer: None,
                // Draining the bench's backlog, 1000 was 4–20% faster than 500, at 34 rather than
                // 26 MiB worker RSS (scripts/bench).
                batch_size: 1000,
                block_ms: 2000,
                lease_ttl_ms: 10_000,
                cluster: false,
                tls: TlsSettings::default(),
            },
            server: ServerSettings {
                bind: SocketAddr::from(([0, 0, 0, 0], 5000)),
                max_product_labels: 100,
                admin_token: None,
                admin_tokens: BTreeMap::new(),
                ingest_token: None,
                cors_allowed_origins: Vec::new(),
                max_body_bytes: 1 << 20,
                top_ten_cache_ms: 100,
                page_cache_ms: 100,
                page_cache_rows: 1000,
                original_stats_values: StatValues::Strings,
                // Below the usual soft limit of 1024 open files, leaving some for Redis; each
                // connection holds at most about two header buffers (64 KiB at 32 KiB).
                max_connections: 1000,
                // Fits the longest friends-list query (100 ids of 128 ASCII bytes) with room
                // for ordinary headers.
                max_header_bytes: 32 * 1024,
                header_read_timeout_ms: 10_000,
                // Longer than the usual load balancer idle timeout (60 s), so the balancer,
                // not the server, closes idle connections: it never sends on one being closed.
                keep_alive_timeout_ms: 75_000,
                worker_metrics_url: None,
            },
            worker: WorkerSettings {
                metrics_bind: SocketAddr::from(([0, 0, 0, 0], 5002)),
                // About 12 MiB: keeps the worker well inside 64 MiB with every player cached.
                rating_cache_entries: 50_000,
                // A script runs alone in Redis, the worker's next read waiting behind it: at
                // 200, a call takes 0.5–2 ms on the bench (scripts/bench).
                entries_per_script_call: 200,
                // Letters are rare and small; 100,000 of ~1 KiB stay around 100 MiB at most.
                dead_letter_max_entries: 100_000,
                dead_letter_max_age_days: 30,
                feed_max_entries: default_feed_max_entries(),
            },
            // Forever by default: a rebuild can only replay what is kept. About 30-60 bytes of
            // Redis per entry (BENCHMARKS.md); export old history to segment files to bound it.
            history: HistorySettings {
                enabled: true,
                max_entries: 0,
                max_age_days: 0,
                segments_dir: None,
                // About 2-5 s of replay on 2 cores (BENCHMARKS.md).
                as_of_max_entries: 100_000,
            },
            games: GamesSettings::default(),
            log: LogSettings {
                level: "info".to_owned(),
                json,
                access: false,
            },
            webhooks: Vec::new(),
        }
    }

    /// Loads the settings of `mode`: defaults, then `file` (if any), then the process
    /// environment.
    pub fn load(mode: Mode, file: Option<&Path>) -> Result<Self, ConfigError> {
        let env = Env::raw();
        let mut figment = Figment::from(Serialized::defaults(Self::defaults(mode)));
        if let Some(file) = file {
            if !file.is_file() {
                return Err(ConfigError::Other(format!(
                    "config file {} does not exist",
                    file.display()
                )));
            }
            figment = figment.merge(Toml::file_exact(file));
        }
        let store_url = env
            .clone()
            .only(&[STORE_URL_ENV])
            .map(|_| "store.redis_url".into());
        let stream_url = env
            .clone()
            .only(&[STREAM_URL_ENV])
            .map(|_| "stream.redis_url".into());
        let nested = env
            .filter_map(|key| {
                key.as_str()
                    .strip_prefix(ENV_PREFIX)
                    .map(|rest| rest.to_owned().into())
            })
            .split("__")
            .lowercase(true);
        let settings: Settings = figment
            .merge(nested)
            .merge(store_url)
            .merge(stream_url)
            .extract()
            .map_err(|error| ConfigError::Invalid(describe_figment_error(error, file)))?;
        settings.validate(mode)?;
        Ok(settings)
    }

    fn validate_webhooks(&self) -> Result<(), ConfigError> {
        let mut names = std::collections::HashSet::new();
        for (index, hook) in self.webhooks.iter().enumerate() {
            let what = format!("webhooks[{index}] (`{}`)", hook.name);
            let valid_name = !hook.name.is_empty()
                && hook.name.len() <= 64
                && hook
                    .name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b));
            let problem = if !valid_name {
                Some("`name` must be 1-64 characters of ASCII letters, digits, '_', '-' or '.'")
            } else if !names.insert(hook.name.as_str()) {
                Some("`name` is used by another webhook")
            } else if !(hook.url.starts_with("http://") || hook.url.starts_with("https://"))
                || hook.url.parse::<hyper::Uri>().is_err()
            {
                Some("`url` must be an http:// or https:// URL")
            } else if hook.secret.0.len() < 16 {
                Some("`secret` must be at least 16 characters")
            } else if !(100..=60_000).contains(&hook.timeout_ms) {
                Some("`timeout_ms` must be between 100 and 60000")
            } else {
                None
            };
            if let Some(problem) = problem {
                return Err(ConfigError::Other(format!("{what}: {problem}")));
            }
        }
        Ok(())
    }

    fn validate(&self, mode: Mode) -> Result<(), ConfigError> {
        // Every missing URL at once: a newcomer fixes them in one go.
        let mut missing = Vec::new();
        if self.store.redis_url.is_none() {
            missing.push(MissingRedisUrl {
                what: "store",
                env: STORE_URL_ENV,
                setting: "store.redis_url",
            });
        }
        if self.stream.redis_url.is_none() {
            missing.push(MissingRedisUrl {
                what: "event stream",
                env: STREAM_URL_ENV,
                setting: "stream.redis_url",
            });
        }
        if !missing.is_empty() {
            return Err(ConfigError::MissingRedisUrls { mode, missing });
        }
        for (setting, url, cluster) in [
            ("store", &self.store.redis_url, self.store.cluster),
            ("stream", &self.stream.redis_url, self.stream.cluster),
        ] {
            check_redis_urls(setting, url.as_deref().unwrap_or_default(), cluster)
                .map_err(ConfigError::Other)?;
        }
        if self.store.read_from_replicas && !self.store.cluster {
            return Err(ConfigError::Other(
                "store.read_from_replicas needs store.cluster = true (a single server has no \
                 replicas the tracker reads from)"
                    .into(),
            ));
        }
        self.key_space()?;
        self.store
            .tls
            .check("store", self.store.redis_url.as_deref())
            .map_err(ConfigError::Other)?;
        self.stream
            .tls
            .check("stream", self.stream.redis_url.as_deref())
            .map_err(ConfigError::Other)?;
        if self.stream.batch_size == 0 || self.stream.batch_size > 100_000 {
            return Err(ConfigError::Other(
                "stream.batch_size must be between 1 and 100000".into(),
            ));
        }
        if self.worker.entries_per_script_call == 0 {
            return Err(ConfigError::Other(
                "worker.entries_per_script_call must be at least 1".into(),
            ));
        }
        if self.history.max_age_days > MAX_DEAD_LETTER_AGE_DAYS {
            return Err(ConfigError::Other(format!(
                "history.max_age_days must be at most {MAX_DEAD_LETTER_AGE_DAYS} (0 keeps \
                 entries until the count limit drops them)"
            )));
        }
        if self.worker.dead_letter_max_age_days > MAX_DEAD_LETTER_AGE_DAYS {
            return Err(ConfigError::Other(format!(
                "worker.dead_letter_max_age_days must be at most {MAX_DEAD_LETTER_AGE_DAYS} \
                 (0 keeps letters until the count limit drops them)"
            )));
        }
        // Each cached head is re-read every `page_cache_ms` (one ZRANGE, blocking Redis while
        // it runs), and the heads held share a fixed memory budget: keep heads small.
        if self.server.page_cache_rows > 10_000 {
            return Err(ConfigError::Other(
                "server.page_cache_rows must be at most 10000".into(),
            ));
        }
        if self.server.max_connections == 0 || self.server.max_connections > 1_000_000 {
            return Err(ConfigError::Other(
                "server.max_connections must be between 1 and 1000000".into(),
            ));
        }
        if self.server.max_header_bytes < 1024 {
            return Err(ConfigError::Other(
                "server.max_header_bytes must be at least 1024, room for a request line and \
                 its usual headers"
                    .into(),
            ));
        }
        for (name, timeout_ms) in [
            (
                "server.header_read_timeout_ms",
                self.server.header_read_timeout_ms,
            ),
            (
                "server.keep_alive_timeout_ms",
                self.server.keep_alive_timeout_ms,
            ),
        ] {
            if timeout_ms == 0 {
                return Err(ConfigError::Other(format!("{name} must be at least 1")));
            }
        }
        if let Some(url) = &self.server.worker_metrics_url {
            check_worker_metrics_url(url).map_err(ConfigError::Other)?;
        }
        if self.stream.lease_ttl_ms < 3 * self.stream.block_ms.max(100) {
            return Err(ConfigError::Other(
                "stream.lease_ttl_ms must be at least three times stream.block_ms, \
                 so that a waiting worker renews its lease in time"
                    .into(),
            ));
        }
        for (name, token) in [
            ("server.admin_token", &self.server.admin_token),
            ("server.ingest_token", &self.server.ingest_token),
        ] {
            if token.as_ref().is_some_and(|t| t.0.len() < 16) {
                return Err(ConfigError::Other(format!(
                    "{name} must be at least 16 characters"
                )));
            }
        }
        if self.server.admin_token.is_some() && self.server.admin_token == self.server.ingest_token
        {
            return Err(ConfigError::Other(
                "server.admin_token and server.ingest_token must differ".into(),
            ));
        }
        for (name, token) in &self.server.admin_tokens {
            let valid_name = !name.is_empty()
                && name.len() <= 64
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b));
            if !valid_name {
                return Err(ConfigError::Other(format!(
                    "server.admin_tokens: the name {name:?} must be 1-64 characters of ASCII \
                     letters, digits, '_', '-' or '.'"
                )));
            }
            if name == ADMIN_TOKEN_NAME && self.server.admin_token.is_some() {
                return Err(ConfigError::Other(format!(
                    "server.admin_tokens.{name}: the name `{ADMIN_TOKEN_NAME}` is \
                     server.admin_token's"
                )));
            }
            if token.0.len() < 16 {
                return Err(ConfigError::Other(format!(
                    "server.admin_tokens.{name} must be at least 16 characters"
                )));
            }
            if Some(token) == self.server.ingest_token.as_ref() {
                return Err(ConfigError::Other(format!(
                    "server.admin_tokens.{name} and server.ingest_token must differ"
                )));
            }
            // Each token names one operator in the audit trail.
            let same = self.server.admin_token.as_ref() == Some(token)
                || self
                    .server
                    .admin_tokens
                    .iter()
                    .any(|(other, value)| other != name && value == token);
            if same {
                return Err(ConfigError::Other(format!(
                    "server.admin_tokens.{name} is the same token as another admin token; each \
                     must differ"
                )));
            }
        }
        self.validate_webhooks()?;
        if self.worker.feed_max_entries == 0 {
            return Err(ConfigError::Other(
                "worker.feed_max_entries must be at least 1 (a feed readers lag behind needs room)"
                    .into(),
            ));
        }
        if self.stream.partitions == 0 || self.stream.partitions > MAX_PARTITIONS {
            return Err(ConfigError::Other(format!(
                "stream.partitions must be between 1 and {MAX_PARTITIONS}"
            )));
        }
        if self.stream.partitions > 1 && self.stream.name.contains(['{', '}']) {
            return Err(ConfigError::Other(
                "stream.name must not contain { or } when stream.partitions is above 1: each \
                 partition's stream is hashed to a slot of its own by its whole name"
                    .into(),
            ));
        }
        if self.stream.name.is_empty() || self.stream.group.is_empty() {
            return Err(ConfigError::Other(
                "stream.name and stream.group must not be empty".into(),
            ));
        }
        Ok(())
    }

    pub fn key_space(&self) -> Result<KeySpace, super::keys::InvalidPrefix> {
        KeySpace::new(&self.store.key_prefix)
    }

    /// The store URL; present after [`Settings::load`] validated it.
    pub fn store_url(&self) -> &str {
        self.store.redis_url.as_deref().unwrap_or_default()
    }

    /// The store's Redis: URL and TLS options.
    pub fn store_redis(&self) -> RedisEndpoint {
        RedisEndpoint {
            url: self.store_url().to_owned(),
            tls: self.store.tls.clone(),
            cluster: self.store.cluster,
            read_from_replicas: self.store.read_from_replicas,
        }
    }

    /// The event stream's Redis: URL and TLS options.
    pub fn stream_redis(&self) -> RedisEndpoint {
        RedisEndpoint {
            url: self.stream_url().to_owned(),
            tls: self.stream.tls.clone(),
            cluster: self.stream.cluster,
            read_from_replicas: false,
        }
    }

    /// The stream URL; present after [`Settings::load`] validated it.
    pub fn stream_url(&self) -> &str {
        self.stream.redis_url.as_deref().unwrap_or_default()
    }

    /// How dead letters are trimmed as they are written.
    pub fn dead_letter_retention(&self) -> DeadLetterRetention {
        DeadLetterRetention {
            max_entries: self.worker.dead_letter_max_entries,
            max_age_ms: self.worker.dead_letter_max_age_days * 24 * 60 * 60 * 1000,
        }
    }

    /// How each product's history is trimmed as it is written.
    pub fn history_retention(&self) -> HistoryRetention {
        HistoryRetention {
            max_entries: self.history.max_entries,
            max_age_ms: self.history.max_age_days * 24 * 60 * 60 * 1000,
        }
    }

    /// This worker's consumer name.
    pub fn consumer_name(&self) -> String {
        self.stream.consumer.clone().unwrap_or_else(|| {
            let host = hostname::get()
                .ok()
                .and_then(|h| h.into_string().ok())
                .unwrap_or_else(|| "worker".to_owned());
            format!("{host}-{}", std::process::id())
        })
    }
}

/// Refuses a `server.worker_metrics_url` that the server could not scrape: it must be a plain
/// `http://host[:port][/path]` URL (no TLS, no user info).
pub fn check_worker_metrics_url(url: &str) -> Result<(), String> {
    let problem = match url.parse::<axum::http::Uri>() {
        Err(error) => Some(error.to_string()),
        Ok(uri) if uri.scheme_str() != Some("http") => {
            Some("it must start with http:// (https is not supported)".to_owned())
        }
        Ok(uri) => match uri.authority() {
            None => Some("it names no host".to_owned()),
            Some(authority) if authority.as_str().contains('@') => {
                Some("it must not carry user info".to_owned())
            }
            Some(authority) if authority.host().is_empty() => Some("it names no host".to_owned()),
            Some(_) => None,
        },
    };
    match problem {
        None => Ok(()),
        Some(problem) => Err(format!(
            "server.worker_metrics_url must be an http:// URL such as \
             http://127.0.0.1:5002/metrics, not `{url}`: {problem}"
        )),
    }
}

#[cfg(test)]
// figment's Jail returns its large error type by value; fine in tests.
#[allow(clippy::result_large_err)]
mod tests {
    use super::*;

    // figment's Jail sets up an isolated environment and working directory per test.
    use figment::Jail;

    #[test]
    fn development_defaults_work_without_anything() {
        Jail::expect_with(|_jail| {
            let settings = Settings::load(Mode::Development, None).unwrap();
            assert_eq!(settings.server.bind.port(), 5000);
            assert_eq!(settings.worker.metrics_bind.port(), 5002);
            assert_eq!(settings.stream.name, "game_event_stream");
            Ok(())
        });
    }

    #[test]
    fn production_requires_both_urls_by_their_original_names() {
        Jail::expect_with(|jail| {
            let err = Settings::load(Mode::Production, None)
                .unwrap_err()
                .to_string();
            // Both at once, so that one attempt tells everything missing.
            assert!(err.contains("STATS_TRACKER_REDIS_URL"), "{err}");
            assert!(err.contains("GAME_EVENT_STREAM_REDIS_URL"), "{err}");
            jail.set_env("STATS_TRACKER_REDIS_URL", "redis://store:6379/0");
            let err = Settings::load(Mode::Production, None)
                .unwrap_err()
                .to_string();
            assert!(err.contains("GAME_EVENT_STREAM_REDIS_URL"), "{err}");
            jail.set_env("GAME_EVENT_STREAM_REDIS_URL", "redis://events:6379/1");
            let settings = Settings::load(Mode::Production, None).unwrap();
            assert_eq!(settings.store_url(), "redis://store:6379/0");
            assert_eq!(settings.stream_url(), "redis://events:6379/1");
            assert!(settings.log.json);
            Ok(())
        });
    }

    #[test]
    fn cluster_and_partition_settings_that_cannot_work_are_refused() {
        Jail::expect_with(|jail| {
            let err = |jail: &mut Jail, vars: &[(&str, &str)]| {
                jail.clear_env();
                for (name, value) in vars {
                    jail.set_env(name, value);
                }
                Settings::load(Mode::Development, None)
                    .unwrap_err()
                    .to_string()
            };
            let two = "redis://10.0.0.1:7000,redis://10.0.0.2:7000";
            let message = err(jail, &[("STATS_TRACKER_REDIS_URL", two)]);
            assert!(message.contains("store.cluster = true"), "{message}");
            let message = err(
                jail,
                &[("STATS_TRACKER__STORE__READ_FROM_REPLICAS", "true")],
            );
            assert!(message.contains("store.read_from_replicas"), "{message}");
            let message = err(jail, &[("STATS_TRACKER__STREAM__PARTITIONS", "0")]);
            assert!(message.contains("stream.partitions"), "{message}");
            let message = err(
                jail,
                &[
                    ("STATS_TRACKER__STREAM__PARTITIONS", "4"),
                    ("STATS_TRACKER__STREAM__NAME", "{events}"),
                ],
            );
            assert!(message.contains("stream.name"), "{message}");
            jail.clear_env();
            jail.set_env("STATS_TRACKER_REDIS_URL", two);
            jail.set_env("STATS_TRACKER__STORE__CLUSTER", "true");
            jail.set_env("STATS_TRACKER__STREAM__PARTITIONS", "8");
            let settings = Settings::load(Mode::Development, None).unwrap();
            assert!(settings.store_redis().cluster);
            assert_eq!(settings.store_redis().seed_urls().count(), 2);
            assert_eq!(settings.stream.partitions, 8);
            Ok(())
        });
    }

    #[test]
    fn tls_options_that_cannot_work_are_refused_naming_the_setting() {
        Jail::expect_with(|jail| {
            jail.create_file("ca.pem", "not checked here")?;
            let err = |jail: &mut Jail, vars: &[(&str, &str)]| {
                jail.clear_env();
                for (name, value) in vars {
                    jail.set_env(name, value);
                }
                Settings::load(Mode::Development, None)
                    .unwrap_err()
                    .to_string()
            };
            let tls_url = ("STATS_TRACKER_REDIS_URL", "rediss://store:6380/0");
            let message = err(jail, &[("STATS_TRACKER__STORE__TLS__CA_FILE", "ca.pem")]);
            assert!(
                message.contains("does not start with rediss://"),
                "{message}"
            );
            let message = err(
                jail,
                &[
                    tls_url,
                    ("STATS_TRACKER__STORE__TLS__CA_FILE", "missing.pem"),
                ],
            );
            assert!(
                message.contains("store.tls.ca_file: missing.pem"),
                "{message}"
            );
            let message = err(
                jail,
                &[
                    tls_url,
                    ("STATS_TRACKER__STORE__TLS__CLIENT_CERT_FILE", "ca.pem"),
                ],
            );
            assert!(message.contains("go together"), "{message}");
            jail.clear_env();
            jail.set_env(tls_url.0, tls_url.1);
            jail.set_env("STATS_TRACKER__STORE__TLS__CA_FILE", "ca.pem");
            jail.set_env("GAME_EVENT_STREAM_REDIS_URL", "rediss://events:6380/1");
            jail.set_env("STATS_TRACKER__STREAM__TLS__INSECURE_SKIP_VERIFY", "true");
            let settings = Settings::load(Mode::Development, None).unwrap();
            assert_eq!(
                settings.store_redis().tls.ca_file.as_deref(),
                Some(Path::new("ca.pem"))
            );
            assert!(settings.stream_redis().tls.insecure_skip_verify);
            Ok(())
        });
    }

    #[test]
    fn file_then_env_override_defaults() {
        Jail::expect_with(|jail| {
            jail.create_file(
                "tracker.toml",
                "[store]\nkey_prefix = \"from_file\"\n[stream]\nbatch_size = 50\n",
            )?;
            let path = Path::new("tracker.toml");
            let settings = Settings::load(Mode::Development, Some(path)).unwrap();
            assert_eq!(settings.store.key_prefix, "from_file");
            assert_eq!(settings.stream.batch_size, 50);

            jail.set_env("STATS_TRACKER__STREAM__BATCH_SIZE", "70");
            jail.set_env("STATS_TRACKER__SERVER__BIND", "127.0.0.1:8080");
            let settings = Settings::load(Mode::Development, Some(path)).unwrap();
            assert_eq!(settings.stream.batch_size, 70);
            assert_eq!(settings.server.bind, "127.0.0.1:8080".parse().unwrap());
            assert_eq!(settings.store.key_prefix, "from_file");
            Ok(())
        });
    }

    #[test]
    fn example_file_is_complete_and_valid() {
        let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/example.toml");
        Jail::expect_with(|_jail| {
            let settings = Settings::load(Mode::Production, Some(&example)).unwrap();
            // The example spells out the development defaults.
            assert_eq!(settings, Settings::defaults(Mode::Development));
            Ok(())
        });
    }

    #[test]
    fn tokens_are_secret_and_distinct() {
        let token = Secret::new("0123456789abcdef");
        assert!(token.matches("0123456789abcdef"));
        assert!(!token.matches("0123456789abcdeF"));
        assert!(!token.matches(""));
        assert_eq!(format!("{token:?}"), "Secret(***)");
        Jail::expect_with(|jail| {
            jail.set_env("STATS_TRACKER__SERVER__ADMIN_TOKEN", "short");
            let err = Settings::load(Mode::Development, None)
                .unwrap_err()
                .to_string();
            assert!(err.contains("at least 16"), "{err}");
            jail.set_env("STATS_TRACKER__SERVER__ADMIN_TOKEN", "0123456789abcdef");
            jail.set_env("STATS_TRACKER__SERVER__INGEST_TOKEN", "0123456789abcdef");
            let err = Settings::load(Mode::Development, None)
                .unwrap_err()
                .to_string();
            assert!(err.contains("must differ"), "{err}");
            Ok(())
        });
    }

    #[test]
    fn webhooks_come_from_the_file_and_are_checked() {
        Jail::expect_with(|jail| {
            let hook = |url: &str, secret: &str| {
                format!(
                    "[[webhooks]]\nname = \"notifier\"\nurl = \"{url}\"\nsecret = \"{secret}\"\n"
                )
            };
            jail.create_file(
                "good.toml",
                &hook("https://example.com/h", "0123456789abcdef"),
            )?;
            let settings =
                Settings::load(Mode::Development, Some(Path::new("good.toml"))).expect("settings");
            assert_eq!(settings.webhooks.len(), 1);
            assert_eq!(settings.webhooks[0].timeout_ms, 5000);
            assert!(settings.webhooks[0].products.is_empty());
            for (text, expected) in [
                (
                    hook("ftp://example.com", "0123456789abcdef"),
                    "webhooks[0] (`notifier`): `url` must be an http:// or https:// URL",
                ),
                (
                    hook("http://example.com", "short"),
                    "`secret` must be at least 16 characters",
                ),
                (
                    hook("http://a", "0123456789abcdef") + &hook("http://b", "0123456789abcdef"),
                    "webhooks[1] (`notifier`): `name` is used by another webhook",
                ),
            ] {
                jail.create_file("bad.toml", &text)?;
                let err = Settings::load(Mode::Development, Some(Path::new("bad.toml")))
                    .unwrap_err()
                    .to_string();
                assert!(err.contains(expected), "{err}");
            }
            Ok(())
        });
    }

    #[test]
    fn named_admin_tokens_come_from_the_environment_and_are_checked() {
        Jail::expect_with(|jail| {
            jail.set_env(
                "STATS_TRACKER__SERVER__ADMIN_TOKENS__MODERATOR-ANN",
                "moderator-0123456789",
            );
            let settings = Settings::load(Mode::Development, None).expect("settings");
            let token = settings.server.admin_tokens.get("moderator-ann");
            assert!(token.is_some_and(|t| t.matches("moderator-0123456789")));
            for (name, value, expected) in [
                (
                    "MODERATOR-ANN",
                    "short",
                    "server.admin_tokens.moderator-ann must be at least 16",
                ),
                (
                    "ADMIN",
                    "another-token-0123456789",
                    "the name `admin` is server.admin_token's",
                ),
                (
                    "BAD%NAME",
                    "another-token-0123456789",
                    "the name \"bad%name\" must be",
                ),
                (
                    "INGESTER",
                    "ingest-token-0123456789",
                    "and server.ingest_token must differ",
                ),
                (
                    "TWIN",
                    "admin-token-0123456789",
                    "is the same token as another admin token",
                ),
            ] {
                jail.clear_env();
                jail.set_env(
                    "STATS_TRACKER__SERVER__ADMIN_TOKEN",
                    "admin-token-0123456789",
                );
                jail.set_env(
                    "STATS_TRACKER__SERVER__INGEST_TOKEN",
                    "ingest-token-0123456789",
                );
                jail.set_env(
                    format!("STATS_TRACKER__SERVER__ADMIN_TOKENS__{name}"),
                    value,
                );
                let err = Settings::load(Mode::Development, None)
                    .unwrap_err()
                    .to_string();
                assert!(err.contains(expected), "{name}: {err}");
            }
            Ok(())
        });
    }

    #[test]
    fn bad_values_are_named() {
        Jail::expect_with(|jail| {
            jail.create_file("bad.toml", "[stream]\nbatch_size = \"lots\"\n")?;
            let err = Settings::load(Mode::Development, Some(Path::new("bad.toml")))
                .unwrap_err()
                .to_string();
            assert!(err.contains("`stream.batch_size`"), "{err}");
            assert!(err.contains("in bad.toml"), "{err}");
            assert!(!err.contains("default."), "{err}");

            jail.set_env("STATS_TRACKER__STREAM__BLOCK_MS", "soon");
            let err = Settings::load(Mode::Development, None)
                .unwrap_err()
                .to_string();
            assert!(err.contains("in STATS_TRACKER__STREAM__BLOCK_MS"), "{err}");
            assert!(!err.contains("default."), "{err}");
            jail.clear_env();

            jail.create_file("typo.toml", "[stream]\nbatchsize = 5\n")?;
            let err = Settings::load(Mode::Development, Some(Path::new("typo.toml")))
                .unwrap_err()
                .to_string();
            assert!(err.contains("batchsize"), "{err}");

            let err = Settings::load(Mode::Development, Some(Path::new("missing.toml")))
                .unwrap_err()
                .to_string();
            assert!(err.contains("missing.toml"), "{err}");

            jail.set_env("STATS_TRACKER_REDIS_URL", "http://:secret@store:6379/0");
            let err = Settings::load(Mode::Development, None)
                .unwrap_err()
                .to_string();
            assert!(err.contains("store.redis_url"), "{err}");
            assert!(!err.contains("secret"), "{err}");
            jail.clear_env();

            jail.set_env("STATS_TRACKER__STORE__KEY_PREFIX", "a{b}");
            let err = Settings::load(Mode::Development, None)
                .unwrap_err()
                .to_string();
            assert!(err.contains("key prefix"), "{err}");
            jail.set_env("STATS_TRACKER__STORE__KEY_PREFIX", "ok");

            jail.set_env("STATS_TRACKER__WORKER__ENTRIES_PER_SCRIPT_CALL", "0");
            let err = Settings::load(Mode::Development, None)
                .unwrap_err()
                .to_string();
            assert!(err.contains("entries_per_script_call"), "{err}");
            jail.set_env("STATS_TRACKER__WORKER__ENTRIES_PER_SCRIPT_CALL", "200");

            jail.set_env("STATS_TRACKER__SERVER__PAGE_CACHE_ROWS", "20000");
            let err = Settings::load(Mode::Development, None)
                .unwrap_err()
                .to_string();
            assert!(err.contains("page_cache_rows"), "{err}");
            jail.set_env("STATS_TRACKER__SERVER__PAGE_CACHE_ROWS", "1000");

            for (env, value, named) in [
                (
                    "STATS_TRACKER__SERVER__MAX_CONNECTIONS",
                    "0",
                    "max_connections",
                ),
                (
                    "STATS_TRACKER__SERVER__MAX_HEADER_BYTES",
                    "100",
                    "max_header_bytes",
                ),
                (
                    "STATS_TRACKER__SERVER__HEADER_READ_TIMEOUT_MS",
                    "0",
                    "header_read_timeout_ms",
                ),
                (
                    "STATS_TRACKER__SERVER__KEEP_ALIVE_TIMEOUT_MS",
                    "0",
                    "keep_alive_timeout_ms",
                ),
                (
                    "STATS_TRACKER__WORKER__DEAD_LETTER_MAX_AGE_DAYS",
                    "36501",
                    "dead_letter_max_age_days",
                ),
                (
                    "STATS_TRACKER__SERVER__WORKER_METRICS_URL",
                    "https://127.0.0.1:5002/metrics",
                    "worker_metrics_url",
                ),
                (
                    "STATS_TRACKER__SERVER__WORKER_METRICS_URL",
                    "127.0.0.1:5002",
                    "worker_metrics_url",
                ),
                (
                    "STATS_TRACKER__SERVER__WORKER_METRICS_URL",
                    "http://user:secret@127.0.0.1:5002/metrics",
                    "worker_metrics_url",
                ),
            ] {
                jail.set_env(env, value);
                let err = Settings::load(Mode::Development, None)
                    .unwrap_err()
                    .to_string();
                assert!(err.contains(named), "{err}");
                jail.clear_env();
            }
            Ok(())
        });
    }
}
