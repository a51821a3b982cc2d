//! The README's examples, run as written: every `curl`/`redis-cli` block of README.md against
//! a tracker started the way `scripts/run` starts it (development mode,
//! `config/development.toml`), on a private Redis and a free port instead of 6379 and 5000.
//! Each `# ` line after a command is the output the README promises; `…` in it stands for
//! any text (ids and times that differ from run to run).

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::helpers::{TestRedis, TrackerProcess, group_backlog, wait_until_drained};

/// One command of a README block, with the output the README shows for it (if any).
#[derive(Debug)]
struct Example {
    command: String,
    expected: Option<String>,
}

/// The examples of every ```sh block made only of `curl` and `redis-cli` commands (the others
/// start scripts or cargo).
fn examples(readme: &str) -> Vec<Example> {
    let mut examples = Vec::new();
    let mut block: Option<Vec<&str>> = None;
    for line in readme.lines() {
        let fence = line.trim_end();
        match block.take() {
            None => {
                if fence == "```sh" {
                    block = Some(Vec::new());
                }
            }
            Some(lines) if fence == "```" => {
                let parsed = parse_block(&lines);
                if !parsed.is_empty()
                    && parsed.iter().all(|example| {
                        example.command.starts_with("curl ")
                            || example.command.starts_with("redis-cli ")
                    })
                {
                    examples.extend(parsed);
                }
            }
            Some(mut lines) => {
                lines.push(line);
                block = Some(lines);
            }
        }
    }
    examples
}

fn parse_block(lines: &[&str]) -> Vec<Example> {
    let mut examples: Vec<Example> = Vec::new();
    let mut continued = false;
    for line in lines {
        if continued {
            if let Some(example) = examples.last_mut() {
                example.command.push('\n');
                example.command.push_str(line);
            }
            continued = line.ends_with('\\');
        } else if let Some(output) = line.strip_prefix("# ") {
            let Some(example) = examples.last_mut() else {
                continue;
            };
            let expected = example.expected.get_or_insert_with(String::new);
            if !expected.is_empty() {
                expected.push('\n');
            }
            expected.push_str(output);
        } else if !line.trim().is_empty() {
            examples.push(Example {
                command: line.to_string(),
                expected: None,
            });
            continued = line.ends_with('\\');
        }
    }
    examples
}

/// Whether `actual` is `expected`, each `…` of which stands for any text.
fn matches(expected: &str, actual: &str) -> bool {
    let mut parts = expected.split('…');
    let first = parts.next().unwrap_or_default();
    let Some(mut rest) = actual.strip_prefix(first) else {
        return false;
    };
    let parts: Vec<&str> = parts.collect();
    for (index, part) in parts.iter().enumerate() {
        if index + 1 == parts.len() {
            return rest.ends_with(part);
        }
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    rest.is_empty()
}

#[test]
fn wildcards_match_any_text() {
    assert!(matches("abc", "abc"));
    assert!(!matches("abc", "abcd"));
    assert!(matches(r#"{"ids":["…"]}"#, r#"{"ids":["1-0"]}"#));
    assert!(matches("a…c…e", "abcde"));
    assert!(!matches("a…c…e", "abcdf"));
}

#[tokio::test]
async fn readme_examples_answer_what_the_readme_says() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(root.join("README.md")).expect("README.md");
    let examples = examples(&readme);
    // The "Try it" block and the HTTP API block, at least.
    assert!(
        examples.len() >= 15,
        "too few examples found: {examples:#?}"
    );

    let redis = TestRedis::start().await;
    let mut command = Command::new(env!("CARGO_BIN_EXE_stats-tracker"));
    command
        .current_dir(root)
        .args([
            "all",
            "--bind",
            "127.0.0.1:0",
            "--metrics-bind",
            "127.0.0.1:0",
        ])
        .env_remove("STATS_TRACKER_MODE")
        .env_remove("RUST_LOG")
        // As scripts/run sets it in development mode, with the private Redis instead.
        .env("STATS_TRACKER_CONFIG", "config/development.toml")
        .env("STATS_TRACKER_REDIS_URL", redis.url(0))
        .env("GAME_EVENT_STREAM_REDIS_URL", redis.url(0));
    let mut tracker = TrackerProcess::spawn(command);
    let api = tracker.api_address();
    let mut stream = redis.connection(0).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while group_backlog(&mut stream).await.is_none() {
        assert!(
            Instant::now() < deadline,
            "the worker did not create its group"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let socket = redis.socket();
    let mut failures = Vec::new();
    for example in &examples {
        let command = example
            .command
            .replace("localhost:5000", &api.to_string())
            .replacen(
                "redis-cli ",
                &format!("redis-cli -s {} ", socket.display()),
                1,
            );
        let output = tokio::process::Command::new("bash")
            .args(["-c", &command])
            .output()
            .await
            .expect("run bash");
        let actual = String::from_utf8_lossy(&output.stdout)
            .trim_end()
            .to_owned();
        if !output.status.success() {
            failures.push(format!(
                "{}\n  failed: {}",
                example.command,
                String::from_utf8_lossy(&output.stderr)
            ));
        } else if let Some(expected) = &example.expected
            && !matches(expected, &actual)
        {
            failures.push(format!(
                "{}\n  README: {expected}\n  actual: {actual}",
                example.command
            ));
        }
        // Someone trying the README types slower than this: let the worker apply what was
        // appended and the 100 ms answer caches of config/development.toml expire.
        wait_until_drained(&mut stream, Duration::from_secs(30)).await;
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(
        failures.is_empty(),
        "README examples that do not answer what the README says:\n\n{}",
        failures.join("\n\n")
    );
}
