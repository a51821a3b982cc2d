//! Ranked leaderboards through HTTP: ties, rank styles, paging both ways, a player's
//! standing, several players at once, and period boards rolling over and expiring.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use chrono::{Datelike, TimeZone, Utc};
use serde_json::{Value, json};

use crate::helpers::{
    TestApp, TestRedis, push_events, push_events_at, settings, urlencode, wait_until_drained,
};
use crate::traffic::{Event, Rng};

fn game_over(winner: &str, loser: &str) -> Event {
    vec![
        ("product_id".into(), "exrps".into()),
        ("type".into(), "game_over".into()),
        ("winner_id".into(), winner.into()),
        ("loser_id".into(), loser.into()),
    ]
}

/// `(user_id, rank, score)` of a page's or a list's rows.
fn rows(entries: &Value) -> Vec<(String, u64, i64)> {
    entries
        .as_array()
        .expect("rows")
        .iter()
        .map(|row| {
            (
                row["user_id"].as_str().expect("user_id").to_owned(),
                row["rank"].as_u64().expect("rank"),
                row["score"].as_i64().expect("score"),
            )
        })
        .collect()
}

fn row(user: &str, rank: u64, score: i64) -> (String, u64, i64) {
    (user.to_owned(), rank, score)
}

#[tokio::test]
async fn ties_rank_standard_dense_or_ordinal_with_earlier_achievers_first() {
    let redis = TestRedis::start().await;
    let app = TestApp::spawn(&settings(&redis), true).await;
    let mut stream = redis.connection(1).await;
    // A ends on 3, B reaches 2 before C does, D 1, E 0.
    let games = [
        ("A", "E"),
        ("B", "E"),
        ("C", "E"),
        ("A", "D"),
        ("B", "D"),
        ("C", "D"),
        ("A", "E"),
        ("D", "E"),
    ];
    let events: Vec<Event> = games.iter().map(|(w, l)| game_over(w, l)).collect();
    push_events(&mut stream, &events).await;
    wait_until_drained(&mut stream, Duration::from_secs(10)).await;

    let page = |ranking: &'static str| {
        let app = &app;
        async move {
            let (status, body) = app
                .get_json(&format!(
                    "/v1/products/exrps/boards/wins/entries?ranking={ranking}"
                ))
                .await;
            assert_eq!(status, 200, "{body}");
            assert_eq!(body["total"], 5);
            assert_eq!(body["ranking"], ranking);
            rows(&body["entries"])
        }
    };
    assert_eq!(
        page("standard").await,
        vec![
            row("A", 1, 3),
            row("B", 2, 2),
            row("C", 2, 2),
            row("D", 4, 1),
            row("E", 5, 0)
        ]
    );
    assert_eq!(
        page("dense").await,
        vec![
            row("A", 1, 3),
            row("B", 2, 2),
            row("C", 2, 2),
            row("D", 3, 1),
            row("E", 4, 0)
        ]
    );
    assert_eq!(
        page("ordinal").await,
        vec![
            row("A", 1, 3),
            row("B", 2, 2),
            row("C", 3, 2),
            row("D", 4, 1),
            row("E", 5, 0)
        ]
    );
    // Standard is the default; a page in the middle ranks its first row from the index.
    let (_, body) = app
        .get_json("/v1/products/exrps/boards/wins/entries?offset=2&limit=2")
        .await;
    assert_eq!(body["ranking"], "standard");
    assert_eq!(rows(&body["entries"]), vec![row("C", 2, 2), row("D", 4, 1)]);
    let (_, body) = app
        .get_json("/v1/products/exrps/boards/wins/entries?offset=2&limit=2&ranking=dense")
        .await;
    assert_eq!(rows(&body["entries"]), vec![row("C", 2, 2), row("D", 3, 1)]);

    // C draws level with A later than A got there: A stays ahead.
    push_events(&mut stream, &[game_over("C", "E")]).await;
    wait_until_drained(&mut stream, Duration::from_secs(10)).await;
    assert_eq!(
        page("standard").await,
        vec![
            row("A", 1, 3),
            row("C", 1, 3),
            row("B", 3, 2),
            row("D", 4, 1),
            row("E", 5, 0)
        ]
    );

    // The original top-ten route is unchanged by all this.
    let (status, top) = app.get_json("/leaderboards/top_ten/exrps").await;
    assert_eq!(status, 200);
    assert_eq!(top.as_array().map(Vec::len), Some(5));
    app.stop().await;
}

/// The expected board after `games`: per player, score and the index of the game that gave
/// them that score (their first game for a player who never won).
fn reference_board(games: &[(String, String)]) -> Vec<(String, i64)> {
    let mut board: BTreeMap<String, (i64, usize)> = BTreeMap::new();
    for (index, (winner, loser)) in games.iter().enumerate() {
        let entry = board.entry(winner.clone()).or_insert((0, index));
        *entry = (entry.0 + 1, index);
        board.entry(loser.clone()).or_insert((0, index));
    }
    let mut rows: Vec<(String, i64, usize)> = board
        .into_iter()
        .map(|(player, (score, at))| (player, score, at))
        .collect();
    rows.sort_by(|a, b| b.1.cmp(&a.1).then(a.2.cmp(&b.2)));
    rows.into_iter().map(|(p, s, _)| (p, s)).collect()
}

