//! [`Masker`]: every output of a tool (result, error, debug line) passes through one, so that no
//! private variable's value leaves the runtime.

use std::collections::BTreeMap;

use serde_json::Value;

/// Replaces every occurrence of a private variable's value with `[redacted:name]`.
///
/// Each value is looked for in every form [`agentd_domain::secret_forms`] lists (as written,
/// percent-encoded as in a URL this crate built or a form, JSON- and HTML-escaped), longest
/// first, in one pass over the text: a replacement is never searched again, so a short value
/// cannot match inside `[redacted:…]`. Matching is exact (case-sensitive); empty values mask
/// nothing. A value the other side transformed otherwise (base64 in a Basic header echoed
/// back, a hash) is not recognised.
#[derive(Debug, Clone, Default)]
pub struct Masker {
    replacer: agentd_domain::SecretReplacer,
}

impl Masker {
    /// A masker for these private variables (name → value).
    pub fn new(private_variables: &BTreeMap<String, String>) -> Masker {
        Masker::from_pairs(private_variables)
    }

    /// A masker for these (name, value) pairs; a name may come more than once.
    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a String, &'a String)>) -> Masker {
        let replacer = agentd_domain::SecretReplacer::new(
            pairs.into_iter().filter(|(_, value)| !value.is_empty()).map(|(name, value)| (value.as_str(), format!("[redacted:{name}]"))),
        );
        Masker { replacer }
    }

    /// Whether this masker has nothing to mask.
    pub fn is_empty(&self) -> bool {
        self.replacer.is_empty()
    }

    /// `text` with every private value replaced.
    pub fn mask(&self, text: &str) -> String {
        self.replacer.replace(text)
    }

    /// A JSON value with every string (and object key) masked; a number whose digits are a
    /// private value becomes the masked string.
    pub fn mask_value(&self, value: Value) -> Value {
        if self.replacer.is_empty() {
            return value;
        }
        match value {
            Value::String(text) => Value::String(self.mask(&text)),
            Value::Number(number) => {
                let text = number.to_string();
                let masked = self.mask(&text);
                if masked == text { Value::Number(number) } else { Value::String(masked) }
            }
            Value::Array(items) => Value::Array(items.into_iter().map(|item| self.mask_value(item)).collect()),
            Value::Object(map) => {
                Value::Object(map.into_iter().map(|(key, item)| (self.mask(&key), self.mask_value(item))).collect())
            }
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn masker(pairs: &[(&str, &str)]) -> Masker {
        Masker::new(&pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect())
    }

    #[test]
    fn longest_values_are_replaced_first_and_replacements_are_not_searched_again() {
        let m = masker(&[("short", "abc"), ("long", "abcdef"), ("red", "red")]);
        assert_eq!(m.mask("xx abcdef yy abc zz"), "xx [redacted:long] yy [redacted:short] zz");
        // "red" inside "[redacted:short]" is not masked again.
        assert_eq!(m.mask("abc red"), "[redacted:short] [redacted:red]");
    }

    #[test]
    fn encoded_forms_are_masked_and_empty_values_ignored() {
        let m = masker(&[("token", "a b/c\"d"), ("empty", "")]);
        assert_eq!(m.mask("q=a%20b%2Fc%22d"), "q=[redacted:token]");
        assert_eq!(m.mask(r#"{"t":"a b/c\"d"}"#), r#"{"t":"[redacted:token]"}"#);
        assert_eq!(m.mask("nothing here"), "nothing here");
        assert!(masker(&[("empty", "")]).is_empty());
    }

    #[test]
    fn json_values_are_masked_in_strings_keys_and_numbers() {
        let m = masker(&[("pin", "1234"), ("key", "s3cret")]);
        let value = json!({"s3cret": ["x s3cret y", 1234, 5], "n": null, "ok": true});
        assert_eq!(
            m.mask_value(value),
            json!({"[redacted:key]": ["x [redacted:key] y", "[redacted:pin]", 5], "n": null, "ok": true})
        );
    }

    #[test]
    fn multibyte_text_is_kept_intact() {
        let m = masker(&[("k", "ß∂")]);
        assert_eq!(m.mask("añß∂é"), "añ[redacted:k]é");
    }
}
