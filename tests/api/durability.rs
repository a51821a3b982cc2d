//! The store losing writes the stream side had acknowledged: store and stream on two private
//! servers, the store brought back with less than it acknowledged (power loss with
//! `appendfsync everysec`, imitated by truncating its AOF; a restore from an older snapshot).
//! The worker re-derives what was lost from the stream and ends equal to the reference model.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use redis::aio::MultiplexedConnection;
use stats_tracker::core::config::Settings;

use crate::crash::CHAOS_GAMES;
use crate::helpers::{TestApp, TestRedis, metric, push_events, settings, wait_until_drained};
use crate::traffic::{Event, Model, assert_run_matches, mixed_run};

/// Settings for a tracker with its store on `store` and its stream on `stream`, rating exrps
/// with Elo (so lost ratings must be recomputed from the right states, in order).
fn two_servers(store: &TestRedis, stream: &TestRedis) -> Settings {
    let mut settings = settings(store);
    settings.store.redis_url = Some(store.url(0));
    settings.stream.redis_url = Some(stream.url(0));
    let games_file = store.socket_dir().join("games.toml");
    std::fs::write(&games_file, CHAOS_GAMES).expect("games file");
    settings.games.file = Some(games_file);
    settings.stream.batch_size = 50;
    settings.worker.entries_per_script_call = 7;
    settings
}

/// The AOF file Redis 7 appends to now (`appendonlydir/*.incr.aof`, the highest sequence).
fn incr_aof(dir: &Path) -> PathBuf {
    let mut files: Vec<(u64, PathBuf)> = std::fs::read_dir(dir.join("appendonlydir"))
        .expect("appendonlydir")
        .filter_map(|entry| {
            let path = entry.ok()?.path();
            let name = path.file_name()?.to_str()?.to_owned();
            let seq = name
                .strip_suffix(".incr.aof")?
                .rsplit('.')
                .next()?
                .parse()
                .ok()?;
            Some((seq, path))
        })
        .collect();
    files.sort();
    files.pop().expect("an incr AOF file").1
}

