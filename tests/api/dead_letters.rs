//! Dead letters as an operator tool: retention by count and age, the listing route (paging,
//! filters, auth, bad parameters) and re-drives (applied once, in order, at the original
//! time, across repeated re-drives and SIGKILLed workers).

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use redis::aio::MultiplexedConnection;
use serde_json::{Value, json};
use stats_tracker::core::config::{Secret, Settings};
use stats_tracker::core::event::{REDRIVE_LETTER_FIELD, REDRIVE_OF_FIELD};
use stats_tracker::core::store::Store;
use stats_tracker::dead_letters::{self, EventStreamSink};
use stats_tracker::leaderboards::windows::Window;

use crate::crash::CHAOS_GAMES;
use crate::faults::lease_holder;
use crate::helpers::{
    STREAM, TestApp, TestRedis, WorkerProcess, dead_letters as letters_in_store, event,
    push_events, push_events_at, send, settings, wait_until_drained,
};
use crate::traffic::{Event, Model, Rng, mixed_run};

const ADMIN: &str = "admin-token-0123456789";
const INGEST: &str = "ingest-token-0123456789";
const LETTERS: &str = "st_test:{~dead_letters}:stream";

/// A games file under which exrps is not configured and so refused: its events are
/// dead-lettered with `product `exrps` is not configured…`. The other products of
/// `mixed_run` are listed with the built-in defaults.
const EXRPS_REFUSED: &str = r#"
unknown_products = "reject"
[products."arena:2v2 {beta}"]
boards = [{ name = "wins", kind = "wins" }]
[[products."arena:2v2 {beta}".stats]]
rule = "match_results"
[products."чемпионат"]
boards = [{ name = "wins", kind = "wins" }]
[[products."чемпионат".stats]]
rule = "match_results"
"#;

fn teleport(product: &str) -> Event {
    event(&[("product_id", product), ("type", "teleport")])
}

fn unfinished(product: &str) -> Event {
    event(&[
        ("product_id", product),
        ("type", "game_over"),
        ("winner_id", "A"),
    ])
}

async fn list(app: &TestApp, query: &str) -> (u16, Value) {
    send(
        app,
        reqwest::Method::GET,
        &format!("/v1/admin/dead-letters?{query}"),
        Some(ADMIN),
        None,
    )
    .await
}

