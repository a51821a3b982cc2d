//! The moderation routes: hide a player from a product's boards, un-hide them, list the
//! hidden players, read the audit trail (see `crate::moderation`).

use axum::Json;
use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::extract::{Path, RawQuery, State};
use axum::http::HeaderMap;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use serde_json::json;
use utoipa::openapi::{RefOr, Schema};

use super::AppState;
use super::admin::authorize_admin;
use super::boards::QueryParams;
use super::dead_letters::page_limit;
use super::error::{ApiError, ErrorBody, ErrorCode};
use super::openapi::{id_schema, schema};
use super::routes::{bad_path, parse_player, parse_product};
use crate::core::event::is_stream_id;
use crate::core::ids::ProductId;
use crate::moderation::{self, AuditEntry, HiddenPlayer, ModerationError};

/// Longest `reason` (characters).
const MAX_REASON_CHARS: usize = 1000;
/// Most audit entries one answer holds.
const MAX_AUDIT_ENTRIES: usize = 1000;
/// Audit entries of an answer without `limit`.
const DEFAULT_AUDIT_ENTRIES: usize = 100;

/// Whom to hide, and why (the schema below says it).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HideRequest {
    pub user_id: String,
    #[serde(default)]
    pub reason: String,
}

impl utoipa::PartialSchema for HideRequest {
    fn schema() -> RefOr<Schema> {
        schema(json!({
            "type": "object",
            "required": ["user_id"],
            "properties": {
                "user_id": id_schema(),
                "reason": {
                    "type": "string",
                    "maxLength": MAX_REASON_CHARS,
                    "description": "Why (kept in the audit trail and the list of hidden players).",
                },
            },
            "additionalProperties": false,
            "example": {"user_id": "cheater-1", "reason": "aimbot reported in match 42"},
        }))
    }
}

impl ToSchema for HideRequest {}

/// A player hidden or un-hidden.
#[derive(Serialize, ToSchema)]
pub struct ModerationDone {
    pub product_id: String,
    pub user_id: String,
    /// Whether the player is hidden now.
    pub hidden: bool,
    /// Boards (all-time and periods) the player's entries moved off or back onto.
    pub boards_moved: u64,
}

/// The players hidden on a product.
#[derive(Serialize, ToSchema)]
pub struct HiddenList {
    pub product_id: String,
    /// Longest hidden first.
    pub players: Vec<HiddenPlayer>,
}

/// A page of the audit trail, newest first.
#[derive(Serialize, ToSchema)]
pub struct AuditPage {
    pub product_id: String,
    pub entries: Vec<AuditEntry>,
    /// Pass as `before` for the older entries; null at the oldest kept.
    pub next: Option<String>,
}

/// The query of the un-hide route (documentation; parsed with `QueryParams`).
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct UnhideParams {
    /// Why (kept in the audit trail); at most 1000 characters.
    #[param(max_length = 1000)]
    reason: Option<String>,
}

/// The query of the audit route (documentation; parsed with `QueryParams`).
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct AuditParams {
    /// Entries (default 100, 1 to 1000).
    #[param(minimum = 1, maximum = 1000, default = 100)]
    limit: Option<u64>,
    /// A page's `next` (or an entry's `id`): the entries before it.
    #[param(pattern = "^[0-9]{1,19}-[0-9]{1,19}$")]
    before: Option<String>,
}

