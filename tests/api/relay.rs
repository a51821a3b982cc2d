//! `stats-tracker relay`: the single stream's entries moved into the partition streams exactly
//! once and in order, through SIGKILLs at random moments, on one Redis and on a Redis Cluster,
//! beside entries appended to the partitions directly; the source stream left untouched.

use std::collections::BTreeMap;
use std::process::Command;
use std::time::{Duration, Instant};

use stats_tracker::core::config::Settings;
use stats_tracker::core::partition::{partition_of, partition_stream};

use crate::crash::CHAOS_GAMES;
use crate::helpers::{
    STREAM, TestCluster, TestConn, TestRedis, TrackerProcess, WorkerProcess, group_backlog_of,
    push_events, settings, tracker_command,
};
use crate::pool::{spread_products, wait_until_all_drained};
use crate::traffic::{Event, Model, Rng, assert_run_matches_with, mixed_run};

const PARTITIONS: u32 = 8;
const CURSOR: &str = "{game_event_stream}:relay:cursor";
/// The field that marks the entries a test appends to a partition directly.
const DIRECT: &str = "appended_directly";

/// A stream entry as read back: id, field and value items.
type Entry = (String, Vec<Vec<u8>>);

/// `stats-tracker relay` on `settings`' stream Redis, logging at info.
fn relay_command(settings: &Settings) -> Command {
    let mut command = tracker_command(settings, "relay");
    command.env("RUST_LOG", "info");
    command
}

fn spawn_relay(settings: &Settings) -> TrackerProcess {
    TrackerProcess::spawn(relay_command(settings))
}

/// Settings for a relay into eight partitions of `redis` (stream on db 1), small batches so
/// that a kill lands mid-work.
fn relay_settings(redis: &TestRedis) -> Settings {
    let mut settings = settings(redis);
    settings.stream.partitions = PARTITIONS;
    settings.stream.batch_size = 7;
    settings
}

/// A few thousand mixed events (some bad, a few without a product id) over most partitions.
fn traffic(seed: u64, matches: usize) -> Vec<Event> {
    let (mut events, _) = mixed_run(seed, matches, 40, 5);
    spread_products(&mut events);
    events
}

fn product_of(event: &Event) -> &str {
    event
        .iter()
        .find(|(name, _)| name == "product_id")
        .map_or("", |(_, product)| product.as_str())
}

fn items_of(event: &Event) -> Vec<Vec<u8>> {
    event
        .iter()
        .flat_map(|(name, value)| [name.as_bytes().to_vec(), value.as_bytes().to_vec()])
        .collect()
}

async fn entries(conn: &mut impl TestConn, stream: &str) -> Vec<Entry> {
    redis::cmd("XRANGE")
        .arg(stream)
        .arg("-")
        .arg("+")
        .query_async(conn)
        .await
        .expect("XRANGE")
}

async fn cursor(conn: &mut impl TestConn) -> Option<String> {
    redis::cmd("GET")
        .arg(CURSOR)
        .query_async(conn)
        .await
        .expect("GET cursor")
}

