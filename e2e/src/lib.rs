//! The policy's end-to-end tests live in `tests/` and `e2e.bats`; this library only finds what they
//! share: the fixtures and the annotated policy module. The runner they evaluate it with is the
//! `kwrun` crate (`kwrun/`).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// Environment variable naming an already built `annotated-policy.wasm` (set by `make e2e-tests`).
pub const POLICY_ENV: &str = "ORAS_CACHE_ANNOTATED_POLICY";

/// The workspace root.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("e2e/ has a parent")
        .to_path_buf()
}

/// `e2e/fixtures`.
pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

/// Path of the annotated policy: the one `make` gave, or built now with
/// `make annotated-policy.wasm` (annotated by kwctl when installed, else by kwrun, which make
/// builds first).
pub fn annotated_policy_path() -> &'static Path {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        if let Some(path) = std::env::var_os(POLICY_ENV) {
            return PathBuf::from(path);
        }
        let root = workspace_root();
        let output = Command::new("make")
            .arg("-C")
            .arg(&root)
            .arg("annotated-policy.wasm")
            .output()
            .expect("run make (needed to build annotated-policy.wasm)");
        assert!(
            output.status.success(),
            "`make annotated-policy.wasm` failed; the end-to-end tests need the compiled policy.\nstdout:\n{}\nstderr:\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        root.join("annotated-policy.wasm")
    })
}

/// The annotated module's bytes.
pub fn annotated_policy() -> &'static [u8] {
    static BYTES: OnceLock<Vec<u8>> = OnceLock::new();
    BYTES.get_or_init(|| {
        let path = annotated_policy_path();
        std::fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
    })
}
