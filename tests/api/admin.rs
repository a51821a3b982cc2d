//! Token-protected routes: HTTP event ingest, player erasure, board reset.

use std::time::Duration;

use serde_json::{Value, json};
use stats_tracker::core::config::Secret;
use stats_tracker::core::keys::encode_segment;

use crate::helpers::{
    STREAM, TestApp, TestRedis, push_events, send, settings, stats_of, urlencode,
    wait_until_drained,
};
use crate::traffic::mixed_run;

const ADMIN: &str = "admin-token-0123456789";
const INGEST: &str = "ingest-token-0123456789";

#[tokio::test]
async fn ingest_validates_appends_atomically_and_needs_its_own_token() {
    let redis = TestRedis::start().await;
    let mut settings = settings(&redis);
    let disabled = TestApp::spawn(&settings, false).await;
    let (status, body) = send(
        &disabled,
        reqwest::Method::POST,
        "/v1/events",
        Some(INGEST),
        Some(json!({})),
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (403, Some("disabled"))
    );
    disabled.stop().await;

    settings.server.ingest_token = Some(Secret::new(INGEST));
    settings.server.admin_token = Some(Secret::new(ADMIN));
    let app = TestApp::spawn(&settings, true).await;
    let good = json!({"product_id": "exrps", "game_id": "g", "type": "game_over", "winner_id": "A", "loser_id": "B"});
    for token in [None, Some("wrong-token-0123456789"), Some(ADMIN)] {
        let (status, body) = send(
            &app,
            reqwest::Method::POST,
            "/v1/events",
            token,
            Some(good.clone()),
        )
        .await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (401, Some("unauthorized")),
            "{token:?}"
        );
    }

    let mut stream = redis.connection(1).await;
    let length = |stream: &mut redis::aio::MultiplexedConnection| {
        let mut stream = stream.clone();
        async move {
            redis::cmd("XLEN")
                .arg(STREAM)
                .query_async::<u64>(&mut stream)
                .await
                .expect("XLEN")
        }
    };
    // One bad event: the whole batch is refused, nothing appended, the culprit named.
    let batch = json!([good, {"product_id": "exrps", "type": "game_over", "winner_id": "A"}]);
    let (status, body) = send(
        &app,
        reqwest::Method::POST,
        "/v1/events",
        Some(INGEST),
        Some(batch),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["code"], "invalid_event");
    assert_eq!(
        body["error"]["message"],
        "event 1: missing field `loser_id`"
    );
    assert_eq!(length(&mut stream).await, 0);

    // A valid batch: 202 with the ids, and the worker applies it.
    let teams = json!([{"place": 1, "players": ["A", "C"]}, {"place": 2, "players": ["B", "D"]}]);
    let batch = json!([
        good,
        {"product_id": "exrps", "type": "gameplay", "event_name": "select_weapon", "event_data": 0, "user_id": "A"},
        {"product_id": "squads", "type": "match_result", "teams": teams},
    ]);
    let (status, body) = send(
        &app,
        reqwest::Method::POST,
        "/v1/events",
        Some(INGEST),
        Some(batch),
    )
    .await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["ids"].as_array().map(Vec::len), Some(3));
    assert_eq!(length(&mut stream).await, 3);
    wait_until_drained(&mut stream, Duration::from_secs(10)).await;
    assert_eq!(
        stats_of(&app, "exrps", "A").await,
        json!({"games": 1, "wins": 1, "losses": 0, "rock_selection_count": 1})
    );
    assert_eq!(
        stats_of(&app, "squads", "D").await,
        json!({"games": 1, "wins": 0, "losses": 1})
    );

    // Bodies over the limit are refused with 413.
    let huge = json!({"product_id": "x".repeat(2 << 20)});
    let (status, body) = send(
        &app,
        reqwest::Method::POST,
        "/v1/events",
        Some(INGEST),
        Some(huge),
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (413, Some("body_too_large"))
    );
    app.stop().await;
}

