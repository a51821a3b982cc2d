//! Rebuilding a product from its history with the games file as it is now: every board,
//! period board, rating, rating history and stat (or only some boards: back-filling a board
//! added to the games file), leaving voided matches out.
//!
//! The rebuild replays the history (segment files first, then the chunks in Redis) through
//! the worker's own planning and commit script into a shadow copy of the product
//! (`P:{<product>}:~rebuild:…`, same hash slot), while the live worker goes on applying new
//! entries. When the shadow has caught up, the product is held for a moment (the worker's
//! commits of it wait), the last chunks are replayed, and one script checks that the shadow
//! is exactly at the live position and that no admin change came in between, then renames
//! the shadow's keys over the live ones and bumps the generation (so the worker reloads its
//! view): readers see the old product or the rebuilt one, never a mix.
//!
//! Invariants: the live keys change only in that script. The shadow carries its own applied
//! position, so a rebuild stopped (or killed) anywhere resumes from it, unless the games file,
//! the boards asked for or the product's generation (an erasure, a reset, a void) changed since
//! it was started: then the shadow is dropped and the replay starts again. One rebuild per
//! product at a time (a lock kept alive while it runs).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;
use tokio_util::task::AbortOnDropHandle;

use super::segments;
use super::{ChunkCursor, Erasures, HistoryError, decode_chunk, split_chunk};
use crate::core::config::{DeadLetterRetention, RedisEndpoint};
use crate::core::effects::Changes;
use crate::core::event::RawEntry;
use crate::core::ids::{PlayerId, ProductId};
use crate::core::keys::{
    HIDDEN_BOARD_INFIX, PartitionKeys, SHADOW_SUFFIX, encode_segment, escape_glob,
};
use crate::core::store::{Connection, Store, StoreError};
use crate::games::{Games, ProductGames};
use crate::workers::commit::{CommitCounts, CommitError, Committer};
use crate::workers::plan::{self, Known, PlannedEvent, Rules, compare_ids};

/// Entries replayed per planned batch.
const BATCH: usize = 2000;
/// The lock's lifetime; kept alive every third of it while the rebuild runs.
const LOCK_TTL: Duration = Duration::from_secs(9);
/// How long the product is held at most while it is switched (the worker waits meanwhile).
const HOLD_TTL: Duration = Duration::from_secs(30);
/// The lease epoch of a copy's writes (only its replay writes there).
const COPY_EPOCH: u64 = 1;

/// What to rebuild.
#[derive(Debug, Clone)]
pub struct Options {
    pub product: ProductId,
    /// Boards to rebuild; empty: every board and the stats.
    pub boards: Vec<String>,
    /// Where exported segment files are.
    pub segments: Option<PathBuf>,
    /// Replay and report what would change; switch nothing.
    pub dry_run: bool,
    /// Rebuild even when the history misses entries the product applied (their effects are
    /// lost).
    pub allow_partial_history: bool,
}

