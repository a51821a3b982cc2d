//! The benchmark's private Redis: starting an empty `redis-server` on a free port (never the
//! shared one on 6379), connections to it, the consumer group's progress, Redis's own
//! accounting (`INFO commandstats`), and `redis-benchmark` runs on it: the machine yardstick
//! (`ceiling`) and the per-command rates of the effects' minimum.

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use redis::aio::{ConnectionLike, MultiplexedConnection};
use redis::{AsyncConnectionConfig, Value};

use crate::procs::{Proc, ProcStats, find_tool, free_port};

/// An empty `redis-server` that saves nothing, killed when dropped.
pub struct PrivateRedis {
    pub port: u16,
    pub version: String,
    proc: Proc,
}

impl PrivateRedis {
    /// Starts one in `dir` (its working directory and log).
    pub async fn start(dir: &Path) -> Result<Self> {
        if find_tool("redis-server").is_none() {
            bail!("redis-server is not installed (scripts/ensure-tools installs it)");
        }
        let mut last_error = anyhow!("redis-server did not start");
        // Another process may grab the free port between our check and Redis binding it.
        for attempt in 1..=3 {
            let port = free_port()?;
            let mut command = Command::new("redis-server");
            command
                .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
                .args(["--save", "", "--appendonly", "no"])
                .arg("--dir")
                .arg(dir);
            let log = dir.join(format!("redis-{attempt}.log"));
            let mut proc = Proc::spawn("redis-server", command, &log)?;
            match wait_ready(port, &mut proc).await {
                Ok(version) => {
                    return Ok(Self {
                        port,
                        version,
                        proc,
                    });
                }
                Err(error) => last_error = error,
            }
        }
        Err(last_error)
    }

    pub fn url(&self, db: u8) -> String {
        format!("redis://127.0.0.1:{}/{db}", self.port)
    }

    /// A connection to database `db`, with a response timeout long enough for big pipelines.
    pub async fn connect(&self, db: u8) -> Result<MultiplexedConnection> {
        connect(&self.url(db)).await
    }

    pub fn stats(&self) -> Result<ProcStats> {
        self.proc.stats()
    }

    pub fn ensure_running(&mut self) -> Result<()> {
        self.proc.ensure_running()
    }
}

/// A connection to `url` with [`PrivateRedis::connect`]'s timeouts.
pub async fn connect(url: &str) -> Result<MultiplexedConnection> {
    let config = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(5)))
        .set_response_timeout(Some(Duration::from_secs(60)));
    redis::Client::open(url)
        .context("invalid Redis URL")?
        .get_multiplexed_async_connection_with_config(&config)
        .await
        .with_context(|| format!("cannot connect to {url}"))
}

/// Waits until Redis answers; returns its version.
async fn wait_ready(port: u16, proc: &mut Proc) -> Result<String> {
    let url = format!("redis://127.0.0.1:{port}/0");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        proc.ensure_running()?;
        if let Ok(mut conn) = connect(&url).await
            && let Ok(info) = redis::cmd("INFO")
                .arg("server")
                .query_async::<String>(&mut conn)
                .await
        {
            return Ok(info_field(&info, "redis_version").unwrap_or("?").to_owned());
        }
        if Instant::now() > deadline {
            bail!("redis-server on port {port} did not answer within 10 s");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A `name:value` line of an `INFO` reply.
pub fn info_field<'a>(info: &'a str, name: &str) -> Option<&'a str> {
    info.lines().find_map(|line| {
        line.strip_prefix(name)
            .and_then(|rest| rest.strip_prefix(':'))
            .map(str::trim)
    })
}

/// Where a consumer group stands (`XINFO GROUPS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupState {
    /// Entries not yet delivered to the group; `None` when Redis cannot tell.
    pub lag: Option<u64>,
    /// Delivered, not yet acknowledged.
    pub pending: u64,
}

impl GroupState {
    pub fn drained(&self) -> bool {
        self.lag == Some(0) && self.pending == 0
    }

    /// Entries acknowledged so far, out of a stream of `total`.
    pub fn done(&self, total: u64) -> u64 {
        total.saturating_sub(self.lag.unwrap_or(total) + self.pending)
    }
}

