//! Redis Cluster: the tracker on a private local cluster (`scripts/redis-cluster`: 3 masters, 3
//! replicas) answers every route exactly as on a single server fed the same events, and its
//! store equals the reference model.

use std::time::Duration;

use serde_json::{Value, json};
use stats_tracker::core::config::{Secret, Settings};

use crate::crash::CHAOS_GAMES;
use crate::helpers::{
    TestApp, TestCluster, TestConn, TestRedis, cluster_settings, push_events_at, send, settings,
    urlencode, wait_until_drained,
};
use crate::traffic::{Model, assert_run_matches, mixed_run, players};

const ADMIN: &str = "admin-token-0123456789";
const INGEST: &str = "ingest-token-0123456789";

/// `settings` pointed at `cluster` for both the store and the stream.
fn on_cluster(mut settings: Settings, cluster: &TestCluster) -> Settings {
    settings.store.redis_url = Some(cluster.urls().to_owned());
    settings.stream.redis_url = Some(cluster.urls().to_owned());
    settings.store.cluster = true;
    settings.stream.cluster = true;
    settings
}

/// Every read route a client uses, for the players and boards the run touched.
async fn answers(app: &TestApp, players: &[String]) -> Vec<(String, u16, Value)> {
    let mut paths = vec![
        "/v1/products".to_owned(),
        "/leaderboards/top_ten/exrps".to_owned(),
        "/v1/products/exrps/boards".to_owned(),
    ];
    let (_, boards) = app.get_json("/v1/products/exrps/boards").await;
    let boards: Vec<String> = boards["boards"]
        .as_array()
        .expect("boards")
        .iter()
        .filter_map(|board| board["name"].as_str().map(str::to_owned))
        .collect();
    assert!(
        !boards.is_empty(),
        "the example games file has exrps boards"
    );
    let friends: String = players
        .iter()
        .take(6)
        .map(|player| format!("user_id={}", urlencode(player)))
        .collect::<Vec<_>>()
        .join("&");
    for board in &boards {
        let base = format!("/v1/products/exrps/boards/{board}");
        paths.push(format!("{base}/entries?limit=7"));
        paths.push(format!("{base}/entries?limit=5&offset=3&ranking=dense"));
        paths.push(format!("{base}/entries?window=daily&ranking=ordinal"));
        paths.push(format!("{base}/ranks?{friends}"));
        for player in players.iter().take(4) {
            let player = urlencode(player);
            paths.push(format!("{base}/players/{player}?around=2"));
            paths.push(format!("{base}/players/{player}/rating"));
            paths.push(format!("{base}/players/{player}/history?limit=3"));
        }
    }
    for player in players.iter().take(6) {
        let player = urlencode(player);
        paths.push(format!("/stats/exrps/{player}"));
        paths.push(format!("/v1/products/exrps/players/{player}/stats"));
    }
    let mut answers = Vec::new();
    for path in paths {
        let (status, body) = app.get_json(&path).await;
        answers.push((path, status, body));
    }
    let (status, letters) = send(
        app,
        reqwest::Method::GET,
        "/v1/admin/dead-letters?limit=1000",
        Some(ADMIN),
        None,
    )
    .await;
    let mut letters = letters;
    // A letter's own id is the moment it was written: it differs between two stores.
    letters.as_object_mut().map(|page| page.remove("next"));
    for letter in letters["letters"].as_array_mut().into_iter().flatten() {
        letter.as_object_mut().map(|letter| letter.remove("id"));
    }
    answers.push(("dead letters".to_owned(), status, letters));
    answers
}

fn assert_same_answers(single: &[(String, u16, Value)], cluster: &[(String, u16, Value)]) {
    assert_eq!(single.len(), cluster.len());
    for ((path, status, body), (_, cluster_status, cluster_body)) in single.iter().zip(cluster) {
        assert_eq!(status, cluster_status, "{path}: {body} vs {cluster_body}");
        if let Some(difference) = first_difference("", body, cluster_body) {
            panic!("{path}: one server vs cluster differ at {difference}");
        }
    }
}

