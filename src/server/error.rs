//! The API's one error type and its one JSON shape: `{"error": {"code": "...", "message": "..."}}`.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use crate::core::store::StoreError;

/// Declares [`ErrorCode`]: each code's variant, its text in the JSON body and its status.
macro_rules! error_codes {
    ($($(#[$doc:meta])* $variant:ident = $text:literal => $status:ident,)*) => {
        /// Every error code the API answers with, and its HTTP status: clients match on the
        /// code; the README lists the same codes (a test compares them).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, ToSchema)]
        #[serde(rename_all = "snake_case")]
        pub enum ErrorCode {
            $($(#[$doc])* $variant,)*
        }

        impl ErrorCode {
            /// Every code, in the order the README lists them.
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$variant,)*];

            /// The code as it appears in error bodies.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(ErrorCode::$variant => $text,)*
                }
            }

            /// The HTTP status answered with it.
            pub fn status(self) -> StatusCode {
                match self {
                    $(ErrorCode::$variant => StatusCode::$status,)*
                }
            }
        }
    };
}

error_codes! {
    InvalidProductId = "invalid_product_id" => BAD_REQUEST,
    InvalidUserId = "invalid_user_id" => BAD_REQUEST,
    InvalidPath = "invalid_path" => BAD_REQUEST,
    InvalidQuery = "invalid_query" => BAD_REQUEST,
    InvalidLimit = "invalid_limit" => BAD_REQUEST,
    InvalidBody = "invalid_body" => BAD_REQUEST,
    InvalidTeams = "invalid_teams" => BAD_REQUEST,
    UnsupportedMatch = "unsupported_match" => BAD_REQUEST,
    InvalidEvent = "invalid_event" => BAD_REQUEST,
    InvalidCursor = "invalid_cursor" => BAD_REQUEST,
    /// A wrong or missing bearer token.
    Unauthorized = "unauthorized" => UNAUTHORIZED,
    /// The route's token is not configured.
    Disabled = "disabled" => FORBIDDEN,
    /// No route has this path.
    NotFound = "not_found" => NOT_FOUND,
    ProductNotFound = "product_not_found" => NOT_FOUND,
    BoardNotFound = "board_not_found" => NOT_FOUND,
    WindowNotKept = "window_not_kept" => NOT_FOUND,
    /// A season that is not declared, or no season running when none is named.
    PeriodNotFound = "period_not_found" => NOT_FOUND,
    NotARatingBoard = "not_a_rating_board" => NOT_FOUND,
    PlayerNotRated = "player_not_rated" => NOT_FOUND,
    PlayerNotOnBoard = "player_not_on_board" => NOT_FOUND,
    /// No such match or entry in the product's history.
    MatchNotFound = "match_not_found" => NOT_FOUND,
    VoidNotFound = "void_not_found" => NOT_FOUND,
    /// Un-hiding a player who is not hidden.
    PlayerNotHidden = "player_not_hidden" => NOT_FOUND,
    MethodNotAllowed = "method_not_allowed" => METHOD_NOT_ALLOWED,
    BodyTooLarge = "body_too_large" => PAYLOAD_TOO_LARGE,
    /// The product's history misses entries: what needs a rebuild is refused.
    HistoryIncomplete = "history_incomplete" => CONFLICT,
    /// Hiding a player who already is.
    PlayerAlreadyHidden = "player_already_hidden" => CONFLICT,
    /// A board `as_of` a moment would replay more entries than allowed.
    AsOfTooCostly = "as_of_too_costly" => UNPROCESSABLE_ENTITY,
    /// A bug (logged with its cause, which clients never see).
    InternalError = "internal_error" => INTERNAL_SERVER_ERROR,
    /// The store's or the stream's Redis did not answer in time.
    StoreUnavailable = "store_unavailable" => SERVICE_UNAVAILABLE,
    WorkerMetricsUnavailable = "worker_metrics_unavailable" => SERVICE_UNAVAILABLE,
}

