//! Bytes to UTF-8: which encoding a body is in, and decoding it.
//!
//! The order is the browsers' (WHATWG Encoding and HTML standards, simplified): a byte order
//! mark; the `Content-Type` charset; for HTML, a `<meta charset>` or `<meta http-equiv>`
//! declaration near the start; UTF-8 if the bytes are valid UTF-8; else `chardetng`'s guess
//! (which the host's top-level domain helps: `.jp` favours Japanese encodings).

use encoding_rs::{Encoding, UTF_8, UTF_16BE, UTF_16LE, WINDOWS_1252, X_USER_DEFINED};

/// How far into an HTML document a `<meta>` declaration is looked for. The standard says 1024
/// bytes; pages with long comments or inline styles first are common enough to look further.
const META_SCAN_BYTES: usize = 4096;

/// How much of the body the detector reads: enough for a confident guess, bounded work.
const DETECT_BYTES: usize = 64 * 1024;

/// Decodes `body` to UTF-8. `declared` is the `Content-Type` charset; `html` whether to look for
/// a `<meta>` declaration; `host` the page's host (its top-level domain guides the guess);
/// `cut` whether the body was cut at the size limit (a character split at the end is dropped).
/// An error when the bytes are mostly not text in the encoding chosen.
pub(crate) fn decode(body: &[u8], declared: Option<&str>, html: bool, host: &str, cut: bool) -> Result<String, String> {
    let (encoding, skip) = choose(body, declared, html, host);
    let (text, had_errors) = encoding.decode_without_bom_handling(&body[skip..]);
    let mut text = text.into_owned();
    if cut && text.ends_with('\u{FFFD}') {
        text.pop();
    }
    if had_errors {
        let bad = text.chars().filter(|&c| c == '\u{FFFD}').count();
        let total = text.chars().count().max(1);
        if bad > 16 && bad * 10 > total {
            return Err(format!(
                "{bad} of its {total} characters are not valid {} (it is probably not text)",
                encoding.name()
            ));
        }
    }
    Ok(text)
}

/// The encoding of `body` and the length of its byte order mark.
pub(crate) fn choose(body: &[u8], declared: Option<&str>, html: bool, host: &str) -> (&'static Encoding, usize) {
    if let Some((encoding, bom)) = Encoding::for_bom(body) {
        return (encoding, bom);
    }
    if let Some(encoding) = declared.and_then(|label| Encoding::for_label_no_replacement(label.as_bytes())) {
        return (encoding, 0);
    }
    if html && let Some(encoding) = meta_charset(&body[..body.len().min(META_SCAN_BYTES)]) {
        return (encoding, 0);
    }
    if valid_utf8_prefix(body) {
        return (UTF_8, 0);
    }
    let mut detector = chardetng::EncodingDetector::new(chardetng::Iso2022JpDetection::Deny);
    let sample = &body[..body.len().min(DETECT_BYTES)];
    detector.feed(sample, sample.len() == body.len());
    (detector.guess(tld(host), chardetng::Utf8Detection::Allow), 0)
}

/// Whether `body` is UTF-8, allowing a character cut at its end.
fn valid_utf8_prefix(body: &[u8]) -> bool {
    match std::str::from_utf8(body) {
        Ok(_) => true,
        Err(e) => e.error_len().is_none() && body.len() - e.valid_up_to() < 4,
    }
}

/// The top-level domain of `host`, in the form `chardetng` accepts (lower-case ASCII letters,
/// digits and hyphens), or none (an IP address, an odd name).
fn tld(host: &str) -> Option<&[u8]> {
    let label = host.trim_end_matches('.').rsplit('.').next()?;
    let ok = !label.is_empty()
        && label.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !label.bytes().all(|b| b.is_ascii_digit());
    ok.then_some(label.as_bytes())
}

/// The encoding a `<meta charset>` or `<meta http-equiv="Content-Type" content="...charset=...">`
/// in `head` declares, as the HTML standard maps it (UTF-16 declared in the document itself means
/// UTF-8; x-user-defined means windows-1252).
pub(crate) fn meta_charset(head: &[u8]) -> Option<&'static Encoding> {
    let lower = head.to_ascii_lowercase();
    let mut at = 0;
    while at < lower.len() {
        let rest = &lower[at..];
        if rest.starts_with(b"<!--") {
            at += find(rest, b"-->").map_or(rest.len(), |end| end + 3);
            continue;
        }
        if rest.starts_with(b"<meta") && rest.get(5).is_some_and(|b| b.is_ascii_whitespace() || *b == b'/') {
            let end = find(rest, b">").unwrap_or(rest.len());
            if let Some(label) = declared_in_meta(&head[at + 5..at + end])
                && let Some(encoding) = Encoding::for_label_no_replacement(label.as_bytes())
            {
                return Some(match encoding {
                    e if e == UTF_16BE || e == UTF_16LE => UTF_8,
                    e if e == X_USER_DEFINED => WINDOWS_1252,
                    e => e,
                });
            }
            at += end;
            continue;
        }
        at += 1;
    }
    None
}