/// The state of `group` on `stream`; `None` while the group does not exist yet.
pub async fn group_state(
    conn: &mut impl ConnectionLike,
    stream: &str,
    group: &str,
) -> Result<Option<GroupState>> {
    let groups: Vec<HashMap<String, Value>> = redis::cmd("XINFO")
        .arg("GROUPS")
        .arg(stream)
        .query_async(conn)
        .await
        .context("XINFO GROUPS")?;
    let int = |value: Option<&Value>| match value {
        Some(Value::Int(n)) => u64::try_from(*n).ok(),
        _ => None,
    };
    Ok(groups
        .iter()
        .find(
            |g| matches!(g.get("name"), Some(Value::BulkString(name)) if name == group.as_bytes()),
        )
        .map(|g| GroupState {
            lag: int(g.get("lag")),
            pending: int(g.get("pending")).unwrap_or(0),
        }))
}

/// One line of `INFO commandstats`.
#[derive(Debug, Clone)]
pub struct CommandStat {
    pub name: String,
    pub calls: u64,
    pub usec: u64,
}

/// Redis's time per command since the last `CONFIG RESETSTAT`, most expensive first.
pub async fn command_stats(conn: &mut impl ConnectionLike) -> Result<Vec<CommandStat>> {
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(conn)
        .await
        .context("INFO commandstats")?;
    let mut stats: Vec<CommandStat> = info
        .lines()
        .filter_map(|line| {
            let (name, rest) = line.strip_prefix("cmdstat_")?.split_once(':')?;
            let field = |key: &str| {
                rest.split(',')
                    .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
                    .and_then(|v| v.parse().ok())
            };
            Some(CommandStat {
                name: name.to_owned(),
                calls: field("calls")?,
                usec: field("usec")?,
            })
        })
        .collect();
    stats.sort_by_key(|stat| std::cmp::Reverse(stat.usec));
    Ok(stats)
}

pub async fn reset_stats(conn: &mut impl ConnectionLike) -> Result<()> {
    redis::cmd("CONFIG")
        .arg("RESETSTAT")
        .query_async::<()>(conn)
        .await
        .context("CONFIG RESETSTAT")
}

/// From now on, logs every call that takes at least `micros` inside Redis (SLOWLOG), keeping
/// up to `max_len`: with a threshold above the cost of single commands it catches the big
/// calls (scripts, batch reads and acknowledgements) without slowing the small ones down.
pub async fn log_slow_calls(
    conn: &mut MultiplexedConnection,
    micros: u64,
    max_len: u64,
) -> Result<()> {
    for (name, value) in [
        ("slowlog-log-slower-than", micros),
        ("slowlog-max-len", max_len),
    ] {
        redis::cmd("CONFIG")
            .arg("SET")
            .arg(name)
            .arg(value)
            .query_async::<()>(conn)
            .await
            .with_context(|| format!("CONFIG SET {name}"))?;
    }
    redis::cmd("SLOWLOG")
        .arg("RESET")
        .query_async::<()>(conn)
        .await
        .context("SLOWLOG RESET")
}

/// One logged call: its first arguments and its time inside Redis.
#[derive(Debug, Clone)]
pub struct SlowCall {
    pub args: Vec<String>,
    pub micros: u64,
}

impl SlowCall {
    /// `command key`: the first key the call names (after `numkeys` for scripts, after
    /// `STREAMS` for stream reads).
    pub fn label(&self) -> String {
        let command = self
            .args
            .first()
            .map_or(String::new(), |c| c.to_lowercase());
        let key_at = if command.starts_with("eval") {
            Some(3)
        } else if command.starts_with("xread") {
            self.args
                .iter()
                .position(|arg| arg.eq_ignore_ascii_case("streams"))
                .map(|at| at + 1)
        } else {
            Some(1)
        };
        match key_at.and_then(|at| self.args.get(at)) {
            Some(key) => format!("{command} {key}"),
            None => command,
        }
    }
}

/// The calls logged since [`log_slow_calls`], then Redis's defaults back.
pub async fn slow_calls(conn: &mut MultiplexedConnection) -> Result<Vec<SlowCall>> {
    let entries: Vec<Value> = redis::cmd("SLOWLOG")
        .arg("GET")
        .arg(1_000_000)
        .query_async(conn)
        .await
        .context("SLOWLOG GET")?;
    // Redis's defaults: 10 ms, 128 entries.
    log_slow_calls(conn, 10_000, 128).await?;
    let text = |value: &Value| match value {
        Value::BulkString(bytes) => String::from_utf8_lossy(bytes).into_owned(),
        Value::SimpleString(text) => text.clone(),
        other => format!("{other:?}"),
    };
    Ok(entries
        .iter()
        .filter_map(|entry| {
            // [id, unix time, microseconds, [arguments…], client address, client name]
            let Value::Array(parts) = entry else {
                return None;
            };
            let (Some(Value::Int(micros)), Some(Value::Array(args))) = (parts.get(2), parts.get(3))
            else {
                return None;
            };
            Some(SlowCall {
                // Enough to find the first key of any command the worker sends.
                args: args.iter().take(12).map(text).collect(),
                micros: u64::try_from(*micros).unwrap_or(0),
            })
        })
        .collect())
}

