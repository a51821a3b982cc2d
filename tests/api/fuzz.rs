//! Generated bad input through the real tracker: hostile events through the worker, and
//! arbitrary requests against every route. Never a panic, a stall or a 5xx.

use std::time::Duration;

use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::TestRunner;
use stats_tracker::core::event::RawEntry;
use stats_tracker::workers::plan::{Known, Outcome, Rules, needs, parse, plan};

use crate::helpers::{STREAM, TestApp, TestRedis, dead_letters, settings, wait_until_drained};

/// `base` in CI; times `FUZZ_SCALE` for the long run (scripts/chaos).
fn scale(base: usize) -> usize {
    let factor: usize = std::env::var("FUZZ_SCALE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    base * factor.max(1)
}

fn hostile_value() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        3 => prop::sample::select(vec![
            "exrps", "game_over", "gameplay", "draw", "match_result", "select_weapon", "0", "5",
            "null", "", "A", "B", "игрок:ユーザー✓", "a{b}c", "x y", "99999999999999999999999",
            r#"[{"place":1,"players":["A"]},{"place":2,"players":["B"]}]"#,
        ])
        .prop_map(|s| s.as_bytes().to_vec()),
        1 => prop::collection::vec(any::<u8>(), 0..30),
        1 => Just(vec![b'z'; 5000]),
    ]
}

fn hostile_event() -> impl Strategy<Value = Vec<(Vec<u8>, Vec<u8>)>> {
    let name = prop::sample::select(vec![
        "product_id",
        "type",
        "winner_id",
        "loser_id",
        "user_id",
        "event_name",
        "event_data",
        "p1_id",
        "p2_id",
        "teams",
        "game_id",
    ])
    .prop_map(|s| s.as_bytes().to_vec());
    // Redis refuses an entry without fields, so at least one.
    prop::collection::vec((name, hostile_value()), 1..8)
}

#[tokio::test]
async fn hostile_events_through_the_worker_are_applied_or_dead_lettered() {
    let redis = TestRedis::start().await;
    let settings = settings(&redis);
    let app = TestApp::spawn(&settings, true).await;
    let mut stream = redis.connection(1).await;
    let mut runner = TestRunner::deterministic();
    let strategy = prop::collection::vec(hostile_event(), scale(300));
    let events = strategy.new_tree(&mut runner).expect("generate").current();
    let mut entries = Vec::new();
    for fields in &events {
        let mut cmd = redis::cmd("XADD");
        cmd.arg(STREAM).arg("*");
        for (name, value) in fields {
            cmd.arg(name.as_slice()).arg(value.as_slice());
        }
        let id: String = cmd.query_async(&mut stream).await.expect("XADD");
        entries.push(RawEntry {
            id,
            fields: fields.clone(),
        });
    }
    wait_until_drained(&mut stream, Duration::from_secs(20 * scale(1) as u64)).await;

    // Exactly the entries planning rejects are dead letters, each once, in order.
    let rules = Rules::builtin();
    let mut known = Known::default();
    let parsed = parse(&entries);
    let wanted = needs(&parsed, &rules, &known);
    known
        .positions
        .extend(wanted.positions.into_iter().map(|p| (p, None)));
    let batch = plan(&parsed, &[], &rules, &mut known);
    let expected: Vec<&str> = entries
        .iter()
        .zip(&batch.outcomes)
        .filter(|(_, o)| o.outcome == Outcome::DeadLettered)
        .map(|(e, _)| e.id.as_str())
        .collect();
    let mut store = redis.connection(0).await;
    let letters = dead_letters(&mut store, "st_test").await;
    let actual: Vec<&str> = letters.iter().map(|(id, _, _)| id.as_str()).collect();
    assert_eq!(actual, expected);
    assert!(
        expected.len() > 100,
        "the generator should produce many bad events"
    );
    // And the worker is still working.
    assert_eq!(app.get_json("/readyz").await.0, 200);
    app.stop().await;
}

fn segment() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => prop::sample::select(vec![
            "leaderboards", "top_ten", "stats", "v1", "products", "boards", "players", "rating",
            "history", "predict", "exrps", "wins", "elo", "A", "metrics", "readyz", "healthz",
        ])
        .prop_map(str::to_owned),
        3 => prop::sample::select(vec!["exrps", "arena", "elo", "skill", "trueskill", "wins", "A", "B"])
            .prop_map(str::to_owned),
        1 => "[a-zA-Z0-9%:{}. -]{0,20}",
        1 => "%[0-9A-F]{2}%[0-9A-F]{2}",
        1 => Just("x".repeat(300)),
        1 => "\\PC{1,10}".prop_map(|s| percent_encoding::utf8_percent_encode(&s, percent_encoding::NON_ALPHANUMERIC).to_string()),
    ]
}

#[derive(Debug, Clone)]
struct Request {
    method: reqwest::Method,
    path: String,
    query: String,
    body: Vec<u8>,
    content_type: Option<String>,
    header: Option<(String, String)>,
}

