//! [`EgressProxy`]: the HTTP proxy every browser context is created with, so that everything a
//! page loads — navigations and each redirect hop, subresources, fetch/XHR, WebSockets, iframes,
//! workers, prefetches, form posts, downloads — is checked by the egress policy before a packet
//! leaves.
//!
//! Chromium speaks plain HTTP/1.1 to its proxy: `CONNECT host:port` for https and WebSockets, an
//! absolute-form request (`GET http://host/path`) for plain http. Either way the proxy resolves
//! the name itself, checks every address with the policy (`egress_allow` with the port known),
//! refuses the addresses it must never reach whatever the policy says (the browser's DevTools
//! endpoint, the proxy's own listeners), and connects to an address it checked — the browser
//! never resolves a name or opens a connection of its own, so there is no DNS rebinding between
//! the check and the connection.
//!
//! Each browser context gets its own [`Lane`]: a listener of its own, so the proxy knows which
//! session a request belongs to without credentials, and keeps that session's refusals for the
//! agent to read ([`Lane::take_refusals`]). A lane's connections end when it is dropped.

use std::collections::{HashSet, VecDeque};
use std::convert::Infallible;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, Uri, header};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::allow::Destination;
use crate::error::EgressError;
use crate::policy::EgressPolicy;
use crate::resolve::{CheckedResolver, NameLookup, SystemLookup};

/// The header a refusal answer carries, with the reason (for tests and operators reading traces).
pub const REFUSED_HEADER: &str = "x-agentd-egress-refused";

/// How many refusals a lane keeps until they are read.
const KEPT_REFUSALS: usize = 32;

/// How long a client may take to send a request's head.
const HEAD_TIMEOUT: Duration = Duration::from_secs(30);

/// How the proxy listens and connects.
#[derive(Debug, Clone)]
pub struct ProxySettings {
    /// The policy every connection is checked against.
    pub policy: EgressPolicy,
    /// The address lanes listen on: loopback for a browser on this machine.
    pub listen: IpAddr,
    /// The host a browser dials to reach a lane (a remote browser may need another name for
    /// this machine); the listen address when None.
    pub advertise: Option<String>,
    /// Peers, beside loopback, that may use the lanes (the remote browser's addresses). Any
    /// other peer is disconnected at once.
    pub peers: Vec<IpAddr>,
    /// The limit on resolving and connecting to a destination.
    pub connect_timeout: Duration,
}

impl Default for ProxySettings {
    fn default() -> Self {
        Self {
            policy: EgressPolicy::default(),
            listen: IpAddr::from([127, 0, 0, 1]),
            advertise: None,
            peers: Vec::new(),
            connect_timeout: Duration::from_secs(10),
        }
    }
}

/// Counts since the proxy started, for `/metrics` and the bench.
#[derive(Debug, Default)]
pub struct ProxyStats {
    /// Requests and tunnels asked for.
    pub requests: AtomicU64,
    /// Of those, refused by the policy.
    pub refused: AtomicU64,
    /// Of those, allowed but the destination could not be reached.
    pub unreachable: AtomicU64,
    /// Microseconds spent deciding and connecting, summed over requests that connected.
    pub connect_micros: AtomicU64,
}

/// The node's egress proxy for its browser (see the module docs). Cheap to clone.
#[derive(Clone)]
pub struct EgressProxy {
    inner: Arc<ProxyInner>,
}

struct ProxyInner {
    settings: ProxySettings,
    resolver: CheckedResolver,
    /// Endpoints no page may reach whatever the policy allows.
    protected: Mutex<Vec<SocketAddr>>,
    /// The ports lanes listen on (pages must not reach another session's lane).
    lane_ports: Mutex<HashSet<u16>>,
    stats: ProxyStats,
}

impl fmt::Debug for EgressProxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EgressProxy").field("settings", &self.inner.settings).finish_non_exhaustive()
    }
}

