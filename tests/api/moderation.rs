//! Moderation: hiding a player from a product's boards and un-hiding them, against a twin
//! product fed the same events and never moderated (the model: the same boards, with the
//! hidden player left out while hidden); the audit trail; erasure of a hidden player.

use std::time::Duration;

use serde_json::{Value, json};
use stats_tracker::core::config::Secret;

use crate::helpers::{
    TestApp, TestRedis, push_events_at, rebuild_product, send, settings_with_games,
    wait_until_drained,
};
use crate::simulate::{Event, Rng, event};

const ADMIN: &str = "admin-token-0123456789";
const MODERATOR: &str = "moderator-token-0123456789";
const DAY: u64 = 86_400_000;

const GAMES: &str = r#"
[products.moderated]
boards = [
  { name = "wins", kind = "wins", windows = ["daily"] },
  { name = "elo", kind = "elo" },
  { name = "best", kind = "max", when = { type = "gameplay", event_name = "score" }, player = "user_id", field = "event_data", validate = { max_change = 1000 }, windows = [] },
]
[[products.moderated.stats]]
rule = "match_results"

[products.twin]
boards = [
  { name = "wins", kind = "wins", windows = ["daily"] },
  { name = "elo", kind = "elo" },
  { name = "best", kind = "max", when = { type = "gameplay", event_name = "score" }, player = "user_id", field = "event_data", validate = { max_change = 1000 }, windows = [] },
]
[[products.twin.stats]]
rule = "match_results"
"#;

/// Yesterday, 00:00 UTC (Unix ms): day one of the run; today is day two.
fn day_one_ms() -> u64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_millis() as u64;
    now / DAY * DAY - DAY
}

/// The boards compared, as (board, query): all-time, and the daily periods of both days.
fn views(day_one_ms: u64) -> Vec<(&'static str, String)> {
    let date = |ms: u64| {
        chrono::DateTime::from_timestamp_millis(ms as i64)
            .expect("a date")
            .format("%Y-%m-%d")
            .to_string()
    };
    vec![
        ("wins", String::new()),
        ("wins", format!("&window=daily&period={}", date(day_one_ms))),
        (
            "wins",
            format!("&window=daily&period={}", date(day_one_ms + DAY)),
        ),
        ("elo", String::new()),
        ("best", String::new()),
    ]
}

/// A round of games between `players` at `at_ms`: game results and best scores, for both
/// products alike.
fn round(rng: &mut Rng, players: &[String], games: usize) -> Vec<(String, String, u64)> {
    let mut round = Vec::new();
    for _ in 0..games {
        let a = rng.below(players.len() as u64) as usize;
        let b = (a + 1 + rng.below(players.len() as u64 - 1) as usize) % players.len();
        let score = (rng.below(600) + 1).to_string();
        round.push((
            players[a].clone(),
            players[b].clone(),
            score.parse().unwrap_or(1),
        ));
    }
    round
}

fn events(product: &str, round: &[(String, String, u64)]) -> Vec<Event> {
    let mut events = Vec::new();
    for (winner, loser, score) in round {
        events.push(event(&[
            ("product_id", product),
            ("type", "game_over"),
            ("winner_id", winner),
            ("loser_id", loser),
        ]));
        events.push(event(&[
            ("product_id", product),
            ("type", "gameplay"),
            ("event_name", "score"),
            ("user_id", winner),
            ("event_data", &score.to_string()),
        ]));
    }
    events
}

async fn push_round(
    stream: &mut redis::aio::MultiplexedConnection,
    round: &[(String, String, u64)],
    at_ms: u64,
) {
    for product in ["moderated", "twin"] {
        push_events_at(stream, &events(product, round), Some(at_ms)).await;
    }
    wait_until_drained(stream, Duration::from_secs(20)).await;
}

/// The whole board as (user_id, score) rows best first, with the ranks of each ranking.
async fn board(app: &TestApp, product: &str, board: &str, query: &str) -> Vec<Value> {
    let mut rows = Vec::new();
    for ranking in ["ordinal", "standard", "dense"] {
        let (status, page) = app
            .get_json(&format!(
                "/v1/products/{product}/boards/{board}/entries?limit=1000&ranking={ranking}{query}"
            ))
            .await;
        assert_eq!(status, 200, "{page}");
        let entries = page["entries"].as_array().cloned().unwrap_or_default();
        assert_eq!(page["total"], entries.len(), "{page}");
        rows.push(entries);
    }
    let [ordinal, standard, dense] = <[Vec<Value>; 3]>::try_from(rows).expect("three rankings");
    ordinal
        .iter()
        .zip(&standard)
        .zip(&dense)
        .map(|((o, s), d)| {
            json!({
                "user_id": o["user_id"], "score": o["score"],
                "ordinal": o["rank"], "standard": s["rank"], "dense": d["rank"],
            })
        })
        .collect()
}

