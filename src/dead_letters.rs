//! The dead-letter stream as an operator tool: reading letters (pages oldest first, filtered
//! by reason or product, each request scanning a bounded number of letters), and re-driving
//! chosen letters onto the event stream once the games file is fixed.
//!
//! A re-drive appends each letter's original fields to the event stream, in dead-letter
//! order, in one MULTI/EXEC, each with [`REDRIVE_OF_FIELD`] (the original event's stream id)
//! and [`REDRIVE_LETTER_FIELD`] (the letter's id); then it deletes the letters. A crash between
//! the two leaves the letters in place, and re-driving them again appends second copies: the
//! worker applies a re-driven event at most once per original id and dead-letters it again at
//! most once per letter id (see `workers::plan`), so copies change nothing.
//!
//! A letter's layout: `source_id`, `reason`, `board` (empty when the whole event was refused),
//! then the original fields. Letters without the `board` pair are read as having none.

use std::time::Duration;

use crate::core::event::{
    Fields, REDRIVE_LETTER_FIELD, REDRIVE_OF_FIELD, is_reserved_field, is_stream_id,
};
use crate::core::partition::stream_of;
use crate::core::store::{Connection, Store, StoreError, append_events, bounded};

/// Most letters one listing page or one re-drive takes.
pub const MAX_LETTERS: usize = 1000;
/// Most letters one filtered request looks at: a filter that matches little answers with a
/// cursor to go on from instead of reading the whole stream in one request.
pub const SCAN_BUDGET: usize = 10_000;
/// Letters read per XRANGE while scanning.
const SCAN_CHUNK: usize = 1000;

/// One dead letter, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Letter {
    /// The letter's own id in the dead-letter stream.
    pub id: String,
    /// The stream id of the entry that was dead-lettered.
    pub source_id: String,
    pub reason: String,
    /// The board that could not use an otherwise applied event; `None`: the whole event.
    pub board: Option<String>,
    /// The entry's original fields, byte for byte.
    pub fields: Fields,
}

impl Letter {
    /// Reads a letter from its stream entry (flat field/value list); never fails: a letter
    /// written by something else shows what it has.
    fn from_entry(id: String, flat: Vec<Vec<u8>>) -> Self {
        let mut pairs = flat
            .chunks_exact(2)
            .map(|pair| (pair[0].clone(), pair[1].clone()));
        let mut source_id = String::new();
        let mut reason = String::new();
        let mut board = None;
        let mut fields: Fields = Vec::new();
        let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
        for (index, (name, value)) in pairs.by_ref().enumerate() {
            match (index, name.as_slice()) {
                (0, b"source_id") => source_id = text(&value),
                (1, b"reason") => reason = text(&value),
                (2, b"board") => board = (!value.is_empty()).then(|| text(&value)),
                _ => {
                    fields.push((name, value));
                    break;
                }
            }
        }
        fields.extend(pairs);
        Self {
            id,
            source_id,
            reason,
            board,
            fields,
        }
    }

    /// The original `product_id` field, if there is one.
    pub fn product_id(&self) -> Option<&[u8]> {
        self.fields
            .iter()
            .find(|(name, _)| name == b"product_id")
            .map(|(_, value)| value.as_slice())
    }

    /// Why this letter cannot be re-driven, if it cannot.
    pub fn not_redrivable(&self) -> Option<&'static str> {
        if self.board.is_some() {
            // The event's other effects were applied: applying it again would count them twice.
            Some(
                "a board-level letter: the event was applied to its product's other boards and stats",
            )
        } else if self.fields.is_empty() {
            Some("no original fields (the entry was gone from the stream before it was read)")
        } else {
            None
        }
    }

    /// The stream id of the original event: a letter of a re-driven entry that was refused
    /// again names it in its fields; any other letter is of the original itself.
    pub fn original_id(&self) -> &str {
        self.fields
            .iter()
            .find(|(name, _)| name == REDRIVE_OF_FIELD.as_bytes())
            .and_then(|(_, value)| std::str::from_utf8(value).ok())
            .filter(|id| is_stream_id(id))
            .unwrap_or(&self.source_id)
    }

    /// The fields the re-drive appends: the original ones (without an earlier re-drive's
    /// fields), then where this re-drive comes from.
    pub fn redrive_fields(&self) -> Fields {
        let mut fields: Fields = self
            .fields
            .iter()
            .filter(|(name, _)| !is_reserved_field(name))
            .cloned()
            .collect();
        fields.push((
            REDRIVE_OF_FIELD.as_bytes().to_vec(),
            self.original_id().as_bytes().to_vec(),
        ));
        fields.push((
            REDRIVE_LETTER_FIELD.as_bytes().to_vec(),
            self.id.as_bytes().to_vec(),
        ));
        fields
    }
}

