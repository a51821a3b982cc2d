//! The worker end to end: events on the stream come out right through the HTTP routes.

use std::time::Duration;

use serde_json::json;

use crate::helpers::{
    GROUP, STREAM, TestApp, TestRedis, dead_letters, event, metric, push_events, settings,
    urlencode, wait_until_drained,
};
use crate::traffic::{Event, Model, assert_run_matches, mixed_run};

/// The value of the app's metric sample whose name and labels are `series`, 0 if absent.
/// The recorder is process-wide: compare values before and after, never totals.
/// The realistic exrps match from EVENTS.md, with A and B as given ids.
fn documented_match(a: &str, b: &str) -> Vec<Event> {
    let g = "5b3c2f4e-0000-4000-8000-000000000001";
    let base = [("product_id", "exrps"), ("game_id", g)];
    let with = |rest: &[(&str, &str)]| {
        let mut pairs = base.to_vec();
        pairs.extend_from_slice(rest);
        event(&pairs)
    };
    vec![
        with(&[("type", "state_change"), ("new_state", "creator_joined")]),
        with(&[
            ("type", "state_change"),
            ("new_state", "all_players_joined"),
        ]),
        with(&[
            ("type", "gameplay"),
            ("event_name", "select_fighter"),
            ("event_data", "aru"),
            ("user_id", a),
        ]),
        with(&[
            ("type", "gameplay"),
            ("event_name", "select_fighter"),
            ("event_data", "hog"),
            ("user_id", b),
        ]),
        with(&[
            ("type", "gameplay"),
            ("event_name", "set_ready"),
            ("event_data", ""),
            ("user_id", a),
        ]),
        with(&[
            ("type", "gameplay"),
            ("event_name", "set_ready"),
            ("event_data", ""),
            ("user_id", b),
        ]),
        with(&[
            ("type", "gameplay"),
            ("event_name", "progression"),
            ("progress_event", "round_started"),
            ("p1_id", a),
            ("p2_id", b),
        ]),
        with(&[
            ("type", "gameplay"),
            ("event_name", "select_weapon"),
            ("event_data", "0"),
            ("user_id", a),
        ]),
        with(&[
            ("type", "gameplay"),
            ("event_name", "select_weapon"),
            ("event_data", "1"),
            ("user_id", b),
        ]),
        with(&[
            ("type", "gameplay"),
            ("round_winner_id", b),
            ("round_loser_id", a),
            ("event_name", "progression"),
            ("progress_event", "round_finished"),
            ("p1_id", a),
            ("p2_id", b),
        ]),
        with(&[
            ("type", "gameplay"),
            ("event_name", "progression"),
            ("progress_event", "round_started"),
            ("p1_id", a),
            ("p2_id", b),
        ]),
        with(&[
            ("type", "gameplay"),
            ("event_name", "select_weapon"),
            ("event_data", "2"),
            ("user_id", a),
        ]),
        with(&[
            ("type", "gameplay"),
            ("event_name", "select_weapon"),
            ("event_data", "2"),
            ("user_id", b),
        ]),
        with(&[
            ("type", "gameplay"),
            ("event_name", "select_weapon"),
            ("event_data", "null"),
            ("user_id", a),
        ]),
        with(&[
            ("type", "gameplay"),
            ("event_name", "select_weapon"),
            ("event_data", "0"),
            ("user_id", b),
        ]),
        with(&[
            ("type", "gameplay"),
            ("round_winner_id", b),
            ("round_loser_id", a),
            ("event_name", "progression"),
            ("progress_event", "round_finished"),
            ("p1_id", a),
            ("p2_id", b),
        ]),
        with(&[("type", "game_over"), ("winner_id", b), ("loser_id", a)]),
        with(&[("type", "player_disconnect"), ("player_id", a)]),
        with(&[("type", "game_removed")]),
    ]
}

