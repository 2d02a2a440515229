//! [`Variables`]: the values a tool's templates may name besides its arguments.

use std::collections::BTreeMap;
use std::fmt;

use crate::mask::Masker;

/// The values a tool's templates (`{{name}}`) may use besides the call's arguments.
///
/// Two kinds of values, by who sets them:
/// - the tool's own — its **variables** (plain settings) and **private variables** (its
///   secrets: sealed at rest by the store, masked here as `[redacted:name]`), set by its owner;
/// - the caller's — **environment variables**, given with one execution, kept only in memory,
///   masked like private ones.
///
/// A name is looked up in this order, the first that has it wins: the tool's private
/// variables, the tool's variables, then the call's **arguments** (only where the template
/// allows arguments: HTTP tools), then the environment. So nothing a caller (or a model)
/// sends can replace a value the tool's owner set: a caller cannot point a request that carries
/// the tool's secrets somewhere else. For the same reason the places that decide where a
/// request goes or what runs — a URL's scheme, host and port, an MCP server's command,
/// arguments and URL — take the tool's own values only (see [`crate::template`]).
///
/// Substitution is one pass: a value that itself contains `{{…}}` is inserted as text, never
/// expanded (so an argument cannot name a secret into the request).
///
/// `Debug` shows the plain variables and only the *names* of the private and environment ones.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Variables {
    /// The tool's plain values (shown, stored).
    pub variables: BTreeMap<String, String>,
    /// The tool's secret values (encrypted at rest by the store, masked in every output here).
    pub private_variables: BTreeMap<String, String>,
    /// The caller's values for this execution only (never stored; masked).
    pub environment_variables: BTreeMap<String, String>,
}

impl Variables {
    /// The masker for every private and environment value (each value, even where two share
    /// a name).
    pub fn masker(&self) -> Masker {
        Masker::from_pairs(self.private_variables.iter().chain(&self.environment_variables))
    }

    /// The tool's own value of `name` (private first), if it has one.
    pub fn own(&self, name: &str) -> Option<&str> {
        self.private_variables.get(name).or_else(|| self.variables.get(name)).map(String::as_str)
    }

    /// The caller's value of `name`.
    pub fn environment(&self, name: &str) -> Option<&str> {
        self.environment_variables.get(name).map(String::as_str)
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
    fn the_tools_own_values_win_and_debug_hides_values() {
        let vars = Variables {
            variables: map(&[("a", "plain"), ("b", "plain"), ("c", "plain")]),
            private_variables: map(&[("b", "private-value"), ("c", "private-value")]),
            environment_variables: map(&[("c", "env-value"), ("d", "env-only")]),
        };
        assert_eq!(
            (vars.own("a"), vars.own("b"), vars.own("c"), vars.own("d"), vars.environment("d")),
            (Some("plain"), Some("private-value"), Some("private-value"), None, Some("env-only"))
        );
        let masked = vars.masker().mask("private-value env-value");
        assert_eq!(masked, "[redacted:b] [redacted:c]", "both values named c are masked");
        assert_eq!(vars.names(), ["a", "b", "c", "d"]);
        let shown = format!("{vars:?}");
        assert!(!shown.contains("private-value") && !shown.contains("env-value"), "{shown}");
    }
}
