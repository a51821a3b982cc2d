//! `--cluster`: the same backlog of real traffic drained twice: first by one worker with store
//! and stream on one private redis-server (phase 1 of the usual run, with its checks), then by
//! a pool of `--workers` workers sharing `--partitions` stream partitions on a local Redis
//! Cluster of 3 masters and 3 replicas started with `scripts/redis-cluster`; then the two side
//! by side: events/s, Redis CPU per event on each master and over all of them (read from
//! `/proc/<pid>/stat` like the single Redis's), the replicas' apart, the workers' CPU per
//! event, and the ratio cluster ÷ single.
//!
//! `--products` spreads the traffic's products over copies (`exrps`, `exrps-1`, …), so that
//! their hash slots, and the work, fall on every master.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use redis::Value;
use redis::aio::MultiplexedConnection;
use stats_tracker::core::config::RedisEndpoint;
use stats_tracker::core::ids::ProductId;
use stats_tracker::core::keys::KeySpace;
use stats_tracker::core::store::{Connection, lazy_connection};

use crate::procs::{ProcStats, free_port, machine_busy};
use crate::redisd::{self, CommandStat, group_state};
use crate::simulate::Event;
use crate::traffic::{STREAM, Tally, Traffic, TrafficKind};
use crate::{
    Args, Backlog, Bench, Config, GROUP, PREFIX, PRELOAD_CHUNK, Tracker, check_every_player,
    check_totals, drain_line, games_file, mib, micros_per, per_second, print_check_count,
    print_checks, print_header, scrape, simulate, sustained_rate, thousands, tracker_binary,
};
use stats_tracker::core::partition::{partition_stream, stream_of};
use stats_tracker::leaderboards::scoring::WINS_BOARD;

/// How often the cluster drain reads the group's progress (as the single drain does).
const GROUP_POLL: Duration = Duration::from_millis(10);

/// The `--cluster` run; true if every check passed.
pub async fn run(args: &Args, traffic: TrafficKind, dir: &Path) -> Result<bool> {
    let config = Config::from_args(args, traffic)?;
    let binary = tracker_binary(args)?;
    let redis = crate::redisd::PrivateRedis::start(dir).await?;
    print_header(&config, &binary, &redis);
    let mut bench = Bench::new(config.clone(), binary.clone(), redis, dir).await?;

    bench.figures.ceiling = bench.yardstick("at the start").await?;
    println!();
    println!("# One redis-server");
    let single = bench.drain_backlog().await?;
    bench.wait_drained(Duration::from_secs(60)).await?;
    let tally = bench.traffic.tally.clone();
    let mut single_notes = Vec::new();
    let per_product = check_every_player(
        &mut bench.store,
        &bench.keys,
        &bench.players,
        &tally,
        &mut single_notes,
    )
    .await?;
    bench.checks.push(summarize(&per_product, &tally));
    let totals = check_totals(
        &mut bench.store,
        &bench.keys,
        &tally,
        &[bench.tracker.metrics_addr],
    )
    .await?;
    bench.checks.extend(totals);
    // Stopped before the cluster's drain, whose CPU it would share.
    bench.worker = None;

    println!();
    println!("# Redis Cluster");
    let cluster_dir = dir.join("cluster");
    std::fs::create_dir_all(&cluster_dir)
        .with_context(|| format!("creating {}", cluster_dir.display()))?;
    let (drain, mut checks, cluster_notes) = {
        let cluster = LocalCluster::start(&cluster_dir.join("nodes")).await?;
        let tracker = Tracker {
            binary,
            store_url: cluster.seeds.clone(),
            stream_url: cluster.seeds.clone(),
            server_addr: SocketAddr::from(([127, 0, 0, 1], free_port()?)),
            metrics_addr: SocketAddr::from(([127, 0, 0, 1], free_port()?)),
            batch_size: config.batch_size,
            games: Some(games_file(&config, &cluster_dir)?),
            dir: cluster_dir.clone(),
            cluster: true,
            partitions: args.partitions.max(1),
            history: true,
        };
        cluster_drain(&config, &cluster, &tracker, args.workers.max(1)).await?
    };
    bench.figures.ceiling_at_end = bench.yardstick("at the end").await?;

    print_comparison(&bench, &single, &drain);
    let mut all: Vec<(String, bool)> = bench
        .checks
        .drain(..)
        .map(|(what, ok)| (format!("one redis-server: {what}"), ok))
        .collect();
    all.extend(
        checks
            .drain(..)
            .map(|(what, ok)| (format!("cluster: {what}"), ok)),
    );
    let notes: Vec<String> = single_notes
        .into_iter()
        .map(|note| format!("one redis-server: {note}"))
        .chain(
            cluster_notes
                .into_iter()
                .map(|note| format!("cluster: {note}")),
        )
        .collect();
    print_checks(&all, &notes);
    Ok(print_check_count(&all))
}

