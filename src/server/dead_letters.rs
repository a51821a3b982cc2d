//! The admin routes of the dead-letter stream: listing letters (paged oldest first, filtered)
//! and re-driving chosen ones onto the event stream. The store side is `crate::dead_letters`.

use axum::Json;
use axum::extract::{FromRequest, RawQuery, Request, State};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::openapi::{RefOr, Schema};
use utoipa::{IntoParams, ToSchema};

use super::AppState;
use super::admin::authorize_admin;
use super::boards::QueryParams;
use super::error::{ApiError, ErrorBody, ErrorCode};
use super::openapi::schema;
use crate::core::event::is_stream_id;
use crate::dead_letters::{self, Filter, Letter, MAX_LETTERS, shown};

/// Letters a page or a filtered re-drive takes unless `limit` says otherwise.
const DEFAULT_LIMIT: usize = 50;
/// Longest `reason` or `product` filter (bytes).
const MAX_FILTER_BYTES: usize = 1024;

/// The query of the listing (documentation of the OpenAPI document; the handler parses the
/// query with `QueryParams`, which refuses unknown names).
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct LetterParams {
    /// Letters (default 50, 1 to 1000).
    #[param(minimum = 1, maximum = 1000, default = 50)]
    limit: Option<u64>,
    /// A page's `next` (or a letter's `id`): the letters after it.
    #[param(pattern = "^[0-9]{1,19}-[0-9]{1,19}$")]
    after: Option<String>,
    /// Only letters whose reason starts with this text (e.g. `product ` or `missing field`);
    /// at most 1024 bytes of UTF-8.
    #[param(max_length = 256)]
    reason: Option<String>,
    /// Only letters whose original `product_id` field is exactly this; at most 1024 bytes.
    #[param(max_length = 256)]
    product: Option<String>,
}

/// One dead letter.
#[derive(Serialize, ToSchema)]
pub struct LetterView {
    /// The letter's id in the dead-letter stream (the cursor and the re-drive id).
    pub id: String,
    /// The stream id of the event that was dead-lettered.
    pub source_id: String,
    pub reason: String,
    /// The board that could not use an otherwise applied event; null: the whole event.
    pub board: Option<String>,
    /// The original `product_id` field, if any.
    pub product_id: Option<String>,
    /// The original fields in their order, as `[name, value]` pairs (a repeated field is
    /// there twice). Invalid UTF-8 is shown with U+FFFD in its place; a re-drive sends the
    /// original bytes.
    pub fields: Vec<[String; 2]>,
    /// Whether some field had invalid UTF-8 (shown replaced).
    pub lossy: bool,
}

impl From<&Letter> for LetterView {
    fn from(letter: &Letter) -> Self {
        let mut lossy = false;
        let mut text = |bytes: &[u8]| {
            let (text, replaced) = shown(bytes);
            lossy |= replaced;
            text
        };
        let fields = letter
            .fields
            .iter()
            .map(|(name, value)| [text(name), text(value)])
            .collect();
        let product_id = letter.product_id().map(&mut text);
        Self {
            id: letter.id.clone(),
            source_id: letter.source_id.clone(),
            reason: letter.reason.clone(),
            board: letter.board.clone(),
            product_id,
            fields,
            lossy,
        }
    }
}

/// A page of dead letters.
#[derive(Serialize, ToSchema)]
pub struct LetterPage {
    /// Letters in the dead-letter stream.
    pub total: u64,
    /// Oldest first.
    pub letters: Vec<LetterView>,
    /// `after` of the next page; null at the end. A filtered page looks at most 10,000
    /// letters: it may be short, or empty, and still have a `next`.
    pub next: Option<String>,
}

/// A page's `limit` of 1 to `max` (`default` when not given); `invalid_limit` otherwise.
pub(super) fn page_limit(raw: Option<&str>, default: usize, max: usize) -> Result<usize, ApiError> {
    let Some(raw) = raw else {
        return Ok(default);
    };
    raw.parse::<usize>()
        .ok()
        .filter(|limit| (1..=max).contains(limit))
        .ok_or_else(|| {
            ApiError::new(
                ErrorCode::InvalidLimit,
                format!("`limit` must be a whole number from 1 to {max}, not `{raw}`"),
            )
        })
}

