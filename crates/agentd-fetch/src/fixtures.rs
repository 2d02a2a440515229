//! The fixture web the tests and `agentd-bench fetch` share (the `fixtures` feature; never part
//! of the product): pages served on loopback, each reading page carrying sentences that belong to
//! its main text and strings that are boilerplate, so that extraction quality is computed.
//!
//! [`serve`] starts it; besides the [`pages`] it serves a redirect chain (`/redirect/{n}` →
//! ... → `/article`), a redirect loop (`/loop`), redirects to a cloud metadata address
//! (`/to-metadata`) and to a `file:` URL (`/to-file`), a page slow to answer (`/slow?ms=`), a body
//! that trickles (`/slow-body`), an endless page (`/huge`, counting the bytes it hands out), a damaged
//! PDF (`/damaged.pdf`), an image (`/image.png`), a 404 (`/missing`) and a 503 (`/unavailable`).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use encoding_rs::{SHIFT_JIS, WINDOWS_1252};

/// A page of the fixture web that is read for its text.
#[derive(Debug, Clone)]
pub struct FixturePage {
    /// A short name ("article").
    pub name: &'static str,
    /// Its path on the fixture web ("/article").
    pub path: &'static str,
    /// The `Content-Type` it is served with (empty: none).
    pub content_type: &'static str,
    /// The bytes served.
    pub body: Vec<u8>,
    /// Sentences of its main text: each should be in the extracted text.
    pub main_text: &'static [&'static str],
    /// Boilerplate (navigation, ads, banners, footers): none should be.
    pub boilerplate: &'static [&'static str],
}

/// How much of a page's main text an extraction kept and how much boilerplate it dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quality {
    /// Main-text sentences found in the text.
    pub kept: usize,
    /// Main-text sentences in all.
    pub main: usize,
    /// Boilerplate strings not found in the text.
    pub dropped: usize,
    /// Boilerplate strings in all.
    pub boilerplate: usize,
}

impl Quality {
    /// The share of main-text sentences kept, 0 to 1.
    pub fn kept_share(&self) -> f64 {
        if self.main == 0 { 1.0 } else { self.kept as f64 / self.main as f64 }
    }

    /// The share of boilerplate strings dropped, 0 to 1.
    pub fn dropped_share(&self) -> f64 {
        if self.boilerplate == 0 { 1.0 } else { self.dropped as f64 / self.boilerplate as f64 }
    }
}

impl FixturePage {
    /// How well `text` (the extraction of this page) kept its main text and dropped its
    /// boilerplate. Markdown emphasis and whitespace do not count.
    pub fn quality(&self, text: &str) -> Quality {
        let text = normalise(text);
        let found = |s: &str| text.contains(&normalise(s));
        Quality {
            kept: self.main_text.iter().filter(|s| found(s)).count(),
            main: self.main_text.len(),
            dropped: self.boilerplate.iter().filter(|s| !found(s)).count(),
            boilerplate: self.boilerplate.len(),
        }
    }

    /// The main-text sentences missing from `text`.
    pub fn missing<'a>(&'a self, text: &str) -> Vec<&'a str> {
        let text = normalise(text);
        self.main_text.iter().copied().filter(|s| !text.contains(&normalise(s))).collect()
    }

    /// The boilerplate strings present in `text`.
    pub fn leaked<'a>(&'a self, text: &str) -> Vec<&'a str> {
        let text = normalise(text);
        self.boilerplate.iter().copied().filter(|s| text.contains(&normalise(s))).collect()
    }
}

/// Text with Markdown escapes, emphasis and code marks removed and whitespace runs made one
/// space, for comparing sentences whatever their formatting.
pub fn normalise(text: &str) -> String {
    let mut stripped = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek().is_some_and(char::is_ascii_punctuation) => {}
            '*' | '_' | '`' => {}
            c => stripped.push(c),
        }
    }
    stripped.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The fixture web, running on loopback.
#[derive(Debug, Clone)]
pub struct FixtureWeb {
    /// `http://127.0.0.1:PORT` (no trailing slash).
    pub base: String,
    huge_served: Arc<AtomicU64>,
}

impl FixtureWeb {
    /// The URL of `path` ("/article") on the fixture web.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// How many bytes of `/huge` the server has handed to its connections so far (sent, or in
    /// the socket's buffers).
    pub fn huge_bytes_served(&self) -> u64 {
        self.huge_served.load(Ordering::Relaxed)
    }
}

/// How long `/huge` goes on: far past any limit.
pub const HUGE_PAGE_BYTES: u64 = 256 * 1024 * 1024;

