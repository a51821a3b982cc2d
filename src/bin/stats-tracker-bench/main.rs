//! `stats-tracker-bench`: the tracker's re-runnable benchmark, from an empty private Redis to
//! the figures of BENCHMARKS.md. This file owns the command line, the order of the phases,
//! what each one measures, the report and the final checks:
//!
//! 0. the machine yardstick (`ceiling`): `redis-benchmark` of a two-command `EVAL` on the same
//!    Redis, so every drain rate is also given as a ratio to it (this machine's speed varies
//!    2× within an hour; the ratio does not);
//! 1. worker throughput: a backlog pre-loaded with pipelined `XADD`, drained by a fresh
//!    worker until the group's lag and pending are 0; its CPU time per event and peak RSS,
//!    Redis's CPU and per-command time meanwhile; then (1b) the history's Redis bytes per
//!    entry, and `stats-tracker rebuild` of the product with the most history, timed against
//!    the drain (see `history`);
//! 2. end-to-end latency: probe `game_over`s among a steady offered load, from `XADD` until
//!    `GET /stats/…` shows them;
//! 3. read throughput and latency of the public data routes at N keep-alive connections;
//! 4. memory: worker and server peak RSS, Redis bytes per player per board and stats hash;
//! 5. the effects' minimum: `redis-benchmark` of the plain commands one event costs, against
//!    the worker's rate;
//!
//! then checks that the counts add up. Only the checks can fail a run (`--smoke` included):
//! timings are reported, never asserted, since they depend on the machine.
//!
//! The worker and the server are child processes of the release `stats-tracker` binary, so
//! their CPU and memory are measured apart from each other and from this load generator.

mod cluster;
mod history;
mod http;
mod procs;
mod redisd;
mod simulate;
mod traffic;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Parser;
use futures::StreamExt;
use hyper::StatusCode;
use redis::aio::{ConnectionLike, MultiplexedConnection};
use simulate::Rng;
use stats_tracker::core::ids::{PlayerId, ProductId};
use stats_tracker::core::keys::{KeySpace, PartitionKeys, STAMP_FIELD_PREFIX};
use stats_tracker::leaderboards::rank;
use stats_tracker::leaderboards::scoring::WINS_BOARD;
use tokio::time::MissedTickBehavior;

use http::{
    HttpConn, LoadResult, RANK_PRODUCT, ReadRoute, ReadTarget, closed_loop, encode, ms,
    wait_for_200,
};
use procs::{Proc, ProcStats, find_tool, free_port, machine_busy};
use redisd::{
    GroupState, PrivateRedis, YARDSTICK_SCRIPT, command_stats, group_state, info_field,
    log_slow_calls, redis_benchmark, slow_calls, yardstick,
};
use traffic::{
    BIG_BOARD_PRODUCT, CHECKED_STATS, PROBE_PRODUCT, PRODUCTS, Probe, STREAM, StoreWrites, Tally,
    Traffic, TrafficKind, TrafficSpec, xadd_all,
};

/// Key prefix and consumer group the tracker children use (set explicitly, not defaults, so
/// the checks read the same keys the worker wrote).
const PREFIX: &str = "stats_tracker";
const GROUP: &str = "stats-tracker";
/// Databases of the private Redis: the store, the event stream (db 1, as the real game
/// server writes it), and redis-benchmark's scratch keys.
const STORE_DB: u8 = 0;
const STREAM_DB: u8 = 1;
const SCRATCH_DB: u8 = 2;
/// Events per pipelined XADD round trip while pre-loading.
const PRELOAD_CHUNK: u64 = 2_000;
/// How often the drain phase reads the group's progress.
const GROUP_POLL: Duration = Duration::from_millis(10);
/// How often a probe's stats are re-read when Redis's notification did not show them yet.
const PROBE_POLL: Duration = Duration::from_millis(1);
/// A probe not visible after this is reported lost (and fails the checks).
const PROBE_TIMEOUT: Duration = Duration::from_secs(10);
/// Calls at least this long inside Redis are logged while draining (see `log_slow_calls`).
const SLOW_CALL_MICROS: u64 = 100;
/// Keys the yardstick's `EVAL`s spread over (a few MiB of scratch data, flushed after).
const YARDSTICK_KEYS: usize = 100_000;
/// Where the drain's progress and CPU are marked (percent of the backlog): per-tenth rates,
/// the first from 1% so the worker's start-up does not count.
const DRAIN_MARKS: [u64; 11] = [1, 10, 20, 30, 40, 50, 60, 70, 80, 90, 100];
/// Products whose memory is measured, the busiest first (churn has hundreds).
const MEMORY_PRODUCTS: usize = 4;
/// Stats hashes measured per product for bytes per player.
const MEMORY_SAMPLE: usize = 2_000;
/// `--cluster`: the backlog drained on each store (two drains and two pre-loads: a few
/// minutes), and the copies of real traffic's products spread over the masters.
const CLUSTER_EVENTS: u64 = 500_000;
const CLUSTER_COPIES: usize = 8;

/// Benchmarks the stats tracker end to end on a private, empty redis-server: worker
/// throughput against a machine yardstick, end-to-end latency, read throughput, memory, and
/// the effects' minimum in plain Redis commands.
///
/// Needs redis-server and redis-benchmark on PATH and the release build of stats-tracker
/// (`scripts/bench` builds it and passes its arguments here). Never touches another Redis.
#[derive(Parser, Debug)]
#[command(version, about, long_about)]
struct Args {
    /// What traffic to send: `real`, `churn` or `big-board` [default: real; --smoke without
    /// it runs each kind in turn].
    #[arg(long, value_enum)]
    traffic: Option<TrafficKind>,
    /// Backlog the worker drains in phase 1 [default: 1000000, churn 300000; --smoke: 20000,
    /// churn 5000]. Big-board: always --players / 2 games.
    #[arg(long)]
    events: Option<u64>,
    /// Offered load of the latency phase, events/s [default: 5000, churn and big-board 1000
    /// (each of their events is a whole match); --smoke: 1000].
    #[arg(long)]
    rate: Option<u64>,
    /// Seconds of the latency phase and of each read run [default: 15; --smoke: 2].
    #[arg(long)]
    duration: Option<f64>,
    /// Seconds of each read run, when it should differ from --duration (e.g. a 10-minute
    /// steady load to watch the worker's memory, with short read runs).
    #[arg(long)]
    read_duration: Option<f64>,
    /// Concurrent keep-alive connections of the read phase [default: 64; --smoke: 8].
    #[arg(long)]
    connections: Option<usize>,
    /// Real: the players matches draw from, with skewed popularity [default: 20000; --smoke:
    /// 500]. Big-board: the players the backlog puts on the board [default: 1000000; --smoke:
    /// 4000]. Churn: unused (every game brings two new players).
    #[arg(long)]
    players: Option<usize>,
    /// Real: percentage of matches that bring a player never seen before.
    #[arg(long, default_value_t = 0, value_name = "PCT")]
    new_player_share: u64,
    /// Churn: products the games are spread over (`churn-0000` …; the games file does not
    /// name them, so the default rules apply) [default: 100]. Real: copies of each of its
    /// three products (`exrps`, `exrps-1`, …, each with its original's rules), every match
    /// going to one of them at random, so that products spread over a cluster's masters
    /// [default: 1; --cluster: 8].
    #[arg(long)]
    products: Option<usize>,
    /// Churn and big-board: bytes per player id (13 to 128, the longest id the tracker takes).
    #[arg(long, default_value_t = 20)]
    id_bytes: usize,
    /// Requests per redis-benchmark run [default: 1000000; --smoke: 20000].
    #[arg(long)]
    redis_benchmark_requests: Option<u64>,
    /// Read routes to load, comma-separated [default: top-ten,stats,page,rank,healthz;
    /// big-board: deep-page,around,ranks,healthz].
    #[arg(long, value_enum, value_delimiter = ',')]
    routes: Option<Vec<ReadRoute>>,
    /// Worker batch size (STATS_TRACKER__STREAM__BATCH_SIZE) [default: the tracker's].
    #[arg(long)]
    batch_size: Option<usize>,
    /// Games file the tracker runs with [default: config/games.bench.toml, the built-in
    /// configuration plus an Elo board on exrps].
    #[arg(long, value_name = "FILE")]
    games: Option<PathBuf>,
    /// Percentage of matches followed by an event the tracker must dead-letter.
    #[arg(long, default_value_t = 1)]
    bad_percent: u64,
    /// Seed of the traffic (same seed, same events).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// The stats-tracker binary [default: the one next to this binary].
    #[arg(long, value_name = "PATH")]
    tracker: Option<PathBuf>,
    /// Tiny sizes, a few seconds: for CI. Checks that everything works end to end and the
    /// counts add up; timings are printed but mean nothing at this size.
    #[arg(long)]
    smoke: bool,
    /// Drain the same backlog twice, on one private redis-server (one worker, one stream) and
    /// on a local Redis Cluster (3 masters, 3 replicas, scripts/redis-cluster; store and
    /// stream on it, --workers workers sharing --partitions stream partitions), and compare:
    /// events/s, Redis CPU per event on each master, worker CPU per event. Real traffic only;
    /// no latency, read or memory phases [default backlog: 500000].
    #[arg(long)]
    cluster: bool,
    /// With --cluster: worker processes sharing the partitions.
    #[arg(long, default_value_t = 3)]
    workers: u32,
    /// With --cluster: stream partitions (`stream.partitions`).
    #[arg(long, default_value_t = 8)]
    partitions: u32,
    /// What keeping history costs: the same backlog drained four times, each by a fresh worker
    /// on a fresh private redis-server, with history.enabled off, on, on, off; then events/s,
    /// Redis and worker CPU per event and Redis memory of the two settings side by side. Real
    /// traffic only; no latency, read or memory phases [default backlog: 500000].
    #[arg(long, conflicts_with = "cluster")]
    history_cost: bool,
}

/// The sizes of one run, `--smoke` defaults applied.
#[derive(Debug, Clone)]
struct Config {
    traffic: TrafficKind,
    events: u64,
    rate: u64,
    duration: Duration,
    read_duration: Duration,
    warmup: Duration,
    connections: usize,
    players: usize,
    redis_benchmark_requests: u64,
    yardstick_requests: u64,
    routes: Vec<ReadRoute>,
    batch_size: Option<usize>,
    games: Option<PathBuf>,
    bad_percent: u64,
    new_player_share: u64,
    products: usize,
    id_bytes: usize,
    seed: u64,
    smoke: bool,
    cluster: bool,
    history_cost: bool,
}

