//! `stats-tracker migrate` on a store written by the release before layout versions
//! (`tests/fixtures/layout-v1`, made by its `generate.py` with that release): the tracker
//! refuses the old store, the migration converts it (again after a crash, and when run twice),
//! and the API then answers what that release answered.

use std::collections::BTreeSet;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::helpers::{
    TestApp, TestRedis, example_games_file, push_events, settings, wait_until_drained,
};
use crate::traffic::{assert_board_is_consistent, board_scores};

const PREFIX: &str = "st_fixture";
const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/layout-v1");

/// Restores every key of the fixture store into db 0 (relative expiries, as dumped).
async fn load_fixture(redis: &TestRedis) {
    let mut store = redis.connection(0).await;
    let lines = std::fs::read_to_string(format!("{FIXTURE}/store.jsonl")).expect("fixture");
    for line in lines.lines() {
        let key: Value = serde_json::from_str(line).expect("a fixture line");
        let name = key["key"].as_str().expect("key");
        let ttl = key["pttl"].as_i64().expect("pttl").max(0);
        let dump = hex::decode(key["dump"].as_str().expect("dump")).expect("hex");
        redis::cmd("RESTORE")
            .arg(name)
            .arg(ttl)
            .arg(dump)
            .query_async::<()>(&mut store)
            .await
            .expect("RESTORE");
    }
}

fn tracker(redis: &TestRedis, subcommand: &str) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_stats-tracker"));
    command
        .args([subcommand, "-m", "development"])
        .env_remove("STATS_TRACKER_CONFIG")
        .env_remove("RUST_LOG")
        .env("STATS_TRACKER_REDIS_URL", redis.url(0))
        .env("GAME_EVENT_STREAM_REDIS_URL", redis.url(1))
        .env("STATS_TRACKER__STORE__KEY_PREFIX", PREFIX)
        .env("STATS_TRACKER__GAMES__FILE", example_games_file())
        .env("STATS_TRACKER__SERVER__BIND", "127.0.0.1:0")
        .env("STATS_TRACKER__WORKER__METRICS_BIND", "127.0.0.1:0");
    command
}

fn migrate(redis: &TestRedis) -> String {
    let output = tracker(redis, "migrate").output().expect("run migrate");
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(output.status.success(), "migrate failed:\n{stderr}");
    stderr
}

/// Drops the cursors (their encoding is the layout's) from an answer.
/// An answer without its cursors and without the fields added since the fixture was recorded
/// (`percentile` of standings and of `ranks` entries).
fn without_cursors_and_newer_fields(mut answer: Value) -> Value {
    if let Some(object) = answer.as_object_mut() {
        object.remove("next");
        object.remove("prev");
        object.remove("percentile");
        if let Some(Value::Array(entries)) = object.get_mut("entries") {
            for entry in entries.iter_mut().filter_map(Value::as_object_mut) {
                entry.remove("percentile");
            }
        }
    }
    answer
}

