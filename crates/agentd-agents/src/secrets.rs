//! A session's secrets (`sensitive_data`) inside the agent: the model writes
//! `<secret>name</secret>` and the value is put in only on the way into the page; every text
//! on its way out (prompts, events, errors, the answer) has the values replaced by their
//! placeholders again.

use agentd_browser::Action;
use agentd_domain::Secrets;
use serde_json::Value;

/// The session's secret values, with the two directions of substitution.
pub struct Vault {
    /// (name, value), longest value first so a value containing another is replaced whole.
    pairs: Vec<(String, String)>,
}

fn placeholder(name: &str) -> String {
    format!("<secret>{name}</secret>")
}

impl Vault {
    /// A vault over `secrets`.
    pub fn new(secrets: &Secrets) -> Self {
        let mut pairs: Vec<(String, String)> = secrets.expose().map(|(k, v)| (k.to_owned(), v.to_owned())).collect();
        pairs.sort_by_key(|(_, value)| std::cmp::Reverse(value.len()));
        Self { pairs }
    }

    /// The line telling the model which secrets it can type.
    pub fn prompt_line(&self) -> Option<String> {
        if self.pairs.is_empty() {
            return None;
        }
        let mut names: Vec<String> = self.pairs.iter().map(|(n, _)| placeholder(n)).collect();
        names.sort();
        Some(format!("Secrets you can type (their values are hidden from you; write the placeholder as the text): {}", names.join(", ")))
    }

    /// `text` with every secret value replaced by its placeholder: whole, with its white
    /// space collapsed, or cut short with an ellipsis (the page state shows field values
    /// that way).
    pub fn redact(&self, text: &str) -> String {
        let mut out = text.to_owned();
        for (name, value) in &self.pairs {
            let collapsed = value.split_whitespace().collect::<Vec<_>>().join(" ");
            for form in [value.as_str(), collapsed.as_str()] {
                if !form.is_empty() && out.contains(form) {
                    out = out.replace(form, &placeholder(name));
                }
            }
            out = redact_cut(&out, &collapsed, &placeholder(name));
        }
        out
    }

    /// Redacts every string in `value`, keys included.
    pub fn redact_json(&self, value: &mut Value) {
        if self.pairs.is_empty() {
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

    /// `text` with placeholders replaced by their values; an unknown name is an error for the
    /// model.
    pub fn reveal(&self, text: &str) -> Result<String, String> {
        let mut out = String::with_capacity(text.len());
        let mut rest = text;
        while let Some(start) = rest.find("<secret>") {
            out.push_str(&rest[..start]);
            let after = &rest[start + "<secret>".len()..];
            let Some(end) = after.find("</secret>") else {
                out.push_str(&rest[start..]);
                return Ok(out);
            };
            let name = after[..end].trim();
            let value = self
                .pairs
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.as_str())
                .ok_or_else(|| format!("there is no secret named `{name}`"))?;
            out.push_str(value);
            rest = &after[end + "</secret>".len()..];
        }
        out.push_str(rest);
        Ok(out)
    }

    /// The action with placeholders in its texts (typed text, option, URL, keys) revealed.
    pub fn reveal_action(&self, action: &Action) -> Result<Action, String> {
        if self.pairs.is_empty() {
            return Ok(action.clone());
        }
        let mut action = action.clone();
        match &mut action {
            Action::Type { text, .. } => *text = self.reveal(text)?,
            Action::Select { option, .. } => *option = self.reveal(option)?,
            Action::Navigate { url } => *url = self.reveal(url)?,
            Action::OpenTab { url: Some(url) } => *url = self.reveal(url)?,
            Action::PressKeys { keys } => {
                for key in keys.iter_mut() {
                    *key = self.reveal(key)?;
                }
            }
            _ => {}
        }
        Ok(action)
    }
}

/// Replaces `value` cut short (a prefix of at least [`MIN_CUT`] characters, or all of a
/// shorter value's, followed by `…`) with `placeholder`.
fn redact_cut(text: &str, value: &str, placeholder: &str) -> String {
    const MIN_CUT: usize = 8;
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
    use serde_json::json;
    use std::collections::BTreeMap;

    fn vault() -> Vault {
        Vault::new(&Secrets::new(BTreeMap::from([("pw".to_owned(), "hunter2".to_owned()), ("long".to_owned(), "hunter2-extra".to_owned())])))
    }

    #[test]
    fn values_go_in_only_towards_the_page_and_never_come_back_out() {
        let v = vault();
        assert_eq!(v.reveal("x <secret>pw</secret> y").unwrap(), "x hunter2 y");
        assert!(v.reveal("<secret>nope</secret>").unwrap_err().contains("nope"));
        assert_eq!(v.redact("typed hunter2-extra and hunter2"), "typed <secret>long</secret> and <secret>pw</secret>");
        let mut event = json!({"description": "typed hunter2", "nested": ["hunter2"], "hunter2": 1});
        v.redact_json(&mut event);
        assert!(!event.to_string().contains("hunter2\""), "{event}");
        assert!(!event.to_string().contains(" hunter2"), "{event}");
        let typed = v.reveal_action(&Action::Type { index: 1, text: "<secret>pw</secret>".into(), append: false, enter: false }).unwrap();
        assert_eq!(typed, Action::Type { index: 1, text: "hunter2".into(), append: false, enter: false });
        assert!(v.prompt_line().unwrap().contains("<secret>pw</secret>"));
        assert!(Vault::new(&Secrets::default()).prompt_line().is_none());
        // As the page state shows a long value: white space collapsed, cut with an ellipsis.
        let long = Vault::new(&Secrets::new(BTreeMap::from([("key".to_owned(), "abcd  efgh ijkl mnop qrst".to_owned())])));
        assert_eq!(long.redact("value=\"abcd efgh ijk…\""), "value=\"<secret>key</secret>\"");
        assert_eq!(long.redact("abcd efgh ijkl mnop qrst"), "<secret>key</secret>");
        assert_eq!(long.redact("ab… other…"), "ab… other…", "short cuts are not taken for the secret");
    }
}
