//! Committing a planned batch to the store: one atomic script call per partition (product or
//! dead-letter stream) that writes the effects together with the partition's applied position.
//!
//! The position is what makes effects exactly-once: an entry at or below it is skipped, so a
//! batch replayed after a crash (committed, not yet acknowledged) changes nothing. The fence
//! rejects a writer whose lease was taken over (see `workers::stream`).

use std::collections::HashMap;
use std::time::Duration;

use futures::future::try_join_all;
use redis::Script;
use redis::aio::ConnectionManager;

use super::plan::{BatchPlan, DeadLetter, PlannedEvent};
use crate::core::effects::Change;
use crate::core::keys::{KeySpace, PartitionKeys};
use crate::core::store::{self, StoreError};

/// A Redis command of a commit, addressed to one key.
#[derive(Debug)]
struct Op {
    command: &'static str,
    key: String,
    args: Vec<Vec<u8>>,
}

/// Why a commit failed.
#[derive(Debug, thiserror::Error)]
pub enum CommitError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("another worker took over the stream (lease epoch {0} is stale)")]
    Fenced(u64),
}

/// Writes planned batches to the store.
pub struct Committer {
    conn: ConnectionManager,
    keys: KeySpace,
    script: Script,
    timeout: Duration,
}

/// One partition's share of a batch: per entry, its id and the commands it causes.
type PartitionOps<'a> = (PartitionKeys, Vec<(&'a str, Vec<Op>)>);

/// Entries applied now versus found already applied by an earlier run.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct CommitCounts {
    pub applied: u64,
    pub replayed: u64,
}

impl Committer {
    pub fn new(url: &str, keys: KeySpace, timeout: Duration) -> Result<Self, StoreError> {
        Ok(Self {
            conn: store::lazy_connection(url, timeout)?,
            keys,
            script: Script::new(include_str!("commit.lua")),
            timeout,
        })
    }

    /// Commits every partition of `batch` (concurrently: they are independent) and records
    /// the products seen.
    pub async fn commit(&self, epoch: u64, batch: &BatchPlan) -> Result<CommitCounts, CommitError> {
        let mut partitions: Vec<PartitionOps> = batch
            .products
            .iter()
            .map(|(product, events)| {
                let keys = self.keys.product(product);
                let ops = events
                    .iter()
                    .map(|event| (event.id.as_str(), change_ops(&keys, event)))
                    .collect();
                (keys, ops)
            })
            .collect();
        if !batch.dead_letters.is_empty() {
            let keys = self.keys.dead_letters();
            let ops = batch
                .dead_letters
                .iter()
                .map(|letter| (letter.id.as_str(), vec![dead_letter_op(&keys, letter)]))
                .collect();
            partitions.push((keys, ops));
        }
        let total: u64 = partitions
            .iter()
            .map(|(_, events)| events.len() as u64)
            .sum();
        let applied: Vec<u64> = try_join_all(
            partitions
                .iter()
                .map(|(keys, events)| self.commit_partition(epoch, keys, events)),
        )
        .await?;
        if !batch.products.is_empty() {
            // Discovery index, outside the product slots; idempotent, so no position needed.
            let mut sadd = redis::cmd("SADD");
            sadd.arg(self.keys.products());
            for product in batch.products.keys() {
                sadd.arg(product.as_str());
            }
            self.run(sadd.query_async::<()>(&mut self.conn.clone()))
                .await?;
        }
        let applied: u64 = applied.iter().sum();
        Ok(CommitCounts {
            applied,
            replayed: total - applied,
        })
    }

    async fn commit_partition(
        &self,
        epoch: u64,
        keys: &PartitionKeys,
        events: &[(&str, Vec<Op>)],
    ) -> Result<u64, CommitError> {
        let mut invocation = self.script.prepare_invoke();
        invocation.key(keys.applied()).key(keys.fence());
        // KEYS[1] and KEYS[2] are taken; every distinct op key gets the next index.
        let mut key_index: HashMap<&str, usize> = HashMap::new();
        invocation.arg(epoch).arg(events.len());
        for (id, ops) in events {
            invocation.arg(*id).arg(ops.len());
            for op in ops {
                let next = key_index.len() + 3;
                let index = *key_index.entry(op.key.as_str()).or_insert_with(|| {
                    invocation.key(op.key.as_str());
                    next
                });
                invocation.arg(op.command).arg(index).arg(op.args.len());
                for arg in &op.args {
                    invocation.arg(arg.as_slice());
                }
            }
        }
        let mut conn = self.conn.clone();
        match self.run(invocation.invoke_async::<u64>(&mut conn)).await {
            Err(StoreError::Redis(error)) if error.code() == Some("FENCED") => {
                Err(CommitError::Fenced(epoch))
            }
            other => Ok(other?),
        }
    }

    async fn run<T>(
        &self,
        future: impl Future<Output = redis::RedisResult<T>>,
    ) -> Result<T, StoreError> {
        match tokio::time::timeout(self.timeout, future).await {
            Ok(result) => Ok(result?),
            Err(_) => Err(StoreError::Timeout(self.timeout)),
        }
    }
}

fn change_ops(keys: &PartitionKeys, event: &PlannedEvent) -> Vec<Op> {
    event
        .changes
        .as_slice()
        .iter()
        .map(|change| match change {
            Change::AddScore {
                board,
                player,
                delta,
            } => Op {
                command: "ZINCRBY",
                key: keys.board(board),
                args: vec![delta.to_string().into_bytes(), player.as_str().into()],
            },
            Change::EnsureOnBoard { board, player } => Op {
                command: "ZADD",
                key: keys.board(board),
                args: vec![b"NX".to_vec(), b"0".to_vec(), player.as_str().into()],
            },
            Change::AddStat {
                player,
                stat,
                delta,
            } => Op {
                command: "HINCRBY",
                key: keys.stats(player),
                args: vec![stat.as_str().into(), delta.to_string().into_bytes()],
            },
        })
        .collect()
}

/// `XADD <dead letters> * source_id <id> reason <why> <original fields…>`.
fn dead_letter_op(keys: &PartitionKeys, letter: &DeadLetter) -> Op {
    let mut args = vec![
        b"*".to_vec(),
        b"source_id".to_vec(),
        letter.id.as_bytes().to_vec(),
        b"reason".to_vec(),
        letter.reason.as_bytes().to_vec(),
    ];
    for (name, value) in &letter.fields {
        args.push(name.clone());
        args.push(value.clone());
    }
    Op {
        command: "XADD",
        key: keys.stream(),
        args,
    }
}