async fn redrive(app: &TestApp, body: Value) -> Value {
    let (status, answer) = send(
        app,
        reqwest::Method::POST,
        "/v1/admin/dead-letters/redrive",
        Some(ADMIN),
        Some(body),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    answer
}

/// Every page of the listing with `query`, `limit` letters at a time: the letters' ids.
async fn all_pages(app: &TestApp, query: &str, limit: usize) -> Vec<String> {
    let mut ids = Vec::new();
    let mut after: Option<String> = None;
    for _ in 0..10_000 {
        let cursor = after.map(|a| format!("&after={a}")).unwrap_or_default();
        let (status, page) = list(app, &format!("limit={limit}{query}{cursor}")).await;
        assert_eq!(status, 200, "{page}");
        let letters = page["letters"].as_array().expect("letters");
        assert!(letters.len() <= limit);
        ids.extend(
            letters
                .iter()
                .map(|l| l["id"].as_str().expect("id").to_owned()),
        );
        match page["next"].as_str() {
            Some(next) => after = Some(next.to_owned()),
            None => return ids,
        }
    }
    panic!("the pages never ended");
}

async fn letter_ids(store: &mut MultiplexedConnection) -> Vec<String> {
    let entries: Vec<(String, Vec<Vec<u8>>)> = redis::cmd("XRANGE")
        .arg(LETTERS)
        .arg("-")
        .arg("+")
        .query_async(store)
        .await
        .expect("XRANGE");
    entries.into_iter().map(|(id, _)| id).collect()
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as u64
}

/// Redis trims streams by whole nodes with `~`; one entry per node makes it exact, so the
/// tests can check the bounds the worker asked for.
async fn exact_trimming_redis() -> TestRedis {
    TestRedis::start_with(&["--stream-node-max-entries", "1"]).await
}

#[tokio::test]
async fn dead_letters_are_trimmed_to_the_newest_max_entries() {
    let redis = exact_trimming_redis().await;
    let mut settings = settings(&redis);
    settings.worker.dead_letter_max_entries = 20;
    settings.stream.batch_size = 7;
    let app = TestApp::spawn(&settings, true).await;
    let mut stream = redis.connection(1).await;
    let ids = push_events(&mut stream, &vec![teleport("exrps"); 60]).await;
    wait_until_drained(&mut stream, Duration::from_secs(20)).await;
    let mut store = redis.connection(0).await;
    let letters = letters_in_store(&mut store, "st_test").await;
    let kept: Vec<&str> = letters.iter().map(|(id, _, _)| id.as_str()).collect();
    let newest: Vec<&str> = ids[40..].iter().map(String::as_str).collect();
    assert_eq!(kept, newest, "the newest 20 letters stay, in order");
    // Trimming never makes a letter be written twice: a full replay writes none.
    let _: () = redis::cmd("XGROUP")
        .arg("SETID")
        .arg(STREAM)
        .arg("stats-tracker")
        .arg("0")
        .query_async(&mut stream)
        .await
        .expect("XGROUP SETID");
    wait_until_drained(&mut stream, Duration::from_secs(20)).await;
    let again = letters_in_store(&mut store, "st_test").await;
    assert_eq!(again, letters);
    app.stop().await;
}

#[tokio::test]
async fn dead_letters_older_than_max_age_are_trimmed_when_letters_are_written() {
    let redis = exact_trimming_redis().await;
    let mut settings = settings(&redis);
    settings.worker.dead_letter_max_age_days = 30;
    let mut store = redis.connection(0).await;
    // Letters written 40 days and 1 day ago.
    let day = 24 * 60 * 60 * 1000;
    let mut old = Vec::new();
    for (i, at) in [now_ms() - 40 * day; 30]
        .into_iter()
        .chain([now_ms() - day; 5])
        .enumerate()
    {
        let id: String = redis::cmd("XADD")
            .arg(LETTERS)
            .arg(format!("{}-{i}", at))
            .arg("source_id")
            .arg("1-0")
            .arg("reason")
            .arg("old")
            .arg("board")
            .arg("")
            .query_async(&mut store)
            .await
            .expect("XADD");
        old.push(id);
    }
    let app = TestApp::spawn(&settings, true).await;
    let mut stream = redis.connection(1).await;
    let ids = push_events(&mut stream, &[teleport("exrps"), unfinished("exrps")]).await;
    wait_until_drained(&mut stream, Duration::from_secs(20)).await;
    let kept = letter_ids(&mut store).await;
    let letters = letters_in_store(&mut store, "st_test").await;
    assert_eq!(kept.len(), 5 + 2, "{kept:?}");
    assert_eq!(kept[..5], old[30..], "the day-old letters stay");
    let sources: Vec<&str> = letters[5..].iter().map(|(id, _, _)| id.as_str()).collect();
    assert_eq!(sources, [ids[0].as_str(), ids[1].as_str()]);
    app.stop().await;
}

#[tokio::test]
async fn the_listing_pages_every_letter_once_filters_and_refuses_bad_requests() {
    let redis = TestRedis::start().await;
    let mut settings = settings(&redis);
    // Auth first, on an app without an admin token: disabled.
    let disabled = TestApp::spawn(&settings, false).await;
    let (status, body) = list(&disabled, "").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (403, Some("disabled"))
    );
    disabled.stop().await;

    settings.server.admin_token = Some(Secret::new(ADMIN));
    settings.server.ingest_token = Some(Secret::new(INGEST));
    let app = TestApp::spawn(&settings, true).await;
    for token in [None, Some(INGEST), Some("wrong-token-0123456789")] {
        let (status, body) = send(
            &app,
            reqwest::Method::GET,
            "/v1/admin/dead-letters",
            token,
            None,
        )
        .await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (401, Some("unauthorized"))
        );
    }

    let mut stream = redis.connection(1).await;
    let mut events = Vec::new();
    for i in 0..45 {
        events.push(match i % 3 {
            0 => teleport("a"),
            1 => unfinished("b"),
            _ => teleport("b"),
        });
    }
    let ids = push_events(&mut stream, &events).await;
    // Not UTF-8: shown with U+FFFD, flagged.
    let raw: String = redis::cmd("XADD")
        .arg(STREAM)
        .arg("*")
        .arg("product_id")
        .arg("b")
        .arg("type")
        .arg(&b"\xff"[..])
        .query_async(&mut stream)
        .await
        .expect("XADD");
    wait_until_drained(&mut stream, Duration::from_secs(20)).await;
    let mut store = redis.connection(0).await;
    let everything = letter_ids(&mut store).await;
    assert_eq!(everything.len(), 46);

    // Every letter exactly once over the pages, oldest first, at any page size.
    for limit in [1, 7, 46, 1000] {
        assert_eq!(
            all_pages(&app, "", limit).await,
            everything,
            "limit {limit}"
        );
    }
    let (_, first) = list(&app, "limit=2").await;
    assert_eq!(first["total"], 46);
    let letter = &first["letters"][0];
    assert_eq!(letter["source_id"], ids[0].as_str());
    assert_eq!(letter["reason"], "unknown event type `teleport`");
    assert_eq!(letter["board"], Value::Null);
    assert_eq!(letter["product_id"], "a");
    assert_eq!(
        letter["fields"],
        json!([["product_id", "a"], ["type", "teleport"]])
    );
    assert_eq!(letter["lossy"], false);
    let (_, last) = list(&app, &format!("after={}", everything[44])).await;
    assert_eq!(last["letters"][0]["source_id"], raw.as_str());
    assert_eq!(last["letters"][0]["fields"][1], json!(["type", "\u{fffd}"]));
    assert_eq!(last["letters"][0]["lossy"], true);
    assert_eq!(last["next"], Value::Null);

    // Filters: a reason prefix, an exact product, both; paged like the rest.
    let of = |pick: &dyn Fn(usize) -> bool| -> Vec<String> {
        (0..45)
            .filter(|&i| pick(i))
            .map(|i| everything[i].clone())
            .collect()
    };
    let teleports = of(&|i| i % 3 != 1);
    assert_eq!(
        all_pages(&app, "&reason=unknown%20event", 4).await,
        teleports
    );
    let mut of_b = of(&|i| i % 3 != 0);
    of_b.push(everything[45].clone());
    assert_eq!(all_pages(&app, "&product=b", 5).await, of_b);
    assert_eq!(
        all_pages(&app, "&product=b&reason=missing", 3).await,
        of(&|i| i % 3 == 1)
    );
    assert_eq!(
        all_pages(&app, "&product=bb", 3).await,
        Vec::<String>::new()
    );

    // Bad parameters: 400 with a JSON error code.
    for (query, code) in [
        ("limit=0", "invalid_limit"),
        ("limit=1001", "invalid_limit"),
        ("limit=x", "invalid_limit"),
        ("after=bogus", "invalid_cursor"),
        ("after=1-", "invalid_cursor"),
        ("cursor=1-0", "invalid_query"),
        ("limit=1&limit=2", "invalid_query"),
    ] {
        let (status, body) = list(&app, query).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (400, Some(code)),
            "{query}: {body}"
        );
    }
    app.stop().await;
}

