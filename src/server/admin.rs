//! Token-protected routes: admin (erase a player, reset a board) and HTTP event ingest.
//! Each has its own bearer token; a route whose token is not configured is disabled.

use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::PathRejection;
use axum::extract::{FromRequest, Path, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use redis::aio::ConnectionManager;
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use super::AppState;
use super::error::{ApiError, ErrorBody, ErrorCode};
use super::routes::{bad_path, parse_player, parse_product};
use crate::admin;
use crate::core::config::Secret;
use crate::core::event::is_reserved_field;
use crate::core::store::bounded;
use crate::workers::plan::{Rules, check};

/// Most events one ingest request may carry.
pub const MAX_INGEST_BATCH: usize = 1000;
/// How long appending one ingest batch (or one re-drive) may take before the client gets a
/// 503.
pub const APPEND_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// What ingest needs: where to append, and the rules to validate against.
#[derive(Clone)]
pub struct Ingest {
    pub token: Secret,
    pub stream: ConnectionManager,
    pub stream_name: String,
    pub rules: Arc<Rules>,
}

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
    authorize(state.admin_token.as_ref(), &headers, "the admin API")?;
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
    authorize(state.admin_token.as_ref(), &headers, "the admin API")?;
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

/// One event's JSON value as a stream field value: strings as they are, numbers and booleans
/// as text, arrays and objects (a `match_result`'s `teams`) as JSON text.
fn field_value(value: &Value) -> Option<Vec<u8>> {
    match value {
        Value::String(text) => Some(text.as_bytes().to_vec()),
        Value::Number(_) | Value::Bool(_) | Value::Array(_) | Value::Object(_) => {
            Some(value.to_string().into_bytes())
        }
        Value::Null => None,
    }
}

/// The body of `POST /v1/events` (documentation only: the handler reads any JSON and checks
/// its shape itself, to name the event and the problem).
#[derive(ToSchema)]
#[serde(untagged)]
#[allow(dead_code)]
pub enum IngestRequest {
    One(GameEvent),
    /// 1 to 1000 events.
    Many(Vec<GameEvent>),
}

/// One game event: a JSON object of fields (`product_id`, `type` and the type's own fields,
/// e.g. `winner_id` and `loser_id` for `game_over`); values are strings, numbers, booleans, or
/// JSON (a `match_result`'s `teams`).
#[derive(ToSchema)]
#[schema(example = json!({"product_id": "exrps", "game_id": "g2", "type": "draw", "p1_id": "alice", "p2_id": "bob"}))]
#[allow(dead_code)]
pub struct GameEvent(std::collections::BTreeMap<String, Value>);

/// The answer of ingest: the stream ids of the appended events, in the request's order.
#[derive(Serialize, ToSchema)]
pub struct Accepted {
    pub ids: Vec<String>,
}

/// `POST /v1/events`: one event (a JSON object of fields) or an array of them, validated
/// against the worker's rules and appended to the stream all together, or not at all.
#[utoipa::path(
    post,
    path = "/v1/events",
    tag = "ingest",
    summary = "Append game events to the event stream, all or none",
    description = "One event (a JSON object of fields) or an array of up to 1000, each \
        validated with the worker's rules, appended to the stream atomically.",
    request_body = IngestRequest,
    security(("ingest_token" = [])),
    responses(
        (status = 202, description = "All events appended", body = Accepted),
        (status = 400, description = "`invalid_body`, or `invalid_event` naming the event and the problem; nothing appended", body = ErrorBody),
        (status = 401, description = "`unauthorized`: missing or wrong ingest token", body = ErrorBody),
        (status = 403, description = "`disabled`: no ingest token is configured", body = ErrorBody),
        (status = 413, description = "`body_too_large`", body = ErrorBody),
        (status = 503, description = "The stream's Redis is unavailable or too slow", body = ErrorBody),
    )
)]
pub async fn ingest(
    State(state): State<AppState>,
    request: Request,
) -> Result<(StatusCode, Json<Accepted>), ApiError> {
    // The token is checked before a byte of the body is read (taking `Json` as an argument
    // would read it first): a client without the token cannot make the server buffer and
    // parse up to `server.max_body_bytes`.
    authorize(
        state.ingest.as_ref().map(|i| &i.token),
        request.headers(),
        "event ingest",
    )?;
    let Some(ingest) = &state.ingest else {
        return Err(ApiError::new(
            ErrorCode::Disabled,
            "event ingest is disabled",
        ));
    };
    // Through `Json`'s own extractor: the content type check and the body limit
    // (`DefaultBodyLimit`, `server.max_body_bytes`) apply as they would to an argument.
    let Json(body) = Json::<Value>::from_request(request, &state).await?;
    let events = match body {
        Value::Array(events) => events,
        event @ Value::Object(_) => vec![event],
        _ => {
            return Err(ApiError::new(
                ErrorCode::InvalidBody,
                "send an event object or an array of event objects",
            ));
        }
    };
    if events.is_empty() || events.len() > MAX_INGEST_BATCH {
        return Err(ApiError::new(
            ErrorCode::InvalidBody,
            format!("send between 1 and {MAX_INGEST_BATCH} events"),
        ));
    }
    let mut pipe = redis::pipe();
    pipe.atomic();
    for (index, event) in events.iter().enumerate() {
        let invalid = |message: String| {
            ApiError::new(ErrorCode::InvalidEvent, format!("event {index}: {message}"))
        };
        let Value::Object(object) = event else {
            return Err(invalid("not a JSON object".into()));
        };
        let mut fields = Vec::with_capacity(object.len());
        for (name, value) in object {
            if is_reserved_field(name.as_bytes()) {
                return Err(invalid(format!(
                    "field `{name}` is reserved for re-driven dead letters"
                )));
            }
            let value =
                field_value(value).ok_or_else(|| invalid(format!("field `{name}` is null")))?;
            fields.push((name.as_bytes().to_vec(), value));
        }
        check(&fields, &ingest.rules).map_err(|rejection| invalid(rejection.to_string()))?;
        let mut xadd = redis::cmd("XADD");
        xadd.arg(&ingest.stream_name).arg("*");
        for (name, value) in &fields {
            xadd.arg(name.as_slice()).arg(value.as_slice());
        }
        pipe.add_command(xadd);
    }
    let mut conn = ingest.stream.clone();
    let ids: Vec<String> = bounded(APPEND_TIMEOUT, pipe.query_async(&mut conn))
        .await
        .map_err(ApiError::StreamUnavailable)?;
    Ok((StatusCode::ACCEPTED, Json(Accepted { ids })))
}
