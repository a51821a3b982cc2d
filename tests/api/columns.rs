//! Boards with several score columns against a reference model: mixed directions, ties on
//! every column, pages by offset and by cursor forwards and backwards while players keep
//! playing, standings, ranks, dense ranks, hiding and erasing.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::{
    TestApp, TestRedis, event, game_over, push_events, rebuild_product, send, settings_with_games,
    wait_until_drained,
};
use crate::traffic::{Event, Rng};

const ADMIN: &str = "columns-admin-token";

const GAMES: &str = r#"
[products.ladder]
boards = [
  { name = "ladder", kind = "columns", windows = ["daily"], columns = [{ name = "wins", kind = "wins" }, { name = "kills", kind = "sum", when = { type = "gameplay", event_name = "kills" }, player = "user_id", field = "event_data" }, { name = "lap", kind = "min", order = "asc", when = { type = "gameplay", event_name = "lap" }, player = "user_id", field = "event_data" }] },
]
"#;

/// One player's row in the model: the three columns and the stamp of their last change.
#[derive(Debug, Clone, PartialEq)]
struct ModelRow {
    wins: f64,
    kills: f64,
    lap: Option<f64>,
    stamp: u64,
}

impl ModelRow {
    /// Rank order: more wins, then more kills, then a lower lap (none is last).
    fn key(&self) -> (i64, i64, i64) {
        (
            -(self.wins as i64),
            -(self.kills as i64),
            self.lap.map_or(i64::MAX, |lap| lap as i64),
        )
    }
}

/// The board as the reference model sees it: entries change rows; an entry that changes a
/// row gives it the next stamp.
#[derive(Default)]
struct Model {
    rows: BTreeMap<String, ModelRow>,
    stamps: u64,
}

impl Model {
    fn apply(&mut self, event: &Event) {
        let get = |name: &str| {
            event
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        };
        let mut changed: Vec<(String, ModelRow)> = Vec::new();
        let current = |rows: &BTreeMap<String, ModelRow>, player: &str| {
            rows.get(player).cloned().unwrap_or(ModelRow {
                wins: 0.0,
                kills: 0.0,
                lap: None,
                stamp: 0,
            })
        };
        match get("type").as_deref() {
            Some("game_over") => {
                let (winner, loser) = (get("winner_id").unwrap(), get("loser_id").unwrap());
                let mut row = current(&self.rows, &winner);
                row.wins += 1.0;
                changed.push((winner, row));
                if !self.rows.contains_key(&loser) {
                    changed.push((loser.clone(), current(&self.rows, &loser)));
                }
            }
            Some("gameplay") => {
                let player = get("user_id").unwrap();
                let value: f64 = get("event_data").unwrap().parse().unwrap();
                let before = self.rows.get(&player).cloned();
                let mut row = current(&self.rows, &player);
                if get("event_name").as_deref() == Some("kills") {
                    row.kills += value;
                } else if row.lap.is_none_or(|lap| value < lap) {
                    row.lap = Some(value);
                }
                let moved = before
                    .as_ref()
                    .is_none_or(|before| before.key() != row.key());
                if moved {
                    changed.push((player, row));
                }
            }
            _ => {}
        }
        if changed.is_empty() {
            return;
        }
        self.stamps += 1;
        for (player, mut row) in changed {
            row.stamp = self.stamps;
            self.rows.insert(player, row);
        }
    }

    /// Rows in rank order, each with its standard, dense and ordinal rank.
    fn ranked(&self) -> Vec<(String, ModelRow, u64, u64, u64)> {
        let mut rows: Vec<(&String, &ModelRow)> = self.rows.iter().collect();
        rows.sort_by_key(|(_, row)| (row.key(), row.stamp));
        let mut ranked = Vec::new();
        let (mut standard, mut dense) = (0, 0);
        for (index, (player, row)) in rows.iter().enumerate() {
            if index == 0 || rows[index - 1].1.key() != row.key() {
                standard = index as u64 + 1;
                dense += 1;
            }
            ranked.push((
                (*player).clone(),
                (*row).clone(),
                standard,
                dense,
                index as u64 + 1,
            ));
        }
        ranked
    }