impl EgressProxy {
    /// A proxy resolving names with the system resolver.
    pub fn new(settings: ProxySettings) -> EgressProxy {
        EgressProxy::with_lookup(settings, Arc::new(SystemLookup))
    }

    /// A proxy resolving names with `lookup` (tests give a table).
    pub fn with_lookup(settings: ProxySettings, lookup: Arc<dyn NameLookup>) -> EgressProxy {
        let resolver = CheckedResolver::new(settings.policy.clone(), lookup);
        EgressProxy {
            inner: Arc::new(ProxyInner {
                settings,
                resolver,
                protected: Mutex::default(),
                lane_ports: Mutex::default(),
                stats: ProxyStats::default(),
            }),
        }
    }

    /// The policy it applies.
    pub fn policy(&self) -> &EgressPolicy {
        &self.inner.settings.policy
    }

    /// Makes `endpoint` unreachable through the proxy whatever the policy allows (the browser's
    /// DevTools endpoint: a page that reached it could drive every session's tabs). A loopback or
    /// unspecified endpoint is protected on every loopback address.
    pub fn protect(&self, endpoint: SocketAddr) {
        let mut protected = lock(&self.inner.protected);
        if !protected.contains(&endpoint) {
            protected.push(endpoint);
        }
    }

    /// Counts since start.
    pub fn stats(&self) -> &ProxyStats {
        &self.inner.stats
    }

    /// A lane for one browser context: a listener of its own on the proxy's address.
    pub async fn lane(&self) -> Result<Lane, EgressError> {
        self.open_lane(false).await
    }

    /// A lane that refuses everything: the browser's own traffic outside any session (its
    /// default context, background requests).
    pub async fn closed_lane(&self) -> Result<Lane, EgressError> {
        self.open_lane(true).await
    }

    async fn open_lane(&self, closed: bool) -> Result<Lane, EgressError> {
        let listener = TcpListener::bind(SocketAddr::new(self.inner.settings.listen, 0))
            .await
            .map_err(|e| EgressError::Client(format!("the browser's egress proxy cannot listen: {e}")))?;
        let addr = listener.local_addr().map_err(|e| EgressError::Client(e.to_string()))?;
        lock(&self.inner.lane_ports).insert(addr.port());
        let state = Arc::new(LaneState {
            proxy: self.clone(),
            closed,
            refusals: Mutex::default(),
            stop: CancellationToken::new(),
        });
        tokio::spawn(accept(listener, state.clone()));
        let host = match &self.inner.settings.advertise {
            Some(host) => host.clone(),
            None => match addr.ip() {
                IpAddr::V6(ip) => format!("[{ip}]"),
                ip => ip.to_string(),
            },
        };
        Ok(Lane { state, addr, server: format!("http://{host}:{}", addr.port()) })
    }

    /// Where `host:port` may be reached: its addresses that the policy allows and that are not
    /// protected, in the resolver's order. IP literals in any WHATWG spelling are read as the
    /// browser reads them. The error says why not, naming the host or address only.
    pub async fn destinations(&self, host: &str, port: u16) -> Result<Vec<SocketAddr>, EgressError> {
        let policy = &self.inner.settings.policy;
        // `[v6]` as URLs and CONNECT write it, a bare v6 as some callers do, or a name or IPv4
        // in any WHATWG spelling.
        let parsed = match host.parse::<IpAddr>() {
            Ok(IpAddr::V4(ip)) => url::Host::Ipv4(ip),
            Ok(IpAddr::V6(ip)) => url::Host::Ipv6(ip),
            Err(_) => url::Host::parse(host).map_err(|e| EgressError::InvalidUrl(format!("{host}: {e}")))?,
        };
        let addresses = match parsed {
            url::Host::Ipv4(ip) => check_ip(policy, IpAddr::V4(ip), port)?,
            url::Host::Ipv6(ip) => check_ip(policy, IpAddr::V6(ip), port)?,
            url::Host::Domain(name) => self.inner.resolver.resolve_destination(&name, Some(port)).await?,
        };
        let protected = lock(&self.inner.protected).clone();
        let lanes = lock(&self.inner.lane_ports).clone();
        let mut allowed = Vec::with_capacity(addresses.len());
        let mut refusal = None;
        for ip in addresses {
            let to = SocketAddr::new(ip, port);
            let own_lane = lanes.contains(&port) && is_local(ip, self.inner.settings.listen);
            if own_lane || protected.iter().any(|p| same_endpoint(*p, to)) {
                refusal.get_or_insert(EgressError::Protected { target: to.to_string() });
            } else {
                allowed.push(to);
            }
        }
        match refusal {
            Some(refusal) if allowed.is_empty() => Err(refusal),
            _ => Ok(allowed),
        }
    }
}

