//! Finding a Chromium to launch: `AGENTD_CHROME` when set, else the usual names on `PATH`.

use std::path::{Path, PathBuf};

use crate::BrowserError;

/// Executable names tried, in order, when no path is configured.
pub const CHROME_CANDIDATES: [&str; 5] = [
    "chromium",
    "chromium-browser",
    "google-chrome",
    "google-chrome-stable",
    "chrome",
];

/// The browser to launch: `explicit` (from `AGENTD_CHROME`) if given and present, else the
/// first candidate found on `search_path` (a `PATH`-style list).
pub fn find_chrome(explicit: Option<&Path>, search_path: Option<&str>) -> Result<PathBuf, BrowserError> {
    if let Some(path) = explicit {
        return if path.is_file() {
            Ok(path.to_path_buf())
        } else {
            Err(BrowserError::NotFound(format!(
                "AGENTD_CHROME is set to {}, which is not a file; point it at a Chromium or Chrome executable",
                path.display()
            )))
        };
    }
    let dirs: Vec<PathBuf> = search_path
        .map(|p| std::env::split_paths(p).collect())
        .unwrap_or_default();
    for name in CHROME_CANDIDATES {
        for dir in dirs.iter().chain(std::iter::once(&PathBuf::from("/usr/bin"))) {
            let candidate = dir.join(name);
            if candidate.is_file() {
                return Ok(candidate);
            }
        }
    }
    Err(BrowserError::NotFound(
        "no Chromium or Chrome found: install one (Debian: `apt-get install -y chromium`), \
         or set AGENTD_CHROME to its path, or AGENTD_CDP_URL to a running browser's DevTools endpoint"
            .into(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn explicit_path_must_exist() {
        let err = find_chrome(Some(Path::new("/nonexistent/chrome")), None).unwrap_err();
        assert!(err.to_string().contains("AGENTD_CHROME"));
    }

    #[test]
    fn finds_a_candidate_on_the_search_path() {
        let dir = tempfile::tempdir().unwrap();
        // The first candidate name, so that the search path must win over /usr/bin.
        let fake = dir.path().join("chromium");
        std::fs::write(&fake, "").unwrap();
        let found = find_chrome(None, Some(dir.path().to_str().unwrap())).unwrap();
        assert_eq!(found, fake);
    }
}
