//! The HTTP API server (axum): routing, shared state, start-up and graceful shutdown.

mod admin;
mod boards;
mod cache;
mod dashboard;
mod dead_letters;
mod discovery;
mod error;
mod ingest;
pub mod listener;
mod moderation;
mod observability;
mod openapi;
mod ratings;
mod routes;
mod voids;
mod worker_health;

use std::sync::Arc;

use axum::Router;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub use cache::{HeadCache, MAX_TOP_TEN_ANSWERS, TopCache, head_cache_entries};
pub use error::ApiError;
pub use ingest::{APPEND_TIMEOUT, Ingest};
pub use worker_health::WorkerMetrics;

use crate::core::config::{Secret, StatValues};
use crate::core::metrics::ProductLabels;
use crate::core::store::Store;
use crate::games::Games;
use crate::player_stats::handlers::StatsRegistry;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub labels: Arc<ProductLabels>,
    /// Boards and rules per product: which boards exist and how they rate.
    pub games: Arc<Games>,
    /// Stats handlers per product: which stats a player who has played always has.
    pub stats: Arc<StatsRegistry>,
    /// How the original stats route encodes values.
    pub original_stats_values: StatValues,
    /// The admin routes' tokens, by name; none disables them.
    pub admin_tokens: Arc<Vec<(String, Secret)>>,
    /// HTTP event ingest; `None` (no ingest token configured) disables it.
    pub ingest: Option<Ingest>,
    /// The event stream, where dead-letter re-drives append.
    pub event_stream: crate::dead_letters::EventStreamSink,
    /// Origins allowed by CORS; empty for none.
    pub cors_allowed_origins: Vec<String>,
    /// Largest request body accepted.
    pub max_body_bytes: usize,
    /// Recent top-ten answers.
    pub top_cache: Arc<cache::TopCache>,
    /// Recent board heads, for pages within them.
    pub head_cache: Arc<cache::HeadCache>,
    /// Rows of a board head (`server.page_cache_rows`).
    pub head_rows: u64,
    /// The current time; chooses the current period of a window board.
    pub clock: Clock,
    /// Whether every request is logged (`log.access`).
    pub access_log: bool,
    /// Where `GET /v1/health/worker` reads the worker's metrics.
    pub worker_metrics: WorkerMetrics,
    /// Boards as of a past moment; `None` when no history is kept.
    pub as_of: Option<Arc<crate::history::as_of::AsOf>>,
}

/// Unix milliseconds now (replaceable, so tests can roll windows over).
pub type Clock = Arc<dyn Fn() -> u64 + Send + Sync>;

/// The system clock.
pub fn system_clock() -> Clock {
    Arc::new(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|elapsed| u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX))
            .unwrap_or(0)
    })
}

/// Every route the server answers: the API routes of [`api`], the docs page and the dashboard.
pub fn router(state: AppState) -> Router {
    // Install the recorder before the first request is counted.
    let _ = crate::core::metrics::prometheus();
    crate::core::metrics::show_counters_at_zero("stats_tracker_dead_letters_");
    // The document is served by `openapi::openapi_json`, which builds it from `api()` too.
    let (api, _document) = api().split_for_parts();
    api.merge(openapi::docs_ui())
        .merge(dashboard::dashboard())
        .fallback(|uri: axum::http::Uri| async move { ApiError::NoRoute(uri.path().to_owned()) })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            observability::track_requests,
        ))
        .layer(axum::extract::DefaultBodyLimit::max(state.max_body_bytes))
        .layer(cors(&state.cors_allowed_origins))
        .with_state(state)
}

/// Every API route, registered in this one place. `routes!` takes each route's method and path
/// from its handler's `#[utoipa::path(...)]` and adds the operation (and its schemas) to the
/// OpenAPI document, so every route served is documented by construction.
///
/// To add a route: annotate the handler with `#[utoipa::path(method, path = "...", params(...),
/// responses(...), ...)]` (see `ratings::predict` for a POST with a body, `admin::reset_board`
/// for a token-protected route) and add `.routes(routes!(module::handler))` here. A path with
/// several methods has one handler per method, each with its own annotation. Never add API
/// routes with `.route(...)`: they would be served but not documented.
fn api() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .routes(routes!(routes::top_ten))
        .routes(routes!(routes::player_stats))
        .routes(routes!(discovery::products))
        .routes(routes!(discovery::boards))
        .routes(routes!(discovery::player_stats))
        .routes(routes!(ratings::rating))
        .routes(routes!(ratings::history))
        .routes(routes!(ratings::predict))
        .routes(routes!(boards::entries))
        .routes(routes!(boards::standing))
        .routes(routes!(boards::ranks))
        .routes(routes!(ingest::ingest))
        .routes(routes!(admin::erase_player))
        .routes(routes!(admin::reset_board))
        .routes(routes!(voids::void_match, voids::list_voids))
        .routes(routes!(voids::undo_void))
        .routes(routes!(moderation::hide, moderation::list_hidden))
        .routes(routes!(moderation::unhide))
        .routes(routes!(moderation::audit))
        .routes(routes!(dead_letters::list))
        .routes(routes!(dead_letters::redrive))
        .routes(routes!(observability::healthz))
        .routes(routes!(observability::readyz))
        .routes(routes!(observability::metrics))
        .routes(routes!(worker_health::worker_health))
        .routes(routes!(openapi::openapi_json))
}

/// CORS for the configured origins (`*`: any); no CORS headers when none are configured.
fn cors(origins: &[String]) -> tower_http::cors::CorsLayer {
    use tower_http::cors::{AllowOrigin, Any, CorsLayer};
    if origins.is_empty() {
        return CorsLayer::new();
    }
    let allow = if origins.iter().any(|o| o == "*") {
        AllowOrigin::from(Any)
    } else {
        AllowOrigin::list(
            origins
                .iter()
                .filter_map(|origin| axum::http::HeaderValue::from_str(origin).ok()),
        )
    };
    CorsLayer::new()
        .allow_origin(allow)
        .allow_methods(Any)
        .allow_headers(Any)
}

/// Serves the API on `listener` within `limits` until `shutdown` is cancelled, then drains
/// open requests.
pub async fn run(
    listener: TcpListener,
    state: AppState,
    limits: listener::Limits,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, "HTTP API listening");
    }
    listener::serve(listener, router(state), limits, shutdown).await
}
