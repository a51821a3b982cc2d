//! The monitoring files in `ops/`: the Grafana dashboard and the Prometheus alerting rules use
//! only metrics, labels and label values the tracker really emits (scraped from a running
//! tracker that has handled a good and a bad event and answered a few routes), the dashboard
//! is parametrised by its data source, job and instance, every alert says how bad it is and
//! what to check, and the documentation sections they name exist. `scripts/check-ops` checks
//! that Prometheus loads the same files (promtool).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde_json::Value;

use crate::helpers::{TestApp, TestRedis, event, push_events, settings, wait_until_drained};

const DASHBOARD: &str = "ops/grafana/stats-tracker.json";
const RULES: &str = "ops/prometheus/alerts.yml";

/// Labels Prometheus adds to every scraped series.
const TARGET_LABELS: &[&str] = &["job", "instance"];

/// Values the `status` label takes (status classes); a scrape shows only those answered.
const STATUS_CLASSES: &[&str] = &["2xx", "3xx", "4xx", "5xx"];

fn read(path: &str) -> String {
    std::fs::read_to_string(format!("{}/{path}", env!("CARGO_MANIFEST_DIR")))
        .unwrap_or_else(|error| panic!("{path}: {error}"))
}

/// What `/metrics` serves: each metric's type, and the values each of its labels took.
#[derive(Default, Debug)]
struct Scrape {
    types: BTreeMap<String, String>,
    labels: BTreeMap<String, BTreeMap<String, BTreeSet<String>>>,
}

impl Scrape {
    fn parse(text: &str) -> Self {
        let mut scrape = Self::default();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let mut words = rest.split(' ');
                let name = words.next().unwrap_or_default().to_owned();
                let kind = words.next().unwrap_or_default().to_owned();
                scrape.types.insert(name, kind);
            } else if !line.starts_with('#') && !line.is_empty() {
                let name_end = line.find(['{', ' ']).unwrap_or(line.len());
                let name = &line[..name_end];
                let entry = scrape
                    .labels
                    .entry(base_name(name, &scrape.types).to_owned())
                    .or_default();
                if line[name_end..].starts_with('{') {
                    for (label, _, value) in matchers(&line[name_end + 1..]) {
                        entry.entry(label).or_default().insert(value);
                    }
                }
            }
        }
        scrape
    }

    /// The metric a name used in a query stands for: itself, or the histogram whose
    /// `_bucket`, `_sum` or `_count` series it is.
    fn metric<'a>(&self, name: &'a str) -> Option<&'a str> {
        if self.types.contains_key(name) {
            return Some(name);
        }
        let base = base_name(name, &self.types);
        (self.types.get(base).map(String::as_str) == Some("histogram")).then_some(base)
    }

    /// Every label name any metric has, and the target labels.
    fn all_labels(&self) -> BTreeSet<String> {
        self.labels
            .values()
            .flat_map(|labels| labels.keys().cloned())
            .chain(TARGET_LABELS.iter().map(|l| (*l).to_owned()))
            .collect()
    }
}

/// `name` less a histogram series suffix, if `types` says the rest is a histogram.
fn base_name<'a>(name: &'a str, types: &BTreeMap<String, String>) -> &'a str {
    for suffix in ["_bucket", "_sum", "_count"] {
        if let Some(base) = name.strip_suffix(suffix)
            && types.get(base).map(String::as_str) == Some("histogram")
        {
            return base;
        }
    }
    name
}

/// The matchers of a selector or sample, `text` starting just after its `{`: (label, operator,
/// value), up to the closing `}`.
fn matchers(text: &str) -> Vec<(String, String, String)> {
    let mut found = Vec::new();
    let mut chars = text.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ' ' || *c == ',') {
            chars.next();
        }
        if chars.peek().is_none_or(|c| *c == '}') {
            return found;
        }
        let mut label = String::new();
        while let Some(c) = chars.next_if(|c| c.is_ascii_alphanumeric() || *c == '_') {
            label.push(c);
        }
        while chars.next_if_eq(&' ').is_some() {}
        let mut op = String::new();
        while let Some(c) = chars.next_if(|c| matches!(c, '=' | '!' | '~')) {
            op.push(c);
        }
        while chars.next_if_eq(&' ').is_some() {}
        assert_eq!(chars.next(), Some('"'), "a quoted value after {label}{op}");
        let mut value = String::new();
        loop {
            match chars.next() {
                Some('\\') => value.extend(chars.next()),
                Some('"') | None => break,
                Some(c) => value.push(c),
            }
        }
        found.push((label, op, value));
    }
}

