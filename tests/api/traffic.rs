//! The reference model: a plain in-memory implementation of the scoring and stats rules,
//! written independently of the code under test, to compare the tracker's results with.

use std::collections::{BTreeMap, BTreeSet};

use crate::helpers::TestConn;
pub use crate::simulate::{Event, Rng, mixed_run, players};
use stats_tracker::core::ids::{PlayerId, ProductId};
use stats_tracker::core::keys::{KeySpace, STAMP_FIELD_PREFIX, encode_segment, is_distinct_key};
use stats_tracker::leaderboards::rank;

/// The expected result of applying events in order: boards and stats per product, and,
/// when enabled, an Elo board on exrps (computed with the rating crate directly).
#[derive(Debug, Default)]
pub struct Model {
    /// product → player → wins
    pub boards: BTreeMap<String, BTreeMap<String, i64>>,
    /// (product, player) → stat → value
    pub stats: BTreeMap<(String, String), BTreeMap<String, i64>>,
    /// exrps Elo (k-factor, initial rating) when the games file has an `elo` board there.
    pub elo_config: Option<(f64, f64)>,
    /// exrps player → (rating, matches rated)
    pub elo: BTreeMap<String, (f64, u64)>,
}

impl Model {
    /// A model that also rates exrps matches on an `elo` board.
    pub fn with_exrps_elo(k_factor: f64, initial_rating: f64) -> Self {
        Self {
            elo_config: Some((k_factor, initial_rating)),
            ..Self::default()
        }
    }

    /// A match outcome: sides of players with places (1 best, equal places tie).
    fn record_match(&mut self, product: &str, sides: &[(Vec<String>, u32)]) {
        let best = sides.iter().map(|(_, place)| *place).min().unwrap_or(1);
        let firsts = sides.iter().filter(|(_, place)| *place == best).count();
        let board = self.boards.entry(product.to_owned()).or_default();
        for (players, place) in sides {
            let result = match (*place == best, firsts) {
                (true, 1) => "wins",
                (true, _) => "draws",
                _ => "losses",
            };
            for player in players {
                let score = board.entry(player.clone()).or_default();
                if result == "wins" {
                    *score += 1;
                }
                let stats = self
                    .stats
                    .entry((product.to_owned(), player.clone()))
                    .or_default();
                *stats.entry("games".to_owned()).or_default() += 1;
                *stats.entry(result.to_owned()).or_default() += 1;
            }
        }
        if let (Some((k, initial)), "exrps", [(a, pa), (b, pb)]) = (self.elo_config, product, sides)
        {
            let outcome = match pa.cmp(pb) {
                std::cmp::Ordering::Less => skillratings::Outcomes::WIN,
                std::cmp::Ordering::Greater => skillratings::Outcomes::LOSS,
                std::cmp::Ordering::Equal => skillratings::Outcomes::DRAW,
            };
            let (ra, ma) = self.elo.get(&a[0]).copied().unwrap_or((initial, 0));
            let (rb, mb) = self.elo.get(&b[0]).copied().unwrap_or((initial, 0));
            let (na, nb) = skillratings::elo::elo(
                &skillratings::elo::EloRating { rating: ra },
                &skillratings::elo::EloRating { rating: rb },
                &outcome,
                &skillratings::elo::EloConfig { k },
            );
            self.elo.insert(a[0].clone(), (na.rating, ma + 1));
            self.elo.insert(b[0].clone(), (nb.rating, mb + 1));
        }
    }

    /// Applies one event; returns false if the tracker must dead-letter it.
    pub fn apply(&mut self, event: &Event) -> bool {
        let get = |name: &str| {
            event
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
        };
        let Some(product) = get("product_id").filter(|p| !p.is_empty()) else {
            return false;
        };
        match get("type") {
            Some("game_over") => {
                let (Some(winner), Some(loser)) = (get("winner_id"), get("loser_id")) else {
                    return false;
                };
                if winner == loser || winner.is_empty() || loser.is_empty() {
                    return false;
                }
                self.record_match(
                    product,
                    &[(vec![winner.to_owned()], 1), (vec![loser.to_owned()], 2)],
                );
                true
            }
            Some("draw") => {
                let (Some(a), Some(b)) = (get("p1_id"), get("p2_id")) else {
                    return false;
                };
                if a == b || a.is_empty() || b.is_empty() {
                    return false;
                }
                self.record_match(product, &[(vec![a.to_owned()], 1), (vec![b.to_owned()], 1)]);
                true
            }
            Some("match_result") => {
                // The generator only writes valid results; bad ones come from bad_event.
                let Some(Ok(teams)) = get("teams").map(serde_json::from_str::<serde_json::Value>)
                else {
                    return false;
                };
                let sides: Vec<(Vec<String>, u32)> = teams
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|team| {
                        let players = team["players"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .filter_map(|p| p.as_str().map(str::to_owned))
                            .collect();
                        (players, team["place"].as_u64().unwrap_or(0) as u32)
                    })
                    .collect();
                self.record_match(product, &sides);
                true
            }
            Some("gameplay") => {
                if get("event_name").is_none() {
                    return false;
                }
                if product != "exrps" || get("event_name") != Some("select_weapon") {
                    return true;
                }
                let (Some(user), Some(data)) = (get("user_id"), get("event_data")) else {
                    return false;
                };
                let stat = match data {
                    "0" => "rock_selection_count",
                    "1" => "paper_selection_count",
                    "2" => "scissors_selection_count",
                    "null" => "botch_selection_count",
                    other if other.parse::<i64>().is_ok() => "botch_selection_count",
                    _ => return false,
                };
                *self
                    .stats
                    .entry((product.to_owned(), user.to_owned()))
                    .or_default()
                    .entry(stat.to_owned())
                    .or_default() += 1;
                true
            }
            Some("state_change" | "player_disconnect" | "game_removed") => true,
            _ => false,
        }
    }