impl Config {
    fn from_args(args: &Args, traffic: TrafficKind) -> Result<Self> {
        let smoke = args.smoke;
        let pick = |given: Option<u64>, full: u64, small: u64| {
            given.unwrap_or(if smoke { small } else { full })
        };
        // The kinds beyond `real` are extra in the default smoke run: kept short.
        let extra_smoke = smoke && traffic != TrafficKind::Real;
        let duration = args.duration.unwrap_or(match (smoke, extra_smoke) {
            (_, true) => 1.0,
            (true, false) => 2.0,
            (false, _) => 15.0,
        });
        let read_duration = args
            .read_duration
            .unwrap_or(if extra_smoke { 0.5 } else { duration });
        let players = match traffic {
            TrafficKind::BigBoard => pick(args.players.map(|n| n as u64), 1_000_000, 4_000),
            _ => pick(args.players.map(|n| n as u64), 20_000, 500),
        } as usize;
        let events = match traffic {
            TrafficKind::Real if args.cluster => pick(args.events, CLUSTER_EVENTS, 20_000),
            TrafficKind::Real if args.history_cost => {
                pick(args.events, history::HISTORY_COST_EVENTS, 20_000)
            }
            TrafficKind::Real => pick(args.events, 1_000_000, 20_000),
            TrafficKind::Churn => pick(args.events, 300_000, 5_000),
            TrafficKind::BigBoard => (players / 2) as u64,
        };
        let routes = args.routes.clone().unwrap_or_else(|| match traffic {
            TrafficKind::BigBoard => vec![
                ReadRoute::DeepPage,
                ReadRoute::Around,
                ReadRoute::Ranks,
                ReadRoute::Healthz,
            ],
            _ => vec![
                ReadRoute::TopTen,
                ReadRoute::Stats,
                ReadRoute::Page,
                ReadRoute::Rank,
                ReadRoute::Healthz,
            ],
        });
        let config = Self {
            traffic,
            events,
            // 5,000 real events/s are about 250 matches/s; churn's events are each a match.
            rate: match traffic {
                TrafficKind::Real => pick(args.rate, 5_000, 1_000),
                _ => pick(args.rate, 1_000, 1_000),
            },
            duration: Duration::try_from_secs_f64(duration).context("--duration")?,
            read_duration: Duration::try_from_secs_f64(read_duration).context("--read-duration")?,
            warmup: Duration::from_millis(if smoke { 200 } else { 1_000 }),
            connections: args.connections.unwrap_or(if smoke { 8 } else { 64 }),
            players,
            redis_benchmark_requests: pick(args.redis_benchmark_requests, 1_000_000, 20_000),
            // A few seconds: long enough to smooth scheduling noise, short against the run.
            yardstick_requests: if smoke { 20_000 } else { 500_000 },
            routes,
            batch_size: args.batch_size,
            games: args.games.clone(),
            bad_percent: args.bad_percent.min(100),
            new_player_share: args.new_player_share,
            products: args.products.unwrap_or(match traffic {
                TrafficKind::Churn => 100,
                TrafficKind::Real if args.cluster => CLUSTER_COPIES,
                _ => 1,
            }),
            id_bytes: args.id_bytes,
            seed: args.seed,
            smoke,
            cluster: args.cluster,
            history_cost: args.history_cost,
        };
        if config.cluster && traffic != TrafficKind::Real {
            bail!("--cluster runs real traffic only (--traffic real, the default)");
        }
        if config.history_cost && traffic != TrafficKind::Real {
            bail!("--history-cost runs real traffic only (--traffic real, the default)");
        }
        if config.new_player_share > 100 {
            bail!("--new-player-share is a percentage (0 to 100)");
        }
        if config.products == 0 {
            bail!("--products must be positive");
        }
        // Shorter would cut the unique part; the tracker takes ids of up to 128 characters.
        if !(13..=128).contains(&config.id_bytes) {
            bail!("--id-bytes must be 13 to 128");
        }
        if config.events == 0 || config.rate == 0 || config.connections == 0 {
            bail!("--events, --rate and --connections must be positive");
        }
        if config.players < 4 {
            bail!("--players must be at least 4 (the traffic has four-player matches)");
        }
        if config.events == 0 {
            bail!("the backlog is empty");
        }
        if config.duration.is_zero() || config.read_duration.is_zero() {
            bail!("--duration and --read-duration must be positive");
        }
        Ok(config)
    }

