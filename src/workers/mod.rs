//! The stream worker: reads game events from the consumer group, applies their effects to the
//! store exactly once, dead-letters what it cannot use, and serves its own metrics.
//!
//! A worker process runs one task per stream partition (`stream.partitions`; one: the whole
//! stream), and `pool` decides how many of them may hold their partition's lease at once, so
//! that live workers share the partitions evenly. Each partition's task, top-down:
//! 1. make sure the consumer group exists, take the partition's lease when the pool gives
//!    room (or wait as a standby);
//! 2. take over every pending entry of the group (a crashed predecessor's unacknowledged
//!    batch), then read new entries, blocking on the stream while it is empty;
//! 3. per batch: parse, load what planning needs (positions, rating states) unless known,
//!    plan (pure), hand it to the commit pipeline (`pipeline`), which commits each product
//!    atomically with its applied position and acknowledges; while Redis applies batch N (and
//!    up to two before it), batch N+1 is planned and batch N+2 is read;
//! 4. on any Redis error: log, back off, start again at 1; on shutdown, or when the pool asks
//!    for the partition back: finish the batches in flight, release the lease.

pub mod commit;
mod pipeline;
pub mod plan;
pub mod pool;
mod recover;
mod stream;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::get;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::core::config::{RedisEndpoint, Settings};
use crate::core::keys::PoolKeys;
use crate::core::metrics::{ProductLabels, prometheus};
use crate::core::partition::partition_stream;
use crate::core::store::Connection;
use crate::core::store::StoreError;
use crate::games::Games;
use crate::history::rebuild::{Rebuilder, serve_requests};
use crate::server::listener::Limits;
use commit::{CommitError, Committer, PreparedCommit};
use pipeline::{Commits, Planned, Sink};
use plan::{Known, Needs, Partition, Rules};
use pool::{Pool, PoolError};
use stream::{EventStream, Lease, Read, ReadFrom, StreamError};

/// How long one Redis command of the worker may take (blocking waits get more).
const COMMAND_TIMEOUT: Duration = Duration::from_secs(5);
/// Back-off bounds while Redis is unreachable.
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(2);
/// How long the worker waits before trying again a commit held by a rebuild's switch.
const HOLD_WAIT: Duration = Duration::from_millis(50);
/// How often consumer lag is sampled.
const LAG_INTERVAL: Duration = Duration::from_secs(1);