    /// Asserts that the store under `prefix` holds exactly this model: every board, every
    /// stats hash, and no other board or stats keys.
    pub async fn assert_matches_store(&self, store: &mut impl TestConn, prefix: &str) {
        let keys = KeySpace::new(prefix).expect("prefix");
        for (product, expected) in &self.boards {
            let key = keys
                .product(&ProductId::parse(product).expect("id"))
                .board("wins");
            let actual: BTreeMap<String, i64> = board_scores(store, &key)
                .await
                .into_iter()
                .map(|(p, s)| (p, s as i64))
                .collect();
            assert_eq!(&actual, expected, "board of {product}");
        }
        for ((product, player), expected) in &self.stats {
            let key = keys
                .product(&ProductId::parse(product).expect("id"))
                .stats(&PlayerId::parse(player).expect("id"));
            let actual = stats_of(store, &key).await;
            assert_eq!(&actual, expected, "stats of {player} in {product}");
        }
        let counting = store.clone();
        let count = |pattern: String| {
            let mut store = counting.clone();
            async move { store.keys(&pattern).await.len() }
        };
        let elo_boards = usize::from(!self.elo.is_empty());
        let board_keys = store.keys(&format!("{prefix}:{{*}}:board:*")).await;
        // All-time boards only: not period boards (`@`), not their distinct scores.
        let all_time: Vec<&String> = board_keys
            .iter()
            .filter(|key| !key.contains('@') && !is_distinct_key(key))
            .collect();
        assert_eq!(all_time.len(), self.boards.len() + elo_boards, "board keys");
        for key in all_time {
            assert_board_is_consistent(store, key).await;
        }
        if self.elo_config.is_some() {
            let exrps = keys.product(&ProductId::parse("exrps").expect("id"));
            let board = board_scores(store, &exrps.board("elo")).await;
            for (player, (rating, matches)) in &self.elo {
                let key = exrps.rating("elo", &PlayerId::parse(player).expect("id"));
                let stored: BTreeMap<String, String> = redis::cmd("HGETALL")
                    .arg(&key)
                    .query_async(store)
                    .await
                    .expect("HGETALL");
                let stored_rating: f64 = stored
                    .get("rating")
                    .and_then(|r| r.parse().ok())
                    .unwrap_or(f64::NAN);
                assert_eq!(
                    stored_rating.to_bits(),
                    rating.to_bits(),
                    "elo of {player}: {stored:?} vs {rating}"
                );
                assert_eq!(
                    stored.get("matches"),
                    Some(&matches.to_string()),
                    "elo matches of {player}"
                );
                let shown = board.get(player);
                assert_eq!(
                    shown.map(|score| score.to_bits()),
                    Some(rating.to_bits()),
                    "elo board of {player}"
                );
            }
            assert_eq!(
                count(format!("{prefix}:{{exrps}}:rating:elo:*")).await,
                self.elo.len(),
                "elo states"
            );
        }
        assert_eq!(
            count(format!("{prefix}:{{*}}:stats:*")).await,
            self.stats.len(),
            "stats keys"
        );
    }
}

/// A board as player → score (the board stores rows in rank order, see
/// `leaderboards::rank`); panics on a row that is not one, or a player on it twice.
pub async fn board_scores(store: &mut impl TestConn, key: &str) -> BTreeMap<String, f64> {
    let stored: Vec<(Vec<u8>, String)> = redis::cmd("ZRANGE")
        .arg(key)
        .arg(0)
        .arg(-1)
        .arg("WITHSCORES")
        .query_async(store)
        .await
        .expect("ZRANGE");
    let count = stored.len();
    let scores: BTreeMap<String, f64> = stored
        .into_iter()
        .map(|(member, score)| {
            let row = rank::Row::from_stored(member, &score, 0).expect("a board row");
            (row.player().expect("a player").to_owned(), row.score)
        })
        .collect();
    assert_eq!(scores.len(), count, "{key}: a player on the board twice");
    scores
}

