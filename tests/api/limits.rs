//! What a client can hold of the HTTP server: headers sent too slowly, headers too large,
//! more connections than the cap, a body the server must not wait for without a token, and
//! idle kept-alive connections. Raw TCP streams, so the test controls every byte. Bounds on
//! time are generous and only check that something happens (or not yet).

use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::{TestApp, TestRedis, settings};

const INGEST_TOKEN: &str = "ingest-token-0123456789";
/// Longest a test waits for something that must happen.
const PATIENCE: Duration = Duration::from_secs(5);

async fn connect(app: &TestApp) -> TcpStream {
    let address = app.address.trim_start_matches("http://");
    TcpStream::connect(address).await.expect("connect")
}

/// Whether the server closed `stream` (EOF or reset) within `within`, reading and
/// discarding what it sends meanwhile. `None` if it stayed open.
async fn closed_within(stream: &mut TcpStream, within: Duration) -> Option<Vec<u8>> {
    let mut received = Vec::new();
    let mut chunk = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut chunk)).await {
            Err(_still_open) => return None,
            Ok(Ok(0)) | Ok(Err(_)) => return Some(received),
            Ok(Ok(n)) => received.extend_from_slice(&chunk[..n]),
        }
    }
}

/// Reads one response: status, and the body as JSON when there is one (by content-length).
async fn read_response(stream: &mut TcpStream) -> (u16, Option<Value>) {
    let mut received = Vec::new();
    let mut chunk = [0u8; 4096];
    let read = async {
        loop {
            if let Some(end) = received.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&received[..end]).to_ascii_lowercase();
                let length = head
                    .lines()
                    .find_map(|line| line.strip_prefix("content-length:"))
                    .and_then(|value| value.trim().parse::<usize>().ok())
                    .unwrap_or(0);
                if received.len() >= end + 4 + length {
                    let status = head
                        .split(' ')
                        .nth(1)
                        .and_then(|code| code.parse().ok())
                        .expect("status line");
                    let body = &received[end + 4..end + 4 + length];
                    return (status, serde_json::from_slice(body).ok());
                }
            }
            let n = stream.read(&mut chunk).await.expect("read a response");
            assert!(
                n > 0,
                "connection closed before a full response: {received:?}"
            );
            received.extend_from_slice(&chunk[..n]);
        }
    };
    tokio::time::timeout(PATIENCE, read)
        .await
        .expect("a response in time")
}

const HEALTHZ: &[u8] = b"GET /healthz HTTP/1.1\r\nhost: test\r\n\r\n";

#[tokio::test]
async fn headers_sent_too_slowly_are_cut_off_at_the_header_timeout() {
    let redis = TestRedis::start().await;
    let mut settings = settings(&redis);
    settings.server.header_read_timeout_ms = 1000;
    let app = TestApp::spawn(&settings, false).await;

    let started = Instant::now();
    let mut stream = connect(&app).await;
    let request = b"GET /healthz HTTP/1.1\r\nhost: test\r\nx-slow: aaaaaaaaaaaaaaaaaaaaaaaa";
    let mut closed = None;
    for byte in request {
        // A write may fail once the server has closed: that is the outcome looked for.
        if stream.write_all(&[*byte]).await.is_err() {
            closed = Some(Vec::new());
            break;
        }
        if let Some(received) = closed_within(&mut stream, Duration::from_millis(500)).await {
            closed = Some(received);
            break;
        }
    }
    let elapsed = started.elapsed();
    let received = closed.expect("the server closed the connection");
    assert!(received.is_empty(), "no answer to unfinished headers");
    assert!(
        elapsed >= Duration::from_millis(900),
        "not before the timeout: {elapsed:?}"
    );
    assert!(elapsed < Duration::from_secs(3), "closed after {elapsed:?}");

    // The server itself is fine.
    assert_eq!(app.get("/healthz").await.status().as_u16(), 200);
    app.stop().await;
}

#[tokio::test]
async fn oversized_headers_are_refused_and_ordinary_ones_served() {
    let redis = TestRedis::start().await;
    let settings = settings(&redis);
    assert_eq!(settings.server.max_header_bytes, 32 * 1024);
    let app = TestApp::spawn(&settings, false).await;

    let mut stream = connect(&app).await;
    let mut request = b"GET /healthz HTTP/1.1\r\nhost: test\r\nx-big: ".to_vec();
    request.extend(std::iter::repeat_n(b'a', 100 * 1024));
    request.extend_from_slice(b"\r\n\r\n");
    let (mut reader, mut writer) = stream.split();
    let (_written, received) = tokio::join!(
        // The server may stop reading (and reset) part-way: a failed write is fine.
        async { writer.write_all(&request).await },
        async {
            let mut received = Vec::new();
            let mut chunk = [0u8; 4096];
            let read = async {
                loop {
                    match reader.read(&mut chunk).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => received.extend_from_slice(&chunk[..n]),
                    }
                }
            };
            tokio::time::timeout(PATIENCE, read)
                .await
                .expect("the server answers or closes");
            received
        }
    );
    let answer = String::from_utf8_lossy(&received);
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 431"),
        "a 431 or a closed connection, not: {answer}"
    );

    // 8 KB of headers, well within the limit, are served.
    let mut stream = connect(&app).await;
    let mut request = b"GET /healthz HTTP/1.1\r\nhost: test\r\nx-fair: ".to_vec();
    request.extend(std::iter::repeat_n(b'a', 8 * 1024));
    request.extend_from_slice(b"\r\n\r\n");
    stream.write_all(&request).await.expect("send");
    assert_eq!(read_response(&mut stream).await.0, 200);
    app.stop().await;
}