/// The per-product checks of [`check_every_player`] as one: with copies of every product
/// they are hundreds of lines; failures are still named.
pub fn summarize(checks: &[(String, bool)], tally: &Tally) -> (String, bool) {
    let failed: Vec<&str> = checks
        .iter()
        .filter(|(_, ok)| !ok)
        .map(|(what, _)| what.as_str())
        .collect();
    let what = format!(
        "every product's `{WINS_BOARD}` board total and stat sums over its players match the traffic ({} figures of {} products){}",
        thousands(checks.len() as u64),
        tally.stats.len(),
        if failed.is_empty() {
            String::new()
        } else {
            format!(
                "; {} differ: {}{}",
                failed.len(),
                failed
                    .iter()
                    .take(5)
                    .copied()
                    .collect::<Vec<_>>()
                    .join("; "),
                if failed.len() > 5 { "; …" } else { "" }
            )
        }
    );
    (what, failed.is_empty() && !checks.is_empty())
}

/// A node of the local cluster.
#[derive(Debug, Clone)]
struct Node {
    port: u16,
    pid: u32,
    master: bool,
    /// A replica's master (`INFO replication`).
    replica_of: Option<u16>,
}

/// A range of hash slots and the port of the master serving it (`CLUSTER SLOTS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct SlotRange {
    start: u16,
    end: u16,
    master: u16,
}

/// A cluster of `scripts/redis-cluster` in `dir`, its nodes killed (by the pids in their
/// pidfiles) when dropped; their logs stay in `dir` for a failed run's post-mortem.
struct LocalCluster {
    dir: PathBuf,
    /// The seed URLs, comma-separated (the tracker's URL settings with `cluster = true`).
    seeds: String,
    nodes: Vec<Node>,
    slots: Vec<SlotRange>,
}

impl LocalCluster {
    /// Starts 3 masters and 3 replicas on six free loopback ports (and their bus ports).
    async fn start(dir: &Path) -> Result<Self> {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/redis-cluster");
        let mut cluster = Self {
            dir: dir.to_owned(),
            seeds: String::new(),
            nodes: Vec::new(),
            slots: Vec::new(),
        };
        eprintln!("starting a Redis Cluster (scripts/redis-cluster) …");
        let mut failures = Vec::new();
        for attempt in 0..3u64 {
            let first_port = free_port_run(attempt)?;
            let output = tokio::process::Command::new(&script)
                .arg("start")
                .arg(dir)
                .arg(first_port.to_string())
                .kill_on_drop(true)
                .output()
                .await
                .with_context(|| format!("cannot run {}", script.display()))?;
            if output.status.success() {
                cluster.seeds = String::from_utf8_lossy(&output.stdout).trim().to_owned();
                break;
            }
            failures.push(format!(
                "port {first_port}: {}",
                String::from_utf8_lossy(&output.stderr).trim()
            ));
        }
        if cluster.seeds.is_empty() {
            bail!(
                "scripts/redis-cluster could not start a cluster: {}",
                failures.join("; ")
            );
        }
        for port in seed_ports(&cluster.seeds)? {
            let mut conn = node_connection(port).await?;
            let server: String = redis::cmd("INFO")
                .arg("server")
                .query_async(&mut conn)
                .await
                .context("INFO server")?;
            let replication: String = redis::cmd("INFO")
                .arg("replication")
                .query_async(&mut conn)
                .await
                .context("INFO replication")?;
            let pid = redisd::info_field(&server, "process_id")
                .and_then(|pid| pid.parse().ok())
                .with_context(|| format!("no process_id in INFO server of port {port}"))?;
            cluster.nodes.push(Node {
                port,
                pid,
                master: redisd::info_field(&replication, "role") == Some("master"),
                replica_of: redisd::info_field(&replication, "master_port")
                    .and_then(|port| port.parse().ok()),
            });
        }
        let first = cluster
            .nodes
            .first()
            .context("a cluster without nodes")?
            .port;
        let rows: Vec<Value> = redis::cmd("CLUSTER")
            .arg("SLOTS")
            .query_async(&mut node_connection(first).await?)
            .await
            .context("CLUSTER SLOTS")?;
        cluster.slots = slot_ranges(&rows);
        let masters = cluster.masters().count();
        if masters != 3 || cluster.nodes.len() != 6 {
            bail!(
                "expected 3 masters and 3 replicas, found {masters} masters among {} nodes",
                cluster.nodes.len()
            );
        }
        Ok(cluster)
    }

