//! Reading a player's stats from the store.

use std::collections::{BTreeMap, HashMap};

use crate::core::ids::{PlayerId, ProductId};
use crate::core::keys::STAMP_FIELD_PREFIX;
use crate::core::store::{Store, StoreError};

/// All stats of `player` in `product`, by name; empty when the player has none. (The stats
/// hash also holds the player's board stamps, which are not stats.)
///
/// `zero_start` are the stats a player who has played always has (the product's
/// [`StatsHandler::zero_start_stats`](super::handlers::StatsHandler::zero_start_stats)): when
/// the stored stats hold any of them, the missing ones read as 0. A player with no stats stays
/// empty. Values are numbers; a value that is not (only possible if something else wrote the
/// key) is left out rather than failing the whole read.
pub async fn read(
    store: &Store,
    product: &ProductId,
    player: &PlayerId,
    zero_start: &[String],
) -> Result<BTreeMap<String, serde_json::Number>, StoreError> {
    let key = store.keys().product(product).stats(player);
    // Bytes: the stamps beside the stats are binary.
    let raw: HashMap<String, Vec<u8>> = store.query(redis::cmd("HGETALL").arg(key)).await?;
    let mut stats: BTreeMap<String, serde_json::Number> = raw
        .into_iter()
        .filter(|(name, _)| !name.starts_with(STAMP_FIELD_PREFIX))
        .filter_map(|(name, value)| {
            let number = parse_number(std::str::from_utf8(&value).ok()?)?;
            Some((name, number))
        })
        .collect();
    fill_zero_start(&mut stats, zero_start);
    Ok(stats)
}

/// Adds the `zero_start` stats missing from `stats` as 0, if `stats` holds any of them.
fn fill_zero_start(stats: &mut BTreeMap<String, serde_json::Number>, zero_start: &[String]) {
    if zero_start.iter().any(|name| stats.contains_key(name)) {
        for name in zero_start {
            stats.entry(name.clone()).or_insert_with(|| 0.into());
        }
    }
}

fn parse_number(value: &str) -> Option<serde_json::Number> {
    if let Ok(int) = value.parse::<i64>() {
        return Some(int.into());
    }
    value
        .parse::<f64>()
        .ok()
        .and_then(serde_json::Number::from_f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats(pairs: &[(&str, i64)]) -> BTreeMap<String, serde_json::Number> {
        pairs
            .iter()
            .map(|(name, value)| ((*name).to_owned(), (*value).into()))
            .collect()
    }

    #[test]
    fn zero_start_stats_appear_once_any_of_them_is_counted() {
        let zero_start: Vec<String> = ["games", "wins", "losses"].map(str::to_owned).to_vec();
        let mut played = stats(&[("games", 1), ("wins", 1), ("rock_selection_count", 2)]);
        fill_zero_start(&mut played, &zero_start);
        assert_eq!(
            played,
            stats(&[
                ("games", 1),
                ("wins", 1),
                ("losses", 0),
                ("rock_selection_count", 2)
            ])
        );

        // Only gameplay counted (no match yet), or nothing at all: nothing added.
        let mut gameplay_only = stats(&[("rock_selection_count", 2)]);
        fill_zero_start(&mut gameplay_only, &zero_start);
        assert_eq!(gameplay_only, stats(&[("rock_selection_count", 2)]));
        let mut none = stats(&[]);
        fill_zero_start(&mut none, &zero_start);
        assert!(none.is_empty());
    }
}
