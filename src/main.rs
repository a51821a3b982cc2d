//! The `stats-tracker` command: parses the command line, loads settings, sets up logging and
//! the async runtime (one thread for `worker`, `migrate` and `relay`), and hands over to [`stats_tracker::startup`].

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use tokio_util::sync::CancellationToken;

use stats_tracker::core::config::{Mode, Settings};
use stats_tracker::core::ids::ProductId;
use stats_tracker::history::parse_moment;
use stats_tracker::history::rebuild::Options;
use stats_tracker::startup::{self, Parts, StartupError, exit_code};

/// The exit codes, for `--help` (`startup::exit_code` defines them).
const EXIT_CODES: &str = "Exit codes: 0 stopped on SIGINT/SIGTERM, 1 failed while running, \
2 wrong command line or configuration, 3 games file error, 4 cannot listen on an address, \
5 the store holds another layout version (see `migrate`), 6 the event stream was set up with \
another stream.partitions, 7 another rebuild of the product is running, 8 the history cannot \
serve the rebuild (entries missing, or segment files needed).";

// The worker allocates a little for every field of every event; mimalloc makes that cheap.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Leaderboards, skill ratings and player statistics from game servers' event streams.
///
/// Configuration comes from the mode's defaults, then the config file, then environment
/// variables: STATS_TRACKER_REDIS_URL (store), GAME_EVENT_STREAM_REDIS_URL (event stream)
/// and STATS_TRACKER__<SECTION>__<KEY> for any other setting (e.g.
/// STATS_TRACKER__STREAM__BATCH_SIZE=500). RUST_LOG overrides the log filter.
#[derive(Parser, Debug)]
#[command(version, about, long_about, after_help = EXIT_CODES, after_long_help = EXIT_CODES)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the HTTP API server (default 0.0.0.0:5000).
    Serve {
        #[command(flatten)]
        common: Common,
        /// Address to listen on [env: STATS_TRACKER__SERVER__BIND].
        #[arg(long, value_name = "ADDR:PORT")]
        bind: Option<SocketAddr>,
    },
    /// Run the stream worker, with its Prometheus metrics (default 0.0.0.0:5002).
    Worker {
        #[command(flatten)]
        common: Common,
        /// Address of the worker's metrics endpoint [env: STATS_TRACKER__WORKER__METRICS_BIND].
        #[arg(long, value_name = "ADDR:PORT")]
        metrics_bind: Option<SocketAddr>,
    },
    /// Convert the store to this release's key layout, in place (stop every other tracker
    /// process first; safe to interrupt and run again).
    Migrate {
        #[command(flatten)]
        common: Common,
    },
    /// Move the entries game servers append to the single stream `stream.name` into its
    /// partitions (stream.partitions > 1), each exactly once and in order, leaving the source
    /// stream untouched; runs until SIGINT/SIGTERM (safe to kill and start again).
    Relay {
        #[command(flatten)]
        common: Common,
    },
    /// Rebuild a product's boards, ratings and stats from its history with the games file as
    /// it is now (or only some boards: back-fill a new one), leaving voided matches out. Writes
    /// a shadow copy while the worker goes on, then switches it in atomically; safe to stop
    /// (SIGINT/SIGTERM or a kill) and run again, which resumes. Prints what it did as JSON.
    Rebuild {
        #[command(flatten)]
        common: Common,
        /// The product to rebuild.
        #[arg(long, value_name = "PRODUCT")]
        product: String,
        /// Rebuild only this board (repeatable); without it, every board and the stats.
        #[arg(long = "board", value_name = "BOARD")]
        boards: Vec<String>,
        /// Directory of exported segment files [default: history.segments_dir].
        #[arg(long, value_name = "DIR")]
        segments: Option<PathBuf>,
        /// Replay into the shadow and report what would change; switch nothing.
        #[arg(long)]
        dry_run: bool,
        /// Rebuild even when the history misses entries the product applied (their effects are
        /// dropped).
        #[arg(long)]
        allow_partial_history: bool,
    },
    /// The tracker's own history of applied entries.
    History {
        #[command(subcommand)]
        command: HistoryCommand,
    },
    /// Run the server and the worker in one process.
    All {
        #[command(flatten)]
        common: Common,
        /// Address of the HTTP API [env: STATS_TRACKER__SERVER__BIND].
        #[arg(long, value_name = "ADDR:PORT")]
        bind: Option<SocketAddr>,
        /// Address of the worker's metrics endpoint [env: STATS_TRACKER__WORKER__METRICS_BIND].
        #[arg(long, value_name = "ADDR:PORT")]
        metrics_bind: Option<SocketAddr>,
    },
}

#[derive(Subcommand, Debug)]
enum HistoryCommand {
    /// Move a product's oldest history out of Redis into a segment file (zstd-compressed JSON
    /// lines, readable with `zstd -dc`), which `rebuild` reads back. Prints what it moved.
    Export {
        #[command(flatten)]
        common: Common,
        /// The product whose history to export.
        #[arg(long, value_name = "PRODUCT")]
        product: String,
        /// Directory of segment files [default: history.segments_dir].
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
        /// Export only chunks whose entries are all at or before this stream id (`<ms>-<seq>`)
        /// or time (RFC 3339); default: every chunk.
        #[arg(long, value_name = "ID|TIME")]
        before: Option<String>,
    },
}

#[derive(Args, Debug)]
struct Common {
    /// Which built-in defaults to start from.
    #[arg(short, long, value_enum, default_value_t = Mode::Development, env = "STATS_TRACKER_MODE")]
    mode: Mode,
    /// TOML config file layered over the mode's defaults.
    #[arg(short, long, value_name = "FILE", env = "STATS_TRACKER_CONFIG")]
    config: Option<PathBuf>,
}

