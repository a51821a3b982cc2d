//! Player statistics: per-game stats handlers (which counters an event moves) and reading a
//! player's stats back.

pub mod handlers;
pub mod query;