fn request() -> impl Strategy<Value = Request> {
    (
        prop_oneof![
            6 => Just(reqwest::Method::GET),
            3 => Just(reqwest::Method::POST),
            1 => prop::sample::select(vec![
                reqwest::Method::PUT,
                reqwest::Method::DELETE,
                reqwest::Method::OPTIONS,
                reqwest::Method::HEAD,
            ]),
        ],
        prop_oneof![
            // Real routes with arbitrary parameters, and arbitrary paths.
            4 => (
                prop::sample::select(vec![
                    "/leaderboards/top_ten/{}",
                    "/stats/{}/{}",
                    "/v1/products/{}/boards/{}/players/{}/rating",
                    "/v1/products/{}/boards/{}/players/{}/history",
                    "/v1/products/{}/boards/{}/predict",
                    "/v1/products/{}/boards/{}/entries",
                    "/v1/products/exrps/boards/wins/entries",
                    "/v1/products/exrps/boards/{}/entries",
                    "/v1/products/exrps/boards/wins/players/{}",
                    "/v1/products/exrps/boards/wins/ranks",
                    "/v1/products/{}/boards/{}/ranks",
                    "/healthz",
                    "/readyz",
                    "/metrics",
                    "/openapi.json",
                    "/docs",
                    "/docs/{}",
                ]),
                prop::collection::vec(segment(), 3),
            )
                .prop_map(|(template, params)| {
                    let mut path = template.to_owned();
                    for param in params {
                        path = path.replacen("{}", &param, 1);
                    }
                    path
                }),
            1 => prop::collection::vec(segment(), 0..8).prop_map(|s| format!("/{}", s.join("/"))),
        ],
        prop_oneof![
            Just(String::new()),
            Just("limit=5".to_owned()),
            Just("limit=100000".to_owned()),
            Just("limit=-1".to_owned()),
            Just("window=weekly&period=2026-W53".to_owned()),
            Just("window=monthly&period=0000-00".to_owned()),
            Just("after=7f&ranking=dense".to_owned()),
            Just("user_id=A&user_id=%FF&around=99999999999999999999".to_owned()),
            "[a-z_=&%0-9]{0,30}",
        ],
        prop_oneof![
            Just(Vec::new()),
            Just(br#"{"teams": [["A"], ["B"]]}"#.to_vec()),
            Just(br#"{"teams": [[], 5]}"#.to_vec()),
            prop::collection::vec(any::<u8>(), 0..200),
        ],
        prop::option::of(prop::sample::select(vec![
            "application/json".to_owned(),
            "text/plain".to_owned(),
            "application/json; charset=utf-8".to_owned(),
        ])),
        prop::option::of((
            prop::sample::select(vec![
                "authorization".to_owned(),
                "accept".to_owned(),
                "origin".to_owned(),
                "x-forwarded-for".to_owned(),
                "content-encoding".to_owned(),
                "transfer-encoding".to_owned(),
            ]),
            "[ -~]{0,60}",
        )),
    )
        .prop_map(
            |(method, path, query, body, content_type, header)| Request {
                method,
                path,
                header,
                query,
                body,
                content_type,
            },
        )
}

#[tokio::test]
async fn arbitrary_requests_never_get_a_5xx_or_hang() {
    let redis = TestRedis::start().await;
    let mut settings = settings(&redis);
    settings.games.file = Some(crate::helpers::example_games_file());
    let app = TestApp::spawn(&settings, false).await;
    let mut runner = TestRunner::deterministic();
    let strategy = request();
    let mut statuses = std::collections::BTreeMap::<u16, usize>::new();
    for _ in 0..scale(1500) {
        let request = strategy.new_tree(&mut runner).expect("generate").current();
        let url = if request.query.is_empty() {
            format!("{}{}", app.address, request.path)
        } else {
            format!("{}{}?{}", app.address, request.path, request.query)
        };
        let mut builder = app
            .http
            .request(request.method.clone(), &url)
            .body(request.body.clone());
        if let Some(content_type) = &request.content_type {
            builder = builder.header("content-type", content_type);
        }
        if let Some((name, value)) = &request.header {
            builder = builder.header(name.as_str(), value.as_str());
        }
        let response = tokio::time::timeout(Duration::from_secs(5), builder.send())
            .await
            .unwrap_or_else(|_| panic!("hung on {request:?}"))
            .unwrap_or_else(|e| panic!("{request:?}: {e}"));
        let status = response.status().as_u16();
        *statuses.entry(status).or_default() += 1;
        assert!(status < 500, "{status} for {request:?}");
        if status >= 400 && request.method != reqwest::Method::HEAD {
            let body: serde_json::Value = response
                .json()
                .await
                .unwrap_or_else(|e| panic!("non-JSON error body for {request:?}: {e}"));
            assert!(body["error"]["code"].is_string(), "{request:?}: {body}");
        }
    }
    eprintln!("statuses: {statuses:?}");
    assert!(
        statuses.keys().any(|s| *s == 200),
        "no request succeeded: {statuses:?}"
    );
    app.stop().await;
}
