//! The commit pipeline of one lease: planned batches handed to a commit task that commits
//! and acknowledges them in plan order, several in flight at once (see [`Commits`]), and
//! counts them in the metrics.

use std::sync::Arc;
use std::time::Instant;

use futures::StreamExt;
use futures::stream::FuturesOrdered;
use tokio::sync::{mpsc, oneshot};

use super::WorkerError;
use super::commit::{Committer, PreparedCommit};
use super::plan;
use super::stream::EventStream;
use crate::core::event::ReasonKind;
use crate::core::metrics::ProductLabels;

/// A batch planned and not yet committed, with its commit encoded.
pub(super) struct Planned {
    /// Every id the batch read (entries and vanished ids), to acknowledge after the commit.
    pub(super) ids: Vec<String>,
    /// Whether to acknowledge `ids`: not for entries re-read to re-derive what the store
    /// lost, which were acknowledged before (any still pending is delivered again, skipped as
    /// applied, and acknowledged then; each acknowledgement is counted).
    pub(super) acknowledge: bool,
    /// The applied positions the commit leaves, by partition record name, to record with the
    /// acknowledgement.
    pub(super) positions: Vec<(String, String)>,
    pub(super) commit: PreparedCommit,
    /// Per entry, for metrics.
    pub(super) outcomes: Vec<plan::EntryOutcome>,
    /// Per letter written: its raw product id and reason kind, for metrics.
    pub(super) dead_letters: Vec<(String, ReasonKind)>,
    pub(super) started: Instant,
}

/// Commits and acknowledges planned batches, in the commit task (see [`Commits`]).
#[derive(Clone)]
pub(super) struct Sink {
    pub(super) committer: Arc<Committer>,
    pub(super) stream: Arc<EventStream>,
    pub(super) labels: Arc<ProductLabels>,
}

impl Sink {
    /// Commits and acknowledges a planned batch, and counts it.
    async fn commit_planned(&self, planned: Planned) -> Result<(), WorkerError> {
        let Planned {
            ids,
            acknowledge,
            positions,
            commit,
            outcomes,
            dead_letters,
            started,
        } = planned;
        if ids.is_empty() {
            return Ok(());
        }
        let counts = self.committer.commit(&commit).await?;
        let ids: Vec<&str> = if acknowledge {
            ids.iter().map(String::as_str).collect()
        } else {
            Vec::new()
        };
        self.stream.ack(&ids, &positions).await?;

        // Counted per batch, not per event: label lookups cost more than the work itself.
        let mut tally: std::collections::HashMap<(&str, &str, &str), u64> =
            std::collections::HashMap::new();
        for outcome in &outcomes {
            *tally
                .entry((
                    outcome.product.as_str(),
                    outcome.event_type,
                    outcome.outcome.as_str(),
                ))
                .or_default() += 1;
        }
        for ((product, event_type, outcome), count) in tally {
            metrics::counter!(
                "stats_tracker_worker_events_total",
                "product" => self.labels.label(product),
                "type" => event_type,
                "outcome" => outcome,
            )
            .increment(count);
        }
        let replayed = outcomes
            .iter()
            .filter(|o| o.outcome == plan::Outcome::Replayed)
            .count();
        if replayed > 0 {
            metrics::counter!("stats_tracker_worker_replayed_events_total")
                .increment(replayed as u64);
            tracing::info!(replayed, "skipped entries already applied before a restart");
        }
        if !dead_letters.is_empty() {
            let mut tally: std::collections::HashMap<(&str, ReasonKind), u64> =
                std::collections::HashMap::new();
            for (product, kind) in &dead_letters {
                *tally.entry((product.as_str(), *kind)).or_default() += 1;
            }
            for ((product, kind), count) in tally {
                metrics::counter!(
                    "stats_tracker_worker_dead_letters_total",
                    "product" => self.labels.label(product),
                    "reason" => kind.as_str(),
                )
                .increment(count);
            }
            tracing::info!(count = dead_letters.len(), "dead-lettered unusable events");
        }
        // From the start of planning to the acknowledgement.
        metrics::histogram!("stats_tracker_worker_batch_duration_seconds")
            .record(started.elapsed().as_secs_f64());
        metrics::histogram!("stats_tracker_worker_batch_size").record(ids.len() as f64);
        tracing::debug!(
            entries = ids.len(),
            applied = counts.applied,
            "batch committed"
        );
        Ok(())
    }
}

