//! `stats-tracker relay`: for game servers that keep writing the single stream `stream.name`
//! while the tracker reads `stream.partitions` > 1 partition streams. This module owns moving
//! the source stream's entries into the partitions, each exactly once and in source order per
//! partition, and the keys that make that safe to kill at any moment ([`RelayKeys`]):
//!
//! - **a mark per partition**, beside the partition stream (same hash slot): the source id of
//!   the last entry relayed into it. One call of `relay.lua` per partition and batch appends
//!   the batch's entries of that partition, in source order, each with a new `*` id (so
//!   entries that ingest and re-drives append to the partition directly are neither touched
//!   nor reordered), skipping every entry at or below the mark, and raises the mark: atomic
//!   per partition, and a batch relayed twice appends nothing the second time;
//! - **the cursor**, beside the source stream: the last source id of the last batch that every
//!   partition took. A relay started again reads on from the cursor; the marks skip what a
//!   killed one had appended after it.
//!
//! Ids are compared as numbers (milliseconds, then sequence). Where an entry goes is
//! [`partition_of_entry`]: its product's partition as ingest and re-drives route it, also for
//! entries without a usable product id, which the worker of that partition dead-letters.
//!
//! The source stream is only read (`TYPE`, `XRANGE`, `XREAD`, `XINFO`): nothing in it is
//! deleted or trimmed.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use redis::Script;
use tokio_util::sync::CancellationToken;

use crate::core::config::Settings;
use crate::core::keys::RelayKeys;
use crate::core::partition::{partition_of, partition_stream};
use crate::core::store::{self, Connection, StoreError, bounded};
use crate::workers::plan::compare_ids;

/// How long one Redis command may take (the blocking wait for new entries gets more).
const COMMAND_TIMEOUT: Duration = Duration::from_secs(5);
/// Back-off bounds while Redis is unreachable.
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(2);
/// How often progress is logged while entries are being relayed.
const PROGRESS_INTERVAL: Duration = Duration::from_secs(10);

/// Why the relay cannot run, or stopped.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error(
        "stream.partitions is 1, so the partition stream would be the source stream \
         `{stream}` itself: there is nothing to relay. Run the relay with the partition count \
         the workers use (stream.partitions, or STATS_TRACKER__STREAM__PARTITIONS, above 1)"
    )]
    OnePartition { stream: String },
    #[error("the source stream's key `{key}` holds a {kind}, not a stream")]
    NotAStream { key: String, kind: String },
    #[error(
        "the source stream `{stream}` has {pending} entries that the tracker's consumer group \
         `{group}` read but never acknowledged (a worker with stream.partitions = 1 was stopped \
         mid-batch); the relay cannot tell whether they were applied. Run one worker with \
         stream.partitions = 1 until the group has no pending entries, stop it (SIGTERM), \
         then start the relay"
    )]
    PendingOnSource {
        stream: String,
        group: String,
        pending: u64,
    },
    #[error("stream Redis: {0}")]
    Store(#[from] StoreError),
    #[error("unexpected reply from the stream Redis: {0}")]
    Protocol(String),
}

impl RelayError {
    /// Whether trying again later may help (Redis away or failing over), rather than the
    /// setup being wrong.
    fn is_transient(&self) -> bool {
        matches!(self, RelayError::Store(_) | RelayError::Protocol(_))
    }
}

impl From<redis::RedisError> for RelayError {
    fn from(error: redis::RedisError) -> Self {
        RelayError::Store(StoreError::Redis(error))
    }
}

/// The partition an entry goes to, among `partitions`: its `product_id` value's partition
/// (`core::partition::partition_of`), the value read as UTF-8 with invalid bytes replaced
/// (U+FFFD) as re-drives read it; the empty id's partition when the entry has no
/// `product_id`. A valid product's events so land where ingest puts them, and the worker of
/// the partition dead-letters the others. `items` are the entry's field and value items, in
/// order (the first `product_id` counts).
pub fn partition_of_entry(items: &[Vec<u8>], partitions: u32) -> u32 {
    let product = items
        .chunks_exact(2)
        .find(|pair| pair[0] == b"product_id")
        .map_or(&[][..], |pair| pair[1].as_slice());
    partition_of(&String::from_utf8_lossy(product), partitions)
}