/// Where two JSON values first differ: a JSON pointer and the two values there.
fn first_difference(at: &str, left: &Value, right: &Value) -> Option<String> {
    match (left, right) {
        (Value::Object(l), Value::Object(r)) if l.len() == r.len() => {
            l.iter().find_map(|(k, v)| {
                let at = format!("{at}/{k}");
                match r.get(k) {
                    Some(w) => first_difference(&at, v, w),
                    None => Some(format!("{at}: missing on the right")),
                }
            })
        }
        (Value::Array(l), Value::Array(r)) if l.len() == r.len() => l
            .iter()
            .zip(r)
            .enumerate()
            .find_map(|(i, (v, w))| first_difference(&format!("{at}/{i}"), v, w)),
        _ if left == right => None,
        _ => Some(format!("{at}: {left} vs {right}")),
    }
}

#[tokio::test]
async fn every_route_answers_on_a_cluster_as_on_one_server() {
    let (cluster, redis) = tokio::join!(TestCluster::start(), TestRedis::start());
    let mut single_settings = settings(&redis);
    single_settings.games.file = Some(crate::helpers::example_games_file());
    single_settings.server.admin_token = Some(Secret::new(ADMIN));
    single_settings.server.ingest_token = Some(Secret::new(INGEST));
    let cluster_settings = on_cluster(single_settings.clone(), &cluster);
    let single = TestApp::spawn(&single_settings, true).await;
    let on_cluster = TestApp::spawn(&cluster_settings, true).await;

    // The same events with the same stream ids on both: ids and event times show in
    // answers (rating histories, dead letters, period boards).
    let (events, bad) = mixed_run(31, 400, 24, 4);
    assert!(!bad.is_empty(), "the run has bad events");
    let at_ms = chrono::Utc::now().timestamp_millis() as u64;
    let mut single_stream = redis.connection(1).await;
    let mut cluster_stream = cluster.connection();
    let single_ids = push_events_at(&mut single_stream, &events, Some(at_ms)).await;
    let cluster_ids = push_events_at(&mut cluster_stream, &events, Some(at_ms)).await;
    assert_eq!(single_ids, cluster_ids);
    wait_until_drained(&mut single_stream, Duration::from_secs(60)).await;
    wait_until_drained(&mut cluster_stream, Duration::from_secs(60)).await;

    let players = players(24);
    let before = answers(&single, &players).await;
    let dead_letters = &before.last().expect("dead letters").2;
    assert_eq!(
        dead_letters["total"].as_u64(),
        Some(bad.len() as u64),
        "{dead_letters}"
    );
    assert_same_answers(&before, &answers(&on_cluster, &players).await);

    // The store is spread over the masters: products, dead letters and the stream each
    // have their own slots.
    let mut masters_with_keys = 0;
    let mut conn = cluster.connection();
    for master in conn
        .cluster_masters()
        .await
        .expect("masters")
        .expect("a cluster")
    {
        let size: u64 = conn
            .query_node(Some(&master), &redis::cmd("DBSIZE"))
            .await
            .expect("DBSIZE");
        masters_with_keys += usize::from(size > 0);
    }
    assert!(
        masters_with_keys >= 2,
        "keys on {masters_with_keys} master(s)"
    );

    // Admin writes and ingest, the same on both.
    let victim = urlencode(&players[1]);
    let ingested = json!([
        {"product_id": "exrps", "game_id": "late-1", "type": "game_over", "winner_id": players[2], "loser_id": players[3]},
        {"product_id": "exrps", "game_id": "late-2", "type": "game_over", "winner_id": players[4], "loser_id": players[2]},
    ]);
    for app in [&single, &on_cluster] {
        let (status, body) = send(
            app,
            reqwest::Method::DELETE,
            &format!("/v1/admin/players/{victim}"),
            Some(ADMIN),
            None,
        )
        .await;
        assert_eq!(status, 200, "{body}");
        let (status, body) = send(
            app,
            reqwest::Method::DELETE,
            "/v1/admin/products/exrps/boards/wins",
            Some(ADMIN),
            None,
        )
        .await;
        assert_eq!(status, 200, "{body}");
        let (status, body) = send(
            app,
            reqwest::Method::POST,
            "/v1/events",
            Some(INGEST),
            Some(ingested.clone()),
        )
        .await;
        assert_eq!(status, 202, "{body}");
        let (status, body) = send(
            app,
            reqwest::Method::POST,
            "/v1/admin/dead-letters/redrive",
            Some(ADMIN),
            Some(json!({"reason": "unknown event type", "limit": 3})),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["redriven"].as_array().map(Vec::len), Some(3), "{body}");
    }
    wait_until_drained(&mut single_stream, Duration::from_secs(60)).await;
    wait_until_drained(&mut cluster_stream, Duration::from_secs(60)).await;
    let single_after = answers(&single, &players).await;
    let cluster_after = answers(&on_cluster, &players).await;
    // Ingested and re-driven entries get new stream ids, which differ between the two;
    // the answers that show them (histories, letters) are compared without the ids.
    let without_ids = |answers: Vec<(String, u16, Value)>| -> Vec<(String, u16, Value)> {
        answers
            .into_iter()
            .map(|(path, status, mut body)| {
                strip_ids(&mut body);
                (path, status, body)
            })
            .collect()
    };
    let cluster_after = without_ids(cluster_after);
    assert_same_answers(&without_ids(single_after), &cluster_after);
    let (status, _) = on_cluster.get_json("/readyz").await;
    assert_eq!(status, 200);

    // A server reading from the replicas answers the same once they have caught up (within
    // their replication delay: milliseconds here).
    let mut replica_settings = cluster_settings.clone();
    replica_settings.store.read_from_replicas = true;
    let from_replicas = TestApp::spawn(&replica_settings, false).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let answers = without_ids(answers(&from_replicas, &players).await);
        if answers == cluster_after {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "reads from replicas never caught up"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    from_replicas.stop().await;
    assert!(
        replica_reads(&cluster).await > 0,
        "the replicas answered no reads"
    );

    single.stop().await;
    on_cluster.stop().await;
}

/// Calls of read commands the cluster's replicas answered (`INFO commandstats`).
async fn replica_reads(cluster: &TestCluster) -> u64 {
    let mut conn = cluster.connection();
    let slots: Vec<Vec<redis::Value>> = redis::cmd("CLUSTER")
        .arg("SLOTS")
        .query_async(&mut conn)
        .await
        .expect("CLUSTER SLOTS");
    let mut calls = 0;
    for row in slots {
        for replica in row.iter().skip(3) {
            let redis::Value::Array(node) = replica else {
                continue;
            };
            let host: String = redis::from_redis_value_ref(&node[0]).expect("host");
            let port: u16 = redis::from_redis_value_ref(&node[1]).expect("port");
            let stats: String = conn
                .query_node(Some(&(host, port)), redis::cmd("INFO").arg("commandstats"))
                .await
                .expect("INFO commandstats");
            for line in stats.lines() {
                let Some((name, values)) = line.split_once(':') else {
                    continue;
                };
                let read = [
                    "zrange", "zscore", "zcount", "zcard", "hgetall", "hmget", "lrange",
                ]
                .iter()
                .any(|command| name == format!("cmdstat_{command}"));
                if read {
                    calls += values
                        .split(',')
                        .find_map(|field| field.strip_prefix("calls="))
                        .and_then(|n| n.parse::<u64>().ok())
                        .unwrap_or(0);
                }
            }
        }
    }
    calls
}

/// Removes what differs between two stores fed the same events at different moments: stream
/// ids and their times.
fn strip_ids(value: &mut Value) {
    match value {
        Value::Object(map) => {
            for name in ["id", "at_ms", "rated_at_ms", "source_id", "next"] {
                map.remove(name);
            }
            map.values_mut().for_each(strip_ids);
        }
        Value::Array(items) => items.iter_mut().for_each(strip_ids),
        // Re-driven letters carry their letter's id among their fields.
        Value::String(text) if is_stream_id(text) => *text = "<stream id>".to_owned(),
        _ => {}
    }
}

fn is_stream_id(text: &str) -> bool {
    text.split_once('-').is_some_and(|(ms, seq)| {
        [ms, seq]
            .iter()
            .all(|part| !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit()))
    })
}

