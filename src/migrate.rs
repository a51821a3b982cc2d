//! `stats-tracker migrate`: converts a store of an older layout to this release's
//! ([`LAYOUT_VERSION`]), in place, board by board. Every tracker process using the store must
//! be stopped first.
//!
//! Layout 1 kept each board as `player → score` with a rank index beside it (`:order`, members
//! `<score key><achieved><player>` all scored 0; `:at`, player → `<achieved>`; `:distinct`,
//! the score keys). Layout 2 keeps the board itself in rank order (see `core::keys::BoardKeys`).
//! A board is converted by building the new board and distinct scores under temporary names,
//! writing each player's stamp into their stats hash, then one script that replaces the old
//! keys with the new ones (keeping a period board's expiry) and raises the product's sequence
//! past the stamps given out. Stamps number a board's distinct `<achieved>` stamps in order,
//! so ties keep their order.
//!
//! Crash-safe and resumable: until its switch a board is untouched (the stamps written ahead
//! are the same on every run), after it the board has no `:at` key and is skipped. The
//! version is written last.

use std::collections::{BTreeSet, HashMap};

use crate::core::store::Connection;
use anyhow::{Context, Result, bail};

use crate::core::keys::{LAYOUT_VERSION, STAMP_FIELD_PREFIX, encode_segment, escape_glob};
use crate::core::layout;
use crate::core::store::Store;

/// Rows read or written per command.
const CHUNK: usize = 5_000;

/// Replaces a layout-1 board with its converted copy. KEYS: board, `:order`, `:at`,
/// `:distinct`, the new board, the new distinct scores, the product's sequence; ARGV[1] the
/// highest stamp the board uses.
const SWITCH: &str = r"
local ttl = redis.call('PTTL', KEYS[1])
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3], KEYS[4])
if redis.call('EXISTS', KEYS[5]) == 1 then redis.call('RENAME', KEYS[5], KEYS[1]) end
if redis.call('EXISTS', KEYS[6]) == 1 then redis.call('RENAME', KEYS[6], KEYS[4]) end
if ttl > 0 then
  redis.call('PEXPIRE', KEYS[1], ttl)
  redis.call('PEXPIRE', KEYS[4], ttl)
end
if tonumber(ARGV[1]) > tonumber(redis.call('GET', KEYS[7]) or '0') then
  redis.call('SET', KEYS[7], ARGV[1])
end
return 1
";

/// Adds rows to a board's converted copy, in the worker's own number format (rank.lua's
/// `num`). KEYS[1] the copy, KEYS[2] its distinct scores, KEYS[3…] each row's player's stats
/// hash; ARGV[1] the stamp field, then per row: member, score (layout 1's text).
const STAGE: &str = r"
local field = ARGV[1]
for i = 2, #ARGV, 2 do
  local member, score = ARGV[i], tonumber(ARGV[i + 1])
  redis.call('ZADD', KEYS[1], num(-score), member)
  redis.call('ZADD', KEYS[2], num(-score), num(score))
  redis.call('HSET', KEYS[2 + i / 2], field, string.sub(member, 1, 8))
end
return 1
";

/// What a migration did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Report {
    pub from: Option<u32>,
    pub boards: usize,
    pub rows: usize,
}

/// Migrates `store` (a single Redis) to [`LAYOUT_VERSION`].
pub async fn run(store: &Store) -> Result<Report> {
    let keys = store.keys();
    let conn = &mut store.connection();
    let from = layout::stored_version(conn, keys).await?;
    let mut report = Report {
        from,
        ..Report::default()
    };
    match from {
        Some(LAYOUT_VERSION) => return Ok(report),
        Some(version) if version > LAYOUT_VERSION => {
            bail!("the store holds layout {version}, newer than this release's {LAYOUT_VERSION}")
        }
        None => {
            layout::ensure_current(conn, keys).await?;
            return Ok(report);
        }
        Some(_) => {}
    }
    let pattern = format!("{}:{{*}}:board:*:at", escape_glob(keys.prefix()));
    for at in store.scan(&pattern).await? {
        let Some(board) = at.strip_suffix(":at") else {
            continue;
        };
        let rows = migrate_board(conn, board).await?;
        tracing::info!(board, rows, "board converted");
        report.boards += 1;
        report.rows += rows;
    }
    redis::cmd("SET")
        .arg(keys.layout())
        .arg(LAYOUT_VERSION)
        .query_async::<()>(conn)
        .await?;
    Ok(report)
}