fn after(raw: Option<&str>) -> Result<Option<String>, ApiError> {
    match raw {
        None => Ok(None),
        Some(id) if is_stream_id(id) => Ok(Some(id.to_owned())),
        Some(_) => Err(ApiError::new(
            ErrorCode::InvalidCursor,
            "`after` must be a dead letter id (`<ms>-<seq>`) from `id` or `next`",
        )),
    }
}

/// A JSON number that is a whole number, written `5` or `5.0`.
fn whole_number(number: &serde_json::Number) -> Option<u64> {
    number.as_u64().or_else(|| {
        number
            .as_f64()
            .filter(|n| n.fract() == 0.0 && (0.0..=u64::MAX as f64).contains(n))
            .map(|n| n as u64)
    })
}

fn filter_text(name: &str, raw: Option<&str>, code: ErrorCode) -> Result<Option<String>, ApiError> {
    match raw {
        Some(text) if text.len() > MAX_FILTER_BYTES => Err(ApiError::new(
            code,
            format!("`{name}` must be at most {MAX_FILTER_BYTES} bytes"),
        )),
        other => Ok(other.map(str::to_owned)),
    }
}

/// `GET /v1/admin/dead-letters`: a page of dead letters, oldest first.
#[utoipa::path(
    get,
    path = "/v1/admin/dead-letters",
    tag = "admin",
    summary = "A page of dead letters, oldest first, optionally filtered by reason or product",
    params(LetterParams),
    security(("admin_token" = [])),
    responses(
        (status = 200, description = "The page; `next` continues it", body = LetterPage),
        (status = 400, description = "`invalid_query`, `invalid_limit` or `invalid_cursor`", body = ErrorBody),
        (status = 401, description = "`unauthorized`: missing or wrong admin token", body = ErrorBody),
        (status = 403, description = "`disabled`: no admin token is configured", body = ErrorBody),
        (status = 503, description = "The store is unavailable", body = ErrorBody),
    )
)]
pub async fn list(
    State(state): State<AppState>,
    headers: axum::http::HeaderMap,
    RawQuery(raw): RawQuery,
) -> Result<Json<LetterPage>, ApiError> {
    authorize_admin(&state, &headers)?;
    let query = QueryParams::parse(raw, &["limit", "after", "reason", "product"])?;
    let limit = page_limit(query.one("limit")?, DEFAULT_LIMIT, MAX_LETTERS)?;
    let after = after(query.one("after")?)?;
    let filter = Filter {
        reason: filter_text("reason", query.one("reason")?, ErrorCode::InvalidQuery)?,
        product: filter_text("product", query.one("product")?, ErrorCode::InvalidQuery)?,
        redrivable: false,
    };
    let page = dead_letters::page(&state.store, after.as_deref(), limit, &filter).await?;
    Ok(Json(LetterPage {
        total: page.total,
        letters: page.letters.iter().map(LetterView::from).collect(),
        next: page.next,
    }))
}

/// A dead letter id (`<ms>-<seq>`, each part a 64-bit number): 19 digits always fit.
const LETTER_ID_PATTERN: &str = "^[0-9]{1,19}-[0-9]{1,19}$";

/// The body of a re-drive: `ids`, or a filter (`reason` and/or `product`, with `after` and
/// `limit`).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedriveRequest {
    /// Dead letter ids (1 to 1000).
    pub ids: Option<Vec<String>>,
    /// Re-drive the letters whose reason starts with this text.
    pub reason: Option<String>,
    /// Re-drive the letters whose original `product_id` is exactly this.
    pub product: Option<String>,
    /// With a filter: only letters after this dead letter id (a previous answer's `next`).
    pub after: Option<String>,
    /// With a filter: most letters re-driven (default 50, at most 1000). A JSON number: `5.0`
    /// is an integer to JSON Schema, so it is one here too.
    pub limit: Option<serde_json::Number>,
}

