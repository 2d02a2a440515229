//! A session's secrets (`sensitive_data`): each value with the sites it may go to
//! ([`SecretScope`], [`DomainPattern`]), and [`secret_forms`], every way a value is written in
//! text (a URL, a form body, JSON, HTML), so that whoever hides values finds them all.

use std::collections::BTreeMap;
use std::fmt;

use percent_encoding::{AsciiSet, CONTROLS, NON_ALPHANUMERIC, utf8_percent_encode};

/// Where a secret may be typed or sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretScope {
    /// Given in the flat form: the session's `allowed_domains`, or any site when it has none.
    Session,
    /// Given under domain patterns: sites matching one of them, and no other.
    Domains(Vec<DomainPattern>),
}

/// One secret: the name the model writes as `<secret>name</secret>`, its value, and where it
/// may go. `Debug` never shows the value.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret {
    /// The placeholder's name.
    pub name: String,
    value: String,
    /// Where it may be typed or sent.
    pub scope: SecretScope,
}

impl Secret {
    /// A secret named `name`.
    pub fn new(name: impl Into<String>, value: impl Into<String>, scope: SecretScope) -> Self {
        Self { name: name.into(), value: value.into(), scope }
    }

    /// The value, for the one place that types it into a page and those that hide it.
    pub fn value(&self) -> &str {
        &self.value
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Secret").field("name", &self.name).field("scope", &self.scope).finish_non_exhaustive()
    }
}

/// Secret values a session may type into pages (`sensitive_data`). They live in memory only,
/// for the session's run: never stored, logged, or shown to the LLM (which sees
/// `<secret>name</secret>` placeholders). A name may come more than once, for different sites.
/// `Debug` shows the names only.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secrets(Vec<Secret>);

impl Secrets {
    /// Flat name → value pairs, each scoped to the session ([`SecretScope::Session`]).
    pub fn new(values: BTreeMap<String, String>) -> Self {
        Self(values.into_iter().map(|(name, value)| Secret::new(name, value, SecretScope::Session)).collect())
    }

    /// These secrets, in this order.
    pub fn from_list(secrets: Vec<Secret>) -> Self {
        Self(secrets)
    }

    /// The names, sorted, each once.
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.0.iter().map(|s| s.name.clone()).collect();
        names.sort();
        names.dedup();
        names
    }

    /// True when there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Every secret (a name given for several sites counts once per site).
    pub fn iter(&self) -> impl Iterator<Item = &Secret> {
        self.0.iter()
    }
}

impl fmt::Debug for Secrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secrets({})", self.names().join(", "))
    }
}

/// Which schemes a [`DomainPattern`] allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Schemes {
    Https,
    Http,
    Both,
}

/// The sites a domain-scoped secret is for, read as browser-use reads a `sensitive_data` key:
/// `[scheme://]host[:port]`, the scheme `https` (the default), `http`, or `http*` for both;
/// `*.` before the host allows its subdomains too; a port is ignored (browser-use ignores it);
/// `example.com` alone is `https://example.com` only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DomainPattern {
    schemes: Schemes,
    host: String,
    subdomains: bool,
}

/// The longest host name DNS allows.
const MAX_HOST_CHARS: usize = 253;

impl DomainPattern {
    /// Reads a pattern, or says what is wrong with it.
    pub fn parse(text: &str) -> Result<Self, String> {
        let lower = text.trim().to_ascii_lowercase();
        let (schemes, rest) = match lower.split_once("://") {
            None => (Schemes::Https, lower.as_str()),
            Some(("https", rest)) => (Schemes::Https, rest),
            Some(("http", rest)) => (Schemes::Http, rest),
            Some(("http*", rest)) => (Schemes::Both, rest),
            Some((other, _)) => return Err(format!("the scheme `{other}` is not allowed: use https, http or http*")),
        };
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        if rest.contains(['/', '?', '#', '@']) {
            return Err("a domain pattern names a site only, without a path, query or user".into());
        }
        let host = match rest.rsplit_once(':') {
            Some((host, port)) if !port.is_empty() && port.chars().all(|c| c.is_ascii_digit()) => host,
            Some(_) => return Err("the port must be a number".into()),
            None => rest,
        };
        let (subdomains, host) = match host.strip_prefix("*.") {
            Some(parent) => (true, parent),
            None => (false, host),
        };
        if host == "*" || host.is_empty() {
            return Err("name the site: a secret for every site goes in the flat form, beside the domains".into());
        }
        if host.contains('*') {
            return Err("the only wildcard is `*.` before a domain (as in *.example.com)".into());
        }
        let good = host.len() <= MAX_HOST_CHARS
            && host.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.'))
            && !host.starts_with('.')
            && !host.ends_with('.')
            && !host.contains("..");
        if !good {
            return Err(format!("`{host}` is not a host name (letters, digits, '-' and '.')"));
        }
        Ok(Self { schemes, host: host.to_owned(), subdomains })
    }

