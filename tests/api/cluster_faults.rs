//! Faults on a Redis Cluster (each test on its own private cluster, `TestCluster`): workers
//! SIGKILLed at random moments, a master killed so that its promoted replica lacks the last
//! writes (of products, or of the stream and what shares its master), and hash slots migrated
//! while the worker applies events. Each run ends with the store equal to the reference model
//! and every bad event dead-lettered exactly once.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use redis::aio::MultiplexedConnection;
use stats_tracker::core::config::Settings;
use stats_tracker::core::store::Connection;
use stats_tracker::workers::plan::compare_ids;
use tempfile::TempDir;

use crate::crash::CHAOS_GAMES;
use crate::faults::lease_holder;
use crate::helpers::{
    ClusterNode, STREAM, TestApp, TestCluster, WorkerProcess, cluster_settings, group_backlog,
    metric, push_events, wait_until_drained,
};
use crate::traffic::{Event, Model, Rng, assert_run_matches, mixed_run};

/// The key of exrps's applied position (its slot is all of exrps's keys').
const EXRPS_APPLIED: &str = "st_test:{exrps}:applied";
/// The stream side's record of acknowledged positions (in the stream's slot).
const ACKED: &str = "{game_event_stream}:stats-tracker:acked";
/// The group's counts (in the stream's slot): `acked` is the entries acknowledged.
const COUNTS: &str = "{game_event_stream}:stats-tracker:counts";
/// Entries the worker acknowledges between the cut and the master's death: the effects the
/// promoted replica lacks.
const LOST_WINDOW: u64 = 300;

/// Settings for the crash runs on `cluster`: the chaos games file (exrps rated with Elo), small
/// batches (many commit and acknowledgement windows), several script calls per product and
/// batch.
fn chaos_settings(cluster: &TestCluster, dir: &TempDir) -> Settings {
    let games_file = dir.path().join("games.toml");
    std::fs::write(&games_file, CHAOS_GAMES).expect("games file");
    let mut settings = cluster_settings(cluster);
    settings.games.file = Some(games_file);
    settings.stream.batch_size = 20;
    settings.worker.entries_per_script_call = 7;
    settings
}

