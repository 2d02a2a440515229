//! Serving HTTP/1.1 connections with bounds: at most `max_connections` open at once per
//! listener, and three timeouts, so that a client that opens sockets and says nothing, or half a request, cannot
//! hold the server's memory.
//!
//! Past the cap, a connection is answered `503` (`unavailable`, `Retry-After: 1`,
//! `Connection: close`) as soon as its first bytes arrive, without parsing them, and closed.
//!
//! A connection is always in one [`Phase`]: idle (no request; closed after `idle_timeout`),
//! reading a request's head (which must be whole within `header_timeout` of its first byte),
//! reading a request's body (closed when no byte of it arrives for `body_timeout`), or busy
//! (the handler runs or the response streams: no timeout, so SSE streams and long requests
//! live as long as they need; a WebSocket leaves this loop when it upgrades). The socket, the
//! request body and the response body report to the connection's phase; one timer per
//! connection, re-armed when the phase changes, closes it when its deadline passes.
//!
//! A connection that has sent nothing holds no HTTP buffers: hyper's (8 KiB each way) are made
//! when its first byte arrives.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use agentd_api::{ApiError, ErrorCode};
use axum::Router;
use axum::body::{Bytes, HttpBody};
use axum::http::Request;
use hyper::body::{Frame, Incoming, SizeHint};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

/// The bounds on a listener's connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Connections open at once (WebSockets included, until they close).
    pub max_connections: usize,
    /// From a request's first byte to the end of its head.
    pub header_timeout: Duration,
    /// The longest wait for the next byte of a request body.
    pub body_timeout: Duration,
    /// A connection with no request in progress closes after this long.
    pub idle_timeout: Duration,
}

/// The largest request head (request line and headers) accepted, in bytes; 431 beyond.
pub const MAX_HEAD_BYTES: usize = 32 * 1024;

/// The most hyper buffers per connection, each way: a request head must fit, and this much of
/// a response is queued ahead of a slow reader (a stream is polled again only as the client
/// reads). hyper's default, ~400 KiB, is what a thousand slow SSE readers would multiply.
const MAX_BUF_BYTES: usize = MAX_HEAD_BYTES;

/// Refusals (503 past the cap) in progress at once; beyond them a connection is closed at once.
const MAX_LINGERING_REFUSALS: usize = 256;
/// How long a refusal waits for the client's first bytes before answering anyway: HTTP
/// clients (hyper's among them) take an answer that comes before their request for a broken
/// connection.
const REFUSAL_WAIT: Duration = Duration::from_secs(1);
/// How long a refusal lasts at most, answer and drain included: closing a socket with unread
/// bytes resets it, and a reset can reach the client before it has read the answer.
const REFUSAL_LINGER: Duration = Duration::from_secs(2);

/// Serves `app` on `listener` until `stop` fires, then stops accepting, lets every connection
/// finish its request in progress, and returns when all have closed.
pub async fn serve(listener: TcpListener, app: Router, limits: ConnectionLimits, stop: CancellationToken) -> io::Result<()> {
    fit_open_files(limits.max_connections);
    // Every route made a service once, here, while this is the router's only handle (axum's
    // own `serve` does it per connection on a shared router: a deep copy of every route, over
    // 100 KiB, for each connection).
    let app = app.with_state(());
    let open = Arc::new(Semaphore::new(limits.max_connections));
    let lingering = Arc::new(Semaphore::new(MAX_LINGERING_REFUSALS));
    let refusal = refusal_response(limits.max_connections);
    let connections = TaskTracker::new();
    let mut refused = Refusals::default();
    loop {
        let tcp = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((tcp, _)) => tcp,
                Err(error) => {
                    accept_failed(&error, &stop).await;
                    continue;
                }
            },
            () = stop.cancelled() => break,
        };
        // Streams write many small frames: without TCP_NODELAY, Nagle's algorithm and delayed
        // ACKs hold them back for up to 40 ms.
        if let Err(error) = tcp.set_nodelay(true) {
            tracing::debug!(%error, "could not set TCP_NODELAY");
        }
        match open.clone().try_acquire_owned() {
            Ok(permit) => {
                connections.spawn(serve_connection(tcp, app.clone(), limits, stop.clone(), permit));
            }
            Err(_) => {
                refused.count(limits.max_connections);
                // Past the lingering bound the socket is simply dropped (closed at once).
                if let Ok(permit) = lingering.clone().try_acquire_owned() {
                    tokio::spawn(refuse(tcp, refusal.clone(), permit));
                }
            }
        }
    }
    drop(listener);
    connections.close();
    connections.wait().await;
    Ok(())
}

