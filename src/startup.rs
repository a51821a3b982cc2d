//! Wiring: builds the server and the worker from [`Settings`] and runs them until a shutdown
//! signal (SIGINT or SIGTERM), which fans out to every running part. Each way start-up can
//! fail has its own exit code ([`exit_code`]).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::core::config::Settings;
use crate::core::keys::PoolKeys;
use crate::core::layout::{self, LayoutError};
use crate::core::metrics::{ProductLabels, prometheus};
use crate::core::store::{Store, lazy_connection, redis_location};
use crate::dead_letters::EventStreamSink;
use crate::games::{Games, GamesError};
use crate::server::listener::{self, Limits};
use crate::server::{self, AppState, HeadCache, Ingest, TopCache, WorkerMetrics};
use crate::workers::{self, Worker, plan::Rules};

/// Which parts to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parts {
    Server,
    Worker,
    All,
}

/// The process's exit codes, one per kind of failure (documented in `--help` and README).
pub mod exit_code {
    /// A failure while running (or one no other code names).
    pub const FAILURE: u8 = 1;
    /// Wrong command line or unusable settings (clap exits with 2 for usage errors too).
    pub const CONFIG: u8 = 2;
    /// The games file cannot be read or is invalid.
    pub const GAMES: u8 = 3;
    /// An address to listen on cannot be bound (in use, not local, not permitted).
    pub const BIND: u8 = 4;
    /// The store holds another layout version (`stats-tracker migrate` converts older ones).
    pub const LAYOUT: u8 = 5;
    /// The event stream was set up with another `stream.partitions`.
    pub const PARTITIONS: u8 = 6;
    /// Another rebuild of the same product is running.
    pub const BUSY: u8 = 7;
    /// A rebuild cannot replay the product's whole history (it misses entries, or segment
    /// files are needed).
    pub const HISTORY: u8 = 8;
}

/// Why the tracker did not start, or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    /// Settings that loaded but cannot be used (e.g. a Redis URL the client refuses).
    #[error("invalid configuration: {0}")]
    Config(String),
    #[error(transparent)]
    Games(#[from] GamesError),
    #[error("cannot listen for {what} on {addr}: {cause}")]
    Bind {
        what: &'static str,
        addr: SocketAddr,
        cause: std::io::Error,
    },
    #[error("store Redis {store}: {cause}")]
    Layout { store: String, cause: LayoutError },
    #[error(
        "event stream Redis {stream}: the stream was set up with {stored} partition(s), and \
         stream.partitions is {configured}; every process must use the same count (changing it \
         on a running system is not supported: see README, \"Partitioned streams\")"
    )]
    Partitions {
        stream: String,
        stored: u32,
        configured: u32,
    },
    /// Another process is doing the same (a rebuild of the same product).
    #[error("{0}")]
    Busy(String),
    /// The history cannot serve what was asked.
    #[error("{0}")]
    History(String),
    /// A part failed while running.
    #[error("{0:#}")]
    Failed(#[from] anyhow::Error),
}

impl StartupError {
    /// The exit code of this failure (see [`exit_code`]).
    pub fn exit_code(&self) -> u8 {
        match self {
            StartupError::Config(_) => exit_code::CONFIG,
            StartupError::Games(_) => exit_code::GAMES,
            StartupError::Bind { .. } => exit_code::BIND,
            StartupError::Layout { .. } => exit_code::LAYOUT,
            StartupError::Partitions { .. } => exit_code::PARTITIONS,
            StartupError::Busy(_) => exit_code::BUSY,
            StartupError::History(_) => exit_code::HISTORY,
            StartupError::Failed(_) => exit_code::FAILURE,
        }
    }
}

/// The games configuration the settings name (the built-in one when none).
pub fn load_games(settings: &Settings) -> Result<Arc<Games>, GamesError> {
    Ok(Arc::new(Games::load(settings.games.file.as_deref())?))
}

/// The store the settings name, connected lazily (Redis may still be missing).
fn connect_store(settings: &Settings) -> Result<Store, StartupError> {
    let key_space = settings
        .key_space()
        .map_err(|error| StartupError::Config(error.to_string()))?;
    Store::connect_lazy(
        &settings.store_redis(),
        key_space,
        Duration::from_millis(settings.store.command_timeout_ms),
    )
    .map_err(|error| StartupError::Config(format!("the store Redis URL cannot be used: {error}")))
}

