//! The HTTP API: error shapes, readiness, behaviour while Redis is away, metrics labels.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::helpers::{TestApp, TestRedis, settings};

#[tokio::test]
async fn errors_are_json_with_a_stable_shape() {
    let redis = TestRedis::start().await;
    let app = TestApp::spawn(&settings(&redis), false).await;
    let long = "x".repeat(129);
    let cases = [
        ("/nope", 404, "not_found"),
        ("/leaderboards/top_ten", 404, "not_found"),
        (
            &*format!("/leaderboards/top_ten/{long}"),
            400,
            "invalid_product_id",
        ),
        (&*format!("/stats/exrps/{long}"), 400, "invalid_user_id"),
        ("/stats/exrps/a%0Ab", 400, "invalid_user_id"),
        ("/stats/%FF%FE/a", 400, "invalid_path"),
    ];
    for (path, status, code) in cases {
        let (actual, body) = app.get_json(path).await;
        assert_eq!(actual, status, "{path}: {body}");
        assert_eq!(body["error"]["code"], code, "{path}: {body}");
        assert!(body["error"]["message"].is_string(), "{path}: {body}");
    }
    let response = app
        .http
        .post(format!("{}/leaderboards/top_ten/exrps", app.address))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status().as_u16(), 405);
    let body: serde_json::Value = response.json().await.expect("JSON");
    assert_eq!(body["error"]["code"], "method_not_allowed");
    app.stop().await;
}

#[tokio::test]
async fn ids_with_reserved_characters_are_just_ids() {
    let redis = TestRedis::start().await;
    let app = TestApp::spawn(&settings(&redis), false).await;
    // `{`, `}`, `:` and spaces reach the store encoded; the answer is simply empty.
    for path in [
        "/stats/a%7Bb%7D/c%20d:e",
        "/leaderboards/top_ten/%7Bexrps%7D",
        "/stats/exrps/%E2%9C%93",
    ] {
        let (status, _) = app.get_json(path).await;
        assert_eq!(status, 200, "{path}");
    }
    app.stop().await;
}

#[tokio::test]
async fn health_and_readiness_follow_redis() {
    let mut redis = TestRedis::start().await;
    let app = TestApp::spawn(&settings(&redis), false).await;
    assert_eq!(
        app.get_json("/healthz").await,
        (200, json!({"status": "ok"}))
    );
    assert_eq!(
        app.get_json("/readyz").await,
        (200, json!({"status": "ready"}))
    );

    redis.stop();
    for path in ["/readyz", "/leaderboards/top_ten/exrps", "/stats/exrps/a"] {
        let started = Instant::now();
        let (status, body) = app.get_json(path).await;
        assert_eq!(status, 503, "{path}: {body}");
        assert_eq!(body["error"]["code"], "store_unavailable");
        assert!(
            started.elapsed() < Duration::from_millis(1500),
            "{path} took {:?} while Redis was away",
            started.elapsed()
        );
    }
    assert_eq!(app.get_json("/healthz").await.0, 200);

    redis.restart().await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while app.get_json("/readyz").await.0 != 200 {
        assert!(
            Instant::now() < deadline,
            "server did not recover after Redis returned"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        app.get_json("/leaderboards/top_ten/exrps").await,
        (200, json!([]))
    );
    app.stop().await;
}

#[tokio::test]
async fn redis_missing_at_start_then_appearing() {
    let mut redis = TestRedis::start().await;
    let settings = settings(&redis);
    redis.stop();
    let app = TestApp::spawn(&settings, true).await;
    assert_eq!(app.get_json("/readyz").await.0, 503);
    redis.restart().await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while app.get_json("/readyz").await.0 != 200 {
        assert!(Instant::now() < deadline, "server did not become ready");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The worker found Redis too: it created its consumer group.
    let mut stream = redis.connection(1).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while crate::helpers::group_backlog(&mut stream).await.is_none() {
        assert!(Instant::now() < deadline, "worker did not start working");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    app.stop().await;
}

#[tokio::test]
async fn metrics_label_routes_by_template_and_bound_products() {
    let redis = TestRedis::start().await;
    let mut settings = settings(&redis);
    settings.server.max_product_labels = 2;
    let app = TestApp::spawn(&settings, false).await;
    for product in ["m1", "m2", "m3", "m4"] {
        app.get(&format!("/stats/{product}/secret-player-id")).await;
    }
    let metrics = app.get("/metrics").await.text().await.expect("text");
    assert!(
        metrics.contains(r#"route="/stats/{product_id}/{user_id}""#),
        "{metrics}"
    );
    assert!(
        !metrics.contains("secret-player-id"),
        "player ids must not become labels"
    );
    assert!(metrics.contains(r#"product="other""#), "{metrics}");
    assert!(!metrics.contains(r#"product="m4""#), "{metrics}");
    app.stop().await;
}

#[tokio::test]
async fn discovery_lists_products_boards_and_player_stats() {
    let redis = TestRedis::start().await;
    let mut settings = settings(&redis);
    settings.games.file = Some(crate::helpers::example_games_file());
    let app = TestApp::spawn(&settings, true).await;
    let mut stream = redis.connection(1).await;
    crate::helpers::push_events(
        &mut stream,
        &[vec![
            ("product_id".into(), "newgame".into()),
            ("type".into(), "game_over".into()),
            ("winner_id".into(), "A".into()),
            ("loser_id".into(), "B".into()),
        ]],
    )
    .await;
    crate::helpers::wait_until_drained(&mut stream, Duration::from_secs(10)).await;

    let (status, products) = app.get_json("/v1/products").await;
    assert_eq!(status, 200);
    assert_eq!(products, json!({"products": ["arena", "exrps", "newgame"]}));

    let (status, boards) = app.get_json("/v1/products/exrps/boards").await;
    assert_eq!(status, 200, "{boards}");
    let elo = &boards["boards"][1];
    assert_eq!(
        (
            elo["name"].as_str(),
            elo["kind"].as_str(),
            elo["k_factor"].as_f64(),
            elo["min_matches"].as_u64()
        ),
        (Some("elo"), Some("elo"), Some(32.0), Some(5))
    );
    let (_, boards) = app.get_json("/v1/products/newgame/boards").await;
    assert_eq!(
        boards["boards"],
        json!([{"name": "wins", "kind": "wins", "windows": [
            {"window": "daily", "retention": 7},
            {"window": "weekly", "retention": 4},
            {"window": "monthly", "retention": 12},
        ]}])
    );

    let (status, stats) = app.get_json("/v1/products/newgame/players/A/stats").await;
    assert_eq!(status, 200);
    assert_eq!(
        stats,
        json!({"product_id": "newgame", "user_id": "A", "stats": {"games": 1, "wins": 1}})
    );
    app.stop().await;
}
