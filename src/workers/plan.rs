//! Planning a batch (pure, no I/O): which changes each stream entry causes, grouped by
//! product in stream order, and which entries (or boards of an entry) go to the dead-letter
//! stream and why.
//!
//! Planning reads and updates [`Known`], the worker's view of the store while it holds the
//! lease: each partition's applied position (entries at or below it were applied before a
//! restart and are skipped) and the rating states of the players involved. The worker loads
//! what a batch needs ([`needs`]) before planning it.
//!
//! Re-driven dead letters (entries carrying [`Redrive`] fields) are applied at most once per
//! original event: a product skips a copy whose original it applied already (its `redriven`
//! set), and the dead letters skip writing a letter again for a re-drive they already wrote
//! one for. Their period boards use the original event's time.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use crate::core::effects::Changes;
use crate::core::event::{Fields, GameEvent, RawEntry, ReasonKind, Redrive, Rejection};
use crate::core::ids::{PlayerId, ProductId};
use crate::games::Games;
use crate::history::voids::VoidSet;
use crate::leaderboards::ratings::Rating;
use crate::leaderboards::scoring::{
    RatingBook, ScoreBook, ScoreContext, ScoringHandler, ScoringRegistry,
};
use crate::player_stats::handlers::{StatsHandler, StatsRegistry};

/// Which of a product's entries a plan holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Planned {
    /// Those with changes (no history is kept).
    WithChanges,
    /// Every entry the product applies, each with its history line.
    EveryWithHistory,
    /// Every entry, without history lines: a replay into a copy of the product, whose
    /// position must pass every entry the product's did.
    Every,
}

/// The scoring and stats handlers the worker applies.
pub struct Rules {
    scoring: ScoringRegistry,
    stats: StatsRegistry,
    planned: Planned,
}

impl Rules {
    /// The rules of a games configuration.
    pub fn from_games(games: &Games) -> Self {
        Self {
            scoring: games.scoring(),
            stats: games.stats(),
            planned: Planned::WithChanges,
        }
    }

    /// These rules, planning every entry of a product with its history line
    /// (`history.enabled`), or only those with changes.
    pub fn keeping_history(mut self, keep: bool) -> Self {
        self.planned = if keep {
            Planned::EveryWithHistory
        } else {
            Planned::WithChanges
        };
        self
    }

    /// These rules, planning every entry of a product without history lines: for a replay
    /// of the history into a copy.
    pub fn replaying(mut self) -> Self {
        self.planned = Planned::Every;
        self
    }

    /// Whether entries without changes are planned too.
    fn plans_every_entry(&self) -> bool {
        self.planned != Planned::WithChanges
    }

    /// The built-in games configuration's rules.
    pub fn builtin() -> Self {
        Self::from_games(&Games::builtin())
    }

    /// Replaces `product`'s scoring with a handler written in code.
    pub fn register_scoring(
        &mut self,
        product: ProductId,
        handler: std::sync::Arc<dyn ScoringHandler>,
    ) {
        self.scoring.register(product, handler);
    }

    /// Replaces `product`'s stats with a handler written in code.
    pub fn register_stats(
        &mut self,
        product: ProductId,
        handler: std::sync::Arc<dyn StatsHandler>,
    ) {
        self.stats.register(product, handler);
    }
}

/// One unit of atomic, exactly-once application: a product or the dead-letter stream.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Partition {
    Product(ProductId),
    DeadLetters,
}

impl Partition {
    /// Its name in the stream side's record of acknowledged positions.
    pub fn record_name(&self) -> String {
        match self {
            Partition::Product(product) => format!("product:{product}"),
            Partition::DeadLetters => "dead_letters".to_owned(),
        }
    }

    /// The partition a record name names; `None` for a name no partition has.
    pub fn from_record_name(name: &str) -> Option<Self> {
        match name.strip_prefix("product:") {
            Some(product) => ProductId::parse(product).ok().map(Partition::Product),
            None => (name == "dead_letters").then_some(Partition::DeadLetters),
        }
    }
}

/// What the worker knows of the store. Valid only while it holds the lease (it is the only
/// writer then); dropped on any error or lease change.
#[derive(Debug, Default)]
pub struct Known {
    /// Applied position per partition (`None`: nothing applied yet).
    pub positions: HashMap<Partition, Option<String>>,
    /// Admin generation per partition, loaded with the position (`None`: never bumped).
    pub generations: HashMap<Partition, Option<String>>,
    /// Rating state per (product, board, player) (`None`: never rated).
    pub ratings: HashMap<(ProductId, String, PlayerId), Option<Rating>>,
    /// All-time score per (product, board, player) on boards whose validation compares a
    /// value with it (`None`: not on the board).
    pub scores: HashMap<(ProductId, String, PlayerId), Option<f64>>,
    /// Products this worker has added to the discovery index.
    pub listed: HashSet<ProductId>,
    /// Whether a partition's `redriven` set holds a member (see [`Needs::redrives`]).
    pub redriven: HashMap<(Partition, String), bool>,
    /// Per product, its voided matches and entries (loaded with its position).
    pub voids: HashMap<ProductId, VoidSet>,
}

