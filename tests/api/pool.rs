//! The worker pool on partitioned streams: several worker processes share the partitions of
//! the event stream on a Redis Cluster, spread them evenly, and take over the partitions of
//! a worker that dies or stalls, with every event applied exactly once, in order per product.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use stats_tracker::core::partition::{partition_stream, stream_of};

use crate::crash::CHAOS_GAMES;
use crate::helpers::{
    STREAM, TestCluster, TestConn, TestRedis, WorkerProcess, cluster_settings, group_backlog_of,
    settings,
};
use crate::traffic::{Event, Model, Rng, assert_run_matches_with, mixed_run};

const PARTITIONS: u32 = 8;

/// The products of `events` other than exrps split by match into six variants each, so the
/// traffic covers most partitions (exrps keeps its name: the model rates it).
pub fn spread_products(events: &mut [Event]) {
    for event in events.iter_mut() {
        let game = event
            .iter()
            .find(|(name, _)| name == "game_id")
            .map(|(_, game)| game.clone())
            .unwrap_or_default();
        for (name, value) in event.iter_mut() {
            if name == "product_id" && value != "exrps" {
                let variant = stats_tracker::core::partition::partition_of(&game, 6);
                *value = format!("{value}-{variant}");
            }
        }
    }
}

/// Appends each event to its product's partition, in order; the ids.
async fn push_partitioned(conn: &mut impl TestConn, events: &[Event]) -> Vec<String> {
    let mut ids = Vec::new();
    for chunk in events.chunks(500) {
        let xadds: Vec<redis::Cmd> = chunk
            .iter()
            .map(|event| {
                let product = event
                    .iter()
                    .find(|(name, _)| name == "product_id")
                    .map_or("", |(_, product)| product.as_str());
                let mut xadd = redis::cmd("XADD");
                xadd.arg(stream_of(STREAM, PARTITIONS, product)).arg("*");
                for (name, value) in event {
                    xadd.arg(name).arg(value);
                }
                xadd
            })
            .collect();
        let mut pipe = redis::pipe();
        // One command at a time through the cluster connection keeps the order per stream.
        for xadd in xadds {
            pipe.add_command(xadd.clone());
            let chunk_ids: Vec<String> = pipe.query_async(conn).await.expect("XADD");
            ids.extend(chunk_ids);
            pipe.clear();
        }
    }
    ids
}

/// Who holds each partition's lease (consumer name), by partition.
async fn holders(conn: &mut impl TestConn) -> BTreeMap<u32, String> {
    let mut holders = BTreeMap::new();
    for partition in 0..PARTITIONS {
        let stream = partition_stream(STREAM, PARTITIONS, partition);
        let value: Option<String> = redis::cmd("GET")
            .arg(format!("{{{stream}}}:stats-tracker:lease"))
            .query_async(conn)
            .await
            .expect("GET lease");
        if let Some((name, _)) = value.as_deref().and_then(|v| v.rsplit_once('|')) {
            holders.insert(partition, name.to_owned());
        }
    }
    holders
}

