//! The event stream side of the worker: the consumer group, the lease that makes this worker
//! the group's only active reader, fenced reads, waiting for new entries, acknowledgements
//! and lag.
//!
//! Why a lease: rating systems need events applied in stream order, and per-product applied
//! positions (see `workers::commit`) are only exactly-once if one worker applies a product's
//! events in order. Other workers wait as standbys and take over, with the unacknowledged
//! entries, once the holder's lease lapses (at most `lease_ttl_ms` after it died).
//! Reads are a transaction that watches the lease (WATCH, check, MULTI … EXEC), so a worker
//! that lost its lease can never read (and then apply) entries out of order; unlike a script,
//! a transaction does not copy the entries through Lua, which cost Redis more than the read.

use std::time::Duration;

use crate::core::store::Connection;
use redis::{Script, Value};

use crate::core::config::{RedisEndpoint, StreamSettings};
use crate::core::event::RawEntry;
use crate::core::keys::StreamKeys;
use crate::core::store::{self, StoreError, bounded};

/// Records acknowledged positions (see `ack`).
const ACKED_SCRIPT: &str = include_str!("acked.lua");

/// Starts a new group's counts (see `lost.lua`): nothing acknowledged, and the entries already
/// deleted or trimmed (added but no longer there) not counted as lost.
const START_COUNTS: &str = "
local info = redis.call('XINFO', 'STREAM', KEYS[1])
local added, length = 0, 0
for i = 1, #info, 2 do
  if info[i] == 'entries-added' then added = info[i + 1] end
  if info[i] == 'length' then length = info[i + 1] end
end
redis.call('HSET', KEYS[2], 'acked', 0, 'base', added - length)
";

/// The stream's first entry id ('' if none), highest deleted id, entries ever added, length.
const REMOVALS: &str = "
if redis.call('EXISTS', KEYS[1]) == 0 then return {'', '0-0', 0, 0} end
local info = redis.call('XINFO', 'STREAM', KEYS[1])
local first, deleted, added, length = '', '0-0', 0, 0
for i = 1, #info, 2 do
  local name, value = info[i], info[i + 1]
  if name == 'first-entry' and value then first = value[1] end
  if name == 'max-deleted-entry-id' then deleted = value end
  if name == 'entries-added' then added = value end
  if name == 'length' then length = value end
end
return {first, deleted, added, length}
";

/// Entries removed from the stream (by `XTRIM`, which takes the oldest, or `XDEL`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Removals {
    /// The oldest entry still there.
    pub first: Option<String>,
    /// The highest id deleted with `XDEL` (`0-0`: none; trimming does not move it).
    pub max_deleted: String,
    /// Whether any entry was ever removed.
    pub any: bool,
}

/// Proof of holding the lease: the epoch fences store writes, the token fences reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub epoch: u64,
    token: String,
}

/// Where the next read comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadFrom {
    /// Pending entries of the group (any consumer's), from this cursor on.
    Pending(String),
    /// Entries never delivered to the group.
    New,
}

/// What a read returned.
#[derive(Debug, Default, PartialEq)]
pub struct Read {
    pub entries: Vec<RawEntry>,
    /// Pending ids whose entries were deleted from the stream by someone else.
    pub deleted: Vec<String>,
    /// Where to read next.
    pub next: Option<ReadFrom>,
    /// When nothing new was there: the stream's last id, to wait for entries after it.
    pub idle_after: Option<String>,
}

/// Why a stream operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    #[error("stream Redis: {0}")]
    Store(#[from] StoreError),
    #[error("lost the stream lease to another worker")]
    LeaseLost,
    #[error("unexpected reply from the stream Redis: {0}")]
    Protocol(String),
}

/// The consumer group seen from one worker.
pub struct EventStream {
    conn: Connection,
    /// Used for reads only, one at a time: WATCH belongs to a connection, so no other command
    /// may come between a read's WATCH and its EXEC.
    reader: Connection,
    /// Separate connection for blocking waits: they outlast the normal response timeout.
    blocking: Connection,
    keys: StreamKeys,
    group: String,
    consumer: String,
    batch_size: usize,
    block: Duration,
    lease_ttl: Duration,
    timeout: Duration,
    lease_script: Script,
    release_script: Script,
    lost_script: Script,
}