impl Known {
    /// Whether entry `id` of `partition` was applied already. Unknown positions count as
    /// not applied; [`needs`] makes sure they are known before planning.
    fn applied(&self, partition: &Partition, id: &str) -> bool {
        match self.positions.get(partition) {
            Some(Some(position)) => compare_ids(id, position) != std::cmp::Ordering::Greater,
            _ => false,
        }
    }

    /// Whether `partition` already wrote the re-drive named `member` (an original id for a
    /// product, a letter id for the dead letters).
    fn redriven(&self, partition: &Partition, member: &str) -> bool {
        self.redriven
            .get(&(partition.clone(), member.to_owned()))
            .copied()
            .unwrap_or(false)
    }

    fn mark_redriven(&mut self, partition: Partition, member: &str) {
        self.redriven.insert((partition, member.to_owned()), true);
    }

    /// Entries held: what the worker's memory for its view grows with (rating states mostly;
    /// products' positions and re-drive markers too).
    pub fn cached_entries(&self) -> usize {
        self.ratings.len()
            + self.scores.len()
            + self.positions.len()
            + self.generations.len()
            + self.listed.len()
            + self.redriven.len()
            + self.voids.len()
    }

    /// Drops everything held. Only safe when the store holds every planned change (nothing
    /// committed is lost: it is reloaded as needed; products are listed again, idempotently).
    pub fn forget(&mut self) {
        *self = Known::default();
    }

    /// The applied positions `batch` leaves, per partition it writes.
    pub fn positions_after(batch: &BatchPlan) -> Vec<(Partition, String)> {
        let products = batch.products.iter().filter_map(|(product, events)| {
            let last = events.last()?;
            Some((Partition::Product(product.clone()), last.id.clone()))
        });
        let letters = batch
            .dead_letters
            .last()
            .map(|last| (Partition::DeadLetters, last.id.clone()));
        products.chain(letters).collect()
    }

    /// What the store holds for `partition`, as loaded: its applied position and admin
    /// generation. With [`Known::advance_past`], the only places positions change.
    pub fn loaded(
        &mut self,
        partition: Partition,
        position: Option<String>,
        generation: Option<String>,
    ) {
        self.generations.insert(partition.clone(), generation);
        self.positions.insert(partition, position);
    }

    /// Moves the positions past a planned batch, so the next batch can be planned before this
    /// one is committed. Safe because batches are committed in the order they are planned,
    /// each commit only applies on the position it was planned on, and any failed commit
    /// drops the whole `Known`.
    pub fn advance_past(&mut self, batch: &BatchPlan) {
        for (partition, position) in Self::positions_after(batch) {
            self.positions.insert(partition, Some(position));
        }
    }
}

/// What must be loaded into [`Known`] before a batch can be planned.
#[derive(Debug, Default, PartialEq)]
pub struct Needs {
    pub positions: Vec<Partition>,
    pub ratings: Vec<(ProductId, String, PlayerId)>,
    /// Players' all-time scores on boards whose validation reads them.
    pub scores: Vec<(ProductId, String, PlayerId)>,
    /// Members of partitions' `redriven` sets to look up: a re-driven entry's original id in
    /// its product's, its letter id in the dead letters'.
    pub redrives: Vec<(Partition, String)>,
}

/// An entry parsed once for both loading and planning.
pub struct ParsedEntry<'a> {
    pub entry: &'a RawEntry,
    pub event: Result<GameEvent, Rejection>,
    /// Where a re-driven entry came from (also when it cannot be used again).
    pub redrive: Option<Redrive>,
}

/// Parses every entry of a batch.
pub fn parse(entries: &[RawEntry]) -> Vec<ParsedEntry<'_>> {
    entries
        .iter()
        .map(|entry| ParsedEntry {
            entry,
            event: GameEvent::parse(&entry.fields),
            redrive: Redrive::from_fields(&entry.fields).ok().flatten(),
        })
        .collect()
}

