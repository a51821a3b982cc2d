//! The command line: modes, configuration errors, exit codes, help, and the log an operator
//! reads at start-up.

use std::process::Command;
use std::time::Duration;

use crate::helpers::TrackerProcess;

fn tracker() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_stats-tracker"));
    command
        .env_remove("STATS_TRACKER_REDIS_URL")
        .env_remove("GAME_EVENT_STREAM_REDIS_URL")
        .env_remove("STATS_TRACKER_MODE")
        .env_remove("STATS_TRACKER_CONFIG")
        .env_remove("RUST_LOG");
    command
}

/// Fails unless `text` holds `needle` exactly once (every message is printed once).
fn assert_once(text: &str, needle: &str) {
    assert_eq!(
        text.matches(needle).count(),
        1,
        "{needle:?} once in:\n{text}"
    );
}

#[test]
fn unknown_mode_lists_the_valid_ones() {
    let output = tracker()
        .args(["serve", "-m", "staging"])
        .output()
        .expect("run");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    for mode in ["development", "test", "production"] {
        assert!(stderr.contains(mode), "{stderr}");
    }
}

#[test]
fn production_without_redis_urls_names_both_at_once() {
    let output = tracker()
        .args(["worker", "-m", "production"])
        .output()
        .expect("run");
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_once(&stderr, "STATS_TRACKER_REDIS_URL");
    assert_once(&stderr, "GAME_EVENT_STREAM_REDIS_URL");
}

#[test]
fn config_errors_name_the_setting_and_the_file_as_given() {
    let dir = tempfile::tempdir().expect("temporary directory");
    std::fs::write(
        dir.path().join("tracker.toml"),
        "[stream]\nbatch_size = \"lots\"\n",
    )
    .expect("write");
    let output = tracker()
        .current_dir(dir.path())
        .args(["serve", "-c", "tracker.toml"])
        .output()
        .expect("run");
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("`stream.batch_size`"), "{stderr}");
    assert!(stderr.contains("in tracker.toml"), "{stderr}");
    assert!(!stderr.contains("default."), "{stderr}");
    assert_once(&stderr, "batch_size");
}

#[test]
fn games_file_errors_exit_with_3() {
    let output = tracker()
        .args(["serve", "--bind", "127.0.0.1:0"])
        .env("STATS_TRACKER__GAMES__FILE", "no-such-games.toml")
        .output()
        .expect("run");
    assert_eq!(output.status.code(), Some(3));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_once(&stderr, "no-such-games.toml: cannot read it");
}

#[test]
fn help_documents_flags_and_environment() {
    let output = tracker().args(["all", "--help"]).output().expect("run");
    let help = String::from_utf8_lossy(&output.stdout);
    for needle in [
        "--mode",
        "--bind",
        "--metrics-bind",
        "--config",
        "STATS_TRACKER_MODE",
    ] {
        assert!(help.contains(needle), "{needle} missing from:\n{help}");
    }
    let output = tracker().arg("--help").output().expect("run");
    let help = String::from_utf8_lossy(&output.stdout);
    for needle in [
        "STATS_TRACKER_REDIS_URL",
        "GAME_EVENT_STREAM_REDIS_URL",
        "serve",
        "worker",
        "Exit codes",
        "3 games file error",
    ] {
        assert!(help.contains(needle), "{needle} missing from:\n{help}");
    }
}

#[test]
fn port_in_use_fails_start_up_clearly() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().expect("addr").to_string();
    let output = tracker()
        .args(["serve", "--bind", &addr])
        .output()
        .expect("run");
    assert_eq!(output.status.code(), Some(4));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_once(
        &stderr,
        &format!("cannot listen for the HTTP API on {addr}"),
    );
}

#[tokio::test]
async fn start_up_log_tells_where_everything_is_without_secrets() {
    let mut command = tracker();
    command
        .args([
            "all",
            "--bind",
            "127.0.0.1:0",
            "--metrics-bind",
            "127.0.0.1:0",
        ])
        // Nothing listens there: the tracker starts anyway and keeps retrying.
        .env("STATS_TRACKER_REDIS_URL", "redis://:secret@127.0.0.1:1/3")
        .env(
            "GAME_EVENT_STREAM_REDIS_URL",
            "redis://user:secret@127.0.0.1:1/4",
        )
        .env("STATS_TRACKER__LOG__ACCESS", "true");
    let mut tracker = TrackerProcess::spawn(command);
    let api = tracker.api_address();
    tracker.wait_for_line("worker metrics listening", Duration::from_secs(10));
    let starting = tracker.wait_for_line("starting", Duration::from_secs(1));
    assert!(starting.contains("mode=development"), "{starting}");
    assert!(starting.contains("config=none"), "{starting}");
    let settings = tracker.wait_for_line("settings in use", Duration::from_secs(1));
    for field in [
        "games=built-in",
        "store=127.0.0.1:1/3",
        "stream=127.0.0.1:1/4",
    ] {
        assert!(settings.contains(field), "{field} missing from {settings}");
    }

    let response = crate::helpers::http_client()
        .build()
        .expect("http client")
        .get(format!("http://{api}/healthz"))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 200);
    let access = tracker.wait_for_line("route=/healthz", Duration::from_secs(10));
    for field in ["method=GET", "status=200", "duration_ms="] {
        assert!(access.contains(field), "{field} missing from {access}");
    }
    // Let the worker fail to reach its Redis at least once: the error says which one.
    let interrupted = tracker.wait_for_line("worker interrupted", Duration::from_secs(30));
    assert!(
        interrupted.contains("stream Redis") || interrupted.contains("store Redis"),
        "{interrupted}"
    );

    let log = tracker.log.join("\n");
    assert!(!log.contains("secret"), "a password in the log:\n{log}");
    // The log goes to a pipe here, not a terminal: no colour codes.
    assert!(!log.contains('\u{1b}'), "ANSI escapes in the log:\n{log}");
}

/// The number of keys in each of the store's and the stream's databases.
async fn keys_in(redis: &crate::helpers::TestRedis) -> (u64, u64) {
    let mut counts = [0, 0];
    for (db, count) in counts.iter_mut().enumerate() {
        *count = redis::cmd("DBSIZE")
            .query_async(&mut redis.connection(db as u8).await)
            .await
            .expect("DBSIZE");
    }
    (counts[0], counts[1])
}

#[tokio::test]
async fn start_up_writes_nothing_to_the_store_before_the_worker_runs() {
    // A server alone, and a start that cannot bind, leave an empty store empty: the layout
    // check only reads (the worker stamps an empty store before its first write).
    let redis = crate::helpers::TestRedis::start().await;
    let with_redis = |subcommand: &str, bind: &str| {
        let mut command = tracker();
        command
            .args([subcommand, "--bind", bind])
            .env("STATS_TRACKER_REDIS_URL", redis.url(0))
            .env("GAME_EVENT_STREAM_REDIS_URL", redis.url(1));
        command
    };
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().expect("addr").to_string();
    let output = with_redis("serve", &addr).output().expect("run");
    assert_eq!(output.status.code(), Some(4));
    let mut server = TrackerProcess::spawn(with_redis("serve", "127.0.0.1:0"));
    let api = server.api_address();
    let ready = crate::helpers::http_client()
        .build()
        .expect("http client")
        .get(format!("http://{api}/readyz"))
        .send()
        .await
        .expect("request");
    assert_eq!(ready.status(), 200);
    drop(server);
    assert_eq!(keys_in(&redis).await, (0, 0));
}