#[tokio::test]
async fn a_filtered_listing_scans_a_bounded_number_of_letters_and_says_where_to_go_on() {
    let redis = TestRedis::start().await;
    let mut settings = settings(&redis);
    settings.server.admin_token = Some(Secret::new(ADMIN));
    let app = TestApp::spawn(&settings, false).await;
    let mut store = redis.connection(0).await;
    // More letters than one request looks at, the only match last.
    let count = dead_letters::SCAN_BUDGET + 500;
    let mut pipe = redis::pipe();
    for i in 0..count {
        let product = if i + 1 == count { "needle" } else { "hay" };
        pipe.cmd("XADD")
            .arg(LETTERS)
            .arg("*")
            .arg("source_id")
            .arg(format!("{}-0", i + 1))
            .arg("reason")
            .arg("unknown event type `x`")
            .arg("board")
            .arg("")
            .arg("product_id")
            .arg(product)
            .ignore();
    }
    let _: () = pipe.query_async(&mut store).await.expect("XADD");
    let (status, first) = list(&app, "product=needle").await;
    assert_eq!(status, 200);
    assert_eq!(first["letters"], json!([]));
    assert_eq!(first["total"], count);
    let next = first["next"].as_str().expect("a cursor to go on from");
    let (_, second) = list(&app, &format!("product=needle&after={next}")).await;
    assert_eq!(second["letters"][0]["product_id"], "needle");
    assert_eq!(second["next"], Value::Null);
    app.stop().await;
}

