//! Time windows of a leaderboard: the period boards kept next to the all-time one. A window
//! cuts time into periods: UTC calendar days, ISO weeks and months; the periods between the
//! fire times of a cron schedule in a time zone or at a UTC offset (a product's own windows);
//! or a product's seasons (named, or a schedule). This module says which period an instant
//! falls in (by the event's time), how periods are named in keys and the API, and when a
//! closed period expires.
//!
//! Period labels: `2026-11-25` (day), `2026-W48` (ISO week, Monday first), `2026-11` (month),
//! `2026-12-01T04:00+09:00` (a schedule's period: its start, in the window's zone), a
//! season's name.

use std::str::FromStr;
use std::sync::Arc;

use chrono::{
    DateTime, Datelike, Days, FixedOffset, Months, NaiveDate, NaiveTime, SecondsFormat, TimeZone,
    Timelike, Utc,
};
use croner::Cron;
use croner::parser::{CronParser, Seconds};

use crate::core::effects::PeriodTarget;

/// The calendar windows every product has.
pub const CALENDAR: [&str; 3] = ["daily", "weekly", "monthly"];

/// The name of a product's seasons as a window.
pub const SEASON: &str = "season";

/// A way to cut time into periods, with its name in keys and the API.
#[derive(Debug, Clone, PartialEq)]
pub struct Window {
    name: String,
    cadence: Cadence,
    /// Closed periods kept when a board says nothing (`None`: kept for good).
    default_retention: Option<u32>,
}

#[derive(Debug, Clone, PartialEq)]
enum Cadence {
    /// UTC calendar days, ISO weeks, months.
    Daily,
    Weekly,
    Monthly,
    /// From one fire time of a schedule to the next (boxed: a parsed cron is large).
    Schedule(Box<Schedule>),
    /// Named periods, in order, gaps allowed.
    Seasons(Vec<Season>),
}

/// A cron schedule of period starts in a time zone.
#[derive(Debug, Clone, PartialEq)]
pub struct Schedule {
    cron: Cron,
    pattern: String,
    zone: Zone,
    /// The period last found: events come in time order, so most fall in it (a cron search
    /// costs microseconds, for every event and board).
    last: LastPeriod,
}

/// A schedule's last period `[start, end)`, shared by the threads that read it.
#[derive(Debug, Default)]
struct LastPeriod(std::sync::Mutex<Option<(DateTime<Utc>, DateTime<Utc>)>>);

impl LastPeriod {
    fn containing(&self, at: DateTime<Utc>) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
        let last = *self.0.lock().ok()?;
        last.filter(|(start, end)| *start <= at && at < *end)
    }

    fn remember(&self, period: (DateTime<Utc>, DateTime<Utc>)) {
        if let Ok(mut last) = self.0.lock() {
            *last = Some(period);
        }
    }
}

/// A copy starts without a last period; any two are alike (it is a cache).
impl Clone for LastPeriod {
    fn clone(&self) -> Self {
        LastPeriod::default()
    }
}

impl PartialEq for LastPeriod {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

/// Where a schedule's fire times are read: a fixed UTC offset or a time zone of the tz
/// database (with its daylight saving time).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Zone {
    Offset(FixedOffset),
    Named(chrono_tz::Tz),
}

/// One window a board keeps and how many of its closed periods stay readable.
#[derive(Debug, Clone, PartialEq)]
pub struct WindowRule {
    pub window: Arc<Window>,
    /// Closed periods kept: a period expires `retention` periods after it ends (`None`: never).
    pub retention: Option<u32>,
}

impl WindowRule {
    /// The period board an event at `at_ms` goes to (none between seasons); with
    /// `with_previous`, it names the period before (a board with a feed announces its close).
    pub fn target(&self, at_ms: u64, with_previous: bool) -> Option<PeriodTarget> {
        let period = self.window.period_at(at_ms)?;
        Some(PeriodTarget {
            key_suffix: period.key_suffix(),
            expires_at_s: self.window.expires_at_s(&period, self.retention),
            previous_suffix: with_previous
                .then(|| self.window.previous(&period))
                .flatten()
                .map(|previous| previous.key_suffix()),
        })
    }
}