/// Why a rebuild did not happen.
#[derive(Debug, thiserror::Error)]
pub enum RebuildError {
    #[error(
        "unknown product {0:?}: the store holds nothing of it and the games file does not list it"
    )]
    UnknownProduct(String),
    #[error("product {0:?} is rejected by the games file (unknown_products = \"reject\")")]
    RejectedProduct(String),
    #[error("product {product:?} has no board {board:?} in the games file (its boards: {boards})")]
    UnknownBoard {
        product: String,
        board: String,
        boards: String,
    },
    #[error("a rebuild of product {0:?} is already running (its lock is held and kept alive)")]
    Busy(String),
    #[error("{0}")]
    Incomplete(String),
    #[error(transparent)]
    History(#[from] HistoryError),
    #[error("store Redis: {0}")]
    Store(#[from] StoreError),
    #[error("writing the rebuilt copy: {0}")]
    Commit(#[from] CommitError),
    #[error("writing the rebuilt copy: the commit task ended: {0}")]
    CommitTask(#[from] tokio::task::JoinError),
    #[error("the rebuild lost its lock (stalled longer than {LOCK_TTL:?})")]
    LockLost,
    #[error("stopped before the switch; run it again to resume")]
    Stopped,
    #[error("more than {0} entries to replay")]
    TooLong(u64),
}

/// What a rebuild did.
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    pub product: String,
    /// Entries replayed by this run (a resumed rebuild counts only its own).
    pub entries_replayed: u64,
    /// Whether the live product was replaced (never for a dry run).
    pub switched: bool,
    /// Times the replay started over because the product changed under it.
    pub restarts: u32,
    /// For a dry run: what would change, per board.
    pub changes: Vec<BoardChanges>,
}

/// How a board would change (all-time scores).
#[derive(Debug, Clone, Serialize)]
pub struct BoardChanges {
    pub board: String,
    pub players_now: usize,
    pub players_rebuilt: usize,
    /// Players whose score would change (appearing and disappearing ones included).
    pub score_changed: usize,
    /// Players whose rank (ordinal) would change.
    pub rank_changed: usize,
    /// The largest score changes, largest first (at most 10).
    pub largest: Vec<PlayerChange>,
}

#[derive(Debug, Clone, Serialize)]
pub struct PlayerChange {
    pub user_id: String,
    pub score_now: Option<f64>,
    pub score_rebuilt: Option<f64>,
    pub rank_now: Option<usize>,
    pub rank_rebuilt: Option<usize>,
}

/// Reports how far a rebuild is: on a terminal one updated line, else a log line every few
/// seconds.
pub struct Progress {
    terminal: bool,
    started: Instant,
    shown: Instant,
    pub done: u64,
    pub total: u64,
}

impl Progress {
    pub fn new(terminal: bool) -> Self {
        let now = Instant::now();
        Self {
            terminal,
            started: now,
            shown: now,
            done: 0,
            total: 0,
        }
    }

    fn advance(&mut self, entries: u64) {
        self.done += entries;
        let every = if self.terminal {
            Duration::from_millis(250)
        } else {
            Duration::from_secs(5)
        };
        if self.shown.elapsed() >= every {
            self.shown = Instant::now();
            self.show();
        }
    }

    fn show(&self) {
        let seconds = self.started.elapsed().as_secs_f64().max(0.001);
        let rate = self.done as f64 / seconds;
        let left = self.total.saturating_sub(self.done);
        let eta = if rate > 0.0 {
            format!("{:.0} s", left as f64 / rate)
        } else {
            "?".to_owned()
        };
        if self.terminal {
            eprint!(
                "\rrebuild: {} of ~{} entries, {:.0} entries/s, ETA {eta}   ",
                self.done, self.total, rate
            );
        } else {
            tracing::info!(
                done = self.done,
                total = self.total,
                rate = format!("{rate:.0}/s"),
                eta,
                "rebuild progress"
            );
        }
    }

    fn finish(&self) {
        if self.terminal {
            self.show();
            eprintln!();
        }
    }
}

/// What a rebuild works with.
pub struct Rebuilder {
    store: Store,
    endpoint: RedisEndpoint,
    games: Arc<Games>,
    timeout: Duration,
}

impl Rebuilder {
    pub fn new(store: Store, endpoint: RedisEndpoint, games: Arc<Games>) -> Self {
        Self {
            store,
            endpoint,
            games,
            timeout: Duration::from_secs(30),
        }
    }

    /// Checks what `options` asks for, before anything is written: the product, its boards,
    /// the history's completeness. The product's configuration.
    pub async fn check(&self, options: &Options) -> Result<&ProductGames, RebuildError> {
        let product = &options.product;
        let keys = self.store.keys().product(product);
        let Some(config) = self.games.product(product) else {
            return Err(RebuildError::RejectedProduct(product.to_string()));
        };
        let names: Vec<&str> = config
            .boards
            .boards()
            .iter()
            .map(|b| b.name.as_str())
            .collect();
        for board in &options.boards {
            if !names.contains(&board.as_str()) {
                return Err(RebuildError::UnknownBoard {
                    product: product.to_string(),
                    board: board.clone(),
                    boards: names.join(", "),
                });
            }
        }
        let mut pipe = redis::pipe();
        pipe.cmd("EXISTS")
            .arg(keys.applied())
            .cmd("GET")
            .arg(keys.events_gap())
            .cmd("GET")
            .arg(keys.events_exported());
        let (exists, gap, exported): (bool, Option<String>, Option<String>) =
            self.store.query_pipe(&pipe).await?;
        let listed = self.games.listed().any(|(id, _)| id == product);
        if !exists && !listed {
            return Err(RebuildError::UnknownProduct(product.to_string()));
        }
        if let Some(exported) = exported {
            let Some(dir) = &options.segments else {
                return Err(RebuildError::Incomplete(format!(
                    "the history of product {product:?} up to {exported} was exported to \
                     segment files: give their directory (--segments DIR or \
                     history.segments_dir)"
                )));
            };
            let covered = segments::list(dir, product)?
                .last()
                .is_some_and(|last| !compare_ids(&last.last, &exported).is_lt());
            if !covered {
                return Err(RebuildError::Incomplete(format!(
                    "the history of product {product:?} was exported up to {exported}, but \
                     the segment files in {} end before it",
                    dir.display()
                )));
            }
        }
        if let Some(gap) = gap
            && !options.allow_partial_history
        {
            return Err(RebuildError::Incomplete(format!(
                "the history of product {product:?} misses entries applied up to {gap} \
                 (applied before history was kept, or trimmed by history.max_entries / \
                 max_age_days): a rebuild would drop their effects; \
                 --allow-partial-history rebuilds from what is kept"
            )));
        }
        Ok(config)
    }

    /// Rebuilds as `options` ask. Checks first ([`Rebuilder::check`]), then takes the
    /// product's lock (waiting for a lock whose holder stopped keeping it alive).
    pub async fn run(
        &self,
        options: &Options,
        progress: &mut Progress,
        stop: &CancellationToken,
    ) -> Result<Outcome, RebuildError> {
        let config = self.check(options).await?;
        let keys = self.store.keys().product(&options.product);
        let lock = Lock::acquire(&self.store, &options.product, stop).await?;
        let result = self
            .locked(options, config, &keys, &lock, progress, stop)
            .await;
        lock.release(&self.store).await;
        progress.finish();
        result
    }

    async fn locked(
        &self,
        options: &Options,
        config: &ProductGames,
        keys: &PartitionKeys,
        lock: &Lock,
        progress: &mut Progress,
        stop: &CancellationToken,
    ) -> Result<Outcome, RebuildError> {
        let committer = Arc::new(
            Committer::new(
                &RedisEndpoint {
                    read_from_replicas: false,
                    ..self.endpoint.clone()
                },
                self.store.keys().clone(),
                (0, 1),
                200,
                DeadLetterRetention::default(),
                self.timeout,
            )?
            .into_copy(SHADOW_SUFFIX),
        );
        committer.load_script().await?;
        let rules = Rules::from_games(&self.games).replaying();
        let digest = digest(config, options);
        let player_fields = config.player_fields();
        let mut outcome = Outcome {
            product: options.product.to_string(),
            entries_replayed: 0,
            switched: false,
            restarts: 0,
            changes: Vec::new(),
        };
        loop {
            let generation = self.start_shadow(keys, &digest).await?;
            let mut known = Known::default();
            let replay = Replay {
                store: &self.store,
                committer: &committer,
                rules: &rules,
                product: &options.product,
                keys,
                target: keys.shadow(),
                segments: options.segments.as_deref(),
                until: None,
                max_entries: None,
                player_fields: &player_fields,
            };
            let go_on = || {
                lock.check()?;
                if stop.is_cancelled() {
                    return Err(RebuildError::Stopped);
                }
                Ok(())
            };
            progress.total = self
                .store
                .query::<Option<u64>>(redis::cmd("GET").arg(keys.events_kept()))
                .await?
                .unwrap_or(0);
            let replayed = replay.run(&mut known, progress, &go_on, None).await?;
            outcome.entries_replayed += replayed.entries;
            // Pseudonyms only name players in entries applied before the erasure that made
            // them, all replayed by now (an erasure since restarts the rebuild).
            self.erase_pseudonyms(config, keys).await?;
            if options.dry_run {
                outcome.changes = self.compare(config, options, keys).await?;
                self.drop_shadow(keys).await?;
                return Ok(outcome);
            }
            lock.check()?;
            // Hold the product: its commits wait while the last chunks are replayed and the
            // shadow is switched in.
            // A hold left by a rebuild that died is taken over: only the lock holder holds.
            self.store
                .query::<()>(
                    redis::cmd("SET")
                        .arg(keys.rebuild_hold())
                        .arg(&lock.token)
                        .arg("PX")
                        .arg(HOLD_TTL.as_millis() as u64),
                )
                .await?;
            let switched = async {
                // The shadow's generation moved with its erasures: reload.
                known.forget();
                let tail = replay
                    .run(&mut known, progress, &go_on, Some(replayed.next_chunk))
                    .await?;
                outcome.entries_replayed += tail.entries;
                self.switch(options, keys, &generation, lock).await
            }
            .await;
            match switched {
                Ok(Switch::Done) => {
                    outcome.switched = true;
                    return Ok(outcome);
                }
                Ok(Switch::Changed) => {
                    // An erasure, reset or void came in: start over from the new state.
                    self.release_hold(keys, &lock.token).await;
                    outcome.restarts += 1;
                    tracing::info!(product = %options.product, "the product changed under the rebuild; starting over");
                }
                Err(error) => {
                    self.release_hold(keys, &lock.token).await;
                    return Err(error);
                }
            }
        }
    }

    /// Makes sure the shadow was started for this games file, these boards and the product's
    /// current generation (else drops it and starts a new one); that generation.
    async fn start_shadow(
        &self,
        keys: &PartitionKeys,
        digest: &str,
    ) -> Result<String, RebuildError> {
        let generation: Option<String> = self
            .store
            .query(redis::cmd("GET").arg(keys.generation()))
            .await?;
        let generation = generation.unwrap_or_default();
        let state: HashMap<String, String> = self
            .store
            .query(redis::cmd("HGETALL").arg(keys.rebuild_state()))
            .await?;
        let resumable = state.get("digest").map(String::as_str) == Some(digest)
            && state.get("generation") == Some(&generation);
        if !resumable {
            self.drop_shadow(keys).await?;
            self.store
                .query::<()>(
                    redis::cmd("HSET")
                        .arg(keys.rebuild_state())
                        .arg("digest")
                        .arg(digest)
                        .arg("generation")
                        .arg(&generation),
                )
                .await?;
        }
        Ok(generation)
    }

    /// Deletes the record of what the shadow was started from, then its keys (so that a shadow
    /// half deleted is never resumed).
    async fn drop_shadow(&self, keys: &PartitionKeys) -> Result<(), RebuildError> {
        self.store
            .query::<u64>(redis::cmd("DEL").arg(keys.rebuild_state()))
            .await?;
        let shadow = self
            .store
            .scan(&format!("{}:*", escape_glob(keys.shadow().base())))
            .await?;
        for chunk in shadow.chunks(500) {
            self.store
                .query::<u64>(redis::cmd("UNLINK").arg(chunk))
                .await?;
        }
        Ok(())
    }

    async fn release_hold(&self, keys: &PartitionKeys, token: &str) {
        let script = redis::Script::new(RELEASE_IF_OURS);
        let mut invocation = script.prepare_invoke();
        invocation.key(keys.rebuild_hold()).arg(token);
        if let Err(error) = self.store.invoke::<i64>(&invocation).await {
            tracing::warn!(%error, "cannot release the product's hold; it expires by itself");
        }
    }

    /// Erases, from the shadow, the players the live product erased (their pseudonyms in
    /// history): replayed so their opponents' ratings come out right, then gone.
    async fn erase_pseudonyms(
        &self,
        config: &ProductGames,
        keys: &PartitionKeys,
    ) -> Result<(), RebuildError> {
        let mut conn = self.store.connection();
        let erasures = Erasures::load(&mut conn, keys).await?;
        let shadow = keys.shadow();
        for pseudonym in erasures.pseudonyms() {
            if let Ok(player) = PlayerId::parse(pseudonym) {
                crate::admin::erase_from(&self.store, &shadow, config, &player).await?;
            }
        }
        Ok(())
    }

    /// The switch: renames the shadow's keys over the live ones in one script, if the shadow
    /// is at the live position and the generation is still `generation`.
    async fn switch(
        &self,
        options: &Options,
        keys: &PartitionKeys,
        generation: &str,
        lock: &Lock,
    ) -> Result<Switch, RebuildError> {
        let shadow = keys.shadow();
        let all = self
            .store
            .scan(&format!("{}:*", escape_glob(keys.base())))
            .await?;
        let live_prefix = format!("{}:", keys.base());
        let shadow_prefix = format!("{}:", shadow.base());
        let selected: Option<HashSet<String>> = (!options.boards.is_empty()).then(|| {
            options
                .boards
                .iter()
                .map(|board| encode_segment(board))
                .collect()
        });
        let wanted = |kind: &KeyKind| match (kind, &selected) {
            (KeyKind::Other, _) => false,
            (_, None) => true,
            (KeyKind::Stats, Some(_)) => false,
            (KeyKind::Board(board), Some(selected)) => selected.contains(board),
        };
        let mut renames: Vec<(String, String)> = Vec::new();
        let mut leftovers: Vec<String> = Vec::new();
        let mut shadow_stats: Vec<String> = Vec::new();
        let mut live: Vec<(String, KeyKind)> = Vec::new();
        for key in all {
            if let Some(rest) = key.strip_prefix(&shadow_prefix) {
                let kind = KeyKind::of(rest);
                if wanted(&kind) {
                    renames.push((key.clone(), format!("{live_prefix}{rest}")));
                } else {
                    if kind == KeyKind::Stats {
                        shadow_stats.push(key.clone());
                    }
                    leftovers.push(key);
                }
            } else if let Some(rest) = key.strip_prefix(&live_prefix) {
                live.push((key.clone(), KeyKind::of(rest)));
            }
        }
        let targets: HashSet<&str> = renames.iter().map(|(_, to)| to.as_str()).collect();
        let deletes: Vec<&str> = live
            .iter()
            .filter(|(key, kind)| wanted(kind) && !targets.contains(key.as_str()))
            .map(|(key, _)| key.as_str())
            .collect();
        let live_stats: Vec<&str> = match &selected {
            Some(_) => live
                .iter()
                .filter(|(_, kind)| *kind == KeyKind::Stats)
                .map(|(key, _)| key.as_str())
                .collect(),
            None => Vec::new(),
        };
        if selected.is_none() {
            shadow_stats.clear();
        }
        let script = redis::Script::new(SWITCH);
        let mut invocation = script.prepare_invoke();
        invocation
            .key(keys.applied())
            .key(shadow.applied())
            .key(keys.generation())
            .key(keys.rebuild_hold())
            .key(keys.sequence())
            .key(shadow.sequence())
            .key(keys.rebuild_state())
            .key(keys.rebuild_wanted())
            .key(&lock.key);
        for (from, to) in &renames {
            invocation.key(from).key(to);
        }
        for key in &deletes {
            invocation.key(*key);
        }
        for key in &live_stats {
            invocation.key(*key);
        }
        for key in &shadow_stats {
            invocation.key(key);
            invocation.key(format!(
                "{live_prefix}{}",
                key.strip_prefix(&shadow_prefix).unwrap_or_default()
            ));
        }
        for key in &leftovers {
            invocation.key(key);
        }
        invocation
            .arg(generation)
            .arg(&lock.token)
            .arg(renames.len())
            .arg(deletes.len())
            .arg(live_stats.len())
            .arg(shadow_stats.len())
            .arg(leftovers.len());
        for board in selected.iter().flatten() {
            invocation.arg(format!("~{board}"));
        }
        let result: i64 = self.store.invoke(&invocation).await?;
        match result {
            1 => Ok(Switch::Done),
            -2 => Ok(Switch::Changed),
            -3 => Err(RebuildError::Incomplete(format!(
                "the hold on product {:?} expired before the switch (more than {HOLD_TTL:?}); \
                 run the rebuild again",
                options.product
            ))),
            -4 => Err(RebuildError::LockLost),
            _ => Err(RebuildError::Incomplete(format!(
                "product {:?} moved on while held: run the rebuild again",
                options.product
            ))),
        }
    }

    /// What the rebuild would change on each board asked for (all of them when none was).
    async fn compare(
        &self,
        config: &ProductGames,
        options: &Options,
        keys: &PartitionKeys,
    ) -> Result<Vec<BoardChanges>, RebuildError> {
        let mut changes = Vec::new();
        for board in config.boards.boards() {
            if !options.boards.is_empty() && !options.boards.contains(&board.name) {
                continue;
            }
            let now = self.read_board(&keys.board(&board.name)).await?;
            let rebuilt = self.read_board(&keys.shadow().board(&board.name)).await?;
            changes.push(compare_boards(&board.name, &now, &rebuilt));
        }
        Ok(changes)
    }

    /// A board's players in rank order with their scores.
    async fn read_board(&self, key: &str) -> Result<Vec<(String, f64)>, RebuildError> {
        let rows: Vec<(Vec<u8>, f64)> = self
            .store
            .query(
                redis::cmd("ZRANGE")
                    .arg(key)
                    .arg(0)
                    .arg(-1)
                    .arg("WITHSCORES"),
            )
            .await?;
        Ok(rows
            .into_iter()
            .map(|(member, stored)| {
                let player = String::from_utf8_lossy(member.get(8..).unwrap_or_default());
                (player.into_owned(), -stored)
            })
            .collect())
    }
}

/// How the switch ended when it did not fail.
enum Switch {
    Done,
    /// The product's generation moved (an admin change): the shadow is stale.
    Changed,
}

/// Replays a product's history (its segment files, then its chunks in Redis) into a copy of
/// the product, from the copy's applied position on.
pub(crate) struct Replay<'a> {
    pub store: &'a Store,
    /// Writes to the copy (`Committer::into_copy`).
    pub committer: &'a Arc<Committer>,
    pub rules: &'a Rules,
    pub product: &'a ProductId,
    /// The live product's keys (its history, erasures, voids).
    pub keys: &'a PartitionKeys,
    /// The copy's keys (its applied position).
    pub target: PartitionKeys,
    pub segments: Option<&'a Path>,
    /// The last entry to replay (`None`: to the end).
    pub until: Option<&'a str>,
    /// Most entries one run may replay (`None`: no bound).
    pub max_entries: Option<u64>,
    /// The event fields that name players (erased ones are scrubbed from segment files).
    pub player_fields: &'a BTreeSet<String>,
}

/// Where a replay run ended: the next chunk (absolute index) to read, for a run that goes on
/// from there.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Replayed {
    pub entries: u64,
    pub next_chunk: u64,
}

