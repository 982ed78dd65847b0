//! The launcher: wraps the application in its own container.
//!
//! It places the inputs, runs the command in its own process group with every catchable signal
//! forwarded to that group, copies stdout to `--output-pipe`, keeps a heartbeat on the share while
//! alive, packs the outputs for the sidecar, writes `state/status.json` last (temp file + rename),
//! and exits with the application's code (128 + signal when a signal killed it).

use crate::digest::readable;
use crate::init::input_layout_dir;
use crate::layout::Layout;
use crate::transfer::{TransferError, pack_into_layout, place_layout};
use crate::unpack::{Limits, PlaceMode, Placer};
use crate::{debug, error, info, warn};
use oras_cache_api::agent::{
    HEARTBEAT_FILE, HEARTBEAT_INTERVAL_SECS, INPUTS_DIR, LaunchArgs, LaunchStatus, OUTPUTS_DIR,
    STARTED_FILE, STATE_DIR, STATUS_FILE, UnpackLimits,
};
use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::time::Duration;

/// Exit code when the launcher itself fails before the application runs (inputs unusable).
pub const EXIT_LAUNCHER_FAILED: i32 = 64;
/// Exit code when the command exists but cannot be executed (shell convention).
pub const EXIT_NOT_EXECUTABLE: i32 = 126;
/// Exit code when the command is not found (shell convention).
pub const EXIT_NOT_FOUND: i32 = 127;

/// Signals forwarded to the application's process group.
const FORWARDED_SIGNALS: &[i32] = &[
    libc::SIGTERM,
    libc::SIGINT,
    libc::SIGHUP,
    libc::SIGQUIT,
    libc::SIGUSR1,
    libc::SIGUSR2,
    libc::SIGWINCH,
];

/// Why the launcher could not run the application to its end; each reason has the exit code
/// the container reports ([`LaunchError::exit_code`]).
#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    /// The working directory cannot be read.
    #[error("working directory: {0}")]
    WorkingDirectory(std::io::Error),
    /// The share's inputs folder cannot be listed.
    #[error("{path}: {source}")]
    Inputs {
        /// The folder.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// A path is the share, holds it or is `/`.
    #[error("{0}")]
    Refused(#[from] PathRefusal),
    /// The input path cannot be prepared.
    #[error(transparent)]
    Place(#[from] crate::unpack::PlaceError),
    /// An input's layout is unusable or cannot be placed.
    #[error("{owner}: {source}")]
    Input {
        /// Which input.
        owner: String,
        /// What went wrong.
        source: Box<TransferError>,
    },
    /// Nothing follows `--`.
    #[error("no command to run after --")]
    NoCommand,
    /// The output pipe file cannot be created.
    #[error("--output-pipe {path}: cannot create it: {source}")]
    OutputPipe {
        /// The file.
        path: String,
        /// The error.
        source: std::io::Error,
    },
    /// The signal handlers cannot be installed.
    #[error("cannot install signal handlers: {0}")]
    Signals(std::io::Error),
    /// The command cannot be started.
    #[error("cannot run {program}: {source}")]
    Spawn {
        /// The command.
        program: String,
        /// The error.
        source: std::io::Error,
    },
    /// Waiting for the command failed.
    #[error("waiting for {program}: {source}")]
    Wait {
        /// The command.
        program: String,
        /// The error.
        source: std::io::Error,
    },
}

impl LaunchError {
    /// The exit code the container ends with: the shell's 127 and 126 when the command cannot
    /// be started (not found, not executable), [`EXIT_LAUNCHER_FAILED`] for everything else.
    pub fn exit_code(&self) -> i32 {
        match self {
            LaunchError::Spawn { source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
                EXIT_NOT_FOUND
            }
            LaunchError::Spawn { .. } => EXIT_NOT_EXECUTABLE,
            _ => EXIT_LAUNCHER_FAILED,
        }
    }
}

/// A path the launcher refuses to place inputs in or pack.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathRefusal {
    /// The path is `/`.
    #[error("{what} {path} is the whole filesystem (/); name a directory of the step instead")]
    WholeFilesystem {
        /// "input path" or "output path".
        what: &'static str,
        /// The path as given.
        path: String,
    },
    /// The path is or holds the share.
    #[error(
        "{what} {path} is or holds the agent's shared volume {share}; name a directory of the step outside it"
    )]
    Share {
        /// "input path" or "output path".
        what: &'static str,
        /// The path as given.
        path: String,
        /// The share.
        share: String,
    },
    /// The working directory is unreadable, so a relative path cannot be checked.
    #[error("working directory: {0}")]
    WorkingDirectory(String),
}