impl EventStream {
    /// The group on the stream `stream` (the single stream, or one partition's).
    pub fn new(
        redis: &RedisEndpoint,
        settings: &StreamSettings,
        stream: &str,
        consumer: String,
        timeout: Duration,
    ) -> Result<Self, StoreError> {
        let block = Duration::from_millis(settings.block_ms);
        Ok(Self {
            conn: store::lazy_connection(redis, timeout)?,
            reader: store::lazy_connection(redis, timeout)?,
            blocking: store::lazy_connection(redis, block + timeout)?,
            keys: StreamKeys::new(stream, &settings.group),
            group: settings.group.clone(),
            consumer,
            batch_size: settings.batch_size,
            block,
            lease_ttl: Duration::from_millis(settings.lease_ttl_ms),
            timeout,
            lease_script: Script::new(include_str!("lease.lua")),
            release_script: Script::new(include_str!("release.lua")),
            lost_script: Script::new(include_str!("lost.lua")),
        })
    }

    /// Most entries one read returns.
    pub fn batch_size(&self) -> usize {
        self.batch_size
    }

    pub fn lease_ttl(&self) -> Duration {
        self.lease_ttl
    }

    /// Creates the consumer group at the beginning of the stream (and the stream itself) if
    /// it does not exist yet.
    pub async fn ensure_group(&self) -> Result<(), StreamError> {
        let mut conn = self.conn.clone();
        let created = bounded(
            self.timeout,
            redis::cmd("XGROUP")
                .arg("CREATE")
                .arg(&self.keys.stream)
                .arg(&self.group)
                .arg("0")
                .arg("MKSTREAM")
                .query_async::<()>(&mut conn),
        )
        .await;
        match created {
            Err(StoreError::Redis(error)) if error.code() == Some("BUSYGROUP") => Ok(()),
            Ok(()) => {
                tracing::info!(stream = %self.keys.stream, group = %self.group, "created consumer group");
                // Entries gone before the group existed were never the tracker's to read.
                bounded(
                    self.timeout,
                    redis::cmd("EVAL")
                        .arg(START_COUNTS)
                        .arg(2)
                        .arg(&self.keys.stream)
                        .arg(&self.keys.counts)
                        .query_async::<()>(&mut conn),
                )
                .await?;
                Ok(())
            }
            Err(error) => Err(error.into()),
        }
    }

    /// Takes the lease, or says how long until the current holder's lapses.
    pub async fn try_acquire(&self) -> Result<Result<Lease, Duration>, StreamError> {
        let mut conn = self.conn.clone();
        let mut invocation = self.lease_script.prepare_invoke();
        invocation
            .key(&self.keys.lease)
            .key(&self.keys.lease_epoch)
            .arg(&self.consumer)
            .arg(self.lease_ttl.as_millis() as u64);
        let reply: i64 = bounded(self.timeout, invocation.invoke_async(&mut conn)).await?;
        Ok(if reply > 0 {
            Ok(Lease {
                epoch: reply as u64,
                token: format!("{}|{reply}", self.consumer),
            })
        } else {
            Err(Duration::from_millis(reply.unsigned_abs()))
        })
    }

    /// Gives the lease up (on shutdown) so a standby takes over at once.
    pub async fn release(&self, lease: &Lease) -> Result<(), StreamError> {
        let mut conn = self.conn.clone();
        let mut invocation = self.release_script.prepare_invoke();
        invocation.key(&self.keys.lease).arg(&lease.token);
        bounded(self.timeout, invocation.invoke_async::<i64>(&mut conn))
            .await
            .map(|_| ())
            .map_err(StreamError::from)
    }

