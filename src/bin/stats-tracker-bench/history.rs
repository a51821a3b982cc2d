//! What the tracker's history costs and how fast a rebuild replays it (README, *History,
//! rebuild and voids*):
//!
//! - after a drain, Redis bytes per history entry: `MEMORY USAGE` of every product's
//!   `P:{<product>}:events` list over the entries its `…:events:kept` counts;
//! - then (real traffic) `stats-tracker rebuild --product <the product with the most
//!   history>` as a child with the worker's settings, timed from its start to its exit, its
//!   CPU from `wait4`, Redis's from `/proc`, and where its time went (start-up, replay, switch)
//!   from its shadow's position, read every few milliseconds;
//! - `--history-cost`: the same backlog drained with `history.enabled` off and on, each on a
//!   fresh private Redis, in the order off, on, on, off, and the two settings side by side.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use redis::aio::MultiplexedConnection;
use stats_tracker::core::ids::ProductId;
use stats_tracker::core::keys::KeySpace;

use crate::procs::Measured;
use crate::redisd::{CommandStat, PrivateRedis, info_field};
use crate::traffic::{STREAM, TrafficKind};
use crate::{
    Args, Backlog, Bench, Config, PREFIX, check_every_player, check_totals, drain_line,
    memory_usage, mib, micros_per, per_second, print_check_count, print_checks, print_header,
    query, thousands, tracker_binary,
};

/// How often a running rebuild's shadow position is read.
const REBUILD_POLL: Duration = Duration::from_millis(5);
/// `--history-cost`: the backlog each of the four drains gets.
pub const HISTORY_COST_EVENTS: u64 = 500_000;
/// `--history-cost`: `history.enabled` of each drain, in order (off, on, on, off: a machine
/// drifting faster or slower through the run weighs on both settings alike).
const HISTORY_COST_ORDER: [bool; 4] = [false, true, true, false];

/// One product's history in Redis.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProductHistory {
    pub product: String,
    /// `MEMORY USAGE` of its `events` list.
    pub bytes: u64,
    /// `events:kept`: the entries in the list.
    pub kept: u64,
    /// Chunks in the list (`LLEN`).
    pub chunks: u64,
}

/// Every product's history in the store, the most entries first.
#[derive(Debug, Clone, Default)]
pub struct HistoryMemory {
    pub products: Vec<ProductHistory>,
}

impl HistoryMemory {
    pub fn bytes(&self) -> u64 {
        self.products.iter().map(|p| p.bytes).sum()
    }

    pub fn kept(&self) -> u64 {
        self.products.iter().map(|p| p.kept).sum()
    }

    pub fn chunks(&self) -> u64 {
        self.products.iter().map(|p| p.chunks).sum()
    }

    /// Redis bytes per entry kept; `None` when nothing is kept.
    pub fn bytes_per_entry(&self) -> Option<f64> {
        let kept = self.kept();
        (kept > 0).then(|| self.bytes() as f64 / kept as f64)
    }

    /// The product with the most entries kept.
    pub fn largest(&self) -> Option<&ProductHistory> {
        self.products.first()
    }
}

/// The product whose history list `key` is (`<prefix>:{<product>}:events`), or `None` for any
/// other key the pattern `*:events` matches: a copy's (`…:~rebuild:events`), a player's stats
/// hash of a player called `events`.
pub fn product_of_events_key(keys: &KeySpace, key: &str) -> Option<String> {
    let tag = key
        .strip_prefix(PREFIX)?
        .strip_prefix(":{")?
        .strip_suffix("}:events")?;
    let product = percent_encoding::percent_decode_str(tag)
        .decode_utf8()
        .ok()?
        .into_owned();
    let id = ProductId::parse(&product).ok()?;
    (keys.product(&id).events() == key).then_some(product)
}

