//! The tracker's own history: every entry the worker applies to a product, kept in order in
//! the product's hash slot, independent of how game servers trim the event stream. It is
//! what [`rebuild`] replays (back-filling a new board, re-rating after a config change,
//! leaving voided matches out) and what [`as_of`] reads a past board from.
//!
//! Layout: a Redis list per product (`P:{<product>}:events`), oldest first, of chunks. A chunk
//! is the entries one commit script call applied: a header line `<first id> <last id>
//! <count>\n`, then one zstd frame of JSON lines `{"id":…,"fields":{…}}`. The commit script
//! appends the chunk with the effects and the applied position, so the history holds exactly
//! the applied entries, each once. Retention (`history.max_entries`, `history.max_age_days`)
//! drops whole chunks from the head, recording how far the history is incomplete
//! (`events:gap`). Chunks can be exported to segment files ([`segments`]): the same zstd frames
//! one after the other, which `zstd -dc` turns back into JSON lines.
//!
//! Erasing a player rewrites the chunks that name them with a pseudonym ([`erase`]), and the
//! pseudonym is recorded by a hash of the id, so segment files exported earlier are scrubbed
//! as they are read.

pub mod as_of;
pub mod erase;
pub mod rebuild;
pub mod segments;
pub mod voids;

use std::collections::{BTreeSet, HashMap};
use std::io::Read;

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::core::event::{Fields, RawEntry};
use crate::core::keys::PartitionKeys;
use crate::core::store::{Connection, StoreError};

/// The zstd level of chunks: the fastest (the worker compresses every chunk it commits;
/// gameplay lines repeat so much that level 1 keeps most of the gain).
const ZSTD_LEVEL: i32 = 1;

/// One history line: `{"id":"<stream id>","fields":{"<name>":"<value>",…}}`. Names and values
/// that are not UTF-8 are kept with U+FFFD in place of the invalid bytes (the event model
/// reads UTF-8 only). (An entry naming a field twice is refused whole, so never in history.)
pub fn encode_line(id: &str, fields: &Fields) -> String {
    /// The fields as a JSON object, written straight from the entry (no copies).
    struct FieldMap<'a>(&'a Fields);

    impl serde::Serialize for FieldMap<'_> {
        fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            serializer.collect_map(self.0.iter().map(|(name, value)| {
                (
                    String::from_utf8_lossy(name),
                    String::from_utf8_lossy(value),
                )
            }))
        }
    }

    #[derive(serde::Serialize)]
    struct Line<'a> {
        id: &'a str,
        fields: FieldMap<'a>,
    }

    let mut line = serde_json::to_string(&Line {
        id,
        fields: FieldMap(fields),
    })
    .unwrap_or_default();
    line.push('\n');
    line
}

/// Why history cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    #[error("store Redis: {0}")]
    Store(#[from] StoreError),
    #[error("history chunk is damaged: {0}")]
    Damaged(String),
    #[error("segment file {path}: {error}")]
    Segment { path: String, error: String },
    #[error("{0}")]
    Incomplete(String),
}

/// A chunk's header: the ids of its first and last entries and how many it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChunkHeader {
    pub first: String,
    pub last: String,
    pub count: u64,
}

/// A chunk as stored: its header line, then the zstd frame of its lines.
/// `None` if zstd fails (it only does when out of memory).
pub fn encode_chunk(first: &str, last: &str, lines: &[&str]) -> Option<Vec<u8>> {
    let mut text = String::with_capacity(lines.iter().map(|line| line.len()).sum());
    for line in lines {
        text.push_str(line);
    }
    let frame = zstd::bulk::compress(text.as_bytes(), ZSTD_LEVEL).ok()?;
    let mut chunk = format!("{first} {last} {}\n", lines.len()).into_bytes();
    chunk.extend_from_slice(&frame);
    Some(chunk)
}

/// Splits a stored chunk into its header and zstd frame.
pub fn split_chunk(chunk: &[u8]) -> Result<(ChunkHeader, &[u8]), HistoryError> {
    let damaged = || HistoryError::Damaged("no header line".into());
    let end = chunk.iter().position(|&b| b == b'\n').ok_or_else(damaged)?;
    let header = std::str::from_utf8(&chunk[..end]).map_err(|_| damaged())?;
    let mut parts = header.split(' ');
    let (Some(first), Some(last), Some(count), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(damaged());
    };
    let count = count.parse().map_err(|_| damaged())?;
    let header = ChunkHeader {
        first: first.to_owned(),
        last: last.to_owned(),
        count,
    };
    Ok((header, &chunk[end + 1..]))
}