/// Builds the server's shared state (connects lazily: Redis may still be missing). The
/// worker's health is read from `server.worker_metrics_url`, else from this process's metrics
/// (see [`run`] for a server without a worker).
pub fn app_state(settings: &Settings, games: Arc<Games>) -> Result<AppState, StartupError> {
    let invalid = |what: &str| {
        let what = what.to_owned();
        move |error: crate::core::store::StoreError| {
            StartupError::Config(format!("the {what} Redis URL cannot be used: {error}"))
        }
    };
    let store = connect_store(settings)?;
    // One connection to the stream's Redis for ingest and dead-letter re-drives.
    let stream = lazy_connection(
        &settings.stream_redis(),
        Duration::from_millis(settings.store.command_timeout_ms),
    )
    .map_err(invalid("stream"))?;
    let event_stream = EventStreamSink {
        conn: stream.clone(),
        name: settings.stream.name.clone(),
        partitions: settings.stream.partitions,
        timeout: server::APPEND_TIMEOUT,
    };
    let ingest = settings.server.ingest_token.as_ref().map(|token| Ingest {
        token: token.clone(),
        stream,
        stream_name: settings.stream.name.clone(),
        partitions: settings.stream.partitions,
        rules: Arc::new(Rules::from_games(&games)),
    });
    let as_of = match settings.history.enabled {
        true => Some(
            crate::history::as_of::AsOf::new(settings, store.clone(), games.clone())
                .map_err(invalid("store"))?,
        ),
        false => None,
    };
    Ok(AppState {
        as_of,
        store,
        labels: Arc::new(ProductLabels::new(settings.server.max_product_labels)),
        stats: Arc::new(games.stats()),
        original_stats_values: settings.server.original_stats_values,
        games,
        admin_tokens: Arc::new(
            settings
                .server
                .admin_token
                .iter()
                .map(|token| {
                    (
                        crate::core::config::ADMIN_TOKEN_NAME.to_owned(),
                        token.clone(),
                    )
                })
                .chain(settings.server.admin_tokens.clone())
                .collect(),
        ),
        ingest,
        event_stream,
        cors_allowed_origins: settings.server.cors_allowed_origins.clone(),
        max_body_bytes: settings.server.max_body_bytes,
        top_cache: Arc::new(TopCache::new(
            Duration::from_millis(settings.server.top_ten_cache_ms),
            server::MAX_TOP_TEN_ANSWERS,
        )),
        head_cache: Arc::new(HeadCache::new(
            Duration::from_millis(settings.server.page_cache_ms),
            server::head_cache_entries(settings.server.page_cache_rows),
        )),
        head_rows: settings.server.page_cache_rows,
        clock: server::system_clock(),
        access_log: settings.log.access,
        worker_metrics: match &settings.server.worker_metrics_url {
            Some(url) => WorkerMetrics::Url(url.clone()),
            None => WorkerMetrics::Process,
        },
    })
}

fn bind(
    addr: SocketAddr,
    limits: &Limits,
    what: &'static str,
) -> Result<TcpListener, StartupError> {
    listener::bind(addr, limits).map_err(|cause| StartupError::Bind { what, addr, cause })
}

/// Runs `parts` until `shutdown` is cancelled. Binds every address before starting anything,
/// so a port conflict fails start-up instead of leaving half a service running.
pub async fn run(
    settings: Settings,
    parts: Parts,
    shutdown: CancellationToken,
) -> Result<(), StartupError> {
    // Sample histograms and drop stale data periodically, as the exporter expects.
    let upkeep = tokio::spawn(async {
        let mut tick = tokio::time::interval(Duration::from_secs(5));
        loop {
            tick.tick().await;
            prometheus().run_upkeep();
        }
    });

    // A bad games file stops start-up before anything runs.
    let games = load_games(&settings)?;
    // Where everything comes from, for the operator: never a Redis password (see
    // `redis_location`).
    tracing::info!(
        games = %settings
            .games
            .file
            .as_ref()
            .map_or_else(|| "built-in".to_owned(), |file| file.display().to_string()),
        store = %redis_location(settings.store_url()),
        stream = %redis_location(settings.stream_url()),
        key_prefix = %settings.store.key_prefix,
        stream_name = %settings.stream.name,
        "settings in use"
    );
    // The worker's metrics server is held to the API server's limits.
    let limits = Limits::from_settings(&settings.server);
    // Every address first: a port conflict fails start-up before anything else happens.
    let api_listener = match parts {
        Parts::Server | Parts::All => Some(bind(settings.server.bind, &limits, "the HTTP API")?),
        Parts::Worker => None,
    };
    let metrics_listener = match parts {
        Parts::Worker | Parts::All => Some(bind(
            settings.worker.metrics_bind,
            &limits,
            "worker metrics",
        )?),
        Parts::Server => None,
    };
    check_layout(&settings).await?;
    check_partitions(&settings).await?;
    let mut tasks = tokio::task::JoinSet::new();
    if let Some(listener) = api_listener {
        let mut state = app_state(&settings, games.clone())?;
        if parts == Parts::Server && state.worker_metrics == WorkerMetrics::Process {
            // No worker here and none configured to scrape: nothing to report.
            state.worker_metrics = WorkerMetrics::None;
        }
        let shutdown = shutdown.clone();
        tasks.spawn(async move {
            server::run(listener, state, limits, shutdown)
                .await
                .context("HTTP server failed")
        });
    }
    if let Some(listener) = metrics_listener {
        let worker = Worker::new(&settings, Rules::from_games(&games))
            .and_then(|worker| worker.serving_rebuilds(&settings, games.clone()))
            .map_err(|error| StartupError::Config(format!("{error:#}")))?;
        let metrics_shutdown = shutdown.clone();
        tasks.spawn(async move {
            workers::serve_metrics(listener, limits, metrics_shutdown)
                .await
                .context("worker metrics server failed")
        });
        let shutdown = shutdown.clone();
        tasks.spawn(async move { worker.run(shutdown).await.context("the worker stopped") });
    }

    let mut result = Ok(());
    while let Some(joined) = tasks.join_next().await {
        let outcome = joined.context("task panicked").and_then(|r| r);
        if let Err(error) = outcome {
            // One part failing stops the others: a half-running service is worse than none.
            // The caller reports the error itself, once.
            if result.is_ok() {
                tracing::warn!("a part of the tracker failed; stopping the others");
                result = Err(StartupError::Failed(error));
            }
            shutdown.cancel();
        }
    }
    upkeep.abort();
    result
}