/// Why a stretch of work under one lease ended early.
#[derive(Debug, thiserror::Error)]
enum WorkerError {
    #[error(transparent)]
    Stream(#[from] StreamError),
    #[error(transparent)]
    Commit(#[from] CommitError),
    #[error("the commit task failed: {0}")]
    CommitTask(#[from] tokio::task::JoinError),
    #[error("the commit task stopped")]
    CommitsStopped,
    #[error(transparent)]
    Layout(#[from] crate::core::layout::LayoutError),
    #[error("the store server restarted or changed (run_id {was} → {now})")]
    StoreRestarted { was: String, now: String },
    #[error(
        "the store lost acknowledged writes: {partition} is at {store} but was acknowledged at {acked}"
    )]
    StoreBehind {
        partition: String,
        store: String,
        acked: String,
    },
}

/// The worker's bare `StoreError`s come from the committer's reads (its loads and the store's
/// run_id), so they are the store's; the stream's arrive as `StreamError`s.
impl From<StoreError> for WorkerError {
    fn from(error: StoreError) -> Self {
        WorkerError::Commit(error.into())
    }
}

/// A stream worker, ready to run: one task per stream partition, each applying its
/// partition while it holds the partition's lease, as many at once as the pool gives this
/// process (see `pool`).
pub struct Worker {
    partitions: Vec<PartitionWorker>,
    pool: Arc<Pool>,
    /// The stream's Redis, for the pool's heartbeat.
    stream_conn: Connection,
    pool_keys: PoolKeys,
    consumer: String,
    lease_ttl: Duration,
    /// Rebuilds asked for by voids, worked through beside the partitions (see
    /// `history::rebuild::serve_requests`).
    rebuilds: Option<(Rebuilder, Option<std::path::PathBuf>)>,
    /// The webhooks the change feeds are POSTed to, each delivered by a task of its own.
    webhooks: Vec<crate::webhooks::Deliverer>,
}

/// The worker of one stream partition (the whole stream when there is one).
struct PartitionWorker {
    /// This partition's index (0 when there is one).
    partition: u32,
    stream: Arc<EventStream>,
    sink: Sink,
    rules: Arc<Rules>,
    rating_cache_entries: usize,
    pool: Arc<Pool>,
}

impl Worker {
    /// Builds a worker from settings; connects lazily, so Redis may still be missing.
    pub fn new(settings: &Settings, rules: Rules) -> anyhow::Result<Self> {
        // Install the recorder before the first event is counted.
        let _ = prometheus();
        crate::core::metrics::show_counters_at_zero("stats_tracker_worker_");
        let count = settings.stream.partitions;
        metrics::gauge!("stats_tracker_worker_partitions").set(f64::from(count));
        let pool = Arc::new(Pool::new(count));
        let rules = Arc::new(rules.keeping_history(settings.history.enabled));
        let labels = Arc::new(ProductLabels::new(settings.server.max_product_labels));
        let consumer = settings.consumer_name();
        let mut partitions = Vec::new();
        for partition in 0..count {
            let name = partition_stream(&settings.stream.name, count, partition);
            let stream = Arc::new(EventStream::new(
                &settings.stream_redis(),
                &settings.stream,
                &name,
                consumer.clone(),
                COMMAND_TIMEOUT,
            )?);
            let committer = Committer::new(
                // The worker plans on what it reads: always from the masters.
                &RedisEndpoint {
                    read_from_replicas: false,
                    ..settings.store_redis()
                },
                settings.key_space()?,
                (partition, count),
                settings.worker.entries_per_script_call,
                settings.dead_letter_retention(),
                COMMAND_TIMEOUT,
            )?
            .with_history_retention(settings.history_retention())
            .with_feed_retention(settings.worker.feed_max_entries);
            partitions.push(PartitionWorker {
                partition,
                sink: Sink {
                    committer: Arc::new(committer),
                    stream: stream.clone(),
                    labels: labels.clone(),
                },
                stream,
                rules: rules.clone(),
                rating_cache_entries: settings.worker.rating_cache_entries,
                pool: pool.clone(),
            });
        }
        let mut webhooks = Vec::new();
        for hook in &settings.webhooks {
            webhooks.push(crate::webhooks::Deliverer::new(
                master_store(settings)?,
                hook.clone(),
                &consumer,
            )?);
        }
        Ok(Self {
            partitions,
            pool,
            webhooks,
            stream_conn: crate::core::store::lazy_connection(
                &settings.stream_redis(),
                COMMAND_TIMEOUT,
            )?,
            pool_keys: PoolKeys::new(&settings.stream.name, &settings.stream.group),
            consumer,
            lease_ttl: Duration::from_millis(settings.stream.lease_ttl_ms),
            rebuilds: None,
        })
    }

    /// Also works through the rebuilds voids ask for, with `games` (history must be kept).
    pub fn serving_rebuilds(
        mut self,
        settings: &Settings,
        games: Arc<Games>,
    ) -> anyhow::Result<Self> {
        if settings.history.enabled {
            let rebuilder = Rebuilder::new(master_store(settings)?, settings.store_redis(), games);
            self.rebuilds = Some((rebuilder, settings.history.segments_dir.clone()));
        }
        Ok(self)
    }

    /// Works until `shutdown` is cancelled, surviving Redis outages; fails only if the event
    /// stream was set up with another partition count.
    pub async fn run(&self, shutdown: CancellationToken) -> Result<(), PoolError> {
        tracing::info!(
            consumer = %self.consumer,
            partitions = self.partitions.len(),
            "worker started"
        );
        let stop = shutdown.child_token();
        let heartbeat = async {
            let beat = pool::heartbeat(
                &self.pool,
                self.stream_conn.clone(),
                self.pool_keys.clone(),
                &self.consumer,
                self.lease_ttl,
                &stop,
            )
            .await;
            // A pool that cannot run stops every partition.
            stop.cancel();
            beat
        };
        let partitions =
            futures::future::join_all(self.partitions.iter().map(|p| p.run(stop.clone())));
        let rebuilds = async {
            if let Some((rebuilder, segments)) = &self.rebuilds {
                serve_requests(rebuilder, segments.clone(), stop.clone()).await;
            }
        };
        let webhooks =
            futures::future::join_all(self.webhooks.iter().map(|hook| hook.run(stop.clone())));
        let (beat, _, _, _) = tokio::join!(heartbeat, partitions, rebuilds, webhooks);
        tracing::info!("worker stopped");
        beat
    }
}

/// A store handle of the worker's own (connecting lazily) that reads from the masters: what
/// the worker's side tasks (rebuilds, webhooks) act on.
fn master_store(settings: &Settings) -> anyhow::Result<crate::core::store::Store> {
    Ok(crate::core::store::Store::connect_lazy(
        &RedisEndpoint {
            read_from_replicas: false,
            ..settings.store_redis()
        },
        settings.key_space()?,
        COMMAND_TIMEOUT,
    )?)
}

impl PartitionWorker {
    /// Works on this partition until `shutdown` is cancelled, surviving Redis outages.
    async fn run(&self, shutdown: CancellationToken) {
        let mut backoff = BACKOFF_MIN;
        while !shutdown.is_cancelled() {
            match self.work_under_lease(&shutdown, &mut backoff).await {
                Ok(()) => {}
                Err(WorkerError::Commit(CommitError::Held)) => {
                    // A rebuild switches a product over; it holds the product a moment only.
                    metrics::counter!("stats_tracker_worker_held_commits_total").increment(1);
                    tracing::info!(
                        partition = self.partition,
                        "a product is being switched to its rebuilt copy; waiting"
                    );
                    tokio::select! {
                        _ = tokio::time::sleep(HOLD_WAIT) => {}
                        _ = shutdown.cancelled() => {}
                    }
                }
                Err(WorkerError::Commit(CommitError::Stale)) => {
                    metrics::counter!("stats_tracker_worker_stale_reloads_total").increment(1);
                    tracing::warn!(
                        partition = self.partition,
                        "the store changed under the worker; reloading its state"
                    );
                }
                Err(
                    error @ (WorkerError::StoreBehind { .. } | WorkerError::StoreRestarted { .. }),
                ) => {
                    // The next lease start re-derives what the store lost.
                    tracing::warn!(partition = self.partition, %error, "reloading to re-derive lost effects");
                }
                Err(WorkerError::Stream(StreamError::LeaseLost))
                | Err(WorkerError::Commit(CommitError::Fenced)) => {
                    tracing::warn!(
                        partition = self.partition,
                        "lost the stream lease; standing by"
                    );
                }
                Err(error) => {
                    metrics::counter!("stats_tracker_worker_redis_errors_total").increment(1);
                    tracing::warn!(partition = self.partition, %error, retry_in = ?backoff, "worker interrupted; retrying");
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {}
                        _ = shutdown.cancelled() => {}
                    }
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                }
            }
        }
    }

    /// Takes the lease and processes batches until shutdown (Ok) or an error.
    async fn work_under_lease(
        &self,
        shutdown: &CancellationToken,
        backoff: &mut Duration,
    ) -> Result<(), WorkerError> {
        self.stream.ensure_group().await?;
        let Some((lease, mut claim)) = self.acquire(shutdown).await? else {
            return Ok(());
        };
        *backoff = BACKOFF_MIN;
        tracing::info!(
            partition = self.partition,
            epoch = lease.epoch,
            "holding the stream lease"
        );

        // First everything pending in the group (a predecessor's unacknowledged entries, in id
        // order), then new entries.
        let mut sampled = Sampled {
            at: Instant::now() - LAG_INTERVAL,
            delivered: String::new(),
        };
        // What this worker knows of the store: valid while it holds this lease, and only
        // until an error (returning drops it).
        let mut known = Known::default();
        // Planned batches are handed to the commit task, which sends each batch's commit
        // without waiting for the previous one's replies (see `Commits`).
        self.sink.committer.ensure_layout().await?;
        self.sink.committer.load_script().await?;
        let mut commits = Commits::start(self.sink.clone());
        // Effects the store lost after they were acknowledged come first: they precede
        // everything still to read.
        self.rederive_lost(&lease, &mut known, &mut commits).await?;
        // A store that restarts later may come back with less (an AOF missing its last
        // second, an older snapshot) while this worker idles: its run_id says so.
        let store_id = self.sink.committer.store_run_id().await?;
        let mut read = self
            .stream
            .read(&lease, &ReadFrom::Pending("0-0".to_owned()))
            .await?;
        loop {
            let next = read.next.clone().unwrap_or(ReadFrom::New);
            if let Some(last_id) = &read.idle_after {
                // Nothing new: commit what is planned before waiting.
                commits.flush().await?;
                self.sample(&mut sampled, &store_id).await?;
                tokio::select! {
                    waited = self.stream.wait_for_new(last_id) => waited?,
                    _ = shutdown.cancelled() => {}
                }
                if shutdown.is_cancelled() || claim.give_back() {
                    break;
                }
                read = self.stream.read(&lease, &next).await?;
                continue;
            }
            let leaving = shutdown.is_cancelled() || claim.give_back();
            if leaving || known.cached_entries() > self.rating_cache_entries {
                // Nothing may stay planned and uncommitted: when leaving, and before the view
                // is dropped (a planned batch's states and positions are not in the store yet).
                commits.flush().await?;
                if leaving {
                    // Finish what was read; read nothing more.
                    let batch = self.plan_read(&lease, &read, &mut known).await?;
                    commits.send(batch).await?;
                    commits.flush().await?;
                    break;
                }
                // The store holds everything committed: dropping it costs reloads only.
                known.forget();
            }
            metrics::gauge!("stats_tracker_worker_rating_cache_entries")
                .set(known.ratings.len() as f64);
            if read.entries.len() + read.deleted.len() < self.stream.batch_size() {
                // Caught up (a short read): the next entries have not arrived yet, so reading
                // ahead would only hold this batch's commit back by a round trip. Plan it,
                // commit it, then read.
                let batch = self.plan_read(&lease, &read, &mut known).await?;
                commits.send(batch).await?;
                commits.flush().await?;
                read = self.stream.read(&lease, &next).await?;
                self.sample(&mut sampled, &store_id).await?;
                continue;
            }
            // A backlog: plan batch N+1 and read batch N+2 while the commit task commits
            // batch N (and those before it, if Redis is behind).
            let (planning, read_ahead) = tokio::join!(
                self.plan_read(&lease, &read, &mut known),
                self.stream.read(&lease, &next)
            );
            commits.send(planning?).await?;
            read = read_ahead?;
            self.sample(&mut sampled, &store_id).await?;
        }
        // Both ways out of the loop commit what was planned first.
        // Let a standby take over at once instead of after the lease times out.
        if let Err(error) = self.stream.release(&lease).await {
            tracing::warn!(%error, "could not release the stream lease");
        }
        if claim.given_back {
            tracing::info!(
                partition = self.partition,
                "gave the partition back to the pool"
            );
        }
        Ok(())
    }

    /// Waits until this worker holds the partition's lease, trying only while the pool gives
    /// this process room for one more partition; `None` if shut down first.
    async fn acquire(
        &self,
        shutdown: &CancellationToken,
    ) -> Result<Option<(Lease, Claim<'_>)>, WorkerError> {
        let mut announced = false;
        loop {
            let wait = if self.pool.try_take() {
                let claim = Claim {
                    pool: &self.pool,
                    partition: self.partition,
                    given_back: false,
                };
                match self.stream.try_acquire().await? {
                    Ok(lease) => {
                        self.pool.took();
                        metrics::gauge!(
                            "stats_tracker_worker_partition_lease_held",
                            "partition" => self.partition.to_string()
                        )
                        .set(1.0);
                        return Ok(Some((lease, claim)));
                    }
                    Err(wait) => {
                        if !announced {
                            tracing::info!(
                                partition = self.partition,
                                ?wait,
                                "another worker holds the stream lease; standing by"
                            );
                            announced = true;
                        }
                        wait.min(self.stream.lease_ttl() / 2) + Duration::from_millis(10)
                    }
                }
            } else {
                // This process holds its share: look again when shares may have changed.
                self.stream.lease_ttl() / 4
            };
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = self.pool.room() => {}
                _ = shutdown.cancelled() => return Ok(None),
            }
        }
    }