/// One named season: `[start, end)`.
#[derive(Debug, Clone, PartialEq)]
pub struct Season {
    pub name: String,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

/// One period of a window, e.g. the day 2026-11-25: `[start, end)`.
#[derive(Debug, Clone, PartialEq)]
pub struct Period {
    window: String,
    label: String,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
}

impl Zone {
    /// `timezone` (a tz database name) or `utc_offset` (`+09:00`); UTC without either.
    pub fn parse(timezone: Option<&str>, utc_offset: Option<&str>) -> Result<Zone, String> {
        match (timezone, utc_offset) {
            (Some(_), Some(_)) => Err("give `timezone` or `utc_offset`, not both".into()),
            (Some(name), None) => chrono_tz::Tz::from_str(name).map(Zone::Named).map_err(|_| {
                format!("`timezone` `{name}` is not a tz database name (e.g. Asia/Tokyo, UTC)")
            }),
            (None, Some(offset)) => FixedOffset::from_str(offset)
                .map(Zone::Offset)
                .map_err(|_| format!("`utc_offset` `{offset}` is not an offset like +09:00")),
            (None, None) => Ok(Zone::Named(chrono_tz::UTC)),
        }
    }

    fn describe(&self) -> String {
        match self {
            Zone::Offset(offset) => offset.to_string(),
            Zone::Named(tz) => tz.name().to_owned(),
        }
    }
}

/// Runs `$body` with `$at` (a `DateTime<Utc>`) seen in `$zone`, as `$local`.
macro_rules! in_zone {
    ($zone:expr, $at:expr, |$local:ident| $body:expr) => {
        match $zone {
            Zone::Offset(offset) => {
                let $local = $at.with_timezone(&offset);
                $body
            }
            Zone::Named(tz) => {
                let $local = $at.with_timezone(&tz);
                $body
            }
        }
    };
}

/// `at` to the whole second before it: fire times are whole minutes, and the cron search
/// keeps fractions of a second (it would find `04:00:00.5` for an instant half a second in).
fn whole_second(at: DateTime<Utc>) -> DateTime<Utc> {
    at.with_nanosecond(0).unwrap_or(at)
}

impl Schedule {
    /// A five-field cron pattern (minute hour day-of-month month day-of-week, or `@daily`
    /// and the like) whose minute is one number, so periods last an hour at least.
    pub fn parse(pattern: &str, zone: Zone) -> Result<Schedule, String> {
        const NICKNAMES: [&str; 6] = [
            "@yearly",
            "@annually",
            "@monthly",
            "@weekly",
            "@daily",
            "@hourly",
        ];
        let fields: Vec<&str> = pattern.split_whitespace().collect();
        let nickname = fields.len() == 1 && NICKNAMES.contains(&fields[0]);
        if !nickname && fields.len() != 5 {
            return Err(format!(
                "`cron` `{pattern}` must have five fields (minute hour day-of-month month \
                 day-of-week) or be one of {}",
                NICKNAMES.join(", ")
            ));
        }
        if !nickname && fields[0].parse::<u8>().is_err() {
            return Err(format!(
                "`cron` `{pattern}`: the minute must be one number (periods last an hour at \
                 least), not `{}`",
                fields[0]
            ));
        }
        let cron = CronParser::builder()
            .seconds(Seconds::Disallowed)
            .build()
            .parse(pattern)
            .map_err(|error| format!("`cron` `{pattern}`: {error}"))?;
        let schedule = Schedule {
            cron,
            pattern: pattern.to_owned(),
            zone,
            last: LastPeriod::default(),
        };
        // A pattern that never fires (`0 0 30 2 *`) would leave every event outside.
        if schedule.start_at(Utc::now()).is_none() && schedule.next_after(Utc::now()).is_none() {
            return Err(format!("`cron` `{pattern}` never fires"));
        }
        Ok(schedule)
    }

    /// The last fire time at or before `at`.
    fn start_at(&self, at: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let at = whole_second(at);
        in_zone!(self.zone, at, |local| self
            .cron
            .find_previous_occurrence(&local, true)
            .ok()
            .map(|start| start.with_timezone(&Utc)))
    }

