//! The API's OpenAPI 3 document and its docs page.
//!
//! Owns [`ApiDoc`] (title, version, bearer security schemes, tags), `GET /openapi.json`, which
//! serves the document built from the routes registered in `super::api` (each route's
//! operation comes from its handler's `#[utoipa::path]`, so router and document cannot
//! drift), and the Swagger UI at `/docs/`, whose files are embedded in the binary at build time
//! (`utoipa-swagger-ui`'s `vendored` feature: nothing is fetched from a CDN, at build time or
//! when a browser opens the page).

use std::sync::{Arc, LazyLock};

use axum::Json;
use axum::Router;
use axum::extract::Path;
use axum::extract::rejection::PathRejection;
use axum::http::{Uri, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use serde_json::Value;
use utoipa::openapi::OpenApi as Document;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{RefOr, Schema};
use utoipa::{Modify, OpenApi};
use utoipa_swagger_ui::Config;

use super::AppState;
use super::error::ApiError;
use super::routes::bad_path;
use crate::core::ids::MAX_ID_CHARS;

/// Where the document is served.
pub const DOCUMENT_PATH: &str = "/openapi.json";

/// Ids (products, players): no control characters, as Rust's `char::is_control` (the C0 and
/// C1 controls and DEL) and so [`crate::core::ids`] checks.
pub const ID_PATTERN: &str = "^[^\\u0000-\\u001F\\u007F-\\u009F]+$";

/// An id (product or player) as JSON Schema: 1 to `MAX_ID_CHARS` characters, no control
/// characters.
pub fn id_schema() -> Value {
    serde_json::json!({
        "type": "string",
        "minLength": 1,
        "maxLength": crate::core::ids::MAX_ID_CHARS,
        "pattern": ID_PATTERN,
    })
}

/// A schema written as JSON: for bodies whose rules the derive cannot state (a choice of
/// shapes, patterns of array items, values that may be anything but `null`).
///
/// # Panics
///
/// When `value` is not a schema utoipa can hold, keyword for keyword (it has no `const` or
/// `not`, for one): the JSON is a constant of the code, and the unit tests build every schema
/// of the document.
pub fn schema(value: Value) -> RefOr<Schema> {
    let schema: RefOr<Schema> = match serde_json::from_value(value.clone()) {
        Ok(schema) => schema,
        Err(error) => panic!("a schema written as JSON does not parse: {error}: {value}"),
    };
    let kept = serde_json::to_value(&schema).unwrap_or_default();
    assert_eq!(kept, value, "a schema written as JSON loses keywords");
    schema
}

/// The document's fixed parts; `super::api` adds every route's path and schemas.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "stats-tracker",
        version = env!("CARGO_PKG_VERSION"),
        description = "Leaderboards, player stats and skill ratings of games, read from Redis. \
            Errors are `{\"error\": {\"code\": \"...\", \"message\": \"...\"}}` (schema `ErrorBody`)."
    ),
    modifiers(&BearerTokens),
    tags(
        (name = "leaderboards", description = "Boards' best players"),
        (name = "stats", description = "Players' stats"),
        (name = "ratings", description = "Skill rating boards: ratings, histories, predictions"),
        (name = "discovery", description = "Which products and boards exist"),
        (name = "ingest", description = "Game events over HTTP (ingest token)"),
        (name = "admin", description = "Erasing players, resetting boards, listing and re-driving dead letters (admin token)"),
        (name = "operations", description = "Health, readiness, metrics and this document"),
    )
)]
pub struct ApiDoc;

/// The two bearer tokens, each a security scheme: `admin_token` and `ingest_token`.
struct BearerTokens;

impl Modify for BearerTokens {
    fn modify(&self, openapi: &mut Document) {
        // utoipa fills the license from Cargo.toml, which names none: no empty license.
        openapi.info.license = None;
        let components = openapi.components.get_or_insert_with(Default::default);
        for (name, what) in [
            (
                "admin_token",
                "`server.admin_token`: erasing players, resetting boards, dead letters",
            ),
            ("ingest_token", "`server.ingest_token`: `POST /v1/events`"),
        ] {
            components.add_security_scheme(
                name,
                SecurityScheme::Http(
                    HttpBuilder::new()
                        .scheme(HttpAuthScheme::Bearer)
                        .description(Some(format!(
                            "{what}; routes answer 403 `disabled` while it is not configured"
                        )))
                        .build(),
                ),
            );
        }
    }
}

/// The whole document, built once from the registered routes.
static DOCUMENT: LazyLock<Document> = LazyLock::new(|| {
    let mut document = super::api().into_openapi();
    state_what_is_enforced(&mut document);
    document
});

