//! Boards as they stood at a past moment: the product's history up to that stream id is
//! replayed (with the games file as it is now, voids left out) into a scratch copy of the
//! product (`P:{<product>}:~asof:<process token>`, same hash slot), the page is read from
//! there, and the copy is deleted. The cost is one replay of the entries up to the moment,
//! bounded by `history.as_of_max_entries`; one such read runs at a time per process.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Mutex;

use super::rebuild::{Progress, RebuildError, Replay};
use crate::core::config::{DeadLetterRetention, Settings};
use crate::core::ids::ProductId;
use crate::core::keys::{AS_OF_SUFFIX, PartitionKeys, escape_glob};
use crate::core::store::{Store, StoreError};
use crate::games::Games;
use crate::workers::commit::Committer;
use crate::workers::plan::{Known, Rules};

/// Replays of one answer at most, when admin changes keep landing during them.
const MAX_REPLAYS: u32 = 3;

/// Why a board cannot be read as of a moment.
#[derive(Debug, thiserror::Error)]
pub enum AsOfError {
    /// The history cannot tell (it misses entries before the moment).
    #[error("{0}")]
    Incomplete(String),
    /// More entries to replay than `history.as_of_max_entries`.
    #[error(
        "reading product {product:?} as of {until} needs replaying more than {max} entries \
         (history.as_of_max_entries)"
    )]
    TooCostly {
        product: String,
        until: String,
        max: u64,
    },
    #[error("store Redis: {0}")]
    Store(#[from] StoreError),
    #[error("replaying the history: {0}")]
    Replay(String),
}

/// Computes copies of products as of past moments.
pub struct AsOf {
    store: Store,
    committer: Arc<Committer>,
    rules: Rules,
    /// This process's copy suffix (`:~asof:<token>`).
    suffix: String,
    segments: Option<PathBuf>,
    max_entries: u64,
    games: Arc<Games>,
    /// One copy at a time: they share the suffix.
    running: Arc<Mutex<()>>,
}

/// A product's copy as of a moment: read it through `keys`, then [`AsOf::discard`] it.
pub struct Copy {
    pub keys: PartitionKeys,
    /// The live product's keys, to rebase board keys from (`BoardKeys::rebased`).
    pub live: PartitionKeys,
    _running: tokio::sync::OwnedMutexGuard<()>,
}

impl AsOf {
    pub fn new(
        settings: &Settings,
        store: Store,
        games: Arc<Games>,
    ) -> Result<Arc<Self>, StoreError> {
        let token = format!(
            "{:x}{:x}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.subsec_nanos())
                .unwrap_or_default()
        );
        let suffix = format!("{AS_OF_SUFFIX}{token}");
        let committer = Committer::new(
            &crate::core::config::RedisEndpoint {
                read_from_replicas: false,
                ..settings.store_redis()
            },
            store.keys().clone(),
            (0, 1),
            settings.worker.entries_per_script_call,
            DeadLetterRetention::default(),
            Duration::from_secs(10),
        )?
        .into_copy(&suffix);
        Ok(Arc::new(Self {
            store,
            committer: Arc::new(committer),
            rules: Rules::from_games(&games).replaying(),
            suffix,
            segments: settings.history.segments_dir.clone(),
            max_entries: settings.history.as_of_max_entries,
            running: Arc::new(Mutex::new(())),
            games,
        }))
    }

    /// Replays `product`'s history up to stream id `until` into this process's copy.
    pub async fn compute(&self, product: &ProductId, until: &str) -> Result<Copy, AsOfError> {
        let live = self.store.keys().product(product);
        let (gap, exported): (Option<String>, Option<String>) = self
            .store
            .query_pipe(
                redis::pipe()
                    .cmd("GET")
                    .arg(live.events_gap())
                    .cmd("GET")
                    .arg(live.events_exported()),
            )
            .await?;
        if let Some(gap) = gap {
            return Err(AsOfError::Incomplete(format!(
                "the history of product `{product}` misses entries applied up to {gap}, so its \
                 past cannot be computed"
            )));
        }
        if let (Some(exported), None) = (&exported, &self.segments) {
            return Err(AsOfError::Incomplete(format!(
                "the history of product `{product}` up to {exported} is in segment files, and \
                 history.segments_dir is not set here"
            )));
        }
        let Some(config) = self.games.product(product) else {
            return Err(AsOfError::Incomplete(format!(
                "product `{product}` is rejected by the games file"
            )));
        };
        let running = Arc::clone(&self.running).lock_owned().await;
        let keys = live.copy(&self.suffix);
        // An admin change during the replay (a hide, an erasure…) could leave the copy half
        // before, half after it: the replay starts over, a few times at most.
        let mut attempts = 0;
        loop {
            attempts += 1;
            let generation = self.generation(&live).await?;
            self.replay_into(product, until, &live, &keys, config)
                .await?;
            if attempts >= MAX_REPLAYS || self.generation(&live).await? == generation {
                break;
            }
        }
        Ok(Copy {
            keys,
            live,
            _running: running,
        })
    }

    async fn generation(&self, live: &PartitionKeys) -> Result<Option<String>, StoreError> {
        self.store
            .query(redis::cmd("GET").arg(live.generation()))
            .await
    }

    /// Replays the history up to `until` into `keys` (emptied first).
    async fn replay_into(
        &self,
        product: &ProductId,
        until: &str,
        live: &PartitionKeys,
        keys: &PartitionKeys,
        config: &crate::games::ProductGames,
    ) -> Result<(), AsOfError> {
        let player_fields = config.player_fields();
        self.discard_keys(keys).await?;
        let replay = Replay {
            store: &self.store,
            committer: &self.committer,
            rules: &self.rules,
            product,
            keys: live,
            target: keys.clone(),
            segments: self.segments.as_deref(),
            until: Some(until),
            max_entries: Some(self.max_entries),
            player_fields: &player_fields,
        };
        let mut progress = Progress::new(false);
        let replayed = async {
            replay
                .run(&mut Known::default(), &mut progress, &|| Ok(()), None)
                .await?;
            // Erased players are erased from the past too.
            let mut conn = self.store.connection();
            let erasures = super::Erasures::load(&mut conn, live).await?;
            for pseudonym in erasures.pseudonyms() {
                if let Ok(player) = crate::core::ids::PlayerId::parse(pseudonym) {
                    crate::admin::erase_from(&self.store, keys, config, &player).await?;
                }
            }
            Ok::<(), RebuildError>(())
        }
        .await;
        if let Err(error) = replayed {
            self.discard_keys(keys).await?;
            return Err(match error {
                RebuildError::TooLong(max) => AsOfError::TooCostly {
                    product: product.to_string(),
                    until: until.to_owned(),
                    max,
                },
                RebuildError::Store(error) => AsOfError::Store(error),
                other => AsOfError::Replay(other.to_string()),
            });
        }
        Ok(())
    }

    /// Deletes a copy once read.
    pub async fn discard(&self, copy: Copy) -> Result<(), StoreError> {
        self.discard_keys(&copy.keys).await
    }

    async fn discard_keys(&self, keys: &PartitionKeys) -> Result<(), StoreError> {
        let doomed = self
            .store
            .scan(&format!("{}:*", escape_glob(keys.base())))
            .await?;
        for chunk in doomed.chunks(500) {
            self.store
                .query::<u64>(redis::cmd("UNLINK").arg(chunk))
                .await?;
        }
        Ok(())
    }
}
