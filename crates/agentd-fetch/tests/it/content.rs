//! What a fetched page becomes, by content type: HTML main content as Markdown (boilerplate
//! dropped), encodings decoded, PDF, JSON, plain text, unsupported types, JavaScript-only pages.

use agentd_fetch::fixtures::{self, FixturePage};
use agentd_fetch::{FetchError, FetchLimits, FetchedPage};

use crate::fetcher;

fn fixture(name: &str) -> FixturePage {
    fixtures::pages().into_iter().find(|p| p.name == name).expect("a fixture page")
}

async fn fetch(web: &fixtures::FixtureWeb, path: &str) -> Result<FetchedPage, FetchError> {
    fetcher(FetchLimits::default()).fetch(&web.url(path)).await
}

#[tokio::test]
async fn an_article_keeps_its_main_text_and_structure_and_drops_the_boilerplate() {
    let web = fixtures::serve().await;
    let article = fixture("article");
    let page = fetch(&web, "/article").await.unwrap();

    assert_eq!(page.missing(&article), Vec::<&str>::new(), "{}", page.text);
    assert_eq!(page.leaked(&article), Vec::<&str>::new(), "{}", page.text);
    assert_eq!(page.title, "Council approves riverside park | The Example Tribune");
    assert!(page.text.contains("\n## Wetland restoration\n"), "heading: {}", page.text);
    assert!(page.text.contains("\n- A 2.4 km cycle path along the east bank\n"), "list: {}", page.text);
    assert!(
        page.text.contains("| Source | Amount (million) |") && page.text.contains("| Regional grant | 8.0 |"),
        "table: {}",
        page.text
    );
    assert!(page.text.contains("[public consultation](https://example.org/consultation)"), "link: {}", page.text);
    // Relative links are made absolute against the page's URL.
    assert!(page.text.contains(&format!("[planning documents]({}/planning/riverside)", web.base)), "{}", page.text);
    assert_eq!((page.status, page.content_type.as_str()), (200, "text/html"));
    assert_eq!(page.bytes, article.body.len());
    assert!(!page.truncated && !page.needs_browser && page.redirects.is_empty());
    assert_eq!(page.url, web.url("/article"));
}

trait Quality {
    fn missing<'a>(&self, fixture: &'a FixturePage) -> Vec<&'a str>;
    fn leaked<'a>(&self, fixture: &'a FixturePage) -> Vec<&'a str>;
}

impl Quality for FetchedPage {
    fn missing<'a>(&self, fixture: &'a FixturePage) -> Vec<&'a str> {
        fixture.missing(&self.text)
    }
    fn leaked<'a>(&self, fixture: &'a FixturePage) -> Vec<&'a str> {
        fixture.leaked(&self.text)
    }
}

#[tokio::test]
async fn every_fixture_page_keeps_all_its_main_text_and_drops_most_boilerplate() {
    let web = fixtures::serve().await;
    for fixture in fixtures::pages() {
        if fixture.name == "pdf" && !cfg!(feature = "pdf") {
            continue;
        }
        let page = fetch(&web, fixture.path).await.unwrap_or_else(|e| panic!("{}: {e}", fixture.name));
        let quality = fixture.quality(&page.text);
        assert_eq!(quality.kept, quality.main, "{}: missing {:?}\n{}", fixture.name, page.missing(&fixture), page.text);
        // The docs page keeps two widgets inside its content column ("Was this page helpful?",
        // "Edit this page"): the bench reports them; everything else drops all its boilerplate.
        assert!(quality.dropped_share() >= 0.7, "{}: leaked {:?}", fixture.name, page.leaked(&fixture));
    }
}

#[tokio::test]
async fn a_windows_1252_page_labelled_iso_8859_1_is_decoded() {
    let web = fixtures::serve().await;
    let page = fetch(&web, "/latin1").await.unwrap();
    // 0x80 (€), 0x92 (’) and 0xAB/0xBB (« ») are windows-1252, which the ISO-8859-1 label means.
    for expected in ["L’entrée coûte 2 € le dimanche matin", "« C’est déjà mieux qu’avant »", "place Saint-Éloi"]
    {
        assert!(page.text.contains(expected), "{expected:?} in {}", page.text);
    }
    assert!(!page.text.contains('\u{FFFD}'));
    assert_eq!(page.title, "Le marché couvert rouvre – La Gazette du quartier");
}

#[tokio::test]
async fn a_charset_declared_only_in_a_meta_tag_is_honoured() {
    let web = fixtures::serve().await;
    let page = fetch(&web, "/sjis-meta").await.unwrap();
    assert!(page.text.contains("市立図書館は来月から開館時間を午後九時まで延長すると発表した。"), "{}", page.text);
    assert_eq!(page.title, "図書館、開館時間を延長へ - 市民ニュース");
}