/// Keeps transparent huge pages out of this process. Where the kernel gives them to every
/// large enough mapping (`/sys/kernel/mm/transparent_hugepage/enabled` = `always`, common on
/// servers), mimalloc's arenas are backed by 2 MiB pages as soon as they are touched: the
/// worker's RSS draining a backlog measured 44–51 MiB with them and 21 MiB without, at the
/// same speed (scripts/bench). Done first, before the allocator maps more than a little.
fn disable_transparent_huge_pages() {
    #[cfg(target_os = "linux")]
    if let Err(error) = nix::sys::prctl::set_thp_disable(true) {
        // Only memory is at stake: say so and go on.
        eprintln!("stats-tracker: cannot disable transparent huge pages: {error}");
    }
}

/// A one-thread command (`migrate`, `relay`): loads the settings, sets up logging, runs
/// `command` on a runtime of its own; the exit code.
fn one_thread<F, Fut>(common: &Common, command: F) -> ExitCode
where
    F: FnOnce(Settings) -> Fut,
    Fut: Future<Output = Result<(), startup::StartupError>>,
{
    let settings = match Settings::load(common.mode, common.config.as_deref()) {
        Ok(settings) => settings,
        Err(error) => {
            eprintln!("stats-tracker: {error}");
            return ExitCode::from(exit_code::CONFIG);
        }
    };
    stats_tracker::telemetry::init(&settings.log);
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            tracing::error!("cannot start the async runtime: {error}");
            return ExitCode::from(exit_code::FAILURE);
        }
    };
    match runtime.block_on(command(settings)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!("{error}");
            ExitCode::from(error.exit_code())
        }
    }
}

fn main() -> ExitCode {
    disable_transparent_huge_pages();
    let cli = Cli::parse();
    let (common, parts, bind, metrics_bind) = match cli.command {
        Command::Migrate { common } => {
            return one_thread(&common, |settings| async move {
                startup::migrate(&settings).await
            });
        }
        Command::Relay { common } => {
            return one_thread(&common, |settings| async move {
                let shutdown = CancellationToken::new();
                startup::cancel_on_signals(shutdown.clone());
                startup::relay(&settings, shutdown).await
            });
        }
        Command::Rebuild {
            common,
            product,
            boards,
            segments,
            dry_run,
            allow_partial_history,
        } => {
            return one_thread(&common, |settings| async move {
                let product = ProductId::parse(&product).map_err(|problem| {
                    StartupError::Config(format!("--product {product:?} {problem}"))
                })?;
                let options = Options {
                    product,
                    boards,
                    segments,
                    dry_run,
                    allow_partial_history,
                };
                let shutdown = CancellationToken::new();
                startup::cancel_on_signals(shutdown.clone());
                startup::rebuild(&settings, options, shutdown).await
            });
        }
        Command::History {
            command:
                HistoryCommand::Export {
                    common,
                    product,
                    dir,
                    before,
                },
        } => {
            return one_thread(&common, |settings| async move {
                let product = ProductId::parse(&product).map_err(|problem| {
                    StartupError::Config(format!("--product {product:?} {problem}"))
                })?;
                let before = before
                    .map(|before| parse_moment(&before))
                    .transpose()
                    .map_err(StartupError::Config)?;
                startup::export_history(&settings, &product, dir, before).await
            });
        }
        Command::Serve { common, bind } => (common, Parts::Server, bind, None),
        Command::Worker {
            common,
            metrics_bind,
        } => (common, Parts::Worker, None, metrics_bind),
        Command::All {
            common,
            bind,
            metrics_bind,
        } => (common, Parts::All, bind, metrics_bind),
    };
    let mut settings = match Settings::load(common.mode, common.config.as_deref()) {
        Ok(settings) => settings,
        Err(error) => {
            // Logging is not set up yet (the settings say how): this is the one report.
            eprintln!("stats-tracker: {error}");
            return ExitCode::from(exit_code::CONFIG);
        }
    };
    if let Some(bind) = bind {
        settings.server.bind = bind;
    }
    if let Some(metrics_bind) = metrics_bind {
        settings.worker.metrics_bind = metrics_bind;
    }
    stats_tracker::telemetry::init(&settings.log);
    tracing::info!(
        mode = %common.mode,
        config = %common
            .config
            .as_ref()
            .map_or_else(|| "none".to_owned(), |file| file.display().to_string()),
        ?parts,
        "starting"
    );

    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    runtime.enable_all();
    // The worker's work is one loop; a second runtime thread bought it nothing but cross-thread
    // wake-ups, and took CPU from a Redis on the same machine: on the bench, one thread
    // drained 103,804 and 106,477 events/s against 102,340 and 97,503 (scripts/bench).
    // TOKIO_WORKER_THREADS still decides when set.
    if parts == Parts::Worker && std::env::var_os("TOKIO_WORKER_THREADS").is_none() {
        runtime.worker_threads(1);
    }
    let runtime = match runtime.build() {
        Ok(runtime) => runtime,
        Err(error) => {
            tracing::error!("cannot start the async runtime: {error}");
            return ExitCode::from(exit_code::FAILURE);
        }
    };
    let result = runtime.block_on(async {
        let shutdown = CancellationToken::new();
        startup::cancel_on_signals(shutdown.clone());
        startup::run(settings, parts, shutdown).await
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            // Logged once, where every other line of the run went (stderr; JSON in
            // production).
            tracing::error!("{error}");
            ExitCode::from(error.exit_code())
        }
    }
}
