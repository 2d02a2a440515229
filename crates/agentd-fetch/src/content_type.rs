//! What a body is: the `Content-Type` header read into a [`Kind`], or the body sniffed when the
//! server said nothing useful.

/// The kinds of body that become text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Html,
    Text,
    Json,
    Pdf,
}

/// A `Content-Type` header, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MediaType {
    /// `type/subtype`, lower case, no parameters; empty when the header was missing.
    pub essence: String,
    /// The `charset` parameter, if any, unquoted.
    pub charset: Option<String>,
}

impl MediaType {
    pub fn parse(header: Option<&str>) -> MediaType {
        let Some(header) = header else { return MediaType { essence: String::new(), charset: None } };
        let mut parts = header.split(';');
        let essence = parts.next().unwrap_or_default().trim().to_ascii_lowercase();
        let charset = parts.find_map(|param| {
            let (name, value) = param.split_once('=')?;
            name.trim().eq_ignore_ascii_case("charset").then(|| value.trim().trim_matches(['"', '\'']).to_owned())
        });
        MediaType { essence, charset: charset.filter(|c| !c.is_empty()) }
    }

    /// What the header says the body is: `Ok(Some)` a kind read as text, `Ok(None)` nothing
    /// useful (no header, or a generic binary type: sniff the body), `Err` a type that is not
    /// text (refused before the body is read).
    pub fn kind(&self) -> Result<Option<Kind>, ()> {
        let essence = self.essence.as_str();
        let (top, sub) = essence.split_once('/').unwrap_or((essence, ""));
        Ok(Some(match (top, sub) {
            ("", _) | ("application", "octet-stream" | "unknown" | "binary") | ("binary", "octet-stream") => {
                return Ok(None);
            }
            ("text", "html") | ("application", "xhtml+xml") => Kind::Html,
            ("application" | "text", "json") => Kind::Json,
            (_, sub) if sub.ends_with("+json") => Kind::Json,
            ("application", "pdf" | "x-pdf") => Kind::Pdf,
            ("text", _) => Kind::Text,
            ("application", "xml" | "javascript" | "x-javascript" | "ecmascript" | "x-ndjson" | "x-yaml" | "yaml") => {
                Kind::Text
            }
            (_, sub) if sub.ends_with("+xml") => Kind::Text,
            _ => return Err(()),
        }))
    }
}

/// What a body with no useful `Content-Type` is, from its first bytes.
pub(crate) fn sniff(body: &[u8]) -> Option<Kind> {
    let head = &body[..body.len().min(1024)];
    if head.starts_with(b"%PDF-") {
        return Some(Kind::Pdf);
    }
    let start = head.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(head);
    let start = &start[start.iter().position(|b| !b.is_ascii_whitespace()).unwrap_or(start.len())..];
    let lower = start.to_ascii_lowercase();
    let html_openers: [&[u8]; 6] = [b"<!doctype html", b"<html", b"<head", b"<body", b"<title", b"<!--"];
    if html_openers.iter().any(|opener| lower.starts_with(opener)) || contains(&lower, b"<html") {
        return Some(Kind::Html);
    }
    if (start.starts_with(b"{") || start.starts_with(b"[")) && serde_json::from_slice::<serde_json::Value>(body).is_ok()
    {
        return Some(Kind::Json);
    }
    // Text has no NUL bytes and few control characters besides tab and line breaks; UTF-16 text
    // starts with a byte order mark.
    if head.starts_with(b"\xFF\xFE") || head.starts_with(b"\xFE\xFF") {
        return Some(Kind::Text);
    }
    let controls = head.iter().filter(|&&b| b < 0x20 && !matches!(b, b'\t' | b'\n' | b'\r' | 0x0c)).count();
    (!head.contains(&0) && controls * 100 <= head.len()).then_some(Kind::Text)
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_are_read_into_kinds() {
        let kind = |h: &str| MediaType::parse(Some(h)).kind();
        assert_eq!(kind("text/html; charset=UTF-8"), Ok(Some(Kind::Html)));
        assert_eq!(kind("Application/XHTML+XML"), Ok(Some(Kind::Html)));
        assert_eq!(kind("application/ld+json"), Ok(Some(Kind::Json)));
        assert_eq!(kind("text/plain"), Ok(Some(Kind::Text)));
        assert_eq!(kind("application/atom+xml"), Ok(Some(Kind::Text)));
        assert_eq!(kind("application/pdf"), Ok(Some(Kind::Pdf)));
        assert_eq!(kind("application/octet-stream"), Ok(None));
        assert_eq!(kind("image/png"), Err(()));
        assert_eq!(MediaType::parse(None).kind(), Ok(None));
    }

    #[test]
    fn charset_parameters_are_unquoted_whatever_their_case() {
        assert_eq!(MediaType::parse(Some("text/html; CharSet=\"Shift_JIS\"")).charset.as_deref(), Some("Shift_JIS"));
        assert_eq!(MediaType::parse(Some("text/html; q=1")).charset, None);
    }

    #[test]
    fn bodies_are_sniffed() {
        assert_eq!(sniff(b"%PDF-1.4\n..."), Some(Kind::Pdf));
        assert_eq!(sniff(b"\n  <!DOCTYPE html><p>x"), Some(Kind::Html));
        assert_eq!(sniff(br#"{"a": [1, 2]}"#), Some(Kind::Json));
        assert_eq!(sniff(b"just some words\n"), Some(Kind::Text));
        assert_eq!(sniff(b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR"), None);
    }
}