/// How the application ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChildExit {
    /// The exit code to report (128 + signal when a signal killed it).
    pub code: i32,
    /// The signal that killed it, if one did.
    pub signal: Option<i32>,
}

/// What became of the outputs after the command ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Packing {
    /// No sidecar pushes them: nothing is packed.
    NotRequested,
    /// The command failed and `--push-on-failure` is not set.
    CommandFailed,
    /// Packed on the share for the sidecar.
    Packed,
    /// They were to be packed and could not be; why.
    Failed(String),
}

/// Decides, from the arguments and the exit code alone, which output to pack, or why none is.
pub fn output_to_pack(args: &LaunchArgs, exit_code: i32) -> Result<PathBuf, Packing> {
    if !args.pack_outputs {
        return Err(Packing::NotRequested);
    }
    if exit_code != 0 && !args.push_on_failure {
        return Err(Packing::CommandFailed);
    }
    match args.output_path.as_ref().or(args.output_pipe.as_ref()) {
        Some(output) => Ok(PathBuf::from(output)),
        None => Err(Packing::Failed(
            "outputs are to be pushed but neither --output-path nor --output-pipe names them"
                .into(),
        )),
    }
}

/// The status the launcher records once the command ended and the outputs were dealt with.
pub fn status_after_run(exit: ChildExit, packing: &Packing) -> LaunchStatus {
    LaunchStatus {
        exit_code: exit.code,
        signal: exit.signal,
        push: *packing == Packing::Packed,
        error: match packing {
            Packing::Failed(error) => Some(error.clone()),
            _ => None,
        },
    }
}

/// The status the launcher records when it could not run the command to its end.
pub fn status_after_failure(error: &LaunchError) -> LaunchStatus {
    LaunchStatus {
        exit_code: error.exit_code(),
        signal: None,
        push: false,
        error: Some(error.to_string()),
    }
}

/// How a `waitpid(2)` status ends the container: the exit code, or 128 + the signal (the
/// shell's convention); `None` for a stop or continue notice.
pub fn exit_of_wait_status(status: i32) -> Option<ChildExit> {
    if libc::WIFEXITED(status) {
        return Some(ChildExit {
            code: libc::WEXITSTATUS(status),
            signal: None,
        });
    }
    if libc::WIFSIGNALED(status) {
        let signal = libc::WTERMSIG(status);
        return Some(ChildExit {
            code: 128 + signal,
            signal: Some(signal),
        });
    }
    None
}

/// Runs the launcher and returns the exit code the container must end with; `limits` bound the
/// unpacking of the inputs' directory layers.
pub fn run(args: &LaunchArgs, limits: &UnpackLimits) -> i32 {
    let share = PathBuf::from(&args.share);
    let state = share.join(STATE_DIR);
    if let Err(e) = std::fs::create_dir_all(&state) {
        error!("cannot create {}: {e}", state.display());
        return EXIT_LAUNCHER_FAILED;
    }
    let heartbeat = Heartbeat::start(share.join(HEARTBEAT_FILE));
    let status = run_with_share(args, limits, &share);
    if let Some(error) = &status.error {
        error!("{error}");
    }
    if let Err(e) = write_status(&share, &status) {
        error!("cannot write {STATUS_FILE}: {e}");
    }
    heartbeat.stop();
    status.exit_code
}

fn run_with_share(args: &LaunchArgs, limits: &UnpackLimits, share: &Path) -> LaunchStatus {
    let exit = match place_inputs(args, limits, share).and_then(|()| run_child(args, share)) {
        Ok(exit) => exit,
        Err(error) => return status_after_failure(&error),
    };
    info!("command exited with code {}", exit.code);
    let packing = match output_to_pack(args, exit.code) {
        Ok(output) => pack_output(&output, share),
        Err(Packing::CommandFailed) => {
            info!("not packing outputs: the command failed (set push-on-failure to push anyway)");
            Packing::CommandFailed
        }
        Err(other) => other,
    };
    status_after_run(exit, &packing)
}

