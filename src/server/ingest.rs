//! HTTP event ingest (`POST /v1/events`, ingest token): events validated with the worker's
//! rules and appended to the event stream all together or not at all. The token is checked
//! before the body is read.

use std::sync::Arc;

use axum::Json;
use axum::extract::{FromRequest, Request, State};
use axum::http::StatusCode;
use redis::aio::ConnectionManager;
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use super::AppState;
use super::admin::authorize;
use super::error::{ApiError, ErrorBody, ErrorCode};
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
