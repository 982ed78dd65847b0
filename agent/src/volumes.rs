//! The `oras-volumes` role (issue 13): fills each artifact volume with one artifact before the
//! application starts.
//!
//! The policy turns every inline CSI volume of the ORAS driver into an `emptyDir` and mounts it
//! in the `oras-volumes` init container; this role pulls the volume's artifact into that
//! directory: the manifest, the layers the media-type filter keeps (several at a time), every
//! blob verified, files under their titles and directory layers unpacked with the pull's
//! path-safety rules and size limits.
//!
//! Directory layers are unpacked when `io.deis.oras.content.unpack` is `"true"`, as the file
//! store of oras-go v2 does (github.com/oras-project/oras-go, `content/file/file.go`,
//! `Store.push`). That store stages a directory layer's gzip in `os.CreateTemp("")`, i.e. in
//! `TMPDIR`, which a read-only root filesystem refuses; here nothing needs `TMPDIR`: everything
//! is staged in a hidden directory inside the volume itself (`.oras-volume-*`, which also makes
//! placing a blob a rename), and only once the whole artifact is in place there does it replace
//! the volume's previous content. A failure (missing artifact, wrong digest, registry down)
//! removes the staging directory and leaves the volume as it was; a re-run after a pod restart
//! replaces the content instead of mixing two artifacts. Files are made readable by every UID
//! (0644, 0755 for executables and directories): the application may run as another user.

use crate::cleanup::Tracker;
use crate::layout::Layout;
use crate::manifest::Descriptor;
use crate::reference::{Reference, ReferenceError};
use crate::registry::{ClientOptions, NetworkOverrides, RegistryClient, RegistryError};
use crate::transfer::{TransferError, download_layers, fetch_manifest, place_layers};
use crate::unpack::{Limits, PlaceMode, Placer};
use crate::{auth::Credentials, debug, info, warn};
use oras_cache_api::agent::{UnpackLimits, VolumePull, VolumesArgs};
use oras_cache_api::media_types as mt;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// Prefix of the staging directory inside a volume; leftovers of a killed run are removed.
pub const STAGING_PREFIX: &str = ".oras-volume-";

/// Why a volume could not be filled; it names the volume and the reference.
#[derive(Debug, thiserror::Error)]
#[error("volume {volume:?} ({reference}): {failure}")]
pub struct VolumeError {
    /// The pod's volume name.
    pub volume: String,
    /// The artifact reference, as given.
    pub reference: String,
    /// What went wrong (boxed: transfer errors are large, and this one travels far).
    pub failure: Box<VolumeFailure>,
}

/// What went wrong with one volume.
#[derive(Debug, thiserror::Error)]
pub enum VolumeFailure {
    /// The spec entry is unusable.
    #[error("{0}")]
    Spec(String),
    /// The reference does not parse.
    #[error(transparent)]
    Reference(#[from] ReferenceError),
    /// Pulling or placing the artifact failed.
    #[error("{0}{hint}", hint = credentials_hint(.0))]
    Transfer(#[from] TransferError),
    /// The media-type filter keeps no layer.
    #[error(
        "no layer has media type {wanted}; the artifact's layers are {present}; fix the volume attribute oras.artifact.layers.mediatype"
    )]
    NoMatchingLayer {
        /// The media types asked for.
        wanted: String,
        /// The media types the artifact has.
        present: String,
    },
    /// The volume's directory could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
}

impl From<RegistryError> for VolumeFailure {
    fn from(error: RegistryError) -> Self {
        VolumeFailure::Transfer(error.into())
    }
}

/// For a refused pull, where the volume's credentials come from.
fn credentials_hint(error: &TransferError) -> &'static str {
    match error {
        TransferError::Registry(RegistryError::Unauthorized { .. }) => {
            " (a volume's credentials come from the Secret its csi.nodePublishSecretRef names)"
        }
        _ => "",
    }
}

fn io_failure(path: &Path) -> impl FnOnce(io::Error) -> VolumeFailure + '_ {
    move |source| VolumeFailure::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Runs the role: checks the whole spec, then fills the volumes in order; the first failure
/// ends the run (the pod cannot start anyway).
pub fn run(
    args: &VolumesArgs,
    network: &NetworkOverrides,
    limits: &UnpackLimits,
) -> Result<(), VolumeError> {
    let references = check_spec(&args.pulls)?;
    for (pull, reference) in args.pulls.iter().zip(references) {
        let files = fill(pull, &reference, network, Limits::from(limits))
            .map_err(|failure| error(pull, failure))?;
        info!(
            "volume {:?}: {} filled from {reference} ({files} path(s))",
            pull.volume, pull.path
        );
    }
    Ok(())
}

fn error(pull: &VolumePull, failure: VolumeFailure) -> VolumeError {
    VolumeError {
        volume: pull.volume.clone(),
        reference: pull.reference.clone(),
        failure: Box::new(failure),
    }
}

