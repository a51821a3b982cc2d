//! Access to the Redis store: a self-reconnecting connection, the key layout, and a time
//! bound on every command so callers get an error instead of hanging while Redis is away.

use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::cluster::{ClusterClientBuilder, ClusterConfig};
use redis::cluster_async::ClusterConnection;
use redis::cluster_read_routing::RandomReplicaStrategy;
use redis::cluster_routing::Slot;
use redis::{Cmd, FromRedisValue, Value};

use super::config::{RedisEndpoint, TlsSettings};
use super::keys::KeySpace;

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("redis did not answer within {0:?}")]
    Timeout(Duration),
    #[error("redis error: {0}")]
    Redis(#[from] redis::RedisError),
}

/// Where a Redis URL points, for logs and messages: `host:port/db`, `host:port/db (TLS)` or
/// `<socket path> db <db>`. Never the password or the user name a URL may carry.
///
/// A cluster's comma-separated seed URLs give each location, comma-separated.
pub fn redis_location(url: &str) -> String {
    if url.contains(',') {
        let locations: Vec<String> = url
            .split(',')
            .map(str::trim)
            .filter(|url| !url.is_empty())
            .map(redis_location)
            .collect();
        return locations.join(", ");
    }
    use redis::{ConnectionAddr, IntoConnectionInfo};
    let Ok(info) = url.into_connection_info() else {
        // The URL itself may hold a password: say only that it does not parse.
        return "an invalid Redis URL".to_owned();
    };
    let db = info.redis_settings().db();
    let host_port = |host: &str, port: u16| {
        if host.contains(':') {
            format!("[{host}]:{port}")
        } else {
            format!("{host}:{port}")
        }
    };
    match info.addr() {
        ConnectionAddr::Tcp(host, port) => format!("{}/{db}", host_port(host, *port)),
        ConnectionAddr::TcpTls { host, port, .. } => {
            format!("{}/{db} (TLS)", host_port(host, *port))
        }
        ConnectionAddr::Unix(path) => format!("{} db {db}", path.display()),
        _ => format!("an unsupported Redis address, db {db}"),
    }
}

/// Awaits a Redis call for at most `timeout`, so no caller hangs while Redis is away.
pub async fn bounded<T>(
    timeout: Duration,
    call: impl Future<Output = redis::RedisResult<T>>,
) -> Result<T, StoreError> {
    match tokio::time::timeout(timeout, call).await {
        Ok(result) => Ok(result?),
        Err(_) => Err(StoreError::Timeout(timeout)),
    }
}

/// A connection to Redis: one server, or a Redis Cluster through the redis crate's own
/// cluster client (slot routing, `MOVED`/`ASK` redirections, reconnects). Cheap to clone:
/// clones share the connections.
#[derive(Clone)]
pub enum Connection {
    Server(ConnectionManager),
    Cluster(ClusterConnection),
}

impl redis::aio::ConnectionLike for Connection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> redis::RedisFuture<'a, Value> {
        match self {
            Connection::Server(conn) => conn.req_packed_command(cmd),
            Connection::Cluster(conn) => conn.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a redis::Pipeline,
        offset: usize,
        count: usize,
    ) -> redis::RedisFuture<'a, Vec<Value>> {
        match self {
            Connection::Server(conn) => conn.req_packed_commands(pipeline, offset, count),
            Connection::Cluster(conn) => conn.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Connection::Server(conn) => conn.get_db(),
            Connection::Cluster(conn) => conn.get_db(),
        }
    }
}

impl Connection {
    /// The addresses (`host:port`) of the cluster's masters, or `None` on a single server.
    /// Asked of the cluster each time, so it follows failovers and added masters.
    pub async fn cluster_masters(&mut self) -> redis::RedisResult<Option<Vec<(String, u16)>>> {
        let Connection::Cluster(conn) = self else {
            return Ok(None);
        };
        // Each row of CLUSTER SLOTS: start, end, then the master's [host, port, id, …] first.
        let slots: Vec<Vec<Value>> = redis::cmd("CLUSTER").arg("SLOTS").query_async(conn).await?;
        let mut masters = Vec::new();
        for row in slots {
            let Some(Value::Array(master)) = row.get(2) else {
                continue;
            };
            let (Some(host), Some(port)) = (master.first(), master.get(1)) else {
                continue;
            };
            let host: String = redis::from_redis_value_ref(host)?;
            let port: u16 = redis::from_redis_value_ref(port)?;
            if !masters.contains(&(host.clone(), port)) {
                masters.push((host, port));
            }
        }
        Ok(Some(masters))
    }

