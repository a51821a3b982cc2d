//! Webhooks: every entry of the products' change feeds POSTed to configured URLs, signed,
//! at least once.
//!
//! Each webhook reads each product's feed (`P:{<product>}:feed`) through a consumer group of
//! its own (`webhook:<name>`), so it is a reader like any other and never touches what the
//! worker writes. An entry is acknowledged in the group only after the URL answered 2xx; a
//! failed delivery is tried again with back-off (doubling from half a second to a minute),
//! and the product's later entries wait for it. Entries a stopped process had read but not
//! delivered are taken over by another (`XAUTOCLAIM` after a minute). A crash between the
//! delivery and the acknowledgement delivers an entry again: receivers drop repeats by the
//! `Idempotency-Key` header.
//!
//! The deliveries run concurrently with the worker's partitions (a future of the worker's
//! own, with its own Redis connection): a slow or dead URL delays only its own webhook.
//! Order holds within one process; several processes, or a restart that leaves entries to
//! the minute-long takeover, can deliver a product's entries out of order.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use sha2::Sha256;
use tokio_util::sync::CancellationToken;

use crate::core::config::WebhookSettings;
use crate::core::ids::ProductId;
use crate::core::store::{Store, StoreError};

/// How often each webhook looks for new feed entries.
const POLL: Duration = Duration::from_millis(500);
/// Entries read per product and round.
const BATCH: usize = 100;
/// How long an entry read by another consumer stays its own before this one takes it over.
const CLAIM_AFTER: Duration = Duration::from_secs(60);
const BACKOFF_MIN: Duration = Duration::from_millis(500);
const BACKOFF_MAX: Duration = Duration::from_secs(60);

/// The header carrying `sha256=<hex HMAC-SHA256 of the body, keyed by the webhook's secret>`.
pub const SIGNATURE_HEADER: &str = "x-stats-tracker-signature";
/// The header naming the delivery: `<product>/<feed entry id>`, the same on every attempt.
pub const IDEMPOTENCY_HEADER: &str = "idempotency-key";

/// Delivers the change feeds to one webhook.
pub struct Deliverer {
    store: Store,
    hook: WebhookSettings,
    client: reqwest::Client,
    /// The consumer group on every feed.
    group: String,
    /// This process's consumer in it.
    consumer: String,
}

/// A product's delivery state: where it waits after a failure, and which reads are due.
#[derive(Default)]
struct Backoff {
    next_attempt: Option<Instant>,
    delay: Duration,
    /// Entries this consumer read may be undelivered (at start, after a failure): read them
    /// first. Otherwise only new entries are read, one command per product and round.
    own_pending_checked: bool,
    /// When entries other consumers left were last looked for.
    claimed_at: Option<Instant>,
}

