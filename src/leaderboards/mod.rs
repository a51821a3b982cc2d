//! Leaderboards: boards and rating systems per game (what moves a player on a board) and
//! reading boards back.

pub mod boards;
pub mod head;
pub mod query;
pub mod rank;
pub mod ratings;
pub mod scoring;
pub mod windows;
