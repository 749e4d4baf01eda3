//! Where GPU kernels and their autotune results persist between runs of `resnet`.
//!
//! CubeCL (burn's GPU runtime) keeps an "environment" store of autotune decisions and, when
//! `compilation.cache` is on, of compiled SPIR-V (the `vulkan` feature) and PTX (`cuda`). Its
//! defaults do not suit an installed command: the compiled-kernel cache is off, and the store
//! sits in `target/environment` of whatever Cargo project the command happens to run in (so a
//! run from another directory starts cold again). The CLI turns the kernel cache on and puts
//! the store in the user's cache directory (`$XDG_CACHE_HOME/cubecl`, usually
//! `~/.cache/cubecl`), so the second run of a model skips compilation and autotuning. A
//! `cubecl.toml` (or a `[cubecl]` section of `burn.toml`) in the working directory or above is
//! the user's own configuration and is left to rule.

use std::path::Path;
#[cfg(feature = "gpu-cache")]
use std::path::PathBuf;

#[cfg(feature = "gpu-cache")]
use cubecl_runtime::config::cache::CacheConfig;
#[cfg(feature = "gpu-cache")]
use cubecl_runtime::config::{CubeClRuntimeConfig, RuntimeConfig};

/// The configuration the CLI installs when `dir` and its ancestors hold no CubeCL
/// configuration file, or `None` where one does.
#[cfg(feature = "gpu-cache")]
fn config_for(dir: &Path) -> Option<CubeClRuntimeConfig> {
    if has_config_file(dir) {
        return None;
    }
    let mut config = CubeClRuntimeConfig::default();
    config.environment.path = CacheConfig::Global;
    config.compilation.cache = true;
    // CUBECL_AUTOTUNE_LEVEL, CUBECL_AUTOTUNE_CACHE, … still apply.
    Some(config.override_from_env())
}

/// The files CubeCL itself reads, walking up from `dir`. (Tested in every build; used only
/// with the `gpu-cache` feature.)
#[cfg_attr(not(feature = "gpu-cache"), allow(dead_code))]
fn has_config_file(dir: &Path) -> bool {
    dir.ancestors().any(|dir| {
        ["cubecl.toml", "CubeCL.toml"]
            .iter()
            .any(|name| dir.join(name).is_file())
            || ["burn.toml", "Burn.toml"].iter().any(|name| {
                std::fs::read_to_string(dir.join(name)).is_ok_and(|text| text.contains("[cubecl"))
            })
    })
}

/// Installs the CLI's CubeCL configuration before any GPU device exists (once; later calls
/// only answer); returns the directory the kernel and autotune caches live in, or `None` where
/// the user's own configuration file decides or the build has no `gpu-cache` feature.
#[cfg(not(feature = "gpu-cache"))]
pub fn configure() -> Option<&'static Path> {
    None
}

/// See the definition without the `gpu-cache` feature.
#[cfg(feature = "gpu-cache")]
pub fn configure() -> Option<&'static Path> {
    LOCATION
        .get_or_init(|| {
            let dir = std::env::current_dir().ok()?;
            let config = config_for(&dir)?;
            let root = config.environment.path.root();
            // False only if something read CubeCL's configuration first, which nothing in
            // the CLI does before this call.
            CubeClRuntimeConfig::try_set(config).then_some(root)
        })
        .as_deref()
}

#[cfg(feature = "gpu-cache")]
static LOCATION: std::sync::OnceLock<Option<PathBuf>> = std::sync::OnceLock::new();

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("resnet-kernel-cache-{name}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("a/b")).unwrap();
        dir
    }

    #[test]
    fn a_users_configuration_file_is_found_above() {
        let dir = scratch("file");
        assert!(!has_config_file(&dir.join("a/b")));
        std::fs::write(dir.join("cubecl.toml"), "[autotune]\nlevel = \"minimal\"\n").unwrap();
        assert!(has_config_file(&dir.join("a/b")));

        let dir = scratch("burn");
        std::fs::write(dir.join("a/burn.toml"), "[fusion]\n").unwrap();
        assert!(
            !has_config_file(&dir.join("a/b")),
            "burn.toml without [cubecl]"
        );
        std::fs::write(
            dir.join("a/burn.toml"),
            "[cubecl.autotune]\nlevel = \"minimal\"\n",
        )
        .unwrap();
        assert!(has_config_file(&dir.join("a/b")));
    }

    #[cfg(feature = "gpu-cache")]
    #[test]
    fn kernels_are_cached_in_the_user_cache_directory() {
        let dir = scratch("none");
        let config = config_for(&dir.join("a/b")).expect("no configuration file");
        assert!(config.compilation.cache);
        assert!(matches!(config.environment.path, CacheConfig::Global));
        let root = config.environment.path.root();
        assert!(root.ends_with("cubecl"), "{}", root.display());
        assert!(!root.starts_with(&dir), "{}", root.display());
        std::fs::write(dir.join("cubecl.toml"), "").unwrap();
        assert!(config_for(&dir.join("a/b")).is_none());
    }
}
