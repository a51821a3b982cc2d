//! The dashboard's files, served from the binary, and the worker health route it reads.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::helpers::{
    TestApp, TestRedis, assert_redirects, push_events, settings, wait_until_drained,
};

/// The `./file` references of a page or module: `src="./…"`, `href="./…"`, `from './…'`.
fn local_references(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    for (opening, closing) in [("src=\"", '"'), ("href=\"", '"'), ("from '", '\'')] {
        for rest in text.split(opening).skip(1) {
            if let Some(reference) = rest.split(closing).next()
                && let Some(file) = reference.strip_prefix("./")
            {
                found.push(file.to_owned());
            }
        }
    }
    found
}

#[tokio::test]
async fn the_dashboard_and_its_files_are_served_from_the_binary() {
    let redis = TestRedis::start().await;
    let app = TestApp::spawn(&settings(&redis), false).await;
    assert_redirects(&app, "/dashboard", "/dashboard/").await;

    let response = app.get("/dashboard/").await;
    assert_eq!(response.status().as_u16(), 200);
    let header = |response: &reqwest::Response, name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    assert_eq!(
        header(&response, "content-type"),
        "text/html; charset=utf-8"
    );
    let policy = header(&response, "content-security-policy");
    assert!(policy.contains("script-src 'self'"), "{policy}");
    let page = response.text().await.expect("page");
    assert!(page.contains("<main id=\"view\""), "{page}");

    // Every file the page loads, and every module those load: all here, none from elsewhere.
    let mut pending = local_references(&page);
    assert!(pending.contains(&"app.js".to_owned()), "{pending:?}");
    assert!(
        !page.contains("://"),
        "the page loads something from elsewhere"
    );
    let mut seen = Vec::new();
    while let Some(file) = pending.pop() {
        if seen.contains(&file) {
            continue;
        }
        let response = app.get(&format!("/dashboard/{file}")).await;
        assert_eq!(response.status().as_u16(), 200, "{file}");
        let kind = header(&response, "content-type");
        let expected = match file.rsplit('.').next() {
            Some("js") => "text/javascript; charset=utf-8",
            Some("css") => "text/css; charset=utf-8",
            Some("svg") => "image/svg+xml",
            _ => panic!("unexpected file {file}"),
        };
        assert_eq!(kind, expected, "{file}");
        assert_eq!(header(&response, "x-content-type-options"), "nosniff");
        let body = response.text().await.expect("body");
        assert!(!body.is_empty(), "{file}");
        if file.ends_with(".js") {
            assert!(
                !body.contains("innerHTML"),
                "{file} must build the page with text nodes, not HTML strings"
            );
            pending.extend(local_references(&body));
        }
        seen.push(file);
    }
    for module in ["app.js", "views.js", "api.js", "dom.js", "chart.js"] {
        assert!(seen.contains(&module.to_owned()), "{module} is not loaded");
    }

    for missing in ["/dashboard/no-such-file.js", "/dashboard/assets/app.js"] {
        let (status, body) = app.get_json(missing).await;
        assert_eq!(
            (status, &body["error"]["code"]),
            (404, &json!("not_found")),
            "{missing}"
        );
    }
    app.stop().await;
}

async fn worker_health(app: &TestApp) -> (u16, Value) {
    app.get_json("/v1/health/worker").await
}

