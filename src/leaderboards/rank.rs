//! Ranks: reading a board's rank index (pages, a player's standing, several players at once)
//! and the byte encoding the index is built on.
//!
//! The worker (commit.lua's `BOARD`) keeps, next to every board's `player → score` sorted set,
//! an index whose members sort by bytes in rank order: `<score key><achieved><player>`.
//! - `<score key>`: 16 hex digits of the score's IEEE 754 bits, transformed so that byte
//!   order is best (highest) score first.
//! - `<achieved>`: the stream id of the event that gave the player this score, as two counted
//!   digit strings (`char(64 + len)` then the digits): earlier achievers sort first.
//!
//! Ordinal rank is a member's position; standard competition rank (1, 2, 2, 4) is one plus the
//! members before its score key; dense rank (1, 2, 2, 3) is one plus the distinct score keys
//! before it. Cursors are positions in this order, so paging never skips or repeats an entry
//! that did not move meanwhile.

use std::sync::LazyLock;

use redis::Script;
use serde::Serialize;

use crate::core::keys::BoardKeys;
use crate::core::store::{Store, StoreError};

use super::query::json_number;

/// How equal scores are ranked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Ties {
    /// 1, 2, 2, 4.
    #[default]
    Standard,
    /// 1, 2, 2, 3.
    Dense,
    /// 1, 2, 3, 4 (earlier achiever first).
    Ordinal,
}

impl Ties {
    pub fn name(self) -> &'static str {
        match self {
            Ties::Standard => "standard",
            Ties::Dense => "dense",
            Ties::Ordinal => "ordinal",
        }
    }

    pub fn parse(name: &str) -> Option<Ties> {
        match name {
            "standard" => Some(Ties::Standard),
            "dense" => Some(Ties::Dense),
            "ordinal" => Some(Ties::Ordinal),
            _ => None,
        }
    }
}

/// The score key: byte order of the hex text is descending score order.
pub fn score_key(score: f64) -> String {
    // -0 and 0 are one score, as in the worker's script.
    let score = if score == 0.0 { 0.0 } else { score };
    let bits = score.to_bits();
    let key = if bits >> 63 == 1 {
        bits
    } else {
        bits ^ 0x7FFF_FFFF_FFFF_FFFF
    };
    format!("{key:016x}")
}

/// The score a score key stands for; `None` if it is not one.
pub fn score_of_key(key: &str) -> Option<f64> {
    if key.len() != 16 {
        return None;
    }
    let key = u64::from_str_radix(key, 16).ok()?;
    let bits = if key >> 63 == 1 {
        key
    } else {
        key ^ 0x7FFF_FFFF_FFFF_FFFF
    };
    Some(f64::from_bits(bits))
}

/// One index member, taken apart.
#[derive(Debug, Clone, PartialEq)]
pub struct Member<'a> {
    pub score_key: &'a str,
    pub score: f64,
    /// The counted-digits stamp of when the score was reached.
    pub achieved: &'a str,
    pub player: &'a str,
}

/// Takes an index member apart; `None` if it is not one.
pub fn parse_member(member: &str) -> Option<Member<'_>> {
    let score_key = member.get(..16)?;
    let score = score_of_key(score_key)?;
    let rest = &member[16..];
    let mut end = 0;
    for _ in 0..2 {
        let len = usize::from(rest.as_bytes().get(end)?.checked_sub(64)?);
        end += 1 + len;
        if !rest
            .get(end - len..end)?
            .bytes()
            .all(|b| b.is_ascii_digit())
        {
            return None;
        }
    }
    Some(Member {
        score_key,
        score,
        achieved: &rest[..end],
        player: &rest[end..],
    })
}

/// One ranked row of a board.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct RankedEntry {
    /// 1-based, by the requested ranking.
    pub rank: u64,
    pub user_id: String,
    /// The board's score; integral values are written as integers.
    #[schema(value_type = f64)]
    pub score: serde_json::Number,
}

/// A page of a board.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Page {
    /// Players on the board.
    pub total: u64,
    pub entries: Vec<RankedEntry>,
    /// Cursor of the page after this one; `None` at the end.
    pub next: Option<String>,
    /// Cursor of the page before this one; `None` at the start.
    pub prev: Option<String>,
}

/// Where a page starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PageStart {
    /// After skipping this many entries.
    Offset(u64),
    /// Right after the entry a cursor names.
    After(String),
    /// Right before it (the page ends there).
    Before(String),
}

/// A cursor for the index member `member` (opaque to clients: hex of its bytes).
pub fn cursor_of(member: &str) -> String {
    hex::encode(member)
}

/// The index member a cursor names; `None` if it is not a cursor.
pub fn member_of_cursor(cursor: &str) -> Option<String> {
    if cursor.len() > 2 * 1024 {
        return None;
    }
    let member = String::from_utf8(hex::decode(cursor).ok()?).ok()?;
    parse_member(&member).is_some().then_some(member)
}