#[tokio::test]
async fn a_cluster_store_equals_the_reference_model() {
    let cluster = TestCluster::start().await;
    let dir = tempfile::tempdir().expect("temporary directory");
    let games_file = dir.path().join("games.toml");
    std::fs::write(&games_file, CHAOS_GAMES).expect("games file");
    let mut settings = cluster_settings(&cluster);
    settings.games.file = Some(games_file);
    settings.stream.batch_size = 50;
    settings.worker.entries_per_script_call = 9;
    let app = TestApp::spawn(&settings, true).await;
    let (events, bad) = mixed_run(32, 600, 40, 5);
    let mut conn = cluster.connection();
    let ids = push_events_at(&mut conn, &events, None).await;
    wait_until_drained(&mut conn, Duration::from_secs(60)).await;
    let model = assert_run_matches(
        Model::with_exrps_elo(20.0, 1200.0),
        &mut conn,
        &settings.store.key_prefix,
        &events,
        &bad,
        &ids,
    )
    .await;
    assert!(!model.elo.is_empty() && !model.boards.is_empty());
    assert!(
        conn.keys(&format!("{}:*", settings.store.key_prefix))
            .await
            .len()
            > 100
    );
    app.stop().await;
}

#[tokio::test]
async fn validation_reads_scores_of_several_products_in_one_batch_on_a_cluster() {
    let cluster = TestCluster::start().await;
    let dir = tempfile::tempdir().expect("temporary directory");
    let games_file = dir.path().join("games.toml");
    // Products in different hash slots, each with a board whose rule reads the current best.
    let products = ["alpha", "bravo", "charlie", "delta"];
    let mut games = String::new();
    for product in products {
        games.push_str(&format!(
            "[products.{product}]\nboards = [{{ name = \"best\", kind = \"max\", when = {{ type = \"gameplay\", event_name = \"score\" }}, player = \"user_id\", field = \"event_data\", validate = {{ max_change = 10 }} }}]\n"
        ));
    }
    std::fs::write(&games_file, games).expect("games file");
    let mut settings = cluster_settings(&cluster);
    settings.games.file = Some(games_file);
    let score = |product: &str, value: &str| {
        crate::helpers::event(&[
            ("product_id", product),
            ("type", "gameplay"),
            ("event_name", "score"),
            ("event_data", value),
            ("user_id", "P"),
        ])
    };
    let mut conn = cluster.connection();
    // Two runs: the second loads every product's score from the cluster in its first batch.
    let app = TestApp::spawn(&settings, true).await;
    let first: Vec<_> = products.iter().map(|product| score(product, "5")).collect();
    push_events_at(&mut conn, &first, None).await;
    wait_until_drained(&mut conn, Duration::from_secs(30)).await;
    app.stop().await;
    let app = TestApp::spawn(&settings, true).await;
    // 12 is within 10 of 5; 40 is not.
    let second: Vec<_> = products
        .iter()
        .flat_map(|product| [score(product, "12"), score(product, "40")])
        .collect();
    push_events_at(&mut conn, &second, None).await;
    wait_until_drained(&mut conn, Duration::from_secs(30)).await;
    for product in products {
        let (status, body) = app
            .get_json(&format!("/v1/products/{product}/boards/best/players/P"))
            .await;
        assert_eq!(
            (status, body["score"].as_f64()),
            (200, Some(12.0)),
            "{body}"
        );
    }
    let series = |product: &str| {
        format!(
            "stats_tracker_worker_dead_letters_total{{product=\"{product}\",reason=\"change_too_large\"}}"
        )
    };
    for product in products {
        assert_eq!(crate::helpers::metric(&app, &series(product)).await, 1.0);
    }
    app.stop().await;
}
