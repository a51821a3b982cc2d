//! A product's own windows (a cron schedule at a UTC offset) and its seasons: boundaries at
//! the right instant, archives readable after a season ends, a rating board's soft reset.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use chrono::{DateTime, Timelike, Utc};
use serde_json::Value;

use crate::helpers::{
    TestApp, TestRedis, game_over, push_events_at, settings_with_games, wait_until_drained,
};

fn ms(at: DateTime<Utc>) -> u64 {
    u64::try_from(at.timestamp_millis()).expect("after 1970")
}

fn rfc3339(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// `user_id` → score of a page's entries.
fn scores(page: &Value) -> Vec<(String, f64)> {
    page["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .map(|row| {
            (
                row["user_id"].as_str().expect("user_id").to_owned(),
                row["score"].as_f64().expect("score"),
            )
        })
        .collect()
}

async fn get_ok(app: &TestApp, path: &str) -> Value {
    let (status, body) = app.get_json(path).await;
    assert_eq!(status, 200, "{path}: {body}");
    body
}

async fn error_code(app: &TestApp, path: &str) -> (u16, String) {
    let (status, body) = app.get_json(path).await;
    let code = body["error"]["code"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    (status, code)
}

/// Elo's update of `rating` against `opponent` with result `score` (k = 32), written out
/// independently of the rating library.
fn elo(rating: f64, opponent: f64, score: f64) -> f64 {
    let expected = 1.0 / (1.0 + 10f64.powf((opponent - rating) / 400.0));
    rating + 32.0 * (score - expected)
}

#[tokio::test]
async fn a_cron_window_at_utc_plus_9_rolls_over_at_four_in_the_morning_tokyo_time() {
    let redis = TestRedis::start().await;
    let games = r#"
[products.tokyo]
windows = { tokyo_day = { cron = "0 4 * * *", utc_offset = "+09:00", retention = 2 } }
boards = [{ name = "wins", kind = "wins", windows = ["daily", "tokyo_day"] }]
"#;
    let clock = Arc::new(AtomicU64::new(0));
    let app = TestApp::spawn_with_clock(
        &settings_with_games(&redis, games),
        true,
        Some(clock.clone()),
    )
    .await;
    let mut stream = redis.connection(1).await;
    // 04:00 in Tokyo is 19:00 UTC; the boundary is the last one at least a day ago.
    let now = Utc::now();
    let mut boundary = now
        .with_hour(19)
        .and_then(|at| at.with_minute(0))
        .and_then(|at| at.with_second(0))
        .and_then(|at| at.with_nanosecond(0))
        .expect("19:00");
    while boundary > now - chrono::Duration::days(1) {
        boundary -= chrono::Duration::days(1);
    }
    let before = boundary - chrono::Duration::milliseconds(1);
    push_events_at(
        &mut stream,
        &[game_over("tokyo", "Late", "X")],
        Some(ms(before)),
    )
    .await;
    push_events_at(
        &mut stream,
        &[game_over("tokyo", "Early", "Y")],
        Some(ms(boundary)),
    )
    .await;
    wait_until_drained(&mut stream, Duration::from_secs(10)).await;

    // The label of the period holding `at`: the Tokyo date of its 04:00 start.
    let tokyo = |at: DateTime<Utc>| {
        (at + chrono::Duration::hours(9 - 4))
            .format("%Y-%m-%dT04:00+09:00")
            .to_string()
    };
    let base = "/v1/products/tokyo/boards/wins/entries?window=tokyo_day";
    // The server's clock just before the boundary: the period that ends at it.
    clock.store(ms(before), Ordering::SeqCst);
    let closing = get_ok(&app, base).await;
    assert_eq!(closing["window"], "tokyo_day");
    assert_eq!(closing["period"], tokyo(before));
    assert_eq!(closing["ends_at"], rfc3339(boundary));
    assert_eq!(
        closing["starts_at"],
        rfc3339(boundary - chrono::Duration::days(1))
    );
    assert_eq!(
        scores(&closing),
        vec![("Late".into(), 1.0), ("X".into(), 0.0)]
    );
    // At the boundary: the next period, holding the game played at that instant only.
    clock.store(ms(boundary), Ordering::SeqCst);
    let opening = get_ok(&app, base).await;
    let label = tokyo(boundary);
    assert_eq!(opening["period"], label);
    assert_eq!(opening["starts_at"], rfc3339(boundary));
    assert_eq!(
        scores(&opening),
        vec![("Early".into(), 1.0), ("Y".into(), 0.0)]
    );
    // Labels name periods: with the `+` percent-encoded, or sent bare (it arrives as a space).
    let encoded = label.replace('+', "%2B");
    for period in [encoded.as_str(), label.as_str()] {
        let named = get_ok(&app, &format!("{base}&period={period}")).await;
        assert_eq!(named["period"], label, "{period}");
        assert_eq!(named["total"], 2);
    }
    // The UTC day of both games is the same calendar day on the daily board.
    if before.date_naive() == boundary.date_naive() {
        let daily = get_ok(
            &app,
            &format!(
                "/v1/products/tokyo/boards/wins/entries?window=daily&period={}",
                boundary.format("%Y-%m-%d")
            ),
        )
        .await;
        assert_eq!(daily["total"], 4);
    }
    // A time that is no period's start, and a label in another form, are refused.
    let not_a_start = label.replace("T04:00", "T05:00").replace('+', "%2B");
    for period in [not_a_start.as_str(), "2026-12-01"] {
        assert_eq!(
            error_code(&app, &format!("{base}&period={period}")).await,
            (400, "invalid_query".into()),
            "{period}"
        );
    }
    // The period expires two periods (days) after it ends.
    let mut store = redis.connection(0).await;
    let key = format!("st_test:{{tokyo}}:board:wins@tokyo_day:{label}");
    let expires: i64 = redis::cmd("EXPIRETIME")
        .arg(&key)
        .query_async(&mut store)
        .await
        .expect("EXPIRETIME");
    assert_eq!(
        expires,
        (boundary + chrono::Duration::days(3)).timestamp(),
        "{key}"
    );
    // The boards' description names the schedule and its zone.
    let boards = get_ok(&app, "/v1/products/tokyo/boards").await;
    let windows = &boards["boards"][0]["windows"];
    assert_eq!(windows[1]["window"], "tokyo_day");
    assert_eq!(windows[1]["cron"], "0 4 * * *");
    assert_eq!(windows[1]["zone"], "+09:00");
    assert_eq!(windows[1]["retention"], 2);
    app.stop().await;
}

#[tokio::test]
async fn seasons_keep_their_final_standings_and_ratings_start_from_a_soft_reset() {
    let redis = TestRedis::start().await;
    let now = Utc::now();
    let day = chrono::Duration::days(1);
    let (s1_start, s2_start, s2_end) = (now - day * 20, now - day * 10, now + day * 10);
    let games = format!(
        r#"
[products.league]
seasons = [
  {{ name = "s2", start = "{s2_start}", end = "{s2_end}" }},
  {{ name = "s1", start = {s1_start}, end = {s2_start} }},
]
boards = [
  {{ name = "wins", kind = "wins", windows = [], feed = {{ top = 3 }} }},
  {{ name = "elo", kind = "elo", initial_rating = 1500.0, seasons = true, season_reset = 0.5 }},
  {{ name = "plain_elo", kind = "elo", initial_rating = 1500.0 }},
]
"#,
        s1_start = rfc3339(s1_start),
        s2_start = rfc3339(s2_start),
        s2_end = rfc3339(s2_end),
    );
    let clock = Arc::new(AtomicU64::new(ms(now)));
    let app = TestApp::spawn_with_clock(
        &settings_with_games(&redis, &games),
        true,
        Some(clock.clone()),
    )
    .await;
    let mut stream = redis.connection(1).await;
    // Season 1: A beats B three times; season 2: A beats B once more.
    let in_s1 = s1_start + day * 5;
    for game in 0..3 {
        push_events_at(
            &mut stream,
            &[game_over("league", "A", "B")],
            Some(ms(in_s1) + game),
        )
        .await;
    }
    let in_s2 = now - chrono::Duration::hours(1);
    push_events_at(
        &mut stream,
        &[game_over("league", "A", "B")],
        Some(ms(in_s2)),
    )
    .await;
    wait_until_drained(&mut stream, Duration::from_secs(10)).await;

    // The reference: Elo from 1500 through season 1, then both pulled halfway back.
    let (mut a, mut b) = (1500.0, 1500.0);
    for _ in 0..3 {
        (a, b) = (elo(a, b, 1.0), elo(b, a, 0.0));
    }
    let (s1_a, s1_b) = (a, b);
    let (reset_a, reset_b) = (1500.0 + (a - 1500.0) / 2.0, 1500.0 + (b - 1500.0) / 2.0);
    let (s2_a, s2_b) = (elo(reset_a, reset_b, 1.0), elo(reset_b, reset_a, 0.0));
    let close = |got: &[(String, f64)], want: &[(&str, f64)]| {
        assert_eq!(got.len(), want.len(), "{got:?}");
        for ((user, score), (want_user, want_score)) in got.iter().zip(want) {
            assert_eq!(user, want_user);
            assert!(
                (score - want_score).abs() < 1e-6,
                "{user}: {score} vs {want_score}"
            );
        }
    };

    let board =
        |name: &str, query: &str| format!("/v1/products/league/boards/{name}/entries?{query}");
    // Season 1 is over and still readable, by `season` or as a period of the `season` window.
    let s1 = get_ok(&app, &board("wins", "season=s1")).await;
    assert_eq!(s1["window"], "season");
    assert_eq!(s1["period"], "s1");
    assert_eq!(s1["ends_at"], rfc3339(s2_start));
    assert_eq!(scores(&s1), vec![("A".into(), 3.0), ("B".into(), 0.0)]);
    let same = get_ok(&app, &board("wins", "window=season&period=s1")).await;
    assert_eq!(same["entries"], s1["entries"]);
    close(
        &scores(&get_ok(&app, &board("elo", "season=s1")).await),
        &[("A", s1_a), ("B", s1_b)],
    );
    // The current season, by the server's clock; all-time counts every season.
    let current = get_ok(&app, &board("wins", "window=season")).await;
    assert_eq!(current["period"], "s2");
    assert_eq!(scores(&current), vec![("A".into(), 1.0), ("B".into(), 0.0)]);
    assert_eq!(
        scores(&get_ok(&app, &board("wins", "")).await),
        vec![("A".into(), 4.0), ("B".into(), 0.0)]
    );
    // Season 2's ratings start from the soft reset; the all-time board shows them too.
    close(
        &scores(&get_ok(&app, &board("elo", "season=s2")).await),
        &[("A", s2_a), ("B", s2_b)],
    );
    close(
        &scores(&get_ok(&app, &board("elo", "")).await),
        &[("A", s2_a), ("B", s2_b)],
    );
    let rating = get_ok(&app, "/v1/products/league/boards/elo/players/A/rating").await;
    assert_eq!(rating["state"]["season"], "s2");
    assert_eq!(rating["state"]["matches"], 4);
    // A rating board without seasons carries ratings over and keeps no season boards.
    let (mut plain_a, mut plain_b) = (s1_a, s1_b);
    (plain_a, plain_b) = (elo(plain_a, plain_b, 1.0), elo(plain_b, plain_a, 0.0));
    close(
        &scores(&get_ok(&app, &board("plain_elo", "")).await),
        &[("A", plain_a), ("B", plain_b)],
    );
    assert_eq!(
        error_code(&app, &board("plain_elo", "season=s1")).await,
        (404, "window_not_kept".into())
    );

    // Season boards are kept for good.
    let mut store = redis.connection(0).await;
    for key in [
        "st_test:{league}:board:wins@season:s1",
        "st_test:{league}:board:elo@season:s1",
    ] {
        let ttl: i64 = redis::cmd("TTL")
            .arg(key)
            .query_async(&mut store)
            .await
            .expect("TTL");
        assert_eq!(ttl, -1, "{key}");
    }
    // The feed announced season 1's close when season 2 got its first score.
    let feed: Vec<(String, Vec<(String, String)>)> = redis::cmd("XRANGE")
        .arg("st_test:{league}:feed")
        .arg("-")
        .arg("+")
        .query_async(&mut store)
        .await
        .expect("XRANGE");
    let closed: Vec<&Vec<(String, String)>> = feed
        .iter()
        .map(|(_, fields)| fields)
        .filter(|fields| fields.contains(&("type".into(), "period_closed".into())))
        .collect();
    assert_eq!(closed.len(), 1, "{feed:?}");
    assert!(
        closed[0].contains(&("period".into(), "season:s1".into())),
        "{closed:?}"
    );
    // Between or after seasons no season is current; unknown seasons and mixed forms are refused.
    clock.store(ms(s2_end + day), Ordering::SeqCst);
    assert_eq!(
        error_code(&app, &board("wins", "window=season")).await,
        (404, "period_not_found".into())
    );
    assert_eq!(
        error_code(&app, &board("wins", "season=s3")).await,
        (404, "period_not_found".into())
    );
    for query in ["season=s1&period=s1", "window=daily&season=s1"] {
        assert_eq!(
            error_code(&app, &board("wins", query)).await.0,
            400,
            "{query}"
        );
    }
    // The description lists the seasons.
    let boards = get_ok(&app, "/v1/products/league/boards").await;
    let seasons = &boards["boards"][0]["windows"][0];
    assert_eq!(seasons["window"], "season");
    assert_eq!(seasons["seasons"][0]["name"], "s1");
    assert_eq!(seasons["seasons"][1]["ends_at"], rfc3339(s2_end));
    assert_eq!(seasons["retention"], Value::Null);
    app.stop().await;
}