/// Packs `output` into the share's outputs layout for the sidecar.
fn pack_output(output: &Path, share: &Path) -> Packing {
    if !output.exists() {
        return Packing::Failed(format!(
            "output path {} does not exist after the command ran; nothing was pushed",
            output.display()
        ));
    }
    if let Err(refusal) = refuse_share_or_root("output path", output, share, true) {
        return Packing::Failed(refusal.to_string());
    }
    let outputs = share.join(OUTPUTS_DIR);
    let _ = std::fs::remove_dir_all(&outputs);
    match pack_into_layout(&[output.to_path_buf()], &outputs) {
        Ok(_) => {
            info!("packed {} for the sidecar", output.display());
            Packing::Packed
        }
        Err(e) => Packing::Failed(format!("cannot pack {}: {e}", output.display())),
    }
}

/// Refuses a path that is the shared volume or inside it, and with `refuse_root` also `/` and any
/// directory holding the share: packing it would pack the agent's own files (or everything), and
/// placing inputs in the share could overwrite the agent or its status. The policy refuses these
/// at admission; this is the agent's own check, for a pod written by hand.
fn refuse_share_or_root(
    what: &'static str,
    path: &Path,
    share: &Path,
    refuse_root: bool,
) -> Result<(), PathRefusal> {
    // Resolve what exists (symlinks included), then append the rest lexically.
    let absolute = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir()
            .map_err(|e| PathRefusal::WorkingDirectory(e.to_string()))?
            .join(path)
    };
    let mut existing = absolute.as_path();
    let mut rest = Vec::new();
    let resolved = loop {
        match existing.canonicalize() {
            Ok(found) => break found,
            Err(_) => match (existing.parent(), existing.file_name()) {
                (Some(parent), Some(name)) => {
                    rest.push(name.to_os_string());
                    existing = parent;
                }
                _ => break existing.to_path_buf(),
            },
        }
    };
    let resolved = rest.iter().rev().fold(resolved, |p, name| p.join(name));
    let share = share.canonicalize().unwrap_or_else(|_| share.to_path_buf());
    if refuse_root && resolved == Path::new("/") {
        return Err(PathRefusal::WholeFilesystem {
            what,
            path: path.display().to_string(),
        });
    }
    let holds_share = refuse_root && share.starts_with(&resolved);
    if resolved.starts_with(&share) || holds_share {
        return Err(PathRefusal::Share {
            what,
            path: path.display().to_string(),
            share: share.display().to_string(),
        });
    }
    Ok(())
}

/// Places every input layout of the share (in input order) into the input path; on failure,
/// removes what it placed, so the step's directory is as it was.
fn place_inputs(args: &LaunchArgs, limits: &UnpackLimits, share: &Path) -> Result<(), LaunchError> {
    let inputs_dir = share.join(INPUTS_DIR);
    if !inputs_dir.is_dir() {
        return Ok(());
    }
    let mut indexes: Vec<usize> = std::fs::read_dir(&inputs_dir)
        .map_err(|source| LaunchError::Inputs {
            path: inputs_dir.clone(),
            source,
        })?
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    indexes.sort_unstable();
    if indexes.is_empty() {
        return Ok(());
    }
    let target = match &args.input_path {
        Some(path) => PathBuf::from(path),
        None => std::env::current_dir().map_err(LaunchError::WorkingDirectory)?,
    };
    // The working directory may well be `/` or hold the share (many images leave it at `/`):
    // inputs placed there write their titles only, and the placer refuses a title that would
    // land in the share, so only a target inside the share is refused outright.
    refuse_share_or_root("input path", &target, share, false)?;
    let mut placer = Placer::new(&target, args.unpack)?
        .with_limits(Limits::from(limits))
        .forbid(&share.canonicalize().unwrap_or_else(|_| share.to_path_buf()));
    for index in indexes {
        let owner = format!("input #{index}");
        let placed = Layout::open(&input_layout_dir(share, index))
            .map_err(TransferError::from)
            .and_then(|layout| place_layout(&layout, &mut placer, &owner, PlaceMode::Copy));
        match placed {
            Ok(written) => {
                for path in written {
                    debug!("{owner}: placed {}", path.display());
                }
            }
            Err(source) => {
                placer.rollback();
                return Err(LaunchError::Input {
                    owner,
                    source: Box::new(source),
                });
            }
        }
    }
    info!("inputs placed in {}", placer.root().display());
    Ok(())
}

