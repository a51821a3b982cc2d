//! A short-lived cache of top-ten answers. The top ten of a busy board is read far more often
//! than it changes; serving it from memory for a few dozen milliseconds takes the Redis round
//! trip off the hottest route while keeping it practically live.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::core::ids::ProductId;
use crate::leaderboards::query::BoardEntry;

/// Most products cached at once; past it the cache is emptied (products are few in practice,
/// and a flood of unknown ones must not grow memory).
const MAX_PRODUCTS: usize = 10_000;

/// A shared top-ten answer.
pub type TopTen = Arc<Vec<BoardEntry>>;

/// Top-ten answers per product with the time they were read, each valid for `ttl`.
pub struct TopCache {
    ttl: Duration,
    entries: Mutex<HashMap<ProductId, (Instant, TopTen)>>,
}

impl TopCache {
    /// A cache whose answers live `ttl` (zero: never cached).
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// The cached answer for `product`, if still fresh.
    pub fn get(&self, product: &ProductId) -> Option<TopTen> {
        if self.ttl.is_zero() {
            return None;
        }
        let entries = self.entries.lock().ok()?;
        let (stored, entry) = entries.get(product)?;
        (stored.elapsed() < self.ttl).then(|| entry.clone())
    }

    /// Remembers `entry` as the answer for `product`.
    pub fn put(&self, product: ProductId, entry: TopTen) {
        if self.ttl.is_zero() {
            return;
        }
        if let Ok(mut entries) = self.entries.lock() {
            if entries.len() >= MAX_PRODUCTS {
                entries.clear();
            }
            entries.insert(product, (Instant::now(), entry));
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
}
