//! The Redis key layout: every key name the tracker reads or writes is built here.
//!
//! Store keys (all under the configurable prefix `P`):
//!
//! | key | type | holds |
//! |---|---|---|
//! | `P:{<product>}:board:<board>` | sorted set | the board in rank order: member `<stamp><player>`, score the negated board score (all time) |
//! | `P:{<product>}:board:<board>@<window>:<period>` | sorted set | the same for one period (`@daily:2026-11-25`, `@season:s1`); expires |
//! | `P:{<product>}:hidden:<board>[@<window>:<period>]` | sorted set | the board's hidden players (moderation), as on the board |
//! | `<board key>:distinct` | sorted set | the distinct scores on the board (member: the score as text, scored like the board), for dense ranks |
//! | `P:{<product>}:stats:<player>` | hash | stat name → number; and `~<board>[@<window>:<period>]` → the player's `<stamp>` on that board |
//! | `P:{<product>}:profile:<player>` | hash | the player's public profile: `name`, `meta` (JSON text) |
//! | `P:{<product>}:sequence` | string | the last `<stamp>` given out: entries that changed a score, counted |
//! | `P:{<product>}:rating:<board>:<player>` | hash | rating state (rating, deviation, volatility, matches; rated_at_ms with inactivity decay; period, period_start, period_results with Glicko-2 rating periods) |
//! | `P:{<product>}:history:<board>:<player>` | list | rating history, newest first, JSON entries |
//! | `P:{<product>}:applied` | string | id of the last stream entry applied to this product |
//! | `P:{<product>}:fence` | string | highest worker lease epoch that wrote this product |
//! | `P:{<product>}:generation` | string | bumped by admin deletions and resets |
//! | `P:{<product>}:redriven` | set | stream ids of original events whose re-driven copy this product applied |
//! | `P:{<product>}:events` | list | the product's history: chunks of applied entries, oldest first (see `crate::history`) |
//! | `P:{<product>}:events:kept`, `…:dropped`, `…:gap`, `…:exported` | string | entries in it; chunks taken off its head; up to where applied entries are missing; up to where it went to segment files |
//! | `P:{<product>}:feed` | stream | the change feed: rank moves, personal bests, rating changes, closed periods |
//! | `P:{<product>}:feed:closed:<board>@<period>` | string | a period whose close the feed announced |
//! | `P:{<product>}:hidden` | hash | players hidden from the product's boards → JSON (who, when, why) |
//! | `P:{<product>}:audit` | stream | the moderation audit trail |
//! | `P:{<product>}:voids`, `…:erased` | hash | voided matches and entries; erased players' pseudonyms by a hash of the id |
//! | `P:{<product>}:rebuild:lock`, `…:hold`, `…:state`, `…:wanted` | string / hash | a rebuild's lock, its switch's hold, its shadow's origin, a rebuild asked for |
//! | `P:{<product>}:~rebuild:…`, `P:{<product>}:~asof:<token>:…` | (copies) | a rebuild's shadow; a scratch copy for a board `as_of` a past moment |
//! | `P:rebuilds` | set | products with a rebuild asked for |
//! | `P:{~dead_letters}:stream` | stream | events the worker could not use, with the reason; trimmed by count and age |
//! | `P:{~dead_letters}:applied`, `…:fence` | string | as for products (with several stream partitions, one each: `applied:<n>`, `fence:<n>`) |
//! | `P:{~dead_letters}:redriven` | set | ids of re-driven dead letters that were dead-lettered again |
//! | `P:products` | set | product ids seen by the worker |
//! | `P:layout` | string | the store's layout version ([`LAYOUT_VERSION`]) |
//!
//! Every key of one product shares the `{<product>}` hash tag, so they live in one Redis
//! Cluster slot and one Lua script can update them atomically. Ids are percent-encoded inside
//! key names (everything but ASCII letters, digits, `_`, `-` and `.`), so an id containing
//! `{`, `}`, `:` or spaces can neither end the hash tag early nor collide with another key.
//! `~` is always encoded, so `{~dead_letters}` can never be a product's tag.
//!
//! Stream-side keys live next to the event stream (possibly another server) and share the
//! stream's own hash slot: `{<stream>}:<group>:lease` and `{<stream>}:<group>:lease_epoch`
//! (the worker lease), and `{<stream>}:<group>:acked` (hash: partition → the applied position
//! the store held when its last batch was acknowledged, so a store that lost acknowledged
//! writes is noticed and re-derived from the stream), `{<stream>}:<group>:counts` (entries
//! acknowledged, and entries deleted or trimmed before they were read, for the lost count).
//! `stats-tracker relay` keeps `{<stream.name>}:relay:cursor` beside the single stream and
//! `{<partition>}:relayed` beside each partition stream ([`RelayKeys`]).

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