/// SCANs the store for every product's history list and measures each.
pub async fn history_memory(
    store: &mut MultiplexedConnection,
    keys: &KeySpace,
) -> Result<HistoryMemory> {
    let mut found = Vec::new();
    let mut cursor: u64 = 0;
    loop {
        let (next, batch): (u64, Vec<String>) = query(
            redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(format!("{PREFIX}:*:events"))
                .arg("COUNT")
                .arg(1_000),
            store,
        )
        .await?;
        found.extend(
            batch
                .into_iter()
                .filter_map(|key| product_of_events_key(keys, &key).map(|product| (key, product))),
        );
        if next == 0 {
            break;
        }
        cursor = next;
    }
    found.sort();
    found.dedup();
    let mut products = Vec::new();
    for (key, product) in found {
        let id = ProductId::parse(&product)?;
        let mut pipe = redis::pipe();
        pipe.add_command(memory_usage(&key))
            .cmd("GET")
            .arg(keys.product(&id).events_kept())
            .cmd("LLEN")
            .arg(&key);
        let (bytes, kept, chunks): (Option<u64>, Option<u64>, u64) = pipe
            .query_async(store)
            .await
            .with_context(|| format!("measuring the history list {key}"))?;
        products.push(ProductHistory {
            product,
            bytes: bytes.unwrap_or(0),
            kept: kept.unwrap_or(0),
            chunks,
        });
    }
    products.sort_by(|a, b| b.kept.cmp(&a.kept).then_with(|| a.product.cmp(&b.product)));
    Ok(HistoryMemory { products })
}

/// Prints the history's size, product by product (the first few) and in all.
fn print_history(history: &HistoryMemory, stream_bytes_per_entry: Option<f64>) {
    const SHOWN: usize = 4;
    for product in history.products.iter().take(SHOWN) {
        println!(
            "{:?}: {} entries in {} chunks, {} bytes = {:.1} bytes per entry ({:.0} entries per chunk)",
            product.product,
            thousands(product.kept),
            thousands(product.chunks),
            thousands(product.bytes),
            product.bytes as f64 / product.kept.max(1) as f64,
            product.kept as f64 / product.chunks.max(1) as f64,
        );
    }
    if history.products.len() > SHOWN {
        println!(
            "… and {} more products",
            thousands((history.products.len() - SHOWN) as u64)
        );
    }
    println!(
        "history: {} entries in {} chunks over {} product{}, {} in Redis (MEMORY USAGE of every `…:events` list) = {} bytes per entry{}",
        thousands(history.kept()),
        thousands(history.chunks()),
        history.products.len(),
        if history.products.len() == 1 { "" } else { "s" },
        mib(history.bytes() / 1024),
        history
            .bytes_per_entry()
            .map_or("—".to_owned(), |bytes| format!("{bytes:.1}")),
        stream_bytes_per_entry.map_or(String::new(), |stream| format!(
            " (the event stream holds them at {stream:.0} bytes per entry)"
        )),
    );
}

/// What a rebuild measured.
#[derive(Debug, Clone)]
pub struct RebuildFigures {
    pub product: String,
    pub entries: u64,
    pub switched: bool,
    /// Process start → exit.
    pub wall: Duration,
    /// Process start → the first replayed batch seen in the shadow.
    pub first_write: Option<Duration>,
    /// Process start → the last change of the shadow's position seen (the replay's end).
    pub last_write: Option<Duration>,
    pub cpu: Duration,
    pub peak_rss_kib: u64,
    pub redis_cpu: Duration,
}

impl RebuildFigures {
    /// Entries replayed per second, process start to exit.
    pub fn rate(&self) -> f64 {
        per_second(self.entries, self.wall)
    }
}

/// The `rebuild` phase's report line: its rate, the rate as a share of the ceiling, and the CPU
/// Redis and the rebuild spent per entry (the drain's line, for entries replayed).
fn rebuild_line(rebuild: &RebuildFigures, ceiling: Option<f64>) -> String {
    let ratio = ceiling.map_or("no ceiling".to_owned(), |c| {
        format!("{:.3}", rebuild.rate() / c)
    });
    format!(
        "rebuild: {} entries/s, ÷ ceiling = {ratio}, Redis CPU {:.1} µs/entry, rebuild CPU {:.1} µs/entry",
        thousands(rebuild.rate() as u64),
        micros_per(rebuild.redis_cpu, rebuild.entries),
        micros_per(rebuild.cpu, rebuild.entries),
    )
}

