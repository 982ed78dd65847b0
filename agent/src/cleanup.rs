//! Removing what a failed or interrupted pull wrote.
//!
//! A [`Tracker`] records every path a pull creates (its scratch directory, each placed file,
//! each directory and tar entry it makes), in a process-wide table. A failed pull calls
//! [`Tracker::remove_all`]; a finished one drops the tracker, which forgets the paths and keeps
//! the files. [`remove_on_signal`] (installed by `oras-agent pull` and `push`) makes SIGINT,
//! SIGTERM and SIGHUP remove every tracked path before the process exits, so an interrupted pull
//! leaves no `.oras-agent-pull-*` directory, partial blob or half-placed file behind, and an
//! interrupted push no `oras-agent-push-*` directory of packed layers.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// Paths by tracker, in creation order.
static TRACKED: Mutex<BTreeMap<u64, Vec<PathBuf>>> = Mutex::new(BTreeMap::new());
static NEXT_ID: AtomicU64 = AtomicU64::new(0);

fn table() -> std::sync::MutexGuard<'static, BTreeMap<u64, Vec<PathBuf>>> {
    TRACKED.lock().unwrap_or_else(|e| e.into_inner())
}

/// The paths one operation created, removed together on failure.
#[derive(Debug)]
pub struct Tracker {
    id: u64,
}

impl Default for Tracker {
    fn default() -> Self {
        Tracker::new()
    }
}

impl Tracker {
    /// A tracker with nothing recorded yet.
    pub fn new() -> Tracker {
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        table().insert(id, Vec::new());
        Tracker { id }
    }

    /// Runs `make`, which creates `path`, and records `path` when it succeeds. The table is
    /// locked meanwhile, so a signal's cleanup sees either no path or a path that exists.
    pub fn create<T>(
        &self,
        path: &Path,
        make: impl FnOnce() -> std::io::Result<T>,
    ) -> std::io::Result<T> {
        let mut table = table();
        let made = make()?;
        table.entry(self.id).or_default().push(path.to_path_buf());
        Ok(made)
    }

    /// Records a path that was just created by other means (a directory made with its parents).
    pub fn record(&self, path: &Path) {
        table().entry(self.id).or_default().push(path.to_path_buf());
    }

    /// Runs `make`, which creates something whose path is known only afterwards (a temporary
    /// directory), and records `path_of` it, with the table locked meanwhile.
    pub fn create_then_record<T>(
        &self,
        make: impl FnOnce() -> std::io::Result<T>,
        path_of: impl FnOnce(&T) -> PathBuf,
    ) -> std::io::Result<T> {
        let mut table = table();
        let made = make()?;
        table.entry(self.id).or_default().push(path_of(&made));
        Ok(made)
    }

    /// Creates a temporary directory named `prefix*` in `dir` (`TMPDIR` when `None`) and records
    /// it, so that a signal removes it too: a `TempDir` alone is only removed by its destructor.
    pub fn tempdir(&self, prefix: &str, dir: Option<&Path>) -> std::io::Result<tempfile::TempDir> {
        self.create_then_record(
            || {
                let mut builder = tempfile::Builder::new();
                builder.prefix(prefix);
                match dir {
                    Some(dir) => builder.tempdir_in(dir),
                    None => builder.tempdir(),
                }
            },
            |made| made.path().to_path_buf(),
        )
    }

    /// How many paths are recorded.
    pub fn len(&self) -> usize {
        table().get(&self.id).map_or(0, Vec::len)
    }

    /// Whether nothing is recorded.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Removes every recorded path, newest first, and forgets them.
    pub fn remove_all(&self) {
        let paths = table().insert(self.id, Vec::new()).unwrap_or_default();
        remove_paths(&paths);
    }
}

impl Drop for Tracker {
    /// Forgets the paths and keeps them on disk: the operation succeeded, or its caller
    /// already removed them.
    fn drop(&mut self) {
        table().remove(&self.id);
    }
}

fn remove_paths(paths: &[PathBuf]) {
    for path in paths.iter().rev() {
        match std::fs::symlink_metadata(path) {
            Ok(metadata) if metadata.is_dir() => {
                open_for_owner(path);
                let _ = std::fs::remove_dir_all(path);
            }
            Ok(_) => {
                let _ = std::fs::remove_file(path);
            }
            Err(_) => {}
        }
    }
}

/// Gives the owner read, write and search on `dir` and every directory below it (links are not
/// followed): a directory layer may carry directories its owner cannot write (0500, as `oras
/// pull` would place them too), and a non-root agent could not empty them otherwise.
fn open_for_owner(dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let Ok(metadata) = std::fs::symlink_metadata(dir) else {
        return;
    };
    if !metadata.is_dir() {
        return;
    }
    let mode = metadata.permissions().mode();
    if mode & 0o700 != 0o700 {
        let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode | 0o700));
    }
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            open_for_owner(&entry.path());
        }
    }
}

/// Installs handlers for SIGINT, SIGTERM and SIGHUP that remove every tracked path, then exit
/// with 128 + the signal, as the default action would have ended the process.
pub fn remove_on_signal() -> std::io::Result<()> {
    let signals = [libc::SIGINT, libc::SIGTERM, libc::SIGHUP];
    let mut incoming = signal_hook::iterator::Signals::new(signals)?;
    std::thread::spawn(move || {
        if let Some(signal) = incoming.forever().next() {
            // Held until exit: no tracked path is created after the cleanup.
            let table = table();
            for paths in table.values().rev() {
                remove_paths(paths);
            }
            crate::error!("interrupted by signal {signal}; removed what it had written so far");
            std::process::exit(128 + signal);
        }
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_operation_removes_what_it_created_and_a_finished_one_keeps_it() {
        let dir = tempfile::tempdir().unwrap();
        let kept = dir.path().join("kept");
        let tracker = Tracker::new();
        tracker
            .create(&kept, || std::fs::write(&kept, "x"))
            .unwrap();
        drop(tracker);
        assert!(kept.exists());

        let tracker = Tracker::new();
        let sub = dir.path().join("sub");
        tracker.create(&sub, || std::fs::create_dir(&sub)).unwrap();
        let file = sub.join("f");
        tracker
            .create(&file, || std::fs::write(&file, "y"))
            .unwrap();
        assert_eq!(tracker.len(), 2);
        tracker.remove_all();
        assert!(!sub.exists());
        assert!(tracker.is_empty());
        assert!(kept.exists());
    }
}