#[tokio::test]
async fn ingest_refuses_the_redrive_fields_and_redrive_refuses_bad_bodies() {
    let redis = TestRedis::start().await;
    let mut settings = settings(&redis);
    settings.server.ingest_token = Some(Secret::new(INGEST));
    settings.server.admin_token = Some(Secret::new(ADMIN));
    let app = TestApp::spawn(&settings, false).await;
    for field in [REDRIVE_OF_FIELD, REDRIVE_LETTER_FIELD] {
        let mut event = json!({"product_id": "exrps", "type": "state_change"});
        event[field] = json!("1-0");
        let (status, body) = send(
            &app,
            reqwest::Method::POST,
            "/v1/events",
            Some(INGEST),
            Some(event),
        )
        .await;
        assert_eq!(status, 400, "{body}");
        assert_eq!(body["error"]["code"], "invalid_event");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap_or_default()
                .contains("reserved"),
            "{body}"
        );
    }
    for body in [
        json!({}),
        json!({"ids": []}),
        json!({"ids": ["nope"]}),
        json!({"ids": ["1-0"], "product": "exrps"}),
        json!({"product": "exrps", "limit": 0}),
        json!({"product": "exrps", "after": "x"}),
        json!({"reasons": "x"}),
        json!([1]),
    ] {
        let (status, answer) = send(
            &app,
            reqwest::Method::POST,
            "/v1/admin/dead-letters/redrive",
            Some(ADMIN),
            Some(body.clone()),
        )
        .await;
        assert_eq!(
            (status, answer["error"]["code"].as_str()),
            (400, Some("invalid_body")),
            "{body}"
        );
    }
    let (status, _) = send(
        &app,
        reqwest::Method::POST,
        "/v1/admin/dead-letters/redrive",
        Some(INGEST),
        Some(json!({"ids": ["1-0"]})),
    )
    .await;
    assert_eq!(status, 401);
    // Unknown ids are reported, not errors.
    let answer = redrive(&app, json!({"ids": ["1-0"]})).await;
    assert_eq!(answer["redriven"], json!([]));
    assert_eq!(answer["skipped"][0]["id"], "1-0");
    app.stop().await;
}

/// The tracker's settings for `games` (a games file written beside `redis`).
fn with_games(redis: &TestRedis, base: &Settings, name: &str, games: &str) -> Settings {
    let file = redis.socket_dir().join(name);
    std::fs::write(&file, games).expect("games file");
    let mut settings = base.clone();
    settings.games.file = Some(file);
    settings
}

/// A store handle and the event stream sink, as the server's re-drive route uses them.
fn tools(settings: &Settings) -> (Store, EventStreamSink) {
    let timeout = Duration::from_secs(10);
    let store = Store::connect_lazy(
        &settings.store_redis(),
        settings.key_space().expect("prefix"),
        timeout,
    )
    .expect("store");
    let sink = EventStreamSink {
        conn: stats_tracker::core::store::lazy_connection(&settings.stream_redis(), timeout)
            .expect("stream"),
        name: settings.stream.name.clone(),
        partitions: settings.stream.partitions,
        timeout,
    };
    (store, sink)
}

/// Re-drives every exrps letter through the route, `limit` at a time; the letters re-driven.
async fn redrive_exrps(app: &TestApp, limit: usize) -> Vec<String> {
    let mut redriven = Vec::new();
    let mut after = Value::Null;
    loop {
        let mut body = json!({"product": "exrps", "limit": limit});
        if let Value::String(cursor) = &after {
            body["after"] = json!(cursor);
        }
        let answer = redrive(app, body).await;
        let ids = answer["redriven"].as_array().expect("redriven").clone();
        assert_eq!(
            answer["appended"].as_array().map(Vec::len),
            Some(ids.len()),
            "{answer}"
        );
        redriven.extend(ids.iter().map(|id| id.as_str().expect("id").to_owned()));
        after = answer["next"].clone();
        if after.is_null() {
            return redriven;
        }
    }
}

/// The traffic of the re-drive tests: a mixed run without bad events, and one bad exrps
/// event in it (dead-lettered before and after the fix). Returns (events, index of the bad).
fn redrive_traffic(seed: u64) -> (Vec<Event>, usize) {
    let (mut events, bad) = mixed_run(seed, 120, 30, 0);
    assert!(bad.is_empty());
    let at = events.len() / 2;
    events.insert(at, unfinished("exrps"));
    (events, at)
}