impl Replay<'_> {
    /// Replays every entry after the copy's position (up to `until`): the segment files and
    /// the chunks in Redis, or, `from_chunk` given, the chunks from that absolute index on
    /// (those before it were replayed by an earlier run). `go_on` is asked between batches
    /// whether to continue.
    pub async fn run(
        &self,
        known: &mut Known,
        progress: &mut Progress,
        go_on: &(dyn Fn() -> Result<(), RebuildError> + Sync),
        from_chunk: Option<u64>,
    ) -> Result<Replayed, RebuildError> {
        let mut conn = self.store.connection();
        let erasures = Erasures::load(&mut conn, self.keys).await?;
        // Where the chunks in Redis begin, read before the segment files are: chunks exported
        // (or trimmed) while the segments are read make the cursor fail instead of leaving a
        // hole between the two.
        let first_chunk = match from_chunk {
            Some(index) => index,
            None => self
                .store
                .query::<Option<u64>>(redis::cmd("GET").arg(self.keys.events_dropped()))
                .await?
                .unwrap_or(0),
        };
        let position: Option<String> = self
            .store
            .query(redis::cmd("GET").arg(self.target.applied()))
            .await?;
        let mut run = Run {
            replay: self,
            known,
            progress,
            go_on,
            position: position.unwrap_or_default(),
            pending: Vec::with_capacity(BATCH),
            committing: None,
            replayed: 0,
        };
        let mut cursor = ChunkCursor::at(self.keys.clone(), first_chunk);
        let replayed = async {
            self.replay_into(&mut run, &mut conn, &erasures, &mut cursor, from_chunk)
                .await?;
            run.flush().await
        }
        .await;
        // Even when the replay failed: a commit left running could land after the caller
        // discarded the copy.
        let committed = run.settle().await;
        replayed?;
        committed?;
        Ok(Replayed {
            entries: run.replayed,
            next_chunk: cursor.position().unwrap_or(first_chunk),
        })
    }

    /// Pushes every entry to replay through `run`: the segment files (unless going on from
    /// a chunk), then the chunks in Redis.
    async fn replay_into(
        &self,
        run: &mut Run<'_, '_>,
        conn: &mut Connection,
        erasures: &Erasures,
        cursor: &mut ChunkCursor,
        from_chunk: Option<u64>,
    ) -> Result<(), RebuildError> {
        if let (Some(dir), None) = (self.segments, from_chunk) {
            for segment in segments::list(dir, self.product)? {
                if !run.after(&segment.last) {
                    continue;
                }
                if self.is_past(&segment.first) {
                    break;
                }
                for mut entry in segments::read(&segment)? {
                    erasures.scrub(&mut entry, self.player_fields);
                    run.push(entry).await?;
                }
            }
        }
        'chunks: loop {
            let page = cursor.next_page(conn, 32).await?;
            if page.is_empty() {
                break;
            }
            for chunk in &page {
                let (header, _) = split_chunk(chunk)?;
                if self.is_past(&header.first) {
                    break 'chunks;
                }
                if !run.after(&header.last) {
                    continue;
                }
                let (_, entries) = decode_chunk(chunk)?;
                for mut entry in entries {
                    erasures.scrub(&mut entry, self.player_fields);
                    run.push(entry).await?;
                }
            }
        }
        Ok(())
    }

    /// Whether entry `id` comes after `until`.
    fn is_past(&self, id: &str) -> bool {
        self.until
            .is_some_and(|until| compare_ids(id, until).is_gt())
    }
}

