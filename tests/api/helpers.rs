//! Test harness: a private `redis-server` per test (unix socket, nothing saved, killed on
//! drop), the tracker's server and worker spawned in-process or as a child process, and
//! helpers to push events and read results.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use redis::aio::{ConnectionLike, MultiplexedConnection};
use stats_tracker::core::config::{Mode, RedisEndpoint, Settings, TlsSettings};
use stats_tracker::core::store::{Connection, lazy_connection};
use stats_tracker::server;
use stats_tracker::startup::{app_state, load_games};
use stats_tracker::workers::{Worker, plan::Rules};
use tempfile::TempDir;
use tokio_util::sync::CancellationToken;

pub const STREAM: &str = "game_event_stream";
pub const GROUP: &str = "stats-tracker";

/// A private Redis on a unix socket in its own temporary directory.
pub struct TestRedis {
    process: Option<Child>,
    dir: TempDir,
    extra_args: Vec<String>,
}

impl TestRedis {
    pub async fn start() -> Self {
        Self::start_with(&[]).await
    }

    /// Starts with extra `redis-server` arguments (e.g. `--appendonly yes`).
    pub async fn start_with(extra_args: &[&str]) -> Self {
        let dir = tempfile::tempdir().expect("temporary directory");
        let mut redis = Self {
            process: None,
            dir,
            extra_args: extra_args.iter().map(|s| s.to_string()).collect(),
        };
        redis.launch().await;
        redis
    }