    /// The first fire time after `at`.
    fn next_after(&self, at: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let at = whole_second(at);
        in_zone!(self.zone, at, |local| self
            .cron
            .find_next_occurrence(&local, false)
            .ok()
            .map(|next| next.with_timezone(&Utc)))
    }

    /// The last fire time before `at`.
    fn start_before(&self, at: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let at = whole_second(at);
        in_zone!(self.zone, at, |local| self
            .cron
            .find_previous_occurrence(&local, false)
            .ok()
            .map(|start| start.with_timezone(&Utc)))
    }

    /// A period's label: its start in the schedule's zone, to the minute, with the offset.
    fn label(&self, start: DateTime<Utc>) -> String {
        in_zone!(self.zone, start, |local| local
            .format("%Y-%m-%dT%H:%M%:z")
            .to_string())
    }
}

impl Window {
    /// A calendar window by name (`daily`, `weekly`, `monthly`).
    pub fn calendar(name: &str) -> Option<Window> {
        let (cadence, default_retention) = match name {
            "daily" => (Cadence::Daily, 7),
            "weekly" => (Cadence::Weekly, 4),
            "monthly" => (Cadence::Monthly, 12),
            _ => return None,
        };
        Some(Window {
            name: name.to_owned(),
            cadence,
            default_retention: Some(default_retention),
        })
    }

    /// A product's own window: a period from each fire time of `schedule` to the next.
    pub fn scheduled(name: &str, schedule: Schedule, default_retention: u32) -> Window {
        Window {
            name: name.to_owned(),
            cadence: Cadence::Schedule(Box::new(schedule)),
            default_retention: Some(default_retention),
        }
    }

    /// A product's seasons: named ones (checked: in order, none overlapping), kept for good.
    pub fn named_seasons(mut seasons: Vec<Season>) -> Result<Window, String> {
        seasons.sort_by_key(|season| season.start);
        for season in &seasons {
            if season.start >= season.end {
                return Err(format!(
                    "season `{}` must start before it ends",
                    season.name
                ));
            }
        }
        for pair in seasons.windows(2) {
            if pair[0].end > pair[1].start {
                return Err(format!(
                    "seasons `{}` and `{}` overlap",
                    pair[0].name, pair[1].name
                ));
            }
            if pair[0].name == pair[1].name {
                return Err(format!("season `{}` is defined twice", pair[0].name));
            }
        }
        let mut names: Vec<&str> = seasons.iter().map(|s| s.name.as_str()).collect();
        names.sort_unstable();
        if let Some(pair) = names.windows(2).find(|pair| pair[0] == pair[1]) {
            return Err(format!("season `{}` is defined twice", pair[0]));
        }
        Ok(Window {
            name: SEASON.to_owned(),
            cadence: Cadence::Seasons(seasons),
            default_retention: None,
        })
    }

