//! The oras CLI (`oras.land/oras`, built by `scripts/peers.sh`) as the outside client of the
//! interop tests, and a snapshot of a directory tree (bytes, modes, links) to compare what two
//! clients placed.
//!
//! Every command runs with `--plain-http` (the test registries listen on loopback without TLS)
//! and with `DOCKER_CONFIG` pointing at an empty directory, so that no credential of the machine
//! reaches it: without `--registry-config`, oras reads `$DOCKER_CONFIG/config.json`, else
//! `~/.docker/config.json` (oras v1.3.6 `internal/credential/store.go` `NewStore` calls oras-go
//! v2.7.0 `registry/remote/credentials/store.go` `NewStoreFromDocker`).

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The oras CLI binary built by `scripts/peers.sh` (panics with the fix when it is missing).
pub fn bin() -> PathBuf {
    crate::peers::binary("oras")
}

/// A command running the oras CLI with `args`, isolated from the machine's credentials, not yet
/// run.
pub fn command<I, S>(args: I) -> Command
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    let mut command = Command::new(bin());
    umask_022(&mut command)
        .args(args)
        .env("DOCKER_CONFIG", empty_config_dir())
        // No terminal progress bars in the captured output.
        .env("TERM", "dumb");
    command
}

/// Runs `command` with the file mode creation mask 022 (runc's and most shells' default), so the
/// modes a client gives the files it writes are the same on every machine whatever the umask of
/// the test run; both clients of a comparison must get it.
pub fn umask_022(command: &mut Command) -> &mut Command {
    use std::os::unix::process::CommandExt;
    // SAFETY: umask(2) is async-signal-safe and touches nothing but the child's own mask.
    unsafe {
        command.pre_exec(|| {
            libc::umask(0o022);
            Ok(())
        })
    }
}

/// An empty directory that lives as long as the test process: the docker config oras reads.
fn empty_config_dir() -> &'static Path {
    static DIR: std::sync::OnceLock<tempfile::TempDir> = std::sync::OnceLock::new();
    DIR.get_or_init(|| {
        tempfile::Builder::new()
            .prefix("oras-cli-config-")
            .tempdir()
            .expect("a temporary docker config directory")
    })
    .path()
}

/// Runs `command`, which must succeed; panics with its output otherwise (the agent's tests use
/// it for the agent too).
pub fn run_ok(command: &mut Command) -> Output {
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("spawn {command:?}: {e}"));
    assert!(
        output.status.success(),
        "{command:?} failed with {}:\nstdout: {}\nstderr: {}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// `oras push --plain-http <reference> <files>... <extra>...` run in `cwd` (files are paths
/// relative to it, `path[:media-type]` as oras takes them); returns its output.
pub fn push(reference: &str, files: &[&str], extra: &[&str], cwd: &Path) -> Output {
    run_ok(
        command(["push", "--plain-http"])
            .arg(reference)
            .args(files)
            .args(extra)
            .current_dir(cwd),
    )
}

/// `oras pull --plain-http <reference> -o <out>`; returns its output.
pub fn pull(reference: &str, out: &Path) -> Output {
    run_ok(
        command(["pull", "--plain-http"])
            .arg(reference)
            .arg("-o")
            .arg(out),
    )
}

/// The bytes `oras manifest fetch --plain-http <reference>` prints: the manifest as stored.
pub fn manifest_fetch(reference: &str) -> Vec<u8> {
    run_ok(command(["manifest", "fetch", "--plain-http"]).arg(reference)).stdout
}

/// The descriptor `oras manifest fetch --descriptor` prints, parsed.
pub fn manifest_descriptor(reference: &str) -> serde_json::Value {
    let output =
        run_ok(command(["manifest", "fetch", "--plain-http", "--descriptor"]).arg(reference));
    serde_json::from_slice(&output.stdout).expect("oras prints the descriptor as JSON")
}

/// One path of a [`snapshot`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    /// A directory and its permission bits.
    Dir {
        /// `mode & 0o7777`.
        mode: u32,
    },
    /// A regular file: permission bits and content.
    File {
        /// `mode & 0o7777`.
        mode: u32,
        /// The bytes.
        content: Vec<u8>,
    },
    /// A symbolic link and its target as written.
    Link {
        /// The target.
        target: PathBuf,
    },
}

