//! The HTTP API: error shapes, readiness, behaviour while Redis is away, metrics labels, the
//! OpenAPI document and the docs page.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::helpers::{
    TestApp, TestRedis, assert_redirects, event, example_games_file, push_events, settings,
};

/// Every route the server serves, as method and template, but the docs page (`/docs`,
/// `/docs/`, `/docs/{*file}`: not API routes, see `the_docs_page_is_served_from_the_binary`)
/// and the dashboard (`/dashboard/…`, see `dashboard.rs`).
/// The OpenAPI document must list exactly these.
const ROUTES: &[(&str, &str)] = &[
    ("GET", "/leaderboards/top_ten/{product_id}"),
    ("GET", "/stats/{product_id}/{user_id}"),
    ("GET", "/v1/products"),
    ("GET", "/v1/products/{product_id}/boards"),
    ("GET", "/v1/products/{product_id}/players/{user_id}/stats"),
    (
        "GET",
        "/v1/products/{product_id}/boards/{board}/players/{user_id}/rating",
    ),
    (
        "GET",
        "/v1/products/{product_id}/boards/{board}/players/{user_id}/history",
    ),
    ("POST", "/v1/products/{product_id}/boards/{board}/predict"),
    ("GET", "/v1/products/{product_id}/boards/{board}/entries"),
    (
        "GET",
        "/v1/products/{product_id}/boards/{board}/players/{user_id}",
    ),
    ("GET", "/v1/products/{product_id}/boards/{board}/ranks"),
    ("POST", "/v1/events"),
    ("DELETE", "/v1/admin/players/{user_id}"),
    ("DELETE", "/v1/admin/products/{product_id}/boards/{board}"),
    ("POST", "/v1/admin/products/{product_id}/voids"),
    ("GET", "/v1/admin/products/{product_id}/voids"),
    (
        "DELETE",
        "/v1/admin/products/{product_id}/voids/{kind}/{id}",
    ),
    ("POST", "/v1/admin/products/{product_id}/hidden"),
    ("GET", "/v1/admin/products/{product_id}/hidden"),
    ("DELETE", "/v1/admin/products/{product_id}/hidden/{user_id}"),
    ("GET", "/v1/admin/products/{product_id}/audit"),
    ("GET", "/v1/admin/dead-letters"),
    ("POST", "/v1/admin/dead-letters/redrive"),
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/metrics"),
    ("GET", "/v1/health/worker"),
    ("GET", "/openapi.json"),
];

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
    // Rating boards keep no period boards unless the games file lists some.
    assert_eq!(elo["windows"], json!([]));
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
        json!({"product_id": "newgame", "user_id": "A", "stats": {"games": 1, "wins": 1, "losses": 0}})
    );
    app.stop().await;
}

#[tokio::test]
async fn the_openapi_document_lists_exactly_the_routes_served() {
    let redis = TestRedis::start().await;
    let mut settings = settings(&redis);
    settings.games.file = Some(example_games_file());
    let app = TestApp::spawn(&settings, false).await;
    let (status, document) = app.get_json("/openapi.json").await;
    assert_eq!(status, 200, "{document}");
    assert!(
        document["openapi"]
            .as_str()
            .is_some_and(|version| version.starts_with("3.")),
        "not OpenAPI 3: {}",
        document["openapi"]
    );
    assert_eq!(document["info"]["title"], "stats-tracker");
    assert_eq!(document["info"]["version"], env!("CARGO_PKG_VERSION"));

    let paths = document["paths"].as_object().expect("paths");
    let documented: BTreeSet<(String, String)> = paths
        .iter()
        .flat_map(|(path, item)| {
            let methods = item.as_object().expect("path item").keys();
            methods.map(|method| (method.to_uppercase(), path.clone()))
        })
        .collect();
    let served: BTreeSet<(String, String)> = ROUTES
        .iter()
        .map(|(method, path)| (method.to_string(), path.to_string()))
        .collect();
    assert_eq!(documented, served);
    // Nested response types are described too (a rating state's open rating period, say).
    let schemas = document["components"]["schemas"]
        .as_object()
        .expect("schemas");
    for name in ["Rating", "OpenPeriod", "PeriodStart", "PeriodResult"] {
        assert!(schemas.contains_key(name), "no schema {name}");
    }

    // Each route answers its method (no `not_found`, no `method_not_allowed`), with a status
    // its operation documents.
    for (method, template) in ROUTES {
        let path = template
            .replace("{product_id}", "exrps")
            .replace("{board}", "elo")
            .replace("{user_id}", "alice")
            .replace("{kind}", "game")
            .replace("{id}", "g1");
        let mut request = app.http.request(
            method.parse().expect("method"),
            format!("{}{path}", app.address),
        );
        if *method == "POST" {
            request = request.json(&json!({}));
        }
        let response = request.send().await.expect("request");
        let status = response.status().as_u16();
        let operation = &paths[*template][method.to_lowercase()];
        assert!(
            operation["responses"].get(status.to_string()).is_some(),
            "{method} {path}: {status} is not documented"
        );
        if status >= 400 {
            let body: Value = response.json().await.expect("JSON error");
            let code = body["error"]["code"].as_str().expect("error code");
            assert!(
                !["not_found", "method_not_allowed"].contains(&code),
                "{method} {path} is not routed: {body}"
            );
        }
    }
    app.stop().await;
}

