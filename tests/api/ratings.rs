//! Rating boards end to end: determinism against the rating crate applied directly, restarts,
//! per-board dead letters, and the rating routes.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::simulate::{Event, Rng};
use serde_json::json;
use skillratings::{
    MultiTeamOutcome, Outcomes,
    elo::{EloConfig, EloRating, elo},
    glicko2::{Glicko2Config, Glicko2Rating, decay_deviation, glicko2, glicko2_rating_period},
    trueskill::{
        TrueSkillConfig, TrueSkillRating, trueskill, trueskill_multi_team, trueskill_two_teams,
    },
    weng_lin::{WengLinConfig, WengLinRating, weng_lin, weng_lin_multi_team, weng_lin_two_teams},
};
use stats_tracker::core::ids::{PlayerId, ProductId};
use stats_tracker::core::keys::KeySpace;

use crate::helpers::{
    TestApp, TestRedis, WorkerProcess, dead_letters, event, game_over, group_backlog, push_events,
    settings, settings_with_games, stats_of, wait_until_drained,
};

const GAMES: &str = r#"
[products.duel]
boards = [
  { name = "wins", kind = "wins" },
  { name = "elo", kind = "elo", initial_rating = 1500.0, k_factor = 24.0 },
  { name = "glicko2", kind = "glicko2" },
  { name = "trueskill", kind = "trueskill", min_matches = 3, history = 5 },
  { name = "weng_lin", kind = "weng_lin" },
]
[[products.duel.stats]]
rule = "match_results"
[[products.duel.stats]]
rule = "win_streak"

[products.squad]
boards = [
  { name = "wins", kind = "wins" },
  { name = "elo", kind = "elo" },
  { name = "trueskill", kind = "trueskill" },
  { name = "weng_lin", kind = "weng_lin", display = "mean" },
]
[[products.squad.stats]]
rule = "match_results"
[[products.squad.stats]]
rule = "match_scores"
"#;

/// A match: teams of player indexes with places.
type Teams = Vec<(Vec<usize>, u32)>;

fn random_matches(seed: u64, count: usize, players: usize) -> Vec<(&'static str, Teams, Event)> {
    let mut rng = Rng::new(seed);
    let name = |i: usize| format!("p{i}:玩家");
    let mut out = Vec::new();
    for _ in 0..count {
        if rng.chance(60) {
            let a = rng.below(players as u64) as usize;
            let b = (a + 1 + rng.below(players as u64 - 1) as usize) % players;
            if rng.chance(15) {
                out.push((
                    "duel",
                    vec![(vec![a], 1), (vec![b], 1)],
                    event(&[
                        ("product_id", "duel"),
                        ("type", "draw"),
                        ("p1_id", &name(a)),
                        ("p2_id", &name(b)),
                    ]),
                ));
            } else {
                out.push((
                    "duel",
                    vec![(vec![a], 1), (vec![b], 2)],
                    event(&[
                        ("product_id", "duel"),
                        ("game_id", "g"),
                        ("type", "game_over"),
                        ("winner_id", &name(a)),
                        ("loser_id", &name(b)),
                    ]),
                ));
            }
        } else {
            // 2-4 teams of 1-3 distinct players, places with occasional ties.
            let team_count = 2 + rng.below(3) as usize;
            let size = 1 + rng.below(3) as usize;
            let mut pool: Vec<usize> = (0..players).collect();
            let mut teams: Teams = Vec::new();
            for t in 0..team_count {
                let members: Vec<usize> = (0..size)
                    .map(|_| pool.swap_remove(rng.below(pool.len() as u64) as usize))
                    .collect();
                let place = if t > 0 && rng.chance(10) {
                    t as u32
                } else {
                    t as u32 + 1
                };
                teams.push((members, place));
            }
            let json_teams: Vec<serde_json::Value> = teams
                .iter()
                .map(|(members, place)| {
                    let ids: Vec<String> = members.iter().map(|&i| name(i)).collect();
                    let scores: BTreeMap<String, f64> = ids
                        .iter()
                        .map(|id| (id.clone(), (rng.below(1000) as f64) / 4.0))
                        .collect();
                    json!({ "place": place, "players": ids, "scores": scores })
                })
                .collect();
            let teams_field = serde_json::Value::Array(json_teams).to_string();
            out.push((
                "squad",
                teams,
                event(&[
                    ("product_id", "squad"),
                    ("type", "match_result"),
                    ("teams", &teams_field),
                ]),
            ));
        }
    }
    out
}