/// Index members from Redis, parsed; a damaged member is skipped rather than failing reads.
fn members(raw: &[String]) -> Vec<Member<'_>> {
    raw.iter().filter_map(|m| parse_member(m)).collect()
}

/// The read script (rank_read.lua, after the shared rank.lua).
static READ_SCRIPT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(concat!(
        include_str!("rank.lua"),
        include_str!("rank_read.lua")
    ))
});

/// Consecutive rows of the index as the read script returns them.
struct Rows {
    total: u64,
    /// Entries ahead of the first row.
    skipped: u64,
    /// The first row's rank (by the requested ties).
    first_rank: u64,
    members: Vec<String>,
}

/// Runs the read script; `None` when it names a player not on the board.
async fn read_rows(
    store: &Store,
    keys: &BoardKeys,
    start: &str,
    from: &str,
    limit: u64,
    ties: Ties,
) -> Result<Option<Rows>, StoreError> {
    let mut invocation = READ_SCRIPT.prepare_invoke();
    for key in keys.all() {
        invocation.key(key);
    }
    invocation.arg(start).arg(from).arg(limit).arg(ties.name());
    let reply: Option<(u64, u64, u64, Vec<String>)> = store
        .invoke_read::<Option<Vec<redis::Value>>>(&invocation)
        .await?
        .and_then(|values| {
            let mut values = values.into_iter();
            let mut number = || {
                values
                    .next()
                    .and_then(|v| redis::from_redis_value::<u64>(v).ok())
            };
            let head = (number()?, number()?, number()?);
            let members = values
                .filter_map(|v| redis::from_redis_value::<String>(v).ok())
                .collect();
            Some((head.0, head.1, head.2, members))
        });
    Ok(reply.map(|(total, skipped, first_rank, members)| Rows {
        total,
        skipped,
        first_rank,
        members,
    }))
}

/// Ranks consecutive `rows`: the first has `first_rank`; each next one follows from the scores.
fn rank_rows(
    rows: &[Member<'_>],
    first_ordinal: u64,
    first_rank: u64,
    ties: Ties,
) -> Vec<RankedEntry> {
    let mut rank = first_rank;
    let mut entries = Vec::with_capacity(rows.len());
    for (i, row) in rows.iter().enumerate() {
        if i > 0 {
            let tied = row.score_key == rows[i - 1].score_key;
            let ordinal = first_ordinal + i as u64;
            rank = match ties {
                Ties::Ordinal => ordinal,
                _ if tied => rank,
                Ties::Standard => ordinal,
                Ties::Dense => rank + 1,
            };
        }
        entries.push(RankedEntry {
            rank,
            user_id: row.player.to_owned(),
            score: json_number(row.score),
        });
    }
    entries
}

/// Most entries a page may skip (keeps offsets exact in the script's numbers).
pub const MAX_OFFSET: u64 = 1 << 50;

/// A page of `limit` entries from `start`, ranked by `ties`.
pub async fn page(
    store: &Store,
    keys: &BoardKeys,
    start: &PageStart,
    limit: u64,
    ties: Ties,
) -> Result<Page, StoreError> {
    if limit == 0 {
        let total: u64 = store.query(redis::cmd("ZCARD").arg(&keys.order)).await?;
        return Ok(Page {
            total,
            entries: Vec::new(),
            next: None,
            prev: None,
        });
    }
    let (how, from) = match start {
        PageStart::Offset(offset) => ("offset", offset.min(&MAX_OFFSET).to_string()),
        PageStart::After(member) => ("after", member.clone()),
        PageStart::Before(member) => ("before", member.clone()),
    };
    let Some(rows) = read_rows(store, keys, how, &from, limit, ties).await? else {
        return Ok(Page {
            total: 0,
            entries: Vec::new(),
            next: None,
            prev: None,
        });
    };
    let parsed = members(&rows.members);
    let entries = rank_rows(&parsed, rows.skipped + 1, rows.first_rank, ties);
    let last_ordinal = rows.skipped + parsed.len() as u64;
    Ok(Page {
        total: rows.total,
        next: rows
            .members
            .last()
            .filter(|_| last_ordinal < rows.total)
            .map(|m| cursor_of(m)),
        prev: rows
            .members
            .first()
            .filter(|_| rows.skipped > 0)
            .map(|m| cursor_of(m)),
        entries,
    })
}

/// Where a player stands on a board.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Standing {
    pub total: u64,
    /// The player's own row.
    pub entry: RankedEntry,
    /// Up to `around` rows above and below the player, the player included, in rank order.
    pub neighbours: Vec<RankedEntry>,
}

