//! The effect model: what applying one event changes in the store, as plain data.
//!
//! Scoring and stats handlers describe their changes through [`Changes`]; they never talk
//! to Redis. The worker turns the collected [`Change`]s of an event into operations of one
//! atomic script call (see `workers::commit`), which is what makes a board change and its
//! stats change land together or not at all.

use super::ids::PlayerId;

/// How a new value combines with the stored one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Aggregate {
    /// Add to it.
    Sum,
    /// Keep the larger.
    Max,
    /// Keep the smaller.
    Min,
    /// Replace it.
    Last,
}

impl Aggregate {
    /// The stored value after `value` is combined with `current` (`None`: nothing stored).
    pub fn combine(self, current: Option<f64>, value: f64) -> f64 {
        match (self, current) {
            (_, None) | (Aggregate::Last, _) => value,
            (Aggregate::Sum, Some(current)) => current + value,
            (Aggregate::Max, Some(current)) => current.max(value),
            (Aggregate::Min, Some(current)) => current.min(value),
        }
    }
}

/// Which period board a score change goes to, besides the all-time board.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeriodTarget {
    /// `window:label`, e.g. `daily:2026-11-25` (see `leaderboards::windows`).
    pub key_suffix: String,
    /// When the period board expires (Unix seconds); `None`: never (a season kept for good).
    pub expires_at_s: Option<u64>,
    /// The previous period's `key_suffix`, for a board with a feed (which announces its close
    /// when this one begins); `None` otherwise.
    pub previous_suffix: Option<String>,
}

/// One column's part of a row update on a board with several score columns.
#[derive(Debug, Clone, PartialEq)]
pub struct ColumnUpdate {
    pub how: Aggregate,
    /// Lower values rank first.
    pub ascending: bool,
    pub value: ColumnValue,
}

/// What an event brings one column.
#[derive(Debug, Clone, PartialEq)]
pub enum ColumnValue {
    /// Nothing: the column keeps its value.
    Keep,
    /// A value, combined by the column's `how`.
    Given(f64),
    /// The player's stat of this name as the event's stats changes leave it (read when the
    /// change is written, after them).
    Stat(String),
}

/// One change to a product's data.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// Combine `value` into the player's score on `board` (adding them if absent).
    Score {
        board: String,
        /// `None`: the all-time board.
        period: Option<PeriodTarget>,
        player: PlayerId,
        how: Aggregate,
        value: f64,
        /// The top the board's feed follows (0: none; see `Board::feed_top`).
        feed_top: u32,
    },
    /// Put the player on `board` with score 0 unless they are already there.
    EnsureOnBoard {
        board: String,
        period: Option<PeriodTarget>,
        player: PlayerId,
        feed_top: u32,
    },
    /// Update the player's row on `board`, a board with several score columns (adding them if
    /// absent): every column in order, each with the value this event brings it, if any.
    ScoreColumns {
        board: String,
        period: Option<PeriodTarget>,
        player: PlayerId,
        columns: Vec<ColumnUpdate>,
    },
    /// Append an entry of `kind` to the product's change feed (a rating change).
    Feed {
        kind: &'static str,
        fields: Vec<(&'static str, String)>,
    },
    /// Add `delta` to one of the player's integer stats (exact, unlike [`Change::Stat`]).
    Count {
        player: PlayerId,
        stat: String,
        delta: i64,
    },
    /// Combine `value` into one of the player's numeric stats.
    Stat {
        player: PlayerId,
        stat: String,
        how: Aggregate,
        value: f64,
    },
    /// A won match: `current` + 1, and `best` raised to it.
    StreakWon {
        player: PlayerId,
        current: String,
        best: String,
    },
    /// A match not won: `current` back to 0.
    StreakBroken { player: PlayerId, current: String },
    /// Store the player's full rating state on a rating board.
    Rating {
        board: String,
        player: PlayerId,
        fields: Vec<(&'static str, String)>,
    },
    /// Prepend an entry to the player's rating history, keeping the newest `limit`.
    History {
        board: String,
        player: PlayerId,
        entry: String,
        limit: usize,
    },
    /// Set the player's public profile fields (`name`, `meta`), each only when given.
    Profile {
        player: PlayerId,
        fields: Vec<(&'static str, String)>,
    },
}

impl Change {
    /// The player's stats this change writes.
    pub fn stats_written(&self) -> Vec<(&PlayerId, &str)> {
        match self {
            Change::Count { player, stat, .. } | Change::Stat { player, stat, .. } => {
                vec![(player, stat)]
            }
            Change::StreakWon {
                player,
                current,
                best,
            } => vec![(player, current), (player, best)],
            Change::StreakBroken { player, current } => vec![(player, current)],
            _ => Vec::new(),
        }
    }
}

/// The changes one event causes, gathered from every handler that looked at it.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Changes {
    changes: Vec<Change>,
}

impl Changes {
    pub fn push(&mut self, change: Change) {
        self.changes.push(change);
    }

    pub fn add_stat(&mut self, player: &PlayerId, stat: &str, delta: i64) {
        self.push(Change::Count {
            player: player.clone(),
            stat: stat.to_owned(),
            delta,
        });
    }

    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }

    pub fn as_slice(&self) -> &[Change] {
        &self.changes
    }

    /// Puts the row updates of boards with several columns after every other change (in their
    /// order), so that those reading stats read them as this event leaves them.
    pub fn columns_last(&mut self) {
        let is_row = |change: &Change| matches!(change, Change::ScoreColumns { .. });
        // Most events have none: nothing to move, nothing to allocate.
        if !self.changes.iter().any(is_row) {
            return;
        }
        let (columns, others): (Vec<Change>, Vec<Change>) = std::mem::take(&mut self.changes)
            .into_iter()
            .partition(|change| is_row(change));
        self.changes = others;
        self.changes.extend(columns);
    }
}
