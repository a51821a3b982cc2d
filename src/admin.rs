//! Admin operations on the store: erasing every trace of a player (for deletion requests
//! under privacy law; also their moderation records) and resetting one board. Each bumps the product's generation, so a worker
//! holding a cached view of that product reloads it instead of writing stale state back.

use std::collections::BTreeSet;

use redis::Script;

use crate::core::ids::{PlayerId, ProductId};
use crate::core::keys::{PartitionKeys, escape_glob, is_distinct_key};
use crate::core::store::{Store, StoreError};
use crate::games::{Games, ProductGames};
use crate::leaderboards::boards::BoardRule;

/// Erases one player from a product atomically: `KEYS[1]` generation, `KEYS[2]` the player's
/// stats hash (which holds their stamps), `KEYS[3]` the hidden players, `KEYS[4]` the
/// moderation audit trail, then `ARGV[2]` triples of a board, its distinct scores and its
/// hidden copy to take the player off, then keys to delete; `ARGV[1]` the player, `ARGV[3…]`
/// each board's stamp field. Moderation records of the player go too. Runs after
/// leaderboards/rank.lua.
const ERASE_PLAYER: &str = r"
local player, boards = ARGV[1], tonumber(ARGV[2])
for b = 0, boards - 1 do
  local board, distinct, hidden = KEYS[5 + 3 * b], KEYS[6 + 3 * b], KEYS[7 + 3 * b]
  local stamp = redis.call('HGET', KEYS[2], ARGV[3 + b])
  local stored = stamp and redis.call('ZSCORE', board, stamp .. player)
  if stored then unindex(board, distinct, stamp, player, -tonumber(stored)) end
  if stamp then redis.call('ZREM', hidden, stamp .. player) end
end
redis.call('DEL', KEYS[2])
redis.call('HDEL', KEYS[3], player)
for _, entry in ipairs(redis.call('XRANGE', KEYS[4], '-', '+')) do
  local fields = entry[2]
  for f = 1, #fields, 2 do
    if fields[f] == 'user_id' and fields[f + 1] == player then
      redis.call('XDEL', KEYS[4], entry[1])
    end
  end
end
for i = 5 + 3 * boards, #KEYS do
  redis.call('DEL', KEYS[i])
end
return redis.call('INCR', KEYS[1])
";

/// Every product the store may hold data of: those the worker has seen and those the games
/// file lists.
pub async fn all_products(store: &Store, games: &Games) -> Result<Vec<ProductId>, StoreError> {
    let seen: Vec<String> = store
        .query(redis::cmd("SMEMBERS").arg(store.keys().products()))
        .await?;
    let mut products: Vec<ProductId> = seen
        .iter()
        .filter_map(|raw| ProductId::parse(raw).ok())
        .chain(games.listed().map(|(id, _)| id.clone()))
        .collect();
    products.sort();
    products.dedup();
    Ok(products)
}

/// Removes every board entry, stat, rating and rating history of `player` in every product,
/// and replaces their id in the products' history by a pseudonym (see
/// `history::erase`), so that no rebuild brings them back. Returns how many products were
/// checked.
pub async fn erase_player(
    store: &Store,
    games: &Games,
    player: &PlayerId,
) -> Result<usize, StoreError> {
    let products = all_products(store, games).await?;
    for product in &products {
        // A product rejected by the games file can still hold data (and history) from an
        // earlier config.
        let config = games.product(product);
        let player_fields = config.map(ProductGames::player_fields).unwrap_or_else(|| {
            crate::core::event::PLAYER_FIELDS
                .iter()
                .map(|field| field.to_string())
                .collect()
        });
        // History first: a rebuild started between the two would bring the player back (one
        // started before is restarted by the erasure's generation bump). Then once more for
        // the entries applied meanwhile.
        let erasure = crate::history::erase::start(store, product, player, &player_fields).await?;
        if let Some(config) = config {
            erase_from(store, &store.keys().product(product), config, player).await?;
        }
        crate::history::erase::finish(store, product, player, &player_fields, erasure).await?;
    }
    Ok(products.len())
}

