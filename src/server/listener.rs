//! The HTTP listener of the API server and of the worker's metrics server: binds with a listen
//! backlog, accepts at most `max_connections` connections at once (the rest wait in the
//! backlog), serves each with hyper's HTTP/1 with a bounded header size, closes connections
//! that take too long to send a request's headers or sit idle between requests, and shuts down
//! gracefully (requests in flight finish, idle connections close).
//!
//! The two timeouts are this module's own, not hyper's `header_read_timeout`: hyper 1.12 starts
//! that timer as soon as a kept-alive connection waits for its next request, so it would also
//! close idle connections after the header timeout, and the idle timeout could not be longer.
//! Here a connection's deadline follows its phase: reading a request's headers (from the
//! connection's first byte, or the first byte after the previous response),
//! `header_read_timeout`; handling the request, none; idle after a response, `keep_alive_timeout`.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::Body as AxumBody;
use hyper::body::{Body, Bytes, Frame, Incoming, SizeHint};
use hyper::server::conn::http1;
use hyper::service::Service;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::core::config::ServerSettings;

/// Hyper refuses a read buffer smaller than this (its initial buffer size).
const HYPER_MIN_BUFFER_BYTES: usize = 8192;
/// How long to wait before accepting again after an accept error that is not the client's
/// (out of file descriptors, say): retrying at once would spin.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_secs(1);

/// What one listener lets clients hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Connections served at once; further ones wait in the listen backlog.
    pub max_connections: usize,
    /// Largest request line plus headers; larger gets 431.
    pub max_header_bytes: usize,
    /// Longest time from a request's first byte to the end of its headers.
    pub header_read_timeout: Duration,
    /// Longest time a connection may sit idle between a response and the next request.
    pub keep_alive_timeout: Duration,
}

impl Limits {
    pub fn from_settings(server: &ServerSettings) -> Self {
        Limits {
            max_connections: server.max_connections,
            max_header_bytes: server.max_header_bytes,
            header_read_timeout: Duration::from_millis(server.header_read_timeout_ms),
            keep_alive_timeout: Duration::from_millis(server.keep_alive_timeout_ms),
        }
    }

    /// The listen backlog: as many connections as are served, so a burst of twice the cap is
    /// queued rather than refused. Linux silently caps it at `net.core.somaxconn`.
    pub fn backlog(&self) -> u32 {
        u32::try_from(self.max_connections).unwrap_or(u32::MAX)
    }
}

/// Binds `addr` with the backlog of `limits` (`TcpListener::bind` asks for a fixed one).
pub fn bind(addr: SocketAddr, limits: &Limits) -> io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    // As `TcpListener::bind` does on Unix: a restart can bind while old connections linger.
    #[cfg(unix)]
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(limits.backlog())
}

/// Serves `router` on `listener` within `limits` until `shutdown` is cancelled; then stops
/// accepting, lets open requests finish and closes idle connections.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    shutdown: CancellationToken,
) -> io::Result<()> {
    let connections = Arc::new(Semaphore::new(limits.max_connections));
    let graceful = GracefulShutdown::new();
    let mut http = http1::Builder::new();
    // The read buffer holds the request head while it is parsed, so bounding it bounds the
    // memory of a connection sending endless headers (hyper's default is ~400 KiB).
    http.max_buf_size(limits.max_header_bytes.max(HYPER_MIN_BUFFER_BYTES))
        .max_header_size(limits.max_header_bytes);
    loop {
        // Take a connection slot before accepting: at the cap, clients wait in the backlog.
        let slot = tokio::select! {
            () = shutdown.cancelled() => break,
            slot = connections.clone().acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_closed) => break,
            },
        };
        let stream = tokio::select! {
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => stream,
                Err(error) if is_client_error(&error) => continue,
                Err(error) => {
                    tracing::error!(%error, "cannot accept connections; retrying shortly");
                    tokio::select! {
                        () = shutdown.cancelled() => break,
                        () = tokio::time::sleep(ACCEPT_ERROR_PAUSE) => continue,
                    }
                }
            },
        };
        let phase = Arc::new(PhaseClock::new(limits));
        let service = PhasedService {
            inner: TowerToHyperService::new(router.clone()),
            phase: phase.clone(),
        };
        let io = TokioIo::new(PhasedStream {
            stream,
            phase: phase.clone(),
        });
        let connection = graceful.watch(http.serve_connection(io, service));
        tokio::spawn(async move {
            tokio::select! {
                served = connection => {
                    if let Err(error) = served {
                        tracing::debug!(%error, "connection ended with an error");
                    }
                }
                phase = phase.expired() => {
                    tracing::debug!(?phase, "closing a connection past its deadline");
                }
            }
            drop(slot);
        });
    }
    // No more accepting: connections arriving now are refused instead of waiting for nothing.
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