#[tokio::test]
async fn erasing_a_player_leaves_nothing_behind() {
    let redis = TestRedis::start().await;
    let mut settings = settings(&redis);
    settings.games.file = Some(crate::helpers::example_games_file());
    settings.server.admin_token = Some(Secret::new(ADMIN));
    let app = TestApp::spawn(&settings, true).await;
    let mut stream = redis.connection(1).await;
    let (events, _) = mixed_run(8, 300, 12, 0);
    push_events(&mut stream, &events).await;
    wait_until_drained(&mut stream, Duration::from_secs(20)).await;

    let victim = crate::traffic::players(12)[1].clone(); // "игрок:ユーザー✓1"
    let (status, _) = app
        .get_json(&format!("/stats/exrps/{}", urlencode(&victim)))
        .await;
    assert_eq!(status, 200);
    let path = format!("/v1/admin/players/{}", urlencode(&victim));
    for token in [None, Some(INGEST)] {
        let (status, _) = send(&app, reqwest::Method::DELETE, &path, token, None).await;
        assert_eq!(status, 401);
    }
    let (status, body) = send(&app, reqwest::Method::DELETE, &path, Some(ADMIN), None).await;
    assert_eq!(status, 200, "{body}");

    // Scan the whole store: no key named after the player, no member or field of theirs.
    let mut store = redis.connection(0).await;
    let keys: Vec<Vec<u8>> = redis::cmd("KEYS")
        .arg("*")
        .query_async(&mut store)
        .await
        .expect("KEYS");
    let encoded = encode_segment(&victim);
    let mut checked = 0;
    for key in keys {
        let name = String::from_utf8_lossy(&key).into_owned();
        assert!(
            !name.split(':').any(|segment| segment == encoded),
            "{name} is left"
        );
        let kind: String = redis::cmd("TYPE")
            .arg(&key)
            .query_async(&mut store)
            .await
            .expect("TYPE");
        match kind.as_str() {
            "zset" => {
                // Board members end with the player id: look at every member.
                let members: Vec<Vec<u8>> = redis::cmd("ZRANGE")
                    .arg(&key)
                    .arg(0)
                    .arg(-1)
                    .query_async(&mut store)
                    .await
                    .expect("ZRANGE");
                assert!(
                    !members.iter().any(|m| m.ends_with(victim.as_bytes())),
                    "{victim} still on {name}"
                );
                checked += 1;
            }
            "hash" => {
                let there: bool = redis::cmd("HEXISTS")
                    .arg(&key)
                    .arg(&victim)
                    .query_async(&mut store)
                    .await
                    .expect("HEXISTS");
                assert!(!there, "{victim} in {name}");
                checked += 1;
            }
            _ => {}
        }
    }
    assert!(checked > 10, "only {checked} keys checked");
    // Others keep their data; new events for the player start from nothing.
    let other = crate::traffic::players(12)[0].clone();
    assert_eq!(
        app.get_json(&format!("/stats/exrps/{}", urlencode(&other)))
            .await
            .0,
        200
    );
    push_events(
        &mut stream,
        &[vec![
            ("product_id".into(), "exrps".into()),
            ("type".into(), "game_over".into()),
            ("winner_id".into(), victim.clone()),
            ("loser_id".into(), other.clone()),
        ]],
    )
    .await;
    wait_until_drained(&mut stream, Duration::from_secs(10)).await;
    assert_eq!(
        stats_of(&app, "exrps", &victim).await,
        json!({"games": 1, "wins": 1, "losses": 0, "current_win_streak": 1, "best_win_streak": 1})
    );
    let (_, rating) = app
        .get_json(&format!(
            "/v1/products/exrps/boards/elo/players/{}/rating",
            urlencode(&victim)
        ))
        .await;
    assert_eq!(
        rating["state"]["matches"], 1,
        "the worker's cached rating was dropped: {rating}"
    );
    app.stop().await;
}