    /// Reads the next batch, if `lease` is still ours (renewing it). Must not be called
    /// concurrently with itself (see `reader`).
    pub async fn read(&self, lease: &Lease, from: &ReadFrom) -> Result<Read, StreamError> {
        let mut conn = self.reader.clone();
        let (_, holder): ((), Option<String>) = bounded(
            self.timeout,
            redis::pipe()
                .cmd("WATCH")
                .arg(&self.keys.lease)
                .cmd("GET")
                .arg(&self.keys.lease)
                .query_async(&mut conn),
        )
        .await?;
        if holder.as_deref() != Some(lease.token.as_str()) {
            let unwatch = redis::cmd("UNWATCH");
            let _ = bounded(self.timeout, unwatch.query_async::<()>(&mut conn)).await;
            return Err(StreamError::LeaseLost);
        }
        let mut pipe = redis::pipe();
        pipe.atomic()
            .cmd("PEXPIRE")
            .arg(&self.keys.lease)
            .arg(self.lease_ttl.as_millis() as u64)
            .ignore();
        match from {
            ReadFrom::Pending(cursor) => {
                pipe.cmd("XAUTOCLAIM")
                    .arg(&self.keys.stream)
                    .arg(&self.group)
                    .arg(&self.consumer)
                    .arg(0)
                    .arg(cursor)
                    .arg("COUNT")
                    .arg(self.batch_size);
            }
            ReadFrom::New => {
                pipe.cmd("XREADGROUP")
                    .arg("GROUP")
                    .arg(&self.group)
                    .arg(&self.consumer)
                    .arg("COUNT")
                    .arg(self.batch_size)
                    .arg("STREAMS")
                    .arg(&self.keys.stream)
                    .arg(">")
                    // The stream's last entry: what to wait after when nothing is new.
                    .cmd("XREVRANGE")
                    .arg(&self.keys.stream)
                    .arg("+")
                    .arg("-")
                    .arg("COUNT")
                    .arg(1);
            }
        }
        // `None`: the lease key changed between WATCH and EXEC, so nothing ran.
        let replies: Option<Vec<Value>> =
            bounded(self.timeout, pipe.query_async(&mut conn)).await?;
        parse_read(from, replies.ok_or(StreamError::LeaseLost)?)
    }

    /// Blocks until an entry after `last_id` exists or the block time passes.
    pub async fn wait_for_new(&self, last_id: &str) -> Result<(), StreamError> {
        let mut conn = self.blocking.clone();
        bounded(
            self.block + self.timeout,
            redis::cmd("XREAD")
                .arg("COUNT")
                .arg(1)
                .arg("BLOCK")
                .arg(self.block.as_millis() as u64)
                .arg("STREAMS")
                .arg(&self.keys.stream)
                .arg(last_id)
                .query_async::<Value>(&mut conn),
        )
        .await
        .map(|_| ())
        .map_err(StreamError::from)
    }

    /// Acknowledges pending entries whose effects are committed (each once: they are counted)
    /// and, in the same transaction, records the applied positions the commit left in the
    /// store (`(partition name, position)`; see `acked.lua`), so that a store which later loses
    /// them is noticed.
    pub async fn ack(
        &self,
        ids: &[&str],
        positions: &[(String, String)],
    ) -> Result<(), StreamError> {
        if ids.is_empty() && positions.is_empty() {
            return Ok(());
        }
        // One transaction: a native XACK (ids through Lua cost Redis 15% more per event), the
        // count `lost.lua` needs (every id given is pending: each is acknowledged once), and
        // the positions, which only move forward (a script: batches in flight may be
        // acknowledged out of order).
        let mut pipe = redis::pipe();
        pipe.atomic();
        if !ids.is_empty() {
            pipe.cmd("XACK")
                .arg(&self.keys.stream)
                .arg(&self.group)
                .arg(ids)
                .ignore();
            pipe.cmd("HINCRBY")
                .arg(&self.keys.counts)
                .arg("acked")
                .arg(ids.len())
                .ignore();
        }
        if !positions.is_empty() {
            // EVAL, not EVALSHA: a script missing inside MULTI could not be loaded and re-sent.
            let eval = pipe
                .cmd("EVAL")
                .arg(ACKED_SCRIPT)
                .arg(1)
                .arg(&self.keys.acked);
            for (partition, position) in positions {
                eval.arg(partition).arg(position);
            }
            eval.ignore();
        }
        let mut conn = self.conn.clone();
        bounded(self.timeout, pipe.query_async::<()>(&mut conn))
            .await
            .map_err(StreamError::from)
    }