/// Starts the fixture web on a free loopback port.
pub async fn serve() -> FixtureWeb {
    let huge_served = Arc::new(AtomicU64::new(0));
    let mut app = Router::new()
        .route("/redirect/{n}", get(redirect_chain))
        .route("/loop", get(|| async { Redirect::temporary("/loop") }))
        .route("/to-metadata", get(|| async { Redirect::to("http://169.254.169.254/latest/meta-data/") }))
        .route("/to-file", get(|| async { Redirect::to("file:///etc/passwd") }))
        .route("/slow", get(slow))
        .route("/slow-body", get(slow_body))
        .route("/huge", get(huge))
        .route("/damaged.pdf", get(|| async { ([(header::CONTENT_TYPE, "application/pdf")], DAMAGED_PDF) }))
        .route("/image.png", get(|| async { ([(header::CONTENT_TYPE, "image/png")], PNG.to_vec()) }))
        .route("/missing", get(|| async { (StatusCode::NOT_FOUND, axum::response::Html(NOT_FOUND)) }))
        .route("/unavailable", get(|| async { (StatusCode::SERVICE_UNAVAILABLE, "try later") }))
        .with_state(huge_served.clone());
    for page in pages().into_iter().chain([app_page()]) {
        let (content_type, body) = (page.content_type, Bytes::from(page.body));
        app = app.route(
            page.path,
            get(move || async move {
                let mut response = Response::new(Body::from(body));
                if !content_type.is_empty() {
                    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
                }
                response
            }),
        );
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("a loopback port");
    let addr = listener.local_addr().expect("bound");
    tokio::spawn(async move { axum::serve(listener, app).await });
    FixtureWeb { base: format!("http://{addr}"), huge_served }
}

/// `/redirect/{n}`: n hops to `/article`, with a different redirect status at each (308, 307,
/// 303, then 302 and 301 as the chain goes on).
async fn redirect_chain(Path(n): Path<u32>) -> Response {
    let next = if n <= 1 { "/article".to_owned() } else { format!("/redirect/{}", n - 1) };
    let status = match n % 5 {
        0 => StatusCode::PERMANENT_REDIRECT,
        1 => StatusCode::SEE_OTHER,
        2 => StatusCode::TEMPORARY_REDIRECT,
        3 => StatusCode::FOUND,
        _ => StatusCode::MOVED_PERMANENTLY,
    };
    (status, [(header::LOCATION, next)]).into_response()
}

async fn slow(Query(query): Query<std::collections::HashMap<String, String>>) -> impl IntoResponse {
    let ms = query.get("ms").and_then(|ms| ms.parse().ok()).unwrap_or(5_000);
    tokio::time::sleep(Duration::from_millis(ms)).await;
    axum::response::Html("<!doctype html><title>Slow</title><p>This page took its time.</p>")
}

async fn slow_body() -> Response {
    let chunks = futures::stream::unfold(0u32, |i| async move {
        if i > 0 {
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        (i < 200).then(|| {
            (Ok::<_, std::io::Error>(Bytes::from(format!("<p>Chunk {i} of a page that trickles.</p>\n"))), i + 1)
        })
    });
    ([(header::CONTENT_TYPE, "text/html")], Body::from_stream(chunks)).into_response()
}

async fn huge(State(served): State<Arc<AtomicU64>>) -> Response {
    const CHUNK: usize = 64 * 1024;
    let paragraph = "<p>The endless page repeats this paragraph about nothing in particular, again and again.</p>\n";
    let chunk = Bytes::from(paragraph.repeat(CHUNK / paragraph.len()));
    let head = Bytes::from_static(
        b"<!doctype html><html><head><title>Endless</title></head><body><article><h1>Endless</h1>\n",
    );
    let chunks = futures::stream::unfold(0u64, move |sent| {
        let (chunk, head, served) = (chunk.clone(), head.clone(), served.clone());
        async move {
            if sent >= HUGE_PAGE_BYTES {
                return None;
            }
            let bytes = if sent == 0 { head } else { chunk };
            served.fetch_add(bytes.len() as u64, Ordering::Relaxed);
            Some((Ok::<_, std::io::Error>(bytes.clone()), sent + bytes.len() as u64))
        }
    });
    ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], Body::from_stream(chunks)).into_response()
}

