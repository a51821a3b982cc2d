//! Per-game statistics handlers: the extension point for stats written in code. The rules a
//! games file declares ([`super::rules::RuleSet`]) implement it too.

use crate::core::effects::Changes;
use crate::core::event::{GameEvent, Rejection};
use crate::core::registry::Registry;

/// Stats logic of one game. Must be deterministic, like scoring.
pub trait StatsHandler: Send + Sync {
    /// Adds the stat changes `event` causes, or rejects the event as unusable.
    fn record(&self, event: &GameEvent, changes: &mut Changes) -> Result<(), Rejection>;
}

/// Stats handlers by product.
pub type StatsRegistry = Registry<dyn StatsHandler>;