    /// Whether this connects to a Redis Cluster.
    pub fn is_cluster(&self) -> bool {
        matches!(self, Connection::Cluster(_))
    }

    /// Runs `cmds` (each naming its key first, as `GET key`, `HGETALL key` do) and returns
    /// their replies in order: one pipeline on a server; on a cluster, one pipeline per hash
    /// slot, sent at once (a pipeline may not span slots there).
    pub async fn query_all<T: FromRedisValue>(
        &mut self,
        cmds: &[Cmd],
    ) -> redis::RedisResult<Vec<T>> {
        let Connection::Cluster(conn) = self else {
            let mut pipe = redis::pipe();
            for cmd in cmds {
                pipe.add_command(cmd.clone());
            }
            return pipe.query_async(self).await;
        };
        let mut by_slot: Vec<(Slot, Vec<usize>)> = Vec::new();
        for (index, cmd) in cmds.iter().enumerate() {
            let slot = slot_of_first_key(cmd);
            match by_slot.iter_mut().find(|(s, _)| *s == slot) {
                Some((_, indexes)) => indexes.push(index),
                None => by_slot.push((slot, vec![index])),
            }
        }
        let replies = futures::future::try_join_all(by_slot.iter().map(|(_, indexes)| {
            let mut pipe = redis::pipe();
            for &index in indexes {
                pipe.add_command(cmds[index].clone());
            }
            let mut conn = conn.clone();
            async move { pipe.query_async::<Vec<Value>>(&mut conn).await }
        }))
        .await?;
        let mut ordered: Vec<Option<Value>> = vec![None; cmds.len()];
        for ((_, indexes), values) in by_slot.iter().zip(replies) {
            for (&index, value) in indexes.iter().zip(values) {
                ordered[index] = Some(value);
            }
        }
        ordered
            .into_iter()
            .map(|value| Ok(T::from_redis_value(value.unwrap_or(Value::Nil))?))
            .collect()
    }

    /// Runs `cmd` on the node at `host:port` (a cluster) or on the server.
    pub async fn query_node<T: FromRedisValue>(
        &mut self,
        node: Option<&(String, u16)>,
        cmd: &Cmd,
    ) -> redis::RedisResult<T> {
        match (self, node) {
            (Connection::Cluster(conn), Some((host, port))) => {
                use redis::cluster_routing::{RoutingInfo, SingleNodeRoutingInfo};
                let routing = RoutingInfo::SingleNode(SingleNodeRoutingInfo::ByAddress {
                    host: host.clone(),
                    port: *port,
                });
                let value = conn.route_command(cmd.clone(), routing).await?;
                Ok(redis::from_redis_value(value)?)
            }
            (conn, _) => cmd.query_async(conn).await,
        }
    }
}

/// Appends events to streams: `(stream key, fields)` in order; their ids in the same order.
/// The events of one stream are appended all or none (MULTI/EXEC); events of several streams
/// (partitions, in separate hash slots on a cluster) in one transaction per stream, sent at
/// once.
pub async fn append_events(
    conn: &Connection,
    events: &[(String, crate::core::event::Fields)],
) -> redis::RedisResult<Vec<String>> {
    let mut streams: Vec<(&str, Vec<usize>)> = Vec::new();
    for (index, (stream, _)) in events.iter().enumerate() {
        match streams
            .iter_mut()
            .find(|(name, _)| *name == stream.as_str())
        {
            Some((_, indexes)) => indexes.push(index),
            None => streams.push((stream, vec![index])),
        }
    }
    let appended = futures::future::try_join_all(streams.iter().map(|(stream, indexes)| {
        let mut pipe = redis::pipe();
        pipe.atomic();
        for &index in indexes {
            let mut xadd = redis::cmd("XADD");
            xadd.arg(*stream).arg("*");
            for (name, value) in &events[index].1 {
                xadd.arg(name.as_slice()).arg(value.as_slice());
            }
            pipe.add_command(xadd);
        }
        let mut conn = conn.clone();
        async move { pipe.query_async::<Vec<String>>(&mut conn).await }
    }))
    .await?;
    let mut ids = vec![String::new(); events.len()];
    for ((_, indexes), stream_ids) in streams.iter().zip(appended) {
        for (&index, id) in indexes.iter().zip(stream_ids) {
            ids[index] = id;
        }
    }
    Ok(ids)
}

/// The hash slot of a command's first argument (its key, for the commands
/// [`Connection::query_all`] takes).
pub fn slot_of_first_key(cmd: &Cmd) -> Slot {
    let key = cmd
        .args_iter()
        .nth(1)
        .map(|arg| match arg {
            redis::Arg::Simple(bytes) => bytes,
            _ => &[],
        })
        .unwrap_or_default();
    Slot::for_key(key)
}