    fn masters(&self) -> impl Iterator<Item = &Node> {
        self.nodes.iter().filter(|node| node.master)
    }

    fn replicas(&self) -> impl Iterator<Item = &Node> {
        self.nodes.iter().filter(|node| !node.master)
    }

    /// The port of the master serving `slot`.
    fn master_of(&self, slot: u16) -> Option<u16> {
        master_of(&self.slots, slot)
    }

    /// The slot ranges `master` serves, as `0-5460`.
    fn slots_of(&self, master: u16) -> String {
        let ranges: Vec<String> = self
            .slots
            .iter()
            .filter(|range| range.master == master)
            .map(|range| format!("{}-{}", range.start, range.end))
            .collect();
        ranges.join(",")
    }

    /// A cluster connection (the tracker's own client: slot routing, redirections).
    fn connection(&self) -> Result<Connection> {
        let endpoint = RedisEndpoint {
            url: self.seeds.clone(),
            cluster: true,
            ..RedisEndpoint::default()
        };
        lazy_connection(&endpoint, Duration::from_secs(60)).context("cluster connection")
    }

    /// CPU time of every node so far, by port; an error names a node that is gone.
    fn cpu(&self) -> Result<BTreeMap<u16, Duration>> {
        self.nodes
            .iter()
            .map(|node| {
                let stats = ProcStats::of_pid(node.pid).with_context(|| {
                    format!(
                        "cluster node on port {} (pid {}) is gone; see {}",
                        node.port,
                        node.pid,
                        self.dir.display()
                    )
                })?;
                Ok((node.port, stats.cpu))
            })
            .collect()
    }

    /// `CLUSTER KEYSLOT key`, asked of a node.
    async fn slot_of(&self, conn: &mut MultiplexedConnection, key: &str) -> Result<u16> {
        redis::cmd("CLUSTER")
            .arg("KEYSLOT")
            .arg(key)
            .query_async(conn)
            .await
            .context("CLUSTER KEYSLOT")
    }
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        // As `scripts/redis-cluster stop` does, but leaving the directory and its logs.
        for i in 0..6 {
            let pidfile = self.dir.join(format!("node-{i}/redis.pid"));
            if let Ok(pid) = std::fs::read_to_string(&pidfile) {
                let _ = Command::new("kill").arg("-9").arg(pid.trim()).status();
            }
        }
    }
}

async fn node_connection(port: u16) -> Result<MultiplexedConnection> {
    redisd::connect(&format!("redis://127.0.0.1:{port}")).await
}

/// The ports of `redis://host:port` seed URLs, comma-separated (what `scripts/redis-cluster
/// start` prints).
fn seed_ports(seeds: &str) -> Result<Vec<u16>> {
    seeds
        .split(',')
        .map(str::trim)
        .filter(|url| !url.is_empty())
        .map(|url| {
            let port = url
                .rsplit_once(':')
                .map(|(_, port)| port.trim_end_matches('/'))
                .and_then(|port| port.parse().ok());
            port.with_context(|| format!("no port in the seed URL {url:?}"))
        })
        .collect()
}

/// The slot ranges of a `CLUSTER SLOTS` reply: each row is `start, end, [master host, port,
/// id, …], [replica …]…`; rows that do not read so are left out.
fn slot_ranges(rows: &[Value]) -> Vec<SlotRange> {
    let int = |value: Option<&Value>| match value {
        Some(Value::Int(n)) => u16::try_from(*n).ok(),
        _ => None,
    };
    let mut ranges: Vec<SlotRange> = rows
        .iter()
        .filter_map(|row| {
            let Value::Array(row) = row else {
                return None;
            };
            let Some(Value::Array(master)) = row.get(2) else {
                return None;
            };
            Some(SlotRange {
                start: int(row.first())?,
                end: int(row.get(1))?,
                master: int(master.get(1))?,
            })
        })
        .collect();
    ranges.sort_by_key(|range| range.start);
    ranges
}