use super::ids::{PlayerId, ProductId};

/// Bytes that stay readable in key names; everything else is `%XX`.
const KEY_SEGMENT: &AsciiSet = &NON_ALPHANUMERIC.remove(b'_').remove(b'-').remove(b'.');

/// Encodes an id for use inside a key name (injective, and free of `{`, `}`, `:`).
pub fn encode_segment(raw: &str) -> String {
    utf8_percent_encode(raw, KEY_SEGMENT).to_string()
}

/// Why a key prefix is refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("key prefix {0:?} must be 1-64 characters of ASCII letters, digits, '_', '-', '.' or ':'")]
pub struct InvalidPrefix(pub String);

/// Builds store key names under one namespace prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeySpace {
    prefix: String,
}

/// The keys of one atomic unit of the store (a product, or the dead-letter stream).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionKeys {
    /// `P:{tag}`, the common beginning of all this partition's keys.
    base: String,
    /// After the names of the position keys (`applied`, `fence`): `:<n>` for the dead letters
    /// written from stream partition `n` when there are several, else empty.
    position_suffix: String,
}

impl PartitionKeys {
    pub fn applied(&self) -> String {
        format!("{}:applied{}", self.base, self.position_suffix)
    }
    pub fn fence(&self) -> String {
        format!("{}:fence{}", self.base, self.position_suffix)
    }
    /// Bumped by admin changes (deletions, resets): tells the worker its view is stale.
    pub fn generation(&self) -> String {
        format!("{}:generation", self.base)
    }
    /// The last stamp given out (see [`BoardKeys`]).
    pub fn sequence(&self) -> String {
        format!("{}:sequence", self.base)
    }
    pub fn board(&self, board: &str) -> String {
        format!("{}:board:{}", self.base, encode_segment(board))
    }
    /// The keys of one board: all-time (`period` `None`) or one period (`daily:2026-11-25`).
    pub fn board_keys(&self, board: &str, period: Option<&str>) -> BoardKeys {
        let name = match period {
            None => encode_segment(board),
            Some(suffix) => format!("{}@{suffix}", encode_segment(board)),
        };
        let board = format!("{}:board:{name}", self.base);
        BoardKeys {
            distinct: format!("{board}{DISTINCT_SUFFIX}"),
            hidden: format!("{}{HIDDEN_BOARD_INFIX}{name}", self.base),
            board,
            stamp_field: format!("{STAMP_FIELD_PREFIX}{name}"),
            stats_prefix: self.stats_prefix(),
            columns: Columns::default(),
        }
    }
    /// A glob matching the period boards of `board` (and their index keys).
    pub fn board_periods_glob(&self, board: &str) -> String {
        format!("{}@*", escape_glob(&self.board(board)))
    }
    /// The hidden copy of `board` (all-time; see [`BoardKeys::hidden`]).
    pub fn hidden_board(&self, board: &str) -> String {
        format!("{}{HIDDEN_BOARD_INFIX}{}", self.base, encode_segment(board))
    }
    /// A glob matching the hidden copies of `board`'s periods.
    pub fn hidden_board_periods_glob(&self, board: &str) -> String {
        format!("{}@*", escape_glob(&self.hidden_board(board)))
    }
    pub fn stats(&self, player: &PlayerId) -> String {
        format!("{}{}", self.stats_prefix(), encode_segment(player.as_str()))
    }
    /// The key prefix of every player's stats hash.
    pub fn stats_prefix(&self) -> String {
        format!("{}:stats:", self.base)
    }
    /// A player's public profile (`name`, `meta`), set by `player_profile` events.
    pub fn profile(&self, player: &PlayerId) -> String {
        format!("{}:profile:{}", self.base, encode_segment(player.as_str()))
    }
    pub fn rating(&self, board: &str, player: &PlayerId) -> String {
        format!(
            "{}{}",
            self.rating_prefix(board),
            encode_segment(player.as_str())
        )
    }
    pub fn history(&self, board: &str, player: &PlayerId) -> String {
        format!(
            "{}{}",
            self.history_prefix(board),
            encode_segment(player.as_str())
        )
    }
    /// The common beginning of every rating state key of `board`.
    pub fn rating_prefix(&self, board: &str) -> String {
        format!("{}:rating:{}:", self.base, encode_segment(board))
    }
    /// The common beginning of every rating history key of `board`.
    pub fn history_prefix(&self, board: &str) -> String {
        format!("{}:history:{}:", self.base, encode_segment(board))
    }
    /// Re-drives this partition has written, each at most once: for a product the original
    /// stream ids of the re-driven events it applied, for the dead letters the ids of the
    /// re-driven letters it wrote again.
    pub fn redriven(&self) -> String {
        format!("{}:redriven", self.base)
    }
    /// The product's event history (see `crate::history`): a list of chunks, oldest first,
    /// each `<first id> <last id> <count>\n` then a zstd frame of JSON lines.
    pub fn events(&self) -> String {
        format!("{}:events", self.base)
    }
    /// Entries in [`PartitionKeys::events`].
    pub fn events_kept(&self) -> String {
        format!("{}:events:kept", self.base)
    }
    /// Chunks ever taken off the head of [`PartitionKeys::events`] (trimmed or exported): a
    /// reader's position in the list stays valid while chunks go.
    pub fn events_dropped(&self) -> String {
        format!("{}:events:dropped", self.base)
    }
    /// The id up to which applied entries are missing from the history (applied before
    /// history was kept, or trimmed by retention); absent while the history is complete.
    pub fn events_gap(&self) -> String {
        format!("{}:events:gap", self.base)
    }
    /// The id up to which the history was exported to segment files and taken out of Redis.
    pub fn events_exported(&self) -> String {
        format!("{}:events:exported", self.base)
    }
    /// Voided matches and entries: `game:<id>` or `entry:<id>` → JSON (who, when, why).
    pub fn voids(&self) -> String {
        format!("{}:voids", self.base)
    }
    /// Players hidden from the product's boards by moderation: player id → JSON (who, when,
    /// why). The live product's, also for its copies (a rebuild's shadow, an `as_of` copy),
    /// which hide the same players.
    pub fn hidden(&self) -> String {
        format!("{}:hidden", self.owner())
    }
    /// The base of the partition these keys copy (its own for the live partition).
    fn owner(&self) -> &str {
        match self.base.find('}') {
            Some(end) => &self.base[..=end],
            None => &self.base,
        }
    }
    /// Whether these are a copy's keys (a rebuild's shadow, an `as_of` copy).
    pub fn is_copy(&self) -> bool {
        self.owner() != self.base
    }
    /// The product's change feed: a stream of board and rating events (entered the top,
    /// overtaken, personal best, rating changed), each written with the effect that caused it.
    pub fn feed(&self) -> String {
        format!("{}:feed", self.base)
    }
    /// The moderation audit trail: a stream of hide and un-hide actions (who, what, when, why).
    pub fn audit(&self) -> String {
        format!("{}:audit", self.base)
    }
    /// Erased players: SHA-256 of the id (hex) → the pseudonym that replaced it in history.
    pub fn erased(&self) -> String {
        format!("{}:erased", self.base)
    }
    /// The rebuild lock: the running rebuild's token, kept alive while it runs.
    pub fn rebuild_lock(&self) -> String {
        format!("{}:rebuild:lock", self.base)
    }
    /// A rebuild asked for (by a void or its undoing): the generation it was asked at.
    pub fn rebuild_wanted(&self) -> String {
        format!("{}:rebuild:wanted", self.base)
    }
    /// Set while a rebuild switches the product to its rebuilt copy (with an expiry): the
    /// worker's commits of the product wait.
    pub fn rebuild_hold(&self) -> String {
        format!("{}:rebuild:hold", self.base)
    }
    /// What the shadow of a running rebuild was started from (games file, boards, generation).
    pub fn rebuild_state(&self) -> String {
        format!("{}:rebuild:state", self.base)
    }
    /// The shadow copy a rebuild writes: the same keys under `P:{<product>}:~rebuild`, in the
    /// product's hash slot, apart from every live key.
    pub fn shadow(&self) -> PartitionKeys {
        self.copy(SHADOW_SUFFIX)
    }
    /// A copy of the partition's keys under `<base><suffix>` (same hash slot): a rebuild's
    /// shadow ([`SHADOW_SUFFIX`]), a board computed as of a past moment ([`AS_OF_SUFFIX`]…).
    pub fn copy(&self, suffix: &str) -> PartitionKeys {
        PartitionKeys {
            base: format!("{}{suffix}", self.base),
            position_suffix: self.position_suffix.clone(),
        }
    }
    /// The common beginning of every key of this partition.
    pub fn base(&self) -> &str {
        &self.base
    }
    /// The dead-letter stream (only meaningful on [`KeySpace::dead_letters`]).
    pub fn stream(&self) -> String {
        format!("{}:stream", self.base)
    }
}

