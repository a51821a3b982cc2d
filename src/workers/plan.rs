//! Planning a batch (pure, no I/O): which changes each stream entry causes, grouped by
//! product in stream order, and which entries go to the dead-letter stream and why.

use std::collections::BTreeMap;

use crate::core::effects::Changes;
use crate::core::event::{Fields, GameEvent, RawEntry, Rejection};
use crate::core::ids::ProductId;
use crate::leaderboards::scoring::{self, ScoringRegistry};
use crate::player_stats::handlers::{self, StatsRegistry};

/// The scoring and stats handlers the worker applies.
pub struct Rules {
    pub scoring: ScoringRegistry,
    pub stats: StatsRegistry,
}

impl Rules {
    /// The built-in rules: `wins` board and match stats for everyone, exrps weapon stats.
    pub fn builtin() -> Self {
        Self {
            scoring: scoring::default_registry(),
            stats: handlers::default_registry(),
        }
    }

    /// All changes `event` causes, board and stats together; a rejection from any handler
    /// rejects the whole event, so one is never applied without the other.
    pub fn changes(&self, event: &GameEvent) -> Result<Changes, Rejection> {
        let mut changes = Changes::default();
        self.scoring
            .get(&event.product)
            .score(event, &mut changes)?;
        self.stats.get(&event.product).record(event, &mut changes)?;
        Ok(changes)
    }
}

/// The changes of one stream entry.
#[derive(Debug, Clone, PartialEq)]
pub struct PlannedEvent {
    pub id: String,
    pub changes: Changes,
}

/// An entry the worker cannot use, kept with its original fields and the reason.
#[derive(Debug, Clone, PartialEq)]
pub struct DeadLetter {
    pub id: String,
    pub reason: String,
    pub fields: Fields,
}

/// What happened to one entry, for metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Applied,
    Skipped,
    DeadLettered,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Applied => "applied",
            Outcome::Skipped => "skipped",
            Outcome::DeadLettered => "dead_lettered",
        }
    }
}

/// One entry's outcome with its metric labels (raw product id: bound it before use).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryOutcome {
    pub product: String,
    pub event_type: &'static str,
    pub outcome: Outcome,
}

/// Everything a batch will write.
#[derive(Debug, Default, PartialEq)]
pub struct BatchPlan {
    /// Per product, the entries with changes, in stream order.
    pub products: BTreeMap<ProductId, Vec<PlannedEvent>>,
    /// Entries to dead-letter, in stream order.
    pub dead_letters: Vec<DeadLetter>,
    pub outcomes: Vec<EntryOutcome>,
}

/// Plans a batch of entries read in stream order. `deleted` are ids whose entries vanished
/// from the stream before they could be read (trimmed by someone else): they are
/// dead-lettered so the loss is visible.
pub fn plan(entries: &[RawEntry], deleted: &[String], rules: &Rules) -> BatchPlan {
    let mut batch = BatchPlan::default();
    for entry in entries {
        let event_type = type_label(&entry.fields);
        let parsed = GameEvent::parse(&entry.fields)
            .and_then(|event| rules.changes(&event).map(|changes| (event, changes)));
        let (product, outcome) = match parsed {
            Ok((event, changes)) => {
                let product = event.product.as_str().to_owned();
                if changes.is_empty() {
                    (product, Outcome::Skipped)
                } else {
                    batch
                        .products
                        .entry(event.product)
                        .or_default()
                        .push(PlannedEvent {
                            id: entry.id.clone(),
                            changes,
                        });
                    (product, Outcome::Applied)
                }
            }
            Err(rejection) => {
                batch.dead_letters.push(DeadLetter {
                    id: entry.id.clone(),
                    reason: rejection.to_string(),
                    fields: entry.fields.clone(),
                });
                (raw_product(&entry.fields), Outcome::DeadLettered)
            }
        };
        batch.outcomes.push(EntryOutcome {
            product,
            event_type,
            outcome,
        });
    }
    for id in deleted {
        batch.dead_letters.push(DeadLetter {
            id: id.clone(),
            reason: Rejection::Deleted.to_string(),
            fields: Vec::new(),
        });
        batch.outcomes.push(EntryOutcome {
            product: String::new(),
            event_type: "unknown",
            outcome: Outcome::DeadLettered,
        });
    }
    // Deleted ids come from a different part of the reply; keep dead letters in id order.
    batch.dead_letters.sort_by(|a, b| compare_ids(&a.id, &b.id));
    batch
}

