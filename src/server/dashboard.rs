//! The read-only dashboard at `/dashboard/`: plain HTML, CSS and JavaScript modules under
//! `src/server/dashboard/`, embedded in the binary at build time (no build step, nothing
//! fetched from elsewhere). The page reads the public API (`/v1/…`) from the browser; it needs
//! no token. Not API routes, so not in the OpenAPI document.

use axum::Router;
use axum::extract::Path;
use axum::extract::rejection::PathRejection;
use axum::http::{HeaderValue, Uri, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;

use super::AppState;
use super::error::ApiError;
use super::routes::bad_path;

/// Every file of the dashboard: name under `/dashboard/`, content type, bytes.
const FILES: &[(&str, &str, &str)] = &[
    (
        "index.html",
        "text/html; charset=utf-8",
        include_str!("dashboard/index.html"),
    ),
    (
        "style.css",
        "text/css; charset=utf-8",
        include_str!("dashboard/style.css"),
    ),
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_str!("dashboard/app.js"),
    ),
    (
        "api.js",
        "text/javascript; charset=utf-8",
        include_str!("dashboard/api.js"),
    ),
    (
        "dom.js",
        "text/javascript; charset=utf-8",
        include_str!("dashboard/dom.js"),
    ),
    (
        "chart.js",
        "text/javascript; charset=utf-8",
        include_str!("dashboard/chart.js"),
    ),
    (
        "views.js",
        "text/javascript; charset=utf-8",
        include_str!("dashboard/views.js"),
    ),
    (
        "favicon.svg",
        "image/svg+xml",
        include_str!("dashboard/favicon.svg"),
    ),
];

/// Only our own files, scripts and connections; no inline scripts or styles, no framing.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; \
     frame-ancestors 'none'";

/// `/dashboard` redirects to `/dashboard/`, which serves the page, and `/dashboard/{file}` its
/// files.
pub(super) fn dashboard() -> Router<AppState> {
    Router::new()
        .route("/dashboard", get(|| async { Redirect::to("/dashboard/") }))
        .route(
            "/dashboard/",
            get(|uri: Uri| async move { file("index.html", &uri) }),
        )
        .route(
            "/dashboard/{*file}",
            get(
                |uri: Uri, name: Result<Path<String>, PathRejection>| async move {
                    let Path(name) = name.map_err(bad_path)?;
                    file(&name, &uri)
                },
            ),
        )
}

/// One dashboard file, or our JSON 404.
fn file(name: &str, uri: &Uri) -> Result<Response, ApiError> {
    let (_, content_type, body) = FILES
        .iter()
        .find(|(file, _, _)| *file == name)
        .ok_or_else(|| ApiError::NoRoute(uri.path().to_owned()))?;
    let mut response = ([(header::CONTENT_TYPE, *content_type)], *body).into_response();
    let headers = response.headers_mut();
    // A new binary may bring new files: revalidate rather than run an old script.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_file_the_page_loads_is_embedded() {
        let page = FILES[0].2;
        for (name, _, body) in FILES {
            assert!(!body.is_empty(), "{name}");
        }
        // Each module the scripts import is one of the files.
        for (name, _, body) in FILES.iter().filter(|(name, _, _)| name.ends_with(".js")) {
            for import in body.split("from './").skip(1) {
                let imported = import.split('\'').next().unwrap_or_default();
                assert!(
                    FILES.iter().any(|(file, _, _)| *file == imported),
                    "{name} imports {imported}, which is not embedded"
                );
            }
        }
        for asset in ["./style.css", "./app.js", "./favicon.svg"] {
            assert!(page.contains(asset), "the page does not load {asset}");
        }
    }
}
