//! The tracker's own history and what it is for: back-filling a board added later, re-rating
//! after a config change, voiding matches, erasure that a rebuild does not undo, segment
//! files; and `rebuild` under SIGKILL while a reader polls.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::Output;
use std::time::{Duration, Instant};

use crate::crash::CHAOS_GAMES;
use crate::helpers::{
    TestApp, TestConn, TestRedis, WorkerProcess, push_events, settings, tracker_command, urlencode,
    wait_until_drained,
};
use crate::traffic::{Event, Model, Rng, board_scores, mixed_run};
use stats_tracker::core::config::{Secret, Settings};
use stats_tracker::core::ids::{PlayerId, ProductId};
use stats_tracker::core::keys::KeySpace;
use stats_tracker::history::decode_chunk;

const ADMIN_TOKEN: &str = "history-test-admin-token";

/// [`CHAOS_GAMES`] without its Elo board: what a studio ran before adding one.
fn games_without_elo() -> String {
    let without: String = CHAOS_GAMES
        .lines()
        .filter(|line| !line.contains("name = \"elo\""))
        .map(|line| format!("{line}\n"))
        .collect();
    assert_ne!(without, CHAOS_GAMES, "CHAOS_GAMES has an elo board");
    without
}

/// A private Redis and settings whose games file is `games` (written next to the socket).
async fn setup(games: &str) -> (TestRedis, Settings) {
    let redis = TestRedis::start().await;
    let mut settings = settings(&redis);
    write_games(&redis, &mut settings, games);
    settings.server.admin_token = Some(Secret::new(ADMIN_TOKEN));
    (redis, settings)
}

fn write_games(redis: &TestRedis, settings: &mut Settings, games: &str) {
    let file = redis
        .socket_dir()
        .join(format!("games-{:x}.toml", games.len()));
    std::fs::write(&file, games).expect("games file");
    settings.games.file = Some(file);
}

/// Runs `stats-tracker rebuild` with `args` to the end.
fn rebuild(settings: &Settings, args: &[&str]) -> Output {
    tracker_command(settings, "rebuild")
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run stats-tracker rebuild")
}

