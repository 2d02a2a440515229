//! A session's secrets (`sensitive_data`) inside the agent: the model writes
//! `<secret>name</secret>` and the value is put in only on the way into a page that the secret
//! is for; every text on its way out (prompts, events, errors, the answer) has the values, in
//! every form they take ([`agentd_domain::secret_forms`]), replaced by their placeholders again.
//!
//! Where a secret may go is its scope: the domain patterns it was given under, or — given in
//! the flat form — the session's `allowed_domains`, or any site when there are none. A secret
//! for any site is typed wherever the model asks, but never put into a URL, and the vault
//! remembers the hosts it was typed on: those are the only ones a request may carry it to
//! (the vault is the session's [`OutgoingCheck`]: the browser asks it about every document
//! request, a form post or a redirect, before it leaves).

use std::collections::BTreeSet;
use std::sync::Mutex;

use agentd_browser::{Action, OutgoingCheck};
use agentd_domain::{DomainPattern, SecretReplacer, SecretScope, Secrets, secret_forms};
use serde_json::Value;

const OPEN: &str = "<secret>";
const CLOSE: &str = "</secret>";

/// Where one secret may go.
#[derive(Debug, Clone)]
enum Scope {
    /// Typed anywhere, never put in a URL; sent only to the hosts it was typed on.
    AnyHost,
    /// Typed into and sent to these sites only.
    Sites(Vec<DomainPattern>),
}

impl Scope {
    fn allows(&self, scheme: &str, host: &str) -> bool {
        match self {
            Scope::AnyHost => true,
            Scope::Sites(patterns) => patterns.iter().any(|p| p.matches(scheme, host)),
        }
    }

    /// Its most specific pattern's specificity (any host comes last).
    fn specificity(&self) -> Option<(bool, usize)> {
        match self {
            Scope::AnyHost => None,
            Scope::Sites(patterns) => patterns.iter().map(DomainPattern::specificity).max(),
        }
    }

    fn describe(&self) -> String {
        match self {
            Scope::AnyHost => "any site, never in a URL".to_owned(),
            Scope::Sites(patterns) => patterns.iter().map(ToString::to_string).collect::<Vec<_>>().join(", "),
        }
    }
}

struct Entry {
    name: String,
    value: String,
    scope: Scope,
}

/// A page (or request) a text goes to: its scheme and host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Site {
    scheme: String,
    host: String,
}

impl Site {
    /// The site of a URL or an origin (`https://example.com:8443`); None when it names none
    /// (`about:blank`, an opaque origin).
    pub(crate) fn of(url: &str) -> Option<Site> {
        let parsed = url::Url::parse(url).ok()?;
        let host = parsed.host_str()?.trim_end_matches('.').to_ascii_lowercase();
        (!host.is_empty()).then(|| Site { scheme: parsed.scheme().to_owned(), host })
    }
}

/// An action with its placeholders replaced by values, and the secrets it types where.
pub(crate) struct Revealed {
    /// What goes to the page.
    pub(crate) action: Action,
    /// The secrets typed (entry indices) and the host they are typed on.
    typed: Vec<usize>,
    host: Option<String>,
}

impl Revealed {
    /// Whether it types a secret into the page.
    pub(crate) fn types_secrets(&self) -> bool {
        !self.typed.is_empty()
    }
}

/// The session's secret values, with the two directions of substitution and the scope checks.
pub struct Vault {
    entries: Vec<Entry>,
    /// Every form of every value → its placeholder, for redaction in one pass.
    replacer: SecretReplacer,
    /// For each entry: the hosts it was typed on (what a request may carry it to, for
    /// [`Scope::AnyHost`] entries).
    typed_on: Mutex<Vec<BTreeSet<String>>>,
}

fn placeholder(name: &str) -> String {
    format!("{OPEN}{name}{CLOSE}")
}

