//! Validation rules a games file puts on a board's values (`validate = { … }`): the range an
//! event's value must be in, whether it must be an integer, how much one event may change the
//! player's score, and whether it may lower it. An event that breaks one is dead-lettered for
//! that board, with the rule and the values in the reason; the product's other boards and
//! stats still apply it.

use serde::{Deserialize, Serialize};

use super::effects::Aggregate;
use super::event::ReasonKind;

/// What values an event may bring to one board. The default allows every value.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Validation {
    /// Least value allowed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    /// Greatest value allowed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
    /// Values must be whole numbers.
    #[serde(default, skip_serializing_if = "is_false")]
    pub integer: bool,
    /// Most one event may change the player's all-time score by.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_change: Option<f64>,
    /// The player's score may only grow (a sum refuses negative values, a last value one
    /// below the current).
    #[serde(default, skip_serializing_if = "is_false")]
    pub increment_only: bool,
}

fn is_false(value: &bool) -> bool {
    !value
}

/// A rule an event's value broke.
#[derive(Debug, Clone, PartialEq)]
pub struct Violation {
    /// The rule, as a dead-letter reason kind (and metrics label).
    pub kind: ReasonKind,
    /// What was wrong, with the value and the limit.
    pub text: String,
}

impl Validation {
    /// Checks the rules against the board's kind; why they cannot apply to it.
    pub fn check_applies(&self, how: Aggregate) -> Result<(), String> {
        for (name, value) in [
            ("min", self.min),
            ("max", self.max),
            ("max_change", self.max_change),
        ] {
            if let Some(value) = value
                && !value.is_finite()
            {
                return Err(format!("`validate.{name}` must be a finite number"));
            }
        }
        if let (Some(min), Some(max)) = (self.min, self.max)
            && min > max
        {
            return Err(format!(
                "`validate.min` ({min}) is greater than `validate.max` ({max})"
            ));
        }
        if self.max_change.is_some_and(|change| change <= 0.0) {
            return Err("`validate.max_change` must be positive".into());
        }
        if self.increment_only && how == Aggregate::Min {
            return Err(
                "`validate.increment_only` does not apply to min boards (their scores only fall)"
                    .into(),
            );
        }
        Ok(())
    }

    /// Whether checking a value of a board aggregating by `how` needs the player's current
    /// score (a sum's change is the value itself).
    pub fn reads_current(&self, how: Aggregate) -> bool {
        how != Aggregate::Sum && (self.max_change.is_some() || self.increment_only)
    }