/// The entries of zstd-compressed JSON lines (one frame or several one after the other).
pub fn decode_frames(frames: &[u8]) -> Result<Vec<RawEntry>, HistoryError> {
    let mut text = Vec::new();
    zstd::stream::read::Decoder::new(frames)
        .and_then(|mut decoder| decoder.read_to_end(&mut text))
        .map_err(|error| HistoryError::Damaged(format!("zstd: {error}")))?;
    text.split(|&b| b == b'\n')
        .filter(|line| !line.is_empty())
        .map(decode_line)
        .collect()
}

/// One JSON line back into the entry it was written from.
pub fn decode_line(line: &[u8]) -> Result<RawEntry, HistoryError> {
    #[derive(serde::Deserialize)]
    struct Line {
        id: String,
        fields: Map<String, Value>,
    }
    let line: Line = serde_json::from_slice(line)
        .map_err(|error| HistoryError::Damaged(format!("line: {error}")))?;
    let fields = line
        .fields
        .into_iter()
        .map(|(name, value)| {
            let value = match value {
                Value::String(text) => text,
                other => other.to_string(),
            };
            (name.into_bytes(), value.into_bytes())
        })
        .collect();
    Ok(RawEntry {
        id: line.id,
        fields,
    })
}

/// The entries of a stored chunk.
pub fn decode_chunk(chunk: &[u8]) -> Result<(ChunkHeader, Vec<RawEntry>), HistoryError> {
    let (header, frame) = split_chunk(chunk)?;
    Ok((header, decode_frames(frame)?))
}

/// Reads a product's chunks in the store, oldest first, a page at a time. Its position is
/// absolute (chunks dropped from the head are counted in `events:dropped`), so chunks
/// trimmed or exported while it reads cannot make it skip any: it fails instead.
pub struct ChunkCursor {
    keys: PartitionKeys,
    /// Absolute index of the next chunk; `None`: from the head, wherever it is.
    next: Option<u64>,
}

/// `KEYS[1]` the chunk list, `KEYS[2]` chunks dropped from its head; `ARGV[1]` the absolute
/// index to read from ('' for the head), `ARGV[2]` how many: `{dropped, chunks}`, or
/// `{dropped, -1}` when the chunk asked for was dropped.
const READ_CHUNKS: &str = r"
local dropped = tonumber(redis.call('GET', KEYS[2]) or '0')
local start = 0
if ARGV[1] ~= '' then start = tonumber(ARGV[1]) - dropped end
if start < 0 then return {dropped, -1} end
return {dropped, redis.call('LRANGE', KEYS[1], start, start + tonumber(ARGV[2]) - 1)}
";

impl ChunkCursor {
    /// From the oldest chunk the store holds.
    pub fn at_head(keys: PartitionKeys) -> Self {
        Self { keys, next: None }
    }

    /// From absolute index `next`.
    pub fn at(keys: PartitionKeys, next: u64) -> Self {
        Self {
            keys,
            next: Some(next),
        }
    }

    /// The absolute index of the next chunk, once known.
    pub fn position(&self) -> Option<u64> {
        self.next
    }

    /// Up to `max` chunks after the last one read; empty at the end of the list.
    pub async fn next_page(
        &mut self,
        conn: &mut Connection,
        max: usize,
    ) -> Result<Vec<Vec<u8>>, HistoryError> {
        let script = redis::Script::new(READ_CHUNKS);
        let mut invocation = script.prepare_invoke();
        invocation
            .key(self.keys.events())
            .key(self.keys.events_dropped())
            .arg(self.next.map(|next| next.to_string()).unwrap_or_default())
            .arg(max.max(1));
        let (dropped, chunks): (u64, redis::Value) = crate::core::store::bounded(
            std::time::Duration::from_secs(30),
            invocation.invoke_async(conn),
        )
        .await?;
        let chunks: Vec<Vec<u8>> = match chunks {
            redis::Value::Int(_) => {
                return Err(HistoryError::Incomplete(format!(
                    "history chunks were trimmed or exported while being read (from chunk {} on)",
                    self.next.unwrap_or_default()
                )));
            }
            other => redis::from_redis_value(other)
                .map_err(|error| HistoryError::Damaged(format!("chunk list: {error}")))?,
        };
        let start = self.next.unwrap_or(dropped);
        self.next = Some(start + chunks.len() as u64);
        Ok(chunks)
    }
}

/// A player id's key in the product's `erased` hash: SHA-256 of the id, hex. The id itself is
/// never stored again.
pub fn erased_key(player: &str) -> String {
    hex::encode(Sha256::digest(player.as_bytes()))
}

