//! Low-level building blocks shared by every part: configuration, ids, the event model, the
//! effect model, the Redis key layout, store access and metrics plumbing.

pub mod config;
pub mod effects;
pub mod event;
pub mod ids;
pub mod keys;
pub mod layout;
pub mod metrics;
pub mod partition;
pub mod registry;
pub mod store;
pub mod validation;
