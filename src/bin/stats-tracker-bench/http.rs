//! The benchmark's HTTP side: a keep-alive HTTP/1.1 connection (hyper's low-level client, one
//! request in flight per connection, as a browser or `wrk` does), closed-loop read load over
//! many such connections, the read routes to load and what they ask about, and latency
//! summaries.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::simulate::Rng;
use anyhow::{Context, Result};
use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper::client::conn::http1::{self, SendRequest};
use hyper::{Request, StatusCode, header};
use hyper_util::rt::TokioIo;
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use tokio::net::TcpStream;

/// One keep-alive connection to a server.
pub struct HttpConn {
    sender: SendRequest<Empty<Bytes>>,
    host: String,
}

impl HttpConn {
    pub async fn connect(addr: SocketAddr) -> Result<Self> {
        let tcp = TcpStream::connect(addr)
            .await
            .with_context(|| format!("cannot connect to {addr}"))?;
        // Requests are tiny and sent one at a time: never wait for Nagle.
        tcp.set_nodelay(true)?;
        let (sender, connection) = http1::handshake(TokioIo::new(tcp))
            .await
            .with_context(|| format!("HTTP handshake with {addr}"))?;
        // Drives the socket; ends when `sender` is dropped or the server closes.
        tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok(Self {
            sender,
            host: addr.to_string(),
        })
    }

    /// `GET path` (already percent-encoded): status and body.
    pub async fn get(&mut self, path: &str) -> Result<(StatusCode, Bytes)> {
        self.sender.ready().await.context("HTTP connection lost")?;
        let request = Request::get(path)
            .header(header::HOST, &self.host)
            .body(Empty::new())
            .with_context(|| format!("bad request path {path}"))?;
        let response = self
            .sender
            .send_request(request)
            .await
            .with_context(|| format!("GET {path}"))?;
        let status = response.status();
        let body = response
            .into_body()
            .collect()
            .await
            .with_context(|| format!("body of GET {path}"))?
            .to_bytes();
        Ok((status, body))
    }
}

/// Tries `GET path` until it answers 200 or `timeout` passes.
pub async fn wait_for_200(addr: SocketAddr, path: &str, timeout: Duration) -> Result<()> {
    let deadline = Instant::now() + timeout;
    let mut last = String::from("no answer");
    while Instant::now() < deadline {
        match HttpConn::connect(addr).await {
            Ok(mut conn) => match conn.get(path).await {
                Ok((StatusCode::OK, _)) => return Ok(()),
                Ok((status, _)) => last = format!("status {status}"),
                Err(error) => last = format!("{error:#}"),
            },
            Err(error) => last = format!("{error:#}"),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    anyhow::bail!("GET http://{addr}{path} did not answer 200 within {timeout:?} ({last})")
}

/// A path segment as the API expects ids: percent-encoded.
pub fn encode(id: &str) -> String {
    utf8_percent_encode(id, NON_ALPHANUMERIC).to_string()
}

/// The product whose board real traffic's rank routes read.
pub const RANK_PRODUCT: &str = "exrps";
/// Players one ranks request names (the route's maximum).
pub const RANKS_PLAYERS: usize = 100;
/// Rows around the player a standing request asks for.
pub const AROUND: u64 = 10;

/// The read routes the bench can load. A new route: add a variant here and its arm in
/// [`ReadRoute::path`]; `--routes` then accepts it and the report includes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ReadRoute {
    /// `GET /leaderboards/top_ten/{product}`
    TopTen,
    /// `GET /stats/{product}/{player}`
    Stats,
    /// `GET /v1/products/{product}/boards/wins/entries?limit=20&offset=…`: a ranked page
    Page,
    /// `GET /v1/products/{product}/boards/wins/players/{player}`: a player's rank
    Rank,
    /// `GET /v1/products/{product}/boards/wins/entries?offset=<half the board>&limit=20`: a
    /// page deep in the board
    DeepPage,
    /// `GET /v1/products/{product}/boards/wins/players/{player}?around=10`: a standing with
    /// the rows around it
    Around,
    /// `GET /v1/products/{product}/boards/wins/ranks?user_id=…` with 100 players (a friends
    /// list)
    Ranks,
    /// `GET /healthz`: no Redis behind it, so it shows what HTTP alone costs on this machine
    /// (a yardstick for the data routes, like the ceiling is for the worker).
    Healthz,
}

/// What the read routes ask about.
#[derive(Debug, Clone)]
pub struct ReadTarget {
    /// Products with their share of requests and players who played them.
    pub products: Vec<(String, u64, Arc<Vec<String>>)>,
    /// The product whose `wins` board the rank routes read, and players on that board.
    pub board_product: String,
    pub board_players: Arc<Vec<String>>,
    /// Where [`ReadRoute::DeepPage`] starts.
    pub deep_offset: u64,
}

impl ReadTarget {
    /// A product in the traffic's proportions, with its players.
    fn product(&self, rng: &mut Rng) -> (&str, &[String]) {
        let total: u64 = self.products.iter().map(|(_, share, _)| share).sum();
        let mut roll = rng.below(total.max(1));
        for (product, share, players) in &self.products {
            if roll < *share {
                return (product, players);
            }
            roll -= share;
        }
        match self.products.first() {
            Some((product, _, players)) => (product, players),
            None => (&self.board_product, &self.board_players),
        }
    }

    fn board_player(&self, rng: &mut Rng) -> &str {
        pick(rng, &self.board_players)
    }
}

/// One of `players`, uniformly (`""` when there is none: the request then fails visibly).
fn pick<'a>(rng: &mut Rng, players: &'a [String]) -> &'a str {
    if players.is_empty() {
        return "";
    }
    &players[rng.below(players.len() as u64) as usize]
}

