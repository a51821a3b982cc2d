//! The worker's store side: loading what planning needs (applied positions, rating states)
//! and committing a planned batch: per partition (product or dead-letter stream), atomic script
//! calls of at most `worker.entries_per_script_call` entries, each writing its entries'
//! effects together with the partition's applied position.
//!
//! The position is what makes effects exactly-once: planning skips entries at or below it, so
//! a batch replayed after a crash (committed, not yet acknowledged) changes nothing, and the
//! script refuses a call unless the store holds exactly the position (and admin generation)
//! it was planned on: a plan made on a stale view, or sent behind a call that failed. The
//! fence rejects a writer whose lease was taken over (see `workers::stream`).
//!
//! Dead letters are trimmed as they are written (`worker.dead_letter_max_entries`,
//! `worker.dead_letter_max_age_days`): trimming removes letters only, never the dead letters'
//! applied position or `redriven` set, so it cannot make a letter be written twice.

use std::collections::HashMap;
use std::time::Duration;

use crate::core::store::Connection;
use redis::Script;

use super::plan::{BatchPlan, DeadLetter, Known, Needs, Partition, PlannedEvent};
use crate::core::config::{DeadLetterRetention, HistoryRetention, RedisEndpoint};
use crate::core::effects::{Aggregate, Change, ColumnUpdate, ColumnValue, PeriodTarget};
use crate::core::ids::{PlayerId, ProductId};
use crate::core::keys::{BoardKeys, KeySpace, PartitionKeys};
use crate::core::layout::{self, LayoutError};
use crate::core::store::{self, StoreError, bounded};
use crate::history::voids::VoidSet;
use crate::leaderboards::boards::rating_from_fields;

/// A Redis command (or one of commit.lua's custom operations) of a commit, with its keys.
#[derive(Debug)]
struct Op {
    command: &'static str,
    /// One key, or a board's two: ops whose first key is the same have the same keys.
    keys: Vec<String>,
    /// Groups of keys sent as arguments (the KEYS index of each group's first key), before
    /// `args`: a board operation's player stats hash and boards (each with its distinct
    /// scores).
    arg_keys: Vec<Vec<String>>,
    args: Vec<Vec<u8>>,
}

/// Change feed entries kept per product unless the settings say otherwise.
const DEFAULT_FEED_MAX_ENTRIES: u64 = 100_000;

/// Why a commit failed.
#[derive(Debug, thiserror::Error)]
pub enum CommitError {
    #[error("store Redis: {0}")]
    Store(#[from] StoreError),
    #[error("another worker took over the stream (this worker's lease epoch is stale)")]
    Fenced,
    #[error("the store changed under the worker (a plan was made on stale state)")]
    Stale,
    #[error("a product is being switched to its rebuilt copy")]
    Held,
}

/// Writes planned batches to the store.
pub struct Committer {
    conn: Connection,
    keys: KeySpace,
    /// The dead letters' keys, with this stream partition's position.
    dead_letters: PartitionKeys,
    script: Script,
    /// Most entries one script call applies: a script runs alone, and everything else sent
    /// to Redis meanwhile waits for it, the worker's next read among them (two round trips),
    /// so long calls would leave the reads, and then Redis, waiting.
    entries_per_call: usize,
    retention: DeadLetterRetention,
    /// How products' history is trimmed as chunks are written.
    history: HistoryRetention,
    /// Change feed entries kept per product, about.
    feed_max_entries: u64,
    /// Writing copies of the products (a rebuild's shadow, a board as of a past moment) under
    /// this suffix of their keys' base (`PartitionKeys::copy`) instead of the products.
    copy: Option<String>,
    timeout: Duration,
}

/// What a commit wrote.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct CommitCounts {
    /// Entries written, over all partitions.
    pub applied: u64,
}

impl Committer {
    /// A committer for stream partition `partition` (index, count): its dead letters have a
    /// position of their own when there are several.
    pub fn new(
        redis: &RedisEndpoint,
        keys: KeySpace,
        partition: (u32, u32),
        entries_per_call: usize,
        retention: DeadLetterRetention,
        timeout: Duration,
    ) -> Result<Self, StoreError> {
        let (index, partitions) = partition;
        Ok(Self {
            conn: store::lazy_connection(redis, timeout)?,
            dead_letters: keys.dead_letters_of(partitions, index),
            keys,
            script: Script::new(concat!(
                include_str!("../leaderboards/rank.lua"),
                include_str!("commit.lua")
            )),
            // A setting of 0 is refused when settings load; never chunk by 0.
            entries_per_call: entries_per_call.max(1),
            retention,
            history: HistoryRetention::default(),
            feed_max_entries: DEFAULT_FEED_MAX_ENTRIES,
            copy: None,
            timeout,
        })
    }

    /// Trims products' change feeds to about `max_entries` as entries are written.
    pub fn with_feed_retention(mut self, max_entries: u64) -> Self {
        self.feed_max_entries = max_entries.max(1);
        self
    }

    /// Trims products' history chunks by `retention` as they are written.
    pub fn with_history_retention(mut self, retention: HistoryRetention) -> Self {
        self.history = retention;
        self
    }