/// A 1×1 transparent PNG.
const PNG: [u8; 67] = [
    0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A, 0x00, 0x00, 0x00, 0x0D, 0x49, 0x48, 0x44, 0x52, 0x00, 0x00, 0x00,
    0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x06, 0x00, 0x00, 0x00, 0x1F, 0x15, 0xC4, 0x89, 0x00, 0x00, 0x00, 0x0A, 0x49,
    0x44, 0x41, 0x54, 0x78, 0x9C, 0x63, 0x00, 0x01, 0x00, 0x00, 0x05, 0x00, 0x01, 0x0D, 0x0A, 0x2D, 0xB4, 0x00, 0x00,
    0x00, 0x00, 0x49, 0x45, 0x4E, 0x44, 0xAE, 0x42, 0x60, 0x82,
];

/// The start of a PDF and then nothing a reader can use.
const DAMAGED_PDF: &[u8] = b"%PDF-1.4\n1 0 obj\n<< /Type /Catalog /Pages 2 0 R\nthis is where the file was cut";

const NOT_FOUND: &str = "<!doctype html><title>Not found</title><h1>Page not found</h1><p>Sorry.</p>";

/// The pages read for their text, with their known main text and boilerplate.
pub fn pages() -> Vec<FixturePage> {
    vec![
        FixturePage {
            name: "article",
            path: "/article",
            content_type: "text/html; charset=utf-8",
            body: ARTICLE.as_bytes().to_vec(),
            main_text: ARTICLE_MAIN,
            boilerplate: ARTICLE_BOILERPLATE,
        },
        FixturePage {
            name: "long-article",
            path: "/long-article",
            content_type: "text/html; charset=utf-8",
            body: long_article().into_bytes(),
            main_text: LONG_MAIN,
            boilerplate: LONG_BOILERPLATE,
        },
        FixturePage {
            name: "docs",
            path: "/docs",
            content_type: "text/html",
            body: DOCS.as_bytes().to_vec(),
            main_text: DOCS_MAIN,
            boilerplate: DOCS_BOILERPLATE,
        },
        FixturePage {
            name: "blog",
            path: "/blog",
            content_type: "text/html; charset=UTF-8",
            body: BLOG.as_bytes().to_vec(),
            main_text: BLOG_MAIN,
            boilerplate: BLOG_BOILERPLATE,
        },
        FixturePage {
            name: "latin1",
            path: "/latin1",
            content_type: "text/html; charset=iso-8859-1",
            body: WINDOWS_1252.encode(LATIN).0.into_owned(),
            main_text: LATIN_MAIN,
            boilerplate: LATIN_BOILERPLATE,
        },
        FixturePage {
            name: "latin1-undeclared",
            path: "/latin1-undeclared",
            content_type: "text/html",
            body: WINDOWS_1252.encode(LATIN).0.into_owned(),
            main_text: LATIN_MAIN,
            boilerplate: LATIN_BOILERPLATE,
        },
        FixturePage {
            name: "sjis-meta",
            path: "/sjis-meta",
            content_type: "text/html",
            body: SHIFT_JIS.encode(&JAPANESE.replace("<head>", "<head><meta charset=\"Shift_JIS\">")).0.into_owned(),
            main_text: JAPANESE_MAIN,
            boilerplate: JAPANESE_BOILERPLATE,
        },
        FixturePage {
            name: "sjis-undeclared",
            path: "/sjis-undeclared",
            content_type: "text/html",
            body: SHIFT_JIS.encode(JAPANESE).0.into_owned(),
            main_text: JAPANESE_MAIN,
            boilerplate: JAPANESE_BOILERPLATE,
        },
        FixturePage {
            name: "pdf",
            path: "/report.pdf",
            content_type: "application/pdf",
            body: tiny_pdf("Quarterly report", PDF_MAIN),
            main_text: PDF_MAIN,
            boilerplate: &[],
        },
        FixturePage {
            name: "json",
            path: "/data.json",
            content_type: "application/json",
            body: br#"{"project":"agentd","release":{"version":"0.7.0","notes":"Faster page fetching for the research agent."},"tags":["rust","agents"]}"#.to_vec(),
            main_text: &["\"notes\": \"Faster page fetching for the research agent.\"", "\"version\": \"0.7.0\""],
            boilerplate: &[],
        },
        FixturePage {
            name: "text",
            path: "/notes.txt",
            content_type: "text/plain; charset=utf-8",
            body: TEXT.as_bytes().to_vec(),
            main_text: &["Meeting notes for the fetch design review.", "Decision: PDF text stays behind a cargo feature."],
            boilerplate: &[],
        },
        FixturePage {
            name: "untyped-html",
            path: "/untyped",
            content_type: "",
            body: BLOG.as_bytes().to_vec(),
            main_text: BLOG_MAIN,
            boilerplate: BLOG_BOILERPLATE,
        },
    ]
}

