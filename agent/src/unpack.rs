//! Placing pulled layers into a directory, with the path-safety rules of oras-go v2.6.2.
//!
//! Every layer title and every tar entry is cleaned lexically and must stay inside the target
//! directory; no write goes through a symlink (neither one already on disk nor one the archive
//! itself created); symlink targets and hardlink targets must stay inside too. Anything else is
//! refused with an error that names the offending title or entry, and a refused archive is refused
//! before its first entry is written: the whole tar stream is checked (names, links, and the
//! uncompressed digest of `io.deis.oras.content.digest`) in a first pass, then extracted in a
//! second one that re-checks the disk. Two layers (of one artifact or of several inputs) that
//! would write the same path are an error, found before anything is written.
//!
//! Issue 16 added: a directory layer may not expand past [`Limits`] (checked in the first pass,
//! so a gzip bomb is refused before a byte of it is written); titles and entry names with
//! control characters, and device, FIFO and sparse entries, are refused with a message; and the
//! [`Placer`] records what it creates, so that a failed pull can remove it ([`Placer::rollback`]).

use crate::cleanup::Tracker;
use crate::digest::{CopyError, Digest, HashingReader, copy_hashing};
use crate::manifest::Descriptor;
use flate2::read::GzDecoder;
use oras_cache_api::media_types as mt;
use std::collections::HashSet;
use std::io::{self, BufReader, Read};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

/// Why a layer was not placed.
#[derive(Debug, thiserror::Error)]
pub enum PlaceError {
    /// A title would land outside the target directory.
    #[error("refusing layer title {title:?}: {reason}; nothing was written")]
    UnsafeTitle {
        /// The title.
        title: String,
        /// Why.
        reason: String,
    },
    /// A tar entry would land outside the target directory (or outside its layer's title).
    #[error(
        "refusing directory layer {title:?}: entry {entry:?} {reason}; nothing of it was written"
    )]
    UnsafeEntry {
        /// The layer title.
        title: String,
        /// The entry name.
        entry: String,
        /// Why.
        reason: String,
    },
    /// A directory layer expands past the limits.
    #[error(
        "refusing directory layer {title:?}: {reason}; nothing past the limit was written (raise --max-unpacked-size or --max-unpack-ratio if the layer is expected)"
    )]
    TooLarge {
        /// The layer title.
        title: String,
        /// Which limit, and the sizes.
        reason: String,
    },
    /// Two layers write the same path.
    #[error(
        "{second} would write {path:?}, which {first} writes too; nothing was written; give the inputs distinct titles or pull them to different paths"
    )]
    Conflict {
        /// The path (relative to the target directory).
        path: String,
        /// Who wrote it first.
        first: String,
        /// Who tried again.
        second: String,
    },
    /// The uncompressed tar does not match `io.deis.oras.content.digest`.
    #[error(
        "directory layer {title:?}: uncompressed content digest is {actual}, the manifest says {expected}; nothing of it was written"
    )]
    ContentDigest {
        /// The layer title.
        title: String,
        /// The annotation.
        expected: String,
        /// What the tar hashes to.
        actual: Digest,
    },
    /// A blob changed since it was verified.
    #[error("blob {expected} for {title:?} now hashes to {actual}; the shared volume was modified")]
    BlobChanged {
        /// The layer title.
        title: String,
        /// Its digest.
        expected: Digest,
        /// What the file hashes to now.
        actual: Digest,
    },
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> PlaceError + '_ {
    move |source| PlaceError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// How a file layer's blob reaches its place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlaceMode {
    /// Rename the blob (it is consumed; same filesystem).
    Move,
    /// Copy it (the blob stays, e.g. on the shared volume), re-checking its digest.
    Copy,
}

/// Cleans a `/`-separated relative path: drops `.` and empty parts, applies `..`. Refuses absolute
/// paths and paths that climb above their start.
pub fn clean_relative(path: &str) -> Result<PathBuf, String> {
    if path.starts_with('/') {
        return Err("is an absolute path".into());
    }
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if parts.pop().is_none() {
                    return Err("climbs out of the target directory with '..'".into());
                }
            }
            part => parts.push(part),
        }
    }
    if parts.is_empty() {
        return Err("names no file".into());
    }
    Ok(parts.iter().collect())
}

