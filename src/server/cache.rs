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

/// Refreshes that may run at once, per cache (keys hash onto them).
const REFRESH_LANES: usize = 16;

/// Longest a request waits for another one's refresh before reading for itself (a refresh
/// normally takes a millisecond or two; this bounds the wait when Redis is slow or failing).
const REFRESH_WAIT: Duration = Duration::from_millis(50);

/// Values per key with the time they were read, each valid for `ttl`.
pub struct TtlCache<K, V> {
    ttl: Duration,
    /// Most values held; past it expired ones are dropped, then all if still full (a flood
    /// of unknown keys must not grow memory).
    max_entries: usize,
    entries: Mutex<HashMap<K, (Instant, Arc<V>)>>,
    /// When a value expires under load, every waiting request would read it again at once;
    /// one refresh per key (per lane) runs instead, and the others take its result.
    refreshing: [tokio::sync::Mutex<()>; REFRESH_LANES],
}

/// Most top-ten answers held (ten rows each: products are few in practice).
pub const MAX_TOP_TEN_ANSWERS: usize = 10_000;

/// Rows all cached board heads hold together, about 150 bytes each (~15 MiB).
const MAX_HEAD_ROWS: u64 = 100_000;

/// Most board heads held when each has `rows` rows.
pub fn head_cache_entries(rows: u64) -> usize {
    usize::try_from(MAX_HEAD_ROWS / rows.max(1)).unwrap_or(1)
}

/// Top-ten answers per product.
pub type TopCache = TtlCache<ProductId, Vec<BoardEntry>>;

/// Board heads per board (by the key of its rank index).
pub type HeadCache = TtlCache<String, Head>;

impl<K: Hash + Eq, V> TtlCache<K, V> {
    /// A cache of at most `max_entries` values, each living `ttl` (zero: never cached).
    pub fn new(ttl: Duration, max_entries: usize) -> Self {
        Self {
            ttl,
            max_entries: max_entries.max(1),
            entries: Mutex::new(HashMap::new()),
            refreshing: std::array::from_fn(|_| tokio::sync::Mutex::new(())),
        }
    }

    /// The cached value for `key` if fresh, else the value `fetch` reads (then cached). While
    /// one caller fetches a key, others asking for it wait (up to [`REFRESH_WAIT`]) and take
    /// its value.
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
        // Past the wait (a failing or slow refresh), read without the lane.
        let _refreshing = tokio::time::timeout(REFRESH_WAIT, self.refreshing[lane].lock())
            .await
            .ok();
        // Someone else may have refreshed it while this one waited.
        if let Some(value) = self.get(&key) {
            return Ok(value);
        }
        // Aged from when it was asked for: it reflects the store no earlier than that.
        let asked = Instant::now();
        let value = Arc::new(fetch.await?);
        self.put_read_at(key, value.clone(), asked);
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

    /// Remembers `value` for `key`, read now.
    #[cfg(test)]
    fn put(&self, key: K, value: Arc<V>) {
        self.put_read_at(key, value, Instant::now());
    }

    fn put_read_at(&self, key: K, value: Arc<V>, read_at: Instant) {
        if self.ttl.is_zero() {
            return;
        }
        if let Ok(mut entries) = self.entries.lock() {
            if entries.len() >= self.max_entries {
                let ttl = self.ttl;
                entries.retain(|_, (stored, _)| stored.elapsed() < ttl);
            }
            if entries.len() >= self.max_entries {
                entries.clear();
            }
            entries.insert(key, (read_at, value));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_expire_and_zero_disables() {
        let product = ProductId::parse("p").unwrap();
        let cache = TopCache::new(Duration::from_millis(30), 10);
        assert!(cache.get(&product).is_none());
        cache.put(product.clone(), Arc::new(Vec::new()));
        assert!(cache.get(&product).is_some());
        std::thread::sleep(Duration::from_millis(40));
        assert!(cache.get(&product).is_none());
        let off = TopCache::new(Duration::ZERO, 10);
        off.put(product.clone(), Arc::new(Vec::new()));
        assert!(off.get(&product).is_none());
    }

    #[test]
    fn a_full_cache_drops_expired_values_first() {
        let cache: TtlCache<u32, u32> = TtlCache::new(Duration::from_millis(30), 2);
        cache.put(1, Arc::new(1));
        std::thread::sleep(Duration::from_millis(40));
        cache.put(2, Arc::new(2));
        cache.put(3, Arc::new(3)); // full: 1 has expired and goes, 2 stays
        assert_eq!(cache.get(&2).as_deref(), Some(&2));
        assert_eq!(cache.get(&3).as_deref(), Some(&3));
        cache.put(4, Arc::new(4)); // full of fresh values: all go
        assert_eq!(cache.get(&2), None);
        assert_eq!(cache.get(&4).as_deref(), Some(&4));
    }

    #[tokio::test]
    async fn an_expired_value_is_read_once_by_concurrent_callers() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let cache: TtlCache<&str, usize> = TtlCache::new(Duration::from_secs(60), 10);
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