fn check_ip(policy: &EgressPolicy, ip: IpAddr, port: u16) -> Result<Vec<IpAddr>, EgressError> {
    policy.check_destination(&Destination { name: None, ip, port: Some(port) })?;
    Ok(vec![ip])
}

/// Whether a connection to `to` would reach `protected`: the same port on the same address, or
/// on any loopback or unspecified address when the protected one is one of those (connecting to
/// 0.0.0.0 or 127.1.2.3 reaches a listener on 127.0.0.1 or on every address).
fn same_endpoint(protected: SocketAddr, to: SocketAddr) -> bool {
    let local = |ip: IpAddr| {
        let ip = canonical(ip);
        ip.is_loopback() || ip.is_unspecified()
    };
    protected.port() == to.port()
        && (canonical(protected.ip()) == canonical(to.ip()) || (local(protected.ip()) && local(to.ip())))
}

/// Whether `ip` reaches a listener on `listen`.
fn is_local(ip: IpAddr, listen: IpAddr) -> bool {
    let ip = canonical(ip);
    ip == canonical(listen) || ip.is_loopback() || ip.is_unspecified()
}

fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// One browser context's way out: a listener of the [`EgressProxy`] whose connections are that
/// context's. Dropping it closes the listener and every connection and tunnel it carries.
pub struct Lane {
    state: Arc<LaneState>,
    addr: SocketAddr,
    server: String,
}

struct LaneState {
    proxy: EgressProxy,
    closed: bool,
    refusals: Mutex<VecDeque<String>>,
    stop: CancellationToken,
}

impl Lane {
    /// The proxy server for Chromium (`http://127.0.0.1:port`).
    pub fn proxy_server(&self) -> &str {
        &self.server
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Where `host:port` may be reached by this lane (see [`EgressProxy::destinations`]); used to
    /// refuse a navigation with a clear page before the browser asks the proxy.
    pub async fn check(&self, host: &str, port: u16) -> Result<(), EgressError> {
        if self.state.closed {
            return Err(EgressError::Closed);
        }
        self.state.proxy.destinations(host, port).await.map(|_| ())
    }

    /// The refusals since the last call (oldest first, repeats folded, at most 32), each a
    /// sentence for the agent: "refused by the egress policy: 10.0.0.1 is a private address".
    pub fn take_refusals(&self) -> Vec<String> {
        lock(&self.state.refusals).drain(..).collect()
    }

    /// Records a refusal made outside the proxy for this lane's context (a navigation refused
    /// before it was sent), so the agent reads it with the proxy's own.
    pub fn note_refusal(&self, sentence: String) {
        self.state.note(sentence);
    }
}

impl Drop for Lane {
    fn drop(&mut self) {
        self.state.stop.cancel();
        lock(&self.state.proxy.inner.lane_ports).remove(&self.addr.port());
    }
}

impl fmt::Debug for Lane {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lane").field("addr", &self.addr).field("closed", &self.state.closed).finish()
    }
}

impl LaneState {
    fn note(&self, sentence: String) {
        let mut refusals = lock(&self.refusals);
        if refusals.iter().any(|r| *r == sentence) {
            return;
        }
        if refusals.len() == KEPT_REFUSALS {
            refusals.pop_front();
        }
        refusals.push_back(sentence);
    }