/// A stats hash's stats (without the board stamps it also holds), as integers.
pub async fn stats_of(store: &mut impl TestConn, key: &str) -> BTreeMap<String, i64> {
    let stored: BTreeMap<String, Vec<u8>> = redis::cmd("HGETALL")
        .arg(key)
        .query_async(store)
        .await
        .expect("HGETALL");
    stored
        .into_iter()
        .filter(|(name, _)| !name.starts_with(STAMP_FIELD_PREFIX))
        .map(|(name, value)| {
            let value = std::str::from_utf8(&value)
                .ok()
                .and_then(|text| text.parse().ok())
                .unwrap_or_else(|| panic!("{key}: stat {name} is not an integer"));
            (name, value)
        })
        .collect()
}

/// Asserts that the board at `key` is one: every row a player with their score, each
/// player's stamp field (in their stats hash) naming their row, and `:distinct` exactly the
/// distinct scores, scored like the board.
pub async fn assert_board_is_consistent(store: &mut impl TestConn, key: &str) {
    let stored: Vec<(Vec<u8>, String)> = redis::cmd("ZRANGE")
        .arg(key)
        .arg(0)
        .arg(-1)
        .arg("WITHSCORES")
        .query_async(store)
        .await
        .expect("ZRANGE");
    let (base, name) = key.split_once(":board:").expect("a board key");
    let field = format!("{STAMP_FIELD_PREFIX}{name}");
    let mut players = BTreeSet::new();
    let mut scores = BTreeSet::new();
    for (member, score) in stored {
        let row = rank::Row::from_stored(member, &score, 0).expect("a board row");
        let player = row.player().expect("a player").to_owned();
        let stamp: Option<Vec<u8>> = redis::cmd("HGET")
            .arg(format!("{base}:stats:{}", encode_segment(&player)))
            .arg(&field)
            .query_async(store)
            .await
            .expect("HGET stamp");
        assert_eq!(
            stamp.as_deref(),
            Some(&row.member[..rank::STAMP_BYTES]),
            "{key}: stamp of {player}"
        );
        assert!(players.insert(player), "{key}: a player twice");
        scores.insert(row.score.to_bits());
    }
    let distinct: Vec<(String, f64)> = redis::cmd("ZRANGE")
        .arg(format!("{key}:distinct"))
        .arg(0)
        .arg(-1)
        .arg("WITHSCORES")
        .query_async(store)
        .await
        .expect("ZRANGE distinct");
    let mut distinct_scores = BTreeSet::new();
    for (text, stored) in distinct {
        let score: f64 = text.parse().expect("a score");
        assert_eq!(
            stored, -score,
            "{key}: distinct score {text} is scored {stored}"
        );
        distinct_scores.insert(score.to_bits());
    }
    assert_eq!(distinct_scores, scores, "{key}: distinct scores");
}

/// Applies `events` in order to `model`, then asserts that the store under `prefix` holds
/// exactly the model and that the dead letters are exactly the bad events (`bad` indexes into
/// `events`, `ids` are the events' stream ids), once each, in order.
pub async fn assert_run_matches(
    model: Model,
    store: &mut impl TestConn,
    prefix: &str,
    events: &[Event],
    bad: &[usize],
    ids: &[String],
) -> Model {
    assert_run_matches_with(model, store, prefix, events, bad, ids, true).await
}

/// [`assert_run_matches`]; with `letters_in_order` false, the dead letters may come in any
/// order (several stream partitions write them independently), each still exactly once.
pub async fn assert_run_matches_with(
    mut model: Model,
    store: &mut impl TestConn,
    prefix: &str,
    events: &[Event],
    bad: &[usize],
    ids: &[String],
    letters_in_order: bool,
) -> Model {
    for event in events {
        model.apply(event);
    }
    model.assert_matches_store(store, prefix).await;
    let letters = crate::helpers::dead_letters(store, prefix).await;
    let mut expected: Vec<&str> = bad.iter().map(|&i| ids[i].as_str()).collect();
    let mut actual: Vec<&str> = letters.iter().map(|(id, _, _)| id.as_str()).collect();
    if !letters_in_order {
        expected.sort();
        actual.sort();
    }
    assert_eq!(
        actual, expected,
        "every bad event dead-lettered exactly once"
    );
    // Every product with effects is listed for discovery, even if a worker died between
    // listing it and writing its effects, or the other way round.
    let listed: BTreeSet<String> = redis::cmd("SMEMBERS")
        .arg(format!("{prefix}:products"))
        .query_async(store)
        .await
        .expect("SMEMBERS products");
    let with_effects: BTreeSet<String> = model
        .boards
        .keys()
        .cloned()
        .chain(model.stats.keys().map(|(product, _)| product.clone()))
        .collect();
    assert_eq!(
        listed, with_effects,
        "the discovery index lists every product"
    );
    model
}
