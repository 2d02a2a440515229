//! [`FetchedPage`]: what a fetch returns.

/// A fetched page, as text an LLM can read. Serialises with these field names (for events).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FetchedPage {
    /// The final URL, after redirects.
    pub url: String,
    /// The final response's HTTP status (2xx; a status of 400 or more is an error).
    pub status: u16,
    /// The media type the text was read as, lower case, without parameters ("text/html"); sniffed
    /// from the body when the server sent none or `application/octet-stream`.
    pub content_type: String,
    /// The page's title: the article's for HTML, the document's for a PDF that has one, else
    /// empty.
    pub title: String,
    /// The text: Markdown for HTML, the text itself for plain text, pretty-printed JSON, a PDF's
    /// text (pages separated by a line with `---`).
    pub text: String,
    /// How many body bytes were read (at most [`crate::FetchLimits::max_body_bytes`]).
    pub bytes: usize,
    /// Whether the body was cut at the byte limit or the text at the character limit.
    pub truncated: bool,
    /// Every URL that answered with a redirect, in order, the URL asked for first; empty when
    /// there was none.
    pub redirects: Vec<String>,
    /// Whether the HTML looks JavaScript-only (little text beside scripts or an empty app root):
    /// a real browser would read more.
    pub needs_browser: bool,
}