/// Appends `events` at about `per_second`, in chunks; returns their ids.
async fn push_paced(
    stream: &mut MultiplexedConnection,
    events: &[Event],
    per_second: usize,
) -> Vec<String> {
    let chunk = (per_second / 20).max(1);
    let mut ids = Vec::with_capacity(events.len());
    for part in events.chunks(chunk) {
        ids.extend(push_events(stream, part).await);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    ids
}

async fn stored_keys(store: &TestRedis) -> u64 {
    let mut conn = store.connection(0).await;
    redis::cmd("DBSIZE")
        .query_async(&mut conn)
        .await
        .expect("DBSIZE")
}

#[tokio::test]
async fn a_store_that_loses_its_last_second_is_re_derived_from_the_stream() {
    let mut store =
        TestRedis::start_with(&["--appendonly", "yes", "--appendfsync", "everysec"]).await;
    let stream_server = TestRedis::start().await;
    let settings = two_servers(&store, &stream_server);
    let app = TestApp::spawn(&settings, true).await;
    let mut stream = stream_server.connection(0).await;
    let (events, bad) = mixed_run(14, 900, 120, 5);
    let mut ids = Vec::new();
    let chunks: Vec<&[Event]> = events.chunks(events.len() / 4 + 1).collect();
    let mut lost_bytes = Vec::new();
    for (round, chunk) in chunks.iter().enumerate() {
        if round == 0 {
            ids.extend(push_paced(&mut stream, chunk, 5000).await);
            continue;
        }
        // Power loss: what the AOF holds now survives; the next second of writes does not.
        let aof = incr_aof(store.socket_dir());
        let kept = std::fs::metadata(&aof).expect("AOF size").len();
        let started = Instant::now();
        ids.extend(push_paced(&mut stream, chunk, 5000).await);
        let remaining = Duration::from_secs(1).saturating_sub(started.elapsed());
        tokio::time::sleep(remaining).await;
        store.stop();
        let written = std::fs::metadata(&aof).expect("AOF size").len();
        lost_bytes.push(written - kept);
        std::fs::OpenOptions::new()
            .write(true)
            .open(&aof)
            .and_then(|file| file.set_len(kept))
            .expect("truncate the AOF");
        store.restart().await;
        // Traffic goes on meanwhile (the next round); the worker notices the loss (a refused
        // commit, the store's new run_id) and re-derives it.
        wait_for_rederivations(&app, round as f64).await;
    }
    assert!(
        lost_bytes.iter().all(|&bytes| bytes > 0),
        "every power loss must take acknowledged writes with it: {lost_bytes:?}"
    );
    wait_until_drained(&mut stream, Duration::from_secs(60)).await;
    app.stop().await;
    assert_store_matches(&store, &settings, &events, &bad, &ids).await;
    eprintln!("AOF bytes lost per power loss: {lost_bytes:?}");
}

#[tokio::test]
async fn a_store_restored_from_an_older_snapshot_is_re_derived_from_the_stream() {
    let mut store = TestRedis::start().await;
    let stream_server = TestRedis::start().await;
    let settings = two_servers(&store, &stream_server);
    let app = TestApp::spawn(&settings, true).await;
    let mut stream = stream_server.connection(0).await;
    let (events, bad) = mixed_run(15, 900, 120, 5);
    let (first, rest) = events.split_at(events.len() / 3);
    let (second, third) = rest.split_at(rest.len() / 2);
    let mut ids = push_events(&mut stream, first).await;
    wait_until_drained(&mut stream, Duration::from_secs(30)).await;

    // The snapshot: everything of the first third.
    save_snapshot(&store).await;
    let keys_at_snapshot = stored_keys(&store).await;

    ids.extend(push_events(&mut stream, second).await);
    wait_until_drained(&mut stream, Duration::from_secs(30)).await;
    assert!(stored_keys(&store).await > keys_at_snapshot);

    // The store is restored from the snapshot; then traffic goes on.
    restore_snapshot(&mut store).await;
    assert_eq!(stored_keys(&store).await, keys_at_snapshot);
    // Noticed by the store's new run_id even with no traffic.
    wait_for_rederivations(&app, 1.0).await;
    ids.extend(push_events(&mut stream, third).await);
    wait_until_drained(&mut stream, Duration::from_secs(30)).await;
    app.stop().await;
    assert_store_matches(&store, &settings, &events, &bad, &ids).await;
}

/// The store equals the reference model of `events` (exrps rated with Elo).
async fn assert_store_matches(
    store: &TestRedis,
    settings: &Settings,
    events: &[Event],
    bad: &[usize],
    ids: &[String],
) {
    let mut conn = store.connection(0).await;
    let model = Model::with_exrps_elo(20.0, 1200.0);
    assert_run_matches(
        model,
        &mut conn,
        &settings.store.key_prefix,
        events,
        bad,
        ids,
    )
    .await;
}

/// Keeps an RDB snapshot of the store beside it.
async fn save_snapshot(store: &TestRedis) {
    let mut conn = store.connection(0).await;
    let _: () = redis::cmd("SAVE")
        .query_async(&mut conn)
        .await
        .expect("SAVE");
    let dir = store.socket_dir();
    std::fs::copy(dir.join("dump.rdb"), dir.join("snapshot.rdb")).expect("keep the snapshot");
}

/// Brings the store back from the snapshot [`save_snapshot`] kept: what it wrote since is gone.
async fn restore_snapshot(store: &mut TestRedis) {
    store.stop();
    let dir = store.socket_dir();
    std::fs::copy(dir.join("snapshot.rdb"), dir.join("dump.rdb")).expect("restore the snapshot");
    store.restart().await;
}

/// Waits until the worker has finished `count` re-derivations of lost effects.
async fn wait_for_rederivations(app: &TestApp, count: f64) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while metric(app, "stats_tracker_worker_rederivations_total").await < count {
        assert!(
            Instant::now() < deadline,
            "the worker did not re-derive what the store lost ({count} times expected)"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn lost_effects_whose_entries_were_trimmed_meanwhile_are_reported_not_invented() {
    let mut store = TestRedis::start().await;
    let stream_server = TestRedis::start().await;
    let settings = two_servers(&store, &stream_server);
    let app = TestApp::spawn(&settings, true).await;
    let mut stream = stream_server.connection(0).await;
    let (events, _) = mixed_run(16, 300, 60, 0);
    let (first, second) = events.split_at(events.len() / 2);
    push_events(&mut stream, first).await;
    wait_until_drained(&mut stream, Duration::from_secs(30)).await;
    save_snapshot(&store).await;
    push_events(&mut stream, second).await;
    wait_until_drained(&mut stream, Duration::from_secs(30)).await;
    // Another service trims the stream to its last 100 entries; then the store is restored:
    // most of what it lost is no longer in the stream.
    let _: u64 = redis::cmd("XTRIM")
        .arg(crate::helpers::STREAM)
        .arg("MAXLEN")
        .arg(100)
        .query_async(&mut stream)
        .await
        .expect("XTRIM");
    restore_snapshot(&mut store).await;
    wait_for_rederivations(&app, 1.0).await;
    assert!(metric(&app, "stats_tracker_worker_rederive_gaps_total").await >= 1.0);
    // What is left was applied, in order, and the worker goes on with new events.
    let more = mixed_run(17, 20, 60, 0).0;
    push_events(&mut stream, &more).await;
    wait_until_drained(&mut stream, Duration::from_secs(30)).await;
    assert_eq!(app.get_json("/readyz").await.0, 200);
    app.stop().await;
}