/// The yardstick script: two commands per call, as a commit script runs several, so its rate
/// moves with whatever slows Redis and Lua on this machine (CPU steal, frequency, neighbours).
pub const YARDSTICK_SCRIPT: &str = "redis.call('INCR',KEYS[1]) return redis.call('INCR',KEYS[1])";
/// Pipeline depth of the yardstick: deep enough that round trips do not dominate, as in the
/// worker's batches.
const YARDSTICK_PIPELINE: u32 = 32;

/// The machine yardstick (`ceiling`): `EVAL` of [`YARDSTICK_SCRIPT`] per second on `keyspace`
/// random keys of database `db`, which is emptied afterwards so later memory figures do not
/// include it.
pub async fn yardstick(port: u16, db: u8, requests: u64, keyspace: usize) -> Result<f64> {
    let rate = redis_benchmark(
        port,
        db,
        YARDSTICK_PIPELINE,
        requests,
        keyspace,
        &["EVAL", YARDSTICK_SCRIPT, "1", "yardstick:__rand_int__"],
    )
    .await?;
    let mut conn = connect(&format!("redis://127.0.0.1:{port}/{db}")).await?;
    redis::cmd("FLUSHDB")
        .query_async::<()>(&mut conn)
        .await
        .context("FLUSHDB of the scratch database")?;
    Ok(rate)
}

/// Requests per second `redis-benchmark` reaches for one command, pipelined `pipeline` deep
/// over 50 connections, in database `db` (apart from the tracker's). `__rand_int__` in the
/// command becomes one of `keyspace` numbers.
pub async fn redis_benchmark(
    port: u16,
    db: u8,
    pipeline: u32,
    requests: u64,
    keyspace: usize,
    command: &[&str],
) -> Result<f64> {
    let output = tokio::process::Command::new("redis-benchmark")
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args([
            "--dbnum",
            &db.to_string(),
            "-P",
            &pipeline.to_string(),
            "-c",
            "50",
        ])
        .args(["-n", &requests.to_string(), "-r", &keyspace.to_string()])
        .arg("--csv")
        .args(command)
        // Never outlives the benchmark, even if it is interrupted mid-run.
        .kill_on_drop(true)
        .output()
        .await
        .context("cannot run redis-benchmark")?;
    if !output.status.success() {
        bail!(
            "redis-benchmark failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    csv_rate(&stdout).with_context(|| format!("no rate in redis-benchmark's output: {stdout}"))
}

/// The rate of redis-benchmark's `--csv` output: `"test","rps",…` (eight columns) then
/// `"<command>","<rps>",…`. Counted from the end: the command's text may hold commas.
fn csv_rate(csv: &str) -> Option<f64> {
    let header = csv.lines().find(|line| line.starts_with("\"test\""))?;
    let from_end = header.split(',').count().checked_sub(2)?;
    csv.lines()
        .filter(|line| !line.starts_with("\"test\""))
        .find_map(|line| {
            line.rsplit(',')
                .nth(from_end)
                .and_then(|rps| rps.trim_matches('"').parse().ok())
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_rate_reads_commands_with_commas() {
        let csv = "\"test\",\"rps\",\"avg_latency_ms\",\"min_latency_ms\",\"p50_latency_ms\",\"p95_latency_ms\",\"p99_latency_ms\",\"max_latency_ms\"\n\"EVAL redis.call('INCR',KEYS[1]) 1 k\",\"185185.19\",\"8.198\",\"1.624\",\"8.503\",\"10.471\",\"11.439\",\"11.687\"\n";
        assert_eq!(csv_rate(csv), Some(185185.19));
        let plain = "\"test\",\"rps\"\n\"HINCRBY\",\"1000.5\"\n";
        assert_eq!(csv_rate(plain), Some(1000.5));
        assert_eq!(csv_rate("garbage"), None);
    }
}
