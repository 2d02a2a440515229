//! One way to describe a failed connection: the error and its causes on one line ("connect to
//! api.example.com: tcp connect error: Connection refused (os error 111)"), naming the host but
//! never a URL's path, query or credentials, which may hold a secret (a webhook token, a key).
//! Secrets the caller knows (an API key a provider quotes back) are taken out with [`redact`].

use std::error::Error;
use std::fmt;

/// An error and its causes on one line, safe to log, record or show (see the module docs).
/// `Display` renders it; [`error_chain`] is the same as a `String`.
///
/// A `reqwest::Error` is described by what was being done and with which host ("send the
/// request to api.example.com"), not by its own text, which quotes the whole URL; a cause that
/// repeats what is already said is left out; any URL left in the text (a cause quoting one) is cut
/// to its scheme, host and port.
#[derive(Clone, Copy)]
pub struct ErrorChain<'a>(pub &'a (dyn Error + 'static));

impl fmt::Display for ErrorChain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&error_chain(self.0))
    }
}

impl fmt::Debug for ErrorChain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// `error` and its causes on one line (see [`ErrorChain`]).
pub fn error_chain(error: &(dyn Error + 'static)) -> String {
    let mut text = String::new();
    let mut current = Some(error);
    while let Some(layer) = current {
        let said = match layer.downcast_ref::<reqwest::Error>() {
            Some(http) => reqwest_phrase(http),
            None => layer.to_string(),
        };
        let said = said.trim();
        if !said.is_empty() && !text.contains(said) && !is_wrapper(said, layer) {
            if !text.is_empty() {
                text.push_str(": ");
            }
            text.push_str(said);
        }
        current = layer.source();
    }
    without_url_paths(&text)
}

/// Whether a layer only says which step of a request failed, which the reqwest phrase above it
/// already said: hyper's "client error (Connect)", "client error (SendRequest)" and the like.
fn is_wrapper(said: &str, layer: &(dyn Error + 'static)) -> bool {
    layer.source().is_some() && said.starts_with("client error (") && said.ends_with(')')
}

/// What a reqwest error was doing, and with whom: its kind and the host (with the port when the
/// URL names one), never the URL.
fn reqwest_phrase(error: &reqwest::Error) -> String {
    let host = error.url().and_then(|url| {
        let host = url.host_str()?;
        Some(match url.port() {
            Some(port) => format!("{host}:{port}"),
            None => host.to_owned(),
        })
    });
    let (doing, preposition) = if error.is_builder() {
        ("build the request", "to")
    } else if error.is_connect() {
        ("connect", "to")
    } else if error.is_redirect() {
        ("follow a redirect", "from")
    } else if let Some(status) = error.status() {
        return match host {
            Some(host) => format!("HTTP {} from {host}", status.as_u16()),
            None => format!("HTTP {}", status.as_u16()),
        };
    } else if error.is_decode() {
        ("decode the answer", "from")
    } else if error.is_body() {
        ("transfer the body", "with")
    } else if error.is_upgrade() {
        ("upgrade the connection", "to")
    } else {
        ("send the request", "to")
    };
    match host {
        Some(host) => format!("{doing} {preposition} {host}"),
        None => doing.to_owned(),
    }
}

/// `text` with every URL in it cut to its scheme, host and port: the path, query, fragment and any
/// credentials (`user:password@`) are dropped.
fn without_url_paths(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("://") {
        // The scheme: the letters (and `+-.`) just before `://`.
        let scheme_start = rest[..at]
            .char_indices()
            .rev()
            .take_while(|(_, c)| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
            .last()
            .map_or(at, |(i, _)| i);
        out.push_str(&rest[..at + 3]);
        let after = &rest[at + 3..];
        // The URL runs to the first character that cannot be in one unescaped.
        let end = after.find(|c: char| c.is_whitespace() || matches!(c, ')' | '(' | '"' | '\'' | '<' | '>' | '`' | ',' | ';')).unwrap_or(after.len());
        // Punctuation at the end belongs to the sentence ("… /x?k=1: refused").
        let end = after[..end].trim_end_matches(['.', ':', ',', '!', '?']).len();
        let url = &after[..end];
        let authority = &url[..url.find(['/', '?', '#']).unwrap_or(url.len())];
        let host = authority.rsplit_once('@').map_or(authority, |(_, host)| host);
        if scheme_start == at {
            // "://" with no scheme before it: not a URL; keep the text as it is.
            out.push_str(url);
        } else {
            out.push_str(host);
        }
        rest = &after[end..];
    }
    out.push_str(rest);
    out
}

/// `text` with `secret` replaced by `<redacted>` (some providers quote part of a wrong key
/// back). A secret shorter than four characters is not looked for: it would match by chance.
pub fn redact(text: String, secret: Option<&str>) -> String {
    match secret.map(str::trim) {
        Some(secret) if secret.len() >= 4 && text.contains(secret) => text.replace(secret, "<redacted>"),
        _ => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Layer(&'static str, Option<Box<Layer>>);

    impl fmt::Display for Layer {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(self.0)
        }
    }

    impl Error for Layer {
        fn source(&self) -> Option<&(dyn Error + 'static)> {
            self.1.as_deref().map(|e| e as &(dyn Error + 'static))
        }
    }

    fn chain(layers: &[&'static str]) -> Layer {
        layers.iter().rev().fold(None, |inner, text| Some(Layer(text, inner.map(Box::new)))).unwrap()
    }

    #[test]
    fn every_cause_once_on_one_line() {
        assert_eq!(error_chain(&chain(&["a", "b", "c"])), "a: b: c");
        assert_eq!(error_chain(&chain(&["reading failed: broken pipe", "broken pipe"])), "reading failed: broken pipe");
        assert_eq!(error_chain(&chain(&["a", "", "c"])), "a: c");
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "Connection refused");
        assert_eq!(error_chain(&io), "Connection refused");
        assert_eq!(ErrorChain(&chain(&["a", "b"])).to_string(), "a: b");
    }

    #[test]
    fn urls_lose_their_path_query_and_credentials() {
        let cases = [
            ("error for url (https://hooks.example/t/s3cret?token=abc)", "error for url (https://hooks.example)"),
            ("http://user:pass@10.0.0.1:8080/x failed", "http://10.0.0.1:8080 failed"),
            ("to https://[::1]:9/p#frag, then", "to https://[::1]:9, then"),
            ("a https://a.example and http://b.example/q?x=1", "a https://a.example and http://b.example"),
            ("no url here", "no url here"),
            ("odd :// text/with/slashes", "odd :// text/with/slashes"),
            ("ends at://", "ends at://"),
            ("see https://h.example/p?q=1: gone.", "see https://h.example: gone."),
            ("host https://h.example:8443.", "host https://h.example:8443."),
        ];
        for (text, want) in cases {
            assert_eq!(without_url_paths(text), want, "{text}");
        }
        assert_eq!(error_chain(&chain(&["fetching https://x.example/secret?k=1", "refused"])), "fetching https://x.example: refused");
    }

    #[test]
    fn secrets_are_redacted_when_long_enough() {
        assert_eq!(redact("bad key sk-12345".into(), Some("sk-12345")), "bad key <redacted>");
        assert_eq!(redact("bad key sk-12345".into(), Some(" sk-12345 ")), "bad key <redacted>");
        assert_eq!(redact("abc".into(), Some("abc")), "abc", "three characters: not looked for");
        assert_eq!(redact("abcd".into(), Some("abcd")), "<redacted>", "four: redacted");
        assert_eq!(redact("text".into(), None), "text");
    }
}