    fn traffic_spec(&self) -> TrafficSpec {
        TrafficSpec {
            kind: self.traffic,
            seed: self.seed,
            players: self.players,
            bad_percent: self.bad_percent,
            newcomer_percent: self.new_player_share,
            products: self.products,
            id_bytes: self.id_bytes,
            expected_events: self.events + (self.rate as f64 * self.duration.as_secs_f64()) as u64,
        }
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("stats-tracker-bench: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let dir = match tempfile::Builder::new()
        .prefix("stats-tracker-bench.")
        .tempdir()
    {
        Ok(dir) => dir,
        Err(error) => {
            eprintln!("stats-tracker-bench: cannot create a temporary directory: {error}");
            return ExitCode::FAILURE;
        }
    };
    let kinds = match (args.traffic, args.smoke) {
        (Some(kind), _) => vec![kind],
        // CI's one smoke command covers every kind.
        (None, true) if !args.cluster && !args.history_cost => {
            vec![TrafficKind::Real, TrafficKind::Churn, TrafficKind::BigBoard]
        }
        (None, _) => vec![TrafficKind::Real],
    };
    let result = runtime.block_on(async {
        // Dropping `run` on a signal drops its child-process guards, which kill the children.
        tokio::select! {
            result = run_kinds(&args, &kinds, dir.path()) => result,
            signal = interrupted() => Err(anyhow::anyhow!("interrupted by {signal}")),
        }
    });
    let failed = match result {
        Ok(true) => false,
        Ok(false) => {
            eprintln!("stats-tracker-bench: some checks failed (see above)");
            true
        }
        Err(error) => {
            eprintln!("stats-tracker-bench: {error:#}");
            true
        }
    };
    if failed {
        // Keep the children's logs for the post-mortem.
        eprintln!("stats-tracker-bench: logs kept in {}", dir.keep().display());
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

/// Resolves on SIGINT or SIGTERM, naming it.
async fn interrupted() -> &'static str {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => "SIGINT",
        _ = terminate => "SIGTERM",
    }
}

/// How to start the tracker's worker and server as children.
struct Tracker {
    binary: PathBuf,
    store_url: String,
    stream_url: String,
    server_addr: SocketAddr,
    metrics_addr: SocketAddr,
    batch_size: Option<usize>,
    games: Option<PathBuf>,
    dir: PathBuf,
    /// Store and stream on a Redis Cluster (the URLs are its comma-separated seeds).
    cluster: bool,
    /// `stream.partitions`.
    partitions: u32,
    /// `history.enabled`: whether the worker keeps every applied entry per product.
    history: bool,
}

impl Tracker {
    /// `stats-tracker <subcommand>`, configured only through the variables set here.
    fn spawn(&self, subcommand: &str) -> Result<Proc> {
        self.spawn_as(subcommand, subcommand, self.metrics_addr)
    }

    /// Worker `index` of a pool: its own consumer name, metrics address and log.
    fn spawn_worker(&self, index: u32, metrics_addr: SocketAddr) -> Result<Proc> {
        self.spawn_as("worker", &format!("worker-{index}"), metrics_addr)
    }

    /// `stats-tracker <subcommand>` as `name` (consumer and log name), with its worker metrics
    /// on `metrics_addr`.
    fn spawn_as(&self, subcommand: &str, name: &str, metrics_addr: SocketAddr) -> Result<Proc> {
        let command = self.command(&[subcommand], name, metrics_addr);
        Proc::spawn(
            &format!("stats-tracker {name}"),
            command,
            &self.dir.join(format!("{name}.log")),
        )
    }

    /// `stats-tracker <args…> -m development` with the settings every child gets: as `name`
    /// (its consumer name), its worker metrics on `metrics_addr`.
    fn command(&self, args: &[&str], name: &str, metrics_addr: SocketAddr) -> Command {
        let mut command = Command::new(&self.binary);
        command.args(args).args(["-m", "development"]);
        // Whatever the caller's shell exports must not redirect the children elsewhere
        // (e.g. to the shared Redis) or change their settings.
        for (name, _) in std::env::vars_os() {
            let name = name.to_string_lossy();
            if name.starts_with("STATS_TRACKER") || name.starts_with("GAME_EVENT_STREAM") {
                command.env_remove(name.as_ref());
            }
        }
        command
            .env_remove("RUST_LOG")
            .env("STATS_TRACKER_REDIS_URL", &self.store_url)
            .env("GAME_EVENT_STREAM_REDIS_URL", &self.stream_url)
            .env("STATS_TRACKER__STORE__KEY_PREFIX", PREFIX)
            .env("STATS_TRACKER__STREAM__NAME", STREAM)
            .env("STATS_TRACKER__STREAM__GROUP", GROUP)
            .env("STATS_TRACKER__SERVER__BIND", self.server_addr.to_string())
            .env(
                "STATS_TRACKER__WORKER__METRICS_BIND",
                metrics_addr.to_string(),
            )
            .env("STATS_TRACKER__STREAM__CONSUMER", format!("bench-{name}"))
            .env(
                "STATS_TRACKER__STREAM__PARTITIONS",
                self.partitions.to_string(),
            )
            .env(
                "STATS_TRACKER__HISTORY__ENABLED",
                if self.history { "true" } else { "false" },
            )
            .env("STATS_TRACKER__LOG__LEVEL", "info");
        if let Some(batch_size) = self.batch_size {
            command.env("STATS_TRACKER__STREAM__BATCH_SIZE", batch_size.to_string());
        }
        if let Some(games) = &self.games {
            command.env("STATS_TRACKER__GAMES__FILE", games);
        }
        if self.cluster {
            command
                .env("STATS_TRACKER__STORE__CLUSTER", "true")
                .env("STATS_TRACKER__STREAM__CLUSTER", "true");
        }
        command
    }
}

/// Everything the phases share. Children are declared first so they are dropped (killed)
/// before the Redis they talk to.
struct Bench {
    worker: Option<Proc>,
    server: Option<Proc>,
    config: Config,
    tracker: Tracker,
    redis: PrivateRedis,
    store: MultiplexedConnection,
    stream: MultiplexedConnection,
    keys: KeySpace,
    players: Arc<Vec<String>>,
    traffic: Traffic,
    figures: Figures,
    checks: Vec<(String, bool)>,
}

/// The figures the targets are judged on.
#[derive(Debug, Default)]
struct Figures {
    drain_sustained: f64,
    drain_peak_rss_kib: u64,
    e2e_p99: Option<Duration>,
    e2e_rate: f64,
    reads: Vec<(ReadRoute, f64, Duration)>,
    /// The machine yardstick at the start of the run and again at its end (ops/s).
    ceiling: Option<f64>,
    ceiling_at_end: Option<f64>,
    /// Phase 5's estimate: events/s if every effect were one plain pipelined command.
    plain_commands: Option<f64>,
    /// Drain rates of the backlog's first tenth (from 1%, after start-up) and last tenth.
    first_tenth: Option<f64>,
    last_tenth: Option<f64>,
    /// Every product's history after the drain, and Redis bytes per entry of what the
    /// latency phase's live load added to it.
    history: Option<history::HistoryMemory>,
    history_live_bytes_per_entry: Option<f64>,
    /// The rebuild after the drain (real traffic).
    rebuild: Option<history::RebuildFigures>,
}

/// One run per traffic kind, each on its own Redis and children; true if every check passed.
async fn run_kinds(args: &Args, kinds: &[TrafficKind], dir: &Path) -> Result<bool> {
    let mut results = Vec::new();
    for kind in kinds {
        let dir = dir.join(kind.name());
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let ok = if args.cluster {
            cluster::run(args, *kind, &dir).await?
        } else if args.history_cost {
            history::run_cost(args, *kind, &dir).await?
        } else {
            run(args, *kind, &dir).await?
        };
        results.push((kind.name(), ok));
    }
    if results.len() > 1 {
        println!();
        for (kind, ok) in &results {
            println!(
                "{kind}: {}",
                if *ok { "every check passed" } else { "FAILED" }
            );
        }
    }
    Ok(results.iter().all(|(_, ok)| *ok))
}

async fn run(args: &Args, traffic: TrafficKind, dir: &Path) -> Result<bool> {
    let config = Config::from_args(args, traffic)?;
    let binary = tracker_binary(args)?;
    let redis = PrivateRedis::start(dir).await?;
    print_header(&config, &binary, &redis);
    let mut bench = Bench::new(config, binary, redis, dir).await?;

    bench.figures.ceiling = bench.yardstick("at the start").await?;
    let backlog = bench.drain_backlog().await?;
    bench.history_and_rebuild(&backlog).await?;
    bench.end_to_end_latency().await?;
    bench.read_load().await?;
    bench.memory().await?;
    bench.plain_commands(&backlog).await?;
    bench.figures.ceiling_at_end = bench.yardstick("at the end").await?;
    bench.verify().await?;
    bench.print_targets();
    Ok(print_check_count(&bench.checks))
}

/// Prints how many checks passed; true if all of them.
fn print_check_count(checks: &[(String, bool)]) -> bool {
    let failed = checks.iter().filter(|(_, ok)| !ok).count();
    println!();
    println!("checks: {} passed, {failed} failed", checks.len() - failed);
    failed == 0
}

/// The stats-tracker binary the children run: `--tracker`, or the one next to this binary.
fn tracker_binary(args: &Args) -> Result<PathBuf> {
    let binary = match &args.tracker {
        Some(path) => path.clone(),
        None => std::env::current_exe()
            .context("cannot locate this binary")?
            .with_file_name("stats-tracker"),
    };
    if !binary.is_file() {
        bail!(
            "{} not found: build it first (`cargo build --release`; scripts/bench does)",
            binary.display()
        );
    }
    Ok(binary)
}

/// The games file the children run with: `--games`, or the bench's own written into `dir`;
/// when real traffic is spread over copies of its products (`--products`), a copy of that
/// file in `dir` where every copy has its original's rules.
fn games_file(config: &Config, dir: &Path) -> Result<PathBuf> {
    let copies = match config.traffic {
        TrafficKind::Real => config.products,
        _ => 1,
    };
    let text = match &config.games {
        Some(file) if copies <= 1 => return Ok(file.clone()),
        Some(file) => std::fs::read_to_string(file)
            .with_context(|| format!("reading the games file {}", file.display()))?,
        None => BENCH_GAMES.to_owned(),
    };
    let text = if copies > 1 {
        games_with_copies(&text, copies)?
    } else {
        text
    };
    let file = dir.join("games.bench.toml");
    std::fs::write(&file, text).context("writing the bench's games file")?;
    Ok(file)
}

/// `games` (a games file) with copies 1 to `copies` − 1 of each of real traffic's products it
/// lists, each the same table as its original (see [`traffic::copy_name`]).
fn games_with_copies(games: &str, copies: usize) -> Result<String> {
    let mut file: toml::Table = games.parse().context("parsing the games file")?;
    if let Some(toml::Value::Table(products)) = file.get_mut("products") {
        for (base, _) in PRODUCTS {
            let Some(rules) = products.get(base).cloned() else {
                continue;
            };
            for k in 1..copies {
                products.insert(traffic::copy_name(base, k), rules.clone());
            }
        }
    }
    toml::to_string(&file).context("writing the games file with copies")
}

fn print_header(config: &Config, binary: &Path, redis: &PrivateRedis) {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let cpu_model = cpuinfo
        .lines()
        .find_map(|line| line.strip_prefix("model name"))
        .and_then(|rest| rest.split_once(':'))
        .map_or("unknown", |(_, model)| model.trim());
    let mem_gib = info_field(&meminfo, "MemTotal")
        .and_then(|value| value.trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kib| kib / (1024.0 * 1024.0));
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!(
        "# stats-tracker benchmark{}",
        if config.smoke {
            " (smoke: tiny sizes, timings mean nothing)"
        } else {
            ""
        }
    );
    println!();
    println!(
        "machine: {cpus} CPUs ({cpu_model}), {mem_gib:.1} GiB memory; redis-server {} (private, port {}, nothing saved)",
        redis.version, redis.port
    );
    let traffic = match config.traffic {
        TrafficKind::Real => format!(
            "real (simulate::mixed_run: exrps match sequences, two other products, {}% bad matches), {} players with skewed popularity, {}% of matches bring a new player{}",
            config.bad_percent,
            thousands(config.players as u64),
            config.new_player_share,
            if config.products > 1 {
                format!(
                    "; each product as {} copies (exrps, exrps-1, …, with its rules), each match on one of them",
                    config.products
                )
            } else {
                String::new()
            },
        ),
        TrafficKind::Churn => format!(
            "churn (every event a game_over between two new players, over {} products), ids of {} bytes",
            thousands(config.products as u64),
            config.id_bytes,
        ),
        TrafficKind::BigBoard => format!(
            "big-board (game_overs between two new players filling {BIG_BOARD_PRODUCT:?}'s `{WINS_BOARD}` board with {} players), ids of {} bytes",
            thousands(config.players as u64),
            config.id_bytes,
        ),
    };
    println!("traffic: {traffic}");
    let batch_size = config
        .batch_size
        .map_or("default".to_owned(), |size| size.to_string());
    if config.history_cost {
        println!(
            "run: a {} events backlog drained four times, each by a fresh worker on a fresh redis-server, with history.enabled off, on, on, off; seed {}, worker batch size {batch_size}",
            thousands(config.events),
            config.seed,
        );
    } else if config.cluster {
        println!(
            "run: a {} events backlog drained by one worker on the redis-server above, then the same backlog on a local Redis Cluster (3 masters, 3 replicas, scripts/redis-cluster); seed {}, worker batch size {batch_size}",
            thousands(config.events),
            config.seed,
        );
    } else {
        println!(
            "run: {} events backlog, {} events/s offered for {:.0?}, {} connections, seed {}, worker batch size {batch_size}",
            thousands(config.events),
            thousands(config.rate),
            config.duration,
            config.connections,
            config.seed,
        );
    }
    println!("tracker: {}", binary.display());
    println!(
        "games: {}{}",
        config
            .games
            .as_ref()
            .map_or(BENCH_GAMES_LABEL.to_owned(), |file| file
                .display()
                .to_string()),
        if config.traffic == TrafficKind::Real && config.products > 1 {
            "; every copy of a product it lists has the same rules"
        } else {
            ""
        },
    );
}

/// What phase 1 measured, for phase 5's comparison (and `--cluster`'s).
struct Backlog {
    events: u64,
    writes: StoreWrites,
    /// Sustained, 10% → 90% of the backlog.
    rate: f64,
    /// Worker start → drained.
    overall: f64,
    redis_busy: f64,
    /// CPU time over the whole drain.
    redis_cpu: Duration,
    worker_cpu: Duration,
    worker_peak_rss_kib: u64,
    /// Redis's `INFO commandstats` over the drain.
    commands: Vec<redisd::CommandStat>,
}

impl Bench {
    /// The bench on the private `redis`, nothing started yet; children's logs go to `dir`.
    async fn new(config: Config, binary: PathBuf, redis: PrivateRedis, dir: &Path) -> Result<Self> {
        let tracker = Tracker {
            binary,
            store_url: redis.url(STORE_DB),
            stream_url: redis.url(STREAM_DB),
            server_addr: SocketAddr::from(([127, 0, 0, 1], free_port()?)),
            metrics_addr: SocketAddr::from(([127, 0, 0, 1], free_port()?)),
            batch_size: config.batch_size,
            games: Some(games_file(&config, dir)?),
            dir: dir.to_owned(),
            cluster: false,
            partitions: 1,
            history: true,
        };
        // The generator's list: only real traffic draws from it.
        let players = match config.traffic {
            TrafficKind::Real => simulate::players(config.players),
            _ => Vec::new(),
        };
        Ok(Self {
            worker: None,
            server: None,
            store: redis.connect(STORE_DB).await?,
            stream: redis.connect(STREAM_DB).await?,
            keys: KeySpace::new(PREFIX)?,
            traffic: Traffic::new(&config.traffic_spec()),
            players: Arc::new(players),
            config,
            tracker,
            redis,
            figures: Figures::default(),
            checks: Vec::new(),
        })
    }

    async fn group(&mut self) -> Result<Option<GroupState>> {
        group_state(&mut self.stream, STREAM, GROUP).await
    }

    fn worker(&mut self) -> Result<&mut Proc> {
        self.worker.as_mut().context("the worker is not running")
    }

    /// Phase 1: pre-load a backlog, start a worker, time it until everything is acknowledged.
    async fn drain_backlog(&mut self) -> Result<Backlog> {
        let events = self.config.events;
        println!();
        println!("## 1. Worker throughput: draining a backlog");
        eprintln!("pre-loading {} events …", thousands(events));
        let started = Instant::now();
        let mut left = events;
        while left > 0 {
            let chunk = left.min(PRELOAD_CHUNK);
            let batch = self.traffic.take(chunk as usize);
            xadd_all(&mut self.stream, &batch).await?;
            left -= chunk;
        }
        let preload = started.elapsed();
        let writes = self.traffic.tally.writes;
        println!(
            "pre-loaded {} events into `{STREAM}` (db {STREAM_DB}) with pipelined XADD in {:.2} s ({}/s from one connection)",
            thousands(events),
            preload.as_secs_f64(),
            thousands(per_second(events, preload) as u64),
        );

        redisd::reset_stats(&mut self.store).await?;
        // Scripts, batch reads and acks are 0.1–10 ms each: a few per batch.
        log_slow_calls(&mut self.store, SLOW_CALL_MICROS, 100_000).await?;
        let before = self.cpu_snapshot()?;
        eprintln!("starting the worker and timing the drain …");
        let started = Instant::now();
        self.worker = Some(self.tracker.spawn("worker")?);
        // Far beyond any plausible drain (1 ms per event), so a stuck worker still ends the run.
        let deadline = started + Duration::from_secs(60) + Duration::from_millis(events);
        let mut samples: Vec<(Duration, u64)> = Vec::new();
        let mut marks: Vec<(Duration, u64, CpuSnapshot)> = Vec::new();
        let mut reported = Instant::now();
        loop {
            self.worker()?.ensure_running()?;
            self.redis.ensure_running()?;
            if let Some(state) = self.group().await? {
                let done = state.done(events);
                samples.push((started.elapsed(), done));
                while let Some(percent) = DRAIN_MARKS.get(marks.len())
                    && done * 100 >= percent * events
                {
                    marks.push((started.elapsed(), done, self.cpu_snapshot()?));
                }
                if state.drained() {
                    break;
                }
                if reported.elapsed() >= Duration::from_secs(5) {
                    reported = Instant::now();
                    eprintln!(
                        "  … {} of {} events acknowledged ({}/s so far)",
                        thousands(done),
                        thousands(events),
                        thousands(per_second(done, started.elapsed()) as u64)
                    );
                }
            }
            if Instant::now() > deadline {
                bail!(
                    "the worker did not drain {events} events within {:?} (last state {:?})",
                    deadline - started,
                    self.group().await?
                );
            }
            tokio::time::sleep(GROUP_POLL).await;
        }
        let drain = started.elapsed();
        let worker = self.worker()?.stats()?;
        let cpu = self.cpu_snapshot()?.minus(&before);
        let redis_cpu = cpu.redis;
        let commands = command_stats(&mut self.store).await?;
        let slow = slow_calls(&mut self.store).await?;
        let metrics = scrape(self.tracker.metrics_addr).await?;

        let overall = per_second(events, drain);
        let sustained = sustained_rate(&samples, events).unwrap_or(overall);
        self.figures.drain_sustained = sustained;
        self.figures.drain_peak_rss_kib = worker.peak_rss_kib;
        let redis_busy = redis_cpu.as_secs_f64() / drain.as_secs_f64();
        println!(
            "drained {} events in {:.2} s (worker start → group lag 0 and pending 0): {} events/s overall, {} events/s sustained (10% → 90% of the backlog)",
            thousands(events),
            drain.as_secs_f64(),
            thousands(overall as u64),
            thousands(sustained as u64),
        );
        println!(
            "worker CPU: {:.2} s user+system = {:.1} µs per event ({:.0}% of one core over the drain)",
            worker.cpu.as_secs_f64(),
            micros_per(worker.cpu, events),
            100.0 * worker.cpu.as_secs_f64() / drain.as_secs_f64(),
        );
        println!(
            "worker peak RSS while draining (VmHWM): {}",
            mib(worker.peak_rss_kib)
        );
        println!(
            "redis CPU: {:.2} s = {:.1} µs per event ({:.0}% of one core over the drain)",
            redis_cpu.as_secs_f64(),
            micros_per(redis_cpu, events),
            100.0 * redis_busy,
        );
        println!(
            "CPU over the drain (% of one core): {}",
            cpu.percent_of(drain)
        );
        println!(
            "{}",
            drain_line(
                "drain",
                sustained,
                self.figures.ceiling,
                micros_per(redis_cpu, events),
                micros_per(worker.cpu, events)
            )
        );
        self.print_tenths(&marks);
        let metric = |name: &str| metrics.get(name).copied().unwrap_or(0.0);
        let batches = metric("stats_tracker_worker_batch_size_count");
        let in_batches = metric("stats_tracker_worker_batch_duration_seconds_sum");
        if batches > 0.0 {
            println!(
                "worker batches: {} of {:.0} entries on average; plan + commit + ack took {:.2} s = {:.0}% of the drain (the rest: reading, lag sampling, start-up)",
                thousands(batches as u64),
                metric("stats_tracker_worker_batch_size_sum") / batches,
                in_batches,
                100.0 * in_batches / drain.as_secs_f64(),
            );
        }
        // Commands a script runs are counted on their own line *and* inside `evalsha`.
        println!(
            "redis time by command while draining (INFO commandstats; commands run by scripts also count in evalsha):"
        );
        // Every command worth 0.05 µs per event, so the script's inner calls add up.
        let worth_showing = |usec: u64| usec as f64 / events as f64 >= 0.05;
        for command in commands
            .iter()
            .filter(|command| worth_showing(command.usec))
        {
            println!(
                "  {:<12} {:>9} calls {:>8.2} s {:>9.1} µs/call {:>6.2} µs/event",
                command.name,
                thousands(command.calls),
                command.usec as f64 / 1e6,
                command.usec as f64 / command.calls.max(1) as f64,
                command.usec as f64 / events as f64,
            );
        }
        // `evalsha` and `exec` only wrap other commands (a script's calls, the fenced read's
        // XREADGROUP), which count on their own lines: the difference is the wrappers' cost.
        let wrapper = |name: &str| matches!(name, "evalsha" | "eval" | "exec");
        let per_event = |usec: u64| usec as f64 / events as f64;
        let own: u64 = commands
            .iter()
            .filter(|c| !wrapper(&c.name))
            .map(|c| c.usec)
            .sum();
        let scripts: u64 = commands
            .iter()
            .filter(|c| c.name == "evalsha" || c.name == "eval")
            .map(|c| c.usec)
            .sum();
        let inner: u64 = commands
            .iter()
            .filter(|c| {
                !wrapper(&c.name)
                    && !matches!(c.name.as_str(), "xreadgroup" | "xack" | "multi" | "watch")
            })
            .map(|c| c.usec)
            .sum();
        println!(
            "redis time in the commands themselves: {:.2} µs/event (the scripts' calls {:.2}, the rest stream reads and acks); the scripts around their calls (Lua, arguments, replies): {:.2} µs/event; with no script overhead at all Redis would cap at ≈ {} events/s",
            per_event(own),
            per_event(inner),
            per_event(scripts.saturating_sub(inner)),
            thousands((1e6 / per_event(own).max(1e-9)) as u64),
        );
        let mut by_label: BTreeMap<String, (u64, u64)> = BTreeMap::new();
        for call in &slow {
            let entry = by_label.entry(call.label()).or_default();
            entry.0 += 1;
            entry.1 += call.micros;
        }
        let mut by_label: Vec<_> = by_label.into_iter().collect();
        by_label.sort_by_key(|(_, (_, micros))| std::cmp::Reverse(*micros));
        println!(
            "redis time of the calls taking ≥ {SLOW_CALL_MICROS} µs (SLOWLOG; calls scripts make are logged too), by command and first key:"
        );
        for (label, (calls, micros)) in by_label.iter().take(8) {
            println!(
                "  {label:<44} {:>6} calls {:>8.2} s {:>9.1} µs/call {:>6.2} µs/event",
                thousands(*calls),
                *micros as f64 / 1e6,
                *micros as f64 / (*calls).max(1) as f64,
                *micros as f64 / events as f64,
            );
        }
        let counted = metric("stats_tracker_worker_events_total");
        self.checks.push((
            format!(
                "worker counted every backlog event (stats_tracker_worker_events_total = {}, expected {})",
                counted as u64, events
            ),
            counted as u64 == events,
        ));
        Ok(Backlog {
            events,
            writes,
            rate: sustained,
            overall,
            redis_busy,
            redis_cpu,
            worker_cpu: worker.cpu,
            worker_peak_rss_kib: worker.peak_rss_kib,
            commands,
        })
    }

    /// The drain tenth by tenth: how its rate and cost per event move as the store fills.
    fn print_tenths(&mut self, marks: &[(Duration, u64, CpuSnapshot)]) {
        println!("drain by tenth of the backlog (the first from 1%, after the worker's start-up):");
        let mut rates = Vec::new();
        for (pair, percents) in marks.windows(2).zip(DRAIN_MARKS.windows(2)) {
            let ((t1, d1, c1), (t2, d2, c2)) = (&pair[0], &pair[1]);
            let (count, wall) = (d2.saturating_sub(*d1), t2.saturating_sub(*t1));
            // Marks passed in one poll share a moment: nothing to rate between them.
            if count == 0 || wall.is_zero() {
                rates.push(None);
                continue;
            }
            let cpu = c2.minus(c1);
            let rate = per_second(count, wall);
            println!(
                "  {}",
                drain_line(
                    &format!("{:>3}% → {:>3}%", percents[0], percents[1]),
                    rate,
                    self.figures.ceiling,
                    micros_per(cpu.redis, count),
                    micros_per(cpu.worker, count),
                )
            );
            rates.push(Some(rate));
        }
        self.figures.first_tenth = rates.first().copied().flatten();
        self.figures.last_tenth = rates.last().copied().flatten();
        if let (Some(first), Some(last)) = (self.figures.first_tenth, self.figures.last_tenth) {
            println!(
                "first tenth {} events/s, last tenth {} events/s: last ÷ first = {:.2}",
                thousands(first as u64),
                thousands(last as u64),
                last / first,
            );
        }
    }

    /// Phase 2: steady offered load plus probes, latency from XADD to visible over HTTP.
    async fn end_to_end_latency(&mut self) -> Result<()> {
        let (rate, duration) = (self.config.rate, self.config.duration);
        println!();
        println!("## 2. End-to-end latency at {} events/s", thousands(rate));
        self.server = Some(self.tracker.spawn("serve")?);
        wait_for_200(self.tracker.server_addr, "/readyz", Duration::from_secs(10))
            .await
            .with_context(|| self.server_log_hint())?;
        eprintln!(
            "offering {} events/s for {:.0?} with latency probes …",
            thousands(rate),
            duration
        );
        let mut probe_conn = self.redis.connect(STREAM_DB).await?;
        let notifications = ProbeNotifications::subscribe(&self.redis, &self.keys).await?;
        let before = self.cpu_snapshot()?;
        let worker_pid = self.worker()?.pid();
        let started = Instant::now();
        let (sent, probes, rss) = tokio::join!(
            offer_load(&mut self.stream, &mut self.traffic, rate, duration),
            probe_latency(
                &mut probe_conn,
                notifications,
                self.tracker.server_addr,
                duration,
                self.config.seed
            ),
            sample_rss(worker_pid, duration),
        );
        let elapsed = started.elapsed();
        let after = self.cpu_snapshot()?;
        // Back to Redis's default (no notifications) before anything else is measured.
        redis::cmd("CONFIG")
            .arg("SET")
            .arg("notify-keyspace-events")
            .arg("")
            .query_async::<()>(&mut self.store)
            .await
            .context("CONFIG SET notify-keyspace-events")?;
        let (sent, probes) = (sent?, probes?);
        for probe in &probes.probes {
            self.traffic.tally.record_probe(probe);
        }
        self.wait_drained(Duration::from_secs(60)).await?;
        let history_growth = self.history_growth().await?;

        let latencies = http::Latencies::new(probes.latencies);
        let offered = per_second(sent, duration);
        self.figures.e2e_rate = offered;
        self.figures.e2e_p99 = (latencies.len() > 0).then(|| latencies.percentile(99.0));
        println!(
            "offered {} events in {:.1} s ({} events/s) of {} traffic, plus {} probe game_overs",
            thousands(sent),
            duration.as_secs_f64(),
            thousands(offered as u64),
            self.config.traffic.name(),
            thousands(probes.probes.len() as u64),
        );
        println!(
            "XADD → visible in GET /stats/{PROBE_PRODUCT}/<winner> (games = 1), {} probes: {} (the API is asked when Redis notifies the probe's stats write)",
            latencies.len(),
            latencies.summary(),
        );
        println!(
            "CPU while under this load (% of one core): {}",
            after.minus(&before).percent_of(elapsed)
        );
        if let Some(growth) = history_growth {
            println!("{growth}");
        }
        // The first tenth starts from what the drain left (often just released), so growth
        // is judged from the second.
        if let (Some(second), Some(last)) = (rss.get(1), rss.last()) {
            let mib = |kib: u64| kib as f64 / 1024.0;
            let tenths: Vec<String> = rss
                .iter()
                .map(|(low, high)| format!("{:.1}–{:.1}", mib(*low), mib(*high)))
                .collect();
            println!(
                "worker RSS during the load, lowest–highest in each tenth of it (MiB): {}; lowest of the last tenth − lowest of the second = {:+.1} MiB",
                tenths.join(", "),
                mib(last.0) - mib(second.0),
            );
        }
        // Each probe rates two new players: the worker's rating cache fills up to its bound.
        // Informational: a failed scrape must not lose the run.
        if let Ok(metrics) = scrape(self.tracker.metrics_addr).await
            && let Some(entries) = metrics.get("stats_tracker_worker_rating_cache_entries")
        {
            println!("worker rating cache at the end of the load: {entries} states");
        }
        self.checks.push((
            format!(
                "every probe became visible within {PROBE_TIMEOUT:?} ({} lost)",
                probes.lost
            ),
            probes.lost == 0 && !probes.probes.is_empty(),
        ));
        Ok(())
    }

    /// Phase 3: closed-loop reads per route.
    async fn read_load(&mut self) -> Result<()> {
        let config = self.config.clone();
        println!();
        println!(
            "## 3. Reads at {} keep-alive connections (closed loop, {:.0?} warm-up, {:.0?} measured)",
            config.connections, config.warmup, config.read_duration
        );
        let target = Arc::new(self.read_target().await?);
        println!(
            "rank routes read {:?}'s `{WINS_BOARD}` board, players drawn from {} on it; the deep page starts at offset {}",
            target.board_product,
            thousands(target.board_players.len() as u64),
            thousands(target.deep_offset),
        );
        for route in config.routes {
            eprintln!("loading {} …", route.template());
            let before = self.cpu_snapshot()?;
            let started = Instant::now();
            let result: LoadResult = closed_loop(
                self.tracker.server_addr,
                config.connections,
                config.warmup,
                config.read_duration,
                route,
                Arc::clone(&target),
            )
            .await?;
            let elapsed = started.elapsed();
            let cpu = self.cpu_snapshot()?.minus(&before);
            if let Some(server) = self.server.as_mut() {
                server.ensure_running()?;
            }
            self.figures.reads.push((
                route,
                result.per_second(),
                result.latencies.percentile(99.0),
            ));
            println!(
                "{}: {} req/s, {}; {} requests, {} errors",
                route.template(),
                thousands(result.per_second() as u64),
                result.latencies.summary(),
                thousands(result.ok),
                result.errors,
            );
            println!("  CPU (% of one core): {}", cpu.percent_of(elapsed));
            self.checks.push((
                format!(
                    "{} answered 200 to every request ({} ok, {} errors)",
                    route.template(),
                    result.ok,
                    result.errors
                ),
                result.ok > 0 && result.errors == 0,
            ));
        }
        Ok(())
    }

    /// What the read routes ask about: real traffic's products in their shares with the
    /// generator's players, and exrps's board with everyone on it; fresh-player traffic's
    /// products with their sampled players, and its first (big-board: only) product's board.
    async fn read_target(&mut self) -> Result<ReadTarget> {
        let tally = &self.traffic.tally;
        let (products, board_product, board_players) = match self.config.traffic {
            TrafficKind::Real => {
                let products = PRODUCTS
                    .iter()
                    .map(|(product, share)| {
                        ((*product).to_owned(), *share, Arc::clone(&self.players))
                    })
                    .collect();
                let board = self
                    .keys
                    .product(&ProductId::parse(RANK_PRODUCT)?)
                    .board(WINS_BOARD);
                // A player's rank is asked of players on the board (others are a 404).
                // Members are `<stamp><player>` (see leaderboards::rank).
                let members: Vec<Vec<u8>> = query(
                    redis::cmd("ZRANGE").arg(&board).arg(0).arg(-1),
                    &mut self.store,
                )
                .await?;
                let on_board = members
                    .iter()
                    .filter_map(|member| rank::player_of(member, 0))
                    .map(str::to_owned)
                    .collect();
                (products, RANK_PRODUCT.to_owned(), Arc::new(on_board))
            }
            TrafficKind::Churn | TrafficKind::BigBoard => {
                // Probes are exrps games: not this traffic's products.
                let products: Vec<(String, u64, Arc<Vec<String>>)> = tally
                    .sampled_games
                    .keys()
                    .filter(|product| product.as_str() != PROBE_PRODUCT)
                    .map(|product| (product.clone(), 1, Arc::new(tally.sampled_players(product))))
                    .collect();
                let (product, _, players) = products
                    .first()
                    .cloned()
                    .context("no game of this traffic was sampled")?;
                (products, product, players)
            }
        };
        let deep_offset = match self.config.traffic {
            // The rank asked for: the middle of the board the backlog filled.
            TrafficKind::BigBoard => (self.config.players / 2) as u64,
            _ => {
                let board = self
                    .keys
                    .product(&ProductId::parse(&board_product)?)
                    .board(WINS_BOARD);
                let members: u64 = query(redis::cmd("ZCARD").arg(&board), &mut self.store).await?;
                members / 2
            }
        };
        Ok(ReadTarget {
            products,
            board_product,
            board_players,
            deep_offset,
        })
    }

    /// Phase 4: process peaks and Redis bytes per player.
    async fn memory(&mut self) -> Result<()> {
        println!();
        println!("## 4. Memory");
        let worker = self.worker()?.stats()?;
        println!(
            "worker peak RSS: {} while draining, {} over the whole run (now {})",
            mib(self.figures.drain_peak_rss_kib),
            mib(worker.peak_rss_kib),
            mib(worker.rss_kib)
        );
        if let Some(server) = &self.server {
            let server = server.stats()?;
            println!(
                "server peak RSS over the whole run: {} (now {})",
                mib(server.peak_rss_kib),
                mib(server.rss_kib)
            );
        }
        let tally = &self.traffic.tally;
        let games = |product: &String| {
            tally
                .stats
                .get(product)
                .and_then(|stats| stats.get("games"))
                .copied()
                .unwrap_or(0)
        };
        let mut products: Vec<String> = tally.stats.keys().cloned().collect();
        products.sort_by_key(|product| std::cmp::Reverse(games(product)));
        if products.len() > MEMORY_PRODUCTS {
            println!(
                "the {MEMORY_PRODUCTS} busiest of {} products (the others are alike or smaller):",
                products.len()
            );
            products.truncate(MEMORY_PRODUCTS);
        }
        for product in &products {
            let keys = self.keys.product(&ProductId::parse(product)?);
            let board = board_memory(&mut self.store, &keys, WINS_BOARD).await?;
            // Real traffic: every k-th generated player, so popular and rare players are both
            // represented; fresh-player traffic: the sampled games' players.
            let players = match self.config.traffic {
                TrafficKind::Real => self.players.to_vec(),
                _ => self.traffic.tally.sampled_players(product),
            };
            let step = (players.len() / MEMORY_SAMPLE).max(1);
            let mut pipe = redis::pipe();
            for player in players.iter().step_by(step) {
                pipe.add_command(memory_usage(&keys.stats(&PlayerId::parse(player)?)));
            }
            let sizes: Vec<Option<u64>> = pipe
                .query_async(&mut self.store)
                .await
                .context("MEMORY USAGE of stats hashes")?;
            let sizes: Vec<u64> = sizes.into_iter().flatten().collect();
            let hash_avg = sizes.iter().sum::<u64>() as f64 / sizes.len().max(1) as f64;
            println!(
                "{product:?}: `{WINS_BOARD}` board {} players, {} bytes ({}) = {:.0} bytes per player (each daily/weekly/monthly period board costs the same per player in it); stats hash, with the player's stamp on each board, {:.0} bytes per player (mean of {} hashes)",
                thousands(board.members),
                thousands(board.bytes),
                board.encoding,
                board.bytes as f64 / board.members.max(1) as f64,
                hash_avg,
                sizes.len(),
            );
        }
        let stream_len: u64 = query(redis::cmd("XLEN").arg(STREAM), &mut self.stream).await?;
        let stream_bytes: Option<u64> = query(&memory_usage(STREAM), &mut self.stream).await?;
        let info: String = query(redis::cmd("INFO").arg("memory"), &mut self.store).await?;
        println!(
            "`{STREAM}` (not the tracker's, never trimmed by it): {} entries, {:.0} bytes per entry; redis used_memory {} in all",
            thousands(stream_len),
            stream_bytes.unwrap_or(0) as f64 / stream_len.max(1) as f64,
            info_field(&info, "used_memory_human").unwrap_or("?"),
        );
        Ok(())
    }

    /// Phase 0 (and a repeat at the end): the machine yardstick, see [`redisd::yardstick`].
    /// `None` when redis-benchmark is missing: the run goes on without ratios.
    async fn yardstick(&mut self, when: &str) -> Result<Option<f64>> {
        println!();
        println!(
            "## Yardstick {when} (redis-benchmark -P 32, 50 connections, same Redis, db {SCRATCH_DB})"
        );
        if find_tool("redis-benchmark").is_none() {
            println!(
                "redis-benchmark is not installed (Debian's redis-tools has it): no ceiling, no ratios"
            );
            return Ok(None);
        }
        eprintln!("redis-benchmark EVAL (the yardstick) …");
        let rate = yardstick(
            self.redis.port,
            SCRATCH_DB,
            self.config.yardstick_requests,
            YARDSTICK_KEYS,
        )
        .await?;
        println!(
            "ceiling: {} ops/s (EVAL \"{YARDSTICK_SCRIPT}\" 1 <one of {} keys>)",
            thousands(rate as u64),
            thousands(YARDSTICK_KEYS as u64),
        );
        if let Some(start) = self.figures.ceiling {
            println!(
                "the machine moved {:+.1}% since the start of the run (the ratios use the start's ceiling)",
                100.0 * (rate / start - 1.0)
            );
        }
        Ok(Some(rate))
    }

    /// Phase 5: redis-benchmark on the same Redis for the commands one event costs.
    async fn plain_commands(&mut self, backlog: &Backlog) -> Result<()> {
        println!();
        println!("## 5. The effects' minimum (redis-benchmark, -P 64, 50 connections, same Redis)");
        if find_tool("redis-benchmark").is_none() {
            println!(
                "redis-benchmark is not installed (Debian's redis-tools has it): comparison skipped"
            );
            return Ok(());
        }
        let requests = self.config.redis_benchmark_requests;
        let keyspace = self.config.players;
        let ops: [(&str, &[&str]); 4] = [
            (
                "XADD",
                &[
                    "XADD",
                    "bench:stream",
                    "*",
                    "product_id",
                    "exrps",
                    "game_id",
                    "00000000-0000-4000-8000-000000000000",
                    "type",
                    "gameplay",
                    "event_name",
                    "select_weapon",
                    "event_data",
                    "0",
                    "user_id",
                    "__rand_int__",
                ],
            ),
            (
                "HINCRBY",
                &["HINCRBY", "bench:stats:__rand_int__", "games", "1"],
            ),
            ("ZINCRBY", &["ZINCRBY", "bench:board", "1", "__rand_int__"]),
            (
                "ZADD NX",
                &["ZADD", "bench:board", "NX", "0", "__rand_int__"],
            ),
        ];
        let mut rps = BTreeMap::new();
        for (name, command) in ops {
            eprintln!("redis-benchmark {name} …");
            let rate =
                redis_benchmark(self.redis.port, SCRATCH_DB, 64, requests, keyspace, command)
                    .await?;
            println!("{name:<8} {:>10} ops/s", thousands(rate as u64));
            rps.insert(name, rate);
        }
        // Redis time one backlog event costs if every command ran at redis-benchmark's best:
        // reading and acknowledging its stream entry (together counted as one XADD), plus
        // the writes the traffic causes (from the tally, i.e. the rules at this commit).
        let w = backlog.writes;
        let seconds = backlog.events as f64 / rps["XADD"]
            + w.dead_letter_xadds as f64 / rps["XADD"]
            + w.hincrby as f64 / rps["HINCRBY"]
            + w.zincrby as f64 / rps["ZINCRBY"]
            + w.zadd as f64 / rps["ZADD NX"];
        let estimate = backlog.events as f64 / seconds;
        self.figures.plain_commands = Some(estimate);
        println!(
            "per backlog event the worker issues {:.3} HINCRBY, {:.3} ZINCRBY, {:.3} ZADD NX, {:.4} dead-letter XADD, plus its stream read and XACK",
            w.hincrby as f64 / backlog.events as f64,
            w.zincrby as f64 / backlog.events as f64,
            w.zadd as f64 / backlog.events as f64,
            w.dead_letter_xadds as f64 / backlog.events as f64,
        );
        println!(
            "plain commands: Redis could apply ≈ {} events/s of this traffic if each stat increment and score change were one plain pipelined command (the effects' minimum: no rank index, no period boards); the worker reached {} events/s = {:.1}% of it, while Redis was busy {:.0}% of the drain",
            thousands(estimate as u64),
            thousands(backlog.rate as u64),
            100.0 * backlog.rate / estimate,
            100.0 * backlog.redis_busy,
        );
        Ok(())
    }

    /// The final checks: every count the traffic implies is what the tracker shows.
    async fn verify(&mut self) -> Result<()> {
        let notes = self.check_counts().await?;
        print_checks(&self.checks, &notes);
        Ok(())
    }

    /// Adds the final checks to `self.checks`; returns notes on what was not checked.
    async fn check_counts(&mut self) -> Result<Vec<String>> {
        self.wait_drained(Duration::from_secs(60)).await?;
        let tally: Tally = self.traffic.tally.clone();
        let mut notes = Vec::new();
        if self.config.traffic.fresh_players() {
            self.verify_fresh(&tally).await?;
        } else {
            let checks = check_every_player(
                &mut self.store,
                &self.keys,
                &self.players,
                &tally,
                &mut notes,
            )
            .await?;
            self.checks.extend(checks);
        }
        let totals = check_totals(
            &mut self.store,
            &self.keys,
            &tally,
            &[self.tracker.metrics_addr],
        )
        .await?;
        self.checks.extend(totals);
        Ok(notes)
    }

    /// Fresh-player traffic, where every player plays one game: every product's `wins` board
    /// from counts (two members per game, the winner at 1, the loser at 0), and the stats of
    /// the sampled games' players one by one (all of them at smoke sizes).
    async fn verify_fresh(&mut self, tally: &Tally) -> Result<()> {
        let products: Vec<&String> = tally.stats.keys().collect();
        let mut pipe = redis::pipe();
        for product in &products {
            let board = self
                .keys
                .product(&ProductId::parse(product)?)
                .board(WINS_BOARD);
            // Boards store negated scores (see leaderboards::rank).
            pipe.zcard(&board)
                .zcount(&board, -1, -1)
                .zcount(&board, 0, 0);
        }
        let counts: Vec<u64> = pipe
            .query_async(&mut self.store)
            .await
            .context("counting board members")?;
        let mut wrong = Vec::new();
        for (product, got) in products.iter().zip(counts.chunks(3)) {
            let players = tally
                .stats
                .get(*product)
                .and_then(|stats| stats.get("games"))
                .copied()
                .unwrap_or(0);
            let winners = tally.board_points.get(*product).copied().unwrap_or(0);
            let want = [players, winners, players.saturating_sub(winners)];
            if got != want {
                wrong.push(format!(
                    "{product:?} has {got:?} (members, at 1, at 0), expected {want:?}"
                ));
            }
        }
        self.checks.push((
            format!(
                "`{WINS_BOARD}` boards of all {} products hold two players per game, winners at 1 and losers at 0{}",
                products.len(),
                wrong.first().map_or(String::new(), |first| format!(
                    "; {} wrong, first: {first}",
                    wrong.len()
                )),
            ),
            wrong.is_empty(),
        ));

        // [games, wins, losses, draws] summed over the sampled players.
        let mut sums = [0i64; 4];
        let (mut games, mut odd) = (0u64, 0u64);
        for (product, sampled) in &tally.sampled_games {
            let keys = self.keys.product(&ProductId::parse(product)?);
            for chunk in sampled.chunks(500) {
                let mut pipe = redis::pipe();
                for (winner, loser) in chunk {
                    pipe.hgetall(keys.stats(&PlayerId::parse(winner)?))
                        .hgetall(keys.stats(&PlayerId::parse(loser)?));
                }
                let hashes: Vec<BTreeMap<String, Vec<u8>>> = pipe
                    .query_async(&mut self.store)
                    .await
                    .context("HGETALL of stats hashes")?;
                let hashes: Vec<BTreeMap<String, i64>> =
                    hashes.into_iter().map(stats_of).collect::<Result<_>>()?;
                for (index, hash) in hashes.iter().enumerate() {
                    let result = if index % 2 == 0 { "wins" } else { "losses" };
                    let stat = |name: &str| hash.get(name).copied().unwrap_or(0);
                    for (sum, name) in sums.iter_mut().zip(["games", "wins", "losses", "draws"]) {
                        *sum += stat(name);
                    }
                    let one_game = stat("games") == 1
                        && stat(result) == 1
                        && hash
                            .iter()
                            .all(|(name, value)| *value == 0 || name == "games" || name == result);
                    odd += u64::from(!one_game);
                }
                games += chunk.len() as u64;
            }
        }
        let n = games as i64;
        let want = [2 * n, n, n, 0];
        self.checks.push((
            format!(
                "stats of the {} players of {} sampled games: sums of games/wins/losses/draws {sums:?}, expected {want:?}; {odd} players with anything but their one game",
                thousands(2 * games),
                thousands(games),
            ),
            sums == want && odd == 0 && games > 0,
        ));
        Ok(())
    }

    fn print_targets(&self) {
        let f = &self.figures;
        let smoke = self.config.smoke;
        let met = |ok: bool| match (smoke, ok) {
            (true, _) => "not judged at smoke sizes",
            (false, true) => "met",
            (false, false) => "NOT met",
        };
        // The worker and latency targets are set for real traffic.
        let real = self.config.traffic == TrafficKind::Real;
        let met_if_real = |ok: bool| {
            if real {
                met(ok)
            } else {
                "no target for this traffic"
            }
        };
        println!();
        println!("## Targets");
        match f.ceiling {
            Some(ceiling) => println!(
                "ceiling (machine yardstick): {} ops/s at the start, {} at the end; drain events/s ÷ ceiling = {:.3}",
                thousands(ceiling as u64),
                f.ceiling_at_end
                    .map_or("not measured".to_owned(), |end| thousands(end as u64)),
                f.drain_sustained / ceiling,
            ),
            None => println!("ceiling (machine yardstick): not measured (no redis-benchmark)"),
        }
        println!(
            "worker ≥ 100,000 events/s sustained: {} events/s — {}{}",
            thousands(f.drain_sustained as u64),
            met_if_real(f.drain_sustained >= 100_000.0),
            f.plain_commands.map_or(String::new(), |c| format!(
                " (plain commands for this traffic ≈ {} events/s)",
                thousands(c as u64)
            )),
        );
        match f.e2e_p99 {
            Some(p99) => println!(
                "end-to-end p99 ≤ 10 ms at 5,000 events/s: {} at {} events/s — {}",
                ms(p99),
                thousands(f.e2e_rate as u64),
                met_if_real(p99 <= Duration::from_millis(10) && f.e2e_rate >= 4_999.0),
            ),
            None => {
                println!("end-to-end p99 ≤ 10 ms at 5,000 events/s: no probe measured — NOT met")
            }
        }
        for (route, rate, p99) in f.reads.iter().filter(|(route, ..)| route.has_target()) {
            println!(
                "{} ≥ 30,000 req/s with p99 ≤ 5 ms at 64 connections: {} req/s, p99 {} at {} connections — {}",
                route.template(),
                thousands(*rate as u64),
                ms(*p99),
                self.config.connections,
                met(*rate >= 30_000.0
                    && *p99 <= Duration::from_millis(5)
                    && self.config.connections >= 64),
            );
        }
        for (route, rate, p99) in f
            .reads
            .iter()
            .filter(|(route, ..)| *route == ReadRoute::Ranks)
        {
            println!(
                "{}: {} req/s ({} player ranks/s), p99 {} at {} connections — no target",
                route.template(),
                thousands(*rate as u64),
                thousands((*rate * http::RANKS_PLAYERS as f64) as u64),
                ms(*p99),
                self.config.connections,
            );
        }
        println!(
            "worker RSS ≤ 64 MiB while draining: {} — {}",
            mib(f.drain_peak_rss_kib),
            met(f.drain_peak_rss_kib <= 64 * 1024),
        );
        let ratio = |rate: f64| {
            f.ceiling
                .map_or(String::new(), |c| format!(" (÷ ceiling {:.3})", rate / c))
        };
        if let (Some(first), Some(last)) = (f.first_tenth, f.last_tenth) {
            println!(
                "drain as the store fills, first tenth → last tenth of the backlog: {} events/s{} → {} events/s{}, last ÷ first = {:.2}",
                thousands(first as u64),
                ratio(first),
                thousands(last as u64),
                ratio(last),
                last / first,
            );
        }
        if let Some(bytes) = f.history.as_ref().and_then(|h| h.bytes_per_entry()) {
            println!(
                "history: {bytes:.1} Redis bytes per entry after the drain{} — no target",
                f.history_live_bytes_per_entry
                    .map_or(String::new(), |live| format!(
                        ", {live:.1} per entry the live load of phase 2 added"
                    )),
            );
        }
        if let Some(rebuild) = &f.rebuild {
            println!(
                "rebuild of {:?} after the drain: {} entries/s{}, the drain {} events/s sustained{}: rebuild ÷ drain = {:.2} — no target",
                rebuild.product,
                thousands(rebuild.rate() as u64),
                ratio(rebuild.rate()),
                thousands(f.drain_sustained as u64),
                ratio(f.drain_sustained),
                rebuild.rate() / f.drain_sustained.max(1e-9),
            );
        }
    }

    /// Waits until the worker has acknowledged everything on the stream.
    async fn wait_drained(&mut self, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            self.worker()?.ensure_running()?;
            let state = self.group().await?;
            if state.is_some_and(|state| state.drained()) {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("the worker did not catch up within {timeout:?} (state {state:?})");
            }
            tokio::time::sleep(GROUP_POLL).await;
        }
    }

    fn cpu_snapshot(&self) -> Result<CpuSnapshot> {
        let of = |proc: &Option<Proc>| -> Result<Duration> {
            Ok(match proc {
                Some(proc) => proc.stats()?.cpu,
                None => Duration::ZERO,
            })
        };
        Ok(CpuSnapshot {
            worker: of(&self.worker)?,
            server: of(&self.server)?,
            redis: self.redis.stats()?.cpu,
            bench: ProcStats::current()?.cpu,
            machine: machine_busy()?,
        })
    }

    fn server_log_hint(&self) -> String {
        format!(
            "the server did not become ready; see {}",
            self.tracker.dir.join("serve.log").display()
        )
    }
}

/// CPU time of each process at one moment.
#[derive(Debug, Clone, Copy)]
struct CpuSnapshot {
    worker: Duration,
    server: Duration,
    redis: Duration,
    bench: Duration,
    /// Every process of the machine, ours included.
    machine: Duration,
}

impl CpuSnapshot {
    fn minus(&self, earlier: &Self) -> Self {
        Self {
            worker: self.worker.saturating_sub(earlier.worker),
            server: self.server.saturating_sub(earlier.server),
            redis: self.redis.saturating_sub(earlier.redis),
            bench: self.bench.saturating_sub(earlier.bench),
            machine: self.machine.saturating_sub(earlier.machine),
        }
    }

