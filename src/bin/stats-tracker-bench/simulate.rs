//! Realistic, reproducible traffic in the game servers' format (docs/EVENTS.md) for tests and
//! benchmarks: exrps matches as the real server writes them, matches of other products,
//! abandoned matches, and events the tracker must dead-letter. Nothing here is used by the
//! tracker itself.

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
pub fn mixed_run(
    seed: u64,
    matches: usize,
    players_count: usize,
    bad_percent: u64,
) -> (Vec<Event>, Vec<usize>) {
    let mut rng = Rng::new(seed);
    let players = players(players_count);
    let mut events = Vec::new();
    let mut bad = Vec::new();
    for game in 0..matches {
        match rng.below(10) {
            0 => events.extend(team_match(&mut rng, &players, "arena:2v2 {beta}")),
            1 => events.extend(other_match(&mut rng, &players, "чемпионат")),
            _ => events.extend(exrps_match(&mut rng, &players, game as u64)),
        }
        if rng.chance(bad_percent) {
            bad.push(events.len());
            events.push(bad_event(&mut rng, &players));
        }
    }
    (events, bad)
}
