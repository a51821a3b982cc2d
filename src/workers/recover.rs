//! Noticing that the store lost writes the stream side had acknowledged (power loss with
//! `appendfsync everysec`, a failover to a replica that missed them, a restore from an older
//! snapshot), and which stream range re-derives them.
//!
//! Every acknowledgement records, beside the stream and in the same transaction, the applied
//! position each partition's commit left in the store (`acked.lua`). A partition whose store
//! position is behind that record lost effects of entries that are acknowledged, so no read
//! of the group would ever deliver them again; the worker re-reads them with `XRANGE` (the
//! tracker never trims the stream) and applies them through the usual plan and commit, whose
//! position check skips everything the store still has.

use std::cmp::Ordering;

use super::plan::{Known, Partition, compare_ids};
use super::stream::Removals;

/// A partition whose store position is behind what the stream side acknowledged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lost {
    pub partition: Partition,
    /// The store's applied position (`None`: nothing applied).
    pub store: Option<String>,
    /// The position recorded when its last batch was acknowledged.
    pub acked: String,
}

/// The partitions of `recorded` (name, acknowledged position) whose position in `known` (just
/// loaded from the store) is behind the record.
pub fn lost(recorded: &[(Partition, String)], known: &Known) -> Vec<Lost> {
    recorded
        .iter()
        .filter_map(|(partition, acked)| {
            let store = known.positions.get(partition).cloned().flatten();
            let behind = store
                .as_deref()
                .is_none_or(|store| compare_ids(store, acked) == Ordering::Less);
            behind.then(|| Lost {
                partition: partition.clone(),
                store,
                acked: acked.clone(),
            })
        })
        .collect()
}

/// The `XRANGE` bounds (`start`, `end`) that re-derive `lost`: from just after the earliest
/// store position to the latest record. Pending entries (`pending`: the group's lowest and
/// highest) are included as well: a product that lost nothing may have unacknowledged entries
/// in the range, and applying its later ones now but its earlier ones only when the pending
/// list is taken over would apply them out of order.
pub fn range(lost: &[Lost], pending: Option<&(String, String)>) -> (String, String) {
    let earliest_store = lost
        .iter()
        .map(|lost| lost.store.clone())
        .min_by(|a, b| match (a, b) {
            (None, None) => Ordering::Equal,
            (None, Some(_)) => Ordering::Less,
            (Some(_), None) => Ordering::Greater,
            (Some(a), Some(b)) => compare_ids(a, b),
        })
        .flatten();
    let start = match (earliest_store, pending) {
        (None, _) => "-".to_owned(),
        (Some(store), Some((low, _))) if compare_ids(low, &store) != Ordering::Greater => {
            low.clone()
        }
        (Some(store), _) => format!("({store}"),
    };
    let end = lost
        .iter()
        .map(|lost| lost.acked.as_str())
        .chain(pending.map(|(_, high)| high.as_str()))
        .max_by(|a, b| compare_ids(a, b))
        .unwrap_or("+")
        .to_owned();
    (start, end)
}

/// Whether entries `lost` needs may be gone from the stream: one after the store's position
/// was deleted, or the stream was trimmed past it (its oldest entry is after it), or, for a
/// partition with nothing applied, any entry was ever removed.
pub fn may_be_gone(lost: &Lost, removals: &Removals) -> bool {
    let Some(store) = lost.store.as_deref() else {
        return removals.any;
    };
    let after_store = |id: &str| compare_ids(id, store) == Ordering::Greater;
    after_store(&removals.max_deleted)
        || match &removals.first {
            Some(first) => after_store(first),
            None => removals.any,
        }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::ids::ProductId;

    fn product(id: &str) -> Partition {
        Partition::Product(ProductId::parse(id).expect("valid id"))
    }

    fn known(positions: &[(Partition, Option<&str>)]) -> Known {
        let mut known = Known::default();
        for (partition, position) in positions {
            known
                .positions
                .insert(partition.clone(), position.map(str::to_owned));
        }
        known
    }

    #[test]
    fn partitions_behind_their_record_are_lost_and_the_others_are_not() {
        let known = known(&[
            (product("a"), Some("5-0")),
            (product("b"), Some("9-0")),
            (product("c"), None),
            (Partition::DeadLetters, Some("10-3")),
        ]);
        let recorded = vec![
            (product("a"), "7-0".to_owned()),
            (product("b"), "9-0".to_owned()),
            (product("c"), "2-0".to_owned()),
            (Partition::DeadLetters, "10-2".to_owned()),
        ];
        let lost = lost(&recorded, &known);
        assert_eq!(
            lost,
            vec![
                Lost {
                    partition: product("a"),
                    store: Some("5-0".into()),
                    acked: "7-0".into()
                },
                Lost {
                    partition: product("c"),
                    store: None,
                    acked: "2-0".into()
                },
            ]
        );
    }

    #[test]
    fn the_range_starts_after_the_earliest_store_position_or_at_the_lowest_pending_id() {
        let lost_at = |store: Option<&str>, acked: &str| Lost {
            partition: product("a"),
            store: store.map(str::to_owned),
            acked: acked.to_owned(),
        };
        let two = [lost_at(Some("10-0"), "20-0"), lost_at(Some("12-0"), "15-0")];
        assert_eq!(range(&two, None), ("(10-0".into(), "20-0".into()));
        let pending = ("8-0".to_owned(), "25-0".to_owned());
        assert_eq!(range(&two, Some(&pending)), ("8-0".into(), "25-0".into()));
        let later_pending = ("11-0".to_owned(), "12-0".to_owned());
        assert_eq!(
            range(&two, Some(&later_pending)),
            ("(10-0".into(), "20-0".into())
        );
        // Ids compare as numbers, not text.
        let wide = [lost_at(Some("9-0"), "100-0")];
        assert_eq!(range(&wide, None), ("(9-0".into(), "100-0".into()));
        // A partition that lost everything: from the stream's start.
        let all = [lost_at(None, "3-0"), lost_at(Some("1-0"), "2-0")];
        assert_eq!(range(&all, None), ("-".into(), "3-0".into()));
    }

    #[test]
    fn entries_may_be_gone_only_if_something_after_the_store_position_was_removed() {
        let lost = Lost {
            partition: product("a"),
            store: Some("10-0".into()),
            acked: "20-0".into(),
        };
        let removals = |first: Option<&str>, max_deleted: &str, any: bool| Removals {
            first: first.map(str::to_owned),
            max_deleted: max_deleted.to_owned(),
            any,
        };
        assert!(!may_be_gone(&lost, &removals(Some("1-0"), "0-0", false)));
        // Trimmed, but not past the store's position; deleted, but before it.
        assert!(!may_be_gone(&lost, &removals(Some("10-0"), "0-0", true)));
        assert!(!may_be_gone(&lost, &removals(Some("5-0"), "9-5", true)));
        // Trimmed past it; deleted after it; trimmed to nothing.
        assert!(may_be_gone(&lost, &removals(Some("10-1"), "0-0", true)));
        assert!(may_be_gone(&lost, &removals(Some("5-0"), "10-1", true)));
        assert!(may_be_gone(&lost, &removals(None, "0-0", true)));
        let everything = Lost {
            store: None,
            ..lost
        };
        assert!(!may_be_gone(
            &everything,
            &removals(Some("1-0"), "0-0", false)
        ));
        assert!(may_be_gone(
            &everything,
            &removals(Some("3-0"), "0-0", true)
        ));
    }
}
