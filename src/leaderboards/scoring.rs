//! Per-game scoring: how an event moves players on a product's leaderboards.
//!
//! [`ScoringHandler`] is the extension point for scoring written in code; the boards a games
//! file declares ([`super::boards::BoardSet`]) implement it too.

use crate::core::effects::Changes;
use crate::core::event::{GameEvent, ReasonKind, Rejection};
use crate::core::ids::PlayerId;
use crate::core::registry::Registry;

use super::ratings::Rating;

/// Name of the default board: wins per player.
pub const WINS_BOARD: &str = "wins";

/// Rating states known to the worker, per board and player. `None` means never rated.
pub trait RatingBook {
    fn get(&self, board: &str, player: &PlayerId) -> Option<Rating>;
    fn set(&mut self, board: &str, player: &PlayerId, rating: Rating);
}

/// Players' current all-time scores on the boards whose validation compares a value with
/// them (see [`ScoringHandler::scored_players`]), known to the worker. `None`: not on the
/// board.
pub trait ScoreBook {
    fn get(&self, board: &str, player: &PlayerId) -> Option<f64>;
    fn set(&mut self, board: &str, player: &PlayerId, score: f64);
}

/// A board that could not use an event another board used; becomes a dead letter naming the
/// board, while the event's other effects still apply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BoardRejection {
    pub board: String,
    /// The reason's kind, for metrics.
    pub kind: ReasonKind,
    pub reason: String,
}

/// What a scoring handler works with for one event.
pub struct ScoreContext<'a> {
    /// The event's stream id.
    pub id: &'a str,
    /// The event's time: the millisecond part of its stream id.
    pub at_ms: u64,
    pub ratings: &'a mut dyn RatingBook,
    pub scores: &'a mut dyn ScoreBook,
    pub changes: &'a mut Changes,
    pub rejections: &'a mut Vec<BoardRejection>,
}

/// Scoring logic of one game. Implementations must be deterministic: the same events in the
/// same order always give the same changes (replays and restarts rely on it).
pub trait ScoringHandler: Send + Sync {
    /// Boards whose rating states `score` reads: the worker loads the players' states of
    /// these boards before calling `score`.
    fn rating_boards(&self) -> Vec<String> {
        Vec::new()
    }

    /// The boards and players whose current scores `score` reads for `event`: the worker
    /// loads them before calling `score`.
    fn scored_players(&self, _event: &GameEvent) -> Vec<(String, PlayerId)> {
        Vec::new()
    }

    /// Adds the board changes `event` causes, or rejects the whole event as unusable.
    fn score(&self, event: &GameEvent, context: &mut ScoreContext<'_>) -> Result<(), Rejection>;

    /// Adds the board changes that follow from the stats `changes` (of an event at `at_ms`)
    /// write: rows of boards with stat columns. Called after the stats handlers.
    fn score_stats(&self, _at_ms: u64, _changes: &mut crate::core::effects::Changes) {}
}

/// Scoring of products the games file does not list, when unknown products are rejected.
pub struct RejectUnknown;

impl ScoringHandler for RejectUnknown {
    fn score(&self, event: &GameEvent, _: &mut ScoreContext<'_>) -> Result<(), Rejection> {
        Err(Rejection::UnknownProduct(event.product.to_string()))
    }
}

/// Scoring handlers by product.
pub type ScoringRegistry = Registry<dyn ScoringHandler>;
