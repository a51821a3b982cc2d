//! The worker pool: how many of the stream's partitions this process may hold, so that live
//! workers spread the partitions evenly between them.
//!
//! Each worker process announces itself in a sorted set beside the first stream (consumer →
//! until when it counts as alive, in Redis's clock) every third of a lease, and counts the
//! live ones. Its share is `ceil(partitions / live workers)`. A partition's task takes the
//! partition's lease only while the process holds fewer partitions than its share, and gives
//! a partition back (at a batch boundary, releasing the lease) while it holds more: when a
//! worker joins, the others shed partitions until each holds its share; when one stops or
//! dies, its partitions' leases lapse (or are released) and the others' shares grow. Who
//! holds a partition is still decided by its lease alone (see `stream`): the pool only
//! decides who tries.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use redis::Script;
use tokio_util::sync::CancellationToken;

use crate::core::keys::PoolKeys;
use crate::core::store::{Connection, StoreError, bounded};

/// Announces a worker and counts the live ones: `KEYS[1]` the workers' set, `KEYS[2]` the
/// partition count; `ARGV[1]` the consumer, `ARGV[2]` how long it counts as alive (ms),
/// `ARGV[3]` its partition count. Returns the live workers and the pool's partition count
/// (the first one given, kept).
const HEARTBEAT: &str = "
local now = redis.call('TIME')
local ms = now[1] * 1000 + math.floor(now[2] / 1000)
redis.call('ZADD', KEYS[1], ms + tonumber(ARGV[2]), ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ms)
redis.call('SET', KEYS[2], ARGV[3], 'NX')
return {redis.call('ZCARD', KEYS[1]), tonumber(redis.call('GET', KEYS[2]))}
";

/// What this process may hold, shared by its partitions' tasks.
pub struct Pool {
    partitions: u32,
    /// Partitions whose lease this process holds (or is taking).
    held: AtomicU32,
    /// `ceil(partitions / live workers)`; every partition until the first heartbeat.
    share: AtomicU32,
    /// Per partition, the lag and pending entries last sampled while held (0 when not held).
    lags: Vec<AtomicU64>,
    pendings: Vec<AtomicU64>,
    /// Woken when a task may now take a partition (the share grew, a place was freed).
    room: tokio::sync::Notify,
}

impl Pool {
    pub fn new(partitions: u32) -> Self {
        let zeros = || (0..partitions).map(|_| AtomicU64::new(0)).collect();
        Self {
            partitions,
            held: AtomicU32::new(0),
            // Until the first heartbeat tells how many others there are, take nothing more
            // than one partition: a new worker must not grab every lapsed lease at once.
            share: AtomicU32::new(1),
            lags: zeros(),
            pendings: zeros(),
            room: tokio::sync::Notify::new(),
        }
    }

    /// Claims one more partition if this process holds fewer than its share; the caller
    /// then tries the partition's lease, and calls [`Pool::release`] if it did not get it.
    pub fn try_take(&self) -> bool {
        let share = self.share.load(Ordering::SeqCst);
        self.held
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |held| {
                (held < share).then_some(held + 1)
            })
            .is_ok()
    }

    /// Gives up a claimed partition (lease not taken, lost, released or given back).
    pub fn release(&self, partition: u32) {
        let _ = self
            .held
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |held| {
                held.checked_sub(1)
            });
        self.record_lag(partition, 0, 0);
        self.publish();
        self.room.notify_waiters();
    }

    /// Waits until a place may have been freed or the share grown.
    pub async fn room(&self) {
        self.room.notified().await;
    }

    /// Whether a held partition should be given back: this process holds more than its
    /// share. Only one task at a time gets `true` for each partition over the share (the
    /// count drops at once); that task then releases its lease and must not call
    /// [`Pool::release`].
    pub fn should_give_back(&self) -> bool {
        let share = self.share.load(Ordering::SeqCst);
        let given = self
            .held
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |held| {
                (held > share).then_some(held - 1)
            })
            .is_ok();
        if given {
            metrics::counter!("stats_tracker_worker_rebalances_total").increment(1);
            self.publish();
        }
        given
    }

    /// A partition's task took its lease (after [`Pool::try_take`]).
    pub fn took(&self) {
        self.publish();
    }

    /// The lag and pending entries of a held partition, as last sampled.
    pub fn record_lag(&self, partition: u32, lag: u64, pending: u64) {
        let index = partition as usize;
        if let (Some(lag_slot), Some(pending_slot)) =
            (self.lags.get(index), self.pendings.get(index))
        {
            lag_slot.store(lag, Ordering::SeqCst);
            pending_slot.store(pending, Ordering::SeqCst);
        }
        let partition = partition.to_string();
        metrics::gauge!("stats_tracker_worker_partition_lag", "partition" => partition.clone())
            .set(lag as f64);
        let sum = |values: &[AtomicU64]| {
            values
                .iter()
                .map(|value| value.load(Ordering::SeqCst))
                .sum::<u64>() as f64
        };
        metrics::gauge!("stats_tracker_worker_consumer_lag").set(sum(&self.lags));
        metrics::gauge!("stats_tracker_worker_pending_entries").set(sum(&self.pendings));
    }

    /// The lag last sampled for `partition`.
    pub fn lag_of(&self, partition: u32) -> u64 {
        self.lags
            .get(partition as usize)
            .map_or(0, |lag| lag.load(Ordering::SeqCst))
    }

    /// Sets the holding gauges.
    fn publish(&self) {
        metrics::gauge!("stats_tracker_worker_lease_held")
            .set(f64::from(self.held.load(Ordering::SeqCst)));
    }

    /// Applies a heartbeat's count of live workers.
    fn set_live(&self, live: u32) {
        let share = self.partitions.div_ceil(live.max(1));
        if self.share.swap(share, Ordering::SeqCst) < share {
            self.room.notify_waiters();
        }
        metrics::gauge!("stats_tracker_worker_pool_workers").set(f64::from(live));
    }
}