/// Runs the command in its own process group, signals forwarded and stdout copied to the pipe
/// file when one is named; returns how it ended.
fn run_child(args: &LaunchArgs, share: &Path) -> Result<ChildExit, LaunchError> {
    let (program, rest) = args.command.split_first().ok_or(LaunchError::NoCommand)?;
    let pipe_file = match &args.output_pipe {
        Some(path) => {
            Some(
                std::fs::File::create(path).map_err(|source| LaunchError::OutputPipe {
                    path: path.clone(),
                    source,
                })?,
            )
        }
        None => None,
    };
    // Installed before the spawn so that a signal arriving in between is not lost; dropping it
    // (on every return below) stops the forwarding.
    let forwarder = SignalForwarder::start().map_err(LaunchError::Signals)?;
    let mut child = spawn_in_own_group(program, rest, pipe_file.is_some())?;
    let pgid = child.id() as i32;
    forwarder.forward_to(pgid);
    if let Err(e) = std::fs::write(share.join(STARTED_FILE), format!("{pgid}\n")) {
        warn!("cannot write {STARTED_FILE}: {e}");
    }
    let tee = match (child.stdout.take(), pipe_file) {
        (Some(stdout), Some(file)) => Some(Tee::start(stdout, file)),
        _ => None,
    };
    let waited = wait_reaping(pgid);
    if let Some(tee) = tee {
        tee.finish(TEE_GRACE);
    }
    drop(forwarder);
    waited.map_err(|source| LaunchError::Wait {
        program: program.clone(),
        source,
    })
}

/// Starts `program` with `args` as the leader of a new process group (so that signals reach
/// everything it starts), its stdout piped to the launcher when `capture_stdout`.
fn spawn_in_own_group(
    program: &str,
    args: &[String],
    capture_stdout: bool,
) -> Result<std::process::Child, LaunchError> {
    let mut command = Command::new(program);
    command.args(args).process_group(0);
    if capture_stdout {
        command.stdout(Stdio::piped());
    }
    command.spawn().map_err(|source| LaunchError::Spawn {
        program: program.to_string(),
        source,
    })
}

/// Forwards every catchable signal the launcher receives to the application's process group;
/// signals that arrive before the group exists are kept and sent once it does.
struct SignalForwarder {
    group: Arc<AtomicI32>,
    pending: Arc<std::sync::Mutex<Vec<i32>>>,
    handle: signal_hook::iterator::Handle,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl SignalForwarder {
    fn start() -> std::io::Result<SignalForwarder> {
        let mut signals = signal_hook::iterator::Signals::new(FORWARDED_SIGNALS)?;
        let handle = signals.handle();
        let group = Arc::new(AtomicI32::new(0));
        let pending: Arc<std::sync::Mutex<Vec<i32>>> = Arc::default();
        let (forward_group, pending_in_thread) = (group.clone(), pending.clone());
        let thread = std::thread::spawn(move || {
            for signal in signals.forever() {
                // Under the lock, so that `forward_to` either sees this signal pending or has
                // already published the group.
                let mut pending = pending_in_thread.lock().unwrap_or_else(|e| e.into_inner());
                let pgid = forward_group.load(Ordering::SeqCst);
                if pgid > 0 {
                    debug!("forwarding signal {signal} to process group {pgid}");
                    signal_group(pgid, signal);
                } else {
                    pending.push(signal);
                }
            }
        });
        Ok(SignalForwarder {
            group,
            pending,
            handle,
            thread: Some(thread),
        })
    }

    /// From now on signals go to process group `pgid`, starting with those kept so far.
    fn forward_to(&self, pgid: i32) {
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        self.group.store(pgid, Ordering::SeqCst);
        for signal in pending.drain(..) {
            signal_group(pgid, signal);
        }
    }
}

impl Drop for SignalForwarder {
    fn drop(&mut self) {
        self.handle.close();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn signal_group(pgid: i32, signal: i32) {
    // SAFETY: kill(2) with a negative pid signals a process group; no memory involved.
    unsafe { libc::kill(-pgid, signal) };
}

/// How long stdout may stay open after the command exited.
const TEE_GRACE: Duration = Duration::from_secs(5);

/// Copies the application's stdout to the container log and to the output pipe file, in a
/// thread of its own.
struct Tee {
    finished: std::sync::mpsc::Receiver<std::io::Result<()>>,
}

impl Tee {
    fn start(stdout: std::process::ChildStdout, file: std::fs::File) -> Tee {
        let (done, finished) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = done.send(tee_stdout(stdout, file));
        });
        Tee { finished }
    }