    /// Parses a read batch, loads what planning needs, plans it and encodes its commit; moves
    /// `known` past it.
    async fn plan_read(
        &self,
        lease: &Lease,
        read: &Read,
        known: &mut Known,
    ) -> Result<Planned, WorkerError> {
        let started = Instant::now();
        let ids: Vec<String> = read
            .entries
            .iter()
            .map(|entry| entry.id.clone())
            .chain(read.deleted.iter().cloned())
            .collect();
        if ids.is_empty() {
            return Ok(Planned {
                ids,
                acknowledge: true,
                positions: Vec::new(),
                commit: PreparedCommit::default(),
                outcomes: Vec::new(),
                dead_letters: Vec::new(),
                started,
            });
        }
        let parsed = plan::parse(&read.entries);
        let needs = plan::needs(&parsed, &self.rules, known);
        self.sink.committer.load(&needs, known).await?;
        self.check_not_behind(&needs.positions, known).await?;
        // Let the commit task and the read (often queued on this thread) send what they have
        // before the CPU work of planning, when there was nothing to load (which would have
        // let them go).
        tokio::task::yield_now().await;
        let batch = plan::plan(&parsed, &read.deleted, &self.rules, known);
        let commit = self.sink.committer.prepare(lease.epoch, &batch, known);
        let positions = Known::positions_after(&batch)
            .into_iter()
            .map(|(partition, position)| (partition.record_name(), position))
            .collect();
        known.advance_past(&batch);
        let dead_letters = batch.letter_kinds();
        Ok(Planned {
            ids,
            acknowledge: true,
            positions,
            commit,
            outcomes: batch.outcomes,
            dead_letters,
            started,
        })
    }

