//! Reading leaderboards from the store.

use serde::Serialize;

use crate::core::ids::ProductId;
use crate::core::keys::Columns;
use crate::core::store::{Store, StoreError};

/// One row of a leaderboard.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct BoardEntry {
    pub user_id: String,
    /// The board's score; integral values are written as integers.
    #[schema(value_type = f64)]
    pub score: serde_json::Number,
}

/// The best `limit` entries of `board`, best first (ties: earlier achiever first, as in the
/// ranked pages). Empty for a board that does not exist.
pub async fn top(
    store: &Store,
    product: &ProductId,
    board: &str,
    columns: &Columns,
    limit: usize,
) -> Result<Vec<BoardEntry>, StoreError> {
    if limit == 0 {
        return Ok(Vec::new());
    }
    let key = store.keys().product(product).board(board);
    // ZRANGE's stop index is inclusive: `limit - 1` gives exactly `limit` rows.
    let stored: Vec<(Vec<u8>, String)> = store
        .query(
            redis::cmd("ZRANGE")
                .arg(key)
                .arg(0)
                .arg(limit - 1)
                .arg("WITHSCORES"),
        )
        .await?;
    Ok(stored
        .into_iter()
        .filter_map(|(member, stored)| {
            super::rank::Row::from_stored(member, &stored, columns.tail_bytes())
        })
        .map(|row| {
            // A board with several columns: its first column's value (0 while it has none).
            let entry = row.entry(0, columns);
            BoardEntry {
                user_id: entry.user_id,
                score: entry.score.unwrap_or_else(|| 0.into()),
            }
        })
        .collect())
}

/// A score as JSON: integral values print as integers (`3`, not `3.0`).
pub fn json_number(value: f64) -> serde_json::Number {
    // 2^53: beyond it f64 no longer holds every integer, so keep the float form.
    const EXACT_LIMIT: f64 = 9_007_199_254_740_992.0;
    if value.fract() == 0.0 && value.abs() <= EXACT_LIMIT {
        serde_json::Number::from(value as i64)
    } else {
        serde_json::Number::from_f64(value).unwrap_or_else(|| serde_json::Number::from(0))
    }
}

/// A player's rating state on a rating board; `None` if never rated.
pub async fn rating(
    store: &Store,
    product: &ProductId,
    board: &str,
    player: &crate::core::ids::PlayerId,
) -> Result<Option<super::ratings::Rating>, StoreError> {
    let key = store.keys().product(product).rating(board, player);
    let fields: std::collections::HashMap<String, String> =
        store.query(redis::cmd("HGETALL").arg(key)).await?;
    Ok(super::boards::rating_from_fields(&fields))
}

/// The newest `limit` rating history entries of a player, newest first.
pub async fn history(
    store: &Store,
    product: &ProductId,
    board: &str,
    player: &crate::core::ids::PlayerId,
    limit: usize,
) -> Result<Vec<serde_json::Value>, StoreError> {
    if limit == 0 {
        return Ok(Vec::new());
    }
    let key = store.keys().product(product).history(board, player);
    let raw: Vec<String> = store
        .query(redis::cmd("LRANGE").arg(key).arg(0).arg(limit - 1))
        .await?;
    // Entries are written by the worker as JSON; skip anything else rather than fail.
    Ok(raw
        .iter()
        .filter_map(|entry| serde_json::from_str(entry).ok())
        .collect())
}

#[cfg(test)]
mod tests {
    use super::json_number;

    #[test]
    fn integral_scores_print_as_integers() {
        assert_eq!(json_number(3.0).to_string(), "3");
        assert_eq!(json_number(-2.0).to_string(), "-2");
        assert_eq!(json_number(1500.25).to_string(), "1500.25");
    }
}