    /// Waits for the copy to end. Background processes of the step may keep stdout open: the
    /// pipe gets what they wrote within `grace`, then the launcher moves on.
    fn finish(self, grace: Duration) {
        match self.finished.recv_timeout(grace) {
            Ok(Ok(())) => {}
            Ok(Err(e)) => warn!("copying stdout to the output pipe failed: {e}"),
            Err(_) => warn!(
                "stdout is still open (background processes?) {} s after the command exited; the output pipe may be incomplete",
                grace.as_secs()
            ),
        }
    }
}

/// Waits for `pid`, reaping every other child on the way: the launcher is PID 1 of the
/// application container, so orphaned grandchildren are re-parented to it and must not stay
/// zombies.
fn wait_reaping(pid: i32) -> std::io::Result<ChildExit> {
    loop {
        let mut status = 0;
        // SAFETY: waitpid with a valid pointer to an int.
        let reaped = unsafe { libc::waitpid(-1, &mut status, 0) };
        if reaped == -1 {
            let error = std::io::Error::last_os_error();
            if error.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(error);
        }
        if reaped != pid {
            debug!("reaped orphan {reaped}");
            continue;
        }
        if let Some(exit) = exit_of_wait_status(status) {
            return Ok(exit);
        }
    }
}

/// Copies the child's stdout to ours and to the pipe file. A broken container log does not stop
/// the copy to the file (nor starve the child of a reader).
fn tee_stdout(
    mut stdout: std::process::ChildStdout,
    mut file: std::fs::File,
) -> std::io::Result<()> {
    let mut buffer = [0u8; 64 * 1024];
    let mut ours = Some(std::io::stdout());
    loop {
        let n = match stdout.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if let Some(log) = ours.as_mut()
            && let Err(e) = log.write_all(&buffer[..n]).and_then(|_| log.flush())
        {
            warn!("the container log stopped taking stdout: {e}");
            ours = None;
        }
        file.write_all(&buffer[..n])?;
    }
    file.sync_all()
}

/// Writes the status file atomically: the sidecar reads it only once complete.
pub fn write_status(share: &Path, status: &LaunchStatus) -> std::io::Result<()> {
    let state = share.join(STATE_DIR);
    std::fs::create_dir_all(&state)?;
    let mut temp = tempfile::Builder::new()
        .prefix(".status-")
        .permissions(readable())
        .tempfile_in(&state)?;
    serde_json::to_writer(&mut temp, status)?;
    temp.as_file().sync_all()?;
    temp.persist(share.join(STATUS_FILE)).map_err(|e| e.error)?;
    Ok(())
}

/// Refreshes the heartbeat file until stopped.
struct Heartbeat {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Heartbeat {
    fn start(path: PathBuf) -> Heartbeat {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            while !flag.load(Ordering::SeqCst) {
                let now = std::time::SystemTime::now();
                let secs = now
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_secs())
                    .unwrap_or(0);
                if let Err(e) = std::fs::write(&path, format!("{secs}\n")) {
                    warn!("heartbeat {}: {e}", path.display());
                }
                // Sleep in short steps so that stopping is prompt.
                for _ in 0..(HEARTBEAT_INTERVAL_SECS * 10) {
                    if flag.load(Ordering::SeqCst) {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
        });
        Heartbeat {
            stop,
            thread: Some(thread),
        }
    }