fn assert_succeeded(output: &Output) -> serde_json::Value {
    assert!(
        output.status.success(),
        "rebuild failed ({:?}): {}",
        output.status.code(),
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("rebuild prints JSON")
}

/// Pushes `events` and lets an in-process tracker (server and worker) apply them all; the
/// tracker keeps running. Their stream ids.
async fn serve_applied(
    settings: &Settings,
    stream: &mut impl TestConn,
    events: &[Event],
) -> (TestApp, Vec<String>) {
    let app = TestApp::spawn(settings, true).await;
    let ids = push_events(stream, events).await;
    wait_until_drained(stream, Duration::from_secs(60)).await;
    (app, ids)
}

/// [`serve_applied`], then the tracker stopped.
async fn apply_all(
    settings: &Settings,
    stream: &mut impl TestConn,
    events: &[Event],
) -> Vec<String> {
    let (app, ids) = serve_applied(settings, stream, events).await;
    app.stop().await;
    ids
}
/// The store's history of `product`: every entry, in order (each chunk's header checked).
async fn history_entries(
    store: &mut impl TestConn,
    prefix: &str,
    product: &str,
) -> Vec<stats_tracker::core::event::RawEntry> {
    let keys = KeySpace::new(prefix)
        .expect("prefix")
        .product(&ProductId::parse(product).expect("id"));
    let chunks: Vec<Vec<u8>> = redis::cmd("LRANGE")
        .arg(keys.events())
        .arg(0)
        .arg(-1)
        .query_async(store)
        .await
        .expect("LRANGE");
    let mut all = Vec::new();
    for chunk in chunks {
        let (header, entries) = decode_chunk(&chunk).expect("a readable chunk");
        assert_eq!(header.count as usize, entries.len());
        assert_eq!(entries.first().map(|e| e.id.clone()), Some(header.first));
        assert_eq!(entries.last().map(|e| e.id.clone()), Some(header.last));
        all.extend(entries);
    }
    all
}

/// The ids of [`history_entries`].
async fn history_ids(store: &mut impl TestConn, prefix: &str, product: &str) -> Vec<String> {
    history_entries(store, prefix, product)
        .await
        .into_iter()
        .map(|entry| entry.id)
        .collect()
}

/// The ids each product's history must hold: every event of the product the worker did not
/// refuse whole, in stream order.
pub fn expected_history(
    events: &[Event],
    ids: &[String],
    bad: &[usize],
) -> BTreeMap<String, Vec<String>> {
    let bad: BTreeSet<usize> = bad.iter().copied().collect();
    let mut expected: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (index, (event, id)) in events.iter().zip(ids).enumerate() {
        if bad.contains(&index) {
            continue;
        }
        let product = event
            .iter()
            .find(|(name, _)| name == "product_id")
            .map(|(_, value)| value.clone())
            .unwrap_or_default();
        expected.entry(product).or_default().push(id.clone());
    }
    expected
}

/// Asserts that every product's history holds exactly its applied entries, once each, in order.
pub async fn assert_history_matches(
    store: &mut impl TestConn,
    prefix: &str,
    events: &[Event],
    ids: &[String],
    bad: &[usize],
) {
    for (product, expected) in expected_history(events, ids, bad) {
        let actual = history_ids(store, prefix, &product).await;
        assert_eq!(actual.len(), expected.len(), "history length of {product}");
        assert!(
            actual == expected,
            "history of {product} differs from its entries"
        );
    }
}

/// The store equals the reference model of `events` with exrps's Elo board at K-factor `k`
/// (initial rating 1200), `bad` dead-lettered; the model.
async fn assert_elo_run(
    store: &mut impl TestConn,
    k: f64,
    events: &[Event],
    bad: &[usize],
    ids: &[String],
) -> Model {
    crate::traffic::assert_run_matches(
        Model::with_exrps_elo(k, 1200.0),
        store,
        "st_test",
        events,
        bad,
        ids,
    )
    .await
}

/// A board as (player, score) rows in rank order.
async fn board_rows(store: &mut impl TestConn, key: &str) -> Vec<(Vec<u8>, String)> {
    redis::cmd("ZRANGE")
        .arg(key)
        .arg(0)
        .arg(-1)
        .arg("WITHSCORES")
        .query_async(store)
        .await
        .expect("ZRANGE")
}

fn exrps_keys(prefix: &str) -> stats_tracker::core::keys::PartitionKeys {
    KeySpace::new(prefix)
        .expect("prefix")
        .product(&ProductId::parse("exrps").expect("id"))
}

#[tokio::test]
async fn history_keeps_every_applied_entry_once_in_order() {
    let (redis, settings) = setup(CHAOS_GAMES).await;
    let mut stream = redis.connection(1).await;
    let mut store = redis.connection(0).await;
    let (events, bad) = mixed_run(11, 120, 30, 5);
    let ids = apply_all(&settings, &mut stream, &events).await;
    assert_history_matches(&mut store, "st_test", &events, &ids, &bad).await;
    let gap: Option<String> = redis::cmd("GET")
        .arg(exrps_keys("st_test").events_gap())
        .query_async(&mut store)
        .await
        .expect("GET");
    assert_eq!(gap, None, "history kept from the first entry is complete");
}

#[tokio::test]
async fn a_board_added_later_is_back_filled_equal_to_one_configured_from_the_start() {
    let (events, bad) = mixed_run(17, 700, 60, 3);
    assert!(events.len() >= 10_000, "{} events", events.len());

    // Configured from the start.
    let (from_start, settings_b) = setup(CHAOS_GAMES).await;
    let mut stream = from_start.connection(1).await;
    apply_all(&settings_b, &mut stream, &events).await;

    // Added after every event was applied, then back-filled.
    let (later, mut settings) = setup(&games_without_elo()).await;
    let mut stream = later.connection(1).await;
    let ids = apply_all(&settings, &mut stream, &events).await;
    let mut store = later.connection(0).await;
    let elo = exrps_keys("st_test").board("elo");
    assert!(board_rows(&mut store, &elo).await.is_empty());
    write_games(&later, &mut settings, CHAOS_GAMES);
    let outcome = assert_succeeded(&rebuild(
        &settings,
        &["--product", "exrps", "--board", "elo"],
    ));
    assert_eq!(outcome["switched"], true, "{outcome}");

    let mut expected_store = from_start.connection(0).await;
    assert_eq!(
        board_rows(&mut store, &elo).await,
        board_rows(&mut expected_store, &elo).await,
        "the back-filled board equals the one configured from the start, row for row"
    );
    let model = assert_elo_run(&mut store, 20.0, &events, &bad, &ids).await;
    assert!(!model.elo.is_empty());
    // The wins board was not rebuilt: its ranking is the one configured from the start (its
    // stamps differ: there they also counted the Elo board's changes).
    let wins = exrps_keys("st_test").board("wins");
    assert_eq!(
        board_scores_in_order(&mut store, &wins).await,
        board_scores_in_order(&mut expected_store, &wins).await
    );
}

/// Changing a rule is: a new games file, the workers restarted with it, and a rebuild. The
/// rebuild runs while the restarted worker applies new events: nothing is lost or counted
/// twice, and everything ends rated with the new k-factor.
#[tokio::test]
async fn a_new_k_factor_re_rates_history_while_new_events_keep_coming() {
    let (redis, mut settings) = setup(CHAOS_GAMES).await;
    let mut stream = redis.connection(1).await;
    let mut store = redis.connection(0).await;
    let (events, bad) = mixed_run(23, 600, 50, 3);
    let (first, rest) = events.split_at(events.len() * 2 / 3);
    let mut ids = apply_all(&settings, &mut stream, first).await;
    write_games(
        &redis,
        &mut settings,
        &CHAOS_GAMES.replace("k_factor = 20.0", "k_factor = 32.0"),
    );
    let app = TestApp::spawn(&settings, true).await;
    let rebuilding = {
        let settings = settings.clone();
        tokio::task::spawn_blocking(move || rebuild(&settings, &["--product", "exrps"]))
    };
    for chunk in rest.chunks(100) {
        ids.extend(push_events(&mut stream, chunk).await);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let outcome = assert_succeeded(&rebuilding.await.expect("rebuild task"));
    assert_eq!(outcome["switched"], true, "{outcome}");
    wait_until_drained(&mut stream, Duration::from_secs(60)).await;
    app.stop().await;
    assert_elo_run(&mut store, 32.0, &events, &bad, &ids).await;
    assert_history_matches(&mut store, "st_test", &events, &ids, &bad).await;
}

/// The events without the matches whose `game_id` is in `voided`.
fn without_games(
    events: &[Event],
    ids: &[String],
    bad: &[usize],
    voided: &BTreeSet<String>,
) -> (Vec<Event>, Vec<String>, Vec<usize>) {
    let (mut kept, mut kept_ids, mut kept_bad) = (Vec::new(), Vec::new(), Vec::new());
    for (index, (event, id)) in events.iter().zip(ids).enumerate() {
        let game = event
            .iter()
            .find(|(name, _)| name == "game_id")
            .map(|(_, value)| value.as_str());
        if game.is_some_and(|game| voided.contains(game)) && !bad.contains(&index) {
            continue;
        }
        if bad.contains(&index) {
            kept_bad.push(kept.len());
        }
        kept.push(event.clone());
        kept_ids.push(id.clone());
    }
    (kept, kept_ids, kept_bad)
}

async fn send_admin(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    body: Option<serde_json::Value>,
) -> (u16, serde_json::Value) {
    let mut request = app
        .http
        .request(method, format!("{}{path}", app.address))
        .bearer_auth(ADMIN_TOKEN);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.expect("request");
    let status = response.status().as_u16();
    (status, response.json().await.expect("JSON body"))
}

async fn wait_for_rebuild(app: &TestApp, product: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (status, body) = send_admin(
            app,
            reqwest::Method::GET,
            &format!("/v1/admin/products/{}/voids", urlencode(product)),
            None,
        )
        .await;
        assert_eq!(status, 200, "{body}");
        if body["rebuild_pending"] == false {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the rebuild asked for never finished"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn voided_matches_leave_no_trace_and_undoing_a_void_brings_the_match_back() {
    let (redis, settings) = setup(CHAOS_GAMES).await;
    let mut stream = redis.connection(1).await;
    let mut store = redis.connection(0).await;
    let (events, bad) = mixed_run(29, 300, 40, 0);
    let (app, ids) = serve_applied(&settings, &mut stream, &events).await;

    // Five exrps matches in the middle.
    let games: Vec<String> = events
        .iter()
        .filter(|event| event.iter().any(|(n, v)| n == "product_id" && v == "exrps"))
        .filter_map(|event| {
            event
                .iter()
                .find(|(name, _)| name == "game_id")
                .map(|(_, value)| value.clone())
        })
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let voided: BTreeSet<String> = games
        .iter()
        .skip(games.len() / 2)
        .take(5)
        .cloned()
        .collect();
    for game in &voided {
        let (status, body) = send_admin(
            &app,
            reqwest::Method::POST,
            "/v1/admin/products/exrps/voids",
            Some(serde_json::json!({ "game_id": game, "reason": "cheating" })),
        )
        .await;
        assert_eq!(status, 202, "{body}");
        assert_eq!(body["void"]["kind"], "game");
        assert!(body["void"]["entries"].as_u64().unwrap_or(0) > 0, "{body}");
    }
    let (status, body) = send_admin(
        &app,
        reqwest::Method::POST,
        "/v1/admin/products/exrps/voids",
        Some(serde_json::json!({ "game_id": "no-such-game" })),
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("match_not_found")),
        "{body}"
    );
    let (status, body) = send_admin(
        &app,
        reqwest::Method::POST,
        "/v1/admin/products/exrps/voids",
        Some(serde_json::json!({ "game_id": "x", "entry_id": "1-0" })),
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("invalid_body")),
        "{body}"
    );
    wait_for_rebuild(&app, "exrps").await;

    let (kept, kept_ids, kept_bad) = without_games(&events, &ids, &bad, &voided);
    assert_elo_run(&mut store, 20.0, &kept, &kept_bad, &kept_ids).await;
    // Rating histories leave them out too: each player's is as long as their rated matches.
    let exrps = exrps_keys("st_test");
    let (_, listed) = send_admin(
        &app,
        reqwest::Method::GET,
        "/v1/admin/products/exrps/voids",
        None,
    )
    .await;
    assert_eq!(
        listed["voids"].as_array().map(Vec::len),
        Some(5),
        "{listed}"
    );

    // Undo one: its match counts again.
    let back = voided.iter().next().cloned().unwrap_or_default();
    let (status, body) = send_admin(
        &app,
        reqwest::Method::DELETE,
        &format!("/v1/admin/products/exrps/voids/game/{}", urlencode(&back)),
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = send_admin(
        &app,
        reqwest::Method::DELETE,
        &format!("/v1/admin/products/exrps/voids/game/{}", urlencode(&back)),
        None,
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("void_not_found")),
        "{body}"
    );
    wait_for_rebuild(&app, "exrps").await;
    let still: BTreeSet<String> = voided
        .iter()
        .filter(|game| **game != back)
        .cloned()
        .collect();
    let (kept, kept_ids, kept_bad) = without_games(&events, &ids, &bad, &still);
    let model = assert_elo_run(&mut store, 20.0, &kept, &kept_bad, &kept_ids).await;
    for (player, (_, matches)) in &model.elo {
        let history: u64 = redis::cmd("LLEN")
            .arg(exrps.history(
                "elo",
                &stats_tracker::core::ids::PlayerId::parse(player).expect("id"),
            ))
            .query_async(&mut store)
            .await
            .expect("LLEN");
        assert_eq!(history, (*matches).min(100), "rating history of {player}");
    }
    app.stop().await;
}

/// Exports exrps's whole history to segment files in `dir` (`stats-tracker history export`).
fn export_exrps(settings: &Settings, dir: &std::path::Path) {
    let exported = tracker_command(settings, "history export")
        .args(["--product", "exrps", "--dir"])
        .arg(dir)
        .output()
        .expect("export");
    assert!(
        exported.status.success(),
        "{}",
        String::from_utf8_lossy(&exported.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&exported.stdout).expect("JSON");
    assert!(report["entries"].as_u64().unwrap_or(0) > 0, "{report}");
}

/// The first exrps player named in field `field` (`winner_id`, `loser_id`) of `events`.
fn first_exrps_player(events: &[Event], field: &str) -> String {
    events
        .iter()
        .find_map(|event| {
            let exrps = event.iter().any(|(n, v)| n == "product_id" && v == "exrps");
            let named = event.iter().find(|(n, _)| n == field);
            exrps.then_some(named).flatten().map(|(_, v)| v.clone())
        })
        .expect("an exrps player")
}

/// Erases `player` through the admin route.
async fn erase(app: &TestApp, player: &str) {
    let (status, body) = send_admin(
        app,
        reqwest::Method::DELETE,
        &format!("/v1/admin/players/{}", urlencode(player)),
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
}

/// `victim` is nowhere in exrps: on no board, in no key name, in no history entry; and the
/// Elo board is `elo_before` (everyone else's ratings as they were).
async fn assert_erased_everywhere(
    store: &mut impl TestConn,
    victim: &str,
    elo_before: &BTreeMap<String, f64>,
) {
    let exrps = exrps_keys("st_test");
    let elo_after = board_scores(store, &exrps.board("elo")).await;
    assert_eq!(
        &elo_after, elo_before,
        "everyone else's ratings are as they were"
    );
    let wins = board_scores(store, &exrps.board("wins")).await;
    assert!(!wins.contains_key(victim));
    let encoded = stats_tracker::core::keys::encode_segment(victim);
    let keys = store.keys("st_test:*").await;
    assert!(
        keys.iter()
            .all(|key| !key.ends_with(&format!(":{encoded}"))),
        "a key of {victim} is left"
    );
    for entry in history_entries(store, "st_test", "exrps").await {
        assert!(
            entry
                .fields
                .iter()
                .all(|(_, value)| !String::from_utf8_lossy(value).contains(victim)),
            "{victim} in history entry {}",
            entry.id
        );
    }
}

#[tokio::test]
async fn an_erased_player_stays_erased_through_a_rebuild() {
    let (redis, settings) = setup(CHAOS_GAMES).await;
    let mut stream = redis.connection(1).await;
    let mut store = redis.connection(0).await;
    let (events, _) = mixed_run(31, 200, 20, 0);
    let (app, _) = serve_applied(&settings, &mut stream, &events).await;
    let victim = first_exrps_player(&events, "winner_id");
    erase(&app, &victim).await;
    app.stop().await;
    let elo_before = board_scores(&mut store, &exrps_keys("st_test").board("elo")).await;
    assert!(!elo_before.contains_key(&victim));

    assert_succeeded(&rebuild(&settings, &["--product", "exrps"]));
    assert_erased_everywhere(&mut store, &victim, &elo_before).await;
}

#[tokio::test]
async fn history_exported_to_segments_rebuilds_the_same() {
    let (redis, mut settings) = setup(CHAOS_GAMES).await;
    let mut stream = redis.connection(1).await;
    let mut store = redis.connection(0).await;
    let (events, bad) = mixed_run(37, 300, 30, 3);
    let (first, rest) = events.split_at(events.len() / 2);
    let mut ids = apply_all(&settings, &mut stream, first).await;
    let dir: PathBuf = redis.socket_dir().join("segments");
    export_exrps(&settings, &dir);
    assert!(history_ids(&mut store, "st_test", "exrps").await.is_empty());
    ids.extend(apply_all(&settings, &mut stream, rest).await);

    write_games(
        &redis,
        &mut settings,
        &CHAOS_GAMES.replace("k_factor = 20.0", "k_factor = 16.0"),
    );
    // Without the segments the history is incomplete: refused, nothing touched.
    let refused = rebuild(&settings, &["--product", "exrps"]);
    assert_eq!(
        refused.status.code(),
        Some(8),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    assert!(String::from_utf8_lossy(&refused.stderr).contains("segment"));
    let dir_text = dir.to_string_lossy().into_owned();
    assert_succeeded(&rebuild(
        &settings,
        &["--product", "exrps", "--segments", &dir_text],
    ));
    assert_elo_run(&mut store, 16.0, &events, &bad, &ids).await;
    // The segment is zstd-compressed JSON lines, one per entry.
    let segment = std::fs::read_dir(dir.join("exrps"))
        .expect("segment dir")
        .filter_map(Result::ok)
        .find(|entry| entry.file_name().to_string_lossy().ends_with(".jsonl.zst"))
        .expect("a segment file");
    let text =
        zstd::stream::decode_all(std::fs::File::open(segment.path()).expect("open")).expect("zstd");
    let first_line: serde_json::Value =
        serde_json::from_slice(text.split(|&b| b == b'\n').next().unwrap_or_default())
            .expect("JSON line");
    assert_eq!(first_line["fields"]["product_id"], "exrps");
}

#[tokio::test]
async fn bad_rebuilds_are_refused_before_anything_is_touched() {
    let (redis, mut settings) = setup(CHAOS_GAMES).await;
    let mut stream = redis.connection(1).await;
    let mut store = redis.connection(0).await;
    let (events, _) = mixed_run(41, 40, 10, 0);
    apply_all(&settings, &mut stream, &events).await;
    let before = store.keys("st_test:*").await;

    let unknown = rebuild(&settings, &["--product", "no-such-game"]);
    assert_eq!(unknown.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("no-such-game"));
    let board = rebuild(&settings, &["--product", "exrps", "--board", "glory"]);
    assert_eq!(board.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&board.stderr).contains("glory"));
    let broken_games = redis.socket_dir().join("broken.toml");
    std::fs::write(
        &broken_games,
        "[products.exrps]\nboards = [ { name = \"x\", kind = \"nope\" } ]\n",
    )
    .expect("write");
    let mut broken = settings.clone();
    broken.games.file = Some(broken_games.clone());
    let output = rebuild(&broken, &["--product", "exrps"]);
    assert_eq!(output.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&output.stderr).contains("broken.toml"));

    // Another rebuild of the product holds the lock (and keeps it alive): refused.
    let lock = exrps_keys("st_test").rebuild_lock();
    let keeper = {
        let mut store = store.clone();
        let lock = lock.clone();
        tokio::spawn(async move {
            loop {
                let _: () = redis::cmd("SET")
                    .arg(&lock)
                    .arg("elsewhere/1/1")
                    .arg("PX")
                    .arg(3000)
                    .query_async(&mut store)
                    .await
                    .expect("SET");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        })
    };
    let busy = tokio::task::spawn_blocking({
        let settings = settings.clone();
        move || rebuild(&settings, &["--product", "exrps"])
    })
    .await
    .expect("task");
    keeper.abort();
    assert_eq!(
        busy.status.code(),
        Some(7),
        "{}",
        String::from_utf8_lossy(&busy.stderr)
    );
    let _: () = redis::cmd("DEL")
        .arg(&lock)
        .query_async(&mut store)
        .await
        .expect("DEL");
    assert_eq!(store.keys("st_test:*").await, before, "nothing was written");

    // A history that misses entries (kept only from some point on) is refused too.
    let _: () = redis::cmd("SET")
        .arg(exrps_keys("st_test").events_gap())
        .arg("1-0")
        .query_async(&mut store)
        .await
        .expect("SET");
    let partial = rebuild(&settings, &["--product", "exrps"]);
    assert_eq!(partial.status.code(), Some(8));
    assert!(String::from_utf8_lossy(&partial.stderr).contains("--allow-partial-history"));
    settings.games.file = None;
}

/// Kills `rebuild` at random moments (and the live worker once) while a reader pages through
/// the Elo board: the finished rebuild equals the reference model, and every page the reader
/// got was a page of the board before or of the board after, never a mix.
#[tokio::test]
async fn a_rebuild_killed_at_random_moments_resumes_and_readers_never_see_a_mix() {
    let (redis, mut settings) = setup(CHAOS_GAMES).await;
    settings.stream.batch_size = 50;
    let mut stream = redis.connection(1).await;
    let mut store = redis.connection(0).await;
    let (events, bad) = mixed_run(43, 900, 80, 2);
    let ids = push_events(&mut stream, &events).await;
    let mut worker = WorkerProcess::spawn(&settings, "live-1");
    wait_until_drained(&mut stream, Duration::from_secs(60)).await;
    let elo = exrps_keys("st_test").board("elo");
    let before = board_scores_in_order(&mut store, &elo).await;

    let app = TestApp::spawn(&settings, false).await;
    let stop = tokio_util::sync::CancellationToken::new();
    let reader = {
        let (http, address, stop) = (app.http.clone(), app.address.clone(), stop.clone());
        tokio::spawn(async move {
            let mut pages = Vec::new();
            let mut offset = 0;
            while !stop.is_cancelled() {
                let url = format!(
                    "{address}/v1/products/exrps/boards/elo/entries?limit=25&offset={offset}"
                );
                let body: serde_json::Value = http
                    .get(url)
                    .send()
                    .await
                    .expect("GET")
                    .json()
                    .await
                    .expect("JSON");
                let rows: Vec<(String, f64)> = body["entries"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|row| {
                        (
                            row["user_id"].as_str().unwrap_or_default().to_owned(),
                            row["score"].as_f64().unwrap_or(f64::NAN),
                        )
                    })
                    .collect();
                pages.push((offset, rows));
                offset = (offset + 25) % 100;
            }
            pages
        })
    };

    write_games(
        &redis,
        &mut settings,
        &CHAOS_GAMES.replace("k_factor = 20.0", "k_factor = 40.0"),
    );
    let mut rng = Rng::new(43);
    for round in 0..4 {
        let mut child = tracker_command(&settings, "rebuild")
            .args(["--product", "exrps"])
            .env("RUST_LOG", "warn")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("spawn rebuild");
        // The whole rebuild takes about 250 ms here: kills land in the replay, the switch, or
        // after it.
        tokio::time::sleep(Duration::from_millis(30 + rng.below(250))).await;
        let _ = child.kill();
        let _ = child.wait();
        if round == 1 {
            worker.kill();
            worker = WorkerProcess::spawn(&settings, "live-2");
        }
    }
    assert_succeeded(&rebuild(&settings, &["--product", "exrps"]));
    stop.cancel();
    let pages = reader.await.expect("reader");
    let after = board_scores_in_order(&mut store, &elo).await;
    assert_ne!(before, after, "a new k-factor changes the ratings");
    assert!(pages.len() > 10, "the reader read {} pages", pages.len());
    for (offset, rows) in &pages {
        let slice = |board: &[(String, f64)]| -> Vec<(String, f64)> {
            board.iter().skip(*offset).take(25).cloned().collect()
        };
        // The API's scores may differ from the stored text in the last binary digit.
        let same = |board: &[(String, f64)]| {
            let expected = slice(board);
            expected.len() == rows.len()
                && expected
                    .iter()
                    .zip(rows)
                    .all(|((a, x), (b, y))| a == b && (x - y).abs() <= 1e-9 * x.abs().max(1.0))
        };
        assert!(
            same(&before) || same(&after),
            "a page at offset {offset} is of neither board: {rows:?}\nbefore {:?}\nafter {:?}",
            slice(&before),
            slice(&after)
        );
    }
    worker.kill();
    assert_elo_run(&mut store, 40.0, &events, &bad, &ids).await;
    let leftovers = store.keys("st_test:{exrps}:~rebuild:*").await;
    assert!(leftovers.is_empty(), "the shadow is gone: {leftovers:?}");
    app.stop().await;
}

async fn board_scores_in_order(store: &mut impl TestConn, key: &str) -> Vec<(String, f64)> {
    board_rows(store, key)
        .await
        .into_iter()
        .map(|(member, score)| {
            (
                String::from_utf8_lossy(&member[8..]).into_owned(),
                -score.parse::<f64>().unwrap_or(f64::NAN),
            )
        })
        .collect()
}

#[tokio::test]
async fn a_board_reads_as_it_stood_at_a_past_entry_or_moment() {
    let (redis, mut settings) = setup(CHAOS_GAMES).await;
    let mut stream = redis.connection(1).await;
    let (events, _) = mixed_run(47, 200, 30, 0);
    let (first, rest) = events.split_at(events.len() / 2);
    // Enough to replay the first half, not everything.
    let exrps = |events: &[Event]| {
        let of_exrps =
            |event: &&Event| event.iter().any(|(n, v)| n == "product_id" && v == "exrps");
        events.iter().filter(of_exrps).count() as u64
    };
    settings.history.as_of_max_entries = exrps(first) + 10;
    assert!(exrps(&events) > exrps(first) + 10);
    let (app, ids) = serve_applied(&settings, &mut stream, first).await;
    let then = ids.last().cloned().unwrap_or_default();
    let page = "/v1/products/exrps/boards/elo/entries?limit=20&offset=5";
    let wins = "/v1/products/exrps/boards/wins/entries?limit=1000&ranking=dense";
    let (_, elo_then) = app.get_json(page).await;
    let (_, wins_then) = app.get_json(wins).await;
    tokio::time::sleep(Duration::from_millis(5)).await;
    push_events(&mut stream, rest).await;
    wait_until_drained(&mut stream, Duration::from_secs(60)).await;
    let (_, elo_now) = app.get_json(page).await;
    assert_ne!(
        elo_now["entries"], elo_then["entries"],
        "the board moved on"
    );

    let (status, elo_as_of) = app.get_json(&format!("{page}&as_of={then}")).await;
    assert_eq!(status, 200, "{elo_as_of}");
    assert_eq!(elo_as_of["entries"], elo_then["entries"]);
    assert_eq!(elo_as_of["total"], elo_then["total"]);
    assert_eq!(elo_as_of["as_of"], then.as_str());
    // A moment (Unix ms of the last entry then): the same.
    let ms = then.split('-').next().unwrap_or_default();
    let (status, wins_as_of) = app.get_json(&format!("{wins}&as_of={ms}")).await;
    assert_eq!(status, 200, "{wins_as_of}");
    assert_eq!(wins_as_of["entries"], wins_then["entries"]);
    // No copy is left behind.
    let mut store = redis.connection(0).await;
    assert!(store.keys("st_test:{exrps}:~asof:*").await.is_empty());

    let (status, body) = app.get_json(&format!("{page}&as_of=yesterday")).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("invalid_query")),
        "{body}"
    );
    let last = push_events(&mut stream, &events[..1]).await;
    wait_until_drained(&mut stream, Duration::from_secs(60)).await;
    let (status, body) = app.get_json(&format!("{page}&as_of={}", last[0])).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (422, Some("as_of_too_costly")),
        "{body}"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_dry_run_reports_what_would_change_and_changes_nothing() {
    let (redis, mut settings) = setup(CHAOS_GAMES).await;
    let mut stream = redis.connection(1).await;
    let mut store = redis.connection(0).await;
    let (events, _) = mixed_run(53, 150, 20, 0);
    apply_all(&settings, &mut stream, &events).await;
    let before = store.keys("st_test:*").await;
    let elo = exrps_keys("st_test").board("elo");
    let board_before = board_rows(&mut store, &elo).await;

    write_games(
        &redis,
        &mut settings,
        &CHAOS_GAMES.replace("k_factor = 20.0", "k_factor = 32.0"),
    );
    let report = assert_succeeded(&rebuild(&settings, &["--product", "exrps", "--dry-run"]));
    assert_eq!(report["switched"], false, "{report}");
    let changes = report["changes"].as_array().expect("changes");
    let elo_changes = changes
        .iter()
        .find(|board| board["board"] == "elo")
        .expect("the elo board is compared");
    assert!(
        elo_changes["score_changed"].as_u64().unwrap_or(0) > 0,
        "{elo_changes}"
    );
    assert_eq!(elo_changes["players_now"], elo_changes["players_rebuilt"]);
    let largest = elo_changes["largest"].as_array().expect("largest");
    assert!(!largest.is_empty() && largest.len() <= 10, "{elo_changes}");
    let wins_changes = changes
        .iter()
        .find(|board| board["board"] == "wins")
        .expect("the wins board is compared");
    assert_eq!(
        wins_changes["score_changed"], 0,
        "wins do not depend on K: {wins_changes}"
    );
    assert_eq!(
        board_rows(&mut store, &elo).await,
        board_before,
        "nothing switched"
    );
    assert_eq!(
        store.keys("st_test:*").await,
        before,
        "no shadow left behind"
    );
}

#[tokio::test]
async fn a_player_erased_after_an_export_stays_erased_in_a_rebuild_from_segments() {
    let (redis, settings) = setup(CHAOS_GAMES).await;
    let mut stream = redis.connection(1).await;
    let mut store = redis.connection(0).await;
    let (events, _) = mixed_run(59, 150, 20, 0);
    let (app, _) = serve_applied(&settings, &mut stream, &events).await;
    let dir: PathBuf = redis.socket_dir().join("segments");
    export_exrps(&settings, &dir);
    let victim = first_exrps_player(&events, "loser_id");
    erase(&app, &victim).await;
    app.stop().await;
    let elo_before = board_scores(&mut store, &exrps_keys("st_test").board("elo")).await;
    let dir_text = dir.to_string_lossy().into_owned();
    assert_succeeded(&rebuild(
        &settings,
        &["--product", "exrps", "--segments", &dir_text],
    ));
    // The history in Redis was exported before the erasure: all of it is in the segment,
    // which still names the player; the rebuild scrubs it as it reads.
    assert_erased_everywhere(&mut store, &victim, &elo_before).await;
}

/// An erasure run twice (a retried request, or one run again to finish it) records a second
/// pseudonym; a rebuild erases both.
#[tokio::test]
async fn a_player_erased_twice_stays_erased_through_a_rebuild() {
    let (redis, settings) = setup(CHAOS_GAMES).await;
    let mut stream = redis.connection(1).await;
    let mut store = redis.connection(0).await;
    let (events, _) = mixed_run(31, 200, 20, 0);
    let (app, _) = serve_applied(&settings, &mut stream, &events).await;
    let victim = first_exrps_player(&events, "winner_id");
    erase(&app, &victim).await;
    erase(&app, &victim).await;
    app.stop().await;
    let elo_before = board_scores(&mut store, &exrps_keys("st_test").board("elo")).await;
    assert_succeeded(&rebuild(&settings, &["--product", "exrps"]));
    assert_erased_everywhere(&mut store, &victim, &elo_before).await;
    let wins = board_scores(&mut store, &exrps_keys("st_test").board("wins")).await;
    assert!(
        wins.keys().all(|player| !player.starts_with("~erased:")),
        "{wins:?}"
    );
}

/// Erasing a player whose id is also a common value ("1") rewrites only the fields that name
/// players: other players' `event_data` of `1` stays, and so do their stats after a rebuild.
#[tokio::test]
async fn erasing_player_1_leaves_other_fields_that_hold_1_alone() {
    let (redis, settings) = setup(CHAOS_GAMES).await;
    let mut stream = redis.connection(1).await;
    let mut store = redis.connection(0).await;
    let event = crate::simulate::event;
    let mut events: Vec<Event> = vec![event(&[
        ("product_id", "exrps"),
        ("game_id", "g1"),
        ("type", "game_over"),
        ("winner_id", "1"),
        ("loser_id", "bob"),
    ])];
    for weapon in ["1", "1", "1", "0"] {
        events.push(event(&[
            ("product_id", "exrps"),
            ("game_id", "g2"),
            ("type", "gameplay"),
            ("event_name", "select_weapon"),
            ("event_data", weapon),
            ("user_id", "alice"),
        ]));
    }
    let (app, _) = serve_applied(&settings, &mut stream, &events).await;
    let alice = exrps_keys("st_test").stats(&PlayerId::parse("alice").expect("id"));
    let stats = |store: &mut redis::aio::MultiplexedConnection| {
        let (mut store, alice) = (store.clone(), alice.clone());
        async move {
            let all: BTreeMap<String, String> = redis::cmd("HGETALL")
                .arg(&alice)
                .query_async(&mut store)
                .await
                .expect("HGETALL");
            all.into_iter()
                .filter(|(name, _)| !name.starts_with('~'))
                .collect::<BTreeMap<_, _>>()
        }
    };
    let before = stats(&mut store).await;
    assert_eq!(
        before.get("paper_selection_count").map(String::as_str),
        Some("3")
    );
    erase(&app, "1").await;
    app.stop().await;
    assert_succeeded(&rebuild(&settings, &["--product", "exrps"]));
    assert_eq!(stats(&mut store).await, before, "alice's stats are hers");
}

/// A `--board` rebuild switches one board: a void's full rebuild stays pending.
#[tokio::test]
async fn a_board_rebuild_leaves_a_voids_full_rebuild_pending() {
    let (redis, settings) = setup(CHAOS_GAMES).await;
    let mut stream = redis.connection(1).await;
    let (events, _) = mixed_run(31, 200, 20, 0);
    apply_all(&settings, &mut stream, &events).await;
    let game = events
        .iter()
        .find_map(|event| {
            let get = |name: &str| {
                event
                    .iter()
                    .find(|(n, _)| n == name)
                    .map(|(_, v)| v.clone())
            };
            (get("product_id").as_deref() == Some("exrps"))
                .then(|| get("game_id"))
                .flatten()
        })
        .expect("an exrps match");
    // The server alone: the void is recorded and its rebuild asked for; no worker runs it.
    let app = TestApp::spawn(&settings, false).await;
    let (status, body) = send_admin(
        &app,
        reqwest::Method::POST,
        "/v1/admin/products/exrps/voids",
        Some(serde_json::json!({ "game_id": game })),
    )
    .await;
    assert_eq!(status, 202, "{body}");
    assert_succeeded(&rebuild(
        &settings,
        &["--product", "exrps", "--board", "elo"],
    ));
    let (_, listed) = send_admin(
        &app,
        reqwest::Method::GET,
        "/v1/admin/products/exrps/voids",
        None,
    )
    .await;
    assert_eq!(listed["rebuild_pending"], true, "{listed}");
    // A full rebuild does it.
    assert_succeeded(&rebuild(&settings, &["--product", "exrps"]));
    let (_, listed) = send_admin(
        &app,
        reqwest::Method::GET,
        "/v1/admin/products/exrps/voids",
        None,
    )
    .await;
    assert_eq!(listed["rebuild_pending"], false, "{listed}");
    app.stop().await;
}

/// On a Redis Cluster: history, a rebuild with a new K-factor and a board read as of a past
/// entry work as on one server (every key of a product, history and shadow included, is in
/// its hash slot).
#[tokio::test]
async fn history_rebuild_and_as_of_work_on_a_redis_cluster() {
    let cluster = crate::helpers::TestCluster::start().await;
    let dir = tempfile::tempdir().expect("temporary directory");
    let games = |text: &str, name: &str| {
        let file = dir.path().join(name);
        std::fs::write(&file, text).expect("games file");
        file
    };
    let mut settings = crate::helpers::cluster_settings(&cluster);
    settings.games.file = Some(games(CHAOS_GAMES, "k20.toml"));
    let mut conn = cluster.connection();
    let (events, bad) = mixed_run(61, 300, 30, 3);
    let (app, ids) = serve_applied(&settings, &mut conn, &events).await;
    let page = "/v1/products/exrps/boards/elo/entries?limit=10";
    let (_, then) = app.get_json(page).await;
    let last = ids.last().cloned().unwrap_or_default();
    app.stop().await;
    assert_history_matches(&mut conn, "st_test", &events, &ids, &bad).await;

    settings.games.file = Some(games(
        &CHAOS_GAMES.replace("k_factor = 20.0", "k_factor = 28.0"),
        "k28.toml",
    ));
    let outcome = assert_succeeded(&rebuild(&settings, &["--product", "exrps"]));
    assert_eq!(outcome["switched"], true, "{outcome}");
    assert_elo_run(&mut conn, 28.0, &events, &bad, &ids).await;
    assert!(conn.keys("st_test:{exrps}:~rebuild:*").await.is_empty());

    // As of the last entry with the first games file: the board as it was then.
    settings.games.file = Some(games(CHAOS_GAMES, "k20-again.toml"));
    let app = TestApp::spawn(&settings, false).await;
    let (status, as_of) = app.get_json(&format!("{page}&as_of={last}")).await;
    assert_eq!(status, 200, "{as_of}");
    assert_eq!(as_of["entries"], then["entries"]);
    app.stop().await;
}
