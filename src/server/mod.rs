//! The HTTP API server (axum): routing, shared state, start-up and graceful shutdown.

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

pub use error::ApiError;

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
        .route("/healthz", get(observability::healthz))
        .route("/readyz", get(observability::readyz))
        .route("/metrics", get(observability::metrics))
        .fallback(|uri: axum::http::Uri| async move { ApiError::NoRoute(uri.path().to_owned()) })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            observability::track_requests,
        ))
        .with_state(state)
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
