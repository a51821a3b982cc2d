//! Skill rating systems (Elo, Glicko-2, TrueSkill, Weng-Lin), as pure functions over
//! [`Rating`] states, delegating the formulas to the `skillratings` crate.
//!
//! Which outcomes each system rates: Elo and Glicko-2 rate one-on-one matches (win, loss,
//! draw); TrueSkill and Weng-Lin rate any number of teams of any size, with ties.
//! TrueSkill is patented by Microsoft (free only for Xbox Live and non-commercial use):
//! Weng-Lin is the suggested system for team and free-for-all games: `skillratings`' Bradley-Terry
//! full-pairing model (OpenSkill's `BradleyTerryFull`, not OpenSkill's default Plackett-Luce).

use skillratings::{
    MultiTeamOutcome, Outcomes,
    elo::{self, EloConfig, EloRating},
    glicko2::{self, Glicko2Config, Glicko2Rating},
    trueskill::{self, TrueSkillConfig, TrueSkillRating},
    weng_lin::{self, WengLinConfig, WengLinRating},
};

/// One player's rating state, the same shape for every system: `rating` is Elo's rating,
/// Glicko-2's rating or TrueSkill/Weng-Lin's μ; `deviation` is Glicko-2's RD or σ;
/// `volatility` is Glicko-2's only.
#[derive(Debug, Clone, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct Rating {
    pub rating: f64,
    pub deviation: f64,
    pub volatility: f64,
    /// Matches rated so far.
    pub matches: u64,
    /// When the player was last rated (Unix milliseconds, the event's time); kept only by
    /// boards with an inactivity rule, which grow the deviation from it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rated_at_ms: Option<u64>,
    /// The season the player was last rated in, on boards with a `season_reset` (their first
    /// match of another season starts from the reset rating).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub season: Option<String>,
    /// The Glicko-2 rating period the player is in (boards with `rating_period_days`):
    /// `rating`, `deviation` and `volatility` are then what the period's results so far make
    /// of its start, which is what they will be when it closes unless the player plays again.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub period: Option<OpenPeriod>,
}

/// A player's Glicko-2 rating period in progress: the paper rates all of a period's games
/// together, each against the opponent's rating at the start of the period.
#[derive(Debug, Clone, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct OpenPeriod {
    /// The period's number: it starts `index` periods after the Unix epoch.
    pub index: u64,
    /// The player's state when the period started (what opponents are rated against).
    pub start: PeriodStart,
    /// The period's results so far, oldest first.
    pub results: Vec<PeriodResult>,
}

/// A Glicko-2 state at the start of a rating period.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct PeriodStart {
    pub rating: f64,
    pub deviation: f64,
    pub volatility: f64,
}

/// One game of a rating period, from the player's side.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct PeriodResult {
    /// The opponent's rating and deviation at the start of the period.
    pub opponent_rating: f64,
    pub opponent_deviation: f64,
    /// 1 for a win, 0.5 for a draw, 0 for a loss.
    pub score: f64,
}

/// Most results a player's rating period holds (they are stored with the state and rated
/// again at each game); a period that is full closes early and the next starts at once.
pub const MAX_PERIOD_RESULTS: usize = 1000;

/// How a rating board grows an inactive player's deviation: per full `period_ms` since they
/// were last rated, as Glickman's Glicko-2 does for a rating period without games (by the
/// player's volatility), or for TrueSkill and Weng-Lin by `growth` added in quadrature;
/// never beyond the initial deviation. Applied when the player is next rated, by the event's
/// time, so a replay decays exactly as the live run did.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Inactivity {
    pub period_ms: u64,
    /// TrueSkill's and Weng-Lin's growth per period (`None` for Glicko-2, which grows by the
    /// player's volatility).
    pub growth: Option<f64>,
}

/// What a board shows for a TrueSkill or Weng-Lin rating.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Display {
    /// μ − 3σ: a player must prove themselves before ranking high.
    #[default]
    Conservative,
    /// μ alone.
    Mean,
}

/// A rating system with its parameters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum RatingSystem {
    Elo {
        initial_rating: f64,
        k_factor: f64,
    },
    Glicko2 {
        initial_rating: f64,
        initial_deviation: f64,
        initial_volatility: f64,
        tau: f64,
    },
    TrueSkill {
        mu: f64,
        sigma: f64,
        beta: f64,
        draw_probability: f64,
        dynamics: f64,
        display: Display,
    },
    WengLin {
        mu: f64,
        sigma: f64,
        beta: f64,
        display: Display,
    },
}

/// An outcome this system cannot rate; the text is the dead letter's reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Unsupported(String);

/// One side of a match to rate: its players' ratings and its place (1 = best; equal = tie).
pub type RatedTeam = (Vec<Rating>, u32);