/// Raises the process's open-files limit (soft, up to the hard one) to room for
/// `max_connections` and the rest (the store, the browser's pipes, the egress proxy), and warns
/// when the system does not allow it: past the limit `accept` fails and clients wait.
fn fit_open_files(max_connections: usize) {
    /// Descriptors besides client connections.
    const OTHERS: u64 = 1024;
    #[cfg(not(unix))]
    let _ = max_connections;
    #[cfg(unix)]
    {
        let wanted = max_connections as u64 + OTHERS;
        let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
        // SAFETY: getrlimit writes into the struct it is given, a local.
        if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 || limit.rlim_cur >= wanted {
            return;
        }
        let raised = wanted.min(limit.rlim_max);
        if raised > limit.rlim_cur {
            let new = libc::rlimit { rlim_cur: raised, rlim_max: limit.rlim_max };
            // SAFETY: setrlimit reads the struct it is given, a local.
            if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &new) } == 0 {
                limit.rlim_cur = raised;
            }
        }
        if limit.rlim_cur < wanted {
            tracing::warn!(
                max_connections,
                open_files_limit = limit.rlim_cur,
                "the open-files limit leaves less room than max_connections: beyond it new connections wait; raise the limit (ulimit -n, LimitNOFILE=) or lower max_connections"
            );
        }
    }
}

/// Errors of `accept`: a connection reset before it was accepted is the client's business;
/// anything else (out of file descriptors) is waited out briefly rather than spun on.
async fn accept_failed(error: &io::Error, stop: &CancellationToken) {
    use io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    if matches!(error.kind(), ConnectionAborted | ConnectionRefused | ConnectionReset) {
        return;
    }
    tracing::warn!(%error, "cannot accept connections; retrying in 100 ms");
    tokio::select! {
        () = tokio::time::sleep(Duration::from_millis(100)) => {}
        () = stop.cancelled() => {}
    }
}

/// Logs refusals at most every ten seconds, with how many there were: a flood of connections
/// must not become a flood of log lines.
#[derive(Default)]
struct Refusals {
    since_logged: u64,
    logged_at: Option<Instant>,
}

impl Refusals {
    fn count(&mut self, max_connections: usize) {
        self.since_logged += 1;
        if self.logged_at.is_none_or(|at| at.elapsed() >= Duration::from_secs(10)) {
            tracing::warn!(refused = self.since_logged, max_connections, "connections refused: max_connections are open");
            self.since_logged = 0;
            self.logged_at = Some(Instant::now());
        }
    }
}

/// The answer to a connection past the cap, written before reading anything of its request.
fn refusal_response(max_connections: usize) -> Bytes {
    let error = ApiError::new(
        ErrorCode::Unavailable,
        format!("the server has {max_connections} connections open, its limit (max_connections); retry shortly"),
    );
    let body = serde_json::to_string(&error.body()).unwrap_or_default();
    Bytes::from(format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nretry-after: 1\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    ))
}

/// Answers the 503 once the client's first bytes have come (or [`REFUSAL_WAIT`] without
/// any), then drops what else it sends for a moment before closing. Nothing of the request is
/// parsed or kept: a 1 KiB buffer on this task, for at most [`REFUSAL_LINGER`].
async fn refuse(mut tcp: TcpStream, refusal: Bytes, _permit: OwnedSemaphorePermit) {
    use tokio::io::AsyncReadExt;
    let answered = async {
        let mut sink = [0u8; 1024];
        let _ = tokio::time::timeout(REFUSAL_WAIT, tcp.read(&mut sink)).await;
        tcp.write_all(&refusal).await?;
        tcp.shutdown().await?;
        while tcp.read(&mut sink).await? > 0 {}
        io::Result::Ok(())
    };
    let _ = tokio::time::timeout(REFUSAL_LINGER, answered).await;
}