/// Why the pool cannot run.
#[derive(Debug, thiserror::Error)]
pub enum PoolError {
    #[error(
        "the event stream was set up with {stored} partition(s) and this process has \
         stream.partitions = {configured}; every process must use the same count (changing it \
         on a running system is not supported: drain the streams, then start every process \
         with the new count after deleting the key {key})"
    )]
    PartitionsDiffer {
        stored: u32,
        configured: u32,
        key: String,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Keeps this process announced in the pool and its share up to date, until `shutdown`;
/// fails (for good) if the stream was set up with another partition count.
pub async fn heartbeat(
    pool: &Pool,
    conn: Connection,
    keys: PoolKeys,
    consumer: &str,
    lease_ttl: Duration,
    shutdown: &CancellationToken,
) -> Result<(), PoolError> {
    let script = Script::new(HEARTBEAT);
    let interval = lease_ttl / 3;
    let timeout = interval.max(Duration::from_millis(100));
    loop {
        let mut invocation = script.prepare_invoke();
        invocation
            .key(&keys.workers)
            .key(&keys.partitions)
            .arg(consumer)
            .arg(lease_ttl.as_millis() as u64)
            .arg(pool.partitions);
        let mut conn_now = conn.clone();
        match bounded(
            timeout,
            invocation.invoke_async::<(u32, u32)>(&mut conn_now),
        )
        .await
        {
            Ok((_, stored)) if stored != pool.partitions => {
                return Err(PoolError::PartitionsDiffer {
                    stored,
                    configured: pool.partitions,
                    key: keys.partitions.clone(),
                });
            }
            Ok((live, _)) => pool.set_live(live),
            // Redis away: keep the share; the leases decide who works meanwhile.
            Err(error) => tracing::debug!(%error, "pool heartbeat failed"),
        }
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = shutdown.cancelled() => break,
        }
    }
    // Leaving: the others' shares grow at their next heartbeat, not a lease later.
    let mut conn_now = conn.clone();
    let leave = redis::cmd("ZREM").arg(&keys.workers).arg(consumer).clone();
    let _ = bounded(timeout, leave.query_async::<i64>(&mut conn_now)).await;
    Ok(())
}

/// The pool's recorded partition count, if any process has run (for start-up checks).
pub async fn stored_partitions(
    conn: &mut Connection,
    keys: &PoolKeys,
) -> redis::RedisResult<Option<u32>> {
    redis::cmd("GET")
        .arg(&keys.partitions)
        .query_async(conn)
        .await
}

#[cfg(test)]
mod tests {
    use super::Pool;

    #[test]
    fn a_process_holds_at_most_its_share_and_sheds_the_rest() {
        let pool = Pool::new(8);
        assert!(pool.try_take(), "one partition before the first heartbeat");
        assert!(!pool.try_take());
        pool.set_live(1);
        for _ in 1..8 {
            assert!(pool.try_take());
        }
        assert!(!pool.try_take(), "all eight held");
        pool.set_live(3);
        let given: usize = (0..8).filter(|_| pool.should_give_back()).count();
        assert_eq!(given, 5, "keeps ceil(8 / 3) = 3");
        assert!(!pool.try_take());
        pool.set_live(2);
        assert!(pool.try_take(), "a share of 4 once a worker left");
        pool.release(0);
        assert!(pool.try_take());
    }
}
