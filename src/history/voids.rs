//! Voids: matches (by `game_id`) and single entries (by stream id) whose effects a product
//! leaves out. A void is kept beside the product's history (`P:{<product>}:voids`), asks for a
//! rebuild of the product (which replays the history without it), and makes the worker skip
//! the voided match's later entries. Undoing a void asks for a rebuild again.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

use super::{ChunkCursor, HistoryError, decode_frames, split_chunk};
use crate::core::event::Fields;
use crate::core::ids::ProductId;
use crate::core::store::{Store, StoreError};
use crate::workers::plan::compare_ids;

/// What a void names.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum VoidTarget {
    /// Every entry of one match.
    Game(String),
    /// One stream entry.
    Entry(String),
}

impl VoidTarget {
    /// Its field in the `voids` hash.
    pub fn field(&self) -> String {
        match self {
            VoidTarget::Game(id) => format!("game:{id}"),
            VoidTarget::Entry(id) => format!("entry:{id}"),
        }
    }

    fn from_field(field: &str) -> Option<Self> {
        if let Some(id) = field.strip_prefix("game:") {
            Some(VoidTarget::Game(id.to_owned()))
        } else {
            field
                .strip_prefix("entry:")
                .map(|id| VoidTarget::Entry(id.to_owned()))
        }
    }
}

/// The voids of a product, as planning checks them.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct VoidSet {
    games: HashSet<String>,
    entries: HashSet<String>,
}

impl VoidSet {
    /// From the fields of the `voids` hash.
    pub fn from_fields<'a>(fields: impl IntoIterator<Item = &'a str>) -> Self {
        let mut set = Self::default();
        for field in fields {
            match VoidTarget::from_field(field) {
                Some(VoidTarget::Game(id)) => {
                    set.games.insert(id);
                }
                Some(VoidTarget::Entry(id)) => {
                    set.entries.insert(id);
                }
                None => {}
            }
        }
        set
    }

    pub fn is_empty(&self) -> bool {
        self.games.is_empty() && self.entries.is_empty()
    }

    /// Whether entry `id` with `fields` is voided.
    pub fn covers(&self, id: &str, fields: &Fields) -> bool {
        if self.is_empty() {
            return false;
        }
        if self.entries.contains(id) {
            return true;
        }
        !self.games.is_empty()
            && fields.iter().any(|(name, value)| {
                name == b"game_id"
                    && std::str::from_utf8(value).is_ok_and(|game| self.games.contains(game))
            })
    }
}

/// A void as kept and listed.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct Void {
    /// `game` or `entry`.
    pub kind: String,
    /// The `game_id`, or the stream entry id.
    pub id: String,
    /// Why, as the admin gave it.
    pub reason: String,
    /// When it was voided (RFC 3339, UTC).
    pub voided_at: String,
    /// Entries of the product's history it covers.
    pub entries: u64,
}