impl ReadRoute {
    pub fn template(self) -> &'static str {
        match self {
            ReadRoute::TopTen => "GET /leaderboards/top_ten/{product}",
            ReadRoute::Stats => "GET /stats/{product}/{player}",
            ReadRoute::Page => {
                "GET /v1/products/{product}/boards/wins/entries?limit=20&offset=<0..1000>"
            }
            ReadRoute::Rank => "GET /v1/products/{product}/boards/wins/players/{player}",
            ReadRoute::DeepPage => {
                "GET /v1/products/{product}/boards/wins/entries?offset=<half the board>&limit=20"
            }
            ReadRoute::Around => {
                "GET /v1/products/{product}/boards/wins/players/{player}?around=10"
            }
            ReadRoute::Ranks => {
                "GET /v1/products/{product}/boards/wins/ranks?user_id=…&user_id=… (100 players)"
            }
            ReadRoute::Healthz => "GET /healthz",
        }
    }

    /// A request path as real clients would send: products in the traffic's proportions,
    /// players drawn uniformly from those who played (on the board, for the rank routes).
    pub fn path(self, rng: &mut Rng, target: &ReadTarget) -> String {
        let board = || format!("/v1/products/{}/boards/wins", encode(&target.board_product));
        match self {
            ReadRoute::TopTen => {
                format!("/leaderboards/top_ten/{}", encode(target.product(rng).0))
            }
            ReadRoute::Stats => {
                let (product, players) = target.product(rng);
                let player = pick(rng, players);
                format!("/stats/{}/{}", encode(product), encode(player))
            }
            ReadRoute::Page => format!(
                "/v1/products/{}/boards/wins/entries?limit=20&offset={}",
                encode(target.product(rng).0),
                rng.below(1000)
            ),
            ReadRoute::Rank => {
                format!("{}/players/{}", board(), encode(target.board_player(rng)))
            }
            ReadRoute::DeepPage => {
                format!("{}/entries?offset={}&limit=20", board(), target.deep_offset)
            }
            ReadRoute::Around => format!(
                "{}/players/{}?around={AROUND}",
                board(),
                encode(target.board_player(rng))
            ),
            ReadRoute::Ranks => {
                let players: Vec<String> = (0..RANKS_PLAYERS)
                    .map(|_| format!("user_id={}", encode(target.board_player(rng))))
                    .collect();
                format!("{}/ranks?{}", board(), players.join("&"))
            }
            ReadRoute::Healthz => "/healthz".to_owned(),
        }
    }

    /// Whether the read target (≥ 30,000 req/s, p99 ≤ 5 ms) applies: the API's data routes
    /// that answer about one thing, not `/healthz` nor a ranks call naming 100 players.
    pub fn has_target(self) -> bool {
        !matches!(self, ReadRoute::Healthz | ReadRoute::Ranks)
    }
}