/// Resolves a symlink target lexically from the link's directory; `None` when it leaves the root.
pub(crate) fn resolve_link_target(link: &Path, target: &Path) -> Option<PathBuf> {
    if target.is_absolute() {
        return None;
    }
    let mut parts: Vec<_> = link
        .parent()
        .map(|p| p.components().collect())
        .unwrap_or_default();
    for component in target.components() {
        match component {
            Component::Normal(_) => parts.push(component),
            Component::CurDir => {}
            Component::ParentDir => {
                parts.pop()?;
            }
            Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    Some(parts.iter().collect())
}

/// Uncompressed size past which [`Limits::max_ratio`] applies: below it, any ratio is fine (small
/// zero-filled files compress a thousand times and harm nobody).
pub const RATIO_FLOOR: u64 = 256 * 1024 * 1024;

/// How far one directory layer may expand.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest uncompressed tar size, in bytes.
    pub max_size: u64,
    /// Largest uncompressed/compressed ratio once past [`RATIO_FLOOR`]; 0 disables.
    pub max_ratio: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits::from(&oras_cache_api::agent::UnpackLimits::default())
    }
}

impl From<&oras_cache_api::agent::UnpackLimits> for Limits {
    fn from(limits: &oras_cache_api::agent::UnpackLimits) -> Self {
        Limits {
            max_size: limits
                .max_unpacked_size
                .unwrap_or(oras_cache_api::agent::DEFAULT_MAX_UNPACKED_SIZE),
            max_ratio: limits
                .max_unpack_ratio
                .unwrap_or(oras_cache_api::agent::DEFAULT_MAX_UNPACK_RATIO),
        }
    }
}

impl Limits {
    /// Whether `uncompressed` bytes out of a `compressed`-byte layer are still within the limits;
    /// the reason when not.
    pub fn check(&self, uncompressed: u64, compressed: u64) -> Result<(), String> {
        if uncompressed > self.max_size {
            return Err(format!(
                "it expands past {} bytes (--max-unpacked-size {})",
                self.max_size,
                crate::log::human_bytes(self.max_size)
            ));
        }
        if self.max_ratio > 0
            && uncompressed > RATIO_FLOOR
            && uncompressed > compressed.max(1).saturating_mul(self.max_ratio)
        {
            return Err(format!(
                "it expands past {uncompressed} bytes from {compressed} compressed, more than {} times (--max-unpack-ratio)",
                self.max_ratio
            ));
        }
        Ok(())
    }
}

/// Counts what the decompressor yields and fails once [`Limits`] are passed; the reason is kept
/// in `exceeded` so that the caller can tell this failure from a broken archive.
struct Bounded<R> {
    inner: R,
    limits: Limits,
    compressed: u64,
    read: u64,
    exceeded: std::rc::Rc<std::cell::RefCell<Option<String>>>,
}

impl<R: Read> Read for Bounded<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read += n as u64;
        if let Err(reason) = self.limits.check(self.read, self.compressed) {
            *self.exceeded.borrow_mut() = Some(reason.clone());
            return Err(io::Error::other(reason));
        }
        Ok(n)
    }
}

/// Places layers into one target directory and remembers what each wrote.
pub struct Placer {
    root: PathBuf,
    unpack: bool,
    claimed: Vec<(PathBuf, String)>,
    limits: Limits,
    created: Tracker,
    /// A directory no title may land in or hold (the agent's shared volume).
    forbidden: Option<PathBuf>,
}

impl Placer {
    /// Targets `root` (created if missing). `unpack: false` keeps directory layers as
    /// `<title>.tar.gz` files.
    pub fn new(root: &Path, unpack: bool) -> Result<Placer, PlaceError> {
        // The outermost directory this call creates, if any: a rollback removes it too.
        let outermost_missing = root
            .ancestors()
            .take_while(|a| !a.as_os_str().is_empty() && std::fs::symlink_metadata(a).is_err())
            .last()
            .map(Path::to_path_buf);
        let created = Tracker::new();
        std::fs::create_dir_all(root).map_err(io_err(root))?;
        if let Some(dir) = outermost_missing {
            created.record(&dir);
        }
        let root = root.canonicalize().map_err(io_err(root))?;
        Ok(Placer {
            root,
            unpack,
            claimed: Vec::new(),
            limits: Limits::default(),
            created,
            forbidden: None,
        })
    }