/// One entry of the source stream: its id and its field and value items, in order.
struct Entry {
    id: String,
    items: Vec<Vec<u8>>,
}

/// The relay between the source stream and its partitions; see the module documentation.
pub struct Relay {
    conn: Connection,
    /// Separate connection for blocking waits: they outlast the normal response timeout.
    blocking: Connection,
    source: String,
    /// The tracker's consumer group, looked for on the source stream at the first start.
    group: String,
    partitions: u32,
    /// Per partition index: its stream and its mark.
    targets: Vec<(String, String)>,
    cursor_key: String,
    batch_size: usize,
    block: Duration,
    script: Script,
}

/// What a relay has done since it started.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Progress {
    /// Entries appended to the partitions.
    pub relayed: u64,
    /// Entries read again after a restart that a partition already held (skipped).
    pub skipped: u64,
    /// The last source id every partition took ("" before the start point is known).
    pub cursor: String,
}

/// [`Progress`] and when it was last logged: every [`PROGRESS_INTERVAL`] while there is
/// progress, and once when the relay first catches up with the source stream.
struct Reporter {
    progress: Progress,
    logged_at: Instant,
    logged: (u64, u64),
    caught_up_once: bool,
}

impl Reporter {
    fn new() -> Self {
        Self {
            progress: Progress::default(),
            logged_at: Instant::now(),
            logged: (0, 0),
            caught_up_once: false,
        }
    }

    fn batch(&mut self, appended: u64, skipped: u64, cursor: &str) {
        self.progress.relayed += appended;
        self.progress.skipped += skipped;
        cursor.clone_into(&mut self.progress.cursor);
        if self.logged_at.elapsed() >= PROGRESS_INTERVAL {
            self.log(false);
        }
    }

    /// Nothing new in the source stream.
    fn idle(&mut self) {
        let moved = self.logged != (self.progress.relayed, self.progress.skipped);
        if moved && (!self.caught_up_once || self.logged_at.elapsed() >= PROGRESS_INTERVAL) {
            self.caught_up_once = true;
            self.log(true);
        }
    }

    fn log(&mut self, caught_up: bool) {
        let Progress {
            relayed,
            skipped,
            cursor,
        } = &self.progress;
        tracing::info!(relayed, skipped, %cursor, caught_up, "relay progress");
        self.logged_at = Instant::now();
        self.logged = (*relayed, *skipped);
    }
}

impl Relay {
    /// A relay from `stream.name` into its `stream.partitions` partitions, on the stream's
    /// Redis (connected lazily: it may not answer yet). Refuses one partition.
    pub fn new(settings: &Settings) -> Result<Self, RelayError> {
        let partitions = settings.stream.partitions;
        let source = settings.stream.name.clone();
        if partitions <= 1 {
            return Err(RelayError::OnePartition { stream: source });
        }
        let redis = settings.stream_redis();
        let block = Duration::from_millis(settings.stream.block_ms);
        let targets = (0..partitions)
            .map(|index| {
                let stream = partition_stream(&source, partitions, index);
                let mark = RelayKeys::relayed(&stream);
                (stream, mark)
            })
            .collect();
        Ok(Self {
            conn: store::lazy_connection(&redis, COMMAND_TIMEOUT)?,
            blocking: store::lazy_connection(&redis, block + COMMAND_TIMEOUT)?,
            cursor_key: RelayKeys::cursor(&source),
            source,
            group: settings.stream.group.clone(),
            partitions,
            targets,
            batch_size: settings.stream.batch_size,
            block,
            script: Script::new(include_str!("relay.lua")),
        })
    }

