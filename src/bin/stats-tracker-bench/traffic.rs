//! The benchmark's traffic: an endless stream of events of one kind ([`TrafficKind`]) — the
//! realistic mix of `simulate::mixed_run_with_newcomers` (asked for a few hundred matches at a
//! time so a million events never sit in memory at once) or `game_over`s between players never
//! seen before (churn over many products, or one big board) — a tally of what the tracker must
//! make of them, probe events for latency, and pipelined `XADD`s.
//!
//! The tally follows the documented default rules (docs/EVENTS.md, README), written here
//! independently of the tracker's handlers, so the final check compares the tracker against
//! the traffic, not against itself. Event types it does not model are noted, and the sums of
//! their products are then left unchecked rather than guessed.

use std::collections::{BTreeMap, BTreeSet, HashSet, VecDeque};

use crate::simulate::{Event, NEWCOMER_PREFIX, Rng, fresh_game_over, mixed_run_with_newcomers};
use anyhow::{Context, Result};
use redis::aio::ConnectionLike;

/// What the benchmark sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum TrafficKind {
    /// Full exrps match sequences (mostly gameplay events no rule uses), two other products,
    /// 1% bad events, skewed popularity over `--players`, `--new-player-share`% of matches
    /// bringing a new player.
    Real,
    /// Only `game_over`s, each between two players never seen before, over `--products`
    /// products the games file does not name (the default rules apply).
    Churn,
    /// `game_over`s between new players filling one product's `wins` board to `--players`.
    BigBoard,
}

impl TrafficKind {
    /// The name `--traffic` takes.
    pub fn name(self) -> &'static str {
        match self {
            TrafficKind::Real => "real",
            TrafficKind::Churn => "churn",
            TrafficKind::BigBoard => "big-board",
        }
    }

    /// Whether every player plays exactly one game (each side of a game is new): then boards
    /// and stats are checked from counts and a sample of games, not from a list of players.
    pub fn fresh_players(self) -> bool {
        !matches!(self, TrafficKind::Real)
    }
}

/// Copy `k` of real traffic's product `base` (`--products`): `base` itself for copy 0, then
/// `base-1`, `base-2`, …; each copy has its base's rules (the bench's games file says so).
pub fn copy_name(base: &str, k: usize) -> String {
    if k == 0 {
        base.to_owned()
    } else {
        format!("{base}-{k}")
    }
}

/// The real-traffic product `product` is a copy of (itself when it is no copy).
pub fn base_product(product: &str) -> &str {
    match product.rsplit_once('-') {
        Some((base, k))
            if PRODUCTS.iter().any(|(name, _)| *name == base)
                && !k.is_empty()
                && k.bytes().all(|b| b.is_ascii_digit()) =>
        {
            base
        }
        _ => product,
    }
}

/// Spreads real traffic over `copies` copies of its products: each match (a run of events
/// with the same `game_id`) goes to one copy, drawn from `rng`; events without a product stay
/// as they are. With one copy nothing changes and `rng` is not drawn from.
pub fn spread_over_copies(events: &mut [Event], copies: usize, rng: &mut Rng) {
    if copies <= 1 {
        return;
    }
    let mut game: Option<String> = None;
    let mut copy = 0;
    for event in events {
        let id = event
            .iter()
            .find(|(name, _)| name == "game_id")
            .map(|(_, value)| value.clone());
        if id.is_none() || id != game {
            copy = rng.below(copies as u64) as usize;
            game = id;
        }
        if let Some((_, product)) = event.iter_mut().find(|(name, _)| name == "product_id") {
            *product = copy_name(product, copy);
        }
    }
}

/// The product of churn traffic number `i` (unknown to the games file).
pub fn churn_product(i: usize) -> String {
    format!("churn-{i:04}")
}

/// The product whose board big-board traffic fills (unknown to the games file).
pub const BIG_BOARD_PRODUCT: &str = "big-board";

