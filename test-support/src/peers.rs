//! Where the real parts built by `scripts/peers.sh` (etcd, kube-apiserver,
//! kube-controller-manager, kubectl, helm, the oras CLI, distribution v3's registry) are.
//!
//! The versions are read from `scripts/peers/versions`, the file the script builds from, so a
//! version is written in one place: a binary is `<cache>/<name>-<version>/<name>`, the cache being
//! `$ORAS_PEERS_DIR`, else `$XDG_CACHE_HOME/oras-cache/peers`, else `~/.cache/oras-cache/peers`.

use std::path::PathBuf;

/// The versions file, compiled in.
const VERSIONS: &str = include_str!("../../scripts/peers/versions");

/// The variable that moves the cache of built parts.
pub const PEERS_DIR_ENV: &str = "ORAS_PEERS_DIR";

/// The pinned version of part `name` (`"kube-apiserver"` → `"v1.37.2"`), or `None` when the
/// versions file does not list it.
pub fn version(name: &str) -> Option<&'static str> {
    VERSIONS
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .find_map(|line| {
            let mut columns = line.split_whitespace();
            (columns.next() == Some(name))
                .then(|| columns.next())
                .flatten()
        })
}

/// The directory `scripts/peers.sh` builds into.
pub fn cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os(PEERS_DIR_ENV).filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| "/root".into())).join(".cache")
        });
    base.join("oras-cache").join("peers")
}

/// The binary of part `name`. Panics with what to run when the part is unknown or not built:
/// tests cannot go on without it, and the message is the fix.
pub fn binary(name: &str) -> PathBuf {
    let version = version(name)
        .unwrap_or_else(|| panic!("scripts/peers/versions does not list a part named {name}"));
    let path = cache_dir().join(format!("{name}-{version}")).join(name);
    assert!(
        path.is_file(),
        "{name} {version} is not built at {}: run scripts/peers.sh (make peers; make test runs it)",
        path.display()
    );
    path
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_part_the_tests_use_has_one_pinned_version() {
        for name in [
            "etcd",
            "kube-apiserver",
            "kube-controller-manager",
            "kubectl",
            "helm",
            "oras",
            "registry",
        ] {
            let version = version(name).unwrap_or_else(|| panic!("{name} is not listed"));
            assert!(version.starts_with('v'), "{name} {version}");
        }
        assert_eq!(version("kube-apiserver"), version("kubectl"));
        assert_eq!(version("no-such-part"), None);
    }
}