impl RatingSystem {
    /// The system's name as used in games files and the API.
    pub fn name(&self) -> &'static str {
        match self {
            RatingSystem::Elo { .. } => "elo",
            RatingSystem::Glicko2 { .. } => "glicko2",
            RatingSystem::TrueSkill { .. } => "trueskill",
            RatingSystem::WengLin { .. } => "weng_lin",
        }
    }

    /// A new player's rating.
    pub fn initial(&self) -> Rating {
        let (rating, deviation, volatility) = match *self {
            RatingSystem::Elo { initial_rating, .. } => (initial_rating, 0.0, 0.0),
            RatingSystem::Glicko2 {
                initial_rating,
                initial_deviation,
                initial_volatility,
                ..
            } => (initial_rating, initial_deviation, initial_volatility),
            RatingSystem::TrueSkill { mu, sigma, .. } | RatingSystem::WengLin { mu, sigma, .. } => {
                (mu, sigma, 0.0)
            }
        };
        Rating {
            rating,
            deviation,
            volatility,
            matches: 0,
            rated_at_ms: None,
            season: None,
            period: None,
        }
    }

    /// The value a leaderboard shows.
    pub fn display(&self, rating: &Rating) -> f64 {
        match self {
            RatingSystem::Elo { .. } | RatingSystem::Glicko2 { .. } => rating.rating,
            RatingSystem::TrueSkill { display, .. } | RatingSystem::WengLin { display, .. } => {
                match display {
                    Display::Conservative => rating.rating - 3.0 * rating.deviation,
                    Display::Mean => rating.rating,
                }
            }
        }
    }

    fn one_on_one<'a>(
        &self,
        teams: &'a [RatedTeam],
    ) -> Result<(&'a Rating, &'a Rating), Unsupported> {
        match teams {
            [(a, _), (b, _)] if a.len() == 1 && b.len() == 1 => Ok((&a[0], &b[0])),
            _ => Err(self.unsupported(teams)),
        }
    }

    fn unsupported(&self, teams: &[RatedTeam]) -> Unsupported {
        Unsupported(format!(
            "{} rates only one-on-one matches, not {} teams of {} players",
            self.name(),
            teams.len(),
            teams
                .iter()
                .map(|(players, _)| players.len())
                .sum::<usize>()
        ))
    }

    fn failed(&self, teams: &[RatedTeam]) -> Unsupported {
        Unsupported(format!(
            "{} could not rate this match of {} teams (the rating library failed on it)",
            self.name(),
            teams.len()
        ))
    }

    /// `rating` as it stands at `at_ms` after the inactivity since it was last rated.
    pub fn decayed(&self, rating: Rating, inactivity: &Inactivity, at_ms: u64) -> Rating {
        let Some(rated_at_ms) = rating.rated_at_ms else {
            return rating;
        };
        let periods = at_ms.saturating_sub(rated_at_ms) / inactivity.period_ms.max(1);
        if periods == 0 {
            return rating;
        }
        let ceiling = self.initial().deviation;
        let deviation = match *self {
            RatingSystem::Elo { .. } => return rating,
            RatingSystem::Glicko2 { .. } => glicko2_idle(&rating, periods, ceiling),
            RatingSystem::TrueSkill { .. } | RatingSystem::WengLin { .. } => {
                let growth = inactivity.growth.unwrap_or_default();
                (rating.deviation.powi(2) + periods as f64 * growth.powi(2)).sqrt()
            }
        };
        Rating {
            deviation: deviation.min(ceiling).max(rating.deviation),
            ..rating
        }
    }

    /// `rating` pulled `fraction` of the way back to the initial rating (and its deviation as
    /// far back to the initial deviation): where a player starts a new season from.
    pub fn soft_reset(&self, rating: Rating, fraction: f64) -> Rating {
        let initial = self.initial();
        let pull = |value: f64, towards: f64| value + (towards - value) * fraction;
        Rating {
            rating: pull(rating.rating, initial.rating),
            deviation: pull(rating.deviation, initial.deviation),
            ..rating
        }
    }

    /// `rating` as it enters rating period `index` (Glicko-2 boards with rating periods).
    /// A state of an earlier period closes it (what its results made of its start becomes the
    /// new start) and grows by Glickman's step for each period without games since, never
    /// past the initial deviation. A state already in `index` stays in its period (so does
    /// one in a later period: an event older than the player's last counts in theirs), unless
    /// that period is full, which closes it and starts the next at once.
    pub fn in_period(&self, rating: Rating, index: u64) -> Rating {
        let (index, idle) = match &rating.period {
            Some(open) if open.index >= index && open.results.len() < MAX_PERIOD_RESULTS => {
                return rating;
            }
            Some(open) if open.index >= index => (open.index, 0),
            Some(open) => (index, index - open.index - 1),
            None => (index, 0),
        };
        let deviation = if idle == 0 {
            rating.deviation
        } else {
            let ceiling = self.initial().deviation;
            glicko2_idle(&rating, idle, ceiling)
                .min(ceiling)
                .max(rating.deviation)
        };
        Rating {
            deviation,
            period: Some(OpenPeriod {
                index,
                start: PeriodStart {
                    rating: rating.rating,
                    deviation,
                    volatility: rating.volatility,
                },
                results: Vec::new(),
            }),
            ..rating
        }
    }

    /// New ratings after a match, team by team, player by player (each `matches` + 1).
    pub fn rate(&self, teams: &[RatedTeam]) -> Result<Vec<Vec<Rating>>, Unsupported> {
        // The formulas live in a third-party crate; a panic there (on an input its authors did
        // not foresee) must not take the worker down: it becomes an unratable outcome.
        let mut rated =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.rate_unchecked(teams)))
                .map_err(|_| self.failed(teams))??;
        for (team, (before, _)) in rated.iter_mut().zip(teams) {
            for (after, before) in team.iter_mut().zip(before) {
                after.matches = before.matches + 1;
            }
        }
        Ok(rated)
    }

    fn rate_unchecked(&self, teams: &[RatedTeam]) -> Result<Vec<Vec<Rating>>, Unsupported> {
        let two_sided = |teams: &[RatedTeam]| match teams {
            [(_, a), (_, b)] => Some(outcome(*a, *b)),
            _ => None,
        };
        match *self {
            RatingSystem::Elo { k_factor, .. } => {
                let (a, b) = self.one_on_one(teams)?;
                let result = two_sided(teams).ok_or_else(|| self.unsupported(teams))?;
                let (a, b) = elo::elo(&to_elo(a), &to_elo(b), &result, &EloConfig { k: k_factor });
                Ok(vec![vec![from_elo(a)], vec![from_elo(b)]])
            }
            RatingSystem::Glicko2 { tau, .. } => {
                let (a, b) = self.one_on_one(teams)?;
                let result = two_sided(teams).ok_or_else(|| self.unsupported(teams))?;
                let config = Glicko2Config {
                    tau,
                    ..Glicko2Config::new()
                };
                if let (Some(period_a), Some(period_b)) = (&a.period, &b.period) {
                    return Ok(vec![
                        vec![rated_in_period(period_a, period_b, &result, &config)],
                        vec![rated_in_period(
                            period_b,
                            period_a,
                            &reversed(&result),
                            &config,
                        )],
                    ]);
                }
                let (a, b) = glicko2::glicko2(&to_glicko2(a), &to_glicko2(b), &result, &config);
                Ok(vec![vec![from_glicko2(a)], vec![from_glicko2(b)]])
            }
            RatingSystem::TrueSkill { .. } => {
                let config = self.trueskill_config();
                let rated = by_team_shape(
                    teams,
                    to_trueskill,
                    |a, b, o| trueskill::trueskill(a, b, o, &config),
                    |a, b, o| trueskill::trueskill_two_teams(a, b, o, &config),
                    |ranked| {
                        trueskill::trueskill_multi_team(ranked, &config, None)
                            .map_err(|_| self.failed(teams))
                    },
                )?;
                Ok(map_teams(rated, from_trueskill))
            }
            RatingSystem::WengLin { .. } => {
                let config = self.weng_lin_config();
                let rated = by_team_shape(
                    teams,
                    to_weng_lin,
                    |a, b, o| weng_lin::weng_lin(a, b, o, &config),
                    |a, b, o| weng_lin::weng_lin_two_teams(a, b, o, &config),
                    |ranked| Ok(weng_lin::weng_lin_multi_team(ranked, &config)),
                )?;
                Ok(map_teams(rated, from_weng_lin))
            }
        }
    }

    /// Each team's probability of winning (they sum to 1).
    pub fn win_probabilities(&self, teams: &[Vec<Rating>]) -> Result<Vec<f64>, Unsupported> {
        let placed: Vec<RatedTeam> = teams.iter().map(|team| (team.clone(), 1)).collect();
        match *self {
            RatingSystem::Elo { .. } => {
                let (a, b) = self.one_on_one(&placed)?;
                let (pa, pb) = elo::expected_score(&to_elo(a), &to_elo(b));
                Ok(vec![pa, pb])
            }
            RatingSystem::Glicko2 { .. } => {
                let (a, b) = self.one_on_one(&placed)?;
                let (pa, pb) = glicko2::expected_score(&to_glicko2(a), &to_glicko2(b));
                Ok(vec![pa, pb])
            }
            RatingSystem::TrueSkill { .. } => {
                let sides: Vec<Vec<TrueSkillRating>> = teams
                    .iter()
                    .map(|t| t.iter().map(to_trueskill).collect())
                    .collect();
                let refs: Vec<&[TrueSkillRating]> = sides.iter().map(Vec::as_slice).collect();
                Ok(trueskill::expected_score_multi_team(
                    &refs,
                    &self.trueskill_config(),
                ))
            }
            RatingSystem::WengLin { .. } => {
                let sides: Vec<Vec<WengLinRating>> = teams
                    .iter()
                    .map(|t| t.iter().map(to_weng_lin).collect())
                    .collect();
                let refs: Vec<&[WengLinRating]> = sides.iter().map(Vec::as_slice).collect();
                Ok(weng_lin::expected_score_multi_team(
                    &refs,
                    &self.weng_lin_config(),
                ))
            }
        }
    }

    /// TrueSkill's match quality (the draw probability, 0–1) for two sides; other systems,
    /// and more than two sides, have none. (skillratings 0.29's multi-team version panics on
    /// a matrix dimension mismatch, so it is not used.)
    pub fn match_quality(&self, teams: &[Vec<Rating>]) -> Option<f64> {
        let RatingSystem::TrueSkill { .. } = self else {
            return None;
        };
        let config = self.trueskill_config();
        let sides: Vec<Vec<TrueSkillRating>> = teams
            .iter()
            .map(|t| t.iter().map(to_trueskill).collect())
            .collect();
        match sides.as_slice() {
            [a, b] if a.len() == 1 && b.len() == 1 => {
                Some(trueskill::match_quality(&a[0], &b[0], &config))
            }
            [a, b] if !a.is_empty() && !b.is_empty() => {
                Some(trueskill::match_quality_two_teams(a, b, &config))
            }
            _ => None,
        }
    }

    fn trueskill_config(&self) -> TrueSkillConfig {
        match *self {
            RatingSystem::TrueSkill {
                beta,
                draw_probability,
                dynamics,
                ..
            } => TrueSkillConfig {
                draw_probability,
                beta,
                dynamics_factor: dynamics,
            },
            _ => TrueSkillConfig::new(),
        }
    }

    fn weng_lin_config(&self) -> WengLinConfig {
        match *self {
            RatingSystem::WengLin { beta, .. } => WengLinConfig {
                beta,
                ..WengLinConfig::new()
            },
            _ => WengLinConfig::new(),
        }
    }
}

