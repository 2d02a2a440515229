//! A PDF's text, page by page, with `pdf-extract` (the `pdf` feature); without the feature,
//! [`FetchError::PdfUnsupported`].

use crate::FetchError;

/// A PDF's title (from its document information, if any) and text.
#[derive(Debug)]
pub(crate) struct PdfText {
    pub title: String,
    pub text: String,
    /// Whether pages were left out because the text reached the limit.
    pub cut: bool,
}

/// The text of the PDF in `body`, pages separated by a `---` line, read page by page until
/// `max_chars` characters are reached. A body cut at the size limit cannot be read (a PDF's
/// index is at its end), nor can a damaged or password-protected one.
#[cfg(feature = "pdf")]
pub(crate) fn extract(body: &[u8], body_cut: bool, max_chars: usize) -> Result<PdfText, FetchError> {
    let fail = |reason: String| FetchError::Decode { content_type: "application/pdf".into(), reason };
    if body_cut {
        return Err(fail("the PDF is larger than the size limit, and a PDF cannot be read in part".into()));
    }
    // pdf-extract panics on some malformed documents; a panic here is a damaged PDF, not a
    // crashed fetch.
    let outcome = std::panic::catch_unwind(|| read(body, max_chars));
    match outcome {
        Ok(result) => result.map_err(fail),
        Err(_) => Err(fail("the PDF is damaged or uses features the reader does not handle".into())),
    }
}

#[cfg(feature = "pdf")]
fn read(body: &[u8], max_chars: usize) -> Result<PdfText, String> {
    use pdf_extract::{Document, Object, PlainTextOutput, decode_text_string, output_doc_page};

    let mut doc = Document::load_mem(body).map_err(|e| format!("not a readable PDF ({e})"))?;
    if doc.is_encrypted() && doc.decrypt("").is_err() {
        return Err("the PDF is protected by a password".into());
    }
    let title = doc
        .trailer
        .get(b"Info")
        .ok()
        .and_then(|info| match info {
            Object::Reference(id) => doc.get_dictionary(*id).ok(),
            Object::Dictionary(dict) => Some(dict),
            _ => None,
        })
        .and_then(|info| info.get(b"Title").ok())
        .and_then(|title| decode_text_string(title).ok())
        .map(|title| title.trim().to_owned())
        .unwrap_or_default();
    let pages: Vec<u32> = doc.get_pages().keys().copied().collect();
    let (mut text, mut chars, mut cut) = (String::new(), 0, false);
    for page in &pages {
        if chars >= max_chars {
            cut = true;
            break;
        }
        let mut page_text = String::new();
        let mut output = PlainTextOutput::new(&mut page_text);
        if let Err(e) = output_doc_page(&doc, &mut output, *page) {
            tracing::debug!(page, error = %e, "fetch: a PDF page could not be read");
            continue;
        }
        let page_text = crate::text::tidy(&page_text);
        if page_text.is_empty() {
            continue;
        }
        if !text.is_empty() {
            text.push_str("\n\n---\n\n");
        }
        chars += page_text.chars().count();
        text.push_str(&page_text);
    }
    if text.trim().is_empty() && !pages.is_empty() {
        return Err("the PDF has no text layer (scanned pages need OCR, which agentd does not do)".into());
    }
    Ok(PdfText { title, text, cut })
}

/// Without the `pdf` feature no PDF is read.
#[cfg(not(feature = "pdf"))]
pub(crate) fn extract(_body: &[u8], _body_cut: bool, _max_chars: usize) -> Result<PdfText, FetchError> {
    Err(FetchError::PdfUnsupported)
}
