//! Leaderboards: per-game scoring (what moves a player on a board) and reading boards back.

pub mod query;
pub mod scoring;