#[tokio::test]
async fn the_docs_page_is_served_from_the_binary() {
    let redis = TestRedis::start().await;
    let app = TestApp::spawn(&settings(&redis), false).await;
    assert_redirects(&app, "/docs", "/docs/").await;

    let response = app.get("/docs/").await;
    assert_eq!(response.status().as_u16(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .is_ok_and(|kind| kind.starts_with("text/html")),
        "{response:?}"
    );
    let page = response.text().await.expect("page");
    // Every script and stylesheet the page loads: all ours, none from a CDN.
    let assets: Vec<&str> = ["src=\"", "href=\""]
        .iter()
        .flat_map(|attribute| page.split(attribute).skip(1))
        .filter_map(|rest| rest.split('"').next())
        .collect();
    assert!(assets.contains(&"./swagger-ui-bundle.js"), "{page}");
    for asset in assets {
        assert!(
            !asset.contains("//"),
            "the docs page loads {asset} from elsewhere"
        );
        let response = app
            .get(&format!("/docs/{}", asset.trim_start_matches("./")))
            .await;
        assert_eq!(response.status().as_u16(), 200, "{asset}");
        let kind = response.headers()["content-type"].clone();
        let body = response.bytes().await.expect("body");
        assert!(!body.is_empty(), "{asset}");
        if asset.ends_with(".js") {
            assert!(
                kind.to_str().is_ok_and(|kind| kind.contains("javascript")),
                "{asset}: {kind:?}"
            );
        }
    }
    let initializer = app
        .get("/docs/swagger-initializer.js")
        .await
        .text()
        .await
        .expect("text");
    assert!(initializer.contains("/openapi.json"), "{initializer}");

    let (status, body) = app.get_json("/docs/no-such-file.js").await;
    assert_eq!((status, &body["error"]["code"]), (404, &json!("not_found")));
    app.stop().await;
}

/// Metric names in README's metric tables (the rows of the "Metrics" section).
fn documented_metrics() -> BTreeSet<String> {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
        .expect("README.md");
    let section = readme
        .split("\n## Metrics")
        .nth(1)
        .and_then(|rest| rest.split("\n## ").next())
        .expect("a Metrics section in README.md");
    section
        .lines()
        .filter_map(|line| line.strip_prefix("| `")?.split('`').next())
        .filter(|name| name.starts_with("stats_tracker_"))
        .map(str::to_owned)
        .collect()
}

#[tokio::test]
async fn documented_metrics_are_the_emitted_ones_each_with_help_and_fitting_buckets() {
    let redis = TestRedis::start().await;
    let settings = settings(&redis);
    let app = TestApp::spawn(&settings, true).await;
    let mut stream = redis.connection(1).await;
    let game_over = |winner: &str| {
        event(&[
            ("product_id", "exrps"),
            ("type", "game_over"),
            ("winner_id", winner),
            ("loser_id", "B"),
        ])
    };
    // One good event, one dead-lettered (a player beating themselves).
    push_events(&mut stream, &[game_over("A"), game_over("B")]).await;
    crate::helpers::wait_until_drained(&mut stream, Duration::from_secs(10)).await;
    app.get("/leaderboards/top_ten/exrps").await;
    // The lag gauges are sampled at most once a second.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    app.get("/stats/exrps/A").await;
    let text = app.get("/metrics").await.text().await.expect("text");

    let mut typed = BTreeSet::new();
    let mut helped = BTreeSet::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            typed.insert(rest.split(' ').next().unwrap_or_default().to_owned());
        }
        if let Some(rest) = line.strip_prefix("# HELP ") {
            helped.insert(rest.split(' ').next().unwrap_or_default().to_owned());
        }
    }
    assert_eq!(
        typed,
        documented_metrics(),
        "README's metric tables vs /metrics"
    );
    assert_eq!(helped, typed, "every metric has a # HELP line");
    // Batches of the default 1,000 entries fall in a bucket of their own, not in +Inf.
    assert!(
        text.contains(r#"stats_tracker_worker_batch_size_bucket{le="1000"}"#),
        "{text}"
    );
    // The bad event was dead-lettered once.
    assert!(
        text.lines()
            .any(|line| line.starts_with("stats_tracker_worker_events_total")
                && line.contains(r#"outcome="dead_lettered""#)
                && line.ends_with(" 1")),
        "{text}"
    );
    app.stop().await;
}
