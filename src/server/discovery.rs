//! Discovery: which products exist and which boards each has, and a product's player stats.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use super::AppState;
use super::error::{ApiError, ErrorBody, ErrorCode};
use super::routes::{bad_path, parse_player, parse_product};
use crate::core::ids::ProductId;
use crate::player_stats;

/// The answer of `GET /v1/products`.
#[derive(Serialize, ToSchema)]
pub struct ProductList {
    /// Products the worker has seen and those the games file lists, sorted.
    pub products: Vec<String>,
}

/// The answer of `GET /v1/products/{product_id}/boards`.
#[derive(Serialize, ToSchema)]
pub struct ProductBoards {
    pub product_id: String,
    /// Each board's `name`, `kind` (`wins`, `count`, `sum`, `max`, `min`, `last`, `elo`,
    /// `glicko2`, `trueskill`, `weng_lin`) and the kind's settings.
    #[schema(value_type = Vec<Object>)]
    pub boards: Vec<Value>,
}

/// The answer of `GET /v1/products/{product_id}/players/{user_id}/stats`.
#[derive(Serialize, ToSchema)]
pub struct PlayerStats {
    pub product_id: String,
    pub user_id: String,
    /// Stat name → number; `{}` when none. A player who has played has every stat the
    /// product's rules start at zero (`games`, `wins`, `losses` by default), 0 included.
    #[schema(value_type = BTreeMap<String, f64>)]
    pub stats: BTreeMap<String, serde_json::Number>,
}

/// `GET /v1/products`: products the worker has seen, and those the games file lists.
#[utoipa::path(
    get,
    path = "/v1/products",
    tag = "discovery",
    summary = "Products seen by the worker and those the games file lists",
    responses(
        (status = 200, description = "The products", body = ProductList),
        (status = 503, description = "The store is unavailable", body = ErrorBody),
    )
)]
pub async fn products(State(state): State<AppState>) -> Result<Json<ProductList>, ApiError> {
    let products: Vec<String> = crate::admin::all_products(&state.store, &state.games)
        .await?
        .iter()
        .map(ProductId::to_string)
        .collect();
    Ok(Json(ProductList { products }))
}

/// `GET /v1/products/{product_id}/boards`: the product's boards with kind and settings.
#[utoipa::path(
    get,
    path = "/v1/products/{product_id}/boards",
    tag = "discovery",
    summary = "A product's boards with their kind and settings",
    params(("product_id" = String, Path, description = "Product (game) id")),
    responses(
        (status = 200, description = "The product's boards", body = ProductBoards),
        (status = 400, description = "Invalid product id or path", body = ErrorBody),
        (status = 404, description = "`product_not_found`: the product is not configured", body = ErrorBody),
    )
)]
pub async fn boards(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<ProductBoards>, ApiError> {
    let Path(product) = path.map_err(bad_path)?;
    let product = parse_product(&product)?;
    let games = state.games.product(&product).ok_or_else(|| {
        ApiError::new(
            ErrorCode::ProductNotFound,
            format!("product `{product}` is not configured and unknown products are rejected"),
        )
    })?;
    let boards: Vec<Value> = games.boards.boards().iter().map(|b| b.describe()).collect();
    Ok(Json(ProductBoards {
        product_id: product.to_string(),
        boards,
    }))
}

/// `GET /v1/products/{product_id}/players/{user_id}/stats`: all of a player's stats.
#[utoipa::path(
    get,
    path = "/v1/products/{product_id}/players/{user_id}/stats",
    tag = "stats",
    summary = "All of a player's stats in one product",
    params(
        ("product_id" = String, Path, description = "Product (game) id"),
        ("user_id" = String, Path, description = "Player id"),
    ),
    responses(
        (status = 200, description = "The player's stats", body = PlayerStats),
        (status = 400, description = "Invalid product id, player id or path", body = ErrorBody),
        (status = 503, description = "The store is unavailable", body = ErrorBody),
    )
)]
pub async fn player_stats(
    State(state): State<AppState>,
    path: Result<Path<(String, String)>, PathRejection>,
) -> Result<Json<PlayerStats>, ApiError> {
    let Path((product, player)) = path.map_err(bad_path)?;
    let product = parse_product(&product)?;
    let player = parse_player(&player)?;
    let zero_start = state.stats.get(&product).zero_start_stats();
    let stats = player_stats::query::read(&state.store, &product, &player, &zero_start).await?;
    Ok(Json(PlayerStats {
        product_id: product.to_string(),
        user_id: player.to_string(),
        stats,
    }))
}
