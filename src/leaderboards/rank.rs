//! Ranks: reading a board (pages, a player's standing, several players at once) and the
//! encoding it is built on.
//!
//! A board is one sorted set in rank order (see `core::keys::BoardKeys`), kept by the worker
//! (commit.lua's `BOARD`): member `<stamp><player>`, score the negated board score, so Redis's
//! ascending order is best score first and, among equal scores, the earlier achiever first.
//! `<stamp>` is 8 bytes, big-endian: the product's count of entries that changed a score,
//! when this one did. The player's stamp is in their stats hash, which finds their member.
//! A board with several score columns (`core::keys::Columns`) stores the first column as the
//! score and the others, 8 bytes each whose byte order is rank order, before the stamp:
//! `<tail><stamp><player>`; rows tie when the score and the tail are equal.
//!
//! Ordinal rank is a member's position; standard competition rank (1, 2, 2, 4) is one plus the
//! members with a better score; dense rank (1, 2, 2, 3) is one plus the distinct better
//! scores. Cursors name a row by its score and member (`<score key><member>`, hex), so
//! paging never skips or repeats an entry that did not move meanwhile.

use std::sync::LazyLock;

use redis::Script;
use serde::Serialize;

use crate::core::keys::{BoardKeys, Columns};
use crate::core::store::{Store, StoreError};

use serde_json::json;

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

/// Bytes of a member's stamp.
pub const STAMP_BYTES: usize = 8;

/// The player of a board member (`<tail><stamp><player>`, the tail `tail_bytes` long: the
/// other score columns of a board with several); `None` if it is not one.
pub fn player_of(member: &[u8], tail_bytes: usize) -> Option<&str> {
    let player = std::str::from_utf8(member.get(tail_bytes + STAMP_BYTES..)?).ok()?;
    (!player.is_empty()).then_some(player)
}

/// A column's value from its stored form `u` (lower ranks first: the value of an ascending
/// column, the negated value of a descending one; +inf while the player has none).
fn column_value(u: f64, ascending: bool) -> Option<f64> {
    if u == f64::INFINITY {
        None
    } else if ascending {
        Some(u)
    } else {
        Some(-u)
    }
}

/// The stored form of a column after the first, from its 8 bytes in a member (commit.lua's
/// `sortable`: byte order is numeric order).
fn column_of_bytes(bytes: &[u8]) -> Option<f64> {
    let bits = u64::from_be_bytes(bytes.try_into().ok()?);
    let bits = if bits >> 63 == 1 {
        bits ^ (1 << 63)
    } else {
        !bits
    };
    Some(f64::from_bits(bits))
}

/// The board score a stored (negated) score stands for; -0 and 0 are one score.
fn score_of_stored(stored: f64) -> f64 {
    if stored == 0.0 { 0.0 } else { -stored }
}

/// One row of a board: its score and its member (`<tail><stamp><player>`; the tail, the
/// other columns of a board with several, is `tail` bytes long).
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub score: f64,
    pub member: Vec<u8>,
    pub tail: usize,
}

impl Row {
    /// A row as Redis stores it (the member and the negated score's text); `None` if it is not
    /// one (only outside writes make such rows).
    pub fn from_stored(member: Vec<u8>, stored: &str, tail: usize) -> Option<Row> {
        let stored: f64 = stored.parse().ok()?;
        let row = Row {
            score: score_of_stored(stored),
            member,
            tail,
        };
        row.player().is_some().then_some(row)
    }

    /// The player the row belongs to.
    pub fn player(&self) -> Option<&str> {
        player_of(&self.member, self.tail)
    }

    /// Whether `other` has the same score (every column of it).
    pub fn ties_with(&self, other: &Row) -> bool {
        self.score == other.score && self.member.get(..self.tail) == other.member.get(..self.tail)
    }

    /// The row's entry at `rank`: its player and score and, on a board with several columns,
    /// every column by name (`null`: the player has no value in it yet).
    pub fn entry(&self, rank: u64, columns: &Columns) -> RankedEntry {
        let (score, columns) = if columns.0.is_empty() {
            (Some(json_number(self.score)), None)
        } else {
            let mut values = vec![column_value(-self.score, columns.first_ascending())];
            for (index, (_, ascending)) in columns.0.iter().enumerate().skip(1) {
                let bytes = self.member.get(8 * (index - 1)..8 * index);
                let u = bytes.and_then(column_of_bytes).unwrap_or(f64::INFINITY);
                values.push(column_value(u, *ascending));
            }
            let by_name: serde_json::Map<String, serde_json::Value> = columns
                .0
                .iter()
                .zip(&values)
                .map(|((name, _), value)| (name.clone(), json!(value.map(json_number))))
                .collect();
            (values[0].map(json_number), Some(by_name))
        };
        RankedEntry {
            rank,
            user_id: self.player().unwrap_or_default().to_owned(),
            score,
            columns,
            percentile: None,
            name: None,
            meta: None,
        }
    }