/// Fresh-player games kept for the checks and the read load, at most about this many.
const SAMPLED_GAMES: u64 = 50_000;

/// The stream the game servers write to.
pub const STREAM: &str = "game_event_stream";
/// The product probes are sent for (the busiest one, as in production).
pub const PROBE_PRODUCT: &str = "exrps";
/// Products of `mixed_run` with their share of matches in percent, for the read load.
pub const PRODUCTS: [(&str, u64); 3] = [("exrps", 80), ("arena:2v2 {beta}", 10), ("чемпионат", 10)];
/// Stats whose sums over all players are checked.
pub const CHECKED_STATS: [&str; 8] = [
    "games",
    "wins",
    "losses",
    "draws",
    "rock_selection_count",
    "paper_selection_count",
    "scissors_selection_count",
    "botch_selection_count",
];
/// Matches asked of `mixed_run` at a time (about 20 events each).
const MATCHES_PER_CHUNK: usize = 500;

/// What the tracker must derive from the events handed out so far.
#[derive(Debug, Default, Clone)]
pub struct Tally {
    pub events: u64,
    pub dead_letters: u64,
    /// product → stat → its expected sum over all players.
    pub stats: BTreeMap<String, BTreeMap<&'static str, u64>>,
    /// product → expected total of its `wins` board.
    pub board_points: BTreeMap<String, u64>,
    /// Store writes the worker must issue for these events.
    pub writes: StoreWrites,
    /// Players only probes used (beyond the generator's player list).
    pub probe_players: Vec<String>,
    /// Newcomers of real traffic (beyond the generator's player list).
    pub newcomers: BTreeSet<String>,
    /// Fresh-player traffic: product → (winner, loser) of a sample of its games (and every
    /// probe), whose stats are checked one by one.
    pub sampled_games: BTreeMap<String, Vec<(String, String)>>,
    /// product → event types seen that this tally does not model.
    pub unmodelled: BTreeMap<String, BTreeSet<String>>,
    /// product → its events handed out (dead letters under the product they name).
    pub events_by_product: BTreeMap<String, u64>,
    /// Real traffic spread over copies of its products: product → every player with a stat
    /// the tally models there (`None` otherwise: the checks then read every player).
    pub players_by_product: Option<BTreeMap<String, BTreeSet<String>>>,
}

impl Tally {
    /// Counts one event, as the generator `mark`ed it.
    fn record(&mut self, event: &Event, mark: Mark) {
        self.events += 1;
        let field = |name: &str| {
            event
                .iter()
                .find(|(key, _)| key == name)
                .map(|(_, value)| value.as_str())
        };
        if let Some(product) = field("product_id") {
            match self.events_by_product.get_mut(product) {
                Some(count) => *count += 1,
                None => {
                    self.events_by_product.insert(product.to_owned(), 1);
                }
            }
        }
        if mark == Mark::Bad {
            self.dead_letters += 1;
            self.writes.dead_letter_xadds += 1;
            return;
        }
        let Some(product) = field("product_id") else {
            return;
        };
        let kind = field("type").unwrap_or_default();
        // Team results name their players inside `teams`: read from the parsed sides below.
        for (name, value) in event {
            if value.starts_with(NEWCOMER_PREFIX) && name != "teams" {
                self.newcomers.insert(value.clone());
            }
        }
        match kind {
            "game_over" => {
                if let (Some(winner), Some(loser)) = (field("winner_id"), field("loser_id")) {
                    if mark == Mark::Sampled {
                        self.sample(product, winner, loser);
                    }
                    self.outcome(
                        product,
                        &[(vec![winner.to_owned()], 1), (vec![loser.to_owned()], 2)],
                    );
                }
            }
            "draw" => {
                if let (Some(a), Some(b)) = (field("p1_id"), field("p2_id")) {
                    self.outcome(product, &[(vec![a.to_owned()], 1), (vec![b.to_owned()], 1)]);
                }
            }
            "match_result" => match field("teams").and_then(sides) {
                Some(sides) => {
                    for player in sides.iter().flat_map(|(players, _)| players) {
                        if player.starts_with(NEWCOMER_PREFIX) {
                            self.newcomers.insert(player.clone());
                        }
                    }
                    self.outcome(product, &sides)
                }
                None => self.unmodelled(product, "match_result (unreadable teams)"),
            },
            "gameplay"
                if base_product(product) == "exrps"
                    && field("event_name") == Some("select_weapon") =>
            {
                let stat = match field("event_data") {
                    Some("0") => "rock_selection_count",
                    Some("1") => "paper_selection_count",
                    Some("2") => "scissors_selection_count",
                    // `null` and out-of-range indexes: the generator's valid misses.
                    _ => "botch_selection_count",
                };
                self.add(product, stat);
                if let Some(player) = field("user_id") {
                    self.played(product, player);
                }
                self.writes.hincrby += 1;
            }
            "gameplay" | "state_change" | "player_disconnect" | "game_removed" => {}
            other => self.unmodelled(product, other),
        }
    }

