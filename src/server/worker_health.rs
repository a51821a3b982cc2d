//! `GET /v1/health/worker`: the worker's health, summarised from its Prometheus metrics — the
//! process's own (`stats-tracker all`) or scraped from `server.worker_metrics_url` (a worker in
//! another process).

use std::collections::BTreeMap;
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use http_body_util::{BodyExt, Empty, Limited};
use hyper::body::Bytes;
use hyper::{Request, StatusCode, Uri, header};
use hyper_util::rt::TokioIo;
use serde::Serialize;
use tokio::net::TcpStream;
use utoipa::ToSchema;

use super::AppState;
use super::error::{ApiError, ErrorBody};
use crate::core::metrics::prometheus;

/// How long scraping the worker's metrics may take, connecting included.
pub const SCRAPE_TIMEOUT: Duration = Duration::from_secs(2);

/// Largest metrics page read from the worker.
const MAX_METRICS_BYTES: usize = 4 << 20;

/// Where the worker's metrics come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WorkerMetrics {
    /// This process's own metrics: the worker runs in it (`stats-tracker all`).
    Process,
    /// Scraped from this URL (`server.worker_metrics_url`).
    Url(String),
    /// Nowhere: `stats-tracker serve` without `server.worker_metrics_url`.
    None,
}

/// The worker's health, from its metrics.
#[derive(Debug, Serialize, ToSchema, PartialEq)]
pub struct WorkerHealth {
    /// `process` (this process's metrics) or the URL scraped.
    pub source: String,
    /// Whether the metrics show a worker at all (a worker shows its counters from its start).
    pub reporting: bool,
    /// Whether this worker holds the stream lease (is the active one); `null` before it said.
    pub lease_held: Option<bool>,
    /// Entries not yet delivered to the tracker's consumer group; `null` before the first sample.
    pub consumer_lag: Option<f64>,
    /// Entries delivered and not yet acknowledged; `null` before the first sample.
    pub pending_entries: Option<f64>,
    /// Stream entries handled since the worker started, all outcomes.
    pub events_total: f64,
    /// Entries handled by outcome: `applied`, `skipped`, `dead_lettered`, `replayed`.
    pub events_by_outcome: BTreeMap<String, f64>,
    /// Entries dead-lettered, by product and event type, most first.
    pub dead_letters: Vec<DeadLetterCount>,
    /// Dead letters written, by reason kind, most first: one letter per reason, so an event
    /// that several boards could not rate counts once per board. Kinds: `missing_field`,
    /// `invalid_id`, `not_utf8`, `duplicate_field`, `unknown_type`, `self_match`,
    /// `invalid_value`, `unknown_product`, `unratable_outcome`, `deleted`, and a board's
    /// validation rules: `below_minimum`, `above_maximum`, `not_integer`, `decrement`,
    /// `change_too_large`.
    pub dead_letters_by_reason: Vec<ReasonCount>,
    /// Batches committed and acknowledged.
    pub batches_total: f64,
    /// Interruptions by Redis errors, retried with back-off.
    pub redis_errors_total: f64,
    /// Entries deleted or trimmed from the stream before the tracker read them.
    pub lost_entries_total: f64,
    /// Rating states held in memory.
    pub rating_cache_entries: Option<f64>,
    /// When the metrics were read (Unix ms): events/s is the change of `events_total` between
    /// two answers over the change of this.
    pub scraped_at_ms: u64,
}

/// Dead letters of one product and event type.
#[derive(Debug, Serialize, ToSchema, PartialEq)]
pub struct DeadLetterCount {
    pub product: String,
    #[serde(rename = "type")]
    pub event_type: String,
    pub count: f64,
}

/// Dead letters of one reason kind.
#[derive(Debug, Serialize, ToSchema, PartialEq)]
pub struct ReasonCount {
    pub reason: String,
    pub count: f64,
}

/// `GET /v1/health/worker`: lag, events, dead letters and the lease, from the worker's metrics.
#[utoipa::path(
    get,
    path = "/v1/health/worker",
    tag = "operations",
    summary = "The worker's health, from its metrics (lag, events, dead letters, lease)",
    responses(
        (status = 200, description = "The worker's health", body = WorkerHealth),
        (status = 503, description = "`worker_metrics_unavailable`: `server.worker_metrics_url` does not answer in time, or this process runs no worker and that setting is not given", body = ErrorBody),
    )
)]
pub async fn worker_health(State(state): State<AppState>) -> Result<Json<WorkerHealth>, ApiError> {
    let (source, text) = match &state.worker_metrics {
        WorkerMetrics::Process => ("process".to_owned(), prometheus().render()),
        WorkerMetrics::Url(url) => {
            let text = tokio::time::timeout(SCRAPE_TIMEOUT, scrape(url))
                .await
                .map_err(|_| {
                    ApiError::WorkerMetricsUnavailable(format!(
                        "the worker's metrics ({url}) did not answer within {} ms",
                        SCRAPE_TIMEOUT.as_millis()
                    ))
                })?
                .map_err(|problem| {
                    ApiError::WorkerMetricsUnavailable(format!(
                        "cannot read the worker's metrics ({url}): {problem}"
                    ))
                })?;
            (url.clone(), text)
        }
        WorkerMetrics::None => {
            return Err(ApiError::WorkerMetricsUnavailable(
                "this process runs no worker and server.worker_metrics_url is not set".to_owned(),
            ));
        }
    };
    Ok(Json(summarise(source, &parse(&text), (state.clock)())))
}

