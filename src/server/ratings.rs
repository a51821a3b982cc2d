//! HTTP handlers for rating boards: a player's full rating state, their rating history, and
//! the predicted outcome of a proposed match.

use std::collections::HashSet;

use axum::Json;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::openapi::{RefOr, Schema};
use utoipa::{IntoParams, ToSchema};

use super::AppState;
use super::error::{ApiError, ErrorBody, ErrorCode};
use super::openapi::{id_schema, schema};
use super::routes::{bad_path, find_board, parse_player, parse_product};
use crate::core::event::MAX_MATCH_PLAYERS;
use crate::core::ids::ProductId;
use crate::leaderboards::boards::BoardRule;
use crate::leaderboards::query;
use crate::leaderboards::ratings::{Rating, RatingSystem};

/// Most history entries one request returns.
const MAX_HISTORY_PAGE: usize = 1000;

/// The rating system and settings of a product's board, or a 404 saying what is missing.
fn rating_board(
    state: &AppState,
    product: &ProductId,
    board: &str,
) -> Result<(RatingSystem, u64), ApiError> {
    match find_board(state, product, board)?.rule {
        BoardRule::Rated {
            system,
            min_matches,
            ..
        } => Ok((system, min_matches)),
        _ => Err(ApiError::new(
            ErrorCode::NotARatingBoard,
            format!("board `{board}` of `{product}` is not a rating board"),
        )),
    }
}

/// The answer of the rating route: a player's full rating state on one board.
#[derive(Serialize, ToSchema)]
pub struct PlayerRating {
    pub product_id: String,
    pub board: String,
    pub user_id: String,
    /// The board's rating system: `elo`, `glicko2`, `trueskill` or `weng_lin`.
    #[schema(example = "elo")]
    pub kind: &'static str,
    pub state: Rating,
    /// The number the board ranks by (for TrueSkill and Weng-Lin as the board configures it).
    pub display: f64,
    /// Fewer matches than the board's `min_matches`: not on the board yet.
    pub provisional: bool,
}

/// `GET /v1/products/{product_id}/boards/{board}/players/{user_id}/rating`
#[utoipa::path(
    get,
    path = "/v1/products/{product_id}/boards/{board}/players/{user_id}/rating",
    tag = "ratings",
    summary = "A player's full rating state on a rating board",
    params(
        ("product_id" = String, Path, description = "Product (game) id"),
        ("board" = String, Path, description = "Rating board name"),
        ("user_id" = String, Path, description = "Player id"),
    ),
    responses(
        (status = 200, description = "The player's rating", body = PlayerRating),
        (status = 400, description = "Invalid product id, player id or path", body = ErrorBody),
        (status = 404, description = "`product_not_found`, `board_not_found`, `not_a_rating_board` or `player_not_rated`", body = ErrorBody),
        (status = 503, description = "The store is unavailable", body = ErrorBody),
    )
)]
pub async fn rating(
    State(state): State<AppState>,
    path: Result<Path<(String, String, String)>, PathRejection>,
) -> Result<Json<PlayerRating>, ApiError> {
    let Path((product, board, player)) = path.map_err(bad_path)?;
    let product = parse_product(&product)?;
    let player = parse_player(&player)?;
    let (system, min_matches) = rating_board(&state, &product, &board)?;
    let rating = query::rating(&state.store, &product, &board, &player)
        .await?
        .ok_or_else(|| {
            ApiError::new(
                ErrorCode::PlayerNotRated,
                format!("player `{player}` has no rating on board `{board}`"),
            )
        })?;
    Ok(Json(PlayerRating {
        product_id: product.to_string(),
        board,
        user_id: player.to_string(),
        kind: system.name(),
        display: system.display(&rating),
        provisional: rating.matches < min_matches,
        state: rating,
    }))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct HistoryQuery {
    /// Most entries to return (default 100, at most 1000).
    #[param(maximum = 1000, default = 100)]
    limit: Option<usize>,
}

/// The answer of the history route.
#[derive(Serialize, ToSchema)]
pub struct RatingHistory {
    /// Newest first.
    #[schema(value_type = Vec<HistoryEntry>)]
    pub entries: Vec<Value>,
}

/// One rated match of a player, as the worker stored it (`leaderboards::boards`).
#[derive(ToSchema)]
#[allow(dead_code)] // Documentation only: entries are kept and served as the JSON the worker wrote.
pub struct HistoryEntry {
    /// Id of the stream entry that rated the match.
    id: String,
    /// When the match was rated, in milliseconds since the Unix epoch.
    at_ms: u64,
    /// `win`, `draw` or `loss`.
    result: String,
    /// The player's team's place (1 is best).
    place: u32,
    /// The player's win probability before the match; `null` where the system has none.
    #[schema(required = true)]
    expected: Option<f64>,
    /// Displayed rating before the match.
    before: f64,
    /// Displayed rating after the match.
    after: f64,
    /// `after - before`.
    change: f64,
    state_before: Rating,
    state_after: Rating,
}

/// `GET /v1/products/{product_id}/boards/{board}/players/{user_id}/history?limit=N`: newest
/// first; each entry has the rating before and after, the change and the expected score.
#[utoipa::path(
    get,
    path = "/v1/products/{product_id}/boards/{board}/players/{user_id}/history",
    tag = "ratings",
    summary = "A player's rating history on a rating board, newest first",
    params(
        ("product_id" = String, Path, description = "Product (game) id"),
        ("board" = String, Path, description = "Rating board name"),
        ("user_id" = String, Path, description = "Player id"),
        HistoryQuery,
    ),
    responses(
        (status = 200, description = "The history; no entries for a player never rated", body = RatingHistory),
        (status = 400, description = "Invalid ids, path, query (`invalid_query`) or limit (`invalid_limit`)", body = ErrorBody),
        (status = 404, description = "`product_not_found`, `board_not_found` or `not_a_rating_board`", body = ErrorBody),
        (status = 503, description = "The store is unavailable", body = ErrorBody),
    )
)]
pub async fn history(
    State(state): State<AppState>,
    path: Result<Path<(String, String, String)>, PathRejection>,
    query: Result<Query<HistoryQuery>, QueryRejection>,
) -> Result<Json<RatingHistory>, ApiError> {
    let Path((product, board, player)) = path.map_err(bad_path)?;
    let Query(query) =
        query.map_err(|rejection| ApiError::new(ErrorCode::InvalidQuery, rejection.body_text()))?;
    let product = parse_product(&product)?;
    let player = parse_player(&player)?;
    rating_board(&state, &product, &board)?;
    let limit = query.limit.unwrap_or(100);
    if limit > MAX_HISTORY_PAGE {
        return Err(ApiError::new(
            ErrorCode::InvalidLimit,
            format!("limit must be at most {MAX_HISTORY_PAGE}"),
        ));
    }
    let entries = query::history(&state.store, &product, &board, &player, limit).await?;
    Ok(Json(RatingHistory { entries }))
}