/// Replaces `player` by `pseudonym` wherever an entry names them as a player: a field of
/// `player_fields` whose value is the id, and inside `teams` (ids as strings and as keys of
/// `scores`). Other fields are left alone, whatever they hold. Whether anything changed.
pub fn pseudonymise(
    fields: &mut Fields,
    player_fields: &BTreeSet<String>,
    player: &str,
    pseudonym: &str,
) -> bool {
    let mut changed = false;
    for_player_values(
        fields,
        player_fields,
        &mut |text| (text == player).then(|| pseudonym.to_owned()),
        &mut changed,
    );
    changed
}

/// Calls `replace` on every player id an entry names (fields of `player_fields`, and the ids
/// inside `teams`), writing back what it returns; sets `changed` when it replaced one.
fn for_player_values(
    fields: &mut Fields,
    player_fields: &BTreeSet<String>,
    replace: &mut dyn FnMut(&str) -> Option<String>,
    changed: &mut bool,
) {
    for (name, value) in fields.iter_mut() {
        let Ok(name) = std::str::from_utf8(name) else {
            continue;
        };
        let Ok(text) = std::str::from_utf8(value) else {
            continue;
        };
        if player_fields.contains(name) {
            if let Some(new) = replace(text) {
                *value = new.into_bytes();
                *changed = true;
            }
        } else if name == crate::core::event::TEAMS_FIELD
            && let Ok(mut json) = serde_json::from_str::<Value>(text)
            && replace_in_json(&mut json, replace)
        {
            *value = json.to_string().into_bytes();
            *changed = true;
        }
    }
}

/// Replaces strings (and object keys) of `json` for which `replace` gives a new text.
fn replace_in_json(json: &mut Value, replace: &mut dyn FnMut(&str) -> Option<String>) -> bool {
    match json {
        Value::String(text) => match replace(text) {
            Some(new) => {
                *text = new;
                true
            }
            None => false,
        },
        Value::Array(items) => {
            // Every item, not only up to the first replaced.
            let mut changed = false;
            for item in items {
                changed |= replace_in_json(item, replace);
            }
            changed
        }
        Value::Object(map) => {
            let mut changed = false;
            let old = std::mem::take(map);
            for (key, mut value) in old {
                changed |= replace_in_json(&mut value, replace);
                let key = match replace(&key) {
                    Some(new) => {
                        changed = true;
                        new
                    }
                    None => key,
                };
                map.insert(key, value);
            }
            changed
        }
        _ => false,
    }
}

/// One erasure of a player: the pseudonym that replaced their id in the entries up to (and
/// including) `up_to`, the product's applied position when they were erased. A player erased
/// again (after playing again) gets another pseudonym for the entries since.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Erasure {
    pub pseudonym: String,
    pub up_to: String,
}

/// The erasures of a product: a hash of each erased id → its erasures, oldest first. Applied to
/// entries read from segment files exported before an erasure, and what a rebuild erases.
#[derive(Debug, Default, Clone)]
pub struct Erasures {
    by_hash: HashMap<String, Vec<Erasure>>,
}

impl Erasures {
    pub async fn load(conn: &mut Connection, keys: &PartitionKeys) -> Result<Self, StoreError> {
        let stored: HashMap<String, String> = crate::core::store::bounded(
            std::time::Duration::from_secs(10),
            redis::cmd("HGETALL").arg(keys.erased()).query_async(conn),
        )
        .await?;
        let by_hash = stored
            .into_iter()
            .filter_map(|(hash, json)| Some((hash, serde_json::from_str(&json).ok()?)))
            .collect();
        Ok(Self { by_hash })
    }

    pub fn is_empty(&self) -> bool {
        self.by_hash.is_empty()
    }

    /// The pseudonyms of every erasure.
    pub fn pseudonyms(&self) -> impl Iterator<Item = &str> {
        self.by_hash
            .values()
            .flatten()
            .map(|erasure| erasure.pseudonym.as_str())
    }

    /// Replaces every erased id that `entry` names as a player (see [`pseudonymise`]) by the
    /// pseudonym of the erasure that covers the entry; ids in entries after a player's last
    /// erasure stay (they played again).
    pub fn scrub(&self, entry: &mut RawEntry, player_fields: &BTreeSet<String>) {
        if self.by_hash.is_empty() {
            return;
        }
        let id = entry.id.clone();
        let mut lookup = |text: &str| {
            let erasures = self.by_hash.get(&erased_key(text))?;
            erasures
                .iter()
                .find(|erasure| !crate::workers::plan::compare_ids(&id, &erasure.up_to).is_gt())
                .map(|erasure| erasure.pseudonym.clone())
        };
        let mut changed = false;
        for_player_values(&mut entry.fields, player_fields, &mut lookup, &mut changed);
    }
}