/// Gives the parameters every route shares the constraints the server enforces on them, so a
/// request the document calls valid is not refused: ids (`product_id`, `user_id`) are 1 to
/// [`MAX_ID_CHARS`] characters without control characters (as [`crate::core::ids`] checks),
/// `window` and `ranking` one of their values, `period` and cursors not empty.
fn state_what_is_enforced(document: &mut Document) {
    use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, Type};
    let id = || {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .min_length(Some(1))
            .max_length(Some(MAX_ID_CHARS))
            // Rust's `char::is_control`: the C0 and C1 controls and DEL.
            .pattern(Some(ID_PATTERN))
            .build()
    };
    let one_of = |values: &[&str]| {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .enum_values(Some(values.iter().copied()))
            .build()
    };
    for item in document.paths.paths.values_mut() {
        let operations = [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.patch,
        ];
        for operation in operations.into_iter().flatten() {
            for parameter in operation.parameters.iter_mut().flatten() {
                // A parameter whose own schema has a pattern (a dead letter id) says more.
                if let Some(RefOr::T(Schema::Object(own))) = &parameter.schema
                    && own.pattern.is_some()
                {
                    continue;
                }
                let schema = match parameter.name.as_str() {
                    "product_id" | "user_id" => id(),
                    // Given, they must say something (an empty cursor names no position).
                    "period" | "after" | "before" => ObjectBuilder::new()
                        .schema_type(Type::String)
                        .min_length(Some(1))
                        .build(),
                    "window" => one_of(&["all", "daily", "weekly", "monthly"]),
                    "ranking" => one_of(&["standard", "dense", "ordinal"]),
                    _ => continue,
                };
                // `user_id` of `ranks` is repeated: an array of ids.
                let schema = match &parameter.schema {
                    Some(RefOr::T(Schema::Array(_))) => Schema::Array(
                        ArrayBuilder::new()
                            .items(schema)
                            .min_items(Some(1))
                            .max_items(Some(100))
                            .build(),
                    ),
                    _ => Schema::Object(schema),
                };
                parameter.schema = Some(RefOr::T(schema));
            }
        }
    }
}

/// The OpenAPI document of every API route.
pub fn document() -> &'static Document {
    &DOCUMENT
}

/// `GET /openapi.json`: this document.
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "operations",
    summary = "This OpenAPI document",
    responses((status = 200, description = "The OpenAPI 3 document of every API route", body = Object))
)]
pub async fn openapi_json() -> Json<&'static Document> {
    Json(document())
}

/// The Swagger UI: `/docs` redirects to `/docs/`, which serves the page, and `/docs/{file}` its
/// embedded scripts and styles. Not API routes, so not in the document.
pub(super) fn docs_ui() -> Router<AppState> {
    Router::new()
        .route("/docs", get(|| async { Redirect::to("/docs/") }))
        .route("/docs/", get(|uri: Uri| async move { docs_file("", &uri) }))
        .route(
            "/docs/{*file}",
            get(
                |uri: Uri, file: Result<Path<String>, PathRejection>| async move {
                    let Path(file) = file.map_err(bad_path)?;
                    docs_file(&file, &uri)
                },
            ),
        )
}

