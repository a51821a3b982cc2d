//! The admin routes (erase a player, reset a board) and the bearer-token check every
//! token-protected route uses: each route has its own token, and a route whose token is not
//! configured is disabled.

use axum::Json;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, header};
use serde::Serialize;
use utoipa::ToSchema;

use super::AppState;
use super::error::{ApiError, ErrorBody, ErrorCode};
use super::routes::{bad_path, parse_player, parse_product};
use crate::admin;
use crate::core::config::Secret;

/// Checks `Authorization: Bearer <token>` against `expected` (`None`: the route is disabled).
pub(super) fn authorize(
    expected: Option<&Secret>,
    headers: &HeaderMap,
    what: &'static str,
) -> Result<(), ApiError> {
    let Some(expected) = expected else {
        return Err(ApiError::new(
            ErrorCode::Disabled,
            format!("{what} is disabled: no token is configured"),
        ));
    };
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "));
    match presented {
        Some(token) if expected.matches(token) => Ok(()),
        _ => Err(ApiError::Unauthorized(format!(
            "{what} needs `Authorization: Bearer <token>` with the right token"
        ))),
    }
}

/// Checks `Authorization: Bearer <token>` against the admin tokens; the matching token's
/// name (what the moderation audit trail records).
pub(super) fn authorize_admin(state: &AppState, headers: &HeaderMap) -> Result<String, ApiError> {
    if state.admin_tokens.is_empty() {
        return Err(ApiError::new(
            ErrorCode::Disabled,
            "the admin API is disabled: no token is configured",
        ));
    }
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "));
    // Every token is compared, so the time taken does not tell which one nearly matched.
    let mut matched = None;
    if let Some(presented) = presented {
        for (name, token) in state.admin_tokens.iter() {
            if token.matches(presented) {
                matched = Some(name.clone());
            }
        }
    }
    matched.ok_or_else(|| {
        ApiError::Unauthorized(
            "the admin API needs `Authorization: Bearer <token>` with the right token".into(),
        )
    })
}

/// The answer of the erase route.
#[derive(Serialize, ToSchema)]
pub struct PlayerErased {
    pub user_id: String,
    /// Products searched for the player's data.
    pub products_checked: usize,
}

/// The answer of the reset route.
#[derive(Serialize, ToSchema)]
pub struct BoardReset {
    pub product_id: String,
    pub board: String,
    /// Store keys deleted (0 when the board was already empty).
    pub keys_deleted: u64,
}

/// `DELETE /v1/admin/players/{user_id}`: erase the player from every product.
#[utoipa::path(
    delete,
    path = "/v1/admin/players/{user_id}",
    tag = "admin",
    summary = "Erase a player's board entries, stats, ratings and histories in every product",
    params(("user_id" = String, Path, description = "Player id")),
    security(("admin_token" = [])),
    responses(
        (status = 200, description = "The player is erased", body = PlayerErased),
        (status = 400, description = "Invalid player id or path", body = ErrorBody),
        (status = 401, description = "`unauthorized`: missing or wrong admin token", body = ErrorBody),
        (status = 403, description = "`disabled`: no admin token is configured", body = ErrorBody),
        (status = 503, description = "The store is unavailable", body = ErrorBody),
    )
)]
pub async fn erase_player(
    State(state): State<AppState>,
    headers: HeaderMap,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<PlayerErased>, ApiError> {
    authorize_admin(&state, &headers)?;
    let Path(player) = path.map_err(bad_path)?;
    let player = parse_player(&player)?;
    let products = admin::erase_player(&state.store, &state.games, &player).await?;
    tracing::info!(products, "erased a player on request");
    Ok(Json(PlayerErased {
        user_id: player.to_string(),
        products_checked: products,
    }))
}

/// `DELETE /v1/admin/products/{product_id}/boards/{board}`: empty one board.
#[utoipa::path(
    delete,
    path = "/v1/admin/products/{product_id}/boards/{board}",
    tag = "admin",
    summary = "Empty one board (and for rating boards every rating state and history)",
    params(
        ("product_id" = String, Path, description = "Product (game) id"),
        ("board" = String, Path, description = "Board name"),
    ),
    security(("admin_token" = [])),
    responses(
        (status = 200, description = "The board is empty", body = BoardReset),
        (status = 400, description = "Invalid product id or path", body = ErrorBody),
        (status = 401, description = "`unauthorized`: missing or wrong admin token", body = ErrorBody),
        (status = 403, description = "`disabled`: no admin token is configured", body = ErrorBody),
        (status = 404, description = "`board_not_found`", body = ErrorBody),
        (status = 503, description = "The store is unavailable", body = ErrorBody),
    )
)]
pub async fn reset_board(
    State(state): State<AppState>,
    headers: HeaderMap,
    path: Result<Path<(String, String)>, PathRejection>,
) -> Result<Json<BoardReset>, ApiError> {
    authorize_admin(&state, &headers)?;
    let Path((product, board)) = path.map_err(bad_path)?;
    let product = parse_product(&product)?;
    let exists = state
        .games
        .product(&product)
        .is_some_and(|games| games.boards.get(&board).is_some());
    if !exists {
        return Err(ApiError::new(
            ErrorCode::BoardNotFound,
            format!("product `{product}` has no board `{board}`"),
        ));
    }
    let deleted = admin::reset_board(&state.store, &product, &board).await?;
    tracing::info!(%product, board, deleted, "reset a board on request");
    Ok(Json(BoardReset {
        product_id: product.to_string(),
        board,
        keys_deleted: deleted,
    }))
}