/// Removes `player`'s board entries, stats, ratings and rating histories from the product
/// keys `keys` (a product's own, or its rebuild shadow's), bumping their generation.
pub async fn erase_from(
    store: &Store,
    keys: &PartitionKeys,
    config: &ProductGames,
    player: &PlayerId,
) -> Result<(), StoreError> {
    let script = Script::new(&format!(
        "{}{ERASE_PLAYER}",
        include_str!("leaderboards/rank.lua")
    ));
    // Moderation records are the live product's: a copy (erasing a pseudonym as it replays)
    // must not touch them, so it names a key of its own that nothing writes.
    let hidden = if keys.is_copy() {
        format!("{}:hidden", keys.base())
    } else {
        keys.hidden()
    };
    let mut invocation = script.prepare_invoke();
    invocation
        .key(keys.generation())
        .key(keys.stats(player))
        .key(hidden)
        .key(keys.audit());
    let mut boards = Vec::new();
    for board in config.boards.boards() {
        boards.push(keys.board_keys(&board.name, None));
        // A period the player is on only while hidden has no board key: its hidden copy's
        // names the period too.
        let mut periods = BTreeSet::new();
        for (all_time, glob) in [
            (
                keys.board(&board.name),
                keys.board_periods_glob(&board.name),
            ),
            (
                keys.hidden_board(&board.name),
                keys.hidden_board_periods_glob(&board.name),
            ),
        ] {
            for key in store.scan(&glob).await? {
                if let Some(period) = period_of_board_key(&all_time, &key) {
                    periods.insert(period.to_owned());
                }
            }
        }
        for period in &periods {
            boards.push(keys.board_keys(&board.name, Some(period)));
        }
    }
    for board in &boards {
        invocation
            .key(&board.board)
            .key(&board.distinct)
            .key(&board.hidden);
    }
    invocation.key(keys.profile(player));
    for board in rated_boards(config) {
        invocation
            .key(keys.rating(board, player))
            .key(keys.history(board, player));
    }
    invocation.arg(player.as_str()).arg(boards.len());
    for board in &boards {
        invocation.arg(&board.stamp_field);
    }
    store.invoke::<i64>(&invocation).await?;
    Ok(())
}

fn rated_boards(config: &ProductGames) -> impl Iterator<Item = &str> {
    config
        .boards
        .boards()
        .iter()
        .filter(|b| matches!(b.rule, BoardRule::Rated { .. }))
        .map(|b| b.name.as_str())
}

/// Empties one board of a product: its scores, and for rating boards every player's rating
/// state and history. Returns the number of keys deleted. Players' stamps on it stay in their
/// stats hashes until they score on it again (name nothing then) or are erased.
pub async fn reset_board(
    store: &Store,
    product: &ProductId,
    board: &str,
) -> Result<u64, StoreError> {
    let keys = store.keys().product(product);
    let all_time = keys.board_keys(board, None);
    let mut doomed: Vec<String> = vec![all_time.board, all_time.distinct, all_time.hidden];
    for pattern in [
        keys.board_periods_glob(board),
        keys.hidden_board_periods_glob(board),
        format!("{}*", escape_glob(&keys.rating_prefix(board))),
        format!("{}*", escape_glob(&keys.history_prefix(board))),
    ] {
        doomed.extend(store.scan(&pattern).await?);
    }
    let mut deleted = 0;
    for chunk in doomed.chunks(500) {
        deleted += store.query::<u64>(redis::cmd("DEL").arg(chunk)).await?;
    }
    store
        .query::<i64>(redis::cmd("INCR").arg(keys.generation()))
        .await?;
    Ok(deleted)
}

/// The period suffix (`daily:2026-11-25`) of a period board's key, given the all-time board
/// key; `None` for the distinct scores next to it.
fn period_of_board_key<'a>(board: &str, key: &'a str) -> Option<&'a str> {
    let suffix = key.strip_prefix(board)?.strip_prefix('@')?;
    (!is_distinct_key(suffix)).then_some(suffix)
}
