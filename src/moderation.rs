//! Moderation: hiding a player from a product's boards and un-hiding them, and the audit
//! trail of those actions.
//!
//! A hidden player's members move, with their scores and stamps, from every board they are
//! on (all-time, every window's periods, rating boards) to the board's hidden copy
//! (`P:{<product>}:hidden:<board>[@<window>:<period>]`), and the worker keeps moving their
//! scores there (`commit.lua` looks the player up in `P:{<product>}:hidden`), so they keep
//! being rated and counted while everyone else's ranks close the gap. Un-hiding moves the
//! members back: same scores, same stamps, so the player returns to their true standing,
//! ties ordered as before. Each action is one script (atomic with its audit entry) and bumps
//! the product's generation, which restarts a rebuild running meanwhile.

use std::collections::HashMap;

use redis::Script;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::core::ids::{PlayerId, ProductId};
use crate::core::keys::{DISTINCT_SUFFIX, HIDDEN_BOARD_INFIX, STAMP_FIELD_PREFIX};
use crate::core::store::{Store, StoreError};

/// Audit entries kept per product (older ones are trimmed, approximately).
pub const AUDIT_ENTRIES_KEPT: u64 = 10_000;

/// Why a moderation action was refused.
#[derive(Debug, thiserror::Error)]
pub enum ModerationError {
    #[error("player `{0}` is already hidden on this product")]
    AlreadyHidden(String),
    #[error("player `{0}` is not hidden on this product")]
    NotHidden(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A hidden player: who hid them, when, why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct HiddenPlayer {
    pub user_id: String,
    /// The name of the admin token that hid them.
    pub by: String,
    /// When (Unix milliseconds).
    pub at_ms: u64,
    pub reason: String,
}

/// One moderation action, as the audit trail keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct AuditEntry {
    /// The entry's id in the audit stream (`<ms>-<seq>`), a cursor for older entries.
    pub id: String,
    /// `hide` or `unhide`.
    pub action: String,
    pub user_id: String,
    /// The name of the admin token used.
    pub by: String,
    pub at_ms: u64,
    pub reason: String,
}

/// The record kept per hidden player (the hash value; the id is the field).
#[derive(Serialize, Deserialize)]
struct Record {
    by: String,
    at_ms: u64,
    reason: String,
}

/// `KEYS`: generation, hidden players, the player's stats hash (their stamps), the audit
/// stream. `ARGV`: the player, 'hide' or 'unhide', the record (hide), the product's key base,
/// the audit stream's length kept, then the audit entry's fields. Moves each of the player's
/// members between a board (and its distinct scores) and the board's hidden copy, keeping
/// period boards' expiry; returns the boards moved, or -1 when the player already is (hide) or
/// is not (unhide) hidden. Runs after leaderboards/rank.lua.
const MOVE: &str = r"
local player, action, record, base = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local hiding = action == 'hide'
if (redis.call('HEXISTS', KEYS[2], player) == 1) == hiding then return -1 end
local moved = 0
local fields = redis.call('HGETALL', KEYS[3])
for i = 1, #fields, 2 do
  if string.sub(fields[i], 1, #STAMP) == STAMP then
    local name = string.sub(fields[i], #STAMP + 1)
    local board = base .. ':board:' .. name
    local distinct = board .. DISTINCT
    local copy = base .. HIDDEN .. name
    local prefix = fields[i + 1]
    local member = prefix .. player
    local from, to = board, copy
    if not hiding then from, to = copy, board end
    local stored = redis.call('ZSCORE', from, member)
    if stored then
      -- Read before the move: a set it empties is gone, and its expiry with it. A set that
      -- exists keeps its own (the retention may have changed since the other was made).
      local expires = redis.call('PEXPIRETIME', from)
      if redis.call('EXISTS', to) == 1 then expires = -1 end
      if hiding then
        unindex(board, distinct, prefix, player, -tonumber(stored))
      else
        redis.call('ZREM', copy, member)
      end
      redis.call('ZADD', to, stored, member)
      if not hiding then
        local tail = string.sub(prefix, 1, #prefix - 8)
        redis.call('ZADD', distinct, stored, tail .. num(-tonumber(stored)))
        if expires > 0 then redis.call('PEXPIREAT', distinct, expires) end
      end
      if expires > 0 then redis.call('PEXPIREAT', to, expires) end
      moved = moved + 1
    end
  end
end
if hiding then
  redis.call('HSET', KEYS[2], player, record)
else
  redis.call('HDEL', KEYS[2], player)
end
redis.call('XADD', KEYS[4], 'MAXLEN', '~', ARGV[5], '*', unpack(ARGV, 6))
redis.call('INCR', KEYS[1])
return moved
";

fn move_script() -> Script {
    let constants = format!(
        "local STAMP, DISTINCT, HIDDEN = '{STAMP_FIELD_PREFIX}', '{DISTINCT_SUFFIX}', '{HIDDEN_BOARD_INFIX}'\n"
    );
    Script::new(&format!(
        "{}{constants}{MOVE}",
        include_str!("leaderboards/rank.lua")
    ))
}

/// What hiding or un-hiding did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Moved {
    /// Boards (all-time and periods) the player's entries moved off or back onto.
    pub boards: u64,
}

/// Hides `player` from every board of `product`, recording who (`by`), when and why.
pub async fn hide(
    store: &Store,
    product: &ProductId,
    player: &PlayerId,
    by: &str,
    reason: &str,
) -> Result<Moved, ModerationError> {
    run(store, product, player, "hide", by, reason).await
}

/// Returns a hidden `player` to the boards of `product`.
pub async fn unhide(
    store: &Store,
    product: &ProductId,
    player: &PlayerId,
    by: &str,
    reason: &str,
) -> Result<Moved, ModerationError> {
    run(store, product, player, "unhide", by, reason).await
}

async fn run(
    store: &Store,
    product: &ProductId,
    player: &PlayerId,
    action: &str,
    by: &str,
    reason: &str,
) -> Result<Moved, ModerationError> {
    let record = &Record {
        by: by.to_owned(),
        at_ms: now_ms(),
        reason: reason.to_owned(),
    };
    let keys = store.keys().product(product);
    let script = move_script();
    let mut invocation = script.prepare_invoke();
    invocation
        .key(keys.generation())
        .key(keys.hidden())
        .key(keys.stats(player))
        .key(keys.audit())
        .arg(player.as_str())
        .arg(action)
        .arg(serde_json::to_string(record).unwrap_or_default())
        .arg(keys.base())
        .arg(AUDIT_ENTRIES_KEPT)
        .arg("action")
        .arg(action)
        .arg("user_id")
        .arg(player.as_str())
        .arg("by")
        .arg(&record.by)
        .arg("at_ms")
        .arg(record.at_ms)
        .arg("reason")
        .arg(&record.reason);
    let moved: i64 = store.invoke(&invocation).await?;
    if moved < 0 {
        let player = player.to_string();
        return Err(if action == "hide" {
            ModerationError::AlreadyHidden(player)
        } else {
            ModerationError::NotHidden(player)
        });
    }
    Ok(Moved {
        boards: moved.unsigned_abs(),
    })
}

/// The players hidden on `product`, longest hidden first.
pub async fn hidden_players(
    store: &Store,
    product: &ProductId,
) -> Result<Vec<HiddenPlayer>, StoreError> {
    let keys = store.keys().product(product);
    let records: HashMap<String, String> = store
        .query(redis::cmd("HGETALL").arg(keys.hidden()))
        .await?;
    let mut players: Vec<HiddenPlayer> = records
        .into_iter()
        .map(|(user_id, record)| {
            let record: Record = serde_json::from_str(&record).unwrap_or(Record {
                by: String::new(),
                at_ms: 0,
                reason: String::new(),
            });
            HiddenPlayer {
                user_id,
                by: record.by,
                at_ms: record.at_ms,
                reason: record.reason,
            }
        })
        .collect();
    players.sort_by(|a, b| (a.at_ms, &a.user_id).cmp(&(b.at_ms, &b.user_id)));
    Ok(players)
}

/// Up to `limit` audit entries of `product`, newest first, older than `before` (an entry id)
/// when given.
pub async fn audit(
    store: &Store,
    product: &ProductId,
    limit: usize,
    before: Option<&str>,
) -> Result<Vec<AuditEntry>, StoreError> {
    let keys = store.keys().product(product);
    let end = match before {
        // Nothing is before the first id (and Redis refuses an interval ending before it).
        Some(id) if id.split('-').all(|part| part.bytes().all(|b| b == b'0')) => {
            return Ok(Vec::new());
        }
        Some(id) => format!("({id}"),
        None => "+".to_owned(),
    };
    let entries: Vec<(String, HashMap<String, String>)> = store
        .query(
            redis::cmd("XREVRANGE")
                .arg(keys.audit())
                .arg(end)
                .arg("-")
                .arg("COUNT")
                .arg(limit),
        )
        .await?;
    Ok(entries
        .into_iter()
        .map(|(id, mut fields)| {
            let mut take = |name: &str| fields.remove(name).unwrap_or_default();
            AuditEntry {
                action: take("action"),
                user_id: take("user_id"),
                by: take("by"),
                at_ms: take("at_ms").parse().unwrap_or_default(),
                reason: take("reason"),
                id,
            }
        })
        .collect())
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or_default()
}