/// Most batches whose commits are in flight at once.
const COMMITS_IN_FLIGHT: usize = 3;

/// What the loop hands the commit task.
enum ToCommit {
    Batch(Box<Planned>),
    /// Answered once every batch handed over before is committed and acknowledged.
    Flush(oneshot::Sender<()>),
}

/// The commit task of one lease: commits planned batches in the order they were planned,
/// sending each one's script calls without waiting for the previous batch's replies, so that
/// Redis does not idle for a round trip between batches. That is safe because each call names
/// the applied position it was planned on and the script refuses it unless the store holds
/// exactly that (a call behind a failed one, or one that overtook its predecessor after a
/// reconnect, is refused); each batch is acknowledged after its own calls succeeded, and the
/// first failure in batch order ends the task. Dropped, it stops: calls already sent still
/// run in Redis.
pub(super) struct Commits {
    batches: mpsc::Sender<ToCommit>,
    task: tokio::task::JoinHandle<Result<(), WorkerError>>,
}

impl Commits {
    pub(super) fn start(sink: Sink) -> Self {
        let (batches, received) = mpsc::channel(1);
        Self {
            batches,
            task: tokio::spawn(run_commits(sink, received)),
        }
    }

    /// Hands a planned batch over; its commit starts at once unless too many are in flight.
    pub(super) async fn send(&mut self, batch: Planned) -> Result<(), WorkerError> {
        if self
            .batches
            .send(ToCommit::Batch(Box::new(batch)))
            .await
            .is_err()
        {
            return Err(self.failure().await);
        }
        Ok(())
    }

    /// Waits until every batch handed over is committed and acknowledged.
    pub(super) async fn flush(&mut self) -> Result<(), WorkerError> {
        let (reply, flushed) = oneshot::channel();
        if self.batches.send(ToCommit::Flush(reply)).await.is_err() || flushed.await.is_err() {
            return Err(self.failure().await);
        }
        Ok(())
    }

    /// Why the commit task ended.
    async fn failure(&mut self) -> WorkerError {
        match (&mut self.task).await {
            Ok(Err(error)) => error,
            Ok(Ok(())) => WorkerError::CommitsStopped,
            Err(error) => error.into(),
        }
    }
}

impl Drop for Commits {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn run_commits(
    sink: Sink,
    mut received: mpsc::Receiver<ToCommit>,
) -> Result<(), WorkerError> {
    let mut in_flight = FuturesOrdered::new();
    loop {
        tokio::select! {
            biased;
            Some(committed) = in_flight.next() => committed?,
            message = received.recv(), if in_flight.len() < COMMITS_IN_FLIGHT => match message {
                Some(ToCommit::Batch(batch)) => {
                    // Calls of a later batch sent meanwhile would overtake those it waits to send.
                    let alone = batch.commit.waits_within();
                    in_flight.push_back(sink.commit_planned(*batch));
                    if alone {
                        finish(&mut in_flight).await?;
                    }
                }
                Some(ToCommit::Flush(reply)) => {
                    finish(&mut in_flight).await?;
                    let _ = reply.send(());
                }
                None => break,
            },
        }
    }
    finish(&mut in_flight).await
}

/// Waits for every commit in flight, in order; the first failure ends the wait.
async fn finish(
    in_flight: &mut FuturesOrdered<impl Future<Output = Result<(), WorkerError>>>,
) -> Result<(), WorkerError> {
    while let Some(committed) = in_flight.next().await {
        committed?;
    }
    Ok(())
}
