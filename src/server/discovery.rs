//! Discovery: which products exist and which boards each has, and a product's player stats.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use serde_json::{Value, json};

use super::AppState;
use super::error::ApiError;
use super::routes::{bad_path, parse_player, parse_product};
use crate::core::ids::ProductId;
use crate::player_stats;

/// `GET /v1/products`: products the worker has seen, and those the games file lists.
pub async fn products(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let products: Vec<String> = crate::admin::all_products(&state.store, &state.games)
        .await?
        .iter()
        .map(ProductId::to_string)
        .collect();
    Ok(Json(json!({ "products": products })))
}

/// `GET /v1/products/{product_id}/boards`: the product's boards with kind and settings.
pub async fn boards(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<Value>, ApiError> {
    let Path(product) = path.map_err(bad_path)?;
    let product = parse_product(&product)?;
    let games = state.games.product(&product).ok_or_else(|| {
        ApiError::not_found(
            "product_not_found",
            format!("product `{product}` is not configured and unknown products are rejected"),
        )
    })?;
    let boards: Vec<Value> = games.boards.boards().iter().map(|b| b.describe()).collect();
    Ok(Json(
        json!({ "product_id": product.as_str(), "boards": boards }),
    ))
}

/// `GET /v1/products/{product_id}/players/{user_id}/stats`: all of a player's stats.
pub async fn player_stats(
    State(state): State<AppState>,
    path: Result<Path<(String, String)>, PathRejection>,
) -> Result<Json<Value>, ApiError> {
    let Path((product, player)) = path.map_err(bad_path)?;
    let product = parse_product(&product)?;
    let player = parse_player(&player)?;
    let stats: BTreeMap<String, serde_json::Number> =
        player_stats::query::read(&state.store, &product, &player).await?;
    Ok(Json(json!({
        "product_id": product.as_str(),
        "user_id": player.as_str(),
        "stats": stats,
    })))
}