#[tokio::test]
async fn sigkilled_workers_on_a_cluster_end_exactly_like_the_reference() {
    let cluster = TestCluster::start().await;
    let dir = tempfile::tempdir().expect("temporary directory");
    let settings = chaos_settings(&cluster, &dir);
    let mut conn = cluster.connection();
    let (events, bad) = mixed_run(44, 700, 150, 5);
    let ids = push_events(&mut conn, &events).await;

    let kills = 6;
    let mut rng = Rng::new(0xc1_5eed);
    let mut kills_with_work_left = 0;
    let started = Instant::now();
    for round in 0..kills {
        // A new consumer name each time: the successor must take over the dead one's
        // unacknowledged entries, not just re-read its own.
        let name = format!("crashy-{round}");
        let mut worker = WorkerProcess::spawn(&settings, &name);
        let deadline = Instant::now() + Duration::from_secs(15);
        while lease_holder(&mut conn).await.as_deref() != Some(name.as_str()) {
            assert!(Instant::now() < deadline, "{name} never took the lease");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        // Killed at a random moment while it works.
        tokio::time::sleep(Duration::from_millis(50 + rng.below(250))).await;
        worker.kill();
        if let Some((lag, pending)) = group_backlog(&mut conn).await
            && lag + pending > 0
        {
            kills_with_work_left += 1;
        }
    }
    let _survivor = WorkerProcess::spawn(&settings, "survivor");
    wait_until_drained(&mut conn, Duration::from_secs(60)).await;

    let model = assert_run_matches(
        Model::with_exrps_elo(20.0, 1200.0),
        &mut conn,
        &settings.store.key_prefix,
        &events,
        &bad,
        &ids,
    )
    .await;
    eprintln!(
        "cluster chaos: {} events ({} bad), {kills} SIGKILLs ({kills_with_work_left} with work \
         left), {:.1?}; equal to the reference model ({} boards, {} stats hashes, {} Elo states)",
        events.len(),
        bad.len(),
        started.elapsed(),
        model.boards.len(),
        model.stats.len(),
        model.elo.len(),
    );
    assert!(
        kills_with_work_left >= kills / 2,
        "only {kills_with_work_left} kills hit a worker with work left; make the run longer"
    );
}

/// Appends events to the stream from a task, one `XADD` at a time (so their order is the
/// stream's whatever redirections the cluster answers), pausing between chunks, while the
/// test does other things. Holding `gate` pauses it.
struct Pusher {
    gate: Arc<tokio::sync::Mutex<()>>,
    pushed: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<Vec<String>>,
}

impl Pusher {
    fn start(mut conn: Connection, events: Vec<Event>, chunk: usize, pause: Duration) -> Self {
        let gate = Arc::new(tokio::sync::Mutex::new(()));
        let pushed = Arc::new(AtomicUsize::new(0));
        let task = tokio::spawn({
            let (gate, pushed) = (gate.clone(), pushed.clone());
            async move {
                let mut ids: Vec<String> = Vec::with_capacity(events.len());
                for chunk in events.chunks(chunk) {
                    {
                        let _open = gate.lock().await;
                        for event in chunk {
                            let mut xadd = redis::cmd("XADD");
                            xadd.arg(STREAM).arg("*");
                            for (field, value) in event {
                                xadd.arg(field).arg(value);
                            }
                            let id = xadd_refused_while_down(&mut conn, &xadd).await;
                            if let Some(last) = ids.last() {
                                assert!(compare_ids(last, &id).is_lt(), "{last} then {id}");
                            }
                            ids.push(id);
                            pushed.fetch_add(1, Ordering::SeqCst);
                        }
                    }
                    tokio::time::sleep(pause).await;
                }
                ids
            }
        });
        Self { gate, pushed, task }
    }

    fn pushed(&self) -> usize {
        self.pushed.load(Ordering::SeqCst)
    }

    /// Waits until every event is pushed; their ids.
    async fn finish(self) -> Vec<String> {
        self.task.await.expect("the pusher pushed every event")
    }
}

/// Runs `xadd`, again while the cluster refuses it as down (a failover of any master: the
/// cluster serves no slot until every slot is served again). A refused command did nothing,
/// so sending it again appends the entry once.
async fn xadd_refused_while_down(conn: &mut Connection, xadd: &redis::Cmd) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match xadd.query_async::<String>(conn).await {
            Ok(id) => return id,
            Err(error) if error.code() == Some("CLUSTERDOWN") && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(error) => panic!("XADD: {error}"),
        }
    }
}