    /// An `allowed_domains` entry as a scope: the domain and its subdomains, over http or https.
    pub fn allowed_domain(domain: &str) -> Self {
        let host = domain.trim().trim_start_matches("*.").trim_end_matches('.').to_ascii_lowercase();
        Self { schemes: Schemes::Both, host, subdomains: true }
    }

    /// Whether a page at `scheme://host` is one of these sites.
    pub fn matches(&self, scheme: &str, host: &str) -> bool {
        let scheme_ok = match self.schemes {
            Schemes::Https => scheme.eq_ignore_ascii_case("https"),
            Schemes::Http => scheme.eq_ignore_ascii_case("http"),
            Schemes::Both => scheme.eq_ignore_ascii_case("https") || scheme.eq_ignore_ascii_case("http"),
        };
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        let host_ok = host == self.host || (self.subdomains && host.ends_with(&format!(".{}", self.host)));
        scheme_ok && host_ok
    }

    /// How specific it is: an exact host before a wildcard, a longer host before a shorter one.
    pub fn specificity(&self) -> (bool, usize) {
        (!self.subdomains, self.host.len())
    }
}

impl fmt::Display for DomainPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = match self.schemes {
            Schemes::Https => "https",
            Schemes::Http => "http",
            Schemes::Both => "http*",
        };
        let wildcard = if self.subdomains { "*." } else { "" };
        write!(f, "{scheme}://{wildcard}{}", self.host)
    }
}

/// RFC 3986's unreserved characters kept (URL builders, `encodeURIComponent` without `!'()*`).
const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');
/// What JavaScript's `encodeURIComponent` keeps.
const JS_COMPONENT: &AsciiSet =
    &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'!').remove(b'~').remove(b'*').remove(b'\'').remove(b'(').remove(b')');
/// What JavaScript's `encodeURI` keeps.
const JS_URI: &AsciiSet = &JS_COMPONENT
    .remove(b';')
    .remove(b',')
    .remove(b'/')
    .remove(b'?')
    .remove(b':')
    .remove(b'@')
    .remove(b'&')
    .remove(b'=')
    .remove(b'+')
    .remove(b'$')
    .remove(b'#');
/// `application/x-www-form-urlencoded` as browsers write a form (space handled as `+`).
const FORM: &AsciiSet = &NON_ALPHANUMERIC.remove(b'*').remove(b'-').remove(b'.').remove(b'_');
/// What a browser encodes in a URL's query it was given.
const QUERY: &AsciiSet = &CONTROLS.add(b' ').add(b'"').add(b'#').add(b'<').add(b'>').add(b'\'');
/// What a browser encodes in a URL's path it was given.
const PATH: &AsciiSet = &CONTROLS.add(b' ').add(b'"').add(b'#').add(b'<').add(b'>').add(b'?').add(b'`').add(b'{').add(b'}');

/// Every form `value` takes in the text agentd handles, the value itself first: with its white
/// space collapsed (as page text shows it); percent-encoded as URL builders, browsers' forms and
/// address bars and JavaScript write it (upper- and lower-case hex, a space as `%20` or `+`);
/// JSON-escaped (as serde_json writes a string, and ASCII-only with `\uXXXX`); HTML-escaped
/// (`&amp;` `&lt;` `&gt;` `&quot;`, `'` as `&#39;` or `&#x27;`). Each form once; none empty.
/// The one list every place that hides secrets shares (the browser agent's vault, the tools'
/// masker).
pub fn secret_forms(value: &str) -> Vec<String> {
    let mut forms: Vec<String> = Vec::new();
    let mut add = |form: String| {
        if !form.is_empty() && !forms.contains(&form) {
            forms.push(form);
        }
    };
    add(value.to_owned());
    add(value.split_whitespace().collect::<Vec<_>>().join(" "));
    for set in [COMPONENT, JS_COMPONENT, JS_URI, FORM, QUERY, PATH] {
        let upper = utf8_percent_encode(value, set).to_string();
        let plus = upper.replace("%20", "+");
        let (lower, lower_plus) = (lower_hex(&upper), lower_hex(&plus));
        add(upper);
        add(plus);
        add(lower);
        add(lower_plus);
    }
    let json = serde_json::to_string(value).unwrap_or_default();
    let json = json.get(1..json.len().saturating_sub(1)).unwrap_or_default().to_owned();
    add(ascii_json(&json, false));
    add(ascii_json(&json, true));
    add(json.replace('/', "\\/"));
    add(json);
    let html = value.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;");
    add(html.replace('\'', "&#39;"));
    add(html.replace('\'', "&#x27;"));
    forms
}

