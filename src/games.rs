//! The games file: per product, its leaderboards (kind and parameters) and its stats rules,
//! and what happens to products it does not list. Parsed and validated here, at start-up:
//! a bad file stops the tracker with a message naming the product, the field and the problem.
//!
//! Without a file, the built-in `config/games.toml` applies (exrps's weapon stats; defaults
//! for everything else).

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::sync::Arc;

use serde::Deserialize;

use crate::core::effects::Aggregate;
use crate::core::ids::ProductId;
use crate::core::keys::STAMP_FIELD_PREFIX;
use crate::core::validation::Validation;
use crate::leaderboards::boards::{
    Board, BoardRule, BoardSet, Column, ColumnSource, Condition, DAY_MS,
};
use crate::leaderboards::ratings::{Display, Inactivity, RatingSystem, defaults};
use crate::leaderboards::scoring::{RejectUnknown, ScoringHandler, WINS_BOARD};
use crate::leaderboards::windows::{self, Schedule, Season, Window, WindowRule, Zone};
use crate::player_stats::handlers::StatsHandler;
use crate::player_stats::rules::{RuleSet, StatRule};

/// The built-in games configuration.
pub const BUILTIN: &str = include_str!("../config/games.toml");

/// A games file that cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("games file {source_name}: {message}")]
pub struct GamesError {
    source_name: String,
    message: String,
}

/// What happens to events of products the file does not list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UnknownProducts {
    /// A `wins` board and games/wins/losses/draws stats.
    #[default]
    Default,
    /// Dead-letter them.
    Reject,
}

/// One product's configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct ProductGames {
    pub boards: BoardSet,
    pub stats: RuleSet,
}

impl ProductGames {
    /// Every event field that names a player: the event model's (`winner_id`, `loser_id`,
    /// `p1_id`, `p2_id`, `user_id`, `player_id`, `round_winner_id`, `round_loser_id`; the
    /// players inside `teams`) and those the product's rules read.
    pub fn player_fields(&self) -> std::collections::BTreeSet<String> {
        crate::core::event::PLAYER_FIELDS
            .iter()
            .copied()
            .chain(self.boards.player_fields())
            .chain(self.stats.player_fields())
            .map(str::to_owned)
            .collect()
    }

    fn defaults() -> Self {
        ProductGames {
            boards: BoardSet::new(vec![Board {
                name: WINS_BOARD.to_owned(),
                rule: BoardRule::Wins,
                windows: ProductWindows::default().calendar(),
                feed_top: 0,
            }]),
            stats: RuleSet::new(vec![StatRule::MatchResults]),
        }
    }
}

/// The validated games configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Games {
    products: BTreeMap<ProductId, ProductGames>,
    unknown: UnknownProducts,
    defaults: ProductGames,
}

impl Games {
    /// The built-in configuration.
    pub fn builtin() -> Self {
        // The built-in file is tested to parse; fall back to plain defaults all the same.
        Self::parse(BUILTIN, "(built-in)").unwrap_or_else(|_| Games {
            products: BTreeMap::new(),
            unknown: UnknownProducts::Default,
            defaults: ProductGames::defaults(),
        })
    }

    /// Loads `file`, or the built-in configuration when there is none.
    pub fn load(file: Option<&Path>) -> Result<Self, GamesError> {
        let Some(file) = file else {
            return Ok(Self::builtin());
        };
        let name = file.display().to_string();
        let text = std::fs::read_to_string(file).map_err(|error| GamesError {
            source_name: name.clone(),
            message: format!("cannot read it: {error}"),
        })?;
        Self::parse(&text, &name)
    }

    /// Parses and validates a games file's text.
    pub fn parse(text: &str, source_name: &str) -> Result<Self, GamesError> {
        let error = |message: String| GamesError {
            source_name: source_name.to_owned(),
            message,
        };
        let file: GamesFile = toml::from_str(text).map_err(|e| error(e.to_string()))?;
        let mut products = BTreeMap::new();
        for (raw_id, config) in file.products {
            let product = ProductId::parse(&raw_id)
                .map_err(|problem| error(format!("product id `{raw_id}` {problem}")))?;
            let games = config
                .build()
                .map_err(|message| error(format!("product `{raw_id}`, {message}")))?;
            products.insert(product, games);
        }
        Ok(Games {
            products,
            unknown: file.unknown_products,
            defaults: ProductGames::defaults(),
        })
    }

    /// The configuration of `product`: its own, or the defaults (`None` when unknown products
    /// are rejected).
    pub fn product(&self, product: &ProductId) -> Option<&ProductGames> {
        match (self.products.get(product), self.unknown) {
            (Some(games), _) => Some(games),
            (None, UnknownProducts::Default) => Some(&self.defaults),
            (None, UnknownProducts::Reject) => None,
        }
    }

    /// Products the file lists.
    pub fn listed(&self) -> impl Iterator<Item = (&ProductId, &ProductGames)> {
        self.products.iter()
    }

    /// Scoring handlers per product, for the worker.
    pub fn scoring(&self) -> crate::leaderboards::scoring::ScoringRegistry {
        let default: Arc<dyn ScoringHandler> = match self.unknown {
            UnknownProducts::Default => Arc::new(self.defaults.boards.clone()),
            UnknownProducts::Reject => Arc::new(RejectUnknown),
        };
        let mut registry = crate::core::registry::Registry::new(default);
        for (product, games) in &self.products {
            registry.register(product.clone(), Arc::new(games.boards.clone()));
        }
        registry
    }

    /// Stats handlers per product, for the worker.
    pub fn stats(&self) -> crate::player_stats::handlers::StatsRegistry {
        // Rejection of unknown products happens once, in scoring.
        let default: Arc<dyn StatsHandler> = Arc::new(self.defaults.stats.clone());
        let mut registry = crate::core::registry::Registry::new(default);
        for (product, games) in &self.products {
            registry.register(product.clone(), Arc::new(games.stats.clone()));
        }
        registry
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GamesFile {
    #[serde(default)]
    unknown_products: UnknownProducts,
    #[serde(default)]
    products: BTreeMap<String, ProductConfig>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ProductConfig {
    /// Read as tables first, so that a board's errors can name the board.
    boards: Option<Vec<toml::Table>>,
    stats: Option<Vec<toml::Table>>,
    /// The product's own windows besides the calendar ones, by name.
    windows: Option<BTreeMap<String, WindowConfig>>,
    /// Named seasons (an array of tables) or a schedule of them (a table).
    seasons: Option<toml::Value>,
}

/// A product's own window: periods from one fire time of `cron` to the next, in a zone.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WindowConfig {
    cron: String,
    timezone: Option<String>,
    utc_offset: Option<String>,
    /// Closed periods its boards keep unless they say otherwise (default 7).
    retention: Option<u32>,
}

/// Seasons on a schedule: each from one fire time of `cron` to the next.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SeasonScheduleConfig {
    cron: String,
    timezone: Option<String>,
    utc_offset: Option<String>,
}

/// One named season, `[start, end)`: RFC 3339 instants (TOML date-times or strings).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SeasonConfig {
    name: String,
    start: toml::Value,
    end: toml::Value,
}

