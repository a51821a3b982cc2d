//! The boards a product declares (in the games file): what each board counts or rates, and how
//! an event moves players on them.

use std::collections::BTreeMap;

use serde_json::json;

use crate::core::effects::{Aggregate, Change, Changes, ColumnUpdate, ColumnValue, PeriodTarget};
use crate::core::event::{GameEvent, ReasonKind, Rejection};
use crate::core::ids::PlayerId;
use crate::core::validation::Validation;

use super::ratings::{
    Inactivity, OpenPeriod, PeriodResult, PeriodStart, RatedTeam, Rating, RatingSystem,
};
use super::scoring::{BoardRejection, ScoreContext, ScoringHandler};
use super::windows::{SEASON, WindowRule};

/// Field values an event must have for a rule to apply (`type = "gameplay"`, …).
pub type Condition = BTreeMap<String, String>;

/// Whether `event` has every field of `condition` with that value.
pub fn matches(event: &GameEvent, condition: &Condition) -> bool {
    condition
        .iter()
        .all(|(field, value)| event.field(field) == Some(value.as_str()))
}

/// Largest magnitude a numeric field may have. Sums of values this size cannot overflow to
/// infinity in any realistic number of events, which Redis would refuse mid-commit.
pub const MAX_FIELD_MAGNITUDE: f64 = 1e15;

/// A numeric field's value, or a rejection naming it.
pub fn number(event: &GameEvent, field: &str) -> Result<f64, Rejection> {
    let raw = event.required(field)?;
    raw.parse::<f64>()
        .ok()
        .filter(|value| value.abs() <= MAX_FIELD_MAGNITUDE)
        .ok_or_else(|| Rejection::invalid_value(field, raw, "a number between -1e15 and 1e15"))
}

/// The player and value a field rule takes from `event`: `None` unless it matches `when`;
/// `field`'s number (1 without a field) for the player in field `player`.
fn field_value(
    event: &GameEvent,
    when: &Condition,
    player: &str,
    field: &Option<String>,
) -> Result<Option<(PlayerId, f64)>, Rejection> {
    if !matches(event, when) {
        return Ok(None);
    }
    let player = event.player(player)?;
    let value = match field {
        Some(field) => number(event, field)?,
        None => 1.0,
    };
    Ok(Some((player, value)))
}

/// A day in milliseconds (inactivity and rating periods are whole days).
pub const DAY_MS: u64 = 86_400_000;

/// How one board scores.
#[derive(Debug, Clone, PartialEq)]
pub enum BoardRule {
    /// +1 per match won alone; every other participant appears with their current score.
    Wins,
    /// Per event matching `when`: the player in field `player` gets `field`'s value (1 when no
    /// field) combined by `how` — a counter, a sum, a best or worst value, or the last one.
    Field {
        when: Condition,
        player: String,
        field: Option<String>,
        how: Aggregate,
        /// Values an event may bring (a counter's 1 is never checked).
        validate: Validation,
    },
    /// Several score columns, ranked by the first, ties by the next and so on, then by who
    /// reached the row first.
    Columns(Vec<Column>),
    /// A skill rating, updated by every match outcome.
    Rated {
        system: RatingSystem,
        /// Matches rated before a player appears on the board (they are rated meanwhile).
        min_matches: u64,
        /// Rating history entries kept per player.
        history: usize,
        /// How an inactive player's deviation grows (`None`: it does not).
        inactivity: Option<Inactivity>,
        /// Glicko-2's rating period, if matches are rated together per period (each period
        /// without games then grows the deviation by Glickman's step).
        rating_period_ms: Option<u64>,
        /// How far a player's first match of a season pulls their rating back to the initial
        /// one before rating it (`None`: the board keeps no seasons or no reset).
        season_reset: Option<f64>,
    },
}

/// One score column of a board with several.
#[derive(Debug, Clone, PartialEq)]
pub struct Column {
    pub name: String,
    /// Lower values rank first (default: higher first).
    pub ascending: bool,
    pub source: ColumnSource,
}

/// What a column counts.
#[derive(Debug, Clone, PartialEq)]
pub enum ColumnSource {
    /// +1 per match won alone (every participant gets a row).
    Wins,
    /// Per event matching `when`, the player in field `player`: `field`'s value (1 when no
    /// field) combined by `how`.
    Field {
        when: Condition,
        player: String,
        field: Option<String>,
        how: Aggregate,
    },
    /// The player's stat of this name, as each event that writes it leaves it.
    Stat(String),
}