impl utoipa::PartialSchema for RedriveRequest {
    /// Two shapes, never mixed: `ids` alone, or a filter. Filter texts are at most
    /// [`MAX_FILTER_BYTES`] bytes of UTF-8, which 256 characters always fit.
    fn schema() -> RefOr<Schema> {
        let letter_id = json!({"type": "string", "pattern": LETTER_ID_PATTERN});
        let text = |what: &str| json!({"type": "string", "maxLength": MAX_FILTER_BYTES / 4, "description": what});
        // A filter names a reason prefix, a product, or both.
        let fields = json!({
            "type": "object",
            "properties": {
                    "reason": text("Re-drive the letters whose reason starts with this text (\"\" for every letter)"),
                    "product": text("Re-drive the letters whose original `product_id` is exactly this"),
                    "after": {
                        "type": "string",
                        "pattern": LETTER_ID_PATTERN,
                        "description": "Only letters after this dead letter id (a previous answer's `next`)",
                    },
                    "limit": {
                        "type": "integer",
                        "minimum": 1,
                        "maximum": MAX_LETTERS,
                        "description": "Most letters re-driven (default 50)",
                    },
                },
                "additionalProperties": false,
        });
        let filter = json!({
            "description": "A filter: `reason`, `product` or both, with `after` and `limit`",
            "allOf": [
                fields,
                {"anyOf": [
                    {"type": "object", "required": ["reason"]},
                    {"type": "object", "required": ["product"]},
                ]},
            ],
        });
        schema(json!({
            "oneOf": [
                {
                    "type": "object",
                    "title": "ids",
                    "required": ["ids"],
                    "properties": {
                        "ids": {
                            "type": "array",
                            "items": letter_id,
                            "minItems": 1,
                            "maxItems": MAX_LETTERS,
                            "description": "Dead letter ids",
                        },
                    },
                    "additionalProperties": false,
                },
                filter,
            ],
            "example": {"ids": ["1764000000000-0"]},
        }))
    }
}

impl ToSchema for RedriveRequest {}

/// A letter left alone by a re-drive, and why.
#[derive(Serialize, ToSchema)]
pub struct Skipped {
    pub id: String,
    pub reason: String,
}

/// The answer of a re-drive.
#[derive(Serialize, ToSchema)]
pub struct Redriven {
    /// The letters re-driven (and deleted), in dead-letter order.
    pub redriven: Vec<String>,
    /// The event stream ids of their copies, in the same order.
    pub appended: Vec<String>,
    /// Ids given that were not re-driven: not found, or letters that cannot be.
    pub skipped: Vec<Skipped>,
    /// With a filter: `after` to re-drive the next letters from; null at the end.
    pub next: Option<String>,
}

