//! HTML to main-content Markdown: a readability-style extraction with `dom_smoothie` (as the
//! browser's `extract.rs` does), after dropping what is never content (cookie and consent
//! banners, hidden elements, dialogs); and whether the page looks JavaScript-only.

use dom_query::Document;
use dom_smoothie::{Config, Readability, TextMode};

/// What was read from an HTML page.
#[derive(Debug)]
pub(crate) struct Extracted {
    pub title: String,
    pub markdown: String,
    pub needs_browser: bool,
}

/// Below this many characters of text, a page with scripts or an empty app root is taken for
/// JavaScript-only.
const LITTLE_TEXT_CHARS: usize = 200;

/// Elements that are never a page's content, whatever the extraction scores: banners asking for
/// consent, things hidden from everyone, and modal dialogs.
const NEVER_CONTENT: &str = concat!(
    "[id*=cookie], [class*=cookie], [id*=consent], [class*=consent], [id*=gdpr], [class*=gdpr], ",
    "[hidden], [aria-hidden=true], [aria-modal=true], dialog, template, noscript"
);

/// Where single-page apps mount: an empty one of these means the content is the script's.
const APP_ROOTS: &str = "#root, #app, #__next, #__nuxt, #___gatsby, #svelte, app-root, [data-reactroot], [ng-app]";

/// Extracts the main content of `html` (fetched from `url`) as Markdown.
pub(crate) fn extract(html: &str, url: &str) -> Extracted {
    let document = Document::from(html);
    let scripts = document.select("script").length();
    let empty_app_root = document.select(APP_ROOTS).iter().any(|root| root.text().trim().is_empty());
    let fallback_title = document.select("title").first().text().trim().to_owned();
    drop_never_content(&document);
    let config = Config { text_mode: TextMode::Markdown, ..Config::default() };
    let absolute = (url.starts_with("http://") || url.starts_with("https://")).then_some(url);
    let article = Readability::with_document(document, absolute, Some(config))
        .ok()
        .and_then(|mut readability| readability.parse().ok());
    let (title, markdown) = match article {
        Some(article) if !article.text_content.trim().is_empty() => (article.title, article.text_content.to_string()),
        // No article shape (a form, an index page): the body as Markdown, minus what is never
        // content. The readability pass changed the first parse, so this is a second one.
        _ => {
            let document = Document::from(html);
            drop_never_content(&document);
            (String::new(), document.md(None).to_string())
        }
    };
    let markdown = tidy_markdown(&markdown);
    let title = if title.trim().is_empty() { fallback_title } else { title.trim().to_owned() };
    let little_text = markdown.chars().filter(|c| !c.is_whitespace()).count() < LITTLE_TEXT_CHARS;
    Extracted { title, needs_browser: little_text && (empty_app_root || scripts > 0), markdown }
}

fn drop_never_content(document: &Document) {
    for selector in NEVER_CONTENT.split(", ") {
        // Never the page's frame, whatever its classes say ("has-cookie-banner" on <body>).
        for element in document.select(selector).iter() {
            if !element.is("html, body, main, article") {
                element.remove();
            }
        }
    }
}

/// Runs of blank lines made one, trailing spaces dropped, ends trimmed.
fn tidy_markdown(markdown: &str) -> String {
    let mut out = String::with_capacity(markdown.len());
    let mut blank_run = 0;
    for line in markdown.lines() {
        let line = line.trim_end();
        if line.is_empty() {
            blank_run += 1;
            if blank_run > 1 {
                continue;
            }
        } else {
            blank_run = 0;
        }
        out.push_str(line);
        out.push('\n');
    }
    out.trim().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_app_root_with_scripts_needs_a_browser() {
        let html = r#"<html><head><title>App</title><script src="/a.js"></script></head><body><div id="root"></div></body></html>"#;
        let page = extract(html, "https://app.example/");
        assert!(page.needs_browser);
        assert_eq!(page.title, "App");
    }

    #[test]
    fn a_short_page_without_scripts_is_just_short() {
        let page = extract("<html><body><p>Short and static.</p></body></html>", "https://x.example/");
        assert!(!page.needs_browser);
        assert!(page.markdown.contains("Short and static."), "{}", page.markdown);
    }

    #[test]
    fn a_body_with_a_cookie_class_is_not_removed() {
        let html = format!(
            "<html><body class='has-cookie-banner'><article><h1>T</h1><p>{}</p></article></body></html>",
            "Plenty of words in this article. ".repeat(30)
        );
        let page = extract(&html, "https://x.example/");
        assert!(page.markdown.contains("Plenty of words"), "{}", page.markdown);
    }
}