    /// Relays until `shutdown` is cancelled (the batch in flight is finished first), riding
    /// out Redis outages; fails only when it cannot run at all (the source key is not a
    /// stream, or the tracker's group left unacknowledged entries on it).
    pub async fn run(&self, shutdown: &CancellationToken) -> Result<Progress, RelayError> {
        tracing::info!(
            source = %self.source,
            partitions = self.partitions,
            to = %format!(
                "{} … {}",
                partition_stream(&self.source, self.partitions, 0),
                partition_stream(&self.source, self.partitions, self.partitions - 1)
            ),
            batch_size = self.batch_size,
            "relay starting"
        );
        let mut reporter = Reporter::new();
        let mut cursor: Option<String> = None;
        let mut said_waiting = false;
        let mut backoff = BACKOFF_MIN;
        while !shutdown.is_cancelled() {
            let step = match cursor.clone() {
                None => self.start(shutdown, &mut said_waiting).await.map(|start| {
                    if let Some(start) = start {
                        reporter.progress.cursor.clone_from(&start);
                        cursor = Some(start);
                    }
                }),
                Some(from) => self
                    .relay_next(&from, shutdown, &mut reporter)
                    .await
                    .map(|next| {
                        if next.is_some() {
                            cursor = next;
                        }
                    }),
            };
            match step {
                Ok(()) => backoff = BACKOFF_MIN,
                Err(error) if !error.is_transient() => return Err(error),
                Err(error) => {
                    tracing::warn!(%error, retry_in = ?backoff, "relay interrupted; retrying");
                    // Start over from what Redis holds: a server that restarted with less
                    // (the last writes of its AOF, say) lost marks and the cursor together
                    // with the appends they describe.
                    cursor = None;
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {}
                        _ = shutdown.cancelled() => {}
                    }
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                }
            }
        }
        let Progress {
            relayed,
            skipped,
            cursor,
        } = &reporter.progress;
        tracing::info!(relayed, skipped, %cursor, "relay stopped");
        Ok(reporter.progress)
    }

    /// Waits for the source stream to exist, then finds where to start: the stored cursor,
    /// else (first start) after what the tracker's group read from the stream when it was the
    /// tracker's single stream, else its beginning; stores it. `None`: shut down meanwhile.
    async fn start(
        &self,
        shutdown: &CancellationToken,
        said_waiting: &mut bool,
    ) -> Result<Option<String>, RelayError> {
        loop {
            let mut conn = self.conn.clone();
            let kind: String = bounded(
                COMMAND_TIMEOUT,
                redis::cmd("TYPE").arg(&self.source).query_async(&mut conn),
            )
            .await?;
            match kind.as_str() {
                "stream" => break,
                "none" => {
                    if !*said_waiting {
                        tracing::info!(
                            source = %self.source,
                            "the source stream does not exist yet; waiting for the first entry"
                        );
                        *said_waiting = true;
                    }
                    tokio::select! {
                        _ = shutdown.cancelled() => return Ok(None),
                        waited = self.wait_for_new("0-0") => waited?,
                    }
                }
                _ => {
                    return Err(RelayError::NotAStream {
                        key: self.source.clone(),
                        kind,
                    });
                }
            }
        }
        let mut conn = self.conn.clone();
        let stored: Option<String> = bounded(
            COMMAND_TIMEOUT,
            redis::cmd("GET")
                .arg(&self.cursor_key)
                .query_async(&mut conn),
        )
        .await?;
        if let Some(cursor) = stored {
            self.warn_if_removed_after(&cursor).await?;
            tracing::info!(source = %self.source, %cursor, "resuming after the stored cursor");
            return Ok(Some(cursor));
        }
        let start = match self.group_on_source().await? {
            Some((pending, _)) if pending > 0 => {
                return Err(RelayError::PendingOnSource {
                    stream: self.source.clone(),
                    group: self.group.clone(),
                    pending,
                });
            }
            Some((_, delivered)) => {
                tracing::info!(
                    source = %self.source,
                    group = %self.group,
                    after = %delivered,
                    "the tracker's consumer group read the source stream up to here; relaying what follows"
                );
                delivered
            }
            None => "0-0".to_owned(),
        };
        self.warn_if_removed_after(&start).await?;
        // Recorded at once: a later start begins here whatever becomes of the group. Another
        // relay that got there first wins.
        let (cursor,): (Option<String>,) = bounded(
            COMMAND_TIMEOUT,
            redis::pipe()
                .cmd("SET")
                .arg(&self.cursor_key)
                .arg(&start)
                .arg("NX")
                .ignore()
                .cmd("GET")
                .arg(&self.cursor_key)
                .query_async(&mut conn),
        )
        .await?;
        let cursor = cursor.unwrap_or(start);
        tracing::info!(source = %self.source, %cursor, "relaying from the source stream after this id");
        Ok(Some(cursor))
    }

    /// The tracker's consumer group on the source stream, if there is one: its pending
    /// entries and the last id it read.
    async fn group_on_source(&self) -> Result<Option<(u64, String)>, RelayError> {
        let mut conn = self.conn.clone();
        let groups: Vec<BTreeMap<String, redis::Value>> = bounded(
            COMMAND_TIMEOUT,
            redis::cmd("XINFO")
                .arg("GROUPS")
                .arg(&self.source)
                .query_async(&mut conn),
        )
        .await?;
        let Some(group) = groups.into_iter().find(|group| {
            matches!(group.get("name"), Some(redis::Value::BulkString(name)) if name == self.group.as_bytes())
        }) else {
            return Ok(None);
        };
        let field = |name: &str| {
            group
                .get(name)
                .ok_or_else(|| RelayError::Protocol(format!("XINFO GROUPS without `{name}`")))
        };
        let parsing = |error: redis::ParsingError| RelayError::Protocol(error.to_string());
        let pending: u64 = redis::from_redis_value_ref(field("pending")?).map_err(parsing)?;
        let delivered: String =
            redis::from_redis_value_ref(field("last-delivered-id")?).map_err(parsing)?;
        Ok(Some((pending, delivered)))
    }

    /// Warns when entries after `cursor` may have been deleted or trimmed from the source
    /// stream before the relay moved them (while it was stopped, say): those are lost to the
    /// tracker. Seen from the stream's highest deleted id (`XDEL`), or its first entry being
    /// past the cursor (trimming removed the cursor's own entry, so perhaps more).
    async fn warn_if_removed_after(&self, cursor: &str) -> Result<(), RelayError> {
        if cursor == "0-0" {
            return Ok(());
        }
        let mut conn = self.conn.clone();
        let info: BTreeMap<String, redis::Value> = bounded(
            COMMAND_TIMEOUT,
            redis::cmd("XINFO")
                .arg("STREAM")
                .arg(&self.source)
                .query_async(&mut conn),
        )
        .await?;
        let id_of = |value: &redis::Value| redis::from_redis_value_ref::<String>(value).ok();
        let deleted = info.get("max-deleted-entry-id").and_then(id_of);
        let first = match info.get("first-entry") {
            Some(redis::Value::Array(entry)) => entry.first().and_then(id_of),
            _ => None,
        };
        let after = |id: &Option<String>| {
            id.as_deref()
                .is_some_and(|id| compare_ids(id, cursor).is_gt())
        };
        if after(&deleted) || after(&first) {
            tracing::warn!(
                source = %self.source,
                %cursor,
                first_entry = first.as_deref().unwrap_or(""),
                last_deleted = deleted.as_deref().unwrap_or(""),
                "entries after the relay's cursor may have been deleted or trimmed from the source stream before they were relayed; those are lost to the tracker"
            );
        }
        Ok(())
    }

    /// Relays the next batch after `from` and stores the cursor; the new cursor, or `None`
    /// when nothing was new (after waiting up to `stream.block_ms` for entries).
    async fn relay_next(
        &self,
        from: &str,
        shutdown: &CancellationToken,
        reporter: &mut Reporter,
    ) -> Result<Option<String>, RelayError> {
        let entries = self.read_after(from).await?;
        let Some(last) = entries.last().map(|entry| entry.id.clone()) else {
            reporter.idle();
            tokio::select! {
                _ = shutdown.cancelled() => {}
                waited = self.wait_for_new(from) => waited?,
            }
            return Ok(None);
        };
        let (appended, skipped) = self.relay_batch(&entries).await?;
        // Only now: every partition holds its entries of the batch.
        let mut conn = self.conn.clone();
        bounded(
            COMMAND_TIMEOUT,
            redis::cmd("SET")
                .arg(&self.cursor_key)
                .arg(&last)
                .query_async::<()>(&mut conn),
        )
        .await?;
        reporter.batch(appended, skipped, &last);
        Ok(Some(last))
    }

    /// Up to `stream.batch_size` source entries after `from`, in order.
    async fn read_after(&self, from: &str) -> Result<Vec<Entry>, RelayError> {
        let mut conn = self.conn.clone();
        let entries: Vec<(String, Vec<Vec<u8>>)> = bounded(
            COMMAND_TIMEOUT,
            redis::cmd("XRANGE")
                .arg(&self.source)
                .arg(format!("({from}"))
                .arg("+")
                .arg("COUNT")
                .arg(self.batch_size)
                .query_async(&mut conn),
        )
        .await?;
        Ok(entries
            .into_iter()
            .map(|(id, items)| Entry { id, items })
            .collect())
    }

    /// Appends `entries` to their partitions: one `relay.lua` call per partition, sent at
    /// once (each within its partition's hash slot). Entries appended and skipped.
    async fn relay_batch(&self, entries: &[Entry]) -> Result<(u64, u64), RelayError> {
        let mut by_partition: BTreeMap<u32, Vec<&Entry>> = BTreeMap::new();
        for entry in entries {
            by_partition
                .entry(partition_of_entry(&entry.items, self.partitions))
                .or_default()
                .push(entry);
        }
        let mut calls = Vec::with_capacity(by_partition.len());
        for (partition, entries) in &by_partition {
            let (stream, mark) = self
                .targets
                .get(*partition as usize)
                .ok_or_else(|| RelayError::Protocol(format!("no partition {partition}")))?;
            let mut invocation = self.script.prepare_invoke();
            invocation.key(stream).key(mark);
            for entry in entries {
                invocation.arg(&entry.id).arg(entry.items.len());
                for item in &entry.items {
                    invocation.arg(item.as_slice());
                }
            }
            let mut conn = self.conn.clone();
            calls.push(async move {
                bounded(
                    COMMAND_TIMEOUT,
                    invocation.invoke_async::<(u64, u64)>(&mut conn),
                )
                .await
            });
        }
        let done = futures::future::try_join_all(calls).await?;
        Ok(done
            .into_iter()
            .fold((0, 0), |(appended, skipped), (a, s)| {
                (appended + a, skipped + s)
            }))
    }

    /// Blocks until the source stream has an entry after `after`, or `stream.block_ms` pass.
    async fn wait_for_new(&self, after: &str) -> Result<(), RelayError> {
        let mut conn = self.blocking.clone();
        bounded(
            self.block + COMMAND_TIMEOUT,
            redis::cmd("XREAD")
                .arg("COUNT")
                .arg(1)
                .arg("BLOCK")
                .arg(self.block.as_millis() as u64)
                .arg("STREAMS")
                .arg(&self.source)
                .arg(after)
                .query_async::<redis::Value>(&mut conn),
        )
        .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn items(pairs: &[(&[u8], &[u8])]) -> Vec<Vec<u8>> {
        pairs
            .iter()
            .flat_map(|(name, value)| [name.to_vec(), value.to_vec()])
            .collect()
    }

    #[test]
    fn entries_go_where_ingest_and_re_drives_send_their_product() {
        let exrps = items(&[(b"type", b"game_over"), (b"product_id", b"exrps")]);
        assert_eq!(partition_of_entry(&exrps, 8), partition_of("exrps", 8));
        assert_eq!(partition_of_entry(&exrps, 8), 3);
        // No product id: the empty id's partition.
        let none = items(&[(b"type", b"game_over")]);
        assert_eq!(partition_of_entry(&none, 8), partition_of("", 8));
        // Not a valid product id: still its own value's partition.
        let spaced = items(&[(b"product_id", b"not valid {x}")]);
        assert_eq!(
            partition_of_entry(&spaced, 8),
            partition_of("not valid {x}", 8)
        );
        // Invalid UTF-8 is read as re-drives read it.
        let bytes = items(&[(b"product_id", &[0xff, b'a'])]);
        assert_eq!(partition_of_entry(&bytes, 8), partition_of("\u{fffd}a", 8));
        // The first product id counts; a value named product_id does not.
        let twice = items(&[
            (b"event_name", b"product_id"),
            (b"product_id", b"arena"),
            (b"product_id", b"exrps"),
        ]);
        assert_eq!(partition_of_entry(&twice, 8), partition_of("arena", 8));
    }
}
