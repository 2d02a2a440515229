//! The browser's egress proxy on the wire: plain-http requests forwarded in origin form without
//! hop-by-hop headers, CONNECT tunnels, refusals (403 with the reason, kept for the lane's
//! session), exact `egress_allow` ports, protected endpoints, closed lanes, and a lane's
//! connections ending with it.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use agentd_egress::{EgressAllow, EgressPolicy, EgressProxy, ProxySettings, REFUSED_HEADER};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::FakeDns;

/// A loopback server that answers every request with what it received (request line and
/// headers), and remembers them.
async fn echo_server() -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let kept = seen.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else { return };
            let kept = kept.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    let Ok(n) = stream.read(&mut buf).await else { return };
                    if n == 0 {
                        return;
                    }
                    head.extend_from_slice(&buf[..n]);
                }
                let text = String::from_utf8_lossy(&head).into_owned();
                kept.lock().unwrap().push(text.clone());
                let body = text.replace("\r\n", "\n");
                let answer = format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}", body.len());
                let _ = stream.write_all(answer.as_bytes()).await;
            });
        }
    });
    (addr.to_string(), seen)
}

fn proxy_allowing(entries: &[String]) -> EgressProxy {
    let policy = EgressPolicy { allow: EgressAllow::parse(entries).unwrap(), ..Default::default() };
    let dns = FakeDns::new(&[("rebind.test", &["127.0.0.1"]), ("public.test", &["93.184.216.34"])]);
    EgressProxy::with_lookup(ProxySettings { policy, connect_timeout: Duration::from_secs(2), ..Default::default() }, dns)
}

fn client_through(lane: &agentd_egress::Lane) -> reqwest::Client {
    install_tls();
    reqwest::Client::builder().proxy(reqwest::Proxy::all(lane.proxy_server()).unwrap()).build().unwrap()
}

#[tokio::test]
async fn plain_http_is_forwarded_in_origin_form_without_proxy_headers() {
    let (server, seen) = echo_server().await;
    let proxy = proxy_allowing(std::slice::from_ref(&server));
    let lane = proxy.lane().await.unwrap();
    let answer = client_through(&lane)
        .get(format!("http://{server}/path?q=1"))
        .header("proxy-authorization", "Basic c2VjcmV0")
        .header("x-kept", "yes")
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    let received = seen.lock().unwrap()[0].clone();
    assert!(received.starts_with("GET /path?q=1 HTTP/1.1\r\n"), "{received}");
    assert!(received.to_ascii_lowercase().contains("x-kept: yes"), "{received}");
    assert!(!received.to_ascii_lowercase().contains("proxy-authorization"), "{received}");
    assert!(lane.take_refusals().is_empty());
}

