//! The effect model: what applying one event changes in the store, as plain data.
//!
//! Scoring and stats handlers describe their changes through [`Changes`]; they never talk
//! to Redis. The worker turns the collected [`Change`]s into one atomic script call per
//! product (see `workers::commit`), which is what makes a board change and its stats change
//! land together or not at all.

use super::ids::PlayerId;

/// One change to a product's data.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// Add `delta` to the player's score on `board` (adding them if absent).
    AddScore {
        board: String,
        player: PlayerId,
        delta: f64,
    },
    /// Put the player on `board` with score 0 unless they are already there.
    EnsureOnBoard { board: String, player: PlayerId },
    /// Add `delta` to one of the player's integer stats.
    AddStat {
        player: PlayerId,
        stat: String,
        delta: i64,
    },
}

/// The changes one event causes, gathered from every handler that looked at it.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Changes {
    changes: Vec<Change>,
}

impl Changes {
    pub fn add_score(&mut self, board: &str, player: &PlayerId, delta: f64) {
        self.changes.push(Change::AddScore {
            board: board.to_owned(),
            player: player.clone(),
            delta,
        });
    }

    pub fn ensure_on_board(&mut self, board: &str, player: &PlayerId) {
        self.changes.push(Change::EnsureOnBoard {
            board: board.to_owned(),
            player: player.clone(),
        });
    }

    pub fn add_stat(&mut self, player: &PlayerId, stat: &str, delta: i64) {
        self.changes.push(Change::AddStat {
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
}