/// Waits until the live workers `names` hold every partition between them, each its share
/// (2 or 3 of 8 for three workers).
async fn wait_for_even_spread(conn: &mut impl TestConn, names: &[String], within: Duration) {
    let deadline = Instant::now() + within;
    let share = PARTITIONS.div_ceil(names.len() as u32) as usize;
    loop {
        let holders = holders(conn).await;
        let counts: Vec<usize> = names
            .iter()
            .map(|name| holders.values().filter(|h| *h == name).count())
            .collect();
        let all_held = holders.len() == PARTITIONS as usize
            && holders.values().all(|holder| names.contains(holder));
        if all_held && counts.iter().all(|&count| count <= share && count > 0) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "partitions not spread over {names:?}: {holders:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub async fn wait_until_all_drained(conn: &mut impl TestConn, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let mut drained = true;
        for partition in 0..PARTITIONS {
            let stream = partition_stream(STREAM, PARTITIONS, partition);
            let backlog = group_backlog_of(conn, &stream).await;
            drained &= backlog.is_none_or(|(lag, pending)| lag == 0 && pending == 0);
        }
        if drained {
            return;
        }
        assert!(Instant::now() < deadline, "the pool did not drain");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_pool_on_eight_partitions_survives_kills_and_a_stall_exactly_once() {
    let cluster = TestCluster::start().await;
    let dir = tempfile::tempdir().expect("temporary directory");
    let games_file = dir.path().join("games.toml");
    std::fs::write(&games_file, CHAOS_GAMES).expect("games file");
    let mut settings = cluster_settings(&cluster);
    settings.stream.partitions = PARTITIONS;
    settings.games.file = Some(games_file);
    settings.stream.batch_size = 20;
    settings.worker.entries_per_script_call = 7;

    let (mut events, bad) = mixed_run(43, 900, 40, 5);
    spread_products(&mut events);
    let mut conn = cluster.connection();
    let ids = push_partitioned(&mut conn, &events).await;
    let used: std::collections::BTreeSet<String> = events
        .iter()
        .flatten()
        .filter(|(name, _)| name == "product_id")
        .map(|(_, product)| stream_of(STREAM, PARTITIONS, product))
        .collect();
    assert!(used.len() >= 6, "traffic on {} partitions", used.len());

    let mut names: Vec<String> = (0..3).map(|i| format!("pool-{i}")).collect();
    let mut workers: Vec<WorkerProcess> = names
        .iter()
        .map(|name| WorkerProcess::spawn(&settings, name))
        .collect();
    wait_for_even_spread(&mut conn, &names, Duration::from_secs(20)).await;

    // SIGKILLs while the pool works: the dead worker's partitions move to the others when
    // their leases lapse; a replacement joins and takes its share back.
    let mut rng = Rng::new(43);
    for round in 0..3 {
        tokio::time::sleep(Duration::from_millis(100 + rng.below(400))).await;
        let victim = rng.below(3) as usize;
        workers[victim].kill();
        let survivors: Vec<String> = names
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != victim)
            .map(|(_, name)| name.clone())
            .collect();
        wait_for_even_spread(&mut conn, &survivors, Duration::from_secs(20)).await;
        names[victim] = format!("pool-{victim}-again-{round}");
        workers[victim] = WorkerProcess::spawn(&settings, &names[victim]);
        wait_for_even_spread(&mut conn, &names, Duration::from_secs(20)).await;
    }

    // A worker stalled past its lease: its partitions are taken over; when it wakes, its
    // stale reads and writes are refused (lease check, fences) and it rejoins.
    let stalled = Pid::from_raw(workers[0].child.id() as i32);
    kill(stalled, Signal::SIGSTOP).expect("SIGSTOP");
    let awake: Vec<String> = names[1..].to_vec();
    wait_for_even_spread(&mut conn, &awake, Duration::from_secs(20)).await;
    // More events while it sleeps.
    let (mut later, later_bad) = mixed_run(44, 200, 40, 5);
    spread_products(&mut later);
    let later_ids = push_partitioned(&mut conn, &later).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    kill(stalled, Signal::SIGCONT).expect("SIGCONT");
    wait_for_even_spread(&mut conn, &names, Duration::from_secs(20)).await;
    wait_until_all_drained(&mut conn, Duration::from_secs(120)).await;

    let offset = events.len();
    let all_bad: Vec<usize> = bad
        .iter()
        .copied()
        .chain(later_bad.iter().map(|i| i + offset))
        .collect();
    events.extend(later);
    let all_ids: Vec<String> = ids.into_iter().chain(later_ids).collect();
    let model = assert_run_matches_with(
        Model::with_exrps_elo(20.0, 1200.0),
        &mut conn,
        &settings.store.key_prefix,
        &events,
        &all_bad,
        &all_ids,
        false,
    )
    .await;
    assert!(model.boards.len() >= 6, "{} products", model.boards.len());
    drop(workers);
}

#[tokio::test]
async fn a_process_with_another_partition_count_is_refused() {
    let redis = TestRedis::start().await;
    let mut settings = settings(&redis);
    settings.stream.partitions = 4;
    let mut first = WorkerProcess::spawn(&settings, "four");
    let mut stream = redis.connection(1).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let stored: Option<u32> = redis::cmd("GET")
            .arg("{game_event_stream}:stats-tracker:partitions")
            .query_async(&mut stream)
            .await
            .expect("GET");
        if stored == Some(4) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the pool never recorded its count"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    first.kill();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_stats-tracker"))
        .args(["worker", "-m", "test", "--metrics-bind", "127.0.0.1:0"])
        .env("STATS_TRACKER_REDIS_URL", settings.store_url())
        .env("GAME_EVENT_STREAM_REDIS_URL", settings.stream_url())
        .env("STATS_TRACKER__STREAM__PARTITIONS", "8")
        .output()
        .expect("run the worker");
    assert_eq!(output.status.code(), Some(6), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("4 partition(s)") && stderr.contains("stream.partitions is 8"),
        "{stderr}"
    );
}

/// The README's JavaScript partition function (for game servers) agrees with the tracker's.
#[test]
fn the_readme_partition_function_in_javascript_agrees() {
    let readme =
        std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md"))
            .expect("README.md");
    let start = readme
        .find("function partitionOf")
        .expect("the JavaScript function");
    let end = start
        + readme[start..]
            .find("\n  ```")
            .expect("the end of its block");
    let function = &readme[start..end];
    let mut rng = Rng::new(7);
    let mut cases: Vec<(String, u32)> = ["exrps", "arena", "игрок", "", "p {1}:x", "ユーザー✓"]
        .iter()
        .map(|id| (id.to_string(), 8))
        .collect();
    for i in 0..200 {
        let id: String = (0..1 + rng.below(20))
            .map(|_| char::from_u32(0x20 + rng.below(0x500) as u32).unwrap_or('x'))
            .collect();
        cases.push((id, 1 + (i % 64) as u32));
    }
    let input = serde_json::to_string(&cases).expect("JSON");
    let script = format!(
        "{function}\nconst cases = {input};\nconsole.log(JSON.stringify(cases.map(([id, n]) => partitionOf(id, n))));"
    );
    let output = std::process::Command::new("node")
        .arg("-e")
        .arg(&script)
        .output()
        .expect("node must be installed (scripts/ensure-tools)");
    assert!(output.status.success(), "{output:?}");
    let from_js: Vec<u32> = serde_json::from_slice(&output.stdout).expect("numbers");
    let from_rust: Vec<u32> = cases
        .iter()
        .map(|(id, n)| stats_tracker::core::partition::partition_of(id, *n))
        .collect();
    assert_eq!(from_js, from_rust);
}