/// Replaces every form ([`secret_forms`]) of some values with a replacement each, in one pass
/// over a text, longest form first: a replacement written is never searched again, so a short
/// value cannot match inside one. The one replacer behind the browser agent's vault and the
/// tools' masker. Empty values replace nothing; matching is exact.
#[derive(Debug, Clone, Default)]
pub struct SecretReplacer {
    /// (form, replacement), longest form first.
    needles: Vec<(String, String)>,
    /// Indices into `needles` by their first byte.
    by_first_byte: Vec<Vec<usize>>,
}

impl SecretReplacer {
    /// A replacer of every form of each value by its replacement.
    pub fn new<'a>(pairs: impl IntoIterator<Item = (&'a str, String)>) -> Self {
        let mut needles: Vec<(String, String)> = Vec::new();
        for (value, replacement) in pairs {
            for form in secret_forms(value) {
                if !needles.iter().any(|(n, _)| *n == form) {
                    needles.push((form, replacement.clone()));
                }
            }
        }
        // Ties by text, for a stable order.
        needles.sort_by(|(a, _), (b, _)| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
        let mut by_first_byte = vec![Vec::new(); 256];
        for (i, (needle, _)) in needles.iter().enumerate() {
            by_first_byte[usize::from(needle.as_bytes()[0])].push(i);
        }
        Self { needles, by_first_byte }
    }

    /// Whether nothing is replaced.
    pub fn is_empty(&self) -> bool {
        self.needles.is_empty()
    }

    /// Every form looked for.
    pub fn forms(&self) -> impl Iterator<Item = &str> {
        self.needles.iter().map(|(form, _)| form.as_str())
    }

    /// `text` with every form replaced.
    pub fn replace(&self, text: &str) -> String {
        if self.needles.is_empty() {
            return text.to_owned();
        }
        let bytes = text.as_bytes();
        let mut out = String::with_capacity(text.len());
        let (mut copied, mut at) = (0, 0);
        while at < bytes.len() {
            let found = self.by_first_byte[usize::from(bytes[at])]
                .iter()
                .map(|&i| &self.needles[i])
                .find(|(needle, _)| bytes[at..].starts_with(needle.as_bytes()));
            match found {
                // A form is valid UTF-8, so it only matches where a character starts.
                Some((needle, replacement)) => {
                    out.push_str(&text[copied..at]);
                    out.push_str(replacement);
                    at += needle.len();
                    copied = at;
                }
                None => at += 1,
            }
        }
        out.push_str(&text[copied..]);
        out
    }
}

/// `encoded` with every `%XX` escape in lower-case hex.
fn lower_hex(encoded: &str) -> String {
    let mut out = String::with_capacity(encoded.len());
    let mut chars = encoded.chars();
    while let Some(c) = chars.next() {
        out.push(c);
        if c == '%' {
            out.extend(chars.by_ref().take(2).map(|h| h.to_ascii_lowercase()));
        }
    }
    out
}

