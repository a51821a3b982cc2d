//! Reading a player's stats from the store.

use std::collections::{BTreeMap, HashMap};

use crate::core::ids::{PlayerId, ProductId};
use crate::core::store::{Store, StoreError};

/// All stats of `player` in `product`, by name; empty when the player has none.
///
/// Values are numbers; a value that is not (only possible if something else wrote the key)
/// is left out rather than failing the whole read.
pub async fn read(
    store: &Store,
    product: &ProductId,
    player: &PlayerId,
) -> Result<BTreeMap<String, serde_json::Number>, StoreError> {
    let key = store.keys().product(product).stats(player);
    let raw: HashMap<String, String> = store.query(redis::cmd("HGETALL").arg(key)).await?;
    Ok(raw
        .into_iter()
        .filter_map(|(name, value)| parse_number(&value).map(|number| (name, number)))
        .collect())
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
