//! Token-protected routes: admin (erase a player, reset a board) and HTTP event ingest.
//! Each has its own bearer token; a route whose token is not configured is disabled.

use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use redis::aio::ConnectionManager;
use serde_json::{Value, json};

use super::AppState;
use super::error::ApiError;
use super::routes::{bad_path, parse_player, parse_product};
use crate::admin;
use crate::core::config::Secret;
use crate::core::store::bounded;
use crate::workers::plan::{Rules, check};

/// Most events one ingest request may carry.
pub const MAX_INGEST_BATCH: usize = 1000;
/// How long appending one ingest batch may take before the client gets a 503.
const INGEST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// What ingest needs: where to append, and the rules to validate against.
#[derive(Clone)]
pub struct Ingest {
    pub token: Secret,
    pub stream: ConnectionManager,
    pub stream_name: String,
    pub rules: Arc<Rules>,
}

/// Checks `Authorization: Bearer <token>` against `expected` (`None`: the route is disabled).
fn authorize(
    expected: Option<&Secret>,
    headers: &HeaderMap,
    what: &'static str,
) -> Result<(), ApiError> {
    let Some(expected) = expected else {
        return Err(ApiError::Forbidden {
            code: "disabled",
            message: format!("{what} is disabled: no token is configured"),
        });
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

/// `DELETE /v1/admin/players/{user_id}`: erase the player from every product.
pub async fn erase_player(
    State(state): State<AppState>,
    headers: HeaderMap,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<Value>, ApiError> {
    authorize(state.admin_token.as_ref(), &headers, "the admin API")?;
    let Path(player) = path.map_err(bad_path)?;
    let player = parse_player(&player)?;
    let products = admin::erase_player(&state.store, &state.games, &player).await?;
    tracing::info!(products, "erased a player on request");
    Ok(Json(
        json!({ "user_id": player.as_str(), "products_checked": products }),
    ))
}

/// `DELETE /v1/admin/products/{product_id}/boards/{board}`: empty one board.
pub async fn reset_board(
    State(state): State<AppState>,
    headers: HeaderMap,
    path: Result<Path<(String, String)>, PathRejection>,
) -> Result<Json<Value>, ApiError> {
    authorize(state.admin_token.as_ref(), &headers, "the admin API")?;
    let Path((product, board)) = path.map_err(bad_path)?;
    let product = parse_product(&product)?;
    let exists = state
        .games
        .product(&product)
        .is_some_and(|games| games.boards.get(&board).is_some());
    if !exists {
        return Err(ApiError::not_found(
            "board_not_found",
            format!("product `{product}` has no board `{board}`"),
        ));
    }
    let deleted = admin::reset_board(&state.store, &product, &board).await?;
    tracing::info!(%product, board, deleted, "reset a board on request");
    Ok(Json(
        json!({ "product_id": product.as_str(), "board": board, "keys_deleted": deleted }),
    ))
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

/// `POST /v1/events`: one event (a JSON object of fields) or an array of them, validated
/// against the worker's rules and appended to the stream all together, or not at all.
pub async fn ingest(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Json<Value>, JsonRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    authorize(
        state.ingest.as_ref().map(|i| &i.token),
        &headers,
        "event ingest",
    )?;
    let Some(ingest) = &state.ingest else {
        return Err(ApiError::Forbidden {
            code: "disabled",
            message: "event ingest is disabled".into(),
        });
    };
    let Json(body) = body?;
    let events = match body {
        Value::Array(events) => events,
        event @ Value::Object(_) => vec![event],
        _ => {
            return Err(ApiError::bad_request(
                "invalid_body",
                "send an event object or an array of event objects",
            ));
        }
    };
    if events.is_empty() || events.len() > MAX_INGEST_BATCH {
        return Err(ApiError::bad_request(
            "invalid_body",
            format!("send between 1 and {MAX_INGEST_BATCH} events"),
        ));
    }
    let mut pipe = redis::pipe();
    pipe.atomic();
    for (index, event) in events.iter().enumerate() {
        let invalid = |message: String| {
            ApiError::bad_request("invalid_event", format!("event {index}: {message}"))
        };
        let Value::Object(object) = event else {
            return Err(invalid("not a JSON object".into()));
        };
        let mut fields = Vec::with_capacity(object.len());
        for (name, value) in object {
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
    let ids: Vec<String> = bounded(INGEST_TIMEOUT, pipe.query_async(&mut conn)).await?;
    Ok((StatusCode::ACCEPTED, Json(json!({ "ids": ids }))))
}