impl Vault {
    /// A vault over `secrets`; flat ones are scoped to `allowed_domains` (any site when empty).
    pub fn new(secrets: &Secrets, allowed_domains: &[String]) -> Self {
        let session_scope = if allowed_domains.is_empty() {
            Scope::AnyHost
        } else {
            Scope::Sites(allowed_domains.iter().map(|d| DomainPattern::allowed_domain(d)).collect())
        };
        let entries: Vec<Entry> = secrets
            .iter()
            .map(|s| Entry {
                name: s.name.clone(),
                value: s.value().to_owned(),
                scope: match &s.scope {
                    SecretScope::Session => session_scope.clone(),
                    SecretScope::Domains(patterns) => Scope::Sites(patterns.clone()),
                },
            })
            .collect();
        let replacer = SecretReplacer::new(entries.iter().map(|e| (e.value.as_str(), placeholder(&e.name))));
        let typed_on = Mutex::new(vec![BTreeSet::new(); entries.len()]);
        Self { entries, replacer, typed_on }
    }

    /// Whether the session has no secrets.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The line telling the model which secrets it can type, and where.
    pub fn prompt_line(&self) -> Option<String> {
        if self.entries.is_empty() {
            return None;
        }
        let mut names: Vec<&str> = self.entries.iter().map(|e| e.name.as_str()).collect();
        names.sort();
        names.dedup();
        let listed: Vec<String> = names
            .iter()
            .map(|name| {
                let scopes: Vec<String> = self.entries.iter().filter(|e| e.name == *name).map(|e| e.scope.describe()).collect();
                format!("{} (on {})", placeholder(name), scopes.join("; "))
            })
            .collect();
        Some(format!(
            "Secrets you can type, only on their sites (their values are hidden from you; write the placeholder as the text): {}",
            listed.join(", ")
        ))
    }

    /// Every form of every value, for the browser to hide in screenshots.
    pub fn screen_values(&self) -> Vec<String> {
        self.replacer.forms().map(str::to_owned).collect()
    }

    /// `text` with every secret value replaced by its placeholder: in every form
    /// [`secret_forms`] lists (as written, white space collapsed, percent-, form-, JSON- or
    /// HTML-encoded), or cut short with an ellipsis (the page state shows long field values
    /// that way).
    pub fn redact(&self, text: &str) -> String {
        if self.entries.is_empty() {
            return text.to_owned();
        }
        // One pass, longest form first: a placeholder written is never searched again.
        let mut out = self.replacer.replace(text);
        for entry in &self.entries {
            let collapsed = entry.value.split_whitespace().collect::<Vec<_>>().join(" ");
            out = redact_cut(&out, &collapsed, &placeholder(&entry.name));
        }
        out
    }

    /// Redacts every string in `value`, keys included.
    pub fn redact_json(&self, value: &mut Value) {
        if self.entries.is_empty() {
            return;
        }
        match value {
            Value::String(text) => *text = self.redact(text),
            Value::Array(items) => items.iter_mut().for_each(|v| self.redact_json(v)),
            Value::Object(map) => {
                let entries = std::mem::take(map);
                for (key, mut item) in entries {
                    self.redact_json(&mut item);
                    map.insert(self.redact(&key), item);
                }
            }
            _ => {}
        }
    }

    /// Whether `action` types text (into an element, or whatever has focus) that holds a
    /// placeholder: then the site of the document it types into must be known to reveal it.
    pub(crate) fn types_a_secret(action: &Action) -> bool {
        match action {
            Action::Type { text, .. } | Action::TypeText { text } => text.contains(OPEN),
            Action::Select { option, .. } => option.contains(OPEN),
            Action::PressKeys { keys } => keys.iter().any(|k| k.contains(OPEN)),
            _ => false,
        }
    }