async fn serve_connection(tcp: TcpStream, app: Router, limits: ConnectionLimits, stop: CancellationToken, permit: OwnedSemaphorePermit) {
    // Until its first byte a connection is a socket and this future, nothing more. (A peek,
    // not `readable()`: a fresh socket can report readiness before any byte has come.)
    let mut first = [0u8; 1];
    tokio::select! {
        peeked = tcp.peek(&mut first) => if !matches!(peeked, Ok(1..)) { return },
        () = tokio::time::sleep(limits.idle_timeout) => return,
        () = stop.cancelled() => return,
    }
    let phase = PhaseCell::new(Phase::Head(Instant::now()));
    let io = TokioIo::new(WatchedIo { tcp, phase: phase.clone(), _permit: permit });
    let service = {
        let phase = phase.clone();
        hyper::service::service_fn(move |request: Request<Incoming>| {
            let phase = phase.clone();
            phase.request_started(!request.body().is_end_stream());
            let request = request.map(|body| RequestBody { inner: body, phase: phase.clone() });
            let response = app.clone().oneshot(request);
            async move {
                let response = response.await?;
                Ok::<_, std::convert::Infallible>(response.map(|body| ResponseBody { inner: body, phase }))
            }
        })
    };
    let mut http = hyper::server::conn::http1::Builder::new();
    http.max_buf_size(MAX_BUF_BYTES).max_header_size(MAX_HEAD_BYTES).header_read_timeout(None::<Duration>);
    let connection = http.serve_connection(io, service).with_upgrades();
    let mut connection = std::pin::pin!(connection);
    let mut watchdog = std::pin::pin!(Watchdog::new(phase, limits));
    let mut draining = false;
    loop {
        // The connection first: what it did may have moved the watchdog's deadline.
        tokio::select! {
            biased;
            result = connection.as_mut() => {
                if let Err(error) = result {
                    tracing::debug!(%error, "connection ended with an error");
                }
                return;
            }
            expired = watchdog.as_mut() => {
                tracing::debug!(timeout = expired.setting(), "closing a connection that exceeded its timeout");
                return;
            }
            () = stop.cancelled(), if !draining => {
                // Idle connections close now; a request in progress finishes first.
                draining = true;
                connection.as_mut().graceful_shutdown();
            }
        }
    }
}

/// Where a connection is in its life, and since when (what its deadline counts from).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// No request in progress.
    Idle(Instant),
    /// A request's head is arriving; since its first byte.
    Head(Instant),
    /// A request's body is arriving; since its last byte.
    Body(Instant),
    /// A handler runs or a response streams.
    Busy,
}

/// Which timeout closed a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expired {
    Idle,
    Header,
    Body,
}

impl Expired {
    fn setting(self) -> &'static str {
        match self {
            Expired::Idle => "idle_timeout_seconds",
            Expired::Header => "header_timeout_seconds",
            Expired::Body => "body_timeout_seconds",
        }
    }
}

/// A connection's phase, shared by its socket, its request and response bodies and its
/// watchdog (all polled by the connection's own task, so the lock is never contended).
#[derive(Clone)]
struct PhaseCell(Arc<Mutex<Phase>>);

impl PhaseCell {
    fn new(phase: Phase) -> Self {
        Self(Arc::new(Mutex::new(phase)))
    }

    fn lock(&self) -> MutexGuard<'_, Phase> {
        self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Bytes arrived: an idle connection starts a request; a body makes progress.
    fn bytes_read(&self) {
        let mut phase = self.lock();
        match *phase {
            Phase::Idle(_) => *phase = Phase::Head(Instant::now()),
            Phase::Body(_) => *phase = Phase::Body(Instant::now()),
            Phase::Head(_) | Phase::Busy => {}
        }
    }

    /// A request's head is whole and its handler called.
    fn request_started(&self, has_body: bool) {
        *self.lock() = if has_body { Phase::Body(Instant::now()) } else { Phase::Busy };
    }

    /// The request body was read to its end, or dropped.
    fn body_finished(&self) {
        let mut phase = self.lock();
        if let Phase::Body(_) = *phase {
            *phase = Phase::Busy;
        }
    }

    /// The response was sent (or abandoned): the connection waits for its next request.
    fn response_finished(&self) {
        *self.lock() = Phase::Idle(Instant::now());
    }

    /// When the connection closes unless something happens first, and under which timeout.
    fn deadline(&self, limits: &ConnectionLimits) -> Option<(Instant, Expired)> {
        match *self.lock() {
            Phase::Idle(since) => Some((since + limits.idle_timeout, Expired::Idle)),
            Phase::Head(since) => Some((since + limits.header_timeout, Expired::Header)),
            Phase::Body(since) => Some((since + limits.body_timeout, Expired::Body)),
            Phase::Busy => None,
        }
    }
}

/// Resolves when the connection's current deadline passes. Busy connections have none: it
/// then waits to be polled again (after the connection's next step).
struct Watchdog {
    phase: PhaseCell,
    limits: ConnectionLimits,
    timer: Pin<Box<Sleep>>,
}

impl Watchdog {
    fn new(phase: PhaseCell, limits: ConnectionLimits) -> Self {
        let timer = Box::pin(tokio::time::sleep(limits.idle_timeout));
        Self { phase, limits, timer }
    }
}

impl Future for Watchdog {
    type Output = Expired;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Expired> {
        loop {
            let Some((deadline, expired)) = self.phase.deadline(&self.limits) else { return Poll::Pending };
            if deadline <= Instant::now() {
                return Poll::Ready(expired);
            }
            if self.timer.deadline() != deadline {
                self.timer.as_mut().reset(deadline);
            }
            ready!(self.timer.as_mut().poll(cx));
        }
    }
}

