//! Stats rules: the per-product statistics a games file declares, instead of code.

use std::collections::BTreeMap;

use crate::core::effects::{Aggregate, Change, Changes};
use crate::core::event::{EventKind, GameEvent, MatchResult, Rejection};
use crate::core::validation::Validation;
use crate::leaderboards::boards::{Condition, matches, number};

use super::handlers::{StatRejection, StatsHandler};

/// One statistics rule.
#[derive(Debug, Clone, PartialEq)]
pub enum StatRule {
    /// `games`, `wins`, `losses`, `draws` from every match outcome.
    MatchResults,
    /// +1 per event matching `when`, for the player in field `player`: into `stat`, or, with
    /// `by`, into the stat `map` names for that field's value (`integer_default` for other
    /// integers, `default` for anything else; without a default the event is rejected).
    Count {
        when: Condition,
        player: String,
        stat: Option<String>,
        by: Option<String>,
        map: BTreeMap<String, String>,
        integer_default: Option<String>,
        default: Option<String>,
    },
    /// A numeric field of events matching `when`, combined into `stat` by `how`.
    Aggregate {
        when: Condition,
        player: String,
        field: String,
        stat: String,
        how: Aggregate,
        /// Values an event may bring (rules that read the current value are refused for
        /// stats when the games file is read).
        validate: Validation,
    },
    /// Current and best run of matches won in a row (a draw or loss ends a run).
    WinStreak { current: String, best: String },
    /// Rounds won and lost, from `progression` events with `progress_event = round_finished`.
    Rounds { won: String, lost: String },
    /// Per-player scores of `match_result` events: their total and best.
    MatchScores { total: String, best: String },
}

impl StatRule {
    /// The stat names this rule can write (the match outcome rule's are fixed).
    pub fn stat_names(&self) -> Vec<&str> {
        match self {
            StatRule::MatchResults => vec!["games", "wins", "losses", "draws"],
            StatRule::Count {
                stat,
                map,
                integer_default,
                default,
                ..
            } => stat
                .iter()
                .chain(map.values())
                .chain(integer_default)
                .chain(default)
                .map(String::as_str)
                .collect(),
            StatRule::Aggregate { stat, .. } => vec![stat],
            StatRule::WinStreak { current, best } => vec![current, best],
            StatRule::Rounds { won, lost } => vec![won, lost],
            StatRule::MatchScores { total, best } => vec![total, best],
        }
    }
}

/// All stats rules of one product.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RuleSet {
    rules: Vec<StatRule>,
}

impl RuleSet {
    /// The event fields the rules read a player id from.
    pub fn player_fields(&self) -> impl Iterator<Item = &str> {
        self.rules.iter().filter_map(|rule| match rule {
            StatRule::Count { player, .. } | StatRule::Aggregate { player, .. } => {
                Some(player.as_str())
            }
            _ => None,
        })
    }

    pub fn new(rules: Vec<StatRule>) -> Self {
        Self { rules }
    }
}

impl StatsHandler for RuleSet {
    fn record(
        &self,
        event: &GameEvent,
        changes: &mut Changes,
        refused: &mut Vec<StatRejection>,
    ) -> Result<(), Rejection> {
        for rule in &self.rules {
            rule.record(event, changes, refused)?;
        }
        Ok(())
    }

    fn zero_start_stats(&self) -> Vec<String> {
        let mut stats = Vec::new();
        for rule in &self.rules {
            if let StatRule::MatchResults = rule {
                // Not `draws`: the original had none, and its answers had no `draws` field.
                stats.extend(MATCH_RESULTS_ZERO_START.map(str::to_owned));
            }
        }
        stats.dedup();
        stats
    }
}

/// The stats of `match_results` that a player has from their first match on.
const MATCH_RESULTS_ZERO_START: [&str; 3] = ["games", "wins", "losses"];