#[tokio::test]
async fn resetting_a_board_empties_it_and_ratings_start_over() {
    let redis = TestRedis::start().await;
    let mut settings = settings(&redis);
    settings.games.file = Some(crate::helpers::example_games_file());
    let disabled = TestApp::spawn(&settings, false).await;
    let (status, body) = send(
        &disabled,
        reqwest::Method::DELETE,
        "/v1/admin/products/exrps/boards/elo",
        Some(ADMIN),
        None,
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (403, Some("disabled"))
    );
    disabled.stop().await;

    settings.server.admin_token = Some(Secret::new(ADMIN));
    let app = TestApp::spawn(&settings, true).await;
    let mut stream = redis.connection(1).await;
    let game = |w: &str, l: &str| {
        vec![
            ("product_id".to_owned(), "exrps".to_owned()),
            ("type".to_owned(), "game_over".to_owned()),
            ("winner_id".to_owned(), w.to_owned()),
            ("loser_id".to_owned(), l.to_owned()),
        ]
    };
    push_events(&mut stream, &vec![game("A", "B"); 6]).await;
    wait_until_drained(&mut stream, Duration::from_secs(10)).await;
    let (_, before) = app
        .get_json("/v1/products/exrps/boards/elo/players/A/rating")
        .await;
    assert_eq!(before["state"]["matches"], 6);

    let (status, body) = send(
        &app,
        reqwest::Method::DELETE,
        "/v1/admin/products/exrps/boards/elo",
        Some(ADMIN),
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(body["keys_deleted"].as_u64().expect("count") >= 5);
    // Every key of the board is gone: all-time, periods, rank indexes, states, histories.
    let mut store = redis.connection(0).await;
    let left: Vec<String> = redis::cmd("KEYS")
        .arg("st_test:{exrps}:*elo*")
        .query_async(&mut store)
        .await
        .expect("KEYS");
    assert_eq!(left, Vec::<String>::new());
    let (status, _) = app
        .get_json("/v1/products/exrps/boards/elo/players/A/rating")
        .await;
    assert_eq!(status, 404);
    let (_, history) = app
        .get_json("/v1/products/exrps/boards/elo/players/A/history")
        .await;
    assert_eq!(history["entries"], json!([]));
    // The wins board is untouched; the next match rates from the initial rating.
    assert_eq!(
        app.get_json("/leaderboards/top_ten/exrps").await.1[0]["score"],
        6
    );
    push_events(&mut stream, &[game("B", "A")]).await;
    wait_until_drained(&mut stream, Duration::from_secs(10)).await;
    let (_, after) = app
        .get_json("/v1/products/exrps/boards/elo/players/B/rating")
        .await;
    assert_eq!(after["state"]["matches"], 1, "{after}");
    assert_eq!(after["state"]["rating"], 1516.0, "1500 + 32 * 0.5");
    let (status, _) = send(
        &app,
        reqwest::Method::DELETE,
        "/v1/admin/products/exrps/boards/nope",
        Some(ADMIN),
        None,
    )
    .await;
    assert_eq!(status, 404);
    app.stop().await;
}

#[tokio::test]
async fn player_names_come_with_entries_when_asked_never_rank_and_go_with_erasure() {
    let redis = TestRedis::start().await;
    let mut settings = settings(&redis);
    settings.server.ingest_token = Some(Secret::new(INGEST));
    settings.server.admin_token = Some(Secret::new(ADMIN));
    let app = TestApp::spawn(&settings, true).await;
    let mut stream = redis.connection(1).await;
    let post = |body: serde_json::Value| {
        let app = &app;
        async move {
            send(
                app,
                reqwest::Method::POST,
                "/v1/events",
                Some(INGEST),
                Some(body),
            )
            .await
        }
    };
    // Names through ingest (an array, meta as an object) and through the stream.
    let (status, body) = post(json!([
        {"product_id": "exrps", "type": "game_over", "winner_id": "A", "loser_id": "B"},
        {"product_id": "exrps", "type": "game_over", "winner_id": "A", "loser_id": "C"},
        {"product_id": "exrps", "type": "player_profile", "user_id": "A", "name": "Ann", "meta": {"flag": "NO"}},
        {"product_id": "exrps", "type": "player_profile", "user_id": "B", "name": "Ann"},
    ]))
    .await;
    assert_eq!(status, 202, "{body}");
    push_events(
        &mut stream,
        &[vec![
            ("product_id".into(), "exrps".into()),
            ("type".into(), "player_profile".into()),
            ("user_id".into(), "B".into()),
            ("name".into(), "Bea ✓".into()),
        ]],
    )
    .await;
    // Refused: a control character, an empty name, meta that is not an object, nothing to set.
    for bad in [
        json!({"product_id": "exrps", "type": "player_profile", "user_id": "C", "name": "a\u{7}b"}),
        json!({"product_id": "exrps", "type": "player_profile", "user_id": "C", "name": "  "}),
        json!({"product_id": "exrps", "type": "player_profile", "user_id": "C", "meta": "[1]"}),
        json!({"product_id": "exrps", "type": "player_profile", "user_id": "C"}),
        json!({"product_id": "exrps", "type": "player_profile", "user_id": "C", "meta": {"x": "y".repeat(1100)}}),
    ] {
        let (status, body) = post(bad.clone()).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (400, Some("invalid_event")),
            "{bad}: {body}"
        );
    }
    wait_until_drained(&mut stream, Duration::from_secs(10)).await;

    let (_, plain) = app.get_json("/v1/products/exrps/boards/wins/entries").await;
    assert!(
        plain["entries"][0].get("name").is_none(),
        "names only when asked: {plain}"
    );
    let (status, named) = app
        .get_json("/v1/products/exrps/boards/wins/entries?with=names")
        .await;
    assert_eq!(status, 200, "{named}");
    let rows: Vec<(String, u64, Value, Value)> = named["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .map(|row| {
            (
                row["user_id"].as_str().unwrap_or_default().to_owned(),
                row["rank"].as_u64().unwrap_or_default(),
                row["name"].clone(),
                row["meta"].clone(),
            )
        })
        .collect();
    assert_eq!(
        rows,
        vec![
            ("A".into(), 1, json!("Ann"), json!({"flag": "NO"})),
            ("B".into(), 2, json!("Bea ✓"), Value::Null),
            ("C".into(), 2, Value::Null, Value::Null),
        ],
        "names do not change ranking (B, C tied; a later name replaces the first)"
    );
    let (_, standing) = app
        .get_json("/v1/products/exrps/boards/wins/players/B?with=names&around=1")
        .await;
    assert_eq!(standing["name"], "Bea ✓", "{standing}");
    assert_eq!(standing["around"][0]["name"], "Ann", "{standing}");
    let (_, ranks) = app
        .get_json("/v1/products/exrps/boards/wins/ranks?user_id=A&user_id=C&with=names")
        .await;
    assert_eq!(ranks["entries"][0]["name"], "Ann", "{ranks}");
    assert_eq!(ranks["entries"][1]["name"], Value::Null, "{ranks}");
    let (status, body) = app
        .get_json("/v1/products/exrps/boards/wins/entries?with=avatars")
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("invalid_query"))
    );

    // Erased with the player.
    let (status, _) = send(
        &app,
        reqwest::Method::DELETE,
        "/v1/admin/players/A",
        Some(ADMIN),
        None,
    )
    .await;
    assert_eq!(status, 200);
    let mut store = redis.connection(0).await;
    let left: Vec<String> = redis::cmd("KEYS")
        .arg("st_test:{exrps}:profile:*")
        .query_async(&mut store)
        .await
        .expect("KEYS");
    assert_eq!(left, vec!["st_test:{exrps}:profile:B".to_owned()]);
    app.stop().await;
}