/// The stream id of a moment (ms since the Unix epoch): every entry at or before it has an id
/// at or below this one.
pub fn id_at_millis(ms: u64) -> String {
    format!("{ms}-{}", u64::MAX)
}

/// A stream id (`<ms>-<seq>`, or `<ms>`) or an RFC 3339 time, as the last stream id it
/// covers.
pub fn parse_moment(text: &str) -> Result<String, String> {
    if crate::core::event::is_stream_id(text) {
        return Ok(text.to_owned());
    }
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        return text
            .parse::<u64>()
            .map(id_at_millis)
            .map_err(|_| format!("{text:?} is not a stream id or an RFC 3339 time"));
    }
    chrono::DateTime::parse_from_rfc3339(text)
        .ok()
        .and_then(|time| u64::try_from(time.timestamp_millis()).ok())
        .map(id_at_millis)
        .ok_or_else(|| {
            format!(
                "{text:?} is not a stream id (like 1700000000000-0) or an RFC 3339 time (like \
                 2026-12-01T04:00:00Z)"
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(pairs: &[(&str, &str)]) -> Fields {
        pairs
            .iter()
            .map(|(k, v)| (k.as_bytes().to_vec(), v.as_bytes().to_vec()))
            .collect()
    }

    #[test]
    fn chunks_round_trip_and_concatenated_frames_read_as_one() {
        let a = encode_line("1-0", &fields(&[("type", "game_over"), ("winner_id", "Ä")]));
        let b = encode_line("2-5", &fields(&[("type", "gameplay")]));
        let chunk = encode_chunk("1-0", "2-5", &[&a, &b]).unwrap();
        let (header, entries) = decode_chunk(&chunk).unwrap();
        assert_eq!(
            header,
            ChunkHeader {
                first: "1-0".into(),
                last: "2-5".into(),
                count: 2
            }
        );
        assert_eq!(entries[0].id, "1-0");
        assert_eq!(
            entries[0].fields,
            fields(&[("type", "game_over"), ("winner_id", "Ä")])
        );
        let (_, frame) = split_chunk(&chunk).unwrap();
        let twice = [frame, frame].concat();
        assert_eq!(decode_frames(&twice).unwrap().len(), 4);
    }

    #[test]
    fn pseudonymising_reaches_player_fields_and_teams_only() {
        let players: BTreeSet<String> = ["winner_id", "loser_id"].map(str::to_owned).into();
        let mut entry = fields(&[
            ("winner_id", "bob"),
            ("loser_id", "bobby"),
            ("event_data", "bob"),
            (
                "teams",
                r#"[{"place":1,"players":["bob"],"scores":{"bob":3}},{"place":2,"players":["al"]}]"#,
            ),
        ]);
        assert!(pseudonymise(&mut entry, &players, "bob", "~erased:1"));
        let text: Vec<String> = entry
            .iter()
            .map(|(_, v)| String::from_utf8(v.clone()).unwrap())
            .collect();
        assert_eq!(text[0], "~erased:1");
        assert_eq!(text[1], "bobby");
        assert_eq!(text[2], "bob", "not a player field");
        assert!(!text[3].contains("\"bob\""), "{}", text[3]);
        assert!(text[3].contains("\"al\""));

        // A player erased twice: each erasure covers the entries up to it.
        let mut erasures = Erasures::default();
        erasures.by_hash.insert(
            erased_key("al"),
            vec![
                Erasure {
                    pseudonym: "~erased:2".into(),
                    up_to: "5-0".into(),
                },
                Erasure {
                    pseudonym: "~erased:3".into(),
                    up_to: "9-0".into(),
                },
            ],
        );
        let scrubbed = |id: &str| {
            let mut raw = RawEntry {
                id: id.into(),
                fields: fields(&[("loser_id", "al")]),
            };
            erasures.scrub(&mut raw, &players);
            String::from_utf8(raw.fields[0].1.clone()).unwrap()
        };
        assert_eq!(scrubbed("5-0"), "~erased:2");
        assert_eq!(scrubbed("6-0"), "~erased:3");
        assert_eq!(
            scrubbed("10-0"),
            "al",
            "played again after the last erasure"
        );
        assert_eq!(erasures.pseudonyms().count(), 2);
    }
}
