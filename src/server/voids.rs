//! The void routes (admin token): void a match or a stream entry of a product, list the voids,
//! undo one. Each change asks for a rebuild of the product, which the worker runs (see
//! `history::rebuild::serve_requests`); the list says whether it is still pending.

use axum::Json;
use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;
use utoipa::openapi::{RefOr, Schema};

use super::openapi::schema;

use super::AppState;
use super::admin::authorize_admin;
use super::error::{ApiError, ErrorBody, ErrorCode};
use super::routes::{bad_path, parse_product};
use crate::core::event::is_stream_id;
use crate::core::ids::ProductId;
use crate::history::voids::{self, Void, VoidError, VoidTarget};

/// What to void: exactly one of `game_id` (every entry of the match) and `entry_id` (one
/// stream entry), with an optional `reason` (the schema below says it).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VoidRequest {
    game_id: Option<String>,
    entry_id: Option<String>,
    #[serde(default)]
    reason: String,
}

impl utoipa::PartialSchema for VoidRequest {
    fn schema() -> RefOr<Schema> {
        let reason = json!({
            "type": "string",
            "maxLength": 1000,
            "description": "Why (kept with the void).",
        });
        schema(json!({
            "oneOf": [
                {
                    "type": "object",
                    "required": ["game_id"],
                    "properties": {
                        "game_id": {
                            "type": "string",
                            "minLength": 1,
                            "maxLength": 256,
                            "description": "The match's `game_id`: every entry of it is voided.",
                        },
                        "reason": reason,
                    },
                    "additionalProperties": false,
                },
                {
                    "type": "object",
                    "required": ["entry_id"],
                    "properties": {
                        "entry_id": {
                            "type": "string",
                            "pattern": "^[0-9]{1,19}-[0-9]{1,19}$",
                            "description": "One stream entry's id.",
                        },
                        "reason": reason,
                    },
                    "additionalProperties": false,
                },
            ],
            "example": {"game_id": "9f1c2a70-0000-4000-8000-000000000001", "reason": "cheating"},
        }))
    }
}

impl ToSchema for VoidRequest {}

/// A void made (or found made before), with the rebuild it asked for.
#[derive(Serialize, ToSchema)]
pub struct VoidMade {
    pub product_id: String,
    pub void: Void,
    /// `queued`: the worker rebuilds the product without it (see the list's
    /// `rebuild_pending`).
    pub rebuild: &'static str,
}

/// A product's voids.
#[derive(Serialize, ToSchema)]
pub struct VoidList {
    pub product_id: String,
    pub voids: Vec<Void>,
    /// Whether a rebuild asked for by a void (or its undoing) has not finished yet.
    pub rebuild_pending: bool,
}

/// What a void names, in the undo route's path.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum VoidKind {
    /// A match, by its `game_id`.
    Game,
    /// One stream entry, by its id.
    Entry,
}

/// An undone void.
#[derive(Serialize, ToSchema)]
pub struct VoidUndone {
    pub product_id: String,
    pub kind: String,
    pub id: String,
    pub rebuild: &'static str,
}

/// `POST /v1/admin/products/{product_id}/voids`: void a match or an entry.
#[utoipa::path(
    post,
    path = "/v1/admin/products/{product_id}/voids",
    tag = "admin",
    summary = "Void a match (by game_id) or a stream entry: the product is rebuilt without it",
    params(("product_id" = String, Path, description = "Product (game) id")),
    request_body = VoidRequest,
    security(("admin_token" = [])),
    responses(
        (status = 202, description = "Voided; the product's rebuild is queued", body = VoidMade),
        (status = 400, description = "`invalid_body` or invalid product id or path", body = ErrorBody),
        (status = 401, description = "`unauthorized`: missing or wrong admin token", body = ErrorBody),
        (status = 403, description = "`disabled`: no admin token is configured", body = ErrorBody),
        (status = 404, description = "`match_not_found`: no such match or entry in the product's history", body = ErrorBody),
        (status = 409, description = "`history_incomplete`: the history misses entries, so a rebuild would drop their effects", body = ErrorBody),
        (status = 413, description = "`body_too_large`", body = ErrorBody),
        (status = 503, description = "The store is unavailable", body = ErrorBody),
    )
)]
pub async fn void_match(
    State(state): State<AppState>,
    headers: HeaderMap,
    path: Result<Path<String>, PathRejection>,
    body: Result<Json<VoidRequest>, JsonRejection>,
) -> Result<(StatusCode, Json<VoidMade>), ApiError> {
    authorize_admin(&state, &headers)?;
    let Path(product) = path.map_err(bad_path)?;
    let product = parse_product(&product)?;
    let Json(request) = body?;
    let target = match (request.game_id, request.entry_id) {
        (Some(game), None) if !game.is_empty() && game.len() <= 256 => VoidTarget::Game(game),
        (None, Some(entry)) if is_stream_id(&entry) => VoidTarget::Entry(entry),
        _ => {
            return Err(ApiError::new(
                ErrorCode::InvalidBody,
                "give exactly one of `game_id` (1-256 bytes) and `entry_id` (a stream id like \
                 1700000000000-0)",
            ));
        }
    };
    if request.reason.chars().count() > 1000 {
        return Err(ApiError::new(
            ErrorCode::InvalidBody,
            "`reason` is longer than 1000 characters",
        ));
    }
    refuse_incomplete_history(&state, &product).await?;
    let void = voids::add(&state.store, &product, target, &request.reason)
        .await
        .map_err(void_error)?;
    tracing::info!(%product, kind = void.kind, id = void.id, "voided on request");
    Ok((
        StatusCode::ACCEPTED,
        Json(VoidMade {
            product_id: product.to_string(),
            void,
            rebuild: "queued",
        }),
    ))
}