    /// The first rule `value` breaks, in the order min, max, integer, increment-only, max
    /// change, for a board aggregating by `how` on which the player's current all-time score
    /// is `current` (`None`: not on the board, or not read as [`Self::reads_current`] says).
    pub fn check(&self, how: Aggregate, value: f64, current: Option<f64>) -> Result<(), Violation> {
        let broken = |kind: ReasonKind, text: String| Err(Violation { kind, text });
        if let Some(min) = self.min
            && value < min
        {
            return broken(
                ReasonKind::BelowMinimum,
                format!("value {value} is below the minimum {min}"),
            );
        }
        if let Some(max) = self.max
            && value > max
        {
            return broken(
                ReasonKind::AboveMaximum,
                format!("value {value} is above the maximum {max}"),
            );
        }
        if self.integer && value.fract() != 0.0 {
            return broken(
                ReasonKind::NotInteger,
                format!("value {value} is not an integer"),
            );
        }
        // What the value would do to the score: a sum moves by it; a best or worst value
        // only when it beats the current one; a last value replaces it.
        let change = match (how, current) {
            (Aggregate::Sum, _) => value,
            (_, None) => 0.0,
            (Aggregate::Max, Some(current)) => (value - current).max(0.0),
            (Aggregate::Min, Some(current)) => (value - current).min(0.0),
            (Aggregate::Last, Some(current)) => value - current,
        };
        let from = match (how, current) {
            (Aggregate::Sum, _) | (_, None) => String::new(),
            (_, Some(current)) => format!(" (from {current})"),
        };
        if self.increment_only && change < 0.0 {
            return broken(
                ReasonKind::Decrement,
                format!("value {value} would lower the score{from}, which may only grow"),
            );
        }
        if let Some(max_change) = self.max_change
            && change.abs() > max_change
        {
            return broken(
                ReasonKind::ChangeTooLarge,
                format!(
                    "value {value} changes the score by {}{from}, more than the maximum {max_change}",
                    change.abs()
                ),
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(text: &str) -> Validation {
        toml::from_str(text).unwrap()
    }

    #[test]
    fn each_rule_refuses_what_it_names_and_lets_the_rest_through() {
        let validation =
            rules("min = -10\nmax = 100\ninteger = true\nmax_change = 50\nincrement_only = true");
        let check = |value: f64| validation.check(Aggregate::Sum, value, None);
        assert_eq!(check(0.0), Ok(()));
        assert_eq!(check(50.0), Ok(()));
        let kind = |value: f64| check(value).unwrap_err().kind;
        assert_eq!(kind(-11.0), ReasonKind::BelowMinimum);
        assert_eq!(kind(101.0), ReasonKind::AboveMaximum);
        assert_eq!(kind(2.5), ReasonKind::NotInteger);
        assert_eq!(kind(-1.0), ReasonKind::Decrement);
        assert_eq!(kind(51.0), ReasonKind::ChangeTooLarge);
        assert_eq!(
            check(101.0).unwrap_err().text,
            "value 101 is above the maximum 100"
        );
        // No rules: anything goes.
        assert_eq!(
            Validation::default().check(Aggregate::Sum, -1e15, None),
            Ok(())
        );
    }

    #[test]
    fn changes_of_best_and_last_values_are_measured_from_the_current_score() {
        let jumps = rules("max_change = 10");
        let kind = |how, value, current| {
            jumps
                .check(how, value, current)
                .err()
                .map(|violation| violation.kind)
        };
        // A best value: only a rise counts, measured from the current best.
        assert_eq!(kind(Aggregate::Max, 15.0, Some(10.0)), None);
        assert_eq!(
            kind(Aggregate::Max, 25.0, Some(10.0)),
            Some(ReasonKind::ChangeTooLarge)
        );
        assert_eq!(kind(Aggregate::Max, -500.0, Some(10.0)), None);
        // A first value has nothing to jump from.
        assert_eq!(kind(Aggregate::Max, 500.0, None), None);
        // A worst value: only a fall counts.
        assert_eq!(
            kind(Aggregate::Min, 5.0, Some(30.0)),
            Some(ReasonKind::ChangeTooLarge)
        );
        assert_eq!(kind(Aggregate::Min, 300.0, Some(30.0)), None);
        // A last value: either way.
        assert_eq!(
            kind(Aggregate::Last, -1.0, Some(10.0)),
            Some(ReasonKind::ChangeTooLarge)
        );
        let text = jumps
            .check(Aggregate::Max, 25.0, Some(10.0))
            .unwrap_err()
            .text;
        assert_eq!(
            text,
            "value 25 changes the score by 15 (from 10), more than the maximum 10"
        );
        let growing = rules("increment_only = true");
        assert_eq!(
            growing
                .check(Aggregate::Last, 4.0, Some(5.0))
                .unwrap_err()
                .kind,
            ReasonKind::Decrement
        );
        assert_eq!(growing.check(Aggregate::Last, 6.0, Some(5.0)), Ok(()));
        assert_eq!(growing.check(Aggregate::Max, 1.0, Some(5.0)), Ok(()));
    }

    #[test]
    fn rules_that_cannot_apply_to_a_kind_are_refused() {
        assert!(
            rules("max_change = 5")
                .check_applies(Aggregate::Max)
                .is_ok()
        );
        assert!(rules("max_change = 5").reads_current(Aggregate::Max));
        assert!(!rules("max_change = 5").reads_current(Aggregate::Sum));
        assert!(!rules("max = 5").reads_current(Aggregate::Last));
        let error = rules("increment_only = true")
            .check_applies(Aggregate::Min)
            .unwrap_err();
        assert!(error.contains("min boards"), "{error}");
        assert!(
            rules("min = 5\nmax = 1")
                .check_applies(Aggregate::Max)
                .unwrap_err()
                .contains("greater than")
        );
        assert!(
            rules("max_change = 0")
                .check_applies(Aggregate::Sum)
                .is_err()
        );
        assert!(toml::from_str::<Validation>("minimum = 1").is_err());
    }
}
