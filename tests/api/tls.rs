//! TLS to Redis (`rediss://`): a private `redis-server --tls-port` with certificates the test
//! makes with `openssl` (a CA, a server certificate for 127.0.0.1, a client certificate).
//! The tracker verifies the server against the configured CA, presents its client certificate
//! when the server requires one, and refuses a server it cannot verify.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use serde_json::json;
use stats_tracker::core::config::{Settings, TlsSettings};

use crate::helpers::{
    TestApp, TestCluster, TestRedis, cluster_settings, event, push_events, settings,
    wait_until_drained,
};

/// A CA and the certificates it signed, in a directory of their own.
struct Certificates {
    dir: tempfile::TempDir,
}

impl Certificates {
    fn make() -> Self {
        let dir = tempfile::tempdir().expect("temporary directory");
        let openssl = |args: &[&str]| {
            let status = Command::new("openssl")
                .args(args)
                .current_dir(dir.path())
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .status()
                .expect("openssl must be installed");
            assert!(status.success(), "openssl {args:?} failed");
        };
        openssl(&[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-keyout",
            "ca.key",
            "-out",
            "ca.crt",
            "-subj",
            "/CN=stats-tracker test CA",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ]);
        for (name, usage, alt) in [
            (
                "server",
                // clientAuth too: cluster nodes present it to each other.
                "serverAuth,clientAuth",
                "subjectAltName=IP:127.0.0.1,DNS:localhost\n",
            ),
            ("client", "clientAuth", ""),
        ] {
            let ext = format!("{name}.ext");
            std::fs::write(
                dir.path().join(&ext),
                format!("{alt}basicConstraints=CA:FALSE\nextendedKeyUsage={usage}\n"),
            )
            .expect("extension file");
            let (key, csr, crt) = (
                format!("{name}.key"),
                format!("{name}.csr"),
                format!("{name}.crt"),
            );
            openssl(&[
                "req",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-keyout",
                &key,
                "-out",
                &csr,
                "-subj",
                &format!("/CN={name}"),
            ]);
            openssl(&[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                "ca.crt",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-days",
                "2",
                "-out",
                &crt,
                "-extfile",
                &ext,
            ]);
        }
        Self { dir }
    }

