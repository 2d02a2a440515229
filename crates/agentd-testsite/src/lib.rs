//! A fixture website with realistic pages, served on loopback for the browser runtime's tests
//! and benchmarks: a form with every input type, a long product list with search, a long
//! article, nested same- and cross-origin iframes, shadow-DOM components, a client-routed
//! single-page app, dialogs, a popup, an upload, downloads and a page that loads data late.
//!
//! [`serve`] binds `127.0.0.1:0`; the same server is reachable as `localhost` too, which the
//! browser treats as another origin (that is how the pages get cross-origin frames).

use std::time::Duration;

use axum::Router;
use axum::extract::{Path, Query};
use axum::http::header;
use axum::response::{Html, IntoResponse};
use axum::routing::get;

/// Every page of the site: (path without the leading slash, HTML).
pub const PAGES: [(&str, &str); 17] = [
    ("form", include_str!("../pages/form.html")),
    ("actions", include_str!("../pages/actions.html")),
    ("controls", include_str!("../pages/controls.html")),
    ("keys", include_str!("../pages/keys.html")),
    ("dialogs", include_str!("../pages/dialogs.html")),
    ("article", include_str!("../pages/article.html")),
    ("upload", include_str!("../pages/upload.html")),
    ("popup", include_str!("../pages/popup.html")),
    ("cross", include_str!("../pages/cross.html")),
    ("products", include_str!("../pages/products.html")),
    ("frames", include_str!("../pages/frames.html")),
    ("frame-inner", include_str!("../pages/frame-inner.html")),
    ("frame-leaf", include_str!("../pages/frame-leaf.html")),
    ("app", include_str!("../pages/spa.html")),
    ("download", include_str!("../pages/download.html")),
    ("network", include_str!("../pages/network.html")),
    ("desk", include_str!("../pages/desk.html")),
];

/// The pages an agent starts on (the others are frames or helpers of these).
pub const MAIN_PAGES: [&str; 11] =
    ["form", "actions", "controls", "products", "article", "frames", "app", "dialogs", "upload", "download", "network"];

const HOME: &str = "<!doctype html><title>fixture</title><p id=p>hello</p>";

/// Serves the site on `127.0.0.1` at a free port; returns its base URL (ending in `/`).
pub async fn serve() -> String {
    let mut app = Router::new()
        .route("/", get(|| async { Html(HOME) }))
        .route("/app/{*route}", get(|| async { Html(page("app")) }))
        .route("/product/{id}", get(product))
        .route("/files/report.csv", get(report))
        .route("/files/notes.txt", get(|| async { "Notes of the meeting\n" }))
        .route("/api/slow", get(slow))
        .route("/reach", get(reach))
        .route("/hang", get(std::future::pending::<&'static str>));
    for (path, html) in PAGES {
        app = app.route(&format!("/{path}"), get(move || async move { Html(html) }));
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("a loopback port");
    let addr = listener.local_addr().expect("bound");
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}/")
}

/// The HTML of page `name` (one of [`PAGES`]).
pub fn page(name: &str) -> &'static str {
    PAGES.iter().find(|(p, _)| *p == name).map(|(_, html)| *html).unwrap_or(HOME)
}

async fn product(Path(id): Path<u32>) -> Html<String> {
    Html(format!("<!doctype html><title>Product {id}</title><h1>Product {id}</h1><a href=\"/products\">Back to all products</a>"))
}

async fn report() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/csv"), (header::CONTENT_DISPOSITION, "attachment; filename=\"report.csv\"")],
        "quarter,revenue\nQ1,100\nQ2,120\n",
    )
}

#[derive(serde::Deserialize)]
struct Reach {
    to: String,
}

/// A page that loads an image from `to` (any URL): how a page reaches for an address the
/// egress policy must refuse.
async fn reach(Query(q): Query<Reach>) -> Html<String> {
    let to = q.to.replace('&', "&amp;").replace('"', "&quot;").replace('<', "&lt;");
    Html(format!("<!doctype html><title>Reach</title><p>An image from elsewhere:</p><img alt=\"pixel\" src=\"{to}\">"))
}

#[derive(serde::Deserialize)]
struct Slow {
    ms: u64,
    v: String,
}

async fn slow(Query(q): Query<Slow>) -> String {
    tokio::time::sleep(Duration::from_millis(q.ms.min(10_000))).await;
    q.v
}