    /// The entries a page of ranking `ties` shows, as JSON.
    fn entries(&self, ties: &str) -> Vec<Value> {
        self.ranked()
            .into_iter()
            .map(|(player, row, standard, dense, ordinal)| {
                let rank = match ties {
                    "dense" => dense,
                    "ordinal" => ordinal,
                    _ => standard,
                };
                json!({
                    "rank": rank,
                    "user_id": player,
                    "score": row.wins as i64,
                    "columns": {
                        "wins": row.wins as i64,
                        "kills": row.kills as i64,
                        "lap": row.lap.map(|lap| lap as i64),
                    },
                })
            })
            .collect()
    }
}

/// `count` random events among `players`: games, kills (0-2, many ties) and laps (20-23).
fn random_events(players: &[String], count: usize, rng: &mut Rng) -> Vec<Event> {
    let pick = |rng: &mut Rng| players[rng.below(players.len() as u64) as usize].clone();
    (0..count)
        .map(|_| match rng.below(3) {
            0 => {
                let winner = pick(rng);
                let mut loser = pick(rng);
                while loser == winner {
                    loser = pick(rng);
                }
                game_over("ladder", &winner, &loser)
            }
            1 => {
                let kills = rng.below(3).to_string();
                event(&[
                    ("product_id", "ladder"),
                    ("type", "gameplay"),
                    ("event_name", "kills"),
                    ("user_id", &pick(rng)),
                    ("event_data", &kills),
                ])
            }
            _ => {
                let lap = (20 + rng.below(4)).to_string();
                event(&[
                    ("product_id", "ladder"),
                    ("type", "gameplay"),
                    ("event_name", "lap"),
                    ("user_id", &pick(rng)),
                    ("event_data", &lap),
                ])
            }
        })
        .collect()
}

async fn get_ok(app: &TestApp, path: &str) -> Value {
    let (status, body) = app.get_json(path).await;
    assert_eq!(status, 200, "{path}: {body}");
    body
}

/// Every page of the board from the start, following `next` cursors.
async fn read_forwards(app: &TestApp, query: &str, limit: u64) -> Vec<Value> {
    let base = format!("/v1/products/ladder/boards/ladder/entries?limit={limit}&{query}");
    let mut page = get_ok(app, &base).await;
    let mut entries: Vec<Value> = page["entries"].as_array().expect("entries").clone();
    while let Some(next) = page["next"].as_str() {
        page = get_ok(app, &format!("{base}&after={next}")).await;
        entries.extend(page["entries"].as_array().expect("entries").iter().cloned());
    }
    entries
}

/// Every page of the board from the end, following `prev` cursors.
async fn read_backwards(app: &TestApp, query: &str, limit: u64, total: u64) -> Vec<Value> {
    let base = format!("/v1/products/ladder/boards/ladder/entries?limit={limit}&{query}");
    let last = total.saturating_sub(limit);
    let mut page = get_ok(app, &format!("{base}&offset={last}")).await;
    let mut pages = vec![page["entries"].as_array().expect("entries").clone()];
    while let Some(prev) = page["prev"].as_str() {
        page = get_ok(app, &format!("{base}&before={prev}")).await;
        pages.push(page["entries"].as_array().expect("entries").clone());
    }
    pages.into_iter().rev().flatten().collect()
}

