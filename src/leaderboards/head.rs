//! The head of a board: its first rows, read in one round trip and ranked once, so that pages
//! inside it can be answered from memory (the server keeps heads for a few dozen
//! milliseconds, see `server::cache`). A page answered from a head is the page
//! [`rank::page`] answers on the same state of the board: same rows, ranks, total and cursors.

use super::query::json_number;
use super::rank::{self, Page, PageStart, RankedEntry, Ties, parse_member};
use crate::core::keys::BoardKeys;
use crate::core::store::{Store, StoreError};

/// One row of a head, with its rank in each style (a head starts at the top of the board, so
/// every rank is known without asking Redis).
#[derive(Debug)]
struct HeadRow {
    /// The rank index member (what cursors name).
    member: String,
    /// Where the player id starts in `member`.
    player_at: usize,
    score: serde_json::Number,
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
            let total: u64 = store.query(redis::cmd("ZCARD").arg(&keys.order)).await?;
            return Ok(Head {
                total,
                rows: Vec::new(),
            });
        }
        let mut pipe = redis::pipe();
        pipe.atomic()
            .cmd("ZCARD")
            .arg(&keys.order)
            .cmd("ZRANGE")
            .arg(&keys.order)
            .arg(0)
            .arg(rows.min(rank::MAX_OFFSET) - 1);
        let (total, members): (u64, Vec<String>) = store.query_pipe(&pipe).await?;
        Ok(Head::from_members(total, members))
    }

    /// Ranks the best rows of a board. Stops before a damaged member (only outside writes
    /// make one): pages past it are left to Redis, which counts it in positions.
    fn from_members(total: u64, members: Vec<String>) -> Head {
        let mut rows: Vec<HeadRow> = Vec::with_capacity(members.len());
        for member in members {
            let Some(parsed) = parse_member(&member) else {
                break;
            };
            let ordinal = rows.len() as u64 + 1;
            let (standard, dense) = match rows.last() {
                None => (1, 1),
                Some(previous) if previous.member.get(..16) == Some(parsed.score_key) => {
                    (previous.standard, previous.dense)
                }
                Some(previous) => (ordinal, previous.dense + 1),
            };
            let player_at = member.len() - parsed.player.len();
            let score = json_number(parsed.score);
            rows.push(HeadRow {
                member,
                player_at,
                score,
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
        let position = |member: &str| {
            self.rows
                .binary_search_by(|row| row.member.as_str().cmp(member))
        };
        let (from, to) = match start {
            PageStart::Offset(offset) => {
                let from = usize::try_from(*offset).ok()?;
                (from, from.saturating_add(limit))
            }
            // Cursors name members, which may have moved since: a page starts right after
            // (ends right before) where the member sorts, as in the read script.
            PageStart::After(member) => {
                let from = match position(member) {
                    Ok(at) => at + 1,
                    Err(at) if at < len || complete => at,
                    Err(_) => return None,
                };
                (from, from.saturating_add(limit))
            }
            PageStart::Before(member) => {
                let to = match position(member) {
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
                user_id: row.member[row.player_at..].to_owned(),
                score: row.score.clone(),
            })
            .collect();
        Some(Page {
            total: self.total,
            next: rows
                .last()
                .filter(|_| ((from + rows.len()) as u64) < self.total)
                .map(|row| rank::cursor_of(&row.member)),
            prev: rows
                .first()
                .filter(|_| from > 0)
                .map(|row| rank::cursor_of(&row.member)),
            entries,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::leaderboards::rank::score_key;

    fn member(score: f64, seq: u32, player: &str) -> String {
        let seq = seq.to_string();
        format!(
            "{}M1764099900000{}{seq}{player}",
            score_key(score),
            char::from(64 + seq.len() as u8)
        )
    }

    #[test]
    fn ranks_follow_ties_and_pages_past_the_head_are_refused() {
        let members = vec![
            member(5.0, 1, "a"),
            member(3.0, 2, "b"),
            member(3.0, 3, "c"),
            member(1.0, 4, "d"),
        ];
        let head = Head::from_members(10, members.clone());
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
        let after_last = PageStart::After(members[3].clone());
        assert!(head.page(&after_last, 1, Ties::Standard).is_none());
        let page = head
            .page(&PageStart::After(members[0].clone()), 2, Ties::Dense)
            .expect("inside the head");
        assert_eq!(page.entries.len(), 2);
        assert!(page.prev.is_some() && page.next.is_some());
        // A damaged member ends the head.
        let damaged = Head::from_members(3, vec![members[0].clone(), "junk".into()]);
        assert_eq!(damaged.rows.len(), 1);
    }
}