/// Rates teams with the function the crate has for their shape: one player against one, two
/// teams, or more (places as ranks). TrueSkill and Weng-Lin share this dispatch.
fn by_team_shape<R>(
    teams: &[RatedTeam],
    convert: fn(&Rating) -> R,
    one_on_one: impl Fn(&R, &R, &Outcomes) -> (R, R),
    two_teams: impl Fn(&[R], &[R], &Outcomes) -> (Vec<R>, Vec<R>),
    multi_team: impl Fn(&[(&[R], MultiTeamOutcome)]) -> Result<Vec<Vec<R>>, Unsupported>,
) -> Result<Vec<Vec<R>>, Unsupported> {
    let sides: Vec<Vec<R>> = teams
        .iter()
        .map(|(players, _)| players.iter().map(convert).collect())
        .collect();
    match (teams, sides.as_slice()) {
        ([(_, pa), (_, pb)], [a, b]) if a.len() == 1 && b.len() == 1 => {
            let (a, b) = one_on_one(&a[0], &b[0], &outcome(*pa, *pb));
            Ok(vec![vec![a], vec![b]])
        }
        ([(_, pa), (_, pb)], [a, b]) => {
            let (a, b) = two_teams(a, b, &outcome(*pa, *pb));
            Ok(vec![a, b])
        }
        _ => {
            let ranked: Vec<(&[R], MultiTeamOutcome)> = sides
                .iter()
                .zip(teams)
                .map(|(side, (_, place))| (side.as_slice(), MultiTeamOutcome::new(*place as usize)))
                .collect();
            multi_team(&ranked)
        }
    }
}