/// Every way a request can fail, each with a stable [`ErrorCode`] and its HTTP status.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// A refusal with its code and an explanation for people.
    #[error("{message}")]
    Coded { code: ErrorCode, message: String },
    #[error("no route for {0}")]
    NoRoute(String),
    #[error("method not allowed")]
    MethodNotAllowed,
    #[error("{0}")]
    Unauthorized(String),
    #[error("the request body is larger than the server accepts")]
    TooLarge,
    #[error("the data store is unavailable, try again shortly")]
    Unavailable(#[source] StoreError),
    /// The event stream's Redis (ingest) failed; answered like the store's, logged apart.
    #[error("the event stream is unavailable, try again shortly")]
    StreamUnavailable(#[source] StoreError),
    /// The worker's metrics cannot be read (not configured, or not answering).
    #[error("{0}")]
    WorkerMetricsUnavailable(String),
    /// A bug: something that cannot fail did (logged with its cause, which clients never see).
    #[error("internal error")]
    Internal(String),
}

/// The body of every error answer.
#[derive(Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

/// What went wrong: a stable machine-readable `code` and a message for people.
#[derive(Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable error code, e.g. `invalid_user_id`, `board_not_found`, `store_unavailable`.
    pub code: ErrorCode,
    /// Human-readable explanation; its wording may change.
    pub message: String,
}

impl ApiError {
    /// A refusal with `code` (its status comes with it) and `message`.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ApiError::Coded {
            code,
            message: message.into(),
        }
    }

    pub fn code(&self) -> ErrorCode {
        match self {
            ApiError::Coded { code, .. } => *code,
            ApiError::NoRoute(_) => ErrorCode::NotFound,
            ApiError::MethodNotAllowed => ErrorCode::MethodNotAllowed,
            ApiError::Unauthorized(_) => ErrorCode::Unauthorized,
            ApiError::TooLarge => ErrorCode::BodyTooLarge,
            ApiError::Unavailable(_) | ApiError::StreamUnavailable(_) => {
                ErrorCode::StoreUnavailable
            }
            ApiError::WorkerMetricsUnavailable(_) => ErrorCode::WorkerMetricsUnavailable,
            ApiError::Internal(_) => ErrorCode::InternalError,
        }
    }
}

impl From<axum::extract::rejection::JsonRejection> for ApiError {
    fn from(rejection: axum::extract::rejection::JsonRejection) -> Self {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::TooLarge
        } else {
            ApiError::new(ErrorCode::InvalidBody, rejection.body_text())
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        ApiError::Unavailable(error)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let code = self.code();
        let status = code.status();
        match &self {
            ApiError::Unavailable(cause) => {
                tracing::warn!(error = %cause, "store Redis unavailable");
            }
            ApiError::StreamUnavailable(cause) => {
                tracing::warn!(error = %cause, "stream Redis unavailable");
            }
            ApiError::WorkerMetricsUnavailable(cause) => {
                tracing::warn!(error = %cause, "worker metrics unavailable");
            }
            ApiError::Internal(cause) => tracing::error!(error = %cause, "internal error"),
            _ => {}
        }
        let body = ErrorBody {
            error: ErrorDetail {
                code,
                message: self.to_string(),
            },
        };
        let mut response = (status, Json(body)).into_response();
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static("Bearer"),
            );
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    /// The codes of README's error paragraph, each with the status written after its group.
    fn documented() -> BTreeSet<(String, u16)> {
        let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
            .expect("README.md");
        let start = readme
            .find("Errors are JSON")
            .expect("the errors paragraph");
        let paragraph = readme[start..].split("\n\n").next().unwrap_or_default();
        let paragraph = paragraph.split("Headers larger").next().unwrap_or_default();
        let mut codes = BTreeSet::new();
        let mut waiting: Vec<String> = Vec::new();
        // `code` … (status …): a status closes the codes named since the one before.
        for piece in paragraph.split('`').skip(3).collect::<Vec<_>>().chunks(2) {
            let (code, after) = (piece[0], piece.get(1).copied().unwrap_or_default());
            if code.chars().all(|c| c.is_ascii_lowercase() || c == '_') {
                waiting.push(code.to_owned());
            }
            if let Some(status) = after.trim_start_matches([',', ' ', '\n']).strip_prefix('(')
                && let Some(status) = status.get(..3).and_then(|s| s.parse::<u16>().ok())
            {
                codes.extend(waiting.drain(..).map(|code| (code, status)));
            }
        }
        codes
    }

    #[test]
    fn the_readme_lists_every_code_with_its_status() {
        let codes: BTreeSet<(String, u16)> = ErrorCode::ALL
            .iter()
            .map(|code| (code.as_str().to_owned(), code.status().as_u16()))
            .collect();
        assert_eq!(documented(), codes);
    }

    #[test]
    fn codes_serialize_as_their_text() {
        for code in ErrorCode::ALL {
            assert_eq!(
                serde_json::to_value(code).ok(),
                Some(serde_json::Value::String(code.as_str().to_owned()))
            );
        }
    }
}