/// The socket, reporting the bytes it reads to the phase; it holds the connection's place
/// under the cap until it is dropped (after a WebSocket upgrade, when the socket closes).
struct WatchedIo {
    tcp: TcpStream,
    phase: PhaseCell,
    _permit: OwnedSemaphorePermit,
}

impl AsyncRead for WatchedIo {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        ready!(Pin::new(&mut self.tcp).poll_read(cx, buf))?;
        if buf.filled().len() > before {
            self.phase.bytes_read();
        }
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for WatchedIo {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.tcp).poll_write(cx, buf)
    }

    fn poll_write_vectored(mut self: Pin<&mut Self>, cx: &mut Context<'_>, bufs: &[io::IoSlice<'_>]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.tcp).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.tcp.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_shutdown(cx)
    }
}

/// A request body that tells the phase when it has been read to its end or dropped.
struct RequestBody {
    inner: Incoming,
    phase: PhaseCell,
}

impl HttpBody for RequestBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let frame = ready!(Pin::new(&mut self.inner).poll_frame(cx));
        if frame.is_none() || self.inner.is_end_stream() {
            self.phase.body_finished();
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for RequestBody {
    fn drop(&mut self) {
        self.phase.body_finished();
    }
}

/// A response body that tells the phase when hyper is done with it (sent, or abandoned).
struct ResponseBody {
    inner: axum::body::Body,
    phase: PhaseCell,
}

impl HttpBody for ResponseBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for ResponseBody {
    fn drop(&mut self) {
        self.phase.response_finished();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> ConnectionLimits {
        ConnectionLimits {
            max_connections: 2,
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(60),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn each_phase_has_its_deadline() {
        let limits = limits();
        let t0 = Instant::now();
        let phase = PhaseCell::new(Phase::Idle(t0));
        assert_eq!(phase.deadline(&limits), Some((t0 + limits.idle_timeout, Expired::Idle)));
        tokio::time::advance(Duration::from_secs(5)).await;
        phase.bytes_read();
        let t1 = Instant::now();
        assert_eq!(phase.deadline(&limits), Some((t1 + limits.header_timeout, Expired::Header)));
        // More bytes of the head do not extend its deadline (a client dripping a head is cut off).
        tokio::time::advance(Duration::from_secs(5)).await;
        phase.bytes_read();
        assert_eq!(phase.deadline(&limits), Some((t1 + limits.header_timeout, Expired::Header)));
        phase.request_started(true);
        let t2 = Instant::now();
        assert_eq!(phase.deadline(&limits), Some((t2 + limits.body_timeout, Expired::Body)));
        // Each byte of a body does: a slow upload that keeps arriving is not cut off.
        tokio::time::advance(Duration::from_secs(20)).await;
        phase.bytes_read();
        assert_eq!(phase.deadline(&limits), Some((Instant::now() + limits.body_timeout, Expired::Body)));
        phase.body_finished();
        assert_eq!(phase.deadline(&limits), None, "a handler or a stream has no deadline");
        phase.bytes_read();
        assert_eq!(phase.deadline(&limits), None);
        phase.response_finished();
        assert_eq!(phase.deadline(&limits), Some((Instant::now() + limits.idle_timeout, Expired::Idle)));
        // A request without a body goes straight to busy; a late body_finished changes nothing.
        phase.request_started(false);
        phase.body_finished();
        assert_eq!(phase.deadline(&limits), None);
    }

    #[tokio::test(start_paused = true)]
    async fn the_watchdog_follows_the_phase() {
        let limits = limits();
        let phase = PhaseCell::new(Phase::Idle(Instant::now()));
        let mut watchdog = std::pin::pin!(Watchdog::new(phase.clone(), limits));
        // Activity before the deadline moves it.
        tokio::time::advance(Duration::from_secs(50)).await;
        phase.request_started(false);
        assert!(futures::poll!(watchdog.as_mut()).is_pending());
        tokio::time::advance(Duration::from_secs(3600)).await;
        assert!(futures::poll!(watchdog.as_mut()).is_pending(), "busy: no timeout");
        phase.response_finished();
        assert!(futures::poll!(watchdog.as_mut()).is_pending());
        tokio::time::advance(limits.idle_timeout).await;
        assert_eq!(watchdog.await, Expired::Idle);
    }

    #[test]
    fn the_refusal_is_a_whole_503_in_the_error_shape() {
        let refusal = refusal_response(7);
        let text = std::str::from_utf8(&refusal).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 503 Service Unavailable\r\n"), "{head}");
        assert!(head.contains("connection: close") && head.contains("retry-after: 1"), "{head}");
        assert!(head.contains(&format!("content-length: {}", body.len())), "{head}");
        let body: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(body["error"]["code"], "unavailable");
        assert!(body["error"]["message"].as_str().unwrap().contains("7 connections open"));
    }
}
