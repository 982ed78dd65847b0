//! Whole artifacts: push files and layouts, pull to layouts and directories.
//!
//! Order matters for consistency: blobs (config and layers) go up first and the manifest with its
//! tag last, so an interrupted push never leaves a tag pointing at missing blobs. Pulls download
//! every blob (each verified before it is renamed into place) before anything is placed.

use crate::layout::{Layout, LayoutError};
use crate::manifest::{Descriptor, ImageManifest, ManifestError};
use crate::pack::{PackError, PackedLayer};
use crate::reference::Reference;
use crate::registry::{BlobInfo, PulledManifest, RegistryClient, RegistryError};
use crate::unpack::{Limits, PlaceError, PlaceMode, Placer};
use crate::{Digest, info};
use oras_cache_api::media_types as mt;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Largest config blob pulled into a layout (configs of artifacts are tiny).
const MAX_CONFIG_BYTES: u64 = 4 * 1024 * 1024;

/// Errors of whole-artifact transfers.
#[derive(Debug, thiserror::Error)]
pub enum TransferError {
    /// Talking to the registry failed.
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// Packing the paths failed.
    #[error(transparent)]
    Pack(#[from] PackError),
    /// The layout on disk is unusable.
    #[error(transparent)]
    Layout(#[from] LayoutError),
    /// Placing the layers failed.
    #[error(transparent)]
    Place(#[from] PlaceError),
    /// The pulled manifest is unusable.
    #[error("{reference}: {source}")]
    Manifest {
        /// The reference.
        reference: String,
        /// What is wrong.
        source: ManifestError,
    },
    /// A scratch directory could not be made.
    #[error("cannot create a temporary directory in {path}: {source}")]
    Scratch {
        /// Where.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
}

/// Builds the manifest of packed layers with the empty config, as `oras push` does.
pub fn artifact_manifest(layers: &[PackedLayer]) -> ImageManifest {
    let mut annotations = BTreeMap::new();
    annotations.insert(mt::ANNOTATION_CREATED.to_string(), rfc3339_now());
    ImageManifest::artifact(
        mt::DEFAULT_ARTIFACT_TYPE,
        layers.iter().map(|l| l.descriptor.clone()).collect(),
        annotations,
    )
}

/// Packs `paths` and pushes them as one artifact to `reference`; returns the manifest digest.
pub fn push_paths(
    client: &RegistryClient,
    reference: &Reference,
    paths: &[PathBuf],
) -> Result<Digest, TransferError> {
    // Tracked so that an interrupted push (with the signal cleanup installed) removes its packed
    // layers too; a finished or failed one removes them when the TempDir drops.
    let tracker = crate::cleanup::Tracker::new();
    let scratch = tracker
        .tempdir("oras-agent-push-", None)
        .map_err(|source| TransferError::Scratch {
            path: std::env::temp_dir(),
            source,
        })?;
    let layers = crate::pack::pack_paths(paths, scratch.path())?;
    let manifest = artifact_manifest(&layers);
    client.push_blob_bytes(reference, b"{}")?;
    for layer in &layers {
        push_layer(client, reference, &layer.descriptor, &layer.content)?;
    }
    let digest = client.push_manifest(reference, &manifest.to_bytes(), mt::OCI_MANIFEST)?;
    info!("pushed {reference}@{digest}");
    Ok(digest)
}

fn push_layer(
    client: &RegistryClient,
    reference: &Reference,
    descriptor: &Descriptor,
    content: &Path,
) -> Result<(), RegistryError> {
    info!("pushing {}", describe(descriptor));
    client.push_blob_file_with_digest(
        reference,
        content,
        &BlobInfo {
            digest: descriptor.digest.clone(),
            size: descriptor.size,
        },
    )
}

/// A layer as the log names it: `title (digest, size)`.
fn describe(layer: &Descriptor) -> String {
    format!(
        "{} ({}, {})",
        layer.title().unwrap_or("untitled layer"),
        layer.digest,
        crate::log::human_bytes(layer.size)
    )
}

/// Packs `paths` into a fresh OCI layout at `root` (files are copied in, directories tarred in).
pub fn pack_into_layout(paths: &[PathBuf], root: &Path) -> Result<Layout, TransferError> {
    let layout = Layout::create(root)?;
    let layers = crate::pack::pack_paths(paths, root)?;
    let mut stored = Vec::new();
    for layer in layers {
        if layer.descriptor.media_type == mt::TAR_GZIP_LAYER && layer.content.starts_with(root) {
            layout.adopt_blob_file(&layer.content, &layer.descriptor.digest)?;
        } else {
            let (digest, size) = layout.copy_blob_file(&layer.content)?;
            if digest != layer.descriptor.digest || size != layer.descriptor.size {
                return Err(TransferError::Pack(PackError::Io {
                    path: layer.content.clone(),
                    source: std::io::Error::other("the file changed while it was packed"),
                }));
            }
        }
        stored.push(layer);
    }
    layout.write_blob_bytes(b"{}")?;
    let manifest = artifact_manifest(&stored);
    layout.set_manifest(&manifest.to_bytes(), mt::OCI_MANIFEST, None)?;
    Ok(layout)
}

/// Pushes the artifact of a layout to `reference`: blobs first, the manifest and tag last.
pub fn push_layout(
    client: &RegistryClient,
    layout: &Layout,
    reference: &Reference,
) -> Result<Digest, TransferError> {
    let (manifest, descriptor, bytes) = layout.manifest()?;
    let config_path = layout.blob_path(&manifest.config.digest);
    if config_path.is_file() {
        push_layer(client, reference, &manifest.config, &config_path)?;
    } else if manifest.config.digest == crate::pack::empty_config_digest() {
        client.push_blob_bytes(reference, b"{}")?;
    }
    for layer in &manifest.layers {
        push_layer(client, reference, layer, &layout.blob_path(&layer.digest))?;
    }
    let digest = client.push_manifest(reference, &bytes, &descriptor.media_type)?;
    info!("pushed {reference}@{digest}");
    Ok(digest)
}

/// Pulls and parses the manifest `reference` names; titles with control characters are refused
/// before anything prints them.
pub fn fetch_manifest(
    client: &RegistryClient,
    reference: &Reference,
) -> Result<(PulledManifest, ImageManifest), TransferError> {
    let pulled = client.pull_manifest(reference)?;
    let manifest = ImageManifest::parse(&pulled.bytes, &pulled.media_type).map_err(|source| {
        TransferError::Manifest {
            reference: reference.to_string(),
            source,
        }
    })?;
    crate::unpack::check_titles(&manifest.layers)?;
    Ok((pulled, manifest))
}

/// Pulls the artifact `reference` names into an OCI layout at `root`: every blob verified, then
/// `index.json` written last. Returns the manifest.
pub fn pull_to_layout(
    client: &RegistryClient,
    reference: &Reference,
    root: &Path,
) -> Result<ImageManifest, TransferError> {
    let (pulled, manifest) = fetch_manifest(client, reference)?;
    let layout = Layout::create(root)?;
    if manifest.config.size <= MAX_CONFIG_BYTES && !layout.has_blob(&manifest.config.digest) {
        let config =
            client.pull_blob_bytes(reference, &manifest.config.digest, MAX_CONFIG_BYTES)?;
        layout.write_blob_bytes(&config)?;
    }
    download_layers(client, reference, &layout, &manifest.layers, 1)?;
    layout.set_manifest(
        &pulled.bytes,
        &pulled.media_type,
        Some(&reference.to_string()),
    )?;
    info!("pulled {reference}@{}", pulled.digest);
    Ok(manifest)
}

/// Downloads the blobs of `layers` into `layout` (each verified before it is renamed into
/// place; blobs the layout has, or that two layers share, once), up to `concurrency` at a time.
/// After the first failure no further download starts; the first error is returned.
pub fn download_layers(
    client: &RegistryClient,
    reference: &Reference,
    layout: &Layout,
    layers: &[Descriptor],
    concurrency: usize,
) -> Result<(), TransferError> {
    let mut seen = std::collections::HashSet::new();
    let wanted: Vec<&Descriptor> = layers
        .iter()
        .filter(|layer| !layout.has_blob(&layer.digest) && seen.insert(&layer.digest))
        .collect();
    let download = |layer: &Descriptor| -> Result<(), TransferError> {
        info!("pulling {}", describe(layer));
        client.pull_blob_to_file(
            reference,
            &layer.digest,
            Some(layer.size),
            &layout.blob_path(&layer.digest),
        )?;
        Ok(())
    };
    let workers = concurrency.clamp(1, wanted.len().max(1));
    if workers == 1 {
        return wanted.into_iter().try_for_each(download);
    }
    // Workers take the next layer from a shared counter, so a big layer does not hold up the
    // small ones queued behind it.
    let next = std::sync::atomic::AtomicUsize::new(0);
    let failed = std::sync::atomic::AtomicBool::new(false);
    let first_error: std::sync::Mutex<Option<TransferError>> = std::sync::Mutex::new(None);
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| {
                use std::sync::atomic::Ordering;
                while !failed.load(Ordering::SeqCst) {
                    let Some(layer) = wanted.get(next.fetch_add(1, Ordering::SeqCst)) else {
                        break;
                    };
                    if let Err(error) = download(layer) {
                        failed.store(true, Ordering::SeqCst);
                        first_error
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .get_or_insert(error);
                    }
                }
            });
        }
    });
    match first_error.into_inner().unwrap_or_else(|e| e.into_inner()) {
        Some(error) => Err(error),
        None => Ok(()),
    }
}