fn map_teams<R>(teams: Vec<Vec<R>>, convert: fn(R) -> Rating) -> Vec<Vec<Rating>> {
    teams
        .into_iter()
        .map(|team| team.into_iter().map(convert).collect())
        .collect()
}

/// The outcome from the first side's view, by places (lower is better).
fn outcome(first: u32, second: u32) -> Outcomes {
    match first.cmp(&second) {
        std::cmp::Ordering::Less => Outcomes::WIN,
        std::cmp::Ordering::Greater => Outcomes::LOSS,
        std::cmp::Ordering::Equal => Outcomes::DRAW,
    }
}

/// The outcome from the second side's view.
fn reversed(outcome: &Outcomes) -> Outcomes {
    match outcome {
        Outcomes::WIN => Outcomes::LOSS,
        Outcomes::LOSS => Outcomes::WIN,
        Outcomes::DRAW => Outcomes::DRAW,
    }
}

/// Glickman's step for a rating period without games, `periods` times (φ' = √(φ² + σ²)),
/// stopping at `ceiling`: the deviation it reaches.
fn glicko2_idle(rating: &Rating, periods: u64, ceiling: f64) -> f64 {
    let mut decayed = to_glicko2(rating);
    // One period at a time, as the paper rates them; capped, so a long absence costs no more
    // than a few dozen steps before the ceiling.
    for _ in 0..periods.min(10_000) {
        decayed = glicko2::decay_deviation(&decayed);
        if decayed.deviation >= ceiling {
            break;
        }
    }
    decayed.deviation
}

