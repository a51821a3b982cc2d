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
use crate::leaderboards::boards::{Board, BoardRule, BoardSet, Condition, default_windows};
use crate::leaderboards::ratings::{Display, RatingSystem, defaults};
use crate::leaderboards::scoring::{RejectUnknown, ScoringHandler, WINS_BOARD};
use crate::leaderboards::windows::{Window, WindowRule};
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
                windows: default_windows(),
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
    boards: Option<Vec<BoardConfig>>,
    stats: Option<Vec<StatConfig>>,
}

impl ProductConfig {
    fn build(self) -> Result<ProductGames, String> {
        let defaults = ProductGames::defaults();
        let boards = match self.boards {
            None => defaults.boards,
            Some(configs) => {
                let mut names = HashSet::new();
                let mut boards = Vec::with_capacity(configs.len());
                for config in configs {
                    if !names.insert(config.name.clone()) {
                        return Err(format!("board `{}`: defined twice", config.name));
                    }
                    let name = config.name.clone();
                    boards.push(config.build().map_err(|m| format!("board `{name}`: {m}"))?);
                }
                BoardSet::new(boards)
            }
        };
        let stats = match self.stats {
            None => defaults.stats,
            Some(configs) => RuleSet::new(
                configs
                    .into_iter()
                    .enumerate()
                    .map(|(i, config)| {
                        let rule = config.rule.clone();
                        config
                            .build()
                            .map_err(|m| format!("stats rule {} (`{rule}`): {m}", i + 1))
                    })
                    .collect::<Result<_, _>>()?,
            ),
        };
        Ok(ProductGames { boards, stats })
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BoardConfig {
    name: String,
    kind: String,
    when: Option<Condition>,
    player: Option<String>,
    field: Option<String>,
    initial_rating: Option<f64>,
    k_factor: Option<f64>,
    initial_deviation: Option<f64>,
    initial_volatility: Option<f64>,
    tau: Option<f64>,
    mu: Option<f64>,
    sigma: Option<f64>,
    beta: Option<f64>,
    draw_probability: Option<f64>,
    dynamics: Option<f64>,
    display: Option<Display>,
    min_matches: Option<u64>,
    history: Option<usize>,
    /// Period boards kept next to the all-time one (default: all of them).
    windows: Option<Vec<String>>,
    /// Closed periods kept per window, e.g. `{ daily = 7 }`.
    retention: Option<BTreeMap<String, u32>>,
}

/// Most history entries a board may keep per player.
const MAX_HISTORY: usize = 10_000;

impl BoardConfig {
    /// Names of the optional fields that are set.
    fn present(&self) -> Vec<&'static str> {
        let checks: [(&'static str, bool); 16] = [
            ("when", self.when.is_some()),
            ("player", self.player.is_some()),
            ("field", self.field.is_some()),
            ("initial_rating", self.initial_rating.is_some()),
            ("k_factor", self.k_factor.is_some()),
            ("initial_deviation", self.initial_deviation.is_some()),
            ("initial_volatility", self.initial_volatility.is_some()),
            ("tau", self.tau.is_some()),
            ("mu", self.mu.is_some()),
            ("sigma", self.sigma.is_some()),
            ("beta", self.beta.is_some()),
            ("draw_probability", self.draw_probability.is_some()),
            ("dynamics", self.dynamics.is_some()),
            ("display", self.display.is_some()),
            ("min_matches", self.min_matches.is_some()),
            ("history", self.history.is_some()),
        ];
        checks
            .iter()
            .filter(|(_, set)| *set)
            .map(|(name, _)| *name)
            .collect()
    }

    fn build(self) -> Result<Board, String> {
        if self.name.is_empty() || self.name.len() > 64 {
            return Err("`name` must be 1-64 bytes".into());
        }
        const RATED: &[&str] = &["min_matches", "history"];
        let allowed: Vec<&str> = match self.kind.as_str() {
            "wins" => vec![],
            "count" => vec!["when", "player"],
            "sum" | "max" | "min" | "last" => vec!["when", "player", "field"],
            "elo" => [&["initial_rating", "k_factor"][..], RATED].concat(),
            "glicko2" => [
                &[
                    "initial_rating",
                    "initial_deviation",
                    "initial_volatility",
                    "tau",
                ][..],
                RATED,
            ]
            .concat(),
            "trueskill" => [
                &[
                    "mu",
                    "sigma",
                    "beta",
                    "draw_probability",
                    "dynamics",
                    "display",
                ][..],
                RATED,
            ]
            .concat(),
            "weng_lin" => [&["mu", "sigma", "beta", "display"][..], RATED].concat(),
            other => {
                return Err(format!(
                    "`kind` `{other}` is unknown; use wins, count, sum, max, min, last, elo, glicko2, trueskill or weng_lin"
                ));
            }
        };
        if let Some(field) = self.present().into_iter().find(|f| !allowed.contains(f)) {
            return Err(format!(
                "field `{field}` does not apply to kind `{}`",
                self.kind
            ));
        }
        let positive = |name: &str, value: Option<f64>, default: f64| -> Result<f64, String> {
            let value = value.unwrap_or(default);
            if value.is_finite() && value > 0.0 {
                Ok(value)
            } else {
                Err(format!("`{name}` must be a positive number, not {value}"))
            }
        };
        let history = self.history.unwrap_or(100);
        if history > MAX_HISTORY {
            return Err(format!("`history` must be at most {MAX_HISTORY}"));
        }
        let rated = |system| BoardRule::Rated {
            system,
            min_matches: self.min_matches.unwrap_or(0),
            history,
        };
        let field_rule = |how: Aggregate, needs_field: bool| -> Result<BoardRule, String> {
            let when = self
                .when
                .clone()
                .ok_or("`when` is required (the events to count)")?;
            let player = self
                .player
                .clone()
                .ok_or("`player` is required (the field naming the player)")?;
            let field = match (needs_field, self.field.clone()) {
                (true, None) => return Err("`field` is required (the numeric field)".into()),
                (_, field) => field,
            };
            Ok(BoardRule::Field {
                when,
                player,
                field,
                how,
            })
        };
        let rule = match self.kind.as_str() {
            "wins" => BoardRule::Wins,
            "count" => field_rule(Aggregate::Sum, false)?,
            "sum" => field_rule(Aggregate::Sum, true)?,
            "max" => field_rule(Aggregate::Max, true)?,
            "min" => field_rule(Aggregate::Min, true)?,
            "last" => field_rule(Aggregate::Last, true)?,
            "elo" => {
                let RatingSystem::Elo {
                    initial_rating,
                    k_factor,
                } = defaults::ELO
                else {
                    unreachable!("defaults::ELO is an Elo system")
                };
                rated(RatingSystem::Elo {
                    initial_rating: self.initial_rating.unwrap_or(initial_rating),
                    k_factor: positive("k_factor", self.k_factor, k_factor)?,
                })
            }
            "glicko2" => {
                let RatingSystem::Glicko2 {
                    initial_rating,
                    initial_deviation,
                    initial_volatility,
                    tau,
                } = defaults::GLICKO2
                else {
                    unreachable!("defaults::GLICKO2 is a Glicko-2 system")
                };
                rated(RatingSystem::Glicko2 {
                    initial_rating: self.initial_rating.unwrap_or(initial_rating),
                    initial_deviation: positive(
                        "initial_deviation",
                        self.initial_deviation,
                        initial_deviation,
                    )?,
                    initial_volatility: positive(
                        "initial_volatility",
                        self.initial_volatility,
                        initial_volatility,
                    )?,
                    tau: positive("tau", self.tau, tau)?,
                })
            }
            "trueskill" => {
                let RatingSystem::TrueSkill {
                    mu,
                    sigma,
                    beta,
                    draw_probability,
                    dynamics,
                    ..
                } = defaults::TRUESKILL
                else {
                    unreachable!("defaults::TRUESKILL is a TrueSkill system")
                };
                let draw_probability = self.draw_probability.unwrap_or(draw_probability);
                if !(0.0..1.0).contains(&draw_probability) {
                    return Err(format!(
                        "`draw_probability` must be in [0, 1), not {draw_probability}"
                    ));
                }
                rated(RatingSystem::TrueSkill {
                    mu: self.mu.unwrap_or(mu),
                    sigma: positive("sigma", self.sigma, sigma)?,
                    beta: positive("beta", self.beta, beta)?,
                    draw_probability,
                    dynamics: positive("dynamics", self.dynamics, dynamics)?,
                    display: self.display.unwrap_or_default(),
                })
            }
            _ => {
                let RatingSystem::WengLin {
                    mu, sigma, beta, ..
                } = defaults::WENG_LIN
                else {
                    unreachable!("defaults::WENG_LIN is a Weng-Lin system")
                };
                rated(RatingSystem::WengLin {
                    mu: self.mu.unwrap_or(mu),
                    sigma: positive("sigma", self.sigma, sigma)?,
                    beta: positive("beta", self.beta, beta)?,
                    display: self.display.unwrap_or_default(),
                })
            }
        };
        // Rating boards keep no windows unless asked: a rating is not earned per period, and
        // a period copy of it costs as much as the board itself on every match.
        let rated = matches!(rule, BoardRule::Rated { .. });
        let windows = build_windows(self.windows, self.retention, !rated)?;
        Ok(Board {
            name: self.name,
            rule,
            windows,
        })
    }
}

/// Most closed periods a window may keep (ten years of days).
const MAX_RETENTION: u32 = 3660;

/// The window rules of a board from its `windows` and `retention` fields; without `windows`,
/// every window when `windowed_by_default`, none otherwise.
fn build_windows(
    names: Option<Vec<String>>,
    retention: Option<BTreeMap<String, u32>>,
    windowed_by_default: bool,
) -> Result<Vec<WindowRule>, String> {
    let mut rules = match names {
        None if windowed_by_default => default_windows(),
        None => Vec::new(),
        Some(names) => {
            let mut rules: Vec<WindowRule> = Vec::new();
            for name in &names {
                let window = Window::parse(name).ok_or_else(|| unknown_window(name))?;
                if rules.iter().any(|rule| rule.window == window) {
                    return Err(format!("`windows` lists `{name}` twice"));
                }
                rules.push(WindowRule {
                    window,
                    retention: window.default_retention(),
                });
            }
            rules
        }
    };
    for (name, kept) in retention.unwrap_or_default() {
        let window = Window::parse(&name).ok_or_else(|| unknown_window(&name))?;
        if kept > MAX_RETENTION {
            return Err(format!(
                "`retention.{name}` must be at most {MAX_RETENTION}"
            ));
        }
        let rule = rules
            .iter_mut()
            .find(|rule| rule.window == window)
            .ok_or_else(|| format!("`retention.{name}` is set but `windows` does not list it"))?;
        rule.retention = kept;
    }
    Ok(rules)
}

fn unknown_window(name: &str) -> String {
    format!("window `{name}` is unknown; use daily, weekly or monthly")
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StatConfig {
    rule: String,
    when: Option<Condition>,
    player: Option<String>,
    stat: Option<String>,
    by: Option<String>,
    map: Option<BTreeMap<String, String>>,
    integer_default: Option<String>,
    default: Option<String>,
    field: Option<String>,
    current: Option<String>,
    best: Option<String>,
    won: Option<String>,
    lost: Option<String>,
    total: Option<String>,
}

impl StatConfig {
    fn present(&self) -> Vec<&'static str> {
        let checks: [(&'static str, bool); 13] = [
            ("when", self.when.is_some()),
            ("player", self.player.is_some()),
            ("stat", self.stat.is_some()),
            ("by", self.by.is_some()),
            ("map", self.map.is_some()),
            ("integer_default", self.integer_default.is_some()),
            ("default", self.default.is_some()),
            ("field", self.field.is_some()),
            ("current", self.current.is_some()),
            ("best", self.best.is_some()),
            ("won", self.won.is_some()),
            ("lost", self.lost.is_some()),
            ("total", self.total.is_some()),
        ];
        checks
            .iter()
            .filter(|(_, set)| *set)
            .map(|(name, _)| *name)
            .collect()
    }

    fn build(self) -> Result<StatRule, String> {
        let rule = self.build_rule()?;
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

    fn build_rule(self) -> Result<StatRule, String> {
        let allowed: &[&str] = match self.rule.as_str() {
            "match_results" => &[],
            "count" => &[
                "when",
                "player",
                "stat",
                "by",
                "map",
                "integer_default",
                "default",
            ],
            "sum" | "max" | "min" | "last" => &["when", "player", "field", "stat"],
            "win_streak" => &["current", "best"],
            "rounds" => &["won", "lost"],
            "match_scores" => &["total", "best"],
            other => {
                return Err(format!(
                    "`rule` `{other}` is unknown; use match_results, count, sum, max, min, last, win_streak, rounds or match_scores"
                ));
            }
        };
        if let Some(field) = self.present().into_iter().find(|f| !allowed.contains(f)) {
            return Err(format!(
                "field `{field}` does not apply to rule `{}`",
                self.rule
            ));
        }
        let named =
            |value: Option<String>, default: &str| value.unwrap_or_else(|| default.to_owned());
        let when = || {
            self.when
                .clone()
                .ok_or("`when` is required (the events the rule counts)")
        };
        let player = || {
            self.player
                .clone()
                .ok_or("`player` is required (the field naming the player)")
        };
        Ok(match self.rule.as_str() {
            "match_results" => StatRule::MatchResults,
            "count" => {
                if self.stat.is_some() == self.by.is_some() {
                    return Err(
                        "give either `stat` (one counter) or `by` with `map` (a counter per value)"
                            .into(),
                    );
                }
                if self.by.is_some() && self.map.as_ref().is_none_or(BTreeMap::is_empty) {
                    return Err("`by` needs a non-empty `map` of value = stat name".into());
                }
                StatRule::Count {
                    when: when()?,
                    player: player()?,
                    stat: self.stat.clone(),
                    by: self.by.clone(),
                    map: self.map.clone().unwrap_or_default(),
                    integer_default: self.integer_default.clone(),
                    default: self.default.clone(),
                }
            }
            "sum" | "max" | "min" | "last" => StatRule::Aggregate {
                when: when()?,
                player: player()?,
                field: self
                    .field
                    .clone()
                    .ok_or("`field` is required (the numeric field)")?,
                stat: self
                    .stat
                    .clone()
                    .ok_or("`stat` is required (the stat's name)")?,
                how: match self.rule.as_str() {
                    "sum" => Aggregate::Sum,
                    "max" => Aggregate::Max,
                    "min" => Aggregate::Min,
                    _ => Aggregate::Last,
                },
            },
            "win_streak" => StatRule::WinStreak {
                current: named(self.current, "current_win_streak"),
                best: named(self.best, "best_win_streak"),
            },
            "rounds" => StatRule::Rounds {
                won: named(self.won, "rounds_won"),
                lost: named(self.lost, "rounds_lost"),
            },
            _ => StatRule::MatchScores {
                total: named(self.total, "total_score"),
                best: named(self.best, "best_score"),
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
                "product `exrps`, board `elo`: field `mu` does not apply to kind `elo`",
            ),
            (
                "[products.exrps]\nboards = [{ name = \"elo\", kind = \"elo\", k_factor = -1.0 }]",
                "product `exrps`, board `elo`: `k_factor` must be a positive number, not -1",
            ),
            (
                "[products.g]\nboards = [{ name = \"b\", kind = \"chess\" }]",
                "product `g`, board `b`: `kind` `chess` is unknown",
            ),
            (
                "[products.g]\nboards = [{ name = \"b\", kind = \"wins\" }, { name = \"b\", kind = \"wins\" }]",
                "product `g`, board `b`: defined twice",
            ),
            (
                "[products.g]\nboards = [{ name = \"k\", kind = \"sum\", player = \"user_id\", when = { type = \"gameplay\" } }]",
                "product `g`, board `k`: `field` is required",
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
                "product `g`, board `w`: window `hourly` is unknown; use daily, weekly or monthly",
            ),
            (
                "[products.g]\nboards = [{ name = \"w\", kind = \"wins\", windows = [\"daily\"], retention = { weekly = 3 } }]",
                "board `w`: `retention.weekly` is set but `windows` does not list it",
            ),
            (
                "[products.g]\nboards = [{ name = \"w\", kind = \"wins\", windows = [\"daily\", \"daily\"] }]",
                "`windows` lists `daily` twice",
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