impl Bench {
    /// Phase 1b, right after the drain: the history's bytes per entry; for real traffic, a
    /// rebuild of the product with the most history, timed against the drain.
    pub async fn history_and_rebuild(&mut self, backlog: &Backlog) -> Result<()> {
        println!();
        println!("## 1b. History: Redis bytes per entry, and a rebuild of the busiest product");
        let history = history_memory(&mut self.store, &self.keys).await?;
        let stream_len: u64 = query(redis::cmd("XLEN").arg(STREAM), &mut self.stream).await?;
        let stream_bytes: Option<u64> = query(&memory_usage(STREAM), &mut self.stream).await?;
        let stream_per_entry = stream_bytes.map(|bytes| bytes as f64 / stream_len.max(1) as f64);
        print_history(&history, stream_per_entry);
        let applied = self.traffic.tally.events - self.traffic.tally.dead_letters;
        self.checks.push((
            format!(
                "history keeps every applied backlog entry once: {} entries kept, {} backlog events less {} dead letters = {}",
                history.kept(),
                backlog.events,
                self.traffic.tally.dead_letters,
                applied,
            ),
            history.kept() == applied,
        ));
        self.checks.push((
            format!(
                "history bytes per entry > 0 ({})",
                history
                    .bytes_per_entry()
                    .map_or("no history".to_owned(), |bytes| format!("{bytes:.1}"))
            ),
            history.bytes_per_entry().is_some_and(|bytes| bytes > 0.0),
        ));
        self.figures.history = Some(history.clone());
        if self.config.traffic != TrafficKind::Real {
            println!("(rebuild timed on real traffic only)");
            return Ok(());
        }
        let Some(largest) = history.largest().cloned() else {
            self.checks
                .push(("a rebuild ran (no product has history)".to_owned(), false));
            return Ok(());
        };
        let rebuild = self.rebuild(&largest.product, largest.kept).await?;
        self.print_rebuild(&rebuild, backlog);
        self.checks.push((
            format!(
                "`stats-tracker rebuild --product {}` exited 0, switched ({}), and replayed {} entries (> 0)",
                rebuild.product, rebuild.switched, rebuild.entries
            ),
            rebuild.switched && rebuild.entries > 0,
        ));
        self.checks.push((
            format!(
                "the rebuild replayed every entry of {:?}'s history ({} replayed, {} kept)",
                rebuild.product, rebuild.entries, largest.kept
            ),
            rebuild.entries == largest.kept,
        ));
        self.figures.rebuild = Some(rebuild);
        Ok(())
    }

    /// Runs `stats-tracker rebuild --product <product>` with the worker's settings until it
    /// exits, reading its shadow's position meanwhile.
    async fn rebuild(&mut self, product: &str, kept: u64) -> Result<RebuildFigures> {
        let shadow_applied = self
            .keys
            .product(&ProductId::parse(product)?)
            .shadow()
            .applied();
        let command = self.tracker.command(
            &["rebuild", "--product", product],
            "rebuild",
            self.tracker.metrics_addr,
        );
        let (out, err) = (
            self.tracker.dir.join("rebuild.json"),
            self.tracker.dir.join("rebuild.log"),
        );
        eprintln!("rebuilding {product:?} ({} entries) …", thousands(kept));
        let before = self.cpu_snapshot()?;
        let mut child = Measured::spawn("stats-tracker rebuild", command, &out, &err)?;
        let started = Instant::now();
        // Far beyond any plausible replay (1 ms per entry), so a stuck rebuild ends the run.
        let deadline = started + Duration::from_secs(60) + Duration::from_millis(kept);
        let mut position: Option<String> = None;
        let (mut first_write, mut last_write) = (None, None);
        let finished = loop {
            if let Some(finished) = child.try_finish()? {
                break finished;
            }
            self.worker()?.ensure_running()?;
            self.redis.ensure_running()?;
            let now: Option<String> =
                query(redis::cmd("GET").arg(&shadow_applied), &mut self.store).await?;
            if now.is_some() && now != position {
                let at = started.elapsed();
                first_write.get_or_insert(at);
                last_write = Some(at);
                position = now;
            }
            if Instant::now() > deadline {
                bail!(
                    "the rebuild of {product:?} did not end within {:?}; last lines of {}:\n{}",
                    deadline - started,
                    err.display(),
                    child.stderr_tail(20)
                );
            }
            tokio::time::sleep(REBUILD_POLL).await;
        };
        let cpu = self.cpu_snapshot()?.minus(&before);
        if !finished.status.success() {
            bail!(
                "`stats-tracker rebuild --product {product}` failed ({}); last lines of {}:\n{}",
                finished.status,
                err.display(),
                child.stderr_tail(20)
            );
        }
        let text = std::fs::read_to_string(&out)
            .with_context(|| format!("reading the rebuild's output {}", out.display()))?;
        let outcome: serde_json::Value = serde_json::from_str(&text)
            .with_context(|| format!("the rebuild's output is not JSON: {text:?}"))?;
        let entries = outcome
            .get("entries_replayed")
            .and_then(serde_json::Value::as_u64)
            .with_context(|| format!("no entries_replayed in the rebuild's output: {text}"))?;
        let switched = outcome
            .get("switched")
            .and_then(serde_json::Value::as_bool)
            .unwrap_or(false);
        println!(
            "rebuild of {product:?} (its output: {}): {}",
            out.display(),
            text.split_whitespace().collect::<Vec<_>>().join(" ")
        );
        let machine = cpu.machine;
        let ours = cpu.worker + cpu.server + cpu.redis + cpu.bench + finished.cpu;
        let pct = |used: Duration| 100.0 * used.as_secs_f64() / finished.wall.as_secs_f64();
        println!(
            "CPU over the rebuild (% of one core): rebuild {:.0}%, redis {:.0}%, worker (idle) {:.0}%, bench {:.0}%, other processes {:.0}%",
            pct(finished.cpu),
            pct(cpu.redis),
            pct(cpu.worker),
            pct(cpu.bench),
            pct(machine.saturating_sub(ours)),
        );
        Ok(RebuildFigures {
            product: product.to_owned(),
            entries,
            switched,
            wall: finished.wall,
            first_write,
            last_write,
            cpu: finished.cpu,
            peak_rss_kib: finished.peak_rss_kib,
            redis_cpu: cpu.redis,
        })
    }