/// The `type` field as a bounded metric label.
fn type_label(fields: &[(Vec<u8>, Vec<u8>)]) -> &'static str {
    let value = fields
        .iter()
        .find(|(name, _)| name == b"type")
        .map(|(_, value)| value.as_slice());
    match value {
        Some(b"game_over") => "game_over",
        Some(b"gameplay") => "gameplay",
        Some(b"state_change") => "state_change",
        Some(b"player_disconnect") => "player_disconnect",
        Some(b"game_removed") => "game_removed",
        Some(_) => "other",
        None => "missing",
    }
}

fn raw_product(fields: &[(Vec<u8>, Vec<u8>)]) -> String {
    fields
        .iter()
        .find(|(name, _)| name == b"product_id")
        .map(|(_, value)| String::from_utf8_lossy(value).into_owned())
        .unwrap_or_default()
}

/// Orders stream ids (`<ms>-<seq>`) numerically.
pub fn compare_ids(a: &str, b: &str) -> std::cmp::Ordering {
    fn parts(id: &str) -> (u64, u64) {
        let (ms, seq) = id.split_once('-').unwrap_or((id, "0"));
        (ms.parse().unwrap_or(0), seq.parse().unwrap_or(0))
    }
    parts(a).cmp(&parts(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(id: &str, pairs: &[(&str, &str)]) -> RawEntry {
        RawEntry {
            id: id.into(),
            fields: pairs
                .iter()
                .map(|(k, v)| (k.as_bytes().to_vec(), v.as_bytes().to_vec()))
                .collect(),
        }
    }

    #[test]
    fn groups_changes_by_product_and_dead_letters_the_rest() {
        let entries = vec![
            entry("1-0", &[("product_id", "exrps"), ("type", "state_change")]),
            entry(
                "2-0",
                &[
                    ("product_id", "exrps"),
                    ("type", "game_over"),
                    ("winner_id", "B"),
                    ("loser_id", "A"),
                ],
            ),
            entry("3-0", &[("product_id", "exrps"), ("type", "bogus")]),
            entry(
                "4-0",
                &[
                    ("product_id", "other"),
                    ("type", "game_over"),
                    ("winner_id", "A"),
                    ("loser_id", "B"),
                ],
            ),
        ];
        let batch = plan(&entries, &["0-5".to_owned()], &Rules::builtin());
        assert_eq!(batch.products.len(), 2);
        let exrps = &batch.products[&ProductId::parse("exrps").unwrap()];
        assert_eq!(exrps.len(), 1);
        assert_eq!(exrps[0].id, "2-0");
        // wins +1, loser ensured, 4 stat increments
        assert_eq!(exrps[0].changes.as_slice().len(), 6);
        let reasons: Vec<_> = batch
            .dead_letters
            .iter()
            .map(|d| (d.id.as_str(), d.reason.as_str()))
            .collect();
        assert_eq!(
            reasons,
            vec![
                (
                    "0-5",
                    "entry was deleted from the stream before it could be read"
                ),
                ("3-0", "unknown event type `bogus`")
            ]
        );
        let outcomes: Vec<_> = batch.outcomes.iter().map(|o| o.outcome).collect();
        assert_eq!(
            outcomes,
            vec![
                Outcome::Skipped,
                Outcome::Applied,
                Outcome::DeadLettered,
                Outcome::Applied,
                Outcome::DeadLettered
            ]
        );
    }

    #[test]
    fn ids_compare_numerically() {
        use std::cmp::Ordering::*;
        assert_eq!(compare_ids("10-0", "9-5"), Greater);
        assert_eq!(compare_ids("9-10", "9-9"), Greater);
        assert_eq!(compare_ids("9-1", "9-1"), Equal);
    }
}