    /// Every recorded acknowledged position: `(partition name, position)`.
    pub async fn acked_positions(&self) -> Result<Vec<(String, String)>, StreamError> {
        let mut conn = self.conn.clone();
        let recorded: Vec<(String, String)> = bounded(
            self.timeout,
            redis::cmd("HGETALL")
                .arg(&self.keys.acked)
                .query_async(&mut conn),
        )
        .await?;
        Ok(recorded)
    }

    /// The recorded acknowledged positions of `partitions` (names), `None` where none is.
    pub async fn acked_positions_of(
        &self,
        partitions: &[String],
    ) -> Result<Vec<Option<String>>, StreamError> {
        if partitions.is_empty() {
            return Ok(Vec::new());
        }
        let mut conn = self.conn.clone();
        let recorded: Vec<Option<String>> = bounded(
            self.timeout,
            redis::cmd("HMGET")
                .arg(&self.keys.acked)
                .arg(partitions)
                .query_async(&mut conn),
        )
        .await?;
        Ok(recorded)
    }

    /// Replaces a partition's recorded position (`None`: forgets it). Only for the lease
    /// holder, when re-deriving showed the record is ahead of every effect the stream gives.
    pub async fn set_acked_position(
        &self,
        partition: &str,
        position: Option<&str>,
    ) -> Result<(), StreamError> {
        let mut conn = self.conn.clone();
        let mut cmd = redis::cmd(if position.is_some() { "HSET" } else { "HDEL" });
        cmd.arg(&self.keys.acked).arg(partition);
        if let Some(position) = position {
            cmd.arg(position);
        }
        bounded(self.timeout, cmd.query_async::<()>(&mut conn))
            .await
            .map_err(StreamError::from)
    }

    /// The lowest and highest id pending in the group, if any is.
    pub async fn pending_bounds(&self) -> Result<Option<(String, String)>, StreamError> {
        let mut conn = self.conn.clone();
        let summary: Vec<Value> = bounded(
            self.timeout,
            redis::cmd("XPENDING")
                .arg(&self.keys.stream)
                .arg(&self.group)
                .query_async(&mut conn),
        )
        .await?;
        match (summary.get(1), summary.get(2)) {
            (Some(Value::Nil), _) | (None, _) => Ok(None),
            (Some(low), Some(high)) => Ok(Some((text(low)?, text(high)?))),
            (Some(_), None) => Err(protocol("XPENDING summary")),
        }
    }

    /// What the stream says about entries removed from it (see [`Removals`]).
    pub async fn removals(&self) -> Result<Removals, StreamError> {
        let mut conn = self.conn.clone();
        let (first, max_deleted, added, length): (String, String, u64, u64) = bounded(
            self.timeout,
            redis::cmd("EVAL")
                .arg(REMOVALS)
                .arg(1)
                .arg(&self.keys.stream)
                .query_async(&mut conn),
        )
        .await?;
        Ok(Removals {
            first: (!first.is_empty()).then_some(first),
            max_deleted,
            any: added > length,
        })
    }

    /// Up to `count` entries from `start` to `end` (XRANGE bounds: `(id` excludes), in order.
    pub async fn range(
        &self,
        start: &str,
        end: &str,
        count: usize,
    ) -> Result<Vec<RawEntry>, StreamError> {
        let mut conn = self.conn.clone();
        let entries: Value = bounded(
            self.timeout,
            redis::cmd("XRANGE")
                .arg(&self.keys.stream)
                .arg(start)
                .arg(end)
                .arg("COUNT")
                .arg(count)
                .query_async(&mut conn),
        )
        .await?;
        parse_entries(entries)
    }

