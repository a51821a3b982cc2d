//! Health, readiness and Prometheus metrics of the HTTP server.

use std::time::Instant;

use axum::Json;
use axum::extract::{MatchedPath, RawPathParams, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use super::AppState;
use super::error::{ApiError, ErrorBody};
use crate::core::metrics::prometheus;

/// The answer of `/healthz` (`ok`) and `/readyz` (`ready`).
#[derive(Serialize, ToSchema)]
pub struct Status {
    #[schema(example = "ok")]
    pub status: &'static str,
}

/// `GET /healthz`: the process is up (says nothing about Redis).
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "operations",
    summary = "Liveness: the process is up (says nothing about Redis)",
    responses((status = 200, description = "`{\"status\": \"ok\"}`", body = Status))
)]
pub async fn healthz() -> Json<Status> {
    Json(Status { status: "ok" })
}

/// `GET /readyz`: 200 when the store answers, else 503 with the JSON error body.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "operations",
    summary = "Readiness: the store answers",
    responses(
        (status = 200, description = "`{\"status\": \"ready\"}`", body = Status),
        (status = 503, description = "The store is unavailable", body = ErrorBody),
    )
)]
pub async fn readyz(State(state): State<AppState>) -> Result<Json<Status>, ApiError> {
    state.store.ping().await?;
    Ok(Json(Status { status: "ready" }))
}

/// `GET /metrics`: Prometheus text format.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "operations",
    summary = "Prometheus metrics",
    responses((status = 200, description = "Prometheus text exposition format", body = String, content_type = "text/plain; version=0.0.4"))
)]
pub async fn metrics() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        prometheus().render(),
    )
}

/// Counts requests and times them by route template and (bounded) product, never by raw path
/// or player id, which would explode the number of series. With the access log on, logs each
/// request by the same route template: a raw path would put player ids in the logs.
pub async fn track_requests(
    State(state): State<AppState>,
    matched: Option<MatchedPath>,
    params: Result<RawPathParams, axum::extract::rejection::RawPathParamsRejection>,
    request: Request,
    next: Next,
) -> Response {
    let route = matched
        .as_ref()
        .map_or("unmatched", MatchedPath::as_str)
        .to_owned();
    let product = params
        .ok()
        .and_then(|params| {
            params
                .iter()
                .find(|(name, _)| *name == "product_id")
                .map(|(_, value)| state.labels.label(value))
        })
        .unwrap_or_default();
    let method = request.method().to_string();
    let started = Instant::now();
    let response = next.run(request).await;
    let status = response.status();
    let labels = [
        ("route", route),
        ("method", method),
        ("product", product),
        ("status", status_class(status).to_owned()),
    ];
    metrics::counter!("stats_tracker_http_requests_total", &labels).increment(1);
    let elapsed = started.elapsed();
    metrics::histogram!("stats_tracker_http_request_duration_seconds", &labels[..3])
        .record(elapsed.as_secs_f64());
    if state.access_log {
        let [(_, route), (_, method), ..] = &labels;
        tracing::info!(
            target: "stats_tracker::access",
            %method,
            %route,
            status = status.as_u16(),
            duration_ms = elapsed.as_secs_f64() * 1000.0,
            "request"
        );
    }
    response
}

fn status_class(status: StatusCode) -> &'static str {
    match status.as_u16() {
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    }
}