    /// What the history grew by since the drain (the latency phase's live load, whose batches
    /// and so chunks are much smaller than a backlog's): a line saying it, `None` when the
    /// history was not measured after the drain or did not grow.
    pub async fn history_growth(&mut self) -> Result<Option<String>> {
        let Some(before) = self.figures.history.clone() else {
            return Ok(None);
        };
        let after = history_memory(&mut self.store, &self.keys).await?;
        let entries = after.kept().saturating_sub(before.kept());
        if entries == 0 {
            return Ok(None);
        }
        let chunks = after.chunks().saturating_sub(before.chunks());
        let bytes = after.bytes().saturating_sub(before.bytes());
        let per_entry = bytes as f64 / entries as f64;
        self.figures.history_live_bytes_per_entry = Some(per_entry);
        Ok(Some(format!(
            "history grew by {} entries in {} chunks ({:.1} entries per chunk; the drain's: {:.1}) and {} bytes = {per_entry:.1} bytes per entry",
            thousands(entries),
            thousands(chunks),
            entries as f64 / chunks.max(1) as f64,
            before.kept() as f64 / before.chunks().max(1) as f64,
            thousands(bytes),
        )))
    }

    fn print_rebuild(&self, rebuild: &RebuildFigures, backlog: &Backlog) {
        let seconds = |d: Duration| d.as_secs_f64();
        println!(
            "replayed {} entries in {:.2} s (process start → exit, the switch included): {} entries/s; rebuild CPU {:.2} s = {:.1} µs per entry, peak RSS {}; redis CPU {:.2} s = {:.1} µs per entry",
            thousands(rebuild.entries),
            seconds(rebuild.wall),
            thousands(rebuild.rate() as u64),
            seconds(rebuild.cpu),
            micros_per(rebuild.cpu, rebuild.entries),
            mib(rebuild.peak_rss_kib),
            seconds(rebuild.redis_cpu),
            micros_per(rebuild.redis_cpu, rebuild.entries),
        );
        if let (Some(first), Some(last)) = (rebuild.first_write, rebuild.last_write) {
            println!(
                "where its time went (from its shadow's position, read every {REBUILD_POLL:?}): start-up to the first replayed batch {:.2} s, replay {:.2} s, switch and exit {:.2} s",
                seconds(first),
                seconds(last.saturating_sub(first)),
                seconds(rebuild.wall.saturating_sub(last)),
            );
        }
        let ceiling = self.figures.ceiling;
        println!("{}", rebuild_line(rebuild, ceiling));
        println!(
            "{}",
            drain_line(
                "drain of the same backlog (sustained)",
                backlog.rate,
                ceiling,
                micros_per(backlog.redis_cpu, backlog.events),
                micros_per(backlog.worker_cpu, backlog.events),
            )
        );
        println!(
            "rebuild ÷ drain: {:.2} of the sustained drain rate, {:.2} of the overall one ({} events/s, worker start → drained; the rebuild's rate is overall too)",
            rebuild.rate() / backlog.rate.max(1e-9),
            rebuild.rate() / backlog.overall.max(1e-9),
            thousands(backlog.overall as u64),
        );
    }
}