/// Positions and rating states the batch needs that `known` lacks.
pub fn needs(batch: &[ParsedEntry<'_>], rules: &Rules, known: &Known) -> Needs {
    let mut positions = BTreeSet::new();
    if !known.positions.contains_key(&Partition::DeadLetters) {
        positions.insert(Partition::DeadLetters);
    }
    let mut ratings = BTreeSet::new();
    let mut scores = BTreeSet::new();
    let mut redrives = BTreeSet::new();
    let mut boards_of: HashMap<&ProductId, Vec<String>> = HashMap::new();
    for parsed in batch {
        let mut need_redrive = |partition: Partition, member: &str| {
            let key = (partition, member.to_owned());
            if !known.redriven.contains_key(&key) {
                redrives.insert(key);
            }
        };
        if let Some(redrive) = &parsed.redrive {
            // Dead-lettered again, whether it parses or not.
            need_redrive(Partition::DeadLetters, &redrive.letter);
            if let Ok(event) = &parsed.event {
                need_redrive(Partition::Product(event.product.clone()), &redrive.of);
            }
        }
        let Ok(event) = &parsed.event else { continue };
        let partition = Partition::Product(event.product.clone());
        if !known.positions.contains_key(&partition) {
            positions.insert(partition);
        }
        for (board, player) in rules.scoring.get(&event.product).scored_players(event) {
            let key = (event.product.clone(), board, player);
            if !known.scores.contains_key(&key) {
                scores.insert(key);
            }
        }
        let Some(outcome) = event.outcome() else {
            continue;
        };
        let boards = boards_of
            .entry(&event.product)
            .or_insert_with(|| rules.scoring.get(&event.product).rating_boards());
        for board in boards.iter() {
            for player in outcome.players() {
                let key = (event.product.clone(), board.clone(), player.clone());
                if !known.ratings.contains_key(&key) {
                    ratings.insert(key);
                }
            }
        }
    }
    Needs {
        positions: positions.into_iter().collect(),
        ratings: ratings.into_iter().collect(),
        scores: scores.into_iter().collect(),
        redrives: redrives.into_iter().collect(),
    }
}

/// The changes of one stream entry.
#[derive(Debug, Clone, PartialEq)]
pub struct PlannedEvent {
    pub id: String,
    pub changes: Changes,
    /// The entry's line in the product's history (when the rules keep history).
    pub history: Option<String>,
    /// For a re-driven entry, the original event's id: added to the product's `redriven` set
    /// with the changes.
    pub redrive_of: Option<String>,
}

/// An entry (or some of its boards) the worker cannot use, kept with its original fields.
#[derive(Debug, Clone, PartialEq)]
pub struct DeadLetter {
    pub id: String,
    /// One per reason (each a letter of its own): the whole entry, or each board that could
    /// not use it.
    pub reasons: Vec<LetterReason>,
    pub fields: Fields,
    /// For a re-driven entry, the letter it came from: added to the dead letters' `redriven`
    /// set with the new letter.
    pub redrive_letter: Option<String>,
}

/// Why an entry, or one board of it, is dead-lettered.
#[derive(Debug, Clone, PartialEq)]
pub struct LetterReason {
    /// The board that could not use the event; none when the whole event was refused.
    pub board: Option<String>,
    /// The stat that refused a value of the event (the letter's `board` is empty, its text
    /// names the stat).
    pub stat: Option<String>,
    pub kind: ReasonKind,
    /// The reason's text, stored with the letter.
    pub text: String,
}

/// What happened to one entry, for metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Applied,
    Skipped,
    DeadLettered,
    /// Applied before a restart; skipped now.
    Replayed,
    /// A second copy of a re-driven dead letter (the re-drive was repeated after a crash):
    /// the first was applied or dead-lettered already; skipped.
    RedriveDuplicate,
    /// An entry of a voided match (or a voided entry): kept in history, not applied.
    Voided,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Applied => "applied",
            Outcome::Skipped => "skipped",
            Outcome::DeadLettered => "dead_lettered",
            Outcome::Replayed => "replayed",
            Outcome::RedriveDuplicate => "redrive_duplicate",
            Outcome::Voided => "voided",
        }
    }
}

/// One entry's outcome with its metric labels (raw product id: bound it before use).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryOutcome {
    pub product: String,
    pub event_type: &'static str,
    pub outcome: Outcome,
}

/// Everything a batch will write.
#[derive(Debug, Default, PartialEq)]
pub struct BatchPlan {
    /// Per product, the entries applied, in stream order: those with changes, and when history
    /// is kept every other entry of the product too (its history line).
    pub products: BTreeMap<ProductId, Vec<PlannedEvent>>,
    /// Entries to dead-letter, in stream order.
    pub dead_letters: Vec<DeadLetter>,
    pub outcomes: Vec<EntryOutcome>,
}

/// The rating states of one product, seen through [`Known`].
struct ProductBook<'a> {
    product: &'a ProductId,
    ratings: &'a mut HashMap<(ProductId, String, PlayerId), Option<Rating>>,
}

/// The all-time scores of one product's players an event's validation reads and moves.
struct ProductScores<'a> {
    product: &'a ProductId,
    scores: &'a mut HashMap<(ProductId, String, PlayerId), Option<f64>>,
}

impl ScoreBook for ProductScores<'_> {
    fn get(&self, board: &str, player: &PlayerId) -> Option<f64> {
        self.scores
            .get(&(self.product.clone(), board.to_owned(), player.clone()))
            .cloned()
            .flatten()
    }

    fn set(&mut self, board: &str, player: &PlayerId, score: f64) {
        self.scores.insert(
            (self.product.clone(), board.to_owned(), player.clone()),
            Some(score),
        );
    }
}

impl RatingBook for ProductBook<'_> {
    fn get(&self, board: &str, player: &PlayerId) -> Option<Rating> {
        self.ratings
            .get(&(self.product.clone(), board.to_owned(), player.clone()))
            .cloned()
            .flatten()
    }

    fn set(&mut self, board: &str, player: &PlayerId, rating: Rating) {
        self.ratings.insert(
            (self.product.clone(), board.to_owned(), player.clone()),
            Some(rating),
        );
    }
}