    /// Entries deleted or trimmed from the stream before the group read them, counted once
    /// the group has read and acknowledged everything there is (see `lost.lua`): `(newly lost,
    /// last delivered id)`. Afterwards the group's lag no longer counts them.
    pub async fn account_lost(&self) -> Result<(u64, String), StreamError> {
        let mut conn = self.conn.clone();
        let (lost, delivered): (u64, String) = bounded(
            self.timeout,
            self.lost_script
                .key(&self.keys.stream)
                .key(&self.keys.counts)
                .arg(&self.group)
                .invoke_async(&mut conn),
        )
        .await?;
        Ok((lost, delivered))
    }

    /// The group's lag (entries not yet delivered; `None` when Redis cannot tell) and
    /// pending count (delivered, not acknowledged).
    pub async fn lag(&self) -> Result<(Option<u64>, u64), StreamError> {
        let mut conn = self.conn.clone();
        let groups: Vec<std::collections::HashMap<String, Value>> = bounded(
            self.timeout,
            redis::cmd("XINFO")
                .arg("GROUPS")
                .arg(&self.keys.stream)
                .query_async(&mut conn),
        )
        .await?;
        let ours = groups.iter().find(|group| {
            matches!(group.get("name"), Some(Value::BulkString(name)) if name == self.group.as_bytes())
        });
        let int = |value: Option<&Value>| match value {
            Some(Value::Int(n)) => u64::try_from(*n).ok(),
            _ => None,
        };
        Ok(match ours {
            Some(group) => (
                int(group.get("lag")),
                int(group.get("pending")).unwrap_or(0),
            ),
            None => (None, 0),
        })
    }
}

fn protocol(what: &str) -> StreamError {
    StreamError::Protocol(what.to_owned())
}

fn bytes(value: &Value) -> Option<Vec<u8>> {
    match value {
        Value::BulkString(bytes) => Some(bytes.clone()),
        Value::SimpleString(text) => Some(text.clone().into_bytes()),
        _ => None,
    }
}

fn text(value: &Value) -> Result<String, StreamError> {
    bytes(value)
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .ok_or_else(|| protocol("expected a string"))
}

/// Parses the transaction's replies: `[XAUTOCLAIM]` or `[XREADGROUP, XREVRANGE]`. Takes them
/// by value to move the entries' bytes instead of copying them.
fn parse_read(from: &ReadFrom, replies: Vec<Value>) -> Result<Read, StreamError> {
    let mut replies = replies.into_iter();
    match (from, replies.next(), replies.next(), replies.next()) {
        (ReadFrom::Pending(_), Some(Value::Array(claimed)), None, None) => {
            let mut claimed = claimed.into_iter();
            let (Some(cursor), Some(entries)) = (claimed.next(), claimed.next()) else {
                return Err(protocol("XAUTOCLAIM reply"));
            };
            let deleted = match claimed.next() {
                Some(Value::Array(deleted)) => {
                    deleted.iter().map(text).collect::<Result<_, _>>()?
                }
                None => Vec::new(),
                Some(_) => return Err(protocol("XAUTOCLAIM deleted ids")),
            };
            let cursor = text(&cursor)?;
            Ok(Read {
                entries: parse_entries(entries)?,
                deleted,
                // XAUTOCLAIM's cursor returns to 0-0 once the pending list has been walked.
                next: Some(if cursor == "0-0" {
                    ReadFrom::New
                } else {
                    ReadFrom::Pending(cursor)
                }),
                idle_after: None,
            })
        }
        (ReadFrom::New, Some(read), Some(Value::Array(last)), None) => {
            let entries = match read {
                Value::Nil => Vec::new(),
                Value::Array(streams) => match streams.into_iter().next() {
                    None => Vec::new(),
                    Some(Value::Array(stream)) => match stream.into_iter().nth(1) {
                        Some(entries) => parse_entries(entries)?,
                        None => return Err(protocol("XREADGROUP stream reply")),
                    },
                    Some(_) => return Err(protocol("XREADGROUP reply")),
                },
                _ => return Err(protocol("XREADGROUP reply")),
            };
            let idle_after = if entries.is_empty() {
                Some(match last.first() {
                    Some(Value::Array(entry)) => {
                        entry.first().map(text).transpose()?.unwrap_or_default()
                    }
                    _ => "0-0".to_owned(),
                })
            } else {
                None
            };
            Ok(Read {
                entries,
                deleted: Vec::new(),
                next: Some(ReadFrom::New),
                idle_after,
            })
        }
        _ => Err(protocol("unexpected read reply")),
    }
}