/// One Swagger UI file (`""`: the page), with our JSON 404 for a file it does not have.
fn docs_file(file: &str, uri: &Uri) -> Result<Response, ApiError> {
    // No validator: Swagger UI would send the document's URL to validator.swagger.io and show
    // its badge, a request to the internet.
    let config = Arc::new(Config::from(DOCUMENT_PATH).validator_url("none"));
    match utoipa_swagger_ui::serve(file, config) {
        Ok(Some(asset)) => {
            Ok(([(header::CONTENT_TYPE, asset.content_type)], asset.bytes).into_response())
        }
        Ok(None) => Err(ApiError::NoRoute(uri.path().to_owned())),
        Err(error) => Err(ApiError::Internal(format!(
            "Swagger UI file `{file}`: {error}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeSet, HashSet};

    use serde_json::Value;

    use super::*;

    /// The document as JSON, and each operation as (method, path, operation).
    fn operations() -> Vec<(String, String, Value)> {
        let document = serde_json::to_value(document()).expect("the document serializes");
        let mut operations = Vec::new();
        for (path, item) in document["paths"].as_object().expect("paths") {
            for (method, operation) in item.as_object().expect("path item") {
                operations.push((method.clone(), path.clone(), operation.clone()));
            }
        }
        assert!(!operations.is_empty());
        operations
    }

    #[test]
    fn shared_parameters_state_what_the_server_enforces() {
        let mut checked = 0;
        for (method, path, operation) in operations() {
            for parameter in operation["parameters"].as_array().into_iter().flatten() {
                let schema = match &parameter["schema"] {
                    array if array["type"] == "array" => &array["items"],
                    schema => schema,
                };
                match parameter["name"].as_str() {
                    Some("product_id" | "user_id") => {
                        assert_eq!(schema["maxLength"], 128, "{method} {path}");
                        assert_eq!(schema["minLength"], 1, "{method} {path}");
                        assert!(schema["pattern"].is_string(), "{method} {path}");
                    }
                    Some("window" | "ranking") => {
                        assert!(schema["enum"].is_array(), "{method} {path}");
                    }
                    _ => continue,
                }
                checked += 1;
            }
        }
        assert!(checked > 20, "only {checked} parameters checked");
    }

    /// What ingest, predict and the dead-letter routes refuse is in the document: as schema
    /// where a schema can say it, else in the description.
    #[test]
    fn bodies_and_parameters_state_the_rules_the_server_enforces() {
        let document = serde_json::to_value(document()).expect("the document serializes");
        let schemas = &document["components"]["schemas"];
        let event = &schemas["GameEvent"];
        let branches = event["oneOf"]
            .as_array()
            .expect("one branch per event type");
        assert_eq!(branches.len(), 8);
        for branch in branches {
            let types = branch["additionalProperties"]["type"]
                .as_array()
                .expect("types");
            assert!(!types.contains(&Value::from("null")), "{branch}");
            assert!(!types.is_empty());
        }
        let description = event["description"].as_str().unwrap_or_default();
        for rule in [
            "`null` is refused",
            "`winner_id` is its `loser_id`",
            "on two sides",
            "stats_tracker_redrive_of",
        ] {
            assert!(description.contains(rule), "{rule}: {description}");
        }
        let teams = &schemas["PredictRequest"]["properties"]["teams"];
        assert_eq!(teams["minItems"], 2);
        assert_eq!(teams["items"]["minItems"], 1);
        assert!(
            teams["description"]
                .as_str()
                .unwrap_or_default()
                .contains("Elo and Glicko-2 boards take exactly two teams of one player")
        );

        let parameter = |path: &str, name: &str| {
            document["paths"][path]["get"]["parameters"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|p| p["name"] == name)
                .cloned()
                .unwrap_or_default()
        };
        let period = parameter("/v1/products/{product_id}/boards/{board}/entries", "period");
        assert!(
            period["description"]
                .as_str()
                .unwrap_or_default()
                .contains("Only with a `window`"),
            "{period}"
        );
        let after = parameter("/v1/admin/dead-letters", "after");
        assert_eq!(
            after["schema"]["pattern"], "^[0-9]{1,19}-[0-9]{1,19}$",
            "{after}"
        );
    }

    #[test]
    fn operation_ids_are_unique() {
        let mut seen = HashSet::new();
        for (method, path, operation) in operations() {
            let id = operation["operationId"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            assert!(
                seen.insert(id.clone()),
                "{method} {path}: operationId `{id}` twice"
            );
        }
    }

    #[test]
    fn path_parameters_match_the_template() {
        for (method, path, operation) in operations() {
            let in_template: BTreeSet<&str> = path
                .split('/')
                .filter_map(|s| s.strip_prefix('{')?.strip_suffix('}'))
                .collect();
            let declared: BTreeSet<&str> = operation["parameters"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|p| p["in"] == "path")
                .filter_map(|p| p["name"].as_str())
                .collect();
            assert_eq!(in_template, declared, "{method} {path}");
        }
    }

    #[test]
    fn every_error_answer_has_the_error_schema() {
        for (method, path, operation) in operations() {
            let responses = operation["responses"].as_object().expect("responses");
            assert!(
                responses.keys().any(|status| status.starts_with('2')),
                "{method} {path}: no success response"
            );
            for (status, response) in responses {
                if status.as_str() >= "400" {
                    assert_eq!(
                        response["content"]["application/json"]["schema"]["$ref"],
                        "#/components/schemas/ErrorBody",
                        "{method} {path} {status}"
                    );
                }
            }
        }
    }

    #[test]
    fn token_routes_declare_their_bearer_scheme() {
        let document = serde_json::to_value(document()).expect("the document serializes");
        let schemes = &document["components"]["securitySchemes"];
        for (method, path, operation) in operations() {
            let answers_401 = operation["responses"].get("401").is_some();
            let security = operation["security"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            assert_eq!(answers_401, !security.is_empty(), "{method} {path}");
            for requirement in security {
                for name in requirement.as_object().expect("requirement").keys() {
                    assert_eq!(schemes[name]["scheme"], "bearer", "{method} {path}: {name}");
                }
            }
        }
    }

    /// A docs file's text, which must be there.
    async fn docs_text(file: &str) -> String {
        let response = docs_file(file, &Uri::from_static("/docs/")).expect("embedded file");
        assert_eq!(response.status(), 200, "{file}");
        let body = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .expect("body");
        String::from_utf8_lossy(&body).into_owned()
    }

    #[tokio::test]
    async fn the_docs_page_and_its_files_are_embedded() {
        assert!(docs_text("").await.contains("swagger-ui-bundle.js"));
        let initializer = docs_text("swagger-initializer.js").await;
        assert!(initializer.contains(DOCUMENT_PATH), "{initializer}");
        assert!(
            initializer.contains(r#""validatorUrl": "none""#),
            "{initializer}"
        );
        assert!(docs_text("swagger-ui-bundle.js").await.len() > 100_000);
        let missing = docs_file(
            "no-such-file.js",
            &Uri::from_static("/docs/no-such-file.js"),
        );
        assert!(matches!(missing, Err(ApiError::NoRoute(_))));
    }
}
