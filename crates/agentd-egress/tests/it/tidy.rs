//! Tidy: every outbound connection of the server goes through agentd-egress. The sources of
//! the other crates must not build an HTTP client or install a TLS provider themselves (test
//! code aside), so a new client cannot skip the egress policy, the operator client's rules, or
//! the one TLS set-up.

use std::fs;
use std::path::{Path, PathBuf};

/// What builds an HTTP client (or a TLS provider) of its own.
const FORBIDDEN: [&str; 5] =
    ["Client::builder(", "ClientBuilder::new(", "reqwest::Client::new(", "reqwest::Client::default(", "install_default("];

/// Where `install_default(` belongs: the one TLS initialisation.
const TLS_HOME: &str = "crates/agentd-egress/src/tls.rs";

/// Crates that are not the server: a load generator and test fakes, clients *of* agentd.
const NOT_THE_SERVER: [&str; 3] = ["crates/agentd-bench/", "crates/agentd-testllm/", "crates/agentd-testsite/"];

/// Files allowed a forbidden pattern, and why.
const ALLOWED: [(&str, &str, &str); 2] = [
    // The CLI talks to the agentd server the user names (`--url`): a client of agentd's own API,
    // not an outbound connection of the server.
    ("crates/agentd/src/cli.rs", "reqwest::Client::new(", "the CLI is a client of agentd's API"),
    ("crates/agentd/src/run_cmd.rs", "reqwest::Client::new(", "the CLI is a client of agentd's API"),
];

/// Not yet switched to agentd-egress (their crates were being edited when this test was
/// written). Each must go: once a file no longer has its pattern this test fails until the entry
/// is removed, so the list only shrinks.
const PENDING: [(&str, &str); 0] = [];

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap()
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// `source` without comment lines and without items under `#[cfg(test)]` (a `mod tests { … }`
/// or a `mod tests;`).
fn product_code(source: &str) -> String {
    let mut kept = String::new();
    let mut lines = source.lines();
    while let Some(line) = lines.next() {
        let trimmed = line.trim_start();
        if trimmed.starts_with("//") {
            continue;
        }
        if trimmed.starts_with("#[cfg(test)]") {
            skip_item(&mut lines);
            continue;
        }
        kept.push_str(line);
        kept.push('\n');
    }
    kept
}

/// Skips the item after an attribute: one line ending in `;`, or up to its closing brace.
fn skip_item<'a>(lines: &mut impl Iterator<Item = &'a str>) {
    let mut depth = 0i64;
    let mut opened = false;
    for line in lines {
        let code = line.split("//").next().unwrap_or_default();
        if !opened && code.trim_start().starts_with("#[") {
            continue;
        }
        depth += code.matches('{').count() as i64 - code.matches('}').count() as i64;
        opened |= code.contains('{');
        if (!opened && code.trim_end().ends_with(';')) || (opened && depth <= 0) {
            return;
        }
    }
}

/// `(file, pattern)` for every forbidden pattern in the server's product code, outside
/// agentd-egress's sources.
fn findings() -> Vec<(String, &'static str)> {
    let root = workspace();
    let mut files = Vec::new();
    for krate in fs::read_dir(root.join("crates")).unwrap().flatten() {
        rust_files(&krate.path().join("src"), &mut files);
        rust_files(&krate.path().join("build.rs"), &mut files);
    }
    let mut found = Vec::new();
    for file in files {
        let name = file.strip_prefix(&root).unwrap().to_string_lossy().replace('\\', "/");
        if NOT_THE_SERVER.iter().any(|c| name.starts_with(c)) {
            continue;
        }
        let code = product_code(&fs::read_to_string(&file).unwrap());
        for pattern in FORBIDDEN {
            let home = if pattern == "install_default(" { name == TLS_HOME } else { name.starts_with("crates/agentd-egress/src/") };
            if !home && code.contains(pattern) {
                found.push((name.clone(), pattern));
            }
        }
    }
    found.sort();
    found
}

#[test]
fn every_http_client_and_tls_setup_is_built_in_agentd_egress() {
    let found = findings();
    let unexpected: Vec<_> = found
        .iter()
        .filter(|(file, pattern)| !ALLOWED.iter().any(|(f, p, _)| f == file && p == pattern))
        .filter(|(file, pattern)| !PENDING.iter().any(|(f, p)| f == file && p == pattern))
        .collect();
    assert!(
        unexpected.is_empty(),
        "build HTTP clients with agentd_egress (EgressPolicy::client for destinations a user or model \
         chooses, OperatorClient for ones the operator configured) and set up TLS with \
         agentd_egress::install_tls: {unexpected:?}"
    );
    let done: Vec<_> = PENDING.iter().filter(|(f, p)| !found.iter().any(|(file, pattern)| file == f && pattern == p)).collect();
    assert!(done.is_empty(), "these have been switched to agentd-egress; remove them from PENDING in tidy.rs: {done:?}");
}

#[test]
fn no_reqwest_reads_the_operating_systems_proxy_settings() {
    // reqwest's `system-proxy` feature (on by default) reads the OS's proxy configuration;
    // operator clients use the environment's proxy only, checked clients none.
    let root = workspace();
    let manifest = fs::read_to_string(root.join("Cargo.toml")).unwrap();
    let reqwest = manifest.lines().find(|l| l.starts_with("reqwest =")).expect("reqwest in the workspace dependencies");
    assert!(reqwest.contains("default-features = false"), "{reqwest}");
    let mut manifests = vec![root.join("Cargo.toml")];
    for krate in fs::read_dir(root.join("crates")).unwrap().flatten() {
        manifests.push(krate.path().join("Cargo.toml"));
    }
    for manifest in manifests {
        let text = fs::read_to_string(&manifest).unwrap_or_default();
        assert!(!text.contains("system-proxy"), "{} enables reqwest's system-proxy", manifest.display());
    }
}

#[test]
fn test_code_and_comments_are_not_product_code() {
    let source = "\
fn a() {}
// Client::builder( in a comment
#[cfg(test)]
mod tests {
    fn t() { if x { Client::builder(); } }
}
#[cfg(test)]
#[allow(dead_code)]
fn helper() { install_default(); }
#[cfg(test)]
mod other;
fn b() {}
";
    assert_eq!(product_code(source), "fn a() {}\nfn b() {}\n");
}