    fn percent_of(&self, wall: Duration) -> String {
        let pct = |cpu: Duration| 100.0 * cpu.as_secs_f64() / wall.as_secs_f64();
        let ours = self.worker + self.server + self.redis + self.bench;
        // Other processes (a build, another test run) share the cores: say how much.
        format!(
            "worker {:.0}%, server {:.0}%, redis {:.0}%, bench (load generator) {:.0}%, other processes {:.0}%",
            pct(self.worker),
            pct(self.server),
            pct(self.redis),
            pct(self.bench),
            pct(self.machine.saturating_sub(ours)),
        )
    }
}

fn print_checks(checks: &[(String, bool)], notes: &[String]) {
    println!();
    println!("## Checks");
    for (what, ok) in checks {
        println!("{} {what}", if *ok { "ok  " } else { "FAIL" });
    }
    for note in notes {
        println!("note {note}");
    }
}

/// Real traffic: every product's board total and stat sums over every player who played
/// (the generator's players, probes and newcomers; with copies of the products, the players
/// the tally saw in each). Each product's reads stay in its hash slot, so `store` may be a
/// cluster's.
async fn check_every_player(
    store: &mut impl ConnectionLike,
    keys: &KeySpace,
    generated: &[String],
    tally: &Tally,
    notes: &mut Vec<String>,
) -> Result<Vec<(String, bool)>> {
    let mut everyone: Vec<String> = generated.to_vec();
    everyone.extend(tally.probe_players.iter().cloned());
    everyone.extend(tally.newcomers.iter().cloned());
    let mut checks = Vec::new();
    for (product, expected) in &tally.stats {
        if let Some(kinds) = tally.unmodelled.get(product) {
            notes.push(format!(
                "{product:?}: board and stats sums not checked (the traffic has event types the bench does not model: {kinds:?})"
            ));
            continue;
        }
        let played: Vec<String>;
        let players = match &tally.players_by_product {
            Some(by_product) => {
                played = by_product
                    .get(product)
                    .into_iter()
                    .flatten()
                    .cloned()
                    .collect();
                &played
            }
            None => &everyone,
        };
        let keys = keys.product(&ProductId::parse(product)?);
        // Boards store negated scores (see leaderboards::rank).
        let board: Vec<(Vec<u8>, f64)> = query(
            redis::cmd("ZRANGE")
                .arg(keys.board(WINS_BOARD))
                .arg(0)
                .arg(-1)
                .arg("WITHSCORES"),
            store,
        )
        .await?;
        let board_total: f64 = -board.iter().map(|(_, stored)| stored).sum::<f64>();
        let points = tally.board_points.get(product).copied().unwrap_or(0);
        checks.push((
            format!("{product:?} `{WINS_BOARD}` board totals {board_total}, expected {points}"),
            board_total == points as f64,
        ));

        let mut actual: BTreeMap<String, i64> = BTreeMap::new();
        for chunk in players.chunks(1_000) {
            let mut pipe = redis::pipe();
            for player in chunk {
                pipe.hgetall(keys.stats(&PlayerId::parse(player)?));
            }
            let hashes: Vec<BTreeMap<String, Vec<u8>>> = pipe
                .query_async(store)
                .await
                .context("HGETALL of stats hashes")?;
            for hash in hashes {
                for (stat, value) in stats_of(hash)? {
                    *actual.entry(stat).or_default() += value;
                }
            }
        }
        // Only the stats the tally models: other rules may add others.
        for stat in CHECKED_STATS {
            let want = expected.get(stat).copied().unwrap_or(0) as i64;
            let got = actual.get(stat).copied().unwrap_or(0);
            checks.push((
                format!("{product:?} sum of `{stat}` over all players is {got}, expected {want}"),
                got == want,
            ));
        }
    }
    Ok(checks)
}

/// The dead letters and the workers' event counters (summed over `metrics_addrs`) against the
/// tally.
async fn check_totals(
    store: &mut impl ConnectionLike,
    keys: &KeySpace,
    tally: &Tally,
    metrics_addrs: &[SocketAddr],
) -> Result<Vec<(String, bool)>> {
    let dead_letters: u64 =
        query(redis::cmd("XLEN").arg(keys.dead_letters().stream()), store).await?;
    let mut counted = 0;
    for addr in metrics_addrs {
        let metrics = scrape(*addr).await?;
        counted += metrics
            .get("stats_tracker_worker_events_total")
            .copied()
            .unwrap_or(0.0) as u64;
    }
    Ok(vec![
        (
            format!(
                "{dead_letters} dead letters, expected {}",
                tally.dead_letters
            ),
            dead_letters == tally.dead_letters,
        ),
        (
            format!(
                "worker counted {counted} events in all, expected {}",
                tally.events
            ),
            counted == tally.events,
        ),
    ])
}

/// Appends `rate` events/s of traffic for `duration`, in 5 ms slices; returns how many.
async fn offer_load(
    conn: &mut MultiplexedConnection,
    traffic: &mut Traffic,
    rate: u64,
    duration: Duration,
) -> Result<u64> {
    let started = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_millis(5));
    // A late slice is sent late rather than bunched: the rate below catches up anyway.
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut sent = 0u64;
    loop {
        tick.tick().await;
        let elapsed = started.elapsed().min(duration);
        let due = (rate as f64 * elapsed.as_secs_f64()) as u64;
        if due > sent {
            xadd_all(conn, &traffic.take((due - sent) as usize)).await?;
            sent = due;
        }
        if elapsed >= duration {
            return Ok(sent);
        }
    }
}