impl Column {
    pub fn how(&self) -> Aggregate {
        match &self.source {
            ColumnSource::Wins => Aggregate::Sum,
            ColumnSource::Field { how, .. } => *how,
            ColumnSource::Stat(_) => Aggregate::Last,
        }
    }

    /// The column's part of a row update with `value` from the event (stat columns read the
    /// stat whatever the event brings).
    fn update(&self, value: Option<f64>) -> ColumnUpdate {
        ColumnUpdate {
            how: self.how(),
            ascending: self.ascending,
            value: match (&self.source, value) {
                (ColumnSource::Stat(stat), _) => ColumnValue::Stat(stat.clone()),
                (_, Some(value)) => ColumnValue::Given(value),
                (_, None) => ColumnValue::Keep,
            },
        }
    }

    fn describe(&self) -> serde_json::Value {
        let mut description = match &self.source {
            ColumnSource::Wins => json!({ "kind": "wins" }),
            ColumnSource::Stat(stat) => json!({ "kind": "stat", "stat": stat }),
            ColumnSource::Field {
                when,
                player,
                field,
                how,
            } => json!({
                "kind": kind_name(*how, field.is_some()),
                "when": when,
                "player": player,
                "field": field,
            }),
        };
        description["name"] = json!(self.name);
        description["order"] = json!(if self.ascending { "asc" } else { "desc" });
        description
    }
}

/// The board kind of a field aggregate (`count` is a sum without a field).
fn kind_name(how: Aggregate, has_field: bool) -> &'static str {
    match (how, has_field) {
        (Aggregate::Sum, false) => "count",
        (Aggregate::Sum, true) => "sum",
        (Aggregate::Max, _) => "max",
        (Aggregate::Min, _) => "min",
        (Aggregate::Last, _) => "last",
    }
}

/// One leaderboard of a product.
#[derive(Debug, Clone, PartialEq)]
pub struct Board {
    pub name: String,
    pub rule: BoardRule,
    /// Period boards kept next to the all-time one.
    pub windows: Vec<WindowRule>,
    /// The top whose changes the board writes to the product's change feed, with its
    /// players' personal bests and rating changes (0: the board writes nothing there).
    pub feed_top: u32,
}

impl Board {
    /// The season `at_ms` falls in, if the board keeps seasons and one is running.
    fn season_at(&self, at_ms: u64) -> Option<String> {
        let rule = self
            .windows
            .iter()
            .find(|rule| rule.window.name() == SEASON)?;
        Some(rule.window.period_at(at_ms)?.label().to_owned())
    }

    /// The boards a change at `at_ms` goes to: all-time (`None`) and the period of each window
    /// (the season's only during a season). Computed once per board and event, then shared by
    /// its players' changes.
    fn targets(&self, at_ms: u64) -> Vec<Option<PeriodTarget>> {
        std::iter::once(None)
            .chain(
                self.windows
                    .iter()
                    .filter_map(|rule| rule.target(at_ms, self.feed_top > 0))
                    .map(Some),
            )
            .collect()
    }

    /// Updates `player`'s row on every target of a board with several columns.
    fn score_columns(
        &self,
        changes: &mut Changes,
        targets: &[Option<PeriodTarget>],
        player: &PlayerId,
        updates: &[ColumnUpdate],
    ) {
        for period in targets {
            changes.push(Change::ScoreColumns {
                board: self.name.clone(),
                period: period.clone(),
                player: player.clone(),
                columns: updates.to_vec(),
            });
        }
    }

    /// Combines `value` into `player`'s score on every target of the board.
    fn score(
        &self,
        cx: &mut ScoreContext<'_>,
        targets: &[Option<PeriodTarget>],
        player: &PlayerId,
        how: Aggregate,
        value: f64,
    ) {
        for period in targets {
            cx.changes.push(Change::Score {
                board: self.name.clone(),
                period: period.clone(),
                player: player.clone(),
                how,
                value,
                feed_top: self.feed_top,
            });
        }
    }

    /// Puts `player` on every target of the board unless already there.
    fn ensure(
        &self,
        cx: &mut ScoreContext<'_>,
        targets: &[Option<PeriodTarget>],
        player: &PlayerId,
    ) {
        for period in targets {
            cx.changes.push(Change::EnsureOnBoard {
                board: self.name.clone(),
                period: period.clone(),
                player: player.clone(),
                feed_top: self.feed_top,
            });
        }
    }
}

