//! Turning files and directories into artifact layers, as `oras push` does.
//!
//! A file becomes one layer with its bytes as they are (`application/vnd.oci.image.layer.v1.tar`,
//! titled by its path). A directory becomes one `tar+gzip` layer whose entries are prefixed by the
//! directory's title, with `io.deis.oras.content.unpack: "true"` and
//! `io.deis.oras.content.digest` (the digest of the uncompressed tar). The tar is written as one
//! stream through two hashers, so many small files cost no round trip and no second pass.

use crate::digest::{Digest, HashingWriter};
use crate::manifest::Descriptor;
use flate2::Compression;
use flate2::write::GzEncoder;
use oras_cache_api::media_types as mt;
use std::collections::BTreeMap;
use std::io::{self, BufWriter, Write};
use std::path::{Component, Path, PathBuf};

/// gzip level of directory layers. Measured with `agent/benches/gzip-level.sh` (73 MiB of text
/// in 5,004 files, push to a local registry, zlib-rs): level 1 gives 34.4 MB in 1.7 s, level 3
/// 23.2 MB in 1.9 s, level 6 22.2 MB in 4.8 s. Level 3 is nearly as small as the default at
/// nearly the speed of the fastest, and outputs are packed while the pod waits.
pub const GZIP_LEVEL: u32 = 3;

/// Environment variable overriding [`GZIP_LEVEL`] (0-9).
pub const ENV_GZIP_LEVEL: &str = "ORAS_AGENT_GZIP_LEVEL";

fn gzip_level() -> u32 {
    std::env::var(ENV_GZIP_LEVEL)
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|level| *level <= 9)
        .unwrap_or(GZIP_LEVEL)
}

/// Errors while packing.
#[derive(Debug, thiserror::Error)]
pub enum PackError {
    /// The path cannot be read.
    #[error("cannot pack {path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
    /// The path would give a title that escapes the artifact.
    #[error(
        "cannot pack {0}: a relative path with '..' would give a title outside the artifact; run from a parent directory or give an absolute path"
    )]
    TitleEscapes(PathBuf),
    /// The path is neither a file nor a directory.
    #[error("cannot pack {0}: only regular files and directories can be pushed")]
    Unsupported(PathBuf),
    /// A symlink inside a pushed directory points outside it.
    #[error(
        "cannot pack {path}: it is a symlink to {target}, which is absolute or leaves the directory being pushed; the agent's pull refuses such links, so nothing was pushed: copy the target in or remove the link"
    )]
    LinkEscapes {
        /// The link.
        path: PathBuf,
        /// Its target.
        target: PathBuf,
    },
    /// A name the agent's pull would refuse.
    #[error(
        "cannot pack {path:?}: its name {reason}; the agent's pull refuses such names, so nothing was pushed: rename it"
    )]
    UnpullableName {
        /// The path.
        path: PathBuf,
        /// What is wrong with the name.
        reason: String,
    },
    /// Two paths have the same title.
    #[error("cannot pack {0}: another path has the same title; push them from different folders")]
    DuplicateTitle(String),
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> PackError + '_ {
    move |source| PackError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// A layer ready to be pushed or stored: its descriptor and the file holding its bytes.
#[derive(Debug)]
pub struct PackedLayer {
    /// The layer descriptor (media type, digest, size, annotations).
    pub descriptor: Descriptor,
    /// The file with the layer's bytes: the original file, or a tar+gzip in the scratch dir.
    pub content: PathBuf,
}

