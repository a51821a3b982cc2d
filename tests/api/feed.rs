//! The change feed: board and rating events written to `<prefix>:{<product>}:feed` with the
//! effects that caused them. Here each kind of entry on a small, worked-out run; the crash
//! test (`crash.rs`) checks a SIGKILLed run's feed against the reference model.

use std::collections::HashMap;
use std::time::Duration;

use crate::helpers::{
    TestApp, TestConn, TestRedis, event, game_over, push_events, push_events_at,
    settings_with_games, wait_until_drained,
};

const GAMES: &str = r#"
[products.arcade]
boards = [
  { name = "wins", kind = "wins", windows = [], feed = { top = 3 } },
  { name = "best", kind = "max", when = { type = "gameplay", event_name = "score" }, player = "user_id", field = "event_data", windows = ["daily"], feed = { top = 2 } },
  { name = "elo", kind = "elo", initial_rating = 1500.0, k_factor = 32.0, feed = { top = 2 } },
  { name = "quiet", kind = "wins" },
]
"#;

/// The feed of `product`: each entry's fields, oldest first.
pub async fn feed_of(
    store: &mut impl TestConn,
    prefix: &str,
    product: &str,
) -> Vec<HashMap<String, String>> {
    let entries: Vec<(String, HashMap<String, String>)> = redis::cmd("XRANGE")
        .arg(format!("{prefix}:{{{product}}}:feed"))
        .arg("-")
        .arg("+")
        .query_async(store)
        .await
        .expect("XRANGE");
    entries.into_iter().map(|(_, fields)| fields).collect()
}

/// An entry's fields as `name=value` text, in a fixed order, for readable comparisons.
fn line(fields: &HashMap<String, String>) -> String {
    let parts: Vec<String> = [
        "type", "board", "period", "user_id", "rank", "score", "by", "previous",
    ]
    .iter()
    .filter_map(|name| {
        fields
            .get(*name)
            .filter(|value| !value.is_empty())
            .map(|value| format!("{name}={value}"))
    })
    .collect();
    parts.join(" ")
}