fn into_bytes(value: Value) -> Result<Vec<u8>, StreamError> {
    match value {
        Value::BulkString(bytes) => Ok(bytes),
        Value::SimpleString(text) => Ok(text.into_bytes()),
        _ => Err(protocol("expected a string")),
    }
}

fn parse_entries(value: Value) -> Result<Vec<RawEntry>, StreamError> {
    let Value::Array(entries) = value else {
        return Err(protocol("entries are not an array"));
    };
    entries
        .into_iter()
        .map(|entry| {
            let Value::Array(parts) = entry else {
                return Err(protocol("entry is not an array"));
            };
            let mut parts = parts.into_iter();
            let (Some(id), Some(fields), None) = (parts.next(), parts.next(), parts.next()) else {
                return Err(protocol("entry is not [id, fields]"));
            };
            let fields = match fields {
                Value::Array(flat) => {
                    let mut pairs = Vec::with_capacity(flat.len() / 2);
                    let mut flat = flat.into_iter();
                    while let Some(name) = flat.next() {
                        let value = flat
                            .next()
                            .ok_or_else(|| protocol("odd number of field items"))?;
                        pairs.push((into_bytes(name)?, into_bytes(value)?));
                    }
                    pairs
                }
                // A pending entry that was deleted reads back with no fields.
                Value::Nil => Vec::new(),
                _ => return Err(protocol("fields are not an array")),
            };
            Ok(RawEntry {
                id: text(&id)?,
                fields,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(text: &str) -> Value {
        Value::BulkString(text.as_bytes().to_vec())
    }

    #[test]
    fn parses_new_entries() {
        let read = Value::Array(vec![Value::Array(vec![
            bulk("game_event_stream"),
            Value::Array(vec![Value::Array(vec![
                bulk("1-0"),
                Value::Array(vec![bulk("product_id"), bulk("exrps")]),
            ])]),
        ])]);
        let read = parse_read(&ReadFrom::New, vec![read, Value::Array(vec![])]).unwrap();
        assert_eq!(read.entries.len(), 1);
        assert_eq!(read.entries[0].id, "1-0");
        assert_eq!(
            read.entries[0].fields,
            vec![(b"product_id".to_vec(), b"exrps".to_vec())]
        );
        assert_eq!(read.next, Some(ReadFrom::New));
        assert_eq!(read.idle_after, None);
    }

    #[test]
    fn nothing_new_says_what_to_wait_after() {
        let last = Value::Array(vec![Value::Array(vec![bulk("7-1"), Value::Array(vec![])])]);
        let read = parse_read(&ReadFrom::New, vec![Value::Nil, last]).unwrap();
        assert_eq!(read.idle_after.as_deref(), Some("7-1"));
        let read = parse_read(&ReadFrom::New, vec![Value::Nil, Value::Array(vec![])]).unwrap();
        assert_eq!(read.idle_after.as_deref(), Some("0-0"));
    }

    #[test]
    fn claim_cursor_moves_on_to_new_entries_when_done() {
        let claimed = Value::Array(vec![
            bulk("0-0"),
            Value::Array(vec![]),
            Value::Array(vec![bulk("3-0")]),
        ]);
        let read = parse_read(&ReadFrom::Pending("0-0".into()), vec![claimed]).unwrap();
        assert_eq!(read.deleted, vec!["3-0".to_owned()]);
        assert_eq!(read.next, Some(ReadFrom::New));
    }

    #[test]
    fn malformed_replies_are_errors_not_panics() {
        assert!(parse_read(&ReadFrom::New, vec![]).is_err());
        assert!(parse_read(&ReadFrom::New, vec![Value::Int(3), Value::Array(vec![])]).is_err());
        assert!(parse_read(&ReadFrom::Pending("0-0".into()), vec![Value::Nil]).is_err());
    }
}