/// `count` games between random pairs of `players`, the same for the same `seed`.
fn random_games(players: &[String], count: usize, seed: u64) -> Vec<(String, String)> {
    let mut rng = Rng::new(seed);
    let n = players.len() as u64;
    (0..count)
        .map(|_| {
            let winner = rng.below(n) as usize;
            let loser = (winner + 1 + rng.below(n - 1) as usize) % players.len();
            (players[winner].clone(), players[loser].clone())
        })
        .collect()
}

/// Pushes a `game_over` per game and waits until the worker has applied them all.
async fn play(stream: &mut redis::aio::MultiplexedConnection, games: &[(String, String)]) {
    let events: Vec<Event> = games.iter().map(|(w, l)| game_over(w, l)).collect();
    push_events(stream, &events).await;
    wait_until_drained(stream, Duration::from_secs(20)).await;
}

#[tokio::test]
async fn paging_forwards_and_backwards_never_skips_repeats_or_misranks() {
    let redis = TestRedis::start().await;
    let app = TestApp::spawn(&settings(&redis), true).await;
    let mut stream = redis.connection(1).await;
    let players: Vec<String> = (0..60).map(|i| format!("p{i:02}:{{x}} ü")).collect();
    let games = random_games(&players, 400, 7);
    play(&mut stream, &games).await;

    let expected = reference_board(&games);
    let total = expected.len() as u64;
    // Standard competition rank: 1 + players with a better score.
    let expected_rows: Vec<(String, u64, i64)> = expected
        .iter()
        .map(|(player, score)| {
            let better = expected.iter().filter(|(_, s)| s > score).count() as u64;
            (player.clone(), better + 1, *score)
        })
        .collect();
    let base = "/v1/products/exrps/boards/wins/entries";

    // One page holding everything.
    let (_, whole) = app.get_json(&format!("{base}?limit=1000")).await;
    assert_eq!(whole["total"], total);
    assert_eq!(rows(&whole["entries"]), expected_rows);
    assert_eq!(whole["next"], Value::Null);
    assert_eq!(whole["prev"], Value::Null);

    // Forwards by cursor, 7 at a time.
    let mut forwards = Vec::new();
    let (_, mut page) = app.get_json(&format!("{base}?limit=7")).await;
    let mut pages = 1;
    loop {
        assert_eq!(page["total"], total);
        forwards.extend(rows(&page["entries"]));
        let Some(next) = page["next"].as_str() else {
            break;
        };
        page = app
            .get_json(&format!("{base}?limit=7&after={next}"))
            .await
            .1;
        pages += 1;
    }
    assert_eq!(forwards, expected_rows);
    assert_eq!(pages, total.div_ceil(7));

    // Backwards from the last page by cursor, 7 at a time.
    let (_, last) = app
        .get_json(&format!("{base}?limit=7&offset={}", total - 7))
        .await;
    let mut backwards: Vec<Vec<(String, u64, i64)>> = vec![rows(&last["entries"])];
    let mut prev = last["prev"].as_str().map(str::to_owned);
    while let Some(cursor) = prev {
        let (status, page) = app
            .get_json(&format!("{base}?limit=7&before={cursor}"))
            .await;
        assert_eq!(status, 200, "{page}");
        backwards.push(rows(&page["entries"]));
        prev = page["prev"].as_str().map(str::to_owned);
    }
    let backwards: Vec<_> = backwards.into_iter().rev().flatten().collect();
    assert_eq!(backwards, expected_rows);

    // Offsets agree with cursors, in every rank style's ordering.
    for offset in [0, 1, 13, total - 1, total, total + 5] {
        let (_, page) = app
            .get_json(&format!("{base}?limit=5&offset={offset}&ranking=ordinal"))
            .await;
        let got = rows(&page["entries"]);
        let want: Vec<_> = expected_rows
            .iter()
            .enumerate()
            .skip(offset as usize)
            .take(5)
            .map(|(i, (p, _, s))| (p.clone(), i as u64 + 1, *s))
            .collect();
        assert_eq!(got, want, "offset {offset}");
    }

    // Bad paging requests are 400s that say what is wrong.
    for (query, code) in [
        ("limit=1001", "invalid_query"),
        ("limit=-1", "invalid_query"),
        ("offset=1&after=00", "invalid_query"),
        ("after=zz", "invalid_cursor"),
        ("before=616263", "invalid_cursor"),
        ("ranking=olympic", "invalid_query"),
        ("limt=5", "invalid_query"),
        ("window=hourly", "invalid_query"),
        ("period=2026-11-25", "invalid_query"),
        ("window=daily&period=2026-13-01", "invalid_query"),
    ] {
        let (status, body) = app.get_json(&format!("{base}?{query}")).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (400, Some(code)),
            "{query}: {body}"
        );
    }
    let (status, body) = app.get_json("/v1/products/exrps/boards/nope/entries").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("board_not_found"))
    );

    // A player's standing: rank, score and neighbours, equal to the full page's rows.
    let middle = &expected_rows[20];
    let (status, standing) = app
        .get_json(&format!(
            "/v1/products/exrps/boards/wins/players/{}?around=3",
            urlencode(&middle.0)
        ))
        .await;
    assert_eq!(status, 200, "{standing}");
    assert_eq!(
        (
            standing["user_id"].as_str(),
            standing["rank"].as_u64(),
            standing["score"].as_i64()
        ),
        (Some(middle.0.as_str()), Some(middle.1), Some(middle.2))
    );
    assert_eq!(standing["total"], total);
    assert_eq!(rows(&standing["around"]), expected_rows[17..24].to_vec());
    // At the top, "around" is cut at the board's edge.
    let (_, top) = app
        .get_json(&format!(
            "/v1/products/exrps/boards/wins/players/{}?around=2&ranking=ordinal",
            urlencode(&expected_rows[0].0)
        ))
        .await;
    assert_eq!(top["rank"], 1);
    assert_eq!(top["around"].as_array().map(Vec::len), Some(3));
    // Every player's standing with no rows around (the default): rank and score as on the page.
    for (player, rank, score) in &expected_rows {
        let (status, standing) = app
            .get_json(&format!(
                "/v1/products/exrps/boards/wins/players/{}",
                urlencode(player)
            ))
            .await;
        assert_eq!(status, 200, "{standing}");
        assert_eq!(
            (standing["rank"].as_u64(), standing["score"].as_i64()),
            (Some(*rank), Some(*score)),
            "{player}"
        );
        assert_eq!(
            rows(&standing["around"]),
            vec![(player.clone(), *rank, *score)]
        );
    }
    let (status, missing) = app
        .get_json("/v1/products/exrps/boards/wins/players/nobody")
        .await;
    assert_eq!(
        (status, missing["error"]["code"].as_str()),
        (404, Some("player_not_on_board"))
    );

    // Several players at once: ranks as on the page, best first; unknown ones listed.
    let friends = [
        &expected_rows[30].0,
        &expected_rows[2].0,
        &expected_rows[45].0,
    ];
    let mut query: Vec<String> = friends
        .iter()
        .map(|id| format!("user_id={}", urlencode(id)))
        .collect();
    query.push("user_id=nobody".into());
    let (status, ranks) = app
        .get_json(&format!(
            "/v1/products/exrps/boards/wins/ranks?{}",
            query.join("&")
        ))
        .await;
    assert_eq!(status, 200, "{ranks}");
    assert_eq!(
        rows(&ranks["entries"]),
        vec![
            expected_rows[2].clone(),
            expected_rows[30].clone(),
            expected_rows[45].clone()
        ]
    );
    assert_eq!(ranks["not_on_board"], json!(["nobody"]));
    let (status, none_there) = app
        .get_json("/v1/products/exrps/boards/wins/ranks?user_id=nobody&user_id=ghost")
        .await;
    assert_eq!(status, 200, "{none_there}");
    assert_eq!(none_there["entries"], json!([]));
    assert_eq!(none_there["not_on_board"], json!(["nobody", "ghost"]));
    let too_many: Vec<String> = (0..101).map(|i| format!("user_id=u{i}")).collect();
    let (status, _) = app
        .get_json(&format!(
            "/v1/products/exrps/boards/wins/ranks?{}",
            too_many.join("&")
        ))
        .await;
    assert_eq!(status, 400);
    let (status, _) = app.get_json("/v1/products/exrps/boards/wins/ranks").await;
    assert_eq!(status, 400);
    app.stop().await;
}