/// Plans a parsed batch, in stream order. `deleted` are ids whose entries vanished from the
/// stream before they could be read (trimmed by someone else): they are dead-lettered so the
/// loss is visible. Updates the rating states in `known` as the batch's matches are rated.
pub fn plan(
    batch: &[ParsedEntry<'_>],
    deleted: &[String],
    rules: &Rules,
    known: &mut Known,
) -> BatchPlan {
    let mut plan = BatchPlan::default();
    for parsed in batch {
        let id = parsed.entry.id.as_str();
        let fields = &parsed.entry.fields;
        let event_type = type_label(fields);
        let redrive = parsed.redrive.as_ref();
        // A re-driven event happened when its original did: its period boards are those.
        let at_ms = id_millis(redrive.map_or(id, |redrive| redrive.of.as_str()));
        let (product, outcome) = match &parsed.event {
            Ok(event) => {
                let product = event.product.as_str().to_owned();
                let partition = Partition::Product(event.product.clone());
                if known.applied(&partition, id) {
                    // The product is past the entry. A rejected entry moves no position of the
                    // product's, its later entries do, and its letter is the dead letters'
                    // write: on a Redis Cluster those live on another master, so the product's
                    // commit can stand while the letter's failed or was lost in a failover.
                    // A whole rejection depends on no state (see `check`): it is found again
                    // and written unless the dead letters are past the entry.
                    let mut outcome = Outcome::Replayed;
                    if !known.applied(&Partition::DeadLetters, id)
                        && let Err(rejection) =
                            apply(event, id, at_ms, rules, &mut Known::default())
                        && plan.dead_letter(known, id, rejection, fields, redrive)
                            == Outcome::DeadLettered
                    {
                        outcome = Outcome::DeadLettered;
                    }
                    (product, outcome)
                } else if redrive.is_some_and(|redrive| known.redriven(&partition, &redrive.of)) {
                    (product, Outcome::RedriveDuplicate)
                } else if known
                    .voids
                    .get(&event.product)
                    .is_some_and(|voids| voids.covers(id, fields))
                {
                    if rules.plans_every_entry() {
                        plan.keep(rules, &event.product, id, Changes::default(), fields, None);
                    }
                    (product, Outcome::Voided)
                } else {
                    match apply(event, id, at_ms, rules, known) {
                        Ok((changes, rejections)) => {
                            // A letter written before (a replay, or a second copy of a
                            // re-drive) is not written, nor counted, again.
                            let letter_written = redrive.is_some_and(|redrive| {
                                known.redriven(&Partition::DeadLetters, &redrive.letter)
                            });
                            let dead = !rejections.is_empty()
                                && !letter_written
                                && !known.applied(&Partition::DeadLetters, id);
                            if dead {
                                plan.dead_letters.push(DeadLetter {
                                    id: id.to_owned(),
                                    reasons: rejections,
                                    fields: fields.clone(),
                                    redrive_letter: redrive.map(|redrive| redrive.letter.clone()),
                                });
                                if let Some(redrive) = redrive {
                                    known.mark_redriven(Partition::DeadLetters, &redrive.letter);
                                }
                            }
                            let outcome = if !changes.is_empty() {
                                let redrive_of = redrive.map(|redrive| redrive.of.clone());
                                plan.keep(rules, &event.product, id, changes, fields, redrive_of);
                                if let Some(redrive) = redrive {
                                    known.mark_redriven(partition, &redrive.of);
                                }
                                Outcome::Applied
                            } else {
                                if rules.plans_every_entry() {
                                    plan.keep(rules, &event.product, id, changes, fields, None);
                                }
                                if dead {
                                    Outcome::DeadLettered
                                } else {
                                    Outcome::Skipped
                                }
                            };
                            (product, outcome)
                        }
                        Err(rejection) => {
                            let outcome = plan.dead_letter(known, id, rejection, fields, redrive);
                            (product, outcome)
                        }
                    }
                }
            }
            Err(rejection) => {
                let outcome = plan.dead_letter(known, id, rejection.clone(), fields, redrive);
                (raw_product(fields), outcome)
            }
        };
        plan.outcomes.push(EntryOutcome {
            product,
            event_type,
            outcome,
        });
    }
    for id in deleted {
        let outcome = plan.dead_letter(known, id, Rejection::Deleted, &Vec::new(), None);
        plan.outcomes.push(EntryOutcome {
            product: String::new(),
            event_type: "unknown",
            outcome,
        });
    }
    // Deleted ids come from a different part of the reply; keep dead letters in id order.
    plan.dead_letters.sort_by(|a, b| compare_ids(&a.id, &b.id));
    plan
}

impl BatchPlan {
    /// Plans an entry of `product` with its changes, and its history line when the rules keep
    /// history.
    fn keep(
        &mut self,
        rules: &Rules,
        product: &ProductId,
        id: &str,
        changes: Changes,
        fields: &Fields,
        redrive_of: Option<String>,
    ) {
        let history = (rules.planned == Planned::EveryWithHistory)
            .then(|| crate::history::encode_line(id, fields));
        self.products
            .entry(product.clone())
            .or_default()
            .push(PlannedEvent {
                id: id.to_owned(),
                changes,
                history,
                redrive_of,
            });
    }

    /// Each letter the batch writes, as its entry's raw product id (empty for an entry gone
    /// from the stream) and the reason's kind: for metrics.
    pub fn letter_kinds(&self) -> Vec<(String, ReasonKind)> {
        self.dead_letters
            .iter()
            .flat_map(|letter| {
                let product = raw_product(&letter.fields);
                letter
                    .reasons
                    .iter()
                    .map(move |reason| (product.clone(), reason.kind))
            })
            .collect()
    }

    /// Dead-letters a whole entry, unless its letter was written before (a replay, or a
    /// second copy of a re-drive): the entry's outcome, so that each letter is counted once.
    fn dead_letter(
        &mut self,
        known: &mut Known,
        id: &str,
        rejection: Rejection,
        fields: &Fields,
        redrive: Option<&Redrive>,
    ) -> Outcome {
        if let Some(redrive) = redrive {
            if known.redriven(&Partition::DeadLetters, &redrive.letter) {
                return Outcome::RedriveDuplicate;
            }
            if !known.applied(&Partition::DeadLetters, id) {
                known.mark_redriven(Partition::DeadLetters, &redrive.letter);
            }
        }
        if known.applied(&Partition::DeadLetters, id) {
            return Outcome::Replayed;
        }
        self.dead_letters.push(DeadLetter {
            id: id.to_owned(),
            reasons: vec![LetterReason {
                board: None,
                stat: None,
                kind: rejection.kind(),
                text: rejection.to_string(),
            }],
            fields: fields.clone(),
            redrive_letter: redrive.map(|redrive| redrive.letter.clone()),
        });
        Outcome::DeadLettered
    }
}

/// All changes `event` causes, board and stats together. A rejection from any handler
/// rejects the whole event, so one is never applied without the other; a board that cannot
/// rate the outcome is reported separately and the rest still applies.
fn apply(
    event: &GameEvent,
    id: &str,
    at_ms: u64,
    rules: &Rules,
    known: &mut Known,
) -> Result<(Changes, Vec<LetterReason>), Rejection> {
    let mut changes = Changes::default();
    let mut rejections = Vec::new();
    // Rate on a copy: if the event is rejected, the ratings it touched stay as they were.
    let mut touched = HashMap::new();
    let mut book = ProductBook {
        product: &event.product,
        ratings: &mut touched,
    };
    let scoring = rules.scoring.get(&event.product);
    if let Some(outcome) = event.outcome() {
        for board in scoring.rating_boards() {
            for player in outcome.players() {
                let key = (event.product.clone(), board.clone(), player.clone());
                let state = known.ratings.get(&key).cloned().flatten();
                book.ratings.insert(key, state);
            }
        }
    }
    // Scores too: a rejected event moves none.
    let mut scored = HashMap::new();
    for (board, player) in scoring.scored_players(event) {
        let key = (event.product.clone(), board, player);
        let score = known.scores.get(&key).copied().flatten();
        scored.insert(key, score);
    }
    let mut scores = ProductScores {
        product: &event.product,
        scores: &mut scored,
    };
    let mut context = ScoreContext {
        id,
        at_ms,
        ratings: &mut book,
        scores: &mut scores,
        changes: &mut changes,
        rejections: &mut rejections,
    };
    scoring.score(event, &mut context)?;
    let mut refused = Vec::new();
    rules
        .stats
        .get(&event.product)
        .record(event, &mut changes, &mut refused)?;
    scoring.score_stats(at_ms, &mut changes);
    // Rows of boards with several columns read stats as the event leaves them.
    changes.columns_last();
    if let crate::core::event::EventKind::Profile(profile) = &event.kind {
        let fields = [("name", &profile.name), ("meta", &profile.meta)]
            .into_iter()
            .filter_map(|(name, value)| Some((name, value.clone()?)))
            .collect();
        changes.push(crate::core::effects::Change::Profile {
            player: profile.player.clone(),
            fields,
        });
    }
    known.ratings.extend(touched);
    known.scores.extend(scored);
    let boards = rejections.into_iter().map(|rejection| LetterReason {
        board: Some(rejection.board),
        stat: None,
        kind: rejection.kind,
        text: rejection.reason,
    });
    let stats = refused.into_iter().map(|rejection| LetterReason {
        board: None,
        stat: Some(rejection.stat),
        kind: rejection.kind,
        text: rejection.reason,
    });
    Ok((changes, boards.chain(stats).collect()))
}

/// Checks one event as the worker would apply it (ratings as for new players), without I/O:
/// what HTTP ingest accepts is exactly what the worker would not dead-letter as a whole.
pub fn check(fields: &Fields, rules: &Rules) -> Result<(), Rejection> {
    let event = GameEvent::parse(fields)?;
    apply(&event, "0-0", 0, rules, &mut Known::default()).map(|_| ())
}

/// The `type` field as a bounded metric label.
fn type_label(fields: &Fields) -> &'static str {
    let value = fields
        .iter()
        .find(|(name, _)| name == b"type")
        .map(|(_, value)| value.as_slice());
    match value {
        Some(b"game_over") => "game_over",
        Some(b"draw") => "draw",
        Some(b"match_result") => "match_result",
        Some(b"gameplay") => "gameplay",
        Some(b"state_change") => "state_change",
        Some(b"player_disconnect") => "player_disconnect",
        Some(b"game_removed") => "game_removed",
        Some(_) => "other",
        None => "missing",
    }
}

