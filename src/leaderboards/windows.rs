//! Time windows of a leaderboard: the daily, weekly and monthly boards kept next to the
//! all-time one, which period an event falls in (UTC, by the event's time), how periods are
//! named in keys and the API, and when a closed period expires.
//!
//! Period labels: `2026-11-25` (day), `2026-W48` (ISO week, Monday first), `2026-11` (month).

use chrono::{DateTime, Datelike, Days, Months, NaiveDate, TimeZone, Utc};

/// The length of a window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Window {
    Daily,
    Weekly,
    Monthly,
}

impl Window {
    pub const ALL: [Window; 3] = [Window::Daily, Window::Weekly, Window::Monthly];

    pub fn name(self) -> &'static str {
        match self {
            Window::Daily => "daily",
            Window::Weekly => "weekly",
            Window::Monthly => "monthly",
        }
    }

    pub fn parse(name: &str) -> Option<Window> {
        Window::ALL.into_iter().find(|w| w.name() == name)
    }

    /// Closed periods kept by default, after which they expire.
    pub fn default_retention(self) -> u32 {
        match self {
            Window::Daily => 7,
            Window::Weekly => 4,
            Window::Monthly => 12,
        }
    }
}

/// One window a board keeps: its length and how many closed periods stay readable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowRule {
    pub window: Window,
    /// Closed periods kept: a period expires `retention` periods after it ends.
    pub retention: u32,
}

/// One period of a window, e.g. the day 2026-11-25.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Period {
    pub window: Window,
    /// First day of the period.
    pub start: NaiveDate,
}

impl Period {
    /// The period of `window` that the instant `at_ms` (Unix milliseconds) falls in.
    pub fn containing(window: Window, at_ms: u64) -> Period {
        let day = i64::try_from(at_ms)
            .ok()
            .and_then(DateTime::<Utc>::from_timestamp_millis)
            .unwrap_or_default()
            .date_naive();
        let start = match window {
            Window::Daily => day,
            Window::Weekly => day
                .checked_sub_days(Days::new(u64::from(day.weekday().num_days_from_monday())))
                .unwrap_or(day),
            Window::Monthly => day.with_day(1).unwrap_or(day),
        };
        Period { window, start }
    }

    /// Parses a label of `window` (`2026-11-25`, `2026-W48`, `2026-11`).
    pub fn parse(window: Window, label: &str) -> Option<Period> {
        let start = match window {
            Window::Daily => NaiveDate::parse_from_str(label, "%Y-%m-%d").ok()?,
            Window::Weekly => {
                let (year, week) = label.split_once("-W")?;
                let (year, week) = (year.parse().ok()?, week.parse().ok()?);
                NaiveDate::from_isoywd_opt(year, week, chrono::Weekday::Mon)?
            }
            Window::Monthly => {
                NaiveDate::parse_from_str(&format!("{label}-01"), "%Y-%m-%d").ok()?
            }
        };
        // Only canonical labels: `2026-1` must not name the same period as `2026-01`.
        let period = Period { window, start };
        (period.label() == label).then_some(period)
    }

    /// The period's name in keys and the API.
    pub fn label(&self) -> String {
        match self.window {
            Window::Daily => self.start.format("%Y-%m-%d").to_string(),
            Window::Weekly => {
                let week = self.start.iso_week();
                format!("{}-W{:02}", week.year(), week.week())
            }
            Window::Monthly => self.start.format("%Y-%m").to_string(),
        }
    }

    /// `window:label`, the suffix that tells a period's board keys apart.
    pub fn key_suffix(&self) -> String {
        format!("{}:{}", self.window.name(), self.label())
    }

    /// The first day after the period and `later` more periods.
    fn end_after(&self, later: u32) -> NaiveDate {
        let periods = later.saturating_add(1);
        let end = match self.window {
            Window::Daily => self.start.checked_add_days(Days::new(u64::from(periods))),
            Window::Weekly => self
                .start
                .checked_add_days(Days::new(7 * u64::from(periods))),
            Window::Monthly => self.start.checked_add_months(Months::new(periods)),
        };
        end.unwrap_or(NaiveDate::MAX)
    }