    fn file(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("a free port")
}

/// A Redis answering TLS on a TCP port (and plain on its unix socket, for the test itself);
/// `clients` is `--tls-auth-clients` (`yes` requires a client certificate).
async fn tls_redis(certs: &Certificates, clients: &str) -> (TestRedis, u16) {
    let port = free_port().to_string();
    let file = |name: &str| certs.file(name).display().to_string();
    let (cert, key, ca) = (file("server.crt"), file("server.key"), file("ca.crt"));
    let redis = TestRedis::start_with(&[
        "--tls-port",
        &port,
        "--tls-cert-file",
        &cert,
        "--tls-key-file",
        &key,
        "--tls-ca-cert-file",
        &ca,
        "--tls-auth-clients",
        clients,
    ])
    .await;
    (redis, port.parse().expect("port"))
}

/// Settings with store and stream on `rediss://127.0.0.1:<port>` with `tls` for both.
fn over_tls(redis: &TestRedis, port: u16, tls: TlsSettings) -> Settings {
    let mut settings = settings(redis);
    settings.store.redis_url = Some(format!("rediss://127.0.0.1:{port}/0"));
    settings.stream.redis_url = Some(format!("rediss://127.0.0.1:{port}/1"));
    settings.store.tls = tls.clone();
    settings.stream.tls = tls;
    settings
}

fn verified_by(certs: &Certificates) -> TlsSettings {
    TlsSettings {
        ca_file: Some(certs.file("ca.crt")),
        ..TlsSettings::default()
    }
}

#[tokio::test]
async fn the_tracker_works_over_tls_verifying_the_server_against_the_configured_ca() {
    let certs = Certificates::make();
    let (redis, port) = tls_redis(&certs, "optional").await;
    let settings = over_tls(&redis, port, verified_by(&certs));
    let app = TestApp::spawn(&settings, true).await;
    let mut stream = redis.connection(1).await;
    let game_over = event(&[
        ("product_id", "exrps"),
        ("type", "game_over"),
        ("winner_id", "A"),
        ("loser_id", "B"),
    ]);
    push_events(&mut stream, &[game_over]).await;
    wait_until_drained(&mut stream, Duration::from_secs(10)).await;
    assert_eq!(app.get_json("/readyz").await.0, 200);
    assert_eq!(
        app.get_json("/stats/exrps/A").await.1,
        json!({"games": "1", "wins": "1", "losses": "0"})
    );
    app.stop().await;
}

#[tokio::test]
async fn a_server_that_cannot_be_verified_is_refused_unless_told_to_skip_verification() {
    let certs = Certificates::make();
    let (redis, port) = tls_redis(&certs, "optional").await;
    // The system roots do not know the test CA.
    let app = TestApp::spawn(&over_tls(&redis, port, TlsSettings::default()), false).await;
    let (status, body) = app.get_json("/readyz").await;
    assert_eq!(status, 503, "{body}");
    app.stop().await;

    let insecure = TlsSettings {
        insecure_skip_verify: true,
        ..TlsSettings::default()
    };
    let app = TestApp::spawn(&over_tls(&redis, port, insecure), false).await;
    assert_eq!(app.get_json("/readyz").await.0, 200);
    app.stop().await;
}

#[tokio::test]
async fn a_client_certificate_is_presented_when_the_server_requires_one() {
    let certs = Certificates::make();
    let (redis, port) = tls_redis(&certs, "yes").await;
    let app = TestApp::spawn(&over_tls(&redis, port, verified_by(&certs)), false).await;
    assert_eq!(
        app.get_json("/readyz").await.0,
        503,
        "no client certificate"
    );
    app.stop().await;

    let with_client = TlsSettings {
        client_cert_file: Some(certs.file("client.crt")),
        client_key_file: Some(certs.file("client.key")),
        ..verified_by(&certs)
    };
    let app = TestApp::spawn(&over_tls(&redis, port, with_client), false).await;
    assert_eq!(app.get_json("/readyz").await.0, 200);
    app.stop().await;
}

#[tokio::test]
async fn the_tracker_works_on_a_redis_cluster_over_tls() {
    let certs = Certificates::make();
    let cluster = TestCluster::start_with_tls(Some(certs.dir.path())).await;
    assert!(
        cluster.urls().starts_with("rediss://"),
        "{}",
        cluster.urls()
    );
    let mut settings = cluster_settings(&cluster);
    settings.store.tls = cluster.tls().clone();
    settings.stream.tls = cluster.tls().clone();
    let app = TestApp::spawn(&settings, true).await;
    let mut stream = cluster.connection();
    let games: Vec<_> = (0..20)
        .map(|i| {
            event(&[
                ("product_id", if i % 2 == 0 { "exrps" } else { "arena" }),
                ("type", "game_over"),
                ("winner_id", "A"),
                ("loser_id", "B"),
            ])
        })
        .collect();
    push_events(&mut stream, &games).await;
    wait_until_drained(&mut stream, Duration::from_secs(20)).await;
    assert_eq!(app.get_json("/readyz").await.0, 200);
    for product in ["exrps", "arena"] {
        assert_eq!(
            app.get_json(&format!("/stats/{product}/A")).await.1,
            json!({"games": "10", "wins": "10", "losses": "0"}),
            "{product}"
        );
    }
    app.stop().await;

    // Unverifiable without the CA: the server is refused.
    settings.store.tls = TlsSettings {
        ca_file: None,
        ..cluster.tls().clone()
    };
    let app = TestApp::spawn(&settings, false).await;
    let (status, body) = app.get_json("/readyz").await;
    assert_eq!(status, 503, "{body}");
    app.stop().await;
}