/// The master serving `slot`.
fn master_of(ranges: &[SlotRange], slot: u16) -> Option<u16> {
    ranges
        .iter()
        .find(|range| (range.start..=range.end).contains(&slot))
        .map(|range| range.master)
}

/// The first of six consecutive loopback ports in 20000–29999 that are free now, their
/// cluster bus ports (+10000) too.
fn free_port_run(attempt: u64) -> Result<u16> {
    let seed = u64::from(std::process::id()) * 7_919
        + attempt * 104_729
        + std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::from(d.subsec_nanos()));
    for offset in 0..1_000u64 {
        let first = 20_000 + ((seed + offset * 6) % 9_990) as u16;
        let free = (0..6).all(|i| {
            [first + i, first + i + 10_000].iter().all(|port| {
                std::net::TcpListener::bind((std::net::Ipv4Addr::LOCALHOST, *port)).is_ok()
            })
        });
        if free {
            return Ok(first);
        }
    }
    bail!("no six free ports (and their bus ports) in 20000-29999")
}

/// What the cluster's drain measured.
struct ClusterDrain {
    events: u64,
    drain: Duration,
    sustained: f64,
    worker_cpu: Duration,
    worker_peak_rss_kib: u64,
    /// Each node's CPU over the drain.
    masters: Vec<(Node, Duration)>,
    replicas: Vec<(Node, Duration)>,
    /// Port → `INFO commandstats` over the drain.
    commands: BTreeMap<u16, Vec<CommandStat>>,
    /// Port → share of the backlog's events whose product it serves.
    event_shares: BTreeMap<u16, f64>,
}

impl ClusterDrain {
    fn masters_cpu(&self) -> Duration {
        self.masters.iter().map(|(_, cpu)| *cpu).sum()
    }

    fn replicas_cpu(&self) -> Duration {
        self.replicas.iter().map(|(_, cpu)| *cpu).sum()
    }
}