impl Deliverer {
    pub fn new(store: Store, hook: WebhookSettings, consumer: &str) -> anyhow::Result<Self> {
        // rustls' one compiled-in provider (ring); an installed one stays.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::builder()
            .timeout(Duration::from_millis(hook.timeout_ms))
            // A redirect would turn the POST into a GET without the entry: not a delivery.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("stats-tracker/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self {
            group: format!("webhook:{}", hook.name),
            consumer: consumer.to_owned(),
            store,
            hook,
            client,
        })
    }

    /// Delivers until `shutdown`, surviving Redis outages and failing URLs.
    pub async fn run(&self, shutdown: CancellationToken) {
        tracing::info!(
            webhook = self.hook.name,
            url = self.hook.url,
            "webhook started"
        );
        let mut grouped: HashSet<ProductId> = HashSet::new();
        let mut backoff: HashMap<ProductId, Backoff> = HashMap::new();
        while !shutdown.is_cancelled() {
            if let Err(error) = self.round(&mut grouped, &mut backoff, &shutdown).await {
                tracing::warn!(webhook = self.hook.name, %error, "webhook: store Redis unavailable");
                grouped.clear();
            }
            tokio::select! {
                _ = tokio::time::sleep(POLL) => {}
                _ = shutdown.cancelled() => {}
            }
        }
    }

    /// One pass over the products' feeds.
    async fn round(
        &self,
        grouped: &mut HashSet<ProductId>,
        backoff: &mut HashMap<ProductId, Backoff>,
        shutdown: &CancellationToken,
    ) -> Result<(), StoreError> {
        for product in self.products().await? {
            if shutdown.is_cancelled() {
                break;
            }
            let wait = backoff.entry(product.clone()).or_default();
            if wait.next_attempt.is_some_and(|at| Instant::now() < at) {
                continue;
            }
            if grouped.insert(product.clone()) {
                self.create_group(&product).await?;
            }
            let entries = self.entries(&product, wait).await?;
            for (id, fields) in entries {
                if shutdown.is_cancelled() {
                    break;
                }
                let acknowledge = redis::cmd("XACK")
                    .arg(self.store.keys().product(&product).feed())
                    .arg(&self.group)
                    .arg(&id)
                    .clone();
                if fields.is_empty() {
                    // Trimmed from the feed (`worker.feed_max_entries`) while it waited: its
                    // content is gone; acknowledged so that the next ones can go.
                    tracing::warn!(
                        webhook = self.hook.name,
                        %product,
                        entry = id,
                        "a feed entry was trimmed before it could be delivered; skipped"
                    );
                    self.store.query::<u64>(&acknowledge).await?;
                    continue;
                }
                let outcome = tokio::select! {
                    outcome = self.deliver(&product, &id, &fields) => outcome,
                    // Stopping: undelivered, it stays pending for the next start.
                    _ = shutdown.cancelled() => break,
                };
                match outcome {
                    Ok(()) => {
                        metrics::counter!("stats_tracker_worker_webhook_deliveries_total")
                            .increment(1);
                        self.store.query::<u64>(&acknowledge).await?;
                        wait.next_attempt = None;
                        wait.delay = Duration::ZERO;
                    }
                    Err(error) => {
                        metrics::counter!("stats_tracker_worker_webhook_failures_total")
                            .increment(1);
                        wait.delay = (wait.delay * 2).clamp(BACKOFF_MIN, BACKOFF_MAX);
                        wait.own_pending_checked = false;
                        wait.next_attempt = Some(Instant::now() + wait.delay);
                        tracing::warn!(
                            webhook = self.hook.name,
                            %product,
                            entry = id,
                            retry_in_ms = wait.delay.as_millis() as u64,
                            "webhook delivery failed: {error}"
                        );
                        // Later entries of the product wait: receivers see them in order.
                        break;
                    }
                }
            }
        }
        Ok(())
    }

    /// The products this webhook serves that the worker has seen.
    async fn products(&self) -> Result<Vec<ProductId>, StoreError> {
        let seen: Vec<String> = self
            .store
            .query(redis::cmd("SMEMBERS").arg(self.store.keys().products()))
            .await?;
        let mut products: Vec<ProductId> = seen
            .iter()
            .filter(|id| self.hook.products.is_empty() || self.hook.products.contains(id))
            .filter_map(|id| ProductId::parse(id).ok())
            .collect();
        products.sort();
        Ok(products)
    }

    /// The webhook's consumer group on the product's feed, from its first entry.
    async fn create_group(&self, product: &ProductId) -> Result<(), StoreError> {
        let created = self
            .store
            .query::<()>(
                redis::cmd("XGROUP")
                    .arg("CREATE")
                    .arg(self.store.keys().product(product).feed())
                    .arg(&self.group)
                    .arg("0")
                    .arg("MKSTREAM"),
            )
            .await;
        match created {
            Err(error) if error.to_string().contains("BUSYGROUP") => Ok(()),
            other => other,
        }
    }

    /// The next entries to deliver: those this consumer read and has not delivered, else
    /// those another consumer left unacknowledged for a while (looked for once a
    /// `CLAIM_AFTER`), else new ones.
    async fn entries(
        &self,
        product: &ProductId,
        state: &mut Backoff,
    ) -> Result<Vec<(String, Vec<(String, String)>)>, StoreError> {
        let feed = self.store.keys().product(product).feed();
        let read = |from: &str| {
            let mut cmd = redis::cmd("XREADGROUP");
            cmd.arg("GROUP")
                .arg(&self.group)
                .arg(&self.consumer)
                .arg("COUNT")
                .arg(BATCH)
                .arg("STREAMS")
                .arg(&feed)
                .arg(from);
            cmd
        };
        if !state.own_pending_checked {
            let own = stream_entries(self.store.query(&read("0")).await?);
            if !own.is_empty() {
                return Ok(own);
            }
            state.own_pending_checked = true;
        }
        if state
            .claimed_at
            .is_some_and(|at| at.elapsed() < CLAIM_AFTER)
        {
            return Ok(stream_entries(self.store.query(&read(">")).await?));
        }
        state.claimed_at = Some(Instant::now());
        let claimed: redis::Value = self
            .store
            .query(
                redis::cmd("XAUTOCLAIM")
                    .arg(&feed)
                    .arg(&self.group)
                    .arg(&self.consumer)
                    .arg(CLAIM_AFTER.as_millis() as u64)
                    .arg("0-0")
                    .arg("COUNT")
                    .arg(BATCH),
            )
            .await?;
        let claimed = match claimed {
            redis::Value::Array(mut parts) if parts.len() >= 2 => entry_list(parts.swap_remove(1)),
            _ => Vec::new(),
        };
        if !claimed.is_empty() {
            return Ok(claimed);
        }
        Ok(stream_entries(self.store.query(&read(">")).await?))
    }

    /// POSTs one entry; `Ok` when the URL answered 2xx.
    async fn deliver(
        &self,
        product: &ProductId,
        id: &str,
        fields: &[(String, String)],
    ) -> Result<(), String> {
        let body = delivery_body(product, id, fields);
        let response = self
            .client
            .post(&self.hook.url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(
                SIGNATURE_HEADER,
                signature(self.hook.secret.expose(), body.as_bytes()),
            )
            .header(IDEMPOTENCY_HEADER, format!("{product}/{id}"))
            .body(body)
            .send()
            .await
            .map_err(|error| error.to_string())?;
        if response.status().is_success() {
            Ok(())
        } else {
            Err(format!("the URL answered {}", response.status()))
        }
    }
}