/// The reference: every board's ratings from the crate, applied in stream order, with the
/// same dispatch the documentation promises (1v1, two teams, multi-team).
#[derive(Default)]
struct Reference {
    elo: BTreeMap<(&'static str, usize), EloRating>,
    glicko2: BTreeMap<usize, Glicko2Rating>,
    trueskill: BTreeMap<(&'static str, usize), TrueSkillRating>,
    weng_lin: BTreeMap<(&'static str, usize), WengLinRating>,
    matches: BTreeMap<(&'static str, &'static str, usize), u64>,
    elo_rejected: usize,
}

fn outcome(a: u32, b: u32) -> Outcomes {
    match a.cmp(&b) {
        std::cmp::Ordering::Less => Outcomes::WIN,
        std::cmp::Ordering::Greater => Outcomes::LOSS,
        std::cmp::Ordering::Equal => Outcomes::DRAW,
    }
}

impl Reference {
    fn apply(&mut self, product: &'static str, teams: &Teams) {
        let one_on_one = teams.len() == 2 && teams[0].0.len() == 1 && teams[1].0.len() == 1;
        let count = |board: &'static str, reference: &mut Self| {
            for (members, _) in teams {
                for &p in members {
                    *reference.matches.entry((product, board, p)).or_default() += 1;
                }
            }
        };
        if one_on_one {
            let (a, b) = (teams[0].0[0], teams[1].0[0]);
            let result = outcome(teams[0].1, teams[1].1);
            let initial = if product == "duel" { 1500.0 } else { 1000.0 };
            let ea = *self
                .elo
                .get(&(product, a))
                .unwrap_or(&EloRating { rating: initial });
            let eb = *self
                .elo
                .get(&(product, b))
                .unwrap_or(&EloRating { rating: initial });
            let k = if product == "duel" { 24.0 } else { 32.0 };
            let (na, nb) = elo(&ea, &eb, &result, &EloConfig { k });
            self.elo.insert((product, a), na);
            self.elo.insert((product, b), nb);
            count("elo", self);
            if product == "duel" {
                let ga = *self.glicko2.get(&a).unwrap_or(&Glicko2Rating::new());
                let gb = *self.glicko2.get(&b).unwrap_or(&Glicko2Rating::new());
                let (na, nb) = glicko2(&ga, &gb, &result, &Glicko2Config::new());
                self.glicko2.insert(a, na);
                self.glicko2.insert(b, nb);
                count("glicko2", self);
            }
        } else {
            self.elo_rejected += 1;
        }
        let ts = |r: &Self, p| {
            *r.trueskill
                .get(&(product, p))
                .unwrap_or(&TrueSkillRating::new())
        };
        let wl = |r: &Self, p| {
            *r.weng_lin
                .get(&(product, p))
                .unwrap_or(&WengLinRating::new())
        };
        let ts_teams: Vec<Vec<TrueSkillRating>> = teams
            .iter()
            .map(|(m, _)| m.iter().map(|&p| ts(self, p)).collect())
            .collect();
        let wl_teams: Vec<Vec<WengLinRating>> = teams
            .iter()
            .map(|(m, _)| m.iter().map(|&p| wl(self, p)).collect())
            .collect();
        let (ts_new, wl_new): (Vec<Vec<TrueSkillRating>>, Vec<Vec<WengLinRating>>) = if one_on_one {
            let result = outcome(teams[0].1, teams[1].1);
            let (a, b) = trueskill(
                &ts_teams[0][0],
                &ts_teams[1][0],
                &result,
                &TrueSkillConfig::new(),
            );
            let (c, d) = weng_lin(
                &wl_teams[0][0],
                &wl_teams[1][0],
                &result,
                &WengLinConfig::new(),
            );
            (vec![vec![a], vec![b]], vec![vec![c], vec![d]])
        } else if teams.len() == 2 {
            let result = outcome(teams[0].1, teams[1].1);
            let (a, b) =
                trueskill_two_teams(&ts_teams[0], &ts_teams[1], &result, &TrueSkillConfig::new());
            let (c, d) =
                weng_lin_two_teams(&wl_teams[0], &wl_teams[1], &result, &WengLinConfig::new());
            (vec![a, b], vec![c, d])
        } else {
            let ts_ranked: Vec<(&[TrueSkillRating], MultiTeamOutcome)> = ts_teams
                .iter()
                .zip(teams)
                .map(|(t, (_, place))| (t.as_slice(), MultiTeamOutcome::new(*place as usize)))
                .collect();
            let wl_ranked: Vec<(&[WengLinRating], MultiTeamOutcome)> = wl_teams
                .iter()
                .zip(teams)
                .map(|(t, (_, place))| (t.as_slice(), MultiTeamOutcome::new(*place as usize)))
                .collect();
            (
                trueskill_multi_team(&ts_ranked, &TrueSkillConfig::new(), None)
                    .expect("valid teams"),
                weng_lin_multi_team(&wl_ranked, &WengLinConfig::new()),
            )
        };
        for (t, (members, _)) in teams.iter().enumerate() {
            for (slot, &p) in members.iter().enumerate() {
                self.trueskill.insert((product, p), ts_new[t][slot]);
                self.weng_lin.insert((product, p), wl_new[t][slot]);
            }
        }
        count("trueskill", self);
        count("weng_lin", self);
    }
}

async fn stored_rating(
    store: &mut redis::aio::MultiplexedConnection,
    product: &str,
    board: &str,
    player: usize,
) -> BTreeMap<String, String> {
    let keys = KeySpace::new("st_test").expect("prefix");
    let key = keys
        .product(&ProductId::parse(product).expect("id"))
        .rating(
            board,
            &PlayerId::parse(&format!("p{player}:玩家")).expect("id"),
        );
    redis::cmd("HGETALL")
        .arg(key)
        .query_async(store)
        .await
        .expect("HGETALL")
}

fn assert_state(
    stored: &BTreeMap<String, String>,
    rating: f64,
    deviation: f64,
    volatility: f64,
    matches: u64,
    what: &str,
) {
    // Bit-for-bit: the stored text must parse to exactly the crate's value.
    let get = |field: &str| {
        stored
            .get(field)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(f64::NAN)
    };
    assert_eq!(
        get("rating").to_bits(),
        rating.to_bits(),
        "{what}: rating {stored:?} vs {rating}"
    );
    assert_eq!(
        get("deviation").to_bits(),
        deviation.to_bits(),
        "{what}: deviation {stored:?}"
    );
    assert_eq!(
        get("volatility").to_bits(),
        volatility.to_bits(),
        "{what}: volatility {stored:?}"
    );
    assert_eq!(
        stored.get("matches").map(String::as_str),
        Some(matches.to_string().as_str()),
        "{what}: matches"
    );
}

#[tokio::test]
async fn ratings_equal_the_crate_applied_in_order_even_across_sigkills() {
    let redis = TestRedis::start().await;
    let games_file = redis.socket_dir().join("games.toml");
    std::fs::write(&games_file, GAMES).expect("write games file");
    let mut settings = settings(&redis);
    settings.games.file = Some(games_file);
    settings.stream.batch_size = 64;
    let mut stream = redis.connection(1).await;
    let players = 40;
    let matches = random_matches(11, 3000, players);
    let events: Vec<Event> = matches.iter().map(|(_, _, e)| e.clone()).collect();
    push_events(&mut stream, &events).await;

    // Restarts in the middle: two workers killed with SIGKILL, then one that finishes.
    let mut kills_with_work_left = 0;
    for round in 0..2 {
        let mut worker = WorkerProcess::spawn(&settings, &format!("rater-{round}"));
        tokio::time::sleep(Duration::from_millis(700)).await;
        worker.kill();
        if let Some((lag, pending)) = group_backlog(&mut stream).await
            && lag + pending > 0
        {
            kills_with_work_left += 1;
        }
    }
    assert!(
        kills_with_work_left > 0,
        "no kill landed while work was left"
    );
    let _finisher = WorkerProcess::spawn(&settings, "finisher");
    wait_until_drained(&mut stream, Duration::from_secs(60)).await;

    let mut reference = Reference::default();
    for (product, teams, _) in &matches {
        reference.apply(product, teams);
    }
    let mut store = redis.connection(0).await;
    let mut checked = 0;
    for player in 0..players {
        let matches_of = |product, board| {
            reference
                .matches
                .get(&(product, board, player))
                .copied()
                .unwrap_or(0)
        };
        for product in ["duel", "squad"] {
            if let Some(r) = reference.elo.get(&(product, player)) {
                let stored = stored_rating(&mut store, product, "elo", player).await;
                assert_state(
                    &stored,
                    r.rating,
                    0.0,
                    0.0,
                    matches_of(product, "elo"),
                    "elo",
                );
                checked += 1;
            }
            if let Some(r) = reference.trueskill.get(&(product, player)) {
                let stored = stored_rating(&mut store, product, "trueskill", player).await;
                assert_state(
                    &stored,
                    r.rating,
                    r.uncertainty,
                    0.0,
                    matches_of(product, "trueskill"),
                    "trueskill",
                );
                checked += 1;
            }
            if let Some(r) = reference.weng_lin.get(&(product, player)) {
                let stored = stored_rating(&mut store, product, "weng_lin", player).await;
                assert_state(
                    &stored,
                    r.rating,
                    r.uncertainty,
                    0.0,
                    matches_of(product, "weng_lin"),
                    "weng_lin",
                );
                checked += 1;
            }
        }
        if let Some(r) = reference.glicko2.get(&player) {
            let stored = stored_rating(&mut store, "duel", "glicko2", player).await;
            assert_state(
                &stored,
                r.rating,
                r.deviation,
                r.volatility,
                matches_of("duel", "glicko2"),
                "glicko2",
            );
            checked += 1;
        }
    }
    assert!(checked > 4 * players, "only {checked} ratings compared");

    // Elo cannot rate team matches: one dead letter per such match, naming the board, and
    // the other boards still applied them (checked above).
    let letters = dead_letters(&mut store, "st_test").await;
    assert_eq!(letters.len(), reference.elo_rejected);
    assert!(letters.iter().all(|(_, reason, _)| {
        reason.starts_with("board `elo`: elo rates only one-on-one matches")
    }));
}

#[tokio::test]
async fn rating_routes_show_state_history_and_predictions() {
    let redis = TestRedis::start().await;
    let games_file = redis.socket_dir().join("games.toml");
    std::fs::write(&games_file, GAMES).expect("write games file");
    let mut settings = settings(&redis);
    settings.games.file = Some(games_file);
    let app = TestApp::spawn(&settings, true).await;
    let mut stream = redis.connection(1).await;
    // A beats B six times, then one draw.
    let mut events: Vec<Event> = (0..6)
        .map(|_| {
            event(&[
                ("product_id", "duel"),
                ("type", "game_over"),
                ("winner_id", "A"),
                ("loser_id", "B"),
            ])
        })
        .collect();
    events.push(event(&[
        ("product_id", "duel"),
        ("type", "draw"),
        ("p1_id", "A"),
        ("p2_id", "B"),
    ]));
    let ids = push_events(&mut stream, &events).await;
    wait_until_drained(&mut stream, Duration::from_secs(10)).await;

    let (status, a) = app
        .get_json("/v1/products/duel/boards/trueskill/players/A/rating")
        .await;
    assert_eq!(status, 200, "{a}");
    assert_eq!(a["kind"], "trueskill");
    assert_eq!(a["state"]["matches"], 7);
    assert_eq!(a["provisional"], false);
    let mu = a["state"]["rating"].as_f64().expect("mu");
    let sigma = a["state"]["deviation"].as_f64().expect("sigma");
    assert!((a["display"].as_f64().expect("display") - (mu - 3.0 * sigma)).abs() < 1e-9);

    // History: newest first, bounded to the board's 5 entries.
    let (_, history) = app
        .get_json("/v1/products/duel/boards/trueskill/players/A/history")
        .await;
    let entries = history["entries"].as_array().expect("entries");
    assert_eq!(entries.len(), 5);
    assert_eq!(entries[0]["id"], ids[6].as_str());
    assert_eq!(entries[0]["result"], "draw");
    assert_eq!(entries[1]["result"], "win");
    assert!(
        (entries[0]["after"].as_f64().expect("after") - a["display"].as_f64().expect("display"))
            .abs()
            < 1e-9
    );
    assert_eq!(entries[0]["before"], entries[1]["after"]);
    let expected = entries[1]["expected"].as_f64().expect("expected score");
    assert!(
        expected > 0.5 && expected < 1.0,
        "A was the favourite: {expected}"
    );
    let (_, limited) = app
        .get_json("/v1/products/duel/boards/trueskill/players/A/history?limit=2")
        .await;
    assert_eq!(limited["entries"].as_array().map(Vec::len), Some(2));

    // The board shows the conservative estimate; the wins board still counts.
    let (_, top) = app.get_json("/leaderboards/top_ten/duel").await;
    assert_eq!(
        top,
        json!([{"user_id": "A", "score": 6}, {"user_id": "B", "score": 0}])
    );
    assert_eq!(
        stats_of(&app, "duel", "B").await,
        json!({"games": 7, "wins": 0, "losses": 6, "draws": 1, "current_win_streak": 0})
    );
    let a_stats = stats_of(&app, "duel", "A").await;
    assert_eq!(a_stats["best_win_streak"], 6);
    assert_eq!(a_stats["current_win_streak"], 0);

    // Prediction: A is favoured over B; a newcomer sits at the initial rating.
    let predict = |body: serde_json::Value| {
        let http = app.http.clone();
        let url = format!("{}/v1/products/duel/boards/elo/predict", app.address);
        async move {
            let response = http.post(url).json(&body).send().await.expect("request");
            (
                response.status().as_u16(),
                response.json::<serde_json::Value>().await.expect("JSON"),
            )
        }
    };
    let (status, p) = predict(json!({"teams": [["A"], ["B"]]})).await;
    assert_eq!(status, 200, "{p}");
    let win = p["win_probabilities"].as_array().expect("probabilities");
    assert!(win[0].as_f64().expect("p") > 0.5);
    assert!((win[0].as_f64().expect("p") + win[1].as_f64().expect("p") - 1.0).abs() < 1e-9);
    assert_eq!(p["match_quality"], serde_json::Value::Null);
    let (status, p) = predict(json!({"teams": [["A", "B"], ["C"]]})).await;
    assert_eq!(
        (status, p["error"]["code"].as_str()),
        (400, Some("unsupported_match"))
    );
    let (status, p) = predict(json!({"teams": [["A"]]})).await;
    assert_eq!(
        (status, p["error"]["code"].as_str()),
        (400, Some("invalid_teams"))
    );
    let response = app
        .http
        .post(format!(
            "{}/v1/products/duel/boards/trueskill/predict",
            app.address
        ))
        .json(&json!({"teams": [["A"], ["B"]]}))
        .send()
        .await
        .expect("request");
    let p: serde_json::Value = response.json().await.expect("JSON");
    assert!(p["match_quality"].as_f64().expect("quality") > 0.0);

    // Clear 404s.
    for (path, code) in [
        (
            "/v1/products/duel/boards/nope/players/A/rating",
            "board_not_found",
        ),
        (
            "/v1/products/duel/boards/wins/players/A/rating",
            "not_a_rating_board",
        ),
        (
            "/v1/products/duel/boards/elo/players/nobody/rating",
            "player_not_rated",
        ),
    ] {
        let (status, body) = app.get_json(path).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (404, Some(code)),
            "{path}"
        );
    }
    app.stop().await;
}

#[tokio::test]
async fn stats_rules_and_field_boards_from_the_example_games_file() {
    let redis = TestRedis::start().await;
    let mut settings = settings(&redis);
    settings.games.file = Some(crate::helpers::example_games_file());
    let app = TestApp::spawn(&settings, true).await;
    let mut stream = redis.connection(1).await;
    let gameplay = |name: &str, data: &str, user: &str| {
        event(&[
            ("product_id", "arena"),
            ("type", "gameplay"),
            ("event_name", name),
            ("event_data", data),
            ("user_id", user),
        ])
    };
    let events = vec![
        gameplay("kills", "7", "A"),
        gameplay("kills", "3", "A"),
        gameplay("lap", "61.5", "A"),
        gameplay("lap", "59.25", "A"),
        gameplay("lap", "60", "A"),
        gameplay("level", "4", "A"),
        gameplay("level", "2", "A"),
        gameplay("kills", "many", "A"), // not a number: dead-lettered, nothing applied
        event(&[
            ("product_id", "arena"),
            ("type", "match_result"),
            (
                "teams",
                r#"[{"place":1,"players":["A","B"],"scores":{"A":30,"B":10}},{"place":2,"players":["C","D"],"scores":{"A":1}}]"#,
            ),
        ]),
        event(&[
            ("product_id", "arena"),
            ("type", "match_result"),
            (
                "teams",
                r#"[{"place":1,"players":["A","C"],"scores":{"A":12.5}},{"place":2,"players":["B","D"]}]"#,
            ),
        ]),
        event(&[
            ("product_id", "exrps"),
            ("type", "gameplay"),
            ("round_winner_id", "A"),
            ("round_loser_id", "B"),
            ("event_name", "progression"),
            ("progress_event", "round_finished"),
            ("p1_id", "A"),
            ("p2_id", "B"),
        ]),
        event(&[
            ("product_id", "exrps"),
            ("type", "gameplay"),
            ("event_name", "select_fighter"),
            ("event_data", "aru"),
            ("user_id", "A"),
        ]),
        event(&[
            ("product_id", "exrps"),
            ("type", "game_over"),
            ("winner_id", "A"),
            ("loser_id", "B"),
        ]),
        event(&[
            ("product_id", "exrps"),
            ("type", "game_over"),
            ("winner_id", "A"),
            ("loser_id", "B"),
        ]),
        event(&[
            ("product_id", "exrps"),
            ("type", "game_over"),
            ("winner_id", "B"),
            ("loser_id", "A"),
        ]),
    ];
    let ids = push_events(&mut stream, &events).await;
    wait_until_drained(&mut stream, Duration::from_secs(10)).await;

    // The first match_result is invalid (a score for a player of another team): dead letter.
    let mut store = redis.connection(0).await;
    let letters: Vec<String> = dead_letters(&mut store, "st_test")
        .await
        .into_iter()
        .map(|(id, _, _)| id)
        .collect();
    assert_eq!(letters, vec![ids[7].clone(), ids[8].clone()]);

    let a = stats_of(&app, "arena", "A").await;
    assert_eq!(
        a,
        json!({"kills": 10, "most_kills": 7, "fastest_lap": 59.25, "level": 2,
               "games": 1, "wins": 1, "losses": 0, "total_score": 12.5, "best_score": 12.5})
    );
    let b = stats_of(&app, "arena", "B").await;
    assert_eq!(b, json!({"games": 1, "wins": 0, "losses": 1}));
    let a = stats_of(&app, "exrps", "A").await;
    assert_eq!(
        a,
        json!({"games": 3, "wins": 2, "losses": 1, "rounds_won": 1, "fighters_selected": 1,
               "current_win_streak": 0, "best_win_streak": 2})
    );
    let b = stats_of(&app, "exrps", "B").await;
    assert_eq!(b["rounds_lost"], 1);
    assert_eq!(b["current_win_streak"], 1);

    // Field boards: sum, max, min, last, count.
    let board = |name: &'static str| {
        let mut store = store.clone();
        async move {
            let keys = KeySpace::new("st_test").expect("prefix");
            let product = if name == "rounds" { "exrps" } else { "arena" };
            let key = keys
                .product(&ProductId::parse(product).expect("id"))
                .board(name);
            crate::traffic::board_scores(&mut store, &key)
                .await
                .into_iter()
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(board("total_kills").await, vec![("A".to_owned(), 10.0)]);
    assert_eq!(board("best_kills").await, vec![("A".to_owned(), 7.0)]);
    assert_eq!(board("fastest_lap").await, vec![("A".to_owned(), 59.25)]);
    assert_eq!(board("latest_level").await, vec![("A".to_owned(), 2.0)]);
    assert_eq!(board("rounds").await, vec![("A".to_owned(), 1.0)]);
    app.stop().await;
}

#[tokio::test]
async fn an_inactive_players_deviation_grows_per_period_by_the_events_time() {
    let redis = TestRedis::start().await;
    let settings = settings_with_games(
        &redis,
        r#"
[products.duel]
boards = [
  { name = "glicko2", kind = "glicko2", inactivity_days = 7 },
]
"#,
    );
    let app = TestApp::spawn(&settings, true).await;
    let mut stream = redis.connection(1).await;
    let game_over = |winner: &str, loser: &str| game_over("duel", winner, loser);
    const DAY: u64 = 86_400_000;
    let start = 1_790_000_000_000;
    crate::helpers::push_events_at(&mut stream, &[game_over("A", "B")], Some(start)).await;
    // Two days later: within A's first week, no growth. 30 days after that: four weeks.
    crate::helpers::push_events_at(&mut stream, &[game_over("A", "C")], Some(start + 2 * DAY))
        .await;
    crate::helpers::push_events_at(&mut stream, &[game_over("A", "D")], Some(start + 32 * DAY))
        .await;
    wait_until_drained(&mut stream, Duration::from_secs(10)).await;

    let (status, history) = app
        .get_json("/v1/products/duel/boards/glicko2/players/A/history")
        .await;
    assert_eq!(status, 200, "{history}");
    let entries = history["entries"].as_array().expect("entries");
    assert_eq!(entries.len(), 3);
    let deviation = |entry: &serde_json::Value, state: &str| {
        entry[state]["deviation"].as_f64().expect("deviation")
    };
    // Newest first: the second match started from the first's state as it was.
    assert_eq!(
        deviation(&entries[1], "state_before"),
        deviation(&entries[2], "state_after")
    );
    // The third, from the second's grown by four of Glickman's steps for a period without
    // games: φ' = √(φ² + 4σ²) on Glicko-2's scale.
    let scale = 173.7178;
    let phi = deviation(&entries[1], "state_after") / scale;
    let sigma = entries[1]["state_after"]["volatility"]
        .as_f64()
        .expect("volatility");
    let expected = (phi.powi(2) + 4.0 * sigma.powi(2)).sqrt() * scale;
    let grown = deviation(&entries[0], "state_before");
    assert!((grown - expected).abs() < 1e-9, "{grown} vs {expected}");
    assert!(grown > deviation(&entries[1], "state_after"));
    // The state says when it was last rated; the board describes its rule.
    let (_, rating) = app
        .get_json("/v1/products/duel/boards/glicko2/players/A/rating")
        .await;
    assert_eq!(rating["state"]["rated_at_ms"], json!(start + 32 * DAY));
    let (_, boards) = app.get_json("/v1/products/duel/boards").await;
    assert_eq!(boards["boards"][0]["inactivity_days"], 7);
    app.stop().await;
}

#[tokio::test]
async fn a_glicko2_rating_periods_matches_are_rated_together_and_idle_periods_grow_the_deviation() {
    let redis = TestRedis::start().await;
    let settings = settings_with_games(
        &redis,
        r#"
[products.duel]
boards = [
  { name = "glicko2", kind = "glicko2", rating_period_days = 1 },
]
"#,
    );
    let app = TestApp::spawn(&settings, true).await;
    let mut stream = redis.connection(1).await;
    let game_over = |winner: &str, loser: &str| game_over("duel", winner, loser);
    const DAY: u64 = 86_400_000;
    let day = 20_700; // a period's number: its first millisecond is day × DAY
    // One day: A beats B and C, B beats C, all against each other's start of the day.
    let first = [
        game_over("A", "B"),
        game_over("A", "C"),
        game_over("B", "C"),
    ];
    crate::helpers::push_events_at(&mut stream, &first, Some(day * DAY + 1_000)).await;
    // Three days later (two days without games): A beats B.
    crate::helpers::push_events_at(
        &mut stream,
        &[game_over("A", "B")],
        Some((day + 3) * DAY + 5_000),
    )
    .await;
    wait_until_drained(&mut stream, Duration::from_secs(10)).await;

    // The same, computed with the rating crate directly.
    let config = Glicko2Config::new();
    let new = Glicko2Rating::new();
    let a1 = glicko2_rating_period(&new, &[(new, Outcomes::WIN), (new, Outcomes::WIN)], &config);
    let b1 = glicko2_rating_period(
        &new,
        &[(new, Outcomes::LOSS), (new, Outcomes::WIN)],
        &config,
    );
    let idle_twice = |r: &Glicko2Rating| decay_deviation(&decay_deviation(r));
    let (a_start, b_start) = (idle_twice(&a1), idle_twice(&b1));
    let a2 = glicko2_rating_period(&a_start, &[(b_start, Outcomes::WIN)], &config);
    let b2 = glicko2_rating_period(&b_start, &[(a_start, Outcomes::LOSS)], &config);
    let c1 = glicko2_rating_period(
        &new,
        &[(new, Outcomes::LOSS), (new, Outcomes::LOSS)],
        &config,
    );

    let state = |player: &'static str| {
        let app = &app;
        async move {
            let (status, body) = app
                .get_json(&format!(
                    "/v1/products/duel/boards/glicko2/players/{player}/rating"
                ))
                .await;
            assert_eq!(status, 200, "{body}");
            body["state"].clone()
        }
    };
    let close = |state: &serde_json::Value, expected: &Glicko2Rating| {
        for (field, value) in [
            ("rating", expected.rating),
            ("deviation", expected.deviation),
            ("volatility", expected.volatility),
        ] {
            let actual = state[field].as_f64().expect("number");
            assert!(
                (actual - value).abs() < 1e-9,
                "{field}: {actual} vs {value} in {state}"
            );
        }
    };
    let a = state("A").await;
    close(&a, &a2);
    assert_eq!(a["matches"], 3);
    assert_eq!(a["period"]["index"], day + 3);
    close(&a["period"]["start"], &a_start);
    // Its one result of the period: B at the start of it, beaten.
    let result = &a["period"]["results"][0];
    assert_eq!(a["period"]["results"].as_array().map(Vec::len), Some(1));
    assert_eq!(result["score"], 1.0);
    for (field, value) in [
        ("opponent_rating", b_start.rating),
        ("opponent_deviation", b_start.deviation),
    ] {
        let actual = result[field].as_f64().expect("number");
        assert!(
            (actual - value).abs() < 1e-9,
            "{field}: {actual} vs {value}"
        );
    }
    close(&state("B").await, &b2);
    let c = state("C").await;
    close(&c, &c1);
    assert_eq!(c["period"]["index"], day);
    assert_eq!(c["period"]["results"].as_array().map(Vec::len), Some(2));

    // The board ranks by the ratings as they stand; it describes its period.
    let (_, page) = app
        .get_json("/v1/products/duel/boards/glicko2/entries")
        .await;
    let ranked: Vec<(&str, f64)> = page["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .map(|e| {
            (
                e["user_id"].as_str().expect("id"),
                e["score"].as_f64().expect("score"),
            )
        })
        .collect();
    assert_eq!(
        ranked,
        vec![("A", a2.rating), ("B", b2.rating), ("C", c1.rating)]
    );
    let (_, boards) = app.get_json("/v1/products/duel/boards").await;
    assert_eq!(boards["boards"][0]["rating_period_days"], 1);
    app.stop().await;
}
