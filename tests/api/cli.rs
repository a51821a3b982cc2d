//! The command line: modes, configuration errors, help.

use std::process::Command;

fn tracker() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_stats-tracker"));
    command
        .env_remove("STATS_TRACKER_REDIS_URL")
        .env_remove("GAME_EVENT_STREAM_REDIS_URL")
        .env_remove("STATS_TRACKER_MODE")
        .env_remove("STATS_TRACKER_CONFIG");
    command
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
fn production_without_redis_urls_refuses_to_start() {
    let output = tracker()
        .args(["worker", "-m", "production"])
        .output()
        .expect("run");
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("STATS_TRACKER_REDIS_URL"), "{stderr}");
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
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains(&addr), "{stderr}");
}