    fn peer_allowed(&self, peer: IpAddr) -> bool {
        let peer = canonical(peer);
        peer.is_loopback() || self.proxy.inner.settings.peers.iter().any(|p| canonical(*p) == peer)
    }
}

/// Accepts a lane's connections until the lane is dropped; the connections end with it.
async fn accept(listener: TcpListener, lane: Arc<LaneState>) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            () = lane.stop.cancelled() => return,
            accepted = listener.accept() => {
                let Ok((stream, peer)) = accepted else { continue };
                if !lane.peer_allowed(peer.ip()) {
                    tracing::warn!(%peer, "egress proxy: a connection from an unknown peer was closed");
                    continue;
                }
                let _ = stream.set_nodelay(true);
                connections.spawn(serve(stream, lane.clone()));
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

/// Serves one client connection: HTTP/1.1 with keep-alive, CONNECT upgrades to tunnels.
async fn serve(stream: TcpStream, lane: Arc<LaneState>) {
    let stop = lane.stop.clone();
    let service = hyper::service::service_fn(move |request| {
        let lane = lane.clone();
        async move { Ok::<_, Infallible>(handle(lane, request).await) }
    });
    let connection = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEAD_TIMEOUT)
        .serve_connection(TokioIo::new(stream), service)
        .with_upgrades();
    tokio::select! {
        () = stop.cancelled() => {}
        _ = connection => {}
    }
}

type ProxyBody = BoxBody<Bytes, hyper::Error>;

async fn handle(lane: Arc<LaneState>, request: Request<Incoming>) -> Response<ProxyBody> {
    let stats = &lane.proxy.inner.stats;
    stats.requests.fetch_add(1, Ordering::Relaxed);
    let Some((host, port)) = destination_of(&request) else {
        return plain(StatusCode::BAD_REQUEST, "agentd's egress proxy takes CONNECT or absolute-form http:// requests only");
    };
    let started = Instant::now();
    let stream = match connect(&lane, &host, port).await {
        Ok(stream) => stream,
        Err(Failure::Refused(refusal)) => {
            stats.refused.fetch_add(1, Ordering::Relaxed);
            let sentence = format!("refused by the egress policy: {refusal}");
            tracing::debug!(reason = %refusal, "egress proxy: refused");
            lane.note(sentence.clone());
            return refused(&sentence);
        }
        Err(Failure::Unreachable(reason)) => {
            stats.unreachable.fetch_add(1, Ordering::Relaxed);
            return plain(StatusCode::BAD_GATEWAY, &format!("cannot reach {host}:{port}: {reason}"));
        }
    };
    stats.connect_micros.fetch_add(started.elapsed().as_micros() as u64, Ordering::Relaxed);
    if request.method() == Method::CONNECT {
        tunnel(lane, request, stream)
    } else {
        forward(lane, request, stream).await
    }
}

/// The host and port a proxy request is for: a CONNECT's authority, or an absolute http:// URI's.
fn destination_of(request: &Request<Incoming>) -> Option<(String, u16)> {
    let uri = request.uri();
    let authority = uri.authority()?;
    if request.method() == Method::CONNECT {
        return Some((authority.host().to_owned(), authority.port_u16()?));
    }
    if uri.scheme_str() != Some("http") {
        return None;
    }
    Some((authority.host().to_owned(), authority.port_u16().unwrap_or(80)))
}

enum Failure {
    Refused(EgressError),
    Unreachable(String),
}