/// A handle to the store; cheap to clone (all clones share one multiplexed connection).
#[derive(Clone)]
pub struct Store {
    conn: Connection,
    keys: KeySpace,
    timeout: Duration,
}

/// Settings of a reconnecting connection whose commands fail after `timeout`.
pub fn connection_config(timeout: Duration) -> ConnectionManagerConfig {
    ConnectionManagerConfig::new()
        .set_connection_timeout(Some(timeout))
        .set_response_timeout(Some(timeout))
        // Reconnection is retried on every later command; a few quick tries are enough.
        .set_number_of_retries(2)
        .set_max_delay(Duration::from_millis(500))
}

/// A connection that connects on first use, so the process can start while Redis is still
/// missing and begin working when it appears. With `redis.cluster`, `redis.url` lists one or
/// more seed nodes, comma-separated.
pub fn lazy_connection(redis: &RedisEndpoint, timeout: Duration) -> Result<Connection, StoreError> {
    if !redis.cluster {
        let client = client(redis.url.as_str(), &redis.tls)?;
        return Ok(Connection::Server(
            client.get_connection_manager_lazy(connection_config(timeout))?,
        ));
    }
    let seeds: Vec<String> = redis
        .seed_urls()
        .map(|url| tls_url(url, &redis.tls))
        .collect();
    let mut builder = ClusterClientBuilder::new(seeds)
        .connection_timeout(timeout)
        .response_timeout(timeout)
        // Redirections and reconnects during a failover or a slot migration are retried, each
        // command still bounded by the caller's timeout.
        .retries(4)
        .min_retry_wait(20)
        .max_retry_wait(500);
    if let Some(certificates) = certificates(&redis.tls)? {
        builder = builder.certs(certificates);
    }
    if redis.read_from_replicas {
        builder = builder.read_routing_strategy(RandomReplicaStrategy);
    }
    let client = builder.build()?;
    let config = ClusterConfig::new()
        .set_connection_timeout(timeout)
        .set_response_timeout(timeout);
    Ok(Connection::Cluster(
        client.get_pending_async_connection_with_config(config),
    ))
}

/// `url`, marked `#insecure` when the TLS options say to skip verification.
fn tls_url(url: &str, tls: &TlsSettings) -> String {
    let mut url = url.to_owned();
    if url.starts_with("rediss://") && tls.insecure_skip_verify && !url.ends_with("#insecure") {
        url.push_str("#insecure");
    }
    url
}

/// The CA and client certificate the TLS options name, read from their files (`None`: the
/// system's roots and no client certificate).
fn certificates(tls: &TlsSettings) -> Result<Option<redis::TlsCertificates>, StoreError> {
    if tls.ca_file.is_none() && tls.client_cert_file.is_none() {
        return Ok(None);
    }
    let read = |file: &std::path::Path| {
        std::fs::read(file).map_err(|error| {
            StoreError::Redis(redis::RedisError::from((
                redis::ErrorKind::InvalidClientConfig,
                "cannot read a TLS file",
                format!("{}: {error}", file.display()),
            )))
        })
    };
    let client_tls = match (&tls.client_cert_file, &tls.client_key_file) {
        (Some(cert), Some(key)) => Some(redis::ClientTlsConfig {
            client_cert: read(cert)?,
            client_key: read(key)?,
        }),
        _ => None,
    };
    let root_cert = tls.ca_file.as_deref().map(read).transpose()?;
    Ok(Some(redis::TlsCertificates {
        client_tls,
        root_cert,
    }))
}

/// A client for one server: TLS with the configured CA and client certificate for `rediss://`
/// URLs (unverified with `insecure_skip_verify`, which URLs spell `#insecure`).
fn client(url: &str, tls: &TlsSettings) -> Result<redis::Client, StoreError> {
    if !url.starts_with("rediss://") {
        return Ok(redis::Client::open(url)?);
    }
    let url = tls_url(url, tls);
    match certificates(tls)? {
        None => Ok(redis::Client::open(url)?),
        Some(certificates) => Ok(redis::Client::build_with_tls(url, certificates)?),
    }
}

impl Store {
    /// Prepares a store connection; nothing is sent until the first command.
    pub fn connect_lazy(
        redis: &RedisEndpoint,
        keys: KeySpace,
        timeout: Duration,
    ) -> Result<Self, StoreError> {
        Ok(Self {
            conn: lazy_connection(redis, timeout)?,
            keys,
            timeout,
        })
    }

    pub fn keys(&self) -> &KeySpace {
        &self.keys
    }

    /// A clone of the underlying connection, for scripts and pipelines.
    pub fn connection(&self) -> Connection {
        self.conn.clone()
    }