    /// Writes every product's changes to a copy of it (`PartitionKeys::copy` with `suffix`,
    /// e.g. a rebuild's shadow), and loads positions and rating states from there; writes no
    /// history and lists no product.
    pub fn into_copy(mut self, suffix: &str) -> Self {
        self.copy = Some(suffix.to_owned());
        self
    }

    fn partition_keys(&self, partition: &Partition) -> PartitionKeys {
        match partition {
            Partition::Product(product) => self.product_keys(product),
            Partition::DeadLetters => self.dead_letters.clone(),
        }
    }

    /// Makes sure Redis has the commit script at the start of a lease, so that calls sent one
    /// behind the other do not have to be loaded and re-sent, which could reorder them. (After
    /// a Redis restart or SCRIPT FLUSH they still may: a call that overtakes its predecessor
    /// is refused by the position check, and the worker reloads.)
    pub async fn load_script(&self) -> Result<(), StoreError> {
        let mut conn = self.conn.clone();
        bounded(self.timeout, self.script.load_async(&mut conn)).await?;
        Ok(())
    }

    /// Checks that the store holds this release's layout (stamping an empty one), so nothing
    /// is written in a layout the store's other readers do not expect.
    pub async fn ensure_layout(&self) -> Result<(), LayoutError> {
        let mut conn = self.conn.clone();
        match tokio::time::timeout(self.timeout, layout::ensure_current(&mut conn, &self.keys))
            .await
        {
            Ok(result) => result,
            Err(_) => Err(LayoutError::Redis(redis::RedisError::from((
                redis::ErrorKind::Io,
                "timed out checking the store's layout",
            )))),
        }
    }

    /// The store server's `run_id`: it changes when the server restarts (and so may have come
    /// back with less than it had, from an AOF or a snapshot) or another server answers. On a
    /// cluster, every master's, in slot order: a failover or a restarted master changes it.
    pub async fn store_run_id(&self) -> Result<String, StoreError> {
        let mut conn = self.conn.clone();
        let run_ids = async {
            let nodes = match conn.cluster_masters().await? {
                None => vec![None],
                Some(masters) => masters.into_iter().map(Some).collect(),
            };
            let mut run_ids = Vec::new();
            for node in &nodes {
                let info: String = conn
                    .query_node(node.as_ref(), redis::cmd("INFO").arg("server"))
                    .await?;
                let run_id = info
                    .lines()
                    .find_map(|line| line.strip_prefix("run_id:"))
                    .unwrap_or_default()
                    .trim()
                    .to_owned();
                run_ids.push(run_id);
            }
            Ok(run_ids.join(","))
        };
        bounded(self.timeout, run_ids).await
    }

    /// The keys a product's changes go to: its own, or its copy's.
    fn product_keys(&self, product: &ProductId) -> PartitionKeys {
        let keys = self.keys.product(product);
        match &self.copy {
            Some(suffix) => keys.copy(suffix),
            None => keys,
        }
    }

