//! A real client against a website on loopback: refused by default, reached when private networks
//! are allowed, redirects re-checked hop by hop, or returned as is.

use std::sync::{Arc, Mutex};

use agentd_egress::{AddressClass, ClientConfig, EgressClient, EgressError, EgressPolicy, MAX_REDIRECTS};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::FakeDns;

/// A website on a loopback port that answers by path, and keeps the head of every request.
struct TestSite {
    port: u16,
    requests: Arc<Mutex<Vec<String>>>,
}

/// Where each path leads: `200 hello` or a `302` to a location (`{port}` is the site's port).
fn route(path: &str) -> Option<&'static str> {
    match path {
        "/to-home" => Some("/"),
        "/to-home-by-name" => Some("http://rebind.test:{port}/"),
        "/to-metadata" => Some("http://169.254.169.254/latest/meta-data/"),
        "/to-metadata-decimal" => Some("http://2852039166/latest/meta-data/"),
        "/to-metadata-v6" => Some("http://[fd00:ec2::254]/latest/meta-data/"),
        "/to-metadata-name" => Some("http://metadata.google.internal/computeMetadata/v1/"),
        "/to-metadata-by-dns" => Some("http://meta.test:{port}/"),
        "/to-file" => Some("file:///etc/passwd"),
        "/loop" => Some("/loop"),
        _ => None,
    }
}

impl TestSite {
    async fn start() -> TestSite {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let log = requests.clone();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let log = log.clone();
                tokio::spawn(async move {
                    let mut head = Vec::new();
                    let mut buffer = [0u8; 1024];
                    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 16 * 1024 {
                        match stream.read(&mut buffer).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => head.extend_from_slice(&buffer[..n]),
                        }
                    }
                    let head = String::from_utf8_lossy(&head).into_owned();
                    let path = head.split(' ').nth(1).unwrap_or("/").to_owned();
                    log.lock().unwrap().push(head);
                    let response = match route(&path) {
                        Some(location) => format!(
                            "HTTP/1.1 302 Found\r\nLocation: {}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                            location.replace("{port}", &port.to_string())
                        ),
                        None => "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello".to_owned(),
                    };
                    let _ = stream.write_all(response.as_bytes()).await;
                    let _ = stream.shutdown().await;
                });
            }
        });
        TestSite { port, requests }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn requests(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }
}

/// The names the tests use: one for the site itself, one for a metadata service.
fn dns() -> Arc<FakeDns> {
    FakeDns::new(&[("rebind.test", &["127.0.0.1"]), ("meta.test", &["169.254.169.254"])])
}

fn client(allow_private_networks: bool, follow_redirects: bool) -> EgressClient {
    let config = ClientConfig { follow_redirects, ..ClientConfig::default() };
    EgressPolicy::with_private_networks(allow_private_networks).client_with_lookup(config, dns()).unwrap()
}

/// The refusal behind a failed request.
fn refusal(error: &reqwest::Error) -> EgressError {
    EgressError::find_in(error).unwrap_or_else(|| panic!("not an egress refusal: {error:?}")).clone()
}

#[tokio::test]
async fn a_loopback_site_is_refused_by_default_before_any_connection() {
    let site = TestSite::start().await;
    let client = client(false, true);
    let literal = client.get(&site.url("/")).unwrap_err();
    assert_eq!(literal.refused_class(), Some(AddressClass::Loopback));
    let error = client.get(&format!("http://rebind.test:{}/", site.port)).unwrap().send().await.unwrap_err();
    assert_eq!(
        refusal(&error),
        EgressError::Refused { target: "rebind.test (127.0.0.1)".into(), class: AddressClass::Loopback }
    );
    assert!(site.requests().is_empty(), "the site was reached: {:?}", site.requests());
}

#[tokio::test]
async fn a_loopback_site_is_reached_when_private_networks_are_allowed() {
    let site = TestSite::start().await;
    let client = client(true, false);
    let response = client.get(&site.url("/")).unwrap().send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap(), "hello");
    // A name goes to the address the resolver checked.
    let response = client.post(&format!("http://rebind.test:{}/hook", site.port)).unwrap().send().await.unwrap();
    assert_eq!(response.status(), 200);
    let requests = site.requests();
    assert_eq!(requests.len(), 2);
    let expected_agent = format!("user-agent: agentd/{}", env!("CARGO_PKG_VERSION"));
    assert!(requests[0].to_ascii_lowercase().contains(&expected_agent), "{}", requests[0]);
    assert!(requests[1].starts_with("POST /hook "), "{}", requests[1]);
    assert!(requests[1].to_ascii_lowercase().contains(&format!("host: rebind.test:{}", site.port)));
}

#[tokio::test]
async fn redirects_are_followed_and_each_hop_is_rechecked() {
    let site = TestSite::start().await;
    let client = client(true, true);
    for path in ["/to-home", "/to-home-by-name"] {
        let response = client.get(&site.url(path)).unwrap().send().await.unwrap();
        assert_eq!((response.status().as_u16(), response.text().await.unwrap().as_str()), (200, "hello"), "{path}");
    }
    let refused = [
        ("/to-metadata", EgressError::Refused { target: "169.254.169.254".into(), class: AddressClass::Metadata }),
        (
            "/to-metadata-decimal",
            EgressError::Refused { target: "169.254.169.254".into(), class: AddressClass::Metadata },
        ),
        ("/to-metadata-v6", EgressError::Refused { target: "fd00:ec2::254".into(), class: AddressClass::Metadata }),
        (
            "/to-metadata-name",
            EgressError::Refused { target: "metadata.google.internal".into(), class: AddressClass::Metadata },
        ),
        (
            "/to-metadata-by-dns",
            EgressError::Refused { target: "meta.test (169.254.169.254)".into(), class: AddressClass::Metadata },
        ),
    ];
    for (path, expected) in refused {
        let error = client.get(&site.url(path)).unwrap().send().await.unwrap_err();
        assert_eq!(refusal(&error), expected, "{path}");
    }
    // reqwest itself never follows a redirect out of http(s): the 3xx comes back.
    let response = client.get(&site.url("/to-file")).unwrap().send().await.unwrap();
    assert_eq!(response.status(), 302);
}

#[tokio::test]
async fn a_redirect_loop_stops_after_the_limit() {
    let site = TestSite::start().await;
    let client = client(true, true);
    let error = client.get(&site.url("/loop")).unwrap().send().await.unwrap_err();
    assert_eq!(refusal(&error), EgressError::TooManyRedirects(MAX_REDIRECTS));
    assert_eq!(site.requests().len(), MAX_REDIRECTS + 1);
}

#[tokio::test]
async fn without_following_a_redirect_comes_back_as_is() {
    let site = TestSite::start().await;
    let client = client(true, false);
    let response = client.get(&site.url("/to-metadata")).unwrap().send().await.unwrap();
    assert_eq!(response.status(), 302);
    assert_eq!(response.headers()["location"], "http://169.254.169.254/latest/meta-data/");
    assert_eq!(site.requests().len(), 1);
}

#[test]
fn the_default_config_is_documented_values() {
    let config = ClientConfig::default();
    assert_eq!(config.timeout, std::time::Duration::from_secs(30));
    assert_eq!(config.connect_timeout, std::time::Duration::from_secs(10));
    assert!(!config.follow_redirects);
    assert_eq!(config.user_agent, concat!("agentd/", env!("CARGO_PKG_VERSION")));
    let zero = ClientConfig { timeout: std::time::Duration::ZERO, ..ClientConfig::default() };
    assert!(matches!(EgressPolicy::default().client(zero), Err(EgressError::Client(_))));
}