/// Checks `host:port` and connects to the first of its checked addresses that answers.
async fn connect(lane: &LaneState, host: &str, port: u16) -> Result<TcpStream, Failure> {
    if lane.closed {
        return Err(Failure::Refused(EgressError::Closed));
    }
    let timeout = lane.proxy.inner.settings.connect_timeout;
    let attempt = async {
        let addresses = lane.proxy.destinations(host, port).await.map_err(|error| match error {
            // A name that does not resolve is not a refusal: the page gets a 502, the agent no note.
            EgressError::Resolve { reason, .. } => Failure::Unreachable(format!("cannot resolve the name: {reason}")),
            refusal => Failure::Refused(refusal),
        })?;
        let mut last = String::from("no address");
        for address in addresses {
            match TcpStream::connect(address).await {
                Ok(stream) => {
                    let _ = stream.set_nodelay(true);
                    return Ok(stream);
                }
                Err(error) => last = error.to_string(),
            }
        }
        Err(Failure::Unreachable(last))
    };
    tokio::time::timeout(timeout, attempt)
        .await
        .unwrap_or_else(|_| Err(Failure::Unreachable(format!("no connection within {timeout:?}"))))
}

/// Answers a CONNECT with 200 and joins the client to `upstream` once the client's side is handed
/// over; the tunnel ends with either side, or with the lane.
fn tunnel(lane: Arc<LaneState>, request: Request<Incoming>, mut upstream: TcpStream) -> Response<ProxyBody> {
    let stop = lane.stop.clone();
    tokio::spawn(async move {
        let Ok(upgraded) = hyper::upgrade::on(request).await else { return };
        let mut client = TokioIo::new(upgraded);
        tokio::select! {
            () = stop.cancelled() => {}
            _ = tokio::io::copy_bidirectional(&mut client, &mut upstream) => {}
        }
    });
    Response::new(empty())
}

/// Sends a plain-http request on `upstream` in origin form, without the hop-by-hop and proxy
/// headers, and streams the answer back. A WebSocket handshake (`Upgrade`) is joined through.
async fn forward(lane: Arc<LaneState>, request: Request<Incoming>, upstream: TcpStream) -> Response<ProxyBody> {
    let stop = lane.stop.clone();
    let (mut sender, connection) = match hyper::client::conn::http1::handshake(TokioIo::new(upstream)).await {
        Ok(pair) => pair,
        Err(error) => return plain(StatusCode::BAD_GATEWAY, &format!("the destination failed: {error}")),
    };
    tokio::spawn(async move {
        tokio::select! {
            () = stop.cancelled() => {}
            _ = connection.with_upgrades() => {}
        }
    });
    let wants_upgrade = request.headers().contains_key(header::UPGRADE);
    let (mut parts, body) = request.into_parts();
    let origin_form = parts.uri.path_and_query().map_or("/", |p| p.as_str()).to_owned();
    let mut client_side = None;
    let upstream_request = {
        let upgrade = if wants_upgrade { parts.headers.get(header::UPGRADE).cloned() } else { None };
        strip_hop_by_hop(&mut parts.headers);
        if let Some(upgrade) = upgrade {
            parts.headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
            parts.headers.insert(header::UPGRADE, upgrade);
        }
        parts.uri = origin_form.parse::<Uri>().unwrap_or_else(|_| Uri::from_static("/"));
        let mut upstream_request = Request::from_parts(parts, body);
        if wants_upgrade {
            // The client's side of the upgrade, taken before the request is given away.
            let mut own = Request::new(());
            *own.extensions_mut() = std::mem::take(upstream_request.extensions_mut());
            client_side = Some(own);
        }
        upstream_request
    };
    let mut response = match sender.send_request(upstream_request).await {
        Ok(response) => response,
        Err(error) => return plain(StatusCode::BAD_GATEWAY, &format!("the destination failed: {error}")),
    };
    if response.status() == StatusCode::SWITCHING_PROTOCOLS
        && let Some(client_side) = client_side
    {
        let stop = lane.stop.clone();
        let upstream_upgrade = hyper::upgrade::on(&mut response);
        tokio::spawn(async move {
            let (Ok(client), Ok(upstream)) = (hyper::upgrade::on(client_side).await, upstream_upgrade.await) else {
                return;
            };
            let (mut client, mut upstream) = (TokioIo::new(client), TokioIo::new(upstream));
            tokio::select! {
                () = stop.cancelled() => {}
                _ = tokio::io::copy_bidirectional(&mut client, &mut upstream) => {}
            }
        });
        let (parts, _) = response.into_parts();
        return Response::from_parts(parts, empty());
    }
    let (mut parts, body) = response.into_parts();
    strip_hop_by_hop(&mut parts.headers);
    Response::from_parts(parts, body.boxed())
}

