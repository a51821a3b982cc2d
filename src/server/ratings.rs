//! HTTP handlers for rating boards: a player's full rating state, their rating history, and
//! the predicted outcome of a proposed match.

use std::collections::HashSet;

use axum::Json;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use serde::Deserialize;
use serde_json::{Value, json};

use super::AppState;
use super::error::ApiError;
use super::routes::{bad_path, parse_player, parse_product};
use crate::core::event::MAX_MATCH_PLAYERS;
use crate::core::ids::ProductId;
use crate::leaderboards::boards::{BoardRule, rating_json};
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
    let games = state.games.product(product).ok_or_else(|| {
        ApiError::not_found(
            "product_not_found",
            format!("product `{product}` is not configured"),
        )
    })?;
    let board_config = games.boards.get(board).ok_or_else(|| {
        ApiError::not_found(
            "board_not_found",
            format!("product `{product}` has no board `{board}`"),
        )
    })?;
    match board_config.rule {
        BoardRule::Rated {
            system,
            min_matches,
            ..
        } => Ok((system, min_matches)),
        _ => Err(ApiError::not_found(
            "not_a_rating_board",
            format!("board `{board}` of `{product}` is not a rating board"),
        )),
    }
}

/// `GET /v1/products/{product_id}/boards/{board}/players/{user_id}/rating`
pub async fn rating(
    State(state): State<AppState>,
    path: Result<Path<(String, String, String)>, PathRejection>,
) -> Result<Json<Value>, ApiError> {
    let Path((product, board, player)) = path.map_err(bad_path)?;
    let product = parse_product(&product)?;
    let player = parse_player(&player)?;
    let (system, min_matches) = rating_board(&state, &product, &board)?;
    let rating = query::rating(&state.store, &product, &board, &player)
        .await?
        .ok_or_else(|| {
            ApiError::not_found(
                "player_not_rated",
                format!("player `{player}` has no rating on board `{board}`"),
            )
        })?;
    Ok(Json(json!({
        "product_id": product.as_str(),
        "board": board,
        "user_id": player.as_str(),
        "kind": system.name(),
        "state": rating_json(&rating),
        "display": system.display(&rating),
        "provisional": rating.matches < min_matches,
    })))
}

#[derive(Deserialize)]
pub struct HistoryQuery {
    limit: Option<usize>,
}

/// `GET /v1/products/{product_id}/boards/{board}/players/{user_id}/history?limit=N`: newest
/// first; each entry has the rating before and after, the change and the expected score.
pub async fn history(
    State(state): State<AppState>,
    path: Result<Path<(String, String, String)>, PathRejection>,
    query: Result<Query<HistoryQuery>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Path((product, board, player)) = path.map_err(bad_path)?;
    let Query(query) =
        query.map_err(|rejection| ApiError::bad_request("invalid_query", rejection.body_text()))?;
    let product = parse_product(&product)?;
    let player = parse_player(&player)?;
    rating_board(&state, &product, &board)?;
    let limit = query.limit.unwrap_or(100);
    if limit > MAX_HISTORY_PAGE {
        return Err(ApiError::bad_request(
            "invalid_limit",
            format!("limit must be at most {MAX_HISTORY_PAGE}"),
        ));
    }
    let entries = query::history(&state.store, &product, &board, &player, limit).await?;
    Ok(Json(json!({ "entries": entries })))
}

/// A proposed match: teams of player ids.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PredictRequest {
    teams: Vec<Vec<String>>,
}

/// `POST /v1/products/{product_id}/boards/{board}/predict` with `{"teams": [["A"], ["B"]]}`:
/// each team's win probability from the current ratings (new players at the initial rating),
/// and the match quality where the system has one.
pub async fn predict(
    State(state): State<AppState>,
    path: Result<Path<(String, String)>, PathRejection>,
    body: Result<Json<PredictRequest>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let Path((product, board)) = path.map_err(bad_path)?;
    let Json(request) = body?;
    let product = parse_product(&product)?;
    let (system, _) = rating_board(&state, &product, &board)?;
    let players: usize = request.teams.iter().map(Vec::len).sum();
    if request.teams.len() < 2
        || request.teams.iter().any(Vec::is_empty)
        || players > MAX_MATCH_PLAYERS
    {
        return Err(ApiError::bad_request(
            "invalid_teams",
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
                return Err(ApiError::bad_request(
                    "invalid_teams",
                    format!("player `{player}` appears twice"),
                ));
            }
            let rating = query::rating(&state.store, &product, &board, &player).await?;
            ratings.push(rating.unwrap_or(system.initial()));
        }
        teams.push(ratings);
    }
    let probabilities = system.win_probabilities(&teams).map_err(|unsupported| {
        ApiError::bad_request("unsupported_match", unsupported.to_string())
    })?;
    Ok(Json(json!({
        "kind": system.name(),
        "win_probabilities": probabilities,
        "match_quality": system.match_quality(&teams),
    })))
}
