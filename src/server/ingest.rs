//! HTTP event ingest (`POST /v1/events`, ingest token): events validated with the worker's
//! rules and appended to the event stream all together or not at all. The token is checked
//! before the body is read.

use std::sync::Arc;

use axum::Json;
use axum::extract::{FromRequest, Request, State};
use axum::http::StatusCode;
use serde::Serialize;
use serde_json::{Value, json};
use utoipa::openapi::{RefOr, Schema};
use utoipa::{PartialSchema, ToSchema};

use super::AppState;
use super::admin::authorize;
use super::error::{ApiError, ErrorBody, ErrorCode};
use super::openapi::{id_schema, schema};
use crate::core::config::Secret;
use crate::core::event::{
    MAX_MATCH_PLAYERS, MAX_NAME_CHARS, REDRIVE_LETTER_FIELD, REDRIVE_OF_FIELD, is_reserved_field,
};
use crate::core::partition::stream_of;
use crate::core::store::{Connection, append_events, bounded};
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
    pub stream: Connection,
    pub stream_name: String,
    /// `stream.partitions`: events go to their product's partition.
    pub partitions: u32,
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
/// its shape itself, to name the event and the problem): one event, or 1 to
/// [`MAX_INGEST_BATCH`] of them.
pub struct IngestRequest;

impl utoipa::PartialSchema for IngestRequest {
    fn schema() -> RefOr<Schema> {
        let event = json!({"$ref": "#/components/schemas/GameEvent"});
        schema(json!({
            "oneOf": [
                event,
                {
                    "type": "array",
                    "items": event,
                    "minItems": 1,
                    "maxItems": MAX_INGEST_BATCH,
                    "description": "1 to 1000 events, appended all together or not at all",
                },
            ],
        }))
    }
}

impl ToSchema for IngestRequest {
    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        schemas.push(("GameEvent".to_owned(), GameEvent::schema()));
    }
}

/// One game event: a JSON object of fields, each value a string, number or boolean (sent as
/// its text) or JSON (an array or object, sent as JSON text); never `null`. The schema has one
/// branch per `type` with the fields that type requires; what it cannot state (a match's
/// players all different, the games file's rules) is in its description.
pub struct GameEvent;

impl utoipa::PartialSchema for GameEvent {
    fn schema() -> RefOr<Schema> {
        let id = id_schema();
        // Any other field: anything but null.
        let value = json!({"type": ["string", "number", "boolean", "array", "object"]});
        let event = |kind: &str, required: &[&str], fields: Value| {
            let mut properties = json!({
                "product_id": id,
                "type": {"type": "string", "enum": [kind]},
            });
            if let (Some(properties), Value::Object(fields)) = (properties.as_object_mut(), fields)
            {
                properties.extend(fields);
            }
            let required: Vec<&str> = ["product_id", "type"]
                .iter()
                .chain(required)
                .copied()
                .collect();
            json!({
                "type": "object",
                "title": kind,
                "required": required,
                "properties": properties,
                "additionalProperties": value,
            })
        };
        let team = json!({
            "type": "object",
            "required": ["place", "players"],
            "properties": {
                "place": {"type": "integer", "minimum": 1, "maximum": u32::MAX},
                "players": {
                    "type": "array",
                    "items": id,
                    "minItems": 1,
                    "maxItems": MAX_MATCH_PLAYERS,
                    "uniqueItems": true,
                },
                "scores": {
                    "type": "object",
                    "description": "Per-player scores of this side's players (player id → finite number); optional",
                    "additionalProperties": {"type": "number"},
                },
            },
            "additionalProperties": false,
        });
        let description = format!(
            "One game event (docs/EVENTS.md). Every value is a string, number, \
                boolean, array or object; `null` is refused. Refused too, with 400 \
                `invalid_event`: a `game_over` whose `winner_id` is its `loser_id`, a `draw` \
                whose `p2_id` is its `p1_id`, a `match_result` with a player on two sides, more \
                than 100 players in all, or `scores` for a player not on that side, and an event \
                the games file's rules refuse (a product not listed with \
                `unknown_products = \"reject\"`, a field a rule reads that is not what it needs, \
                e.g. `select_weapon`'s `event_data`), and the fields only re-drives may set: \
                `{REDRIVE_OF_FIELD}` and `{REDRIVE_LETTER_FIELD}`."
        );
        schema(json!({
            "description": description,
            "oneOf": [
                event("game_over", &["winner_id", "loser_id"], json!({"winner_id": id, "loser_id": id})),
                event("draw", &["p1_id", "p2_id"], json!({"p1_id": id, "p2_id": id})),
                event("match_result", &["teams"], json!({"teams": {
                    "type": "array",
                    "items": team,
                    "minItems": 2,
                    "maxItems": MAX_MATCH_PLAYERS,
                    "description": "The sides, each with its place (1 is best; equal places are ties); also accepted as a string of this JSON",
                }})),
                event("gameplay", &["event_name"], json!({"event_name": {"type": "string"}})),
                event("player_profile", &["user_id", "name"], json!({
                    "user_id": id,
                    "name": {
                        "type": "string",
                        "minLength": 1,
                        "maxLength": MAX_NAME_CHARS,
                        "pattern": "^[^\\u0000-\\u001f\\u007f-\\u009f]*[^\\s\\u0000-\\u001f\\u007f-\\u009f][^\\u0000-\\u001f\\u007f-\\u009f]*$",
                        "description": "The player's display name: 1 to 64 characters, not only spaces, no control characters; not unique",
                    },
                    "meta": {
                        "type": "object",
                        "maxProperties": 4,
                        "additionalProperties": {"type": "string", "maxLength": 32},
                        "description": "Public metadata shown with the name (any JSON object of at most 1024 bytes is accepted; this schema states a smaller shape). An event may also carry only `meta`",
                    },
                })),
                event("state_change", &[], json!({})),
                event("player_disconnect", &[], json!({})),
                event("game_removed", &[], json!({})),
            ],
            "example": {"product_id": "exrps", "game_id": "g2", "type": "draw", "p1_id": "alice", "p2_id": "bob"},
        }))
    }
}

impl ToSchema for GameEvent {}

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
    let mut appends = Vec::with_capacity(events.len());
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
        // `check` accepted it, so it has a product id.
        let product = fields
            .iter()
            .find(|(name, _)| name.as_slice() == b"product_id")
            .map(|(_, value)| String::from_utf8_lossy(value).into_owned())
            .unwrap_or_default();
        let stream = stream_of(&ingest.stream_name, ingest.partitions, &product);
        appends.push((stream, fields));
    }
    let ids = bounded(APPEND_TIMEOUT, append_events(&ingest.stream, &appends))
        .await
        .map_err(ApiError::StreamUnavailable)?;
    Ok((StatusCode::ACCEPTED, Json(Accepted { ids })))
}