#[tokio::test]
async fn worker_health_summarises_the_process_own_worker() {
    let redis = TestRedis::start().await;
    let app = TestApp::spawn(&settings(&redis), true).await;
    let mut stream = redis.connection(1).await;
    let event = |winner: &str, loser: &str| {
        vec![
            ("product_id".to_owned(), "exrps".to_owned()),
            ("type".to_owned(), "game_over".to_owned()),
            ("winner_id".to_owned(), winner.to_owned()),
            ("loser_id".to_owned(), loser.to_owned()),
        ]
    };
    push_events(&mut stream, &[event("a", "b"), event("c", "c")]).await;
    wait_until_drained(&mut stream, Duration::from_secs(10)).await;

    let deadline = Instant::now() + Duration::from_secs(10);
    let health = loop {
        let (status, health) = worker_health(&app).await;
        assert_eq!(status, 200, "{health}");
        if health["events_total"] == json!(2.0) && health["consumer_lag"] == json!(0.0) {
            break health;
        }
        assert!(Instant::now() < deadline, "{health}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(health["source"], "process");
    assert_eq!(health["reporting"], true);
    assert_eq!(health["lease_held"], true);
    assert_eq!(health["events_by_outcome"]["applied"], 1.0);
    assert_eq!(health["events_by_outcome"]["dead_lettered"], 1.0);
    assert_eq!(
        health["dead_letters"],
        json!([{"product": "exrps", "type": "game_over", "count": 1.0}])
    );
    assert_eq!(
        health["dead_letters_by_reason"],
        json!([{"reason": "self_match", "count": 1.0}])
    );
    assert!(health["scraped_at_ms"].as_u64().is_some_and(|ms| ms > 0));
    app.stop().await;
}

/// Serves `body` as `/metrics` on a free port; the server's address.
async fn metrics_server(body: &'static str) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = listener.local_addr().expect("address");
    let router =
        axum::Router::new().route("/metrics", axum::routing::get(move || async move { body }));
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    format!("http://{address}")
}

#[tokio::test]
async fn worker_health_scrapes_the_configured_url() {
    let redis = TestRedis::start().await;
    let base = metrics_server(
        "# HELP stats_tracker_worker_lease_held 1 while this worker holds the stream lease\n\
         stats_tracker_worker_lease_held 0\n\
         stats_tracker_worker_consumer_lag 12\n\
         stats_tracker_worker_pending_entries 3\n\
         stats_tracker_worker_events_total{product=\"p\",type=\"draw\",outcome=\"applied\"} 40\n\
         stats_tracker_worker_events_total{product=\"p\",type=\"draw\",outcome=\"dead_lettered\"} 2\n\
         stats_tracker_worker_dead_letters_total{product=\"p\",reason=\"unratable_outcome\"} 3\n",
    )
    .await;

    let mut with_url = settings(&redis);
    with_url.server.worker_metrics_url = Some(format!("{base}/metrics"));
    let app = TestApp::spawn(&with_url, false).await;
    let (status, health) = worker_health(&app).await;
    assert_eq!(status, 200, "{health}");
    assert_eq!(health["source"], format!("{base}/metrics"));
    assert_eq!(health["lease_held"], false);
    assert_eq!(health["consumer_lag"], 12.0);
    assert_eq!(health["pending_entries"], 3.0);
    assert_eq!(health["events_total"], 42.0);
    assert_eq!(
        health["dead_letters"],
        json!([{"product": "p", "type": "draw", "count": 2.0}])
    );
    assert_eq!(
        health["dead_letters_by_reason"],
        json!([{"reason": "unratable_outcome", "count": 3.0}])
    );
    app.stop().await;

    // A path that is not there, a port nobody listens on, and a server that never answers:
    // 503 with the JSON error, in bounded time.
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("address")
    };
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let silent_address = silent.local_addr().expect("address");
    let holder = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((connection, _)) = silent.accept().await {
            held.push(connection);
        }
    });
    for url in [
        format!("{base}/elsewhere"),
        format!("http://{closed}/metrics"),
        format!("http://{silent_address}/metrics"),
    ] {
        let mut unreachable = settings(&redis);
        unreachable.server.worker_metrics_url = Some(url.clone());
        let app = TestApp::spawn(&unreachable, false).await;
        let started = Instant::now();
        let (status, body) = worker_health(&app).await;
        assert_eq!(status, 503, "{url}: {body}");
        assert_eq!(body["error"]["code"], "worker_metrics_unavailable", "{url}");
        assert!(
            body["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains(&url)),
            "{body}"
        );
        assert!(started.elapsed() < Duration::from_secs(5), "{url}");
        app.stop().await;
    }
    holder.abort();
}

/// `stats-tracker serve` runs no worker: without `server.worker_metrics_url` there is nothing
/// to report, and the route says which setting is missing.
#[tokio::test]
async fn worker_health_of_a_server_without_worker_names_the_setting() {
    let redis = TestRedis::start().await;
    let address = {
        let free = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        free.local_addr().expect("address")
    };
    let mut child = KillOnDrop(
        std::process::Command::new(env!("CARGO_BIN_EXE_stats-tracker"))
            .args(["serve", "-m", "test", "--bind", &address.to_string()])
            .env("STATS_TRACKER_REDIS_URL", redis.url(0))
            .env("GAME_EVENT_STREAM_REDIS_URL", redis.url(1))
            .env_remove("STATS_TRACKER__SERVER__WORKER_METRICS_URL")
            .env("RUST_LOG", "error")
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("spawn the stats-tracker binary"),
    );
    let http = crate::helpers::http_client().build().expect("http client");
    let url = format!("http://{address}/v1/health/worker");
    let deadline = Instant::now() + Duration::from_secs(20);
    let response = loop {
        match http.get(&url).send().await {
            Ok(response) => break response,
            Err(error) => {
                assert!(
                    Instant::now() < deadline,
                    "the server did not start: {error}"
                );
                assert!(child.0.try_wait().expect("wait").is_none(), "serve exited");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    assert_eq!(response.status().as_u16(), 503);
    let body: Value = response.json().await.expect("JSON error");
    assert_eq!(body["error"]["code"], "worker_metrics_unavailable");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("server.worker_metrics_url")),
        "{body}"
    );
}

/// A child process, killed when dropped (a failed assertion leaves nothing running).
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
