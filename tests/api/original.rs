//! The original routes answer exactly what the original service answered, for the original's
//! own test scenarios: compared as JSON, value types included (strings of integers by default).

use std::time::Duration;

use serde_json::{Value, json};
use stats_tracker::core::config::StatValues;

use crate::helpers::{TestApp, TestRedis, event, push_events, settings, wait_until_drained};

fn game_over(product: &str, game: &str, winner: &str, loser: &str) -> Vec<(String, String)> {
    event(&[
        ("product_id", product),
        ("game_id", game),
        ("type", "game_over"),
        ("winner_id", winner),
        ("loser_id", loser),
    ])
}

/// An exrps match as the real game server writes it (docs/EVENTS.md): lobby, fighters, two
/// rounds of weapon picks (a botch and an out-of-range index among them), `game_over`, then
/// the disconnects and the removal. A wins both rounds.
fn exrps_match(game: &str, a: &str, b: &str) -> Vec<Vec<(String, String)>> {
    let base = [("product_id", "exrps"), ("game_id", game)];
    let with = |more: &[(&str, &str)]| {
        let mut pairs = base.to_vec();
        pairs.extend_from_slice(more);
        event(&pairs)
    };
    let pick = |player: &str, weapon: &str| {
        with(&[
            ("type", "gameplay"),
            ("event_name", "select_weapon"),
            ("event_data", weapon),
            ("user_id", player),
        ])
    };
    let round = |progress: &str| {
        with(&[
            ("type", "gameplay"),
            ("event_name", "progression"),
            ("progress_event", progress),
            ("p1_id", a),
            ("p2_id", b),
        ])
    };
    let round_won_by_a = with(&[
        ("type", "gameplay"),
        ("round_winner_id", a),
        ("round_loser_id", b),
        ("event_name", "progression"),
        ("progress_event", "round_finished"),
        ("p1_id", a),
        ("p2_id", b),
    ]);
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
        round("round_started"),
        pick(a, "0"),
        pick(b, "0"),
        pick(a, "0"),
        pick(b, "2"),
        round_won_by_a.clone(),
        round("round_started"),
        pick(a, "1"),
        pick(b, "null"),
        pick(a, "2"),
        pick(b, "5"),
        round_won_by_a,
        game_over("exrps", game, a, b),
        with(&[("type", "player_disconnect"), ("player_id", a)]),
        with(&[("type", "player_disconnect"), ("player_id", b)]),
        with(&[("type", "game_removed")]),
    ]
}

/// Runs `events` through a tracker whose original stats route encodes values as `values`.
async fn tracker_after(
    events: &[Vec<(String, String)>],
    values: StatValues,
) -> (TestRedis, TestApp) {
    let redis = TestRedis::start().await;
    let mut settings = settings(&redis);
    settings.server.original_stats_values = values;
    let app = TestApp::spawn(&settings, true).await;
    let mut stream = redis.connection(1).await;
    push_events(&mut stream, events).await;
    wait_until_drained(&mut stream, Duration::from_secs(10)).await;
    (redis, app)
}

async fn stats(app: &TestApp, product: &str, player: &str) -> Value {
    let (status, body) = app.get_json(&format!("/stats/{product}/{player}")).await;
    assert_eq!(status, 200, "{body}");
    body
}

#[tokio::test]
async fn a_game_over_answers_what_the_original_answered() {
    // The original's test_handle_game_over_event / test_get_user_stats: userA beats userB.
    let (_redis, app) = tracker_after(
        &[game_over("exrps", "g1", "userA", "userB")],
        StatValues::Strings,
    )
    .await;
    assert_eq!(
        stats(&app, "exrps", "userA").await,
        json!({"wins": "1", "losses": "0", "games": "1"})
    );
    assert_eq!(
        stats(&app, "exrps", "userB").await,
        json!({"wins": "0", "losses": "1", "games": "1"})
    );
    // A player who never played: `{}`, in a known product and in one nobody configured.
    assert_eq!(stats(&app, "exrps", "userC").await, json!({}));
    assert_eq!(stats(&app, "never-seen", "userA").await, json!({}));
    assert_eq!(
        app.get_json("/leaderboards/top_ten/exrps").await.1,
        json!([{"user_id": "userA", "score": 1}, {"user_id": "userB", "score": 0}])
    );
    app.stop().await;
}

#[tokio::test]
async fn a_full_exrps_match_answers_what_the_original_answered() {
    // The original's test_process_events: gameplay events, then the game_over.
    let mut events = exrps_match("g1", "A", "B");
    // A second match, B winning: every counter moves past 1.
    events.extend(exrps_match("g2", "B", "A"));
    let (_redis, app) = tracker_after(&events, StatValues::Strings).await;
    // Per match, the first player picks rock twice, paper and scissors once; the second rock,
    // scissors, a botch (`null`) and an out-of-range index (a botch too).
    let expected = |wins: &str, losses: &str| {
        json!({
            "games": "2", "wins": wins, "losses": losses,
            "rock_selection_count": "3", "paper_selection_count": "1",
            "scissors_selection_count": "2", "botch_selection_count": "2",
        })
    };
    assert_eq!(stats(&app, "exrps", "A").await, expected("1", "1"));
    assert_eq!(stats(&app, "exrps", "B").await, expected("1", "1"));
    app.stop().await;
}

#[tokio::test]
async fn stats_of_a_player_who_only_played_gameplay_have_no_match_counters() {
    // The original wrote games/wins/losses on game_over only: a player with weapon picks and
    // no finished match has just the picks.
    let events: Vec<_> = exrps_match("g1", "A", "B")
        .into_iter()
        .filter(|fields| !fields.iter().any(|(_, value)| value == "game_over"))
        .collect();
    let (_redis, app) = tracker_after(&events, StatValues::Strings).await;
    assert_eq!(
        stats(&app, "exrps", "A").await,
        json!({"rock_selection_count": "2", "paper_selection_count": "1",
               "scissors_selection_count": "1"})
    );
    app.stop().await;
}

#[tokio::test]
async fn numbers_on_request_and_the_v1_route_says_zeros_as_numbers() {
    let mut events = vec![game_over("squads", "g1", "userA", "userB")];
    // A draw counts `draws`, which then appears; it is not one of the stats that start at 0.
    events.push(event(&[
        ("product_id", "squads"),
        ("game_id", "g2"),
        ("type", "draw"),
        ("p1_id", "userB"),
        ("p2_id", "userC"),
    ]));
    let (_redis, app) = tracker_after(&events, StatValues::Numbers).await;
    assert_eq!(
        stats(&app, "squads", "userA").await,
        json!({"wins": 1, "losses": 0, "games": 1})
    );
    assert_eq!(
        stats(&app, "squads", "userC").await,
        json!({"wins": 0, "losses": 0, "games": 1, "draws": 1})
    );
    let (status, body) = app
        .get_json("/v1/products/squads/players/userB/stats")
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        json!({"product_id": "squads", "user_id": "userB",
               "stats": {"wins": 0, "losses": 1, "games": 2, "draws": 1}})
    );
    let (_, body) = app
        .get_json("/v1/products/squads/players/nobody/stats")
        .await;
    assert_eq!(body["stats"], json!({}));
    app.stop().await;
}