/// After the fix and the re-drives: the store equals the reference model applied to every
/// event once, in order (Elo bit for bit, so in order), and the one bad event has exactly
/// one letter, naming its original id.
async fn assert_redriven_like_valid(
    redis: &TestRedis,
    events: &[Event],
    ids: &[String],
    bad: usize,
) {
    let mut store = redis.connection(0).await;
    let mut model = Model::with_exrps_elo(20.0, 1200.0);
    for event in events {
        model.apply(event);
    }
    model.assert_matches_store(&mut store, "st_test").await;
    let letters = letters_in_store(&mut store, "st_test").await;
    assert_eq!(letters.len(), 1, "one letter left: {letters:?}");
    let (_, reason, fields) = &letters[0];
    assert_eq!(reason, "missing field `loser_id`");
    let of = fields
        .chunks(2)
        .find(|pair| pair[0] == REDRIVE_OF_FIELD.as_bytes())
        .map(|pair| String::from_utf8_lossy(&pair[1]).into_owned());
    assert_eq!(of.as_deref(), Some(ids[bad].as_str()));
    let listed: BTreeSet<String> = redis::cmd("SMEMBERS")
        .arg("st_test:products")
        .query_async(&mut store)
        .await
        .expect("SMEMBERS");
    assert!(listed.contains("exrps"), "{listed:?}");
}

#[tokio::test]
async fn redriven_letters_apply_once_in_order_even_when_the_redrive_is_repeated() {
    let redis = TestRedis::start().await;
    let mut base = settings(&redis);
    base.server.admin_token = Some(Secret::new(ADMIN));
    base.stream.batch_size = 50;
    let broken = with_games(&redis, &base, "broken.toml", EXRPS_REFUSED);
    let fixed = with_games(&redis, &base, "fixed.toml", CHAOS_GAMES);
    let (events, bad) = redrive_traffic(3);
    let mut stream = redis.connection(1).await;

    let app = TestApp::spawn(&broken, true).await;
    let ids = push_events(&mut stream, &events).await;
    wait_until_drained(&mut stream, Duration::from_secs(30)).await;
    let mut store = redis.connection(0).await;
    let refused = letter_ids(&mut store).await;
    let exrps = events
        .iter()
        .filter(|e| e.iter().any(|(k, v)| k == "product_id" && v == "exrps"))
        .count();
    assert_eq!(refused.len(), exrps, "every exrps event dead-lettered");
    // Re-driven while still refused, three times over (as if the first two crashed between
    // appending and deleting): dead-lettered again exactly once.
    let (store_tools, sink) = tools(&broken);
    let first = refused[..3].to_vec();
    let letters: Vec<_> = dead_letters::letters_by_id(&store_tools, &first)
        .await
        .expect("letters")
        .into_iter()
        .map(|letter| letter.expect("there"))
        .collect();
    for _ in 0..2 {
        dead_letters::append_redrives(&sink, &letters)
            .await
            .expect("append");
    }
    let answer = redrive(&app, json!({"ids": first})).await;
    assert_eq!(answer["redriven"], json!(first));
    wait_until_drained(&mut stream, Duration::from_secs(30)).await;
    let now = letter_ids(&mut store).await;
    assert_eq!(
        now.len(),
        refused.len(),
        "three letters out, three in: {now:?}"
    );
    assert!(!now.contains(&refused[0]));
    app.stop().await;

    // The games file fixed: every exrps letter re-driven, some twice.
    let app = TestApp::spawn(&fixed, true).await;
    let all: Vec<_> = letter_ids(&mut store).await;
    let some: Vec<_> = dead_letters::letters_by_id(&store_tools, &all[..40])
        .await
        .expect("letters")
        .into_iter()
        .flatten()
        .collect();
    dead_letters::append_redrives(&sink, &some)
        .await
        .expect("append");
    let duplicates = "stats_tracker_worker_events_total{product=\"exrps\",type=\"game_over\",outcome=\"redrive_duplicate\"}";
    let before = crate::helpers::metric(&app, "stats_tracker_dead_letters_redriven_total").await;
    // The worker runs meanwhile: a letter it writes again may be re-driven again by a later
    // page of the same loop, so more may be re-driven than there were.
    let redriven: BTreeSet<String> = redrive_exrps(&app, 300).await.into_iter().collect();
    assert!(all.iter().all(|id| redriven.contains(id)));
    wait_until_drained(&mut stream, Duration::from_secs(60)).await;
    assert_redriven_like_valid(&redis, &events, &ids, bad).await;
    let after = crate::helpers::metric(&app, "stats_tracker_dead_letters_redriven_total").await;
    assert!(after - before >= all.len() as f64, "{before} -> {after}");
    assert!(crate::helpers::metric(&app, duplicates).await >= 1.0);
    app.stop().await;
}