    /// Fails if a partition just loaded from the store is behind the position recorded when
    /// its last batch was acknowledged: the store lost acknowledged writes, and planning on
    /// it would apply new entries past the lost ones (the next lease start re-derives them).
    async fn check_not_behind(
        &self,
        loaded: &[Partition],
        known: &Known,
    ) -> Result<(), WorkerError> {
        let names: Vec<String> = loaded.iter().map(Partition::record_name).collect();
        let recorded = self.stream.acked_positions_of(&names).await?;
        let recorded: Vec<(Partition, String)> = loaded
            .iter()
            .cloned()
            .zip(recorded)
            .filter_map(|(partition, acked)| Some((partition, acked?)))
            .collect();
        match recover::lost(&recorded, known).into_iter().next() {
            None => Ok(()),
            Some(lost) => Err(WorkerError::StoreBehind {
                partition: lost.partition.record_name(),
                store: lost.store.unwrap_or_else(|| "nothing".to_owned()),
                acked: lost.acked,
            }),
        }
    }

    /// At a lease's start: finds the partitions whose store position is behind the position
    /// recorded with their last acknowledgement (the store lost acknowledged writes) and
    /// applies their entries again from the stream, in order, before anything else is read.
    /// See `recover`.
    async fn rederive_lost(
        &self,
        lease: &Lease,
        known: &mut Known,
        commits: &mut Commits,
    ) -> Result<(), WorkerError> {
        let recorded: Vec<(Partition, String)> = self
            .stream
            .acked_positions()
            .await?
            .into_iter()
            .filter_map(|(name, acked)| Some((Partition::from_record_name(&name)?, acked)))
            .collect();
        for chunk in recorded.chunks(1000) {
            let needs = Needs {
                positions: chunk
                    .iter()
                    .map(|(partition, _)| partition.clone())
                    .collect(),
                ..Needs::default()
            };
            self.sink.committer.load(&needs, known).await?;
        }
        let lost = recover::lost(&recorded, known);
        if lost.is_empty() {
            return Ok(());
        }
        let pending = self.stream.pending_bounds().await?;
        let (start, end) = recover::range(&lost, pending.as_ref());
        tracing::warn!(
            partitions = lost.len(),
            from = %start,
            to = %end,
            "the store lost writes the stream had acknowledged; re-deriving them from the stream"
        );
        let removals = self.stream.removals().await?;
        for gap in lost
            .iter()
            .filter(|lost| recover::may_be_gone(lost, &removals))
        {
            metrics::counter!("stats_tracker_worker_rederive_gaps_total").increment(1);
            tracing::error!(
                partition = gap.partition.record_name(),
                store = gap.store.as_deref().unwrap_or("nothing"),
                acked = %gap.acked,
                oldest_in_stream = removals.first.as_deref().unwrap_or("none"),
                max_deleted = %removals.max_deleted,
                "entries the store lost may be gone from the stream (deleted or trimmed): \
                 re-deriving what is left, in order; effects of entries no longer there are lost"
            );
        }
        let mut from = start;
        let mut rederived = 0;
        loop {
            let entries = self
                .stream
                .range(&from, &end, self.stream.batch_size())
                .await?;
            let Some(last) = entries.last() else {
                break;
            };
            from = format!("({}", last.id);
            let more = entries.len() == self.stream.batch_size();
            let read = Read {
                entries,
                ..Read::default()
            };
            let mut batch = self.plan_read(lease, &read, known).await?;
            batch.acknowledge = false;
            rederived += batch
                .outcomes
                .iter()
                .filter(|outcome| outcome.outcome != plan::Outcome::Replayed)
                .count();
            commits.send(batch).await?;
            if !more {
                break;
            }
        }
        commits.flush().await?;
        metrics::counter!("stats_tracker_worker_rederived_entries_total")
            .increment(rederived as u64);
        metrics::counter!("stats_tracker_worker_rederivations_total").increment(1);
        // A record still ahead of the store now is ahead of every effect the stream gives
        // (its entries are gone, or the games file changed what they do): lower it, or every
        // lease would find the partition behind again.
        for lost in &lost {
            let now = known.positions.get(&lost.partition).cloned().flatten();
            let still_behind = now
                .as_deref()
                .is_none_or(|now| plan::compare_ids(now, &lost.acked).is_lt());
            if still_behind {
                self.stream
                    .set_acked_position(&lost.partition.record_name(), now.as_deref())
                    .await?;
            }
        }
        tracing::warn!(
            rederived,
            partitions = lost.len(),
            "re-derived the effects the store had lost"
        );
        Ok(())
    }

