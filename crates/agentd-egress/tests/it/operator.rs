//! The operator client against servers on loopback (no policy: the operator chose them), and
//! how a failed connection is described.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use agentd_egress::{EgressError, ErrorChain, MAX_REDIRECTS, OperatorClient, OperatorConfig, error_chain};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// A server on a loopback port: `/to/<anything>` answers `302` to `<anything>` (with `PORT_A` and
/// `PORT_B` standing for the two servers' ports), `/loop` redirects to itself, anything else
/// `200 ok`.
/// It keeps the head of every request.
struct Server {
    port: u16,
    requests: Arc<Mutex<Vec<String>>>,
}

impl Server {
    async fn start(ports: Arc<Mutex<(u16, u16)>>) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let log = requests.clone();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let (log, ports) = (log.clone(), ports.clone());
                tokio::spawn(async move {
                    let mut head = Vec::new();
                    let mut buffer = [0u8; 1024];
                    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                        match stream.read(&mut buffer).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => head.extend_from_slice(&buffer[..n]),
                        }
                    }
                    let head = String::from_utf8_lossy(&head).into_owned();
                    let path = head.split(' ').nth(1).unwrap_or("/").to_owned();
                    log.lock().unwrap().push(head);
                    let (a, b) = *ports.lock().unwrap();
                    let location = match path.as_str() {
                        "/loop" => Some("/loop".to_owned()),
                        _ => path.strip_prefix("/to/").map(|to| to.replace("PORT_A", &a.to_string()).replace("PORT_B", &b.to_string())),
                    };
                    let response = match location {
                        Some(location) => {
                            format!("HTTP/1.1 302 Found\r\nLocation: {location}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                        }
                        None => "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok".to_owned(),
                    };
                    let _ = stream.write_all(response.as_bytes()).await;
                    let _ = stream.shutdown().await;
                });
            }
        });
        Server { port, requests }
    }

    fn requests(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }
}

/// Two servers, each knowing both ports.
async fn two_servers() -> (Server, Server) {
    let ports = Arc::new(Mutex::new((0, 0)));
    let (a, b) = (Server::start(ports.clone()).await, Server::start(ports.clone()).await);
    *ports.lock().unwrap() = (a.port, b.port);
    (a, b)
}

fn client() -> OperatorClient {
    OperatorClient::new(OperatorConfig { timeout: Some(Duration::from_secs(10)), ..OperatorConfig::default() }).unwrap()
}

#[tokio::test]
async fn a_loopback_server_is_reached_with_no_policy() {
    let (a, _b) = two_servers().await;
    let response = client().post(format!("http://127.0.0.1:{}/v1/chat", a.port)).header("x-api-key", "k").send().await.unwrap();
    assert_eq!((response.status().as_u16(), response.text().await.unwrap().as_str()), (200, "ok"));
    let head = a.requests()[0].to_ascii_lowercase();
    assert!(head.starts_with("post /v1/chat "), "{head}");
    assert!(head.contains(&format!("user-agent: agentd/{}", env!("CARGO_PKG_VERSION"))), "{head}");
}

#[tokio::test]
async fn redirects_are_followed_on_the_same_server_only() {
    let (a, b) = two_servers().await;
    let client = client();
    let on_a = |path: &str| format!("http://127.0.0.1:{}{path}", a.port);

    let response = client.get(on_a("/to//home")).header("x-api-key", "k").send().await.unwrap();
    assert_eq!(response.status(), 200, "a redirect on the same server is followed");
    assert_eq!(a.requests().len(), 2);

    for away in ["/to/http://127.0.0.1:PORT_B/", "/to/http://localhost:PORT_A/"] {
        let response = client.get(on_a(away)).header("x-api-key", "k").send().await.unwrap();
        assert_eq!(response.status(), 302, "{away}: a redirect elsewhere comes back as is");
    }
    assert!(b.requests().is_empty(), "the key went to another server: {:?}", b.requests());
    assert_eq!(a.requests().len(), 4, "nor to another name for the same one");

    let error = client.get(on_a("/loop")).send().await.unwrap_err();
    assert_eq!(EgressError::find_in(&error), Some(&EgressError::TooManyRedirects(MAX_REDIRECTS)));
}

#[tokio::test]
async fn a_refused_connection_is_described_by_host_without_the_path_or_query() {
    let closed = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let error = client().get(format!("http://user:pw@127.0.0.1:{port}/hooks/s3cret?token=abc")).send().await.unwrap_err();
    let text = error_chain(&error);
    assert!(text.starts_with(&format!("connect to 127.0.0.1:{port}: tcp connect error: ")), "{text}");
    assert!(text.to_ascii_lowercase().contains("connection refused"), "{text}");
    for secret in ["s3cret", "token", "abc", "user", "pw@", "http://", "client error"] {
        assert!(!text.contains(secret), "{secret:?} in {text}");
    }
    assert_eq!(ErrorChain(&error).to_string(), text);
}

#[tokio::test]
async fn a_timeout_is_described_as_one() {
    // A server that accepts and never answers.
    let silent = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = silent.local_addr().unwrap().port();
    let held = tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((stream, _)) = silent.accept().await {
            open.push(stream);
        }
    });
    let client = OperatorClient::new(OperatorConfig { timeout: Some(Duration::from_millis(200)), ..OperatorConfig::default() }).unwrap();
    let error = client.get(format!("http://127.0.0.1:{port}/slow?key=k")).send().await.unwrap_err();
    assert!(error.is_timeout());
    let text = error_chain(&error);
    assert_eq!(text, format!("send the request to 127.0.0.1:{port}: operation timed out"));
    assert!(!text.contains("key="), "{text}");
    held.abort();
}