/// Removes the headers that belong to one connection (RFC 9110 §7.6.1) and the proxy's own.
fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let listed: Vec<String> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(',').map(|name| name.trim().to_ascii_lowercase()))
        .filter(|name| !name.is_empty())
        .collect();
    for name in listed {
        headers.remove(name.as_str());
    }
    for name in ["connection", "proxy-connection", "keep-alive", "proxy-authorization", "proxy-authenticate", "te", "trailer", "upgrade"] {
        headers.remove(name);
    }
}

fn empty() -> ProxyBody {
    Full::new(Bytes::new()).map_err(|never| match never {}).boxed()
}

fn plain(status: StatusCode, text: &str) -> Response<ProxyBody> {
    let mut response = Response::new(Full::new(Bytes::from(text.to_owned())).map_err(|never| match never {}).boxed());
    *response.status_mut() = status;
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    response
}

/// The answer to a refused request: 403 with a page that says why (shown by the browser for a
/// plain-http navigation; an https one shows the browser's own tunnel error, and the agent reads
/// the reason from [`Lane::take_refusals`]).
fn refused(sentence: &str) -> Response<ProxyBody> {
    let escaped = sentence.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;");
    let page = format!(
        "<!doctype html><html><head><title>Refused by agentd</title></head><body><h1>Refused by agentd</h1><p>{escaped}</p></body></html>"
    );
    let mut response = Response::new(Full::new(Bytes::from(page)).map_err(|never| match never {}).boxed());
    *response.status_mut() = StatusCode::FORBIDDEN;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Ok(value) = HeaderValue::from_str(&sentence.replace(|c: char| !c.is_ascii() || c.is_ascii_control(), "?")) {
        headers.insert(REFUSED_HEADER, value);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_protected_loopback_endpoint_is_protected_on_every_loopback_spelling() {
        let devtools: SocketAddr = "127.0.0.1:9222".parse().unwrap();
        for to in ["127.0.0.1:9222", "127.42.0.1:9222", "0.0.0.0:9222", "[::1]:9222", "[::ffff:127.0.0.1]:9222", "[::]:9222"] {
            assert!(same_endpoint(devtools, to.parse().unwrap()), "{to}");
        }
        for to in ["127.0.0.1:9223", "10.0.0.1:9222", "[fd00::1]:9222"] {
            assert!(!same_endpoint(devtools, to.parse().unwrap()), "{to}");
        }
        let remote: SocketAddr = "10.0.0.7:9222".parse().unwrap();
        assert!(same_endpoint(remote, "[::ffff:10.0.0.7]:9222".parse().unwrap()));
        assert!(!same_endpoint(remote, "127.0.0.1:9222".parse().unwrap()));
    }

    #[test]
    fn hop_by_hop_headers_and_the_ones_connection_names_are_removed() {
        let mut headers = HeaderMap::new();
        for (name, value) in [
            ("connection", "keep-alive, x-private"),
            ("proxy-connection", "keep-alive"),
            ("x-private", "1"),
            ("proxy-authorization", "Basic eA=="),
            ("host", "example.com"),
            ("cookie", "a=b"),
        ] {
            headers.insert(http::HeaderName::from_static(name), HeaderValue::from_static(value));
        }
        strip_hop_by_hop(&mut headers);
        let mut left: Vec<&str> = headers.keys().map(|k| k.as_str()).collect();
        left.sort();
        assert_eq!(left, ["cookie", "host"]);
    }
}