    /// At most once per [`LAG_INTERVAL`]: updates the lag and pending gauges, and fails if the
    /// store server is no longer the one (`store_id`) the lease started with, so that the next
    /// lease start re-derives whatever it came back without.
    async fn sample(&self, last: &mut Sampled, store_id: &str) -> Result<(), WorkerError> {
        if last.at.elapsed() < LAG_INTERVAL {
            return Ok(());
        }
        last.at = Instant::now();
        match self.stream.account_lost().await {
            Ok((lost, delivered)) => {
                if lost > 0 {
                    metrics::counter!("stats_tracker_worker_lost_entries_total").increment(lost);
                    tracing::error!(
                        lost,
                        after = %last.delivered,
                        up_to = %delivered,
                        "entries were deleted or trimmed from the stream before the tracker \
                         read them (ids between `after` and `up_to`); their events are lost to it"
                    );
                }
                if !delivered.is_empty() {
                    last.delivered = delivered;
                }
            }
            Err(error) => tracing::debug!(%error, "could not account for lost stream entries"),
        }
        let now = self.sink.committer.store_run_id().await?;
        if now != store_id {
            return Err(WorkerError::StoreRestarted {
                was: store_id.to_owned(),
                now,
            });
        }
        match self.stream.lag().await {
            Ok((lag, pending)) => {
                // Redis cannot always tell the lag: then the last known one stands.
                let lag = lag.unwrap_or_else(|| self.pool.lag_of(self.partition));
                self.pool.record_lag(self.partition, lag, pending);
            }
            Err(error) => tracing::debug!(%error, "could not sample consumer lag"),
        }
        Ok(())
    }
}