/// Closed periods of a product's own window kept by default.
const DEFAULT_SCHEDULE_RETENTION: u32 = 7;

/// The windows a product's boards may keep: the calendar ones, the product's own, its seasons.
#[derive(Default)]
struct ProductWindows {
    own: BTreeMap<String, Arc<Window>>,
    seasons: Option<Arc<Window>>,
}

impl ProductWindows {
    fn read(
        windows: Option<BTreeMap<String, WindowConfig>>,
        seasons: Option<toml::Value>,
    ) -> Result<Self, String> {
        let mut own = BTreeMap::new();
        for (name, config) in windows.unwrap_or_default() {
            let window = own_window(&name, config).map_err(|m| format!("window `{name}`: {m}"))?;
            own.insert(name, Arc::new(window));
        }
        let seasons = seasons
            .map(|seasons| read_seasons(seasons).map_err(|m| format!("`seasons`: {m}")))
            .transpose()?
            .map(Arc::new);
        Ok(ProductWindows { own, seasons })
    }

    /// The calendar windows, each with its default retention.
    fn calendar(&self) -> Vec<WindowRule> {
        windows::CALENDAR
            .into_iter()
            .filter_map(|name| self.rule(name))
            .collect()
    }

    /// A window a board may list, with its default retention.
    fn rule(&self, name: &str) -> Option<WindowRule> {
        let window = match Window::calendar(name) {
            Some(window) => Arc::new(window),
            None => self.own.get(name)?.clone(),
        };
        Some(WindowRule {
            retention: window.default_retention(),
            window,
        })
    }

