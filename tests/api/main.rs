//! Integration tests: the tracker against a real, private Redis per test.

mod helpers;
// Reproducible game traffic, shared with the benchmark (which owns it).
#[path = "../../src/bin/stats-tracker-bench/simulate.rs"]
#[allow(dead_code)]
mod simulate;
mod traffic;

mod admin;
mod boards;
mod cli;
mod cluster;
mod cluster_faults;
mod columns;
mod crash;
mod dashboard;
mod dead_letters;
mod durability;
mod faults;
mod feed;
mod fuzz;
mod history;
mod limits;
mod migrate;
mod moderation;
mod ops;
mod original;
mod pool;
mod ratings;
mod readme;
mod relay;
mod seasons;
mod server;
mod tls;
mod webhooks;
mod worker;