/// A page that is nothing without its JavaScript: an empty app root and a bundle.
pub fn app_page() -> FixturePage {
    FixturePage {
        name: "app",
        path: "/app",
        content_type: "text/html; charset=utf-8",
        body: APP.as_bytes().to_vec(),
        main_text: &[],
        boilerplate: &[],
    }
}

/// A small valid PDF (1.4, one page, Helvetica) titled `title` whose page shows `lines`.
pub fn tiny_pdf(title: &str, lines: &[&str]) -> Vec<u8> {
    let escape = |s: &str| s.replace('\\', "\\\\").replace('(', "\\(").replace(')', "\\)");
    let mut content = String::from("BT /F1 11 Tf 14 TL 56 780 Td\n");
    for line in lines {
        content.push_str(&format!("({}) Tj T*\n", escape(line)));
    }
    content.push_str("ET\n");
    let objects = [
        "<< /Type /Catalog /Pages 2 0 R >>".to_owned(),
        "<< /Type /Pages /Kids [3 0 R] /Count 1 >>".to_owned(),
        "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 842] /Resources << /Font << /F1 4 0 R >> >> /Contents 5 0 R >>"
            .to_owned(),
        "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>".to_owned(),
        format!("<< /Length {} >>\nstream\n{content}endstream", content.len()),
        format!("<< /Title ({}) /Producer (agentd-fetch fixtures) >>", escape(title)),
    ];
    let mut pdf = b"%PDF-1.4\n%\xE2\xE3\xCF\xD3\n".to_vec();
    let mut offsets = Vec::new();
    for (i, object) in objects.iter().enumerate() {
        offsets.push(pdf.len());
        pdf.extend_from_slice(format!("{} 0 obj\n{object}\nendobj\n", i + 1).as_bytes());
    }
    let xref = pdf.len();
    pdf.extend_from_slice(format!("xref\n0 {}\n0000000000 65535 f \n", objects.len() + 1).as_bytes());
    for offset in offsets {
        pdf.extend_from_slice(format!("{offset:010} 00000 n \n").as_bytes());
    }
    pdf.extend_from_slice(
        format!("trailer\n<< /Size {} /Root 1 0 R /Info 6 0 R >>\nstartxref\n{xref}\n%%EOF\n", objects.len() + 1)
            .as_bytes(),
    );
    pdf
}

const ARTICLE_MAIN: &[&str] = &[
    "The city council approved the new riverside park on Tuesday after a two-year debate.",
    "Construction is expected to begin in the spring and to last about eighteen months.",
    "The plan replaces a disused freight yard with wetlands, a cycle path and a public library annex.",
    "Residents who opposed the project worried mainly about traffic on Mill Street.",
    "Funding comes from three sources",
    "The council will publish the final drawings next month.",
    "Wetland restoration",
    "Budget by source",
];

const ARTICLE_BOILERPLATE: &[&str] = &[
    "We use cookies to improve your experience",
    "Accept all cookies",
    "Subscribe for unlimited access",
    "Most read this week",
    "Celebrity chef opens third restaurant",
    "Advertisement",
    "Refinance your home in minutes with QuickLoans",
    "All rights reserved",
    "Terms of service",
    "Follow us on social media",
];

const ARTICLE: &str = r#"<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Council approves riverside park | The Example Tribune</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="stylesheet" href="/static/site.css">
<script>window.dataLayer = window.dataLayer || []; function gtag(){dataLayer.push(arguments);}</script>
<script async src="/static/analytics.js"></script>
</head>
<body class="article-page">
<div id="cookie-banner" class="cookie-consent" role="dialog" aria-label="Cookie consent">
  <p>We use cookies to improve your experience and to show you personalised ads. See our <a href="/cookies">cookie policy</a>.</p>
  <button>Accept all cookies</button> <button>Manage preferences</button>
</div>
<header class="site-header">
  <a class="logo" href="/">The Example Tribune</a>
  <nav class="main-nav">
    <ul>
      <li><a href="/">Home</a></li><li><a href="/world">World</a></li><li><a href="/politics">Politics</a></li>
      <li><a href="/business">Business</a></li><li><a href="/sport">Sport</a></li><li><a href="/culture">Culture</a></li>
    </ul>
  </nav>
  <div class="paywall-promo"><a href="/subscribe">Subscribe for unlimited access</a></div>