#[tokio::test]
async fn rank_changes_personal_bests_and_rating_changes_are_in_the_feed_once_each() {
    let redis = TestRedis::start().await;
    let settings = settings_with_games(&redis, GAMES);
    let app = TestApp::spawn(&settings, true).await;
    let mut stream = redis.connection(1).await;
    let game_over = |winner: &str, loser: &str| game_over("arcade", winner, loser);
    let score = |player: &str, value: &str| {
        event(&[
            ("product_id", "arcade"),
            ("type", "gameplay"),
            ("event_name", "score"),
            ("user_id", player),
            ("event_data", value),
        ])
    };
    let events = vec![
        game_over("A", "B"),
        game_over("C", "D"),
        game_over("D", "A"),
        score("A", "10"),
        score("A", "5"),
        score("A", "20"),
        score("B", "15"),
        score("B", "30"),
    ];
    let ids = push_events(&mut stream, &events).await;
    wait_until_drained(&mut stream, Duration::from_secs(10)).await;

    let mut store = redis.connection(0).await;
    let feed = feed_of(&mut store, &settings.store.key_prefix, "arcade").await;
    // Every entry names the stream entry that caused it.
    for entry in &feed {
        assert!(ids.contains(&entry["entry"]), "{entry:?}");
    }
    let board = |name: &str| -> Vec<String> {
        feed.iter()
            .filter(|entry| entry["board"] == name)
            .map(line)
            .collect()
    };
    let today = chrono::Utc::now().format("%Y-%m-%d").to_string();
    let daily = format!("period=daily:{today}");
    assert_eq!(
        board("wins"),
        vec![
            // A beats B: both enter the top 3.
            "type=entered_top board=wins user_id=A rank=1 score=1".to_owned(),
            "type=entered_top board=wins user_id=B rank=2 score=0".to_owned(),
            // C beats D: C enters behind A (the earlier achiever) and passes B; D (0, after
            // B) is fourth, outside the top.
            "type=entered_top board=wins user_id=C rank=2 score=1".to_owned(),
            "type=overtaken board=wins user_id=B rank=3 by=C".to_owned(),
            // D beats A: D reaches 1 (third, after A and C) and pushes B out of the top.
            "type=entered_top board=wins user_id=D rank=3 score=1".to_owned(),
            "type=overtaken board=wins user_id=B rank=4 by=D".to_owned(),
        ]
    );
    assert_eq!(
        board("best"),
        vec![
            "type=entered_top board=best user_id=A rank=1 score=10".to_owned(),
            format!("type=entered_top board=best {daily} user_id=A rank=1 score=10"),
            // 5 is no better than 10: nothing. 20 is a personal best (all-time only).
            "type=personal_best board=best user_id=A score=20 previous=10".to_owned(),
            "type=entered_top board=best user_id=B rank=2 score=15".to_owned(),
            format!("type=entered_top board=best {daily} user_id=B rank=2 score=15"),
            // B's 30 passes A, on the all-time board and the day's.
            "type=overtaken board=best user_id=A rank=2 by=B".to_owned(),
            "type=personal_best board=best user_id=B score=30 previous=15".to_owned(),
            format!("type=overtaken board=best {daily} user_id=A rank=2 by=B"),
        ]
    );
    // Ratings: a change per player per match, with the board's events of the move.
    let ratings: Vec<&HashMap<String, String>> = feed
        .iter()
        .filter(|entry| entry["type"] == "rating_changed")
        .collect();
    assert_eq!(ratings.len(), 6);
    assert_eq!(
        (
            ratings[0]["user_id"].as_str(),
            ratings[0]["before"].as_str(),
            ratings[0]["after"].as_str(),
            ratings[0]["matches"].as_str(),
        ),
        ("A", "1500", "1516", "1")
    );
    assert!(
        board("elo")
            .iter()
            .any(|l| l.starts_with("type=entered_top board=elo user_id=A rank=1"))
    );
    // A board without `feed` writes nothing there.
    assert!(board("quiet").is_empty());

    // The board says what it feeds.
    let (_, boards) = app.get_json("/v1/products/arcade/boards").await;
    assert_eq!(boards["boards"][0]["feed"]["top"], 3, "{boards}");
    app.stop().await;
}

/// One feed entry as the crash test compares them: its cause, type, board, player, rank,
/// score (or rating after), the player who passed them, the rating before.
#[derive(Debug, Clone, PartialEq)]
pub struct FeedLine {
    pub entry: String,
    pub kind: String,
    pub board: String,
    /// `<window>:<label>` for a period board, empty for the all-time one.
    pub period: String,
    pub user_id: String,
    pub rank: Option<u64>,
    pub score: Option<f64>,
    pub by: Option<String>,
    pub before: Option<f64>,
    /// A closed period's final standings: (player, score), best first.
    pub top: Option<Vec<(String, f64)>>,
}

impl FeedLine {
    fn from_fields(fields: &HashMap<String, String>) -> Self {
        let text = |name: &str| fields.get(name).cloned().unwrap_or_default();
        let number = |name: &str| fields.get(name).and_then(|v| v.parse::<f64>().ok());
        FeedLine {
            entry: text("entry"),
            kind: text("type"),
            board: text("board"),
            period: text("period"),
            user_id: text("user_id"),
            rank: fields.get("rank").and_then(|v| v.parse().ok()),
            score: number("score").or_else(|| number("after")),
            by: fields.get("by").cloned(),
            before: number("before"),
            top: fields.get("top").map(|top| {
                let rows: Vec<serde_json::Value> = serde_json::from_str(top).expect("JSON");
                rows.iter()
                    .map(|row| {
                        let player = row["user_id"].as_str().unwrap_or_default().to_owned();
                        (player, row["score"].as_f64().unwrap_or_default())
                    })
                    .collect()
            }),
        }
    }
}

