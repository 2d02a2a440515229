//! The fetch on the wire: the egress policy (first URL and every redirect hop), redirects, the
//! size and time limits at N and N+1, HTTP errors and connection failures.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use agentd_egress::{AddressClass, EgressError, EgressPolicy, LookupFuture, NameLookup};
use agentd_fetch::fixtures::{self, HUGE_PAGE_BYTES};
use agentd_fetch::{FetchError, FetchLimits, Fetcher};

use crate::fetcher;

#[tokio::test]
async fn a_redirect_chain_is_followed_and_reported() {
    let web = fixtures::serve().await;
    let page = fetcher(FetchLimits::default()).fetch(&web.url("/redirect/3")).await.unwrap();
    assert_eq!(page.url, web.url("/article"));
    assert_eq!(page.redirects, vec![web.url("/redirect/3"), web.url("/redirect/2"), web.url("/redirect/1")]);
    assert!(page.text.contains("The city council approved the new riverside park"));
}

#[tokio::test]
async fn a_redirect_to_a_cloud_metadata_address_is_refused() {
    let web = fixtures::serve().await;
    let error = fetcher(FetchLimits::default()).fetch(&web.url("/to-metadata")).await.unwrap_err();
    let FetchError::Refused(refusal) = &error else { panic!("{error:?}") };
    assert_eq!(refusal.refused_class(), Some(AddressClass::Metadata));
    assert_eq!(
        error.to_string(),
        "refused by the egress policy: 169.254.169.254 is a cloud metadata address, which agentd never connects to"
    );
}

#[tokio::test]
async fn a_redirect_to_another_scheme_is_refused() {
    let web = fixtures::serve().await;
    let error = fetcher(FetchLimits::default()).fetch(&web.url("/to-file")).await.unwrap_err();
    assert_eq!(error, FetchError::Refused(EgressError::Scheme("file".into())));
}

#[tokio::test]
async fn a_redirect_loop_ends_after_the_limit() {
    let web = fixtures::serve().await;
    let error = fetcher(FetchLimits::default()).fetch(&web.url("/loop")).await.unwrap_err();
    assert_eq!(error, FetchError::TooManyRedirects { host: "127.0.0.1".into(), limit: agentd_egress::MAX_REDIRECTS });
}

#[tokio::test]
async fn the_default_policy_refuses_loopback_by_address_and_by_name() {
    let web = fixtures::serve().await;
    let strict = Fetcher::new(EgressPolicy::default(), FetchLimits::default()).unwrap();
    let error = strict.fetch(&web.url("/article")).await.unwrap_err();
    assert_eq!(
        error.to_string(),
        "refused by the egress policy: 127.0.0.1 is a loopback address; set AGENTD_ALLOW_PRIVATE_NETWORKS=true to allow private networks, or list it in egress_allow"
    );
    let by_name = strict.fetch(&web.url("/article").replace("127.0.0.1", "localhost")).await.unwrap_err();
    assert!(matches!(by_name, FetchError::Refused(_)), "{by_name:?}");

    // A public-looking name that resolves to loopback is refused by the checked resolver.
    struct ToLoopback;
    impl NameLookup for ToLoopback {
        fn lookup(&self, _host: &str) -> LookupFuture {
            Box::pin(async { Ok(vec![IpAddr::from([127, 0, 0, 1])]) })
        }
    }
    let rebinding =
        Fetcher::with_lookup(EgressPolicy::default(), FetchLimits::default(), Arc::new(ToLoopback)).unwrap();
    let port = web.base.rsplit(':').next().unwrap();
    let error = rebinding.fetch(&format!("http://news.example.com:{port}/article")).await.unwrap_err();
    assert_eq!(
        error.to_string(),
        "refused by the egress policy: news.example.com (127.0.0.1) is a loopback address; set AGENTD_ALLOW_PRIVATE_NETWORKS=true to allow private networks, or list it in egress_allow"
    );
}

#[tokio::test]
async fn a_huge_page_is_cut_at_the_size_limit_without_reading_the_rest() {
    let web = fixtures::serve().await;
    let limits = FetchLimits { max_body_bytes: 1024 * 1024, ..FetchLimits::default() };
    let page = fetcher(limits).fetch(&web.url("/huge")).await.unwrap();
    assert!(page.truncated);
    assert_eq!(page.bytes, 1024 * 1024);
    assert!(page.text.contains("The endless page repeats this paragraph"));
    assert!(page.text.chars().count() <= limits.max_output_chars);
    // The fetch stopped reading: the server handed out the limit plus what the sockets buffer,
    // not the page (256 MiB).
    let served = web.huge_bytes_served();
    assert!(served < 32 * 1024 * 1024, "{served} of {HUGE_PAGE_BYTES} bytes served");
}

