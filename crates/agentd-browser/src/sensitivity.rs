//! Which actions need a person's confirmation before they run, judged from the page *before*
//! acting: submitting a form that holds a password or payment field, opening a URL outside the
//! session's allowed domains (a link, or navigate), and starting a download.

use serde::Deserialize;

use crate::act::Action;
use crate::scope::{Scope, scope_of};
use crate::session::SessionBrowser;
use crate::BrowserError;

/// A reason to ask before acting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sensitive {
    /// A short code: `sensitive_form`, `domain_not_allowed` or `download`.
    pub code: &'static str,
    /// A sentence for the person asked.
    pub message: String,
    /// For `domain_not_allowed`: the host a confirmation lets the session open.
    pub host: Option<String>,
}

/// What the page says about the element an action targets.
#[derive(Debug, Default, Deserialize)]
struct Aim {
    /// The link it follows, if it is (in) one.
    href: Option<String>,
    /// The link asks to be downloaded.
    #[serde(default)]
    download: bool,
    /// Kinds of sensitive fields in the form it would submit: `password`, `payment`.
    #[serde(default)]
    fields: Vec<String>,
    /// The host of the document it is in.
    #[serde(default)]
    host: String,
}

/// File types a link is taken to download rather than show.
const DOWNLOAD_TYPES: [&str; 22] = [
    "csv", "pdf", "zip", "gz", "tgz", "tar", "7z", "rar", "exe", "msi", "dmg", "pkg", "deb", "rpm", "apk", "iso", "doc", "docx",
    "xls", "xlsx", "ppt", "pptx",
];

fn aim_script(target: &str, enter: bool) -> String {
    format!(
        r#"(() => {{
  const el = {target};
  if (!el) return {{ host: location.hostname }};
  const out = {{ host: location.hostname, fields: [] }};
  const a = el.closest && el.closest('a[href]');
  if (a) {{ out.href = a.href; out.download = a.hasAttribute('download'); }}
  const form = el.form || (el.closest && el.closest('form'));
  const type = (el.type || '').toLowerCase(), tag = el.tagName.toLowerCase();
  const submits = form && ((tag === 'button' && type !== 'button' && type !== 'reset') ||
    (tag === 'input' && (type === 'submit' || type === 'image' || ({enter} && !['button','reset','checkbox','radio','file'].includes(type)))));
  if (submits) {{
    const filled = (sel) => Array.from(form.querySelectorAll(sel)).some(f => (f.value || '').length > 0);
    if (filled('input[type=password]')) out.fields.push('password');
    if (filled('[autocomplete^="cc-"], input[name*="card" i], input[name*="cvv" i], input[name*="cvc" i], input[id*="card" i]')) out.fields.push('payment');
  }}
  return out;
}})()"#
    )
}

impl SessionBrowser {
    /// Why `action` should be confirmed by a person first, if it should.
    pub async fn sensitivity(&self, action: &Action) -> Result<Option<Sensitive>, BrowserError> {
        let page = self.page();
        let aim = match action {
            Action::Navigate { url } | Action::OpenTab { url: Some(url) } => {
                return Ok(self.off_domain(url).map(|(host, message)| Sensitive { code: "domain_not_allowed", message, host: Some(host) }));
            }
            Action::Click { index, .. } => aim_at(page, *index, false).await?,
            Action::Type { index, enter: true, .. } => aim_at(page, *index, true).await?,
            Action::PressKeys { keys } if keys.iter().any(|k| k.eq_ignore_ascii_case("enter")) => {
                Scope::TOP.eval::<Aim>(page, aim_script("document.activeElement", true)).await?
            }
            Action::TypeText { text } if text.contains('\n') => {
                Scope::TOP.eval::<Aim>(page, aim_script("document.activeElement", true)).await?
            }
            Action::ClickAt { x, y, .. } => {
                Scope::TOP.eval::<Aim>(page, aim_script(&format!("document.elementFromPoint({x}, {y})"), false)).await?
            }
            _ => return Ok(None),
        };
        if !aim.fields.is_empty() {
            let what = aim.fields.join(" and ");
            let host = if aim.host.is_empty() { "this page".to_owned() } else { aim.host.clone() };
            return Ok(Some(Sensitive { code: "sensitive_form", message: format!("Submitting a form with a {what} field on {host}."), host: None }));
        }
        let Some(href) = aim.href else { return Ok(None) };
        if let Some((host, message)) = self.off_domain(&href) {
            return Ok(Some(Sensitive { code: "domain_not_allowed", message, host: Some(host) }));
        }
        let path = url::Url::parse(&href).map(|u| u.path().to_ascii_lowercase()).unwrap_or_default();
        let extension = path.rsplit_once('.').map(|(_, e)| e.to_owned()).unwrap_or_default();
        if aim.download || DOWNLOAD_TYPES.contains(&extension.as_str()) {
            return Ok(Some(Sensitive { code: "download", message: format!("Downloading a file from {href}."), host: None }));
        }
        Ok(None)
    }

    /// The host of `url` and a message when it lies outside the allowed domains (blocked
    /// hosts and bad URLs are refused by the policy itself, with no question asked).
    fn off_domain(&self, url: &str) -> Option<(String, String)> {
        let policy = self.url_policy();
        let host = policy.outside_allowed(url)?;
        let message = format!("Opening {host}, outside the session's allowed domains ({}).", policy.allowed_domains.join(", "));
        Some((host, message))
    }
}

async fn aim_at(page: &chromiumoxide::Page, index: u64, enter: bool) -> Result<Aim, BrowserError> {
    let target = format!("(window.__agentd && window.__agentd.byId.get({index}) && window.__agentd.byId.get({index}).deref())");
    let Some(scope) = scope_of(page, index).await? else {
        // A gone element: the action itself will say so.
        return Ok(Aim::default());
    };
    scope.eval(page, aim_script(&target, enter)).await
}