/// Which letters a listing or a re-drive takes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    /// The reason starts with this text.
    pub reason: Option<String>,
    /// The original `product_id` field is exactly this.
    pub product: Option<String>,
    /// Only letters that can be re-driven (see [`Letter::not_redrivable`]).
    pub redrivable: bool,
}

impl Filter {
    fn is_everything(&self) -> bool {
        self.reason.is_none() && self.product.is_none() && !self.redrivable
    }

    pub fn matches(&self, letter: &Letter) -> bool {
        self.reason
            .as_ref()
            .is_none_or(|reason| letter.reason.starts_with(reason.as_str()))
            && self
                .product
                .as_ref()
                .is_none_or(|product| letter.product_id() == Some(product.as_bytes()))
            && (!self.redrivable || letter.not_redrivable().is_none())
    }
}

/// A page of letters, oldest first.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Page {
    pub letters: Vec<Letter>,
    /// Where the next page starts (`after`); `None` at the end of the stream.
    pub next: Option<String>,
    /// Letters in the stream (XLEN).
    pub total: u64,
}

/// Up to `limit` letters after `after` (from the oldest when `None`) that `filter` takes.
/// Looks at most [`SCAN_BUDGET`] letters: a filtered page may come back short, or empty,
/// with `next` to go on from.
pub async fn page(
    store: &Store,
    after: Option<&str>,
    limit: usize,
    filter: &Filter,
) -> Result<Page, StoreError> {
    let key = store.keys().dead_letters().stream();
    let limit = limit.clamp(1, MAX_LETTERS);
    let mut from = after.map_or_else(|| "-".to_owned(), |after| format!("({after}"));
    let mut letters: Vec<Letter> = Vec::new();
    let mut scanned = 0;
    let next = 'scan: loop {
        // Unfiltered, one more than the page tells whether a next page exists.
        let count = if filter.is_everything() {
            limit + 1 - letters.len()
        } else {
            SCAN_CHUNK.min(SCAN_BUDGET - scanned)
        };
        let entries: Vec<(String, Vec<Vec<u8>>)> = store
            .query(
                redis::cmd("XRANGE")
                    .arg(&key)
                    .arg(&from)
                    .arg("+")
                    .arg("COUNT")
                    .arg(count),
            )
            .await?;
        let read = entries.len();
        let mut last_seen = None;
        for (id, flat) in entries {
            scanned += 1;
            last_seen = Some(id.clone());
            let letter = Letter::from_entry(id, flat);
            if filter.matches(&letter) {
                if letters.len() == limit {
                    // A letter beyond the page: the next page starts after this one's last.
                    break 'scan letters.last().map(|last| last.id.clone());
                }
                letters.push(letter);
            }
        }
        let Some(last_seen) = last_seen else {
            break None;
        };
        if read < count {
            // The end of the stream.
            break None;
        }
        if scanned >= SCAN_BUDGET && !filter.is_everything() {
            break Some(last_seen);
        }
        from = format!("({last_seen}");
    };
    let total: u64 = store.query(redis::cmd("XLEN").arg(&key)).await?;
    Ok(Page {
        letters,
        next,
        total,
    })
}

/// The letters with these ids, in the order given; `None` for an id no letter has (deleted,
/// trimmed or never there). Ids must be stream ids.
pub async fn letters_by_id(
    store: &Store,
    ids: &[String],
) -> Result<Vec<Option<Letter>>, StoreError> {
    let key = store.keys().dead_letters().stream();
    let mut pipe = redis::pipe();
    for id in ids {
        pipe.cmd("XRANGE").arg(&key).arg(id).arg(id);
    }
    let found: Vec<Vec<(String, Vec<Vec<u8>>)>> = store.query_pipe(&pipe).await?;
    Ok(found
        .into_iter()
        .map(|entries| {
            entries
                .into_iter()
                .next()
                .map(|(id, flat)| Letter::from_entry(id, flat))
        })
        .collect())
}

/// Where re-drives append: the event stream's Redis, the stream's name and partition count.
#[derive(Clone)]
pub struct EventStreamSink {
    pub conn: Connection,
    pub name: String,
    /// `stream.partitions`: each letter goes back to its product's partition.
    pub partitions: u32,
    pub timeout: Duration,
}

/// Appends each letter's re-drive fields to the event stream (its product's partition), in
/// the order given, all or none per partition (MULTI/EXEC); the new entries' ids. Leaves the
/// letters in place: see [`redrive`].
pub async fn append_redrives(
    sink: &EventStreamSink,
    letters: &[Letter],
) -> Result<Vec<String>, StoreError> {
    if letters.is_empty() {
        return Ok(Vec::new());
    }
    let appends: Vec<(String, Fields)> = letters
        .iter()
        .map(|letter| {
            // A letter without a product id (dead-lettered for that) goes to partition 0,
            // to be dead-lettered again.
            let product = String::from_utf8_lossy(letter.product_id().unwrap_or_default());
            let stream = stream_of(&sink.name, sink.partitions, &product);
            (stream, letter.redrive_fields())
        })
        .collect();
    bounded(sink.timeout, append_events(&sink.conn, &appends)).await
}