#[tokio::test]
async fn documented_exrps_match_comes_out_through_the_http_routes() {
    let redis = TestRedis::start().await;
    let settings = settings(&redis);
    let app = TestApp::spawn(&settings, true).await;
    let mut stream = redis.connection(1).await;
    let a = "steam:76561198000000001";
    let b = "игрок:ユーザー✓";
    push_events(&mut stream, &documented_match(a, b)).await;
    wait_until_drained(&mut stream, Duration::from_secs(10)).await;

    let (status, top) = app.get_json("/leaderboards/top_ten/exrps").await;
    assert_eq!(status, 200);
    assert_eq!(
        top,
        json!([{"user_id": b, "score": 1}, {"user_id": a, "score": 0}])
    );

    let (status, stats_b) = app
        .get_json("/stats/exrps/%D0%B8%D0%B3%D1%80%D0%BE%D0%BA:%E3%83%A6%E3%83%BC%E3%82%B6%E3%83%BC%E2%9C%93")
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        stats_b,
        json!({"games": "1", "wins": "1", "losses": "0", "paper_selection_count": "1",
               "scissors_selection_count": "1", "rock_selection_count": "1"})
    );
    let (_, stats_a) = app.get_json("/stats/exrps/steam:76561198000000001").await;
    assert_eq!(
        stats_a,
        json!({"games": "1", "wins": "0", "losses": "1", "rock_selection_count": "1",
               "scissors_selection_count": "1", "botch_selection_count": "1"})
    );

    // Unknown products and players are empty, not errors.
    assert_eq!(
        app.get_json("/leaderboards/top_ten/nogame").await,
        (200, json!([]))
    );
    assert_eq!(app.get_json("/stats/exrps/nobody").await, (200, json!({})));

    // Nothing was dead-lettered from valid traffic.
    let mut store = redis.connection(0).await;
    assert!(
        dead_letters(&mut store, &settings.store.key_prefix)
            .await
            .is_empty()
    );
    app.stop().await;
}

#[tokio::test]
async fn top_ten_returns_exactly_ten_best_first() {
    let redis = TestRedis::start().await;
    let settings = settings(&redis);
    let app = TestApp::spawn(&settings, true).await;
    let mut stream = redis.connection(1).await;
    // Player i wins i games against a punching bag: 12 players with distinct scores.
    let mut events = Vec::new();
    for i in 1..=12 {
        for _ in 0..i {
            let winner = format!("p{i:02}");
            events.push(event(&[
                ("product_id", "league"),
                ("game_id", "g"),
                ("type", "game_over"),
                ("winner_id", &winner),
                ("loser_id", "bag"),
            ]));
        }
    }
    push_events(&mut stream, &events).await;
    wait_until_drained(&mut stream, Duration::from_secs(10)).await;
    let (_, top) = app.get_json("/leaderboards/top_ten/league").await;
    let top = top.as_array().expect("array").clone();
    assert_eq!(top.len(), 10);
    assert_eq!(top[0], json!({"user_id": "p12", "score": 12}));
    assert_eq!(top[9], json!({"user_id": "p03", "score": 3}));
    let (_, bag) = app.get_json("/stats/league/bag").await;
    assert_eq!(bag, json!({"games": "78", "wins": "0", "losses": "78"}));
    app.stop().await;
}