    /// Loads into `known` the positions and rating states planning needs.
    pub async fn load(&self, needs: &Needs, known: &mut Known) -> Result<(), StoreError> {
        let mut conn = self.conn.clone();
        if !needs.positions.is_empty() {
            let mut reads = Vec::new();
            for partition in &needs.positions {
                let keys = self.partition_keys(partition);
                reads.push(redis::Cmd::get(keys.applied()));
                reads.push(redis::Cmd::get(keys.generation()));
            }
            let loaded: Vec<Option<String>> = bounded(self.timeout, conn.query_all(&reads)).await?;
            for (partition, pair) in needs.positions.iter().zip(loaded.chunks(2)) {
                let [position, generation] = pair else {
                    break;
                };
                known.loaded(partition.clone(), position.clone(), generation.clone());
            }
            // Voids are the live product's (a copy leaves the same entries out).
            let products: Vec<&ProductId> = needs
                .positions
                .iter()
                .filter_map(|partition| match partition {
                    Partition::Product(product) => Some(product),
                    Partition::DeadLetters => None,
                })
                .collect();
            let reads: Vec<redis::Cmd> = products
                .iter()
                .map(|product| redis::Cmd::hkeys(self.keys.product(product).voids()))
                .collect();
            if !reads.is_empty() {
                let voids: Vec<Vec<String>> = bounded(self.timeout, conn.query_all(&reads)).await?;
                for (product, fields) in products.into_iter().zip(voids) {
                    let set = VoidSet::from_fields(fields.iter().map(String::as_str));
                    if set.is_empty() {
                        known.voids.remove(product);
                    } else {
                        known.voids.insert(product.clone(), set);
                    }
                }
            }
        }
        // Chunked: a first batch after start-up may need many thousands of states.
        for chunk in needs.ratings.chunks(1000) {
            let reads: Vec<redis::Cmd> = chunk
                .iter()
                .map(|(product, board, player)| {
                    redis::Cmd::hgetall(self.product_keys(product).rating(board, player))
                })
                .collect();
            let states: Vec<HashMap<String, String>> =
                bounded(self.timeout, conn.query_all(&reads)).await?;
            for (key, fields) in chunk.iter().cloned().zip(states) {
                known.ratings.insert(key, rating_from_fields(&fields));
            }
        }
        for chunk in needs.scores.chunks(1000) {
            // A player's score is at their stamp on the board (their stats hash holds it):
            // the stamps first, then the scores of those that have one. Plain reads, which a
            // cluster routes by their keys.
            let boards: Vec<(String, BoardKeys)> = chunk
                .iter()
                .map(|(product, board, player)| {
                    let keys = self.product_keys(product);
                    (keys.stats(player), keys.board_keys(board, None))
                })
                .collect();
            let reads: Vec<redis::Cmd> = boards
                .iter()
                .map(|(stats, board)| redis::Cmd::hget(stats, &board.stamp_field))
                .collect();
            let stamps: Vec<Option<Vec<u8>>> =
                bounded(self.timeout, conn.query_all(&reads)).await?;
            // The score is on the board, or on its hidden copy while the player is hidden.
            let mut reads = Vec::new();
            for ((_, _, player), ((_, board), stamp)) in
                chunk.iter().zip(boards.iter().zip(&stamps))
            {
                if let Some(stamp) = stamp {
                    let member = [stamp.as_slice(), player.as_str().as_bytes()].concat();
                    reads.push(redis::Cmd::zscore(&board.board, &member));
                    reads.push(redis::Cmd::zscore(&board.hidden, member));
                }
            }
            let mut scores = if reads.is_empty() {
                Vec::new()
            } else {
                bounded(self.timeout, conn.query_all::<Option<f64>>(&reads)).await?
            }
            .into_iter();
            for (key, stamp) in chunk.iter().cloned().zip(&stamps) {
                // Boards store scores negated (rank order).
                let score = match stamp {
                    Some(_) => {
                        let (shown, hidden) = (scores.next().flatten(), scores.next().flatten());
                        shown.or(hidden).map(|stored| -stored)
                    }
                    None => None,
                };
                known.scores.insert(key, score);
            }
        }
        for chunk in needs.redrives.chunks(1000) {
            let reads: Vec<redis::Cmd> = chunk
                .iter()
                .map(|(partition, member)| {
                    redis::Cmd::sismember(self.partition_keys(partition).redriven(), member)
                })
                .collect();
            let present: Vec<bool> = bounded(self.timeout, conn.query_all(&reads)).await?;
            for (key, present) in chunk.iter().cloned().zip(present) {
                known.redriven.insert(key, present);
            }
        }
        Ok(())
    }

    /// Encodes the commit of `batch`, planned on `known` (not yet moved past it): script calls
    /// per partition, each with the admin generation and the applied position it was planned
    /// on, plus the discovery index. Done while the previous batch commits, so Redis is not
    /// kept waiting for it. Products are listed in the discovery index once per `known`.
    pub fn prepare(&self, epoch: u64, batch: &BatchPlan, known: &mut Known) -> PreparedCommit {
        // What the script must find in the store for the plan to hold ('' for nothing).
        let planned_on = |partition: Partition| {
            let get = |map: &HashMap<Partition, Option<String>>| {
                map.get(&partition).cloned().flatten().unwrap_or_default()
            };
            PlannedOn {
                generation: get(&known.generations),
                position: get(&known.positions),
            }
        };
        let mut calls = Vec::new();
        let history_trim = HistoryTrim::now(self.history);
        for (product, events) in &batch.products {
            let keys = self.product_keys(product);
            let ops: Vec<_> = events
                .iter()
                .map(|event| (event.id.as_str(), change_ops(&keys, event)))
                .collect();
            let lines: Vec<Option<&str>> = events
                .iter()
                .map(|event| event.history.as_deref().filter(|_| self.copy.is_none()))
                .collect();
            let planned_on = planned_on(Partition::Product(product.clone()));
            calls.push(self.encode_partition(epoch, planned_on, &keys, ops, &lines, &history_trim));
        }
        let letters = if batch.dead_letters.is_empty() {
            Vec::new()
        } else {
            let keys = &self.dead_letters;
            let trim = Trim::now(self.retention);
            let ops: Vec<_> = batch
                .dead_letters
                .iter()
                .map(|letter| (letter.id.as_str(), dead_letter_ops(keys, letter, &trim)))
                .collect();
            let lines = vec![None; ops.len()];
            self.encode_partition(
                epoch,
                planned_on(Partition::DeadLetters),
                keys,
                ops,
                &lines,
                &history_trim,
            )
        };
        // An entry that is applied to its product and dead-lettered for one of its boards (or
        // stats) touches two partitions. Its dead letter goes first: planning skips an entry whose
        // product already applied it, so a crash between the two commits would otherwise lose
        // the letter for good; the other way round, the replay re-plans the product and skips
        // the letter already written.
        let letters_first = batch.dead_letters.iter().any(|letter| {
            letter
                .reasons
                .iter()
                .any(|reason| reason.board.is_some() || reason.stat.is_some())
        });
        // A board's validation may have refused a value against a score of the worker's view:
        // before its letter is written, the products must still be at the generation the view
        // holds (an admin change since, found only at the products' commit, would make the
        // letter wrong, and a re-plan would not take it back).
        let generations = if letters_first {
            batch
                .products
                .keys()
                .map(|product| {
                    let planned = planned_on(Partition::Product(product.clone()));
                    (self.product_keys(product).generation(), planned.generation)
                })
                .collect()
        } else {
            Vec::new()
        };
        // Discovery index, outside the product slots; idempotent, so no position needed. Only
        // products this worker has not listed yet: that is rarely any.
        let unlisted: Vec<&ProductId> = batch
            .products
            .keys()
            .filter(|product| self.copy.is_none() && !known.listed.contains(*product))
            .collect();
        let products = (!unlisted.is_empty()).then(|| {
            let mut sadd = redis::cmd("SADD");
            sadd.arg(self.keys.products());
            for product in &unlisted {
                sadd.arg(product.as_str());
            }
            sadd
        });
        known.listed.extend(unlisted.into_iter().cloned());
        PreparedCommit {
            calls,
            letters,
            letters_first,
            generations,
            products,
        }
    }