/// A partition task's claim on one of the pool's places for this process; given up when
/// dropped (lease lost, error, shutdown), unless it was given back to the pool.
struct Claim<'a> {
    pool: &'a Pool,
    partition: u32,
    given_back: bool,
}

impl Claim<'_> {
    /// Whether to hand the partition to another worker (this process holds more than its
    /// share); once true, stays true.
    fn give_back(&mut self) -> bool {
        if !self.given_back && self.pool.should_give_back() {
            self.given_back = true;
        }
        self.given_back
    }
}

impl Drop for Claim<'_> {
    fn drop(&mut self) {
        if self.given_back {
            self.pool.record_lag(self.partition, 0, 0);
        } else {
            self.pool.release(self.partition);
        }
        metrics::gauge!(
            "stats_tracker_worker_partition_lease_held",
            "partition" => self.partition.to_string()
        )
        .set(0.0);
    }
}

/// When the worker last sampled the group, and the last id delivered to it then.
struct Sampled {
    at: Instant,
    delivered: String,
}

/// Serves the worker's `/metrics` (and `/healthz`) on `listener` until shutdown.
pub async fn serve_metrics(
    listener: TcpListener,
    limits: Limits,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let router = Router::new()
        .route("/metrics", get(|| async { prometheus().render() }))
        .route("/healthz", get(|| async { "ok" }));
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, "worker metrics listening");
    }
    crate::server::listener::serve(listener, router, limits, shutdown).await
}