#[tokio::test]
async fn bad_events_are_dead_lettered_with_reason_and_original_fields() {
    let redis = TestRedis::start().await;
    let settings = settings(&redis);
    let app = TestApp::spawn(&settings, true).await;
    let dead_lettered_game_overs = r#"stats_tracker_worker_events_total{product="exrps",type="game_over",outcome="dead_lettered"}"#;
    let before = metric(&app, dead_lettered_game_overs).await;
    let reasons = [
        "missing_field",
        "self_match",
        "unknown_type",
        "invalid_value",
        "not_utf8",
    ];
    let letters_of = |product: &str, reason: &str| {
        format!(
            r#"stats_tracker_worker_dead_letters_total{{product="{product}",reason="{reason}"}}"#
        )
    };
    let mut letters_before = Vec::new();
    for reason in reasons {
        letters_before.push(metric(&app, &letters_of("exrps", reason)).await);
    }
    let mut stream = redis.connection(1).await;
    let events = vec![
        event(&[
            ("product_id", "exrps"),
            ("game_id", "g"),
            ("type", "game_over"),
            ("winner_id", "A"),
        ]),
        event(&[
            ("product_id", "exrps"),
            ("game_id", "g"),
            ("type", "game_over"),
            ("winner_id", "A"),
            ("loser_id", "A"),
        ]),
        event(&[
            ("product_id", "exrps"),
            ("game_id", "g"),
            ("type", "teleport"),
        ]),
        event(&[
            ("product_id", "exrps"),
            ("game_id", "g"),
            ("type", "gameplay"),
            ("event_name", "select_weapon"),
            ("event_data", "rock"),
            ("user_id", "A"),
        ]),
        // Normal traffic that no rule uses: skipped, never dead-lettered.
        event(&[
            ("product_id", "exrps"),
            ("game_id", "g"),
            ("type", "player_disconnect"),
            ("player_id", "A"),
        ]),
        event(&[
            ("product_id", "exrps"),
            ("game_id", "g"),
            ("type", "gameplay"),
            ("event_name", "emote"),
            ("event_data", "wave"),
        ]),
        event(&[
            ("product_id", "exrps"),
            ("game_id", "g"),
            ("type", "game_over"),
            ("winner_id", "A"),
            ("loser_id", "B"),
        ]),
    ];
    let ids = push_events(&mut stream, &events).await;
    // Non-UTF-8 bytes can only be sent raw.
    let raw_id: String = redis::cmd("XADD")
        .arg(STREAM)
        .arg("*")
        .arg("product_id")
        .arg(&b"\xff\xfe"[..])
        .arg("type")
        .arg("game_over")
        .query_async(&mut stream)
        .await
        .expect("XADD");
    wait_until_drained(&mut stream, Duration::from_secs(10)).await;

    let mut store = redis.connection(0).await;
    let letters = dead_letters(&mut store, &settings.store.key_prefix).await;
    let summary: Vec<(&str, &str)> = letters
        .iter()
        .map(|(id, reason, _)| (id.as_str(), reason.as_str()))
        .collect();
    assert_eq!(
        summary,
        vec![
            (ids[0].as_str(), "missing field `loser_id`"),
            (ids[1].as_str(), "winner and loser are the same player"),
            (ids[2].as_str(), "unknown event type `teleport`"),
            (
                ids[3].as_str(),
                "field `event_data` has invalid value `rock`: one of 0, 1, 2, null or another integer"
            ),
            (raw_id.as_str(), "field `product_id` is not valid UTF-8"),
        ]
    );
    // The original fields are kept byte for byte.
    assert_eq!(
        letters[4].2,
        vec![
            b"product_id".to_vec(),
            b"\xff\xfe".to_vec(),
            b"type".to_vec(),
            b"game_over".to_vec()
        ]
    );
    // The good game_over still counted, and the rejected ones changed nothing.
    assert_eq!(
        app.get_json("/leaderboards/top_ten/exrps").await.1,
        json!([{"user_id": "A", "score": 1}, {"user_id": "B", "score": 0}])
    );
    assert_eq!(
        app.get_json("/stats/exrps/A").await.1,
        json!({"games": "1", "wins": "1", "losses": "0"})
    );

    // The worker's metrics count them.
    let after = metric(&app, dead_lettered_game_overs).await;
    assert_eq!(after - before, 2.0);
    // One letter per reason kind, the non-UTF-8 one under its product's lossy text.
    for (reason, before) in reasons.iter().zip(letters_before) {
        let product = if *reason == "not_utf8" {
            "\u{fffd}\u{fffd}"
        } else {
            "exrps"
        };
        let after = metric(&app, &letters_of(product, reason)).await;
        assert_eq!(after - before, 1.0, "{reason}");
    }
    app.stop().await;
}