/// A player's state after one more game in their open rating period: the period's start
/// rated on all its results together (`glicko2_rating_period`), the new one against the
/// opponent's start.
fn rated_in_period(
    player: &OpenPeriod,
    opponent: &OpenPeriod,
    outcome: &Outcomes,
    config: &Glicko2Config,
) -> Rating {
    let mut period = player.clone();
    period.results.push(PeriodResult {
        opponent_rating: opponent.start.rating,
        opponent_deviation: opponent.start.deviation,
        score: outcome.to_chess_points(),
    });
    let results: Vec<(Glicko2Rating, Outcomes)> = period
        .results
        .iter()
        .map(|result| {
            let opponent = Glicko2Rating {
                rating: result.opponent_rating,
                deviation: result.opponent_deviation,
                // The formula reads only the opponent's rating and deviation.
                volatility: 0.0,
            };
            let outcome = if result.score >= 1.0 {
                Outcomes::WIN
            } else if result.score <= 0.0 {
                Outcomes::LOSS
            } else {
                Outcomes::DRAW
            };
            (opponent, outcome)
        })
        .collect();
    let start = Glicko2Rating {
        rating: period.start.rating,
        deviation: period.start.deviation,
        volatility: period.start.volatility,
    };
    let rated = glicko2::glicko2_rating_period(&start, &results, config);
    Rating {
        period: Some(period),
        ..from_glicko2(rated)
    }
}

fn to_elo(r: &Rating) -> EloRating {
    EloRating { rating: r.rating }
}
fn from_elo(r: EloRating) -> Rating {
    Rating {
        rating: r.rating,
        deviation: 0.0,
        volatility: 0.0,
        matches: 0,
        rated_at_ms: None,
        season: None,
        period: None,
    }
}
fn to_glicko2(r: &Rating) -> Glicko2Rating {
    Glicko2Rating {
        rating: r.rating,
        deviation: r.deviation,
        volatility: r.volatility,
    }
}
fn from_glicko2(r: Glicko2Rating) -> Rating {
    Rating {
        rating: r.rating,
        deviation: r.deviation,
        volatility: r.volatility,
        matches: 0,
        rated_at_ms: None,
        season: None,
        period: None,
    }
}
fn to_trueskill(r: &Rating) -> TrueSkillRating {
    TrueSkillRating {
        rating: r.rating,
        uncertainty: r.deviation,
    }
}
fn from_trueskill(r: TrueSkillRating) -> Rating {
    Rating {
        rating: r.rating,
        deviation: r.uncertainty,
        volatility: 0.0,
        matches: 0,
        rated_at_ms: None,
        season: None,
        period: None,
    }
}
fn to_weng_lin(r: &Rating) -> WengLinRating {
    WengLinRating {
        rating: r.rating,
        uncertainty: r.deviation,
    }
}
fn from_weng_lin(r: WengLinRating) -> Rating {
    Rating {
        rating: r.rating,
        deviation: r.uncertainty,
        volatility: 0.0,
        matches: 0,
        rated_at_ms: None,
        season: None,
        period: None,
    }
}

/// Defaults of each system, as games files get them when a parameter is left out.
pub mod defaults {
    use super::{Display, RatingSystem};

    pub mod elo {
        pub const INITIAL_RATING: f64 = 1000.0;
        pub const K_FACTOR: f64 = 32.0;
    }

    pub mod glicko2 {
        pub const INITIAL_RATING: f64 = 1500.0;
        pub const INITIAL_DEVIATION: f64 = 350.0;
        pub const INITIAL_VOLATILITY: f64 = 0.06;
        pub const TAU: f64 = 0.5;
    }

    /// TrueSkill's and Weng-Lin's (they share their scale).
    pub mod skill {
        pub const MU: f64 = 25.0;
        pub const SIGMA: f64 = MU / 3.0;
        pub const BETA: f64 = MU / 6.0;
        pub const DRAW_PROBABILITY: f64 = 0.1;
        pub const DYNAMICS: f64 = MU / 300.0;
    }