/// `rows` without `hidden`, ranked again: ordinal by position, standard and dense by score.
fn without(rows: &[Value], hidden: &str) -> Vec<Value> {
    let kept: Vec<&Value> = rows.iter().filter(|r| r["user_id"] != hidden).collect();
    let mut ranked = Vec::new();
    let (mut standard, mut dense) = (0, 0);
    for (index, row) in kept.iter().enumerate() {
        if index == 0 || row["score"] != kept[index - 1]["score"] {
            standard = index + 1;
            dense += 1;
        }
        ranked.push(json!({
            "user_id": row["user_id"], "score": row["score"],
            "ordinal": index + 1, "standard": standard, "dense": dense,
        }));
    }
    ranked
}

async fn assert_twin_boards(app: &TestApp, day_one_ms: u64, hidden: Option<&str>) {
    for (name, query) in views(day_one_ms) {
        let twin = board(app, "twin", name, &query).await;
        let moderated = board(app, "moderated", name, &query).await;
        let expected = match hidden {
            Some(player) => without(&twin, player),
            None => twin,
        };
        // Day two's period is empty until day two's games.
        assert!(
            !expected.is_empty() || query.contains("window"),
            "{name}{query} is empty"
        );
        assert_eq!(moderated, expected, "board {name}{query}");
    }
}