/// Every page a head of `rows` rows answers, with how many it answered; panics where a head's
/// page differs from the page read from Redis.
async fn head_pages_agree(
    store: &stats_tracker::core::store::Store,
    keys: &stats_tracker::core::keys::BoardKeys,
    members: &[stats_tracker::leaderboards::rank::Row],
    rows: u64,
) -> usize {
    use stats_tracker::leaderboards::head::Head;
    use stats_tracker::leaderboards::rank::{self, PageStart, Ties};
    let head = Head::read(store, keys, rows).await.expect("head");
    let total = members.len() as u64;
    let mut starts: Vec<PageStart> = (0..=total + 2).map(PageStart::Offset).collect();
    // A row better than everyone on the board (a cursor whose player has since dropped).
    let mut zz = 1u64.to_be_bytes().to_vec();
    zz.extend_from_slice(b"zz");
    let above_all = rank::Row {
        score: 1e12,
        member: zz,
        tail: 0,
    };
    starts.push(PageStart::After(above_all.clone()));
    starts.push(PageStart::Before(above_all));
    for row in members {
        starts.push(PageStart::After(row.clone()));
        starts.push(PageStart::Before(row.clone()));
        // A row that is not there (its player moved): sorts right after this one.
        let mut moved = row.clone();
        moved.member.push(b'~');
        starts.push(PageStart::After(moved.clone()));
        starts.push(PageStart::Before(moved));
    }
    let mut answered = 0;
    for start in &starts {
        for limit in [0, 1, 3, 7, 1000] {
            for ties in [Ties::Standard, Ties::Dense, Ties::Ordinal] {
                let Some(cached) = head.page(start, limit, ties) else {
                    continue;
                };
                let live = rank::page(store, keys, start, limit, ties)
                    .await
                    .expect("page");
                assert_eq!(
                    cached, live,
                    "head of {rows}: {start:?}, limit {limit}, {ties:?}"
                );
                answered += 1;
            }
        }
    }
    answered
}