    /// Commits a prepared batch: lists new products, then sends every script call at once, in
    /// order (the dead letters' first, and waited for if they must go first). On a Redis
    /// Cluster, each partition's calls are a pipeline of their own (a pipeline may not span
    /// hash slots), the partitions' pipelines sent at once.
    pub async fn commit(&self, prepared: &PreparedCommit) -> Result<CommitCounts, CommitError> {
        // First: listed after its effects, a product would stay unlisted if the worker died
        // in between (the replay skips the effects, and so the listing).
        if let Some(sadd) = &prepared.products {
            bounded(self.timeout, sadd.query_async::<()>(&mut self.conn.clone())).await?;
        }
        let mut applied = 0;
        let mut chains: Vec<Vec<&redis::Cmd>> = Vec::new();
        let letters: Vec<&redis::Cmd> = prepared.letters.iter().collect();
        if prepared.letters_first {
            let reads: Vec<redis::Cmd> = prepared
                .generations
                .iter()
                .map(|(key, _)| redis::Cmd::get(key))
                .collect();
            let now: Vec<Option<String>> =
                bounded(self.timeout, self.conn.clone().query_all(&reads)).await?;
            let moved = prepared
                .generations
                .iter()
                .zip(now)
                .any(|((_, planned), now)| now.unwrap_or_default() != *planned);
            if moved {
                return Err(CommitError::Stale);
            }
            applied += self.run_scripts(&letters).await?;
        } else if !letters.is_empty() {
            chains.push(letters);
        }
        chains.extend(prepared.calls.iter().map(|chain| chain.iter().collect()));
        if self.conn.is_cluster() {
            let counts =
                futures::future::try_join_all(chains.iter().map(|chain| self.run_scripts(chain)))
                    .await?;
            applied += counts.iter().sum::<u64>();
        } else {
            applied += self.run_scripts(&chains.concat()).await?;
        }
        Ok(CommitCounts { applied })
    }

    /// The `EVALSHA`s of commit.lua for one partition's share of a batch: one per
    /// `entries_per_call` entries, each planned on the position the one before it leaves.
    fn encode_partition(
        &self,
        epoch: u64,
        mut planned_on: PlannedOn,
        keys: &PartitionKeys,
        mut events: Vec<(&str, Vec<Op>)>,
        lines: &[Option<&str>],
        history_trim: &HistoryTrim,
    ) -> Vec<redis::Cmd> {
        events
            .chunks_mut(self.entries_per_call)
            .zip(lines.chunks(self.entries_per_call))
            .map(|(chunk, lines)| {
                fold_counts(chunk);
                let history = history_chunk(chunk, lines);
                let call =
                    self.encode_call(epoch, &planned_on, keys, chunk, &history, history_trim);
                if let Some((last, _)) = chunk.last() {
                    planned_on.position = (*last).to_owned();
                }
                call
            })
            .collect()
    }