#[tokio::test]
async fn a_hidden_player_leaves_every_board_keeps_being_counted_and_returns_to_their_true_standing()
{
    let redis = TestRedis::start().await;
    let mut settings = settings_with_games(&redis, GAMES);
    settings.server.admin_token = Some(Secret::new(ADMIN));
    settings
        .server
        .admin_tokens
        .insert("moderator-ann".into(), Secret::new(MODERATOR));
    let app = TestApp::spawn(&settings, true).await;
    let mut stream = redis.connection(1).await;
    let players: Vec<String> = (0..12).map(|n| format!("p{n}")).collect();
    let mut rng = Rng::new(20);
    let day_one = day_one_ms();

    // Day one, then hide the best player.
    push_round(
        &mut stream,
        &round(&mut rng, &players, 120),
        day_one + 1_000,
    )
    .await;
    let hidden = board(&app, "twin", "wins", "").await[0]["user_id"]
        .as_str()
        .expect("a leader")
        .to_owned();
    let (status, body) = send(
        &app,
        reqwest::Method::POST,
        "/v1/admin/products/moderated/hidden",
        Some(MODERATOR),
        Some(json!({"user_id": hidden, "reason": "aimbot"})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["hidden"], true);
    // All-time and day one of wins, elo, best.
    assert_eq!(body["boards_moved"], 4, "{body}");
    assert_twin_boards(&app, day_one, Some(&hidden)).await;
    let (status, body) = app
        .get_json(&format!(
            "/v1/products/moderated/boards/wins/players/{hidden}"
        ))
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("player_not_on_board"))
    );

    // Day two: the hidden player keeps playing (a new period starts while they are hidden),
    // and one of their scores jumps too far from their best, which is judged against the
    // best kept off the board.
    // First of the day, so that the best they are judged against is the one the worker loads
    // from the store (from the hidden copy), not one it computed from the day's games.
    let opponent = players.iter().find(|p| **p != hidden).expect("an opponent");
    let mut second = vec![
        (hidden.clone(), opponent.clone(), 5_000),
        (hidden.clone(), "p-new".into(), 900),
    ];
    second.extend(round(&mut rng, &players, 120));
    push_round(&mut stream, &second, day_one + DAY + 1_000).await;
    assert_twin_boards(&app, day_one, Some(&hidden)).await;
    for product in ["moderated", "twin"] {
        let (status, letters) = send(
            &app,
            reqwest::Method::GET,
            &format!("/v1/admin/dead-letters?product={product}"),
            Some(ADMIN),
            None,
        )
        .await;
        assert_eq!(status, 200, "{letters}");
        let refused: Vec<&Value> = letters["letters"]
            .as_array()
            .expect("letters")
            .iter()
            .filter(|letter| letter["board"] == "best")
            .collect();
        assert_eq!(refused.len(), 1, "{product}: {letters}");
        let reason = refused[0]["reason"].as_str().unwrap_or_default();
        assert!(
            reason.contains(&hidden) && reason.contains("5000"),
            "{reason}"
        );
    }
    for path in [
        format!("/v1/products/{{}}/players/{hidden}/stats"),
        format!("/v1/products/{{}}/boards/elo/players/{hidden}/rating"),
    ] {
        let (_, moderated) = app.get_json(&path.replace("{}", "moderated")).await;
        let (_, twin) = app.get_json(&path.replace("{}", "twin")).await;
        let strip = |mut body: Value| {
            body.as_object_mut().map(|o| o.remove("product_id"));
            body
        };
        assert_eq!(strip(moderated), strip(twin), "{path}");
    }

    // A rebuild of the product from its history keeps them hidden (it writes hidden players'
    // scores to the hidden copies, as the worker does).
    rebuild_product(&settings, "moderated");
    assert_twin_boards(&app, day_one, Some(&hidden)).await;

    // The list, then back: every board equals the twin's again, ties as before.
    let (status, list) = send(
        &app,
        reqwest::Method::GET,
        "/v1/admin/products/moderated/hidden",
        Some(ADMIN),
        None,
    )
    .await;
    assert_eq!(status, 200, "{list}");
    let players_hidden = list["players"].as_array().expect("players");
    assert_eq!(players_hidden.len(), 1);
    assert_eq!(players_hidden[0]["user_id"], hidden.as_str());
    assert_eq!(players_hidden[0]["by"], "moderator-ann");
    assert_eq!(players_hidden[0]["reason"], "aimbot");
    let (status, body) = send(
        &app,
        reqwest::Method::POST,
        "/v1/admin/products/moderated/hidden",
        Some(ADMIN),
        Some(json!({"user_id": hidden})),
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("player_already_hidden"))
    );
    let (status, body) = send(
        &app,
        reqwest::Method::DELETE,
        &format!("/v1/admin/products/moderated/hidden/{hidden}?reason=appeal%20granted"),
        Some(ADMIN),
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["hidden"], false);
    assert_twin_boards(&app, day_one, None).await;
    let (status, body) = send(
        &app,
        reqwest::Method::DELETE,
        &format!("/v1/admin/products/moderated/hidden/{hidden}"),
        Some(ADMIN),
        None,
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("player_not_hidden"))
    );

    // The audit trail: newest first, who (the token's name), what, why.
    let (status, audit) = send(
        &app,
        reqwest::Method::GET,
        "/v1/admin/products/moderated/audit",
        Some(MODERATOR),
        None,
    )
    .await;
    assert_eq!(status, 200, "{audit}");
    let entries = audit["entries"].as_array().expect("entries");
    let summary: Vec<(&str, &str, &str, &str)> = entries
        .iter()
        .map(|e| {
            let text = |name: &str| e[name].as_str().unwrap_or_default();
            (text("action"), text("user_id"), text("by"), text("reason"))
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            ("unhide", hidden.as_str(), "admin", "appeal granted"),
            ("hide", hidden.as_str(), "moderator-ann", "aimbot"),
        ]
    );
    assert!(entries[0]["at_ms"].as_u64() >= entries[1]["at_ms"].as_u64());
    let (_, older) = send(
        &app,
        reqwest::Method::GET,
        &format!(
            "/v1/admin/products/moderated/audit?limit=1&before={}",
            entries[0]["id"].as_str().expect("id")
        ),
        Some(ADMIN),
        None,
    )
    .await;
    assert_eq!(older["entries"][0]["action"], "hide", "{older}");
    let (status, none) = send(
        &app,
        reqwest::Method::GET,
        "/v1/admin/products/moderated/audit?before=0-0",
        Some(ADMIN),
        None,
    )
    .await;
    assert_eq!((status, &none["entries"]), (200, &json!([])), "{none}");
    for (path, token, code) in [
        ("/v1/admin/products/moderated/audit", None, 401),
        (
            "/v1/admin/products/moderated/audit?limit=0",
            Some(ADMIN),
            400,
        ),
        (
            "/v1/admin/products/moderated/audit?before=x",
            Some(ADMIN),
            400,
        ),
        (
            "/v1/admin/products/moderated/audit?sort=asc",
            Some(ADMIN),
            400,
        ),
    ] {
        let (status, body) = send(&app, reqwest::Method::GET, path, token, None).await;
        assert_eq!(status, code, "{path}: {body}");
        assert!(body["error"]["code"].is_string(), "{body}");
    }

    // Hidden again, then erased: nothing of them stays, in the boards' hidden copies, the
    // list or the audit trail.
    let (status, _) = send(
        &app,
        reqwest::Method::POST,
        "/v1/admin/products/moderated/hidden",
        Some(ADMIN),
        Some(json!({"user_id": hidden, "reason": "again"})),
    )
    .await;
    assert_eq!(status, 200);
    let mut store = redis.connection(0).await;
    let copies = || {
        let mut store = store.clone();
        async move {
            redis::cmd("KEYS")
                .arg("st_test:{moderated}:hidden:*")
                .query_async::<Vec<String>>(&mut store)
                .await
                .expect("KEYS")
        }
    };
    assert!(
        copies().await.len() >= 4,
        "the hidden copies were not written"
    );
    let (status, _) = send(
        &app,
        reqwest::Method::DELETE,
        &format!("/v1/admin/players/{hidden}"),
        Some(ADMIN),
        None,
    )
    .await;
    assert_eq!(status, 200);
    for key in copies().await {
        let members: Vec<Vec<u8>> = redis::cmd("ZRANGE")
            .arg(&key)
            .arg(0)
            .arg(-1)
            .query_async(&mut store)
            .await
            .expect("ZRANGE");
        assert!(
            members.iter().all(|m| !m.ends_with(hidden.as_bytes())),
            "{key} still holds {hidden}"
        );
    }
    let (_, list) = send(
        &app,
        reqwest::Method::GET,
        "/v1/admin/products/moderated/hidden",
        Some(ADMIN),
        None,
    )
    .await;
    assert_eq!(list["players"], json!([]));
    let (_, audit) = send(
        &app,
        reqwest::Method::GET,
        "/v1/admin/products/moderated/audit",
        Some(ADMIN),
        None,
    )
    .await;
    assert_eq!(audit["entries"], json!([]), "{audit}");
    app.stop().await;
}