/// Every path under `root` (relative, `/`-separated) with its kind, permission bits, content or
/// link target; `root` itself is left out. Two clients placed the same tree when their snapshots
/// are equal.
pub fn snapshot(root: &Path) -> BTreeMap<String, Node> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, Node>) {
        let mut entries: Vec<_> = std::fs::read_dir(dir)
            .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
            .map(|e| e.unwrap().path())
            .collect();
        entries.sort();
        for path in entries {
            let relative = path
                .strip_prefix(root)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            let metadata = std::fs::symlink_metadata(&path).unwrap();
            let mode = metadata.permissions().mode() & 0o7777;
            if metadata.file_type().is_symlink() {
                let target = std::fs::read_link(&path).unwrap();
                out.insert(relative, Node::Link { target });
            } else if metadata.is_dir() {
                out.insert(relative, Node::Dir { mode });
                walk(root, &path, out);
            } else {
                let content = std::fs::read(&path).unwrap();
                out.insert(relative, Node::File { mode, content });
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

/// The snapshot of `root` with every path prefixed by `prefix/`, to compare a pushed source
/// directory with where a client placed it.
pub fn snapshot_under(root: &Path, prefix: &str) -> BTreeMap<String, Node> {
    let mut out = BTreeMap::from([(
        prefix.to_string(),
        Node::Dir {
            mode: std::fs::metadata(root).unwrap().permissions().mode() & 0o7777,
        },
    )]);
    out.extend(
        snapshot(root)
            .into_iter()
            .map(|(path, node)| (format!("{prefix}/{path}"), node)),
    );
    out
}

/// The process's file mode creation mask, read from `/proc/self/status` (`Umask:`, Linux 4.7 and
/// later) rather than with umask(2), which would change it for every thread while it is read.
pub fn umask() -> u32 {
    let status = std::fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    status
        .lines()
        .find_map(|line| line.strip_prefix("Umask:"))
        .and_then(|value| u32::from_str_radix(value.trim(), 8).ok())
        .expect("/proc/self/status has a Umask line")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_snapshot_records_kinds_modes_contents_and_link_targets() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("d/e")).unwrap();
        std::fs::write(dir.path().join("d/f.txt"), b"x").unwrap();
        std::fs::set_permissions(
            dir.path().join("d/f.txt"),
            std::fs::Permissions::from_mode(0o640),
        )
        .unwrap();
        std::fs::set_permissions(
            dir.path().join("d/e"),
            std::fs::Permissions::from_mode(0o700),
        )
        .unwrap();
        std::os::unix::fs::symlink("f.txt", dir.path().join("d/l")).unwrap();
        let snap = snapshot(dir.path());
        assert_eq!(
            snap.keys().collect::<Vec<_>>(),
            ["d", "d/e", "d/f.txt", "d/l"]
        );
        assert_eq!(snap["d/e"], Node::Dir { mode: 0o700 });
        assert_eq!(
            snap["d/f.txt"],
            Node::File {
                mode: 0o640,
                content: b"x".to_vec()
            }
        );
        assert_eq!(
            snap["d/l"],
            Node::Link {
                target: "f.txt".into()
            }
        );
        let under = snapshot_under(&dir.path().join("d"), "top");
        assert_eq!(
            under.keys().collect::<Vec<_>>(),
            ["top", "top/e", "top/f.txt", "top/l"]
        );
    }

    #[test]
    fn the_umask_is_read_without_changing_it() {
        let mask = umask();
        assert!(mask <= 0o777, "{mask:o}");
        assert_eq!(umask(), mask);
    }
}