    /// A match outcome (sides with places, 1 best, equal places tie) under the default
    /// rules: `wins` +1 for each player of a sole first side, everyone else ensured on the
    /// board; stats `games` for all, `wins`/`draws`/`losses` by place.
    fn outcome(&mut self, product: &str, sides: &[(Vec<String>, u64)]) {
        let best = sides.iter().map(|(_, place)| *place).min().unwrap_or(1);
        let firsts = sides.iter().filter(|(_, place)| *place == best).count();
        for (players, place) in sides {
            let result = match (*place == best, firsts) {
                (true, 1) => "wins",
                (true, _) => "draws",
                _ => "losses",
            };
            for player in players {
                self.played(product, player);
                self.add(product, "games");
                self.add(product, result);
                self.writes.hincrby += 2;
                if result == "wins" {
                    *self.board_points.entry(product.to_owned()).or_default() += 1;
                    self.writes.zincrby += 1;
                } else {
                    self.writes.zadd += 1;
                }
            }
        }
    }

    fn add(&mut self, product: &str, stat: &'static str) {
        *self
            .stats
            .entry(product.to_owned())
            .or_default()
            .entry(stat)
            .or_default() += 1;
    }

    /// Notes that `player` has stats in `product`, when players are followed per product.
    fn played(&mut self, product: &str, player: &str) {
        if let Some(players) = self.players_by_product.as_mut() {
            let players = match players.get_mut(product) {
                Some(players) => players,
                None => players.entry(product.to_owned()).or_default(),
            };
            if !players.contains(player) {
                players.insert(player.to_owned());
            }
        }
    }

    fn unmodelled(&mut self, product: &str, kind: &str) {
        self.unmodelled
            .entry(product.to_owned())
            .or_default()
            .insert(kind.to_owned());
    }

    fn sample(&mut self, product: &str, winner: &str, loser: &str) {
        self.sampled_games
            .entry(product.to_owned())
            .or_default()
            .push((winner.to_owned(), loser.to_owned()));
    }

    /// Counts a probe (a valid `game_over` between two fresh players), always sampled.
    pub fn record_probe(&mut self, probe: &Probe) {
        self.record(&probe.event, Mark::Sampled);
        self.probe_players
            .extend([probe.winner.clone(), probe.loser.clone()]);
    }

    /// The players of the sampled games of `product`.
    pub fn sampled_players(&self, product: &str) -> Vec<String> {
        self.sampled_games
            .get(product)
            .into_iter()
            .flatten()
            .flat_map(|(winner, loser)| [winner.clone(), loser.clone()])
            .collect()
    }
}

/// How the tally treats a generated event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mark {
    Plain,
    /// Made to be dead-lettered.
    Bad,
    /// A fresh-player game kept for the checks (its players are looked at one by one).
    Sampled,
}