#[tokio::test]
async fn undeclared_encodings_are_detected() {
    let web = fixtures::serve().await;
    let latin = fetch(&web, "/latin1-undeclared").await.unwrap();
    assert!(latin.text.contains("L’entrée coûte 2 € le dimanche matin"), "{}", latin.text);
    let japanese = fetch(&web, "/sjis-undeclared").await.unwrap();
    assert!(japanese.text.contains("図書館は今後、電子書籍の貸し出しも始める予定だ。"), "{}", japanese.text);
}

#[cfg(feature = "pdf")]
#[tokio::test]
async fn a_pdf_is_read_for_its_text_and_title() {
    let web = fixtures::serve().await;
    let page = fetch(&web, "/report.pdf").await.unwrap();
    assert_eq!(page.content_type, "application/pdf");
    assert_eq!(page.title, "Quarterly report");
    assert_eq!(page.missing(&fixture("pdf")), Vec::<&str>::new(), "{}", page.text);
    assert!(!page.needs_browser && !page.truncated);
}

#[cfg(not(feature = "pdf"))]
#[tokio::test]
async fn without_the_pdf_feature_a_pdf_is_a_clear_error() {
    let web = fixtures::serve().await;
    let error = fetch(&web, "/report.pdf").await.unwrap_err();
    assert_eq!(error.to_string(), "PDF text extraction is not supported");
}

#[cfg(feature = "pdf")]
#[tokio::test]
async fn a_damaged_pdf_is_a_clear_error() {
    let web = fixtures::serve().await;
    let error = fetch(&web, "/damaged.pdf").await.unwrap_err();
    let FetchError::Decode { content_type, reason } = &error else { panic!("{error:?}") };
    assert_eq!(content_type, "application/pdf");
    assert!(reason.starts_with("not a readable PDF"), "{reason}");
}

#[cfg(feature = "pdf")]
#[tokio::test]
async fn a_pdf_cut_at_the_size_limit_is_a_clear_error() {
    let web = fixtures::serve().await;
    let small = FetchLimits { max_body_bytes: 200, ..FetchLimits::default() };
    let error = fetcher(small).fetch(&web.url("/report.pdf")).await.unwrap_err();
    assert!(matches!(error, FetchError::Decode { .. }), "{error:?}");
    assert!(error.to_string().contains("larger than the size limit (200 bytes)"), "{error}");
}

#[tokio::test]
async fn json_is_pretty_printed() {
    let web = fixtures::serve().await;
    let page = fetch(&web, "/data.json").await.unwrap();
    assert_eq!(page.content_type, "application/json");
    assert!(page.text.starts_with("{\n  \"project\": \"agentd\",\n  \"release\": {\n    \""), "{}", page.text);
    assert_eq!(serde_json::from_str::<serde_json::Value>(&page.text).unwrap()["tags"][1], "agents");
}

#[tokio::test]
async fn plain_text_is_kept_as_is_with_unix_line_endings() {
    let web = fixtures::serve().await;
    let page = fetch(&web, "/notes.txt").await.unwrap();
    assert_eq!(page.content_type, "text/plain");
    assert_eq!(
        page.text,
        "Meeting notes for the fetch design review.\n\nAttendees: the research agent team.\nDecision: PDF text stays behind a cargo feature.\nNext review in two weeks."
    );
}

#[tokio::test]
async fn a_body_without_a_content_type_is_sniffed() {
    let web = fixtures::serve().await;
    let page = fetch(&web, "/untyped").await.unwrap();
    assert_eq!(page.content_type, "text/html");
    assert_eq!(page.missing(&fixture("untyped-html")), Vec::<&str>::new());
}

#[tokio::test]
async fn an_image_is_an_unsupported_type_named_in_the_error() {
    let web = fixtures::serve().await;
    let error = fetch(&web, "/image.png").await.unwrap_err();
    assert_eq!(error, FetchError::UnsupportedType { content_type: "image/png".into() });
    let supported = if cfg!(feature = "pdf") { "HTML, plain text, JSON and PDF" } else { "HTML, plain text and JSON" };
    assert_eq!(error.to_string(), format!("the content type image/png is not supported ({supported} are)"));
}

#[tokio::test]
async fn a_javascript_only_page_asks_for_the_browser() {
    let web = fixtures::serve().await;
    let page = fetch(&web, "/app").await.unwrap();
    assert!(page.needs_browser, "{page:?}");
    assert_eq!(page.title, "Acme Dashboard");
    // The article is readable without one.
    assert!(!fetch(&web, "/article").await.unwrap().needs_browser);
}

#[tokio::test]
async fn text_past_the_output_limit_is_cut_and_the_page_marked_truncated() {
    let web = fixtures::serve().await;
    let page = fetcher(FetchLimits { max_output_chars: 400, ..FetchLimits::default() })
        .fetch(&web.url("/article"))
        .await
        .unwrap();
    assert!(page.truncated);
    assert!(page.text.chars().count() <= 400 && page.text.chars().count() > 200, "{}", page.text);
    assert!(page.text.starts_with("The city council approved"));
    assert_eq!(page.bytes, fixture("article").body.len(), "the whole body was read");
}