/// A metric name used in a query or text, with the matchers of its selector if it has one.
struct Use {
    name: String,
    matchers: Vec<(String, String, String)>,
}

/// Every `stats_tracker_*` name in `text`, with its selector's matchers.
fn uses(text: &str) -> Vec<Use> {
    let is_name_char = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == ':';
    let mut found = Vec::new();
    for (start, _) in text.match_indices("stats_tracker_") {
        if text[..start].chars().next_back().is_some_and(is_name_char) {
            continue;
        }
        let rest = &text[start..];
        let end = rest.find(|c| !is_name_char(c)).unwrap_or(rest.len());
        let name = rest[..end].to_owned();
        // `stats_tracker_.+` and the like: a pattern, not a name.
        if name == "stats_tracker_" {
            continue;
        }
        let matchers = rest[end..]
            .strip_prefix('{')
            .map(matchers)
            .unwrap_or_default();
        found.push(Use { name, matchers });
    }
    found
}

/// Label names in grouping clauses (`by (…)`, `on (…)`, …), legends (`{{label}}`) and alert
/// templates (`$labels.label`) of `text`.
fn grouping_labels(text: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let ident = |s: &str| {
        s.trim()
            .trim_matches(|c: char| !c.is_ascii_alphanumeric() && c != '_')
            .to_owned()
    };
    for keyword in [
        "by",
        "on",
        "without",
        "ignoring",
        "group_left",
        "group_right",
    ] {
        for pattern in [format!("{keyword} ("), format!("{keyword}(")] {
            for (start, _) in text.match_indices(&pattern) {
                let before = text[..start].chars().next_back();
                if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_') {
                    continue;
                }
                let inside = &text[start + pattern.len()..];
                let inside = &inside[..inside.find(')').unwrap_or(inside.len())];
                found.extend(inside.split(',').map(ident).filter(|l| !l.is_empty()));
            }
        }
    }
    for (start, _) in text.match_indices("{{") {
        let inside = &text[start + 2..];
        let inside = &inside[..inside.find("}}").unwrap_or(0)];
        // Legends are `{{label}}`; alert templates `{{ $value }}`, `{{ $labels.x }}`.
        if !inside.contains(['$', ' ', '|']) && !inside.is_empty() {
            found.insert(inside.to_owned());
        }
    }
    for (start, _) in text.match_indices("$labels.") {
        let rest = &text[start + "$labels.".len()..];
        let end = rest
            .find(|c: char| !c.is_ascii_alphanumeric() && c != '_')
            .unwrap_or(rest.len());
        found.insert(rest[..end].to_owned());
    }
    found
}

/// Every string in a JSON document.
fn strings(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::String(s) => out.push(s.clone()),
        Value::Array(items) => items.iter().for_each(|v| strings(v, out)),
        Value::Object(map) => map.values().for_each(|v| strings(v, out)),
        _ => {}
    }
}

/// Every panel of the dashboard, those inside rows included (rows themselves excluded).
fn panels(dashboard: &Value) -> Vec<&Value> {
    let mut found = Vec::new();
    let mut stack: Vec<&Value> = dashboard["panels"]
        .as_array()
        .into_iter()
        .flatten()
        .collect();
    while let Some(panel) = stack.pop() {
        if let Some(inner) = panel["panels"].as_array() {
            stack.extend(inner);
        }
        if panel["type"] != "row" {
            found.push(panel);
        }
    }
    found
}