#[tokio::test]
async fn connections_past_the_cap_wait_for_a_free_slot() {
    let redis = TestRedis::start().await;
    let mut settings = settings(&redis);
    settings.server.max_connections = 4;
    // The connections held open must not time out during the test.
    settings.server.header_read_timeout_ms = 60_000;
    let app = TestApp::spawn(&settings, false).await;

    let mut held = Vec::new();
    for _ in 0..4 {
        held.push(connect(&app).await);
    }
    let fifth = tokio::spawn({
        let http = app.http.clone();
        let url = format!("{}/healthz", app.address);
        async move { http.get(url).send().await.map(|r| r.status().as_u16()) }
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!fifth.is_finished(), "a fifth connection was served");

    drop(held.pop());
    let status = tokio::time::timeout(PATIENCE, fifth)
        .await
        .expect("served once a slot is free")
        .expect("task")
        .expect("request");
    assert_eq!(status, 200);

    // Graceful shutdown closes connections that never sent a request.
    tokio::time::timeout(PATIENCE, app.stop())
        .await
        .expect("shutdown does not wait for idle connections");
}

#[tokio::test]
async fn ingest_answers_without_a_token_before_the_body_arrives() {
    let redis = TestRedis::start().await;
    let mut settings = settings(&redis);
    settings.server.ingest_token = Some(stats_tracker::core::config::Secret::new(INGEST_TOKEN));
    let app = TestApp::spawn(&settings, false).await;

    // The body announced is never sent: an answer proves the server did not wait for it.
    for (authorization, code) in [
        ("", "unauthorized"),
        (
            "authorization: Bearer wrong-token-0123456789\r\n",
            "unauthorized",
        ),
    ] {
        let mut stream = connect(&app).await;
        let head = format!(
            "POST /v1/events HTTP/1.1\r\nhost: test\r\n{authorization}\
             content-type: application/json\r\ncontent-length: 1000000\r\n\r\n"
        );
        stream.write_all(head.as_bytes()).await.expect("send");
        let (status, body) = read_response(&mut stream).await;
        assert_eq!(status, 401);
        let body = body.expect("JSON error body");
        assert_eq!(body["error"]["code"], code, "{body}");
        assert!(body["error"]["message"].is_string(), "{body}");
    }
    app.stop().await;

    // Ingest disabled (no token configured): refused the same way.
    let app = TestApp::spawn(&crate::helpers::settings(&redis), false).await;
    let mut stream = connect(&app).await;
    stream
        .write_all(
            b"POST /v1/events HTTP/1.1\r\nhost: test\r\nauthorization: Bearer x\r\n\
              content-type: application/json\r\ncontent-length: 1000000\r\n\r\n",
        )
        .await
        .expect("send");
    let (status, body) = read_response(&mut stream).await;
    assert_eq!(status, 403);
    assert_eq!(body.expect("JSON error body")["error"]["code"], "disabled");
    app.stop().await;
}

#[tokio::test]
async fn idle_kept_alive_connections_are_closed_at_the_keep_alive_timeout() {
    let redis = TestRedis::start().await;
    let mut settings = settings(&redis);
    settings.server.keep_alive_timeout_ms = 1000;
    let app = TestApp::spawn(&settings, false).await;

    let mut stream = connect(&app).await;
    stream.write_all(HEALTHZ).await.expect("send");
    assert_eq!(read_response(&mut stream).await.0, 200);
    let idle_since = Instant::now();
    let received = closed_within(&mut stream, PATIENCE)
        .await
        .expect("the idle connection is closed");
    let idle = idle_since.elapsed();
    assert!(received.is_empty());
    assert!(idle >= Duration::from_millis(800), "closed after {idle:?}");
    assert!(idle < Duration::from_secs(3), "closed after {idle:?}");
    app.stop().await;
}

#[tokio::test]
async fn an_idle_connection_outlives_the_header_timeout() {
    let redis = TestRedis::start().await;
    let mut settings = settings(&redis);
    settings.server.header_read_timeout_ms = 500;
    settings.server.keep_alive_timeout_ms = 30_000;
    let app = TestApp::spawn(&settings, false).await;

    let mut stream = connect(&app).await;
    stream.write_all(HEALTHZ).await.expect("send");
    assert_eq!(read_response(&mut stream).await.0, 200);
    // Idle for four header timeouts: still open, and the next request is served.
    assert!(
        closed_within(&mut stream, Duration::from_secs(2))
            .await
            .is_none(),
        "an idle connection was closed before the keep-alive timeout"
    );
    stream.write_all(HEALTHZ).await.expect("send");
    assert_eq!(read_response(&mut stream).await.0, 200);

    // A second request's headers are held to the header timeout too.
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\n")
        .await
        .expect("send");
    let started = Instant::now();
    assert!(
        closed_within(&mut stream, PATIENCE).await.is_some(),
        "unfinished headers on a kept-alive connection are cut off"
    );
    assert!(started.elapsed() < Duration::from_secs(3));
    app.stop().await;
}