/// `GET /v1/admin/products/{product_id}/voids`: a product's voids.
#[utoipa::path(
    get,
    path = "/v1/admin/products/{product_id}/voids",
    tag = "admin",
    summary = "A product's voids, oldest first, and whether the rebuild they asked for is pending",
    params(("product_id" = String, Path, description = "Product (game) id")),
    security(("admin_token" = [])),
    responses(
        (status = 200, description = "The voids", body = VoidList),
        (status = 400, description = "Invalid product id or path", body = ErrorBody),
        (status = 401, description = "`unauthorized`: missing or wrong admin token", body = ErrorBody),
        (status = 403, description = "`disabled`: no admin token is configured", body = ErrorBody),
        (status = 503, description = "The store is unavailable", body = ErrorBody),
    )
)]
pub async fn list_voids(
    State(state): State<AppState>,
    headers: HeaderMap,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<VoidList>, ApiError> {
    authorize_admin(&state, &headers)?;
    let Path(product) = path.map_err(bad_path)?;
    let product = parse_product(&product)?;
    let voids = voids::list(&state.store, &product).await?;
    let pending: bool = state
        .store
        .query(redis::cmd("EXISTS").arg(state.store.keys().product(&product).rebuild_wanted()))
        .await?;
    Ok(Json(VoidList {
        product_id: product.to_string(),
        voids,
        rebuild_pending: pending,
    }))
}

/// `DELETE /v1/admin/products/{product_id}/voids/{kind}/{id}`: undo a void.
#[utoipa::path(
    delete,
    path = "/v1/admin/products/{product_id}/voids/{kind}/{id}",
    tag = "admin",
    summary = "Undo a void: the product is rebuilt with the match or entry again",
    params(
        ("product_id" = String, Path, description = "Product (game) id"),
        ("kind" = inline(VoidKind), Path, description = "`game` or `entry`"),
        ("id" = String, Path, description = "The voided game_id or entry id"),
    ),
    security(("admin_token" = [])),
    responses(
        (status = 200, description = "Undone; the product's rebuild is queued", body = VoidUndone),
        (status = 400, description = "Invalid product id, kind or path", body = ErrorBody),
        (status = 401, description = "`unauthorized`: missing or wrong admin token", body = ErrorBody),
        (status = 403, description = "`disabled`: no admin token is configured", body = ErrorBody),
        (status = 404, description = "`void_not_found`", body = ErrorBody),
        (status = 409, description = "`history_incomplete`", body = ErrorBody),
        (status = 503, description = "The store is unavailable", body = ErrorBody),
    )
)]
pub async fn undo_void(
    State(state): State<AppState>,
    headers: HeaderMap,
    path: Result<Path<(String, VoidKind, String)>, PathRejection>,
) -> Result<Json<VoidUndone>, ApiError> {
    authorize_admin(&state, &headers)?;
    let Path((product, kind, id)) = path.map_err(bad_path)?;
    let product = parse_product(&product)?;
    let target = match kind {
        VoidKind::Game => VoidTarget::Game(id.clone()),
        VoidKind::Entry => VoidTarget::Entry(id.clone()),
    };
    let kind = match kind {
        VoidKind::Game => "game",
        VoidKind::Entry => "entry",
    }
    .to_owned();
    refuse_incomplete_history(&state, &product).await?;
    voids::remove(&state.store, &product, &target)
        .await
        .map_err(void_error)?;
    tracing::info!(%product, kind, id, "undid a void on request");
    Ok(Json(VoidUndone {
        product_id: product.to_string(),
        kind,
        id,
        rebuild: "queued",
    }))
}

/// A rebuild of a product whose history misses entries would drop their effects: refused.
async fn refuse_incomplete_history(state: &AppState, product: &ProductId) -> Result<(), ApiError> {
    let gap: Option<String> = state
        .store
        .query(redis::cmd("GET").arg(state.store.keys().product(product).events_gap()))
        .await?;
    match gap {
        Some(gap) => Err(ApiError::new(
            ErrorCode::HistoryIncomplete,
            format!(
                "the history of product `{product}` misses entries applied up to {gap} (before \
                 history was kept, or trimmed by retention): a rebuild would drop their effects"
            ),
        )),
        None => Ok(()),
    }
}

fn void_error(error: VoidError) -> ApiError {
    match error {
        VoidError::NotFound(message) => ApiError::new(ErrorCode::MatchNotFound, message),
        VoidError::NotVoided(message) => ApiError::new(ErrorCode::VoidNotFound, message),
        VoidError::History(crate::history::HistoryError::Store(error)) => error.into(),
        VoidError::History(error) => ApiError::Internal(error.to_string()),
    }
}
