//! The HTTP API server (axum): routing, shared state, start-up and graceful shutdown.

mod admin;
mod boards;
mod cache;
mod discovery;
mod error;
mod observability;
mod ratings;
mod routes;

use std::sync::Arc;

use axum::Router;
use axum::routing::get;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use admin::Ingest;
pub use cache::TopCache;
pub use error::ApiError;

use crate::core::config::Secret;
use crate::core::metrics::ProductLabels;
use crate::core::store::Store;
use crate::games::Games;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub labels: Arc<ProductLabels>,
    /// Boards and rules per product: which boards exist and how they rate.
    pub games: Arc<Games>,
    /// The admin routes' token; `None` disables them.
    pub admin_token: Option<Secret>,
    /// HTTP event ingest; `None` (no ingest token configured) disables it.
    pub ingest: Option<Ingest>,
    /// Origins allowed by CORS; empty for none.
    pub cors_allowed_origins: Vec<String>,
    /// Largest request body accepted.
    pub max_body_bytes: usize,
    /// Recent top-ten answers.
    pub top_cache: Arc<cache::TopCache>,
    /// The current time; chooses the current period of a window board.
    pub clock: Clock,
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

/// Every route the server answers.
pub fn router(state: AppState) -> Router {
    // Install the recorder before the first request is counted.
    let _ = crate::core::metrics::prometheus();
    Router::new()
        .route("/leaderboards/top_ten/{product_id}", get(routes::top_ten))
        .route("/stats/{product_id}/{user_id}", get(routes::player_stats))
        .route("/v1/products", get(discovery::products))
        .route("/v1/products/{product_id}/boards", get(discovery::boards))
        .route(
            "/v1/products/{product_id}/players/{user_id}/stats",
            get(discovery::player_stats),
        )
        .route(
            "/v1/products/{product_id}/boards/{board}/players/{user_id}/rating",
            get(ratings::rating),
        )
        .route(
            "/v1/products/{product_id}/boards/{board}/players/{user_id}/history",
            get(ratings::history),
        )
        .route(
            "/v1/products/{product_id}/boards/{board}/predict",
            axum::routing::post(ratings::predict),
        )
        .route(
            "/v1/products/{product_id}/boards/{board}/entries",
            get(boards::entries),
        )
        .route(
            "/v1/products/{product_id}/boards/{board}/players/{user_id}",
            get(boards::standing),
        )
        .route(
            "/v1/products/{product_id}/boards/{board}/ranks",
            get(boards::ranks),
        )
        .route("/v1/events", axum::routing::post(admin::ingest))
        .route(
            "/v1/admin/players/{user_id}",
            axum::routing::delete(admin::erase_player),
        )
        .route(
            "/v1/admin/products/{product_id}/boards/{board}",
            axum::routing::delete(admin::reset_board),
        )
        .route("/healthz", get(observability::healthz))
        .route("/readyz", get(observability::readyz))
        .route("/metrics", get(observability::metrics))
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

/// Serves the API on `listener` until `shutdown` is cancelled, then drains open requests.
pub async fn run(
    listener: TcpListener,
    state: AppState,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, "HTTP API listening");
    }
    axum::serve(listener, router(state))
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
}