/// The feed of `product` as stored.
pub async fn stored_feed(store: &mut impl TestConn, prefix: &str, product: &str) -> Vec<FeedLine> {
    feed_of(store, prefix, product)
        .await
        .iter()
        .map(FeedLine::from_fields)
        .collect()
}

/// A board of the model: player → (score, stamp), ranked best score first, then earlier
/// stamp, then player id (the order of the stored members `<stamp><player>`).
#[derive(Default)]
struct ModelBoard {
    scores: HashMap<String, (f64, usize)>,
}

impl ModelBoard {
    fn order(&self) -> Vec<&String> {
        let mut players: Vec<&String> = self.scores.keys().collect();
        players.sort_by(|a, b| {
            let (sa, ta) = self.scores[*a];
            let (sb, tb) = self.scores[*b];
            sb.total_cmp(&sa)
                .then(ta.cmp(&tb))
                .then(a.as_bytes().cmp(b.as_bytes()))
        });
        players
    }

    fn rank(&self, player: &str) -> Option<usize> {
        self.order().iter().position(|p| p.as_str() == player)
    }

    /// Sets `player`'s score (a change, stamped `stamp`) and appends the feed entries of the
    /// move, as commit.lua's `feed_ranks` does.
    #[allow(clippy::too_many_arguments)]
    fn set(
        &mut self,
        feed: &mut Vec<FeedLine>,
        entry: &str,
        (board, period): (&str, &str),
        top: usize,
        player: &str,
        score: f64,
        stamp: usize,
    ) {
        let old_rank = self.rank(player);
        self.scores.insert(player.to_owned(), (score, stamp));
        let order = self.order();
        let rank = order.iter().position(|p| p.as_str() == player).unwrap_or(0);
        if rank >= top {
            return;
        }
        let line = |kind: &str, user_id: &str| FeedLine {
            entry: entry.to_owned(),
            kind: kind.to_owned(),
            board: board.to_owned(),
            period: period.to_owned(),
            user_id: user_id.to_owned(),
            rank: None,
            score: None,
            by: None,
            before: None,
            top: None,
        };
        if old_rank.is_none_or(|old| old >= top) {
            feed.push(FeedLine {
                rank: Some(rank as u64 + 1),
                score: Some(score),
                ..line("entered_top", player)
            });
        }
        // Those passed were at rank…old_rank - 1, one lower now; in the top before the move.
        let last = old_rank.map_or(top, |old| old.min(top));
        let passed = order
            .iter()
            .enumerate()
            .skip(rank + 1)
            .take(last.saturating_sub(rank));
        for (position, passed) in passed {
            feed.push(FeedLine {
                rank: Some(position as u64 + 1),
                by: Some(player.to_owned()),
                ..line("overtaken", passed)
            });
        }
    }
}