/// Pre-loads the backlog (the same events as the single Redis's) onto `cluster`'s partition
/// streams, drains it with a pool of `workers`, measures and checks it. Returns the figures, the checks and the notes.
async fn cluster_drain(
    config: &Config,
    cluster: &LocalCluster,
    tracker: &Tracker,
    workers: u32,
) -> Result<(ClusterDrain, Vec<(String, bool)>, Vec<String>)> {
    let partitions = tracker.partitions;
    let streams: Vec<String> = (0..partitions)
        .map(|index| partition_stream(STREAM, partitions, index))
        .collect();
    let events = config.events;
    let keys = KeySpace::new(PREFIX)?;
    let mut conn = cluster.connection()?;
    let mut any_node = node_connection(cluster.nodes[0].port).await?;

    println!();
    println!(
        "## 2. The same backlog on a Redis Cluster (3 masters, 3 replicas on loopback, nothing saved; {workers} worker(s) sharing {partitions} stream partition(s))"
    );
    // Where each partition stream lives.
    let mut stream_masters: BTreeMap<u16, Vec<u32>> = BTreeMap::new();
    for (index, stream) in streams.iter().enumerate() {
        let slot = cluster.slot_of(&mut any_node, stream).await?;
        if let Some(master) = cluster.master_of(slot) {
            stream_masters.entry(master).or_default().push(index as u32);
        }
    }
    let mut traffic = Traffic::new(&config.traffic_spec());
    eprintln!(
        "pre-loading {} events into the cluster …",
        thousands(events)
    );
    let started = Instant::now();
    let mut left = events;
    while left > 0 {
        let chunk = left.min(PRELOAD_CHUNK);
        xadd_partitioned(&mut conn, &traffic.take(chunk as usize), partitions).await?;
        left -= chunk;
    }
    let preload = started.elapsed();
    println!(
        "pre-loaded the same {} events into {} in {:.2} s",
        thousands(events),
        if partitions == 1 {
            format!("`{STREAM}`")
        } else {
            format!("`{STREAM}:0` … `{STREAM}:{}` by product", partitions - 1)
        },
        preload.as_secs_f64(),
    );

    // Where each product's keys live, and how much of the backlog that is.
    let tally = traffic.tally.clone();
    let mut by_master: BTreeMap<u16, (Vec<String>, u64)> = BTreeMap::new();
    for (product, count) in &tally.events_by_product {
        let key = keys.product(&ProductId::parse(product)?).applied();
        let slot = cluster.slot_of(&mut any_node, &key).await?;
        let master = cluster.master_of(slot).context("a slot no master serves")?;
        let entry = by_master.entry(master).or_default();
        entry.0.push(product.clone());
        entry.1 += count;
    }
    let named: u64 = tally.events_by_product.values().sum();
    let event_shares: BTreeMap<u16, f64> = by_master
        .iter()
        .map(|(port, (_, count))| (*port, *count as f64 / named.max(1) as f64))
        .collect();
    for master in cluster.masters() {
        let (products, count) = by_master.get(&master.port).cloned().unwrap_or_default();
        let shown: Vec<String> = products.iter().take(6).map(|p| format!("{p:?}")).collect();
        println!(
            "master 127.0.0.1:{} (pid {}), slots {}: {} products, {:.1}% of the events{}{}",
            master.port,
            master.pid,
            cluster.slots_of(master.port),
            products.len(),
            100.0 * count as f64 / named.max(1) as f64,
            if products.is_empty() {
                String::new()
            } else {
                format!(
                    " ({}{})",
                    shown.join(", "),
                    if products.len() > shown.len() {
                        ", …"
                    } else {
                        ""
                    }
                )
            },
            match stream_masters.get(&master.port) {
                Some(held) => format!(
                    "; stream partition(s) {}",
                    held.iter()
                        .map(u32::to_string)
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                None => String::new(),
            },
        );
    }
    let replicas: Vec<String> = cluster
        .replicas()
        .map(|node| {
            format!(
                "127.0.0.1:{} (pid {}, of {})",
                node.port,
                node.pid,
                node.replica_of
                    .map_or("?".to_owned(), |port| format!(":{port}"))
            )
        })
        .collect();
    println!("replicas: {}", replicas.join(", "));

    let mut master_conns = Vec::new();
    for master in cluster.masters() {
        let mut conn = node_connection(master.port).await?;
        redisd::reset_stats(&mut conn).await?;
        master_conns.push((master.port, conn));
    }
    let before = cluster.cpu()?;
    let (bench_before, machine_before) = (ProcStats::current()?.cpu, machine_busy()?);
    eprintln!("starting {workers} worker(s) on the cluster and timing the drain …");
    let started = Instant::now();
    let mut metrics_addrs = Vec::new();
    let mut pool = Vec::new();
    for index in 0..workers {
        let addr = SocketAddr::from(([127, 0, 0, 1], free_port()?));
        pool.push(tracker.spawn_worker(index, addr)?);
        metrics_addrs.push(addr);
    }
    let deadline = started + Duration::from_secs(60) + Duration::from_millis(events);
    let mut samples: Vec<(Duration, u64)> = Vec::new();
    let mut reported = Instant::now();
    loop {
        for worker in &mut pool {
            worker.ensure_running()?;
        }
        cluster.cpu()?;
        let (done, drained) = pool_progress(&mut conn, &streams, events).await?;
        samples.push((started.elapsed(), done));
        if drained {
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
        if Instant::now() > deadline {
            bail!(
                "the worker did not drain {events} events from the cluster within {:?} (last state {:?}); its log: {}",
                deadline - started,
                pool_progress(&mut conn, &streams, events).await?,
                tracker.dir.join("worker-0.log").display()
            );
        }
        tokio::time::sleep(GROUP_POLL).await;
    }
    let drain = started.elapsed();
    let mut worker_cpu = Duration::ZERO;
    let mut worker_peak_rss_kib = 0;
    for worker in &pool {
        let stats = worker.stats()?;
        worker_cpu += stats.cpu;
        worker_peak_rss_kib = worker_peak_rss_kib.max(stats.peak_rss_kib);
    }
    let after = cluster.cpu()?;
    let (bench_cpu, machine_cpu) = (
        ProcStats::current()?.cpu.saturating_sub(bench_before),
        machine_busy()?.saturating_sub(machine_before),
    );
    let mut commands = BTreeMap::new();
    for (port, conn) in &mut master_conns {
        commands.insert(*port, redisd::command_stats(conn).await?);
    }
    let used = |node: &Node| after[&node.port].saturating_sub(before[&node.port]);
    let result = ClusterDrain {
        events,
        drain,
        sustained: sustained_rate(&samples, events).unwrap_or(per_second(events, drain)),
        worker_cpu,
        worker_peak_rss_kib,
        masters: cluster
            .masters()
            .map(|node| (node.clone(), used(node)))
            .collect(),
        replicas: cluster
            .replicas()
            .map(|node| (node.clone(), used(node)))
            .collect(),
        commands,
        event_shares,
    };
    print_cluster_drain(&result, bench_cpu, machine_cpu);

    let mut counted = 0;
    let mut rederivations = 0.0;
    for addr in &metrics_addrs {
        let metrics = scrape(*addr).await?;
        counted += metrics
            .get("stats_tracker_worker_events_total")
            .copied()
            .unwrap_or(0.0) as u64;
        rederivations += metrics
            .get("stats_tracker_worker_rederivations_total")
            .copied()
            .unwrap_or(0.0);
    }
    // Failover safety is re-derivation from the stream, not WAIT: what it costs per batch is
    // the acknowledged positions recorded in the XACK's transaction (in the figures above).
    println!(
        "durability on failover: no WAIT; each acknowledgement records the positions its commit \
         left (part of the XACK transaction, in the figures above); re-derivations during the \
         drain: {rederivations}"
    );
    let mut checks = vec![(
        format!(
            "worker counted every backlog event (stats_tracker_worker_events_total = {counted}, expected {events})"
        ),
        counted == events,
    )];
    let players = simulate::players(config.players);
    let mut notes = Vec::new();
    let per_product = check_every_player(&mut conn, &keys, &players, &tally, &mut notes).await?;
    checks.push(summarize(&per_product, &tally));
    checks.extend(check_totals(&mut conn, &keys, &tally, &metrics_addrs).await?);
    drop(pool);
    Ok((result, checks, notes))
}

fn print_cluster_drain(drain: &ClusterDrain, bench_cpu: Duration, machine_cpu: Duration) {
    let events = drain.events;
    let seconds = drain.drain.as_secs_f64();
    println!(
        "drained {} events in {:.2} s (worker start → group lag 0 and pending 0): {} events/s overall, {} events/s sustained (10% → 90% of the backlog)",
        thousands(events),
        seconds,
        thousands(per_second(events, drain.drain) as u64),
        thousands(drain.sustained as u64),
    );
    println!(
        "worker CPU: {:.2} s user+system = {:.1} µs per event ({:.0}% of one core over the drain); peak RSS {}",
        drain.worker_cpu.as_secs_f64(),
        micros_per(drain.worker_cpu, events),
        100.0 * drain.worker_cpu.as_secs_f64() / seconds,
        mib(drain.worker_peak_rss_kib),
    );
    let total = drain.masters_cpu();
    println!(
        "redis CPU, masters: {:.2} s = {:.1} µs per event ({:.0}% of one core over the drain)",
        total.as_secs_f64(),
        micros_per(total, events),
        100.0 * total.as_secs_f64() / seconds,
    );
    for (node, cpu) in &drain.masters {
        let commands = drain
            .commands
            .get(&node.port)
            .map_or(&[][..], Vec::as_slice);
        let totals = CommandTotals::of(commands);
        // `INFO commandstats` is sorted by time: the first few say where it goes.
        let top: Vec<String> = commands
            .iter()
            .take(4)
            .map(|c| format!("{} {:.2}", c.name, c.usec as f64 / events as f64))
            .collect();
        println!(
            "  master 127.0.0.1:{} (pid {}): {:.2} s = {:.1} µs per event, {:.1}% of the masters' CPU (its products: {:.1}% of the events), busy {:.0}%; {:.3} script calls and {:.2} µs in commands per event (most: {} µs)",
            node.port,
            node.pid,
            cpu.as_secs_f64(),
            micros_per(*cpu, events),
            100.0 * cpu.as_secs_f64() / total.as_secs_f64().max(1e-9),
            100.0 * drain.event_shares.get(&node.port).copied().unwrap_or(0.0),
            100.0 * cpu.as_secs_f64() / seconds,
            totals.script_calls as f64 / events as f64,
            totals.own_usec as f64 / events as f64,
            top.join(", "),
        );
    }
    let replicas = drain.replicas_cpu();
    println!(
        "redis CPU, replicas (applying what their masters send): {:.2} s = {:.1} µs per event; {}",
        replicas.as_secs_f64(),
        micros_per(replicas, events),
        drain
            .replicas
            .iter()
            .map(|(node, cpu)| format!(
                "127.0.0.1:{} (of :{}) {:.1} µs",
                node.port,
                node.replica_of.unwrap_or(0),
                micros_per(*cpu, events)
            ))
            .collect::<Vec<_>>()
            .join(", "),
    );
    let pct = |cpu: Duration| 100.0 * cpu.as_secs_f64() / seconds;
    let ours = drain.worker_cpu + total + replicas + bench_cpu;
    println!(
        "CPU over the drain (% of one core): worker {:.0}%, masters {:.0}%, replicas {:.0}%, bench (load generator) {:.0}%, other processes {:.0}%",
        pct(drain.worker_cpu),
        pct(total),
        pct(replicas),
        pct(bench_cpu),
        pct(machine_cpu.saturating_sub(ours)),
    );
}

/// What `INFO commandstats` says about a drain, summed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct CommandTotals {
    /// `EVALSHA`/`EVAL` calls.
    script_calls: u64,
    /// Time in commands other than the wrappers (scripts, `EXEC`), which count again inside.
    own_usec: u64,
}

impl CommandTotals {
    fn of(commands: &[CommandStat]) -> Self {
        let script = |name: &str| matches!(name, "evalsha" | "eval");
        Self {
            script_calls: commands
                .iter()
                .filter(|c| script(&c.name))
                .map(|c| c.calls)
                .sum(),
            own_usec: commands
                .iter()
                .filter(|c| !script(&c.name) && c.name != "exec")
                .map(|c| c.usec)
                .sum(),
        }
    }
}

/// The two drains side by side.
fn print_comparison(bench: &Bench, single: &Backlog, cluster: &ClusterDrain) {
    let events = single.events;
    println!();
    println!(
        "## One redis-server (one worker) against the cluster (a pool; the same {} events)",
        thousands(events)
    );
    let ceiling = bench.figures.ceiling;
    let ratio = |cluster: f64, single: f64| {
        if single > 0.0 {
            format!("{:.2}", cluster / single)
        } else {
            "—".to_owned()
        }
    };
    let row = |what: &str, single: String, cluster: String, ratio: String| {
        println!("{what:<52} {single:>14} {cluster:>16} {ratio:>17}");
    };
    row(
        "",
        "one server".to_owned(),
        "cluster".to_owned(),
        "cluster ÷ one".to_owned(),
    );
    row(
        "events/s (sustained, 10% → 90% of the backlog)",
        thousands(single.rate as u64),
        thousands(cluster.sustained as u64),
        ratio(cluster.sustained, single.rate),
    );
    if let Some(ceiling) = ceiling {
        row(
            "— ÷ ceiling (the start's)",
            format!("{:.3}", single.rate / ceiling),
            format!("{:.3}", cluster.sustained / ceiling),
            String::new(),
        );
    }
    let single_redis = micros_per(single.redis_cpu, events);
    let masters = micros_per(cluster.masters_cpu(), events);
    row(
        "Redis CPU µs per event (cluster: sum over masters)",
        format!("{single_redis:.1}"),
        format!("{masters:.1}"),
        ratio(masters, single_redis),
    );
    let total = cluster.masters_cpu().as_secs_f64().max(1e-9);
    for (node, cpu) in &cluster.masters {
        row(
            &format!("— master 127.0.0.1:{} (share of the masters')", node.port),
            String::new(),
            format!(
                "{:.1} ({:.0}%)",
                micros_per(*cpu, events),
                100.0 * cpu.as_secs_f64() / total
            ),
            String::new(),
        );
    }
    row(
        "— replicas, sum (not in the ratio)",
        "none".to_owned(),
        format!("{:.1}", micros_per(cluster.replicas_cpu(), events)),
        String::new(),
    );
    let (single_worker, cluster_worker) = (
        micros_per(single.worker_cpu, events),
        micros_per(cluster.worker_cpu, events),
    );
    row(
        "worker CPU µs per event (cluster: the pool summed)",
        format!("{single_worker:.1}"),
        format!("{cluster_worker:.1}"),
        ratio(cluster_worker, single_worker),
    );
    let single_commands = CommandTotals::of(&single.commands);
    let cluster_commands = cluster
        .commands
        .values()
        .map(|commands| CommandTotals::of(commands))
        .fold(CommandTotals::default(), |sum, one| CommandTotals {
            script_calls: sum.script_calls + one.script_calls,
            own_usec: sum.own_usec + one.own_usec,
        });
    let per_event = |count: u64| count as f64 / events as f64;
    row(
        "script calls per event (EVALSHA)",
        format!("{:.3}", per_event(single_commands.script_calls)),
        format!("{:.3}", per_event(cluster_commands.script_calls)),
        ratio(
            per_event(cluster_commands.script_calls),
            per_event(single_commands.script_calls),
        ),
    );
    row(
        "Redis time in commands µs per event (commandstats)",
        format!("{:.2}", per_event(single_commands.own_usec)),
        format!("{:.2}", per_event(cluster_commands.own_usec)),
        ratio(
            per_event(cluster_commands.own_usec),
            per_event(single_commands.own_usec),
        ),
    );
    row(
        "worker peak RSS (cluster: the largest)",
        mib(single.worker_peak_rss_kib),
        mib(cluster.worker_peak_rss_kib),
        String::new(),
    );
    println!(
        "{}",
        drain_line(
            "drain, one server",
            single.rate,
            ceiling,
            single_redis,
            single_worker
        )
    );
    println!(
        "{}",
        drain_line(
            "drain, cluster (Redis: sum over masters)",
            cluster.sustained,
            ceiling,
            masters,
            cluster_worker
        )
    );
}

/// Entries acknowledged over every partition's group, and whether all of them are drained.
async fn pool_progress(
    conn: &mut Connection,
    streams: &[String],
    events: u64,
) -> Result<(u64, bool)> {
    let mut left = 0;
    let mut drained = true;
    for stream in streams {
        match group_state(conn, stream, GROUP).await? {
            Some(state) => {
                left += events - state.done(events);
                drained &= state.drained();
            }
            None => {
                let length: u64 = redis::cmd("XLEN").arg(stream).query_async(conn).await?;
                left += length;
                drained &= length == 0;
            }
        }
    }
    Ok((events.saturating_sub(left), drained))
}

/// Appends `events` to their products' partitions, in order per partition (one pipeline per
/// hash slot).
async fn xadd_partitioned(conn: &mut Connection, events: &[Event], partitions: u32) -> Result<()> {
    let xadds: Vec<redis::Cmd> = events
        .iter()
        .map(|event| {
            let product = event
                .iter()
                .find(|(name, _)| name == "product_id")
                .map_or("", |(_, product)| product.as_str());
            let mut xadd = redis::cmd("XADD");
            xadd.arg(stream_of(STREAM, partitions, product)).arg("*");
            for (name, value) in event {
                xadd.arg(name).arg(value);
            }
            xadd
        })
        .collect();
    let _: Vec<redis::Value> = conn.query_all(&xadds).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_ports_reads_the_scripts_output() {
        assert_eq!(
            seed_ports("redis://127.0.0.1:30001,redis://127.0.0.1:30002\n").expect("ports"),
            [30001, 30002]
        );
        assert_eq!(
            seed_ports(" redis://127.0.0.1:20005/ ").expect("ports"),
            [20005]
        );
        assert!(seed_ports("redis://127.0.0.1").is_err());
    }

    #[test]
    fn slot_ranges_read_cluster_slots() {
        let node = |port: i64, id: &str| {
            Value::Array(vec![
                Value::BulkString(b"127.0.0.1".to_vec()),
                Value::Int(port),
                Value::BulkString(id.as_bytes().to_vec()),
            ])
        };
        let rows = vec![
            Value::Array(vec![
                Value::Int(10923),
                Value::Int(16383),
                node(30003, "c"),
                node(30004, "d"),
            ]),
            Value::Array(vec![
                Value::Int(0),
                Value::Int(5460),
                node(30001, "a"),
                node(30005, "e"),
            ]),
            Value::Array(vec![Value::Int(5461), Value::Int(10922), node(30002, "b")]),
            Value::Int(7),
        ];
        let ranges = slot_ranges(&rows);
        assert_eq!(
            ranges,
            [
                SlotRange {
                    start: 0,
                    end: 5460,
                    master: 30001
                },
                SlotRange {
                    start: 5461,
                    end: 10922,
                    master: 30002
                },
                SlotRange {
                    start: 10923,
                    end: 16383,
                    master: 30003
                },
            ]
        );
        assert_eq!(master_of(&ranges, 0), Some(30001));
        assert_eq!(master_of(&ranges, 5461), Some(30002));
        assert_eq!(master_of(&ranges, 16383), Some(30003));
        assert_eq!(master_of(&ranges[..1], 9000), None);
    }

    #[test]
    fn command_totals_count_scripts_once() {
        let stat = |name: &str, calls, usec| CommandStat {
            name: name.to_owned(),
            calls,
            usec,
        };
        let totals = CommandTotals::of(&[
            stat("evalsha", 10, 500),
            stat("hincrby", 100, 200),
            stat("exec", 5, 50),
            stat("xreadgroup", 5, 40),
        ]);
        assert_eq!(
            totals,
            CommandTotals {
                script_calls: 10,
                own_usec: 240
            }
        );
    }
}