/// Latencies of one measurement, sorted.
#[derive(Debug, Default, Clone)]
pub struct Latencies(Vec<Duration>);

impl Latencies {
    pub fn new(mut samples: Vec<Duration>) -> Self {
        samples.sort_unstable();
        Self(samples)
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// The `p`-th percentile (nearest rank), zero when empty.
    pub fn percentile(&self, p: f64) -> Duration {
        if self.0.is_empty() {
            return Duration::ZERO;
        }
        let rank = ((p / 100.0) * self.0.len() as f64).ceil() as usize;
        self.0[rank.clamp(1, self.0.len()) - 1]
    }

    pub fn max(&self) -> Duration {
        self.0.last().copied().unwrap_or_default()
    }

    /// `p50 1.23 ms, p99 4.56 ms, max 7.89 ms`
    pub fn summary(&self) -> String {
        format!(
            "p50 {}, p99 {}, max {}",
            ms(self.percentile(50.0)),
            ms(self.percentile(99.0)),
            ms(self.max())
        )
    }
}

pub fn ms(duration: Duration) -> String {
    format!("{:.2} ms", duration.as_secs_f64() * 1000.0)
}

/// What a closed-loop read run measured (only requests started inside the window count).
#[derive(Debug)]
pub struct LoadResult {
    pub ok: u64,
    pub errors: u64,
    pub window: Duration,
    pub latencies: Latencies,
}

impl LoadResult {
    pub fn per_second(&self) -> f64 {
        self.ok as f64 / self.window.as_secs_f64()
    }
}

/// `connections` keep-alive connections, each sending its next request as soon as the last
/// answered, for `warmup` (not measured) then `window`.
pub async fn closed_loop(
    addr: SocketAddr,
    connections: usize,
    warmup: Duration,
    window: Duration,
    route: ReadRoute,
    target: Arc<ReadTarget>,
) -> Result<LoadResult> {
    // Connect everyone first, so connection set-up is not part of the figures.
    let mut conns = Vec::with_capacity(connections);
    for _ in 0..connections {
        conns.push(HttpConn::connect(addr).await?);
    }
    let start = Instant::now();
    let measure_from = start + warmup;
    let end = measure_from + window;
    let tasks: Vec<_> = conns
        .into_iter()
        .enumerate()
        .map(|(index, mut conn)| {
            let target = Arc::clone(&target);
            tokio::spawn(async move {
                let mut rng = Rng::new(0xBE7C_0000 + index as u64);
                let (mut ok, mut errors, mut latencies) = (0u64, 0u64, Vec::new());
                loop {
                    let sent = Instant::now();
                    if sent >= end {
                        break;
                    }
                    let path = route.path(&mut rng, &target);
                    let answer = conn.get(&path).await;
                    let measured = sent >= measure_from;
                    match answer {
                        Ok((StatusCode::OK, _)) if measured => {
                            ok += 1;
                            latencies.push(sent.elapsed());
                        }
                        Ok((StatusCode::OK, _)) => {}
                        Ok(_) => errors += u64::from(measured),
                        Err(_) => {
                            errors += u64::from(measured);
                            // The server closed the connection: open another and go on.
                            conn = HttpConn::connect(addr).await?;
                        }
                    }
                }
                anyhow::Ok((ok, errors, latencies))
            })
        })
        .collect();
    let mut result = LoadResult {
        ok: 0,
        errors: 0,
        window,
        latencies: Latencies::default(),
    };
    let mut all = Vec::new();
    for task in tasks {
        let (ok, errors, latencies) = task.await.context("load task panicked")??;
        result.ok += ok;
        result.errors += errors;
        all.extend(latencies);
    }
    result.latencies = Latencies::new(all);
    Ok(result)
}