/// What the probes saw.
struct ProbeRun {
    probes: Vec<Probe>,
    latencies: Vec<Duration>,
    lost: u64,
}

/// The default games file: the built-in configuration plus an Elo board on exrps.
const BENCH_GAMES: &str = include_str!("../../../config/games.bench.toml");
const BENCH_GAMES_LABEL: &str =
    "config/games.bench.toml (the built-in games plus an Elo board on exrps)";

/// The worker's lowest and highest resident set size (KiB) in each tenth of `duration`,
/// sampled every second or more often. A leak raises the lowest; an allocator keeping freed
/// memory for a while after a burst only the highest.
async fn sample_rss(pid: u32, duration: Duration) -> Vec<(u64, u64)> {
    let tenth = duration / 10;
    let every = (tenth / 10).min(Duration::from_secs(1));
    let mut tenths = Vec::new();
    for _ in 0..10 {
        let started = Instant::now();
        let mut range: Option<(u64, u64)> = None;
        while started.elapsed() < tenth {
            tokio::time::sleep(every).await;
            if let Ok(stats) = procs::ProcStats::of_pid(pid) {
                let (low, high) = range.unwrap_or((stats.rss_kib, stats.rss_kib));
                range = Some((low.min(stats.rss_kib), high.max(stats.rss_kib)));
            }
        }
        tenths.extend(range);
    }
    tenths
}