    /// The action with its placeholders revealed, if every secret in it may go where it would
    /// go: text typed into a document of `typed_into` (its URL or origin; what the browser
    /// says of the element or focus the action types into), or a URL opened (its own host).
    /// Otherwise a message for the model naming the placeholder and the site, never a value;
    /// nothing is revealed then.
    pub(crate) fn reveal_action(&self, action: &Action, typed_into: Option<&str>) -> Result<Revealed, String> {
        let site = typed_into.and_then(Site::of);
        let mut typed = Vec::new();
        let mut reveal_typed = |text: &str| -> Result<String, String> {
            self.reveal(text, |name| {
                let Some(site) = &site else {
                    return Err(format!("{} cannot be typed here: the page's site could not be told", placeholder(name)));
                };
                let entry = self.choose(name, site)?;
                typed.push(entry);
                Ok(entry)
            })
        };
        let mut revealed = action.clone();
        match &mut revealed {
            Action::Type { text, .. } | Action::TypeText { text } => *text = reveal_typed(text)?,
            Action::Select { option, .. } => *option = reveal_typed(option)?,
            Action::PressKeys { keys } => {
                for key in keys.iter_mut() {
                    *key = reveal_typed(key)?;
                }
            }
            Action::Navigate { url } | Action::OpenTab { url: Some(url) } => *url = self.reveal_url(url)?,
            _ => {}
        }
        let host = site.map(|s| s.host);
        Ok(Revealed { action: revealed, typed, host })
    }

    /// Remembers where the secrets of `revealed` were typed: a secret for any site may then be
    /// sent to that host (a form it was typed into being submitted there).
    pub(crate) fn note_typed(&self, revealed: &Revealed) {
        let Some(host) = &revealed.host else { return };
        let mut typed_on = self.typed_on.lock().unwrap_or_else(|e| e.into_inner());
        for &entry in &revealed.typed {
            typed_on[entry].insert(host.clone());
        }
    }

    /// The entry named `name` meant for `site` (the most specific one when several are), or
    /// why there is none.
    fn choose(&self, name: &str, site: &Site) -> Result<usize, String> {
        let named: Vec<usize> = (0..self.entries.len()).filter(|&i| self.entries[i].name == name).collect();
        if named.is_empty() {
            return Err(format!("there is no secret named `{name}`"));
        }
        named
            .iter()
            .copied()
            .filter(|&i| self.entries[i].scope.allows(&site.scheme, &site.host))
            .max_by_key(|&i| self.entries[i].scope.specificity())
            .ok_or_else(|| {
                let scopes: Vec<String> = named.iter().map(|&i| self.entries[i].scope.describe()).collect();
                format!("{} is only for {}, not for {} (this page's site); it was not typed", placeholder(name), scopes.join("; "), site.host)
            })
    }

    /// `url` with its placeholders revealed, when each secret in it is for the URL's own site;
    /// a secret for any site never goes into a URL.
    fn reveal_url(&self, url: &str) -> Result<String, String> {
        if !url.contains(OPEN) {
            return Ok(url.to_owned());
        }
        let mut used = Vec::new();
        let revealed = self.reveal(url, |name| {
            let named: Vec<usize> = (0..self.entries.len()).filter(|&i| self.entries[i].name == name).collect();
            if named.is_empty() {
                return Err(format!("there is no secret named `{name}`"));
            }
            used.push(name.to_owned());
            // The entry is chosen once the URL's site is known; any of them reads the same
            // for now, and a mismatch is caught below.
            Ok(named[0])
        })?;
        let site = Site::of(&revealed);
        for name in used {
            let Some(site) = &site else {
                return Err(format!("{} cannot go into this URL: it names no site", placeholder(&name)));
            };
            let named: Vec<&Entry> = self.entries.iter().filter(|e| e.name == name).collect();
            if named.iter().all(|e| matches!(e.scope, Scope::AnyHost)) {
                return Err(format!("{} may be typed into pages but never put into a URL", placeholder(&name)));
            }
            self.choose(&name, site).map_err(|_| {
                let scopes: Vec<String> = named.iter().filter(|e| !matches!(e.scope, Scope::AnyHost)).map(|e| e.scope.describe()).collect();
                format!("{} is only for {}, not for {}; the URL was not opened", placeholder(&name), scopes.join("; "), site.host)
            })?;
        }
        // Reveal again with the entries meant for the URL's site (names given per site may
        // differ in value).
        match &site {
            Some(site) => self.reveal(url, |name| self.choose(name, site)),
            None => Ok(revealed),
        }
    }