/// `POST /v1/admin/products/{product_id}/hidden`: hide a player from the product's boards.
#[utoipa::path(
    post,
    path = "/v1/admin/products/{product_id}/hidden",
    tag = "admin",
    summary = "Hide a player from every board of a product (all windows, rating boards); they keep being rated and counted",
    params(("product_id" = String, Path, description = "Product (game) id")),
    request_body = HideRequest,
    security(("admin_token" = [])),
    responses(
        (status = 200, description = "Hidden", body = ModerationDone),
        (status = 400, description = "`invalid_body`, `invalid_user_id` or invalid product id or path", body = ErrorBody),
        (status = 401, description = "`unauthorized`: missing or wrong admin token", body = ErrorBody),
        (status = 403, description = "`disabled`: no admin token is configured", body = ErrorBody),
        (status = 404, description = "`product_not_found`", body = ErrorBody),
        (status = 409, description = "`player_already_hidden`", body = ErrorBody),
        (status = 413, description = "`body_too_large`", body = ErrorBody),
        (status = 503, description = "The store is unavailable", body = ErrorBody),
    )
)]
pub async fn hide(
    State(state): State<AppState>,
    headers: HeaderMap,
    path: Result<Path<String>, PathRejection>,
    body: Result<Json<HideRequest>, JsonRejection>,
) -> Result<Json<ModerationDone>, ApiError> {
    let by = authorize_admin(&state, &headers)?;
    let Path(product) = path.map_err(bad_path)?;
    let product = known_product(&state, &product)?;
    let Json(request) = body?;
    let player = parse_player(&request.user_id)?;
    let reason = reason(Some(&request.reason), ErrorCode::InvalidBody)?;
    let moved = moderation::hide(&state.store, &product, &player, &by, &reason)
        .await
        .map_err(moderation_error)?;
    tracing::info!(%product, by, boards = moved.boards, "hid a player on request");
    Ok(Json(ModerationDone {
        product_id: product.to_string(),
        user_id: player.to_string(),
        hidden: true,
        boards_moved: moved.boards,
    }))
}

/// `DELETE /v1/admin/products/{product_id}/hidden/{user_id}`: un-hide a player.
#[utoipa::path(
    delete,
    path = "/v1/admin/products/{product_id}/hidden/{user_id}",
    tag = "admin",
    summary = "Return a hidden player to the product's boards, at their true standing",
    params(
        ("product_id" = String, Path, description = "Product (game) id"),
        ("user_id" = String, Path, description = "Player id"),
        UnhideParams,
    ),
    security(("admin_token" = [])),
    responses(
        (status = 200, description = "Un-hidden", body = ModerationDone),
        (status = 400, description = "Invalid product id, player id, query or path", body = ErrorBody),
        (status = 401, description = "`unauthorized`: missing or wrong admin token", body = ErrorBody),
        (status = 403, description = "`disabled`: no admin token is configured", body = ErrorBody),
        (status = 404, description = "`product_not_found` or `player_not_hidden`", body = ErrorBody),
        (status = 503, description = "The store is unavailable", body = ErrorBody),
    )
)]
pub async fn unhide(
    State(state): State<AppState>,
    headers: HeaderMap,
    path: Result<Path<(String, String)>, PathRejection>,
    RawQuery(raw): RawQuery,
) -> Result<Json<ModerationDone>, ApiError> {
    let by = authorize_admin(&state, &headers)?;
    let Path((product, player)) = path.map_err(bad_path)?;
    let product = known_product(&state, &product)?;
    let player = parse_player(&player)?;
    let query = QueryParams::parse(raw, &["reason"])?;
    let reason = reason(query.one("reason")?, ErrorCode::InvalidQuery)?;
    let moved = moderation::unhide(&state.store, &product, &player, &by, &reason)
        .await
        .map_err(moderation_error)?;
    tracing::info!(%product, by, boards = moved.boards, "un-hid a player on request");
    Ok(Json(ModerationDone {
        product_id: product.to_string(),
        user_id: player.to_string(),
        hidden: false,
        boards_moved: moved.boards,
    }))
}