/// What one `--history-cost` drain measured.
struct CostDrain {
    history: bool,
    backlog: Backlog,
    /// Redis's `used_memory` after the drain.
    used_memory: u64,
    memory: HistoryMemory,
}

/// `--history-cost`: the same backlog drained with history off and on, each drain on a fresh
/// private Redis; true if every check passed.
pub async fn run_cost(args: &Args, traffic: TrafficKind, dir: &Path) -> Result<bool> {
    let config = Config::from_args(args, traffic)?;
    let binary = tracker_binary(args)?;
    let mut drains: Vec<CostDrain> = Vec::new();
    let mut checks = Vec::new();
    let mut notes = Vec::new();
    let (mut ceiling, mut ceiling_at_end) = (None, None);
    for (index, history) in HISTORY_COST_ORDER.into_iter().enumerate() {
        let setting = if history { "on" } else { "off" };
        let sub = dir.join(format!("drain-{}-history-{setting}", index + 1));
        std::fs::create_dir_all(&sub).with_context(|| format!("creating {}", sub.display()))?;
        let redis = PrivateRedis::start(&sub).await?;
        if index == 0 {
            print_header(&config, &binary, &redis);
        }
        let mut bench = Bench::new(config.clone(), binary.clone(), redis, &sub).await?;
        bench.tracker.history = history;
        if index == 0 {
            ceiling = bench.yardstick("at the start").await?;
        }
        bench.figures.ceiling = ceiling;
        println!();
        println!(
            "# Drain {} of {}: history {setting} (STATS_TRACKER__HISTORY__ENABLED={history}), a fresh redis-server",
            index + 1,
            HISTORY_COST_ORDER.len()
        );
        let backlog = bench.drain_backlog().await?;
        bench.wait_drained(Duration::from_secs(60)).await?;
        let memory = history_memory(&mut bench.store, &bench.keys).await?;
        print_history(&memory, None);
        let info: String = query(redis::cmd("INFO").arg("memory"), &mut bench.store).await?;
        let used_memory = info_field(&info, "used_memory")
            .and_then(|value| value.parse().ok())
            .unwrap_or(0);
        println!(
            "redis used_memory after the drain: {}",
            info_field(&info, "used_memory_human").unwrap_or("?")
        );
        let label = format!("drain {} (history {setting})", index + 1);
        let tally = bench.traffic.tally.clone();
        let mut drain_notes = Vec::new();
        let per_product = check_every_player(
            &mut bench.store,
            &bench.keys,
            &bench.players,
            &tally,
            &mut drain_notes,
        )
        .await?;
        bench
            .checks
            .push(crate::cluster::summarize(&per_product, &tally));
        let totals = check_totals(
            &mut bench.store,
            &bench.keys,
            &tally,
            &[bench.tracker.metrics_addr],
        )
        .await?;
        bench.checks.extend(totals);
        let applied = tally.events - tally.dead_letters;
        bench.checks.push(if history {
            (
                format!(
                    "history keeps every applied entry: {} kept, {applied} applied",
                    memory.kept()
                ),
                memory.kept() == applied,
            )
        } else {
            (
                format!(
                    "no history kept with history.enabled=false ({} products with a history list)",
                    memory.products.len()
                ),
                memory.products.is_empty(),
            )
        });
        if index + 1 == HISTORY_COST_ORDER.len() {
            // Stopped first: its Redis is measured alone.
            bench.worker = None;
            ceiling_at_end = bench.yardstick("at the end").await?;
        }
        checks.extend(
            bench
                .checks
                .drain(..)
                .map(|(what, ok)| (format!("{label}: {what}"), ok)),
        );
        notes.extend(
            drain_notes
                .into_iter()
                .map(|note| format!("{label}: {note}")),
        );
        drains.push(CostDrain {
            history,
            backlog,
            used_memory,
            memory,
        });
    }
    print_cost(&drains, ceiling, ceiling_at_end);
    print_checks(&checks, &notes);
    Ok(print_check_count(&checks))
}