/// Keyspace notifications of writes to probe players' stats hashes.
///
/// Polling the API every millisecond would add up to a tick (1–2 ms with tokio's timer) to
/// every measurement; polling faster would load the server being measured. Redis instead
/// says when a probe's hash is written; it sends the notification after the commit script
/// has finished, so the write is visible by then and one GET confirms it.
struct ProbeNotifications {
    pubsub: redis::aio::PubSub,
    keys: KeySpace,
}

impl ProbeNotifications {
    async fn subscribe(redis: &PrivateRedis, keys: &KeySpace) -> Result<Self> {
        let mut conn = redis.connect(STORE_DB).await?;
        // `K`eyspace events of `h`ash commands only: a few per probe, nothing for the rest.
        redis::cmd("CONFIG")
            .arg("SET")
            .arg("notify-keyspace-events")
            .arg("Kh")
            .query_async::<()>(&mut conn)
            .await
            .context("CONFIG SET notify-keyspace-events")?;
        let mut pubsub = redis::Client::open(redis.url(STORE_DB))?
            .get_async_pubsub()
            .await
            .context("cannot open a pub/sub connection")?;
        let pattern = Self::channel(keys, &PlayerId::parse(Probe::PLAYER_PREFIX)?)?;
        pubsub
            .psubscribe(format!("{pattern}*"))
            .await
            .context("PSUBSCRIBE")?;
        Ok(Self {
            pubsub,
            keys: keys.clone(),
        })
    }