    /// One `EVALSHA` of commit.lua: `events` in stream order, planned on `planned_on`.
    fn encode_call(
        &self,
        epoch: u64,
        planned_on: &PlannedOn,
        keys: &PartitionKeys,
        events: &[(&str, Vec<Op>)],
        history: &[u8],
        history_trim: &HistoryTrim,
    ) -> redis::Cmd {
        // KEYS[1..12] are taken; every distinct group of op keys (named by its first key: a
        // board's two keys always come together) gets the next indexes, so that an op only
        // names its first key. Keys come before the arguments in the call, so they are
        // numbered first.
        let (applied, fence, generation_key, sequence) = (
            keys.applied(),
            keys.fence(),
            keys.generation(),
            keys.sequence(),
        );
        let (events_key, kept, gap, exported, dropped, hold, hidden) = (
            keys.events(),
            keys.events_kept(),
            keys.events_gap(),
            keys.events_exported(),
            keys.events_dropped(),
            keys.rebuild_hold(),
            keys.hidden(),
        );
        let feed = keys.feed();
        let mut key_names: Vec<&str> = vec![
            &applied,
            &fence,
            &generation_key,
            &sequence,
            &events_key,
            &kept,
            &gap,
            &exported,
            &dropped,
            &hold,
            &hidden,
            &feed,
        ];
        let mut key_index: HashMap<&str, usize> = HashMap::new();
        for op in events.iter().flat_map(|(_, ops)| ops) {
            let groups =
                std::iter::once(op.keys.as_slice()).chain(op.arg_keys.iter().map(Vec::as_slice));
            for group in groups {
                let Some(first) = group.first() else {
                    continue;
                };
                key_index.entry(first.as_str()).or_insert_with(|| {
                    let index = key_names.len() + 1;
                    key_names.extend(group.iter().map(String::as_str));
                    index
                });
            }
        }
        let mut call = redis::cmd("EVALSHA");
        call.arg(self.script.get_hash()).arg(key_names.len());
        for key in key_names {
            call.arg(key);
        }
        call.arg(epoch)
            .arg(&planned_on.generation)
            .arg(&planned_on.position)
            .arg(events.len())
            .arg(history)
            .arg(history_trim.max_entries)
            .arg(&history_trim.min_id)
            .arg(self.feed_max_entries);
        // Entries without operations are left out but for the last, which sets the position.
        let sent: Vec<&(&str, Vec<Op>)> = events
            .iter()
            .enumerate()
            .filter(|(index, (_, ops))| !ops.is_empty() || index + 1 == events.len())
            .map(|(_, event)| event)
            .collect();
        call.arg(sent.len());
        for (id, ops) in sent {
            call.arg(*id).arg(ops.len());
            for op in ops {
                let first = op.keys.first().map_or(0, |key| key_index[key.as_str()]);
                call.arg(op.command).arg(first);
                let count = op.arg_keys.len() + op.args.len();
                match fixed_args(op.command) {
                    Some(fixed) => debug_assert_eq!(fixed, count, "{}", op.command),
                    None => {
                        call.arg(count);
                    }
                }
                for group in &op.arg_keys {
                    if let Some(first) = group.first() {
                        call.arg(key_index[first.as_str()]);
                    }
                }
                for arg in &op.args {
                    call.arg(arg.as_slice());
                }
            }
        }
        call
    }

    /// Runs script calls in this order, as one pipeline (one message to the connection, so
    /// nothing can reorder them on the way); the entries they applied. A call refused as stale
    /// or fenced refuses the ones behind it too. Redis lacking the script (restarted, SCRIPT
    /// FLUSH) refuses every call from the first: the script is loaded and those are sent
    /// again, once.
    async fn run_scripts(&self, calls: &[&redis::Cmd]) -> Result<u64, CommitError> {
        let mut conn = self.conn.clone();
        let mut applied = 0;
        let mut unsent = calls;
        let mut loaded = false;
        while !unsent.is_empty() {
            let mut pipe = redis::pipe();
            pipe.ignore_errors();
            for call in unsent {
                pipe.add_command((*call).clone());
            }
            let replies: Vec<redis::RedisResult<i64>> =
                bounded(self.timeout, pipe.query_async(&mut conn)).await?;
            let mut done = 0;
            for reply in replies {
                match reply {
                    Ok(-1) => return Err(CommitError::Stale),
                    Ok(-2) => return Err(CommitError::Held),
                    Ok(count) => applied += count.unsigned_abs(),
                    Err(error) if error.code() == Some("FENCED") => {
                        return Err(CommitError::Fenced);
                    }
                    Err(error) if error.code() == Some("NOSCRIPT") && !loaded => break,
                    Err(error) => return Err(StoreError::Redis(error).into()),
                }
                done += 1;
            }
            unsent = unsent.get(done..).unwrap_or_default();
            if !unsent.is_empty() {
                if loaded {
                    // Only a reply missing from the pipeline's gets here: never loop on it.
                    return Err(CommitError::Store(StoreError::Redis(
                        redis::RedisError::from((
                            redis::ErrorKind::Io,
                            "fewer replies than script calls",
                        )),
                    )));
                }
                bounded(self.timeout, self.script.load_async(&mut conn)).await?;
                loaded = true;
            }
        }
        Ok(applied)
    }
}

impl PreparedCommit {
    /// Whether committing waits for a step before sending the script calls (listing new
    /// products, dead letters that must go first).
    pub fn waits_within(&self) -> bool {
        self.products.is_some() || self.letters_first
    }
}

/// The store a partition's share of a batch was planned on.
struct PlannedOn {
    generation: String,
    position: String,
}

/// A batch's commit, encoded ahead of time by [`Committer::prepare`].
#[derive(Default)]
pub struct PreparedCommit {
    /// The products' script calls, a chain per product (each call planned on the position the
    /// one before it leaves).
    calls: Vec<Vec<redis::Cmd>>,
    /// The dead letters' script calls.
    letters: Vec<redis::Cmd>,
    /// Whether the dead letters' calls must complete before the products' start.
    letters_first: bool,
    /// Then: each product's generation key and the generation the batch was planned on,
    /// checked before the letters are written.
    generations: Vec<(String, String)>,
    /// `SADD` of the products not listed yet to the discovery index.
    products: Option<redis::Cmd>,
}