/// The store layout this release reads and writes; `stats-tracker migrate` converts older
/// ones. 1: boards as `player → score` with a byte-ordered rank index beside them; 2: boards
/// in rank order themselves (members `<stamp><player>`, negated scores).
pub const LAYOUT_VERSION: u32 = 2;

/// What a product's base is followed by in the keys of a rebuild's shadow copy.
pub const SHADOW_SUFFIX: &str = ":~rebuild";

/// What a product's base is followed by (then a process's token) in the keys of a copy
/// computed to read a board as of a past moment.
pub const AS_OF_SUFFIX: &str = ":~asof:";

/// What follows a product's base in the keys of its boards' hidden players (then the
/// board's name and period, as in the board's own key after `:board:`).
pub const HIDDEN_BOARD_INFIX: &str = ":hidden:";

/// What a board key is followed by in the name of its distinct scores.
pub const DISTINCT_SUFFIX: &str = ":distinct";

/// How the stamp fields in players' stats hashes begin; no stat name may (the games file
/// refuses them).
pub const STAMP_FIELD_PREFIX: &str = "~";

/// Whether `key` is a board's set of distinct scores rather than a board.
pub fn is_distinct_key(key: &str) -> bool {
    key.ends_with(DISTINCT_SUFFIX)
}

/// The keys of one board (all-time or one period).
///
/// The board is one sorted set in rank order: member `<stamp><player>`, score the negated
/// board score, so that ascending order is best score first and, among equal scores, the
/// earlier achiever first (`<stamp>`: 8 bytes, big-endian, the product's count of entries
/// that changed a score when this one did; see `leaderboards::rank`). A player's stamp is
/// kept in their stats hash under [`BoardKeys::stamp_field`], which finds their member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BoardKeys {
    /// The board itself.
    pub board: String,
    /// The distinct scores on the board, for dense ranks.
    pub distinct: String,
    /// The board's hidden players (moderation), kept like the board (same members and
    /// scores) but off it, so they rank nowhere and return to their place when un-hidden.
    pub hidden: String,
    /// The stats hash field holding a player's stamp on this board.
    pub stamp_field: String,
    stats_prefix: String,
    /// The board's score columns, if it has several (readers decode members by them).
    pub columns: Columns,
}

