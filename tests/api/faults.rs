//! Faults beyond a single crash: several workers at once with the active one killed, Redis
//! restarted under load (AOF on), connections dropped, and the long chaos run.

use std::time::{Duration, Instant};

use crate::helpers::{
    TestApp, TestRedis, WorkerProcess, group_backlog, push_events, settings, wait_until_drained,
};
use crate::traffic::{Model, Rng, assert_run_matches, mixed_run};

/// The consumer name of the current lease holder, if any.
pub async fn lease_holder(stream: &mut impl crate::helpers::TestConn) -> Option<String> {
    let value: Option<String> = redis::cmd("GET")
        .arg("{game_event_stream}:stats-tracker:lease")
        .query_async(stream)
        .await
        .ok()?;
    value.and_then(|v| v.rsplit_once('|').map(|(name, _)| name.to_owned()))
}

async fn assert_equals_reference(
    redis: &TestRedis,
    model: Model,
    events: &[crate::traffic::Event],
    bad: &[usize],
    ids: &[String],
) {
    let mut store = redis.connection(0).await;
    assert_run_matches(model, &mut store, "st_test", events, bad, ids).await;
}

#[tokio::test]
async fn standby_workers_take_over_within_seconds_and_nothing_is_applied_twice() {
    let redis = TestRedis::start().await;
    let mut settings = settings(&redis);
    settings.stream.batch_size = 50;
    settings.worker.entries_per_script_call = 7;
    // With an Elo board: ratings must still equal in-order application.
    let games_file = redis.socket_dir().join("games.toml");
    std::fs::write(&games_file, crate::crash::CHAOS_GAMES).expect("games file");
    settings.games.file = Some(games_file);
    let mut stream = redis.connection(1).await;
    let (events, bad) = mixed_run(21, 1500, 150, 5);
    let ids = push_events(&mut stream, &events).await;

    let mut workers: Vec<(String, WorkerProcess)> = (0..3)
        .map(|i| {
            let name = format!("pool-{i}");
            let worker = WorkerProcess::spawn(&settings, &name);
            (name, worker)
        })
        .collect();
    let mut takeovers = Vec::new();
    for _ in 0..2 {
        // Wait for a holder, let it work a little, then kill it.
        let deadline = Instant::now() + Duration::from_secs(10);
        let holder = loop {
            if let Some(holder) = lease_holder(&mut stream).await {
                break holder;
            }
            assert!(Instant::now() < deadline, "no worker took the lease");
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        tokio::time::sleep(Duration::from_millis(300)).await;
        let Some(position) = workers.iter().position(|(name, _)| *name == holder) else {
            panic!("lease held by unknown consumer {holder}");
        };
        let (_, mut killed) = workers.remove(position);
        killed.kill();
        if group_backlog(&mut stream)
            .await
            .is_some_and(|(lag, pending)| lag + pending == 0)
        {
            break; // drained before the kill: nothing left to take over
        }
        let killed_at = Instant::now();
        let deadline = killed_at + Duration::from_secs(10);
        loop {
            match lease_holder(&mut stream).await {
                Some(new) if new != holder => break,
                _ => {}
            }
            assert!(Instant::now() < deadline, "no standby took over");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        takeovers.push(killed_at.elapsed());
    }
    wait_until_drained(&mut stream, Duration::from_secs(60)).await;
    eprintln!("takeovers after SIGKILL of the active worker: {takeovers:?}");
    assert!(!takeovers.is_empty(), "the run drained before any kill");
    // Lease TTL is 1 s in tests: a standby holds the lease within about that.
    assert!(
        takeovers.iter().all(|t| *t < Duration::from_secs(3)),
        "{takeovers:?}"
    );
    let model = Model::with_exrps_elo(20.0, 1200.0);
    assert_equals_reference(&redis, model, &events, &bad, &ids).await;
}

#[tokio::test]
async fn redis_restart_and_dropped_connections_lose_nothing() {
    let mut redis =
        TestRedis::start_with(&["--appendonly", "yes", "--appendfsync", "always"]).await;
    let mut settings = settings(&redis);
    settings.stream.batch_size = 100;
    // Several script calls per product and batch: a connection dropped between them too.
    settings.worker.entries_per_script_call = 7;
    let app = TestApp::spawn(&settings, true).await;
    let (events, bad) = mixed_run(33, 900, 100, 5);
    let mut ids = Vec::new();
    let mut rng = Rng::new(5);
    for (round, chunk) in events.chunks(events.len() / 3 + 1).enumerate() {
        let mut stream = redis.connection(1).await;
        ids.extend(push_events(&mut stream, chunk).await);
        // Drop every connection of the tracker a few times while it works.
        for _ in 0..3 {
            tokio::time::sleep(Duration::from_millis(50 + rng.below(100))).await;
            let mut admin = redis.connection(0).await;
            let _: redis::RedisResult<i64> = redis::cmd("CLIENT")
                .arg("KILL")
                .arg("TYPE")
                .arg("normal")
                .arg("SKIPME")
                .arg("yes")
                .query_async(&mut admin)
                .await;
        }
        if round == 1 {
            // Redis goes away mid-run: the server says so quickly, then everything resumes.
            redis.stop();
            for path in ["/readyz", "/leaderboards/top_ten/exrps"] {
                let started = Instant::now();
                let (status, body) = app.get_json(path).await;
                assert_eq!(status, 503, "{path}: {body}");
                assert_eq!(body["error"]["code"], "store_unavailable");
                assert!(
                    started.elapsed() < Duration::from_millis(1500),
                    "{path} hung"
                );
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
            redis.restart().await;
        }
    }
    let mut stream = redis.connection(1).await;
    wait_until_drained(&mut stream, Duration::from_secs(60)).await;
    assert_eq!(app.get_json("/readyz").await.0, 200);
    app.stop().await;
    assert_equals_reference(&redis, Model::default(), &events, &bad, &ids).await;
}
