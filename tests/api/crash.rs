//! Crash safety: a worker killed with SIGKILL at random moments and restarted ends with exactly
//! the boards and stats of applying every event once, in order (the reference model).

use std::time::{Duration, Instant};

use crate::helpers::{
    TestRedis, WorkerProcess, dead_letters, group_backlog, push_events, settings,
    wait_until_drained,
};
use crate::traffic::{Model, Rng, mixed_run};

#[tokio::test]
async fn sigkilled_worker_restarted_ends_exactly_like_the_reference() {
    let redis = TestRedis::start().await;
    let mut settings = settings(&redis);
    // Small batches: many commit/ack windows for the kills to land in.
    settings.stream.batch_size = 50;
    let mut stream = redis.connection(1).await;
    let (events, bad) = mixed_run(42, 1500, 200, 5);
    let ids = push_events(&mut stream, &events).await;

    let mut rng = Rng::new(99);
    let mut kills_with_work_left = 0;
    for round in 0..8 {
        // A new consumer name each time: the successor must take over the dead one's
        // unacknowledged entries, not just re-read its own.
        let mut worker = WorkerProcess::spawn(&settings, &format!("crashy-{round}"));
        tokio::time::sleep(Duration::from_millis(150 + rng.below(400))).await;
        worker.kill();
        if let Some((lag, pending)) = group_backlog(&mut stream).await
            && lag + pending > 0
        {
            kills_with_work_left += 1;
        }
    }
    assert!(
        kills_with_work_left >= 3,
        "only {kills_with_work_left} kills hit a worker with work left; make the run longer"
    );

    let started = Instant::now();
    let _survivor = WorkerProcess::spawn(&settings, "survivor");
    wait_until_drained(&mut stream, Duration::from_secs(60)).await;
    eprintln!(
        "{} events, {kills_with_work_left} kills mid-run, final drain {:?}",
        events.len(),
        started.elapsed()
    );

    let mut model = Model::default();
    for event in &events {
        model.apply(event);
    }
    let mut store = redis.connection(0).await;
    model
        .assert_matches_store(&mut store, &settings.store.key_prefix)
        .await;
    let letters = dead_letters(&mut store, &settings.store.key_prefix).await;
    let expected: Vec<&str> = bad.iter().map(|&i| ids[i].as_str()).collect();
    let actual: Vec<&str> = letters.iter().map(|(id, _, _)| id.as_str()).collect();
    assert_eq!(
        actual, expected,
        "every bad event dead-lettered exactly once"
    );
}

#[tokio::test]
async fn sigterm_finishes_the_batch_acknowledges_and_exits_zero() {
    let redis = TestRedis::start().await;
    let settings = settings(&redis);
    let mut stream = redis.connection(1).await;
    let (events, _) = mixed_run(5, 200, 30, 0);
    push_events(&mut stream, &events).await;
    let mut worker = WorkerProcess::spawn(&settings, "polite");
    tokio::time::sleep(Duration::from_millis(300)).await;
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(worker.child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .expect("send SIGTERM");
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = worker.child.try_wait().expect("wait") {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "worker did not exit after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(status.success(), "exit status {status:?}");
    // Whatever it read, it acknowledged: nothing is left pending.
    let (_, pending) = group_backlog(&mut stream).await.expect("group exists");
    assert_eq!(pending, 0);

    // A successor takes over at once (the lease was released) and finishes the job.
    let _next = WorkerProcess::spawn(&settings, "successor");
    wait_until_drained(&mut stream, Duration::from_secs(30)).await;
    let mut model = Model::default();
    for event in &events {
        model.apply(event);
    }
    let mut store = redis.connection(0).await;
    model
        .assert_matches_store(&mut store, &settings.store.key_prefix)
        .await;
}