/// The title of `path` as `oras push` gives it: a relative path cleaned and kept as written
/// (`out/a.txt`), an absolute path reduced to its last component.
pub fn title_for(path: &Path) -> Result<String, PackError> {
    let mut parts: Vec<String> = Vec::new();
    if path.is_absolute() {
        let name = path
            .file_name()
            .ok_or_else(|| PackError::TitleEscapes(path.to_path_buf()))?;
        return Ok(name.to_string_lossy().into_owned());
    }
    for component in path.components() {
        match component {
            Component::Normal(part) => parts.push(part.to_string_lossy().into_owned()),
            Component::CurDir => {}
            Component::ParentDir => {
                if parts.pop().is_none() {
                    return Err(PackError::TitleEscapes(path.to_path_buf()));
                }
            }
            Component::RootDir | Component::Prefix(_) => {}
        }
    }
    if parts.is_empty() {
        // "." packs the current directory under its own name.
        let absolute = std::env::current_dir().map_err(io_err(path))?.join(path);
        let absolute = absolute.canonicalize().map_err(io_err(path))?;
        let name = absolute
            .file_name()
            .ok_or_else(|| PackError::TitleEscapes(path.to_path_buf()))?;
        return Ok(name.to_string_lossy().into_owned());
    }
    Ok(parts.join("/"))
}

/// Packs each path into a layer. Directories are written as tar+gzip into `scratch`; files are
/// referenced where they are.
pub fn pack_paths(paths: &[PathBuf], scratch: &Path) -> Result<Vec<PackedLayer>, PackError> {
    let mut layers = Vec::new();
    let mut titles = std::collections::HashSet::new();
    for path in paths {
        let title = title_for(path)?;
        check_name(path, &title)?;
        if !titles.insert(title.clone()) {
            return Err(PackError::DuplicateTitle(title));
        }
        let metadata = std::fs::metadata(path).map_err(io_err(path))?;
        let layer = if metadata.is_file() {
            pack_file(path, &title)?
        } else if metadata.is_dir() {
            pack_directory(path, &title, scratch)?
        } else {
            return Err(PackError::Unsupported(path.clone()));
        };
        crate::debug!(
            "packed {} as {title} ({} bytes)",
            path.display(),
            layer.descriptor.size
        );
        layers.push(layer);
    }
    Ok(layers)
}

fn annotations(title: &str) -> BTreeMap<String, String> {
    BTreeMap::from([(mt::ANNOTATION_TITLE.to_string(), title.to_string())])
}

/// A file layer: digest of the file as it is.
pub fn pack_file(path: &Path, title: &str) -> Result<PackedLayer, PackError> {
    let (digest, size) = crate::digest::digest_file(path).map_err(io_err(path))?;
    Ok(PackedLayer {
        descriptor: Descriptor {
            media_type: mt::DEFAULT_FILE_LAYER.into(),
            digest,
            size,
            annotations: annotations(title),
            artifact_type: None,
        },
        content: path.to_path_buf(),
    })
}

/// A directory layer: one tar+gzip stream written to a temporary file in `scratch`.
pub fn pack_directory(dir: &Path, title: &str, scratch: &Path) -> Result<PackedLayer, PackError> {
    let temp = tempfile::Builder::new()
        .prefix(".pack-")
        .suffix(".tar.gz")
        .permissions(crate::digest::readable())
        .tempfile_in(scratch)
        .map_err(io_err(scratch))?;
    let (file, content) = temp.keep().map_err(|e| PackError::Io {
        path: scratch.to_path_buf(),
        source: e.error,
    })?;
    let gzip_hashing = HashingWriter::new(BufWriter::with_capacity(256 * 1024, file));
    let encoder = GzEncoder::new(gzip_hashing, Compression::new(gzip_level()));
    let mut builder = tar::Builder::new(HashingWriter::new(encoder));
    builder.follow_symlinks(false);
    // The directory itself is followed when it is a symlink: the user named it (issue 16).
    append_tree(&mut builder, dir, Path::new(title), Path::new(title), true)?;
    let finish = |e: io::Error| PackError::Io {
        path: content.clone(),
        source: e,
    };
    let tar_hashing = builder.into_inner().map_err(finish)?;
    let (encoder, tar_hasher) = tar_hashing.into_parts();
    let gzip_hashing = encoder.finish().map_err(finish)?;
    let (mut buffered, gzip_hasher) = gzip_hashing.into_parts();
    buffered.flush().map_err(finish)?;
    let mut annotations = annotations(title);
    annotations.insert(mt::ANNOTATION_UNPACK.into(), "true".into());
    annotations.insert(
        mt::ANNOTATION_CONTENT_DIGEST.into(),
        tar_hasher.finish().to_string(),
    );
    let size = gzip_hasher.len();
    Ok(PackedLayer {
        descriptor: Descriptor {
            media_type: mt::TAR_GZIP_LAYER.into(),
            digest: gzip_hasher.finish(),
            size,
            annotations,
            artifact_type: None,
        },
        content,
    })
}