#[tokio::test]
async fn redriven_letters_survive_sigkilled_workers_with_nothing_lost_or_doubled() {
    let redis = TestRedis::start().await;
    let mut base = settings(&redis);
    base.server.admin_token = Some(Secret::new(ADMIN));
    // Small batches and calls: many windows between commit and acknowledgement to die in.
    base.stream.batch_size = 20;
    base.worker.entries_per_script_call = 7;
    let broken = with_games(&redis, &base, "broken.toml", EXRPS_REFUSED);
    let fixed = with_games(&redis, &base, "fixed.toml", CHAOS_GAMES);
    let (events, bad) = redrive_traffic(9);
    let mut stream = redis.connection(1).await;
    let app = TestApp::spawn(&broken, true).await;
    let ids = push_events(&mut stream, &events).await;
    wait_until_drained(&mut stream, Duration::from_secs(30)).await;
    app.stop().await;

    // The server alone; workers as child processes, killed while they apply the re-drive.
    let app = TestApp::spawn(&fixed, false).await;
    let mut store = redis.connection(0).await;
    let all = letter_ids(&mut store).await;
    let (store_tools, sink) = tools(&fixed);
    let some: Vec<_> = dead_letters::letters_by_id(&store_tools, &all[..100])
        .await
        .expect("letters")
        .into_iter()
        .flatten()
        .collect();
    dead_letters::append_redrives(&sink, &some)
        .await
        .expect("append");
    let redriven = redrive_exrps(&app, 1000).await;
    assert_eq!(redriven.len(), all.len());
    let mut rng = Rng::new(77);
    for round in 0..5 {
        let name = format!("redrive-{round}");
        let mut worker = WorkerProcess::spawn(&fixed, &name);
        let deadline = Instant::now() + Duration::from_secs(10);
        while lease_holder(&mut stream).await.as_deref() != Some(name.as_str()) {
            assert!(Instant::now() < deadline, "{name} never took the lease");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        tokio::time::sleep(Duration::from_millis(20 + rng.below(120))).await;
        worker.kill();
    }
    let _survivor = WorkerProcess::spawn(&fixed, "survivor");
    wait_until_drained(&mut stream, Duration::from_secs(120)).await;
    assert_redriven_like_valid(&redis, &events, &ids, bad).await;
    app.stop().await;
}

#[tokio::test]
async fn a_redriven_event_counts_in_the_period_it_happened() {
    let redis = TestRedis::start().await;
    let mut base = settings(&redis);
    base.server.admin_token = Some(Secret::new(ADMIN));
    let broken = with_games(
        &redis,
        &base,
        "broken.toml",
        "unknown_products = \"reject\"\n",
    );
    let mut stream = redis.connection(1).await;
    let app = TestApp::spawn(&broken, true).await;
    let three_days_ago = now_ms() - 3 * 24 * 60 * 60 * 1000;
    let game = event(&[
        ("product_id", "league"),
        ("type", "game_over"),
        ("winner_id", "A"),
        ("loser_id", "B"),
    ]);
    push_events_at(&mut stream, &[game], Some(three_days_ago)).await;
    wait_until_drained(&mut stream, Duration::from_secs(20)).await;
    app.stop().await;

    // The built-in games: league gets the wins board, kept daily, weekly and monthly.
    let app = TestApp::spawn(&base, true).await;
    let answer = redrive(&app, json!({"product": "league"})).await;
    assert_eq!(answer["redriven"].as_array().map(Vec::len), Some(1));
    wait_until_drained(&mut stream, Duration::from_secs(20)).await;
    let then = Window::calendar("daily")
        .and_then(|daily| daily.period_at(three_days_ago))
        .expect("a day")
        .label()
        .to_owned();
    let (status, page) = app
        .get_json(&format!(
            "/v1/products/league/boards/wins/entries?window=daily&period={then}"
        ))
        .await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(
        page["entries"][0],
        json!({"rank": 1, "user_id": "A", "score": 1})
    );
    let (_, today) = app
        .get_json("/v1/products/league/boards/wins/entries?window=daily")
        .await;
    assert_eq!(today["total"], 0, "{today}");
    let (_, all_time) = app.get_json("/leaderboards/top_ten/league").await;
    assert_eq!(all_time[0], json!({"user_id": "A", "score": 1}));
    app.stop().await;
}
