//! Per-game statistics: which counters an event moves.

use std::sync::Arc;

use crate::core::effects::Changes;
use crate::core::event::{EventKind, GameEvent, Rejection};
use crate::core::ids::ProductId;
use crate::core::registry::Registry;

/// Stats logic of one game. Must be deterministic, like scoring.
pub trait StatsHandler: Send + Sync {
    /// Adds the stat changes `event` causes, or rejects the event as unusable.
    fn record(&self, event: &GameEvent, changes: &mut Changes) -> Result<(), Rejection>;
}

/// `games`, `wins`, `losses` from `game_over`: what every product gets.
pub struct MatchResults;

impl StatsHandler for MatchResults {
    fn record(&self, event: &GameEvent, changes: &mut Changes) -> Result<(), Rejection> {
        if let EventKind::GameOver { winner, loser } = &event.kind {
            changes.add_stat(winner, "games", 1);
            changes.add_stat(winner, "wins", 1);
            changes.add_stat(loser, "games", 1);
            changes.add_stat(loser, "losses", 1);
        }
        Ok(())
    }
}

/// exrps (rock-paper-scissors fighting game): the match results plus weapon choices.
pub struct Exrps;

impl Exrps {
    pub const PRODUCT: &'static str = "exrps";

    /// The stat a `select_weapon` value counts towards.
    ///
    /// `null` (no weapon chosen in time) is a botch; so is an out-of-range index, which the
    /// game server passes through unchanged and the game scores as a miss.
    fn weapon_stat(event_data: &str) -> Result<&'static str, Rejection> {
        match event_data {
            "0" => Ok("rock_selection_count"),
            "1" => Ok("paper_selection_count"),
            "2" => Ok("scissors_selection_count"),
            "null" => Ok("botch_selection_count"),
            other if other.parse::<i64>().is_ok() => Ok("botch_selection_count"),
            other => Err(Rejection::InvalidValue {
                field: "event_data",
                value: other.chars().take(64).collect(),
                expected: "a weapon index (0 rock, 1 paper, 2 scissors) or null",
            }),
        }
    }
}

impl StatsHandler for Exrps {
    fn record(&self, event: &GameEvent, changes: &mut Changes) -> Result<(), Rejection> {
        MatchResults.record(event, changes)?;
        if let EventKind::Gameplay(gameplay) = &event.kind
            && gameplay.event_name == "select_weapon"
        {
            let player = gameplay.player("user_id")?;
            let stat = Self::weapon_stat(gameplay.required("event_data")?)?;
            changes.add_stat(&player, stat, 1);
        }
        Ok(())
    }
}

/// Stats handlers by product.
pub type StatsRegistry = Registry<dyn StatsHandler>;

/// The built-in registry: [`MatchResults`] for every product, [`Exrps`] for exrps.
pub fn default_registry() -> StatsRegistry {
    let mut registry: StatsRegistry = Registry::new(Arc::new(MatchResults));
    if let Ok(exrps) = ProductId::parse(Exrps::PRODUCT) {
        registry.register(exrps, Arc::new(Exrps));
    }
    registry
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::effects::Change;
    use crate::core::ids::PlayerId;

    fn weapon_event(data: &str) -> GameEvent {
        let fields: crate::core::event::Fields = [
            ("product_id", "exrps"),
            ("game_id", "g"),
            ("type", "gameplay"),
            ("event_name", "select_weapon"),
            ("event_data", data),
            ("user_id", "A"),
        ]
        .iter()
        .map(|(k, v)| (k.as_bytes().to_vec(), v.as_bytes().to_vec()))
        .collect();
        GameEvent::parse(&fields).unwrap()
    }

    fn recorded(data: &str) -> Result<Vec<Change>, Rejection> {
        let mut changes = Changes::default();
        Exrps.record(&weapon_event(data), &mut changes)?;
        Ok(changes.as_slice().to_vec())
    }

    #[test]
    fn weapons_map_to_their_counters() {
        let a = PlayerId::parse("A").unwrap();
        for (data, stat) in [
            ("0", "rock_selection_count"),
            ("1", "paper_selection_count"),
            ("2", "scissors_selection_count"),
            ("null", "botch_selection_count"),
            ("5", "botch_selection_count"),
        ] {
            assert_eq!(
                recorded(data).unwrap(),
                vec![Change::AddStat {
                    player: a.clone(),
                    stat: stat.into(),
                    delta: 1
                }]
            );
        }
    }

    #[test]
    fn garbage_weapon_is_rejected() {
        assert!(
            recorded("rock")
                .unwrap_err()
                .to_string()
                .contains("event_data")
        );
    }

    #[test]
    fn other_products_ignore_weapons() {
        let mut changes = Changes::default();
        MatchResults
            .record(&weapon_event("garbage"), &mut changes)
            .unwrap();
        assert!(changes.is_empty());
    }
}
