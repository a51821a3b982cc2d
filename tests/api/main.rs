//! Integration tests: the tracker against a real, private Redis per test.

mod helpers;
mod traffic;

mod admin;
mod boards;
mod cli;
mod crash;
mod dashboard;
mod dead_letters;
mod durability;
mod faults;
mod fuzz;
mod limits;
mod ops;
mod original;
mod ratings;
mod readme;
mod server;
mod tls;
mod worker;
