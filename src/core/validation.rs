//! Validation rules a games file puts on a board's values (`validate = { … }`): the range an
//! event's value must be in, whether it must be an integer, and how much one event may change
//! a sum. An event that breaks one is dead-lettered for that board, with the rule and the
//! values in the reason; the product's other boards and stats still apply it.

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
    /// Most one event may add to (or take from) a sum.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_change: Option<f64>,
    /// A sum may only grow: negative values are refused.
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
        for (name, value) in [("min", self.min), ("max", self.max)]
            .into_iter()
            .chain([("max_change", self.max_change)])
        {
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
        // A sum's change is the event's value; a best, worst or last value's change depends
        // on the player's current one, which planning does not read.
        if how != Aggregate::Sum {
            for (name, set) in [
                ("max_change", self.max_change.is_some()),
                ("increment_only", self.increment_only),
            ] {
                if set {
                    return Err(format!(
                        "`validate.{name}` applies to sum boards only (use `min`/`max` to bound \
                         the values of other kinds)"
                    ));
                }
            }
        }
        Ok(())
    }

    /// The first rule `value` breaks, in the order min, max, integer, increment-only, max
    /// change.
    pub fn check(&self, value: f64) -> Result<(), Violation> {
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
        if self.increment_only && value < 0.0 {
            return broken(
                ReasonKind::Decrement,
                format!("value {value} would lower the sum, which may only grow"),
            );
        }
        if let Some(max_change) = self.max_change
            && value.abs() > max_change
        {
            return broken(
                ReasonKind::ChangeTooLarge,
                format!("value {value} changes the sum by more than the maximum {max_change}"),
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
        assert_eq!(validation.check(0.0), Ok(()));
        assert_eq!(validation.check(50.0), Ok(()));
        let kind = |value: f64| validation.check(value).unwrap_err().kind;
        assert_eq!(kind(-11.0), ReasonKind::BelowMinimum);
        assert_eq!(kind(101.0), ReasonKind::AboveMaximum);
        assert_eq!(kind(2.5), ReasonKind::NotInteger);
        assert_eq!(kind(-1.0), ReasonKind::Decrement);
        assert_eq!(kind(51.0), ReasonKind::ChangeTooLarge);
        let text = validation.check(101.0).unwrap_err().text;
        assert_eq!(text, "value 101 is above the maximum 100");
        // No rules: anything goes.
        assert_eq!(Validation::default().check(-1e15), Ok(()));
    }

    #[test]
    fn rules_that_cannot_apply_to_a_kind_are_refused() {
        assert!(
            rules("max_change = 5")
                .check_applies(Aggregate::Sum)
                .is_ok()
        );
        let error = rules("max_change = 5")
            .check_applies(Aggregate::Max)
            .unwrap_err();
        assert!(error.contains("sum boards only"), "{error}");
        assert!(
            rules("increment_only = true")
                .check_applies(Aggregate::Last)
                .is_err()
        );
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