/// Accept errors about one client's connection (gone before it was accepted): not ours.
fn is_client_error(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

/// Where a connection is in its request cycle; the deadline depends on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Reading a request's headers, which must be complete by the deadline.
    Head(Instant),
    /// A request is being answered: no deadline.
    Busy,
    /// A response was sent; the next request must start by the deadline.
    Idle(Instant),
}

impl Phase {
    fn deadline(self) -> Option<Instant> {
        match self {
            Phase::Head(at) | Phase::Idle(at) => Some(at),
            Phase::Busy => None,
        }
    }
}

/// One connection's phase, moved on by its stream (bytes read), its service (a request's
/// headers are complete) and its response bodies (a response is sent).
struct PhaseClock {
    phase: watch::Sender<Phase>,
    limits: Limits,
}

impl PhaseClock {
    fn new(limits: Limits) -> Self {
        // The connection's first request starts now: a client that connects and sends nothing
        // is bounded by the header timeout too.
        let head = Phase::Head(Instant::now() + limits.header_read_timeout);
        PhaseClock {
            phase: watch::Sender::new(head),
            limits,
        }
    }

    /// Bytes arrived: on an idle connection they start the next request's headers.
    fn bytes_read(&self) {
        self.phase.send_if_modified(|phase| {
            let idle = matches!(phase, Phase::Idle(_));
            if idle {
                *phase = Phase::Head(Instant::now() + self.limits.header_read_timeout);
            }
            idle
        });
    }

    /// Hyper parsed a request's headers and calls the service.
    fn request_started(&self) {
        self.phase.send_replace(Phase::Busy);
    }

    /// Hyper is done with a response body: written, or the connection is gone.
    fn response_sent(&self) {
        self.phase
            .send_replace(Phase::Idle(Instant::now() + self.limits.keep_alive_timeout));
    }

    /// Resolves with the phase whose deadline passed.
    async fn expired(&self) -> Phase {
        let mut watcher = self.phase.subscribe();
        loop {
            let phase = *watcher.borrow_and_update();
            match phase.deadline() {
                Some(deadline) => tokio::select! {
                    () = tokio::time::sleep_until(deadline) => return phase,
                    _ = watcher.changed() => {}
                },
                // `self` holds the sender, so `changed` cannot fail while this runs.
                None => {
                    let _ = watcher.changed().await;
                }
            }
        }
    }
}

/// The accepted stream, reporting reads to the connection's [`PhaseClock`].
struct PhasedStream {
    stream: TcpStream,
    phase: Arc<PhaseClock>,
}

impl AsyncRead for PhasedStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.stream).poll_read(cx, buf);
        if buf.filled().len() > before {
            this.phase.bytes_read();
        }
        polled
    }
}

impl AsyncWrite for PhasedStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}

/// The router as a hyper service, reporting each request's start and its response's end.
struct PhasedService {
    inner: TowerToHyperService<Router>,
    phase: Arc<PhaseClock>,
}

type ResponseFuture =
    Pin<Box<dyn Future<Output = Result<Response<PhasedBody>, Infallible>> + Send>>;

impl Service<Request<Incoming>> for PhasedService {
    type Response = Response<PhasedBody>;
    type Error = Infallible;
    type Future = ResponseFuture;

    fn call(&self, request: Request<Incoming>) -> Self::Future {
        self.phase.request_started();
        let phase = self.phase.clone();
        let response = self.inner.call(request);
        Box::pin(async move {
            let response = response.await?;
            Ok(response.map(|body| PhasedBody { body, phase }))
        })
    }
}

/// A response body that tells the connection's clock when hyper is done with it.
struct PhasedBody {
    body: AxumBody,
    phase: Arc<PhaseClock>,
}

impl Body for PhasedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.get_mut().body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

impl Drop for PhasedBody {
    fn drop(&mut self) {
        self.phase.response_sent();
    }
}
