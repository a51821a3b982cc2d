//! Admin operations on the store: erasing every trace of a player (for deletion requests
//! under privacy law) and resetting one board. Each bumps the product's generation, so a worker
//! holding a cached view of that product reloads it instead of writing stale state back.

use redis::Script;

use crate::core::ids::{PlayerId, ProductId};
use crate::core::store::{Store, StoreError};
use crate::games::{Games, ProductGames};
use crate::leaderboards::boards::BoardRule;

/// Erases one player from a product atomically: `KEYS[1]` generation, then `ARGV[2]` board
/// keys to remove the player from, then keys to delete; `ARGV[1]` the player.
const ERASE_PLAYER: &str = r"
local boards = tonumber(ARGV[2])
for i = 2, #KEYS do
  if i <= boards + 1 then
    redis.call('ZREM', KEYS[i], ARGV[1])
  else
    redis.call('DEL', KEYS[i])
  end
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

/// Removes every board entry, stat, rating and rating history of `player` in every product.
/// Returns how many products were checked.
pub async fn erase_player(
    store: &Store,
    games: &Games,
    player: &PlayerId,
) -> Result<usize, StoreError> {
    let products = all_products(store, games).await?;
    let script = Script::new(ERASE_PLAYER);
    for product in &products {
        // A product rejected by the games file can still hold data from an earlier config.
        let Some(config) = games.product(product) else {
            continue;
        };
        let keys = store.keys().product(product);
        let mut invocation = script.prepare_invoke();
        invocation.key(keys.generation());
        let boards = config.boards.boards();
        for board in boards {
            invocation.key(keys.board(&board.name));
        }
        invocation.key(keys.stats(player));
        for board in rated_boards(config) {
            invocation
                .key(keys.rating(board, player))
                .key(keys.history(board, player));
        }
        invocation.arg(player.as_str()).arg(boards.len());
        store.invoke::<i64>(&invocation).await?;
    }
    Ok(products.len())
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
/// state and history. Returns the number of keys deleted.
pub async fn reset_board(
    store: &Store,
    product: &ProductId,
    board: &str,
) -> Result<u64, StoreError> {
    let keys = store.keys().product(product);
    let mut doomed = vec![keys.board(board)];
    for pattern in [
        format!("{}*", escape_glob(&keys.rating_prefix(board))),
        format!("{}*", escape_glob(&keys.history_prefix(board))),
    ] {
        let mut cursor: u64 = 0;
        loop {
            let (next, found): (u64, Vec<String>) = store
                .query(
                    redis::cmd("SCAN")
                        .arg(cursor)
                        .arg("MATCH")
                        .arg(&pattern)
                        .arg("COUNT")
                        .arg(1000),
                )
                .await?;
            doomed.extend(found);
            if next == 0 {
                break;
            }
            cursor = next;
        }
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

/// Escapes Redis glob metacharacters so a key prefix matches only itself.
fn escape_glob(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}