#[tokio::test]
async fn boards_with_three_columns_rank_like_the_reference_model_in_every_reading() {
    let redis = TestRedis::start().await;
    let mut settings = settings_with_games(&redis, GAMES);
    settings.server.admin_token = Some(stats_tracker::core::config::Secret::new(ADMIN));
    let app = TestApp::spawn(&settings, true).await;
    let mut stream = redis.connection(1).await;
    let players: Vec<String> = (0..24).map(|i| format!("p{i:02}")).collect();
    let mut rng = Rng::new(19);
    let mut model = Model::default();
    let events = random_events(&players, 300, &mut rng);
    for event in &events {
        model.apply(event);
    }
    push_events(&mut stream, &events).await;
    wait_until_drained(&mut stream, Duration::from_secs(20)).await;

    // Pages by offset, cursors forwards and backwards, in each ranking, equal the model.
    for ties in ["standard", "dense", "ordinal"] {
        let want = model.entries(ties);
        let query = format!("ranking={ties}");
        assert_eq!(
            read_forwards(&app, &query, 5).await,
            want,
            "{ties} forwards"
        );
        let total = want.len() as u64;
        assert_eq!(
            read_backwards(&app, &query, 5, total).await,
            want,
            "{ties} backwards"
        );
        let offset = get_ok(
            &app,
            &format!("/v1/products/ladder/boards/ladder/entries?limit=1000&{query}"),
        )
        .await;
        assert_eq!(offset["entries"].as_array().expect("entries"), &want);
    }
    // The daily board got the same events: the same rows.
    assert_eq!(
        read_forwards(&app, "window=daily", 7).await,
        model.entries("standard")
    );
    // Standings and ranks: rank, columns and percentile (players strictly behind).
    let ranked = model.ranked();
    let total = ranked.len() as f64;
    for (player, row, standard, _, _) in ranked.iter().step_by(5) {
        let behind = ranked
            .iter()
            .filter(|other| other.1.key() > row.key())
            .count() as f64;
        let percentile = (behind * 10_000.0 / total).round() / 100.0;
        let standing = get_ok(
            &app,
            &format!("/v1/products/ladder/boards/ladder/players/{player}?around=1"),
        )
        .await;
        assert_eq!(standing["rank"], *standard, "{player}");
        assert_eq!(standing["columns"]["kills"], row.kills as i64, "{player}");
        assert_eq!(standing["percentile"], percentile, "{player}");
        let ranks = get_ok(
            &app,
            &format!("/v1/products/ladder/boards/ladder/ranks?user_id={player}"),
        )
        .await;
        assert_eq!(ranks["entries"][0]["rank"], *standard, "{player}");
        assert_eq!(ranks["entries"][0]["percentile"], percentile, "{player}");
        assert_eq!(
            ranks["entries"][0]["columns"]["lap"],
            json!(row.lap.map(|lap| lap as i64))
        );
    }

    // Paging by cursor while players keep playing: every player who did not move meanwhile
    // is seen exactly once, in model order.
    let base = "/v1/products/ladder/boards/ladder/entries?limit=4";
    let mut page = get_ok(&app, base).await;
    let mut seen: Vec<String> = Vec::new();
    let mut untouched: HashSet<String> = players.iter().cloned().collect();
    loop {
        seen.extend(
            page["entries"]
                .as_array()
                .expect("entries")
                .iter()
                .map(|entry| entry["user_id"].as_str().expect("id").to_owned()),
        );
        let Some(next) = page["next"].as_str().map(str::to_owned) else {
            break;
        };
        let more = random_events(&players, 3, &mut rng);
        for event in &more {
            model.apply(event);
            for (field, value) in event {
                if field == "user_id" || field == "winner_id" || field == "loser_id" {
                    untouched.remove(value);
                }
            }
        }
        push_events(&mut stream, &more).await;
        wait_until_drained(&mut stream, Duration::from_secs(20)).await;
        page = get_ok(&app, &format!("{base}&after={next}")).await;
    }
    for player in &untouched {
        assert_eq!(
            seen.iter().filter(|p| *p == player).count(),
            1,
            "{player} did not move and is seen once"
        );
    }
    assert!(!untouched.is_empty() || players.len() < 4);
    assert_eq!(
        read_forwards(&app, "", 6).await,
        model.entries("standard"),
        "after the extra traffic"
    );

    // Hiding a player takes them off (everyone behind moves up); un-hiding restores them at
    // their place, ties and all; erasing removes them for good.
    let (hidden, _, _, _, _) = ranked[3].clone();
    let token = ADMIN;
    let (status, body) = send(
        &app,
        reqwest::Method::POST,
        "/v1/admin/products/ladder/hidden",
        Some(token),
        Some(json!({"user_id": hidden, "reason": "review"})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let mut without = model.rows.clone();
    without.remove(&hidden);
    let shown = Model {
        rows: without,
        stamps: 0,
    };
    assert_eq!(
        read_forwards(&app, "ranking=dense", 9).await,
        shown.entries("dense")
    );
    let (status, body) = send(
        &app,
        reqwest::Method::DELETE,
        &format!("/v1/admin/products/ladder/hidden/{hidden}?reason=cleared"),
        Some(token),
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        read_forwards(&app, "ranking=dense", 9).await,
        model.entries("dense")
    );
    // A rebuild from history makes the same board.
    rebuild_product(&settings, "ladder");
    for ties in ["standard", "dense"] {
        assert_eq!(
            read_forwards(&app, &format!("ranking={ties}"), 9).await,
            model.entries(ties),
            "{ties} after the rebuild"
        );
    }
    let (status, body) = send(
        &app,
        reqwest::Method::DELETE,
        &format!("/v1/admin/players/{hidden}"),
        Some(token),
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    model.rows.remove(&hidden);
    for ties in ["standard", "dense"] {
        assert_eq!(
            read_forwards(&app, &format!("ranking={ties}"), 9).await,
            model.entries(ties),
            "{ties} after erasure"
        );
    }
    // The distinct rows left are exactly the model's distinct keys.
    let mut store = redis.connection(0).await;
    let distinct: u64 = redis::cmd("ZCARD")
        .arg("st_test:{ladder}:board:ladder:distinct")
        .query_async(&mut store)
        .await
        .expect("ZCARD");
    let keys: HashSet<(i64, i64, i64)> = model.rows.values().map(ModelRow::key).collect();
    assert_eq!(distinct, keys.len() as u64);
    // The description lists the columns.
    let boards = get_ok(&app, "/v1/products/ladder/boards").await;
    assert_eq!(boards["boards"][0]["kind"], "columns");
    assert_eq!(boards["boards"][0]["columns"][2]["order"], "asc");
    app.stop().await;
}

#[tokio::test]
async fn stat_columns_show_stats_as_each_event_leaves_them() {
    let redis = TestRedis::start().await;
    let games = r#"
[products.ladder]
boards = [
  { name = "wins", kind = "columns", windows = [], columns = [{ name = "wins", kind = "wins" }, { name = "streak", kind = "stat", stat = "best_win_streak" }, { name = "kill_events", kind = "stat", stat = "kill_events", order = "asc" }] },
]

[[products.ladder.stats]]
rule = "win_streak"
current = "current_win_streak"
best = "best_win_streak"

[[products.ladder.stats]]
rule = "count"
when = { type = "gameplay", event_name = "kills" }
player = "user_id"
stat = "kill_events"
"#;
    let app = TestApp::spawn(&settings_with_games(&redis, games), true).await;
    let mut stream = redis.connection(1).await;
    let kills = |player: &str| {
        event(&[
            ("product_id", "ladder"),
            ("type", "gameplay"),
            ("event_name", "kills"),
            ("user_id", player),
            ("event_data", "1"),
        ])
    };
    // A wins three in a row, then loses; B wins twice in a row; D only reports kills.
    let events = vec![
        game_over("ladder", "A", "B"),
        game_over("ladder", "A", "C"),
        game_over("ladder", "A", "B"),
        game_over("ladder", "B", "A"),
        game_over("ladder", "B", "C"),
        kills("D"),
        kills("D"),
        kills("C"),
    ];
    push_events(&mut stream, &events).await;
    wait_until_drained(&mut stream, Duration::from_secs(10)).await;
    let page = get_ok(&app, "/v1/products/ladder/boards/wins/entries").await;
    let rows: Vec<(String, Value)> = page["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .map(|entry| {
            (
                entry["user_id"].as_str().expect("id").to_owned(),
                entry["columns"].clone(),
            )
        })
        .collect();
    assert_eq!(
        rows,
        vec![
            (
                "A".into(),
                json!({"wins": 3, "streak": 3, "kill_events": null})
            ),
            (
                "B".into(),
                json!({"wins": 2, "streak": 2, "kill_events": null})
            ),
            // C and D tie on wins and streak (none); fewer kill events rank first (asc).
            (
                "C".into(),
                json!({"wins": 0, "streak": null, "kill_events": 1})
            ),
            (
                "D".into(),
                json!({"wins": 0, "streak": null, "kill_events": 2})
            ),
        ]
    );
    // The original top ten reads the `wins` board, here one with columns: its first column.
    let top = get_ok(&app, "/leaderboards/top_ten/ladder").await;
    assert_eq!(
        top,
        json!([
            {"user_id": "A", "score": 3},
            {"user_id": "B", "score": 2},
            {"user_id": "C", "score": 0},
            {"user_id": "D", "score": 0},
        ])
    );
    app.stop().await;
}