/// The mean of `f` over the drains with history `on`.
fn mean(drains: &[CostDrain], on: bool, f: impl Fn(&CostDrain) -> f64) -> f64 {
    let values: Vec<f64> = drains.iter().filter(|d| d.history == on).map(f).collect();
    values.iter().sum::<f64>() / values.len().max(1) as f64
}

/// Script calls and time in commands (scripts and `EXEC` left out: they wrap other
/// commands, which count on their own lines) of a drain's `INFO commandstats`, per event.
fn command_costs(commands: &[CommandStat], events: u64) -> (f64, f64) {
    let script = |name: &str| matches!(name, "evalsha" | "eval");
    let calls: u64 = commands
        .iter()
        .filter(|c| script(&c.name))
        .map(|c| c.calls)
        .sum();
    let own: u64 = commands
        .iter()
        .filter(|c| !script(&c.name) && c.name != "exec")
        .map(|c| c.usec)
        .sum();
    (
        calls as f64 / events.max(1) as f64,
        own as f64 / events.max(1) as f64,
    )
}

fn print_cost(drains: &[CostDrain], ceiling: Option<f64>, ceiling_at_end: Option<f64>) {
    let Some(events) = drains.first().map(|d| d.backlog.events) else {
        return;
    };
    println!();
    println!(
        "## History off against on (the same {} events, drains in the order {})",
        thousands(events),
        drains
            .iter()
            .map(|d| if d.history { "on" } else { "off" })
            .collect::<Vec<_>>()
            .join(", ")
    );
    if let Some(ceiling) = ceiling {
        println!(
            "ceiling: {} ops/s at the start, {} at the end",
            thousands(ceiling as u64),
            ceiling_at_end.map_or("not measured".to_owned(), |end| thousands(end as u64)),
        );
    }
    let row = |what: &str, off: String, on: String, ratio: String| {
        println!("{what:<48} {off:>18} {on:>18} {ratio:>10}");
    };
    let each = |on: bool, f: &dyn Fn(&CostDrain) -> String| {
        drains
            .iter()
            .filter(|d| d.history == on)
            .map(f)
            .collect::<Vec<_>>()
            .join(", ")
    };
    let ratio = |off: f64, on: f64| {
        if off > 0.0 {
            format!("{:.2}", on / off)
        } else {
            "—".to_owned()
        }
    };
    row(
        "",
        "history off".to_owned(),
        "history on".to_owned(),
        "on ÷ off".to_owned(),
    );
    row(
        "events/s (sustained), each drain",
        each(false, &|d| thousands(d.backlog.rate as u64)),
        each(true, &|d| thousands(d.backlog.rate as u64)),
        String::new(),
    );
    let rate = |d: &CostDrain| d.backlog.rate;
    let (off_rate, on_rate) = (mean(drains, false, rate), mean(drains, true, rate));
    row(
        "— mean",
        thousands(off_rate as u64),
        thousands(on_rate as u64),
        ratio(off_rate, on_rate),
    );
    if let Some(ceiling) = ceiling {
        row(
            "— ÷ ceiling (the start's)",
            format!("{:.3}", off_rate / ceiling),
            format!("{:.3}", on_rate / ceiling),
            String::new(),
        );
    }
    let redis_us = |d: &CostDrain| micros_per(d.backlog.redis_cpu, d.backlog.events);
    row(
        "Redis CPU µs per event, each drain",
        each(false, &|d| format!("{:.1}", redis_us(d))),
        each(true, &|d| format!("{:.1}", redis_us(d))),
        String::new(),
    );
    let (off_redis, on_redis) = (mean(drains, false, redis_us), mean(drains, true, redis_us));
    row(
        "— mean",
        format!("{off_redis:.1}"),
        format!("{on_redis:.1}"),
        ratio(off_redis, on_redis),
    );
    let worker_us = |d: &CostDrain| micros_per(d.backlog.worker_cpu, d.backlog.events);
    let (off_worker, on_worker) = (
        mean(drains, false, worker_us),
        mean(drains, true, worker_us),
    );
    row(
        "worker CPU µs per event (mean)",
        format!("{off_worker:.1}"),
        format!("{on_worker:.1}"),
        ratio(off_worker, on_worker),
    );
    let calls = |d: &CostDrain| command_costs(&d.backlog.commands, d.backlog.events).0;
    let own = |d: &CostDrain| command_costs(&d.backlog.commands, d.backlog.events).1;
    row(
        "script calls per event (mean)",
        format!("{:.3}", mean(drains, false, calls)),
        format!("{:.3}", mean(drains, true, calls)),
        ratio(mean(drains, false, calls), mean(drains, true, calls)),
    );
    row(
        "Redis time in commands µs per event (mean)",
        format!("{:.2}", mean(drains, false, own)),
        format!("{:.2}", mean(drains, true, own)),
        ratio(mean(drains, false, own), mean(drains, true, own)),
    );
    let used = |d: &CostDrain| d.used_memory as f64;
    let (off_used, on_used) = (mean(drains, false, used), mean(drains, true, used));
    row(
        "Redis used_memory after the drain (mean)",
        mib((off_used / 1024.0) as u64),
        mib((on_used / 1024.0) as u64),
        ratio(off_used, on_used),
    );
    let per_entry = |d: &CostDrain| d.memory.bytes_per_entry().unwrap_or(0.0);
    row(
        "history bytes per entry (mean)",
        "—".to_owned(),
        format!("{:.1}", mean(drains, true, per_entry)),
        String::new(),
    );
    println!(
        "{}",
        drain_line(
            "drain, history off (mean)",
            off_rate,
            ceiling,
            off_redis,
            off_worker
        )
    );
    println!(
        "{}",
        drain_line(
            "drain, history on (mean)",
            on_rate,
            ceiling,
            on_redis,
            on_worker
        )
    );
    println!(
        "keeping history costs {:+.1}% events/s, {:+.1} µs of Redis CPU and {:+.1} µs of worker CPU per event",
        100.0 * (on_rate / off_rate.max(1e-9) - 1.0),
        on_redis - off_redis,
        on_worker - off_worker,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_products_history_lists_count() {
        let keys = KeySpace::new(PREFIX).expect("a valid prefix");
        let events = |product: &str| {
            keys.product(&ProductId::parse(product).expect("an id"))
                .events()
        };
        assert_eq!(
            product_of_events_key(&keys, &events("exrps")).as_deref(),
            Some("exrps")
        );
        // Ids are percent-encoded in key names, and decoded back.
        let odd = "arena:2v2 {beta}";
        assert_eq!(
            product_of_events_key(&keys, &events(odd)).as_deref(),
            Some(odd)
        );
        // A rebuild's shadow, a player called `events`, another prefix: not history lists.
        let shadow = keys
            .product(&ProductId::parse("exrps").expect("an id"))
            .shadow()
            .events();
        assert_eq!(product_of_events_key(&keys, &shadow), None);
        assert_eq!(
            product_of_events_key(&keys, &format!("{PREFIX}:{{exrps}}:stats:events")),
            None
        );
        assert_eq!(product_of_events_key(&keys, "other:{exrps}:events"), None);
        assert_eq!(
            product_of_events_key(&keys, &format!("{PREFIX}:{{exrps}}:events:kept")),
            None
        );
    }

    #[test]
    fn history_memory_sums_and_picks_the_largest() {
        let product = |name: &str, bytes, kept, chunks| ProductHistory {
            product: name.to_owned(),
            bytes,
            kept,
            chunks,
        };
        let memory = HistoryMemory {
            products: vec![product("exrps", 3_000, 100, 2), product("b", 1_000, 25, 1)],
        };
        assert_eq!(
            (memory.bytes(), memory.kept(), memory.chunks()),
            (4_000, 125, 3)
        );
        assert_eq!(memory.bytes_per_entry(), Some(32.0));
        assert_eq!(memory.largest().map(|p| p.product.as_str()), Some("exrps"));
        assert_eq!(HistoryMemory::default().bytes_per_entry(), None);
    }
}