    /// Bytes whose order is rank order: the score key, then the member.
    pub fn sort_key(&self) -> Vec<u8> {
        let mut key = score_key(self.score).into_bytes();
        key.extend_from_slice(&self.member);
        key
    }

    /// The score as the board stores it (negated), as text Redis reads back exactly.
    fn stored_text(&self) -> String {
        let stored = -self.score;
        if stored == 0.0 {
            "0".to_owned()
        } else {
            stored.to_string()
        }
    }
}

/// One ranked row of a board.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct RankedEntry {
    /// 1-based, by the requested ranking.
    pub rank: u64,
    pub user_id: String,
    /// The board's score (on a board with several columns, the first column's; `null` while
    /// the player has no value in it); integral values are written as integers.
    #[schema(value_type = Option<f64>)]
    pub score: Option<serde_json::Number>,
    /// On a board with several score columns: each column's value by name, in rank order of
    /// the columns (`null`: no value yet).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub columns: Option<serde_json::Map<String, serde_json::Value>>,
    /// In standings and `ranks` answers: the share of the board's players with a strictly
    /// worse score, in percent (0 to 100, two decimals; 0 for the only player, or when all
    /// are tied).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub percentile: Option<f64>,
    /// With `with=names`: the player's display name (`null`: none set).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<Option<String>>,
    /// With `with=names`: the player's public metadata, a JSON object (`null`: none set).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub meta: Option<Option<serde_json::Value>>,
}

/// The share of `total` players that `behind` is, in percent with two decimals.
pub fn percentile(behind: u64, total: u64) -> f64 {
    if total == 0 {
        return 0.0;
    }
    (behind as f64 * 10_000.0 / total as f64).round() / 100.0
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
#[derive(Debug, Clone, PartialEq)]
pub enum PageStart {
    /// After skipping this many entries.
    Offset(u64),
    /// Right after the row a cursor names (where it would sort, if it moved since).
    After(Row),
    /// Right before it (the page ends there).
    Before(Row),
}

/// A cursor naming `row` (opaque to clients: hex of its sort key).
pub fn cursor_of(row: &Row) -> String {
    hex::encode(row.sort_key())
}

/// The row a cursor of a board whose members have a `tail` of that many bytes names; `None` if
/// it is not a cursor.
pub fn row_of_cursor(cursor: &str, tail: usize) -> Option<Row> {
    if cursor.len() > 2 * 1024 {
        return None;
    }
    let bytes = hex::decode(cursor).ok()?;
    let score = score_of_key(std::str::from_utf8(bytes.get(..16)?).ok()?)?;
    let row = Row {
        score,
        member: bytes.get(16..)?.to_vec(),
        tail,
    };
    row.player().is_some().then_some(row)
}

/// Rows of a reply: member, stored score, member, stored score…; a damaged row is skipped
/// rather than failing reads.
fn rows_of(values: impl Iterator<Item = redis::Value>, tail: usize) -> Vec<Row> {
    let mut rows = Vec::new();
    let mut values = values;
    while let (Some(member), Some(stored)) = (values.next(), values.next()) {
        let (Ok(member), Ok(stored)) = (
            redis::from_redis_value::<Vec<u8>>(member),
            redis::from_redis_value::<String>(stored),
        ) else {
            continue;
        };
        rows.extend(Row::from_stored(member, &stored, tail));
    }
    rows
}

/// The read script (rank_read.lua, after the shared rank.lua).
static READ_SCRIPT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(concat!(
        include_str!("rank.lua"),
        include_str!("rank_read.lua")
    ))
});

/// Consecutive rows of a board as the read script returns them.
struct Rows {
    total: u64,
    /// Entries ahead of the first row.
    skipped: u64,
    /// The first row's rank (by the requested ties).
    first_rank: u64,
    /// For a player's rows: the players strictly behind them.
    behind: u64,
    rows: Vec<Row>,
}