/// The score columns of a board with several (empty for a one-score board): each column's name
/// and whether lower values rank first. The first column is the sorted set's score, each
/// other one 8 bytes at the start of members, before the stamp (see `leaderboards::rank`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Columns(pub Vec<(String, bool)>);

impl Columns {
    /// Bytes of the columns after the first at the start of each member.
    pub fn tail_bytes(&self) -> usize {
        8 * self.0.len().saturating_sub(1)
    }

    /// Whether the (first) score ranks lower values first.
    pub fn first_ascending(&self) -> bool {
        self.0.first().is_some_and(|(_, ascending)| *ascending)
    }
}

impl BoardKeys {
    /// The same board in the copy of its product whose keys begin with `to` instead of
    /// `from` (see [`PartitionKeys::copy`]).
    pub fn rebased(&self, from: &str, to: &str) -> BoardKeys {
        let rebase = |key: &str| match key.strip_prefix(from) {
            Some(rest) => format!("{to}{rest}"),
            None => key.to_owned(),
        };
        BoardKeys {
            board: rebase(&self.board),
            distinct: rebase(&self.distinct),
            hidden: rebase(&self.hidden),
            stamp_field: self.stamp_field.clone(),
            stats_prefix: rebase(&self.stats_prefix),
            columns: self.columns.clone(),
        }
    }

    /// The key holding `player`'s stamp on this board (their stats hash).
    pub fn stamps_of(&self, player: &str) -> String {
        format!("{}{}", self.stats_prefix, encode_segment(player))
    }
}

/// Escapes Redis glob metacharacters so a key prefix matches only itself.
pub fn escape_glob(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}