    /// `text` with each placeholder replaced by the value of the entry `pick` chooses for its
    /// name; an unfinished placeholder stays as written.
    fn reveal(&self, text: &str, mut pick: impl FnMut(&str) -> Result<usize, String>) -> Result<String, String> {
        let mut out = String::with_capacity(text.len());
        let mut rest = text;
        while let Some(start) = rest.find(OPEN) {
            out.push_str(&rest[..start]);
            let after = &rest[start + OPEN.len()..];
            let Some(end) = after.find(CLOSE) else {
                out.push_str(&rest[start..]);
                return Ok(out);
            };
            let entry = pick(after[..end].trim())?;
            out.push_str(&self.entries[entry].value);
            rest = &after[end + CLOSE.len()..];
        }
        out.push_str(rest);
        Ok(out)
    }
}

impl OutgoingCheck for Vault {
    /// Refuses an outgoing request — a page's document request: a form submitted by POST or
    /// GET, a redirect — to `host` that carries a secret (in any form, in `url` or `body`) not
    /// meant for that site: one scoped elsewhere, or one for any site that was never typed on
    /// `host`. The message names the placeholder and the host, never the value.
    fn check_outgoing(&self, host: &str, url: &str, body: Option<&[u8]>) -> Result<(), String> {
        if self.entries.is_empty() {
            return Ok(());
        }
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        let scheme = url::Url::parse(url).map(|u| u.scheme().to_owned()).unwrap_or_default();
        let mut texts = vec![url.to_owned()];
        if let Some(body) = body {
            texts.push(String::from_utf8_lossy(body).into_owned());
        }
        // Whatever encoding a page chose, decoding once more brings the value back.
        let decoded: Vec<String> = texts.iter().flat_map(|t| [percent_decoded(t, false), percent_decoded(t, true)]).collect();
        texts.extend(decoded);
        let typed_on = self.typed_on.lock().unwrap_or_else(|e| e.into_inner());
        for (i, entry) in self.entries.iter().enumerate() {
            let allowed = match &entry.scope {
                Scope::AnyHost => typed_on[i].contains(&host),
                scope => scope.allows(&scheme, &host),
            };
            if allowed {
                continue;
            }
            let forms = secret_forms(&entry.value);
            if texts.iter().any(|text| forms.iter().any(|form| text.contains(form.as_str()))) {
                // Another entry of the same name may be meant for this host with this value.
                let same_value_allowed = self.entries.iter().enumerate().any(|(j, other)| {
                    other.value == entry.value
                        && match &other.scope {
                            Scope::AnyHost => typed_on[j].contains(&host),
                            scope => scope.allows(&scheme, &host),
                        }
                });
                if !same_value_allowed {
                    return Err(format!("a request to {host} would carry {}, which is not for that site", placeholder(&entry.name)));
                }
            }
        }
        Ok(())
    }
}

/// `text` with its `%XX` escapes decoded (and `+` read as a space when `plus`).
fn percent_decoded(text: &str, plus: bool) -> String {
    let spaced;
    let text = if plus {
        spaced = text.replace('+', " ");
        spaced.as_str()
    } else {
        text
    };
    percent_encoding::percent_decode_str(text).decode_utf8_lossy().into_owned()
}

