//! A body to text by its kind: HTML to Markdown, text as is, JSON pretty-printed, PDF read;
//! decoded to UTF-8 first and cut to the output limit last. CPU work: the fetcher runs it off the
//! async threads.

use crate::content_type::{Kind, MediaType, sniff};
use crate::{FetchError, charset, html, json, pdf, text};

/// A body read, and what the server said about it.
pub(crate) struct Body {
    pub bytes: Vec<u8>,
    /// Whether reading stopped at the size limit.
    pub cut: bool,
    pub media: MediaType,
    /// What the header says the body is (`None`: sniff it).
    pub declared: Option<Kind>,
    /// The final URL and its host.
    pub url: String,
    pub host: String,
}

/// The text of a body.
#[derive(Debug)]
pub(crate) struct Converted {
    /// The media type read as: the header's, or the sniffed kind's usual one.
    pub content_type: String,
    pub title: String,
    pub text: String,
    /// Whether the text was cut (at the output limit, or pages of a PDF left out).
    pub cut: bool,
    pub needs_browser: bool,
}

/// Turns `body` into text of at most `max_chars` characters.
pub(crate) fn convert(body: &Body, max_chars: usize) -> Result<Converted, FetchError> {
    let (kind, content_type) = match body.declared {
        Some(kind) => (kind, body.media.essence.clone()),
        None => {
            let kind = sniff(&body.bytes).ok_or_else(|| FetchError::UnsupportedType {
                content_type: if body.media.essence.is_empty() {
                    "(none, and the body is not text)".into()
                } else {
                    body.media.essence.clone()
                },
            })?;
            (kind, usual_type(kind).to_owned())
        }
    };
    let decode = |html: bool| {
        charset::decode(&body.bytes, body.media.charset.as_deref(), html, &body.host, body.cut)
            .map_err(|reason| FetchError::Decode { content_type: content_type.clone(), reason })
    };
    let (title, mut text, mut cut, needs_browser) = match kind {
        Kind::Html => {
            let page = html::extract(&decode(true)?, &body.url);
            (page.title, page.markdown, false, page.needs_browser)
        }
        Kind::Text => (String::new(), text::tidy(&decode(false)?), false, false),
        Kind::Json => {
            let raw = decode(false)?;
            match json::pretty(&raw, max_chars) {
                Some((pretty, cut)) => (String::new(), pretty, cut, false),
                None => (String::new(), text::tidy(&raw), false, false),
            }
        }
        Kind::Pdf => {
            let pdf = pdf::extract(&body.bytes, body.cut, max_chars)?;
            (pdf.title, pdf.text, pdf.cut, false)
        }
    };
    cut |= text::cut_to(&mut text, max_chars);
    Ok(Converted { content_type, title, text, cut, needs_browser })
}

fn usual_type(kind: Kind) -> &'static str {
    match kind {
        Kind::Html => "text/html",
        Kind::Text => "text/plain",
        Kind::Json => "application/json",
        Kind::Pdf => "application/pdf",
    }
}
