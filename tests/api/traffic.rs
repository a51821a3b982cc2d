//! The reference model: a plain in-memory implementation of the scoring and stats rules,
//! written independently of the code under test, to compare the tracker's results with.

use std::collections::{BTreeMap, BTreeSet};

pub use crate::simulate::{Event, Rng, mixed_run, players};
use redis::aio::MultiplexedConnection;
use stats_tracker::core::ids::{PlayerId, ProductId};
use stats_tracker::core::keys::{KeySpace, is_board_index_key};
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
    pub async fn assert_matches_store(&self, store: &mut MultiplexedConnection, prefix: &str) {
        let keys = KeySpace::new(prefix).expect("prefix");
        for (product, expected) in &self.boards {
            let key = keys
                .product(&ProductId::parse(product).expect("id"))
                .board("wins");
            let actual: Vec<(String, f64)> = redis::cmd("ZRANGE")
                .arg(&key)
                .arg(0)
                .arg(-1)
                .arg("WITHSCORES")
                .query_async(store)
                .await
                .expect("ZRANGE");
            let actual: BTreeMap<String, i64> =
                actual.into_iter().map(|(p, s)| (p, s as i64)).collect();
            assert_eq!(&actual, expected, "board of {product}");
        }
        for ((product, player), expected) in &self.stats {
            let key = keys
                .product(&ProductId::parse(product).expect("id"))
                .stats(&PlayerId::parse(player).expect("id"));
            let actual: BTreeMap<String, i64> = redis::cmd("HGETALL")
                .arg(&key)
                .query_async(store)
                .await
                .expect("HGETALL");
            assert_eq!(&actual, expected, "stats of {player} in {product}");
        }
        let counting = store.clone();
        let count = |pattern: String| {
            let mut store = counting.clone();
            async move {
                let keys: Vec<String> = redis::cmd("KEYS")
                    .arg(pattern)
                    .query_async(&mut store)
                    .await
                    .expect("KEYS");
                keys.len()
            }
        };
        let elo_boards = usize::from(!self.elo.is_empty());
        let board_keys: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{prefix}:{{*}}:board:*"))
            .query_async(store)
            .await
            .expect("KEYS");
        // All-time boards only: not period boards (`@`), not rank index keys.
        let all_time: Vec<&String> = board_keys
            .iter()
            .filter(|key| !key.contains('@') && !is_board_index_key(key))
            .collect();
        assert_eq!(all_time.len(), self.boards.len() + elo_boards, "board keys");
        for key in all_time {
            assert_rank_index_matches_board(store, key).await;
        }
        if self.elo_config.is_some() {
            let exrps = keys.product(&ProductId::parse("exrps").expect("id"));
            let board = exrps.board("elo");
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
                let shown: Option<f64> = redis::cmd("ZSCORE")
                    .arg(&board)
                    .arg(player)
                    .query_async(store)
                    .await
                    .expect("ZSCORE");
                assert_eq!(
                    shown.map(f64::to_bits),
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

/// Asserts that the rank index of the board at `scores` holds exactly the board: one member
/// per player with the player's score, `:at` naming each member's stamp, and `:distinct`
/// exactly the distinct scores.
pub async fn assert_rank_index_matches_board(store: &mut MultiplexedConnection, scores: &str) {
    let board: Vec<(String, f64)> = redis::cmd("ZRANGE")
        .arg(scores)
        .arg(0)
        .arg(-1)
        .arg("WITHSCORES")
        .query_async(store)
        .await
        .expect("ZRANGE");
    let board: BTreeMap<String, f64> = board.into_iter().collect();
    let order: Vec<String> = redis::cmd("ZRANGE")
        .arg(format!("{scores}:order"))
        .arg(0)
        .arg(-1)
        .query_async(store)
        .await
        .expect("ZRANGE order");
    let at: BTreeMap<String, String> = redis::cmd("HGETALL")
        .arg(format!("{scores}:at"))
        .query_async(store)
        .await
        .expect("HGETALL at");
    let distinct: Vec<String> = redis::cmd("ZRANGE")
        .arg(format!("{scores}:distinct"))
        .arg(0)
        .arg(-1)
        .query_async(store)
        .await
        .expect("ZRANGE distinct");
    assert_eq!(order.len(), board.len(), "{scores}: index size");
    assert_eq!(at.len(), board.len(), "{scores}: stamps");
    let mut seen = std::collections::BTreeSet::new();
    let mut score_keys = std::collections::BTreeSet::new();
    for member in &order {
        let parsed = rank::parse_member(member).expect("an index member");
        assert_eq!(
            board.get(parsed.player).map(|s| s.to_bits()),
            Some(parsed.score.to_bits()),
            "{scores}: indexed score of {}",
            parsed.player
        );
        assert_eq!(
            at.get(parsed.player).map(String::as_str),
            Some(parsed.achieved)
        );
        assert!(
            seen.insert(parsed.player.to_owned()),
            "{} twice",
            parsed.player
        );
        score_keys.insert(rank::score_key(parsed.score));
    }
    let distinct: std::collections::BTreeSet<String> = distinct.into_iter().collect();
    assert_eq!(distinct, score_keys, "{scores}: distinct scores");
}

/// Applies `events` in order to `model`, then asserts that the store under `prefix` holds
/// exactly the model and that the dead letters are exactly the bad events (`bad` indexes into
/// `events`, `ids` are the events' stream ids), once each, in order.
pub async fn assert_run_matches(
    mut model: Model,
    store: &mut MultiplexedConnection,
    prefix: &str,
    events: &[Event],
    bad: &[usize],
    ids: &[String],
) -> Model {
    for event in events {
        model.apply(event);
    }
    model.assert_matches_store(store, prefix).await;
    let letters = crate::helpers::dead_letters(store, prefix).await;
    let expected: Vec<&str> = bad.iter().map(|&i| ids[i].as_str()).collect();
    let actual: Vec<&str> = letters.iter().map(|(id, _, _)| id.as_str()).collect();
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
