//! The head of a board: its first rows, read in one round trip and ranked once, so that pages
//! inside it can be answered from memory (the server keeps heads for a few dozen
//! milliseconds, see `server::cache`). A page answered from a head is the page
//! [`rank::page`] answers on the same state of the board: same rows, ranks, total and cursors.

use super::rank::{self, Page, PageStart, RankedEntry, Row, Ties};
use crate::core::keys::{BoardKeys, Columns};
use crate::core::store::{Store, StoreError};

/// One row of a head, with its rank in each style (a head starts at the top of the board, so
/// every rank is known without asking Redis).
#[derive(Debug)]
struct HeadRow {
    row: Row,
    /// Its sort key (what cursors are compared by).
    sort_key: Vec<u8>,
    /// Its entry (player, score, columns), ranked when a page is answered.
    entry: RankedEntry,
    standard: u64,
    dense: u64,
}

/// The first rows of a board and its total, as read at one moment.
#[derive(Debug)]
pub struct Head {
    /// Players on the board.
    total: u64,
    /// The best `rows` rows, in rank order (fewer when the board is shorter).
    rows: Vec<HeadRow>,
}

impl Head {
    /// Reads the best `rows` rows of the board and its total, atomically.
    pub async fn read(store: &Store, keys: &BoardKeys, rows: u64) -> Result<Head, StoreError> {
        if rows == 0 {
            let total: u64 = store.query(redis::cmd("ZCARD").arg(&keys.board)).await?;
            return Ok(Head {
                total,
                rows: Vec::new(),
            });
        }
        let mut pipe = redis::pipe();
        pipe.atomic()
            .cmd("ZCARD")
            .arg(&keys.board)
            .cmd("ZRANGE")
            .arg(&keys.board)
            .arg(0)
            .arg(rows.min(rank::MAX_OFFSET) - 1)
            .arg("WITHSCORES");
        let (total, stored): (u64, Vec<(Vec<u8>, String)>) = store.query_pipe(&pipe).await?;
        Ok(Head::from_stored(total, stored, &keys.columns))
    }

    /// Ranks the best rows of a board. Stops before a damaged row (only outside writes make
    /// one): pages past it are left to Redis, which counts it in positions.
    fn from_stored(total: u64, stored: Vec<(Vec<u8>, String)>, columns: &Columns) -> Head {
        let mut rows: Vec<HeadRow> = Vec::with_capacity(stored.len());
        for (member, score) in stored {
            let Some(row) = Row::from_stored(member, &score, columns.tail_bytes()) else {
                break;
            };
            let ordinal = rows.len() as u64 + 1;
            let (standard, dense) = match rows.last() {
                None => (1, 1),
                Some(previous) if previous.row.ties_with(&row) => {
                    (previous.standard, previous.dense)
                }
                Some(previous) => (ordinal, previous.dense + 1),
            };
            rows.push(HeadRow {
                sort_key: row.sort_key(),
                entry: row.entry(0, columns),
                row,
                standard,
                dense,
            });
        }
        Head { total, rows }
    }