/// Deletes letters from the dead-letter stream; how many there were.
pub async fn delete_letters(store: &Store, ids: &[String]) -> Result<u64, StoreError> {
    if ids.is_empty() {
        return Ok(0);
    }
    let mut xdel = redis::cmd("XDEL");
    xdel.arg(store.keys().dead_letters().stream());
    for id in ids {
        xdel.arg(id);
    }
    // XDEL of an id already gone does nothing, so a retry on a new connection is harmless.
    store.query(&xdel).await
}

/// Re-drives `letters` (sorted into dead-letter order first): appends them to the event
/// stream, then deletes them; the ids appended, in that order. Letters that cannot be
/// re-driven must have been left out (see [`Letter::not_redrivable`]).
pub async fn redrive(
    store: &Store,
    sink: &EventStreamSink,
    letters: &mut [Letter],
) -> Result<Vec<String>, StoreError> {
    letters.sort_by(|a, b| crate::workers::plan::compare_ids(&a.id, &b.id));
    let appended = append_redrives(sink, letters).await?;
    let ids: Vec<String> = letters.iter().map(|letter| letter.id.clone()).collect();
    delete_letters(store, &ids).await?;
    Ok(appended)
}

/// Reads a reply value as text, for letters' fields shown to people: invalid UTF-8 is
/// replaced (U+FFFD), and `lossy` says so.
pub fn shown(bytes: &[u8]) -> (String, bool) {
    match std::str::from_utf8(bytes) {
        Ok(text) => (text.to_owned(), false),
        Err(_) => (String::from_utf8_lossy(bytes).into_owned(), true),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flat(pairs: &[(&str, &str)]) -> Vec<Vec<u8>> {
        pairs
            .iter()
            .flat_map(|(k, v)| [k.as_bytes().to_vec(), v.as_bytes().to_vec()])
            .collect()
    }

    #[test]
    fn letters_are_read_with_and_without_a_board_pair() {
        let whole = Letter::from_entry(
            "9-0".into(),
            flat(&[
                ("source_id", "5-0"),
                ("reason", "why"),
                ("board", ""),
                ("board", "original"),
                ("product_id", "p"),
            ]),
        );
        assert_eq!(whole.board, None);
        assert_eq!(whole.fields.len(), 2, "{whole:?}");
        assert_eq!(whole.product_id(), Some(&b"p"[..]));
        let for_board = Letter::from_entry(
            "9-1".into(),
            flat(&[
                ("source_id", "5-0"),
                ("reason", "why"),
                ("board", "elo"),
                ("x", "1"),
            ]),
        );
        assert_eq!(for_board.board.as_deref(), Some("elo"));
        assert!(for_board.not_redrivable().is_some());
        let without = Letter::from_entry(
            "9-2".into(),
            flat(&[("source_id", "5-0"), ("reason", "why"), ("product_id", "p")]),
        );
        assert_eq!(without.board, None);
        assert_eq!(without.fields.len(), 1);
    }

    #[test]
    fn a_redrive_names_the_original_and_the_letter_once() {
        let again = Letter::from_entry(
            "20-0".into(),
            flat(&[
                ("source_id", "12-0"),
                ("reason", "why"),
                ("board", ""),
                ("product_id", "p"),
                (REDRIVE_OF_FIELD, "5-0"),
                (REDRIVE_LETTER_FIELD, "9-0"),
            ]),
        );
        assert_eq!(again.original_id(), "5-0");
        let fields = again.redrive_fields();
        let names: Vec<&[u8]> = fields.iter().map(|(name, _)| name.as_slice()).collect();
        assert_eq!(
            names,
            vec![
                &b"product_id"[..],
                REDRIVE_OF_FIELD.as_bytes(),
                REDRIVE_LETTER_FIELD.as_bytes()
            ]
        );
        assert_eq!(fields[1].1, b"5-0");
        assert_eq!(fields[2].1, b"20-0");
    }

    #[test]
    fn filters_take_a_reason_prefix_and_an_exact_product() {
        let letter = Letter::from_entry(
            "9-0".into(),
            flat(&[
                ("source_id", "5-0"),
                ("reason", "product `p` is not configured"),
                ("board", ""),
                ("product_id", "p"),
            ]),
        );
        let filter = |reason: Option<&str>, product: Option<&str>| Filter {
            reason: reason.map(str::to_owned),
            product: product.map(str::to_owned),
            redrivable: true,
        };
        assert!(filter(Some("product `"), Some("p")).matches(&letter));
        assert!(!filter(Some("missing"), None).matches(&letter));
        assert!(!filter(None, Some("pp")).matches(&letter));
        assert!(filter(None, None).matches(&letter));
    }
}
