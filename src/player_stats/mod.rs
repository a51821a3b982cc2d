//! Player statistics: per-game stats rules and handlers (which stats an event moves) and
//! reading a player's stats back.

pub mod handlers;
pub mod query;
pub mod rules;
