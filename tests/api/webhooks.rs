//! Webhooks: the change feed POSTed to a local receiver that fails some requests; every feed
//! entry arrives at least once, signed, in feed order, and a dead webhook beside it slows
//! neither the worker nor the live one.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use stats_tracker::core::config::{Secret, WebhookSettings};

use crate::helpers::{
    TestApp, TestRedis, event, push_events, settings_with_games, wait_until_drained,
};

const GAMES: &str = r#"
[products.arcade]
boards = [
  { name = "wins", kind = "wins", windows = [], feed = { top = 5 } },
]
"#;
const SECRET: &str = "webhook-secret-0123456789";

/// What the receiver got: each request's idempotency key, signature, body and its answer.
#[derive(Default)]
struct Received {
    requests: Vec<(String, String, Bytes, u16)>,
}

async fn receive(
    State(received): State<Arc<Mutex<Received>>>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let mut received = received.lock().expect("lock");
    // Every fourth request fails.
    let status = if received.requests.len() % 4 == 3 {
        StatusCode::INTERNAL_SERVER_ERROR
    } else {
        StatusCode::OK
    };
    received.requests.push((
        header("idempotency-key"),
        header("x-stats-tracker-signature"),
        body,
        status.as_u16(),
    ));
    status
}

#[tokio::test]
async fn every_feed_entry_reaches_the_webhook_signed_in_order_despite_failures() {
    let received = Arc::new(Mutex::new(Received::default()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = listener.local_addr().expect("address");
    let receiver = tokio::spawn({
        let app = axum::Router::new()
            .route("/hook", axum::routing::post(receive))
            .with_state(received.clone());
        async move { axum::serve(listener, app).await }
    });
    // A port nothing listens on: the dead webhook.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let dead_address = dead.local_addr().expect("address");
    drop(dead);

    let redis = TestRedis::start().await;
    let mut settings = settings_with_games(&redis, GAMES);
    settings.webhooks = vec![
        WebhookSettings {
            name: "notifier".into(),
            url: format!("http://{address}/hook"),
            secret: Secret::new(SECRET),
            products: Vec::new(),
            timeout_ms: 2000,
        },
        WebhookSettings {
            name: "dead".into(),
            url: format!("http://{dead_address}/hook"),
            secret: Secret::new(SECRET),
            products: Vec::new(),
            timeout_ms: 2000,
        },
    ];
    let app = TestApp::spawn(&settings, true).await;
    let mut stream = redis.connection(1).await;
    // Random matches of eight players: the top 5 keeps changing.
    let players = ["A", "B", "C", "D", "E", "F", "G", "H"];
    let mut rng = crate::simulate::Rng::new(5);
    let events: Vec<_> = (0..40)
        .map(|_| {
            let winner = rng.below(8) as usize;
            let loser = (winner + 1 + rng.below(7) as usize) % 8;
            event(&[
                ("product_id", "arcade"),
                ("type", "game_over"),
                ("winner_id", players[winner]),
                ("loser_id", players[loser]),
            ])
        })
        .collect();
    push_events(&mut stream, &events).await;
    // The worker is not held up by the webhooks, the dead one included.
    wait_until_drained(&mut stream, Duration::from_secs(10)).await;

    let mut store = redis.connection(0).await;
    let feed: Vec<(String, Vec<(String, String)>)> = redis::cmd("XRANGE")
        .arg("st_test:{arcade}:feed")
        .arg("-")
        .arg("+")
        .query_async(&mut store)
        .await
        .expect("XRANGE");
    assert!(feed.len() >= 10, "{} feed entries", feed.len());
    let expected: Vec<String> = feed.iter().map(|(id, _)| format!("arcade/{id}")).collect();

    // Every entry delivered (answered 200), in feed order; the failed ones again.
    let deadline = Instant::now() + Duration::from_secs(60);
    let delivered = loop {
        let delivered: Vec<String> = received
            .lock()
            .expect("lock")
            .requests
            .iter()
            .filter(|(_, _, _, status)| *status == 200)
            .map(|(key, _, _, _)| key.clone())
            .collect();
        if delivered.len() >= expected.len() || Instant::now() > deadline {
            break delivered;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(
        delivered, expected,
        "each entry delivered once, in feed order"
    );
    let requests = std::mem::take(&mut received.lock().expect("lock").requests);
    let failed: Vec<&String> = requests
        .iter()
        .filter(|(_, _, _, status)| *status != 200)
        .map(|(key, _, _, _)| key)
        .collect();
    assert!(!failed.is_empty(), "the receiver failed no request");
    for key in &failed {
        assert!(
            delivered.contains(key),
            "{key} failed and was never delivered"
        );
    }
    // Signed with the secret; the body is the entry with its product and id.
    for (key, signature, body, _) in &requests {
        let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).expect("key");
        mac.update(body);
        let expected_signature = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
        assert_eq!(signature, &expected_signature, "{key}");
        let json: serde_json::Value = serde_json::from_slice(body).expect("JSON body");
        assert_eq!(json["product_id"], "arcade");
        assert_eq!(
            format!("arcade/{}", json["id"].as_str().unwrap_or_default()),
            *key
        );
        let (_, fields) = feed
            .iter()
            .find(|(id, _)| format!("arcade/{id}") == *key)
            .expect("a feed entry");
        for (name, value) in fields {
            assert_eq!(json[name.as_str()], value.as_str(), "{key}: {name}");
        }
    }
    app.stop().await;
    receiver.abort();
}