/// All boards of one product.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct BoardSet {
    boards: Vec<Board>,
}

impl BoardSet {
    pub fn new(boards: Vec<Board>) -> Self {
        Self { boards }
    }

    pub fn boards(&self) -> &[Board] {
        &self.boards
    }

    /// The event fields the boards read a player id from (besides match outcomes).
    pub fn player_fields(&self) -> impl Iterator<Item = &str> {
        self.boards.iter().flat_map(|board| {
            let fields: Vec<&str> = match &board.rule {
                BoardRule::Field { player, .. } => vec![player.as_str()],
                BoardRule::Columns(columns) => columns
                    .iter()
                    .filter_map(|column| match &column.source {
                        ColumnSource::Field { player, .. } => Some(player.as_str()),
                        ColumnSource::Wins | ColumnSource::Stat(_) => None,
                    })
                    .collect(),
                _ => Vec::new(),
            };
            fields
        })
    }

    /// The score columns of board `name` as the readers need them (none: one score).
    pub fn columns(&self, name: &str) -> crate::core::keys::Columns {
        match self.get(name).map(|board| &board.rule) {
            Some(BoardRule::Columns(columns)) => crate::core::keys::Columns(
                columns
                    .iter()
                    .map(|column| (column.name.clone(), column.ascending))
                    .collect(),
            ),
            _ => crate::core::keys::Columns::default(),
        }
    }

    pub fn get(&self, name: &str) -> Option<&Board> {
        self.boards.iter().find(|board| board.name == name)
    }
}

impl ScoringHandler for BoardSet {
    fn score_stats(&self, at_ms: u64, changes: &mut Changes) {
        for board in &self.boards {
            let BoardRule::Columns(columns) = &board.rule else {
                continue;
            };
            let stats: Vec<&str> = columns
                .iter()
                .filter_map(|column| match &column.source {
                    ColumnSource::Stat(stat) => Some(stat.as_str()),
                    _ => None,
                })
                .collect();
            if stats.is_empty() {
                continue;
            }
            // Players whose row the event already updates read their stats there.
            let mut players: Vec<PlayerId> = Vec::new();
            let mut updated: Vec<&PlayerId> = Vec::new();
            for change in changes.as_slice() {
                if let Change::ScoreColumns {
                    board: name,
                    player,
                    ..
                } = change
                    && *name == board.name
                {
                    updated.push(player);
                }
                for (player, stat) in change.stats_written() {
                    if stats.contains(&stat) && !players.contains(player) {
                        players.push(player.clone());
                    }
                }
            }
            players.retain(|player| !updated.contains(&player));
            if players.is_empty() {
                continue;
            }
            let targets = board.targets(at_ms);
            let updates: Vec<ColumnUpdate> =
                columns.iter().map(|column| column.update(None)).collect();
            for player in &players {
                board.score_columns(changes, &targets, player, &updates);
            }
        }
    }

    fn rating_boards(&self) -> Vec<String> {
        self.boards
            .iter()
            .filter(|board| matches!(board.rule, BoardRule::Rated { .. }))
            .map(|board| board.name.clone())
            .collect()
    }

    fn scored_players(&self, event: &GameEvent) -> Vec<(String, PlayerId)> {
        self.boards
            .iter()
            .filter_map(|board| match &board.rule {
                BoardRule::Field {
                    when,
                    player,
                    how,
                    validate,
                    ..
                } if validate.reads_current(*how) && matches(event, when) => {
                    Some((board.name.clone(), event.player(player).ok()?))
                }
                _ => None,
            })
            .collect()
    }

