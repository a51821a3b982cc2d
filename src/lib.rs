//! stats-tracker: turns the event stream of multiplayer game servers into leaderboards and
//! per-player statistics, and serves them over HTTP.
//!
//! Layout (see ARCHITECTURE.md for data flow and invariants):
//!
//! - [`admin`] — erasing a player, resetting a board;
//! - [`dead_letters`] — the dead-letter stream as an operator tool: listing, re-driving;
//! - [`core`] — configuration, ids, the event and effect models, key layout, store access,
//!   metrics plumbing;
//! - [`games`] — the games file: boards and stats rules per product;
//! - [`history`] — the tracker's own history of applied entries: rebuild, voids, erasure,
//!   boards as of a past moment, segment files;
//! - [`leaderboards`] — scoring handlers and board queries;
//! - [`moderation`] — hiding players from a product's boards, un-hiding them, the audit trail;
//! - [`player_stats`] — stats handlers and stats queries;
//! - [`relay`] — `stats-tracker relay`: the single stream's entries moved into the partitions;
//! - [`workers`] — the stream worker that applies events exactly once;
//! - [`webhooks`] — the change feeds POSTed to configured URLs, signed, at least once;
//! - [`server`] — the HTTP API;
//! - [`startup`] — wiring it together for the `serve`, `worker`, `all`, `migrate` and `relay`
//!   commands;
//! - [`telemetry`] — logging.

pub mod admin;
pub mod core;
pub mod dead_letters;
pub mod games;
pub mod history;
pub mod leaderboards;
pub mod migrate;
pub mod moderation;
pub mod player_stats;
pub mod relay;
pub mod server;
pub mod startup;
pub mod telemetry;
pub mod webhooks;
pub mod workers;