/// Runs the read script; `None` when it names a player not on the board.
async fn read_rows(
    store: &Store,
    keys: &BoardKeys,
    start: &str,
    from: &str,
    limit: u64,
    ties: Ties,
    subject: Option<(&[u8], Option<String>)>,
) -> Result<Option<Rows>, StoreError> {
    let mut invocation = READ_SCRIPT.prepare_invoke();
    invocation.key(&keys.board).key(&keys.distinct);
    // The subject: a cursor's member, or a player (with the key of their stamps).
    let mut subject_arg: &[u8] = b"";
    if let Some((subject, stamps)) = subject {
        if let Some(stamps) = stamps {
            invocation.key(stamps);
        }
        subject_arg = subject;
    }
    invocation
        .arg(start)
        .arg(from)
        .arg(limit)
        .arg(ties.name())
        .arg(keys.columns.tail_bytes())
        .arg(subject_arg);
    let reply = store
        .invoke_read::<Option<Vec<redis::Value>>>(&invocation)
        .await?;
    Ok(reply.and_then(|values| {
        let mut values = values.into_iter();
        let mut number = || {
            values
                .next()
                .and_then(|v| redis::from_redis_value::<u64>(v).ok())
        };
        let (total, skipped, first_rank, behind) = (number()?, number()?, number()?, number()?);
        Some(Rows {
            total,
            skipped,
            first_rank,
            behind,
            rows: rows_of(values, keys.columns.tail_bytes()),
        })
    }))
}