#[tokio::test]
async fn pages_from_a_board_head_equal_pages_read_from_redis() {
    let redis = TestRedis::start().await;
    let mut app_settings = settings(&redis);
    app_settings.server.page_cache_ms = 60_000;
    app_settings.server.page_cache_rows = 20;
    let app = TestApp::spawn(&app_settings, true).await;
    let mut stream = redis.connection(1).await;
    // Few players, many games: long runs of tied scores.
    let players: Vec<String> = (0..40).map(|i| format!("h{i:02}")).collect();
    let games = random_games(&players, 150, 11);
    play(&mut stream, &games).await;

    let keys = stats_tracker::core::keys::KeySpace::new("st_test").expect("prefix");
    let store = stats_tracker::core::store::Store::connect_lazy(
        &stats_tracker::core::config::RedisEndpoint {
            url: redis.url(0),
            ..Default::default()
        },
        keys.clone(),
        Duration::from_secs(5),
    )
    .expect("store");
    let board = keys
        .product(&stats_tracker::core::ids::ProductId::parse("exrps").expect("id"))
        .board_keys("wins", None);
    let stored: Vec<(Vec<u8>, String)> = redis::cmd("ZRANGE")
        .arg(&board.board)
        .arg(0)
        .arg(-1)
        .arg("WITHSCORES")
        .query_async(&mut redis.connection(0).await)
        .await
        .expect("members");
    let members: Vec<stats_tracker::leaderboards::rank::Row> = stored
        .into_iter()
        .map(|(member, score)| {
            stats_tracker::leaderboards::rank::Row::from_stored(member, &score, 0).expect("a row")
        })
        .collect();
    let total = members.len() as u64;
    assert_eq!(total, 40);
    // A whole-board head answers every page; shorter ones the pages inside them.
    let starts = (total as usize + 3 + 2 + 4 * members.len()) * 5 * 3;
    assert_eq!(
        head_pages_agree(&store, &board, &members, total).await,
        starts
    );
    assert_eq!(
        head_pages_agree(&store, &board, &members, total + 10).await,
        starts
    );
    for rows in [0, 1, 10, total - 1] {
        let answered = head_pages_agree(&store, &board, &members, rows).await;
        assert!(
            answered > 0 && answered < starts,
            "head of {rows}: {answered}"
        );
    }

    // Through HTTP with the cache on: pages inside its 20 rows and past them are both right.
    let expected = reference_board(&games);
    let base = "/v1/products/exrps/boards/wins/entries";
    for (offset, limit) in [(0, 20), (5, 10), (15, 10), (30, 10)] {
        let (status, page) = app
            .get_json(&format!(
                "{base}?offset={offset}&limit={limit}&ranking=ordinal"
            ))
            .await;
        assert_eq!(status, 200, "{page}");
        let want: Vec<_> = expected
            .iter()
            .enumerate()
            .skip(offset)
            .take(limit)
            .map(|(i, (p, s))| (p.clone(), i as u64 + 1, *s))
            .collect();
        assert_eq!(rows(&page["entries"]), want, "offset {offset}");
    }
    app.stop().await;
}

