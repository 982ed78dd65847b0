//! The init role: install the agent on the share, fetch and verify every input.

use crate::layout::Layout;
use crate::reference::{Reference, ReferenceError};
use crate::registry::{ClientOptions, NetworkOverrides, RegistryClient};
use crate::transfer::{TransferError, pull_to_layout};
use crate::unpack::{PlaceError, Placer};
use crate::{debug, info};
use oras_cache_api::agent::{AGENT_BINARY, BIN_DIR, INPUTS_DIR, InitArgs};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// Why init failed.
#[derive(Debug, thiserror::Error)]
pub enum InitError {
    /// The binary could not be installed on the share.
    #[error("cannot install the agent binary at {path}: {source}")]
    Install {
        /// The destination.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// An input reference is malformed.
    #[error("--input #{index}: {source}")]
    Reference {
        /// Position of the input.
        index: usize,
        /// What is wrong.
        source: ReferenceError,
    },
    /// An input could not be fetched.
    #[error("input #{index} ({reference}): {source}")]
    Fetch {
        /// Position of the input.
        index: usize,
        /// The reference.
        reference: String,
        /// What went wrong.
        source: TransferError,
    },
    /// Two inputs would write the same path, or a title is unsafe.
    #[error(transparent)]
    Place(#[from] PlaceError),
}

/// The layout directory of input `index` on the share.
pub fn input_layout_dir(share: &Path, index: usize) -> PathBuf {
    share.join(INPUTS_DIR).join(index.to_string())
}

/// Runs the init role; `network` are the command line's network settings.
pub fn run(args: &InitArgs, network: &NetworkOverrides) -> Result<(), InitError> {
    let share = Path::new(&args.share);
    install_binary(share)?;
    let references = args
        .inputs
        .iter()
        .enumerate()
        .map(|(index, input)| {
            Reference::parse(input).map_err(|source| InitError::Reference { index, source })
        })
        .collect::<Result<Vec<_>, _>>()?;
    if references.is_empty() {
        return Ok(());
    }
    let client =
        RegistryClient::new(network.apply(ClientOptions::new(args.plain_http))).map_err(|e| {
            InitError::Fetch {
                index: 0,
                reference: args.inputs[0].clone(),
                source: e.into(),
            }
        })?;
    // Titles are claimed up front, so inputs that would overwrite each other fail here, before
    // the application starts, exactly as the launcher would refuse them.
    // Claiming writes nothing, so the share serves as the placer's root: no temporary
    // directory is needed on a read-only root filesystem.
    let mut placer = Placer::new(share, true)?;
    for (index, reference) in references.iter().enumerate() {
        let dir = input_layout_dir(share, index);
        let fetch = |source| InitError::Fetch {
            index,
            reference: reference.to_string(),
            source,
        };
        let manifest = pull_to_layout(&client, reference, &dir).map_err(fetch)?;
        for layer in &manifest.layers {
            if let Some(title) = layer.title() {
                placer.claim(&format!("input #{index} ({reference})"), title)?;
            }
        }
        debug!(
            "input #{index} stored in {}",
            Layout::open(&dir)
                .map_err(|e| fetch(e.into()))?
                .root()
                .display()
        );
    }
    info!("fetched {} input(s)", references.len());
    Ok(())
}

/// Copies the running binary to `<share>/bin/oras-agent` (mode 0755), atomically.
pub fn install_binary(share: &Path) -> Result<PathBuf, InitError> {
    let bin_dir = share.join(BIN_DIR);
    let destination = bin_dir.join(AGENT_BINARY);
    let install = |source| InitError::Install {
        path: destination.clone(),
        source,
    };
    std::fs::create_dir_all(&bin_dir).map_err(install)?;
    let current = std::env::current_exe().map_err(install)?;
    let temp = tempfile::Builder::new()
        .prefix(".oras-agent-")
        .tempfile_in(&bin_dir)
        .map_err(install)?;
    std::fs::copy(&current, temp.path()).map_err(install)?;
    std::fs::set_permissions(temp.path(), std::fs::Permissions::from_mode(0o755))
        .map_err(install)?;
    temp.persist(&destination).map_err(|e| install(e.error))?;
    debug!("installed {}", destination.display());
    Ok(destination)
}