/// A JSON string body (no quotes) with every non-ASCII character as `\uXXXX` (UTF-16).
fn ascii_json(json: &str, upper: bool) -> String {
    let mut out = String::with_capacity(json.len());
    for c in json.chars() {
        if c.is_ascii() {
            out.push(c);
            continue;
        }
        let mut units = [0u16; 2];
        for unit in c.encode_utf16(&mut units) {
            if upper {
                out.push_str(&format!("\\u{unit:04X}"));
            } else {
                out.push_str(&format!("\\u{unit:04x}"));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_print_their_names_only() {
        let secrets = Secrets::new([("pin".to_owned(), "9876".to_owned())].into());
        assert_eq!(format!("{secrets:?}"), "Secrets(pin)");
        let scoped = Secret::new("pw", "9876", SecretScope::Domains(vec![DomainPattern::parse("example.com").unwrap()]));
        assert!(!format!("{scoped:?}").contains("9876"), "{scoped:?}");
        let twice = Secrets::from_list(vec![scoped.clone(), Secret::new("pw", "1", SecretScope::Session), Secret::new("a", "2", SecretScope::Session)]);
        assert_eq!(twice.names(), ["a", "pw"]);
    }

    #[test]
    fn domain_patterns_read_as_browser_use_reads_them() {
        let cases = [
            // (pattern, url scheme, host, matches)
            ("example.com", "https", "example.com", true),
            ("example.com", "http", "example.com", false),
            ("example.com", "https", "www.example.com", false),
            ("https://*.example.com", "https", "example.com", true),
            ("https://*.example.com", "https", "a.b.example.com", true),
            ("https://*.example.com", "https", "badexample.com", false),
            ("https://*.example.com", "https", "example.com.evil.net", false),
            ("http://127.0.0.1:8080", "http", "127.0.0.1", true),
            ("http*://Test.Example.com/", "http", "test.example.com", true),
            ("http*://test.example.com", "https", "TEST.example.com.", true),
            ("http*://test.example.com", "ftp", "test.example.com", false),
        ];
        for (pattern, scheme, host, expected) in cases {
            let parsed = DomainPattern::parse(pattern).unwrap_or_else(|e| panic!("{pattern}: {e}"));
            assert_eq!(parsed.matches(scheme, host), expected, "{pattern} vs {scheme}://{host}");
        }
        assert_eq!(DomainPattern::parse("HTTPS://*.Example.com").unwrap().to_string(), "https://*.example.com");
        assert_eq!(DomainPattern::parse("example.com").unwrap().to_string(), "https://example.com");
        for bad in ["ftp://example.com", "*", "https://*", "*google.com", "example.*", "a.*.com", "https://example.com/login", "", "ex ample.com", "example.com:port", "a..b", "user@example.com"] {
            assert!(DomainPattern::parse(bad).is_err(), "{bad} was accepted");
        }
        let allowed = DomainPattern::allowed_domain("*.Example.com");
        assert!(allowed.matches("http", "shop.example.com") && allowed.matches("https", "example.com"));
        assert!(!allowed.matches("https", "example.org"));
        assert!(DomainPattern::parse("a.example.com").unwrap().specificity() > DomainPattern::parse("*.example.com").unwrap().specificity());
    }

    #[test]
    fn every_form_of_a_value_is_listed() {
        let forms = secret_forms("Zürich päss/&=1 ✓");
        for expected in [
            "Zürich päss/&=1 ✓",
            // A form posted or sent by GET (application/x-www-form-urlencoded).
            "Z%C3%BCrich+p%C3%A4ss%2F%26%3D1+%E2%9C%93",
            "Z%c3%bcrich+p%c3%a4ss%2f%26%3d1+%e2%9c%93",
            // A URL builder; a browser's address bar (query).
            "Z%C3%BCrich%20p%C3%A4ss%2F%26%3D1%20%E2%9C%93",
            "Z%C3%BCrich%20p%C3%A4ss/&=1%20%E2%9C%93",
            "Z%c3%bcrich%20p%c3%a4ss/&=1%20%e2%9c%93",
            // JSON as serde_json writes it, and ASCII-only.
            r"Z\u00fcrich p\u00e4ss/&=1 \u2713",
            r"Z\u00FCrich p\u00E4ss/&=1 \u2713",
            // HTML.
            "Zürich päss/&amp;=1 ✓",
        ] {
            assert!(forms.iter().any(|f| f == expected), "{expected} missing from {forms:#?}");
        }
        assert_eq!(secret_forms("tok CANARY/x&y=1").iter().filter(|f| *f == "tok+CANARY%2Fx%26y%3D1").count(), 1);
        let quoted = secret_forms("a\"b'c<d>");
        for expected in [r#"a\"b'c<d>"#, "a&quot;b&#39;c&lt;d&gt;", "a&quot;b&#x27;c&lt;d&gt;"] {
            assert!(quoted.iter().any(|f| f == expected), "{expected} missing from {quoted:#?}");
        }
        assert_eq!(secret_forms("a  b\n c")[..2], ["a  b\n c".to_owned(), "a b c".to_owned()]);
        assert_eq!(secret_forms("plain-value_1"), ["plain-value_1"], "a value with nothing to encode has one form");
        assert!(secret_forms("").is_empty());
        assert_eq!(secret_forms("😀"), ["😀", "%F0%9F%98%80", "%f0%9f%98%80", r"\ud83d\ude00", r"\uD83D\uDE00"].map(String::from));
    }
}