/// One run of a [`Replay`]: the batch being gathered and where it stands.
struct Run<'r, 'a> {
    replay: &'r Replay<'a>,
    known: &'r mut Known,
    progress: &'r mut Progress,
    go_on: &'r (dyn Fn() -> Result<(), RebuildError> + Sync),
    /// The id of the last entry replayed ('' for none).
    position: String,
    pending: Vec<RawEntry>,
    /// The commit of the batch before, running while this one is read and planned.
    committing: Option<AbortOnDropHandle<Result<CommitCounts, CommitError>>>,
    replayed: u64,
}

impl Run<'_, '_> {
    fn after(&self, id: &str) -> bool {
        self.position.is_empty() || compare_ids(id, &self.position).is_gt()
    }

    /// Adds an entry to the batch (unless replayed before, or past `until`), applying the
    /// batch when full.
    async fn push(&mut self, entry: RawEntry) -> Result<(), RebuildError> {
        if !self.after(&entry.id) || self.replay.is_past(&entry.id) {
            return Ok(());
        }
        self.pending.push(entry);
        if let Some(max) = self.replay.max_entries
            && self.replayed + self.pending.len() as u64 > max
        {
            return Err(RebuildError::TooLong(max));
        }
        if self.pending.len() >= BATCH {
            self.flush().await?;
            (self.go_on)()?;
        }
        Ok(())
    }

