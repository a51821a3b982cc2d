//! Crash safety: a worker killed with SIGKILL at random moments (and Redis restarted) ends with
//! exactly the boards, ratings and stats of applying every event once, in order (the
//! reference model).

use std::time::{Duration, Instant};

use crate::faults::lease_holder;
use crate::helpers::{
    TestRedis, WorkerProcess, group_backlog, push_events, settings, wait_until_drained,
};
use crate::traffic::{Model, Rng, assert_run_matches, mixed_run};

/// The exrps Elo board the crash runs rate with, beside the built-in rules; both boards write
/// the change feed of their top 5.
pub const CHAOS_GAMES: &str = r#"
[products.exrps]
boards = [
  { name = "wins", kind = "wins", feed = { top = 5 } },
  { name = "elo", kind = "elo", initial_rating = 1200.0, k_factor = 20.0, feed = { top = 5 } },
]
[[products.exrps.stats]]
rule = "match_results"
[[products.exrps.stats]]
rule = "count"
when = { type = "gameplay", event_name = "select_weapon" }
player = "user_id"
by = "event_data"
map = { "0" = "rock_selection_count", "1" = "paper_selection_count", "2" = "scissors_selection_count", "null" = "botch_selection_count" }
integer_default = "botch_selection_count"
"#;

/// A crash run: realistic traffic, the worker SIGKILLed at random moments (and, when asked,
/// Redis killed and restarted from its AOF), then compared with the reference model.
struct Chaos {
    seed: u64,
    matches: usize,
    players: usize,
    kills: usize,
    redis_restarts: usize,
}

impl Chaos {
    async fn run(&self) {
        let mut redis =
            TestRedis::start_with(&["--appendonly", "yes", "--appendfsync", "always"]).await;
        let games_file = redis.socket_dir().join("games.toml");
        std::fs::write(&games_file, CHAOS_GAMES).expect("games file");
        let mut settings = settings(&redis);
        settings.games.file = Some(games_file);
        // Small batches: many commit/ack windows for the kills to land in; a product's share
        // of one is split into several script calls, so kills land between those too.
        settings.stream.batch_size = 20;
        settings.worker.entries_per_script_call = 7;
        let mut stream = redis.connection(1).await;
        let (events, bad) = mixed_run(self.seed, self.matches, self.players, 5);
        let ids = push_events(&mut stream, &events).await;

        let mut rng = Rng::new(self.seed ^ 0x5eed);
        let mut kills_with_work_left = 0;
        let mut restarts = 0;
        let started = Instant::now();
        for round in 0..self.kills {
            // A new consumer name each time: the successor must take over the dead one's
            // unacknowledged entries, not just re-read its own.
            let name = format!("crashy-{round}");
            let mut worker = WorkerProcess::spawn(&settings, &name);
            // Kill it while it works: once it holds the lease, a little later.
            let deadline = Instant::now() + Duration::from_secs(10);
            while lease_holder(&mut stream).await.as_deref() != Some(name.as_str()) {
                assert!(Instant::now() < deadline, "{name} never took the lease");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            tokio::time::sleep(Duration::from_millis(20 + rng.below(150))).await;
            if restarts < self.redis_restarts && round % 3 == 2 {
                redis.stop();
                tokio::time::sleep(Duration::from_millis(rng.below(300))).await;
                redis.restart().await;
                restarts += 1;
                stream = redis.connection(1).await;
                tokio::time::sleep(Duration::from_millis(200 + rng.below(300))).await;
            }
            worker.kill();
            if let Some((lag, pending)) = group_backlog(&mut stream).await
                && lag + pending > 0
            {
                kills_with_work_left += 1;
            }
        }
        let _survivor = WorkerProcess::spawn(&settings, "survivor");
        wait_until_drained(&mut stream, Duration::from_secs(600)).await;

        let mut store = redis.connection(0).await;
        let model = assert_run_matches(
            Model::with_exrps_elo(20.0, 1200.0),
            &mut store,
            &settings.store.key_prefix,
            &events,
            &bad,
            &ids,
        )
        .await;
        // The change feed holds each entry its causes made, once, in order.
        let feed = crate::feed::stored_feed(&mut store, &settings.store.key_prefix, "exrps").await;
        let expected = crate::feed::expected_exrps_feed(&events, &bad, &ids, 5, 20.0, 1200.0);
        assert!(feed.len() > 100, "a short feed: {}", feed.len());
        if let Some(first) =
            (0..feed.len().max(expected.len())).find(|&i| feed.get(i) != expected.get(i))
        {
            panic!(
                "the feed differs from the model's at entry {first} of {} (model: {}): {:?} vs {:?}",
                feed.len(),
                expected.len(),
                feed.get(first),
                expected.get(first)
            );
        }
        // The history holds every applied entry once, written with its effects.
        crate::history::assert_history_matches(
            &mut store,
            &settings.store.key_prefix,
            &events,
            &ids,
            &bad,
        )
        .await;
        eprintln!(
            "chaos: {} events ({} bad), {} SIGKILLs ({kills_with_work_left} with work left), \
             {restarts} Redis restarts, {:.1?} in all; boards, Elo ratings, stats, dead \
             letters and history equal the reference model ({} boards, {} stats hashes, {} Elo states)",
            events.len(),
            bad.len(),
            self.kills,
            started.elapsed(),
            model.boards.len(),
            model.stats.len(),
            model.elo.len(),
        );
        assert!(
            kills_with_work_left >= self.kills / 2,
            "only {kills_with_work_left} kills hit a worker with work left; make the run longer"
        );
    }
}

#[tokio::test]
async fn sigkilled_worker_restarted_ends_exactly_like_the_reference() {
    Chaos {
        seed: 42,
        matches: 1500,
        players: 200,
        kills: 8,
        redis_restarts: 1,
    }
    .run()
    .await;
}

/// The long version (`scripts/chaos`): at least 100,000 events and 10 kills by default;
/// `CHAOS_MATCHES`, `CHAOS_KILLS`, `CHAOS_RESTARTS`, `CHAOS_SEED` change it.
#[tokio::test]
#[ignore = "long: run with scripts/chaos"]
async fn chaos_long_run() {
    let var = |name: &str, default: u64| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    Chaos {
        seed: var("CHAOS_SEED", 7),
        matches: var("CHAOS_MATCHES", 5400) as usize,
        players: 2000,
        kills: var("CHAOS_KILLS", 12) as usize,
        redis_restarts: var("CHAOS_RESTARTS", 3) as usize,
    }
    .run()
    .await;
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
    let mut store = redis.connection(0).await;
    assert_run_matches(
        Model::default(),
        &mut store,
        &settings.store.key_prefix,
        &events,
        &[],
        &[],
    )
    .await;
}
