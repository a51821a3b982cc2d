//! The benchmark's traffic: an endless stream of realistic events from
//! `simulate::mixed_run` (the tracker's definition of realistic traffic,
//! asked for a few hundred matches at a time so a million events never sit in memory at
//! once), a tally of what the tracker must make of them, probe events for latency, and
//! pipelined `XADD`s.
//!
//! The tally follows the documented default rules (docs/EVENTS.md, README), written here
//! independently of the tracker's handlers, so the final check compares the tracker against
//! the traffic, not against itself. Event types it does not model are noted, and the sums of
//! their products are then left unchecked rather than guessed.

use std::collections::{BTreeMap, BTreeSet, HashSet, VecDeque};

use crate::simulate::{Event, mixed_run};
use anyhow::{Context, Result};
use redis::aio::MultiplexedConnection;

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
    /// product → event types seen that this tally does not model.
    pub unmodelled: BTreeMap<String, BTreeSet<String>>,
}

impl Tally {
    /// Counts one event (`bad` = the generator made it to be dead-lettered).
    fn record(&mut self, event: &Event, bad: bool) {
        self.events += 1;
        if bad {
            self.dead_letters += 1;
            self.writes.dead_letter_xadds += 1;
            return;
        }
        let field = |name: &str| {
            event
                .iter()
                .find(|(key, _)| key == name)
                .map(|(_, value)| value.as_str())
        };
        let Some(product) = field("product_id") else {
            return;
        };
        let kind = field("type").unwrap_or_default();
        match kind {
            "game_over" => {
                if let (Some(winner), Some(loser)) = (field("winner_id"), field("loser_id")) {
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
                Some(sides) => self.outcome(product, &sides),
                None => self.unmodelled(product, "match_result (unreadable teams)"),
            },
            "gameplay" if product == "exrps" && field("event_name") == Some("select_weapon") => {
                let stat = match field("event_data") {
                    Some("0") => "rock_selection_count",
                    Some("1") => "paper_selection_count",
                    Some("2") => "scissors_selection_count",
                    // `null` and out-of-range indexes: the generator's valid misses.
                    _ => "botch_selection_count",
                };
                self.add(product, stat);
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
            for _ in players {
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

    fn unmodelled(&mut self, product: &str, kind: &str) {
        self.unmodelled
            .entry(product.to_owned())
            .or_default()
            .insert(kind.to_owned());
    }

    /// Counts a probe (a valid `game_over` between two fresh players).
    pub fn record_probe(&mut self, probe: &Probe) {
        self.record(&probe.event, false);
        self.probe_players
            .extend([probe.winner.clone(), probe.loser.clone()]);
    }
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

/// Endless realistic traffic.
pub struct Traffic {
    seed: u64,
    players: usize,
    bad_percent: u64,
    chunks: u64,
    queue: VecDeque<(Event, bool)>,
    pub tally: Tally,
}

impl Traffic {
    pub fn new(seed: u64, players: usize, bad_percent: u64) -> Self {
        Self {
            seed,
            players,
            bad_percent,
            chunks: 0,
            queue: VecDeque::new(),
            tally: Tally::default(),
        }
    }

    /// The next `count` events, counted in the tally as they are handed out (not when
    /// generated: a chunk's tail may still wait in the queue when the benchmark ends).
    pub fn take(&mut self, count: usize) -> Vec<Event> {
        let mut events = Vec::with_capacity(count);
        while events.len() < count {
            match self.queue.pop_front() {
                Some((event, bad)) => {
                    self.tally.record(&event, bad);
                    events.push(event);
                }
                None => self.generate_chunk(),
            }
        }
        events
    }

    fn generate_chunk(&mut self) {
        // A seed per chunk: same `--seed`, same traffic, chunk after chunk.
        let seed = self.seed.wrapping_mul(1_000_003).wrapping_add(self.chunks);
        self.chunks += 1;
        let (events, bad) = mixed_run(seed, MATCHES_PER_CHUNK, self.players, self.bad_percent);
        let bad: HashSet<usize> = bad.into_iter().collect();
        self.queue.extend(
            events
                .into_iter()
                .enumerate()
                .map(|(index, event)| (event, bad.contains(&index))),
        );
    }
}

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
pub async fn xadd_all(conn: &mut MultiplexedConnection, events: &[Event]) -> Result<()> {
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