/// Operations whose number of arguments commit.lua knows (its `fixed_args`): the call leaves
/// the count out.
const FIXED_ARGS: [(&str, usize); 6] = [
    ("HMAX", 2),
    ("HMIN", 2),
    ("STREAK", 2),
    ("HISTORY", 2),
    ("HINCRBY", 2),
    ("HINCRBYFLOAT", 2),
];

fn fixed_args(command: &str) -> Option<usize> {
    FIXED_ARGS
        .iter()
        .find(|(fixed, _)| *fixed == command)
        .map(|(_, count)| *count)
}

fn op(command: &'static str, key: String, args: Vec<Vec<u8>>) -> Op {
    Op {
        command,
        keys: vec![key],
        arg_keys: Vec::new(),
        args,
    }
}

/// One player's score change on one board: on each of its targets (all-time, then each
/// window's period), one `BOARD` operation of commit.lua.
struct BoardChange<'a> {
    board: &'a str,
    player: &'a PlayerId,
    feed_top: u32,
    how: &'static str,
    value: f64,
    /// A board with several score columns: each column's update (`how` is `columns`).
    columns: Option<&'a [ColumnUpdate]>,
    periods: Vec<&'a Option<PeriodTarget>>,
}

impl BoardChange<'_> {
    /// Whether `other` is the same change on another target.
    fn extends(&self, other: &BoardChange<'_>) -> bool {
        self.board == other.board
            && self.player == other.player
            && self.how == other.how
            && self.value.to_bits() == other.value.to_bits()
            && self.columns == other.columns
    }

    /// The value argument: the number, or commit.lua's column updates (`parse_columns`).
    fn value_arg(&self) -> Vec<u8> {
        let Some(columns) = self.columns else {
            return text(self.value);
        };
        let updates: Vec<String> = columns
            .iter()
            .map(|column| {
                let how = match column.how {
                    Aggregate::Sum => 's',
                    Aggregate::Max => 'x',
                    Aggregate::Min => 'n',
                    Aggregate::Last => 'l',
                };
                let order = if column.ascending { 'a' } else { 'd' };
                match &column.value {
                    ColumnValue::Keep => format!("{how}{order}"),
                    ColumnValue::Given(value) => format!("{how}{order}{value}"),
                    ColumnValue::Stat(stat) => format!("{how}{order}~{stat}"),
                }
            })
            .collect();
        updates.join(",").into_bytes()
    }

    /// commit.lua's `BOARD`: stats hash and boards as key groups, then `how`, the value, the
    /// player, the board's name and feed top, and each board's stamp field, expiry and
    /// previous period.
    fn op(&self, keys: &PartitionKeys) -> Op {
        let mut arg_keys = vec![vec![keys.stats(self.player)]];
        let mut args = vec![
            self.how.as_bytes().to_vec(),
            self.value_arg(),
            self.player.as_str().into(),
            self.board.as_bytes().to_vec(),
            text(self.feed_top),
        ];
        for period in &self.periods {
            let board_keys =
                keys.board_keys(self.board, period.as_ref().map(|p| p.key_suffix.as_str()));
            arg_keys.push(vec![
                board_keys.board,
                board_keys.distinct,
                board_keys.hidden,
            ]);
            args.push(board_keys.stamp_field.into_bytes());
            args.push(
                period
                    .as_ref()
                    .and_then(|p| p.expires_at_s)
                    .map(text)
                    .unwrap_or_default(),
            );
            // Only a feed announces a previous period's close.
            args.push(
                period
                    .as_ref()
                    .and_then(|p| p.previous_suffix.as_deref())
                    .map(text)
                    .unwrap_or_default(),
            );
        }
        Op {
            command: "BOARD",
            keys: Vec::new(),
            arg_keys,
            args,
        }
    }
}

/// Folds repeated `HINCRBY`s of one stat within one script call into the first of them: the
/// same sums, fewer commands for Redis (a match counts the same picks again and again). Only
/// while no other operation touched the player's stats in between, so that streaks and the
/// other stats operations see the counts in order. Never across calls: a call's entries are
/// applied together with its position, and a count folded into an earlier call would be
/// applied again when a crash between the two replays the later entry.
fn fold_counts(events: &mut [(&str, Vec<Op>)]) {
    let integer = |arg: &[u8]| std::str::from_utf8(arg).ok()?.parse::<i64>().ok();
    // Per stats key, per field: where the count open for folding is (entry, operation).
    let mut open: HashMap<String, HashMap<Vec<u8>, (usize, usize)>> = HashMap::new();
    for entry in 0..events.len() {
        let mut index = 0;
        while index < events[entry].1.len() {
            let op = &events[entry].1[index];
            let Some(key) = op.keys.first() else {
                index += 1;
                continue;
            };
            let count = match (op.command, op.args.as_slice()) {
                ("HINCRBY", [field, delta]) => integer(delta).map(|delta| (field.clone(), delta)),
                _ => None,
            };
            let Some((field, delta)) = count else {
                open.remove(key);
                index += 1;
                continue;
            };
            let fields = open.entry(key.clone()).or_default();
            if let Some(&(first_entry, first_index)) = fields.get(&field) {
                let first = &mut events[first_entry].1[first_index];
                if let Some(sum) = first
                    .args
                    .get(1)
                    .and_then(|first_delta| integer(first_delta))
                    .and_then(|first_delta| first_delta.checked_add(delta))
                {
                    first.args[1] = text(sum);
                    events[entry].1.remove(index);
                    continue;
                }
            }
            fields.insert(field, (entry, index));
            index += 1;
        }
    }
}

