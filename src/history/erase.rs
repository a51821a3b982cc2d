//! Erasure in history: an erased player's id is replaced, in every history entry that names
//! them as a player (the player fields of the event model and of the product's rules, and
//! `teams`), by a pseudonym (`~erased:<random hex>`) of that erasure, recorded under a hash of
//! the id with the position it covers up to (`P:{<product>}:erased`). A rebuild replays each
//! pseudonym like any player (so their opponents' ratings come out as they were) and then
//! erases every pseudonym from its result; segment files exported before an erasure are
//! scrubbed with the same record as they are read.

use std::collections::BTreeSet;

use sha2::{Digest, Sha256};

use super::{
    ChunkCursor, Erasure, HistoryError, decode_chunk, encode_chunk, encode_line, erased_key,
};
use crate::core::ids::{PlayerId, ProductId};
use crate::core::store::{Store, StoreError};
use crate::workers::plan::compare_ids;

/// Replaces a chunk only if it is still the one read: `KEYS[1]` the chunk list, `KEYS[2]`
/// chunks dropped from its head; `ARGV[1]` the chunk's absolute index, `ARGV[2]` the chunk as
/// read, `ARGV[3]` its replacement. 1 when replaced; 0 when the chunk was dropped meanwhile;
/// -1 when it changed (another erasure rewrote it).
const REPLACE_CHUNK: &str = r"
local index = tonumber(ARGV[1]) - tonumber(redis.call('GET', KEYS[2]) or '0')
if index < 0 then return 0 end
local current = redis.call('LINDEX', KEYS[1], index)
if not current then return 0 end
if current ~= ARGV[2] then return -1 end
redis.call('LSET', KEYS[1], index, ARGV[3])
return 1
";

/// Passes over the history before an erasure gives up on chunks that keep changing under it.
const PASSES: usize = 4;

/// Records a new erasure of `player` in `product` (a new pseudonym, covering the entries
/// applied so far) and rewrites the history with it. Call [`finish`] after the live data is
/// erased, to cover entries applied in between.
pub async fn start(
    store: &Store,
    product: &ProductId,
    player: &PlayerId,
    player_fields: &BTreeSet<String>,
) -> Result<Erasure, StoreError> {
    let erasure = Erasure {
        pseudonym: pseudonym(player),
        up_to: applied(store, product).await?,
    };
    record(store, product, player, &erasure, false).await?;
    rewrite_all(store, product, player, player_fields, &erasure).await?;
    Ok(erasure)
}

/// Extends `erasure` to the entries applied since it started, and rewrites those too.
pub async fn finish(
    store: &Store,
    product: &ProductId,
    player: &PlayerId,
    player_fields: &BTreeSet<String>,
    mut erasure: Erasure,
) -> Result<(), StoreError> {
    erasure.up_to = applied(store, product).await?;
    record(store, product, player, &erasure, true).await?;
    rewrite_all(store, product, player, player_fields, &erasure).await
}

/// The product's applied position ('0-0' for none).
async fn applied(store: &Store, product: &ProductId) -> Result<String, StoreError> {
    let applied: Option<String> = store
        .query(redis::cmd("GET").arg(store.keys().product(product).applied()))
        .await?;
    Ok(applied.unwrap_or_else(|| "0-0".to_owned()))
}

/// Adds `erasure` to the player's record (or, with `replace_last`, updates the last one).
async fn record(
    store: &Store,
    product: &ProductId,
    player: &PlayerId,
    erasure: &Erasure,
    replace_last: bool,
) -> Result<(), StoreError> {
    let keys = store.keys().product(product);
    let hash = erased_key(player.as_str());
    let stored: Option<String> = store
        .query(redis::cmd("HGET").arg(keys.erased()).arg(&hash))
        .await?;
    let mut erasures: Vec<Erasure> = stored
        .and_then(|json| serde_json::from_str(&json).ok())
        .unwrap_or_default();
    if replace_last
        && erasures
            .last()
            .is_some_and(|last| last.pseudonym == erasure.pseudonym)
    {
        erasures.pop();
    }
    erasures.push(erasure.clone());
    let json = serde_json::to_string(&erasures).unwrap_or_default();
    store
        .query::<i64>(redis::cmd("HSET").arg(keys.erased()).arg(&hash).arg(json))
        .await?;
    Ok(())
}