    /// Runs a read, failing after the configured timeout.
    ///
    /// A dropped connection fails the first command sent on it while the connection manager
    /// reconnects; reads are idempotent, so that one is retried once on the new connection.
    async fn read<T, F>(&self, mut call: impl FnMut(Connection) -> F) -> Result<T, StoreError>
    where
        F: Future<Output = redis::RedisResult<T>>,
    {
        let attempt = async {
            match call(self.conn.clone()).await {
                Err(error) if error.is_connection_dropped() || error.is_io_error() => {
                    call(self.conn.clone()).await
                }
                result => result,
            }
        };
        bounded(self.timeout, attempt).await
    }

    /// Every key matching `pattern`, sorted, each once (`SCAN` may return a key twice). On a
    /// cluster, every master is scanned. Each page is bounded by the timeout.
    pub async fn scan(&self, pattern: &str) -> Result<Vec<String>, StoreError> {
        let mut conn = self.conn.clone();
        let masters = bounded(self.timeout, conn.cluster_masters()).await?;
        let nodes: Vec<Option<(String, u16)>> = match masters {
            None => vec![None],
            Some(masters) => masters.into_iter().map(Some).collect(),
        };
        let mut keys = Vec::new();
        for node in &nodes {
            let mut cursor: u64 = 0;
            loop {
                let mut scan = redis::cmd("SCAN");
                scan.arg(cursor)
                    .arg("MATCH")
                    .arg(pattern)
                    .arg("COUNT")
                    .arg(1000);
                let (next, found): (u64, Vec<String>) = self
                    .read(|mut conn| {
                        let scan = scan.clone();
                        async move { conn.query_node(node.as_ref(), &scan).await }
                    })
                    .await?;
                keys.extend(found);
                if next == 0 {
                    break;
                }
                cursor = next;
            }
        }
        keys.sort();
        keys.dedup();
        Ok(keys)
    }

    /// Runs one read command (see [`Store::read`]).
    pub async fn query<T: FromRedisValue>(&self, cmd: &Cmd) -> Result<T, StoreError> {
        self.read(|mut conn| async move { cmd.query_async(&mut conn).await })
            .await
    }

    /// Runs reads of many keys (see [`Connection::query_all`]: split by hash slot on a
    /// cluster), bounded by the timeout and retried like [`Store::query`].
    pub async fn query_all<T: FromRedisValue>(&self, cmds: &[Cmd]) -> Result<Vec<T>, StoreError> {
        self.read(|mut conn| async move { conn.query_all(cmds).await })
            .await
    }

    /// Runs a pipeline of read commands (see [`Store::read`]); it must not write.
    pub async fn query_pipe<T: FromRedisValue>(
        &self,
        pipe: &redis::Pipeline,
    ) -> Result<T, StoreError> {
        self.read(|mut conn| async move { pipe.query_async(&mut conn).await })
            .await
    }

    /// Runs a script that only reads (see [`Store::read`]).
    pub async fn invoke_read<T: FromRedisValue>(
        &self,
        invocation: &redis::ScriptInvocation<'_>,
    ) -> Result<T, StoreError> {
        self.read(|mut conn| async move { invocation.invoke_async(&mut conn).await })
            .await
    }

    /// Runs a script, failing after the configured timeout (not retried: scripts may write).
    pub async fn invoke<T: FromRedisValue>(
        &self,
        invocation: &redis::ScriptInvocation<'_>,
    ) -> Result<T, StoreError> {
        let mut conn = self.conn.clone();
        bounded(self.timeout, invocation.invoke_async(&mut conn)).await
    }

    /// Succeeds when Redis answers a PING in time.
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.query::<String>(&redis::cmd("PING")).await.map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::redis_location;

    #[test]
    fn redis_locations_never_show_credentials() {
        assert_eq!(redis_location("redis://:secret@host:6379/1"), "host:6379/1");
        assert_eq!(
            redis_location("redis://user:secret@10.0.0.5:6380/0"),
            "10.0.0.5:6380/0"
        );
        assert_eq!(redis_location("redis://127.0.0.1"), "127.0.0.1:6379/0");
        assert_eq!(
            redis_location("redis+unix:///run/redis.sock?db=2"),
            "/run/redis.sock db 2"
        );
        assert_eq!(
            redis_location("redis://:secret@10.0.0.1:7000, rediss://:secret@10.0.0.2:7001"),
            "10.0.0.1:7000/0, 10.0.0.2:7001/0 (TLS)"
        );
        let invalid = redis_location("redis://:secret@host:notaport/1");
        assert!(!invalid.contains("secret"), "{invalid}");
    }
}