/// Waits until the relay's cursor is `last` (the source's last id).
async fn wait_for_cursor(conn: &mut impl TestConn, last: &str, within: Duration) {
    let deadline = Instant::now() + within;
    while cursor(conn).await.as_deref() != Some(last) {
        assert!(
            Instant::now() < deadline,
            "the relay did not reach {last} within {within:?} (cursor {:?})",
            cursor(conn).await
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Asserts that the source stream holds exactly `pushed` (ids `ids`), and that every partition
/// holds exactly the source entries of its products (fields byte-equal), in source order, each
/// once, besides the entries appended to it directly (with the field [`DIRECT`]). Returns each
/// partition's relayed and direct entries.
async fn assert_relayed(
    conn: &mut impl TestConn,
    pushed: &[Event],
    ids: &[String],
) -> BTreeMap<u32, (Vec<Entry>, Vec<Entry>)> {
    assert_relayed_from(conn, pushed, ids, 0).await
}

/// [`assert_relayed`] of the entries from index `from` of the source stream on.
async fn assert_relayed_from(
    conn: &mut impl TestConn,
    pushed: &[Event],
    ids: &[String],
    from: usize,
) -> BTreeMap<u32, (Vec<Entry>, Vec<Entry>)> {
    let source = entries(conn, STREAM).await;
    let length: usize = redis::cmd("XLEN")
        .arg(STREAM)
        .query_async(conn)
        .await
        .expect("XLEN");
    assert_eq!(length, pushed.len(), "the source stream's length");
    assert_eq!(source.first().map(|e| &e.0), ids.first(), "first source id");
    assert_eq!(source.last().map(|e| &e.0), ids.last(), "last source id");
    let source_ids: Vec<&String> = source.iter().map(|(id, _)| id).collect();
    assert_eq!(source_ids, ids.iter().collect::<Vec<_>>(), "source ids");
    for ((_, items), event) in source.iter().zip(pushed) {
        assert_eq!(items, &items_of(event), "a source entry changed");
    }

    let mut expected: BTreeMap<u32, Vec<Vec<Vec<u8>>>> = BTreeMap::new();
    for event in &pushed[from..] {
        expected
            .entry(partition_of(product_of(event), PARTITIONS))
            .or_default()
            .push(items_of(event));
    }
    let mut found = BTreeMap::new();
    for partition in 0..PARTITIONS {
        let stream = partition_stream(STREAM, PARTITIONS, partition);
        let (direct, relayed): (Vec<Entry>, Vec<Entry>) = entries(conn, &stream)
            .await
            .into_iter()
            .partition(|(_, items)| {
                items
                    .iter()
                    .step_by(2)
                    .any(|name| name == DIRECT.as_bytes())
            });
        let relayed_items: Vec<&Vec<Vec<u8>>> = relayed.iter().map(|(_, items)| items).collect();
        let wanted: Vec<&Vec<Vec<u8>>> = expected
            .get(&partition)
            .map(|wanted| wanted.iter().collect())
            .unwrap_or_default();
        if relayed_items != wanted {
            let first_difference = relayed_items.iter().zip(&wanted).position(|(a, b)| a != b);
            panic!(
                "{stream}: {} relayed entries, {} expected; first difference at {first_difference:?}",
                relayed_items.len(),
                wanted.len()
            );
        }
        found.insert(partition, (relayed, direct));
    }
    found
}

/// Pushes `events` to the source stream, kills relays at random moments while they work
/// (pushing more meanwhile), then lets one finish; checks the partitions and the source, and
/// that a relay started again from an old cursor appends nothing. The events pushed, in
/// order, with their source ids.
async fn relay_through_kills(
    conn: &mut impl TestConn,
    settings: &Settings,
    events: &[Event],
    kills: usize,
    seed: u64,
) -> (Vec<Event>, Vec<String>) {
    let chunk = events.len().div_ceil(2 * kills + 2);
    let mut chunks = events.chunks(chunk);
    let mut pushed: Vec<Event> = Vec::new();
    let mut ids: Vec<String> = Vec::new();
    let mut rng = Rng::new(seed);
    let mut mid_work = 0;
    let mut mid_batch = 0;
    for _ in 0..kills {
        push(conn, chunks.next(), &mut pushed, &mut ids).await;
        let before = cursor(conn).await;
        let mut relay = spawn_relay(settings);
        // Working: its cursor moved.
        let deadline = Instant::now() + Duration::from_secs(30);
        while cursor(conn).await == before {
            assert!(
                Instant::now() < deadline,
                "the relay never moved its cursor"
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        push(conn, chunks.next(), &mut pushed, &mut ids).await;
        tokio::time::sleep(Duration::from_millis(rng.below(40))).await;
        relay.kill();
        let at = cursor(conn).await.unwrap_or_default();
        if ids.last().is_some_and(|last| *last != at) {
            mid_work += 1;
        }
        // A mark past the cursor: killed after some partitions took the batch, before the
        // cursor moved.
        for partition in 0..PARTITIONS {
            let stream = partition_stream(STREAM, PARTITIONS, partition);
            let mark: Option<String> = redis::cmd("GET")
                .arg(format!("{{{stream}}}:relayed"))
                .query_async(conn)
                .await
                .expect("GET mark");
            if mark.is_some_and(|mark| id_parts(&mark) > id_parts(&at)) {
                mid_batch += 1;
                break;
            }
        }
    }
    eprintln!("{kills} kills: {mid_work} while the relay was behind, {mid_batch} mid-batch");
    assert!(
        mid_work * 2 >= kills,
        "only {mid_work} of {kills} kills hit a working relay"
    );
    for chunk in chunks.by_ref() {
        push(conn, Some(chunk), &mut pushed, &mut ids).await;
    }
    // Two at once, as by mistake: they repeat each other's work, never an entry.
    let mut relays = [spawn_relay(settings), spawn_relay(settings)];
    let last = ids.last().cloned().unwrap_or_default();
    wait_for_cursor(conn, &last, Duration::from_secs(120)).await;
    for relay in &mut relays {
        let status = relay.terminate(Duration::from_secs(10));
        assert_eq!(status.code(), Some(0), "SIGTERM: {status:?}");
    }
    let first = assert_relayed(conn, &pushed, &ids).await;

    // As if every batch since the start had been relayed and the relay killed before moving
    // its cursor: the marks skip everything.
    let _: () = redis::cmd("SET")
        .arg(CURSOR)
        .arg("0-0")
        .query_async(conn)
        .await
        .expect("SET cursor");
    let mut relay = spawn_relay(settings);
    wait_for_cursor(conn, &last, Duration::from_secs(120)).await;
    relay.wait_for_line("relayed=0 skipped=", Duration::from_secs(10));
    relay.kill();
    let again = assert_relayed(conn, &pushed, &ids).await;
    assert_eq!(
        first, again,
        "a relay from an old cursor changed the partitions"
    );
    (pushed, ids)
}

/// Appends `chunk` (if any) to the source stream, and to `pushed` and its ids to `ids`.
async fn push(
    conn: &mut impl TestConn,
    chunk: Option<&[Event]>,
    pushed: &mut Vec<Event>,
    ids: &mut Vec<String>,
) {
    if let Some(chunk) = chunk {
        ids.extend(push_events(conn, chunk).await);
        pushed.extend(chunk.iter().cloned());
    }
}

fn id_parts(id: &str) -> (u64, u64) {
    let (ms, seq) = id.split_once('-').unwrap_or((id, "0"));
    (ms.parse().unwrap_or(0), seq.parse().unwrap_or(0))
}

#[tokio::test]
async fn sigkilled_relays_move_every_entry_exactly_once_in_order() {
    let started = Instant::now();
    let redis = TestRedis::start().await;
    let settings = relay_settings(&redis);
    let mut conn = redis.connection(1).await;
    let events = traffic(61, 900);
    assert!(events.len() > 3_000, "{} events", events.len());
    let without_product = events.iter().filter(|e| product_of(e).is_empty()).count();
    assert!(without_product > 0, "no event without a product id");
    relay_through_kills(&mut conn, &settings, &events, 6, 61).await;
    eprintln!(
        "{} events relayed through 6 kills in {:?}",
        events.len(),
        started.elapsed()
    );
}

#[tokio::test]
async fn a_relay_on_a_redis_cluster_moves_every_entry_exactly_once() {
    let cluster = TestCluster::start().await;
    let redis = TestRedis::start().await;
    let mut settings = relay_settings(&redis);
    drop(redis);
    settings.stream.redis_url = Some(cluster.urls().to_owned());
    settings.store.redis_url = Some(cluster.urls().to_owned());
    settings.stream.cluster = true;
    settings.store.cluster = true;
    let mut conn = cluster.connection();
    let events = traffic(62, 200);
    relay_through_kills(&mut conn, &settings, &events, 2, 62).await;
}

#[tokio::test]
async fn entries_appended_to_partitions_directly_are_kept_beside_relayed_ones() {
    let redis = TestRedis::start().await;
    let settings = relay_settings(&redis);
    let mut conn = redis.connection(1).await;
    let events = traffic(63, 400);
    // The relay starts before the source stream exists and waits for it.
    let mut relay = spawn_relay(&settings);
    relay.wait_for_line("does not exist yet", Duration::from_secs(30));
    let mut ids = push_events(&mut conn, &events[..events.len() / 2]).await;

    // Ingest-like appends (`*` ids) to every partition while the relay works, one partition
    // after the other, and a kill in the middle.
    let mut direct: BTreeMap<u32, Vec<Vec<Vec<u8>>>> = BTreeMap::new();
    for round in 0..40u32 {
        if round == 20 {
            relay.kill();
            ids.extend(push_events(&mut conn, &events[events.len() / 2..]).await);
            relay = spawn_relay(&settings);
        }
        let partition = round % PARTITIONS;
        let fields = vec![
            ("product_id".to_owned(), format!("direct-{partition}")),
            ("type".to_owned(), "gameplay".to_owned()),
            (DIRECT.to_owned(), round.to_string()),
        ];
        let _: String = redis::cmd("XADD")
            .arg(partition_stream(STREAM, PARTITIONS, partition))
            .arg("*")
            .arg(fields.iter().flat_map(|(n, v)| [n, v]).collect::<Vec<_>>())
            .query_async(&mut conn)
            .await
            .expect("XADD");
        direct.entry(partition).or_default().push(items_of(&fields));
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let last = ids.last().cloned().unwrap_or_default();
    wait_for_cursor(&mut conn, &last, Duration::from_secs(60)).await;
    assert_eq!(relay.terminate(Duration::from_secs(10)).code(), Some(0));
    let found = assert_relayed(&mut conn, &events, &ids).await;
    for (partition, (_, appended)) in &found {
        let appended: Vec<&Vec<Vec<u8>>> = appended.iter().map(|(_, items)| items).collect();
        let wanted: Vec<&Vec<Vec<u8>>> = direct[partition].iter().collect();
        assert_eq!(
            appended, wanted,
            "partition {partition}: the direct entries"
        );
    }
}

#[tokio::test]
async fn one_partition_and_another_partition_count_are_refused() {
    let output = relay_command(&Settings::defaults(stats_tracker::core::config::Mode::Test))
        .env("STATS_TRACKER__STREAM__PARTITIONS", "1")
        .output()
        .expect("run the relay");
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("stream.partitions is 1") && stderr.contains("game_event_stream"),
        "{stderr}"
    );

    // The pool was set up with 4 partitions: a relay into 8 would feed streams no worker reads.
    let redis = TestRedis::start().await;
    let settings = relay_settings(&redis);
    let mut conn = redis.connection(1).await;
    let _: () = redis::cmd("SET")
        .arg("{game_event_stream}:stats-tracker:partitions")
        .arg(4)
        .query_async(&mut conn)
        .await
        .expect("SET");
    let output = relay_command(&settings).output().expect("run the relay");
    assert_eq!(output.status.code(), Some(6), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("4 partition(s)") && stderr.contains("stream.partitions is 8"),
        "{stderr}"
    );
}

/// A stream that was the tracker's single stream: the relay starts after what the tracker's
/// group read, and refuses to start while the group has entries it read but never
/// acknowledged.
#[tokio::test]
async fn a_former_single_stream_is_relayed_after_what_its_group_read() {
    let redis = TestRedis::start().await;
    let settings = relay_settings(&redis);
    let mut conn = redis.connection(1).await;
    let events = traffic(65, 20);
    let ids = push_events(&mut conn, &events).await;
    let _: () = redis::cmd("XGROUP")
        .arg("CREATE")
        .arg(STREAM)
        .arg("stats-tracker")
        .arg(&ids[39])
        .query_async(&mut conn)
        .await
        .expect("XGROUP CREATE");
    let read: redis::Value = redis::cmd("XREADGROUP")
        .arg("GROUP")
        .arg("stats-tracker")
        .arg("single")
        .arg("COUNT")
        .arg(5)
        .arg("STREAMS")
        .arg(STREAM)
        .arg(">")
        .query_async(&mut conn)
        .await
        .expect("XREADGROUP");
    drop(read);

    let output = relay_command(&settings).output().expect("run the relay");
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("5 entries") && stderr.contains("never acknowledged"),
        "{stderr}"
    );
    assert_eq!(
        cursor(&mut conn).await,
        None,
        "a refused relay wrote its cursor"
    );

    let _: u64 = redis::cmd("XACK")
        .arg(STREAM)
        .arg("stats-tracker")
        .arg(&ids[40..45])
        .query_async(&mut conn)
        .await
        .expect("XACK");
    let mut relay = spawn_relay(&settings);
    relay.wait_for_line("read the source stream up to here", Duration::from_secs(30));
    let last = ids.last().cloned().unwrap_or_default();
    wait_for_cursor(&mut conn, &last, Duration::from_secs(30)).await;
    assert_eq!(relay.terminate(Duration::from_secs(10)).code(), Some(0));
    assert_relayed_from(&mut conn, &events, &ids, 45).await;
}

#[tokio::test]
async fn a_restarted_relay_warns_when_entries_it_had_not_moved_were_trimmed() {
    let redis = TestRedis::start().await;
    let settings = relay_settings(&redis);
    let mut conn = redis.connection(1).await;
    let events = traffic(66, 5);
    let ids = push_events(&mut conn, &events).await;
    let mut relay = spawn_relay(&settings);
    wait_for_cursor(&mut conn, &ids[ids.len() - 1], Duration::from_secs(30)).await;
    relay.kill();
    // Nothing removed: no warning (it would come before this line).
    let mut relay = spawn_relay(&settings);
    relay.wait_for_line("resuming after the stored cursor", Duration::from_secs(30));
    assert!(
        !relay
            .log
            .iter()
            .any(|line| line.contains("lost to the tracker")),
        "{:?}",
        relay.log
    );
    relay.kill();
    push_events(&mut conn, &events).await;
    let _: u64 = redis::cmd("XTRIM")
        .arg(STREAM)
        .arg("MAXLEN")
        .arg(3)
        .query_async(&mut conn)
        .await
        .expect("XTRIM");
    let mut relay = spawn_relay(&settings);
    relay.wait_for_line("lost to the tracker", Duration::from_secs(30));
    relay.kill();
}

#[tokio::test]
async fn the_worker_pool_applies_relayed_partitions_like_the_reference_model() {
    let redis = TestRedis::start().await;
    let dir = tempfile::tempdir().expect("temporary directory");
    let games_file = dir.path().join("games.toml");
    std::fs::write(&games_file, CHAOS_GAMES).expect("games file");
    let mut settings = relay_settings(&redis);
    settings.games.file = Some(games_file);
    settings.stream.batch_size = 50;
    let mut conn = redis.connection(1).await;
    let (mut events, bad) = mixed_run(64, 500, 40, 5);
    spread_products(&mut events);
    let workers: Vec<WorkerProcess> = (0..2)
        .map(|i| WorkerProcess::spawn(&settings, &format!("relayed-{i}")))
        .collect();
    let ids = push_events(&mut conn, &events[..events.len() / 2]).await;
    let mut relay = spawn_relay(&settings);
    tokio::time::sleep(Duration::from_millis(100)).await;
    relay.kill();
    let mut relay = spawn_relay(&settings);
    let ids: Vec<String> = ids
        .into_iter()
        .chain(push_events(&mut conn, &events[events.len() / 2..]).await)
        .collect();
    let last = ids.last().cloned().unwrap_or_default();
    wait_for_cursor(&mut conn, &last, Duration::from_secs(60)).await;
    // Every partition's group exists (its worker took it), then every one is drained.
    let deadline = Instant::now() + Duration::from_secs(30);
    for partition in 0..PARTITIONS {
        let stream = partition_stream(STREAM, PARTITIONS, partition);
        while group_backlog_of(&mut conn, &stream).await.is_none() {
            assert!(Instant::now() < deadline, "no worker took {stream}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    wait_until_all_drained(&mut conn, Duration::from_secs(120)).await;
    assert_eq!(relay.terminate(Duration::from_secs(10)).code(), Some(0));

    // Dead letters name the ids of the partitions' copies.
    let found = assert_relayed(&mut conn, &events, &ids).await;
    let mut copies: BTreeMap<u32, std::vec::IntoIter<Entry>> = found
        .into_iter()
        .map(|(partition, (relayed, _))| (partition, relayed.into_iter()))
        .collect();
    let copy_ids: Vec<String> = events
        .iter()
        .map(|event| {
            let partition = partition_of(product_of(event), PARTITIONS);
            copies
                .get_mut(&partition)
                .and_then(Iterator::next)
                .map(|(id, _)| id)
                .expect("every event relayed")
        })
        .collect();
    let mut store = redis.connection(0).await;
    assert_run_matches_with(
        Model::with_exrps_elo(20.0, 1200.0),
        &mut store,
        &settings.store.key_prefix,
        &events,
        &bad,
        &copy_ids,
        false,
    )
    .await;
    drop(workers);
}