/// Rewrites every chunk naming `player` in entries `erasure` covers, again while chunks change
/// under it (another erasure rewrote one), up to [`PASSES`] times.
async fn rewrite_all(
    store: &Store,
    product: &ProductId,
    player: &PlayerId,
    player_fields: &BTreeSet<String>,
    erasure: &Erasure,
) -> Result<(), StoreError> {
    for _ in 0..PASSES {
        let changed = rewrite(store, product, player, player_fields, erasure)
            .await
            .map_err(|error| match error {
                HistoryError::Store(error) => error,
                other => StoreError::Redis(redis::RedisError::from((
                    redis::ErrorKind::Client,
                    "cannot erase from the history",
                    other.to_string(),
                ))),
            })?;
        if changed == 0 {
            return Ok(());
        }
    }
    Err(StoreError::Redis(redis::RedisError::from((
        redis::ErrorKind::Client,
        "cannot erase from the history",
        "its chunks kept changing; run the erasure again".to_owned(),
    ))))
}

/// One pass over the history; the chunks that changed under it (to be done again).
async fn rewrite(
    store: &Store,
    product: &ProductId,
    player: &PlayerId,
    player_fields: &BTreeSet<String>,
    erasure: &Erasure,
) -> Result<u64, HistoryError> {
    let keys = store.keys().product(product);
    let needle = player.as_str().as_bytes();
    let script = redis::Script::new(REPLACE_CHUNK);
    let mut conn = store.connection();
    let mut cursor = ChunkCursor::at_head(keys.clone());
    let mut changed_under = 0;
    loop {
        let page = cursor.next_page(&mut conn, 64).await?;
        let Some(end) = cursor.position() else {
            break;
        };
        if page.is_empty() {
            break;
        }
        let start = end - page.len() as u64;
        for (offset, chunk) in page.iter().enumerate() {
            let (header, mut entries) = decode_chunk(chunk)?;
            if compare_ids(&header.first, &erasure.up_to).is_gt() {
                break;
            }
            let mut changed = false;
            for entry in &mut entries {
                if compare_ids(&entry.id, &erasure.up_to).is_gt() {
                    break;
                }
                let names_player = entry.fields.iter().any(|(_, value)| {
                    value
                        .windows(needle.len().max(1))
                        .any(|window| window == needle)
                });
                if names_player {
                    changed |= super::pseudonymise(
                        &mut entry.fields,
                        player_fields,
                        player.as_str(),
                        &erasure.pseudonym,
                    );
                }
            }
            if !changed {
                continue;
            }
            let lines: Vec<String> = entries
                .iter()
                .map(|entry| encode_line(&entry.id, &entry.fields))
                .collect();
            let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
            let Some(replacement) = encode_chunk(&header.first, &header.last, &lines) else {
                return Err(HistoryError::Damaged("cannot compress a chunk".into()));
            };
            let mut invocation = script.prepare_invoke();
            invocation
                .key(keys.events())
                .key(keys.events_dropped())
                .arg(start + offset as u64)
                .arg(chunk.as_slice())
                .arg(replacement);
            // 0: the chunk was trimmed or exported meanwhile (gone from the store; exported
            // segments are scrubbed as they are read).
            if store.invoke::<i64>(&invocation).await? == -1 {
                changed_under += 1;
            }
        }
    }
    Ok(changed_under)
}

/// A pseudonym no other erasure gets: `~erased:` and 20 hex digits of a hash of the id and
/// the moment.
fn pseudonym(player: &PlayerId) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.as_nanos())
        .unwrap_or_default();
    let mut hash = Sha256::new();
    hash.update(player.as_str().as_bytes());
    hash.update(now.to_le_bytes());
    hash.update(std::process::id().to_le_bytes());
    format!("~erased:{}", &hex::encode(hash.finalize())[..20])
}