    /// Plans the batch and starts its commit to the copy (once the batch before is
    /// committed), then empties it.
    async fn flush(&mut self) -> Result<(), RebuildError> {
        let Some(last) = self.pending.last() else {
            return Ok(());
        };
        let last = last.id.clone();
        let (committer, rules) = (self.replay.committer, self.replay.rules);
        let parsed = plan::parse(&self.pending);
        let needs = plan::needs(&parsed, rules, self.known);
        committer.load(&needs, self.known).await?;
        let mut batch = plan::plan(&parsed, &[], rules, self.known);
        // Dead letters were written when the entries were first applied.
        batch.dead_letters.clear();
        // Entries the games file now refuses whole are in no plan, but the copy's position
        // must pass them like the live product's did, or it could never catch up.
        let planned = batch
            .products
            .entry(self.replay.product.clone())
            .or_default();
        if planned.last().is_none_or(|event| event.id != last) {
            planned.push(PlannedEvent {
                id: last.clone(),
                changes: Changes::default(),
                history: None,
                redrive_of: None,
            });
        }
        let prepared = committer.prepare(COPY_EPOCH, &batch, self.known);
        // Planned on the view the batch before leaves, which its commit writes: the next
        // batch is read and planned while Redis runs this one.
        self.settle().await?;
        let committer = Arc::clone(committer);
        self.committing = Some(AbortOnDropHandle::new(tokio::spawn(async move {
            committer.commit(&prepared).await
        })));
        self.known.advance_past(&batch);
        if self.known.cached_entries() > 100_000 {
            // The view may be dropped only once the store holds all it planned.
            self.settle().await?;
            self.known.forget();
        }
        let count = self.pending.len() as u64;
        self.pending.clear();
        self.position = last;
        self.replayed += count;
        self.progress.advance(count);
        Ok(())
    }
}

