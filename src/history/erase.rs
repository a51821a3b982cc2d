//! Erasure in history: an erased player's id is replaced, in every chunk of the product's
//! history that names them, by a pseudonym (`~erased:<random hex>`), and the pseudonym is
//! recorded under a hash of the id (`P:{<product>}:erased`). A rebuild replays the pseudonym
//! like any player (so their opponents' ratings come out as they were) and then erases it
//! from its result; segment files exported before the erasure are scrubbed with the same
//! record as they are read.

use sha2::{Digest, Sha256};

use super::{ChunkCursor, HistoryError, decode_chunk, encode_chunk, encode_line, erased_key};
use crate::core::ids::{PlayerId, ProductId};
use crate::core::store::{Store, StoreError};

/// Replaces a chunk only if it is still the one read: `KEYS[1]` the chunk list, `KEYS[2]`
/// chunks dropped from its head; `ARGV[1]` the chunk's absolute index, `ARGV[2]` the chunk as
/// read, `ARGV[3]` its replacement. 1 when replaced, 0 when the chunk was dropped meanwhile.
const REPLACE_CHUNK: &str = r"
local index = tonumber(ARGV[1]) - tonumber(redis.call('GET', KEYS[2]) or '0')
if index < 0 or redis.call('LINDEX', KEYS[1], index) ~= ARGV[2] then return 0 end
redis.call('LSET', KEYS[1], index, ARGV[3])
return 1
";

/// Replaces `player` in `product`'s history by a new pseudonym; the chunks rewritten.
pub async fn erase_from_history(
    store: &Store,
    product: &ProductId,
    player: &PlayerId,
) -> Result<u64, StoreError> {
    rewrite(store, product, player)
        .await
        .map_err(|error| match error {
            HistoryError::Store(error) => error,
            other => StoreError::Redis(redis::RedisError::from((
                redis::ErrorKind::Client,
                "cannot erase from the history",
                other.to_string(),
            ))),
        })
}

async fn rewrite(
    store: &Store,
    product: &ProductId,
    player: &PlayerId,
) -> Result<u64, HistoryError> {
    let keys = store.keys().product(product);
    let pseudonym = pseudonym(player);
    // Recorded first: a rebuild that runs before the chunks are rewritten still erases the
    // pseudonym's (none yet) and the erasure's generation bump restarts it anyway.
    store
        .query::<i64>(
            redis::cmd("HSET")
                .arg(keys.erased())
                .arg(erased_key(player.as_str()))
                .arg(&pseudonym),
        )
        .await?;
    let needle = player.as_str();
    let script = redis::Script::new(REPLACE_CHUNK);
    let mut conn = store.connection();
    let mut cursor = ChunkCursor::at_head(keys.clone());
    let mut rewritten = 0;
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
            let mut changed = false;
            for entry in &mut entries {
                let names_player = entry.fields.iter().any(|(_, value)| {
                    value
                        .windows(needle.len().max(1))
                        .any(|window| window == needle.as_bytes())
                });
                if names_player {
                    changed |= super::pseudonymise(&mut entry.fields, player.as_str(), &pseudonym);
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
            let replacement = encode_chunk(&header.first, &header.last, &lines);
            let mut invocation = script.prepare_invoke();
            invocation
                .key(keys.events())
                .key(keys.events_dropped())
                .arg(start + offset as u64)
                .arg(chunk.as_slice())
                .arg(replacement);
            // 0: the chunk was trimmed or exported meanwhile (gone from the store; exported
            // segments are scrubbed as they are read).
            rewritten += store.invoke::<u64>(&invocation).await?;
        }
    }
    Ok(rewritten)
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