    fn score(&self, event: &GameEvent, cx: &mut ScoreContext<'_>) -> Result<(), Rejection> {
        for board in &self.boards {
            match &board.rule {
                BoardRule::Wins => {
                    let Some(outcome) = event.outcome() else {
                        continue;
                    };
                    let winner = outcome.sole_winner();
                    let targets = board.targets(cx.at_ms);
                    for (index, team) in outcome.teams.iter().enumerate() {
                        for player in &team.players {
                            if Some(index) == winner {
                                board.score(cx, &targets, player, Aggregate::Sum, 1.0);
                            } else {
                                board.ensure(cx, &targets, player);
                            }
                        }
                    }
                }
                BoardRule::Field {
                    when,
                    player,
                    field,
                    how,
                    validate,
                } => {
                    let Some((player, value)) = field_value(event, when, player, field)? else {
                        continue;
                    };
                    let reads_current = validate.reads_current(*how);
                    let current = reads_current
                        .then(|| cx.scores.get(&board.name, &player))
                        .flatten();
                    if let Err(violation) = validate.check(*how, value, current) {
                        cx.rejections.push(BoardRejection {
                            board: board.name.clone(),
                            kind: violation.kind,
                            reason: format!(
                                "board `{}`: field `{}` of player {player}: {}",
                                board.name,
                                field.as_deref().unwrap_or_default(),
                                violation.text
                            ),
                        });
                        continue;
                    }
                    if reads_current {
                        cx.scores
                            .set(&board.name, &player, how.combine(current, value));
                    }
                    let targets = board.targets(cx.at_ms);
                    board.score(cx, &targets, &player, *how, value);
                }
                BoardRule::Columns(columns) => {
                    // Each player's values, in the order the players first appear.
                    let mut rows: Vec<(PlayerId, Vec<Option<f64>>)> = Vec::new();
                    let row_of = |rows: &mut Vec<(PlayerId, Vec<Option<f64>>)>,
                                  player: &PlayerId|
                     -> usize {
                        match rows.iter().position(|(p, _)| p == player) {
                            Some(at) => at,
                            None => {
                                rows.push((player.clone(), vec![None; columns.len()]));
                                rows.len() - 1
                            }
                        }
                    };
                    for (index, column) in columns.iter().enumerate() {
                        match &column.source {
                            ColumnSource::Wins => {
                                let Some(outcome) = event.outcome() else {
                                    continue;
                                };
                                let winner = outcome.sole_winner();
                                for (team_index, team) in outcome.teams.iter().enumerate() {
                                    for player in &team.players {
                                        let at = row_of(&mut rows, player);
                                        if Some(team_index) == winner {
                                            rows[at].1[index] = Some(1.0);
                                        }
                                    }
                                }
                            }
                            ColumnSource::Field {
                                when,
                                player,
                                field,
                                ..
                            } => {
                                if let Some((player, value)) =
                                    field_value(event, when, player, field)?
                                {
                                    let at = row_of(&mut rows, &player);
                                    rows[at].1[index] = Some(value);
                                }
                            }
                            // Written after the stats handlers: see `score_stats`.
                            ColumnSource::Stat(_) => {}
                        }
                    }
                    if rows.is_empty() {
                        continue;
                    }
                    let targets = board.targets(cx.at_ms);
                    for (player, values) in rows {
                        let updates: Vec<ColumnUpdate> = columns
                            .iter()
                            .zip(values)
                            .map(|(column, value)| column.update(value))
                            .collect();
                        board.score_columns(cx.changes, &targets, &player, &updates);
                    }
                }
                BoardRule::Rated {
                    system,
                    min_matches,
                    history,
                    inactivity,
                    rating_period_ms,
                    season_reset,
                } => {
                    let Some(outcome) = event.outcome() else {
                        continue;
                    };
                    let at_ms = cx.at_ms;
                    // The season the match is in, on a board that resets ratings per season.
                    let season =
                        season_reset.and_then(|fraction| Some((fraction, board.season_at(at_ms)?)));
                    // A player's first match of a season starts from their reset rating.
                    let reset = |rating: Rating| match &season {
                        Some((fraction, season))
                            if rating.matches > 0 && rating.season.as_ref() != Some(season) =>
                        {
                            system.soft_reset(rating, *fraction)
                        }
                        _ => rating,
                    };
                    // The state the match is rated from, at the event's time.
                    let stored = |rating: Rating| match (rating_period_ms, inactivity) {
                        (Some(period_ms), _) => system.in_period(rating, at_ms / period_ms),
                        (None, Some(inactivity)) => system.decayed(
                            Rating {
                                period: None,
                                ..rating
                            },
                            inactivity,
                            at_ms,
                        ),
                        (None, None) => Rating {
                            period: None,
                            ..rating
                        },
                    };
                    let teams: Vec<RatedTeam> = outcome
                        .teams
                        .iter()
                        .map(|team| {
                            let ratings = team
                                .players
                                .iter()
                                .map(|p| {
                                    reset(stored(
                                        cx.ratings.get(&board.name, p).unwrap_or(system.initial()),
                                    ))
                                })
                                .collect();
                            (ratings, team.place)
                        })
                        .collect();
                    let rated = match system.rate(&teams) {
                        Ok(rated) => rated,
                        Err(unsupported) => {
                            cx.rejections.push(BoardRejection {
                                board: board.name.clone(),
                                kind: ReasonKind::UnratableOutcome,
                                reason: format!("board `{}`: {unsupported}", board.name),
                            });
                            continue;
                        }
                    };
                    let before: Vec<Vec<Rating>> = teams.iter().map(|(r, _)| r.clone()).collect();
                    // Rating succeeded, so the system can also predict this line-up.
                    let expected = system.win_probabilities(&before).unwrap_or_default();
                    let targets = board.targets(cx.at_ms);
                    for (index, team) in outcome.teams.iter().enumerate() {
                        for (slot, player) in team.players.iter().enumerate() {
                            let old = &before[index][slot];
                            let mut new = rated[index][slot].clone();
                            if inactivity.is_some() {
                                new.rated_at_ms = Some(at_ms);
                            }
                            if season_reset.is_some() {
                                // Between seasons a player stays in the one they were in.
                                new.season = match &season {
                                    Some((_, season)) => Some(season.clone()),
                                    None => old.season.clone(),
                                };
                            }
                            cx.changes.push(Change::Rating {
                                board: board.name.clone(),
                                player: player.clone(),
                                fields: rating_fields(&new),
                            });
                            if board.feed_top > 0 {
                                cx.changes.push(Change::Feed {
                                    kind: "rating_changed",
                                    fields: vec![
                                        ("board", board.name.clone()),
                                        ("user_id", player.to_string()),
                                        ("before", system.display(old).to_string()),
                                        ("after", system.display(&new).to_string()),
                                        ("matches", new.matches.to_string()),
                                    ],
                                });
                            }
                            if new.matches >= *min_matches {
                                let display = system.display(&new);
                                board.score(cx, &targets, player, Aggregate::Last, display);
                            }
                            if *history > 0 {
                                let entry = json!({
                                    "id": cx.id,
                                    "at_ms": cx.at_ms,
                                    "result": format!("{:?}", outcome.result_of(index)).to_lowercase(),
                                    "place": team.place,
                                    "expected": expected.get(index),
                                    "before": system.display(old),
                                    "after": system.display(&new),
                                    "change": system.display(&new) - system.display(old),
                                    "state_before": rating_json(old),
                                    "state_after": rating_json(&new),
                                });
                                cx.changes.push(Change::History {
                                    board: board.name.clone(),
                                    player: player.clone(),
                                    entry: entry.to_string(),
                                    limit: *history,
                                });
                            }
                            cx.ratings.set(&board.name, player, new);
                        }
                    }
                }
            }
        }
        Ok(())
    }
}