#[tokio::test]
async fn a_connect_tunnel_reaches_an_allowed_destination() {
    let (server, seen) = echo_server().await;
    let proxy = proxy_allowing(std::slice::from_ref(&server));
    let lane = proxy.lane().await.unwrap();
    let mut stream = TcpStream::connect(lane.addr()).await.unwrap();
    stream.write_all(format!("CONNECT {server} HTTP/1.1\r\nHost: {server}\r\n\r\n").as_bytes()).await.unwrap();
    let mut buf = vec![0u8; 256];
    let n = stream.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"), "{}", String::from_utf8_lossy(&buf[..n]));
    stream.write_all(b"GET /through HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap();
    assert!(answer.contains("GET /through"), "{answer}");
    assert_eq!(seen.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn refusals_answer_403_with_the_reason_and_are_kept_for_the_session() {
    let (server, seen) = echo_server().await;
    let port = server.rsplit(':').next().unwrap();
    // Only another port of 127.0.0.1 is allowed: this one is refused, by every spelling.
    let proxy = proxy_allowing(&["127.0.0.1:1".to_owned()]);
    let lane = proxy.lane().await.unwrap();
    let client = client_through(&lane);
    for url in [
        format!("http://{server}/"),
        format!("http://localhost:{port}/"),
        format!("http://rebind.test:{port}/"),
        format!("http://[::ffff:127.0.0.1]:{port}/"),
        "http://169.254.169.254/latest".to_owned(),
        "http://metadata.google.internal/".to_owned(),
    ] {
        let answer = client.get(&url).send().await.unwrap();
        assert_eq!(answer.status(), 403, "{url}");
        let reason = answer.headers()[REFUSED_HEADER].to_str().unwrap().to_owned();
        assert!(reason.starts_with("refused by the egress policy: "), "{url}: {reason}");
        assert!(answer.text().await.unwrap().contains("Refused by agentd"));
    }
    // A CONNECT is refused the same way, before any connection.
    let mut stream = TcpStream::connect(lane.addr()).await.unwrap();
    stream.write_all(format!("CONNECT 127.0.0.1:{port} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes()).await.unwrap();
    let mut buf = vec![0u8; 512];
    let n = stream.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 403"));
    assert!(seen.lock().unwrap().is_empty(), "nothing reached the server");
    let refusals = lane.take_refusals();
    assert!(refusals.iter().any(|r| r.contains("rebind.test (127.0.0.1) is a loopback address")), "{refusals:?}");
    assert!(refusals.iter().any(|r| r.contains("169.254.169.254 is a cloud metadata address")), "{refusals:?}");
    assert!(lane.take_refusals().is_empty(), "read once");
    assert!(proxy.stats().refused.load(std::sync::atomic::Ordering::Relaxed) >= 7);
}

#[tokio::test]
async fn protected_endpoints_and_other_lanes_are_never_reached() {
    let (server, seen) = echo_server().await;
    let proxy = EgressProxy::new(ProxySettings { policy: EgressPolicy::with_private_networks(true), ..Default::default() });
    proxy.protect(server.parse().unwrap());
    let lane = proxy.lane().await.unwrap();
    let other = proxy.lane().await.unwrap();
    let client = client_through(&lane);
    let port = server.rsplit(':').next().unwrap();
    for url in [format!("http://{server}/json/list"), format!("http://127.9.9.9:{port}/"), format!("http://[::1]:{port}/")] {
        let answer = client.get(&url).send().await.unwrap();
        assert_eq!(answer.status(), 403, "{url}");
        assert!(answer.headers()[REFUSED_HEADER].to_str().unwrap().contains("control endpoint"), "{url}");
    }
    let answer = client.get(format!("http://127.0.0.1:{}/", other.addr().port())).send().await.unwrap();
    assert_eq!(answer.status(), 403, "another session's lane");
    assert!(seen.lock().unwrap().is_empty());
}

#[tokio::test]
async fn a_closed_lane_refuses_everything_and_a_dropped_lane_ends_its_tunnels() {
    let (server, _) = echo_server().await;
    let proxy = proxy_allowing(std::slice::from_ref(&server));
    let closed = proxy.closed_lane().await.unwrap();
    let answer = client_through(&closed).get(format!("http://{server}/")).send().await.unwrap();
    assert_eq!(answer.status(), 403);

    // A tunnel to a server that never answers, held open; dropping the lane ends it.
    let silent = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let silent_addr = silent.local_addr().unwrap().to_string();
    let held = tokio::spawn(async move { silent.accept().await.map(|(s, _)| s) });
    let proxy = proxy_allowing(&[silent_addr.clone()]);
    let lane = proxy.lane().await.unwrap();
    let mut stream = TcpStream::connect(lane.addr()).await.unwrap();
    stream.write_all(format!("CONNECT {silent_addr} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes()).await.unwrap();
    let mut buf = vec![0u8; 256];
    let n = stream.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    let _upstream = held.await.unwrap().unwrap();
    drop(lane);
    let ended = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf)).await.expect("the tunnel ends with its lane");
    assert!(matches!(ended, Ok(0) | Err(_)), "{ended:?}");
}

#[tokio::test]
async fn a_request_that_is_not_for_a_proxy_is_a_bad_request() {
    let proxy = proxy_allowing(&[]);
    let lane = proxy.lane().await.unwrap();
    install_tls();
    let answer = reqwest::get(format!("http://{}/", lane.addr())).await.unwrap();
    assert_eq!(answer.status(), 400);
}

fn install_tls() {
    agentd_egress::install_tls();
}
