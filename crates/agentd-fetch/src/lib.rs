//! agentd's `fetch_url`: one HTTP GET through the egress policy, within limits, turned into text
//! an LLM can read.
//!
//! [`Fetcher::fetch`] checks the URL with the [`agentd_egress::EgressPolicy`], sends the request
//! through an [`agentd_egress::EgressClient`] (names resolved by its checked resolver, no proxy)
//! and follows redirects itself, each hop checked like the first URL, so that it can report the
//! chain ([`FetchedPage::redirects`]). The body is read up to [`FetchLimits::max_body_bytes`]
//! (never more is buffered; the page is then marked [`FetchedPage::truncated`]), the whole fetch
//! within [`FetchLimits::total_time`]. The body becomes text by its content type:
//!
//! - HTML: the main content as Markdown by a readability-style extraction (`html.rs`, with
//!   `dom_smoothie` like the browser's `extract.rs`): title, headings, lists, tables and links
//!   kept, navigation, ads, footers and cookie banners dropped. A page that looks
//!   JavaScript-only is flagged [`FetchedPage::needs_browser`].
//! - plain text (and XML, CSV, Markdown...): as is; JSON: pretty-printed (`json.rs`);
//! - PDF: its text (`pdf.rs`, the `pdf` feature, on by default);
//! - anything else: [`FetchError::UnsupportedType`], before the body is read.
//!
//! Text is decoded to UTF-8 (`charset.rs`): a byte order mark, then the `Content-Type` charset,
//! then an HTML `<meta>` declaration, then UTF-8 if the bytes are valid UTF-8, else a guess by
//! `chardetng`. The text is cut at [`FetchLimits::max_output_chars`].
//!
//! Invariants: no connection is made to a destination the policy has not checked (every redirect
//! hop included); no more than `max_body_bytes` of a body is held; errors name the host, never
//! the whole URL (its path or query may hold a secret).
#![deny(missing_docs)]

mod charset;
mod content_type;
mod convert;
mod error;
mod fetcher;
mod html;
mod json;
mod limits;
mod page;
mod pdf;
mod text;

#[cfg(feature = "fixtures")]
pub mod fixtures;

pub use error::FetchError;
pub use fetcher::Fetcher;
pub use limits::FetchLimits;
pub use page::FetchedPage;