    /// The same placer refusing any title that would land in `dir` or hold it (the launcher
    /// forbids the agent's shared volume, which a working directory of `/` holds).
    pub fn forbid(mut self, dir: &Path) -> Placer {
        self.forbidden = Some(dir.to_path_buf());
        self
    }

    /// The same placer with other unpack limits.
    pub fn with_limits(mut self, limits: Limits) -> Placer {
        self.limits = limits;
        self
    }

    /// Removes everything this placer created (files, entries, directories), newest first: what
    /// a failed pull wrote. Paths that existed before are left alone.
    pub fn rollback(&mut self) {
        self.created.remove_all();
        self.claimed.clear();
    }

    /// Checks, writing nothing, that `layers` can all be claimed by `owner`: safe titles, no
    /// control characters, no two layers (nor an earlier owner) on one path. Run before the first
    /// layer is placed, so a conflict leaves nothing behind.
    pub fn precheck(&self, owner: &str, layers: &[Descriptor]) -> Result<(), PlaceError> {
        let mut trial = Placer {
            root: self.root.clone(),
            unpack: self.unpack,
            claimed: self.claimed.clone(),
            limits: self.limits,
            created: Tracker::new(),
            forbidden: self.forbidden.clone(),
        };
        for layer in layers {
            if let Some(title) = placed_title(layer, self.unpack) {
                trial.claim(owner, &title)?;
            }
        }
        Ok(())
    }

    /// The (canonical) target directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Places one layer whose verified content is in `blob`; `owner` names the input in errors.
    /// Returns the written path, or `None` for a layer without a title (skipped, as oras does).
    pub fn place_layer(
        &mut self,
        owner: &str,
        descriptor: &Descriptor,
        blob: &Path,
        mode: PlaceMode,
    ) -> Result<Option<PathBuf>, PlaceError> {
        let Some(title) = descriptor.title() else {
            crate::debug!(
                "{owner}: skipping layer {} without a title",
                descriptor.digest
            );
            return Ok(None);
        };
        if self.unpack && descriptor.is_unpack_directory() {
            let relative = self.claim(owner, title)?;
            self.unpack_directory(title, &relative, descriptor, blob)?;
            return Ok(Some(self.root.join(relative)));
        }
        let title = if descriptor.is_unpack_directory() {
            format!("{title}.tar.gz")
        } else {
            title.to_string()
        };
        let relative = self.claim(owner, &title)?;
        let destination = self.prepare_parents(&relative, |reason| PlaceError::UnsafeTitle {
            title: title.clone(),
            reason,
        })?;
        if std::fs::symlink_metadata(&destination).is_ok_and(|m| m.is_dir()) {
            return Err(PlaceError::Io {
                path: destination,
                source: io::Error::other("a directory is in the way of this file"),
            });
        }
        match mode {
            PlaceMode::Move => {
                // rename(2) replaces a symlink at the destination instead of following it.
                self.created
                    .create(&destination, || std::fs::rename(blob, &destination))
                    .map_err(io_err(&destination))?;
            }
            PlaceMode::Copy => {
                let parent = destination.parent().unwrap_or(&self.root);
                let mut temp = tempfile::Builder::new()
                    .prefix(".oras-agent-")
                    .permissions(crate::digest::readable())
                    .tempfile_in(parent)
                    .map_err(io_err(parent))?;
                let mut input = std::fs::File::open(blob).map_err(io_err(blob))?;
                let hasher =
                    copy_hashing(&mut input, &mut temp, None, &mut |_| {}).map_err(|error| {
                        match error {
                            CopyError::Read(source) => io_err(blob)(source),
                            other => io_err(&destination)(other.into()),
                        }
                    })?;
                let actual = hasher.finish();
                if actual != descriptor.digest {
                    return Err(PlaceError::BlobChanged {
                        title,
                        expected: descriptor.digest.clone(),
                        actual,
                    });
                }
                self.created
                    .create(&destination, || {
                        temp.persist(&destination).map(|_| ()).map_err(|e| e.error)
                    })
                    .map_err(io_err(&destination))?;
            }
        }
        crate::debug!("{owner}: wrote {}", destination.display());
        Ok(Some(destination))
    }

