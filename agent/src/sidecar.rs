//! The push sidecar: waits for the launcher's status, then pushes the packed outputs.
//!
//! It never waits forever: without a heartbeat or a start marker it gives up after
//! `--start-timeout`; once the launcher's heartbeat exists, a heartbeat older than
//! `--heartbeat-timeout` with no status means the application container died (OOM-killed,
//! evicted, ...) and the sidecar fails with that message.

use crate::layout::Layout;
use crate::reference::{Reference, ReferenceError};
use crate::registry::{ClientOptions, NetworkOverrides, RegistryClient};
use crate::transfer::{TransferError, push_layout};
use crate::{debug, info};
use oras_cache_api::agent::{
    HEARTBEAT_FILE, LaunchStatus, OUTPUTS_DIR, STARTED_FILE, STATUS_FILE, SidecarArgs,
};
use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

/// How often the share is looked at.
const POLL: Duration = Duration::from_millis(250);

/// Why the sidecar failed.
#[derive(Debug, thiserror::Error)]
pub enum SidecarError {
    /// `--output` is malformed.
    #[error("--output: {0}")]
    Reference(#[from] ReferenceError),
    /// Nothing showed up on the share in time.
    #[error(
        "the application never started within {0} s (no {STARTED_FILE} or heartbeat on the share); check the application container (image pull, command) or raise --start-timeout"
    )]
    NeverStarted(u64),
    /// The heartbeat stopped without a status.
    #[error(
        "the application container stopped without recording a status (heartbeat older than {0} s): it was probably killed (OOM, eviction); nothing was pushed"
    )]
    HeartbeatStopped(u64),
    /// The status file is unreadable.
    #[error("{STATUS_FILE} is invalid: {0}")]
    InvalidStatus(String),
    /// The launcher recorded an error.
    #[error("the launcher failed: {0}")]
    LaunchFailed(String),
    /// The push failed.
    #[error("pushing the outputs to {reference} failed: {source}")]
    Push {
        /// The target.
        reference: String,
        /// What went wrong.
        source: TransferError,
    },
}

/// Runs the sidecar role; `network` are the command line's network settings.
pub fn run(args: &SidecarArgs, network: &NetworkOverrides) -> Result<(), SidecarError> {
    let reference = Reference::parse(&args.output)?;
    let share = Path::new(&args.share);
    let status = wait_for_status(share, args)?;
    if let Some(error) = status.error {
        return Err(SidecarError::LaunchFailed(error));
    }
    if !status.push {
        info!(
            "the application exited with code {}; outputs are pushed only after success (push-on-failure pushes anyway): nothing to push",
            status.exit_code
        );
        return Ok(());
    }
    let push_error = |source| SidecarError::Push {
        reference: reference.to_string(),
        source,
    };
    let layout = Layout::open(&share.join(OUTPUTS_DIR)).map_err(|e| push_error(e.into()))?;
    let client = RegistryClient::new(network.apply(ClientOptions::new(args.plain_http)))
        .map_err(|e| push_error(e.into()))?;
    push_layout(&client, &layout, &reference).map_err(push_error)?;
    Ok(())
}

/// Polls the share until the status exists, or gives up as the module explains.
pub fn wait_for_status(share: &Path, args: &SidecarArgs) -> Result<LaunchStatus, SidecarError> {
    let started_at = Instant::now();
    let status_path = share.join(STATUS_FILE);
    let heartbeat_path = share.join(HEARTBEAT_FILE);
    let started_path = share.join(STARTED_FILE);
    loop {
        if let Some(status) = read_status(&status_path)? {
            debug!("status: {status:?}");
            return Ok(status);
        }
        match heartbeat_age(&heartbeat_path) {
            Some(age) if age > Duration::from_secs(args.heartbeat_timeout_secs) => {
                // The launcher may have written its status between the two looks.
                if let Some(status) = read_status(&status_path)? {
                    return Ok(status);
                }
                return Err(SidecarError::HeartbeatStopped(args.heartbeat_timeout_secs));
            }
            Some(_) => {}
            None => {
                if !started_path.exists()
                    && started_at.elapsed() > Duration::from_secs(args.start_timeout_secs)
                {
                    return Err(SidecarError::NeverStarted(args.start_timeout_secs));
                }
            }
        }
        std::thread::sleep(POLL);
    }
}

fn read_status(path: &Path) -> Result<Option<LaunchStatus>, SidecarError> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| SidecarError::InvalidStatus(e.to_string())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(SidecarError::InvalidStatus(e.to_string())),
    }
}

fn heartbeat_age(path: &Path) -> Option<Duration> {
    let modified = std::fs::metadata(path).ok()?.modified().ok()?;
    Some(
        SystemTime::now()
            .duration_since(modified)
            .unwrap_or(Duration::ZERO),
    )
}