/// Waits (at most `within`) until `condition` holds.
async fn wait_for<F: Future<Output = bool>>(
    what: &str,
    within: Duration,
    mut condition: impl FnMut() -> F,
) {
    let deadline = Instant::now() + within;
    while !condition().await {
        assert!(Instant::now() < deadline, "{what}: not within {within:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A field of `INFO replication` on `node`.
async fn replication_field(node: &mut MultiplexedConnection, name: &str) -> String {
    let info: String = redis::cmd("INFO")
        .arg("replication")
        .query_async(node)
        .await
        .expect("INFO replication");
    info.lines()
        .find_map(|line| line.strip_prefix(&format!("{name}:")))
        .unwrap_or_default()
        .trim()
        .to_owned()
}

/// A failover that loses writes, step by step: the master's replica is caught up, then frozen
/// (SIGSTOP) and cut off from its master (`CLIENT KILL TYPE replica`), so that whatever the
/// master takes from then on never reaches it; the master is SIGKILLed; the replica is thawed
/// and promoted (by the cluster's own failure detection, or at once with `CLUSTER FAILOVER
/// TAKEOVER`). What the promoted replica serves is the cluster's state at the cut.
struct LossyFailover {
    master: ClusterNode,
    replica: ClusterNode,
}

impl LossyFailover {
    /// Cuts `master`'s replica off once it holds everything the master had so far.
    async fn cut(cluster: &TestCluster, master: ClusterNode) -> Self {
        let replica = cluster
            .nodes_seen_by(master.port)
            .await
            .into_iter()
            .find(|node| node.master.as_deref() == Some(master.id.as_str()))
            .expect("the master has a replica");
        let mut on_master = cluster.node(master.port).await;
        let on_replica = cluster.node(replica.port).await;
        let offset: u64 = replication_field(&mut on_master, "master_repl_offset")
            .await
            .parse()
            .expect("offset");
        wait_for("the replica caught up", Duration::from_secs(10), || {
            let mut on_replica = on_replica.clone();
            async move {
                replication_field(&mut on_replica, "slave_repl_offset")
                    .await
                    .parse::<u64>()
                    .is_ok_and(|at| at >= offset)
            }
        })
        .await;
        cluster.signal(replica.port, Signal::SIGSTOP);
        let cut: u64 = redis::cmd("CLIENT")
            .arg("KILL")
            .arg("TYPE")
            .arg("replica")
            .query_async(&mut on_master)
            .await
            .expect("CLIENT KILL TYPE replica");
        assert_eq!(cut, 1, "the master had one replica link");
        drop(on_replica);
        Self { master, replica }
    }

    /// Kills the master and thaws the replica; a read-only connection to the replica once it
    /// has applied everything it had received (its link to the master is down).
    async fn kill_master(&self, cluster: &TestCluster) -> MultiplexedConnection {
        cluster.signal(self.master.port, Signal::SIGKILL);
        cluster.signal(self.replica.port, Signal::SIGCONT);
        let mut replica = cluster.node(self.replica.port).await;
        wait_for(
            "the replica saw its master go",
            Duration::from_secs(10),
            || {
                let mut replica = replica.clone();
                async move { replication_field(&mut replica, "master_link_status").await == "down" }
            },
        )
        .await;
        redis::cmd("READONLY")
            .query_async::<()>(&mut replica)
            .await
            .expect("READONLY");
        replica
    }

    /// Promotes the replica, at once with `CLUSTER FAILOVER TAKEOVER`, or (`automatic`)
    /// by the cluster itself once it holds the master failed (`cluster-node-timeout` is a
    /// second; the slots are unserved meanwhile), and waits until every live node agrees on
    /// the new map.
    async fn promote(&self, cluster: &TestCluster, automatic: bool) {
        if automatic {
            wait_for(
                "the cluster promoted the replica",
                Duration::from_secs(20),
                || async {
                    cluster
                        .nodes_seen_by(self.replica.port)
                        .await
                        .iter()
                        .any(|node| node.id == self.replica.id && node.master.is_none())
                },
            )
            .await;
        } else {
            redis::cmd("CLUSTER")
                .arg("FAILOVER")
                .arg("TAKEOVER")
                .query_async::<()>(&mut cluster.node(self.replica.port).await)
                .await
                .expect("CLUSTER FAILOVER TAKEOVER");
        }
        let live: Vec<u16> = cluster
            .ports()
            .into_iter()
            .filter(|port| *port != self.master.port)
            .collect();
        cluster
            .wait_until_settled(&live, Duration::from_secs(20))
            .await;
        let now = cluster.nodes_seen_by(self.replica.port).await;
        let promoted = now
            .iter()
            .find(|node| node.id == self.replica.id)
            .expect("the replica");
        assert!(
            promoted.master.is_none() && promoted.slots == self.master.slots,
            "the replica serves its master's slots: {now:?}"
        );
    }
}

/// A GET of `key` on one node.
async fn get(node: &mut MultiplexedConnection, key: &str) -> Option<String> {
    redis::cmd("GET")
        .arg(key)
        .query_async(node)
        .await
        .expect("GET")
}

/// Entries the group acknowledged, as counted on one node (the stream's master).
async fn acked_count(node: &mut MultiplexedConnection) -> u64 {
    let count: Option<u64> = redis::cmd("HGET")
        .arg(COUNTS)
        .arg("acked")
        .query_async(node)
        .await
        .expect("HGET");
    count.unwrap_or(0)
}

/// A partition's acknowledged position, recorded on one node (the stream's master or its
/// replica).
async fn record(node: &mut MultiplexedConnection, partition: &Watched) -> Option<String> {
    redis::cmd("HGET")
        .arg(ACKED)
        .arg(partition.record)
        .query_async(node)
        .await
        .expect("HGET")
}

/// A partition the failover tests watch: its applied position's key (its slot is all of the
/// partition's keys') and its name in the stream side's record.
struct Watched {
    applied: &'static str,
    record: &'static str,
}

const EXRPS: Watched = Watched {
    applied: EXRPS_APPLIED,
    record: "product:exrps",
};
const DEAD_LETTERS: Watched = Watched {
    applied: "st_test:{~dead_letters}:applied",
    record: "dead_letters",
};

/// Whether position `a` is before `b` (nothing is before everything).
fn before(a: Option<&str>, b: Option<&str>) -> bool {
    match (a, b) {
        (_, None) => false,
        (None, Some(_)) => true,
        (Some(a), Some(b)) => compare_ids(a, b).is_lt(),
    }
}

/// Waits until the worker has acknowledged `LOST_WINDOW` entries after the cut, as counted on
/// the stream's master (`on_stream_master`), and `partition`'s record there is past `at_cut`:
/// writes that reached the master after its replica was cut off.
async fn work_past_the_cut(
    on_stream_master: &MultiplexedConnection,
    partition: &'static Watched,
    at_cut: Option<String>,
) {
    let acked_at_cut = acked_count(&mut on_stream_master.clone()).await;
    wait_for(
        "the worker acknowledged entries past the cut",
        Duration::from_secs(30),
        || {
            let (mut on_stream_master, at_cut) = (on_stream_master.clone(), at_cut.clone());
            async move {
                acked_count(&mut on_stream_master).await >= acked_at_cut + LOST_WINDOW
                    && before(
                        at_cut.as_deref(),
                        record(&mut on_stream_master, partition).await.as_deref(),
                    )
            }
        },
    )
    .await;
}

#[tokio::test]
async fn a_master_of_product_keys_killed_mid_run_loses_nothing_once_re_derived() {
    store_master_killed_mid_run(&EXRPS, 45, true).await;
}

#[tokio::test]
async fn the_dead_letters_master_killed_mid_run_loses_no_letter_once_re_derived() {
    store_master_killed_mid_run(&DEAD_LETTERS, 48, false).await;
}

/// The master holding `partition` (not the stream) killed while events are appended and the
/// worker applies them, its replica promoted (by the cluster when `automatic`, else by
/// `TAKEOVER`) without the effects of the last `LOST_WINDOW` entries acknowledged: the worker
/// re-derives them from the stream.
async fn store_master_killed_mid_run(partition: &'static Watched, seed: u64, automatic: bool) {
    let cluster = TestCluster::start().await;
    let dir = tempfile::tempdir().expect("temporary directory");
    let settings = chaos_settings(&cluster, &dir);
    let port = cluster.ports()[0];
    let stream_master = cluster.master_of(STREAM, port).await;
    let mut victim = cluster.master_of(partition.applied, port).await;
    if victim.id == stream_master.id {
        // The dead letters share the stream's master in the cluster's even split: their
        // (still empty) slot goes first to the master that holds neither the stream nor exrps,
        // so that the letters lose writes their products keep.
        let exrps_master = cluster.master_of(EXRPS_APPLIED, port).await;
        let to = cluster
            .nodes_seen_by(port)
            .await
            .into_iter()
            .find(|node| {
                node.master.is_none() && node.id != victim.id && node.id != exrps_master.id
            })
            .expect("a third master");
        let slot = cluster.slot(partition.applied, port).await;
        let moved = cluster
            .migrate_slot(slot, &victim, &to, 10, Duration::ZERO)
            .await;
        assert_eq!(moved, 0, "nothing written yet");
        cluster
            .wait_until_settled(&cluster.ports(), Duration::from_secs(20))
            .await;
        victim = cluster.master_of(partition.applied, port).await;
    }
    assert_ne!(victim.id, stream_master.id, "the stream's master survives");
    if partition.record != EXRPS.record {
        let exrps_master = cluster.master_of(EXRPS_APPLIED, port).await;
        assert_ne!(victim.id, exrps_master.id, "exrps's master survives");
    }
    let mut conn = cluster.connection();
    let mut on_stream_master = cluster.node(stream_master.port).await;
    let (events, bad) = mixed_run(seed, 600, 120, 5);
    // A backlog, so the worker is busy when the master goes; the rest is appended meanwhile.
    let backlog = events.len() / 3;
    let mut ids = push_events(&mut conn, &events[..backlog]).await;
    let app = TestApp::spawn(&settings, true).await;
    let pusher = Pusher::start(
        conn.clone(),
        events[backlog..].to_vec(),
        150,
        Duration::from_millis(40),
    );

    wait_for("first acknowledgements", Duration::from_secs(30), || {
        let mut on_stream_master = on_stream_master.clone();
        async move { record(&mut on_stream_master, partition).await.is_some() }
    })
    .await;
    let failover = LossyFailover::cut(&cluster, victim.clone()).await;
    let pushed_at_cut = pusher.pushed();
    // The worker goes on committing to the victim, and acknowledging, past the cut.
    let at_cut = get(&mut cluster.node(victim.port).await, partition.applied).await;
    if partition.record == DEAD_LETTERS.record {
        // Among the letters lost, one of an event its product's rules reject (the bad
        // gameplay events): the product applies entries after it, so its position is past it.
        let on_victim = cluster.node(victim.port).await;
        wait_for(
            "a rejected gameplay event's letter acknowledged past the cut",
            Duration::from_secs(30),
            || {
                let (mut on_victim, mut on_stream_master, at_cut) =
                    (on_victim.clone(), on_stream_master.clone(), at_cut.clone());
                let prefix = settings.store.key_prefix.clone();
                async move {
                    let recorded = record(&mut on_stream_master, partition).await;
                    let letters = crate::helpers::dead_letters(&mut on_victim, &prefix).await;
                    letters.iter().any(|(id, _, fields)| {
                        before(at_cut.as_deref(), Some(id))
                            && !before(recorded.as_deref(), Some(id))
                            && fields
                                .chunks(2)
                                .any(|pair| pair[0] == b"type" && pair[1] == b"gameplay")
                    })
                }
            },
        )
        .await;
    }
    work_past_the_cut(&on_stream_master, partition, at_cut).await;
    let mut replica = failover.kill_master(&cluster).await;
    let acked = record(&mut on_stream_master, partition).await;
    let kept = get(&mut replica, partition.applied).await;
    assert!(
        before(kept.as_deref(), acked.as_deref()),
        "the promoted replica lacks acknowledged effects: {} at {kept:?}, acknowledged at \
         {acked:?}",
        partition.record
    );
    failover.promote(&cluster, automatic).await;
    let pushed_at_promotion = pusher.pushed();

    ids.extend(pusher.finish().await);
    assert!(
        pushed_at_promotion < events.len() - backlog,
        "events were still appended after the failover"
    );
    // The worker notices the loss (a refused commit, a changed run_id) and re-derives it.
    wait_for(
        "the lost effects re-derived",
        Duration::from_secs(30),
        || async { metric(&app, "stats_tracker_worker_rederivations_total").await >= 1.0 },
    )
    .await;
    wait_until_drained(&mut conn, Duration::from_secs(60)).await;
    let rederived = metric(&app, "stats_tracker_worker_rederived_entries_total").await;
    assert!(rederived > 0.0, "no entry re-derived");
    assert_run_matches(
        Model::with_exrps_elo(20.0, 1200.0),
        &mut conn,
        &settings.store.key_prefix,
        &events,
        &bad,
        &ids,
    )
    .await;
    eprintln!(
        "the master of {} killed: {} events ({} bad), {backlog} before the worker started, \
         {pushed_at_cut} more appended by the cut, {pushed_at_promotion} by the promotion; the \
         promoted replica had it at {kept:?}, acknowledged at {acked:?}; {rederived} entries \
         re-derived",
        partition.record,
        events.len(),
        bad.len(),
    );
    app.stop().await;
}

#[tokio::test]
async fn the_stream_master_killed_mid_run_loses_nothing_and_doubles_nothing() {
    let cluster = TestCluster::start().await;
    let dir = tempfile::tempdir().expect("temporary directory");
    let settings = chaos_settings(&cluster, &dir);
    let port = cluster.ports()[0];
    let victim = cluster.master_of(STREAM, port).await;
    let exrps_master = cluster.master_of(EXRPS_APPLIED, port).await;
    assert_ne!(victim.id, exrps_master.id, "exrps and the stream apart");
    let mut conn = cluster.connection();
    let mut on_victim = cluster.node(victim.port).await;
    let (events, bad) = mixed_run(46, 600, 120, 5);
    let backlog = events.len() / 2;
    let mut ids = push_events(&mut conn, &events[..backlog]).await;
    let app = TestApp::spawn(&settings, true).await;
    // The rest is appended once the failover is over: an entry the stream's master took after
    // the cut would be lost with it, which is the producers' loss, not the tracker's.
    let pusher = Pusher::start(
        conn.clone(),
        events[backlog..].to_vec(),
        150,
        Duration::from_millis(40),
    );
    let paused = pusher.gate.clone().lock_owned().await;

    wait_for("exrps acknowledged", Duration::from_secs(30), || {
        let mut on_victim = on_victim.clone();
        async move { record(&mut on_victim, &EXRPS).await.is_some() }
    })
    .await;
    let failover = LossyFailover::cut(&cluster, victim.clone()).await;
    let at_cut = record(&mut on_victim, &EXRPS).await;
    work_past_the_cut(&on_victim, &EXRPS, at_cut).await;
    let mut replica = failover.kill_master(&cluster).await;
    let kept = record(&mut replica, &EXRPS).await;
    let applied = get(&mut cluster.node(exrps_master.port).await, EXRPS_APPLIED).await;
    assert!(
        before(kept.as_deref(), applied.as_deref()),
        "the promoted replica's record is behind the store: exrps recorded at {kept:?}, \
         applied at {applied:?}"
    );
    failover.promote(&cluster, true).await;
    let pushed_before_promotion = pusher.pushed();
    drop(paused);

    ids.extend(pusher.finish().await);
    assert_eq!(
        pushed_before_promotion, 0,
        "appending waited for the failover"
    );
    wait_until_drained(&mut conn, Duration::from_secs(60)).await;
    // Entries the store had applied came again (their acknowledgements were lost) and were
    // skipped.
    let replayed = metric(&app, "stats_tracker_worker_replayed_events_total").await;
    assert!(replayed > 0.0, "nothing delivered twice");
    assert_run_matches(
        Model::with_exrps_elo(20.0, 1200.0),
        &mut conn,
        &settings.store.key_prefix,
        &events,
        &bad,
        &ids,
    )
    .await;
    eprintln!(
        "the stream's master killed: {} events ({} bad), {backlog} before the worker started; \
         the promoted replica had exrps recorded at {kept:?}, applied at {applied:?}; \
         {replayed} entries delivered again and skipped",
        events.len(),
        bad.len(),
    );
    app.stop().await;
}

#[tokio::test]
async fn slots_migrated_mid_run_end_exactly_like_the_reference() {
    let cluster = TestCluster::start().await;
    let dir = tempfile::tempdir().expect("temporary directory");
    let settings = chaos_settings(&cluster, &dir);
    let port = cluster.ports()[0];
    let mut conn = cluster.connection();
    let (events, bad) = mixed_run(47, 900, 120, 5);
    let backlog = events.len() / 3;
    let mut ids = push_events(&mut conn, &events[..backlog]).await;
    let app = TestApp::spawn(&settings, true).await;
    let pusher = Pusher::start(
        conn.clone(),
        events[backlog..].to_vec(),
        150,
        Duration::from_millis(40),
    );
    // Once exrps has most of its keys (some 120 players' stats, ratings and histories).
    let on_stream_master = cluster
        .node(cluster.master_of(STREAM, port).await.port)
        .await;
    wait_for("4,000 entries applied", Duration::from_secs(30), || {
        let mut on_stream_master = on_stream_master.clone();
        async move { acked_count(&mut on_stream_master).await >= 4_000 }
    })
    .await;

    // exrps's slot, its busiest product's, to the master that serves neither it nor the
    // stream; then the stream's slot (the lease, counts and records with it) to exrps's first
    // master. Each while the worker has work left.
    let stream_master = cluster.master_of(STREAM, port).await;
    let mut moves = Vec::new();
    // exrps's keys a few at a time; the stream's one by one, the stream itself apart from
    // its lease and records for a while.
    for (key, keys_per_step, pause) in [(EXRPS_APPLIED, 5, 20), (STREAM, 1, 100)] {
        let from = cluster.master_of(key, port).await;
        let masters: Vec<ClusterNode> = cluster
            .nodes_seen_by(port)
            .await
            .into_iter()
            .filter(|node| node.master.is_none() && !node.slots.is_empty())
            .collect();
        let to = masters
            .iter()
            .find(|node| node.id != from.id && (key == STREAM || node.id != stream_master.id))
            .expect("another master")
            .clone();
        let slot = cluster.slot(key, port).await;
        // The worker has entries to apply, or more are coming.
        let (lag, pending) = group_backlog(&mut conn).await.expect("the group");
        let to_push = events.len() - backlog - pusher.pushed();
        assert!(
            lag + pending > 0 || to_push > 0,
            "the worker has work left as {key} moves"
        );
        let applied_before = get_through(&mut conn, EXRPS_APPLIED).await;
        let started = Instant::now();
        let moved = cluster
            .migrate_slot(
                slot,
                &from,
                &to,
                keys_per_step,
                Duration::from_millis(pause),
            )
            .await;
        let took = started.elapsed();
        cluster
            .wait_until_settled(&cluster.ports(), Duration::from_secs(20))
            .await;
        assert_eq!(cluster.master_of(key, port).await.id, to.id, "{key} moved");
        let applied_after = get_through(&mut conn, EXRPS_APPLIED).await;
        moves.push(format!(
            "slot {slot} ({key}): {moved} keys from :{} to :{} in {took:.1?} (backlog {}, \
             {to_push} still to append), exrps applied {applied_before:?} → {applied_after:?}",
            from.port,
            to.port,
            lag + pending
        ));
    }

    ids.extend(pusher.finish().await);
    wait_until_drained(&mut conn, Duration::from_secs(60)).await;
    assert_run_matches(
        Model::with_exrps_elo(20.0, 1200.0),
        &mut conn,
        &settings.store.key_prefix,
        &events,
        &bad,
        &ids,
    )
    .await;
    let errors = metric(&app, "stats_tracker_worker_redis_errors_total").await;
    eprintln!(
        "slots migrated mid-run: {} events ({} bad); {}; the worker retried after {errors} \
         Redis errors",
        events.len(),
        bad.len(),
        moves.join("; "),
    );
    app.stop().await;
}

/// A GET of `key` through the cluster connection (following redirections).
async fn get_through(conn: &mut Connection, key: &str) -> Option<String> {
    redis::cmd("GET")
        .arg(key)
        .query_async(conn)
        .await
        .expect("GET")
}
