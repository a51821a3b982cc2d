//! Per-game scoring: how an event moves players on a product's leaderboards.

use std::sync::Arc;

use crate::core::effects::Changes;
use crate::core::event::{EventKind, GameEvent, Rejection};
use crate::core::registry::Registry;

/// Name of the default board: wins per player.
pub const WINS_BOARD: &str = "wins";

/// Scoring logic of one game. Implementations must be deterministic: the same events in the
/// same order always give the same changes (replays and restarts rely on it).
pub trait ScoringHandler: Send + Sync {
    /// Adds the board changes `event` causes, or rejects the event as unusable.
    fn score(&self, event: &GameEvent, changes: &mut Changes) -> Result<(), Rejection>;
}

/// The default: the `wins` board, winner +1 per `game_over`; the loser appears with their
/// current score (0 if new).
pub struct WinCount;

impl ScoringHandler for WinCount {
    fn score(&self, event: &GameEvent, changes: &mut Changes) -> Result<(), Rejection> {
        if let EventKind::GameOver { winner, loser } = &event.kind {
            changes.add_score(WINS_BOARD, winner, 1.0);
            changes.ensure_on_board(WINS_BOARD, loser);
        }
        Ok(())
    }
}

/// Scoring handlers by product.
pub type ScoringRegistry = Registry<dyn ScoringHandler>;

/// The built-in registry: every product scores with [`WinCount`].
pub fn default_registry() -> ScoringRegistry {
    Registry::new(Arc::new(WinCount))
}
