//! The reference model: a plain in-memory implementation of the scoring and stats rules,
//! written independently of the code under test, to compare the tracker's results with.

use std::collections::BTreeMap;

use redis::aio::MultiplexedConnection;
use stats_tracker::core::ids::{PlayerId, ProductId};
use stats_tracker::core::keys::KeySpace;
pub use stats_tracker::simulate::{Event, Rng, mixed_run};

/// The expected result of applying events in order: boards and stats per product.
#[derive(Debug, Default, PartialEq)]
pub struct Model {
    /// product → player → wins
    pub boards: BTreeMap<String, BTreeMap<String, i64>>,
    /// (product, player) → stat → value
    pub stats: BTreeMap<(String, String), BTreeMap<String, i64>>,
}

impl Model {
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
                let board = self.boards.entry(product.to_owned()).or_default();
                *board.entry(winner.to_owned()).or_default() += 1;
                board.entry(loser.to_owned()).or_default();
                for (player, stat) in [(winner, "wins"), (loser, "losses")] {
                    let stats = self
                        .stats
                        .entry((product.to_owned(), player.to_owned()))
                        .or_default();
                    *stats.entry("games".to_owned()).or_default() += 1;
                    *stats.entry(stat.to_owned()).or_default() += 1;
                }
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
        let count = |pattern: String| {
            let mut store = store.clone();
            async move {
                let keys: Vec<String> = redis::cmd("KEYS")
                    .arg(pattern)
                    .query_async(&mut store)
                    .await
                    .expect("KEYS");
                keys.len()
            }
        };
        assert_eq!(
            count(format!("{prefix}:{{*}}:board:*")).await,
            self.boards.len(),
            "board keys"
        );
        assert_eq!(
            count(format!("{prefix}:{{*}}:stats:*")).await,
            self.stats.len(),
            "stats keys"
        );
    }
}
