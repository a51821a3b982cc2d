//! HTTP handlers of the public data routes, kept exactly as the original service had them so
//! the existing web portal works unchanged.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};

use serde_json::Value;

use super::AppState;
use super::error::{ApiError, ErrorBody, ErrorCode};
use crate::core::config::StatValues;
use crate::core::ids::{PlayerId, ProductId};
use crate::leaderboards::boards::Board;
use crate::leaderboards::query::{self, BoardEntry};
use crate::leaderboards::scoring::WINS_BOARD;
use crate::player_stats;

/// Rows returned by `top_ten`.
const TOP_TEN: usize = 10;

/// `GET /leaderboards/top_ten/{product_id}`: the ten best of the `wins` board, at most
/// `server.top_ten_cache_ms` old.
#[utoipa::path(
    get,
    path = "/leaderboards/top_ten/{product_id}",
    tag = "leaderboards",
    summary = "The ten best players of the wins board",
    params(("product_id" = String, Path, description = "Product (game) id")),
    responses(
        (status = 200, description = "Best first, at most ten; `[]` when empty", body = Vec<BoardEntry>),
        (status = 400, description = "Invalid product id or path", body = ErrorBody),
        (status = 503, description = "The store is unavailable", body = ErrorBody),
    )
)]
pub async fn top_ten(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<Arc<Vec<BoardEntry>>>, ApiError> {
    let Path(product) = path.map_err(bad_path)?;
    let product = parse_product(&product)?;
    let top = state
        .top_cache
        .get_or_fetch(
            product.clone(),
            query::top(
                &state.store,
                &product,
                WINS_BOARD,
                &state
                    .games
                    .product(&product)
                    .map(|games| games.boards.columns(WINS_BOARD))
                    .unwrap_or_default(),
                TOP_TEN,
            ),
        )
        .await?;
    Ok(Json(top))
}

/// `GET /stats/{product_id}/{user_id}`: every stat of one player in one game, encoded as the
/// original service did: strings of the stored numbers (`server.original_stats_values =
/// "numbers"` answers JSON numbers), `games`/`wins`/`losses` present once the player has played.
#[utoipa::path(
    get,
    path = "/stats/{product_id}/{user_id}",
    operation_id = "stats",
    tag = "stats",
    summary = "Every stat of one player in one game",
    params(
        ("product_id" = String, Path, description = "Product (game) id"),
        ("user_id" = String, Path, description = "Player id"),
    ),
    responses(
        (status = 200, description = "Stat name → value: a string of the number (`\"1\"`) by default, a JSON number with `server.original_stats_values = \"numbers\"`; a player who has played has `games`, `wins` and `losses`, 0 included; `{}` when the player has no stats", body = BTreeMap<String, String>),
        (status = 400, description = "Invalid product id, player id or path", body = ErrorBody),
        (status = 503, description = "The store is unavailable", body = ErrorBody),
    )
)]
pub async fn player_stats(
    State(state): State<AppState>,
    path: Result<Path<(String, String)>, PathRejection>,
) -> Result<Json<BTreeMap<String, Value>>, ApiError> {
    let Path((product, player)) = path.map_err(bad_path)?;
    let product = parse_product(&product)?;
    let player = parse_player(&player)?;
    let zero_start = state.stats.get(&product).zero_start_stats();
    let stats = player_stats::query::read(&state.store, &product, &player, &zero_start).await?;
    Ok(Json(
        stats
            .into_iter()
            .map(|(name, number)| {
                let value = match state.original_stats_values {
                    StatValues::Strings => Value::String(number.to_string()),
                    StatValues::Numbers => Value::Number(number),
                };
                (name, value)
            })
            .collect(),
    ))
}

pub(super) fn parse_player(raw: &str) -> Result<PlayerId, ApiError> {
    PlayerId::parse(raw)
        .map_err(|problem| ApiError::new(ErrorCode::InvalidUserId, format!("user id {problem}")))
}

pub(super) fn parse_product(raw: &str) -> Result<ProductId, ApiError> {
    ProductId::parse(raw).map_err(|problem| {
        ApiError::new(ErrorCode::InvalidProductId, format!("product id {problem}"))
    })
}

/// A product's board from the games file, or a 404 saying which of the two is missing.
pub(super) fn find_board<'a>(
    state: &'a AppState,
    product: &ProductId,
    board: &str,
) -> Result<&'a Board, ApiError> {
    let games = state.games.product(product).ok_or_else(|| {
        ApiError::new(
            ErrorCode::ProductNotFound,
            format!("product `{product}` is not configured"),
        )
    })?;
    games.boards.get(board).ok_or_else(|| {
        ApiError::new(
            ErrorCode::BoardNotFound,
            format!("product `{product}` has no board `{board}`"),
        )
    })
}

pub(super) fn bad_path(rejection: PathRejection) -> ApiError {
    ApiError::new(ErrorCode::InvalidPath, rejection.body_text())
}