impl Run<'_, '_> {
    /// Waits for the commit started last, if any.
    async fn settle(&mut self) -> Result<(), RebuildError> {
        if let Some(committing) = self.committing.take() {
            committing.await??;
        }
        Ok(())
    }
}

/// Which part of the product a key (after `P:{<product>}:`) is.
#[derive(Debug, Clone, PartialEq, Eq)]
enum KeyKind {
    /// A board's keys (all-time, periods, distinct scores, hidden copies), a rating state or
    /// history of it: the board's encoded name.
    Board(String),
    /// A player's stats hash (stats and their stamps on every board), or their profile.
    Stats,
    /// Anything else (positions, sequence, history, voids…): never switched.
    Other,
}

impl KeyKind {
    fn of(rest: &str) -> Self {
        if let Some(board) = rest
            .strip_prefix("board:")
            .or_else(|| rest.strip_prefix(&HIDDEN_BOARD_INFIX[1..]))
        {
            let end = board.find(['@', ':']).unwrap_or(board.len());
            KeyKind::Board(board[..end].to_owned())
        } else if rest.starts_with("stats:") || rest.starts_with("profile:") {
            KeyKind::Stats
        } else if let Some(tail) = rest
            .strip_prefix("rating:")
            .or_else(|| rest.strip_prefix("history:"))
        {
            KeyKind::Board(tail.split(':').next().unwrap_or_default().to_owned())
        } else {
            KeyKind::Other
        }
    }
}

/// `KEYS`: live applied, shadow applied, live generation, hold, live sequence, shadow
/// sequence, rebuild state, rebuild wanted, the rebuild lock; then the renames (from, to), the
/// live keys to delete, the live stats hashes and the shadow's (each with its live name) whose
/// board stamps are merged, the shadow's other keys. `ARGV`: the generation the shadow was
/// started on, the lock's (and hold's) token, the five counts, then the stamp fields' prefixes
/// (`~<board>`) of the boards switched alone (none: a full rebuild). 1 when switched; -1 the
/// shadow is not at the live position; -2 the generation moved; -3 the hold is not ours; -4
/// the lock is not ours.
const SWITCH: &str = r"
if redis.call('GET', KEYS[9]) ~= ARGV[2] then return -4 end
if redis.call('GET', KEYS[4]) ~= ARGV[2] then return -3 end
if (redis.call('GET', KEYS[3]) or '') ~= ARGV[1] then return -2 end
if (redis.call('GET', KEYS[1]) or '') ~= (redis.call('GET', KEYS[2]) or '') then return -1 end
local renames, deletes, live_stats, shadow_stats, leftovers =
  tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7])