/// The hash fields a rating is stored as. `f64`'s `Display` is the shortest text that parses
/// back to the same value, so stored ratings reload bit for bit.
pub fn rating_fields(rating: &Rating) -> Vec<(&'static str, String)> {
    let mut fields = vec![
        ("rating", rating.rating.to_string()),
        ("deviation", rating.deviation.to_string()),
        ("volatility", rating.volatility.to_string()),
        ("matches", rating.matches.to_string()),
    ];
    if let Some(at_ms) = rating.rated_at_ms {
        fields.push(("rated_at_ms", at_ms.to_string()));
    }
    if let Some(season) = &rating.season {
        fields.push(("season", season.clone()));
    }
    if let Some(period) = &rating.period {
        let start = &period.start;
        let results: Vec<String> = period
            .results
            .iter()
            .map(|r| format!("{} {} {}", r.opponent_rating, r.opponent_deviation, r.score))
            .collect();
        fields.extend([
            ("period", period.index.to_string()),
            (
                "period_start",
                format!("{} {} {}", start.rating, start.deviation, start.volatility),
            ),
            ("period_results", results.join(",")),
        ]);
    }
    fields
}

/// Three numbers separated by spaces, as `rating_fields` writes a period's start and results.
fn three_numbers(text: &str) -> Option<[f64; 3]> {
    let mut numbers = text.split(' ').map(|n| n.parse::<f64>().ok());
    let three = [numbers.next()??, numbers.next()??, numbers.next()??];
    numbers.next().is_none().then_some(three)
}