/// Refuses a name the agent's pull would refuse: not UTF-8, or with control characters.
fn check_name(path: &Path, name: &str) -> Result<(), PackError> {
    if name.chars().any(char::is_control) {
        return Err(PackError::UnpullableName {
            path: path.to_path_buf(),
            reason: "contains control characters".into(),
        });
    }
    Ok(())
}

/// Appends `path` as `name`, and its children sorted by name (so packing is reproducible).
/// `root` is the title every entry lies under; `follow` reads through `path` when it is a
/// symlink (only for the directory the user named).
fn append_tree<W: Write>(
    builder: &mut tar::Builder<W>,
    path: &Path,
    name: &Path,
    root: &Path,
    follow: bool,
) -> Result<(), PackError> {
    let metadata = if follow {
        std::fs::metadata(path)
    } else {
        std::fs::symlink_metadata(path)
    }
    .map_err(io_err(path))?;
    let text = name.to_str().ok_or_else(|| PackError::UnpullableName {
        path: path.to_path_buf(),
        reason: "is not UTF-8".into(),
    })?;
    check_name(path, text)?;
    let mut header = tar::Header::new_gnu();
    header.set_metadata_in_mode(&metadata, tar::HeaderMode::Complete);
    // Owners mean nothing on the pulling side: oras-go zeroes them too.
    header.set_uid(0);
    header.set_gid(0);
    let _ = header.set_username("");
    let _ = header.set_groupname("");
    let file_type = metadata.file_type();
    if file_type.is_symlink() {
        let target = std::fs::read_link(path).map_err(io_err(path))?;
        // The pull resolves links lexically from their directory and refuses any that leave
        // the target; a link leaving the pushed directory is refused here, where it can be
        // fixed, instead of there.
        let inside = crate::unpack::resolve_link_target(name, &target)
            .is_some_and(|resolved| resolved.starts_with(root));
        if !inside {
            return Err(PackError::LinkEscapes {
                path: path.to_path_buf(),
                target,
            });
        }
        header.set_size(0);
        builder
            .append_link(&mut header, name, &target)
            .map_err(io_err(path))?;
    } else if file_type.is_dir() {
        header.set_size(0);
        builder
            .append_data(&mut header, name, io::empty())
            .map_err(io_err(path))?;
        let mut children: Vec<_> = std::fs::read_dir(path)
            .map_err(io_err(path))?
            .collect::<Result<_, _>>()
            .map_err(io_err(path))?;
        children.sort_by_key(|entry| entry.file_name());
        for child in children {
            append_tree(
                builder,
                &child.path(),
                &name.join(child.file_name()),
                root,
                false,
            )?;
        }
    } else if file_type.is_file() {
        let file = std::fs::File::open(path).map_err(io_err(path))?;
        builder
            .append_data(&mut header, name, file)
            .map_err(io_err(path))?;
    } else {
        crate::warn!(
            "skipping {}: not a file, directory or symlink (a device, FIFO or socket is not pushed)",
            path.display()
        );
    }
    Ok(())
}

/// The digest of the empty config blob `{}`.
pub fn empty_config_digest() -> Digest {
    Digest::of_bytes(b"{}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn titles_keep_relative_paths_and_reduce_absolute_ones() {
        assert_eq!(title_for(Path::new("out/a.txt")).unwrap(), "out/a.txt");
        assert_eq!(title_for(Path::new("./out//b/")).unwrap(), "out/b");
        assert_eq!(
            title_for(Path::new("/data/result.csv")).unwrap(),
            "result.csv"
        );
        assert_eq!(title_for(Path::new("a/../b")).unwrap(), "b");
        assert!(matches!(
            title_for(Path::new("../secret")),
            Err(PackError::TitleEscapes(_))
        ));
    }
}
