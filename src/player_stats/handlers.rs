//! Per-game statistics handlers: the extension point for stats written in code. The rules a
//! games file declares ([`super::rules::RuleSet`]) implement it too.

use std::sync::Arc;

use crate::core::effects::Changes;
use crate::core::event::{GameEvent, Rejection};
use crate::core::registry::Registry;

use super::rules::{RuleSet, StatRule};

/// Stats logic of one game. Must be deterministic, like scoring.
pub trait StatsHandler: Send + Sync {
    /// Adds the stat changes `event` causes, or rejects the event as unusable.
    fn record(&self, event: &GameEvent, changes: &mut Changes) -> Result<(), Rejection>;
}

/// Stats handlers by product.
pub type StatsRegistry = Registry<dyn StatsHandler>;

/// Every product counts `games`, `wins`, `losses` (and `draws`).
pub fn default_registry() -> StatsRegistry {
    Registry::new(Arc::new(RuleSet::new(vec![StatRule::MatchResults])))
}