    /// A product's seasons on a schedule: each from one fire time to the next, named by its
    /// start, kept for good.
    pub fn scheduled_seasons(schedule: Schedule) -> Window {
        Window {
            name: SEASON.to_owned(),
            cadence: Cadence::Schedule(Box::new(schedule)),
            default_retention: None,
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Closed periods kept when a board says nothing; `None`: kept for good.
    pub fn default_retention(&self) -> Option<u32> {
        self.default_retention
    }

    /// The period the instant `at_ms` (Unix milliseconds) falls in; `None` between seasons.
    pub fn period_at(&self, at_ms: u64) -> Option<Period> {
        let at = i64::try_from(at_ms)
            .ok()
            .and_then(DateTime::<Utc>::from_timestamp_millis)
            .unwrap_or_default();
        match &self.cadence {
            Cadence::Daily | Cadence::Weekly | Cadence::Monthly => {
                let day = at.date_naive();
                let start = match self.cadence {
                    Cadence::Weekly => day
                        .checked_sub_days(Days::new(u64::from(
                            day.weekday().num_days_from_monday(),
                        )))
                        .unwrap_or(day),
                    Cadence::Monthly => day.with_day(1).unwrap_or(day),
                    _ => day,
                };
                Some(self.calendar_period(start))
            }
            Cadence::Schedule(schedule) => {
                let (start, end) = match schedule.last.containing(at) {
                    Some(period) => period,
                    None => {
                        let period = (schedule.start_at(at)?, schedule.next_after(at)?);
                        schedule.last.remember(period);
                        period
                    }
                };
                Some(self.period(schedule.label(start), start, end))
            }
            Cadence::Seasons(seasons) => seasons
                .iter()
                .find(|season| season.start <= at && at < season.end)
                .map(|season| self.season(season)),
        }
    }

    /// The period named `label`, if it is one of this window's (in its canonical form: `2026-1`
    /// does not name the month `2026-01`).
    pub fn parse_period(&self, label: &str) -> Option<Period> {
        match &self.cadence {
            Cadence::Daily => {
                let start = NaiveDate::parse_from_str(label, "%Y-%m-%d").ok()?;
                self.canonical(self.calendar_period(start), label)
            }
            Cadence::Weekly => {
                let (year, week) = label.split_once("-W")?;
                let (year, week) = (year.parse().ok()?, week.parse().ok()?);
                let start = NaiveDate::from_isoywd_opt(year, week, chrono::Weekday::Mon)?;
                self.canonical(self.calendar_period(start), label)
            }
            Cadence::Monthly => {
                let start = NaiveDate::parse_from_str(&format!("{label}-01"), "%Y-%m-%d").ok()?;
                self.canonical(self.calendar_period(start), label)
            }
            Cadence::Schedule(_) => {
                // A query string's `+` arrives as a space.
                let label = label.replace(' ', "+");
                let start = DateTime::parse_from_str(&label, "%Y-%m-%dT%H:%M%:z").ok()?;
                let start = start.with_timezone(&Utc);
                let period = self.period_at(u64::try_from(start.timestamp_millis()).ok()?)?;
                if period.start != start {
                    return None;
                }
                self.canonical(period, &label)
            }
            Cadence::Seasons(seasons) => seasons
                .iter()
                .find(|season| season.name == label)
                .map(|season| self.season(season)),
        }
    }

    /// The period just before `period`; `None` before the first season.
    pub fn previous(&self, period: &Period) -> Option<Period> {
        match &self.cadence {
            Cadence::Daily | Cadence::Weekly | Cadence::Monthly => {
                let start = period.start.date_naive();
                let start = match self.cadence {
                    Cadence::Daily => start.checked_sub_days(Days::new(1)),
                    Cadence::Weekly => start.checked_sub_days(Days::new(7)),
                    _ => start.checked_sub_months(Months::new(1)),
                };
                Some(self.calendar_period(start?))
            }
            Cadence::Schedule(schedule) => {
                let start = schedule.start_before(period.start)?;
                Some(self.period(schedule.label(start), start, period.start))
            }
            Cadence::Seasons(seasons) => seasons
                .iter()
                .take_while(|season| season.start < period.start)
                .last()
                .map(|season| self.season(season)),
        }
    }

    /// When `period`'s boards expire (Unix seconds): `retention` periods after it ends
    /// (calendar periods by the calendar, others by the period's own length); `None`: never.
    pub fn expires_at_s(&self, period: &Period, retention: Option<u32>) -> Option<u64> {
        let retention = retention?;
        let end = match self.cadence {
            Cadence::Daily | Cadence::Weekly | Cadence::Monthly => {
                let mut end = period.start.date_naive();
                for _ in 0..=retention {
                    end = self.calendar_end(end);
                }
                midnight(end)
            }
            _ => {
                let length = period.end - period.start;
                (0..retention).fold(period.end, |end, _| {
                    end.checked_add_signed(length).unwrap_or(end)
                })
            }
        };
        Some(u64::try_from(end.timestamp()).unwrap_or(0))
    }

    /// How a period's label is written, for error messages.
    pub fn label_format(&self) -> String {
        match &self.cadence {
            Cadence::Daily => "YYYY-MM-DD".into(),
            Cadence::Weekly => "YYYY-Www (ISO week)".into(),
            Cadence::Monthly => "YYYY-MM".into(),
            Cadence::Schedule(schedule) => format!(
                "a period's start, YYYY-MM-DDTHH:MM±HH:MM, by `{}` in {}",
                schedule.pattern,
                schedule.zone.describe()
            ),
            Cadence::Seasons(seasons) => {
                let names: Vec<&str> = seasons.iter().map(|s| s.name.as_str()).collect();
                format!("a season's name: {}", names.join(", "))
            }
        }
    }

    /// What the window is, for the boards' description: its schedule and zone, or its seasons.
    pub fn describe(&self) -> serde_json::Value {
        match &self.cadence {
            Cadence::Daily | Cadence::Weekly | Cadence::Monthly => serde_json::json!({}),
            Cadence::Schedule(schedule) => serde_json::json!({
                "cron": schedule.pattern,
                "zone": schedule.zone.describe(),
            }),
            Cadence::Seasons(seasons) => serde_json::json!({
                "seasons": seasons.iter().map(|season| serde_json::json!({
                    "name": season.name,
                    "starts_at": rfc3339(season.start),
                    "ends_at": rfc3339(season.end),
                })).collect::<Vec<_>>(),
            }),
        }
    }

    fn calendar_period(&self, start: NaiveDate) -> Period {
        let label = match self.cadence {
            Cadence::Weekly => {
                let week = start.iso_week();
                format!("{}-W{:02}", week.year(), week.week())
            }
            Cadence::Monthly => start.format("%Y-%m").to_string(),
            _ => start.format("%Y-%m-%d").to_string(),
        };
        self.period(label, midnight(start), midnight(self.calendar_end(start)))
    }

    /// The first day after the calendar period that starts on `start`.
    fn calendar_end(&self, start: NaiveDate) -> NaiveDate {
        let end = match self.cadence {
            Cadence::Weekly => start.checked_add_days(Days::new(7)),
            Cadence::Monthly => start.checked_add_months(Months::new(1)),
            _ => start.checked_add_days(Days::new(1)),
        };
        end.unwrap_or(NaiveDate::MAX)
    }

    fn season(&self, season: &Season) -> Period {
        self.period(season.name.clone(), season.start, season.end)
    }

    fn period(&self, label: String, start: DateTime<Utc>, end: DateTime<Utc>) -> Period {
        Period {
            window: self.name.clone(),
            label,
            start,
            end,
        }
    }

    fn canonical(&self, period: Period, label: &str) -> Option<Period> {
        (period.label == label).then_some(period)
    }
}

fn midnight(day: NaiveDate) -> DateTime<Utc> {
    Utc.from_utc_datetime(&day.and_time(NaiveTime::MIN))
}

/// RFC 3339 in UTC, to the second (`2026-11-26T00:00:00Z`).
pub fn rfc3339(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
}

impl Period {
    /// The period's name in keys and the API.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// `window:label`, the suffix that tells a period's board keys apart.
    pub fn key_suffix(&self) -> String {
        format!("{}:{}", self.window, self.label)
    }

    /// When the period starts, RFC 3339 in UTC.
    pub fn starts_at(&self) -> String {
        rfc3339(self.start)
    }

    /// When the period ends, RFC 3339 in UTC (`2026-11-26T00:00:00Z`).
    pub fn ends_at(&self) -> String {
        rfc3339(self.end)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // 2026-11-25T19:45:00Z, a Wednesday.
    const WEDNESDAY: u64 = 1_795_635_900_000;

    fn window(name: &str) -> Window {
        Window::calendar(name).unwrap()
    }

    fn label(window: &Window, at_ms: u64) -> String {
        window.period_at(at_ms).unwrap().label().to_owned()
    }

    fn at(text: &str) -> u64 {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .timestamp_millis()
            .try_into()
            .unwrap()
    }

    #[test]
    fn periods_are_utc_days_iso_weeks_and_months() {
        assert_eq!(label(&window("daily"), WEDNESDAY), "2026-11-25");
        assert_eq!(label(&window("weekly"), WEDNESDAY), "2026-W48");
        assert_eq!(label(&window("monthly"), WEDNESDAY), "2026-11");
        // The last millisecond of a day is still that day; the next is the next day.
        let midnight = 1_795_651_200_000; // 2026-11-26T00:00:00Z
        assert_eq!(label(&window("daily"), midnight - 1), "2026-11-25");
        assert_eq!(label(&window("daily"), midnight), "2026-11-26");
    }

    #[test]
    fn iso_weeks_cross_years() {
        // 2027-01-01 is a Friday in ISO week 53 of 2026.
        let weekly = window("weekly");
        let week = weekly.period_at(1_798_761_600_000).unwrap();
        assert_eq!(week.label(), "2026-W53");
        assert_eq!(weekly.parse_period("2026-W53"), Some(week));
    }

    #[test]
    fn labels_round_trip_and_only_canonical_ones_parse() {
        for name in CALENDAR {
            let window = window(name);
            let period = window.period_at(WEDNESDAY).unwrap();
            assert_eq!(window.parse_period(period.label()), Some(period));
        }
        assert_eq!(window("monthly").parse_period("2026-1"), None);
        assert_eq!(window("daily").parse_period("2026-02-30"), None);
        assert_eq!(window("weekly").parse_period("2026-W54"), None);
        assert_eq!(window("daily").parse_period("yesterday"), None);
    }

    #[test]
    fn periods_say_when_they_start_end_and_come_before() {
        let day = window("daily").period_at(WEDNESDAY).unwrap();
        assert_eq!(day.starts_at(), "2026-11-25T00:00:00Z");
        assert_eq!(day.ends_at(), "2026-11-26T00:00:00Z");
        let week = window("weekly").period_at(WEDNESDAY).unwrap();
        assert_eq!(week.ends_at(), "2026-11-30T00:00:00Z");
        assert_eq!(
            window("weekly").previous(&week).unwrap().label(),
            "2026-W47"
        );
        let month = window("monthly").period_at(WEDNESDAY).unwrap();
        assert_eq!(month.ends_at(), "2026-12-01T00:00:00Z");
        assert_eq!(
            window("monthly").previous(&month).unwrap().key_suffix(),
            "monthly:2026-10"
        );
    }

    #[test]
    fn periods_expire_retention_periods_after_they_end() {
        let daily = window("daily");
        let day = daily.period_at(WEDNESDAY).unwrap();
        // Ends 2026-11-26; kept 7 more days: expires 2026-12-03T00:00:00Z.
        assert_eq!(daily.expires_at_s(&day, Some(7)), Some(1_796_256_000));
        let monthly = window("monthly");
        let month = monthly.period_at(WEDNESDAY).unwrap();
        // Ends 2026-12-01; kept 1 more month: expires 2027-01-01T00:00:00Z.
        assert_eq!(monthly.expires_at_s(&month, Some(1)), Some(1_798_761_600));
        let weekly = window("weekly");
        let week = weekly.period_at(WEDNESDAY).unwrap();
        // The week ends Monday 2026-11-30T00:00:00Z.
        assert_eq!(weekly.expires_at_s(&week, Some(0)), Some(1_795_996_800));
        assert_eq!(weekly.expires_at_s(&week, None), None);
    }

    fn tokyo_day() -> Window {
        let zone = Zone::parse(None, Some("+09:00")).unwrap();
        Window::scheduled("tokyo", Schedule::parse("0 4 * * *", zone).unwrap(), 3)
    }

    #[test]
    fn a_schedule_rolls_over_at_its_fire_time_in_its_zone() {
        let tokyo = tokyo_day();
        // 04:00 in Tokyo is 19:00 UTC the day before.
        let boundary = at("2026-11-30T19:00:00Z");
        let before = tokyo.period_at(boundary - 1).unwrap();
        let after = tokyo.period_at(boundary).unwrap();
        assert_eq!(before.label(), "2026-11-30T04:00+09:00");
        assert_eq!(after.label(), "2026-12-01T04:00+09:00");
        assert_eq!(after.starts_at(), "2026-11-30T19:00:00Z");
        assert_eq!(after.ends_at(), "2026-12-01T19:00:00Z");
        assert_eq!(tokyo.previous(&after), Some(before.clone()));
        assert_eq!(after.key_suffix(), "tokyo:2026-12-01T04:00+09:00");
        // Labels parse back, also with the `+` a query string turns into a space; only starts do.
        assert_eq!(
            tokyo.parse_period("2026-12-01T04:00+09:00"),
            Some(after.clone())
        );
        assert_eq!(
            tokyo.parse_period("2026-12-01T04:00 09:00"),
            Some(after.clone())
        );
        assert_eq!(tokyo.parse_period("2026-12-01T05:00+09:00"), None);
        assert_eq!(tokyo.parse_period("2026-11-30T19:00+00:00"), None);
        // Kept 3 more days after it ends.
        assert_eq!(
            tokyo.expires_at_s(&after, tokyo.default_retention()),
            Some(at("2026-12-04T19:00:00Z") / 1000)
        );
    }

    #[test]
    fn a_named_zone_follows_daylight_saving_time() {
        let zone = Zone::parse(Some("Europe/Berlin"), None).unwrap();
        let berlin = Window::scheduled("b", Schedule::parse("0 6 * * *", zone).unwrap(), 1);
        // Summer time (UTC+2) ends on 2026-10-25: 06:00 is 04:00 UTC before, 05:00 UTC after.
        let saturday = berlin.period_at(at("2026-10-24T12:00:00Z")).unwrap();
        assert_eq!(saturday.label(), "2026-10-24T06:00+02:00");
        assert_eq!(saturday.starts_at(), "2026-10-24T04:00:00Z");
        let sunday = berlin.period_at(at("2026-10-25T12:00:00Z")).unwrap();
        assert_eq!(sunday.label(), "2026-10-25T06:00+01:00");
        assert_eq!(sunday.starts_at(), "2026-10-25T05:00:00Z");
        assert_eq!(saturday.ends_at(), sunday.starts_at());
    }

    #[test]
    fn schedules_are_checked() {
        let utc = Zone::parse(None, None).unwrap();
        assert!(Schedule::parse("@weekly", utc).is_ok());
        assert!(Schedule::parse("0 0 1 */3 *", utc).is_ok());
        for bad in [
            "* * * * *",
            "*/5 * * * *",
            "0 0 * *",
            "0 0 0 * * *",
            "0 25 * * *",
            "0 0 30 2 *",
        ] {
            assert!(Schedule::parse(bad, utc).is_err(), "{bad}");
        }
        assert!(Zone::parse(Some("Mars/Olympus"), None).is_err());
        assert!(Zone::parse(None, Some("9")).is_err());
        assert!(Zone::parse(Some("UTC"), Some("+01:00")).is_err());
    }

    #[test]
    fn seasons_are_named_periods_with_gaps() {
        let season = |name: &str, start: &str, end: &str| Season {
            name: name.into(),
            start: DateTime::parse_from_rfc3339(start).unwrap().into(),
            end: DateTime::parse_from_rfc3339(end).unwrap().into(),
        };
        let seasons = Window::named_seasons(vec![
            season("s2", "2027-01-01T00:00:00Z", "2027-02-01T00:00:00Z"),
            season("s1", "2026-12-01T00:00:00Z", "2026-12-25T00:00:00Z"),
        ])
        .unwrap();
        assert_eq!(label(&seasons, at("2026-12-24T23:59:59Z")), "s1");
        assert_eq!(seasons.period_at(at("2026-12-25T00:00:00Z")), None);
        let s2 = seasons.period_at(at("2027-01-01T00:00:00Z")).unwrap();
        assert_eq!(s2.key_suffix(), "season:s2");
        assert_eq!(seasons.previous(&s2).unwrap().label(), "s1");
        assert_eq!(seasons.parse_period("s2"), Some(s2.clone()));
        assert_eq!(seasons.parse_period("s3"), None);
        assert_eq!(seasons.expires_at_s(&s2, None), None);
        let overlapping = Window::named_seasons(vec![
            season("a", "2026-12-01T00:00:00Z", "2027-01-02T00:00:00Z"),
            season("b", "2027-01-01T00:00:00Z", "2027-02-01T00:00:00Z"),
        ]);
        assert_eq!(overlapping.unwrap_err(), "seasons `a` and `b` overlap");
    }
}