/// Checks every entry before anything is pulled: a name, a reference that parses, an absolute
/// path that is not `/` and is neither inside nor around another volume's (filling one would
/// replace the other's content).
pub fn check_spec(pulls: &[VolumePull]) -> Result<Vec<Reference>, VolumeError> {
    let spec_error = |pull: &VolumePull, reason: String| error(pull, VolumeFailure::Spec(reason));
    let mut references = Vec::new();
    for (index, pull) in pulls.iter().enumerate() {
        if pull.volume.is_empty() {
            return Err(spec_error(
                pull,
                format!("spec entry #{index} has no volume name"),
            ));
        }
        let path = Path::new(&pull.path);
        if !path.is_absolute() || path.parent().is_none() {
            return Err(spec_error(
                pull,
                format!(
                    "path {:?} must be an absolute directory other than /",
                    pull.path
                ),
            ));
        }
        for other in &pulls[..index] {
            let other_path = Path::new(&other.path);
            if path.starts_with(other_path) || other_path.starts_with(path) {
                return Err(spec_error(
                    pull,
                    format!(
                        "path {} overlaps volume {:?}'s {}",
                        pull.path, other.volume, other.path
                    ),
                ));
            }
        }
        let reference = Reference::parse(&pull.reference).map_err(|e| error(pull, e.into()))?;
        references.push(reference);
    }
    Ok(references)
}

/// The layers `media_types` keeps (every layer but the empty config when it is empty).
pub fn select_layers(layers: &[Descriptor], media_types: &[String]) -> Vec<Descriptor> {
    layers
        .iter()
        .filter(|layer| layer.media_type != mt::EMPTY_CONFIG)
        .filter(|layer| media_types.is_empty() || media_types.contains(&layer.media_type))
        .cloned()
        .collect()
}

/// The client of one volume: its own plain-HTTP setting and, with a prefix, its own Secret.
fn client_for(
    pull: &VolumePull,
    network: &NetworkOverrides,
) -> Result<RegistryClient, RegistryError> {
    let mut options = ClientOptions::new(pull.plain_http);
    if let Some(prefix) = &pull.credentials_env_prefix {
        options.credentials = Credentials::FromPrefixedEnvironment(prefix.clone());
    }
    RegistryClient::new(network.apply(options))
}

/// Fills one volume; returns how many top-level paths it holds now.
fn fill(
    pull: &VolumePull,
    reference: &Reference,
    network: &NetworkOverrides,
    limits: Limits,
) -> Result<usize, VolumeFailure> {
    let root = Path::new(&pull.path);
    std::fs::create_dir_all(root).map_err(io_failure(root))?;
    remove_entries(root, |name| {
        name.as_encoded_bytes()
            .starts_with(STAGING_PREFIX.as_bytes())
    })?;
    let client = client_for(pull, network)?;
    let (_, manifest) = fetch_manifest(&client, reference)?;
    let layers = select_layers(&manifest.layers, &pull.media_types);
    if layers.is_empty() && !pull.media_types.is_empty() {
        let mut present: Vec<&str> = manifest
            .layers
            .iter()
            .map(|l| l.media_type.as_str())
            .collect();
        present.dedup();
        return Err(VolumeFailure::NoMatchingLayer {
            wanted: pull.media_types.join(", "),
            present: if present.is_empty() {
                "none".into()
            } else {
                present.join(", ")
            },
        });
    }
    for untitled in layers.iter().filter(|layer| layer.title().is_none()) {
        // As oras does, a layer without a title is not written; say so, since the volume
        // misses it.
        warn!(
            "volume {:?}: layer {} has no title ({}); it is not written",
            pull.volume,
            untitled.digest,
            mt::ANNOTATION_TITLE
        );
    }
    // Tracked so that a signal (with the cleanup of `main` installed) removes it; a failure
    // removes it when the TempDir drops.
    let tracker = Tracker::new();
    let staging = tracker
        .tempdir(STAGING_PREFIX, Some(root))
        .map_err(io_failure(root))?;
    let layout = Layout::create(&staging.path().join("layout")).map_err(TransferError::from)?;
    let concurrency = pull.effective_concurrency() as usize;
    debug!(
        "volume {:?}: {} layer(s), {concurrency} at a time",
        pull.volume,
        layers.len()
    );
    download_layers(&client, reference, &layout, &layers, concurrency)?;
    let content = staging.path().join("content");
    let mut placer = Placer::new(&content, true)
        .map_err(TransferError::from)?
        .with_limits(limits);
    place_layers(
        &layout,
        &layers,
        &mut placer,
        &format!("volume {:?}", pull.volume),
        PlaceMode::Move,
    )?;
    make_readable(&content).map_err(|(path, source)| VolumeFailure::Io { path, source })?;
    // From here on the old content goes: the new one is complete and verified.
    let keep = staging.path().file_name().map(|n| n.to_os_string());
    remove_entries(root, |name| Some(name) != keep.as_deref())?;
    let mut moved = 0;
    for entry in std::fs::read_dir(&content).map_err(io_failure(&content))? {
        let entry = entry.map_err(io_failure(&content))?;
        let destination = root.join(entry.file_name());
        std::fs::rename(entry.path(), &destination).map_err(io_failure(&destination))?;
        moved += 1;
    }
    Ok(moved)
}