/// Ranks consecutive `rows`: the first has `first_rank`; each next one follows from the scores.
fn rank_rows(
    rows: &[Row],
    first_ordinal: u64,
    first_rank: u64,
    ties: Ties,
    columns: &Columns,
) -> Vec<RankedEntry> {
    let mut rank = first_rank;
    let mut entries = Vec::with_capacity(rows.len());
    for (i, row) in rows.iter().enumerate() {
        if i > 0 {
            let tied = row.ties_with(&rows[i - 1]);
            let ordinal = first_ordinal + i as u64;
            rank = match ties {
                Ties::Ordinal => ordinal,
                _ if tied => rank,
                Ties::Standard => ordinal,
                Ties::Dense => rank + 1,
            };
        }
        entries.push(row.entry(rank, columns));
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
        let total: u64 = store.query(redis::cmd("ZCARD").arg(&keys.board)).await?;
        return Ok(Page {
            total,
            entries: Vec::new(),
            next: None,
            prev: None,
        });
    }
    let read = match start {
        PageStart::Offset(offset) => {
            let from = offset.min(&MAX_OFFSET).to_string();
            read_rows(store, keys, "offset", &from, limit, ties, None).await?
        }
        PageStart::After(row) | PageStart::Before(row) => {
            let how = if matches!(start, PageStart::After(_)) {
                "after"
            } else {
                "before"
            };
            let subject = Some((row.member.as_slice(), None));
            read_rows(store, keys, how, &row.stored_text(), limit, ties, subject).await?
        }
    };
    let Some(read) = read else {
        return Ok(Page {
            total: 0,
            entries: Vec::new(),
            next: None,
            prev: None,
        });
    };
    let entries = rank_rows(
        &read.rows,
        read.skipped + 1,
        read.first_rank,
        ties,
        &keys.columns,
    );
    let last_ordinal = read.skipped + read.rows.len() as u64;
    Ok(Page {
        total: read.total,
        next: read
            .rows
            .last()
            .filter(|_| last_ordinal < read.total)
            .map(cursor_of),
        prev: read
            .rows
            .first()
            .filter(|_| read.skipped > 0)
            .map(cursor_of),
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

/// The ranks of each player (`None`: not on the board), by `ties`; one round trip.
pub async fn ranks(
    store: &Store,
    keys: &BoardKeys,
    players: &[&str],
    ties: Ties,
) -> Result<Vec<Option<RankedEntry>>, StoreError> {
    if players.is_empty() {
        return Ok(Vec::new());
    }
    let mut invocation = READ_SCRIPT.prepare_invoke();
    invocation.key(&keys.board).key(&keys.distinct);
    for player in players {
        invocation.key(keys.stamps_of(player));
    }
    invocation
        .arg("players")
        .arg(&keys.stamp_field)
        .arg(0)
        .arg(ties.name())
        .arg(keys.columns.tail_bytes());
    for player in players {
        invocation.arg(*player);
    }
    let reply: Vec<redis::Value> = store.invoke_read(&invocation).await?;
    let mut values = reply.into_iter();
    let total = values
        .next()
        .and_then(|v| redis::from_redis_value::<u64>(v).ok())
        .unwrap_or_default();
    Ok(players
        .iter()
        .map(|player| {
            let mut next = || values.next();
            let (member, stored, ahead, behind) = (next(), next(), next(), next());
            let member = member.and_then(|v| redis::from_redis_value::<Vec<u8>>(v).ok())?;
            let stored = stored.and_then(|v| redis::from_redis_value::<String>(v).ok())?;
            let ahead = ahead.and_then(|v| redis::from_redis_value::<u64>(v).ok())?;
            let behind = behind.and_then(|v| redis::from_redis_value::<u64>(v).ok())?;
            let row = Row::from_stored(member, &stored, keys.columns.tail_bytes())?;
            let mut entry = row.entry(ahead + 1, &keys.columns);
            entry.user_id = (*player).to_owned();
            entry.percentile = Some(percentile(behind, total));
            Some(entry)
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
    let subject = Some((player.as_bytes(), Some(keys.stamps_of(player))));
    let Some(read) = read_rows(
        store,
        keys,
        "player",
        &keys.stamp_field,
        around,
        ties,
        subject,
    )
    .await?
    else {
        return Ok(None);
    };
    let neighbours = rank_rows(
        &read.rows,
        read.skipped + 1,
        read.first_rank,
        ties,
        &keys.columns,
    );
    let Some(mut entry) = neighbours.iter().find(|e| e.user_id == player).cloned() else {
        return Ok(None);
    };
    entry.percentile = Some(percentile(read.behind, read.total));
    Ok(Some(Standing {
        total: read.total,
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
    fn percentiles_are_shares_of_the_board_in_percent_with_two_decimals() {
        assert_eq!(percentile(0, 1), 0.0, "the only player");
        assert_eq!(percentile(0, 0), 0.0);
        assert_eq!(percentile(2, 3), 66.67);
        assert_eq!(percentile(999_999, 1_000_000), 100.0);
        assert_eq!(percentile(3, 4), 75.0);
    }

    /// commit.lua's `sortable`, written out again: the bytes a column's stored value `u` has
    /// at the start of a member.
    fn sortable(u: f64) -> [u8; 8] {
        let bits = if u == 0.0 { 0.0f64 } else { u }.to_bits();
        let bits = if bits >> 63 == 1 {
            !bits
        } else {
            bits ^ (1 << 63)
        };
        bits.to_be_bytes()
    }

    #[test]
    fn columns_decode_in_byte_order_and_by_their_direction() {
        let values = [
            f64::NEG_INFINITY,
            -1e15,
            -2.5,
            -0.0,
            0.0,
            1e-300,
            3.0,
            1e15,
            f64::INFINITY,
        ];
        let encoded: Vec<[u8; 8]> = values.iter().map(|u| sortable(*u)).collect();
        let mut sorted = encoded.clone();
        sorted.sort();
        assert_eq!(sorted, encoded, "byte order is numeric order");
        for (u, bytes) in values.iter().zip(&encoded) {
            assert_eq!(column_of_bytes(bytes), Some(*u + 0.0));
        }
        // A row of three columns: wins (desc, first), kills (desc), lap (asc, none yet).
        let columns = Columns(vec![
            ("wins".into(), false),
            ("kills".into(), false),
            ("lap".into(), true),
        ]);
        let mut member = sortable(-12.0).to_vec();
        member.extend_from_slice(&sortable(f64::INFINITY));
        member.extend_from_slice(&7u64.to_be_bytes());
        member.extend_from_slice(b"ann");
        let row = Row::from_stored(member, "-4", columns.tail_bytes()).expect("a row");
        assert_eq!(row.player(), Some("ann"));
        let entry = row.entry(1, &columns);
        assert_eq!(entry.score, Some(4.into()));
        assert_eq!(
            serde_json::Value::Object(entry.columns.expect("columns")),
            json!({"wins": 4, "kills": 12, "lap": null})
        );
    }

    #[test]
    fn rows_read_back_and_cursors_round_trip() {
        let mut member = 7u64.to_be_bytes().to_vec();
        member.extend_from_slice("игрок:1".as_bytes());
        let row = Row::from_stored(member.clone(), "-3", 0).expect("a row");
        assert_eq!(row.score, 3.0);
        assert_eq!(row.player(), Some("игрок:1"));
        assert_eq!(row.stored_text(), "-3");
        assert_eq!(row_of_cursor(&cursor_of(&row), 0), Some(row.clone()));
        assert_eq!(
            Row::from_stored(member.clone(), "0", 0).map(|r| r.stored_text()),
            Some("0".to_owned())
        );
        // A stamp without a player, or a player that is not UTF-8, is not a row.
        assert_eq!(
            Row::from_stored(member[..STAMP_BYTES].to_vec(), "1", 0),
            None
        );
        let mut bad = member[..STAMP_BYTES].to_vec();
        bad.push(0xff);
        assert_eq!(Row::from_stored(bad, "1", 0), None);
        for bad in ["", "zz", "abc", &hex::encode("not a cursor")] {
            assert_eq!(row_of_cursor(bad, 0), None, "{bad}");
        }
        // Sort keys order rows as the board does: better score first, then earlier stamp.
        let at = |score: f64, stamp: u64| {
            let mut member = stamp.to_be_bytes().to_vec();
            member.push(b'p');
            Row {
                score,
                member,
                tail: 0,
            }
            .sort_key()
        };
        assert!(at(5.0, 9) < at(3.0, 1));
        assert!(at(3.0, 1) < at(3.0, 2));
        assert!(at(-1.0, 1) > at(0.0, 300));
    }
}