/// Why a void cannot be made or undone.
#[derive(Debug, thiserror::Error)]
pub enum VoidError {
    /// No such match or entry in the history.
    #[error("{0}")]
    NotFound(String),
    /// Undoing a void that is not there.
    #[error("{0}")]
    NotVoided(String),
    #[error(transparent)]
    History(#[from] HistoryError),
}

impl From<StoreError> for VoidError {
    fn from(error: StoreError) -> Self {
        VoidError::History(HistoryError::Store(error))
    }
}

/// Records a void of `target` in `product` and asks for a rebuild. The target must be in the
/// product's history (in the store: entries exported to segment files are not searched).
/// Voiding again what is voided keeps the first record and asks for the rebuild again.
pub async fn add(
    store: &Store,
    product: &ProductId,
    target: VoidTarget,
    reason: &str,
) -> Result<Void, VoidError> {
    let keys = store.keys().product(product);
    let field = target.field();
    let existing: Option<String> = store
        .query(redis::cmd("HGET").arg(keys.voids()).arg(&field))
        .await?;
    let void = match existing.and_then(|json| serde_json::from_str::<Void>(&json).ok()) {
        Some(void) => void,
        None => {
            let entries = count_in_history(store, product, &target).await?;
            if entries == 0 {
                let what = match &target {
                    VoidTarget::Game(id) => format!("no match with game_id {id:?}"),
                    VoidTarget::Entry(id) => format!("no entry {id:?}"),
                };
                return Err(VoidError::NotFound(format!(
                    "{what} in the history of product {product:?}"
                )));
            }
            let (kind, id) = match &target {
                VoidTarget::Game(id) => ("game", id.clone()),
                VoidTarget::Entry(id) => ("entry", id.clone()),
            };
            Void {
                kind: kind.to_owned(),
                id,
                reason: reason.to_owned(),
                voided_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                entries,
            }
        }
    };
    let json = serde_json::to_string(&void).unwrap_or_default();
    change_and_ask_rebuild(store, product, Change::Set(&field, &json)).await?;
    Ok(void)
}

/// Undoes a void and asks for a rebuild, in one script (a retry after a lost answer finds
/// it undone).
pub async fn remove(
    store: &Store,
    product: &ProductId,
    target: &VoidTarget,
) -> Result<(), VoidError> {
    if !change_and_ask_rebuild(store, product, Change::Remove(&target.field())).await? {
        return Err(VoidError::NotVoided(format!(
            "{} is not voided in product {product:?}",
            target.field()
        )));
    }
    Ok(())
}

/// Every void of `product`, oldest first.
pub async fn list(store: &Store, product: &ProductId) -> Result<Vec<Void>, StoreError> {
    let keys = store.keys().product(product);
    let all: Vec<(String, String)> = store.query(redis::cmd("HGETALL").arg(keys.voids())).await?;
    let mut voids: Vec<Void> = all
        .iter()
        .filter_map(|(_, json)| serde_json::from_str(json).ok())
        .collect();
    voids.sort_by(|a, b| a.voided_at.cmp(&b.voided_at).then(a.id.cmp(&b.id)));
    Ok(voids)
}

/// What a void change writes to the `voids` hash.
enum Change<'a> {
    /// A void's field and record.
    Set(&'a str, &'a str),
    /// A void's field, removed.
    Remove(&'a str),
}

/// Applies `change` to the `voids` hash, bumps the product's generation (the worker reloads
/// its voids) and records that a rebuild is wanted, in one script; then lists the product among
/// those wanting a rebuild. `false` (nothing done) when a void to remove is not there.
async fn change_and_ask_rebuild(
    store: &Store,
    product: &ProductId,
    change: Change<'_>,
) -> Result<bool, StoreError> {
    const SCRIPT: &str = r"
if ARGV[1] == 'set' then
  redis.call('HSET', KEYS[1], ARGV[2], ARGV[3])
elseif redis.call('HDEL', KEYS[1], ARGV[2]) == 0 then
  return 0
end
local generation = redis.call('INCR', KEYS[2])
redis.call('SET', KEYS[3], generation)
return 1
";
    let keys = store.keys().product(product);
    let script = redis::Script::new(SCRIPT);
    let mut invocation = script.prepare_invoke();
    invocation
        .key(keys.voids())
        .key(keys.generation())
        .key(keys.rebuild_wanted());
    match change {
        Change::Set(field, record) => invocation.arg("set").arg(field).arg(record),
        Change::Remove(field) => invocation.arg("remove").arg(field),
    };
    if store.invoke::<i64>(&invocation).await? == 0 {
        return Ok(false);
    }
    ask_rebuild(store, product).await?;
    Ok(true)
}

/// Lists `product` among the products wanting a rebuild (its `rebuild:wanted` says since when).
pub async fn ask_rebuild(store: &Store, product: &ProductId) -> Result<(), StoreError> {
    store
        .query::<i64>(
            redis::cmd("SADD")
                .arg(store.keys().rebuilds())
                .arg(product.as_str()),
        )
        .await?;
    Ok(())
}

/// Entries of `product`'s history (in the store) that `target` covers.
async fn count_in_history(
    store: &Store,
    product: &ProductId,
    target: &VoidTarget,
) -> Result<u64, HistoryError> {
    let keys = store.keys().product(product);
    let mut conn = store.connection();
    let mut cursor = ChunkCursor::at_head(keys);
    let needle = match target {
        VoidTarget::Game(id) => format!("\"game_id\":{}", serde_json::Value::String(id.clone())),
        VoidTarget::Entry(id) => format!("{{\"id\":{}", serde_json::Value::String(id.clone())),
    };
    let mut found = 0;
    loop {
        let page = cursor.next_page(&mut conn, 64).await?;
        if page.is_empty() {
            return Ok(found);
        }
        for chunk in &page {
            let (header, frame) = split_chunk(chunk)?;
            if let VoidTarget::Entry(id) = target
                && (compare_ids(id, &header.first).is_lt() || compare_ids(id, &header.last).is_gt())
            {
                continue;
            }
            let mut text = Vec::new();
            {
                use std::io::Read;
                zstd::stream::read::Decoder::new(frame)
                    .and_then(|mut decoder| decoder.read_to_end(&mut text))
                    .map_err(|error| HistoryError::Damaged(format!("zstd: {error}")))?;
            }
            if !text
                .windows(needle.len())
                .any(|window| window == needle.as_bytes())
            {
                continue;
            }
            for entry in decode_frames(frame)? {
                if VoidSet::from_fields([target.field().as_str()]).covers(&entry.id, &entry.fields)
                {
                    found += 1;
                }
            }
        }
    }
}