/// Removes every entry of `dir` whose name `matches`.
fn remove_entries(
    dir: &Path,
    matches: impl Fn(&std::ffi::OsStr) -> bool,
) -> Result<(), VolumeFailure> {
    for entry in std::fs::read_dir(dir).map_err(io_failure(dir))? {
        let entry = entry.map_err(io_failure(dir))?;
        if !matches(&entry.file_name()) {
            continue;
        }
        let path = entry.path();
        let removed = match entry.file_type() {
            Ok(kind) if kind.is_dir() => std::fs::remove_dir_all(&path),
            _ => std::fs::remove_file(&path),
        };
        removed.map_err(io_failure(&path))?;
    }
    Ok(())
}

/// The mode a placed file or directory gets so that any UID can read it: directories 0755,
/// files 0644, or 0755 when any execute bit was set (scripts of a directory artifact stay
/// runnable). Setuid, setgid and sticky bits go.
pub fn readable_mode(is_dir: bool, mode: u32) -> u32 {
    if is_dir || mode & 0o111 != 0 {
        0o755
    } else {
        0o644
    }
}

/// Applies [`readable_mode`] to `dir` and everything under it (symlinks are left alone: their
/// mode means nothing).
fn make_readable(dir: &Path) -> Result<(), (PathBuf, io::Error)> {
    let with_path = |path: &Path| {
        let path = path.to_path_buf();
        move |e| (path, e)
    };
    let metadata = std::fs::symlink_metadata(dir).map_err(with_path(dir))?;
    if metadata.file_type().is_symlink() {
        return Ok(());
    }
    let mode = readable_mode(metadata.is_dir(), metadata.permissions().mode());
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode)).map_err(with_path(dir))?;
    if metadata.is_dir() {
        for entry in std::fs::read_dir(dir).map_err(with_path(dir))? {
            make_readable(&entry.map_err(with_path(dir))?.path())?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pull(volume: &str, path: &str) -> VolumePull {
        VolumePull {
            volume: volume.into(),
            path: path.into(),
            reference: "r:5000/a:1".into(),
            ..Default::default()
        }
    }

    #[test]
    fn the_spec_is_checked_whole_before_anything_is_pulled() {
        assert_eq!(
            check_spec(&[pull("a", "/v/a"), pull("b", "/v/b")])
                .unwrap()
                .len(),
            2
        );
        let cases = [
            (vec![pull("", "/v/a")], "no volume name"),
            (vec![pull("a", "v/a")], "absolute"),
            (vec![pull("a", "/")], "other than /"),
            (vec![pull("a", "/v/a"), pull("b", "/v/a/b")], "overlaps"),
            (vec![pull("a", "/v/a/b"), pull("b", "/v/a")], "overlaps"),
            (
                vec![VolumePull {
                    reference: "not a reference".into(),
                    ..pull("a", "/v/a")
                }],
                "not a reference",
            ),
        ];
        for (pulls, expected) in cases {
            let message = check_spec(&pulls).unwrap_err().to_string();
            assert!(message.contains(expected), "{message}");
            assert!(message.starts_with("volume "), "{message}");
        }
    }

    #[test]
    fn the_media_type_filter_keeps_only_its_layers_and_never_the_empty_config() {
        let layer = |media_type: &str| Descriptor {
            media_type: media_type.into(),
            digest: crate::Digest::of_bytes(media_type.as_bytes()),
            size: 1,
            annotations: Default::default(),
            artifact_type: None,
        };
        let layers = [layer("a/sif"), layer(mt::EMPTY_CONFIG), layer("b/jar")];
        assert_eq!(select_layers(&layers, &[]).len(), 2);
        let kept = select_layers(&layers, &["b/jar".into()]);
        assert_eq!(kept.len(), 1);
        assert_eq!(kept[0].media_type, "b/jar");
        assert!(select_layers(&layers, &["c/none".into()]).is_empty());
    }

    #[test]
    fn placed_files_become_readable_by_every_uid() {
        assert_eq!(readable_mode(true, 0o700), 0o755);
        assert_eq!(readable_mode(false, 0o600), 0o644);
        assert_eq!(readable_mode(false, 0o4700), 0o755);
        assert_eq!(readable_mode(false, 0o640), 0o644);
    }
}