</header>
<div class="layout">
<main id="content">
<article class="story">
  <h1>Council approves riverside park</h1>
  <p class="byline">By Jane Rivera, City Hall reporter · 4 March 2025</p>
  <p>The city council approved the new riverside park on Tuesday after a two-year debate. The vote was seven to two, with one abstention.</p>
  <p>Construction is expected to begin in the spring and to last about eighteen months. The council's <a href="/planning/riverside">planning documents</a> describe the work in three phases.</p>
  <p>The plan replaces a disused freight yard with wetlands, a cycle path and a public library annex. It also adds two footbridges across the river, linking the park to the old town.</p>
  <div class="ad-slot advertisement" data-ad="inline">
    <span class="ad-label">Advertisement</span>
    <a href="https://ads.example/click?id=991">Refinance your home in minutes with QuickLoans</a>
  </div>
  <h2>Wetland restoration</h2>
  <p>Residents who opposed the project worried mainly about traffic on Mill Street. Supporters pointed to the flood protection the wetlands will give the low-lying neighbourhoods near the river, which flooded twice in the last decade.</p>
  <p>The restored wetland will cover about four hectares and will be planted with native reeds, sedges and willows. Ecologists expect herons and kingfishers to return within a few years.</p>
  <ul>
    <li>Four hectares of restored wetland</li>
    <li>A 2.4 km cycle path along the east bank</li>
    <li>A library annex with a reading garden</li>
  </ul>
  <h2>Budget by source</h2>
  <p>Funding comes from three sources, summarised in the table below. The regional grant was confirmed in January.</p>
  <table>
    <thead><tr><th>Source</th><th>Amount (million)</th></tr></thead>
    <tbody>
      <tr><td>City budget</td><td>12.5</td></tr>
      <tr><td>Regional grant</td><td>8.0</td></tr>
      <tr><td>River trust</td><td>3.2</td></tr>
    </tbody>
  </table>
  <p>The council will publish the final drawings next month. Residents can comment on them at the <a href="https://example.org/consultation">public consultation</a> until the end of April.</p>
  <div class="share-tools social"><a href="/share/fb">Share on Facebook</a> <a href="/share/x">Share on X</a></div>
</article>
</main>
<aside class="sidebar">
  <section class="most-read">
    <h3>Most read this week</h3>
    <ol>
      <li><a href="/culture/chef">Celebrity chef opens third restaurant</a></li>
      <li><a href="/sport/derby">Derby ends in a goalless draw</a></li>
      <li><a href="/business/rates">Interest rates held for a fourth month</a></li>
    </ol>
  </section>
  <div class="ad-slot sidebar-ad"><span>Advertisement</span><a href="https://ads.example/click?id=7">Cheap flights to the sun</a></div>
</aside>
</div>
<footer class="site-footer">
  <nav><a href="/about">About us</a> · <a href="/terms">Terms of service</a> · <a href="/privacy">Privacy policy</a> · <a href="/contact">Contact</a></nav>
  <p>Follow us on social media: <a href="https://x.example/tribune">X</a>, <a href="https://fb.example/tribune">Facebook</a></p>
  <p>© 2025 The Example Tribune. All rights reserved.</p>
</footer>
<script src="/static/app.js"></script>
</body>
</html>
"#;

const LONG_MAIN: &[&str] = &[
    "The harbour authority has published its long-awaited plan for the old docks.",
    "Paragraph 12 explains that the tidal basin will stay open to small boats all year.",
    "Paragraph 27 notes that the warehouses on the north quay are listed buildings.",
    "The consultation closes on 30 June, and a final decision is expected in the autumn.",
    "Timeline of the works",
];

const LONG_BOILERPLATE: &[&str] = &[
    "This site uses cookies",
    "Mega menu section 7, link 11",
    "Comment 17 by reader",
    "Reply to this comment",
    "Footer link 63",
    "Sign up for our morning briefing",
    "Sponsored content from Harbour Homes",
];