/// The charset label declared by a meta tag's attributes (`charset`, or `content` when
/// `http-equiv` is `content-type`).
fn declared_in_meta(attributes: &[u8]) -> Option<String> {
    let attributes = attributes_of(attributes);
    let get = |name: &str| attributes.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str());
    if let Some(charset) = get("charset") {
        return Some(charset.trim().to_owned());
    }
    if get("http-equiv").is_some_and(|v| v.trim().eq_ignore_ascii_case("content-type")) {
        let content = get("content")?.to_ascii_lowercase();
        let after = &content[content.find("charset")? + "charset".len()..];
        let value = after.trim_start().strip_prefix('=')?.trim_start();
        let value = value.trim_start_matches(['"', '\'']);
        let end = value.find(|c: char| c == ';' || c == '"' || c == '\'' || c.is_whitespace()).unwrap_or(value.len());
        return Some(value[..end].to_owned());
    }
    None
}

/// A tag's attributes as (lower-case name, value) pairs; values may be quoted or bare.
fn attributes_of(raw: &[u8]) -> Vec<(String, String)> {
    let text = String::from_utf8_lossy(raw);
    let chars: Vec<char> = text.chars().collect();
    let (mut out, mut i) = (Vec::new(), 0);
    while i < chars.len() {
        while i < chars.len() && (chars[i].is_whitespace() || chars[i] == '/') {
            i += 1;
        }
        let start = i;
        while i < chars.len() && !chars[i].is_whitespace() && !matches!(chars[i], '=' | '/') {
            i += 1;
        }
        let name: String = chars[start..i].iter().collect::<String>().to_ascii_lowercase();
        while i < chars.len() && chars[i].is_whitespace() {
            i += 1;
        }
        let mut value = String::new();
        if i < chars.len() && chars[i] == '=' {
            i += 1;
            while i < chars.len() && chars[i].is_whitespace() {
                i += 1;
            }
            if i < chars.len() && matches!(chars[i], '"' | '\'') {
                let quote = chars[i];
                i += 1;
                let start = i;
                while i < chars.len() && chars[i] != quote {
                    i += 1;
                }
                value = chars[start..i].iter().collect();
                i += 1;
            } else {
                let start = i;
                while i < chars.len() && !chars[i].is_whitespace() {
                    i += 1;
                }
                value = chars[start..i].iter().collect();
            }
        }
        if name.is_empty() {
            i += 1;
        } else {
            out.push((name, value));
        }
    }
    out
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;
    use encoding_rs::{EUC_JP, SHIFT_JIS};

    #[test]
    fn meta_declarations_are_found_in_both_forms_and_not_in_comments() {
        assert_eq!(meta_charset(b"<head><META CharSet='Shift_JIS'>"), Some(SHIFT_JIS));
        assert_eq!(
            meta_charset(b"<meta http-equiv=\"Content-Type\" content=\"text/html; charset=euc-jp\">"),
            Some(EUC_JP)
        );
        assert_eq!(meta_charset(b"<!-- <meta charset=shift_jis> --><meta charset=\"iso-8859-1\">"), Some(WINDOWS_1252));
        assert_eq!(meta_charset(b"<meta charset=utf-16le>"), Some(UTF_8));
        assert_eq!(meta_charset(b"<metadata charset=shift_jis>"), None);
        assert_eq!(meta_charset(b"<meta name=viewport content=\"width=device-width\">"), None);
    }

    #[test]
    fn the_order_is_bom_header_meta_utf8_then_a_guess() {
        let html = b"<meta charset=shift_jis><p>caf\xc3\xa9</p>";
        assert_eq!(choose(b"\xEF\xBB\xBFabc", Some("windows-1252"), true, "x.com"), (UTF_8, 3));
        assert_eq!(choose(html, Some("windows-1252"), true, "x.com").0, WINDOWS_1252);
        assert_eq!(choose(html, None, true, "x.com").0, SHIFT_JIS);
        assert_eq!(choose(html, None, false, "x.com").0, UTF_8);
        assert_eq!(choose(html, Some("no-such-charset"), false, "x.com").0, UTF_8);
        let (guess, _) = choose("Le café est très épicé, déjà à côté".as_bytes(), None, false, "x.fr");
        assert_eq!(guess, UTF_8);
        let latin = WINDOWS_1252.encode("Le café coûte 5 € à côté du marché, déjà très animé.").0;
        assert_eq!(choose(&latin, None, false, "example.fr").0, WINDOWS_1252);
    }

    #[test]
    fn a_character_cut_at_the_end_is_dropped() {
        let bytes = "naïve é".as_bytes();
        assert_eq!(decode(&bytes[..bytes.len() - 1], None, false, "x", true).unwrap(), "naïve ");
    }

    #[test]
    fn bytes_that_are_mostly_not_text_in_the_declared_encoding_are_an_error() {
        let binary: Vec<u8> = (0..400u32).map(|i| (0x80 + i % 64) as u8).collect();
        let error = decode(&binary, Some("utf-8"), false, "x", false).unwrap_err();
        assert!(error.ends_with("are not valid UTF-8 (it is probably not text)"), "{error}");
        // A stray bad byte in a page is replaced, not an error.
        assert_eq!(decode(b"caf\xe9 ok", Some("utf-8"), false, "x", false).unwrap(), "caf\u{FFFD} ok");
    }

    #[test]
    fn top_level_domains_are_passed_only_in_the_form_chardetng_accepts() {
        assert_eq!(tld("www.example.jp"), Some(&b"jp"[..]));
        assert_eq!(tld("127.0.0.1"), None);
        assert_eq!(tld("example.JP"), None);
        assert_eq!(tld("localhost"), Some(&b"localhost"[..]));
    }
}