local prefixes = {}
for i = 8, #ARGV do prefixes[#prefixes + 1] = ARGV[i] end
local function is_stamp(field)
  for _, prefix in ipairs(prefixes) do
    if field == prefix or string.sub(field, 1, #prefix + 1) == prefix .. '@' then return true end
  end
  return false
end
local k = 10
for _ = 1, renames do
  if redis.call('EXISTS', KEYS[k]) == 1 then
    redis.call('RENAME', KEYS[k], KEYS[k + 1])
  else
    redis.call('DEL', KEYS[k + 1])
  end
  k = k + 2
end
for _ = 1, deletes do
  redis.call('DEL', KEYS[k])
  k = k + 1
end
for _ = 1, live_stats do
  local doomed = {}
  for _, field in ipairs(redis.call('HKEYS', KEYS[k])) do
    if is_stamp(field) then doomed[#doomed + 1] = field end
  end
  if #doomed > 0 then redis.call('HDEL', KEYS[k], unpack(doomed)) end
  k = k + 1
end
for _ = 1, shadow_stats do
  local all = redis.call('HGETALL', KEYS[k])
  local stamps = {}
  for i = 1, #all, 2 do
    if is_stamp(all[i]) then
      stamps[#stamps + 1] = all[i]
      stamps[#stamps + 1] = all[i + 1]
    end
  end
  if #stamps > 0 then redis.call('HSET', KEYS[k + 1], unpack(stamps)) end
  k = k + 2
end
-- Stamps given out later must follow every stamp on the switched boards.
local live_seq = tonumber(redis.call('GET', KEYS[5]) or '0')
local shadow_seq = redis.call('GET', KEYS[6])
if shadow_seq and tonumber(shadow_seq) > live_seq then redis.call('SET', KEYS[5], shadow_seq) end
for _ = 1, leftovers do
  redis.call('DEL', KEYS[k])
  k = k + 1
end
redis.call('DEL', KEYS[6], KEYS[2], KEYS[4], KEYS[7])
redis.call('INCR', KEYS[3])
-- A rebuild asked for (by voids) is done by a full one started after it was asked.
local asked = tonumber(redis.call('GET', KEYS[8]) or '0')
if #prefixes == 0 and asked <= (tonumber(ARGV[1]) or 0) then redis.call('DEL', KEYS[8]) end
return 1
";

/// Deletes a key only if it holds the token: `KEYS[1]`, `ARGV[1]`.
const RELEASE_IF_OURS: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
";

/// Sets the key's expiry again only if it holds the token: `KEYS[1]`, `ARGV[1]`, `ARGV[2]` ms.
const REFRESH_IF_OURS: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
";

/// The product's rebuild lock, kept alive by a task while held.
struct Lock {
    key: String,
    token: String,
    lost: Arc<std::sync::atomic::AtomicBool>,
    keeper: tokio::task::JoinHandle<()>,
}

impl Lock {
    /// Takes the lock; a lock held by another rebuild is waited for as long as it could take
    /// to expire (its holder died), then refused.
    async fn acquire(
        store: &Store,
        product: &ProductId,
        stop: &CancellationToken,
    ) -> Result<Self, RebuildError> {
        let key = store.keys().product(product).rebuild_lock();
        let host = hostname::get()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        let token = format!(
            "{host}/{}/{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or_default()
        );
        let deadline = Instant::now() + LOCK_TTL + Duration::from_secs(1);
        loop {
            let taken: Option<String> = store
                .query(
                    redis::cmd("SET")
                        .arg(&key)
                        .arg(&token)
                        .arg("NX")
                        .arg("PX")
                        .arg(LOCK_TTL.as_millis() as u64),
                )
                .await?;
            if taken.is_some() {
                break;
            }
            // A holder on this host whose process is gone (killed) leaves its lock at once.
            let holder: Option<String> = store.query(redis::cmd("GET").arg(&key)).await?;
            if let Some(holder) = holder
                && holder_is_dead(&holder, &host)
            {
                let script = redis::Script::new(RELEASE_IF_OURS);
                let mut invocation = script.prepare_invoke();
                invocation.key(&key).arg(&holder);
                store.invoke::<i64>(&invocation).await?;
                tracing::info!(
                    holder,
                    "took over the rebuild lock of a process that is gone"
                );
                continue;
            }
            if Instant::now() >= deadline || stop.is_cancelled() {
                return Err(RebuildError::Busy(product.to_string()));
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        let lost = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let keeper = tokio::spawn({
            let mut conn = store.connection();
            let (key, token, lost) = (key.clone(), token.clone(), lost.clone());
            async move {
                let script = redis::Script::new(REFRESH_IF_OURS);
                loop {
                    tokio::time::sleep(LOCK_TTL / 3).await;
                    let mut invocation = script.prepare_invoke();
                    invocation
                        .key(&key)
                        .arg(&token)
                        .arg(LOCK_TTL.as_millis() as u64);
                    match invocation.invoke_async::<i64>(&mut conn).await {
                        Ok(1) => {}
                        Ok(_) => {
                            lost.store(true, std::sync::atomic::Ordering::SeqCst);
                            return;
                        }
                        // A failed refresh is retried; the lock lasts three times as long.
                        Err(error) => tracing::warn!(%error, "cannot refresh the rebuild lock"),
                    }
                }
            }
        });
        Ok(Self {
            key,
            token,
            lost,
            keeper,
        })
    }

    fn check(&self) -> Result<(), RebuildError> {
        if self.lost.load(std::sync::atomic::Ordering::SeqCst) {
            Err(RebuildError::LockLost)
        } else {
            Ok(())
        }
    }

    async fn release(self, store: &Store) {
        self.keeper.abort();
        let script = redis::Script::new(RELEASE_IF_OURS);
        let mut invocation = script.prepare_invoke();
        invocation.key(&self.key).arg(&self.token);
        if let Err(error) = store.invoke::<i64>(&invocation).await {
            tracing::warn!(%error, "cannot release the rebuild lock; it expires by itself");
        }
    }
}

/// Whether a lock token (`<host>/<pid>/<nanos>`) names a process of `host` that no longer
/// runs.
fn holder_is_dead(token: &str, host: &str) -> bool {
    let mut parts = token.rsplitn(3, '/');
    let (_, Some(pid), Some(holder_host)) = (parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    if holder_host != host {
        return false;
    }
    #[cfg(target_os = "linux")]
    {
        let Ok(pid) = pid.parse::<i32>() else {
            return false;
        };
        matches!(
            nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None),
            Err(nix::errno::Errno::ESRCH)
        )
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = pid;
        false
    }
}

/// What the shadow is built from: the product's configuration and the boards asked for.
fn digest(config: &ProductGames, options: &Options) -> String {
    let mut hash = Sha256::new();
    hash.update(format!("{config:?}").as_bytes());
    hash.update(format!("{:?}", options.boards).as_bytes());
    hex::encode(hash.finalize())
}

fn compare_boards(board: &str, now: &[(String, f64)], rebuilt: &[(String, f64)]) -> BoardChanges {
    let index = |rows: &[(String, f64)]| -> BTreeMap<String, (usize, f64)> {
        rows.iter()
            .enumerate()
            .map(|(rank, (player, score))| (player.clone(), (rank + 1, *score)))
            .collect()
    };
    let (before, after) = (index(now), index(rebuilt));
    let players: std::collections::BTreeSet<&String> = before.keys().chain(after.keys()).collect();
    let mut changed = Vec::new();
    let mut rank_changed = 0;
    for player in players {
        let (was, will) = (before.get(player), after.get(player));
        if was.map(|(rank, _)| rank) != will.map(|(rank, _)| rank) {
            rank_changed += 1;
        }
        if was.map(|(_, score)| score) != will.map(|(_, score)| score) {
            changed.push(PlayerChange {
                user_id: player.clone(),
                score_now: was.map(|(_, score)| *score),
                score_rebuilt: will.map(|(_, score)| *score),
                rank_now: was.map(|(rank, _)| *rank),
                rank_rebuilt: will.map(|(rank, _)| *rank),
            });
        }
    }
    let size = |change: &PlayerChange| {
        (change.score_rebuilt.unwrap_or(0.0) - change.score_now.unwrap_or(0.0)).abs()
    };
    let score_changed = changed.len();
    changed.sort_by(|a, b| size(b).total_cmp(&size(a)));
    changed.truncate(10);
    BoardChanges {
        board: board.to_owned(),
        players_now: now.len(),
        players_rebuilt: rebuilt.len(),
        score_changed,
        rank_changed,
        largest: changed,
    }
}

/// Works through the rebuilds asked for (by voids and their undoing) while `stop` is not
/// cancelled: each product listed in `P:rebuilds` whose `rebuild:wanted` is set is rebuilt
/// in full; a product another process is rebuilding is left to it.
pub async fn serve_requests(
    rebuilder: &Rebuilder,
    segments: Option<PathBuf>,
    stop: CancellationToken,
) {
    let keys = rebuilder.store.keys().clone();
    // A product whose rebuild failed is tried again after a while, not every second.
    let mut failed: HashMap<String, Instant> = HashMap::new();
    while !stop.is_cancelled() {
        let listed: Result<Vec<String>, StoreError> = rebuilder
            .store
            .query(redis::cmd("SMEMBERS").arg(keys.rebuilds()))
            .await;
        for raw in listed.unwrap_or_default() {
            if stop.is_cancelled() {
                break;
            }
            let Ok(product) = ProductId::parse(&raw) else {
                continue;
            };
            if failed
                .get(&raw)
                .is_some_and(|at| at.elapsed() < Duration::from_secs(60))
            {
                continue;
            }
            let product_keys = keys.product(&product);
            let wanted: Result<Option<String>, StoreError> = rebuilder
                .store
                .query(redis::cmd("GET").arg(product_keys.rebuild_wanted()))
                .await;
            match wanted {
                Ok(None) => {
                    let _ = rebuilder
                        .store
                        .query::<i64>(redis::cmd("SREM").arg(keys.rebuilds()).arg(&raw))
                        .await;
                    // A void recorded meanwhile lists the product again itself, unless it was
                    // recorded just before this SREM: look once more.
                    let asked: Result<bool, StoreError> = rebuilder
                        .store
                        .query(redis::cmd("EXISTS").arg(product_keys.rebuild_wanted()))
                        .await;
                    if let Ok(true) = asked {
                        let _ = super::voids::ask_rebuild(&rebuilder.store, &product).await;
                    }
                    continue;
                }
                Ok(Some(_)) => {}
                Err(_) => continue,
            }
            let options = Options {
                product: product.clone(),
                boards: Vec::new(),
                segments: segments.clone(),
                dry_run: false,
                allow_partial_history: false,
            };
            let mut progress = Progress::new(false);
            match rebuilder.run(&options, &mut progress, &stop).await {
                Ok(outcome) => {
                    metrics::counter!("stats_tracker_worker_rebuilds_total").increment(1);
                    tracing::info!(
                        product = %product,
                        entries = outcome.entries_replayed,
                        "rebuilt the product as asked (voids)"
                    );
                }
                // Another process runs it, or this one is stopping: it resumes later.
                Err(RebuildError::Busy(_) | RebuildError::Stopped) => {}
                Err(error) => {
                    failed.insert(raw.clone(), Instant::now());
                    metrics::counter!("stats_tracker_worker_rebuild_failures_total").increment(1);
                    tracing::warn!(product = %product, %error, "cannot rebuild the product as asked");
                }
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = stop.cancelled() => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_told_apart_by_board() {
        assert_eq!(KeyKind::of("board:wins"), KeyKind::Board("wins".into()));
        assert_eq!(
            KeyKind::of("board:wins@daily:2026-12-01:distinct"),
            KeyKind::Board("wins".into())
        );
        assert_eq!(
            KeyKind::of("board:wins:distinct"),
            KeyKind::Board("wins".into())
        );
        assert_eq!(
            KeyKind::of("rating:elo:p%3A1"),
            KeyKind::Board("elo".into())
        );
        assert_eq!(KeyKind::of("history:elo:p"), KeyKind::Board("elo".into()));
        assert_eq!(
            KeyKind::of("hidden:wins@weekly:2026-W49"),
            KeyKind::Board("wins".into())
        );
        assert_eq!(KeyKind::of("hidden"), KeyKind::Other);
        assert_eq!(KeyKind::of("stats:p"), KeyKind::Stats);
        assert_eq!(KeyKind::of("sequence"), KeyKind::Other);
        assert_eq!(KeyKind::of("events"), KeyKind::Other);
    }

    #[test]
    fn comparing_boards_counts_changes_and_orders_the_largest_first() {
        let now = vec![
            ("a".to_owned(), 5.0),
            ("b".to_owned(), 3.0),
            ("c".to_owned(), 1.0),
        ];
        let rebuilt = vec![
            ("b".to_owned(), 3.0),
            ("a".to_owned(), 2.0),
            ("d".to_owned(), 9.0),
        ];
        let changes = compare_boards("wins", &now, &rebuilt);
        assert_eq!(changes.score_changed, 3); // a, c gone, d new
        assert_eq!(changes.rank_changed, 4);
        assert_eq!(changes.largest[0].user_id, "d");
        assert_eq!(changes.largest[0].score_rebuilt, Some(9.0));
    }
}
