//! [`Variables`]: the values a tool's templates may name besides its arguments.

use std::collections::BTreeMap;
use std::fmt;

use crate::mask::Masker;

/// The values a tool's templates (`{{name}}`) may use besides the call's arguments.
///
/// A name is looked up in this order, the first that has it wins:
/// 1. the call's **arguments** (only where the template allows arguments: HTTP tools);
/// 2. **environment variables** — given with this execution and kept only in memory (never
///    stored by agentd); the most specific to this run, so they override the tool's own;
/// 3. **private variables** — the tool's secrets: masked in every output as `[redacted:name]`;
/// 4. **variables** — the tool's plain settings.
///
/// Private and environment values are masked (environment variables are how a caller passes a
/// secret it does not want stored: `[redacted:name]` too).
///
/// An argument may shadow a private variable: that only ever *replaces* the secret in the request,
/// it can never reveal it. Substitution is one pass: a value that itself contains `{{…}}` is
/// inserted as text, never expanded (so an argument cannot name a secret into the request).
///
/// `Debug` shows the plain variables and only the *names* of the private and environment ones.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Variables {
    /// Plain values (shown, stored).
    pub variables: BTreeMap<String, String>,
    /// Secret values (encrypted at rest by the store, masked in every output here).
    pub private_variables: BTreeMap<String, String>,
    /// Values for this execution only (never stored).
    pub environment_variables: BTreeMap<String, String>,
}

impl Variables {
    /// The masker for these variables' private and environment values.
    pub fn masker(&self) -> Masker {
        let mut secret = self.private_variables.clone();
        secret.extend(self.environment_variables.iter().map(|(k, v)| (k.clone(), v.clone())));
        Masker::new(&secret)
    }

    /// The value of `name` among the variables (not arguments), by the precedence above.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.environment_variables
            .get(name)
            .or_else(|| self.private_variables.get(name))
            .or_else(|| self.variables.get(name))
            .map(String::as_str)
    }

    /// Every variable name, sorted, without duplicates.
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .variables
            .keys()
            .chain(self.private_variables.keys())
            .chain(self.environment_variables.keys())
            .cloned()
            .collect();
        names.sort();
        names.dedup();
        names
    }
}

impl fmt::Debug for Variables {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Variables")
            .field("variables", &self.variables)
            .field("private_variables", &self.private_variables.keys().collect::<Vec<_>>())
            .field("environment_variables", &self.environment_variables.keys().collect::<Vec<_>>())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn environment_beats_private_beats_plain_and_debug_hides_values() {
        let vars = Variables {
            variables: map(&[("a", "plain"), ("b", "plain"), ("c", "plain")]),
            private_variables: map(&[("b", "private-value"), ("c", "private-value")]),
            environment_variables: map(&[("c", "env-value")]),
        };
        assert_eq!(
            (vars.get("a"), vars.get("b"), vars.get("c"), vars.get("d")),
            (Some("plain"), Some("private-value"), Some("env-value"), None)
        );
        assert_eq!(vars.names(), ["a", "b", "c"]);
        let shown = format!("{vars:?}");
        assert!(!shown.contains("private-value") && !shown.contains("env-value"), "{shown}");
    }
}
