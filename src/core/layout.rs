//! The store's layout version: which key layout a store holds, the check every process makes
//! before using a store, and stamping an empty store with this release's version.
//!
//! A store without a version key is empty (this release stamps it) or was written before
//! versions were recorded (layout 1). `stats-tracker migrate` (`crate::migrate`) converts
//! older layouts.

use redis::aio::ConnectionLike;

use super::keys::{KeySpace, LAYOUT_VERSION};

/// Why a store cannot be used as it is.
#[derive(Debug, thiserror::Error)]
pub enum LayoutError {
    #[error(
        "the store holds layout version {found}; this release reads and writes version {LAYOUT_VERSION}: stop every stats-tracker process using it and run `stats-tracker migrate` (same settings), then start this release"
    )]
    Older { found: u32 },
    #[error(
        "the store holds layout version {found}, newer than this release's {LAYOUT_VERSION}: run a release that knows it"
    )]
    Newer { found: u32 },
    #[error("the store's layout version {0:?} is not a number (key `{1}`)")]
    Unreadable(String, String),
    #[error("store Redis: {0}")]
    Redis(#[from] redis::RedisError),
}

/// The layout a store holds: `None` for an empty store.
pub async fn stored_version(
    conn: &mut impl ConnectionLike,
    keys: &KeySpace,
) -> Result<Option<u32>, LayoutError> {
    let stored: Option<String> = redis::cmd("GET")
        .arg(keys.layout())
        .query_async(conn)
        .await?;
    if let Some(text) = stored {
        return text
            .parse()
            .map(Some)
            .map_err(|_| LayoutError::Unreadable(text, keys.layout()));
    }
    // Before versions were recorded, every store that was written to has the products' index
    // (written with a product's first effects) or the dead letters' position.
    // Two commands: on a Redis Cluster the two keys live in different hash slots.
    let mut written = false;
    for key in [keys.products(), keys.dead_letters().applied()] {
        written |= redis::cmd("EXISTS")
            .arg(key)
            .query_async::<bool>(conn)
            .await?;
    }
    Ok(written.then_some(1))
}

/// Whether a store of layout `found` (`None`: empty) can be used by this release.
pub fn usable(found: Option<u32>) -> Result<(), LayoutError> {
    match found {
        None | Some(LAYOUT_VERSION) => Ok(()),
        Some(found) if found < LAYOUT_VERSION => Err(LayoutError::Older { found }),
        Some(found) => Err(LayoutError::Newer { found }),
    }
}

/// Checks that the store holds this release's layout, stamping an empty store with it.
pub async fn ensure_current(
    conn: &mut impl ConnectionLike,
    keys: &KeySpace,
) -> Result<(), LayoutError> {
    let found = stored_version(conn, keys).await?;
    usable(found)?;
    if found.is_none() {
        // NX: another process stamping at the same moment writes the same.
        redis::cmd("SET")
            .arg(keys.layout())
            .arg(LAYOUT_VERSION)
            .arg("NX")
            .query_async::<()>(conn)
            .await?;
    }
    Ok(())
}