/// A `match_result`'s `teams` as (players, place) per side.
fn sides(teams: &str) -> Option<Vec<(Vec<String>, u64)>> {
    let teams: serde_json::Value = serde_json::from_str(teams).ok()?;
    teams
        .as_array()?
        .iter()
        .map(|team| {
            let players = team["players"]
                .as_array()?
                .iter()
                .map(|player| player.as_str().map(str::to_owned))
                .collect::<Option<Vec<_>>>()?;
            Some((players, team["place"].as_u64()?))
        })
        .collect()
}

/// Store commands the worker issues for some traffic (`ZINCRBY`, `ZADD NX`, `HINCRBY`,
/// dead-letter `XADD`), under the rules the tally models.
#[derive(Debug, Default, Clone, Copy)]
pub struct StoreWrites {
    pub zincrby: u64,
    pub zadd: u64,
    pub hincrby: u64,
    pub dead_letter_xadds: u64,
}

/// Where events come from.
enum Source {
    Real {
        players: usize,
        bad_percent: u64,
        newcomer_percent: u64,
        chunks: u64,
        /// Copies of each product the matches are spread over (1: the products as they are).
        copies: usize,
    },
    /// `game_over`s between new players, over `products` (uniformly at random).
    Fresh {
        products: Vec<String>,
        id_bytes: usize,
        rng: Rng,
        games: u64,
        /// Every this many games one is sampled.
        sample_every: u64,
    },
}

/// The shape of one run's traffic (see `--traffic` and its options).
#[derive(Debug, Clone)]
pub struct TrafficSpec {
    pub kind: TrafficKind,
    pub seed: u64,
    /// Real: the generator's players; big-board: the players the backlog puts on the board.
    pub players: usize,
    pub bad_percent: u64,
    pub newcomer_percent: u64,
    /// Churn: how many products; real: copies of each of its products the matches are
    /// spread over (1: none).
    pub products: usize,
    /// Churn and big-board: length of player ids.
    pub id_bytes: usize,
    /// Events the whole run will send (roughly), to size the fresh-player sample.
    pub expected_events: u64,
}

/// Endless traffic of one kind.
pub struct Traffic {
    seed: u64,
    source: Source,
    queue: VecDeque<(Event, Mark)>,
    pub tally: Tally,
}

impl Traffic {
    pub fn new(spec: &TrafficSpec) -> Self {
        let fresh = |products: Vec<String>| Source::Fresh {
            products,
            id_bytes: spec.id_bytes,
            rng: Rng::new(spec.seed),
            games: 0,
            sample_every: spec.expected_events.div_ceil(SAMPLED_GAMES).max(1),
        };
        let source = match spec.kind {
            TrafficKind::Real => Source::Real {
                players: spec.players,
                bad_percent: spec.bad_percent,
                newcomer_percent: spec.newcomer_percent,
                chunks: 0,
                copies: spec.products.max(1),
            },
            TrafficKind::Churn => fresh((0..spec.products).map(churn_product).collect()),
            TrafficKind::BigBoard => fresh(vec![BIG_BOARD_PRODUCT.to_owned()]),
        };
        let spread = spec.kind == TrafficKind::Real && spec.products > 1;
        Self {
            seed: spec.seed,
            source,
            queue: VecDeque::new(),
            tally: Tally {
                players_by_product: spread.then(BTreeMap::new),
                ..Tally::default()
            },
        }
    }

    /// The next `count` events, counted in the tally as they are handed out (not when
    /// generated: a chunk's tail may still wait in the queue when the benchmark ends).
    pub fn take(&mut self, count: usize) -> Vec<Event> {
        let mut events = Vec::with_capacity(count);
        while events.len() < count {
            match self.queue.pop_front() {
                Some((event, mark)) => {
                    self.tally.record(&event, mark);
                    events.push(event);
                }
                None => self.generate_chunk(),
            }
        }
        events
    }