/// Refuses a store of another layout version. Only reads: an empty store is stamped by the
/// worker before its first write, and a store that does not answer yet is left to it too.
async fn check_layout(settings: &Settings) -> Result<(), StartupError> {
    let store = redis_location(settings.store_url());
    let timeout = Duration::from_millis(settings.store.command_timeout_ms);
    let connected = connect_store(settings)?;
    let mut conn = connected.connection();
    let checked =
        async { layout::usable(layout::stored_version(&mut conn, connected.keys()).await?) };
    match tokio::time::timeout(timeout, checked).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(LayoutError::Redis(error))) => {
            tracing::warn!(%store, %error, "cannot check the store's layout now; the worker checks before writing");
            Ok(())
        }
        Ok(Err(cause)) => Err(StartupError::Layout { store, cause }),
        Err(_) => {
            tracing::warn!(%store, "the store did not answer the layout check in time; the worker checks before writing");
            Ok(())
        }
    }
}

/// Refuses a `stream.partitions` other than the one the stream was set up with (recorded by
/// the first worker). Only reads; a stream that does not answer yet is left to the worker,
/// which refuses it too.
async fn check_partitions(settings: &Settings) -> Result<(), StartupError> {
    let stream = redis_location(settings.stream_url());
    let timeout = Duration::from_millis(settings.store.command_timeout_ms);
    let mut conn = lazy_connection(&settings.stream_redis(), timeout)
        .map_err(|error| StartupError::Config(error.to_string()))?;
    let keys = PoolKeys::new(&settings.stream.name, &settings.stream.group);
    let stored = tokio::time::timeout(timeout, workers::pool::stored_partitions(&mut conn, &keys));
    match stored.await {
        Ok(Ok(Some(stored))) if stored != settings.stream.partitions => {
            Err(StartupError::Partitions {
                stream,
                stored,
                configured: settings.stream.partitions,
            })
        }
        Ok(Ok(_)) => Ok(()),
        Ok(Err(error)) => {
            tracing::warn!(%stream, %error, "cannot check the stream's partition count now; the worker checks before reading");
            Ok(())
        }
        Err(_) => {
            tracing::warn!(%stream, "the stream did not answer the partition check in time; the worker checks before reading");
            Ok(())
        }
    }
}

/// `stats-tracker migrate`: converts the store to this release's layout, then says what it
/// did. Every other tracker process using the store must be stopped.
pub async fn migrate(settings: &Settings) -> Result<(), StartupError> {
    let store = redis_location(settings.store_url());
    let report = crate::migrate::run(&connect_store(settings)?)
        .await
        .with_context(|| format!("migrating the store at {store}"))?;
    match report.from {
        Some(crate::core::keys::LAYOUT_VERSION) => {
            tracing::info!(%store, "the store already holds this release's layout")
        }
        None => tracing::info!(%store, "the store was empty; stamped with this release's layout"),
        Some(from) => tracing::info!(
            %store,
            from,
            to = crate::core::keys::LAYOUT_VERSION,
            boards = report.boards,
            rows = report.rows,
            "store migrated"
        ),
    }
    Ok(())
}