    fn channel(keys: &KeySpace, player: &PlayerId) -> Result<String> {
        let stats = keys
            .product(&ProductId::parse(PROBE_PRODUCT)?)
            .stats(player);
        Ok(format!("__keyspace@{STORE_DB}__:{stats}"))
    }
}

/// Sends probes one at a time, 0–20 ms apart, for `duration`; each is timed from just before
/// its XADD until the API shows its winner with one game.
async fn probe_latency(
    conn: &mut MultiplexedConnection,
    mut notifications: ProbeNotifications,
    server: SocketAddr,
    duration: Duration,
    seed: u64,
) -> Result<ProbeRun> {
    let keys = notifications.keys.clone();
    let mut messages = notifications.pubsub.on_message();
    let mut http = HttpConn::connect(server).await?;
    let mut rng = Rng::new(seed ^ 0x0B0E_5EED);
    let mut run = ProbeRun {
        probes: Vec::new(),
        latencies: Vec::new(),
        lost: 0,
    };
    let started = Instant::now();
    while started.elapsed() < duration {
        let probe = Probe::new(run.probes.len() as u64);
        let path = format!("/stats/{}/{}", encode(PROBE_PRODUCT), encode(&probe.winner));
        let channel = ProbeNotifications::channel(&keys, &PlayerId::parse(&probe.winner)?)?;
        let sent = Instant::now();
        xadd_all(conn, std::slice::from_ref(&probe.event)).await?;
        // Earlier probes' notifications may still arrive: only this winner's counts. A
        // missing notification only costs the timeout, then polling goes on as usual.
        let _ = tokio::time::timeout(PROBE_TIMEOUT, async {
            while let Some(message) = messages.next().await {
                if message.get_channel_name() == channel {
                    break;
                }
            }
        })
        .await;
        loop {
            let (status, body) = http.get(&path).await?;
            if status == StatusCode::OK && games(&body) == Some(1) {
                run.latencies.push(sent.elapsed());
                break;
            }
            if sent.elapsed() > PROBE_TIMEOUT {
                run.lost += 1;
                break;
            }
            tokio::time::sleep(PROBE_POLL).await;
        }
        run.probes.push(probe);
        tokio::time::sleep(Duration::from_millis(rng.below(21))).await;
    }
    Ok(run)
}