/// A tracker that has handled a good and a dead-lettered event and answered a few routes, and
/// what its `/metrics` serves (the in-process worker's metrics are there too).
async fn scrape() -> Scrape {
    let redis = TestRedis::start().await;
    let app = TestApp::spawn(&settings(&redis), true).await;
    let mut stream = redis.connection(1).await;
    let game_over = |winner: &str| {
        event(&[
            ("product_id", "exrps"),
            ("type", "game_over"),
            ("winner_id", winner),
            ("loser_id", "B"),
        ])
    };
    push_events(&mut stream, &[game_over("A"), game_over("B")]).await;
    wait_until_drained(&mut stream, Duration::from_secs(10)).await;
    for path in ["/readyz", "/healthz", "/leaderboards/top_ten/exrps"] {
        app.get(path).await;
    }
    // The lag gauges are sampled at most once a second.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    app.get("/stats/exrps/A").await;
    let text = app.get("/metrics").await.text().await.expect("text");
    app.stop().await;
    Scrape::parse(&text)
}

/// What is wrong with the names, labels and label values used in `texts` (of `file`).
fn problems(file: &str, texts: &[String], scrape: &Scrape) -> Vec<String> {
    let all_labels = scrape.all_labels();
    let mut problems = BTreeSet::new();
    for text in texts {
        for used in uses(text) {
            let Some(metric) = scrape.metric(&used.name) else {
                problems.insert(format!("{file}: unknown metric {}", used.name));
                continue;
            };
            let none = BTreeMap::new();
            let labels = scrape.labels.get(metric).unwrap_or(&none);
            for (label, op, value) in &used.matchers {
                if TARGET_LABELS.contains(&label.as_str()) {
                    continue;
                }
                let Some(values) = labels.get(label) else {
                    if !(label == "le" && used.name.ends_with("_bucket")) {
                        problems.insert(format!("{file}: {metric} has no label {label}"));
                    }
                    continue;
                };
                let known = values.contains(value)
                    || (label == "status" && STATUS_CLASSES.contains(&value.as_str()));
                if (op == "=" || op == "!=") && !known {
                    problems.insert(format!(
                        "{file}: {metric}{{{label}{op}\"{value}\"}}: {label} is never {value:?} \
                         (seen: {values:?})"
                    ));
                }
            }
        }
        for label in grouping_labels(text) {
            if !all_labels.contains(&label) && label != "le" {
                problems.insert(format!("{file}: no metric has the label {label}"));
            }
        }
    }
    problems.into_iter().collect()
}

/// Documentation sections named as `README.md § Name` or `RELIABILITY.md § Name` in `text`
/// that do not exist.
fn missing_sections(file: &str, text: &str) -> Vec<String> {
    let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut missing = BTreeSet::new();
    for doc in ["README.md", "RELIABILITY.md"] {
        let headings: BTreeSet<String> = read(doc)
            .lines()
            .filter_map(|line| line.strip_prefix("## ").or(line.strip_prefix("### ")))
            .map(str::to_owned)
            .collect();
        let marker = format!("{doc} § ");
        for (start, _) in text.match_indices(&marker) {
            let rest = &text[start + marker.len()..];
            let end = rest.find([')', ';', ',', '.', '"']).unwrap_or(rest.len());
            let name = rest[..end].trim();
            if !headings.contains(name) {
                missing.insert(format!("{file}: {doc} has no section {name:?}"));
            }
        }
    }
    missing.into_iter().collect()
}