    fn stop(mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(pack_outputs: bool, push_on_failure: bool, output_path: Option<&str>) -> LaunchArgs {
        LaunchArgs {
            share: "/mnt/oras".into(),
            output_path: output_path.map(String::from),
            pack_outputs,
            push_on_failure,
            command: vec!["true".into()],
            ..Default::default()
        }
    }

    #[test]
    fn what_to_pack_follows_the_sidecar_the_exit_code_and_push_on_failure() {
        let out = Some("out");
        assert_eq!(output_to_pack(&args(true, false, out), 0), Ok("out".into()));
        assert_eq!(
            output_to_pack(&args(false, true, out), 0),
            Err(Packing::NotRequested)
        );
        assert_eq!(
            output_to_pack(&args(true, false, out), 3),
            Err(Packing::CommandFailed)
        );
        assert_eq!(output_to_pack(&args(true, true, out), 3), Ok("out".into()));
        let pipe_only = LaunchArgs {
            output_pipe: Some("pipe.txt".into()),
            ..args(true, false, None)
        };
        assert_eq!(output_to_pack(&pipe_only, 0), Ok("pipe.txt".into()));
        let Err(Packing::Failed(why)) = output_to_pack(&args(true, false, None), 0) else {
            panic!("packing without a path must fail")
        };
        assert!(why.contains("--output-path"), "{why}");
    }

    #[test]
    fn the_status_keeps_the_code_and_signal_and_pushes_only_what_was_packed() {
        let killed = ChildExit {
            code: 137,
            signal: Some(9),
        };
        let status = status_after_run(killed, &Packing::Packed);
        assert_eq!(
            (status.exit_code, status.signal, status.push, status.error),
            (137, Some(9), true, None)
        );
        let ok = ChildExit {
            code: 0,
            signal: None,
        };
        for packing in [Packing::NotRequested, Packing::CommandFailed] {
            let status = status_after_run(ok, &packing);
            assert!(!status.push && status.error.is_none());
        }
        let status = status_after_run(ok, &Packing::Failed("no space".into()));
        assert_eq!(
            (status.push, status.error.as_deref()),
            (false, Some("no space"))
        );
    }

    #[test]
    fn launcher_failures_report_the_shell_codes() {
        let spawn = |kind| LaunchError::Spawn {
            program: "app".into(),
            source: std::io::Error::from(kind),
        };
        assert_eq!(
            spawn(std::io::ErrorKind::NotFound).exit_code(),
            EXIT_NOT_FOUND
        );
        assert_eq!(
            spawn(std::io::ErrorKind::PermissionDenied).exit_code(),
            EXIT_NOT_EXECUTABLE
        );
        assert_eq!(LaunchError::NoCommand.exit_code(), EXIT_LAUNCHER_FAILED);
        let status = status_after_failure(&spawn(std::io::ErrorKind::NotFound));
        assert_eq!(status.exit_code, EXIT_NOT_FOUND);
        assert!(!status.push);
        assert!(status.error.unwrap().contains("cannot run app"));
    }

    #[test]
    fn wait_statuses_become_the_code_or_128_plus_the_signal() {
        // The Linux encoding of waitpid(2) statuses: code << 8 for an exit, the signal in the
        // low 7 bits for a kill, 0x7f in the low byte for a stop.
        assert_eq!(
            exit_of_wait_status(3 << 8),
            Some(ChildExit {
                code: 3,
                signal: None
            })
        );
        assert_eq!(
            exit_of_wait_status(libc::SIGKILL),
            Some(ChildExit {
                code: 137,
                signal: Some(libc::SIGKILL)
            })
        );
        assert_eq!(exit_of_wait_status((libc::SIGSTOP << 8) | 0x7f), None);
    }

    #[test]
    fn the_share_and_the_root_are_refused_as_outputs() {
        let share = tempfile::tempdir().unwrap();
        let inside = share.path().join("outputs");
        assert!(matches!(
            refuse_share_or_root("output path", &inside, share.path(), true),
            Err(PathRefusal::Share { .. })
        ));
        assert!(matches!(
            refuse_share_or_root("output path", Path::new("/"), share.path(), true),
            Err(PathRefusal::WholeFilesystem { .. })
        ));
        assert!(refuse_share_or_root("input path", Path::new("/"), share.path(), false).is_ok());
    }
}