    pub const ELO: RatingSystem = RatingSystem::Elo {
        initial_rating: elo::INITIAL_RATING,
        k_factor: elo::K_FACTOR,
    };
    pub const GLICKO2: RatingSystem = RatingSystem::Glicko2 {
        initial_rating: glicko2::INITIAL_RATING,
        initial_deviation: glicko2::INITIAL_DEVIATION,
        initial_volatility: glicko2::INITIAL_VOLATILITY,
        tau: glicko2::TAU,
    };
    pub const TRUESKILL: RatingSystem = RatingSystem::TrueSkill {
        mu: skill::MU,
        sigma: skill::SIGMA,
        beta: skill::BETA,
        draw_probability: skill::DRAW_PROBABILITY,
        dynamics: skill::DYNAMICS,
        display: Display::Conservative,
    };
    pub const WENG_LIN: RatingSystem = RatingSystem::WengLin {
        mu: skill::MU,
        sigma: skill::SIGMA,
        beta: skill::BETA,
        display: Display::Conservative,
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(actual: f64, expected: f64, tolerance: f64) {
        assert!(
            (actual - expected).abs() <= tolerance,
            "{actual} is not within {tolerance} of {expected}"
        );
    }

    fn solo(system: &RatingSystem, rating: f64, deviation: f64) -> Rating {
        Rating {
            rating,
            deviation,
            ..system.initial()
        }
    }

    #[test]
    fn elo_expected_score_is_the_logistic_formula() {
        let system = defaults::ELO;
        let a = solo(&system, 1613.0, 0.0);
        let b = solo(&system, 1477.0, 0.0);
        let expected = 1.0 / (1.0 + 10f64.powf((1477.0 - 1613.0) / 400.0));
        let p = system
            .win_probabilities(&[vec![a.clone()], vec![b.clone()]])
            .unwrap();
        close(p[0], expected, 1e-12);
        close(p[0] + p[1], 1.0, 1e-12);
    }

    #[test]
    fn elo_update_is_k_times_surprise() {
        let system = RatingSystem::Elo {
            initial_rating: 1500.0,
            k_factor: 32.0,
        };
        let a = solo(&system, 1600.0, 0.0);
        let b = solo(&system, 1400.0, 0.0);
        let expected_a = 1.0 / (1.0 + 10f64.powf(-200.0 / 400.0));
        // The favourite loses.
        let rated = system
            .rate(&[(vec![a.clone()], 2), (vec![b.clone()], 1)])
            .unwrap();
        close(rated[0][0].rating, 1600.0 + 32.0 * (0.0 - expected_a), 1e-9);
        close(
            rated[1][0].rating,
            1400.0 + 32.0 * (1.0 - (1.0 - expected_a)),
            1e-9,
        );
        assert_eq!(rated[0][0].matches, 1);
        // A draw between equals changes nothing.
        let even = system.initial();
        let drawn = system
            .rate(&[(vec![even.clone()], 1), (vec![even.clone()], 1)])
            .unwrap();
        close(drawn[0][0].rating, 1500.0, 1e-12);
    }

    #[test]
    fn glicko2_matches_glickmans_worked_example() {
        // Glickman, "Example of the Glicko-2 system" (2013): a 1500/200/0.06 player beats a
        // 1400/30 player, loses to 1550/100 and to 1700/300 in one rating period, tau 0.5:
        // new rating 1464.06, RD 151.52, volatility 0.05999.
        let player = Glicko2Rating {
            rating: 1500.0,
            deviation: 200.0,
            volatility: 0.06,
        };
        let opponent = |rating, deviation| Glicko2Rating {
            rating,
            deviation,
            volatility: 0.06,
        };
        let results = [
            (opponent(1400.0, 30.0), Outcomes::WIN),
            (opponent(1550.0, 100.0), Outcomes::LOSS),
            (opponent(1700.0, 300.0), Outcomes::LOSS),
        ];
        let new = glicko2::glicko2_rating_period(&player, &results, &Glicko2Config::new());
        close(new.rating, 1464.06, 0.01);
        close(new.deviation, 151.52, 0.01);
        close(new.volatility, 0.05999, 0.00001);
    }

    #[test]
    fn inactive_deviations_grow_per_whole_period_by_glickmans_step_or_the_growth() {
        const WEEK: u64 = 7 * 86_400_000;
        let weekly = Inactivity {
            period_ms: WEEK,
            growth: None,
        };
        let glicko2 = defaults::GLICKO2;
        let rated = Rating {
            rating: 1700.0,
            deviation: 50.0,
            volatility: 0.06,
            matches: 12,
            rated_at_ms: Some(1_000),
            season: None,
            period: None,
        };
        // Within the first period: unchanged.
        assert_eq!(
            glicko2.decayed(rated.clone(), &weekly, 1_000 + WEEK - 1),
            rated
        );
        // Three whole periods: φ' = √(φ² + 3σ²) on Glicko-2's scale (Glickman's step for a
        // period without games, three times).
        let scale = 173.7178;
        let expected = ((50.0_f64 / scale).powi(2) + 3.0 * 0.06_f64.powi(2)).sqrt() * scale;
        let decayed = glicko2.decayed(rated.clone(), &weekly, 1_000 + 3 * WEEK + 5);
        close(decayed.deviation, expected, 1e-9);
        assert_eq!(
            (decayed.rating, decayed.matches, decayed.rated_at_ms),
            (1700.0, 12, Some(1_000))
        );
        // Never past the initial deviation; never for a rating without a time.
        let decayed = glicko2.decayed(rated.clone(), &weekly, 1_000 + 100_000 * WEEK);
        assert_eq!(decayed.deviation, 350.0);
        let untimed = Rating {
            rated_at_ms: None,
            season: None,
            ..rated.clone()
        };
        assert_eq!(glicko2.decayed(untimed.clone(), &weekly, u64::MAX), untimed);
        // TrueSkill: σ² grows by the growth² per period.
        let trueskill = defaults::TRUESKILL;
        let growing = Inactivity {
            period_ms: WEEK,
            growth: Some(0.5),
        };
        let sure = Rating {
            rating: 30.0,
            deviation: 1.0,
            volatility: 0.0,
            matches: 40,
            rated_at_ms: Some(0),
            season: None,
            period: None,
        };
        let decayed = trueskill.decayed(sure.clone(), &growing, 4 * WEEK);
        close(decayed.deviation, (1.0_f64 + 4.0 * 0.25).sqrt(), 1e-12);
        // Elo has no deviation to grow.
        assert_eq!(
            defaults::ELO.decayed(sure.clone(), &growing, 4 * WEEK),
            sure
        );
    }

    /// A Glicko-2 state with the given rating, deviation and volatility.
    fn glicko2_state(rating: f64, deviation: f64, volatility: f64) -> Rating {
        Rating {
            rating,
            deviation,
            volatility,
            matches: 10,
            rated_at_ms: None,
            season: None,
            period: None,
        }
    }

    #[test]
    fn a_rating_periods_games_are_rated_together_as_in_glickmans_worked_example() {
        // Glickman, "Example of the Glicko-2 system": a 1500/200/0.06 player beats a
        // 1400/30 player and loses to 1550/100 and 1700/300 players in one rating period;
        // after it: 1464.06 / 151.52 / 0.05999.
        let system = defaults::GLICKO2;
        let period = 7;
        let mut player = system.in_period(glicko2_state(1500.0, 200.0, 0.06), period);
        let opponents = [(1400.0, 30.0, 2), (1550.0, 100.0, 1), (1700.0, 300.0, 1)];
        for (rating, deviation, opponent_place) in opponents {
            let opponent = system.in_period(glicko2_state(rating, deviation, 0.06), period);
            let player_place = if opponent_place == 1 { 2 } else { 1 };
            let rated = system
                .rate(&[
                    (vec![player], player_place),
                    (vec![opponent], opponent_place),
                ])
                .unwrap();
            player = rated[0][0].clone();
        }
        // The paper rounds its intermediate steps (μ′ = −0.2069 → 1464.06); unrounded it is
        // 1464.0507, as the crate's own test has it.
        close(player.rating, 1464.06, 0.01);
        close(player.deviation, 151.52, 0.01);
        close(player.volatility, 0.05999, 0.00001);
        assert_eq!(player.matches, 13);
        let open = player.period.clone().unwrap();
        assert_eq!((open.index, open.results.len()), (period, 3));
        assert_eq!(open.start.rating, 1500.0);
        // Game by game (every game its own period) gives another answer: the reason for
        // periods.
        let mut one_by_one = glicko2_state(1500.0, 200.0, 0.06);
        for (rating, deviation, opponent_place) in opponents {
            let opponent = glicko2_state(rating, deviation, 0.06);
            let player_place = if opponent_place == 1 { 2 } else { 1 };
            one_by_one = system
                .rate(&[
                    (vec![one_by_one], player_place),
                    (vec![opponent], opponent_place),
                ])
                .unwrap()[0][0]
                .clone();
        }
        assert!((one_by_one.rating - player.rating).abs() > 0.01);

        // The next period starts from the result; two idle periods later it has grown by two
        // of Glickman's steps (capped at the initial deviation, never shrunk).
        let next = system.in_period(player.clone(), period + 1);
        let start = next.period.clone().unwrap().start;
        assert_eq!(
            (start.rating, start.deviation, start.volatility),
            (player.rating, player.deviation, player.volatility)
        );
        assert!(next.period.as_ref().unwrap().results.is_empty());
        let later = system.in_period(player.clone(), period + 3);
        let scale = 173.7178;
        let grown =
            ((player.deviation / scale).powi(2) + 2.0 * player.volatility.powi(2)).sqrt() * scale;
        close(later.deviation, grown, 1e-9);
        assert_eq!(
            later.period.as_ref().unwrap().start.deviation,
            later.deviation
        );
        // Still in its period (or an older event): nothing changes.
        assert_eq!(system.in_period(player.clone(), period), player);
        assert_eq!(system.in_period(player.clone(), period - 1), player);
    }

    #[test]
    fn a_full_rating_period_closes_early_in_the_same_index() {
        let system = defaults::GLICKO2;
        let mut player = system.in_period(glicko2_state(1500.0, 200.0, 0.06), 3);
        let opponent = system.in_period(glicko2_state(1500.0, 200.0, 0.06), 3);
        for _ in 0..MAX_PERIOD_RESULTS {
            player = system
                .rate(&[(vec![player], 1), (vec![opponent.clone()], 2)])
                .unwrap()[0][0]
                .clone();
        }
        assert_eq!(
            player.period.as_ref().unwrap().results.len(),
            MAX_PERIOD_RESULTS
        );
        let reopened = system.in_period(player.clone(), 3);
        let open = reopened.period.unwrap();
        assert_eq!((open.index, open.results.len()), (3, 0));
        assert_eq!(open.start.rating, player.rating);
    }

    #[test]
    fn glicko2_one_match_goes_through_the_crate() {
        let system = defaults::GLICKO2;
        let a = Rating {
            rating: 1500.0,
            deviation: 200.0,
            volatility: 0.06,
            matches: 0,
            rated_at_ms: None,
            season: None,
            period: None,
        };
        let b = Rating {
            rating: 1400.0,
            deviation: 30.0,
            volatility: 0.06,
            matches: 3,
            rated_at_ms: None,
            season: None,
            period: None,
        };
        let rated = system
            .rate(&[(vec![a.clone()], 1), (vec![b.clone()], 2)])
            .unwrap();
        // The crate's own documented figures for this match.
        close(rated[0][0].rating.round(), 1564.0, 0.0);
        close(rated[0][0].deviation.round(), 175.0, 0.0);
        assert_eq!(rated[1][0].matches, 4);
    }

    #[test]
    fn trueskill_one_on_one_matches_the_reference_implementation() {
        // Microsoft's TrueSkill as in the `trueskill` Python package: rate_1vs1 of two new
        // players gives (29.396, 7.171) and (20.604, 7.171).
        let system = defaults::TRUESKILL;
        let new = system.initial();
        let rated = system
            .rate(&[(vec![new.clone()], 1), (vec![new.clone()], 2)])
            .unwrap();
        close(rated[0][0].rating, 29.396, 0.001);
        close(rated[0][0].deviation, 7.171, 0.001);
        close(rated[1][0].rating, 20.604, 0.001);
        // Conservative display: mu - 3 sigma.
        close(system.display(&rated[0][0]), 29.396 - 3.0 * 7.171, 0.01);
        // Two equal new players: 44.7% match quality (draw chance), per the crate docs.
        close(
            system
                .match_quality(&[vec![new.clone()], vec![new.clone()]])
                .unwrap(),
            0.447,
            0.001,
        );
    }

    #[test]
    fn weng_lin_one_on_one_matches_openskill() {
        // OpenSkill (Weng-Lin) rate([[a], [b]]) of two new players: 27.635/8.065 and 22.365.
        let system = defaults::WENG_LIN;
        let new = system.initial();
        let rated = system
            .rate(&[(vec![new.clone()], 1), (vec![new.clone()], 2)])
            .unwrap();
        close(rated[0][0].rating, 27.635, 0.001);
        close(rated[0][0].deviation, 8.065, 0.001);
        close(rated[1][0].rating, 22.365, 0.001);
    }

    #[test]
    fn team_and_free_for_all_outcomes() {
        for system in [defaults::TRUESKILL, defaults::WENG_LIN] {
            let new = system.initial();
            let teams = system
                .rate(&[(vec![new.clone(); 2], 1), (vec![new.clone(); 2], 2)])
                .unwrap();
            assert!(teams[0][1].rating > new.rating && teams[1][0].rating < new.rating);
            let ffa: Vec<RatedTeam> = (1..=4).map(|place| (vec![new.clone()], place)).collect();
            let rated = system.rate(&ffa).unwrap();
            assert!(rated[0][0].rating > rated[1][0].rating);
            assert!(rated[2][0].rating > rated[3][0].rating);
            let p = system
                .win_probabilities(&[vec![new.clone()], vec![new.clone()], vec![new.clone()]])
                .unwrap();
            close(p.iter().sum::<f64>(), 1.0, 1e-9);
        }
    }

    #[test]
    fn one_on_one_systems_refuse_teams_with_a_reason() {
        for system in [defaults::ELO, defaults::GLICKO2] {
            let new = system.initial();
            let error = system
                .rate(&[(vec![new.clone(); 2], 1), (vec![new.clone()], 2)])
                .unwrap_err();
            assert_eq!(
                error.to_string(),
                format!(
                    "{} rates only one-on-one matches, not 2 teams of 3 players",
                    system.name()
                )
            );
            assert!(
                system
                    .rate(&[
                        (vec![new.clone()], 1),
                        (vec![new.clone()], 2),
                        (vec![new.clone()], 3)
                    ])
                    .is_err()
            );
        }
    }
}