/// `GET url`'s body as text (HTTP/1.1, plain TCP).
async fn scrape(url: &str) -> Result<String, String> {
    let uri: Uri = url.parse().map_err(|error| format!("bad URL: {error}"))?;
    let authority = uri.authority().ok_or("the URL names no host")?.clone();
    let port = authority.port_u16().unwrap_or(80);
    let host = authority
        .host()
        .trim_start_matches('[')
        .trim_end_matches(']');
    let tcp = TcpStream::connect((host, port))
        .await
        .map_err(|error| error.to_string())?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .map_err(|error| error.to_string())?;
    let connection = tokio::spawn(async move {
        let _ = connection.await;
    });
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let request = Request::get(path)
        .header(header::HOST, authority.as_str())
        .header(header::ACCEPT, "text/plain")
        .body(Empty::<Bytes>::new())
        .map_err(|error| error.to_string())?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|error| error.to_string())?;
    let status = response.status();
    let body = Limited::new(response.into_body(), MAX_METRICS_BYTES)
        .collect()
        .await
        .map_err(|error| error.to_string())?
        .to_bytes();
    connection.abort();
    if status != StatusCode::OK {
        return Err(format!("it answered {status}"));
    }
    String::from_utf8(body.to_vec()).map_err(|_| "the answer is not UTF-8".to_owned())
}

/// One sample of the Prometheus text format: name, labels, value.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// The samples of a Prometheus text exposition; lines it cannot read are skipped.
pub fn parse(text: &str) -> Vec<Sample> {
    text.lines().filter_map(parse_line).collect()
}

fn parse_line(line: &str) -> Option<Sample> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let name_end = line.find(|c: char| c == '{' || c.is_whitespace())?;
    let name = &line[..name_end];
    let mut rest = &line[name_end..];
    let mut labels = BTreeMap::new();
    if let Some(inside) = rest.strip_prefix('{') {
        let mut chars = inside.char_indices();
        loop {
            // A label name up to `=`, or the closing brace.
            let mut key = String::new();
            let mut closed_at = None;
            for (at, c) in chars.by_ref() {
                match c {
                    '}' => {
                        closed_at = Some(at);
                        break;
                    }
                    '=' => break,
                    ',' | ' ' => {}
                    c => key.push(c),
                }
            }
            if let Some(at) = closed_at {
                rest = &inside[at + 1..];
                break;
            }
            if chars.next()?.1 != '"' {
                return None;
            }
            let mut value = String::new();
            loop {
                match chars.next()?.1 {
                    '"' => break,
                    '\\' => match chars.next()?.1 {
                        'n' => value.push('\n'),
                        c => value.push(c),
                    },
                    c => value.push(c),
                }
            }
            labels.insert(key, value);
        }
    }
    let value = match rest.split_whitespace().next()? {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        number => number.parse().ok()?,
    };
    Some(Sample {
        name: name.to_owned(),
        labels,
        value,
    })
}