/// Ingest and dead-letter re-drives append to each event's partition, and the pool (one
/// in-process worker here) applies them.
#[tokio::test]
async fn ingest_and_redrives_go_to_the_products_partition() {
    use serde_json::json;
    use stats_tracker::core::config::Secret;

    const ADMIN: &str = "admin-token-0123456789";
    const INGEST: &str = "ingest-token-0123456789";
    let redis = TestRedis::start().await;
    let mut settings = settings(&redis);
    settings.stream.partitions = 4;
    settings.server.admin_token = Some(Secret::new(ADMIN));
    settings.server.ingest_token = Some(Secret::new(INGEST));
    let app = crate::helpers::TestApp::spawn(&settings, true).await;
    let products = ["exrps", "arena", "squads", "chess", "go", "poker"];
    let batch: Vec<serde_json::Value> = products
        .iter()
        .map(|product| {
            json!({"product_id": product, "game_id": "g", "type": "game_over", "winner_id": "A", "loser_id": "B"})
        })
        .chain([json!({"product_id": "chess", "type": "teleport"})])
        .collect();
    let (status, body) = crate::helpers::send(
        &app,
        reqwest::Method::POST,
        "/v1/events",
        Some(INGEST),
        Some(json!(batch)),
    )
    .await;
    // The teleport is refused by ingest's own validation: nothing appended.
    assert_eq!(status, 400, "{body}");
    let batch = &batch[..products.len()];
    let (status, body) = crate::helpers::send(
        &app,
        reqwest::Method::POST,
        "/v1/events",
        Some(INGEST),
        Some(json!(batch)),
    )
    .await;
    assert_eq!(status, 202, "{body}");
    let ids = body["ids"].as_array().expect("ids").clone();
    assert_eq!(ids.len(), products.len());
    let mut stream = redis.connection(1).await;
    for (product, id) in products.iter().zip(&ids) {
        let key = stream_of(STREAM, 4, product);
        let found: Vec<(String, Vec<(String, String)>)> = redis::cmd("XRANGE")
            .arg(&key)
            .arg(id.as_str().expect("id"))
            .arg(id.as_str().expect("id"))
            .query_async(&mut stream)
            .await
            .expect("XRANGE");
        assert_eq!(found.len(), 1, "{product}'s event in {key}");
        assert!(
            found[0]
                .1
                .contains(&("product_id".to_owned(), product.to_string()))
        );
    }
    // A self-match, written to its partition directly, is dead-lettered; re-driven, it goes
    // back to the same partition and is dead-lettered again, once.
    let key = stream_of(STREAM, 4, "go");
    let _: String = redis::cmd("XADD")
        .arg(&key)
        .arg("*")
        .arg(&[
            "product_id",
            "go",
            "type",
            "game_over",
            "winner_id",
            "A",
            "loser_id",
            "A",
        ])
        .query_async(&mut stream)
        .await
        .expect("XADD");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (_, stats) = app.get_json("/v1/products/poker/players/A/stats").await;
        let letters = crate::helpers::dead_letters(&mut redis.connection(0).await, "st_test").await;
        if stats["stats"]["wins"] == 1 && letters.len() == 1 {
            break;
        }
        assert!(Instant::now() < deadline, "not applied: {stats}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let before: u64 = redis::cmd("XLEN")
        .arg(&key)
        .query_async(&mut stream)
        .await
        .expect("XLEN");
    let (status, body) = crate::helpers::send(
        &app,
        reqwest::Method::POST,
        "/v1/admin/dead-letters/redrive",
        Some(ADMIN),
        Some(json!({"reason": ""})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let after: u64 = redis::cmd("XLEN")
        .arg(&key)
        .query_async(&mut stream)
        .await
        .expect("XLEN");
    assert_eq!(
        after,
        before + 1,
        "the re-driven letter went back to go's partition"
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let letters = crate::helpers::dead_letters(&mut redis.connection(0).await, "st_test").await;
        let redriven = letters.first().is_some_and(|(_, reason, fields)| {
            reason.contains("same player")
                && fields
                    .iter()
                    .any(|field| field == b"stats_tracker_redrive_of")
        });
        if letters.len() == 1 && redriven {
            let (_, total) = app.get_json("/v1/products").await;
            assert!(
                total["products"]
                    .as_array()
                    .is_some_and(|p| p.len() >= products.len())
            );
            break;
        }
        assert!(Instant::now() < deadline, "letters: {letters:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    app.stop().await;
}