/// Converts one layout-1 board; the rows it holds.
async fn migrate_board(conn: &mut Connection, board: &str) -> Result<usize> {
    let (base, name) = board
        .split_once(":board:")
        .with_context(|| format!("{board} is not a board key"))?;
    let (staged, staged_distinct) = (
        format!("{board}:migrating"),
        format!("{board}:migrating:distinct"),
    );
    let scores: Vec<(String, String)> = read_all_scores(conn, board).await?;
    let achieved: HashMap<String, String> = read_hash(conn, &format!("{board}:at")).await?;
    // Stamps number the board's distinct `<achieved>` texts, which sort in stream order.
    let distinct_achieved: BTreeSet<&str> = achieved.values().map(String::as_str).collect();
    let stamp_of: HashMap<&str, u64> = distinct_achieved
        .iter()
        .zip(1u64..)
        .map(|(text, stamp)| (*text, stamp))
        .collect();
    redis::cmd("DEL")
        .arg(&staged)
        .arg(&staged_distinct)
        .query_async::<()>(conn)
        .await?;
    let field = format!("{STAMP_FIELD_PREFIX}{name}");
    let stage = redis::Script::new(&format!("{}{STAGE}", include_str!("leaderboards/rank.lua")));
    for chunk in scores.chunks(CHUNK) {
        let mut invocation = stage.prepare_invoke();
        invocation.key(&staged).key(&staged_distinct);
        invocation.arg(&field);
        for (player, score) in chunk {
            let stamp = achieved
                .get(player)
                .and_then(|text| stamp_of.get(text.as_str()))
                .with_context(|| format!("{board}: {player} has no rank stamp"))?;
            let mut member = stamp.to_be_bytes().to_vec();
            member.extend_from_slice(player.as_bytes());
            invocation
                .key(format!("{base}:stats:{}", encode_segment(player)))
                .arg(member)
                .arg(score);
        }
        invocation.invoke_async::<i64>(conn).await?;
    }
    let switch_script = redis::Script::new(SWITCH);
    let mut switch = switch_script.prepare_invoke();
    for suffix in ["", ":order", ":at", ":distinct"] {
        switch.key(format!("{board}{suffix}"));
    }
    switch
        .key(&staged)
        .key(&staged_distinct)
        .key(format!("{base}:sequence"))
        .arg(stamp_of.len());
    switch.invoke_async::<i64>(conn).await?;
    Ok(scores.len())
}

/// A layout-1 board: player → score as Redis writes it (exact text).
async fn read_all_scores(conn: &mut Connection, board: &str) -> Result<Vec<(String, String)>> {
    let mut scores = Vec::new();
    loop {
        let start = scores.len();
        let chunk: Vec<(String, String)> = redis::cmd("ZRANGE")
            .arg(board)
            .arg(start)
            .arg(start + CHUNK - 1)
            .arg("WITHSCORES")
            .query_async(conn)
            .await?;
        let done = chunk.len() < CHUNK;
        scores.extend(chunk);
        if done {
            return Ok(scores);
        }
    }
}

async fn read_hash(conn: &mut Connection, key: &str) -> Result<HashMap<String, String>> {
    let mut fields = HashMap::new();
    let mut cursor: u64 = 0;
    loop {
        let (next, found): (u64, Vec<(String, String)>) = redis::cmd("HSCAN")
            .arg(key)
            .arg(cursor)
            .arg("COUNT")
            .arg(CHUNK)
            .query_async(conn)
            .await?;
        fields.extend(found);
        if next == 0 {
            return Ok(fields);
        }
        cursor = next;
    }
}