#[tokio::test]
async fn the_dashboard_and_the_alerts_use_only_what_the_tracker_emits() {
    let scrape = scrape().await;
    assert!(
        scrape.types.contains_key("stats_tracker_worker_lease_held")
            && scrape
                .types
                .contains_key("stats_tracker_http_requests_total"),
        "the scrape has the worker's and the server's metrics: {scrape:?}"
    );

    let dashboard: Value = serde_json::from_str(&read(DASHBOARD)).expect("dashboard JSON");
    let mut dashboard_texts = Vec::new();
    strings(&dashboard, &mut dashboard_texts);
    let rules = read(RULES);

    let mut unknown = problems(DASHBOARD, &dashboard_texts, &scrape);
    unknown.extend(problems(RULES, std::slice::from_ref(&rules), &scrape));
    assert!(
        unknown.is_empty(),
        "names, labels or values used in ops/ that /metrics does not serve:\n{}",
        unknown.join("\n")
    );
    // The scan found what the files use (it is not vacuous).
    let used: BTreeSet<String> = dashboard_texts
        .iter()
        .chain(std::iter::once(&rules))
        .flat_map(|text| uses(text))
        .filter_map(|used| scrape.metric(&used.name).map(str::to_owned))
        .collect();
    for metric in [
        "stats_tracker_worker_events_total",
        "stats_tracker_worker_batch_duration_seconds",
        "stats_tracker_http_request_duration_seconds",
        "stats_tracker_worker_rederive_gaps_total",
    ] {
        assert!(used.contains(metric), "{metric} in {used:?}");
    }
}

#[test]
fn the_dashboard_is_parametrised_by_data_source_job_and_instance() {
    let dashboard: Value = serde_json::from_str(&read(DASHBOARD)).expect("dashboard JSON");
    assert!(dashboard["schemaVersion"].as_u64().unwrap_or(0) >= 36);
    let variables = dashboard["templating"]["list"]
        .as_array()
        .expect("variables");
    let variable = |name: &str| {
        variables
            .iter()
            .find(|v| v["name"] == name)
            .unwrap_or_else(|| panic!("a ${name} variable"))
    };
    let datasource = variable("datasource");
    assert_eq!(
        (&datasource["type"], &datasource["query"]),
        (&Value::from("datasource"), &Value::from("prometheus"))
    );
    for name in ["job", "instance"] {
        assert_eq!(variable(name)["datasource"]["uid"], "${datasource}");
    }
    let panels = panels(&dashboard);
    assert!(panels.len() >= 10, "{} panels", panels.len());
    let mut ids = BTreeSet::new();
    for panel in panels {
        let title = &panel["title"];
        assert!(
            ids.insert(panel["id"].as_u64().expect("a numeric id")),
            "{title}: panel ids are unique"
        );
        assert_eq!(panel["datasource"]["uid"], "${datasource}", "{title}");
        let targets = panel["targets"].as_array().expect("targets");
        assert!(!targets.is_empty(), "{title} has queries");
        for target in targets {
            assert_eq!(target["datasource"]["uid"], "${datasource}", "{title}");
            let expr = target["expr"].as_str().expect("expr");
            // Every selector is narrowed to the chosen job and instances.
            let selectors = expr.matches('{').count();
            assert!(selectors > 0, "{title}: {expr}");
            assert_eq!(
                expr.matches(r#"job=~"$job", instance=~"$instance""#)
                    .count(),
                selectors,
                "{title}: {expr}"
            );
        }
    }
}

#[test]
fn every_alert_has_a_duration_a_severity_and_says_what_to_check() {
    let rules = read(RULES);
    let count = |key: &str| {
        rules
            .lines()
            .filter(|line| line.trim_start().starts_with(key))
            .count()
    };
    let alerts = count("- alert: ");
    assert!(alerts >= 9, "{alerts} alerts");
    for key in ["for: ", "severity: ", "summary: ", "description: "] {
        assert_eq!(count(key), alerts, "every alert has {key}");
    }
    for line in rules.lines() {
        if let Some(severity) = line.trim_start().strip_prefix("severity: ") {
            assert!(
                ["info", "warning", "critical"].contains(&severity),
                "{line}"
            );
        }
    }
    // Descriptions send the operator to documentation that exists.
    assert!(rules.contains("RELIABILITY.md § "));
    let mut missing = missing_sections(RULES, &rules);
    let dashboard: Value = serde_json::from_str(&read(DASHBOARD)).expect("dashboard JSON");
    let mut texts = Vec::new();
    strings(&dashboard, &mut texts);
    missing.extend(missing_sections(DASHBOARD, &texts.join("\n")));
    assert!(texts.iter().any(|text| text.contains("README.md § ")));
    assert!(missing.is_empty(), "{}", missing.join("\n"));
}