    /// Records that `owner` writes `title`, refusing unsafe titles and overlaps with what other
    /// owners (or the same one) claimed before. Returns the cleaned relative path.
    pub fn claim(&mut self, owner: &str, title: &str) -> Result<PathBuf, PlaceError> {
        check_title(title)?;
        let relative = clean_relative(title).map_err(|reason| PlaceError::UnsafeTitle {
            title: title.into(),
            reason,
        })?;
        if let Some(forbidden) = &self.forbidden {
            let absolute = self.root.join(&relative);
            if absolute.starts_with(forbidden) || forbidden.starts_with(&absolute) {
                return Err(PlaceError::UnsafeTitle {
                    title: title.into(),
                    reason: format!(
                        "would write into the agent's shared volume {}",
                        forbidden.display()
                    ),
                });
            }
        }
        for (path, first) in &self.claimed {
            if path.starts_with(&relative) || relative.starts_with(path) {
                return Err(PlaceError::Conflict {
                    path: relative.display().to_string(),
                    first: first.clone(),
                    second: owner.into(),
                });
            }
        }
        self.claimed.push((relative.clone(), owner.into()));
        Ok(relative)
    }

    /// Checks that no existing parent of `relative` is a symlink or a file, creates the missing
    /// ones, and returns the absolute destination.
    fn prepare_parents(
        &self,
        relative: &Path,
        refuse: impl Fn(String) -> PlaceError,
    ) -> Result<PathBuf, PlaceError> {
        let mut current = self.root.clone();
        let parents: Vec<_> = relative
            .parent()
            .map(|p| p.components().collect())
            .unwrap_or_default();
        for component in parents {
            current.push(component);
            match std::fs::symlink_metadata(&current) {
                Ok(metadata) if metadata.file_type().is_symlink() => {
                    return Err(refuse(format!(
                        "would be written through the symlink {}",
                        current.display()
                    )));
                }
                Ok(metadata) if metadata.is_dir() => {}
                Ok(_) => {
                    return Err(refuse(format!(
                        "{} is a file, not a directory",
                        current.display()
                    )));
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    self.created
                        .create(&current, || std::fs::create_dir(&current))
                        .map_err(io_err(&current))?;
                }
                Err(e) => return Err(io_err(&current)(e)),
            }
        }
        Ok(self.root.join(relative))
    }