/// Places every titled layer of a layout with `placer`; `owner` names the input in errors.
pub fn place_layout(
    layout: &Layout,
    placer: &mut Placer,
    owner: &str,
    mode: PlaceMode,
) -> Result<Vec<PathBuf>, TransferError> {
    let (manifest, _, _) = layout.manifest()?;
    place_layers(layout, &manifest.layers, placer, owner, mode)
}

/// Places `layers`, whose blobs are in `layout`, with `placer`; untitled ones are skipped, as
/// oras does. `owner` names the input in errors.
pub fn place_layers(
    layout: &Layout,
    layers: &[Descriptor],
    placer: &mut Placer,
    owner: &str,
    mode: PlaceMode,
) -> Result<Vec<PathBuf>, TransferError> {
    let placed: Vec<Descriptor> = layers
        .iter()
        .filter(|layer| layer.media_type != mt::EMPTY_CONFIG)
        .cloned()
        .collect();
    // Every title is claimed on trial first: two layers on one path fail before either is
    // written.
    placer.precheck(owner, &placed)?;
    // Layers with the same content share one blob: only its last use may consume it.
    let mut uses: std::collections::HashMap<&Digest, usize> = std::collections::HashMap::new();
    for layer in layers {
        *uses.entry(&layer.digest).or_default() += 1;
    }
    let mut written = Vec::new();
    for layer in layers {
        let remaining = uses.get_mut(&layer.digest).map(|n| {
            *n -= 1;
            *n
        });
        if layer.media_type == mt::EMPTY_CONFIG {
            continue;
        }
        let blob = layout.blob_path(&layer.digest);
        let mode = if remaining == Some(0) {
            mode
        } else {
            PlaceMode::Copy
        };
        if let Some(path) = placer.place_layer(owner, layer, &blob, mode)? {
            written.push(path);
        }
    }
    Ok(written)
}