#[tokio::test]
async fn a_store_of_the_previous_layout_is_refused_then_migrated_and_reads_the_same() {
    let redis = TestRedis::start().await;
    load_fixture(&redis).await;

    // The tracker refuses it, naming what to run.
    let output = tracker(&redis, "serve").output().expect("run serve");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(5), "{stderr}");
    assert!(stderr.contains("stats-tracker migrate"), "{stderr}");

    // A run that crashed half-way through a board left its staged copy behind.
    let mut store = redis.connection(0).await;
    let some_board = format!("{PREFIX}:{{exrps}}:board:wins");
    redis::cmd("ZADD")
        .arg(format!("{some_board}:migrating"))
        .arg(1)
        .arg("junk")
        .query_async::<()>(&mut store)
        .await
        .expect("ZADD");
    let log = migrate(&redis);
    assert!(log.contains("store migrated"), "{log}");
    // Run again after the boards were switched but before the version was written, and once
    // more on a migrated store: both change nothing.
    redis::cmd("DEL")
        .arg(format!("{PREFIX}:layout"))
        .query_async::<()>(&mut store)
        .await
        .expect("DEL");
    migrate(&redis);
    let log = migrate(&redis);
    assert!(log.contains("already holds"), "{log}");

    let board_keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{PREFIX}:{{*}}:board:*"))
        .query_async(&mut store)
        .await
        .expect("KEYS");
    let old_keys: Vec<&String> = board_keys
        .iter()
        .filter(|key| key.ends_with(":order") || key.ends_with(":at") || key.contains(":migrating"))
        .collect();
    assert!(old_keys.is_empty(), "left over: {old_keys:?}");
    let boards: Vec<&String> = board_keys
        .iter()
        .filter(|key| !key.ends_with(":distinct"))
        .collect();
    assert!(boards.len() > 10, "{boards:?}");
    for board in &boards {
        assert_board_is_consistent(&mut store, board).await;
    }

    // The API answers what the previous release answered (cursors aside; top ten ties are
    // ordered like the ranked pages now, so only its scores are compared).
    let mut app_settings = settings(&redis);
    app_settings.store.key_prefix = PREFIX.to_owned();
    app_settings.games.file = Some(example_games_file());
    let app = TestApp::spawn(&app_settings, true).await;
    let expected: serde_json::Map<String, Value> = serde_json::from_str(
        &std::fs::read_to_string(format!("{FIXTURE}/expected.json")).expect("expected answers"),
    )
    .expect("JSON");
    assert!(expected.len() > 300);
    for (path, answer) in &expected {
        let (status, body) = app.get_json(path).await;
        assert_eq!(
            Some(u64::from(status)),
            answer[0].as_u64(),
            "{path}: {body}"
        );
        if path.starts_with("/leaderboards/top_ten/") {
            let scores = |rows: &Value| -> Vec<Value> {
                rows.as_array()
                    .map(|rows| rows.iter().map(|row| row["score"].clone()).collect())
                    .unwrap_or_default()
            };
            assert_eq!(scores(&body), scores(&answer[1]), "{path}");
            continue;
        }
        assert_eq!(
            without_cursors_and_newer_fields(body),
            without_cursors_and_newer_fields(answer[1].clone()),
            "{path}"
        );
    }

    // A player reaching a score others hold now ranks after them: the sequence went past the
    // stamps the migration gave out.
    let wins = board_scores(&mut store, &some_board).await;
    let top = wins.values().cloned().fold(f64::MIN, f64::max);
    let holders: BTreeSet<&String> = wins
        .iter()
        .filter(|(_, s)| **s == top)
        .map(|(p, _)| p)
        .collect();
    let climber = wins
        .iter()
        .find(|(_, s)| **s == top - 1.0)
        .map(|(p, _)| p.clone())
        .expect("a player one win behind the top");
    let loser = holders
        .iter()
        .next()
        .map(|p| (*p).clone())
        .expect("a top player");
    let mut stream = redis.connection(1).await;
    push_events(
        &mut stream,
        &[vec![
            ("product_id".into(), "exrps".into()),
            ("type".into(), "game_over".into()),
            ("winner_id".into(), climber.clone()),
            ("loser_id".into(), loser),
        ]],
    )
    .await;
    wait_until_drained(&mut stream, Duration::from_secs(10)).await;
    let (_, page) = app
        .get_json("/v1/products/exrps/boards/wins/entries?limit=100&ranking=ordinal")
        .await;
    let tied: Vec<&str> = page["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .filter(|row| row["score"].as_f64() == Some(top))
        .filter_map(|row| row["user_id"].as_str())
        .collect();
    assert_eq!(tied.last(), Some(&climber.as_str()), "{tied:?}");
    assert_eq!(tied.len(), holders.len() + 1, "{tied:?}");
    app.stop().await;
}