impl KeySpace {
    pub fn new(prefix: &str) -> Result<Self, InvalidPrefix> {
        let valid = !prefix.is_empty()
            && prefix.len() <= 64
            && prefix
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_-.:".contains(&b));
        if !valid {
            return Err(InvalidPrefix(prefix.to_owned()));
        }
        Ok(Self {
            prefix: prefix.to_owned(),
        })
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    pub fn product(&self, product: &ProductId) -> PartitionKeys {
        PartitionKeys {
            base: format!("{}:{{{}}}", self.prefix, encode_segment(product.as_str())),
            position_suffix: String::new(),
        }
    }

    /// The dead letters: their stream, and the position of the letters written from the
    /// single event stream.
    pub fn dead_letters(&self) -> PartitionKeys {
        PartitionKeys {
            base: format!("{}:{{~dead_letters}}", self.prefix),
            position_suffix: String::new(),
        }
    }

    /// The dead letters as written from stream partition `index` of `partitions`: the one
    /// dead-letter stream, with a position (`applied`, `fence`) per partition when there are
    /// several, since each partition's worker writes letters independently.
    pub fn dead_letters_of(&self, partitions: u32, index: u32) -> PartitionKeys {
        PartitionKeys {
            position_suffix: if partitions > 1 {
                format!(":{index}")
            } else {
                String::new()
            },
            ..self.dead_letters()
        }
    }

    /// Set of every product id the worker has seen (raw ids as members).
    pub fn products(&self) -> String {
        format!("{}:products", self.prefix)
    }

    /// Set of products with a rebuild asked for (each with its `rebuild:wanted`).
    pub fn rebuilds(&self) -> String {
        format!("{}:rebuilds", self.prefix)
    }

    /// The store's layout version.
    pub fn layout(&self) -> String {
        format!("{}:layout", self.prefix)
    }
}

/// Keys of the worker pool, beside the (first) event stream in its hash slot: the live
/// workers, and the partition count every process must agree on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolKeys {
    /// Sorted set: consumer name → until when (Redis time, ms) it counts as alive.
    pub workers: String,
    /// String: the stream partition count the pool was started with.
    pub partitions: String,
}

impl PoolKeys {
    /// The pool keys of the streams called `name` read by `group`.
    pub fn new(name: &str, group: &str) -> Self {
        let tag = hash_tag(name);
        let group = encode_segment(group);
        Self {
            workers: format!("{{{tag}}}:{group}:workers"),
            partitions: format!("{{{tag}}}:{group}:partitions"),
        }
    }
}

/// Keys the worker keeps beside the event stream, in the stream's own hash slot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamKeys {
    pub stream: String,
    pub lease: String,
    pub lease_epoch: String,
    /// Per partition, the applied position of the last batch acknowledged (see `acked.lua`).
    pub acked: String,
    /// The group's counts: entries acknowledged, and those accounted as lost (`lost.lua`).
    pub counts: String,
}

impl StreamKeys {
    pub fn new(stream: &str, group: &str) -> Self {
        let tag = hash_tag(stream);
        let group = encode_segment(group);
        Self {
            stream: stream.to_owned(),
            lease: format!("{{{tag}}}:{group}:lease"),
            lease_epoch: format!("{{{tag}}}:{group}:lease_epoch"),
            acked: format!("{{{tag}}}:{group}:acked"),
            counts: format!("{{{tag}}}:{group}:counts"),
        }
    }
}

/// Keys of `stats-tracker relay` (see `crate::relay`), each in the hash slot of the stream it
/// describes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelayKeys;

impl RelayKeys {
    /// String beside the source stream `source`: the id of the last source entry the relay
    /// has moved into the partitions, with every earlier one.
    pub fn cursor(source: &str) -> String {
        format!("{{{}}}:relay:cursor", hash_tag(source))
    }

    /// String beside the partition stream `partition`: the id (in the source stream) of the
    /// last entry relayed into it. `{<partition>}:relayed`; when the stream name carries a
    /// hash tag of its own (every partition in one slot), `<partition>:relayed`, so each
    /// partition still has its own mark.
    pub fn relayed(partition: &str) -> String {
        let tag = hash_tag(partition);
        if tag == partition {
            format!("{{{tag}}}:relayed")
        } else {
            format!("{partition}:relayed")
        }
    }
}