/// The worker's health from its metric samples.
pub fn summarise(source: String, samples: &[Sample], now_ms: u64) -> WorkerHealth {
    let named = |name: &'static str| samples.iter().filter(move |s| s.name == name);
    let one = |name: &'static str| named(name).map(|s| s.value).next();
    let sum = |name: &'static str| named(name).map(|s| s.value).sum::<f64>();
    let mut events_by_outcome = BTreeMap::new();
    let mut dead_letters: BTreeMap<(String, String), f64> = BTreeMap::new();
    for sample in named("stats_tracker_worker_events_total") {
        let label = |key: &str| sample.labels.get(key).cloned().unwrap_or_default();
        *events_by_outcome.entry(label("outcome")).or_insert(0.0) += sample.value;
        if sample.labels.get("outcome").map(String::as_str) == Some("dead_lettered") {
            *dead_letters
                .entry((label("product"), label("type")))
                .or_insert(0.0) += sample.value;
        }
    }
    let mut dead_letters: Vec<DeadLetterCount> = dead_letters
        .into_iter()
        .filter(|(_, count)| *count > 0.0)
        .map(|((product, event_type), count)| DeadLetterCount {
            product,
            event_type,
            count,
        })
        .collect();
    dead_letters.sort_by(|a, b| b.count.total_cmp(&a.count));
    let mut by_reason: BTreeMap<String, f64> = BTreeMap::new();
    for sample in named("stats_tracker_worker_dead_letters_total") {
        let reason = sample.labels.get("reason").cloned().unwrap_or_default();
        *by_reason.entry(reason).or_insert(0.0) += sample.value;
    }
    let mut dead_letters_by_reason: Vec<ReasonCount> = by_reason
        .into_iter()
        .filter(|(_, count)| *count > 0.0)
        .map(|(reason, count)| ReasonCount { reason, count })
        .collect();
    // Stable: equal counts stay in the reasons' order.
    dead_letters_by_reason.sort_by(|a, b| b.count.total_cmp(&a.count));
    WorkerHealth {
        source,
        reporting: samples
            .iter()
            .any(|s| s.name.starts_with("stats_tracker_worker_")),
        lease_held: one("stats_tracker_worker_lease_held").map(|held| held > 0.0),
        consumer_lag: one("stats_tracker_worker_consumer_lag"),
        pending_entries: one("stats_tracker_worker_pending_entries"),
        events_total: events_by_outcome.values().sum(),
        events_by_outcome,
        dead_letters,
        dead_letters_by_reason,
        batches_total: sum("stats_tracker_worker_batch_duration_seconds_count"),
        redis_errors_total: sum("stats_tracker_worker_redis_errors_total"),
        lost_entries_total: sum("stats_tracker_worker_lost_entries_total"),
        rating_cache_entries: one("stats_tracker_worker_rating_cache_entries"),
        scraped_at_ms: now_ms,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::event::ReasonKind;

    const TEXT: &str = r#"# HELP stats_tracker_worker_events_total Stream entries the worker handled
# TYPE stats_tracker_worker_events_total counter
stats_tracker_worker_events_total{product="exrps",type="game_over",outcome="applied"} 30
stats_tracker_worker_events_total{product="exrps",type="game_over",outcome="dead_lettered"} 1
stats_tracker_worker_events_total{product="a \"q\" \\ b",type="x,y}",outcome="dead_lettered"} 2
stats_tracker_worker_events_total{product="exrps",type="gameplay",outcome="skipped"} 4
stats_tracker_worker_dead_letters_total{product="exrps",reason="self_match"} 1
stats_tracker_worker_dead_letters_total{product="a \"q\" \\ b",reason="unknown_type"} 2
stats_tracker_worker_dead_letters_total{product="exrps",reason="unknown_type"} 1
stats_tracker_worker_dead_letters_total{product="exrps",reason="missing_field"} 0
stats_tracker_worker_lease_held 1
stats_tracker_worker_consumer_lag 0
stats_tracker_worker_redis_errors_total 0
stats_tracker_worker_batch_duration_seconds_bucket{le="+Inf"} 3
stats_tracker_worker_batch_duration_seconds_sum 0.01
stats_tracker_worker_batch_duration_seconds_count 3
not a sample line {
"#;

    #[test]
    fn samples_are_parsed_with_escaped_labels() {
        let samples = parse(TEXT);
        assert_eq!(samples.len(), 14, "{samples:?}");
        assert_eq!(samples[2].labels["product"], r#"a "q" \ b"#);
        assert_eq!(samples[2].labels["type"], "x,y}");
        assert_eq!(samples[2].value, 2.0);
        assert_eq!(samples[11].labels["le"], "+Inf");
        assert_eq!(samples[9].labels.len(), 0);
    }

    #[test]
    fn the_summary_counts_outcomes_and_dead_letters() {
        let health = summarise("process".into(), &parse(TEXT), 7);
        assert!(health.reporting);
        assert_eq!(health.lease_held, Some(true));
        assert_eq!(health.consumer_lag, Some(0.0));
        assert_eq!(health.pending_entries, None);
        assert_eq!(health.events_total, 37.0);
        assert_eq!(health.events_by_outcome["dead_lettered"], 3.0);
        assert_eq!(health.events_by_outcome["skipped"], 4.0);
        assert_eq!(health.batches_total, 3.0);
        assert_eq!(
            health.dead_letters[0],
            DeadLetterCount {
                product: r#"a "q" \ b"#.into(),
                event_type: "x,y}".into(),
                count: 2.0
            }
        );
        assert_eq!(health.dead_letters.len(), 2);
        // Summed over products; a reason at 0 is left out.
        assert_eq!(
            health.dead_letters_by_reason,
            vec![
                ReasonCount {
                    reason: "unknown_type".into(),
                    count: 3.0
                },
                ReasonCount {
                    reason: "self_match".into(),
                    count: 1.0
                },
            ]
        );
        assert_eq!(health.scraped_at_ms, 7);
    }

    #[test]
    fn the_document_names_every_reason_kind() {
        use utoipa::PartialSchema;
        let schema = serde_json::to_value(WorkerHealth::schema()).expect("schema");
        let description = schema["properties"]["dead_letters_by_reason"]["description"]
            .as_str()
            .unwrap_or_default();
        for kind in ReasonKind::ALL {
            assert!(
                description.contains(&format!("`{}`", kind.as_str())),
                "{description}"
            );
        }
    }

    #[test]
    fn no_worker_metrics_is_not_reporting() {
        let health = summarise(
            "process".into(),
            &parse("stats_tracker_http_requests_total 1"),
            0,
        );
        assert!(!health.reporting);
        assert_eq!(health.lease_held, None);
        assert_eq!(health.events_total, 0.0);
        assert!(health.dead_letters_by_reason.is_empty());
    }
}
