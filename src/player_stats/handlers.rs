//! Per-game statistics handlers: the extension point for stats written in code. The rules a
//! games file declares ([`super::rules::RuleSet`]) implement it too.

use crate::core::effects::Changes;
use crate::core::event::{GameEvent, ReasonKind, Rejection};
use crate::core::registry::Registry;

/// A stat that refused an event's value (its validation rules) while the event's other
/// effects still apply; becomes a dead letter naming the stat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatRejection {
    pub stat: String,
    /// The reason's kind, for metrics.
    pub kind: ReasonKind,
    pub reason: String,
}

/// Stats logic of one game. Must be deterministic, like scoring.
pub trait StatsHandler: Send + Sync {
    /// Adds the stat changes `event` causes (and to `refused`, the stats that refuse a value
    /// of it), or rejects the event as unusable.
    fn record(
        &self,
        event: &GameEvent,
        changes: &mut Changes,
        refused: &mut Vec<StatRejection>,
    ) -> Result<(), Rejection>;

    /// Stats that every player who has played has, zero until counted: when a player's stats
    /// hold any of them, reads show the missing ones as 0 (the original service wrote `games`,
    /// `wins` and `losses` on every `game_over`, zeros included). Default: none.
    fn zero_start_stats(&self) -> Vec<String> {
        Vec::new()
    }
}

/// Stats handlers by product.
pub type StatsRegistry = Registry<dyn StatsHandler>;