/// The part of a key Redis Cluster hashes: the text between the first `{` and the next `}`
/// when non-empty, else the whole key.
fn hash_tag(key: &str) -> &str {
    if let Some(open) = key.find('{')
        && let Some(len) = key[open + 1..].find('}')
        && len > 0
    {
        return &key[open + 1..open + 1 + len];
    }
    key
}

#[cfg(test)]
mod tests {
    use super::*;

    fn product(raw: &str) -> ProductId {
        ProductId::parse(raw).unwrap()
    }

    #[test]
    fn relay_keys_share_their_stream_slot() {
        use redis::cluster_routing::Slot;
        let slot = |key: &str| Slot::for_key(key.as_bytes());
        for (source, partition) in [
            ("game_event_stream", "game_event_stream:3"),
            ("{events}", "{events}:3"),
        ] {
            let cursor = RelayKeys::cursor(source);
            let mark = RelayKeys::relayed(partition);
            assert_eq!(slot(&cursor), slot(source), "{cursor}");
            assert_eq!(slot(&mark), slot(partition), "{mark}");
        }
        assert_eq!(
            RelayKeys::relayed("game_event_stream:3"),
            "{game_event_stream:3}:relayed"
        );
        assert_eq!(
            RelayKeys::cursor("game_event_stream"),
            "{game_event_stream}:relay:cursor"
        );
        assert_ne!(
            RelayKeys::relayed("{events}:3"),
            RelayKeys::relayed("{events}:4")
        );
    }

    #[test]
    fn product_keys_share_one_hash_tag() {
        let keys = KeySpace::new("st").unwrap().product(&product("exrps"));
        assert_eq!(keys.board("wins"), "st:{exrps}:board:wins");
        assert_eq!(keys.applied(), "st:{exrps}:applied");
        assert_eq!(keys.redriven(), "st:{exrps}:redriven");
        let player = PlayerId::parse("steam:1").unwrap();
        assert_eq!(keys.stats(&player), "st:{exrps}:stats:steam%3A1");
        assert_eq!(hash_tag(&keys.stats(&player)), "exrps");
        // Moderation: one list of hidden players for the product and its copies; hidden
        // copies of boards per copy, named like the boards.
        assert_eq!(keys.hidden(), "st:{exrps}:hidden");
        assert_eq!(keys.shadow().hidden(), "st:{exrps}:hidden");
        assert_eq!(keys.copy(":~asof:t1").hidden(), "st:{exrps}:hidden");
        let daily = keys.shadow().board_keys("wins", Some("daily:2026-12-03"));
        assert_eq!(
            daily.hidden,
            "st:{exrps}:~rebuild:hidden:wins@daily:2026-12-03"
        );
        assert_eq!(
            keys.hidden_board("wins"),
            keys.board_keys("wins", None).hidden
        );
        assert!(!keys.is_copy() && keys.shadow().is_copy());
    }

    #[test]
    fn hostile_ids_cannot_escape_the_tag_or_collide() {
        let space = KeySpace::new("st").unwrap();
        let tricky = space.product(&product("a}b{c:d e~dead_letters"));
        let board = tricky.board("wins");
        assert_eq!(hash_tag(&board), "a%7Db%7Bc%3Ad%20e%7Edead_letters");
        assert_ne!(
            space.product(&product("~dead_letters")).applied(),
            space.dead_letters().applied()
        );
        // Distinct ids give distinct keys even when one looks like another's encoding.
        assert_ne!(
            space.product(&product("a:b")).applied(),
            space.product(&product("a%3Ab")).applied()
        );
        let unicode = PlayerId::parse("игрок:ユーザー✓").unwrap();
        assert!(tricky.stats(&unicode).is_ascii());
    }

    #[test]
    fn prefix_is_validated() {
        assert!(KeySpace::new("stats_tracker:v1").is_ok());
        assert!(KeySpace::new("").is_err());
        assert!(KeySpace::new("a{b}").is_err());
    }

    #[test]
    fn lease_shares_the_stream_slot() {
        let keys = StreamKeys::new("game_event_stream", "stats-tracker");
        assert_eq!(hash_tag(&keys.lease), "game_event_stream");
        assert_eq!(hash_tag(&keys.lease_epoch), "game_event_stream");
        assert_eq!(hash_tag(&keys.acked), "game_event_stream");
        assert_eq!(hash_tag(&keys.counts), "game_event_stream");
        let tagged = StreamKeys::new("{events}.v2", "g");
        assert_eq!(hash_tag(&tagged.lease), hash_tag(&tagged.stream));
    }
}