    /// The period just before this one.
    pub fn previous(&self) -> Period {
        let start = match self.window {
            Window::Daily => self.start.checked_sub_days(Days::new(1)),
            Window::Weekly => self.start.checked_sub_days(Days::new(7)),
            Window::Monthly => self.start.checked_sub_months(Months::new(1)),
        };
        Period {
            window: self.window,
            start: start.unwrap_or(NaiveDate::MIN),
        }
    }

    /// When the period ends, RFC 3339 in UTC (`2026-11-26T00:00:00Z`).
    pub fn ends_at(&self) -> String {
        let end = self.end_after(0);
        Utc.from_utc_datetime(&end.and_time(chrono::NaiveTime::MIN))
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    }

    /// When the period's data expires (Unix seconds): `retention` periods after it ends.
    pub fn expires_at_s(&self, retention: u32) -> u64 {
        let end = self.end_after(retention);
        let at = Utc.from_utc_datetime(&end.and_time(chrono::NaiveTime::MIN));
        u64::try_from(at.timestamp()).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // 2026-11-25T19:45:00Z, a Wednesday.
    const WEDNESDAY: u64 = 1_795_635_900_000;

    #[test]
    fn periods_are_utc_days_iso_weeks_and_months() {
        let day = Period::containing(Window::Daily, WEDNESDAY);
        assert_eq!(day.label(), "2026-11-25");
        assert_eq!(
            Period::containing(Window::Weekly, WEDNESDAY).label(),
            "2026-W48"
        );
        assert_eq!(
            Period::containing(Window::Monthly, WEDNESDAY).label(),
            "2026-11"
        );
        // The last millisecond of a day is still that day; the next is the next day.
        let midnight = 1_795_651_200_000; // 2026-11-26T00:00:00Z
        assert_eq!(
            Period::containing(Window::Daily, midnight - 1).label(),
            "2026-11-25"
        );
        assert_eq!(
            Period::containing(Window::Daily, midnight).label(),
            "2026-11-26"
        );
    }

    #[test]
    fn iso_weeks_cross_years() {
        // 2027-01-01 is a Friday in ISO week 53 of 2026.
        let new_year = 1_798_761_600_000;
        let week = Period::containing(Window::Weekly, new_year);
        assert_eq!(week.label(), "2026-W53");
        assert_eq!(Period::parse(Window::Weekly, "2026-W53"), Some(week));
    }

    #[test]
    fn labels_round_trip_and_only_canonical_ones_parse() {
        for window in Window::ALL {
            let period = Period::containing(window, WEDNESDAY);
            assert_eq!(Period::parse(window, &period.label()), Some(period));
        }
        assert_eq!(Period::parse(Window::Monthly, "2026-1"), None);
        assert_eq!(Period::parse(Window::Daily, "2026-02-30"), None);
        assert_eq!(Period::parse(Window::Weekly, "2026-W54"), None);
        assert_eq!(Period::parse(Window::Daily, "yesterday"), None);
    }

    #[test]
    fn periods_say_when_they_end() {
        assert_eq!(
            Period::containing(Window::Daily, WEDNESDAY).ends_at(),
            "2026-11-26T00:00:00Z"
        );
        assert_eq!(
            Period::containing(Window::Weekly, WEDNESDAY).ends_at(),
            "2026-11-30T00:00:00Z"
        );
        assert_eq!(
            Period::containing(Window::Monthly, WEDNESDAY).ends_at(),
            "2026-12-01T00:00:00Z"
        );
    }

    #[test]
    fn periods_expire_retention_periods_after_they_end() {
        let day = Period::containing(Window::Daily, WEDNESDAY);
        // Ends 2026-11-26; kept 7 more days: expires 2026-12-03T00:00:00Z.
        assert_eq!(day.expires_at_s(7), 1_796_256_000);
        let month = Period::containing(Window::Monthly, WEDNESDAY);
        // Ends 2026-12-01; kept 1 more month: expires 2027-01-01T00:00:00Z.
        assert_eq!(month.expires_at_s(1), 1_798_761_600);
        assert_eq!(
            Period::containing(Window::Weekly, WEDNESDAY).expires_at_s(0),
            1_795_996_800 // the week ends Monday 2026-11-30T00:00:00Z
        );
    }
}