fn raw_product(fields: &Fields) -> String {
    fields
        .iter()
        .find(|(name, _)| name == b"product_id")
        .map(|(_, value)| String::from_utf8_lossy(value).into_owned())
        .unwrap_or_default()
}

fn id_parts(id: &str) -> (u64, u64) {
    let (ms, seq) = id.split_once('-').unwrap_or((id, "0"));
    (ms.parse().unwrap_or(0), seq.parse().unwrap_or(0))
}

/// The millisecond timestamp of a stream id: the event's time.
pub fn id_millis(id: &str) -> u64 {
    id_parts(id).0
}

/// Orders stream ids (`<ms>-<seq>`) numerically.
pub fn compare_ids(a: &str, b: &str) -> std::cmp::Ordering {
    id_parts(a).cmp(&id_parts(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(id: &str, pairs: &[(&str, &str)]) -> RawEntry {
        RawEntry {
            id: id.into(),
            fields: pairs
                .iter()
                .map(|(k, v)| (k.as_bytes().to_vec(), v.as_bytes().to_vec()))
                .collect(),
        }
    }

    fn plan_all(
        entries: &[RawEntry],
        deleted: &[String],
        rules: &Rules,
        known: &mut Known,
    ) -> BatchPlan {
        let parsed = parse(entries);
        plan(&parsed, deleted, rules, known)
    }

    #[test]
    fn groups_changes_by_product_and_dead_letters_the_rest() {
        let entries = vec![
            entry("1-0", &[("product_id", "exrps"), ("type", "state_change")]),
            entry(
                "2-0",
                &[
                    ("product_id", "exrps"),
                    ("type", "game_over"),
                    ("winner_id", "B"),
                    ("loser_id", "A"),
                ],
            ),
            entry("3-0", &[("product_id", "exrps"), ("type", "bogus")]),
            entry(
                "4-0",
                &[
                    ("product_id", "other"),
                    ("type", "game_over"),
                    ("winner_id", "A"),
                    ("loser_id", "B"),
                ],
            ),
        ];
        let batch = plan_all(
            &entries,
            &["0-5".to_owned()],
            &Rules::builtin(),
            &mut Known::default(),
        );
        assert_eq!(batch.products.len(), 2);
        let exrps = &batch.products[&ProductId::parse("exrps").unwrap()];
        assert_eq!(exrps.len(), 1);
        assert_eq!(exrps[0].id, "2-0");
        // wins +1 and loser ensured, each on the all-time board and 3 windows; 4 stat increments
        assert_eq!(exrps[0].changes.as_slice().len(), 2 * 4 + 4);
        let reasons: Vec<_> = batch
            .dead_letters
            .iter()
            .map(|d| (d.id.as_str(), d.reasons[0].text.as_str()))
            .collect();
        assert_eq!(
            reasons,
            vec![
                (
                    "0-5",
                    "entry was deleted from the stream before it could be read"
                ),
                ("3-0", "unknown event type `bogus`")
            ]
        );
        assert_eq!(
            batch.letter_kinds(),
            vec![
                (String::new(), ReasonKind::Deleted),
                ("exrps".to_owned(), ReasonKind::UnknownType)
            ]
        );
        let outcomes: Vec<_> = batch.outcomes.iter().map(|o| o.outcome).collect();
        assert_eq!(
            outcomes,
            vec![
                Outcome::Skipped,
                Outcome::Applied,
                Outcome::DeadLettered,
                Outcome::Applied,
                Outcome::DeadLettered
            ]
        );
    }

    #[test]
    fn entries_at_or_below_the_position_are_replays() {
        let entries = vec![
            entry(
                "5-0",
                &[
                    ("product_id", "p"),
                    ("type", "game_over"),
                    ("winner_id", "A"),
                    ("loser_id", "B"),
                ],
            ),
            entry("6-0", &[("product_id", "p"), ("type", "teleport")]),
            entry(
                "7-0",
                &[
                    ("product_id", "p"),
                    ("type", "game_over"),
                    ("winner_id", "A"),
                    ("loser_id", "B"),
                ],
            ),
        ];
        let mut known = Known::default();
        let product = Partition::Product(ProductId::parse("p").unwrap());
        known.positions.insert(product, Some("5-0".into()));
        known
            .positions
            .insert(Partition::DeadLetters, Some("6-0".into()));
        let batch = plan_all(&entries, &[], &Rules::builtin(), &mut known);
        let outcomes: Vec<_> = batch.outcomes.iter().map(|o| o.outcome).collect();
        // 6-0 was dead-lettered before: a replay, neither written nor counted again.
        assert_eq!(
            outcomes,
            vec![Outcome::Replayed, Outcome::Replayed, Outcome::Applied]
        );
        assert!(
            batch.dead_letters.is_empty(),
            "6-0 was dead-lettered before"
        );
        assert_eq!(batch.products.values().next().unwrap()[0].id, "7-0");
    }

    #[test]
    fn a_replayed_entry_whose_letter_the_dead_letters_lack_is_dead_lettered_once() {
        // The product applied 7-0 (past 6-0, which its stats rules reject), but the dead
        // letters stopped at 4-0: on a cluster the two commit to different masters, and the
        // letters' write failed, or a failover lost it.
        let game_over = [
            ("product_id", "exrps"),
            ("type", "game_over"),
            ("winner_id", "A"),
            ("loser_id", "B"),
        ];
        let entries = vec![
            entry("5-0", &game_over),
            entry(
                "6-0",
                &[
                    ("product_id", "exrps"),
                    ("type", "gameplay"),
                    ("event_name", "select_weapon"),
                    ("event_data", "rock"),
                    ("user_id", "A"),
                ],
            ),
            entry("7-0", &game_over),
        ];
        let rules = Rules::builtin();
        assert!(
            GameEvent::parse(&entries[1].fields).is_ok()
                && check(&entries[1].fields, &rules).is_err(),
            "6-0 parses, and its product's rules reject it"
        );
        let mut known = Known::default();
        let product = Partition::Product(ProductId::parse("exrps").unwrap());
        known.positions.insert(product, Some("7-0".into()));
        known
            .positions
            .insert(Partition::DeadLetters, Some("4-0".into()));
        let batch = plan_all(&entries, &[], &rules, &mut known);
        let outcomes: Vec<_> = batch.outcomes.iter().map(|o| o.outcome).collect();
        assert_eq!(
            outcomes,
            vec![Outcome::Replayed, Outcome::DeadLettered, Outcome::Replayed]
        );
        assert!(batch.products.is_empty(), "nothing applied twice");
        let letters: Vec<&str> = batch.dead_letters.iter().map(|l| l.id.as_str()).collect();
        assert_eq!(letters, vec!["6-0"]);
        assert!(
            known.ratings.is_empty(),
            "no rating state moved by a replay"
        );
    }

    #[test]
    fn a_redriven_event_applies_once_at_its_original_time_and_is_dead_lettered_once() {
        use crate::core::event::{REDRIVE_LETTER_FIELD, REDRIVE_OF_FIELD};
        // Day 0 and day 3 of 1970 (ms): the copy's id is days after its original.
        let original = "1000-0";
        let copy = |id: &str, letter: &str, pairs: &[(&str, &str)]| {
            let mut pairs = pairs.to_vec();
            pairs.extend([(REDRIVE_OF_FIELD, original), (REDRIVE_LETTER_FIELD, letter)]);
            entry(id, &pairs)
        };
        let game = [
            ("product_id", "p"),
            ("type", "game_over"),
            ("winner_id", "A"),
            ("loser_id", "B"),
        ];
        let broken = [("product_id", "p"), ("type", "teleport")];
        let entries = vec![
            copy("259200000-0", "50-0", &game),
            copy("259200000-1", "50-0", &game),
            copy("259200000-2", "60-0", &broken),
            copy("259200000-3", "60-0", &broken),
        ];
        let rules = Rules::builtin();
        let mut known = Known::default();
        let parsed = parse(&entries);
        let needs = needs(&parsed, &rules, &known);
        let product = Partition::Product(ProductId::parse("p").unwrap());
        assert_eq!(
            needs.redrives,
            vec![
                (product.clone(), original.to_owned()),
                (Partition::DeadLetters, "50-0".to_owned()),
                (Partition::DeadLetters, "60-0".to_owned()),
            ]
        );
        for key in needs.redrives {
            known.redriven.insert(key, false);
        }
        let batch = plan(&parsed, &[], &rules, &mut known);
        let outcomes: Vec<_> = batch.outcomes.iter().map(|o| o.outcome).collect();
        assert_eq!(
            outcomes,
            vec![
                Outcome::Applied,
                Outcome::RedriveDuplicate,
                Outcome::DeadLettered,
                Outcome::RedriveDuplicate
            ]
        );
        let applied = &batch.products[&ProductId::parse("p").unwrap()];
        assert_eq!(applied.len(), 1);
        assert_eq!(applied[0].redrive_of.as_deref(), Some(original));
        let periods: Vec<String> = applied[0]
            .changes
            .as_slice()
            .iter()
            .filter_map(|change| match change {
                crate::core::effects::Change::Score {
                    period: Some(period),
                    ..
                } => Some(period.key_suffix.clone()),
                _ => None,
            })
            .collect();
        assert!(
            periods.contains(&"daily:1970-01-01".to_owned()),
            "{periods:?}"
        );
        assert_eq!(batch.dead_letters.len(), 1);
        assert_eq!(
            batch.dead_letters[0].redrive_letter.as_deref(),
            Some("60-0")
        );
        // A later batch knows what this one wrote.
        assert!(known.redriven(&product, original));
        assert!(known.redriven(&Partition::DeadLetters, "60-0"));
    }

    #[test]
    fn a_team_match_is_a_letter_per_one_on_one_board_and_applies_elsewhere() {
        let games = Games::parse(include_str!("../../config/games.example.toml"), "example")
            .expect("example games file");
        let rules = Rules::from_games(&games);
        let team_match = entry(
            "1-0",
            &[
                ("product_id", "exrps"),
                ("type", "match_result"),
                (
                    "teams",
                    r#"[{"place":1,"players":["A","B"]},{"place":2,"players":["C","D"]}]"#,
                ),
            ],
        );
        let mut known = Known::default();
        let parsed = parse(std::slice::from_ref(&team_match));
        for partition in needs(&parsed, &rules, &known).positions {
            known.positions.insert(partition, None);
        }
        let batch = plan(&parsed, &[], &rules, &mut known);
        assert_eq!(batch.outcomes[0].outcome, Outcome::Applied);
        let boards: Vec<_> = batch.dead_letters[0]
            .reasons
            .iter()
            .map(|reason| reason.board.as_deref())
            .collect();
        assert_eq!(boards, vec![Some("elo"), Some("glicko2")]);
        assert_eq!(
            batch.letter_kinds(),
            vec![("exrps".to_owned(), ReasonKind::UnratableOutcome); 2]
        );
    }

    #[test]
    fn ids_compare_numerically() {
        use std::cmp::Ordering::*;
        assert_eq!(compare_ids("10-0", "9-5"), Greater);
        assert_eq!(compare_ids("9-10", "9-9"), Greater);
        assert_eq!(compare_ids("9-1", "9-1"), Equal);
        assert_eq!(id_millis("1700000000123-4"), 1_700_000_000_123);
    }
}

#[cfg(test)]
mod properties {
    //! Generated hostile events: planning never panics, and every entry is applied, skipped
    //! or dead-lettered with a reason.

    use proptest::prelude::*;

    use super::*;
    use crate::games::Games;

    const EXAMPLE: &str = include_str!("../../config/games.example.toml");

    fn field_name() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            4 => prop::sample::select(vec![
                "product_id", "game_id", "type", "winner_id", "loser_id", "user_id", "event_name",
                "event_data", "p1_id", "p2_id", "teams", "progress_event", "round_winner_id",
                "round_loser_id", "player_id", "new_state",
            ])
            .prop_map(|s| s.as_bytes().to_vec()),
            1 => prop::collection::vec(any::<u8>(), 0..12),
        ]
    }

    fn field_value() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            3 => prop::sample::select(vec![
                "exrps", "arena", "game_over", "gameplay", "draw", "match_result", "state_change",
                "select_weapon", "kills", "lap", "progression", "round_finished", "0", "1", "2",
                "null", "5", "-1", "1e308", "NaN", "inf", "99999999999999999999", "", "A", "B",
                "steam:1", "игрок:ユーザー✓", "a{b}c", "x y", "{", "}",
                r#"[{"place":1,"players":["A"]},{"place":2,"players":["B"]}]"#,
                r#"[{"place":1,"players":["A","B"]},{"place":1,"players":["C"]},{"place":3,"players":["D"]}]"#,
                r#"[{"place":1,"players":["A"]},{"place":2,"players":["A"]}]"#,
                r#"[{"place":-1,"players":[]}]"#,
            ])
            .prop_map(|s| s.as_bytes().to_vec()),
            1 => prop::collection::vec(any::<u8>(), 0..40),
            1 => "\\PC{0,200}".prop_map(String::into_bytes),
            1 => Just(vec![b'x'; 10_000]),
        ]
    }

    fn entries() -> impl Strategy<Value = Vec<RawEntry>> {
        prop::collection::vec(
            prop::collection::vec((field_name(), field_value()), 0..10),
            1..20,
        )
        .prop_map(|events| {
            events
                .into_iter()
                .enumerate()
                .map(|(i, fields)| RawEntry {
                    id: format!("{}-0", 1000 + i),
                    fields,
                })
                .collect()
        })
    }

    proptest! {
        // 500 cases in CI; scripts/chaos sets PROPTEST_CASES for the long run.
        #![proptest_config(ProptestConfig::with_cases(
            std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(500)
        ))]

        #[test]
        fn every_entry_is_applied_skipped_or_dead_lettered_with_a_reason(entries in entries()) {
            let games = Games::parse(EXAMPLE, "example").expect("example games file");
            let rules = Rules::from_games(&games);
            let mut known = Known::default();
            let parsed = parse(&entries);
            let needs = needs(&parsed, &rules, &known);
            for partition in needs.positions {
                known.positions.insert(partition, None);
            }
            for key in needs.ratings {
                known.ratings.insert(key, None);
            }
            let batch = plan(&parsed, &[], &rules, &mut known);
            prop_assert_eq!(batch.outcomes.len(), entries.len());
            for (entry, outcome) in entries.iter().zip(&batch.outcomes) {
                let letter = batch.dead_letters.iter().find(|d| d.id == entry.id);
                let applied = batch.products.values().flatten().any(|e| e.id == entry.id);
                match outcome.outcome {
                    Outcome::Applied => prop_assert!(applied),
                    Outcome::Skipped => prop_assert!(!applied && letter.is_none()),
                    Outcome::DeadLettered => {
                        let letter = letter.expect("a dead letter");
                        prop_assert!(!applied);
                        prop_assert_eq!(&letter.fields, &entry.fields);
                    }
                    Outcome::Replayed | Outcome::RedriveDuplicate | Outcome::Voided => {
                        prop_assert!(false, "nothing was applied before, nothing is voided")
                    }
                }
                if let Some(letter) = letter {
                    prop_assert!(letter.reasons.iter().all(|reason| !reason.text.is_empty()));
                }
            }
        }
    }
}