/// Replaces `value` cut short (a prefix of at least [`MIN_CUT`] characters, or all of a
/// shorter value's, followed by `…`) with `placeholder`.
fn redact_cut(text: &str, value: &str, placeholder: &str) -> String {
    const MIN_CUT: usize = 8;
    if !text.contains('…') {
        return text.to_owned();
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('…') {
        let before = &rest[..at];
        let longest = value
            .char_indices()
            .map(|(i, c)| i + c.len_utf8())
            .filter(|&end| value[..end].chars().count() >= MIN_CUT.min(value.chars().count()))
            .filter(|&end| before.ends_with(&value[..end]))
            .max();
        match longest {
            Some(end) => {
                out.push_str(&before[..before.len() - end]);
                out.push_str(placeholder);
            }
            None => {
                out.push_str(before);
                out.push('…');
            }
        }
        rest = &rest[at + '…'.len_utf8()..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use agentd_domain::Secret;
    use serde_json::json;
    use std::collections::BTreeMap;

    fn flat(pairs: &[(&str, &str)]) -> Secrets {
        Secrets::new(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<BTreeMap<_, _>>())
    }

    fn vault() -> Vault {
        Vault::new(&flat(&[("pw", "hunter2"), ("long", "hunter2-extra")]), &[])
    }

    fn scoped(name: &str, value: &str, pattern: &str) -> Secret {
        Secret::new(name, value, SecretScope::Domains(vec![DomainPattern::parse(pattern).unwrap()]))
    }

    fn typed(vault: &Vault, text: &str, into: &str) -> Result<String, String> {
        let action = Action::Type { index: 1, text: text.into(), append: false, enter: false };
        match vault.reveal_action(&action, Some(into))?.action {
            Action::Type { text, .. } => Ok(text),
            other => panic!("{other:?}"),
        }
    }

    fn opened(vault: &Vault, url: &str) -> Result<String, String> {
        match vault.reveal_action(&Action::Navigate { url: url.into() }, None)?.action {
            Action::Navigate { url } => Ok(url),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn values_go_in_only_towards_the_page_and_never_come_back_out() {
        let v = vault();
        assert_eq!(typed(&v, "x <secret>pw</secret> y", "https://example.com").unwrap(), "x hunter2 y");
        assert!(typed(&v, "<secret>nope</secret>", "https://example.com").unwrap_err().contains("nope"));
        assert_eq!(v.redact("typed hunter2-extra and hunter2"), "typed <secret>long</secret> and <secret>pw</secret>");
        let mut event = json!({"description": "typed hunter2", "nested": ["hunter2"], "hunter2": 1});
        v.redact_json(&mut event);
        assert!(!event.to_string().contains("hunter2\""), "{event}");
        assert!(!event.to_string().contains(" hunter2"), "{event}");
        assert!(v.prompt_line().unwrap().contains("<secret>pw</secret> (on any site, never in a URL)"), "{:?}", v.prompt_line());
        assert!(Vault::new(&Secrets::default(), &[]).prompt_line().is_none());
        // As the page state shows a long value: white space collapsed, cut with an ellipsis.
        let long = Vault::new(&flat(&[("key", "abcd  efgh ijkl mnop qrst")]), &[]);
        assert_eq!(long.redact("value=\"abcd efgh ijk…\""), "value=\"<secret>key</secret>\"");
        assert_eq!(long.redact("abcd efgh ijkl mnop qrst"), "<secret>key</secret>");
        assert_eq!(long.redact("ab… other…"), "ab… other…", "short cuts are not taken for the secret");
    }

    #[test]
    fn every_encoded_form_is_redacted() {
        let v = Vault::new(&flat(&[("tok", "tok CANARY/x&y=1"), ("city", "Zürich päss/&=1 ✓")]), &[]);
        let cases = [
            ("http://a/sink?q=tok+CANARY%2Fx%26y%3D1&z=2", "http://a/sink?q=<secret>tok</secret>&z=2"),
            ("q=tok%20CANARY%2fx%26y%3d1", "q=<secret>tok</secret>"),
            ("http://a/?c=Z%C3%BCrich%20p%C3%A4ss/&=1%20%E2%9C%93", "http://a/?c=<secret>city</secret>"),
            ("c=Z%c3%bcrich+p%c3%a4ss%2f%26%3d1+%e2%9c%93", "c=<secret>city</secret>"),
            (r#"{"c":"Z\u00fcrich p\u00e4ss/&=1 \u2713"}"#, r#"{"c":"<secret>city</secret>"}"#),
            ("<p>Zürich päss/&amp;=1 ✓</p>", "<p><secret>city</secret></p>"),
        ];
        for (text, expected) in cases {
            assert_eq!(v.redact(text), expected, "{text}");
        }
        // A short value is never found inside a placeholder written for another.
        let short = Vault::new(&flat(&[("s", "secret"), ("x", "xsecretx")]), &[]);
        assert_eq!(short.redact("xsecretx secret"), "<secret>x</secret> <secret>s</secret>");
    }

    #[test]
    fn a_secret_is_typed_only_on_its_sites() {
        let secrets = Secrets::from_list(vec![
            scoped("pw", "bank-pass", "https://*.bank.example"),
            scoped("pw", "shop-pass", "http*://shop.example"),
            Secret::new("note", "any-note", SecretScope::Session),
        ]);
        let v = Vault::new(&secrets, &[]);
        assert_eq!(typed(&v, "<secret>pw</secret>", "https://login.bank.example").unwrap(), "bank-pass");
        assert_eq!(typed(&v, "<secret>pw</secret>", "http://shop.example:8080").unwrap(), "shop-pass", "the name's value for that site");
        let refused = typed(&v, "<secret>pw</secret>", "https://evil.example").unwrap_err();
        assert!(refused.contains("<secret>pw</secret>") && refused.contains("evil.example"), "{refused}");
        assert!(!refused.contains("pass"), "{refused}");
        assert!(typed(&v, "<secret>pw</secret>", "http://login.bank.example").is_err(), "https only by default");
        assert!(typed(&v, "<secret>pw</secret>", "null").is_err(), "an opaque origin is no site");
        assert_eq!(typed(&v, "<secret>note</secret>", "https://anywhere.example").unwrap(), "any-note");
        // Flat secrets follow the allowed domains when there are some.
        let narrow = Vault::new(&flat(&[("pin", "1234")]), &["example.com".to_owned()]);
        assert_eq!(typed(&narrow, "<secret>pin</secret>", "http://www.example.com").unwrap(), "1234");
        assert!(typed(&narrow, "<secret>pin</secret>", "https://example.org").is_err());
        let line = v.prompt_line().unwrap();
        assert!(line.contains("<secret>pw</secret> (on https://*.bank.example; http*://shop.example)"), "{line}");
        // Typing by focus and selecting are judged the same way; text without placeholders is untouched.
        assert!(Vault::types_a_secret(&Action::TypeText { text: "<secret>pw</secret>\n".into() }));
        assert!(!Vault::types_a_secret(&Action::TypeText { text: "hello".into() }));
        assert!(v.reveal_action(&Action::TypeText { text: "<secret>pw</secret>".into() }, Some("https://evil.example")).is_err());
        assert!(v.reveal_action(&Action::Select { index: 2, option: "<secret>pw</secret>".into() }, None).is_err());
        assert!(v.reveal_action(&Action::Type { index: 1, text: "plain".into(), append: false, enter: false }, None).is_ok());
    }

    #[test]
    fn a_secret_goes_into_a_url_only_of_its_own_site() {
        let secrets = Secrets::from_list(vec![scoped("tok", "t0k", "https://api.example"), Secret::new("note", "any-note", SecretScope::Session)]);
        let v = Vault::new(&secrets, &[]);
        assert_eq!(opened(&v, "https://api.example/x?t=<secret>tok</secret>").unwrap(), "https://api.example/x?t=t0k");
        let elsewhere = opened(&v, "http://127.0.0.1:9/sink?c=<secret>tok</secret>").unwrap_err();
        assert!(elsewhere.contains("<secret>tok</secret>") && elsewhere.contains("127.0.0.1") && !elsewhere.contains("t0k"), "{elsewhere}");
        // The value as the host itself is outside its site too.
        assert!(opened(&v, "https://<secret>tok</secret>.evil.example/").is_err());
        let any = opened(&v, "https://api.example/?n=<secret>note</secret>").unwrap_err();
        assert!(any.contains("never put into a URL"), "{any}");
        let tab = v.reveal_action(&Action::OpenTab { url: Some("http://127.0.0.1:9/?c=<secret>note</secret>".into()) }, None);
        assert!(tab.is_err());
        assert_eq!(opened(&v, "https://other.example/plain").unwrap(), "https://other.example/plain");
    }

    #[test]
    fn outgoing_requests_carry_a_secret_only_to_its_sites() {
        let secrets = Secrets::from_list(vec![
            scoped("pw", "Zürich päss/&=1 ✓", "http://127.0.0.1"),
            Secret::new("note", "tok CANARY/x&y=1", SecretScope::Session),
        ]);
        let v = Vault::new(&secrets, &[]);
        let form = b"user=a&pw=Z%C3%BCrich+p%C3%A4ss%2F%26%3D1+%E2%9C%93";
        assert!(v.check_outgoing("127.0.0.1", "http://127.0.0.1:8080/login", Some(form)).is_ok());
        let refused = v.check_outgoing("localhost", "http://localhost:8080/login", Some(form)).unwrap_err();
        assert!(refused.contains("<secret>pw</secret>") && refused.contains("localhost") && !refused.contains("päss"), "{refused}");
        assert!(v.check_outgoing("127.0.0.1", "https://127.0.0.1/login", Some(form)).is_err(), "the pattern says http");
        // A redirect carrying it in its URL, in a case and encoding of its own.
        assert!(v.check_outgoing("evil.example", "http://evil.example/?c=Z%c3%bcrich%20p%c3%a4ss%2F%26%3D1%20%E2%9C%93", None).is_err());
        assert!(v.check_outgoing("evil.example", "http://evil.example/?c=nothing", Some(b"{\"a\":1}")).is_ok());
        // A secret for any site goes only where it was typed.
        let json_body = br#"{"note":"tok CANARY/x&y=1"}"#;
        assert!(v.check_outgoing("shop.example", "https://shop.example/save", Some(json_body)).is_err(), "never typed anywhere yet");
        let action = Action::Type { index: 1, text: "<secret>note</secret>".into(), append: false, enter: true };
        let revealed = v.reveal_action(&action, Some("https://Shop.example")).unwrap();
        v.note_typed(&revealed);
        assert!(v.check_outgoing("shop.example", "https://shop.example/save?q=tok+CANARY%2Fx%26y%3D1", None).is_ok());
        assert!(v.check_outgoing("shop.example", "https://shop.example/save", Some(json_body)).is_ok());
        let elsewhere = v.check_outgoing("evil.example", "https://evil.example/?q=tok+CANARY%2Fx%26y%3D1", None).unwrap_err();
        assert!(elsewhere.contains("<secret>note</secret>") && !elsewhere.contains("CANARY"), "{elsewhere}");
        assert!(Vault::new(&Secrets::default(), &[]).check_outgoing("x", "http://x/?a=b", None).is_ok());
    }

    #[test]
    fn screen_values_hold_every_form() {
        let v = Vault::new(&flat(&[("city", "Zürich päss")]), &[]);
        let values = v.screen_values();
        assert!(values.contains(&"Zürich päss".to_owned()) && values.contains(&"Z%C3%BCrich%20p%C3%A4ss".to_owned()), "{values:?}");
    }
}