/// The feed exrps writes for `events` (those at `bad` are dead-lettered) with `feed = { top }`
/// on its `wins` board (all-time and its daily, weekly and monthly periods) and its Elo board
/// (`k_factor`, `initial_rating`), in that order.
pub fn expected_exrps_feed(
    events: &[crate::simulate::Event],
    bad: &[usize],
    ids: &[String],
    top: usize,
    k_factor: f64,
    initial_rating: f64,
) -> Vec<FeedLine> {
    use skillratings::elo::{EloConfig, EloRating, elo};
    let mut feed = Vec::new();
    use stats_tracker::leaderboards::windows::{CALENDAR, Window};
    // The all-time board ("") and each period's, by its `<window>:<label>`.
    let mut wins: HashMap<String, ModelBoard> = HashMap::new();
    let mut elo_board = ModelBoard::default();
    // Periods whose close the feed announced.
    let mut closed: std::collections::HashSet<String> = std::collections::HashSet::new();
    let mut ratings: HashMap<String, (f64, u64)> = HashMap::new();
    for (index, event) in events.iter().enumerate() {
        let get = |name: &str| {
            event
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
                .unwrap_or_default()
        };
        if bad.contains(&index) || get("product_id") != "exrps" {
            continue;
        }
        // Players in the outcome's team order, and whether the first won.
        let (a, b, first_won) = match get("type").as_str() {
            "game_over" => (get("winner_id"), get("loser_id"), true),
            "draw" => (get("p1_id"), get("p2_id"), false),
            _ => continue,
        };
        let entry = &ids[index];
        let at_ms: u64 = entry
            .split('-')
            .next()
            .and_then(|ms| ms.parse().ok())
            .expect("a stream id");
        // Each target with the period before it (none for all-time).
        let targets: Vec<(String, String)> = std::iter::once((String::new(), String::new()))
            .chain(CALENDAR.into_iter().map(|name| {
                let window = Window::calendar(name).expect("a calendar window");
                let period = window.period_at(at_ms).expect("a period");
                let previous = window.previous(&period).expect("a period before");
                (period.key_suffix(), previous.key_suffix())
            }))
            .collect();
        // wins: the winner's score + 1; a loser (both, in a draw) put on the board at 0; on
        // each target in turn.
        for (player, won) in [(&a, first_won), (&b, false)] {
            for (period, previous) in &targets {
                let board = wins.entry(period.clone()).or_default();
                let current = board.scores.get(player.as_str()).map(|(s, _)| *s);
                let score = match (won, current) {
                    (true, current) => current.unwrap_or(0.0) + 1.0,
                    (false, None) => 0.0,
                    (false, Some(_)) => continue,
                };
                // A period's first score closes the one before, once, if it had any.
                let opens = board.scores.is_empty() && !period.is_empty();
                if opens
                    && !closed.contains(previous)
                    && let Some(before) = wins.get(previous).filter(|b| !b.scores.is_empty())
                {
                    let standings = before
                        .order()
                        .into_iter()
                        .take(top)
                        .map(|p| (p.clone(), before.scores[p].0))
                        .collect();
                    closed.insert(previous.clone());
                    feed.push(FeedLine {
                        entry: entry.clone(),
                        kind: "period_closed".to_owned(),
                        board: "wins".to_owned(),
                        period: previous.clone(),
                        user_id: String::new(),
                        rank: None,
                        score: None,
                        by: None,
                        before: None,
                        top: Some(standings),
                    });
                }
                let board = wins.entry(period.clone()).or_default();
                board.set(
                    &mut feed,
                    entry,
                    ("wins", period),
                    top,
                    player,
                    score,
                    index,
                );
            }
        }
        // elo: both rated, then each player's rating change and board move, in order.
        let (ra, ma) = ratings.get(&a).copied().unwrap_or((initial_rating, 0));
        let (rb, mb) = ratings.get(&b).copied().unwrap_or((initial_rating, 0));
        let outcome = if first_won {
            skillratings::Outcomes::WIN
        } else {
            skillratings::Outcomes::DRAW
        };
        let (na, nb) = elo(
            &EloRating { rating: ra },
            &EloRating { rating: rb },
            &outcome,
            &EloConfig { k: k_factor },
        );
        for (player, before, after, matches) in
            [(&a, ra, na.rating, ma + 1), (&b, rb, nb.rating, mb + 1)]
        {
            ratings.insert(player.clone(), (after, matches));
            feed.push(FeedLine {
                entry: entry.clone(),
                kind: "rating_changed".to_owned(),
                board: "elo".to_owned(),
                period: String::new(),
                user_id: player.clone(),
                rank: None,
                score: Some(after),
                by: None,
                before: Some(before),
                top: None,
            });
            let shown = elo_board.scores.get(player.as_str()).map(|(s, _)| *s);
            if shown != Some(after) {
                elo_board.set(&mut feed, entry, ("elo", ""), top, player, after, index);
            }
        }
    }
    feed
}