/// The JSON a webhook gets for one feed entry: `product_id`, `id` (the feed entry's) and the
/// entry's fields.
pub fn delivery_body(product: &ProductId, id: &str, fields: &[(String, String)]) -> String {
    let mut body = serde_json::Map::new();
    body.insert("product_id".into(), product.as_str().into());
    body.insert("id".into(), id.into());
    for (name, value) in fields {
        body.insert(name.clone(), value.clone().into());
    }
    serde_json::Value::Object(body).to_string()
}

/// `sha256=<hex>`: the HMAC-SHA256 of `body` keyed by `secret`.
pub fn signature(secret: &str, body: &[u8]) -> String {
    // HMAC takes a key of any length.
    let mut mac = match Hmac::<Sha256>::new_from_slice(secret.as_bytes()) {
        Ok(mac) => mac,
        Err(_) => return String::new(),
    };
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// The entries of an `XREADGROUP` reply of one stream (nil: none).
fn stream_entries(reply: redis::Value) -> Vec<(String, Vec<(String, String)>)> {
    match reply {
        redis::Value::Array(streams) => streams
            .into_iter()
            .flat_map(|stream| match stream {
                redis::Value::Array(mut parts) if parts.len() == 2 => entry_list(parts.remove(1)),
                _ => Vec::new(),
            })
            .collect(),
        redis::Value::Map(streams) => streams
            .into_iter()
            .flat_map(|(_, entries)| entry_list(entries))
            .collect(),
        _ => Vec::new(),
    }
}

/// `[[id, [field, value, …]], …]` as (id, fields); an entry trimmed from the stream while
/// pending comes with no fields.
fn entry_list(entries: redis::Value) -> Vec<(String, Vec<(String, String)>)> {
    let redis::Value::Array(entries) = entries else {
        return Vec::new();
    };
    entries
        .into_iter()
        .filter_map(|entry| {
            let (id, fields): (String, Vec<(String, String)>) =
                redis::FromRedisValue::from_redis_value(entry).ok()?;
            Some((id, fields))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_are_hmac_sha256_of_the_body() {
        // RFC 4231, test case 2.
        assert_eq!(
            signature("Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn bodies_carry_the_product_the_id_and_the_fields() {
        let product = ProductId::parse("exrps").unwrap();
        let body = delivery_body(
            &product,
            "1-0",
            &[
                ("type".into(), "overtaken".into()),
                ("by".into(), "B".into()),
            ],
        );
        assert_eq!(
            body,
            r#"{"product_id":"exrps","id":"1-0","type":"overtaken","by":"B"}"#
        );
    }
}
