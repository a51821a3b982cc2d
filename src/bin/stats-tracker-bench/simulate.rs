//! Realistic, reproducible traffic in the game servers' format (docs/EVENTS.md) for tests and
//! benchmarks: exrps matches as the real server writes them, matches of other products,
//! abandoned matches, matches bringing players never seen before, events the tracker must
//! dead-letter, and one-on-one `game_over`s between fresh players (the benchmark's churn).
//! Nothing here is used by the tracker itself.

/// One event: field/value pairs in the order they are appended.
pub type Event = Vec<(String, String)>;

/// A small deterministic PRNG (SplitMix64): a seed always gives the same traffic.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

/// An event as field/value pairs, in the order given.
pub fn event(pairs: &[(&str, &str)]) -> Event {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Player ids as seen from real servers: steam ids, non-Latin scripts, ids with `{`, spaces.
pub fn players(count: usize) -> Vec<String> {
    (0..count)
        .map(|i| match i % 5 {
            0 => format!("steam:7656119800000{i:04}"),
            1 => format!("игрок:ユーザー✓{i}"),
            2 => format!("{i}"),
            3 => format!("p {{{i}}}:x"),
            _ => format!("{:032x}", i as u128 * 0x9E37_79B9_7F4A_7C15),
        })
        .collect()
}

/// Picks two distinct players, favouring the first ones (skewed popularity).
fn pick_pair(rng: &mut Rng, players: &[String]) -> (String, String) {
    let n = players.len() as u64;
    let skewed = |rng: &mut Rng| {
        let a = rng.below(n);
        let b = rng.below(n);
        a.min(b) as usize
    };
    let a = skewed(rng);
    let mut b = skewed(rng);
    if a == b {
        b = (b + 1) % players.len();
    }
    (players[a].clone(), players[b].clone())
}

/// One exrps match, in the order the real server writes it (best of three rounds).
pub fn exrps_match(rng: &mut Rng, players: &[String], game: u64) -> Vec<Event> {
    let (a, b) = pick_pair(rng, players);
    let g = format!("{game:08x}-0000-4000-8000-{:012x}", rng.below(1 << 40));
    let p = "exrps";
    let mut events = vec![
        event(&[
            ("product_id", p),
            ("game_id", &g),
            ("type", "state_change"),
            ("new_state", "creator_joined"),
        ]),
        event(&[
            ("product_id", p),
            ("game_id", &g),
            ("type", "state_change"),
            ("new_state", "all_players_joined"),
        ]),
        event(&[
            ("product_id", p),
            ("game_id", &g),
            ("type", "gameplay"),
            ("event_name", "select_fighter"),
            ("event_data", "aru"),
            ("user_id", &a),
        ]),
        event(&[
            ("product_id", p),
            ("game_id", &g),
            ("type", "gameplay"),
            ("event_name", "select_fighter"),
            ("event_data", "hog"),
            ("user_id", &b),
        ]),
        event(&[
            ("product_id", p),
            ("game_id", &g),
            ("type", "gameplay"),
            ("event_name", "set_ready"),
            ("event_data", ""),
            ("user_id", &a),
        ]),
        event(&[
            ("product_id", p),
            ("game_id", &g),
            ("type", "gameplay"),
            ("event_name", "set_ready"),
            ("event_data", ""),
            ("user_id", &b),
        ]),
    ];
    if rng.chance(5) {
        // Abandoned: a disconnect is the only sign, no game_over follows.
        events.push(event(&[
            ("product_id", p),
            ("game_id", &g),
            ("type", "player_disconnect"),
            ("player_id", &a),
        ]));
        events.push(event(&[
            ("product_id", p),
            ("game_id", &g),
            ("type", "game_removed"),
        ]));
        return events;
    }
    let weapons = ["0", "1", "2", "null", "5"];
    let (mut a_rounds, mut b_rounds) = (0, 0);
    while a_rounds < 2 && b_rounds < 2 {
        events.push(event(&[
            ("product_id", p),
            ("game_id", &g),
            ("type", "gameplay"),
            ("event_name", "progression"),
            ("progress_event", "round_started"),
            ("p1_id", &a),
            ("p2_id", &b),
        ]));
        for _ in 0..=rng.below(3) {
            let wa = weapons[rng.below(5) as usize];
            let wb = weapons[rng.below(5) as usize];
            events.push(event(&[
                ("product_id", p),
                ("game_id", &g),
                ("type", "gameplay"),
                ("event_name", "select_weapon"),
                ("event_data", wa),
                ("user_id", &a),
            ]));
            events.push(event(&[
                ("product_id", p),
                ("game_id", &g),
                ("type", "gameplay"),
                ("event_name", "select_weapon"),
                ("event_data", wb),
                ("user_id", &b),
            ]));
        }
        let (winner, loser) = if rng.chance(50) {
            a_rounds += 1;
            (&a, &b)
        } else {
            b_rounds += 1;
            (&b, &a)
        };
        events.push(event(&[
            ("product_id", p),
            ("game_id", &g),
            ("type", "gameplay"),
            ("round_winner_id", winner),
            ("round_loser_id", loser),
            ("event_name", "progression"),
            ("progress_event", "round_finished"),
            ("p1_id", &a),
            ("p2_id", &b),
        ]));
    }
    let (winner, loser) = if a_rounds == 2 { (&a, &b) } else { (&b, &a) };
    if rng.chance(3) {
        // Now and then the server declares the match drawn instead.
        events.push(event(&[
            ("product_id", p),
            ("game_id", &g),
            ("type", "draw"),
            ("p1_id", &a),
            ("p2_id", &b),
        ]));
    } else {
        events.push(event(&[
            ("product_id", p),
            ("game_id", &g),
            ("type", "game_over"),
            ("winner_id", winner),
            ("loser_id", loser),
        ]));
    }
    events.push(event(&[
        ("product_id", p),
        ("game_id", &g),
        ("type", "player_disconnect"),
        ("player_id", loser),
    ]));
    events.push(event(&[
        ("product_id", p),
        ("game_id", &g),
        ("type", "game_removed"),
    ]));
    events
}

/// A `match_result` of `product`: two teams of two, or a four-player free-for-all, with an
/// occasional tie and per-player scores.
pub fn team_match(rng: &mut Rng, players: &[String], product: &str) -> Vec<Event> {
    let mut pool: Vec<&String> = players.iter().collect();
    let mut take = |rng: &mut Rng| pool.swap_remove(rng.below(pool.len() as u64) as usize);
    let sides: Vec<(Vec<&String>, u32)> = if rng.chance(50) {
        let tie = rng.chance(10);
        vec![
            (vec![take(rng), take(rng)], 1),
            (vec![take(rng), take(rng)], if tie { 1 } else { 2 }),
        ]
    } else {
        let tie = rng.chance(20);
        (1..=4u32)
            .map(|place| (vec![take(rng)], if tie && place == 3 { 2 } else { place }))
            .collect()
    };
    let teams: Vec<String> = sides
        .iter()
        .map(|(members, place)| {
            let ids: Vec<String> = members.iter().map(|m| json_string(m)).collect();
            let scores: Vec<String> = members
                .iter()
                .map(|m| format!("{}:{}", json_string(m), rng.below(50)))
                .collect();
            format!(
                r#"{{"place":{place},"players":[{}],"scores":{{{}}}}}"#,
                ids.join(","),
                scores.join(",")
            )
        })
        .collect();
    vec![event(&[
        ("product_id", product),
        ("game_id", &format!("{:x}", rng.next_u64())),
        ("type", "match_result"),
        ("teams", &format!("[{}]", teams.join(","))),
    ])]
}

/// A string as a JSON string literal.
fn json_string(text: &str) -> String {
    serde_json::Value::String(text.to_owned()).to_string()
}

/// A match of a product with no handlers of its own: lobby events and a result.
pub fn other_match(rng: &mut Rng, players: &[String], product: &str) -> Vec<Event> {
    let (a, b) = pick_pair(rng, players);
    let g = format!("{:x}", rng.next_u64());
    vec![
        event(&[
            ("product_id", product),
            ("game_id", &g),
            ("type", "state_change"),
            ("new_state", "all_players_joined"),
        ]),
        // Weapon picks mean nothing outside exrps, even malformed ones.
        event(&[
            ("product_id", product),
            ("game_id", &g),
            ("type", "gameplay"),
            ("event_name", "select_weapon"),
            ("event_data", "rock"),
            ("user_id", &a),
        ]),
        event(&[
            ("product_id", product),
            ("game_id", &g),
            ("type", "game_over"),
            ("winner_id", &a),
            ("loser_id", &b),
        ]),
    ]
}

/// An event the tracker must dead-letter.
pub fn bad_event(rng: &mut Rng, players: &[String]) -> Event {
    let a = players[rng.below(players.len() as u64) as usize].as_str();
    match rng.below(6) {
        0 => event(&[
            ("product_id", "exrps"),
            ("game_id", "g"),
            ("type", "game_over"),
            ("winner_id", a),
        ]),
        1 => event(&[
            ("product_id", "exrps"),
            ("game_id", "g"),
            ("type", "game_over"),
            ("winner_id", a),
            ("loser_id", a),
        ]),
        2 => event(&[
            ("product_id", "exrps"),
            ("game_id", "g"),
            ("type", "teleport"),
        ]),
        3 => event(&[
            ("game_id", "g"),
            ("type", "game_over"),
            ("winner_id", a),
            ("loser_id", "x"),
        ]),
        4 => event(&[
            ("product_id", "exrps"),
            ("game_id", "g"),
            ("type", "gameplay"),
            ("event_name", "select_weapon"),
            ("event_data", "rock"),
            ("user_id", a),
        ]),
        _ => event(&[
            ("product_id", "exrps"),
            ("game_id", "g"),
            ("type", "gameplay"),
            ("event_name", "select_weapon"),
            ("event_data", "1"),
        ]),
    }
}

/// A mixed run: exrps matches (a few drawn), team and free-for-all results of another
/// product, one-on-one results of a third, and `bad_percent`% bad events between matches.
/// Needs at least four players. Returns the events and the indexes of the bad ones.
// The tests' entry point (tests/api); the bench calls `mixed_run_with_newcomers`.
#[allow(dead_code)]
pub fn mixed_run(
    seed: u64,
    matches: usize,
    players_count: usize,
    bad_percent: u64,
) -> (Vec<Event>, Vec<usize>) {
    mixed_run_with_newcomers(seed, matches, players_count, bad_percent, 0)
}

/// Every newcomer's id starts with this; no id of [`players`] does.
pub const NEWCOMER_PREFIX: &str = "new:";

/// [`mixed_run`] where `newcomer_percent`% of matches bring a player never seen before (one of
/// the match's players is replaced by `new:<seed>:<match>`), as a game with a steady inflow
/// of new players has. With 0 it is exactly `mixed_run`.
pub fn mixed_run_with_newcomers(
    seed: u64,
    matches: usize,
    players_count: usize,
    bad_percent: u64,
    newcomer_percent: u64,
) -> (Vec<Event>, Vec<usize>) {
    let mut rng = Rng::new(seed);
    let players = players(players_count);
    let mut events = Vec::new();
    let mut bad = Vec::new();
    for game in 0..matches {
        let mut this = match rng.below(10) {
            0 => team_match(&mut rng, &players, "arena:2v2 {beta}"),
            1 => other_match(&mut rng, &players, "чемпионат"),
            _ => exrps_match(&mut rng, &players, game as u64),
        };
        // Drawn only when asked for, so the default traffic stays what it always was.
        if newcomer_percent > 0
            && rng.chance(newcomer_percent)
            && let Some(old) = first_player(&this)
        {
            rename_player(
                &mut this,
                &old,
                &format!("{NEWCOMER_PREFIX}{seed:x}:{game}"),
            );
        }
        events.extend(this);
        if rng.chance(bad_percent) {
            bad.push(events.len());
            events.push(bad_event(&mut rng, &players));
        }
    }
    (events, bad)
}

/// Fields whose value is one player's id.
const PLAYER_FIELDS: [&str; 8] = [
    "user_id",
    "player_id",
    "winner_id",
    "loser_id",
    "p1_id",
    "p2_id",
    "round_winner_id",
    "round_loser_id",
];

/// The first player a match's events name.
fn first_player(events: &[Event]) -> Option<String> {
    events.iter().flatten().find_map(|(name, value)| {
        if PLAYER_FIELDS.contains(&name.as_str()) {
            return Some(value.clone());
        }
        if name == "teams" {
            let teams: serde_json::Value = serde_json::from_str(value).ok()?;
            return teams[0]["players"][0].as_str().map(str::to_owned);
        }
        None
    })
}

/// Replaces player `old` by `new` wherever the events name them. Only player fields are
/// touched: a player id may equal another field's value (`"2"` is also a weapon).
fn rename_player(events: &mut [Event], old: &str, new: &str) {
    let (old_json, new_json) = (json_string(old), json_string(new));
    for (name, value) in events.iter_mut().flatten() {
        if PLAYER_FIELDS.contains(&name.as_str()) && value == old {
            new.clone_into(value);
        } else if name == "teams" {
            // Ids appear quoted in `players` and as `scores` keys: the quotes make it exact.
            *value = value.replace(&old_json, &new_json);
        }
    }
}

/// The id of fresh player `n` (`side` tells a game's two players apart), `bytes` long when
/// that leaves room for the unique part, padded with an id-like filler.
pub fn fresh_player(n: u64, side: char, bytes: usize) -> String {
    let mut id = format!("{side}{n:012}");
    const FILLER: &[u8] = b":steam-76561198-user-";
    let mut filler = FILLER.iter().cycle();
    while id.len() < bytes {
        id.push(char::from(*filler.next().unwrap_or(&b'x')));
    }
    id
}

/// Game `n` of the churn: a `game_over` of `product` between two players never seen before
/// (`w<n>…` beat `l<n>…`). Returns the event with its winner and loser.
pub fn fresh_game_over(
    rng: &mut Rng,
    product: &str,
    n: u64,
    id_bytes: usize,
) -> (Event, String, String) {
    let winner = fresh_player(n, 'w', id_bytes);
    let loser = fresh_player(n, 'l', id_bytes);
    let game = format!("{n:08x}-0000-4000-8000-{:012x}", rng.below(1 << 40));
    let event = event(&[
        ("product_id", product),
        ("game_id", &game),
        ("type", "game_over"),
        ("winner_id", &winner),
        ("loser_id", &loser),
    ]);
    (event, winner, loser)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newcomers_replace_one_player_of_the_chosen_share() {
        let (plain, _) = mixed_run(7, 200, 50, 1);
        assert_eq!(mixed_run_with_newcomers(7, 200, 50, 1, 0).0, plain);
        let (events, _) = mixed_run_with_newcomers(7, 200, 50, 0, 50);
        let newcomers: std::collections::BTreeSet<&str> = events
            .iter()
            .flatten()
            .filter(|(name, _)| PLAYER_FIELDS.contains(&name.as_str()))
            .map(|(_, value)| value.as_str())
            .filter(|id| id.starts_with(NEWCOMER_PREFIX))
            .collect();
        assert!((60..=140).contains(&newcomers.len()), "{}", newcomers.len());
        // Never a weapon or another field that happens to equal an id.
        assert!(events.iter().flatten().all(|(name, value)| {
            !value.starts_with(NEWCOMER_PREFIX) || PLAYER_FIELDS.contains(&name.as_str())
        }));
    }

    #[test]
    fn renaming_reaches_team_results_exactly() {
        let mut events = vec![event(&[(
            "teams",
            r#"[{"place":1,"players":["2","12"],"scores":{"2":5}},{"place":2,"players":["7"]}]"#,
        )])];
        assert_eq!(first_player(&events).as_deref(), Some("2"));
        rename_player(&mut events, "2", "new:x");
        assert_eq!(
            events[0][0].1,
            r#"[{"place":1,"players":["new:x","12"],"scores":{"new:x":5}},{"place":2,"players":["7"]}]"#
        );
    }

    #[test]
    fn fresh_players_are_distinct_and_as_long_as_asked() {
        assert_eq!(fresh_player(7, 'w', 20).len(), 20);
        assert_eq!(fresh_player(7, 'w', 128).len(), 128);
        assert_eq!(fresh_player(7, 'w', 1), "w000000000007");
        assert_ne!(fresh_player(7, 'w', 20), fresh_player(7, 'l', 20));
    }
}