/// A proposed match: teams of player ids.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PredictRequest {
    /// What the schema below says.
    teams: Vec<Vec<String>>,
}

impl utoipa::PartialSchema for PredictRequest {
    fn schema() -> RefOr<Schema> {
        let id = id_schema();
        schema(json!({
            "type": "object",
            "required": ["teams"],
            "properties": {
                "teams": {
                    "type": "array",
                    "description": "At least two non-empty teams of player ids, at most 100 \
                        players in all, no player twice (else 400 `invalid_teams`). Elo and \
                        Glicko-2 boards take exactly two teams of one player each (else 400 \
                        `unsupported_match`); TrueSkill and Weng-Lin boards any line-up.",
                    "items": {
                        "type": "array",
                        "items": id,
                        "minItems": 1,
                        "maxItems": MAX_MATCH_PLAYERS,
                        "uniqueItems": true,
                    },
                    "minItems": 2,
                    "maxItems": MAX_MATCH_PLAYERS,
                    "example": [["alice"], ["bob"]],
                },
            },
            "additionalProperties": false,
        }))
    }
}

impl ToSchema for PredictRequest {}

/// The answer of the predict route.
#[derive(Serialize, ToSchema)]
pub struct Prediction {
    /// The board's rating system.
    #[schema(example = "trueskill")]
    pub kind: &'static str,
    /// Each team's win probability, in the order of the request's teams.
    pub win_probabilities: Vec<f64>,
    /// How balanced the match is (TrueSkill, two sides); `null` where the system has none.
    #[schema(required = true)]
    pub match_quality: Option<f64>,
}

/// `POST /v1/products/{product_id}/boards/{board}/predict` with `{"teams": [["A"], ["B"]]}`:
/// each team's win probability from the current ratings (new players at the initial rating),
/// and the match quality where the system has one.
#[utoipa::path(
    post,
    path = "/v1/products/{product_id}/boards/{board}/predict",
    tag = "ratings",
    summary = "Each team's win probability in a proposed match",
    params(
        ("product_id" = String, Path, description = "Product (game) id"),
        ("board" = String, Path, description = "Rating board name"),
    ),
    request_body = PredictRequest,
    responses(
        (status = 200, description = "The prediction; unrated players count at the initial rating", body = Prediction),
        (status = 400, description = "`invalid_body`, `invalid_teams`, `unsupported_match`, or invalid ids or path", body = ErrorBody),
        (status = 404, description = "`product_not_found`, `board_not_found` or `not_a_rating_board`", body = ErrorBody),
        (status = 413, description = "`body_too_large`", body = ErrorBody),
        (status = 503, description = "The store is unavailable", body = ErrorBody),
    )
)]
pub async fn predict(
    State(state): State<AppState>,
    path: Result<Path<(String, String)>, PathRejection>,
    body: Result<Json<PredictRequest>, JsonRejection>,
) -> Result<Json<Prediction>, ApiError> {
    let Path((product, board)) = path.map_err(bad_path)?;
    let Json(request) = body?;
    let product = parse_product(&product)?;
    let (system, _) = rating_board(&state, &product, &board)?;
    let players: usize = request.teams.iter().map(Vec::len).sum();
    if request.teams.len() < 2
        || request.teams.iter().any(Vec::is_empty)
        || players > MAX_MATCH_PLAYERS
    {
        return Err(ApiError::new(
            ErrorCode::InvalidTeams,
            format!("give at least two non-empty teams and at most {MAX_MATCH_PLAYERS} players"),
        ));
    }
    let mut seen = HashSet::new();
    let mut teams: Vec<Vec<Rating>> = Vec::with_capacity(request.teams.len());
    for team in &request.teams {
        let mut ratings = Vec::with_capacity(team.len());
        for raw in team {
            let player = parse_player(raw)?;
            if !seen.insert(player.clone()) {
                return Err(ApiError::new(
                    ErrorCode::InvalidTeams,
                    format!("player `{player}` appears twice"),
                ));
            }
            let rating = query::rating(&state.store, &product, &board, &player).await?;
            ratings.push(rating.unwrap_or(system.initial()));
        }
        teams.push(ratings);
    }
    let probabilities = system.win_probabilities(&teams).map_err(|unsupported| {
        ApiError::new(ErrorCode::UnsupportedMatch, unsupported.to_string())
    })?;
    Ok(Json(Prediction {
        kind: system.name(),
        win_probabilities: probabilities,
        match_quality: system.match_quality(&teams),
    }))
}