    /// The page `rank::page` would answer, or `None` when part of it lies past the head.
    pub fn page(&self, start: &PageStart, limit: u64, ties: Ties) -> Option<Page> {
        let len = self.rows.len();
        // The whole board is here: positions past the end are simply empty.
        let complete = len as u64 == self.total;
        let limit = usize::try_from(limit).ok()?;
        let position = |cursor: &Row| {
            let key = cursor.sort_key();
            self.rows
                .binary_search_by(|row| row.sort_key.as_slice().cmp(key.as_slice()))
        };
        let (from, to) = match start {
            PageStart::Offset(offset) => {
                let from = usize::try_from(*offset).ok()?;
                (from, from.saturating_add(limit))
            }
            // Cursors name rows, which may have moved since: a page starts right after
            // (ends right before) where the row sorts, as in the read script.
            PageStart::After(cursor) => {
                let from = match position(cursor) {
                    Ok(at) => at + 1,
                    Err(at) if at < len || complete => at,
                    Err(_) => return None,
                };
                (from, from.saturating_add(limit))
            }
            PageStart::Before(cursor) => {
                let to = match position(cursor) {
                    Ok(at) => at,
                    Err(at) if at < len || complete => at,
                    Err(_) => return None,
                };
                (to.saturating_sub(limit), to)
            }
        };
        if limit == 0 {
            return Some(Page {
                total: self.total,
                entries: Vec::new(),
                next: None,
                prev: None,
            });
        }
        if to > len && !complete {
            return None;
        }
        let rows = self
            .rows
            .get(from.min(len)..to.min(len))
            .unwrap_or_default();
        let entries = rows
            .iter()
            .enumerate()
            .map(|(i, row)| RankedEntry {
                rank: match ties {
                    Ties::Ordinal => (from + i) as u64 + 1,
                    Ties::Standard => row.standard,
                    Ties::Dense => row.dense,
                },
                ..row.entry.clone()
            })
            .collect();
        Some(Page {
            total: self.total,
            next: rows
                .last()
                .filter(|_| ((from + rows.len()) as u64) < self.total)
                .map(|row| rank::cursor_of(&row.row)),
            prev: rows
                .first()
                .filter(|_| from > 0)
                .map(|row| rank::cursor_of(&row.row)),
            entries,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(score: f64, stamp: u64, player: &str) -> (Vec<u8>, String) {
        let mut member = stamp.to_be_bytes().to_vec();
        member.extend_from_slice(player.as_bytes());
        (member, (-score).to_string())
    }

    fn row(stored: &(Vec<u8>, String)) -> Row {
        Row::from_stored(stored.0.clone(), &stored.1, 0).expect("a row")
    }

    #[test]
    fn ranks_follow_ties_and_pages_past_the_head_are_refused() {
        let rows = vec![
            stored(5.0, 1, "a"),
            stored(3.0, 2, "b"),
            stored(3.0, 3, "c"),
            stored(1.0, 4, "d"),
        ];
        let head = Head::from_stored(10, rows.clone(), &Columns::default());
        let ranks = |ties| {
            head.page(&PageStart::Offset(0), 4, ties)
                .expect("inside the head")
                .entries
                .iter()
                .map(|e| (e.user_id.clone(), e.rank))
                .collect::<Vec<_>>()
        };
        let named = |ranks: [u64; 4]| {
            ["a", "b", "c", "d"]
                .iter()
                .map(|p| p.to_string())
                .zip(ranks)
                .collect::<Vec<_>>()
        };
        assert_eq!(ranks(Ties::Standard), named([1, 2, 2, 4]));
        assert_eq!(ranks(Ties::Dense), named([1, 2, 2, 3]));
        assert_eq!(ranks(Ties::Ordinal), named([1, 2, 3, 4]));
        // The board has 10 rows, the head 4: rows 5.. are not known here.
        assert!(
            head.page(&PageStart::Offset(2), 3, Ties::Standard)
                .is_none()
        );
        let after_last = PageStart::After(row(&rows[3]));
        assert!(head.page(&after_last, 1, Ties::Standard).is_none());
        let page = head
            .page(&PageStart::After(row(&rows[0])), 2, Ties::Dense)
            .expect("inside the head");
        assert_eq!(page.entries.len(), 2);
        assert!(page.prev.is_some() && page.next.is_some());
        // A cursor whose row moved since (c, now at 4 points) sorts between a and b.
        let moved = PageStart::After(row(&stored(4.0, 3, "c")));
        let page = head
            .page(&moved, 1, Ties::Standard)
            .expect("inside the head");
        assert_eq!(page.entries[0].user_id, "b");
        // A damaged row ends the head.
        let damaged = Head::from_stored(
            3,
            vec![rows[0].clone(), (b"junk".to_vec(), "x".into())],
            &Columns::default(),
        );
        assert_eq!(damaged.rows.len(), 1);
    }
}