    /// The unix socket this server listens on.
    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("redis.sock")
    }

    async fn launch(&mut self) {
        let child = Command::new("redis-server")
            .args(["--port", "0", "--save", "", "--appendonly", "no"])
            .arg("--unixsocket")
            .arg(self.socket())
            .arg("--dir")
            .arg(self.dir.path())
            .args(&self.extra_args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server must be installed (see .ci/run)");
        self.process = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(client) = redis::Client::open(self.url(0))
                && let Ok(mut conn) = client.get_multiplexed_async_connection().await
                && redis::cmd("PING")
                    .query_async::<String>(&mut conn)
                    .await
                    .is_ok()
            {
                return;
            }
            assert!(Instant::now() < deadline, "redis-server did not start");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// This server's private directory (for files a test needs beside it).
    pub fn socket_dir(&self) -> &std::path::Path {
        self.dir.path()
    }

    /// URL of database `db` of this server.
    pub fn url(&self, db: u8) -> String {
        format!("redis+unix://{}?db={db}", self.socket().display())
    }

    /// A connection for the test itself. Its commands may wait long (big pipelines on a busy
    /// machine with `appendfsync always`): redis-rs's default 500 ms response timeout is too
    /// short for a test's setup.
    pub async fn connection(&self, db: u8) -> MultiplexedConnection {
        let config =
            redis::AsyncConnectionConfig::new().set_response_timeout(Some(Duration::from_secs(60)));
        redis::Client::open(self.url(db))
            .expect("valid url")
            .get_multiplexed_async_connection_with_config(&config)
            .await
            .expect("connect to the test redis")
    }

    /// Stops the server (SIGKILL; data without AOF is gone).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.process.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same socket and directory.
    pub async fn restart(&mut self) {
        self.stop();
        self.launch().await;
    }
}

impl Drop for TestRedis {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A connection a test reads and writes Redis through: one server's, or a cluster's (the
/// tracker's own [`Connection`], which routes by slot).
pub trait TestConn: ConnectionLike + Clone + Send + Sync {
    /// Every key matching `pattern`, from every master of a cluster.
    fn keys(&mut self, pattern: &str) -> impl Future<Output = Vec<String>> + Send;
}

impl TestConn for MultiplexedConnection {
    async fn keys(&mut self, pattern: &str) -> Vec<String> {
        redis::cmd("KEYS")
            .arg(pattern)
            .query_async(self)
            .await
            .expect("KEYS")
    }
}

impl TestConn for Connection {
    async fn keys(&mut self, pattern: &str) -> Vec<String> {
        let nodes = match self.cluster_masters().await.expect("CLUSTER SLOTS") {
            None => vec![None],
            Some(masters) => masters.into_iter().map(Some).collect(),
        };
        let mut keys = Vec::new();
        for node in &nodes {
            let found: Vec<String> = self
                .query_node(node.as_ref(), redis::cmd("KEYS").arg(pattern))
                .await
                .expect("KEYS");
            keys.extend(found);
        }
        keys
    }
}

/// A private Redis Cluster (3 masters, 3 replicas on loopback ports), started and stopped by
/// `scripts/redis-cluster`.
pub struct TestCluster {
    dir: TempDir,
    urls: String,
    tls: TlsSettings,
}

/// One node of a [`TestCluster`] as `CLUSTER NODES` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterNode {
    pub id: String,
    pub port: u16,
    /// The master this node replicates (`None`: a master).
    pub master: Option<String>,
    /// The hash slot ranges it serves (masters), inclusive.
    pub slots: Vec<(u16, u16)>,
    /// Whether the cluster holds it failed (`fail` or `fail?`).
    pub failed: bool,
}

impl ClusterNode {
    pub fn serves(&self, slot: u16) -> bool {
        self.slots
            .iter()
            .any(|(low, high)| (*low..=*high).contains(&slot))
    }
}

impl TestCluster {
    /// Starts a cluster on six free loopback ports (and their cluster bus ports, +10000).
    pub async fn start() -> Self {
        Self::start_with_tls(None).await
    }

    /// Like [`TestCluster::start`]; with `Some(dir)`, the nodes speak TLS only, with the
    /// certificates in `dir` (`ca.crt`, `server.*`, `client.*`), and require a client
    /// certificate (`client.*`).
    pub async fn start_with_tls(certificates: Option<&std::path::Path>) -> Self {
        let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/redis-cluster");
        for attempt in 0..5u64 {
            let first_port = free_port_run(attempt);
            let dir = tempfile::tempdir().expect("temporary directory");
            let nodes = dir.path().join("cluster");
            let mut command = tokio::process::Command::new(&script);
            command.arg("start");
            if let Some(certificates) = certificates {
                command.arg("--tls").arg(certificates);
            }
            let output = command
                .arg(&nodes)
                .arg(first_port.to_string())
                .output()
                .await
                .expect("run scripts/redis-cluster");
            if output.status.success() {
                return Self {
                    dir,
                    urls: String::from_utf8_lossy(&output.stdout).trim().to_owned(),
                    tls: certificates.map_or_else(TlsSettings::default, cluster_tls),
                };
            }
            eprintln!(
                "redis-cluster on port {first_port} failed: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        panic!("could not start a Redis Cluster");
    }

    /// The seed URLs, comma-separated, as the URL settings take them.
    pub fn urls(&self) -> &str {
        &self.urls
    }

    /// TLS options that verify the cluster and present the client certificate it requires.
    pub fn tls(&self) -> &TlsSettings {
        &self.tls
    }

    /// A cluster connection for the test itself.
    pub fn connection(&self) -> Connection {
        let endpoint = RedisEndpoint {
            url: self.urls.clone(),
            cluster: true,
            tls: self.tls.clone(),
            ..RedisEndpoint::default()
        };
        lazy_connection(&endpoint, Duration::from_secs(30)).expect("cluster connection")
    }

    /// The nodes' ports, in the order the script started them.
    pub fn ports(&self) -> Vec<u16> {
        self.urls
            .split(',')
            .map(|url| {
                url.rsplit_once(':')
                    .and_then(|(_, port)| port.parse().ok())
                    .unwrap_or_else(|| panic!("no port in {url}"))
            })
            .collect()
    }

    /// The process id of the node on `port` (from its pidfile).
    pub fn pid(&self, port: u16) -> nix::unistd::Pid {
        let index = self
            .ports()
            .iter()
            .position(|p| *p == port)
            .unwrap_or_else(|| panic!("no node on port {port}"));
        let pidfile = self
            .dir
            .path()
            .join(format!("cluster/node-{index}/redis.pid"));
        let pid = std::fs::read_to_string(&pidfile).expect("the node's pidfile");
        nix::unistd::Pid::from_raw(pid.trim().parse().expect("a pid"))
    }

    /// Sends `signal` to the node on `port`: SIGKILL to kill it, SIGSTOP/SIGCONT to freeze and
    /// thaw it.
    pub fn signal(&self, port: u16, signal: nix::sys::signal::Signal) {
        nix::sys::signal::kill(self.pid(port), signal).expect("signal a cluster node");
    }

    /// A plain connection to the node on `port` alone (no redirections), for commands about
    /// that node (`CLUSTER …`, `INFO`, reads of a replica after `READONLY`).
    pub async fn node(&self, port: u16) -> MultiplexedConnection {
        let config =
            redis::AsyncConnectionConfig::new().set_response_timeout(Some(Duration::from_secs(30)));
        redis::Client::open(format!("redis://127.0.0.1:{port}"))
            .expect("valid url")
            .get_multiplexed_async_connection_with_config(&config)
            .await
            .expect("connect to a cluster node")
    }

    /// The cluster's nodes as the node on `port` sees them.
    pub async fn nodes_seen_by(&self, port: u16) -> Vec<ClusterNode> {
        let text: String = redis::cmd("CLUSTER")
            .arg("NODES")
            .query_async(&mut self.node(port).await)
            .await
            .expect("CLUSTER NODES");
        text.lines()
            .filter(|line| !line.trim().is_empty())
            .map(|line| {
                let fields: Vec<&str> = line.split_whitespace().collect();
                let port = fields[1]
                    .split(['@', ','])
                    .next()
                    .and_then(|addr| addr.rsplit_once(':'))
                    .and_then(|(_, port)| port.parse().ok())
                    .unwrap_or(0);
                let flags = fields[2];
                let slots = fields[8..]
                    .iter()
                    // Slots being imported or migrated show as `[slot->-id]`.
                    .filter(|range| !range.starts_with('['))
                    .map(|range| match range.split_once('-') {
                        Some((low, high)) => {
                            (low.parse().expect("slot"), high.parse().expect("slot"))
                        }
                        None => {
                            let slot = range.parse().expect("slot");
                            (slot, slot)
                        }
                    })
                    .collect();
                ClusterNode {
                    id: fields[0].to_owned(),
                    port,
                    master: (fields[3] != "-").then(|| fields[3].to_owned()),
                    slots,
                    failed: flags.split(',').any(|flag| flag.starts_with("fail")),
                }
            })
            .collect()
    }

    /// The hash slot of `key` (`CLUSTER KEYSLOT`, asked of the node on `port`).
    pub async fn slot(&self, key: &str, port: u16) -> u16 {
        redis::cmd("CLUSTER")
            .arg("KEYSLOT")
            .arg(key)
            .query_async(&mut self.node(port).await)
            .await
            .expect("CLUSTER KEYSLOT")
    }

    /// The master serving `key`'s slot, as the node on `port` sees it.
    pub async fn master_of(&self, key: &str, port: u16) -> ClusterNode {
        let slot = self.slot(key, port).await;
        self.nodes_seen_by(port)
            .await
            .into_iter()
            .find(|node| node.master.is_none() && !node.failed && node.serves(slot))
            .unwrap_or_else(|| panic!("no master serves slot {slot} of {key}"))
    }

    /// Moves hash slot `slot` from master `from` to master `to` as `redis-cli --cluster
    /// reshard` does (`CLUSTER SETSLOT … IMPORTING` / `MIGRATING`, `MIGRATE` of its keys,
    /// `CLUSTER SETSLOT … NODE` on every master), `keys_per_step` keys per `MIGRATE` with
    /// `pause` between them, so that clients meet the slot half moved (`ASK`, `TRYAGAIN`) for
    /// a while. Returns the number of keys moved.
    pub async fn migrate_slot(
        &self,
        slot: u16,
        from: &ClusterNode,
        to: &ClusterNode,
        keys_per_step: usize,
        pause: Duration,
    ) -> usize {
        let (mut source, mut target) = (self.node(from.port).await, self.node(to.port).await);
        let setslot = |state: &str, node: &str| {
            let mut cmd = redis::cmd("CLUSTER");
            cmd.arg("SETSLOT").arg(slot).arg(state).arg(node);
            cmd
        };
        setslot("IMPORTING", &from.id)
            .query_async::<()>(&mut target)
            .await
            .expect("SETSLOT IMPORTING");
        setslot("MIGRATING", &to.id)
            .query_async::<()>(&mut source)
            .await
            .expect("SETSLOT MIGRATING");
        let mut moved = 0;
        loop {
            let keys: Vec<Vec<u8>> = redis::cmd("CLUSTER")
                .arg("GETKEYSINSLOT")
                .arg(slot)
                .arg(keys_per_step)
                .query_async(&mut source)
                .await
                .expect("GETKEYSINSLOT");
            if keys.is_empty() {
                break;
            }
            redis::cmd("MIGRATE")
                .arg("127.0.0.1")
                .arg(to.port)
                .arg("")
                .arg(0)
                .arg(10_000)
                .arg("KEYS")
                .arg(&keys)
                .query_async::<()>(&mut source)
                .await
                .expect("MIGRATE");
            moved += keys.len();
            tokio::time::sleep(pause).await;
        }
        // The target first, as redis-cli does: once the source lets go, the target owns it.
        let mut masters: Vec<u16> = vec![to.port, from.port];
        for node in self.nodes_seen_by(from.port).await {
            if node.master.is_none() && !node.failed && !masters.contains(&node.port) {
                masters.push(node.port);
            }
        }
        for port in masters {
            setslot("NODE", &to.id)
                .query_async::<()>(&mut self.node(port).await)
                .await
                .expect("SETSLOT NODE");
        }
        moved
    }

    /// Waits until every node on `ports` says the cluster is healthy and they all agree
    /// on which node serves each slot (after a failover or a slot migration).
    pub async fn wait_until_settled(&self, ports: &[u16], within: Duration) {
        let deadline = Instant::now() + within;
        loop {
            let mut views = Vec::new();
            let mut healthy = true;
            for &port in ports {
                let info: String = redis::cmd("CLUSTER")
                    .arg("INFO")
                    .query_async(&mut self.node(port).await)
                    .await
                    .expect("CLUSTER INFO");
                healthy &= info.lines().any(|line| line.trim() == "cluster_state:ok");
                let mut masters: Vec<(String, Vec<(u16, u16)>)> = self
                    .nodes_seen_by(port)
                    .await
                    .into_iter()
                    .filter(|node| node.master.is_none() && !node.slots.is_empty())
                    .map(|node| (node.id, node.slots))
                    .collect();
                masters.sort();
                views.push(masters);
            }
            if healthy && views.windows(2).all(|pair| pair[0] == pair[1]) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the cluster did not settle in {within:?}: {views:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for TestCluster {
    fn drop(&mut self) {
        let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/redis-cluster");
        let _ = Command::new(script)
            .arg("stop")
            .arg(self.dir.path().join("cluster"))
            .status();
    }
}

/// The CA and client certificate of a certificate directory (see
/// [`TestCluster::start_with_tls`]).
fn cluster_tls(dir: &std::path::Path) -> TlsSettings {
    TlsSettings {
        ca_file: Some(dir.join("ca.crt")),
        client_cert_file: Some(dir.join("client.crt")),
        client_key_file: Some(dir.join("client.key")),
        insecure_skip_verify: false,
    }
}

/// The first of six consecutive loopback ports in 20000–29999 that are free now, their
/// cluster bus ports (+10000) too.
fn free_port_run(attempt: u64) -> u16 {
    let seed = std::process::id() as u64 * 7919
        + attempt * 104_729
        + std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos() as u64);
    for offset in 0..1000u64 {
        let first = 20_000 + ((seed + offset * 6) % 9_990) as u16;
        let free = (0..6).all(|i| {
            [first + i, first + i + 10_000].iter().all(|port| {
                std::net::TcpListener::bind((std::net::Ipv4Addr::LOCALHOST, *port)).is_ok()
            })
        });
        if free {
            return first;
        }
    }
    panic!("no six free ports in 20000-29999");
}

/// Settings for a tracker on `redis`: store in db 0, stream in db 1 (as the real game server
/// writes to db 1), fast leases so takeovers are quick.
pub fn settings(redis: &TestRedis) -> Settings {
    let mut settings = Settings::defaults(Mode::Test);
    settings.store.redis_url = Some(redis.url(0));
    settings.stream.redis_url = Some(redis.url(1));
    test_settings(settings)
}

/// [`settings`] for a tracker whose store and stream are both on `cluster`.
pub fn cluster_settings(cluster: &TestCluster) -> Settings {
    let mut settings = Settings::defaults(Mode::Test);
    settings.store.redis_url = Some(cluster.urls().to_owned());
    settings.stream.redis_url = Some(cluster.urls().to_owned());
    settings.store.cluster = true;
    settings.stream.cluster = true;
    test_settings(settings)
}

fn test_settings(mut settings: Settings) -> Settings {
    settings.store.key_prefix = "st_test".to_owned();
    settings.stream.block_ms = 200;
    settings.stream.lease_ttl_ms = 1000;
    settings.server.bind = SocketAddr::from(([127, 0, 0, 1], 0));
    settings.worker.metrics_bind = SocketAddr::from(([127, 0, 0, 1], 0));
    // Tests read right after writing; the top-ten and page caches would hide the write.
    settings.server.top_ten_cache_ms = 0;
    settings.server.page_cache_ms = 0;
    settings
}

/// The example games file of the repository (covers every board kind and stats rule).
pub fn example_games_file() -> PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/games.example.toml")
}

/// The tracker running in-process: HTTP server and (optionally) worker.
pub struct TestApp {
    pub address: String,
    pub http: reqwest::Client,
    shutdown: CancellationToken,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl TestApp {
    /// Starts the HTTP server, and the worker too when `with_worker`.
    pub async fn spawn(settings: &Settings, with_worker: bool) -> Self {
        Self::spawn_with_clock(settings, with_worker, None).await
    }

    /// Like [`TestApp::spawn`], with the server's clock (Unix ms) read from `clock` if given.
    pub async fn spawn_with_clock(
        settings: &Settings,
        with_worker: bool,
        clock: Option<std::sync::Arc<std::sync::atomic::AtomicU64>>,
    ) -> Self {
        let shutdown = CancellationToken::new();
        let limits = server::listener::Limits::from_settings(&settings.server);
        let listener = server::listener::bind(settings.server.bind, &limits).expect("bind");
        let address = format!("http://{}", listener.local_addr().expect("address"));
        let games = load_games(settings).expect("games file");
        let mut state = app_state(settings, games.clone()).expect("app state");
        if let Some(clock) = clock {
            state.clock =
                std::sync::Arc::new(move || clock.load(std::sync::atomic::Ordering::SeqCst));
        }
        let mut tasks = vec![tokio::spawn({
            let shutdown = shutdown.clone();
            async move {
                server::run(listener, state, limits, shutdown)
                    .await
                    .expect("server");
            }
        })];
        if with_worker {
            let worker = Worker::new(settings, Rules::from_games(&games))
                .and_then(|worker| worker.serving_rebuilds(settings, games.clone()))
                .expect("worker");
            let shutdown = shutdown.clone();
            tasks.push(tokio::spawn(async move {
                worker.run(shutdown).await.expect("the worker runs");
            }));
        }
        Self {
            address,
            http: http_client()
                .timeout(Duration::from_secs(10))
                .build()
                .expect("http client"),
            shutdown,
            tasks,
        }
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.http
            .get(format!("{}{}", self.address, path))
            .send()
            .await
            .expect("request")
    }

    pub async fn get_json(&self, path: &str) -> (u16, serde_json::Value) {
        let response = self.get(path).await;
        let status = response.status().as_u16();
        let body = response.json().await.expect("JSON body");
        (status, body)
    }

    /// Stops server and worker gracefully and waits for them.
    pub async fn stop(self) {
        self.shutdown.cancel();
        for task in self.tasks {
            task.await.expect("task ends cleanly");
        }
    }
}

/// Runs `stats-tracker rebuild --product <product>` to the end; its JSON report, after
/// checking it succeeded and switched the rebuilt copy in.
pub fn rebuild_product(settings: &Settings, product: &str) -> serde_json::Value {
    let output = tracker_command(settings, "rebuild")
        .args(["--product", product])
        .env("RUST_LOG", "warn")
        .output()
        .expect("run stats-tracker rebuild");
    assert!(
        output.status.success(),
        "rebuild failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let outcome: serde_json::Value =
        serde_json::from_slice(&output.stdout).expect("rebuild prints JSON");
    assert_eq!(outcome["switched"], true, "{outcome}");
    outcome
}

/// `stats-tracker <subcommand> -m test` configured by `settings` alone (through the
/// environment): Redis URLs, cluster flags, key prefix, games file, stream and worker settings.
/// `subcommand` may be several words (`history export`).
pub fn tracker_command(settings: &Settings, subcommand: &str) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_stats-tracker"));
    if let Some(file) = &settings.games.file {
        command.env("STATS_TRACKER__GAMES__FILE", file);
    }
    command
        .args(subcommand.split(' '))
        .args(["-m", "test"])
        .env("STATS_TRACKER_REDIS_URL", settings.store_url())
        .env("GAME_EVENT_STREAM_REDIS_URL", settings.stream_url())
        .env(
            "STATS_TRACKER__STORE__KEY_PREFIX",
            &settings.store.key_prefix,
        )
        .env(
            "STATS_TRACKER__STORE__CLUSTER",
            settings.store.cluster.to_string(),
        )
        .env(
            "STATS_TRACKER__STREAM__CLUSTER",
            settings.stream.cluster.to_string(),
        )
        .env(
            "STATS_TRACKER__STREAM__PARTITIONS",
            settings.stream.partitions.to_string(),
        )
        .env(
            "STATS_TRACKER__STREAM__BATCH_SIZE",
            settings.stream.batch_size.to_string(),
        )
        .env(
            "STATS_TRACKER__WORKER__ENTRIES_PER_SCRIPT_CALL",
            settings.worker.entries_per_script_call.to_string(),
        )
        .env(
            "STATS_TRACKER__STREAM__BLOCK_MS",
            settings.stream.block_ms.to_string(),
        )
        .env(
            "STATS_TRACKER__STREAM__LEASE_TTL_MS",
            settings.stream.lease_ttl_ms.to_string(),
        );
    command
}

/// A worker running as a child process of the real binary.
pub struct WorkerProcess {
    pub child: Child,
}

impl WorkerProcess {
    pub fn spawn(settings: &Settings, consumer: &str) -> Self {
        let child = tracker_command(settings, "worker")
            .args(["--metrics-bind", "127.0.0.1:0"])
            .env("STATS_TRACKER__STREAM__CONSUMER", consumer)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn the stats-tracker binary");
        Self { child }
    }

    /// SIGKILL: no chance to finish anything.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for WorkerProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Appends events (field/value pairs) to the stream in pipelined chunks; returns their ids.
pub async fn push_events(
    conn: &mut impl TestConn,
    events: &[Vec<(String, String)>],
) -> Vec<String> {
    push_events_at(conn, events, None).await
}

/// Appends `events` with stream ids at Unix millisecond `at_ms` (`<ms>-*`), or now if `None`.
pub async fn push_events_at(
    conn: &mut impl TestConn,
    events: &[Vec<(String, String)>],
    at_ms: Option<u64>,
) -> Vec<String> {
    let id = at_ms.map_or_else(|| "*".to_owned(), |ms| format!("{ms}-*"));
    let mut ids = Vec::with_capacity(events.len());
    for chunk in events.chunks(1000) {
        let mut pipe = redis::pipe();
        for event in chunk {
            let mut cmd = redis::cmd("XADD");
            cmd.arg(STREAM).arg(&id);
            for (field, value) in event {
                cmd.arg(field).arg(value);
            }
            pipe.add_command(cmd);
        }
        let chunk_ids: Vec<String> = pipe.query_async(conn).await.expect("XADD");
        ids.extend(chunk_ids);
    }
    ids
}

/// Waits until the group has no undelivered and no unacknowledged entries.
pub async fn wait_until_drained(stream: &mut impl TestConn, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        if let Some((lag, pending)) = group_backlog(stream).await
            && lag == 0
            && pending == 0
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "worker did not drain the stream in {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The group's (lag, pending), if the group exists. Redis cannot always tell the lag (after a
/// restart, say); then it is 0 or 1 by whether the group has delivered the stream's last entry.
pub async fn group_backlog(stream: &mut impl TestConn) -> Option<(i64, i64)> {
    group_backlog_of(stream, STREAM).await
}

/// [`group_backlog`] of the stream (or partition) `key`.
pub async fn group_backlog_of(stream: &mut impl TestConn, key: &str) -> Option<(i64, i64)> {
    let groups: Vec<BTreeMap<String, redis::Value>> = redis::cmd("XINFO")
        .arg("GROUPS")
        .arg(key)
        .query_async(stream)
        .await
        .ok()?;
    let group = groups.into_iter().find(
        |g| matches!(g.get("name"), Some(redis::Value::BulkString(n)) if n == GROUP.as_bytes()),
    )?;
    let int = |v: Option<&redis::Value>| match v {
        Some(redis::Value::Int(n)) => Some(*n),
        _ => None,
    };
    let pending = int(group.get("pending"))?;
    let lag = match int(group.get("lag")) {
        Some(lag) => lag,
        None => {
            let delivered: String =
                redis::from_redis_value_ref(group.get("last-delivered-id")?).ok()?;
            let last: Vec<(String, Vec<Vec<u8>>)> = redis::cmd("XREVRANGE")
                .arg(key)
                .arg("+")
                .arg("-")
                .arg("COUNT")
                .arg(1)
                .query_async(stream)
                .await
                .ok()?;
            i64::from(last.first().is_some_and(|(id, _)| *id != delivered))
        }
    };
    Some((lag, pending))
}

/// Dead letters as (source id, reason, original fields), in stream order. The tracker writes
/// `source_id`, `reason` and `board` as the first three pairs, then the original fields.
pub async fn dead_letters(
    store: &mut impl TestConn,
    prefix: &str,
) -> Vec<(String, String, Vec<Vec<u8>>)> {
    let entries: Vec<(String, Vec<Vec<u8>>)> = redis::cmd("XRANGE")
        .arg(format!("{prefix}:{{~dead_letters}}:stream"))
        .arg("-")
        .arg("+")
        .query_async(store)
        .await
        .expect("XRANGE");
    entries
        .into_iter()
        .map(|(_, mut flat)| {
            assert_eq!(flat[0], b"source_id");
            assert_eq!(flat[2], b"reason");
            assert_eq!(flat[4], b"board");
            let original = flat.split_off(6);
            let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
            (text(&flat[1]), text(&flat[3]), original)
        })
        .collect()
}

/// `text` percent-encoded for a URL path segment or query value.
pub fn urlencode(text: &str) -> String {
    percent_encoding::utf8_percent_encode(text, percent_encoding::NON_ALPHANUMERIC).to_string()
}

/// A player's stats as JSON numbers, from the v1 route (the original route answers strings).
pub async fn stats_of(app: &TestApp, product: &str, player: &str) -> serde_json::Value {
    let path = format!(
        "/v1/products/{}/players/{}/stats",
        urlencode(product),
        urlencode(player)
    );
    let (status, body) = app.get_json(&path).await;
    assert_eq!(status, 200, "{path}: {body}");
    body["stats"].clone()
}

/// The value of one metric series (name and labels exactly as rendered; 0 when absent), from
/// the app's `/metrics` (the in-process worker's metrics are there too).
pub async fn metric(app: &TestApp, series: &str) -> f64 {
    let metrics = app.get("/metrics").await.text().await.expect("text");
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or(0.0)
}

/// The `stats-tracker` binary run as a child process with its log (stderr) read line by line,
/// for tests of what an operator sees: start-up lines, errors, the access log.
pub struct TrackerProcess {
    child: Child,
    lines: std::sync::mpsc::Receiver<String>,
    /// Every log line received so far.
    pub log: Vec<String>,
}

impl TrackerProcess {
    /// Starts `command` (stdin and stdout closed, stderr read by a thread).
    pub fn spawn(mut command: Command) -> Self {
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn the stats-tracker binary");
        let stderr = child.stderr.take().expect("piped stderr");
        let (send, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if send.send(line).is_err() {
                    break;
                }
            }
        });
        Self {
            child,
            lines,
            log: Vec::new(),
        }
    }

    /// Waits (at most `within`) for a log line containing `needle` and returns it.
    pub fn wait_for_line(&mut self, needle: &str, within: Duration) -> String {
        let deadline = Instant::now() + within;
        if let Some(line) = self.log.iter().find(|line| line.contains(needle)) {
            return line.clone();
        }
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.log.push(line.clone());
                    if line.contains(needle) {
                        return line;
                    }
                }
                Err(_) => panic!(
                    "no log line with {needle:?} within {within:?}; the log:\n{}",
                    self.log.join("\n")
                ),
            }
        }
    }

    /// SIGKILL: no chance to finish anything.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then waits (at most `within`) for the process to exit; its status.
    pub fn terminate(&mut self, within: Duration) -> std::process::ExitStatus {
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        )
        .expect("send SIGTERM");
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "no exit within {within:?} of SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The address the API listens on, from its "HTTP API listening" line.
    pub fn api_address(&mut self) -> SocketAddr {
        let line = self.wait_for_line("HTTP API listening", Duration::from_secs(30));
        let addr = line
            .split("addr=")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .unwrap_or_else(|| panic!("no addr= in {line:?}"));
        addr.parse()
            .unwrap_or_else(|_| panic!("not an address: {addr:?}"))
    }
}

impl Drop for TrackerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An event as field/value pairs (the traffic generator's own builder).
pub use crate::simulate::event;

/// [`settings`] for a tracker on `redis` whose games file is `games` (written next to the
/// socket).
pub fn settings_with_games(redis: &TestRedis, games: &str) -> Settings {
    let file = redis.socket_dir().join("games.toml");
    std::fs::write(&file, games).expect("games file");
    let mut settings = settings(redis);
    settings.games.file = Some(file);
    settings
}

/// A `game_over` event of `product`: `winner` beat `loser`.
pub fn game_over(product: &str, winner: &str, loser: &str) -> crate::simulate::Event {
    event(&[
        ("product_id", product),
        ("type", "game_over"),
        ("winner_id", winner),
        ("loser_id", loser),
    ])
}

/// Sends a request with an optional bearer token and JSON body; the status and JSON answer.
pub async fn send(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    token: Option<&str>,
    body: Option<serde_json::Value>,
) -> (u16, serde_json::Value) {
    let mut request = app.http.request(method, format!("{}{path}", app.address));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.expect("request");
    let status = response.status().as_u16();
    (status, response.json().await.expect("JSON body"))
}

/// An HTTP client for the tests. reqwest is built without a TLS crypto provider of its own
/// (the tracker's webhooks use rustls' ring, its one compiled-in provider): installed here
/// first, once.
pub fn http_client() -> reqwest::ClientBuilder {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
}

/// `from` answers a redirect to `to`.
pub async fn assert_redirects(app: &TestApp, from: &str, to: &str) {
    let no_redirects = http_client()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("http client");
    let response = no_redirects
        .get(format!("{}{from}", app.address))
        .send()
        .await
        .expect("request");
    assert!(response.status().is_redirection(), "{response:?}");
    assert_eq!(response.headers()["location"], to);
}