impl StatRule {
    fn record(
        &self,
        event: &GameEvent,
        changes: &mut Changes,
        refused: &mut Vec<StatRejection>,
    ) -> Result<(), Rejection> {
        match self {
            StatRule::MatchResults => {
                let Some(outcome) = event.outcome() else {
                    return Ok(());
                };
                for (index, team) in outcome.teams.iter().enumerate() {
                    let result = match outcome.result_of(index) {
                        MatchResult::Win => "wins",
                        MatchResult::Draw => "draws",
                        MatchResult::Loss => "losses",
                    };
                    for player in &team.players {
                        changes.add_stat(player, "games", 1);
                        changes.add_stat(player, result, 1);
                    }
                }
            }
            StatRule::Count {
                when,
                player,
                stat,
                by,
                map,
                integer_default,
                default,
            } => {
                if !matches(event, when) {
                    return Ok(());
                }
                let player = event.player(player)?;
                let stat = match (by, stat) {
                    (Some(by), _) => {
                        let value = event.required(by)?;
                        map.get(value)
                            .or_else(|| {
                                integer_default
                                    .as_ref()
                                    .filter(|_| value.parse::<i64>().is_ok())
                            })
                            .or(default.as_ref())
                            .ok_or_else(|| {
                                let known: Vec<&str> = map.keys().map(String::as_str).collect();
                                let integers = if integer_default.is_some() {
                                    " or another integer"
                                } else {
                                    ""
                                };
                                Rejection::invalid_value(
                                    by,
                                    value,
                                    format!("one of {}{integers}", known.join(", ")),
                                )
                            })?
                    }
                    (None, Some(stat)) => stat,
                    (None, None) => return Ok(()),
                };
                changes.add_stat(&player, stat, 1);
            }
            StatRule::Aggregate {
                when,
                player,
                field,
                stat,
                how,
                validate,
            } => {
                if !matches(event, when) {
                    return Ok(());
                }
                let player = event.player(player)?;
                let value = number(event, field)?;
                if let Err(violation) = validate.check(*how, value, None) {
                    refused.push(StatRejection {
                        stat: stat.clone(),
                        kind: violation.kind,
                        reason: format!(
                            "stat `{stat}`: field `{field}` of player {player}: {}",
                            violation.text
                        ),
                    });
                    return Ok(());
                }
                changes.push(Change::Stat {
                    player,
                    stat: stat.clone(),
                    how: *how,
                    value,
                });
            }
            StatRule::WinStreak { current, best } => {
                let Some(outcome) = event.outcome() else {
                    return Ok(());
                };
                for (index, team) in outcome.teams.iter().enumerate() {
                    for player in &team.players {
                        changes.push(if outcome.result_of(index) == MatchResult::Win {
                            Change::StreakWon {
                                player: player.clone(),
                                current: current.clone(),
                                best: best.clone(),
                            }
                        } else {
                            Change::StreakBroken {
                                player: player.clone(),
                                current: current.clone(),
                            }
                        });
                    }
                }
            }
            StatRule::Rounds { won, lost } => {
                let finished = matches!(&event.kind, EventKind::Gameplay { event_name } if event_name == "progression")
                    && event.field("progress_event") == Some("round_finished");
                if finished {
                    changes.add_stat(&event.player("round_winner_id")?, won, 1);
                    changes.add_stat(&event.player("round_loser_id")?, lost, 1);
                }
            }
            StatRule::MatchScores { total, best } => {
                let Some(outcome) = event.outcome() else {
                    return Ok(());
                };
                for (player, score) in outcome.teams.iter().flat_map(|t| t.scores.iter()) {
                    for (stat, how) in [(total, Aggregate::Sum), (best, Aggregate::Max)] {
                        changes.push(Change::Stat {
                            player: player.clone(),
                            stat: stat.clone(),
                            how,
                            value: *score,
                        });
                    }
                }
            }
        }
        Ok(())
    }
}