/// `stats-tracker relay`: moves the entries of the single stream `stream.name` into its
/// `stream.partitions` partitions until `shutdown` is cancelled (see [`crate::relay`]).
/// Refuses one partition, and a stream set up with another partition count.
pub async fn relay(settings: &Settings, shutdown: CancellationToken) -> Result<(), StartupError> {
    use crate::relay::{Relay, RelayError};
    let relay = Relay::new(settings).map_err(|error| match error {
        RelayError::OnePartition { .. } => StartupError::Config(error.to_string()),
        error => StartupError::Config(format!("the stream Redis URL cannot be used: {error}")),
    })?;
    tracing::info!(
        stream = %redis_location(settings.stream_url()),
        stream_name = %settings.stream.name,
        partitions = settings.stream.partitions,
        "settings in use"
    );
    check_partitions(settings).await?;
    let stream = redis_location(settings.stream_url());
    relay
        .run(&shutdown)
        .await
        .map(|_| ())
        .with_context(|| format!("relaying on the stream Redis {stream}"))
        .map_err(StartupError::Failed)
}

/// `stats-tracker rebuild`: rebuilds a product from its history (see
/// [`crate::history::rebuild`]), printing what it did (or, for a dry run, what would change)
/// as JSON on stdout. Everything asked for is checked before anything is written.
pub async fn rebuild(
    settings: &Settings,
    mut options: crate::history::rebuild::Options,
    shutdown: CancellationToken,
) -> Result<(), StartupError> {
    use crate::history::rebuild::{Progress, RebuildError, Rebuilder};
    use std::io::IsTerminal;
    let games = load_games(settings)?;
    // The rebuild plans on what it reads: from the masters, as the worker.
    let mut settings = settings.clone();
    settings.store.read_from_replicas = false;
    let settings = &settings;
    let store = connect_store(settings)?;
    check_layout(settings).await?;
    if options.segments.is_none() {
        options.segments = settings.history.segments_dir.clone();
    }
    let rebuilder = Rebuilder::new(store, settings.store_redis(), games);
    let mut progress = Progress::new(std::io::stderr().is_terminal());
    let outcome = rebuilder
        .run(&options, &mut progress, &shutdown)
        .await
        .map_err(|error| match error {
            RebuildError::UnknownProduct(_)
            | RebuildError::RejectedProduct(_)
            | RebuildError::UnknownBoard { .. } => StartupError::Config(error.to_string()),
            RebuildError::Busy(_) => StartupError::Busy(error.to_string()),
            RebuildError::Incomplete(_) => StartupError::History(error.to_string()),
            error => StartupError::Failed(anyhow::anyhow!(
                "rebuilding product {:?}: {error}",
                options.product.as_str()
            )),
        })?;
    println!(
        "{}",
        serde_json::to_string_pretty(&outcome).unwrap_or_default()
    );
    Ok(())
}

/// `stats-tracker history export`: moves a product's oldest history chunks (all, or those up
/// to `before`) into a segment file under `dir`; prints what it moved as JSON.
pub async fn export_history(
    settings: &Settings,
    product: &crate::core::ids::ProductId,
    dir: Option<std::path::PathBuf>,
    before: Option<String>,
) -> Result<(), StartupError> {
    let Some(dir) = dir.or_else(|| settings.history.segments_dir.clone()) else {
        return Err(StartupError::Config(
            "no directory for segment files: give --dir DIR or set history.segments_dir".into(),
        ));
    };
    let store = connect_store(settings)?;
    check_layout(settings).await?;
    let exported = crate::history::segments::export(&store, product, &dir, before.as_deref())
        .await
        .map_err(|error| StartupError::Failed(anyhow::anyhow!("exporting history: {error}")))?;
    println!(
        "{}",
        serde_json::to_string_pretty(&exported).unwrap_or_default()
    );
    Ok(())
}

/// Cancels `shutdown` on the first SIGINT or SIGTERM.
pub fn cancel_on_signals(shutdown: CancellationToken) {
    tokio::spawn(async move {
        let ctrl_c = tokio::signal::ctrl_c();
        #[cfg(unix)]
        let terminate = async {
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(mut signal) => {
                    signal.recv().await;
                }
                Err(error) => {
                    tracing::warn!(%error, "cannot listen for SIGTERM");
                    std::future::pending::<()>().await;
                }
            }
        };
        #[cfg(not(unix))]
        let terminate = std::future::pending::<()>();
        tokio::select! {
            _ = ctrl_c => {}
            _ = terminate => {}
        }
        tracing::info!("shutdown requested; finishing work in flight");
        shutdown.cancel();
    });
}