#[tokio::test]
async fn paging_while_the_board_changes_shows_every_unmoved_entry_exactly_once() {
    let redis = TestRedis::start().await;
    let app = TestApp::spawn(&settings(&redis), true).await;
    let mut stream = redis.connection(1).await;
    let players: Vec<String> = (0..80).map(|i| format!("q{i}")).collect();
    let (movers, still) = players.split_at(12);
    let mut rng = Rng::new(11);
    let pick = |from: &[String], rng: &mut Rng| from[rng.below(from.len() as u64) as usize].clone();
    let warmup: Vec<Event> = (0..300)
        .map(|_| {
            let winner = pick(&players, &mut rng);
            let mut loser = pick(&players, &mut rng);
            while loser == winner {
                loser = pick(&players, &mut rng);
            }
            game_over(&winner, &loser)
        })
        .collect();
    push_events(&mut stream, &warmup).await;
    wait_until_drained(&mut stream, Duration::from_secs(20)).await;
    let (_, whole) = app
        .get_json("/v1/products/exrps/boards/wins/entries?limit=1000")
        .await;
    let on_board: BTreeSet<String> = rows(&whole["entries"]).into_iter().map(|r| r.0).collect();
    let still: Vec<&String> = still.iter().filter(|p| on_board.contains(*p)).collect();
    assert!(
        still.len() > 50,
        "only {} unmoved players on the board",
        still.len()
    );

    // While a client pages through, the movers keep playing among themselves.
    let moving: Vec<Event> = (0..400)
        .map(|_| {
            let winner = pick(movers, &mut rng);
            let mut loser = pick(movers, &mut rng);
            while loser == winner {
                loser = pick(movers, &mut rng);
            }
            game_over(&winner, &loser)
        })
        .collect();
    let mut writer = redis.connection(1).await;
    let games = tokio::spawn(async move {
        for chunk in moving.chunks(10) {
            push_events(&mut writer, chunk).await;
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    });
    let base = "/v1/products/exrps/boards/wins/entries?limit=4";
    let mut seen: Vec<String> = Vec::new();
    let (_, mut page) = app.get_json(base).await;
    loop {
        let ranks: Vec<u64> = rows(&page["entries"]).iter().map(|r| r.1).collect();
        assert!(
            ranks.windows(2).all(|w| w[0] <= w[1]),
            "ranks in order: {ranks:?}"
        );
        seen.extend(rows(&page["entries"]).into_iter().map(|r| r.0));
        let Some(next) = page["next"].as_str() else {
            break;
        };
        tokio::time::sleep(Duration::from_millis(3)).await;
        page = app.get_json(&format!("{base}&after={next}")).await.1;
    }
    games.await.expect("writer");
    for player in still {
        let times = seen.iter().filter(|p| *p == player).count();
        assert_eq!(times, 1, "{player} was seen {times} times while paging");
    }
    app.stop().await;
}

/// Midnight UTC, `days` days from today.
fn midnight(days: i64) -> chrono::DateTime<Utc> {
    let today = Utc::now().date_naive();
    let day = today + chrono::Duration::days(days);
    Utc.from_utc_datetime(&day.and_hms_opt(0, 0, 0).expect("midnight"))
}

fn ms(at: chrono::DateTime<Utc>) -> u64 {
    u64::try_from(at.timestamp_millis()).expect("after 1970")
}

#[tokio::test]
async fn period_boards_roll_over_with_the_clock_and_expire_after_retention() {
    let redis = TestRedis::start().await;
    let clock = Arc::new(AtomicU64::new(0));
    let app = TestApp::spawn_with_clock(&settings(&redis), true, Some(clock.clone())).await;
    let mut stream = redis.connection(1).await;
    // Long ago (past every daily retention), yesterday noon, today noon.
    let old = midnight(-40) + chrono::Duration::hours(12);
    let yesterday = midnight(-1) + chrono::Duration::hours(12);
    let today = midnight(0) + chrono::Duration::hours(12);
    push_events_at(&mut stream, &[game_over("Old", "X")], Some(ms(old))).await;
    push_events_at(
        &mut stream,
        &[game_over("A", "B"), game_over("A", "C")],
        Some(ms(yesterday)),
    )
    .await;
    push_events_at(&mut stream, &[game_over("B", "A")], Some(ms(today))).await;
    wait_until_drained(&mut stream, Duration::from_secs(10)).await;

    let base = "/v1/products/exrps/boards/wins/entries";
    let board = |query: String| {
        let app = &app;
        async move {
            let (status, body) = app.get_json(&format!("{base}?{query}")).await;
            assert_eq!(status, 200, "{query}: {body}");
            body
        }
    };
    let scores = |body: &Value| -> BTreeMap<String, i64> {
        rows(&body["entries"])
            .into_iter()
            .map(|(p, _, s)| (p, s))
            .collect()
    };
    let day_label = |at: chrono::DateTime<Utc>| at.format("%Y-%m-%d").to_string();

    // The server's clock says today: the current daily board holds today's game only.
    clock.store(ms(today), Ordering::SeqCst);
    let daily = board("window=daily".into()).await;
    assert_eq!(daily["window"], "daily");
    assert_eq!(daily["period"], day_label(today));
    assert_eq!(
        scores(&daily),
        BTreeMap::from([("A".into(), 0), ("B".into(), 1)])
    );
    // Yesterday's board, by its label.
    let past = board(format!("window=daily&period={}", day_label(yesterday))).await;
    assert_eq!(
        scores(&past),
        BTreeMap::from([("A".into(), 2), ("B".into(), 0), ("C".into(), 0)])
    );
    // All time holds everything, old game included.
    assert_eq!(board(String::new()).await["total"], 5);
    // Monthly: the current month's players (yesterday is last month on the 1st).
    let monthly = board("window=monthly".into()).await;
    assert_eq!(monthly["period"], today.format("%Y-%m").to_string());
    let players_this_month = if yesterday.month() == today.month() {
        3
    } else {
        2
    };
    assert_eq!(monthly["total"], players_this_month);

    // Midnight passes on the server's clock: the current daily board starts empty.
    clock.store(ms(midnight(1)), Ordering::SeqCst);
    let rolled = board("window=daily".into()).await;
    assert_eq!(rolled["period"], day_label(midnight(1)));
    assert_eq!(rolled["total"], 0);
    assert_eq!(rolled["entries"], json!([]));

    // Expiry: yesterday's daily board expires 7 days after it ends; the old one is gone.
    let mut store = redis.connection(0).await;
    let keys = stats_tracker::core::keys::KeySpace::new("st_test")
        .expect("prefix")
        .product(&stats_tracker::core::ids::ProductId::parse("exrps").expect("id"));
    let yesterday_keys = keys.board_keys("wins", Some(&format!("daily:{}", day_label(yesterday))));
    for key in [&yesterday_keys.board, &yesterday_keys.distinct] {
        let expires: i64 = redis::cmd("EXPIRETIME")
            .arg(key)
            .query_async(&mut store)
            .await
            .expect("EXPIRETIME");
        assert_eq!(
            expires,
            (midnight(0) + chrono::Duration::days(7)).timestamp(),
            "{key}"
        );
    }
    let old_board = board(format!("window=daily&period={}", day_label(old))).await;
    assert_eq!(
        old_board["total"], 0,
        "a daily board 40 days old has expired"
    );
    let leftovers: Vec<String> = redis::cmd("KEYS")
        .arg(format!(
            "st_test:{{exrps}}:board:wins@daily:{}*",
            day_label(old)
        ))
        .query_async(&mut store)
        .await
        .expect("KEYS");
    assert_eq!(leftovers, Vec::<String>::new());
    // The all-time board never expires.
    let ttl: i64 = redis::cmd("TTL")
        .arg(keys.board("wins"))
        .query_async(&mut store)
        .await
        .expect("TTL");
    assert_eq!(ttl, -1);
    app.stop().await;
}

/// The tracker (server and worker) on `redis` with `games` as its games file.
async fn spawn_with_games(redis: &TestRedis, games: &str) -> TestApp {
    let games_file = redis.socket_dir().join("games.toml");
    std::fs::write(&games_file, games).expect("write games file");
    let mut settings = settings(redis);
    settings.games.file = Some(games_file);
    TestApp::spawn(&settings, true).await
}

#[tokio::test]
async fn windows_follow_the_games_file() {
    let redis = TestRedis::start().await;
    let app = spawn_with_games(
        &redis,
        r#"
[products.duel]
boards = [
  { name = "wins", kind = "wins", windows = ["weekly"], retention = { weekly = 2 } },
  { name = "elo", kind = "elo", windows = [] },
]
"#,
    )
    .await;
    let mut stream = redis.connection(1).await;
    let mut event = game_over("A", "B");
    event[0].1 = "duel".into();
    push_events(&mut stream, &[event]).await;
    wait_until_drained(&mut stream, Duration::from_secs(10)).await;

    let (status, weekly) = app
        .get_json("/v1/products/duel/boards/wins/entries?window=weekly")
        .await;
    assert_eq!(status, 200, "{weekly}");
    assert_eq!(weekly["total"], 2);
    for (path, code) in [
        (
            "/v1/products/duel/boards/wins/entries?window=daily",
            "window_not_kept",
        ),
        (
            "/v1/products/duel/boards/elo/entries?window=monthly",
            "window_not_kept",
        ),
    ] {
        let (status, body) = app.get_json(path).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (404, Some(code)),
            "{path}"
        );
    }
    // Elo's board ranks by rating; its players are the same two.
    let (_, elo) = app.get_json("/v1/products/duel/boards/elo/entries").await;
    let players: BTreeSet<&str> = elo["entries"]
        .as_array()
        .expect("rows")
        .iter()
        .filter_map(|r| r["user_id"].as_str())
        .collect();
    assert_eq!(players, BTreeSet::from(["A", "B"]));
    assert_eq!(elo["entries"][0]["user_id"], "A");
    let mut store = redis.connection(0).await;
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("st_test:{duel}:board:*@*")
        .query_async(&mut store)
        .await
        .expect("KEYS");
    assert!(
        !keys.is_empty() && keys.iter().all(|k| k.contains(":board:wins@weekly:")),
        "{keys:?}"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_period_board_keeps_its_expiry_when_its_only_player_moves() {
    let redis = TestRedis::start().await;
    let app = spawn_with_games(
        &redis,
        r#"
[products.solo]
boards = [
  { name = "best", kind = "max", when = { type = "gameplay", event_name = "kills" }, player = "user_id", field = "event_data", windows = ["daily"] },
]
"#,
    )
    .await;
    let mut stream = redis.connection(1).await;
    // One player, a better score each time: the rank index's only member is replaced, which
    // must not empty (and so delete) its sets on the way.
    let kills = |n: &str| -> Event {
        vec![
            ("product_id".into(), "solo".into()),
            ("type".into(), "gameplay".into()),
            ("event_name".into(), "kills".into()),
            ("event_data".into(), n.into()),
            ("user_id".into(), "A".into()),
        ]
    };
    push_events(&mut stream, &[kills("3"), kills("5"), kills("8")]).await;
    wait_until_drained(&mut stream, Duration::from_secs(10)).await;

    let (status, page) = app
        .get_json("/v1/products/solo/boards/best/entries?window=daily")
        .await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(rows(&page["entries"]), vec![row("A", 1, 8)]);
    let label = page["period"].as_str().expect("period").to_owned();
    let keys = stats_tracker::core::keys::KeySpace::new("st_test")
        .expect("prefix")
        .product(&stats_tracker::core::ids::ProductId::parse("solo").expect("id"))
        .board_keys("best", Some(&format!("daily:{label}")));
    let mut store = redis.connection(0).await;
    for key in [&keys.board, &keys.distinct] {
        let expires: i64 = redis::cmd("EXPIRETIME")
            .arg(key)
            .query_async(&mut store)
            .await
            .expect("EXPIRETIME");
        assert!(expires > 0, "{key} has no expiry ({expires})");
    }
    app.stop().await;
}

#[tokio::test]
async fn a_player_entering_a_new_period_drops_stamps_of_periods_that_are_gone() {
    // A stamp names the player's row on one period board; once that board has expired, the
    // player's next period of the same window takes the stamp out of their stats hash.
    let redis = TestRedis::start().await;
    let app = TestApp::spawn(&settings(&redis), true).await;
    let mut stream = redis.connection(1).await;
    let day_label = |at: chrono::DateTime<Utc>| at.format("%Y-%m-%d").to_string();
    let long_ago = midnight(-40) + chrono::Duration::hours(12);
    let yesterday = midnight(-1) + chrono::Duration::hours(12);
    push_events_at(&mut stream, &[game_over("P", "Q")], Some(ms(long_ago))).await;
    push_events_at(&mut stream, &[game_over("P", "Q")], Some(ms(yesterday))).await;
    push_events(&mut stream, &[game_over("P", "Q")]).await;
    wait_until_drained(&mut stream, Duration::from_secs(10)).await;
    let fields: Vec<String> = redis::cmd("HKEYS")
        .arg("st_test:{exrps}:stats:P")
        .query_async(&mut redis.connection(0).await)
        .await
        .expect("HKEYS");
    let daily: BTreeSet<String> = fields
        .iter()
        .filter_map(|field| field.strip_prefix("~wins@daily:"))
        .map(str::to_owned)
        .collect();
    // Yesterday's board is still kept (retention), the one of 40 days ago is not.
    let expected = BTreeSet::from([day_label(yesterday), day_label(Utc::now())]);
    assert_eq!(daily, expected, "{fields:?}");
    assert!(fields.contains(&"~wins".to_owned()), "{fields:?}");
    app.stop().await;
}

/// A draw between `a` and `b` (both stay on the wins board with what they had).
fn draw(a: &str, b: &str) -> Event {
    vec![
        ("product_id".into(), "exrps".into()),
        ("type".into(), "draw".into()),
        ("p1_id".into(), a.into()),
        ("p2_id".into(), b.into()),
    ]
}

#[tokio::test]
async fn percentiles_count_the_players_strictly_behind_even_at_the_edges() {
    let redis = TestRedis::start().await;
    let app = TestApp::spawn(&settings(&redis), true).await;
    let mut stream = redis.connection(1).await;
    let standing = |player: &str| format!("/v1/products/exrps/boards/wins/players/{player}");
    let percentile = |body: &Value| body["percentile"].as_f64().expect("percentile");

    // All tied (two players, 0 wins each): nobody is strictly behind.
    push_events(&mut stream, &[draw("a", "b")]).await;
    wait_until_drained(&mut stream, Duration::from_secs(10)).await;
    for player in ["a", "b"] {
        let (status, body) = app.get_json(&standing(player)).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(percentile(&body), 0.0, "{body}");
    }
    // a: 3 wins, b: 0, c: 0, d: 0 → a beats 3 of 4 (75%), the others nobody.
    let games: Vec<Event> = ["b", "c", "d"]
        .iter()
        .map(|loser| game_over("a", loser))
        .collect();
    push_events(&mut stream, &games).await;
    wait_until_drained(&mut stream, Duration::from_secs(10)).await;
    let (_, body) = app.get_json(&standing("a")).await;
    assert_eq!(percentile(&body), 75.0, "{body}");
    let (_, body) = app.get_json(&standing("c")).await;
    assert_eq!(percentile(&body), 0.0, "{body}");
    // e: 1 win over d, and a third wins-board tier: a 3, e 1, b/c/d 0 (5 players).
    push_events(&mut stream, &[game_over("e", "d")]).await;
    wait_until_drained(&mut stream, Duration::from_secs(10)).await;
    let (_, body) = app
        .get_json("/v1/products/exrps/boards/wins/ranks?user_id=a&user_id=e&user_id=d")
        .await;
    let percentiles: BTreeMap<String, f64> = body["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .map(|row| {
            (
                row["user_id"].as_str().unwrap_or_default().to_owned(),
                row["percentile"].as_f64().unwrap_or(f64::NAN),
            )
        })
        .collect();
    assert_eq!(
        percentiles,
        BTreeMap::from([("a".into(), 80.0), ("d".into(), 0.0), ("e".into(), 60.0)]),
        "{body}"
    );
    app.stop().await;
}

#[tokio::test]
async fn values_breaking_validation_rules_are_dead_lettered_for_that_board_or_stat_only() {
    let redis = TestRedis::start().await;
    let games_file = redis.socket_dir().join("games.toml");
    std::fs::write(
        &games_file,
        r#"
[products.arcade]
boards = [
  { name = "kills", kind = "sum", when = { type = "gameplay", event_name = "kills" }, player = "user_id", field = "event_data", validate = { max = 1000, integer = true, max_change = 50 } },
  { name = "best", kind = "max", when = { type = "gameplay", event_name = "kills" }, player = "user_id", field = "event_data", validate = { min = 0, max = 100, max_change = 40 } },
  { name = "latest", kind = "last", when = { type = "gameplay", event_name = "kills" }, player = "user_id", field = "event_data", validate = { max = 1000, increment_only = true } },
]

[[products.arcade.stats]]
rule = "sum"
when = { type = "gameplay", event_name = "kills" }
player = "user_id"
field = "event_data"
stat = "kills"

[[products.arcade.stats]]
rule = "sum"
when = { type = "gameplay", event_name = "kills" }
player = "user_id"
field = "event_data"
stat = "checked_kills"
validate = { max = 100, integer = true }
"#,
    )
    .expect("write games file");
    let mut settings = settings(&redis);
    settings.games.file = Some(games_file);
    let admin = "admin-token-0123456789";
    settings.server.admin_token = Some(stats_tracker::core::config::Secret::new(admin));
    let mut stream = redis.connection(1).await;
    let kills = |value: &str| {
        crate::helpers::event(&[
            ("product_id", "arcade"),
            ("type", "gameplay"),
            ("event_name", "kills"),
            ("event_data", value),
            ("user_id", "A"),
        ])
    };
    // Two runs of the tracker: the second reads the scores the first left from the store.
    let app = TestApp::spawn(&settings, true).await;
    let first: Vec<_> = ["7", "30", "2.5"]
        .iter()
        .map(|value| kills(value))
        .collect();
    push_events(&mut stream, &first).await;
    wait_until_drained(&mut stream, Duration::from_secs(10)).await;
    app.stop().await;
    let app = TestApp::spawn(&settings, true).await;
    let second: Vec<_> = ["1e9", "-3", "95"]
        .iter()
        .map(|value| kills(value))
        .collect();
    push_events(&mut stream, &second).await;
    wait_until_drained(&mut stream, Duration::from_secs(10)).await;

    let score = |board: &'static str| {
        let app = &app;
        async move {
            let (status, body) = app
                .get_json(&format!("/v1/products/arcade/boards/{board}/players/A"))
                .await;
            assert_eq!(status, 200, "{body}");
            body["score"].as_f64().expect("score")
        }
    };
    assert_eq!(score("kills").await, 7.0 + 30.0 - 3.0);
    assert_eq!(score("best").await, 30.0);
    assert_eq!(score("latest").await, 95.0);
    // A stat without rules counts every value; one with rules, those they allow.
    let stats = crate::helpers::stats_of(&app, "arcade", "A").await;
    assert_eq!(stats["kills"], json!(7.0 + 30.0 + 2.5 + 1e9 - 3.0 + 95.0));
    assert_eq!(
        stats["checked_kills"].as_f64(),
        Some(7.0 + 30.0 - 3.0 + 95.0)
    );

    // One letter per board or stat that refused a value, naming it, the rule and the values.
    let (status, page) = crate::helpers::send(
        &app,
        reqwest::Method::GET,
        "/v1/admin/dead-letters?product=arcade",
        Some(admin),
        None,
    )
    .await;
    assert_eq!(status, 200, "{page}");
    let letters: BTreeSet<(String, String)> = page["letters"]
        .as_array()
        .expect("letters")
        .iter()
        .map(|letter| {
            (
                letter["board"].as_str().unwrap_or_default().to_owned(),
                letter["reason"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    let expected: BTreeSet<(String, String)> = [
        ("kills", "value 2.5 is not an integer"),
        ("kills", "value 1000000000 is above the maximum 1000"),
        (
            "kills",
            "value 95 changes the score by 95, more than the maximum 50",
        ),
        ("best", "value 1000000000 is above the maximum 100"),
        ("best", "value -3 is below the minimum 0"),
        (
            "best",
            "value 95 changes the score by 65 (from 30), more than the maximum 40",
        ),
        (
            "latest",
            "value 2.5 would lower the score (from 30), which may only grow",
        ),
        ("latest", "value 1000000000 is above the maximum 1000"),
        (
            "latest",
            "value -3 would lower the score (from 30), which may only grow",
        ),
    ]
    .into_iter()
    .map(|(board, text)| {
        (
            board.to_owned(),
            format!("board `{board}`: field `event_data` of player A: {text}"),
        )
    })
    .chain(
        [
            "value 2.5 is not an integer",
            "value 1000000000 is above the maximum 100",
        ]
        .map(|text| {
            (
                String::new(),
                format!("stat `checked_kills`: field `event_data` of player A: {text}"),
            )
        }),
    )
    .collect();
    assert_eq!(letters, expected);
    // Counted by rule (both runs are in this process, which holds the metrics).
    for (rule, count) in [
        ("change_too_large", 2.0),
        ("above_maximum", 4.0),
        ("below_minimum", 1.0),
        ("decrement", 2.0),
        ("not_integer", 2.0),
    ] {
        let series = format!(
            "stats_tracker_worker_dead_letters_total{{product=\"arcade\",reason=\"{rule}\"}}"
        );
        assert_eq!(
            crate::helpers::metric(&app, &series).await,
            count,
            "{series}"
        );
    }
    // The board's description shows its rules.
    let (_, boards) = app.get_json("/v1/products/arcade/boards").await;
    assert_eq!(
        boards["boards"][0]["validate"],
        json!({"max": 1000.0, "integer": true, "max_change": 50.0})
    );
    app.stop().await;
}

#[tokio::test]
async fn a_value_refused_against_a_score_an_admin_reset_removed_is_applied_not_lettered() {
    let redis = TestRedis::start().await;
    let games_file = redis.socket_dir().join("games.toml");
    std::fs::write(
        &games_file,
        r#"
[products.arcade]
boards = [
  { name = "best", kind = "max", when = { type = "gameplay", event_name = "kills" }, player = "user_id", field = "event_data", validate = { max_change = 10 } },
]
"#,
    )
    .expect("write games file");
    let mut settings = settings(&redis);
    settings.games.file = Some(games_file);
    let admin = "admin-token-0123456789";
    settings.server.admin_token = Some(stats_tracker::core::config::Secret::new(admin));
    let app = TestApp::spawn(&settings, true).await;
    let mut stream = redis.connection(1).await;
    let kills = |value: &str| {
        crate::helpers::event(&[
            ("product_id", "arcade"),
            ("type", "gameplay"),
            ("event_name", "kills"),
            ("event_data", value),
            ("user_id", "A"),
        ])
    };
    push_events(&mut stream, &[kills("5")]).await;
    wait_until_drained(&mut stream, Duration::from_secs(10)).await;
    // The worker's view holds A's 5; the reset empties the board under it.
    let (status, body) = crate::helpers::send(
        &app,
        reqwest::Method::DELETE,
        "/v1/admin/products/arcade/boards/best",
        Some(admin),
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    // 40 is too far from 5, but there is no 5 any more: a first value, applied.
    push_events(&mut stream, &[kills("40")]).await;
    wait_until_drained(&mut stream, Duration::from_secs(10)).await;
    let (status, body) = app
        .get_json("/v1/products/arcade/boards/best/players/A")
        .await;
    assert_eq!(
        (status, body["score"].as_f64()),
        (200, Some(40.0)),
        "{body}"
    );
    let (status, page) = crate::helpers::send(
        &app,
        reqwest::Method::GET,
        "/v1/admin/dead-letters?product=arcade",
        Some(admin),
        None,
    )
    .await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["letters"], json!([]), "{page}");
    app.stop().await;
}