#[tokio::test]
async fn a_period_closes_in_the_feed_with_its_final_top_when_the_next_begins() {
    let redis = TestRedis::start().await;
    let settings = settings_with_games(
        &redis,
        r#"
[products.arcade]
boards = [
  { name = "wins", kind = "wins", windows = ["daily"], feed = { top = 2 } },
]
"#,
    );
    let app = TestApp::spawn(&settings, true).await;
    let mut stream = redis.connection(1).await;
    let game_over = |winner: &str, loser: &str| game_over("arcade", winner, loser);
    const DAY: u64 = 86_400_000;
    let now = chrono::Utc::now().timestamp_millis() as u64;
    let yesterday = now / DAY * DAY - DAY;
    let date = |ms: u64| {
        chrono::DateTime::from_timestamp_millis(ms as i64)
            .expect("a date")
            .format("%Y-%m-%d")
            .to_string()
    };
    // Yesterday: C wins twice, A once; today's first game closes yesterday, once.
    let day_one = [
        game_over("C", "A"),
        game_over("A", "B"),
        game_over("C", "B"),
    ];
    push_events_at(&mut stream, &day_one, Some(yesterday + 1_000)).await;
    let day_two = [game_over("B", "A"), game_over("A", "C")];
    push_events_at(&mut stream, &day_two, Some(yesterday + DAY + 1_000)).await;
    wait_until_drained(&mut stream, Duration::from_secs(10)).await;

    let mut store = redis.connection(0).await;
    let feed = feed_of(&mut store, &settings.store.key_prefix, "arcade").await;
    let closes: Vec<&HashMap<String, String>> = feed
        .iter()
        .filter(|entry| entry["type"] == "period_closed")
        .collect();
    assert_eq!(closes.len(), 1, "{feed:?}");
    assert_eq!(closes[0]["board"], "wins");
    assert_eq!(closes[0]["period"], format!("daily:{}", date(yesterday)));
    let top: serde_json::Value = serde_json::from_str(&closes[0]["top"]).expect("JSON");
    assert_eq!(
        top,
        serde_json::json!([
            {"rank": 1, "user_id": "C", "score": 2},
            {"rank": 2, "user_id": "A", "score": 1},
        ])
    );
    // It comes before the entries of today's board.
    let position = |kind: &str, period: &str| {
        feed.iter()
            .position(|e| e["type"] == kind && e["period"] == period)
            .expect("an entry")
    };
    let today = format!("daily:{}", date(yesterday + DAY));
    assert!(
        position("period_closed", &format!("daily:{}", date(yesterday)))
            < position("entered_top", &today)
    );
    app.stop().await;
}

#[tokio::test]
async fn the_feed_is_trimmed_to_about_its_setting() {
    let redis = TestRedis::start().await;
    let mut settings = settings_with_games(
        &redis,
        r#"
[products.arcade]
boards = [{ name = "elo", kind = "elo", feed = { top = 1 } }]
"#,
    );
    settings.worker.feed_max_entries = 5;
    let app = TestApp::spawn(&settings, true).await;
    let mut stream = redis.connection(1).await;
    // Every match rates two players: at least 600 feed entries.
    let events: Vec<_> = (0..300)
        .map(|n| {
            event(&[
                ("product_id", "arcade"),
                ("type", "game_over"),
                ("winner_id", &format!("p{}", n % 7)),
                ("loser_id", &format!("p{}", 7 + n % 5)),
            ])
        })
        .collect();
    push_events(&mut stream, &events).await;
    wait_until_drained(&mut stream, Duration::from_secs(20)).await;
    let mut store = redis.connection(0).await;
    let kept: u64 = redis::cmd("XLEN")
        .arg("st_test:{arcade}:feed")
        .query_async(&mut store)
        .await
        .expect("XLEN");
    // Redis trims whole stream nodes (100 entries): about the setting, far below 600.
    assert!((5..=200).contains(&kept), "{kept} entries kept");
    app.stop().await;
}