#[tokio::test]
async fn a_body_of_exactly_the_size_limit_is_whole_and_one_byte_more_is_cut() {
    let web = fixtures::serve().await;
    let notes = fixtures::pages().into_iter().find(|p| p.name == "text").unwrap().body;
    let at_limit = FetchLimits { max_body_bytes: notes.len(), ..FetchLimits::default() };
    let whole = fetcher(at_limit).fetch(&web.url("/notes.txt")).await.unwrap();
    assert_eq!((whole.bytes, whole.truncated), (notes.len(), false));
    let below = FetchLimits { max_body_bytes: notes.len() - 1, ..FetchLimits::default() };
    let cut = fetcher(below).fetch(&web.url("/notes.txt")).await.unwrap();
    assert_eq!((cut.bytes, cut.truncated), (notes.len() - 1, true));
    assert!(cut.text.ends_with("Next review in two weeks."), "{:?}", cut.text);
}

#[tokio::test]
async fn text_of_exactly_the_output_limit_is_whole_and_one_character_more_is_cut() {
    let web = fixtures::serve().await;
    let text = fetcher(FetchLimits::default()).fetch(&web.url("/notes.txt")).await.unwrap().text;
    let chars = text.chars().count();
    let at_limit = FetchLimits { max_output_chars: chars, ..FetchLimits::default() };
    let whole = fetcher(at_limit).fetch(&web.url("/notes.txt")).await.unwrap();
    assert_eq!((whole.text.as_str(), whole.truncated), (text.as_str(), false));
    let below = FetchLimits { max_output_chars: chars - 1, ..FetchLimits::default() };
    let cut = fetcher(below).fetch(&web.url("/notes.txt")).await.unwrap();
    assert!(cut.truncated);
    // Cut at the last line break before the limit.
    assert_eq!(cut.text, text.rsplit_once('\n').unwrap().0);
}

#[tokio::test]
async fn a_page_slower_than_the_time_limit_is_a_timeout() {
    let web = fixtures::serve().await;
    let limits = FetchLimits { total_time: Duration::from_millis(500), ..FetchLimits::default() };
    let started = Instant::now();
    let error = fetcher(limits).fetch(&web.url("/slow?ms=5000")).await.unwrap_err();
    assert_eq!(error, FetchError::Timeout { host: "127.0.0.1".into(), limit: limits.total_time });
    assert_eq!(error.to_string(), "127.0.0.1 did not answer within the 0.5-second limit");
    assert!(started.elapsed() < Duration::from_secs(2), "{:?}", started.elapsed());
    assert!(error.is_transient());
}

#[tokio::test]
async fn a_body_that_trickles_past_the_time_limit_is_a_timeout() {
    let web = fixtures::serve().await;
    let limits = FetchLimits { total_time: Duration::from_millis(800), ..FetchLimits::default() };
    let started = Instant::now();
    let error = fetcher(limits).fetch(&web.url("/slow-body")).await.unwrap_err();
    assert!(matches!(error, FetchError::Timeout { .. }), "{error:?}");
    assert!(started.elapsed() < Duration::from_secs(3), "{:?}", started.elapsed());
}

#[tokio::test]
async fn an_http_error_status_is_an_error_with_the_status_and_not_the_url() {
    let web = fixtures::serve().await;
    let error = fetcher(FetchLimits::default()).fetch(&web.url("/missing?token=secret")).await.unwrap_err();
    assert_eq!(error.status(), Some(404));
    assert_eq!(error.to_string(), "127.0.0.1 answered HTTP 404 Not Found");
    assert!(!error.is_transient());
    let unavailable = fetcher(FetchLimits::default()).fetch(&web.url("/unavailable")).await.unwrap_err();
    assert_eq!(unavailable.status(), Some(503));
    assert!(unavailable.is_transient());
}

#[tokio::test]
async fn a_closed_port_is_a_connection_error() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let error = fetcher(FetchLimits::default()).fetch(&format!("http://127.0.0.1:{port}/")).await.unwrap_err();
    let FetchError::Connect { host, reason } = &error else { panic!("{error:?}") };
    assert_eq!(host, "127.0.0.1");
    assert!(reason.contains("refused"), "{reason}");
    assert!(!error.to_string().contains(&port.to_string()), "no URL in {error}");
}

#[tokio::test]
async fn bad_urls_are_refused_before_any_connection() {
    let fetcher = fetcher(FetchLimits::default());
    assert!(matches!(fetcher.fetch("not a url").await, Err(FetchError::InvalidUrl(_))));
    assert_eq!(
        fetcher.fetch("ftp://files.example.com/x").await.unwrap_err(),
        FetchError::Refused(EgressError::Scheme("ftp".into()))
    );
}

#[tokio::test]
async fn clones_share_the_pool_and_fetch_concurrently() {
    let web = fixtures::serve().await;
    let fetcher = fetcher(FetchLimits::default());
    let fetches = (0..8).map(|i| {
        let (fetcher, url) = (fetcher.clone(), web.url(if i % 2 == 0 { "/article" } else { "/blog" }));
        tokio::spawn(async move { fetcher.fetch(&url).await })
    });
    for fetch in fetches {
        assert_eq!(fetch.await.unwrap().unwrap().status, 200);
    }
}