/// A rating period from its hash fields; `Some(None)` when the state has none, `None` when
/// they are damaged.
fn period_from_fields(
    fields: &std::collections::HashMap<String, String>,
) -> Option<Option<OpenPeriod>> {
    let Some(index) = fields.get("period") else {
        return Some(None);
    };
    let [rating, deviation, volatility] = three_numbers(fields.get("period_start")?)?;
    let results = match fields.get("period_results").map(String::as_str) {
        None | Some("") => Vec::new(),
        Some(results) => results
            .split(',')
            .map(|result| {
                let [opponent_rating, opponent_deviation, score] = three_numbers(result)?;
                Some(PeriodResult {
                    opponent_rating,
                    opponent_deviation,
                    score,
                })
            })
            .collect::<Option<Vec<_>>>()?,
    };
    Some(Some(OpenPeriod {
        index: index.parse().ok()?,
        start: PeriodStart {
            rating,
            deviation,
            volatility,
        },
        results,
    }))
}

/// Reads a rating back from its hash fields; `None` when absent or damaged.
pub fn rating_from_fields(fields: &std::collections::HashMap<String, String>) -> Option<Rating> {
    let get = |name: &str| fields.get(name).and_then(|v| v.parse::<f64>().ok());
    Some(Rating {
        rating: get("rating")?,
        deviation: get("deviation")?,
        volatility: get("volatility")?,
        matches: fields.get("matches")?.parse().ok()?,
        rated_at_ms: fields.get("rated_at_ms").and_then(|v| v.parse().ok()),
        season: fields.get("season").cloned(),
        period: period_from_fields(fields)?,
    })
}

/// A rating as JSON.
pub fn rating_json(rating: &Rating) -> serde_json::Value {
    json!({
        "rating": rating.rating,
        "deviation": rating.deviation,
        "volatility": rating.volatility,
        "matches": rating.matches,
    })
}

impl Board {
    /// The board's kind and settings, as the API shows them.
    pub fn describe(&self) -> serde_json::Value {
        let mut description = match &self.rule {
            BoardRule::Wins => json!({ "kind": "wins" }),
            BoardRule::Field {
                when,
                player,
                field,
                how,
                validate,
            } => {
                let kind = kind_name(*how, field.is_some());
                let mut description =
                    json!({ "kind": kind, "when": when, "player": player, "field": field });
                if *validate != Validation::default() {
                    description["validate"] = json!(validate);
                }
                description
            }
            BoardRule::Columns(columns) => json!({
                "kind": "columns",
                "columns": columns.iter().map(Column::describe).collect::<Vec<_>>(),
            }),
            BoardRule::Rated {
                system,
                min_matches,
                history,
                inactivity,
                rating_period_ms,
                season_reset,
            } => {
                let mut settings = match *system {
                    RatingSystem::Elo {
                        initial_rating,
                        k_factor,
                    } => json!({ "initial_rating": initial_rating, "k_factor": k_factor }),
                    RatingSystem::Glicko2 {
                        initial_rating,
                        initial_deviation,
                        initial_volatility,
                        tau,
                    } => json!({
                        "initial_rating": initial_rating,
                        "initial_deviation": initial_deviation,
                        "initial_volatility": initial_volatility,
                        "tau": tau,
                    }),
                    RatingSystem::TrueSkill {
                        mu,
                        sigma,
                        beta,
                        draw_probability,
                        dynamics,
                        display,
                    } => json!({
                        "mu": mu, "sigma": sigma, "beta": beta,
                        "draw_probability": draw_probability, "dynamics": dynamics,
                        "display": display,
                    }),
                    RatingSystem::WengLin {
                        mu,
                        sigma,
                        beta,
                        display,
                    } => json!({ "mu": mu, "sigma": sigma, "beta": beta, "display": display }),
                };
                settings["kind"] = json!(system.name());
                settings["min_matches"] = json!(min_matches);
                settings["history"] = json!(history);
                if let Some(period_ms) = rating_period_ms {
                    settings["rating_period_days"] = json!(period_ms / DAY_MS);
                }
                if let Some(fraction) = season_reset {
                    settings["season_reset"] = json!(fraction);
                }
                if let Some(inactivity) = inactivity {
                    settings["inactivity_days"] = json!(inactivity.period_ms / DAY_MS);
                    if let Some(growth) = inactivity.growth {
                        settings["inactivity_growth"] = json!(growth);
                    }
                }
                settings
            }
        };
        description["name"] = json!(self.name);
        if self.feed_top > 0 {
            description["feed"] = json!({ "top": self.feed_top });
        }
        description["windows"] = self
            .windows
            .iter()
            .map(|rule| {
                let mut window = rule.window.describe();
                window["window"] = json!(rule.window.name());
                window["retention"] = json!(rule.retention);
                window
            })
            .collect();
        description
    }
}