    fn generate_chunk(&mut self) {
        match &mut self.source {
            Source::Real {
                players,
                bad_percent,
                newcomer_percent,
                chunks,
                copies,
            } => {
                // A seed per chunk: same `--seed`, same traffic, chunk after chunk.
                let seed = self.seed.wrapping_mul(1_000_003).wrapping_add(*chunks);
                *chunks += 1;
                let (mut events, bad) = mixed_run_with_newcomers(
                    seed,
                    MATCHES_PER_CHUNK,
                    *players,
                    *bad_percent,
                    *newcomer_percent,
                );
                spread_over_copies(&mut events, *copies, &mut Rng::new(seed ^ 0xC0_9135));
                let bad: HashSet<usize> = bad.into_iter().collect();
                self.queue
                    .extend(events.into_iter().enumerate().map(|(index, event)| {
                        let mark = if bad.contains(&index) {
                            Mark::Bad
                        } else {
                            Mark::Plain
                        };
                        (event, mark)
                    }));
            }
            Source::Fresh {
                products,
                id_bytes,
                rng,
                games,
                sample_every,
            } => {
                for _ in 0..FRESH_GAMES_PER_CHUNK {
                    let product = &products[rng.below(products.len() as u64) as usize];
                    let (event, ..) = fresh_game_over(rng, product, *games, *id_bytes);
                    let mark = if games.is_multiple_of(*sample_every) {
                        Mark::Sampled
                    } else {
                        Mark::Plain
                    };
                    *games += 1;
                    self.queue.push_back((event, mark));
                }
            }
        }
    }
}

/// Fresh-player games generated at a time.
const FRESH_GAMES_PER_CHUNK: usize = 2_000;

/// A latency probe: a `game_over` whose winner has never played, so `games = 1` in their
/// stats shows the event went all the way through.
pub struct Probe {
    pub event: Event,
    pub winner: String,
    pub loser: String,
}

impl Probe {
    /// Every probe player's id starts with this; no generated player's does.
    pub const PLAYER_PREFIX: &str = "probe:";