/// A news page of a realistic size (about 100 kB): inline state and styles, a mega menu, a long
/// article, a comment thread and a heavy footer.
fn long_article() -> String {
    let mut html = String::from("<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">");
    html.push_str("<title>Harbour plan: what changes for the old docks | The Example Tribune</title><style>");
    for i in 0..600 {
        html.push_str(&format!(
            ".c{i}{{margin:{}px;padding:{}px;color:#{:06x}}}\n",
            i % 17,
            i % 9,
            i * 2731 % 0xffffff
        ));
    }
    html.push_str("</style><script>window.__STATE__ = {\"items\": [");
    for i in 0..900 {
        html.push_str(&format!("{{\"id\": {i}, \"slug\": \"story-{i}\", \"score\": {}}},", i * 37 % 1000));
    }
    html.push_str("{}]};</script><script async src=\"/static/ads.js\"></script></head><body>");
    html.push_str("<div class=\"cookie-notice\" role=\"dialog\"><p>This site uses cookies to measure its audience.</p><button>OK</button></div>");
    html.push_str("<header><nav class=\"mega-menu\"><ul>");
    for section in 0..12 {
        html.push_str(&format!("<li><a href=\"/s{section}\">Section {section}</a><ul>"));
        for link in 0..14 {
            html.push_str(&format!(
                "<li><a href=\"/s{section}/l{link}\">Mega menu section {section}, link {link}</a></li>"
            ));
        }
        html.push_str("</ul></li>");
    }
    html.push_str("</ul></nav></header><main><article><h1>Harbour plan: what changes for the old docks</h1>");
    html.push_str("<p class=\"standfirst\">The harbour authority has published its long-awaited plan for the old docks. It runs to 300 pages.</p>");
    for i in 1..=40 {
        if i % 8 == 0 {
            let heading = if i == 16 { "Timeline of the works".to_owned() } else { format!("Part {}", i / 8) };
            html.push_str(&format!("<h2>{heading}</h2>"));
        }
        let special = match i {
            12 => " Paragraph 12 explains that the tidal basin will stay open to small boats all year.",
            27 => " Paragraph 27 notes that the warehouses on the north quay are listed buildings.",
            _ => "",
        };
        html.push_str(&format!(
            "<p>In paragraph {i} the plan turns to another part of the docks, with figures for berths, \
             footpaths and flood walls that the authority says were checked by independent engineers.{special} \
             Residents quoted in the report ask how the work will be paced.</p>"
        ));
        if i == 20 {
            html.push_str("<div class=\"ad sponsored\"><p>Sponsored content from Harbour Homes: waterside flats from 250,000.</p></div>");
            html.push_str(
                "<div class=\"newsletter-signup\"><p>Sign up for our morning briefing</p><input type=\"email\"></div>",
            );
        }
    }
    html.push_str(
        "<p>The consultation closes on 30 June, and a final decision is expected in the autumn.</p></article>",
    );
    html.push_str("<section id=\"comments\" class=\"comments\"><h3>Comments (30)</h3>");
    for i in 0..30 {
        html.push_str(&format!(
            "<div class=\"comment\"><p class=\"author\">Comment {i} by reader{i}</p><p>I have lived by the docks for {i} years and \
             this is the first plan that mentions the footpaths.</p><a href=\"#reply-{i}\">Reply to this comment</a></div>"
        ));
    }
    html.push_str("</section></main><footer><ul>");
    for i in 0..80 {
        html.push_str(&format!("<li><a href=\"/f{i}\">Footer link {i}</a></li>"));
    }
    html.push_str("</ul><p>© 2025 The Example Tribune</p></footer></body></html>");
    html
}

const DOCS_MAIN: &[&str] = &[
    "A Fetcher sends one GET request through the egress policy and returns the page as text.",
    "Every redirect hop is checked against the policy before any connection is made.",
    "The body is read up to the size limit; anything past it is never buffered.",
    "Set max_output_chars to bound how much text reaches the model.",
    "let page = fetcher.fetch(url).await?;",
    "max_body_bytes",
    "Configuration",
];

const DOCS_BOILERPLATE: &[&str] = &[
    "Getting started",
    "Search the docs",
    "Was this page helpful?",
    "Edit this page on GitHub",
    "Previous: Installation",
    "Join our Discord",
    "Copyright 2025 agentd contributors",
];

const DOCS: &str = r#"<!doctype html>
<html>
<head><title>Fetching pages — agentd documentation</title><meta charset="utf-8"></head>
<body>
<div class="topbar"><a href="/">agentd docs</a> <form role="search"><input placeholder="Search the docs"></form> <a href="https://discord.example">Join our Discord</a></div>
<div class="docs-layout">
<nav class="docs-sidebar" aria-label="Documentation">
  <ul>
    <li><a href="/docs/intro">Getting started</a></li>
    <li><a href="/docs/install">Installation</a></li>
    <li><a href="/docs/sessions">Sessions and events</a></li>
    <li><a href="/docs/fetch" aria-current="page">Fetching pages</a></li>
    <li><a href="/docs/browser">The browser runtime</a></li>
    <li><a href="/docs/webhooks">Webhooks</a></li>
  </ul>
</nav>
<div class="docs-content" role="main">
  <h1>Fetching pages</h1>
  <p>A Fetcher sends one GET request through the egress policy and returns the page as text. HTML becomes Markdown, JSON is pretty-printed and PDF documents are read for their text.</p>
  <p>Every redirect hop is checked against the policy before any connection is made. A redirect to a private or metadata address ends the fetch with a clear error.</p>
  <h2>Example</h2>
  <pre><code>let fetcher = Fetcher::new(EgressPolicy::default(), FetchLimits::default())?;
let page = fetcher.fetch(url).await?;
println!("{}", page.text);</code></pre>
  <h2>Configuration</h2>
  <p>The body is read up to the size limit; anything past it is never buffered. The page is then marked as truncated.</p>
  <table>
    <tr><th>Limit</th><th>Default</th><th>Meaning</th></tr>
    <tr><td><code>max_body_bytes</code></td><td>5 MiB</td><td>Bytes of body read at most</td></tr>
    <tr><td><code>total_time</code></td><td>20 s</td><td>Time for the whole fetch</td></tr>
    <tr><td><code>max_output_chars</code></td><td>100,000</td><td>Characters of text returned</td></tr>
  </table>
  <p>Set max_output_chars to bound how much text reaches the model. The text is cut at a line break near the limit.</p>
  <div class="feedback"><p>Was this page helpful?</p><button>Yes</button><button>No</button></div>
  <div class="page-nav"><a href="/docs/install" rel="prev">Previous: Installation</a> <a href="/docs/browser" rel="next">Next: The browser runtime</a></div>
  <p class="edit-link"><a href="https://github.example/agentd/edit/docs/fetch.md">Edit this page on GitHub</a></p>
</div>
</div>
<footer><p>Copyright 2025 agentd contributors. Licensed under Apache-2.0.</p></footer>
</body>
</html>
"#;

const BLOG_MAIN: &[&str] = &[
    "I spent the weekend rewriting our page fetcher, and the biggest win was not speed at all.",
    "Most of the pages our agent reads are news articles and documentation.",
    "Readability-style extraction scores each block by how much text it holds and how many links.",
    "The one thing I would do differently is measure quality from the start.",
    "What I measured",
];

const BLOG_BOILERPLATE: &[&str] = &[
    "Subscribe to the newsletter",
    "Get new posts in your inbox",
    "Related posts",
    "Why we moved to SQLite",
    "Share this post",
    "Powered by Static Blog Engine",
    "Tags: rust, scraping",
];

const BLOG: &str = r#"<!DOCTYPE html>
<html lang="en">
<head><meta charset="utf-8"><title>What I learned rewriting a page fetcher · Notes from the workshop</title></head>
<body>
<div class="site-wrapper">
<header><h2 class="site-title"><a href="/">Notes from the workshop</a></h2>
<ul class="menu"><li><a href="/">Posts</a></li><li><a href="/about">About</a></li><li><a href="/feed.xml">RSS</a></li></ul></header>
<div class="post">
  <h1 class="post-title">What I learned rewriting a page fetcher</h1>
  <div class="post-meta">Posted on 12 February 2025 · 6 min read</div>
  <div class="post-content">
    <p>I spent the weekend rewriting our page fetcher, and the biggest win was not speed at all. It was how much less noise the model has to read on every page.</p>
    <p>Most of the pages our agent reads are news articles and documentation. Both are wrapped in navigation, banners and footers that say nothing about the question at hand.</p>
    <h2>What I measured</h2>
    <p>Readability-style extraction scores each block by how much text it holds and how many links. Blocks that are mostly links, like menus and lists of related stories, score low and are dropped.</p>
    <ol>
      <li>Share of the article's sentences that survive extraction.</li>
      <li>Share of the boilerplate strings that are removed.</li>
      <li>Pages per second, one at a time and eight at once.</li>
    </ol>
    <blockquote><p>Measure what the reader sees, not what the server sends.</p></blockquote>
    <p>The one thing I would do differently is measure quality from the start. It is much easier to keep a number up than to notice it has fallen.</p>
  </div>
  <p class="tags">Tags: rust, scraping</p>
  <div class="share"><span>Share this post</span> <a href="https://x.example/share">X</a> <a href="https://mastodon.example/share">Mastodon</a></div>
</div>
<section class="newsletter">
  <h3>Subscribe to the newsletter</h3>
  <p>Get new posts in your inbox, about once a month.</p>
  <form><input type="email" placeholder="you@example.com"><button>Subscribe</button></form>
</section>
<section class="related">
  <h3>Related posts</h3>
  <ul><li><a href="/posts/sqlite">Why we moved to SQLite</a></li><li><a href="/posts/tokio">A year of async Rust</a></li></ul>
</section>
<footer class="site-footer"><p>Powered by Static Blog Engine · Theme by someone</p></footer>
</div>
</body>
</html>
"#;

const LATIN_MAIN: &[&str] = &[
    "Le marché couvert de la place Saint-Éloi rouvre ses portes après dix-huit mois de travaux.",
    "Les commerçants ont retrouvé leurs étals : fromagers, maraîchers et un torréfacteur de café.",
    "L’entrée coûte 2 € le dimanche matin, gratuite le reste de la semaine.",
    "« C’est déjà mieux qu’avant », résume une habituée.",
];

const LATIN_BOILERPLATE: &[&str] =
    &["Accueil", "Mentions légales", "Abonnez-vous à notre lettre", "Tous droits réservés"];

const LATIN: &str = r#"<!DOCTYPE html>
<html lang="fr">
<head><title>Le marché couvert rouvre – La Gazette du quartier</title></head>
<body>
<nav class="menu"><a href="/">Accueil</a> | <a href="/ville">Ville</a> | <a href="/culture">Culture</a> | <a href="/sport">Sport</a></nav>
<article>
<h1>Le marché couvert rouvre</h1>
<p>Le marché couvert de la place Saint-Éloi rouvre ses portes après dix-huit mois de travaux. La charpente d’origine, en chêne, a été entièrement restaurée.</p>
<p>Les commerçants ont retrouvé leurs étals : fromagers, maraîchers et un torréfacteur de café. Une dizaine de nouveaux stands s’y ajoutent, dont une crêperie.</p>
<p>L’entrée coûte 2 € le dimanche matin, gratuite le reste de la semaine. Les horaires sont élargis : le marché ouvre désormais dès sept heures.</p>
<p>« C’est déjà mieux qu’avant », résume une habituée. Les riverains, eux, attendent de voir comment le quartier gérera l’afflux du week-end.</p>
</article>
<aside class="newsletter"><p>Abonnez-vous à notre lettre d’information hebdomadaire.</p></aside>
<footer><a href="/mentions">Mentions légales</a> — © La Gazette du quartier. Tous droits réservés.</footer>
</body>
</html>
"#;

const JAPANESE_MAIN: &[&str] = &[
    "市立図書館は来月から開館時間を午後九時まで延長すると発表した。",
    "延長に合わせて、二階の自習室も全面的に改装される。",
    "利用者からは、仕事帰りに立ち寄れるようになるとの声が多く寄せられている。",
    "図書館は今後、電子書籍の貸し出しも始める予定だ。",
];

const JAPANESE_BOILERPLATE: &[&str] = &["ホーム", "お問い合わせ", "利用規約", "無断転載を禁じます"];

const JAPANESE: &str = r#"<!DOCTYPE html>
<html lang="ja">
<head><title>図書館、開館時間を延長へ - 市民ニュース</title></head>
<body>
<header><nav class="global-nav"><a href="/">ホーム</a> <a href="/news">ニュース</a> <a href="/events">イベント</a> <a href="/contact">お問い合わせ</a></nav></header>
<main>
<article>
<h1>図書館、開館時間を延長へ</h1>
<p>市立図書館は来月から開館時間を午後九時まで延長すると発表した。平日の夜に利用したいという要望が、数年前から寄せられていた。</p>
<p>延長に合わせて、二階の自習室も全面的に改装される。座席は八十席から百二十席に増え、すべての席に電源が設けられる。</p>
<p>利用者からは、仕事帰りに立ち寄れるようになるとの声が多く寄せられている。一方で、職員の負担を心配する意見もある。</p>
<p>図書館は今後、電子書籍の貸し出しも始める予定だ。詳しい日程は来月の広報誌で知らせるという。</p>
</article>
</main>
<footer><a href="/terms">利用規約</a> ・ <a href="/privacy">個人情報の取り扱い</a><p>Copyright © 市民ニュース 無断転載を禁じます</p></footer>
</body>
</html>
"#;

const PDF_MAIN: &[&str] = &[
    "Quarterly report of the research agent.",
    "Pages fetched: 12,400 (up 18 percent on the previous quarter).",
    "Median fetch time was 240 ms; the slowest percentile stayed under 3 s.",
    "Next quarter: PDF tables and scanned documents.",
];

const TEXT: &str = "Meeting notes for the fetch design review.\r\n\r\nAttendees: the research agent team.\r\nDecision: PDF text stays behind a cargo feature.\r\nNext review in two weeks.\r\n";

const APP: &str = r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Acme Dashboard</title>
<link rel="stylesheet" href="/static/css/main.8c1f2a.css">
<script>window.__INITIAL_STATE__ = {"user": null, "flags": {"beta": true}};</script>
<script defer src="/static/js/vendor.41ab9c.js"></script>
<script defer src="/static/js/main.3f2a77.js"></script>
</head>
<body>
<noscript>You need to enable JavaScript to run this app.</noscript>
<div id="root"></div>
</body>
</html>
"#;