    fn unpack_directory(
        &self,
        title: &str,
        relative_title: &Path,
        descriptor: &Descriptor,
        blob: &Path,
    ) -> Result<(), PlaceError> {
        // Pass 1: check every name and link, the size and the uncompressed digest, writing
        // nothing.
        let exceeded = std::rc::Rc::new(std::cell::RefCell::new(None));
        let too_large = |error: io::Error| match exceeded.borrow().clone() {
            Some(reason) => PlaceError::TooLarge {
                title: title.into(),
                reason,
            },
            None => io_err(blob)(error),
        };
        let bounded = |file: std::fs::File| Bounded {
            inner: GzDecoder::new(BufReader::new(file)),
            limits: self.limits,
            compressed: descriptor.size,
            read: 0,
            exceeded: exceeded.clone(),
        };
        let file = std::fs::File::open(blob).map_err(io_err(blob))?;
        let mut hashing = HashingReader::new(bounded(file));
        {
            let mut archive = tar::Archive::new(&mut hashing);
            let mut symlinks: HashSet<PathBuf> = HashSet::new();
            let mut files: HashSet<PathBuf> = HashSet::new();
            for entry in archive.entries().map_err(&too_large)? {
                let entry = entry.map_err(&too_large)?;
                let checked = check_entry(relative_title, &entry, &symlinks, Some(&files))
                    .map_err(|(entry, reason)| PlaceError::UnsafeEntry {
                        title: title.into(),
                        entry,
                        reason,
                    })?;
                match checked.kind {
                    EntryKind::Symlink => {
                        symlinks.insert(checked.path);
                    }
                    EntryKind::File | EntryKind::Hardlink(_) => {
                        files.insert(checked.path);
                    }
                    _ => {}
                }
            }
        }
        io::copy(&mut hashing, &mut io::sink()).map_err(&too_large)?;
        let actual = hashing.into_hasher().finish();
        if let Some(expected) = descriptor.annotations.get(mt::ANNOTATION_CONTENT_DIGEST)
            && *expected != actual.as_str()
        {
            return Err(PlaceError::ContentDigest {
                title: title.into(),
                expected: expected.clone(),
                actual,
            });
        }

        // Pass 2: extract, re-checking the disk for every parent (and the limits, should the
        // blob have changed in between).
        let file = std::fs::File::open(blob).map_err(io_err(blob))?;
        let mut archive = tar::Archive::new(bounded(file));
        let no_links = HashSet::new();
        // Directories opened up for their owner while entries are written below them, with
        // the mode each gets back once the layer is complete.
        let mut closed_directories: Vec<(PathBuf, u32)> = Vec::new();
        for entry in archive.entries().map_err(&too_large)? {
            let mut entry = entry.map_err(&too_large)?;
            let checked = check_entry(relative_title, &entry, &no_links, None).map_err(
                |(entry, reason)| PlaceError::UnsafeEntry {
                    title: title.into(),
                    entry,
                    reason,
                },
            )?;
            let entry_name = checked.path.display().to_string();
            let destination =
                self.prepare_parents(&checked.path, |reason| PlaceError::UnsafeEntry {
                    title: title.into(),
                    entry: entry_name.clone(),
                    reason,
                })?;
            let existing = std::fs::symlink_metadata(&destination).ok();
            match checked.kind {
                EntryKind::Directory => {
                    // As `oras pull` (oras-go v2.7.0 content/file/utils.go `makeDir`:
                    // `os.MkdirAll(path, header mode)`): a new directory gets the entry's
                    // permission bits less the umask, an existing one keeps its own.
                    let mode = entry.header().mode().unwrap_or(0o755) & 0o777;
                    if existing.as_ref().is_some_and(|m| m.is_dir()) {
                        continue;
                    }
                    if existing.is_some() {
                        std::fs::remove_file(&destination).map_err(io_err(&destination))?;
                    }
                    self.created
                        .create(&destination, || {
                            use std::os::unix::fs::DirBuilderExt;
                            std::fs::DirBuilder::new().mode(mode).create(&destination)
                        })
                        .map_err(io_err(&destination))?;
                    // A directory its owner cannot write or enter (0500, 0600) would stop the
                    // entries below it when the agent is not root (oras pull then fails); it
                    // is opened up while they are written and gets its mode back at the end.
                    use std::os::unix::fs::PermissionsExt;
                    let made = std::fs::symlink_metadata(&destination)
                        .map_err(io_err(&destination))?
                        .permissions()
                        .mode()
                        & 0o7777;
                    if made & 0o700 != 0o700 {
                        std::fs::set_permissions(
                            &destination,
                            std::fs::Permissions::from_mode(made | 0o700),
                        )
                        .map_err(io_err(&destination))?;
                        closed_directories.push((destination, made));
                    }
                    continue;
                }
                _ => {
                    if let Some(m) = existing {
                        if m.is_dir() {
                            return Err(PlaceError::Io {
                                path: destination,
                                source: io::Error::other("a directory is in the way of this entry"),
                            });
                        }
                        std::fs::remove_file(&destination).map_err(io_err(&destination))?;
                    }
                }
            }
            match checked.kind {
                EntryKind::File => {
                    // As `oras pull` (oras-go v2.7.0 content/file/utils.go `writeFile`, which
                    // creates the file with the entry's mode, and `extractTarDirectory`, which
                    // restores no more unless asked to): the entry's permission bits less the
                    // umask. Set-user-ID, set-group-ID and sticky bits are never taken from an
                    // archive (README, "Security").
                    let mode = entry.header().mode().unwrap_or(0o644) & 0o777;
                    let mtime = entry.header().mtime().ok();
                    let mut output = self
                        .created
                        .create(&destination, || {
                            use std::os::unix::fs::OpenOptionsExt;
                            std::fs::OpenOptions::new()
                                .write(true)
                                .create_new(true)
                                .mode(mode)
                                .open(&destination)
                        })
                        .map_err(io_err(&destination))?;
                    io::copy(&mut entry, &mut output).map_err(|e| {
                        if exceeded.borrow().is_some() {
                            too_large(e)
                        } else {
                            io_err(&destination)(e)
                        }
                    })?;
                    if let Some(mtime) = mtime {
                        let time = std::time::UNIX_EPOCH + std::time::Duration::from_secs(mtime);
                        let _ = output.set_modified(time);
                    }
                }
                EntryKind::Symlink => {
                    let target = entry
                        .link_name()
                        .map_err(io_err(&destination))?
                        .unwrap_or_default()
                        .into_owned();
                    self.created
                        .create(&destination, || {
                            std::os::unix::fs::symlink(&target, &destination)
                        })
                        .map_err(io_err(&destination))?;
                }
                EntryKind::Hardlink(source) => {
                    let source = self.root.join(source);
                    let metadata = std::fs::symlink_metadata(&source).map_err(io_err(&source))?;
                    let resolved = source.canonicalize().map_err(io_err(&source))?;
                    if !metadata.is_file() || !resolved.starts_with(&self.root) {
                        return Err(PlaceError::UnsafeEntry {
                            title: title.into(),
                            entry: entry_name,
                            reason:
                                "is a hardlink to something that is not a regular file of the layer"
                                    .into(),
                        });
                    }
                    self.created
                        .create(&destination, || std::fs::hard_link(&source, &destination))
                        .map_err(io_err(&destination))?;
                }
                EntryKind::Directory | EntryKind::Skipped => {}
            }
        }
        // Innermost first, so a parent closed to its owner cannot stop the next chmod.
        for (directory, mode) in closed_directories.iter().rev() {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(directory, std::fs::Permissions::from_mode(*mode))
                .map_err(io_err(directory))?;
        }
        Ok(())
    }
}

