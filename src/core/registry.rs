//! A per-product handler registry with a default for products that have no handler of their
//! own. Used for both scoring (`leaderboards::scoring`) and stats (`player_stats::handlers`).

use std::collections::HashMap;
use std::sync::Arc;

use super::ids::ProductId;

/// Handlers keyed by product id, falling back to a default.
pub struct Registry<H: ?Sized> {
    by_product: HashMap<ProductId, Arc<H>>,
    default: Arc<H>,
}

impl<H: ?Sized> Registry<H> {
    pub fn new(default: Arc<H>) -> Self {
        Self {
            by_product: HashMap::new(),
            default,
        }
    }

    /// Registers `handler` for `product`, replacing any earlier one.
    pub fn register(&mut self, product: ProductId, handler: Arc<H>) -> &mut Self {
        self.by_product.insert(product, handler);
        self
    }

    /// The product's own handler, or the default.
    pub fn get(&self, product: &ProductId) -> &H {
        self.by_product.get(product).unwrap_or(&self.default)
    }
}
