//! Access to the Redis store: a self-reconnecting connection, the key layout, and a time
//! bound on every command so callers get an error instead of hanging while Redis is away.

use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{Cmd, FromRedisValue};

use super::config::RedisEndpoint;
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
pub fn redis_location(url: &str) -> String {
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

/// A handle to the store; cheap to clone (all clones share one multiplexed connection).
#[derive(Clone)]
pub struct Store {
    conn: ConnectionManager,
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

/// A connection manager that connects on first use, so the process can start while Redis is
/// still missing and begin working when it appears.
pub fn lazy_connection(
    redis: &RedisEndpoint,
    timeout: Duration,
) -> Result<ConnectionManager, StoreError> {
    let client = client(redis)?;
    Ok(client.get_connection_manager_lazy(connection_config(timeout))?)
}

/// A client for `redis`: TLS with the configured CA and client certificate for `rediss://`
/// URLs (unverified with `insecure_skip_verify`, which URLs spell `#insecure`).
fn client(redis: &RedisEndpoint) -> Result<redis::Client, StoreError> {
    let tls = &redis.tls;
    if !redis.url.starts_with("rediss://") {
        return Ok(redis::Client::open(redis.url.as_str())?);
    }
    let mut url = redis.url.clone();
    if tls.insecure_skip_verify && !url.ends_with("#insecure") {
        url.push_str("#insecure");
    }
    if tls.ca_file.is_none() && tls.client_cert_file.is_none() {
        return Ok(redis::Client::open(url)?);
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
    Ok(redis::Client::build_with_tls(
        url,
        redis::TlsCertificates {
            client_tls,
            root_cert,
        },
    )?)
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
    pub fn connection(&self) -> ConnectionManager {
        self.conn.clone()
    }

    /// Runs a read, failing after the configured timeout.
    ///
    /// A dropped connection fails the first command sent on it while the connection manager
    /// reconnects; reads are idempotent, so that one is retried once on the new connection.
    async fn read<T, F>(
        &self,
        mut call: impl FnMut(ConnectionManager) -> F,
    ) -> Result<T, StoreError>
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

    /// Every key matching `pattern` (a `SCAN` of this server, each page bounded by the
    /// timeout), sorted, each once (`SCAN` may return a key twice).
    pub async fn scan(&self, pattern: &str) -> Result<Vec<String>, StoreError> {
        let mut keys = Vec::new();
        let mut cursor: u64 = 0;
        loop {
            let (next, found): (u64, Vec<String>) = self
                .query(
                    redis::cmd("SCAN")
                        .arg(cursor)
                        .arg("MATCH")
                        .arg(pattern)
                        .arg("COUNT")
                        .arg(1000),
                )
                .await?;
            keys.extend(found);
            if next == 0 {
                keys.sort();
                keys.dedup();
                return Ok(keys);
            }
            cursor = next;
        }
    }

    /// Runs one read command (see [`Store::read`]).
    pub async fn query<T: FromRedisValue>(&self, cmd: &Cmd) -> Result<T, StoreError> {
        self.read(|mut conn| async move { cmd.query_async(&mut conn).await })
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
        let invalid = redis_location("redis://:secret@host:notaport/1");
        assert!(!invalid.contains("secret"), "{invalid}");
    }
}