fn text(value: impl ToString) -> Vec<u8> {
    value.to_string().into_bytes()
}

fn change_ops(keys: &PartitionKeys, event: &PlannedEvent) -> Vec<Op> {
    // In the same call as the changes: a second copy of the re-drive finds it, or neither.
    let redriven = event
        .redrive_of
        .as_ref()
        .map(|of| op("SADD", keys.redriven(), vec![text(of)]));
    let mut ops = Vec::with_capacity(event.changes.as_slice().len());
    // A player's change of one board comes for each of its targets in a row: one operation.
    let mut pending: Option<BoardChange<'_>> = None;
    for change in event.changes.as_slice() {
        let board_change = match change {
            Change::Score {
                board,
                period,
                player,
                how,
                value,
                feed_top,
            } => Some(BoardChange {
                board,
                player,
                feed_top: *feed_top,
                how: match how {
                    Aggregate::Sum => "sum",
                    Aggregate::Max => "max",
                    Aggregate::Min => "min",
                    Aggregate::Last => "last",
                },
                value: *value,
                columns: None,
                periods: vec![period],
            }),
            Change::ScoreColumns {
                board,
                period,
                player,
                columns,
            } => Some(BoardChange {
                board,
                player,
                feed_top: 0,
                how: "columns",
                value: 0.0,
                columns: Some(columns),
                periods: vec![period],
            }),
            Change::EnsureOnBoard {
                board,
                period,
                player,
                feed_top,
            } => Some(BoardChange {
                board,
                player,
                feed_top: *feed_top,
                how: "ensure",
                value: 0.0,
                columns: None,
                periods: vec![period],
            }),
            _ => None,
        };
        if let Some(next) = board_change {
            match &mut pending {
                Some(open) if open.extends(&next) => open.periods.extend(next.periods),
                _ => {
                    if let Some(done) = pending.replace(next) {
                        ops.push(done.op(keys));
                    }
                }
            }
            continue;
        }
        if let Some(done) = pending.take() {
            ops.push(done.op(keys));
        }
        ops.push(match change {
            Change::Count {
                player,
                stat,
                delta,
            } => op("HINCRBY", keys.stats(player), vec![text(stat), text(delta)]),
            Change::Stat {
                player,
                stat,
                how,
                value,
            } => {
                let command = match how {
                    Aggregate::Sum => "HINCRBYFLOAT",
                    Aggregate::Max => "HMAX",
                    Aggregate::Min => "HMIN",
                    Aggregate::Last => "HSET",
                };
                op(command, keys.stats(player), vec![text(stat), text(value)])
            }
            Change::StreakWon {
                player,
                current,
                best,
            } => op(
                "STREAK",
                keys.stats(player),
                vec![text(current), text(best)],
            ),
            Change::StreakBroken { player, current } => op(
                "HSET",
                keys.stats(player),
                vec![text(current), b"0".to_vec()],
            ),
            Change::Rating {
                board,
                player,
                fields,
            } => op(
                "HSET",
                keys.rating(board, player),
                fields
                    .iter()
                    .flat_map(|(name, value)| [text(name), text(value)])
                    .collect(),
            ),
            Change::History {
                board,
                player,
                entry,
                limit,
            } => op(
                "HISTORY",
                keys.history(board, player),
                vec![text(limit), text(entry)],
            ),
            Change::Profile { player, fields } => op(
                "HSET",
                keys.profile(player),
                fields
                    .iter()
                    .flat_map(|(name, value)| [text(name), text(value)])
                    .collect(),
            ),
            Change::Feed { kind, fields } => Op {
                command: "FEED",
                keys: Vec::new(),
                arg_keys: Vec::new(),
                args: std::iter::once(text(kind))
                    .chain(
                        fields
                            .iter()
                            .flat_map(|(name, value)| [text(name), text(value)]),
                    )
                    .collect(),
            },
            // Grouped into board operations above.
            Change::Score { .. } | Change::ScoreColumns { .. } | Change::EnsureOnBoard { .. } => {
                continue;
            }
        });
    }
    if let Some(done) = pending.take() {
        ops.push(done.op(keys));
    }
    ops.extend(redriven);
    ops
}

/// The history chunk of one script call's entries: those with a history line (empty when
/// none has one).
fn history_chunk(events: &[(&str, Vec<Op>)], lines: &[Option<&str>]) -> Vec<u8> {
    let kept: Vec<(&str, &str)> = events
        .iter()
        .zip(lines)
        .filter_map(|((id, _), line)| line.map(|line| (*id, line)))
        .collect();
    match (kept.first(), kept.last()) {
        (Some((first, _)), Some((last, _))) => {
            let lines: Vec<&str> = kept.iter().map(|(_, line)| *line).collect();
            // Without its chunk the commit still applies; the next chunk's script finds the
            // history behind the position and records the gap (`events:gap`).
            crate::history::encode_chunk(first, last, &lines).unwrap_or_else(|| {
                tracing::error!(
                    first,
                    last,
                    "cannot compress a history chunk; its entries are missing from the history"
                );
                Vec::new()
            })
        }
        _ => Vec::new(),
    }
}

