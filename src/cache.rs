//! Where kfop keeps what it builds and fetches: `${KFOP_CACHE:-$HOME/.cache/kfop}`.

use std::path::PathBuf;

/// The cache directory (`KFOP_CACHE`, else `~/.cache/kfop`).
pub fn dir() -> PathBuf {
    std::env::var_os("KFOP_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let home = std::env::var_os("HOME")
                .map(PathBuf::from)
                .unwrap_or_default();
            home.join(".cache").join("kfop")
        })
}