    pub fn new(n: u64) -> Self {
        let prefix = Self::PLAYER_PREFIX;
        let winner = format!("{prefix}{n:06}:winner");
        let loser = format!("{prefix}{n:06}:loser");
        let event = [
            ("product_id", PROBE_PRODUCT),
            ("game_id", &format!("{n:08x}-0000-4000-8000-0000000b0e5c")),
            ("type", "game_over"),
            ("winner_id", &winner),
            ("loser_id", &loser),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        Self {
            event,
            winner,
            loser,
        }
    }
}

/// Appends `events` to the stream in one pipeline, in order.
pub async fn xadd_all(conn: &mut impl ConnectionLike, events: &[Event]) -> Result<()> {
    let mut pipe = redis::pipe();
    for event in events {
        pipe.cmd("XADD").arg(STREAM).arg("*");
        for (name, value) in event {
            pipe.arg(name).arg(value);
        }
        pipe.ignore();
    }
    pipe.query_async::<()>(conn)
        .await
        .with_context(|| format!("XADD of {} events", events.len()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(kind: TrafficKind, expected_events: u64) -> TrafficSpec {
        TrafficSpec {
            kind,
            seed: 3,
            players: 100,
            bad_percent: 1,
            newcomer_percent: 20,
            products: 7,
            id_bytes: 20,
            expected_events,
        }
    }

    #[test]
    fn churn_tally_counts_two_new_players_per_game_and_samples_evenly() {
        // 250,000 expected events: one game in five is sampled.
        let mut traffic = Traffic::new(&spec(TrafficKind::Churn, 250_000));
        let events = traffic.take(5_000);
        let tally = &traffic.tally;
        assert_eq!(tally.events, 5_000);
        assert!(events.iter().all(|event| event[2].1 == "game_over"));
        assert_eq!(tally.stats.len(), 7);
        let sum = |stat: &str| -> u64 { tally.stats.values().map(|s| s[stat]).sum() };
        assert_eq!(
            (sum("games"), sum("wins"), sum("losses")),
            (10_000, 5_000, 5_000)
        );
        assert_eq!(tally.board_points.values().sum::<u64>(), 5_000);
        let sampled: usize = tally.sampled_games.values().map(Vec::len).sum();
        assert_eq!(sampled, 1_000);
        let players: BTreeSet<String> = tally
            .sampled_games
            .keys()
            .flat_map(|product| tally.sampled_players(product))
            .collect();
        assert_eq!(players.len(), 2_000, "every sampled player is new");
    }

    #[test]
    fn copies_keep_matches_whole_and_their_base_rules() {
        assert_eq!(copy_name("exrps", 0), "exrps");
        assert_eq!(copy_name("чемпионат", 12), "чемпионат-12");
        assert_eq!(base_product("exrps-3"), "exrps");
        assert_eq!(base_product("arena:2v2 {beta}-1"), "arena:2v2 {beta}");
        assert_eq!(base_product("exrps"), "exrps");
        assert_eq!(base_product("exrps-x"), "exrps-x");
        assert_eq!(base_product("churn-0001"), "churn-0001");

        let mut one = Traffic::new(&TrafficSpec {
            products: 1,
            ..spec(TrafficKind::Real, 0)
        });
        let mut five = Traffic::new(&TrafficSpec {
            products: 5,
            ..spec(TrafficKind::Real, 0)
        });
        let (plain, spread) = (one.take(20_000), five.take(20_000));
        assert!(one.tally.players_by_product.is_none());
        let field = |event: &Event, name: &str| {
            event
                .iter()
                .find(|(key, _)| key == name)
                .map(|(_, value)| value.clone())
        };
        // The same events but for the product; a match stays on one copy.
        let mut product_of_game: BTreeMap<String, String> = BTreeMap::new();
        for (a, b) in plain.iter().zip(&spread) {
            let (pa, pb) = (field(a, "product_id"), field(b, "product_id"));
            assert_eq!(pa.as_deref(), pb.as_deref().map(base_product));
            let mut a = a.clone();
            if let Some((_, product)) = a.iter_mut().find(|(name, _)| name == "product_id") {
                *product = pb.clone().expect("a product");
            }
            assert_eq!(&a, b);
            if let (Some(game), Some(product)) = (field(b, "game_id"), pb)
                && game != "g"
            {
                let first = product_of_game
                    .entry(game)
                    .or_insert_with(|| product.clone());
                assert_eq!(*first, product);
            }
        }
        let tally = &five.tally;
        assert_eq!(tally.stats.len(), 15, "{:?}", tally.stats.keys());
        assert!(tally.events_by_product.values().all(|&count| count > 0));
        // Weapon picks count on every copy of exrps, as the copied rules say.
        let weapons = |product: &str| tally.stats[product].get("rock_selection_count").copied();
        assert!(weapons("exrps").is_some() && weapons("exrps-4").is_some());
        assert_eq!(weapons("чемпионат-2"), None);
        let sum = |stat: &str, tally: &Tally| -> u64 {
            tally.stats.values().filter_map(|s| s.get(stat)).sum()
        };
        for stat in ["games", "wins", "rock_selection_count"] {
            assert_eq!(sum(stat, tally), sum(stat, &one.tally), "{stat}");
        }
        let players = tally.players_by_product.as_ref().expect("followed");
        assert_eq!(players.len(), 15);
    }

    #[test]
    fn real_tally_knows_its_newcomers() {
        let mut traffic = Traffic::new(&spec(TrafficKind::Real, 0));
        traffic.take(20_000);
        let tally = &traffic.tally;
        assert!(!tally.newcomers.is_empty());
        assert!(
            tally
                .newcomers
                .iter()
                .all(|id| id.starts_with(NEWCOMER_PREFIX))
        );
        assert!(tally.dead_letters > 0 && tally.sampled_games.is_empty());
    }
}
