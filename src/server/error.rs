//! The API's one error type and its one JSON shape: `{"error": {"code": "...", "message": "..."}}`.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use crate::core::store::StoreError;

/// Every way a request can fail, each with a stable `code` and an HTTP status.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{message}")]
    BadRequest { code: &'static str, message: String },
    #[error("no route for {0}")]
    NoRoute(String),
    #[error("{message}")]
    NotFound { code: &'static str, message: String },
    #[error("method not allowed")]
    MethodNotAllowed,
    #[error("{0}")]
    Unauthorized(String),
    #[error("the request body is larger than the server accepts")]
    TooLarge,
    #[error("{message}")]
    Forbidden { code: &'static str, message: String },
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
    #[schema(example = "invalid_user_id")]
    pub code: &'static str,
    /// Human-readable explanation; its wording may change.
    pub message: String,
}

impl ApiError {
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        ApiError::BadRequest {
            code,
            message: message.into(),
        }
    }

    pub fn not_found(code: &'static str, message: impl Into<String>) -> Self {
        ApiError::NotFound {
            code,
            message: message.into(),
        }
    }

    fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            ApiError::BadRequest { code, .. } => (StatusCode::BAD_REQUEST, code),
            ApiError::NoRoute(_) => (StatusCode::NOT_FOUND, "not_found"),
            ApiError::NotFound { code, .. } => (StatusCode::NOT_FOUND, code),
            ApiError::MethodNotAllowed => (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
            ApiError::Unauthorized(_) => (StatusCode::UNAUTHORIZED, "unauthorized"),
            ApiError::TooLarge => (StatusCode::PAYLOAD_TOO_LARGE, "body_too_large"),
            ApiError::Forbidden { code, .. } => (StatusCode::FORBIDDEN, code),
            ApiError::Unavailable(_) | ApiError::StreamUnavailable(_) => {
                (StatusCode::SERVICE_UNAVAILABLE, "store_unavailable")
            }
            ApiError::WorkerMetricsUnavailable(_) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "worker_metrics_unavailable",
            ),
            ApiError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal_error"),
        }
    }
}

impl From<axum::extract::rejection::JsonRejection> for ApiError {
    fn from(rejection: axum::extract::rejection::JsonRejection) -> Self {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::TooLarge
        } else {
            ApiError::bad_request("invalid_body", rejection.body_text())
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
        let (status, code) = self.status_and_code();
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