/// `POST /v1/admin/dead-letters/redrive`: re-apply chosen letters, each once.
#[utoipa::path(
    post,
    path = "/v1/admin/dead-letters/redrive",
    tag = "admin",
    summary = "Re-drive dead letters: append them to the event stream again (each applied once), then delete them",
    description = "The chosen letters' original fields are appended to the event stream in \
        dead-letter order, atomically, each with `stats_tracker_redrive_of` (the original \
        event's id) and `stats_tracker_redrive_letter` (the letter's id); then the letters are \
        deleted. Repeating a re-drive (after a crash between the two) changes nothing: the \
        worker applies each original event once. Board-level letters (the event was applied \
        to the product's other boards) and letters without fields are not re-driven.",
    request_body = RedriveRequest,
    security(("admin_token" = [])),
    responses(
        (status = 200, description = "The letters re-driven", body = Redriven),
        (status = 400, description = "`invalid_body`: neither ids nor a filter, both, too many ids, an id that is not a dead letter id", body = ErrorBody),
        (status = 401, description = "`unauthorized`: missing or wrong admin token", body = ErrorBody),
        (status = 403, description = "`disabled`: no admin token is configured", body = ErrorBody),
        (status = 413, description = "`body_too_large`", body = ErrorBody),
        (status = 503, description = "The store or the stream's Redis is unavailable", body = ErrorBody),
    )
)]
pub async fn redrive(
    State(state): State<AppState>,
    request: Request,
) -> Result<Json<Redriven>, ApiError> {
    // The token first: no body is read for a client without it.
    authorize_admin(&state, request.headers())?;
    let Json(body) = Json::<Value>::from_request(request, &state).await?;
    let body: RedriveRequest = serde_json::from_value(body)
        .map_err(|error| ApiError::new(ErrorCode::InvalidBody, error.to_string()))?;
    let invalid = |message: String| ApiError::new(ErrorCode::InvalidBody, message);
    let (mut letters, skipped, next) = match body {
        RedriveRequest {
            ids: Some(ids),
            reason: None,
            product: None,
            after: None,
            limit: None,
        } => {
            if ids.is_empty() || ids.len() > MAX_LETTERS {
                return Err(invalid(format!("give 1 to {MAX_LETTERS} ids")));
            }
            if let Some(bad) = ids.iter().find(|id| !is_stream_id(id)) {
                return Err(invalid(format!("`{bad}` is not a dead letter id")));
            }
            let mut ids = ids;
            ids.sort_by(|a, b| crate::workers::plan::compare_ids(a, b));
            ids.dedup();
            let found = dead_letters::letters_by_id(&state.store, &ids).await?;
            let mut letters = Vec::new();
            let mut skipped = Vec::new();
            for (id, letter) in ids.into_iter().zip(found) {
                match letter {
                    None => skipped.push(Skipped {
                        id,
                        reason: "no dead letter has this id (re-driven, trimmed or never there)"
                            .into(),
                    }),
                    Some(letter) => match letter.not_redrivable() {
                        Some(why) => skipped.push(Skipped {
                            id,
                            reason: why.into(),
                        }),
                        None => letters.push(letter),
                    },
                }
            }
            (letters, skipped, None)
        }
        RedriveRequest { ids: Some(_), .. } => {
            return Err(invalid(
                "give either `ids` or a filter (`reason`, `product`, `after`, `limit`)".into(),
            ));
        }
        RedriveRequest {
            ids: None,
            reason,
            product,
            after: from,
            limit: count,
        } => {
            if reason.is_none() && product.is_none() {
                return Err(invalid(
                    "give `ids`, or a filter: `reason` (a prefix; \"\" for every letter) \
                     and/or `product`"
                        .into(),
                ));
            }
            let count = match count {
                None => DEFAULT_LIMIT,
                Some(count) => whole_number(&count)
                    .and_then(|count| usize::try_from(count).ok())
                    .filter(|count| (1..=MAX_LETTERS).contains(count))
                    .ok_or_else(|| invalid(format!("`limit` must be 1 to {MAX_LETTERS}")))?,
            };
            let from = after(from.as_deref())
                .map_err(|_| invalid("`after` must be a dead letter id".into()))?;
            let filter = Filter {
                reason: filter_text("reason", reason.as_deref(), ErrorCode::InvalidBody)?,
                product: filter_text("product", product.as_deref(), ErrorCode::InvalidBody)?,
                redrivable: true,
            };
            let page = dead_letters::page(&state.store, from.as_deref(), count, &filter).await?;
            (page.letters, Vec::new(), page.next)
        }
    };
    let appended = dead_letters::redrive(&state.store, &state.event_stream, &mut letters).await?;
    metrics::counter!("stats_tracker_dead_letters_redriven_total").increment(letters.len() as u64);
    if !letters.is_empty() {
        tracing::info!(count = letters.len(), "re-drove dead letters on request");
    }
    Ok(Json(Redriven {
        redriven: letters.into_iter().map(|letter| letter.id).collect(),
        appended,
        skipped,
        next,
    }))
}