/// `oras pull`: pulls `reference` and places its layers into `out_dir`, with the default unpack
/// limits (see [`pull_to_dir_with_limits`]).
pub fn pull_to_dir(
    client: &RegistryClient,
    reference: &Reference,
    out_dir: &Path,
    unpack: bool,
) -> Result<Vec<PathBuf>, TransferError> {
    pull_to_dir_with_limits(client, reference, out_dir, unpack, Limits::default())
}

/// `oras pull`: pulls `reference` and places its layers into `out_dir`, directory layers
/// unpacked within `limits` when `unpack`. On failure, what the pull wrote is removed (the
/// scratch directory with its partial blobs, and every file already placed).
pub fn pull_to_dir_with_limits(
    client: &RegistryClient,
    reference: &Reference,
    out_dir: &Path,
    unpack: bool,
    limits: Limits,
) -> Result<Vec<PathBuf>, TransferError> {
    let mut placer = Placer::new(out_dir, unpack)?.with_limits(limits);
    // Blobs land in a scratch layout inside the target so that placing them is a rename. It is
    // tracked so that a signal removes it too (a TempDir is only removed by a destructor).
    let scratch_tracker = crate::cleanup::Tracker::new();
    let scratch = scratch_tracker
        .tempdir(".oras-agent-pull-", Some(placer.root()))
        .map_err(|source| TransferError::Scratch {
            path: out_dir.to_path_buf(),
            source,
        })?;
    let placed = pull_to_layout(client, reference, scratch.path())
        .and_then(|_| Ok(Layout::open(scratch.path())?))
        .and_then(|layout| {
            place_layout(
                &layout,
                &mut placer,
                &reference.to_string(),
                PlaceMode::Move,
            )
        });
    if placed.is_err() {
        placer.rollback();
    }
    placed
}

/// Now as RFC 3339 UTC (`2026-11-23T10:00:00Z`), for `org.opencontainers.image.created`.
pub fn rfc3339_now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (year, month, day) = civil_from_days(days as i64);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to (year, month, day), Howard Hinnant's civil calendar algorithm.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + if month <= 2 { 1 } else { 0 };
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates_are_right_around_leap_years() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        assert_eq!(civil_from_days(20_780), (2026, 11, 23));
    }
}