    fn names(&self) -> String {
        windows::CALENDAR
            .into_iter()
            .chain(self.own.keys().map(String::as_str))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

fn own_window(name: &str, config: WindowConfig) -> Result<Window, String> {
    let reserved = windows::CALENDAR.contains(&name) || name == windows::SEASON || name == "all";
    if reserved {
        return Err("the name is taken (daily, weekly, monthly, season and all are)".into());
    }
    if !valid_name(name) {
        return Err("a window's name is 1-32 letters, digits, `_` or `-`".into());
    }
    let zone = Zone::parse(config.timezone.as_deref(), config.utc_offset.as_deref())?;
    let schedule = Schedule::parse(&config.cron, zone)?;
    let retention = config.retention.unwrap_or(DEFAULT_SCHEDULE_RETENTION);
    if retention > MAX_RETENTION {
        return Err(format!("`retention` must be at most {MAX_RETENTION}"));
    }
    Ok(Window::scheduled(name, schedule, retention))
}

/// A window's or season's name: it goes into keys and URLs as it is.
fn valid_name(name: &str) -> bool {
    (1..=32).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

fn read_seasons(value: toml::Value) -> Result<Window, String> {
    match value {
        toml::Value::Table(table) => {
            let config: SeasonScheduleConfig = read_table(table)?;
            let zone = Zone::parse(config.timezone.as_deref(), config.utc_offset.as_deref())?;
            Ok(Window::scheduled_seasons(Schedule::parse(
                &config.cron,
                zone,
            )?))
        }
        toml::Value::Array(items) => {
            if items.is_empty() {
                return Err("name one season at least, or leave `seasons` out".into());
            }
            let mut seasons = Vec::with_capacity(items.len());
            for (index, item) in items.into_iter().enumerate() {
                let toml::Value::Table(table) = item else {
                    return Err(format!("season {} must be a table", index + 1));
                };
                let config: SeasonConfig =
                    read_table(table).map_err(|m| format!("season {}: {m}", index + 1))?;
                let name = config.name;
                if !valid_name(&name) {
                    return Err(format!(
                        "season `{name}`: a season's name is 1-32 letters, digits, `_` or `-`"
                    ));
                }
                let instant = |field: &str, value: toml::Value| {
                    let text = match value {
                        toml::Value::String(text) => text,
                        toml::Value::Datetime(at) => at.to_string(),
                        other => other.to_string(),
                    };
                    chrono::DateTime::parse_from_rfc3339(&text)
                        .map(|at| at.to_utc())
                        .map_err(|_| {
                            format!(
                                "season `{name}`: `{field}` must be an instant with its offset, \
                                 like 2026-12-01T00:00:00Z, not {text}"
                            )
                        })
                };
                let start = instant("start", config.start)?;
                let end = instant("end", config.end)?;
                seasons.push(Season { name, start, end });
            }
            Window::named_seasons(seasons)
        }
        _ => Err(
            "must be an array of seasons ({ name, start, end }) or a schedule \
                  ({ cron, timezone or utc_offset })"
                .into(),
        ),
    }
}

impl ProductConfig {
    fn build(self) -> Result<ProductGames, String> {
        let defaults = ProductGames::defaults();
        let windows = ProductWindows::read(self.windows, self.seasons)?;
        let boards = match self.boards {
            None if windows.seasons.is_some() => BoardSet::new(vec![
                BoardConfig::default_wins()
                    .build(&windows)
                    .map_err(|m| format!("board `{WINS_BOARD}`: {m}"))?,
            ]),
            None => defaults.boards,
            Some(tables) => {
                let mut names = HashSet::new();
                let mut boards = Vec::with_capacity(tables.len());
                for (index, table) in tables.into_iter().enumerate() {
                    let label = match table.get("name").and_then(toml::Value::as_str) {
                        Some(name) => format!("board `{name}`"),
                        None => format!("board {}", index + 1),
                    };
                    let config = BoardConfig::read(table).map_err(|m| format!("{label}: {m}"))?;
                    let name = config.name.clone();
                    if !names.insert(name.clone()) {
                        return Err(format!("board `{name}`: defined twice"));
                    }
                    boards.push(
                        config
                            .build(&windows)
                            .map_err(|m| format!("board `{name}`: {m}"))?,
                    );
                }
                BoardSet::new(boards)
            }
        };
        let stats = match self.stats {
            None => defaults.stats,
            Some(tables) => RuleSet::new(
                tables
                    .into_iter()
                    .enumerate()
                    .map(|(index, table)| {
                        let rule = table
                            .get("rule")
                            .and_then(toml::Value::as_str)
                            .unwrap_or("?")
                            .to_owned();
                        read_stat_rule(table)
                            .map_err(|m| format!("stats rule {} (`{rule}`): {m}", index + 1))
                    })
                    .collect::<Result<_, _>>()?,
            ),
        };
        Ok(ProductGames { boards, stats })
    }
}

/// Reads a games file table as `T`; the message of why not, naming the field.
fn read_table<T: serde::de::DeserializeOwned>(table: toml::Table) -> Result<T, String> {
    serde_path_to_error::deserialize(toml::Value::Table(table)).map_err(|error| {
        let path = error.path().to_string();
        let message = error.into_inner().message().to_owned();
        match path.as_str() {
            "" | "." | "?" => message,
            // "unknown field `x`…" names it already.
            field if message.contains(&format!("`{field}`")) => message,
            field => format!("`{field}`: {message}"),
        }
    })
}

/// One board of the games file: the fields every kind has, and its kind with that kind's own
/// fields (any other field is refused).
struct BoardConfig {
    name: String,
    /// Period boards kept next to the all-time one (default: all of them, none for ratings).
    windows: Option<Vec<String>>,
    /// Closed periods kept per window, e.g. `{ daily = 7 }`.
    retention: Option<BTreeMap<String, u32>>,
    /// What the board writes to the product's change feed (none without it).
    feed: Option<FeedConfig>,
    /// Whether the board is also kept per season (default: yes when the product has seasons,
    /// except for rating boards).
    seasons: Option<bool>,
    /// A rating board's pull of every rating towards the initial one when a player's first
    /// match of a season is rated (0: none, 1: all the way).
    season_reset: Option<f64>,
    kind: BoardKind,
}

/// A board's `feed`: the top its rank events follow.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FeedConfig {
    top: u32,
}

/// Largest `feed.top`: each move inside it may name that many overtaken players.
const MAX_FEED_TOP: u32 = 100;

/// The fields of a board that do not depend on its kind.
#[derive(Deserialize)]
struct BoardCommon {
    name: String,
    windows: Option<Vec<String>>,
    retention: Option<BTreeMap<String, u32>>,
    feed: Option<FeedConfig>,
    seasons: Option<bool>,
    season_reset: Option<f64>,
}

/// A board's kind, with that kind's own fields (`BOARD_KINDS` names them, in this order).
enum BoardKind {
    Wins(WinsBoard),
    Count(CountBoard),
    Sum(AggregateBoard),
    Max(AggregateBoard),
    Min(AggregateBoard),
    Last(AggregateBoard),
    Columns(ColumnsBoard),
    Elo(EloBoard),
    Glicko2(Glicko2Board),
    Trueskill(TrueSkillBoard),
    WengLin(WengLinBoard),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WinsBoard {}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CountBoard {
    /// The events counted.
    when: Condition,
    /// The field naming the player.
    player: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AggregateBoard {
    when: Condition,
    player: String,
    /// The numeric field aggregated.
    field: String,
    #[serde(default)]
    validate: Validation,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EloBoard {
    #[serde(default = "elo_initial_rating")]
    initial_rating: f64,
    #[serde(default = "elo_k_factor")]
    k_factor: f64,
    #[serde(default)]
    min_matches: u64,
    #[serde(default = "rating_history")]
    history: usize,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Glicko2Board {
    #[serde(default = "glicko2_initial_rating")]
    initial_rating: f64,
    #[serde(default = "glicko2_initial_deviation")]
    initial_deviation: f64,
    #[serde(default = "glicko2_initial_volatility")]
    initial_volatility: f64,
    #[serde(default = "glicko2_tau")]
    tau: f64,
    #[serde(default)]
    min_matches: u64,
    #[serde(default = "rating_history")]
    history: usize,
    /// Days per rating period of inactivity (the deviation grows by Glickman's formula).
    inactivity_days: Option<u32>,
    /// Days per rating period: a period's matches are rated together, as the paper intends.
    rating_period_days: Option<u32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TrueSkillBoard {
    #[serde(default = "skill_mu")]
    mu: f64,
    #[serde(default = "skill_sigma")]
    sigma: f64,
    #[serde(default = "skill_beta")]
    beta: f64,
    #[serde(default = "skill_draw_probability")]
    draw_probability: f64,
    #[serde(default = "skill_dynamics")]
    dynamics: f64,
    #[serde(default)]
    display: Display,
    #[serde(default)]
    min_matches: u64,
    #[serde(default = "rating_history")]
    history: usize,
    /// Days per period of inactivity, each growing σ by `inactivity_growth`.
    inactivity_days: Option<u32>,
    inactivity_growth: Option<f64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WengLinBoard {
    #[serde(default = "skill_mu")]
    mu: f64,
    #[serde(default = "skill_sigma")]
    sigma: f64,
    #[serde(default = "skill_beta")]
    beta: f64,
    #[serde(default)]
    display: Display,
    #[serde(default)]
    min_matches: u64,
    #[serde(default = "rating_history")]
    history: usize,
    /// Days per period of inactivity, each growing σ by `inactivity_growth`.
    inactivity_days: Option<u32>,
    inactivity_growth: Option<f64>,
}

// serde's `default` takes functions: the rating systems' defaults as such.
fn elo_initial_rating() -> f64 {
    defaults::elo::INITIAL_RATING
}
fn elo_k_factor() -> f64 {
    defaults::elo::K_FACTOR
}
fn glicko2_initial_rating() -> f64 {
    defaults::glicko2::INITIAL_RATING
}
fn glicko2_initial_deviation() -> f64 {
    defaults::glicko2::INITIAL_DEVIATION
}
fn glicko2_initial_volatility() -> f64 {
    defaults::glicko2::INITIAL_VOLATILITY
}
fn glicko2_tau() -> f64 {
    defaults::glicko2::TAU
}
fn skill_mu() -> f64 {
    defaults::skill::MU
}
fn skill_sigma() -> f64 {
    defaults::skill::SIGMA
}
fn skill_beta() -> f64 {
    defaults::skill::BETA
}
fn skill_draw_probability() -> f64 {
    defaults::skill::DRAW_PROBABILITY
}
fn skill_dynamics() -> f64 {
    defaults::skill::DYNAMICS
}
fn rating_history() -> usize {
    DEFAULT_HISTORY
}

/// History entries a rating board keeps per player unless it says.
const DEFAULT_HISTORY: usize = 100;
/// A board ranked by several score columns: each column a table with `name`, `kind` (a
/// `wins`, `count`, `sum`, `max`, `min` or `last` board's kind, with its fields) and `order`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ColumnsBoard {
    columns: Vec<toml::Table>,
}

/// Most score columns a board may have.
const MAX_COLUMNS: usize = 5;

/// The kinds a score column can be.
const COLUMN_KINDS: [&str; 7] = ["wins", "count", "sum", "max", "min", "last", "stat"];

/// A column showing a player's stat.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StatColumn {
    stat: String,
}

/// One score column from its table.
fn read_column(mut table: toml::Table) -> Result<Column, String> {
    let name = match table.remove("name") {
        None => return Err("`name` is required".into()),
        Some(toml::Value::String(name)) if valid_name(&name) => name,
        Some(other) => {
            return Err(format!(
                "`name` must be 1-32 letters, digits, `_` or `-`, not {other}"
            ));
        }
    };
    let describe = |message: String| format!("column `{name}`: {message}");
    let ascending = match table.remove("order") {
        None => false,
        Some(toml::Value::String(order)) if order == "desc" => false,
        Some(toml::Value::String(order)) if order == "asc" => true,
        Some(other) => {
            return Err(describe(format!(
                "`order` must be \"asc\" (lower first) or \"desc\" (higher first), not {other}"
            )));
        }
    };
    let kind = match table.remove("kind") {
        None => return Err(describe("`kind` is required".into())),
        Some(toml::Value::String(kind)) if COLUMN_KINDS.contains(&kind.as_str()) => kind,
        Some(other) => {
            return Err(describe(format!(
                "`kind` must be one of {}, not {other}",
                COLUMN_KINDS.join(", ")
            )));
        }
    };
    if kind == "stat" {
        let column: StatColumn =
            read_table(table).map_err(|m| describe(format!("kind `stat`: {m}")))?;
        if column.stat.is_empty() || column.stat.contains([',', '~']) {
            return Err(describe(format!(
                "`stat` must be a stat's name (without `,` or `~`), not `{}`",
                column.stat
            )));
        }
        return Ok(Column {
            name,
            ascending,
            source: ColumnSource::Stat(column.stat),
        });
    }
    let rule = BoardKind::read(&kind, table)
        .and_then(BoardKind::rule)
        .map_err(|message| describe(format!("kind `{kind}`: {message}")))?;
    let source = match rule {
        BoardRule::Field {
            validate,
            when,
            player,
            field,
            how,
        } => {
            if validate != Validation::default() {
                return Err(describe("`validate` is not supported on columns".into()));
            }
            ColumnSource::Field {
                when,
                player,
                field,
                how,
            }
        }
        _ => ColumnSource::Wins,
    };
    Ok(Column {
        name,
        ascending,
        source,
    })
}

/// Most history entries a board may keep per player.
const MAX_HISTORY: usize = 10_000;

/// The kinds a board can be (`BoardKind::read` reads each).
const BOARD_KINDS: [&str; 11] = [
    "wins",
    "count",
    "sum",
    "max",
    "min",
    "last",
    "columns",
    "elo",
    "glicko2",
    "trueskill",
    "weng_lin",
];

impl BoardConfig {
    /// Splits a board's table into the common fields and its kind's.
    fn read(mut table: toml::Table) -> Result<Self, String> {
        let common: toml::Table = [
            "name",
            "windows",
            "retention",
            "feed",
            "seasons",
            "season_reset",
        ]
        .into_iter()
        .filter_map(|key| table.remove(key).map(|value| (key.to_owned(), value)))
        .collect();
        let common: BoardCommon = read_table(common)?;
        let kind = match table.remove("kind") {
            None => return Err("`kind` is required".into()),
            Some(toml::Value::String(kind)) => kind,
            Some(other) => return Err(format!("`kind` must be a string, not {other}")),
        };
        if !BOARD_KINDS.contains(&kind.as_str()) {
            return Err(unknown_kind(&kind));
        }
        let kind =
            BoardKind::read(&kind, table).map_err(|message| format!("kind `{kind}`: {message}"))?;
        Ok(BoardConfig {
            name: common.name,
            windows: common.windows,
            retention: common.retention,
            feed: common.feed,
            seasons: common.seasons,
            season_reset: common.season_reset,
            kind,
        })
    }

    /// The `wins` board of a product that lists no boards.
    fn default_wins() -> Self {
        BoardConfig {
            name: WINS_BOARD.to_owned(),
            windows: None,
            retention: None,
            feed: None,
            seasons: None,
            season_reset: None,
            kind: BoardKind::Wins(WinsBoard {}),
        }
    }

    fn build(self, product_windows: &ProductWindows) -> Result<Board, String> {
        if self.name.is_empty() || self.name.len() > 64 {
            return Err("`name` must be 1-64 bytes".into());
        }
        let mut rule = self.kind.rule()?;
        // Rating boards keep no windows unless asked: a rating is not earned per period, and
        // a period copy of it costs as much as the board itself on every match.
        let rated = matches!(rule, BoardRule::Rated { .. });
        let seasons = match (self.seasons, &product_windows.seasons) {
            (Some(true), None) => {
                return Err("`seasons = true` but the product declares no `seasons`".into());
            }
            (Some(keep), Some(seasons)) => keep.then_some(seasons),
            (None, seasons) => seasons.as_ref().filter(|_| !rated),
            (Some(false), None) => None,
        };
        if let Some(fraction) = self.season_reset {
            let BoardRule::Rated {
                season_reset,
                rating_period_ms,
                ..
            } = &mut rule
            else {
                return Err("`season_reset` is for rating boards".into());
            };
            if seasons.is_none() {
                return Err("`season_reset` needs `seasons = true`".into());
            }
            if !(0.0..=1.0).contains(&fraction) {
                return Err(format!(
                    "`season_reset` must be between 0 and 1, not {fraction}"
                ));
            }
            if rating_period_ms.is_some() {
                return Err(
                    "`season_reset` cannot be combined with `rating_period_days` (a period's \
                     games are rated from its start)"
                        .into(),
                );
            }
            *season_reset = Some(fraction);
        }
        let windows = build_windows(
            product_windows,
            self.windows,
            self.retention,
            !rated,
            seasons.cloned(),
        )?;
        if matches!(rule, BoardRule::Columns(_)) && self.feed.is_some() {
            return Err("`feed` is not supported on boards with columns".into());
        }
        let feed_top = match self.feed {
            None => 0,
            Some(FeedConfig { top }) if (1..=MAX_FEED_TOP).contains(&top) => top,
            Some(FeedConfig { top }) => {
                return Err(format!(
                    "`feed.top` must be between 1 and {MAX_FEED_TOP}, not {top}"
                ));
            }
        };
        Ok(Board {
            name: self.name,
            rule,
            windows,
            feed_top,
        })
    }
}

fn unknown_kind(kind: &str) -> String {
    format!("`kind` `{kind}` is unknown; use {}", BOARD_KINDS.join(", "))
}

impl BoardKind {
    /// Reads the fields of a board of kind `kind` (its table less the common fields).
    fn read(kind: &str, table: toml::Table) -> Result<Self, String> {
        Ok(match kind {
            "wins" => BoardKind::Wins(read_table(table)?),
            "count" => BoardKind::Count(read_table(table)?),
            "sum" => BoardKind::Sum(read_table(table)?),
            "max" => BoardKind::Max(read_table(table)?),
            "min" => BoardKind::Min(read_table(table)?),
            "last" => BoardKind::Last(read_table(table)?),
            "columns" => BoardKind::Columns(read_table(table)?),
            "elo" => BoardKind::Elo(read_table(table)?),
            "glicko2" => BoardKind::Glicko2(read_table(table)?),
            "trueskill" => BoardKind::Trueskill(read_table(table)?),
            "weng_lin" => BoardKind::WengLin(read_table(table)?),
            other => return Err(unknown_kind(other)),
        })
    }

    /// The board's rule, its parameters checked.
    fn rule(self) -> Result<BoardRule, String> {
        let field = |board: AggregateBoard, how| -> Result<BoardRule, String> {
            board.validate.check_applies(how)?;
            Ok(BoardRule::Field {
                when: board.when,
                player: board.player,
                field: Some(board.field),
                how,
                validate: board.validate,
            })
        };
        Ok(match self {
            BoardKind::Wins(WinsBoard {}) => BoardRule::Wins,
            BoardKind::Count(board) => BoardRule::Field {
                when: board.when,
                player: board.player,
                field: None,
                how: Aggregate::Sum,
                validate: Validation::default(),
            },
            BoardKind::Sum(board) => field(board, Aggregate::Sum)?,
            BoardKind::Max(board) => field(board, Aggregate::Max)?,
            BoardKind::Min(board) => field(board, Aggregate::Min)?,
            BoardKind::Last(board) => field(board, Aggregate::Last)?,
            BoardKind::Columns(board) => {
                if !(1..=MAX_COLUMNS).contains(&board.columns.len()) {
                    return Err(format!(
                        "`columns` must list 1 to {MAX_COLUMNS} columns, not {}",
                        board.columns.len()
                    ));
                }
                let columns = board
                    .columns
                    .into_iter()
                    .map(read_column)
                    .collect::<Result<Vec<_>, _>>()?;
                for (index, column) in columns.iter().enumerate() {
                    if columns[..index].iter().any(|c| c.name == column.name) {
                        return Err(format!("column `{}` is defined twice", column.name));
                    }
                }
                BoardRule::Columns(columns)
            }
            BoardKind::Elo(board) => rated(
                RatingSystem::Elo {
                    initial_rating: finite("initial_rating", board.initial_rating)?,
                    k_factor: positive("k_factor", board.k_factor)?,
                },
                board.min_matches,
                board.history,
                None,
                None,
            )?,
            BoardKind::Glicko2(board) => rated(
                RatingSystem::Glicko2 {
                    initial_rating: finite("initial_rating", board.initial_rating)?,
                    initial_deviation: positive("initial_deviation", board.initial_deviation)?,
                    initial_volatility: positive("initial_volatility", board.initial_volatility)?,
                    tau: positive("tau", board.tau)?,
                },
                board.min_matches,
                board.history,
                inactivity(board.inactivity_days, None, None)?,
                board.rating_period_days,
            )?,
            BoardKind::Trueskill(board) => {
                if !(0.0..1.0).contains(&board.draw_probability) {
                    return Err(format!(
                        "`draw_probability` must be in [0, 1), not {}",
                        board.draw_probability
                    ));
                }
                rated(
                    RatingSystem::TrueSkill {
                        mu: finite("mu", board.mu)?,
                        sigma: positive("sigma", board.sigma)?,
                        beta: positive("beta", board.beta)?,
                        draw_probability: board.draw_probability,
                        dynamics: positive("dynamics", board.dynamics)?,
                        display: board.display,
                    },
                    board.min_matches,
                    board.history,
                    inactivity(
                        board.inactivity_days,
                        board.inactivity_growth,
                        Some(board.dynamics),
                    )?,
                    None,
                )?
            }
            BoardKind::WengLin(board) => rated(
                RatingSystem::WengLin {
                    mu: finite("mu", board.mu)?,
                    sigma: positive("sigma", board.sigma)?,
                    beta: positive("beta", board.beta)?,
                    display: board.display,
                },
                board.min_matches,
                board.history,
                inactivity(
                    board.inactivity_days,
                    board.inactivity_growth,
                    Some(defaults::skill::DYNAMICS),
                )?,
                None,
            )?,
        })
    }
}

/// A rating board's rule.
fn rated(
    system: RatingSystem,
    min_matches: u64,
    history: usize,
    inactivity: Option<Inactivity>,
    rating_period_days: Option<u32>,
) -> Result<BoardRule, String> {
    if history > MAX_HISTORY {
        return Err(format!("`history` must be at most {MAX_HISTORY}"));
    }
    let rating_period_ms = match (rating_period_days, inactivity) {
        (None, _) => None,
        (Some(0), _) => return Err("`rating_period_days` must be at least 1".into()),
        (Some(_), Some(_)) => {
            return Err(
                "`rating_period_days` already grows an idle player's deviation per \
                        period without games; drop `inactivity_days`"
                    .into(),
            );
        }
        (Some(days), None) => Some(u64::from(days) * DAY_MS),
    };
    Ok(BoardRule::Rated {
        system,
        min_matches,
        history,
        inactivity,
        rating_period_ms,
        season_reset: None,
    })
}

/// A rating board's inactivity rule from its `inactivity_days` and `inactivity_growth`
/// (`default_growth` when not given; `None` for Glicko-2, which grows by the volatility).
fn inactivity(
    days: Option<u32>,
    growth: Option<f64>,
    default_growth: Option<f64>,
) -> Result<Option<Inactivity>, String> {
    match (days, growth) {
        (None, None) => Ok(None),
        (None, Some(_)) => Err("`inactivity_growth` needs `inactivity_days`".into()),
        (Some(0), _) => Err("`inactivity_days` must be at least 1".into()),
        (Some(days), growth) => Ok(Some(Inactivity {
            period_ms: u64::from(days) * DAY_MS,
            growth: growth
                .or(default_growth)
                .map(|growth| positive("inactivity_growth", growth))
                .transpose()?,
        })),
    }
}

fn positive(name: &str, value: f64) -> Result<f64, String> {
    if value.is_finite() && value > 0.0 {
        Ok(value)
    } else {
        Err(format!("`{name}` must be a positive number, not {value}"))
    }
}

fn finite(name: &str, value: f64) -> Result<f64, String> {
    if value.is_finite() {
        Ok(value)
    } else {
        Err(format!("`{name}` must be a finite number, not {value}"))
    }
}

/// Most closed periods a window may keep (ten years of days).
const MAX_RETENTION: u32 = 3660;

/// The window rules of a board from its `windows` and `retention` fields; without `windows`,
/// the calendar windows when `windowed_by_default`, none otherwise; then its seasons.
fn build_windows(
    product: &ProductWindows,
    names: Option<Vec<String>>,
    retention: Option<BTreeMap<String, u32>>,
    windowed_by_default: bool,
    seasons: Option<Arc<Window>>,
) -> Result<Vec<WindowRule>, String> {
    let mut rules = match names {
        None if windowed_by_default => product.calendar(),
        None => Vec::new(),
        Some(names) => {
            let mut rules: Vec<WindowRule> = Vec::new();
            for name in &names {
                if name == windows::SEASON {
                    return Err(
                        "`windows` does not list `season`: a board keeps its seasons by \
                         `seasons` (default: every board but rating boards, when the product \
                         has seasons)"
                            .into(),
                    );
                }
                let rule = product
                    .rule(name)
                    .ok_or_else(|| unknown_window(product, name))?;
                if rules.iter().any(|known| known.window.name() == name) {
                    return Err(format!("`windows` lists `{name}` twice"));
                }
                rules.push(rule);
            }
            rules
        }
    };
    if let Some(seasons) = seasons {
        rules.push(WindowRule {
            retention: seasons.default_retention(),
            window: seasons,
        });
    }
    for (name, kept) in retention.unwrap_or_default() {
        if kept > MAX_RETENTION {
            return Err(format!(
                "`retention.{name}` must be at most {MAX_RETENTION}"
            ));
        }
        let rule = rules
            .iter_mut()
            .find(|rule| rule.window.name() == name)
            .ok_or_else(|| {
                if name == windows::SEASON || product.rule(&name).is_some() {
                    format!("`retention.{name}` is set but the board keeps no `{name}` window")
                } else {
                    unknown_window(product, &name)
                }
            })?;
        rule.retention = Some(kept);
    }
    Ok(rules)
}

fn unknown_window(product: &ProductWindows, name: &str) -> String {
    format!("window `{name}` is unknown; use {}", product.names())
}

/// One stats rule of the games file: its `rule` and that rule's own fields (any other field is
/// refused; `STAT_RULES` names the rules, in this order).
enum StatConfig {
    MatchResults(MatchResultsRule),
    Count(CountRule),
    Sum(AggregateRule),
    Max(AggregateRule),
    Min(AggregateRule),
    Last(AggregateRule),
    WinStreak(WinStreakRule),
    Rounds(RoundsRule),
    MatchScores(MatchScoresRule),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MatchResultsRule {}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CountRule {
    when: Condition,
    player: String,
    stat: Option<String>,
    by: Option<String>,
    map: Option<BTreeMap<String, String>>,
    integer_default: Option<String>,
    default: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AggregateRule {
    when: Condition,
    player: String,
    field: String,
    stat: String,
    #[serde(default)]
    validate: Validation,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WinStreakRule {
    current: Option<String>,
    best: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RoundsRule {
    won: Option<String>,
    lost: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MatchScoresRule {
    total: Option<String>,
    best: Option<String>,
}

/// The rules a stats rule can be (`StatConfig::read` reads each).
const STAT_RULES: [&str; 9] = [
    "match_results",
    "count",
    "sum",
    "max",
    "min",
    "last",
    "win_streak",
    "rounds",
    "match_scores",
];

/// Reads and checks one stats rule of the games file.
fn read_stat_rule(mut table: toml::Table) -> Result<StatRule, String> {
    let rule = match table.remove("rule") {
        None => return Err("`rule` is required".into()),
        Some(toml::Value::String(rule)) => rule,
        Some(other) => return Err(format!("`rule` must be a string, not {other}")),
    };
    let rule = StatConfig::read(&rule, table)?.build()?;
    // The stats hash also holds the player's board stamps under this prefix.
    if let Some(name) = rule
        .stat_names()
        .into_iter()
        .find(|name| name.starts_with(STAMP_FIELD_PREFIX))
    {
        return Err(format!(
            "stat name `{name}` starts with `{STAMP_FIELD_PREFIX}`, which is reserved"
        ));
    }
    Ok(rule)
}

impl StatConfig {
    fn read(rule: &str, table: toml::Table) -> Result<Self, String> {
        Ok(match rule {
            "match_results" => StatConfig::MatchResults(read_table(table)?),
            "count" => StatConfig::Count(read_table(table)?),
            "sum" => StatConfig::Sum(read_table(table)?),
            "max" => StatConfig::Max(read_table(table)?),
            "min" => StatConfig::Min(read_table(table)?),
            "last" => StatConfig::Last(read_table(table)?),
            "win_streak" => StatConfig::WinStreak(read_table(table)?),
            "rounds" => StatConfig::Rounds(read_table(table)?),
            "match_scores" => StatConfig::MatchScores(read_table(table)?),
            other => {
                return Err(format!(
                    "`rule` `{other}` is unknown; use {}",
                    STAT_RULES.join(", ")
                ));
            }
        })
    }

    fn build(self) -> Result<StatRule, String> {
        let named = |value: Option<String>, default: &str| value.unwrap_or_else(|| default.into());
        let aggregate = |rule: AggregateRule, how| -> Result<StatRule, String> {
            rule.validate.check_applies(how)?;
            // A stat's current value is not in the worker's view.
            if rule.validate.reads_current(how) {
                return Err(
                    "`validate.max_change` and `validate.increment_only` apply to `sum` stats \
                     rules only (boards take them for every aggregate)"
                        .into(),
                );
            }
            Ok(StatRule::Aggregate {
                when: rule.when,
                player: rule.player,
                field: rule.field,
                stat: rule.stat,
                how,
                validate: rule.validate,
            })
        };
        Ok(match self {
            StatConfig::MatchResults(MatchResultsRule {}) => StatRule::MatchResults,
            StatConfig::Count(rule) => {
                if rule.stat.is_some() == rule.by.is_some() {
                    return Err(
                        "give either `stat` (one counter) or `by` with `map` (a counter per value)"
                            .into(),
                    );
                }
                if rule.by.is_some() && rule.map.as_ref().is_none_or(BTreeMap::is_empty) {
                    return Err("`by` needs a non-empty `map` of value = stat name".into());
                }
                if rule.by.is_none()
                    && (rule.map.is_some()
                        || rule.integer_default.is_some()
                        || rule.default.is_some())
                {
                    return Err(
                        "`map`, `integer_default` and `default` apply only with `by`".into(),
                    );
                }
                StatRule::Count {
                    when: rule.when,
                    player: rule.player,
                    stat: rule.stat,
                    by: rule.by,
                    map: rule.map.unwrap_or_default(),
                    integer_default: rule.integer_default,
                    default: rule.default,
                }
            }
            StatConfig::Sum(rule) => aggregate(rule, Aggregate::Sum)?,
            StatConfig::Max(rule) => aggregate(rule, Aggregate::Max)?,
            StatConfig::Min(rule) => aggregate(rule, Aggregate::Min)?,
            StatConfig::Last(rule) => aggregate(rule, Aggregate::Last)?,
            StatConfig::WinStreak(rule) => StatRule::WinStreak {
                current: named(rule.current, "current_win_streak"),
                best: named(rule.best, "best_win_streak"),
            },
            StatConfig::Rounds(rule) => StatRule::Rounds {
                won: named(rule.won, "rounds_won"),
                lost: named(rule.lost, "rounds_lost"),
            },
            StatConfig::MatchScores(rule) => StatRule::MatchScores {
                total: named(rule.total, "total_score"),
                best: named(rule.best, "best_score"),
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(text: &str) -> String {
        Games::parse(text, "test.toml").unwrap_err().to_string()
    }

    #[test]
    fn builtin_and_example_files_are_valid() {
        let builtin = Games::parse(BUILTIN, "builtin").unwrap();
        assert_eq!(builtin, Games::builtin());
        let exrps = ProductId::parse("exrps").unwrap();
        assert!(builtin.product(&exrps).is_some());
        // The benchmark's file is the built-in one plus an Elo board on exrps.
        let bench = Games::parse(include_str!("../config/games.bench.toml"), "bench").unwrap();
        let bench_exrps = bench.product(&exrps).unwrap();
        let builtin_exrps = builtin.product(&exrps).unwrap();
        assert_eq!(bench_exrps.stats, builtin_exrps.stats);
        assert_eq!(
            bench_exrps.boards.boards()[0],
            builtin_exrps.boards.boards()[0]
        );
        assert_eq!(bench_exrps.boards.boards()[1].name, "elo");
        // scripts/run's file (config/development.toml) is the same, for the README's examples.
        let development = include_str!("../config/games.development.toml");
        assert_eq!(Games::parse(development, "development").unwrap(), bench);
        let example = include_str!("../config/games.example.toml");
        let games = Games::parse(example, "example").unwrap();
        // The example covers every board kind and stats rule.
        let mut kinds = HashSet::new();
        for (_, product) in games.listed() {
            for board in product.boards.boards() {
                kinds.insert(match &board.rule {
                    BoardRule::Wins => "wins".to_owned(),
                    BoardRule::Field { how, field, .. } => format!("{how:?}{}", field.is_some()),
                    BoardRule::Rated { system, .. } => system.name().to_owned(),
                    BoardRule::Columns(_) => "columns".to_owned(),
                });
            }
        }
        for kind in [
            "wins",
            "elo",
            "glicko2",
            "trueskill",
            "weng_lin",
            "Sumfalse",
            "Sumtrue",
            "Maxtrue",
            "Mintrue",
            "Lasttrue",
            "columns",
        ] {
            assert!(kinds.contains(kind), "example lacks a {kind} board");
        }
        for rule in [
            "match_results",
            "count",
            "sum",
            "max",
            "min",
            "last",
            "win_streak",
            "rounds",
            "match_scores",
        ] {
            assert!(
                example.contains(&format!("rule = \"{rule}\"")),
                "example lacks rule {rule}"
            );
        }
    }

    #[test]
    fn unknown_products_get_defaults_or_are_rejected() {
        let other = ProductId::parse("other").unwrap();
        let games = Games::parse("", "empty").unwrap();
        assert_eq!(games.product(&other), Some(&ProductGames::defaults()));
        let games = Games::parse("unknown_products = \"reject\"", "strict").unwrap();
        assert_eq!(games.product(&other), None);
    }

    #[test]
    fn errors_name_the_product_field_and_problem() {
        let cases = [
            (
                "[products.exrps]\nboards = [{ name = \"elo\", kind = \"elo\", mu = 3.0 }]",
                "product `exrps`, board `elo`: kind `elo`: unknown field `mu`, expected one of `initial_rating`, `k_factor`, `min_matches`, `history`",
            ),
            (
                "[products.exrps]\nboards = [{ name = \"elo\", kind = \"elo\", k_factor = -1.0 }]",
                "product `exrps`, board `elo`: `k_factor` must be a positive number, not -1",
            ),
            (
                "[products.g]\nboards = [{ name = \"b\", kind = \"chess\" }]",
                "product `g`, board `b`: `kind` `chess` is unknown; use wins, count, sum, max, min, last, columns, elo, glicko2, trueskill, weng_lin",
            ),
            (
                "[products.g]\nboards = [{ name = \"b\", kind = \"wins\" }, { name = \"b\", kind = \"wins\" }]",
                "product `g`, board `b`: defined twice",
            ),
            (
                "[products.g]\nboards = [{ name = \"k\", kind = \"sum\", player = \"user_id\", when = { type = \"gameplay\" } }]",
                "product `g`, board `k`: kind `sum`: missing field `field`",
            ),
            (
                "[products.g]\n[[products.g.stats]]\nrule = \"count\"\nwhen = { type = \"gameplay\" }\nplayer = \"user_id\"",
                "product `g`, stats rule 1 (`count`): give either `stat`",
            ),
            (
                "[products.g]\n[[products.g.stats]]\nrule = \"streak\"",
                "product `g`, stats rule 1 (`streak`): `rule` `streak` is unknown",
            ),
            (
                "[products.g]\nboards = [{ name = \"t\", kind = \"trueskill\", draw_probability = 1.5 }]",
                "`draw_probability` must be in [0, 1)",
            ),
            (
                "[products.g]\nboards = [{ name = \"w\", kind = \"wins\", windows = [\"hourly\"] }]",
                "product `g`, board `w`: window `hourly` is unknown; use daily, weekly, monthly",
            ),
            (
                "[products.g]\nwindows = { tokyo = { cron = \"0 4 * * *\", timezone = \"Asia/Tokio\" } }",
                "product `g`, window `tokyo`: `timezone` `Asia/Tokio` is not a tz database name",
            ),
            (
                "[products.g]\nwindows = { tokyo = { cron = \"*/5 4 * * *\", utc_offset = \"+09:00\" } }",
                "product `g`, window `tokyo`: `cron` `*/5 4 * * *`: the minute must be one number",
            ),
            (
                "[products.g]\nwindows = { weekly = { cron = \"0 4 * * 1\" } }",
                "product `g`, window `weekly`: the name is taken",
            ),
            (
                "[products.g]\nwindows = { tokyo = { cron = \"0 4 * * *\", zone = \"UTC\" } }",
                "unknown field `zone`",
            ),
            (
                "[products.g]\nseasons = [{ name = \"s1\", start = 2026-12-01T00:00:00Z, end = 2026-11-01T00:00:00Z }]",
                "product `g`, `seasons`: season `s1` must start before it ends",
            ),
            (
                "[products.g]\nseasons = [{ name = \"s1\", start = 2026-12-01, end = 2027-01-01T00:00:00Z }]",
                "product `g`, `seasons`: season `s1`: `start` must be an instant with its offset",
            ),
            (
                "[products.g]\nseasons = [{ name = \"s 1\", start = 2026-12-01T00:00:00Z, end = 2027-01-01T00:00:00Z }]",
                "season `s 1`: a season's name is 1-32 letters",
            ),
            (
                "[products.g]\nseasons = { cron = \"0 0 1 * *\", timezone = \"UTC\", name = \"x\" }",
                "product `g`, `seasons`: unknown field `name`",
            ),
            (
                "[products.g]\nboards = [{ name = \"r\", kind = \"elo\", seasons = true }]",
                "product `g`, board `r`: `seasons = true` but the product declares no `seasons`",
            ),
            (
                "[products.g]\nseasons = { cron = \"@monthly\" }\nboards = [{ name = \"r\", kind = \"elo\", season_reset = 0.5 }]",
                "product `g`, board `r`: `season_reset` needs `seasons = true`",
            ),
            (
                "[products.g]\nseasons = { cron = \"@monthly\" }\nboards = [{ name = \"r\", kind = \"elo\", seasons = true, season_reset = 1.5 }]",
                "`season_reset` must be between 0 and 1, not 1.5",
            ),
            (
                "[products.g]\nseasons = { cron = \"@monthly\" }\nboards = [{ name = \"w\", kind = \"wins\", season_reset = 0.5 }]",
                "product `g`, board `w`: `season_reset` is for rating boards",
            ),
            (
                "[products.g]\nseasons = { cron = \"@monthly\" }\nboards = [{ name = \"w\", kind = \"wins\", windows = [\"season\"] }]",
                "`windows` does not list `season`",
            ),
            (
                "[products.g]\nboards = [{ name = \"w\", kind = \"wins\", retention = { season = 2 } }]",
                "board `w`: `retention.season` is set but the board keeps no `season` window",
            ),
            (
                "[products.g]\nboards = [{ name = \"c\", kind = \"columns\", columns = [] }]",
                "product `g`, board `c`: `columns` must list 1 to 5 columns, not 0",
            ),
            (
                "[products.g]\nboards = [{ name = \"c\", kind = \"columns\", columns = [{ name = \"w\", kind = \"elo\" }] }]",
                "product `g`, board `c`: column `w`: `kind` must be one of wins, count, sum, max, min, last, stat",
            ),
            (
                "[products.g]\nboards = [{ name = \"c\", kind = \"columns\", columns = [{ name = \"w\", kind = \"wins\", order = \"up\" }] }]",
                "column `w`: `order` must be \"asc\" (lower first) or \"desc\" (higher first)",
            ),
            (
                "[products.g]\nboards = [{ name = \"c\", kind = \"columns\", columns = [{ name = \"k\", kind = \"sum\", player = \"user_id\", when = {}, field = \"x\", validate = { min = 0 } }] }]",
                "column `k`: `validate` is not supported on columns",
            ),
            (
                "[products.g]\nboards = [{ name = \"c\", kind = \"columns\", columns = [{ name = \"k\", kind = \"count\", when = {} }] }]",
                "column `k`: kind `count`: missing field `player`",
            ),
            (
                "[products.g]\nboards = [{ name = \"c\", kind = \"columns\", columns = [{ name = \"w\", kind = \"wins\" }, { name = \"w\", kind = \"wins\" }] }]",
                "column `w` is defined twice",
            ),
            (
                "[products.g]\nboards = [{ name = \"c\", kind = \"columns\", feed = { top = 3 }, columns = [{ name = \"w\", kind = \"wins\" }] }]",
                "product `g`, board `c`: `feed` is not supported on boards with columns",
            ),
            (
                "[products.g]\nboards = [{ name = \"w\", kind = \"wins\", windows = [\"daily\"], retention = { weekly = 3 } }]",
                "board `w`: `retention.weekly` is set but the board keeps no `weekly` window",
            ),
            (
                "[products.g]\nboards = [{ name = \"w\", kind = \"wins\", windows = [\"daily\", \"daily\"] }]",
                "`windows` lists `daily` twice",
            ),
            (
                "[products.g]\nboards = [{ kind = \"wins\" }]",
                "product `g`, board 1: missing field `name`",
            ),
            (
                "[products.g]\nboards = [{ name = \"w\" }]",
                "product `g`, board `w`: `kind` is required",
            ),
            (
                "[products.g]\nboards = [{ name = \"w\", kind = \"wins\", player = \"user_id\" }]",
                "product `g`, board `w`: kind `wins`: unknown field `player`",
            ),
            (
                "[products.g]\nboards = [{ name = \"e\", kind = \"elo\", k_factor = \"high\" }]",
                "product `g`, board `e`: kind `elo`: `k_factor`: invalid type: string \"high\", expected f64",
            ),
            (
                "[products.g]\n[[products.g.stats]]\nrule = \"win_streak\"\nplayer = \"user_id\"",
                "product `g`, stats rule 1 (`win_streak`): unknown field `player`, expected `current` or `best`",
            ),
            (
                "[products.g]\n[[products.g.stats]]\nrule = \"count\"\nwhen = { type = \"gameplay\" }\nplayer = \"user_id\"\nstat = \"n\"\nmap = { \"0\" = \"zero\" }",
                "`map`, `integer_default` and `default` apply only with `by`",
            ),
            (
                "[products.g]\nboards = [{ name = \"m\", kind = \"min\", when = { type = \"gameplay\" }, player = \"user_id\", field = \"event_data\", validate = { increment_only = true } }]",
                "product `g`, board `m`: `validate.increment_only` does not apply to min boards",
            ),
            (
                "[products.g]\nboards = [{ name = \"m\", kind = \"sum\", when = { type = \"gameplay\" }, player = \"user_id\", field = \"event_data\", validate = { maximum = 10 } }]",
                "product `g`, board `m`: kind `sum`: `validate.maximum`: unknown field `maximum`, expected one of `min`, `max`, `integer`, `max_change`, `increment_only`",
            ),
            (
                "[products.g]\n[[products.g.stats]]\nrule = \"max\"\nwhen = { type = \"gameplay\" }\nplayer = \"user_id\"\nfield = \"event_data\"\nstat = \"best\"\nvalidate = { max_change = 5 }",
                "product `g`, stats rule 1 (`max`): `validate.max_change` and `validate.increment_only` apply to `sum` stats rules only",
            ),
            (
                "[products.g]\nboards = [{ name = \"r\", kind = \"glicko2\", rating_period_days = 7, inactivity_days = 7 }]",
                "product `g`, board `r`: `rating_period_days` already grows an idle player's deviation per period without games; drop `inactivity_days`",
            ),
            (
                "[products.g]\nboards = [{ name = \"r\", kind = \"glicko2\", rating_period_days = 0 }]",
                "product `g`, board `r`: `rating_period_days` must be at least 1",
            ),
            (
                "[products.g]\nboards = [{ name = \"r\", kind = \"elo\", rating_period_days = 1 }]",
                "product `g`, board `r`: kind `elo`: unknown field `rating_period_days`",
            ),
            (
                "[products.g]\nboards = [{ name = \"r\", kind = \"weng_lin\", inactivity_growth = 0.5 }]",
                "product `g`, board `r`: `inactivity_growth` needs `inactivity_days`",
            ),
            ("[products.g]\nbords = []", "unknown field `bords`"),
            ("unknown_products = \"maybe\"", "unknown variant `maybe`"),
        ];
        for (text, expected) in cases {
            let message = error(text);
            assert!(
                message.contains(expected),
                "{message}\n does not contain\n{expected}"
            );
            assert!(message.starts_with("games file test.toml: "), "{message}");
        }
    }
}
