//! The browser runtime against a real headless Chromium and a page served on loopback.

use std::time::Duration;

use agentd_browser::{BrowserError, BrowserPool, BrowserSettings, Viewport};
use axum::Router;
use axum::response::Html;
use axum::routing::get;

async fn fixture() -> String {
    let app = Router::new().route(
        "/",
        get(|| async { Html("<!doctype html><title>fixture</title><p id=p>hello</p>") }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}/")
}

async fn eval<T: serde::de::DeserializeOwned>(page: &chromiumoxide::Page, js: &str) -> T {
    page.evaluate(js).await.unwrap().into_value().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contexts_are_isolated_sized_and_torn_down() {
    let url = fixture().await;
    let settings = BrowserSettings { max_contexts: 2, ..BrowserSettings::default() };
    let pool = BrowserPool::start(&settings).await.expect("Chromium starts (apt-get install -y chromium)");
    let a = pool.lease(Viewport { width: 1280, height: 800 }).await.unwrap();
    let b = pool.lease(Viewport { width: 640, height: 480 }).await.unwrap();
    // N = 2 contexts are allowed; N + 1 is refused.
    assert!(matches!(pool.lease(Viewport { width: 800, height: 600 }).await, Err(BrowserError::AtCapacity(2))));
    for s in [&a, &b] {
        tokio::time::timeout(Duration::from_secs(20), s.page().goto(url.as_str())).await.expect("loads").unwrap();
        assert_eq!(eval::<String>(s.page(), "document.getElementById('p').textContent").await, "hello");
    }
    assert_eq!(eval::<i64>(a.page(), "window.innerWidth").await, 1280);
    assert_eq!(eval::<i64>(a.page(), "window.innerHeight").await, 800);
    assert_eq!(eval::<i64>(b.page(), "window.innerWidth").await, 640);
    // Cookies and storage set in one context are invisible in the other.
    let _: String = eval(a.page(), "document.cookie = 'who=a'; localStorage.setItem('k', 'a'); document.cookie").await;
    assert_eq!(eval::<String>(a.page(), "document.cookie").await, "who=a");
    assert_eq!(eval::<String>(b.page(), "document.cookie").await, "");
    assert!(eval::<bool>(b.page(), "localStorage.getItem('k') === null").await);
    assert_eq!(eval::<String>(a.page(), "localStorage.getItem('k')").await, "a");
    assert_eq!(pool.browser_context_ids().await.unwrap().len(), 2);
    assert_eq!(pool.contexts_in_use(), 2);
    a.close().await.unwrap();
    assert_eq!(pool.browser_context_ids().await.unwrap().len(), 1, "the context is disposed");
    assert_eq!(pool.contexts_in_use(), 1);
    // A new context starts clean.
    let c = pool.lease(Viewport { width: 800, height: 600 }).await.unwrap();
    c.page().goto(url.as_str()).await.unwrap();
    assert_eq!(eval::<String>(c.page(), "document.cookie").await, "");
    c.close().await.unwrap();
    b.close().await.unwrap();
    pool.shutdown().await;
}

#[tokio::test]
async fn a_missing_browser_is_a_clear_error() {
    let settings = BrowserSettings { executable: Some("/nonexistent/chromium".into()), ..BrowserSettings::default() };
    let error = BrowserPool::start(&settings).await.err().expect("refused").to_string();
    assert!(error.contains("AGENTD_CHROME"), "{error}");
    let settings = BrowserSettings { cdp_url: Some("http://127.0.0.1:9/".into()), launch_timeout: Duration::from_secs(5), ..BrowserSettings::default() };
    let error = BrowserPool::start(&settings).await.err().expect("refused").to_string();
    assert!(error.contains("127.0.0.1:9"), "{error}");
}