/// Refuses titles with control characters (a newline or an escape sequence would forge or hide
/// log lines; errors print titles escaped).
fn check_title(title: &str) -> Result<(), PlaceError> {
    if title.chars().any(char::is_control) {
        return Err(PlaceError::UnsafeTitle {
            title: title.into(),
            reason: "contains control characters".into(),
        });
    }
    Ok(())
}

/// Checks every title of `layers` for control characters before any is printed.
pub fn check_titles(layers: &[Descriptor]) -> Result<(), PlaceError> {
    layers
        .iter()
        .filter_map(Descriptor::title)
        .try_for_each(check_title)
}

/// The relative path a layer is placed at: its title, or `<title>.tar.gz` for a directory layer
/// kept packed.
fn placed_title(layer: &Descriptor, unpack: bool) -> Option<String> {
    let title = layer.title()?;
    if layer.is_unpack_directory() && !unpack {
        Some(format!("{title}.tar.gz"))
    } else {
        Some(title.to_string())
    }
}

enum EntryKind {
    Directory,
    File,
    Symlink,
    /// Target, relative to the root.
    Hardlink(PathBuf),
    Skipped,
}

struct CheckedEntry {
    path: PathBuf,
    kind: EntryKind,
}

/// Lexical checks of one tar entry: inside the layer's title, not through a symlink of the
/// archive, links confined. Errors are `(entry name, reason)`.
fn check_entry<R: Read>(
    title: &Path,
    entry: &tar::Entry<R>,
    symlinks: &HashSet<PathBuf>,
    files: Option<&HashSet<PathBuf>>,
) -> Result<CheckedEntry, (String, String)> {
    let raw = entry.path_bytes();
    let name = String::from_utf8_lossy(&raw).into_owned();
    let fail = |reason: String| (name.clone(), reason);
    if name.chars().any(char::is_control) {
        return Err(fail("contains control characters".into()));
    }
    let path = clean_relative(
        std::ffi::OsStr::from_bytes(&raw)
            .to_str()
            .ok_or_else(|| fail("is not UTF-8".into()))?,
    )
    .map_err(&fail)?;
    if !path.starts_with(title) {
        return Err(fail(format!(
            "lies outside the layer's title {}",
            title.display()
        )));
    }
    for ancestor in path.ancestors().skip(1) {
        if symlinks.contains(ancestor) {
            return Err(fail(format!(
                "would be written through the symlink {} of the same archive",
                ancestor.display()
            )));
        }
    }
    let entry_type = entry.header().entry_type();
    let kind = if entry_type.is_dir() {
        EntryKind::Directory
    } else if entry_type.is_file() || entry_type == tar::EntryType::Continuous {
        EntryKind::File
    } else if entry_type.is_symlink() {
        let target = entry
            .link_name()
            .ok()
            .flatten()
            .ok_or_else(|| fail("is a symlink without a target".into()))?;
        if resolve_link_target(&path, &target).is_none() {
            return Err(fail(format!(
                "is a symlink to {} which points outside the target directory",
                target.display()
            )));
        }
        EntryKind::Symlink
    } else if entry_type.is_hard_link() {
        let target_raw = entry
            .link_name_bytes()
            .ok_or_else(|| fail("is a hardlink without a target".into()))?;
        let target_name = String::from_utf8_lossy(&target_raw).into_owned();
        let target = clean_relative(&target_name)
            .map_err(|reason| fail(format!("is a hardlink to {target_name:?} which {reason}")))?;
        if !target.starts_with(title) {
            return Err(fail(format!(
                "is a hardlink to {target_name:?} outside the layer's title"
            )));
        }
        for ancestor in target.ancestors() {
            if symlinks.contains(ancestor) {
                return Err(fail(format!(
                    "is a hardlink through the symlink {}",
                    ancestor.display()
                )));
            }
        }
        if files.is_some_and(|files| !files.contains(&target)) {
            return Err(fail(format!(
                "is a hardlink to {target_name:?} which is not an earlier file of the archive"
            )));
        }
        EntryKind::Hardlink(target)
    } else if matches!(
        entry_type,
        tar::EntryType::XGlobalHeader
            | tar::EntryType::XHeader
            | tar::EntryType::GNULongName
            | tar::EntryType::GNULongLink
    ) {
        // Metadata of the archive itself, not a file (the tar crate applies what it needs).
        EntryKind::Skipped
    } else {
        // oras-go (pkg/content/file's extractTarDirectory) writes only directories, regular
        // files and links and drops the rest without a word; refusing says why a file is missing.
        let kind = match entry_type {
            tar::EntryType::Char => "a character device".to_string(),
            tar::EntryType::Block => "a block device".to_string(),
            tar::EntryType::Fifo => "a FIFO".to_string(),
            tar::EntryType::GNUSparse => "a sparse file".to_string(),
            other => format!("an entry of tar type {:?}", other.as_byte() as char),
        };
        return Err(fail(format!(
            "is {kind}; only files, directories and links are unpacked"
        )));
    };
    Ok(CheckedEntry { path, kind })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_relative_refuses_escapes_and_keeps_inner_dots() {
        assert_eq!(clean_relative("a/./b//c").unwrap(), PathBuf::from("a/b/c"));
        assert_eq!(clean_relative("a/../b").unwrap(), PathBuf::from("b"));
        assert!(clean_relative("../x").is_err());
        assert!(clean_relative("a/../../x").is_err());
        assert!(clean_relative("/etc/passwd").is_err());
        assert!(clean_relative(".").is_err());
    }

    #[test]
    fn limits_refuse_past_the_size_and_past_the_ratio_beyond_the_floor() {
        let limits = Limits {
            max_size: 10 * RATIO_FLOOR,
            max_ratio: 200,
        };
        assert!(limits.check(10 * RATIO_FLOOR, RATIO_FLOOR).is_ok());
        let error = limits.check(10 * RATIO_FLOOR + 1, RATIO_FLOOR).unwrap_err();
        assert!(error.contains("--max-unpacked-size"), "{error}");
        // Below the floor any ratio passes: small zero-filled files are harmless.
        assert!(limits.check(RATIO_FLOOR, 1).is_ok());
        let error = limits.check(RATIO_FLOOR + 1, 1024 * 1024).unwrap_err();
        assert!(error.contains("--max-unpack-ratio"), "{error}");
        assert!(limits.check(RATIO_FLOOR + 1, RATIO_FLOOR / 100).is_ok());
        let no_ratio = Limits {
            max_ratio: 0,
            ..limits
        };
        assert!(no_ratio.check(RATIO_FLOOR + 1, 1).is_ok());
        assert_eq!(
            Limits::default(),
            Limits {
                max_size: 10 << 30,
                max_ratio: 200
            }
        );
    }

    #[test]
    fn link_targets_resolve_from_the_link_directory() {
        let link = Path::new("d/sub/link");
        assert_eq!(
            resolve_link_target(link, Path::new("../f")),
            Some(PathBuf::from("d/f"))
        );
        assert_eq!(resolve_link_target(link, Path::new("../../../x")), None);
        assert_eq!(resolve_link_target(link, Path::new("/etc")), None);
    }
}