/// `GET /v1/admin/products/{product_id}/hidden`: the hidden players.
#[utoipa::path(
    get,
    path = "/v1/admin/products/{product_id}/hidden",
    tag = "admin",
    summary = "The players hidden on a product: who hid them, when, why",
    params(("product_id" = String, Path, description = "Product (game) id")),
    security(("admin_token" = [])),
    responses(
        (status = 200, description = "The hidden players", body = HiddenList),
        (status = 400, description = "Invalid product id or path", body = ErrorBody),
        (status = 401, description = "`unauthorized`: missing or wrong admin token", body = ErrorBody),
        (status = 403, description = "`disabled`: no admin token is configured", body = ErrorBody),
        (status = 404, description = "`product_not_found`", body = ErrorBody),
        (status = 503, description = "The store is unavailable", body = ErrorBody),
    )
)]
pub async fn list_hidden(
    State(state): State<AppState>,
    headers: HeaderMap,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<HiddenList>, ApiError> {
    authorize_admin(&state, &headers)?;
    let Path(product) = path.map_err(bad_path)?;
    let product = known_product(&state, &product)?;
    let players = moderation::hidden_players(&state.store, &product).await?;
    Ok(Json(HiddenList {
        product_id: product.to_string(),
        players,
    }))
}

/// `GET /v1/admin/products/{product_id}/audit`: the moderation audit trail.
#[utoipa::path(
    get,
    path = "/v1/admin/products/{product_id}/audit",
    tag = "admin",
    summary = "A product's moderation audit trail (hide, unhide: who, when, why), newest first",
    params(
        ("product_id" = String, Path, description = "Product (game) id"),
        AuditParams,
    ),
    security(("admin_token" = [])),
    responses(
        (status = 200, description = "A page of the audit trail", body = AuditPage),
        (status = 400, description = "`invalid_limit`, `invalid_cursor`, `invalid_query` or invalid product id or path", body = ErrorBody),
        (status = 401, description = "`unauthorized`: missing or wrong admin token", body = ErrorBody),
        (status = 403, description = "`disabled`: no admin token is configured", body = ErrorBody),
        (status = 404, description = "`product_not_found`", body = ErrorBody),
        (status = 503, description = "The store is unavailable", body = ErrorBody),
    )
)]
pub async fn audit(
    State(state): State<AppState>,
    headers: HeaderMap,
    path: Result<Path<String>, PathRejection>,
    RawQuery(raw): RawQuery,
) -> Result<Json<AuditPage>, ApiError> {
    authorize_admin(&state, &headers)?;
    let Path(product) = path.map_err(bad_path)?;
    let product = known_product(&state, &product)?;
    let query = QueryParams::parse(raw, &["limit", "before"])?;
    let limit = page_limit(
        query.one("limit")?,
        DEFAULT_AUDIT_ENTRIES,
        MAX_AUDIT_ENTRIES,
    )?;
    let before = match query.one("before")? {
        None => None,
        Some(id) if is_stream_id(id) => Some(id),
        Some(_) => {
            return Err(ApiError::new(
                ErrorCode::InvalidCursor,
                "`before` must be an audit entry id (`<ms>-<seq>`) from `id` or `next`",
            ));
        }
    };
    let entries = moderation::audit(&state.store, &product, limit, before).await?;
    let next = (entries.len() == limit)
        .then(|| entries.last().map(|entry| entry.id.clone()))
        .flatten();
    Ok(Json(AuditPage {
        product_id: product.to_string(),
        entries,
        next,
    }))
}

/// The product, if the games file serves it (unknown products may be refused).
fn known_product(state: &AppState, raw: &str) -> Result<ProductId, ApiError> {
    let product = parse_product(raw)?;
    if state.games.product(&product).is_none() {
        return Err(ApiError::new(
            ErrorCode::ProductNotFound,
            format!("product `{product}` is not served (the games file rejects unknown products)"),
        ));
    }
    Ok(product)
}

fn reason(raw: Option<&str>, code: ErrorCode) -> Result<String, ApiError> {
    let reason = raw.unwrap_or_default();
    if reason.chars().count() > MAX_REASON_CHARS {
        return Err(ApiError::new(
            code,
            format!("`reason` is longer than {MAX_REASON_CHARS} characters"),
        ));
    }
    Ok(reason.to_owned())
}

fn moderation_error(error: ModerationError) -> ApiError {
    match error {
        ModerationError::AlreadyHidden(_) => {
            ApiError::new(ErrorCode::PlayerAlreadyHidden, error.to_string())
        }
        ModerationError::NotHidden(_) => {
            ApiError::new(ErrorCode::PlayerNotHidden, error.to_string())
        }
        ModerationError::Store(error) => error.into(),
    }
}