/// How one commit trims products' history: the bounds as of now.
struct HistoryTrim {
    max_entries: u64,
    /// Chunks whose last entry is older than this stream id go ('' for no age limit).
    min_id: String,
}

impl HistoryTrim {
    fn now(retention: HistoryRetention) -> Self {
        Self {
            max_entries: retention.max_entries,
            min_id: if retention.max_age_ms > 0 {
                format!("{}-0", now_ms().saturating_sub(retention.max_age_ms))
            } else {
                String::new()
            },
        }
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// How one commit trims the dead-letter stream: `MAXLEN ~` on every `XADD`, and an
/// `XTRIM MINID ~` after it (one `XADD` takes one strategy only).
struct Trim {
    max_entries: Option<u64>,
    /// Letters older than this stream id go.
    min_id: Option<String>,
}

impl Trim {
    /// The bounds as of now (the age limit counts back from the worker's clock).
    fn now(retention: DeadLetterRetention) -> Self {
        let now_ms = now_ms();
        Self {
            max_entries: (retention.max_entries > 0).then_some(retention.max_entries),
            min_id: (retention.max_age_ms > 0)
                .then(|| format!("{}-0", now_ms.saturating_sub(retention.max_age_ms))),
        }
    }
}

/// Per reason: `XADD <dead letters> [MAXLEN ~ n] * source_id <id> reason <why> board <name or
/// ''> <original fields…>`, then the age trim, then for a re-drive the letter it came from in
/// the `redriven` set (same call: a second copy of the re-drive finds it, or neither).
/// `board` is always there, so the original fields are always the pairs from the fourth on,
/// whatever they are named.
fn dead_letter_ops(keys: &PartitionKeys, letter: &DeadLetter, trim: &Trim) -> Vec<Op> {
    let mut ops: Vec<Op> = letter
        .reasons
        .iter()
        .map(|reason| {
            let mut args = Vec::with_capacity(10 + 2 * letter.fields.len());
            if let Some(max_entries) = trim.max_entries {
                args.extend([b"MAXLEN".to_vec(), b"~".to_vec(), text(max_entries)]);
            }
            args.extend([
                b"*".to_vec(),
                b"source_id".to_vec(),
                text(&letter.id),
                b"reason".to_vec(),
                text(&reason.text),
                b"board".to_vec(),
                reason.board.as_deref().map(text).unwrap_or_default(),
            ]);
            for (name, value) in &letter.fields {
                args.push(name.clone());
                args.push(value.clone());
            }
            op("XADD", keys.stream(), args)
        })
        .collect();
    if let Some(min_id) = &trim.min_id {
        ops.push(op(
            "XTRIM",
            keys.stream(),
            vec![b"MINID".to_vec(), b"~".to_vec(), text(min_id)],
        ));
    }
    if let Some(redrive_letter) = &letter.redrive_letter {
        ops.push(op("SADD", keys.redriven(), vec![text(redrive_letter)]));
    }
    ops
}

#[cfg(test)]
mod tests {
    use super::*;

    fn count(key: &str, field: &str, delta: i64) -> Op {
        op("HINCRBY", key.to_owned(), vec![text(field), text(delta)])
    }

    /// Each entry's operations as `command key args…` lines.
    fn lines(events: &[(&str, Vec<Op>)]) -> Vec<Vec<String>> {
        events
            .iter()
            .map(|(_, ops)| {
                ops.iter()
                    .map(|op| {
                        let args: Vec<String> = op
                            .args
                            .iter()
                            .map(|arg| String::from_utf8_lossy(arg).into_owned())
                            .collect();
                        format!("{} {} {}", op.command, op.keys[0], args.join(" "))
                    })
                    .collect()
            })
            .collect()
    }

    #[test]
    fn counts_of_a_stat_fold_into_the_first_until_the_stats_are_otherwise_touched() {
        let mut events = vec![
            ("1-0", vec![count("a", "picks", 1), count("b", "picks", 5)]),
            ("2-0", vec![count("a", "picks", 2), count("a", "rounds", 1)]),
            (
                "3-0",
                vec![
                    op("STREAK", "a".to_owned(), vec![text("cur"), text("best")]),
                    count("a", "picks", 3),
                    count("b", "picks", 6),
                ],
            ),
            (
                "4-0",
                vec![count("a", "picks", 4), count("b", "picks", i64::MAX)],
            ),
        ];
        fold_counts(&mut events);
        assert_eq!(
            lines(&events),
            [
                vec!["HINCRBY a picks 3", "HINCRBY b picks 11"],
                vec!["HINCRBY a rounds 1"],
                // Another operation on `a`: its counts start again; `b`'s go on folding.
                vec!["STREAK a cur best", "HINCRBY a picks 7"],
                // A sum that would overflow is not folded.
                vec!["HINCRBY b picks 9223372036854775807"],
            ]
        );
    }
}
