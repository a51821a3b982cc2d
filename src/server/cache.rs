//! Short-lived caches of the hottest reads: top-ten answers per product, and the head (best
//! rows) of each board for pages. The top of a busy board is read far more often than it
//! changes; serving it from memory for a few dozen milliseconds takes the Redis round trip off
//! the hottest routes while keeping them practically live.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::core::ids::ProductId;
use crate::leaderboards::head::Head;
use crate::leaderboards::query::BoardEntry;

/// Most answers cached at once; past it the cache is emptied (products and boards are few in
/// practice, and a flood of unknown ones must not grow memory).
const MAX_ENTRIES: usize = 10_000;

/// Refreshes that may run at once, per cache (keys hash onto them).
const REFRESH_LANES: usize = 16;

/// Values per key with the time they were read, each valid for `ttl`.
pub struct TtlCache<K, V> {
    ttl: Duration,
    entries: Mutex<HashMap<K, (Instant, Arc<V>)>>,
    /// When a value expires under load, every waiting request would read it again at once;
    /// one refresh per key (per lane) runs instead, and the others take its result.
    refreshing: [tokio::sync::Mutex<()>; REFRESH_LANES],
}

/// Top-ten answers per product.
pub type TopCache = TtlCache<ProductId, Vec<BoardEntry>>;

/// Board heads per board (by the key of its rank index).
pub type HeadCache = TtlCache<String, Head>;

impl<K: Hash + Eq, V> TtlCache<K, V> {
    /// A cache whose values live `ttl` (zero: never cached).
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            entries: Mutex::new(HashMap::new()),
            refreshing: std::array::from_fn(|_| tokio::sync::Mutex::new(())),
        }
    }

    /// The cached value for `key` if fresh, else the value `fetch` reads (then cached). While
    /// one caller fetches a key, others asking for it wait and take its value.
    pub async fn get_or_fetch<E, F>(&self, key: K, fetch: F) -> Result<Arc<V>, E>
    where
        F: Future<Output = Result<V, E>>,
    {
        if self.ttl.is_zero() {
            return fetch.await.map(Arc::new);
        }
        if let Some(value) = self.get(&key) {
            return Ok(value);
        }
        let lane = {
            let mut hasher = std::hash::DefaultHasher::new();
            key.hash(&mut hasher);
            hasher.finish() as usize % REFRESH_LANES
        };
        let _refreshing = self.refreshing[lane].lock().await;
        // Someone else may have refreshed it while this one waited.
        if let Some(value) = self.get(&key) {
            return Ok(value);
        }
        let value = Arc::new(fetch.await?);
        self.put(key, value.clone());
        Ok(value)
    }

    /// Whether values are kept at all.
    pub fn enabled(&self) -> bool {
        !self.ttl.is_zero()
    }

    /// The cached value for `key`, if still fresh.
    pub fn get<Q>(&self, key: &Q) -> Option<Arc<V>>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        if self.ttl.is_zero() {
            return None;
        }
        let entries = self.entries.lock().ok()?;
        let (stored, value) = entries.get(key)?;
        (stored.elapsed() < self.ttl).then(|| value.clone())
    }

    /// Remembers `value` for `key`.
    pub fn put(&self, key: K, value: Arc<V>) {
        if self.ttl.is_zero() {
            return;
        }
        if let Ok(mut entries) = self.entries.lock() {
            if entries.len() >= MAX_ENTRIES {
                entries.clear();
            }
            entries.insert(key, (Instant::now(), value));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_expire_and_zero_disables() {
        let product = ProductId::parse("p").unwrap();
        let cache = TopCache::new(Duration::from_millis(30));
        assert!(cache.get(&product).is_none());
        cache.put(product.clone(), Arc::new(Vec::new()));
        assert!(cache.get(&product).is_some());
        std::thread::sleep(Duration::from_millis(40));
        assert!(cache.get(&product).is_none());
        let off = TopCache::new(Duration::ZERO);
        off.put(product.clone(), Arc::new(Vec::new()));
        assert!(off.get(&product).is_none());
    }

    #[tokio::test]
    async fn an_expired_value_is_read_once_by_concurrent_callers() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let cache: TtlCache<&str, usize> = TtlCache::new(Duration::from_secs(60));
        let reads = AtomicUsize::new(0);
        let fetch = || async {
            reads.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(20)).await;
            Ok::<_, ()>(7)
        };
        let callers = (0..10).map(|_| cache.get_or_fetch("board", fetch()));
        let values = futures::future::join_all(callers).await;
        assert!(values.iter().all(|value| value.as_deref() == Ok(&7)));
        assert_eq!(reads.load(Ordering::SeqCst), 1);
        // Another key is read on its own.
        assert_eq!(
            cache.get_or_fetch("other", fetch()).await.as_deref(),
            Ok(&7)
        );
        assert_eq!(reads.load(Ordering::SeqCst), 2);
    }
}