#[tokio::test]
async fn mixed_run_equals_the_reference_model_and_a_full_replay_changes_nothing() {
    let redis = TestRedis::start().await;
    let mut settings = settings(&redis);
    settings.stream.batch_size = 97; // odd size: batches cut matches anywhere
    let app = TestApp::spawn(&settings, true).await;
    let mut stream = redis.connection(1).await;
    let (events, bad) = mixed_run(7, 400, 60, 10);
    let ids = push_events(&mut stream, &events).await;
    wait_until_drained(&mut stream, Duration::from_secs(30)).await;

    let mut model = Model::default();
    let rejected: Vec<usize> = (0..events.len())
        .filter(|&i| !model.apply(&events[i]))
        .collect();
    assert_eq!(
        rejected, bad,
        "the generator's bad events are the model's rejections"
    );
    let mut store = redis.connection(0).await;
    let prefix = settings.store.key_prefix.clone();
    model.assert_matches_store(&mut store, &prefix).await;

    // Everything committed but, as if the worker had died before acknowledging, delivered
    // again: positions must turn the whole replay into a no-op.
    let _: () = redis::cmd("XGROUP")
        .arg("SETID")
        .arg(STREAM)
        .arg(GROUP)
        .arg("0")
        .query_async(&mut stream)
        .await
        .expect("XGROUP SETID");
    wait_until_drained(&mut stream, Duration::from_secs(30)).await;
    model.assert_matches_store(&mut store, &prefix).await;
    let letters = dead_letters(&mut store, &prefix).await;
    let expected: Vec<&str> = bad.iter().map(|&i| ids[i].as_str()).collect();
    let actual: Vec<&str> = letters.iter().map(|(id, _, _)| id.as_str()).collect();
    assert_eq!(
        actual, expected,
        "each bad event dead-lettered exactly once"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_backlog_read_in_large_batches_equals_the_reference_model() {
    // Pushed before the worker starts, so it reads full batches of 1,000: a product's share
    // of one is committed as several script calls, each planned on the position the one
    // before it leaves.
    let redis = TestRedis::start().await;
    let mut settings = settings(&redis);
    settings.stream.batch_size = 1000;
    let mut stream = redis.connection(1).await;
    let (events, bad) = mixed_run(11, 300, 40, 5);
    assert!(
        events.len() > 2000,
        "{} events: too few to fill batches",
        events.len()
    );
    let ids = push_events(&mut stream, &events).await;
    let app = TestApp::spawn(&settings, true).await;
    let stale_reloads = "stats_tracker_worker_stale_reloads_total";
    let before = metric(&app, stale_reloads).await;
    wait_until_drained(&mut stream, Duration::from_secs(30)).await;
    // Each call was planned on the position the one before it leaves: none was refused.
    let after = metric(&app, stale_reloads).await;
    assert_eq!(after, before, "script calls refused as stale");

    let mut store = redis.connection(0).await;
    let prefix = &settings.store.key_prefix;
    assert_run_matches(Model::default(), &mut store, prefix, &events, &bad, &ids).await;
    app.stop().await;
}

#[tokio::test]
async fn a_script_cache_flushed_under_the_worker_is_reloaded_in_place() {
    // Redis forgets the commit script (SCRIPT FLUSH, or a restart the connection survives):
    // every call of the next batch is refused with NOSCRIPT, the worker loads the script and
    // sends them again, in order, without an error, a back-off or a refused call.
    let redis = TestRedis::start().await;
    let mut settings = settings(&redis);
    settings.worker.entries_per_script_call = 3;
    let app = TestApp::spawn(&settings, true).await;
    let mut stream = redis.connection(1).await;
    let mut store = redis.connection(0).await;
    let (events, bad) = mixed_run(5, 60, 12, 10);
    let half = events.len() / 2;
    let mut ids = push_events(&mut stream, &events[..half]).await;
    wait_until_drained(&mut stream, Duration::from_secs(10)).await;

    let (errors, stale) = (
        "stats_tracker_worker_redis_errors_total",
        "stats_tracker_worker_stale_reloads_total",
    );
    let before = (metric(&app, errors).await, metric(&app, stale).await);
    let _: () = redis::cmd("SCRIPT")
        .arg("FLUSH")
        .query_async(&mut store)
        .await
        .expect("SCRIPT FLUSH");
    ids.extend(push_events(&mut stream, &events[half..]).await);
    wait_until_drained(&mut stream, Duration::from_secs(10)).await;
    let after = (metric(&app, errors).await, metric(&app, stale).await);
    assert_eq!(after, before, "Redis errors and stale reloads");

    let prefix = &settings.store.key_prefix;
    assert_run_matches(Model::default(), &mut store, prefix, &events, &bad, &ids).await;
    app.stop().await;
}

#[tokio::test]
async fn another_consumer_group_and_the_stream_itself_are_left_alone() {
    let redis = TestRedis::start().await;
    let settings = settings(&redis);
    let mut stream = redis.connection(1).await;
    let (events, _) = mixed_run(3, 30, 10, 20);
    push_events(&mut stream, &events).await;
    let _: () = redis::cmd("XGROUP")
        .arg("CREATE")
        .arg(STREAM)
        .arg("matchmaker")
        .arg("0")
        .query_async(&mut stream)
        .await
        .expect("matchmaker group");
    let app = TestApp::spawn(&settings, true).await;
    wait_until_drained(&mut stream, Duration::from_secs(10)).await;
    app.stop().await;

    let length: usize = redis::cmd("XLEN")
        .arg(STREAM)
        .query_async(&mut stream)
        .await
        .expect("XLEN");
    assert_eq!(length, events.len(), "no entry trimmed or deleted");
    // The matchmaker still gets every entry from its own group.
    let read: redis::streams::StreamReadReply = redis::cmd("XREADGROUP")
        .arg("GROUP")
        .arg("matchmaker")
        .arg("mm-1")
        .arg("COUNT")
        .arg(100_000)
        .arg("STREAMS")
        .arg(STREAM)
        .arg(">")
        .query_async(&mut stream)
        .await
        .expect("XREADGROUP");
    assert_eq!(read.keys[0].ids.len(), events.len());
}

/// One call of the commit script (workers/commit.lua) applying entry `id`, one `HINCRBY
/// games 1` on `t:stats`, planned after applied position `planned_after` ('' for none).
async fn commit_call(
    conn: &mut redis::aio::MultiplexedConnection,
    planned_after: &str,
    id: &str,
) -> i64 {
    let script = redis::Script::new(concat!(
        include_str!("../../src/leaderboards/rank.lua"),
        include_str!("../../src/workers/commit.lua")
    ));
    let mut call = script.prepare_invoke();
    call.key("t:applied")
        .key("t:fence")
        .key("t:generation")
        .key("t:sequence");
    // The history's keys and the rebuild hold.
    for history in ["events", "kept", "gap", "exported", "dropped", "hold"] {
        call.key(format!("t:{history}"));
    }
    // The hidden players, the change feed.
    call.key("t:hidden").key("t:feed");
    call.key("t:stats")
        // epoch, generation, planned after, one entry applied, no history chunk and no
        // retention, the feed's length, one entry sent: id, one operation: HINCRBY on
        // KEYS[13] with its (fixed) two arguments.
        .arg(1)
        .arg("")
        .arg(planned_after)
        .arg(1)
        .arg("")
        .arg(0)
        .arg("")
        .arg(100)
        .arg(1)
        .arg(id)
        .arg(1)
        .arg("HINCRBY")
        .arg(13)
        .arg("games")
        .arg(1);
    call.invoke_async(conn)
        .await
        .expect("the commit script runs")
}

/// The worker sends a batch's commit before the previous batch's reply is in: a call must
/// apply only on exactly the position it was planned on, so that one sent behind a failed
/// call is refused instead of applying its entries past the missing ones.
#[tokio::test]
async fn a_commit_applies_only_on_the_applied_position_it_was_planned_on() {
    let redis = TestRedis::start().await;
    let mut conn = redis.connection(0).await;
    let games = |conn: &mut redis::aio::MultiplexedConnection| {
        let mut conn = conn.clone();
        async move {
            let games: Option<i64> = redis::cmd("HGET")
                .arg("t:stats")
                .arg("games")
                .query_async(&mut conn)
                .await
                .expect("HGET");
            games.unwrap_or(0)
        }
    };

    assert_eq!(commit_call(&mut conn, "", "5-0").await, 1);
    assert_eq!(games(&mut conn).await, 1);
    // Planned on nothing applied, or after another position (a failed call's last entry),
    // though its entries come after the stored position: refused, nothing written.
    assert_eq!(commit_call(&mut conn, "", "7-0").await, -1);
    assert_eq!(commit_call(&mut conn, "6-0", "7-0").await, -1);
    assert_eq!(games(&mut conn).await, 1);
    // Planned on the stored position: applied, and the position moves.
    assert_eq!(commit_call(&mut conn, "5-0", "7-0").await, 1);
    assert_eq!(games(&mut conn).await, 2);
    let applied: String = redis::cmd("GET")
        .arg("t:applied")
        .query_async(&mut conn)
        .await
        .expect("GET");
    assert_eq!(applied, "7-0");
    // The same call again (a replay): refused.
    assert_eq!(commit_call(&mut conn, "5-0", "7-0").await, -1);
    assert_eq!(games(&mut conn).await, 2);
}

#[tokio::test]
async fn entries_trimmed_or_deleted_before_they_were_read_are_counted_and_not_lag() {
    let redis = TestRedis::start().await;
    let settings = settings(&redis);
    let mut stream = redis.connection(1).await;
    // The tracker runs (and creates its group), then is away while events arrive.
    let app = TestApp::spawn(&settings, true).await;
    wait_until_drained(&mut stream, Duration::from_secs(10)).await;
    app.stop().await;
    let events: Vec<Event> = (0..100)
        .map(|i| {
            event(&[
                ("product_id", "league"),
                ("game_id", &format!("g{i}")),
                ("type", "game_over"),
                ("winner_id", &format!("p{i}")),
                ("loser_id", "bag"),
            ])
        })
        .collect();
    let ids = push_events(&mut stream, &events).await;
    // Another service trims the 40 oldest and deletes 5 more, all unread by the tracker.
    let trimmed: u64 = redis::cmd("XTRIM")
        .arg(STREAM)
        .arg("MAXLEN")
        .arg(60)
        .query_async(&mut stream)
        .await
        .expect("XTRIM");
    assert_eq!(trimmed, 40);
    let deleted: u64 = redis::cmd("XDEL")
        .arg(STREAM)
        .arg(&ids[50..55])
        .query_async(&mut stream)
        .await
        .expect("XDEL");
    assert_eq!(deleted, 5);

    let app = TestApp::spawn(&settings, true).await;
    // Drained means the group's lag is back to 0: the lost entries are not lag forever.
    wait_until_drained(&mut stream, Duration::from_secs(10)).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while metric(&app, "stats_tracker_worker_lost_entries_total").await < 45.0 {
        assert!(
            std::time::Instant::now() < deadline,
            "lost entries not counted"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        metric(&app, "stats_tracker_worker_lost_entries_total").await,
        45.0
    );
    let (_, bag) = app.get_json("/stats/league/bag").await;
    assert_eq!(
        bag["games"], "55",
        "only the entries still there were applied"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_view_dropped_whenever_it_outgrows_its_bound_still_equals_the_reference_model() {
    // A bound of 8 entries: the worker's view (rating states, products' positions) is dropped
    // and reloaded after nearly every batch, with batches still in flight before each drop.
    let redis = TestRedis::start().await;
    let games_file = redis.socket_dir().join("games.toml");
    std::fs::write(&games_file, crate::crash::CHAOS_GAMES).expect("games file");
    let mut settings = settings(&redis);
    settings.games.file = Some(games_file);
    settings.worker.rating_cache_entries = 8;
    settings.stream.batch_size = 50;
    let mut stream = redis.connection(1).await;
    let (events, bad) = mixed_run(23, 400, 60, 3);
    let ids = push_events(&mut stream, &events).await;
    let app = TestApp::spawn(&settings, true).await;
    let stale_reloads = "stats_tracker_worker_stale_reloads_total";
    let before = metric(&app, stale_reloads).await;
    wait_until_drained(&mut stream, Duration::from_secs(60)).await;
    // Dropped only once committed: no plan was made on a store behind the worker (the commit
    // script would refuse it, so the result is right either way, but each refusal costs a
    // reload of the lease's work).
    assert_eq!(
        metric(&app, stale_reloads).await,
        before,
        "plans refused as stale"
    );
    let held = metric(&app, "stats_tracker_worker_rating_cache_entries").await;
    assert!(held <= 8.0 + 50.0 * 4.0, "{held} rating states held");
    let mut store = redis.connection(0).await;
    let prefix = &settings.store.key_prefix;
    let model = assert_run_matches(
        Model::with_exrps_elo(20.0, 1200.0),
        &mut store,
        prefix,
        &events,
        &bad,
        &ids,
    )
    .await;
    assert!(model.elo.len() > 50, "{} players rated", model.elo.len());
    app.stop().await;
}

#[tokio::test]
async fn stamps_of_any_bytes_read_back_through_every_route() {
    // Products whose sequence is far along: every stamp the worker gives out holds bytes that
    // are not UTF-8 (0x80), in the members and in the stats hashes beside the stats.
    let redis = TestRedis::start().await;
    let settings = settings(&redis);
    let mut store = redis.connection(0).await;
    let far_along: u64 = 0x0010_8080_8080_8080;
    let keys =
        stats_tracker::core::keys::KeySpace::new(&settings.store.key_prefix).expect("prefix");
    for product in ["exrps", "arena:2v2 {beta}", "чемпионат"] {
        let product = stats_tracker::core::ids::ProductId::parse(product).expect("id");
        redis::cmd("SET")
            .arg(keys.product(&product).sequence())
            .arg(far_along)
            .query_async::<()>(&mut store)
            .await
            .expect("SET sequence");
    }
    let app = TestApp::spawn(&settings, true).await;
    let mut stream = redis.connection(1).await;
    let (events, bad) = mixed_run(5, 200, 30, 5);
    let ids = push_events(&mut stream, &events).await;
    wait_until_drained(&mut stream, Duration::from_secs(30)).await;
    let prefix = settings.store.key_prefix.clone();
    let model =
        assert_run_matches(Model::default(), &mut store, &prefix, &events, &bad, &ids).await;

    let (player, wins) = model.boards["exrps"]
        .iter()
        .max_by_key(|(_, wins)| **wins)
        .map(|(player, wins)| (player.clone(), *wins))
        .expect("a player");
    let (status, stats) = app
        .get_json(&format!("/stats/exrps/{}", urlencode(&player)))
        .await;
    assert_eq!(
        (status, stats["wins"].clone()),
        (200, json!(wins.to_string()))
    );
    for path in [
        format!("/v1/products/exrps/players/{}/stats", urlencode(&player)),
        format!(
            "/v1/products/exrps/boards/wins/players/{}?around=3",
            urlencode(&player)
        ),
        format!(
            "/v1/products/exrps/boards/wins/ranks?user_id={}",
            urlencode(&player)
        ),
        "/v1/products/exrps/boards/wins/entries?limit=50".to_owned(),
        "/leaderboards/top_ten/exrps".to_owned(),
    ] {
        let (status, body) = app.get_json(&path).await;
        assert_eq!(status, 200, "{path}: {body}");
    }
    let (_, page) = app
        .get_json("/v1/products/exrps/boards/wins/entries?limit=5")
        .await;
    let next = page["next"].as_str().expect("a next cursor");
    let (status, body) = app
        .get_json(&format!(
            "/v1/products/exrps/boards/wins/entries?limit=5&after={next}"
        ))
        .await;
    assert_eq!(status, 200, "{body}");
    let stamp: u64 = redis::cmd("GET")
        .arg(
            keys.product(&stats_tracker::core::ids::ProductId::parse("exrps").expect("id"))
                .sequence(),
        )
        .query_async(&mut store)
        .await
        .expect("GET sequence");
    assert!(stamp > far_along, "stamps were given out from the sequence");
    app.stop().await;
}