/// The index member of each player (`None`: not on the board).
async fn members_of(
    store: &Store,
    keys: &BoardKeys,
    players: &[&str],
) -> Result<Vec<Option<String>>, StoreError> {
    let mut pipe = redis::pipe();
    for player in players {
        pipe.cmd("ZSCORE").arg(&keys.scores).arg(*player);
        pipe.cmd("HGET").arg(&keys.at).arg(*player);
    }
    let raw: Vec<Option<String>> = store.query_pipe(&pipe).await?;
    Ok(players
        .iter()
        .zip(raw.chunks(2))
        .map(|(player, pair)| match pair {
            [Some(score), Some(achieved)] => score
                .parse::<f64>()
                .ok()
                .map(|score| format!("{}{achieved}{player}", score_key(score))),
            _ => None,
        })
        .collect())
}

/// The ranks of each player (`None`: not on the board), by `ties`.
pub async fn ranks(
    store: &Store,
    keys: &BoardKeys,
    players: &[&str],
    ties: Ties,
) -> Result<Vec<Option<RankedEntry>>, StoreError> {
    let found = members_of(store, keys, players).await?;
    let mut pipe = redis::pipe();
    for member in found.iter().flatten() {
        let Some(parsed) = parse_member(member) else {
            continue;
        };
        match ties {
            Ties::Ordinal => pipe.cmd("ZRANK").arg(&keys.order).arg(member),
            Ties::Standard => pipe
                .cmd("ZLEXCOUNT")
                .arg(&keys.order)
                .arg("-")
                .arg(format!("({}", parsed.score_key)),
            Ties::Dense => pipe
                .cmd("ZLEXCOUNT")
                .arg(&keys.distinct)
                .arg("-")
                .arg(format!("({}", parsed.score_key)),
        };
    }
    // An empty pipeline is not a valid request: nobody asked for is on the board.
    let counts: Vec<Option<u64>> = if pipe.is_empty() {
        Vec::new()
    } else {
        store.query_pipe(&pipe).await?
    };
    let mut counts = counts.into_iter();
    Ok(found
        .iter()
        .map(|member| {
            let parsed = parse_member(member.as_deref()?)?;
            // A ZRANK of nil: the member moved between the two round trips.
            let ahead = counts.next().flatten()?;
            Some(RankedEntry {
                rank: ahead + 1,
                user_id: parsed.player.to_owned(),
                score: json_number(parsed.score),
            })
        })
        .collect())
}

/// `player`'s standing with `around` rows above and below; `None` if not on the board.
pub async fn standing(
    store: &Store,
    keys: &BoardKeys,
    player: &str,
    around: u64,
    ties: Ties,
) -> Result<Option<Standing>, StoreError> {
    let Some(rows) = read_rows(store, keys, "player", player, around, ties).await? else {
        return Ok(None);
    };
    let parsed = members(&rows.members);
    let neighbours = rank_rows(&parsed, rows.skipped + 1, rows.first_rank, ties);
    let Some(entry) = neighbours.iter().find(|e| e.user_id == player).cloned() else {
        return Ok(None);
    };
    Ok(Some(Standing {
        total: rows.total,
        entry,
        neighbours,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn score_keys_sort_best_first_and_round_trip() {
        let mut scores = vec![
            f64::INFINITY,
            1e300,
            1500.5,
            3.0,
            1.0,
            1e-300,
            0.0,
            -1e-300,
            -1.0,
            -2.5,
            -1e300,
            f64::NEG_INFINITY,
        ];
        let keys: Vec<String> = scores.iter().map(|s| score_key(*s)).collect();
        let mut sorted = keys.clone();
        sorted.sort();
        assert_eq!(sorted, keys, "byte order must be descending score order");
        for (score, key) in scores.iter().zip(&keys) {
            assert_eq!(score_of_key(key), Some(*score));
        }
        assert_eq!(score_key(-0.0), score_key(0.0));
        scores.dedup();
        assert_eq!(score_of_key("nothex!!nothex!!"), None);
    }

    #[test]
    fn members_take_apart_and_cursors_round_trip() {
        let member = format!("{}M1764099900000A7игрок:1", score_key(3.0));
        let parsed = parse_member(&member).expect("a member");
        assert_eq!(parsed.score, 3.0);
        assert_eq!(parsed.achieved, "M1764099900000A7");
        assert_eq!(parsed.player, "игрок:1");
        assert_eq!(
            member_of_cursor(&cursor_of(&member)).as_deref(),
            Some(member.as_str())
        );
        for bad in ["", "zz", "abc", &cursor_of("not a member")] {
            assert_eq!(member_of_cursor(bad), None, "{bad}");
        }
        // A digit count pointing past the end is not a member.
        assert_eq!(parse_member(&format!("{}Z1", score_key(1.0))), None);
    }
}