/// The `games` stat of a `GET /stats/…` body (a string of the number, as the original service
/// answered, or a number when the server is set to answer numbers).
fn games(body: &[u8]) -> Option<u64> {
    match serde_json::from_slice::<serde_json::Value>(body)
        .ok()?
        .get("games")?
    {
        serde_json::Value::String(text) => text.parse().ok(),
        value => value.as_u64(),
    }
}

/// The worker's metrics, each name (labels dropped) summed over its series.
async fn scrape(addr: SocketAddr) -> Result<BTreeMap<String, f64>> {
    let (status, body) = HttpConn::connect(addr)
        .await?
        .get("/metrics")
        .await
        .context("worker metrics")?;
    if status != StatusCode::OK {
        bail!("worker metrics answered {status}");
    }
    let text = String::from_utf8_lossy(&body);
    let mut sums = BTreeMap::new();
    for line in text.lines().filter(|line| !line.starts_with('#')) {
        // `name{labels} value`: label values may hold spaces, the value never does.
        let Some((series, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let name = series.split('{').next().unwrap_or(series);
        if let Ok(value) = value.parse::<f64>() {
            *sums.entry(name.to_owned()).or_default() += value;
        }
    }
    Ok(sums)
}

async fn query<T: redis::FromRedisValue>(
    command: &redis::Cmd,
    conn: &mut impl ConnectionLike,
) -> Result<T> {
    command
        .query_async(conn)
        .await
        .with_context(|| format!("redis command {:?}", command.args_iter().next()))
}

/// What one board takes in Redis.
struct BoardMemory {
    members: u64,
    /// The board and its distinct scores, all time.
    bytes: u64,
    /// `OBJECT ENCODING` of the board (`listpack` for small boards, `skiplist` beyond).
    encoding: String,
}

/// The all-time `board` of one product: its members and the bytes of the keys
/// [`PartitionKeys::board_keys`] names for it (the board and its distinct scores; the players'
/// stamps are in their stats hashes, measured with those), each counted exactly.
async fn board_memory(
    store: &mut MultiplexedConnection,
    keys: &PartitionKeys,
    board: &str,
) -> Result<BoardMemory> {
    let board_keys = keys.board_keys(board, None);
    let members: u64 = query(redis::cmd("ZCARD").arg(&board_keys.board), store).await?;
    let mut bytes = 0;
    for key in [&board_keys.board, &board_keys.distinct] {
        let size: Option<u64> = query(&memory_usage(key), store).await?;
        bytes += size.unwrap_or(0);
    }
    let encoding: String = query(
        redis::cmd("OBJECT").arg("ENCODING").arg(&board_keys.board),
        store,
    )
    .await?;
    Ok(BoardMemory {
        members,
        bytes,
        encoding,
    })
}

/// The stats of a stats hash as integers; the players' board stamps beside them (binary)
/// are not stats and are left out.
fn stats_of(hash: BTreeMap<String, Vec<u8>>) -> Result<BTreeMap<String, i64>> {
    hash.into_iter()
        .filter(|(name, _)| !name.starts_with(STAMP_FIELD_PREFIX))
        .map(|(name, value)| {
            let number = std::str::from_utf8(&value)
                .ok()
                .and_then(|text| text.parse::<i64>().ok())
                .with_context(|| format!("stat {name} is not an integer"))?;
            Ok((name, number))
        })
        .collect()
}

/// `MEMORY USAGE key SAMPLES 0`: exact, every element counted.
fn memory_usage(key: &str) -> redis::Cmd {
    let mut command = redis::cmd("MEMORY");
    command.arg("USAGE").arg(key).arg("SAMPLES").arg(0);
    command
}

/// Events per second between the first samples past 10% and past 90% of the backlog, so
/// start-up and the last partial batches do not count.
fn sustained_rate(samples: &[(Duration, u64)], total: u64) -> Option<f64> {
    let at = |fraction: f64| {
        samples
            .iter()
            .find(|(_, done)| *done as f64 >= fraction * total as f64)
    };
    let ((t1, d1), (t2, d2)) = (at(0.1)?, at(0.9)?);
    let seconds = t2.saturating_sub(*t1).as_secs_f64();
    (seconds > 0.0 && d2 > d1).then(|| (d2 - d1) as f64 / seconds)
}

/// One drain's figures on one line: its rate, the rate as a share of the ceiling, and the CPU
/// Redis and the worker spent per event.
fn drain_line(
    what: &str,
    rate: f64,
    ceiling: Option<f64>,
    redis_us: f64,
    worker_us: f64,
) -> String {
    let ratio = ceiling.map_or("no ceiling".to_owned(), |c| format!("{:.3}", rate / c));
    format!(
        "{what}: {} events/s, ÷ ceiling = {ratio}, Redis CPU {redis_us:.1} µs/event, worker CPU {worker_us:.1} µs/event",
        thousands(rate as u64),
    )
}

fn per_second(count: u64, elapsed: Duration) -> f64 {
    count as f64 / elapsed.as_secs_f64().max(1e-9)
}

fn micros_per(cpu: Duration, events: u64) -> f64 {
    cpu.as_secs_f64() * 1e6 / events.max(1) as f64
}

fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

/// `1234567` → `1,234,567`.
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(args: &[&str]) -> Config {
        let args = Args::try_parse_from(std::iter::once("bench").chain(args.iter().copied()))
            .expect("valid arguments");
        let kind = args.traffic.unwrap_or(TrafficKind::Real);
        Config::from_args(&args, kind).expect("valid configuration")
    }

    #[test]
    fn each_traffic_kind_has_its_own_sizes() {
        let real = config(&[]);
        assert_eq!((real.events, real.players), (1_000_000, 20_000));
        let big = config(&["--traffic", "big-board"]);
        assert_eq!((big.events, big.players), (500_000, 1_000_000));
        assert_eq!(
            big.routes,
            [
                ReadRoute::DeepPage,
                ReadRoute::Around,
                ReadRoute::Ranks,
                ReadRoute::Healthz
            ]
        );
        let churn = config(&[
            "--traffic",
            "churn",
            "--products",
            "1000",
            "--id-bytes",
            "128",
        ]);
        assert_eq!(
            (churn.events, churn.products, churn.id_bytes),
            (300_000, 1_000, 128)
        );
        assert_eq!((real.rate, churn.rate, big.rate), (5_000, 1_000, 1_000));
        let smoke = config(&["--smoke", "--traffic", "big-board"]);
        assert_eq!((smoke.events, smoke.players), (2_000, 4_000));
        let args = Args::try_parse_from(["bench", "--id-bytes", "129"]).expect("parses");
        assert!(Config::from_args(&args, TrafficKind::Churn).is_err());
    }

    #[test]
    fn cluster_runs_spread_real_traffic_over_copies() {
        let real = config(&[]);
        assert_eq!((real.products, real.cluster), (1, false));
        let cluster = config(&["--cluster"]);
        assert_eq!(
            (cluster.events, cluster.products, cluster.cluster),
            (CLUSTER_EVENTS, CLUSTER_COPIES, true)
        );
        assert_eq!(config(&["--cluster", "--products", "3"]).products, 3);
        assert_eq!(config(&["--cluster", "--smoke"]).events, 20_000);
        assert_eq!(config(&["--traffic", "churn"]).products, 100);
        let args =
            Args::try_parse_from(["bench", "--cluster", "--traffic", "churn"]).expect("parses");
        assert!(Config::from_args(&args, TrafficKind::Churn).is_err());
    }

    #[test]
    fn history_cost_drains_real_traffic_alone() {
        let cost = config(&["--history-cost"]);
        assert_eq!(
            (cost.events, cost.history_cost, cost.products),
            (history::HISTORY_COST_EVENTS, true, 1)
        );
        assert_eq!(config(&["--history-cost", "--smoke"]).events, 20_000);
        assert_eq!(
            config(&["--history-cost", "--events", "1000"]).events,
            1_000
        );
        assert!(Args::try_parse_from(["bench", "--history-cost", "--cluster"]).is_err());
        let args = Args::try_parse_from(["bench", "--history-cost", "--traffic", "churn"])
            .expect("parses");
        assert!(Config::from_args(&args, TrafficKind::Churn).is_err());
    }

    #[test]
    fn games_copies_have_their_originals_rules() {
        let games = games_with_copies(BENCH_GAMES, 3).expect("copies");
        let file: toml::Table = games.parse().expect("valid TOML");
        let products = file["products"].as_table().expect("products");
        assert_eq!(products.len(), 3, "only exrps is named: {products:?}");
        assert_eq!(products["exrps-1"], products["exrps"]);
        assert_eq!(products["exrps-2"], products["exrps"]);
        assert_eq!(file["unknown_products"].as_str(), Some("default"));
        // Products named with TOML's quoted keys are copied too.
        let quoted = "[products.\"arena:2v2 {beta}\"]\nboards = []\n";
        let file: toml::Table = games_with_copies(quoted, 2)
            .expect("copies")
            .parse()
            .expect("valid TOML");
        assert!(file["products"].get("arena:2v2 {beta}-1").is_some());
        // The tracker takes the file, and gives each copy its original's rules.
        let parsed = stats_tracker::games::Games::parse(&games, "copies").expect("valid games");
        let rules = |product: &str| parsed.product(&ProductId::parse(product).expect("an id"));
        assert_eq!(parsed.listed().count(), 3);
        assert_eq!(rules("exrps-2"), rules("exrps"));
    }

    #[test]
    fn thousands_groups_digits() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1_000), "1,000");
        assert_eq!(thousands(1_234_567), "1,234,567");
    }

    #[test]
    fn sustained_rate_ignores_the_ends() {
        let samples: Vec<(Duration, u64)> = (0..=10)
            .map(|i| (Duration::from_secs(i + 5), i * 100))
            .collect();
        assert_eq!(sustained_rate(&samples, 1_000), Some(100.0));
        assert_eq!(sustained_rate(&samples[..2], 1_000), None);
    }

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let latencies = http::Latencies::new((1..=100).rev().map(Duration::from_millis).collect());
        assert_eq!(latencies.percentile(50.0), Duration::from_millis(50));
        assert_eq!(latencies.percentile(99.0), Duration::from_millis(99));
        assert_eq!(latencies.max(), Duration::from_millis(100));
        assert_eq!(http::Latencies::default().percentile(99.0), Duration::ZERO);
    }
}
